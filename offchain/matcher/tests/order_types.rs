//! Golden tests: every order type, read as a specification.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use common::*;
use kestrel_matcher::{Command, Engine, Event, Lots, OrderId, Side, Ticks, Timestamp};

#[test]
fn limit_orders() {
    run_table(vec![
        case(
            "a limit order that crosses nothing rests",
            vec![],
            buy(1, 100, 5),
            &["accepted #1 bid 100x5", "book bid 100 = 5 (1)"],
        ),
        case(
            "a crossing limit order trades at the maker's price and rests the rest",
            vec![sell(1, 100, 3).by(B).cmd()],
            buy(2, 101, 5),
            &[
                "accepted #2 bid 101x5",
                "fill 1 maker=#1 taker=#2 100x3",
                "done #1 B filled rem=0",
                "book ask 100 = 0 (0)",
                "book bid 101 = 2 (1)",
            ],
        ),
        case(
            "better prices first, then earlier orders at the same price",
            vec![
                sell(1, 100, 2).by(B).cmd(),
                sell(2, 100, 2).by(C).cmd(),
                sell(3, 99, 1).by(C).cmd(),
            ],
            buy(4, 100, 4),
            &[
                "accepted #4 bid 100x4",
                "fill 1 maker=#3 taker=#4 99x1",
                "done #3 C filled rem=0",
                "book ask 99 = 0 (0)",
                "fill 2 maker=#1 taker=#4 100x2",
                "done #1 B filled rem=0",
                "fill 3 maker=#2 taker=#4 100x1",
                "book ask 100 = 1 (1)",
                "done #4 A filled rem=0",
            ],
        ),
        case(
            "a limit order never trades through its price",
            vec![sell(1, 101, 2).by(B).cmd()],
            buy(2, 100, 2),
            &["accepted #2 bid 100x2", "book bid 100 = 2 (1)"],
        ),
    ]);
}

#[test]
fn good_til_time() {
    run_table(vec![
        case(
            "an order expires at the first command stamped at or after its expiry",
            vec![buy(1, 100, 5).expiry(T0 + 10).cmd()],
            Command::ExpireDue,
            &["done #1 A expired rem=5", "book bid 100 = 0 (0)"],
        )
        .at(T0 + 10),
        case(
            "it is live one second before",
            vec![sell(1, 100, 5).by(B).expiry(T0 + 10).cmd()],
            buy(2, 100, 5),
            &[
                "accepted #2 bid 100x5",
                "fill 1 maker=#1 taker=#2 100x5",
                "done #1 B filled rem=0",
                "book ask 100 = 0 (0)",
                "done #2 A filled rem=0",
            ],
        )
        .at(T0 + 9),
        case(
            "an expired maker is removed before the command and never trades",
            vec![sell(1, 100, 5).by(B).expiry(T0 + 10).cmd()],
            buy(2, 100, 5),
            &[
                "done #1 B expired rem=5",
                "book ask 100 = 0 (0)",
                "accepted #2 bid 100x5",
                "book bid 100 = 5 (1)",
            ],
        )
        .at(T0 + 10),
        case(
            "orders due together expire in (expiry, id) order",
            vec![
                buy(2, 100, 1).expiry(T0 + 5).cmd(),
                buy(1, 99, 1).expiry(T0 + 5).cmd(),
                buy(3, 98, 1).expiry(T0 + 4).cmd(),
            ],
            Command::ExpireDue,
            &[
                "done #3 A expired rem=1",
                "book bid 98 = 0 (0)",
                "done #1 A expired rem=1",
                "book bid 99 = 0 (0)",
                "done #2 A expired rem=1",
                "book bid 100 = 0 (0)",
            ],
        )
        .at(T0 + 6),
        case(
            "an order whose expiry has passed is rejected",
            vec![],
            buy(1, 100, 5).expiry(T0),
            &["rejected AlreadyExpired"],
        ),
    ]);
}

