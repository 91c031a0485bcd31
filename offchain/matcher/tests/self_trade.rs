//! Golden tests: the four self-trade prevention modes.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use common::*;
use kestrel_matcher::SelfTradeMode::*;

#[test]
fn self_trade_prevention() {
    // A rests #1 in front of B's #2 at the same price; A then buys into them.
    let own_first = || vec![sell(1, 100, 3).cmd(), sell(2, 100, 3).by(B).cmd()];
    run_table(vec![
        case(
            "cancel taker: the taker's remainder goes, the resting order stays",
            own_first(),
            buy(3, 100, 4).stp(CancelTaker),
            &["accepted #3 bid 100x4", "done #3 A self-trade rem=4"],
        ),
        case(
            "cancel taker after trading with others at the same level",
            vec![sell(1, 100, 3).by(B).cmd(), sell(2, 100, 3).cmd()],
            buy(3, 100, 4).stp(CancelTaker),
            &[
                "accepted #3 bid 100x4",
                "fill 1 maker=#1 taker=#3 100x3",
                "done #1 B filled rem=0",
                "book ask 100 = 3 (1)",
                "done #3 A self-trade rem=1",
            ],
        ),
        case(
            "cancel maker: the resting order goes and matching continues",
            own_first(),
            buy(3, 100, 4).stp(CancelMaker),
            &[
                "accepted #3 bid 100x4",
                "done #1 A self-trade rem=3",
                "fill 1 maker=#2 taker=#3 100x3",
                "done #2 B filled rem=0",
                "book ask 100 = 0 (0)",
                "book bid 100 = 1 (1)",
            ],
        ),
        case(
            "cancel both: resting order and taker remainder go",
            own_first(),
            buy(3, 100, 4).stp(CancelBoth),
            &[
                "accepted #3 bid 100x4",
                "done #1 A self-trade rem=3",
                "book ask 100 = 3 (1)",
                "done #3 A self-trade rem=4",
            ],
        ),
        case(
            "decrement and cancel: a larger maker is reduced, the taker ends",
            vec![sell(1, 100, 5).cmd(), sell(2, 100, 3).by(B).cmd()],
            buy(3, 100, 4).stp(DecrementAndCancel),
            &[
                "accepted #3 bid 100x4",
                "decrement maker=#1 taker=#3 x4",
                "book ask 100 = 4 (2)",
                "done #3 A self-trade rem=0",
            ],
        ),
        case(
            "decrement and cancel: a smaller maker ends, the taker trades on",
            own_first(),
            buy(3, 100, 4).stp(DecrementAndCancel),
            &[
                "accepted #3 bid 100x4",
                "decrement maker=#1 taker=#3 x3",
                "done #1 A self-trade rem=0",
                "fill 1 maker=#2 taker=#3 100x1",
                "book ask 100 = 2 (1)",
                "done #3 A filled rem=0",
            ],
        ),
        case(
            "fill-or-kill with cancel maker skips the user's own orders",
            vec![sell(1, 100, 3).cmd(), sell(2, 100, 5).by(B).cmd()],
            buy(3, 100, 5).fok().stp(CancelMaker),
            &[
                "accepted #3 bid 100x5",
                "done #1 A self-trade rem=3",
                "fill 1 maker=#2 taker=#3 100x5",
                "done #2 B filled rem=0",
                "book ask 100 = 0 (0)",
                "done #3 A filled rem=0",
            ],
        ),
        case(
            "orders of different users always trade",
            vec![sell(1, 100, 3).by(B).cmd()],
            buy(2, 100, 3).by(C).stp(CancelBoth),
            &[
                "accepted #2 bid 100x3",
                "fill 1 maker=#1 taker=#2 100x3",
                "done #1 B filled rem=0",
                "book ask 100 = 0 (0)",
                "done #2 C filled rem=0",
            ],
        ),
    ]);
}
