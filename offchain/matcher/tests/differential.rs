//! Differential property test: random command streams through the engine and through the
//! naive reference book must give identical events, and after every command the book must be
//! uncrossed, FIFO within each level, and every order's quantity accounted for.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use std::collections::HashMap;

use common::reference::RefBook;
use kestrel_matcher::{
    CancelTarget, ClientOrderId, Command, Engine, Event, Lots, MarketConfig, OrderId, OrderType,
    PlaceOrder, ReplaceOrder, SelfTradeMode, Side, Ticks, Timestamp, UserId,
};
use proptest::prelude::*;

/// A narrow band and a small book: crosses, self-trades and a full book are frequent.
fn config() -> MarketConfig {
    MarketConfig {
        market_id: 1,
        tick_size: 1,
        lot_size: 1,
        min_size: Lots(1),
        max_size: Lots(10),
        min_price: Ticks(90),
        max_price: Ticks(110),
        max_orders: 12,
    }
}

/// An abstract operation; ids and times are resolved against the stream position.
#[derive(Debug, Clone)]
enum Op {
    Place {
        user: u8,
        side: bool,
        price: u64,
        size: u64,
        kind: u8,
        stp: u8,
        expiry: u8,
        cid: Option<u8>,
    },
    Cancel {
        user: u8,
        back: u64,
    },
    CancelCid {
        user: u8,
        cid: u8,
    },
    CancelAll {
        user: u8,
        side: u8,
    },
    Replace {
        user: u8,
        back: u64,
        price: Option<u64>,
        size: u64,
        expiry: u8,
    },
    Tick,
}

/// A wide band and a deeper book: many levels are created, emptied, reused and compacted.
fn wide_config() -> MarketConfig {
    MarketConfig {
        min_price: Ticks(20),
        max_price: Ticks(180),
        max_orders: 96,
        ..config()
    }
}

fn op() -> impl Strategy<Value = (Op, u8)> {
    ops(95, 105, 88, 112, 3)
}

fn wide_op() -> impl Strategy<Value = (Op, u8)> {
    ops(30, 170, 15, 185, 40)
}

fn ops(lo: u64, hi: u64, wide_lo: u64, wide_hi: u64, users: u8) -> impl Strategy<Value = (Op, u8)> {
    let price = prop_oneof![10 => lo..=hi, 1 => wide_lo..=wide_hi];
    let size = prop_oneof![10 => 1u64..=10, 1 => 0u64..=11];
    let kind = prop_oneof![6 => Just(0u8), 4 => 1u8..6];
    let place = (
        0u8..users,
        any::<bool>(),
        price.clone(),
        size.clone(),
        kind,
        0u8..4,
        0u8..12,
        proptest::option::of(0u8..4),
    )
        .prop_map(
            |(user, side, price, size, kind, stp, expiry, cid)| Op::Place {
                user,
                side,
                price,
                size,
                kind,
                stp,
                expiry,
                cid,
            },
        );
    let op = prop_oneof![
        8 => place,
        2 => (0u8..users, 1u64..8).prop_map(|(user, back)| Op::Cancel { user, back }),
        1 => (0u8..users, 0u8..4).prop_map(|(user, cid)| Op::CancelCid { user, cid }),
        1 => (0u8..users, 0u8..3).prop_map(|(user, side)| Op::CancelAll { user, side }),
        3 => (0u8..users, 1u64..8, proptest::option::of(price), size, 0u8..12)
            .prop_map(|(user, back, price, size, expiry)| Op::Replace { user, back, price, size, expiry }),
        1 => Just(Op::Tick),
    ];
    (op, 0u8..3)
}

fn user(u: u8) -> UserId {
    UserId([u + 1; 32])
}

/// Expiry choices: mostly none, sometimes soon, sometimes already past.
fn expiry(choice: u8, now: u64) -> u64 {
    match choice {
        0..=7 => 0,
        8 => now,
        _ => now + u64::from(choice) - 7,
    }
}

/// Turns abstract ops into concrete commands with their timestamps (seconds).
fn commands(ops: &[(Op, u8)]) -> Vec<(Command, u64)> {
    let mut now = 1_000u64;
    let mut out = Vec::new();
    let mut placed_price = HashMap::new();
    for (i, (op, dt)) in ops.iter().enumerate() {
        now += u64::from(*dt);
        let id = i as u64 + 1;
        let cmd = match op {
            Op::Place {
                user: u,
                side,
                price,
                size,
                kind,
                stp,
                expiry: e,
                cid,
            } => {
                placed_price.insert(id, *price);
                Command::Place(PlaceOrder {
                    order_id: OrderId(id),
                    user: user(*u),
                    client_order_id: cid.map(|c| ClientOrderId(u64::from(c))),
                    side: if *side { Side::Buy } else { Side::Sell },
                    price: Ticks(*price),
                    size: Lots(*size),
                    order_type: [
                        OrderType::Limit,
                        OrderType::ImmediateOrCancel,
                        OrderType::FillOrKill,
                        OrderType::PostOnly,
                        OrderType::PostOnlySlide,
                        OrderType::Market,
                    ][*kind as usize],
                    self_trade: [
                        SelfTradeMode::CancelTaker,
                        SelfTradeMode::CancelMaker,
                        SelfTradeMode::CancelBoth,
                        SelfTradeMode::DecrementAndCancel,
                    ][*stp as usize],
                    nonce: id * 7,
                    expiry: expiry(*e, now),
                })
            }
            Op::Cancel { user: u, back } => Command::Cancel {
                user: user(*u),
                target: CancelTarget::OrderId(OrderId(id.saturating_sub(*back))),
            },
            Op::CancelCid { user: u, cid } => Command::Cancel {
                user: user(*u),
                target: CancelTarget::ClientOrderId(ClientOrderId(u64::from(*cid))),
            },
            Op::CancelAll { user: u, side } => Command::CancelAll {
                user: user(*u),
                side: [None, Some(Side::Buy), Some(Side::Sell)][*side as usize],
            },
            Op::Replace {
                user: u,
                back,
                price,
                size,
                expiry: e,
            } => {
                let target = id.saturating_sub(*back);
                let keep = placed_price.get(&target).copied().unwrap_or(100);
                Command::Replace(ReplaceOrder {
                    user: user(*u),
                    order_id: OrderId(target),
                    price: Ticks(price.unwrap_or(keep)),
                    size: Lots(*size),
                    nonce: id * 11,
                    expiry: expiry(*e, now),
                })
            }
            Op::Tick => Command::ExpireDue,
        };
        out.push((cmd, now));
    }
    out
}

