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
use kestrel_router::model::{Command, DoneReason, Event};
use kestrel_router::reject::Reject;
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
    /// `reuse`: the owner's last order nonce again, else a fresh one.
    Order {
        owner: u8,
        market: u32,
        buy: bool,
        price: u64,
        size: u64,
        kind: u8,
        reuse: bool,
    },
    /// The order `back` nonces before the owner's last.
    Cancel {
        owner: u8,
        market: u32,
        back: u64,
    },
    CancelAll {
        owner: u8,
    },
    /// Replaces the order `back` nonces before the owner's last, under a fresh nonce.
    Replace {
        owner: u8,
        market: u32,
        back: u64,
        buy: bool,
        price: u64,
        size: u64,
    },
    Withdraw {
        owner: u8,
        asset: u8,
        amount: u64,
        nonce: u64,
    },
    /// Raises the floor to `back` nonces before the owner's last.
    Floor {
        owner: u8,
        back: u64,
    },
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    let o = 0..OWNERS;
    prop_oneof![
        2 => (o.clone(), 0u8..3, 1u64..6_000).prop_map(|(owner, asset, amount)| Op::Deposit { owner, asset, amount }),
        12 => (o.clone(), 0u32..2, any::<bool>(), 95u64..106, 1u64..30, 0u8..6, proptest::bool::weighted(0.1))
            .prop_map(|(owner, market, buy, price, size, kind, reuse)| Op::Order { owner, market, buy, price, size, kind, reuse }),
        5 => (o.clone(), 0u32..2, 0u64..4).prop_map(|(owner, market, back)| Op::Cancel { owner, market, back }),
        1 => o.clone().prop_map(|owner| Op::CancelAll { owner }),
        1 => (o.clone(), 0u32..2, 0u64..4, any::<bool>(), 95u64..106, 1u64..30)
            .prop_map(|(owner, market, back, buy, price, size)| Op::Replace { owner, market, back, buy, price, size }),
        1 => (o.clone(), 0u8..3, 1u64..20_000, 1u64..1_000).prop_map(|(owner, asset, amount, nonce)| Op::Withdraw { owner, asset, amount, nonce }),
        1 => (o, 0u64..6).prop_map(|(owner, back)| Op::Floor { owner, back }),
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

/// Turns ops into commands, keeping each owner's last order nonce.
#[derive(Default)]
struct Nonces([u64; OWNERS as usize]);

impl Nonces {
    fn last(&self, o: u8) -> u64 {
        self.0[usize::from(o)]
    }

    fn fresh(&mut self, o: u8) -> u64 {
        self.0[usize::from(o)] += 1;
        self.last(o)
    }

    fn command(&mut self, op: Op, i: usize) -> Command {
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
                reuse,
            } => {
                let nonce = if reuse {
                    self.last(owner)
                } else {
                    self.fresh(owner)
                };
                Command::Place {
                    order: order(owner, market, buy, price, size, kind, nonce),
                    signature: [0; 64],
                }
            }
            Op::Cancel {
                owner: o,
                market,
                back,
            } => Command::Cancel(Cancel {
                exchange: exchange(),
                owner: owner(o),
                market_index: market,
                order_nonce: self.last(o).saturating_sub(back),
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
                back,
                buy,
                price,
                size,
            } => Command::Replace {
                cancel: Cancel {
                    exchange: exchange(),
                    owner: owner(o),
                    market_index: market,
                    order_nonce: self.last(o).saturating_sub(back),
                    expiry: 0,
                },
                order: order(o, market, buy, price, size, 0, self.fresh(o)),
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
            Op::Floor { owner: o, back } => Command::NonceFloorObserved {
                owner: owner(o).to_bytes(),
                floor: self.last(o).saturating_sub(back),
            },
            Op::Tick => Command::Tick,
        }
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

fn rejected(events: &[Event]) -> Option<Reject> {
    events.iter().find_map(|e| match e {
        Event::Rejected { reason, .. } => Some(*reason),
        _ => None,
    })
}

fn deposit(owner: u8, asset: u8, amount: u64) -> Op {
    Op::Deposit {
        owner,
        asset,
        amount,
    }
}

fn limit(owner: u8, market: u32, buy: bool, size: u64, reuse: bool) -> Op {
    Op::Order {
        owner,
        market,
        buy,
        price: 100,
        size,
        kind: 0,
        reuse,
    }
}

/// Commands from ops; `true` ends a batch after the op.
fn commands(ops: Vec<(Op, bool)>) -> Vec<(Command, bool)> {
    let mut nonces = Nonces::default();
    ops.into_iter()
        .enumerate()
        .map(|(i, (op, end))| (nonces.command(op, i), end))
        .collect()
}

/// Runs `commands` pipelined until an engine thread has matched at least one batch (whether
/// it starts a batch before the sequencer is back for it is up to the scheduler: the first
/// try, on a machine that is not saturated), checking every run against the serial one.
fn pipelined_on_threads(commands: &[(Command, bool)]) -> Run {
    let (want, want_hash) = serial(commands);
    for _ in 0..20 {
        let run = pipelined(commands, Duration::from_millis(10));
        assert_eq!(run.events, want);
        assert_eq!(run.hash, want_hash);
        if run.threaded > 0 {
            return run;
        }
    }
    panic!("no engine thread took a batch in 20 runs");
}

/// An order its owner can only pay for with a fill earlier in the same batch is not matched
/// ahead of that fill: it waits, and is accepted as a serial run accepts it.
#[test]
fn an_order_paid_by_an_earlier_fill_in_the_batch_waits_for_it() {
    let hold = rules().markets[0].buy_hold(100, 5).unwrap();
    let commands = commands(vec![
        (deposit(0, 1, hold), false),
        (deposit(0, 2, 500), false),
        (deposit(1, 0, 10_000), false),
        (deposit(1, 1, 1_000_000), true),
        // One batch: A sells base 2 to B in market 1 (A's quote grows by the fill) and buys
        // in market 0 with all the quote it had; its next buy needs the fill's proceeds.
        (limit(0, 1, false, 5, false), false),
        (limit(1, 1, true, 5, false), false),
        (limit(0, 0, true, 5, false), false),
        (limit(0, 0, true, 4, false), false),
        (limit(1, 0, false, 1, false), true),
    ]);
    let run = pipelined_on_threads(&commands);
    assert!(accepted(&run.events[7]), "paid by the fill: accepted");
    assert_eq!(
        run.admitted, 4,
        "every order but the one waiting for the fill went ahead"
    );
    assert_eq!(
        run.threaded, 1,
        "the order after it matched on its engine thread"
    );
}

/// A nonce used twice in one batch: the second use waits for the first and is refused at its
/// turn, as serially.
#[test]
fn a_nonce_reused_in_the_batch_is_refused_at_its_turn() {
    let commands = commands(vec![
        (deposit(0, 0, 1_000), true),
        (limit(0, 0, false, 1, false), false),
        (limit(0, 0, false, 2, true), false),
    ]);
    let run = pipelined(&commands, Duration::ZERO);
    let (want, _) = serial(&commands);
    assert_eq!(run.events, want);
    assert!(accepted(&run.events[1]));
    assert_eq!(rejected(&run.events[2]), Some(Reject::NonceReused));
    assert_eq!((run.admitted, run.threaded), (1, 0));
}

/// Cancels go to the engine threads too. In one batch: a cancel of an order a taker ahead of
/// it fills completely (the engine thread finds it gone and leaves it; refused at its turn as
/// unknown, as serially, and the book's sequence is untouched), and a cancel of an order a
/// taker ahead of it fills in part (the rest is cancelled).
#[test]
fn a_cancel_behind_a_fill_of_its_order_is_refused_or_cancels_the_rest() {
    let commands = commands(vec![
        (deposit(0, 0, 10_000), false),
        (deposit(1, 1, 1_000_000), false),
        (limit(0, 0, false, 3, false), false),
        (limit(0, 0, false, 5, false), true),
        // One batch: B buys 3 (fills A's first sell), then A cancels it; B buys 2 more (half
        // of A's second sell), then A cancels that one.
        (limit(1, 0, true, 3, false), false),
        (
            Op::Cancel {
                owner: 0,
                market: 0,
                back: 1,
            },
            false,
        ),
        (limit(1, 0, true, 2, false), false),
        (
            Op::Cancel {
                owner: 0,
                market: 0,
                back: 0,
            },
            true,
        ),
        (limit(0, 0, false, 1, false), true),
    ]);
    let run = pipelined_on_threads(&commands);
    assert_eq!(rejected(&run.events[5]), Some(Reject::UnknownOrder));
    assert!(run.events[7].iter().any(|e| matches!(
        e,
        Event::OrderDone {
            reason: DoneReason::Cancelled,
            remaining_lots: 3,
            ..
        }
    )));
    assert_eq!(run.admitted, 7, "every order and cancel went ahead");
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
        let ops: Vec<(Op, bool)> = start.map(|op| (op, false)).chain(ops).collect();
        let commands = commands(ops);
        let run = pipelined(&commands, Duration::from_micros(300));
        let (want, want_hash) = serial(&commands);
        prop_assert_eq!(run.events.len(), want.len());
        for (i, (got, want)) in run.events.iter().zip(&want).enumerate() {
            prop_assert_eq!(got, want, "command {}", i + 1);
        }
        prop_assert_eq!(run.hash, want_hash);
    }
}
