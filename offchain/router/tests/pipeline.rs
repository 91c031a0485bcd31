//! One engine thread per market gives exactly the serial result: random command streams, cut
//! into random sequencer batches and run through the [`Pipeline`], yield the same events per
//! command and the same state as [`State::apply`] one command at a time (which is what
//! recovery replays). The streams are built to make early admission wrong if it were not
//! conservative: small balances that fills replenish, an owner trading in both markets on one
//! quote asset, nonces reused within a batch, a low open-order limit, cancels and deposits
//! between orders.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use anchor_lang::prelude::Pubkey;
use kestrel::encoding::{
    Cancel, CancelAll, CancelSide, Order, OrderType, SelfTrade, Side, WithdrawRequest,
};
use kestrel_router::market::MarketSpec;
use kestrel_router::model::{Command, Event};
use kestrel_router::state::{Pipeline, Rules, State};
use proptest::prelude::*;
use std::time::Duration;

const NOW_MS: u64 = 1_800_000_000_000;
const OWNERS: u8 = 4;

fn exchange() -> Pubkey {
    Pubkey::new_from_array([9; 32])
}

fn mint(asset: u8) -> Pubkey {
    Pubkey::new_from_array([asset + 1; 32])
}

/// Two markets (base 0 and base 2) quoted in asset 1.
fn rules() -> Rules {
    let market = |index, base_asset| MarketSpec {
        index,
        base_asset,
        quote_asset: 1,
        base_lot_size: 100,
        tick_size: 1,
        min_size_lots: 1,
        max_size_lots: 1_000,
        min_price_ticks: 1,
        max_price_ticks: 1_000,
        maker_fee_bps: 20,
        taker_fee_bps: 50,
        max_orders: 64,
    };
    Rules {
        exchange: exchange(),
        assets: (0..3).map(mint).collect(),
        markets: vec![market(0, 0), market(1, 2)],
        max_expiry_horizon_secs: 86_400,
        expiry_margin_secs: 0,
        max_open_orders: 3,
    }
}

fn owner(o: u8) -> Pubkey {
    Pubkey::new_from_array([o + 40; 32])
}

#[derive(Debug, Clone)]
enum Op {
    Deposit {
        owner: u8,
        asset: u8,
        amount: u64,
    },
    Order {
        owner: u8,
        market: u32,
        buy: bool,
        price: u64,
        size: u64,
        kind: u8,
        nonce: u64,
    },
    Cancel {
        owner: u8,
        market: u32,
        nonce: u64,
    },
    CancelAll {
        owner: u8,
    },
    Replace {
        owner: u8,
        market: u32,
        old: u64,
        buy: bool,
        price: u64,
        size: u64,
        nonce: u64,
    },
    Withdraw {
        owner: u8,
        asset: u8,
        amount: u64,
        nonce: u64,
    },
    Floor {
        owner: u8,
        floor: u64,
    },
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    let o = 0..OWNERS;
    prop_oneof![
        2 => (o.clone(), 0u8..3, 1u64..6_000).prop_map(|(owner, asset, amount)| Op::Deposit { owner, asset, amount }),
        12 => (o.clone(), 0u32..2, any::<bool>(), 95u64..106, 1u64..30, 0u8..6, 1u64..24)
            .prop_map(|(owner, market, buy, price, size, kind, nonce)| Op::Order { owner, market, buy, price, size, kind, nonce }),
        2 => (o.clone(), 0u32..2, 1u64..24).prop_map(|(owner, market, nonce)| Op::Cancel { owner, market, nonce }),
        1 => o.clone().prop_map(|owner| Op::CancelAll { owner }),
        1 => (o.clone(), 0u32..2, 1u64..24, any::<bool>(), 95u64..106, 1u64..30, 24u64..48)
            .prop_map(|(owner, market, old, buy, price, size, nonce)| Op::Replace { owner, market, old, buy, price, size, nonce }),
        1 => (o.clone(), 0u8..3, 1u64..20_000, 1u64..1_000).prop_map(|(owner, asset, amount, nonce)| Op::Withdraw { owner, asset, amount, nonce }),
        1 => (o, 0u64..8).prop_map(|(owner, floor)| Op::Floor { owner, floor }),
        1 => Just(Op::Tick),
    ]
}

