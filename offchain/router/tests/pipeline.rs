//! One engine thread per market gives exactly the serial result: random command streams, cut
//! into random sequencer batches and run through the [`Pipeline`], yield the same events per
//! command and the same state as [`State::apply`] one command at a time (which is what
//! recovery replays). The streams are built to make early admission wrong if it were not
//! conservative: small balances that fills replenish, an owner trading in both markets on one
//! quote asset, nonces reused within a batch (after an order refused for its price, too), a
//! low open-order limit, cancels, replacements and cancel-alls of orders placed in the same
//! batch, orders that expire between commands, withdrawals and deposits between orders.
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
use kestrel_router::model::{Command, DoneReason, Event, SettlementStatus};
use kestrel_router::reject::Reject;
use kestrel_router::state::{Pipeline, Rules, State};
use proptest::prelude::*;
use std::time::Duration;

const NOW_MS: u64 = 1_800_000_000_000;
/// Milliseconds between two commands.
const STEP_MS: u64 = 3;
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
    /// `reuse`: the owner's last order nonce again, else a fresh one; `expires`: its signed
    /// expiry is the next whole second.
    Order {
        owner: u8,
        market: u32,
        buy: bool,
        price: u64,
        size: u64,
        kind: u8,
        reuse: bool,
        expires: bool,
    },
    /// The order `back` nonces before the owner's last.
    Cancel {
        owner: u8,
        market: u32,
        back: u64,
    },
    /// `market` (or all), `side` (0 both, 1 buys, 2 sells), nonces below the owner's last
    /// less `back`.
    CancelAll {
        owner: u8,
        market: Option<u32>,
        side: u8,
        back: u64,
    },
    /// Replaces the order `back` nonces before the owner's last, under a fresh nonce, keeping
    /// its fixed terms (side, type, client id) unless `mismatch`.
    Replace {
        owner: u8,
        back: u64,
        price: u64,
        size: u64,
        expires: bool,
        mismatch: bool,
    },
    Withdraw {
        owner: u8,
        asset: u8,
        amount: u64,
        nonce: u64,
    },
    /// The outcome of the withdrawal requested `back` commands ago (if it was one).
    WithdrawalFinished {
        back: u64,
        confirmed: bool,
    },
    Settlement {
        fill_id: u64,
    },
    /// Raises the floor to `back` nonces before the owner's last.
    Floor {
        owner: u8,
        back: u64,
    },
    Tick,
    /// The clock moves on without a command.
    Sleep {
        ms: u64,
    },
}

/// Around 100 ticks, now and then outside the markets' range (refused after the nonce is used).
fn price() -> impl Strategy<Value = u64> {
    prop_oneof![20 => 95u64..106, 1 => Just(0u64), 1 => Just(1_001u64)]
}

fn op() -> impl Strategy<Value = Op> {
    let o = 0..OWNERS;
    prop_oneof![
        2 => (o.clone(), 0u8..3, 1u64..6_000).prop_map(|(owner, asset, amount)| Op::Deposit { owner, asset, amount }),
        12 => (o.clone(), 0u32..2, any::<bool>(), price(), 1u64..30, 0u8..6, proptest::bool::weighted(0.1), proptest::bool::weighted(0.2))
            .prop_map(|(owner, market, buy, price, size, kind, reuse, expires)| Op::Order { owner, market, buy, price, size, kind, reuse, expires }),
        4 => (o.clone(), 0u32..2, 0u64..4).prop_map(|(owner, market, back)| Op::Cancel { owner, market, back }),
        2 => (o.clone(), proptest::option::of(0u32..2), 0u8..3, 0u64..3)
            .prop_map(|(owner, market, side, back)| Op::CancelAll { owner, market, side, back }),
        4 => (o.clone(), 0u64..4, price(), 1u64..30, proptest::bool::weighted(0.2), proptest::bool::weighted(0.1))
            .prop_map(|(owner, back, price, size, expires, mismatch)| Op::Replace { owner, back, price, size, expires, mismatch }),
        1 => (o.clone(), 0u8..3, 1u64..20_000, 1u64..1_000).prop_map(|(owner, asset, amount, nonce)| Op::Withdraw { owner, asset, amount, nonce }),
        1 => (1u64..20, any::<bool>()).prop_map(|(back, confirmed)| Op::WithdrawalFinished { back, confirmed }),
        1 => (0u64..50).prop_map(|fill_id| Op::Settlement { fill_id }),
        1 => (o, 0u64..6).prop_map(|(owner, back)| Op::Floor { owner, back }),
        1 => Just(Op::Tick),
        1 => (100u64..1_500).prop_map(|ms| Op::Sleep { ms }),
    ]
}