/// Follows every order's open quantity through the events.
#[derive(Default)]
struct Ledger {
    open: HashMap<OrderId, u64>,
}

impl Ledger {
    fn apply(&mut self, e: &Event) {
        match e {
            Event::Accepted(a) => {
                assert!(
                    self.open.insert(a.order_id, a.size.0).is_none(),
                    "accepted twice"
                );
            }
            Event::Fill(f) => {
                assert!(f.size.0 > 0);
                let m = self.open.get_mut(&f.maker_order_id).unwrap();
                *m -= f.size.0;
                assert_eq!(*m, f.maker_remaining.0);
                let t = self.open.get_mut(&f.taker_order_id).unwrap();
                *t -= f.size.0;
                assert_eq!(*t, f.taker_remaining.0);
            }
            Event::SelfTradeDecrement(d) => {
                *self.open.get_mut(&d.maker_order_id).unwrap() -= d.size.0;
                *self.open.get_mut(&d.taker_order_id).unwrap() -= d.size.0;
            }
            Event::Replaced(r) => {
                *self.open.get_mut(&r.order_id).unwrap() = r.size.0;
            }
            Event::Done(d) => {
                assert_eq!(
                    self.open.remove(&d.order_id),
                    Some(d.remaining.0),
                    "done with wrong remainder"
                );
            }
            Event::Rejected(_) | Event::BookDelta(_) => {}
        }
    }
}

fn check_book(engine: &Engine, ledger: &Ledger) {
    if let (Some(bid), Some(ask)) = (engine.best(Side::Buy), engine.best(Side::Sell)) {
        assert!(bid.price < ask.price, "crossed book {bid:?} {ask:?}");
    }
    let mut resting = 0usize;
    for side in [Side::Buy, Side::Sell] {
        let levels: Vec<_> = engine.levels(side).collect();
        for pair in levels.windows(2) {
            match side {
                Side::Buy => assert!(pair[0].price > pair[1].price),
                Side::Sell => assert!(pair[0].price < pair[1].price),
            }
        }
        for level in levels {
            let orders: Vec<_> = engine.orders_at(side, level.price).collect();
            assert!(!orders.is_empty());
            assert_eq!(orders.len(), level.orders as usize);
            assert_eq!(
                orders.iter().map(|o| o.remaining.0).sum::<u64>(),
                level.size.0
            );
            for pair in orders.windows(2) {
                assert!(pair[0].priority < pair[1].priority, "FIFO broken");
            }
            for o in &orders {
                assert!(o.remaining.0 > 0);
                assert_eq!(
                    ledger.open.get(&o.order_id),
                    Some(&o.remaining.0),
                    "quantity not conserved"
                );
            }
            resting += orders.len();
        }
    }
    assert_eq!(resting, engine.resting_orders() as usize);
    assert_eq!(
        ledger.open.len(),
        resting,
        "an order neither rests nor is done"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]

    #[test]
    fn engine_matches_reference(ops in proptest::collection::vec(op(), 1..250), split in 0usize..250) {
        differential(config(), &ops, split)?;
    }

    #[test]
    fn engine_matches_reference_on_a_wide_book(ops in proptest::collection::vec(wide_op(), 100..600), split in 0usize..600) {
        differential(wide_config(), &ops, split)?;
    }
}

fn differential(config: MarketConfig, ops: &[(Op, u8)], split: usize) -> Result<(), TestCaseError> {
    let cmds = commands(ops);
    let mut engine = Engine::new(config).unwrap();
    let mut reference = RefBook::new(config);
    let mut ledger = Ledger::default();
    let mut events = Vec::new();
    let mut restored: Option<Engine> = None;
    for (i, (cmd, now)) in cmds.iter().enumerate() {
        if i == split {
            let mut snap = Vec::new();
            engine.encode_snapshot(&mut snap);
            let copy = Engine::decode_snapshot(&snap).unwrap();
            prop_assert_eq!(copy.state_hash(), engine.state_hash());
            restored = Some(copy);
        }
        let now = Timestamp::from_unix_seconds(*now);
        let first = engine.last_seq() + 1;
        events.clear();
        engine.apply(cmd, now, &mut events);
        let expected = reference.apply(cmd, now);
        prop_assert_eq!(&events, &expected, "command {} {:?}", i, cmd);
        for (k, e) in events.iter().enumerate() {
            prop_assert_eq!(e.seq(), first + k as u64);
            ledger.apply(e);
        }
        check_book(&engine, &ledger);
        if let Some(copy) = restored.as_mut() {
            let mut again = Vec::new();
            copy.apply(cmd, now, &mut again);
            prop_assert_eq!(&again, &events, "restored snapshot diverged");
        }
    }
    if let Some(copy) = restored {
        prop_assert_eq!(copy.state_hash(), engine.state_hash());
    }
    prop_assert_eq!(engine.resting_orders() as usize, reference.len());
    Ok(())
}