fn order(
    owner_index: u8,
    market: u32,
    buy: bool,
    price: u64,
    size: u64,
    kind: u8,
    nonce: u64,
) -> Order {
    Order {
        exchange: exchange(),
        owner: owner(owner_index),
        market_index: market,
        side: if buy { Side::Buy } else { Side::Sell },
        order_type: OrderType::from_u8(kind).unwrap(),
        self_trade: SelfTrade::CancelTaker,
        price_ticks: price,
        size_lots: size,
        nonce,
        expiry: 0,
        client_order_id: nonce,
    }
}

fn command(op: Op, i: usize) -> Command {
    match op {
        Op::Deposit {
            owner: o,
            asset,
            amount,
        } => Command::DepositObserved {
            owner: owner(o).to_bytes(),
            asset,
            amount,
            tx: [(i % 251) as u8; 64],
            ix_index: (i / 251) as u16,
        },
        Op::Order {
            owner,
            market,
            buy,
            price,
            size,
            kind,
            nonce,
        } => Command::Place {
            order: order(owner, market, buy, price, size, kind, nonce),
            signature: [0; 64],
        },
        Op::Cancel {
            owner: o,
            market,
            nonce,
        } => Command::Cancel(Cancel {
            exchange: exchange(),
            owner: owner(o),
            market_index: market,
            order_nonce: nonce,
            expiry: 0,
        }),
        Op::CancelAll { owner: o } => Command::CancelAll(CancelAll {
            exchange: exchange(),
            owner: owner(o),
            market_index: kestrel::encoding::ALL_MARKETS,
            side: CancelSide::Both,
            up_to_nonce: u64::MAX,
            expiry: 0,
        }),
        Op::Replace {
            owner: o,
            market,
            old,
            buy,
            price,
            size,
            nonce,
        } => Command::Replace {
            cancel: Cancel {
                exchange: exchange(),
                owner: owner(o),
                market_index: market,
                order_nonce: old,
                expiry: 0,
            },
            order: order(o, market, buy, price, size, 0, nonce),
            signature: [0; 64],
        },
        Op::Withdraw {
            owner: o,
            asset,
            amount,
            nonce,
        } => Command::Withdraw(WithdrawRequest {
            exchange: exchange(),
            owner: owner(o),
            mint: mint(asset),
            amount,
            nonce,
            expiry: 0,
        }),
        Op::Floor { owner: o, floor } => Command::NonceFloorObserved {
            owner: owner(o).to_bytes(),
            floor,
        },
        Op::Tick => Command::Tick,
    }
}

struct Run {
    events: Vec<Vec<Event>>,
    hash: u64,
    admitted: u64,
    threaded: u64,
}

/// Runs `commands` through a pipeline, ending a batch after each command flagged `true` and
/// after the last (dispatch, then finish, as the sequencer does, which syncs the journal in
/// between: `pause` stands for that).
fn pipelined(commands: &[(Command, bool)], pause: Duration) -> Run {
    let mut state = State::new(rules()).unwrap();
    let mut pipeline = Pipeline::start(&state).unwrap();
    let mut events: Vec<Vec<Event>> = Vec::new();
    for (i, (command, end_batch)) in commands.iter().enumerate() {
        let seq = i as u64 + 1;
        pipeline
            .submit(&mut state, seq, NOW_MS + seq, command)
            .unwrap();
        if *end_batch || i + 1 == commands.len() {
            pipeline.dispatch();
            std::thread::sleep(pause);
            for (s, e) in pipeline.finish(&mut state).unwrap() {
                assert_eq!(
                    s,
                    events.len() as u64 + 1,
                    "events come back in sequence order"
                );
                events.push(e);
            }
            assert_eq!(
                events.len(),
                i + 1,
                "a finished batch leaves nothing behind"
            );
        }
    }
    Run {
        events,
        hash: state.state_hash(),
        admitted: pipeline.admitted(),
        threaded: pipeline.threaded(),
    }
}

fn serial(commands: &[(Command, bool)]) -> (Vec<Vec<Event>>, u64) {
    let mut state = State::new(rules()).unwrap();
    let events = commands
        .iter()
        .enumerate()
        .map(|(i, (command, _))| {
            let seq = i as u64 + 1;
            state.apply(seq, NOW_MS + seq, command)
        })
        .collect();
    (events, state.state_hash())
}

fn accepted(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::OrderAccepted { .. }))
}