#[allow(clippy::too_many_arguments)]
fn order(
    owner_index: u8,
    market: u32,
    side: Side,
    price: u64,
    size: u64,
    kind: OrderType,
    nonce: u64,
    client_order_id: u64,
    expiry: i64,
) -> Order {
    Order {
        exchange: exchange(),
        owner: owner(owner_index),
        market_index: market,
        side,
        order_type: kind,
        self_trade: SelfTrade::CancelTaker,
        price_ticks: price,
        size_lots: size,
        nonce,
        expiry,
        client_order_id,
    }
}

/// One sequenced command: its timestamp, and whether a sequencer batch ends after it.
struct Step {
    now_ms: u64,
    command: Command,
    end_batch: bool,
}

/// Turns ops into commands, keeping each owner's last order nonce and the fixed terms
/// (market, side, type, client id) of every order it signed.
#[derive(Default)]
struct Signer {
    last: [u64; OWNERS as usize],
    terms: std::collections::HashMap<(u8, u64), (u32, Side, OrderType, u64)>,
}

impl Signer {
    fn last(&self, o: u8) -> u64 {
        self.last[usize::from(o)]
    }

    fn fresh(&mut self, o: u8) -> u64 {
        self.last[usize::from(o)] += 1;
        self.last(o)
    }