#[test]
fn immediate_or_cancel_and_market() {
    run_table(vec![
        case(
            "IOC takes what it can and drops the rest",
            vec![sell(1, 100, 3).by(B).cmd()],
            buy(2, 100, 5).ioc(),
            &[
                "accepted #2 bid 100x5",
                "fill 1 maker=#1 taker=#2 100x3",
                "done #1 B filled rem=0",
                "book ask 100 = 0 (0)",
                "done #2 A unmatched rem=2",
            ],
        ),
        case(
            "IOC against an empty book",
            vec![],
            buy(1, 100, 5).ioc(),
            &["accepted #1 bid 100x5", "done #1 A unmatched rem=5"],
        ),
        case(
            "a market order stops at its protective bound",
            vec![sell(1, 100, 2).by(B).cmd(), sell(2, 105, 2).by(B).cmd()],
            buy(3, 102, 5).market(),
            &[
                "accepted #3 bid 102x5",
                "fill 1 maker=#1 taker=#3 100x2",
                "done #1 B filled rem=0",
                "book ask 100 = 0 (0)",
                "done #3 A unmatched rem=3",
            ],
        ),
        case(
            "a market sell sweeps bids down to its bound",
            vec![buy(1, 100, 2).by(B).cmd(), buy(2, 99, 2).by(C).cmd()],
            sell(3, 99, 3).market(),
            &[
                "accepted #3 ask 99x3",
                "fill 1 maker=#1 taker=#3 100x2",
                "done #1 B filled rem=0",
                "book bid 100 = 0 (0)",
                "fill 2 maker=#2 taker=#3 99x1",
                "book bid 99 = 1 (1)",
                "done #3 A filled rem=0",
            ],
        ),
    ]);
}

#[test]
fn fill_or_kill() {
    run_table(vec![
        case(
            "FOK fills completely across levels",
            vec![sell(1, 100, 3).by(B).cmd(), sell(2, 101, 3).by(C).cmd()],
            buy(3, 101, 5).fok(),
            &[
                "accepted #3 bid 101x5",
                "fill 1 maker=#1 taker=#3 100x3",
                "done #1 B filled rem=0",
                "book ask 100 = 0 (0)",
                "fill 2 maker=#2 taker=#3 101x2",
                "book ask 101 = 1 (1)",
                "done #3 A filled rem=0",
            ],
        ),
        case(
            "FOK that cannot fill completely is rejected untouched",
            vec![sell(1, 100, 3).by(B).cmd()],
            buy(2, 100, 5).fok(),
            &["rejected FillOrKillUnfillable"],
        ),
        case(
            "FOK counts only liquidity inside its price",
            vec![sell(1, 100, 3).by(B).cmd(), sell(2, 102, 3).by(B).cmd()],
            buy(3, 101, 4).fok(),
            &["rejected FillOrKillUnfillable"],
        ),
        case(
            "FOK blocked by the user's own order (cancel-taker) is rejected",
            vec![sell(1, 100, 3).cmd(), sell(2, 100, 5).by(B).cmd()],
            buy(3, 100, 5).fok(),
            &["rejected FillOrKillUnfillable"],
        ),
    ]);
}

#[test]
fn post_only() {
    run_table(vec![
        case(
            "post-only rests when it does not cross",
            vec![sell(1, 101, 3).by(B).cmd()],
            buy(2, 100, 5).post_only(),
            &["accepted #2 bid 100x5", "book bid 100 = 5 (1)"],
        ),
        case(
            "post-only that would cross is rejected",
            vec![sell(1, 100, 3).by(B).cmd()],
            buy(2, 100, 5).post_only(),
            &["rejected PostOnlyWouldCross"],
        ),
        case(
            "post-only slide moves one tick inside the best opposite price",
            vec![sell(1, 100, 3).by(B).cmd()],
            buy(2, 102, 5).slide(),
            &["accepted #2 bid 99x5", "book bid 99 = 5 (1)"],
        ),
        case(
            "a sell slides above the best bid",
            vec![buy(1, 100, 3).by(B).cmd()],
            sell(2, 90, 5).slide(),
            &["accepted #2 ask 101x5", "book ask 101 = 5 (1)"],
        ),
        case(
            "a slide that would leave the price band is rejected",
            vec![sell(1, 50, 3).by(B).cmd()],
            buy(2, 60, 5).slide(),
            &["rejected PriceOutOfBand"],
        ),
    ]);
}