/// An order its owner can only pay for with a fill earlier in the same batch is not matched
/// ahead of that fill: it waits, and is accepted as a serial run accepts it.
#[test]
fn an_order_paid_by_an_earlier_fill_in_the_batch_waits_for_it() {
    let spec = rules().markets[0];
    let hold = spec.buy_hold(100, 5).unwrap();
    let deposit = |o, asset, amount, i| {
        (
            command(
                Op::Deposit {
                    owner: o,
                    asset,
                    amount,
                },
                i,
            ),
            false,
        )
    };
    let place = |o, market, buy, size, nonce| {
        let op = Op::Order {
            owner: o,
            market,
            buy,
            price: 100,
            size,
            kind: 0,
            nonce,
        };
        (command(op, 0), false)
    };
    let mut commands = vec![
        deposit(0, 1, hold, 1),
        deposit(0, 2, 500, 2),
        deposit(1, 0, 10_000, 3),
        (deposit(1, 1, 1_000_000, 4).0, true),
        // One batch: A sells base 2 to B in market 1 (A's quote grows by the fill) and buys
        // in market 0 with all the quote it had; its next buy needs the fill's proceeds.
        place(0, 1, false, 5, 1),
        place(1, 1, true, 5, 1),
        place(0, 0, true, 5, 2),
        place(0, 0, true, 4, 3),
        (place(1, 0, false, 1, 2).0, true),
    ];
    commands.push((command(Op::Tick, 0), true));
    let (want, want_hash) = serial(&commands);
    // Whether an engine thread starts a batch before the sequencer is back for it is up to
    // the scheduler: run until one did (the first try, on a machine that is not saturated).
    let mut threaded = 0;
    for _ in 0..20 {
        let run = pipelined(&commands, Duration::from_millis(10));
        assert_eq!(run.events, want);
        assert_eq!(run.hash, want_hash);
        assert!(accepted(&run.events[7]), "paid by the fill: accepted");
        assert_eq!(
            run.admitted, 4,
            "every order but the one waiting for the fill went ahead"
        );
        threaded = run.threaded;
        if threaded > 0 {
            break;
        }
    }
    assert_eq!(
        threaded, 1,
        "the order after it matched on its engine thread"
    );
}

/// A nonce used twice in one batch: the second use waits for the first and is refused at its
/// turn, as serially.
#[test]
fn a_nonce_reused_in_the_batch_is_refused_at_its_turn() {
    let deposit = (
        command(
            Op::Deposit {
                owner: 0,
                asset: 0,
                amount: 1_000,
            },
            1,
        ),
        true,
    );
    let sell = |size| {
        let op = Op::Order {
            owner: 0,
            market: 0,
            buy: false,
            price: 100,
            size,
            kind: 0,
            nonce: 7,
        };
        (command(op, 0), false)
    };
    let commands = vec![deposit, sell(1), sell(2)];
    let run = pipelined(&commands, Duration::ZERO);
    let (want, _) = serial(&commands);
    assert_eq!(run.events, want);
    assert!(accepted(&run.events[1]));
    assert!(run.events[2].iter().any(|e| matches!(
        e,
        Event::Rejected {
            reason: kestrel_router::reject::Reject::NonceReused,
            ..
        }
    )));
    assert_eq!((run.admitted, run.threaded), (1, 0));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, max_shrink_iters: 500, ..ProptestConfig::default() })]

    /// Any stream, cut into any batches: the pipeline's events and state are the serial ones,
    /// whether an engine thread or the sequencer matched a batch (a short pause after each
    /// hand-over lets the engine threads take some).
    #[test]
    fn pipelined_matching_gives_the_serial_events_and_state(
        ops in proptest::collection::vec((op(), proptest::bool::weighted(0.1)), 1..200)
    ) {
        // Every owner starts with a few orders' worth of each asset.
        let start = (0..OWNERS).flat_map(|owner| (0..3).map(move |asset| Op::Deposit { owner, asset, amount: 3_000 }));
        let commands: Vec<(Command, bool)> = start
            .map(|op| (op, false))
            .chain(ops)
            .enumerate()
            .map(|(i, (op, end))| (command(op, i), end))
            .collect();
        let run = pipelined(&commands, Duration::from_micros(300));
        let (want, want_hash) = serial(&commands);
        prop_assert_eq!(run.events.len(), want.len());
        for (i, (got, want)) in run.events.iter().zip(&want).enumerate() {
            prop_assert_eq!(got, want, "command {}", i + 1);
        }
        prop_assert_eq!(run.hash, want_hash);
    }
}