    /// The command for `op` at `now_ms` (the `i`-th command), if it is one.
    fn command(&mut self, op: Op, i: usize, now_ms: u64) -> Option<Command> {
        let next_second = i64::try_from(now_ms / 1000 + 1).unwrap();
        Some(match op {
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
                expires,
            } => {
                let nonce = if reuse {
                    self.last(owner)
                } else {
                    self.fresh(owner)
                };
                let side = if buy { Side::Buy } else { Side::Sell };
                let kind = OrderType::from_u8(kind).unwrap();
                self.terms
                    .entry((owner, nonce))
                    .or_insert((market, side, kind, nonce));
                let expiry = if expires { next_second } else { 0 };
                Command::Place {
                    order: order(owner, market, side, price, size, kind, nonce, nonce, expiry),
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
            Op::CancelAll {
                owner: o,
                market,
                side,
                back,
            } => Command::CancelAll(CancelAll {
                exchange: exchange(),
                owner: owner(o),
                market_index: market.unwrap_or(kestrel::encoding::ALL_MARKETS),
                side: match side {
                    0 => CancelSide::Both,
                    1 => CancelSide::Buy,
                    _ => CancelSide::Sell,
                },
                up_to_nonce: if back == 0 {
                    u64::MAX
                } else {
                    self.last(o).saturating_sub(back)
                },
                expiry: 0,
            }),
            Op::Replace {
                owner: o,
                back,
                price,
                size,
                expires,
                mismatch,
            } => {
                let old = self.last(o).saturating_sub(back);
                let (market, side, kind, client) = self.terms.get(&(o, old)).copied().unwrap_or((
                    0,
                    Side::Buy,
                    OrderType::Limit,
                    old,
                ));
                let side = if mismatch { side.opposite() } else { side };
                let nonce = self.fresh(o);
                self.terms.insert((o, nonce), (market, side, kind, client));
                let expiry = if expires { next_second } else { 0 };
                Command::Replace {
                    cancel: Cancel {
                        exchange: exchange(),
                        owner: owner(o),
                        market_index: market,
                        order_nonce: old,
                        expiry: 0,
                    },
                    order: order(o, market, side, price, size, kind, nonce, client, expiry),
                    signature: [0; 64],
                }
            }
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
            Op::WithdrawalFinished { back, confirmed } => Command::WithdrawalFinished {
                id: (i as u64 + 1).saturating_sub(back),
                confirmed,
            },
            Op::Settlement { fill_id } => Command::SettlementUpdate {
                market: 0,
                fill_id,
                status: SettlementStatus::Confirmed,
            },
            Op::Floor { owner: o, back } => Command::NonceFloorObserved {
                owner: owner(o).to_bytes(),
                floor: self.last(o).saturating_sub(back),
            },
            Op::Tick => Command::Tick,
            Op::Sleep { .. } => return None,
        })
    }
}

struct Run {
    events: Vec<Vec<Event>>,
    hash: u64,
    admitted: u64,
    threaded: u64,
}

/// Runs `steps` through a pipeline, ending a batch after each step flagged and after the
/// last (dispatch, then finish, as the sequencer does, which syncs the journal in between:
/// `pause` stands for that).
fn pipelined(steps: &[Step], pause: Duration) -> Run {
    let mut state = State::new(rules()).unwrap();
    let mut pipeline = Pipeline::start(&state).unwrap();
    let mut events: Vec<Vec<Event>> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let seq = i as u64 + 1;
        pipeline
            .submit(&mut state, seq, step.now_ms, &step.command)
            .unwrap();
        if step.end_batch || i + 1 == steps.len() {
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

fn serial(steps: &[Step]) -> (Vec<Vec<Event>>, u64) {
    let mut state = State::new(rules()).unwrap();
    let events = steps
        .iter()
        .enumerate()
        .map(|(i, step)| state.apply(i as u64 + 1, step.now_ms, &step.command))
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
        expires: false,
    }
}

/// Owner 0 sells 3 and then 5 lots in market 0, owner 1 holds quote to buy them; then `ops`.
fn two_resting_sells(ops: Vec<(Op, bool)>) -> Vec<(Op, bool)> {
    let setup = vec![
        (deposit(0, 0, 10_000), false),
        (deposit(1, 1, 1_000_000), false),
        (limit(0, 0, false, 3, false), false),
        (limit(0, 0, false, 5, false), true),
    ];
    setup.into_iter().chain(ops).collect()
}

/// Commands from ops, `STEP_MS` apart (plus any sleeps); `true` ends a batch after the op.
fn commands(ops: Vec<(Op, bool)>) -> Vec<Step> {
    let mut signer = Signer::default();
    let mut now_ms = NOW_MS;
    let mut steps: Vec<Step> = Vec::new();
    for (op, end_batch) in ops {
        if let Op::Sleep { ms } = op {
            now_ms += ms;
            continue;
        }
        now_ms += STEP_MS;
        if let Some(command) = signer.command(op, steps.len(), now_ms) {
            steps.push(Step {
                now_ms,
                command,
                end_batch,
            });
        }
    }
    steps
}

/// Runs `steps` pipelined until an engine thread has matched at least one batch (whether
/// it starts a batch before the sequencer is back for it is up to the scheduler: the first
/// try, on a machine that is not saturated), checking every run against the serial one.
fn pipelined_on_threads(steps: &[Step]) -> Run {
    let (want, want_hash) = serial(steps);
    for _ in 0..20 {
        let run = pipelined(steps, Duration::from_millis(10));
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
    let commands = commands(two_resting_sells(vec![
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
    ]));
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

/// A replacement goes ahead like an order. In one batch: a replacement of an order a taker
/// ahead of it fills completely (left by the engine, refused at its turn as unknown), a
/// replacement of an order a taker ahead of it fills in part (the rest moves to the new
/// terms), and a cancel naming the old nonce of that order, which waits (a replacement in
/// flight moves the order) and is refused at its turn as unknown.
#[test]
fn a_replacement_behind_a_fill_of_its_order_is_refused_or_moves_the_rest() {
    let replace = |back, size| Op::Replace {
        owner: 0,
        back,
        price: 101,
        size,
        expires: false,
        mismatch: false,
    };
    let commands = commands(two_resting_sells(vec![
        (limit(1, 0, true, 3, false), false),
        (replace(1, 2), false),
        (limit(1, 0, true, 2, false), false),
        // The owner's last nonce is now the first replacement's: back 1 is the second sell.
        (replace(1, 4), false),
        (
            Op::Cancel {
                owner: 0,
                market: 0,
                back: 2,
            },
            true,
        ),
    ]));
    let run = pipelined_on_threads(&commands);
    assert_eq!(rejected(&run.events[5]), Some(Reject::UnknownOrder));
    assert!(run.events[7].iter().any(|e| matches!(
        e,
        Event::OrderReplaced {
            old_nonce: 2,
            nonce: 4,
            size_lots: 4,
            ..
        }
    )));
    assert_eq!(rejected(&run.events[8]), Some(Reject::UnknownOrder));
    assert_eq!(
        run.admitted, 6,
        "the orders and both replacements went ahead, the cancel waited"
    );
}

/// A cancel-all goes ahead and covers the orders placed ahead of it in its batch. In market
/// 0 its first cancel expires the next order it lists (the clock passed that order's expiry
/// with no command in that market since): the engine cancels what rested when it came to the
/// cancel-all, as serially, where the order is listed before the cancels run.
#[test]
fn a_cancel_all_covers_orders_placed_in_its_batch_and_one_expiring_on_its_way() {
    let sell = |market, price, expires| Op::Order {
        owner: 0,
        market,
        buy: false,
        price,
        size: 1,
        kind: 0,
        reuse: false,
        expires,
    };
    let commands = commands(vec![
        (deposit(0, 0, 10_000), false),
        (deposit(0, 2, 10_000), false),
        (sell(0, 105, false), false),
        (sell(0, 106, true), true),
        (Op::Sleep { ms: 1_500 }, false),
        (sell(1, 105, false), false),
        (
            Op::CancelAll {
                owner: 0,
                market: None,
                side: 0,
                back: 0,
            },
            true,
        ),
    ]);
    let run = pipelined_on_threads(&commands);
    let done: Vec<DoneReason> = run.events[5]
        .iter()
        .filter_map(|e| match e {
            Event::OrderDone { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        done,
        [
            DoneReason::Expired,
            DoneReason::Cancelled,
            DoneReason::Cancelled
        ]
    );
    assert_eq!(run.admitted, 4, "every order and the cancel-all went ahead");
}

/// Deposits and withdrawal requests no longer stop orders going ahead; a withdrawal ahead
/// counts against the orders behind it: a sell its owner can pay only if the withdrawal
/// ahead of it fails waits, and is refused at its turn.
#[test]
fn a_withdrawal_ahead_counts_against_the_orders_behind_it() {
    let commands = commands(vec![
        (deposit(0, 0, 1_000), true),
        (limit(0, 0, false, 5, false), false),
        (deposit(1, 1, 1_000), false),
        (
            Op::Withdraw {
                owner: 0,
                asset: 0,
                amount: 400,
                nonce: 1,
            },
            false,
        ),
        (limit(0, 0, false, 1, false), false),
        (limit(0, 0, false, 2, false), true),
    ]);
    let run = pipelined(&commands, Duration::ZERO);
    let (want, want_hash) = serial(&commands);
    assert_eq!((run.events.clone(), run.hash), (want, want_hash));
    assert!(accepted(&run.events[4]));
    assert_eq!(rejected(&run.events[5]), Some(Reject::InsufficientBalance));
    assert_eq!(
        run.admitted, 2,
        "both sells the balance covers went ahead, past the deposit and the withdrawal"
    );
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