#[test]
fn validation() {
    let full: Vec<Command> = (1..=64).map(|i| buy(i, 60 + i, 1).by(B).cmd()).collect();
    run_table(vec![
        case(
            "size below the minimum",
            vec![],
            buy(1, 100, 0),
            &["rejected SizeBelowMinimum"],
        ),
        case(
            "size above the maximum",
            vec![],
            buy(1, 100, 1_001),
            &["rejected SizeAboveMaximum"],
        ),
        case(
            "price above the band",
            vec![],
            buy(1, 201, 1),
            &["rejected PriceOutOfBand"],
        ),
        case(
            "price below the band",
            vec![],
            sell(1, 49, 1),
            &["rejected PriceOutOfBand"],
        ),
        case(
            "duplicate order id",
            vec![buy(1, 100, 1).cmd()],
            buy(1, 99, 1),
            &["rejected DuplicateOrderId"],
        ),
        case(
            "duplicate client order id of the same user",
            vec![buy(1, 100, 1).cid(9).cmd()],
            buy(2, 99, 1).cid(9),
            &["rejected DuplicateClientOrderId"],
        ),
        case(
            "another user may use the same client order id",
            vec![buy(1, 100, 1).cid(9).cmd()],
            buy(2, 99, 1).cid(9).by(B),
            &["accepted #2 bid 99x1", "book bid 99 = 1 (1)"],
        ),
        case(
            "a full book rejects orders that could rest",
            full.clone(),
            buy(100, 55, 1),
            &["rejected BookFull"],
        ),
        case(
            "a full book still takes IOC orders",
            full,
            sell(100, 124, 1).ioc(),
            &[
                "accepted #100 ask 124x1",
                "fill 1 maker=#64 taker=#100 124x1",
                "done #64 B filled rem=0",
                "book bid 124 = 0 (0)",
                "done #100 A filled rem=0",
            ],
        ),
    ]);
}

#[test]
fn fills_carry_settlement_terms_and_increasing_ids() {
    let mut engine = Engine::new(config()).unwrap();
    let mut events = Vec::new();
    let now = Timestamp::from_unix_seconds(T0);
    let mut maker = sell(1, 100, 2).by(B).expiry(T0 + 60);
    maker.0.nonce = 77;
    engine.apply(&maker.cmd(), now, &mut events);
    engine.apply(&sell(2, 101, 2).by(C).cmd(), now, &mut events);
    let mut taker = buy(3, 101, 4).expiry(T0 + 30);
    taker.0.nonce = 99;
    events.clear();
    engine.apply(&taker.cmd(), now, &mut events);
    let fills: Vec<_> = events
        .iter()
        .filter_map(|e| {
            if let Event::Fill(f) = e {
                Some(*f)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(fills.len(), 2);
    let f = fills[0];
    assert_eq!(
        (f.fill_id, f.maker_order_id, f.taker_order_id),
        (1, OrderId(1), OrderId(3))
    );
    assert_eq!(
        (f.maker_user, f.taker_user, f.taker_side),
        (B, A, Side::Buy)
    );
    assert_eq!(
        (f.price, f.size, f.maker_remaining, f.taker_remaining),
        (Ticks(100), Lots(2), Lots(0), Lots(2))
    );
    assert_eq!(
        (f.maker_nonce, f.maker_expiry, f.taker_nonce, f.taker_expiry),
        (77, T0 + 60, 99, T0 + 30)
    );
    assert_eq!(fills[1].fill_id, 2);
    assert_eq!(engine.last_fill_id(), 2);
    assert_eq!(engine.last_seq(), events.last().unwrap().seq());
}
