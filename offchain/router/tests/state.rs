//! The router's deterministic core: holds, fills, releases and the ledger, against exact
//! figures; a property test of conservation and replay determinism over random streams.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use anchor_lang::prelude::Pubkey;
use ed25519_dalek::{Signer, SigningKey};
use kestrel::encoding::{Cancel, CancelAll, CancelSide, Order, OrderType, SelfTrade, Side};
use kestrel_router::market::MarketSpec;
use kestrel_router::model::{Business, Command, Event};
use kestrel_router::reject::Reject;
use kestrel_router::state::{Rules, State, FEE_ACCOUNT};
use proptest::prelude::*;

const BASE: u8 = 0;
const QUOTE: u8 = 1;
const NOW_MS: u64 = 1_800_000_000_000;

fn exchange() -> Pubkey {
    Pubkey::new_from_array([9; 32])
}

fn spec() -> MarketSpec {
    MarketSpec {
        index: 0,
        base_asset: BASE,
        quote_asset: QUOTE,
        base_lot_size: 1_000,
        tick_size: 10,
        min_size_lots: 1,
        max_size_lots: 1_000_000,
        min_price_ticks: 1,
        max_price_ticks: 1_000_000,
        maker_fee_bps: 2,
        taker_fee_bps: 5,
        max_orders: 4_096,
    }
}

fn rules() -> Rules {
    Rules {
        exchange: exchange(),
        assets: vec![
            Pubkey::new_from_array([1; 32]),
            Pubkey::new_from_array([2; 32]),
        ],
        markets: vec![spec()],
        max_expiry_horizon_secs: 86_400 * 365,
        expiry_margin_secs: 30,
        max_open_orders: 64,
    }
}

struct Wallet {
    key: SigningKey,
    nonce: u64,
}

impl Wallet {
    fn new(seed: u8) -> Self {
        Wallet {
            key: SigningKey::from_bytes(&[seed; 32]),
            nonce: 0,
        }
    }

    fn owner(&self) -> [u8; 32] {
        self.key.verifying_key().to_bytes()
    }

    fn order(&mut self, side: Side, price: u64, size: u64, order_type: OrderType) -> Command {
        self.nonce += 1;
        let order = Order {
            exchange: exchange(),
            owner: Pubkey::new_from_array(self.owner()),
            market_index: 0,
            side,
            order_type,
            self_trade: SelfTrade::CancelTaker,
            price_ticks: price,
            size_lots: size,
            nonce: self.nonce,
            expiry: 0,
            client_order_id: 0,
        };
        Command::Place {
            order,
            signature: self.key.sign(&order.encode()).to_bytes(),
        }
    }

    /// Replaces the order `old_nonce` with new terms (a fresh nonce).
    fn replace(
        &mut self,
        old_nonce: u64,
        side: Side,
        price: u64,
        size: u64,
        order_type: OrderType,
    ) -> Command {
        let Command::Place { order, signature } = self.order(side, price, size, order_type) else {
            unreachable!()
        };
        let cancel = Cancel {
            exchange: exchange(),
            owner: order.owner,
            market_index: 0,
            order_nonce: old_nonce,
            expiry: 0,
        };
        Command::Replace {
            cancel,
            order,
            signature,
        }
    }

    fn deposit(&self, asset: u8, amount: u64, tx: u8) -> Command {
        Command::DepositObserved {
            owner: self.owner(),
            asset,
            amount,
            tx: [tx; 64],
            ix_index: 0,
        }
    }
}

struct Harness {
    state: State,
    seq: u64,
    log: Vec<(u64, u64, Command)>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            state: State::new(rules()).unwrap(),
            seq: 0,
            log: Vec::new(),
        }
    }

    fn apply(&mut self, command: Command) -> Vec<Event> {
        self.seq += 1;
        let now = NOW_MS + self.seq;
        self.log.push((self.seq, now, command.clone()));
        self.state.apply(self.seq, now, &command)
    }

    fn balance(&self, w: &Wallet, asset: u8) -> (u64, u64) {
        let b = self.state.ledger().balance(&w.owner(), asset);
        (b.available, b.frozen)
    }
}

fn rejected(events: &[Event]) -> Option<Reject> {
    events.iter().find_map(|e| match e {
        Event::Rejected { reason, .. } => Some(*reason),
        _ => None,
    })
}

#[test]
fn a_buy_holds_notional_fee_and_slack_and_a_fill_moves_exact_atoms() {
    let mut h = Harness::new();
    let mut seller = Wallet::new(1);
    let mut buyer = Wallet::new(2);
    h.apply(seller.deposit(BASE, 50_000, 1));
    h.apply(buyer.deposit(QUOTE, 1_000_000, 2));

    let ask = seller.order(Side::Sell, 100, 10, OrderType::Limit);
    assert_eq!(rejected(&h.apply(ask)), None);
    assert_eq!(h.balance(&seller, BASE), (40_000, 10_000));

    // Buy 4 lots at limit 105: hold = 105×10×4 + ceil(4,200 × 5 bps) + 4 = 4,200 + 3 + 4.
    let bid = buyer.order(Side::Buy, 105, 4, OrderType::Limit);
    let events = h.apply(bid);
    let fill = events
        .iter()
        .find_map(|e| match e {
            Event::Fill {
                price_ticks,
                size_lots,
                notional,
                maker_fee,
                taker_fee,
                fill_id,
                ..
            } => Some((
                *fill_id,
                *price_ticks,
                *size_lots,
                *notional,
                *maker_fee,
                *taker_fee,
            )),
            _ => None,
        })
        .expect("a fill");
    // Executes at the maker's price: 100 × 10 × 4 = 4,000; maker 2 bps → 1, taker 5 bps → 2.
    assert_eq!(fill, (1, 100, 4, 4_000, 1, 2));
    assert_eq!(h.balance(&buyer, QUOTE), (1_000_000 - 4_002, 0));
    assert_eq!(h.balance(&buyer, BASE), (4_000, 0));
    assert_eq!(h.balance(&seller, QUOTE), (3_999, 0));
    assert_eq!(h.balance(&seller, BASE), (40_000, 6_000));
    assert_eq!(h.state.ledger().balance(&FEE_ACCOUNT, QUOTE).available, 3);
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Ledger {
            business: Business::FillFee,
            ..
        }
    )));
}

#[test]
fn cancel_releases_the_hold_and_a_replayed_cancel_is_refused() {
    let mut h = Harness::new();
    let mut w = Wallet::new(3);
    h.apply(w.deposit(QUOTE, 100_000, 1));
    h.apply(w.order(Side::Buy, 50, 10, OrderType::Limit));
    assert_eq!(h.balance(&w, QUOTE).1, 5_000 + 3 + 10);
    let cancel = Cancel {
        exchange: exchange(),
        owner: Pubkey::new_from_array(w.owner()),
        market_index: 0,
        order_nonce: 1,
        expiry: 0,
    };
    let events = h.apply(Command::Cancel(cancel));
    assert!(events.iter().any(|e| matches!(e, Event::OrderDone { .. })));
    assert_eq!(h.balance(&w, QUOTE), (100_000, 0));
    assert_eq!(
        rejected(&h.apply(Command::Cancel(cancel))),
        Some(Reject::UnknownOrder)
    );
}

#[test]
fn refusals_are_typed_and_change_nothing_but_consume_the_nonce() {
    let mut h = Harness::new();
    let mut w = Wallet::new(4);
    h.apply(w.deposit(QUOTE, 1_000, 1));
    let before = h.state.state_hash();
    let too_big = w.order(Side::Buy, 100, 10, OrderType::Limit);
    assert_eq!(
        rejected(&h.apply(too_big.clone())),
        Some(Reject::InsufficientBalance)
    );
    assert_eq!(h.balance(&w, QUOTE), (1_000, 0));
    // The same signed order again is a replay.
    assert_eq!(rejected(&h.apply(too_big)), Some(Reject::NonceReused));
    assert_ne!(h.state.state_hash(), before, "only the sequence moved");
    assert_eq!(
        rejected(&h.apply(w.order(Side::Buy, 0, 1, OrderType::Limit))),
        Some(Reject::PriceOutOfRange)
    );
    assert_eq!(
        rejected(&h.apply(w.order(Side::Buy, 1, 0, OrderType::Limit))),
        Some(Reject::SizeOutOfRange)
    );
    assert_eq!(
        rejected(&h.apply(w.order(Side::Buy, 1_000_000, 1_000_000, OrderType::Limit))),
        Some(Reject::InsufficientBalance)
    );
    let Command::Place {
        mut order,
        signature,
    } = w.order(Side::Buy, 1, 1, OrderType::Limit)
    else {
        unreachable!()
    };
    order.exchange = Pubkey::new_from_array([7; 32]);
    assert_eq!(
        rejected(&h.apply(Command::Place { order, signature })),
        Some(Reject::WrongExchange)
    );
    order.exchange = exchange();
    order.market_index = 9;
    order.nonce += 100;
    assert_eq!(
        rejected(&h.apply(Command::Place { order, signature })),
        Some(Reject::UnknownMarket)
    );
    order.market_index = 0;
    order.nonce += 1;
    order.expiry = 1_800_000_010; // inside the 30 s settlement margin
    assert_eq!(
        rejected(&h.apply(Command::Place { order, signature })),
        Some(Reject::Expired)
    );
    order.nonce += 1;
    order.expiry = 1_800_000_000 + 86_400 * 366;
    assert_eq!(
        rejected(&h.apply(Command::Place { order, signature })),
        Some(Reject::ExpiryTooFar)
    );
    assert_eq!(h.balance(&w, QUOTE), (1_000, 0));
}

#[test]
fn deposits_are_credited_once_per_transaction_instruction() {
    let mut h = Harness::new();
    let w = Wallet::new(5);
    h.apply(w.deposit(BASE, 10, 7));
    h.apply(w.deposit(BASE, 10, 7));
    h.apply(w.deposit(BASE, 10, 8));
    assert_eq!(h.balance(&w, BASE), (20, 0));
}

#[test]
fn nonce_floor_kills_open_orders_below_it_and_refuses_new_ones() {
    let mut h = Harness::new();
    let mut w = Wallet::new(6);
    h.apply(w.deposit(BASE, 100_000, 1));
    h.apply(w.order(Side::Sell, 100, 5, OrderType::Limit));
    h.apply(w.order(Side::Sell, 101, 5, OrderType::Limit));
    h.apply(Command::NonceFloorObserved {
        owner: w.owner(),
        floor: 2,
    });
    assert_eq!(h.state.open_orders(&w.owner()), 1);
    assert_eq!(h.balance(&w, BASE), (95_000, 5_000));
    let Command::Place {
        mut order,
        signature,
    } = w.order(Side::Sell, 1, 1, OrderType::Limit)
    else {
        unreachable!()
    };
    order.nonce = 1;
    assert_eq!(
        rejected(&h.apply(Command::Place { order, signature })),
        Some(Reject::NonceCancelled)
    );
}

#[test]
fn cancel_all_below_a_nonce_bound_spares_later_orders() {
    let mut h = Harness::new();
    let mut w = Wallet::new(7);
    h.apply(w.deposit(BASE, 100_000, 1));
    h.apply(w.deposit(QUOTE, 100_000, 2));
    h.apply(w.order(Side::Sell, 200, 1, OrderType::Limit)); // nonce 1
    h.apply(w.order(Side::Buy, 100, 1, OrderType::Limit)); // nonce 2
    h.apply(w.order(Side::Sell, 201, 1, OrderType::Limit)); // nonce 3
    let all = CancelAll {
        exchange: exchange(),
        owner: Pubkey::new_from_array(w.owner()),
        market_index: 0,
        side: CancelSide::Sell,
        up_to_nonce: 3,
        expiry: 0,
    };
    h.apply(Command::CancelAll(all));
    assert_eq!(
        h.state.open_orders(&w.owner()),
        2,
        "nonce 1 sell cancelled; the buy and nonce 3 remain"
    );
}

fn replaced(events: &[Event]) -> Option<(u64, bool)> {
    events.iter().find_map(|e| match e {
        Event::OrderReplaced {
            nonce,
            kept_priority,
            ..
        } => Some((*nonce, *kept_priority)),
        _ => None,
    })
}

fn fill_makers(events: &[Event]) -> Vec<([u8; 32], u64, u64)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Fill {
                maker,
                maker_nonce,
                size_lots,
                ..
            } => Some((*maker, *maker_nonce, *size_lots)),
            _ => None,
        })
        .collect()
}

#[test]
fn replace_down_at_the_same_price_keeps_priority_and_releases_the_hold() {
    let mut h = Harness::new();
    let (mut a, mut b, mut taker) = (Wallet::new(20), Wallet::new(21), Wallet::new(22));
    h.apply(a.deposit(BASE, 100_000, 1));
    h.apply(b.deposit(BASE, 100_000, 2));
    h.apply(taker.deposit(QUOTE, 10_000_000, 3));
    h.apply(a.order(Side::Sell, 100, 10, OrderType::Limit)); // a nonce 1, first in queue
    h.apply(b.order(Side::Sell, 100, 5, OrderType::Limit));
    let events = h.apply(a.replace(1, Side::Sell, 100, 6, OrderType::Limit)); // a nonce 2
    assert_eq!(replaced(&events), Some((2, true)));
    assert_eq!(h.balance(&a, BASE), (94_000, 6_000));
    let events = h.apply(taker.order(Side::Buy, 100, 6, OrderType::ImmediateOrCancel));
    assert_eq!(
        fill_makers(&events),
        vec![(a.owner(), 2, 6)],
        "a kept its place; the fill settles under the new nonce"
    );
}

#[test]
fn replace_to_a_larger_size_loses_priority_and_holds_more() {
    let mut h = Harness::new();
    let (mut a, mut b, mut taker) = (Wallet::new(23), Wallet::new(24), Wallet::new(25));
    h.apply(a.deposit(BASE, 100_000, 1));
    h.apply(b.deposit(BASE, 100_000, 2));
    h.apply(taker.deposit(QUOTE, 10_000_000, 3));
    h.apply(a.order(Side::Sell, 100, 10, OrderType::Limit));
    h.apply(b.order(Side::Sell, 100, 5, OrderType::Limit));
    let events = h.apply(a.replace(1, Side::Sell, 100, 12, OrderType::Limit));
    assert_eq!(replaced(&events), Some((2, false)));
    assert_eq!(h.balance(&a, BASE), (88_000, 12_000));
    let events = h.apply(taker.order(Side::Buy, 100, 5, OrderType::ImmediateOrCancel));
    assert_eq!(fill_makers(&events), vec![(b.owner(), 1, 5)]);
}

#[test]
fn a_refused_replace_leaves_the_order_and_its_hold_as_they_were() {
    let mut h = Harness::new();
    let (mut a, mut c) = (Wallet::new(26), Wallet::new(27));
    h.apply(a.deposit(BASE, 20_000, 1));
    h.apply(c.deposit(QUOTE, 10_000_000, 2));
    h.apply(c.order(Side::Buy, 100, 5, OrderType::Limit));
    h.apply(a.order(Side::Sell, 101, 10, OrderType::PostOnly)); // a nonce 1
    let before = h.balance(&a, BASE);
    // Post-only at the bid would cross: refused, nothing moves.
    let events = h.apply(a.replace(1, Side::Sell, 100, 10, OrderType::PostOnly));
    assert_eq!(rejected(&events), Some(Reject::PostOnlyWouldCross));
    assert_eq!(h.balance(&a, BASE), before);
    assert_eq!(h.state.open_orders(&a.owner()), 1);
    // More than the balance can hold: refused before the engine, nothing moves.
    let events = h.apply(a.replace(1, Side::Sell, 101, 30, OrderType::PostOnly));
    assert_eq!(rejected(&events), Some(Reject::InsufficientBalance));
    assert_eq!(h.balance(&a, BASE), before);
    // A replace may not change side or type.
    let events = h.apply(a.replace(1, Side::Buy, 99, 1, OrderType::PostOnly));
    assert_eq!(rejected(&events), Some(Reject::ReplaceMismatch));
    let events = h.apply(a.replace(1, Side::Sell, 102, 1, OrderType::Limit));
    assert_eq!(rejected(&events), Some(Reject::ReplaceMismatch));
    // The original is still live under its old nonce, and cancels normally.
    let cancel = Cancel {
        exchange: exchange(),
        owner: Pubkey::new_from_array(a.owner()),
        market_index: 0,
        order_nonce: 1,
        expiry: 0,
    };
    let events = h.apply(Command::Cancel(cancel));
    assert!(events.iter().any(|e| matches!(e, Event::OrderDone { .. })));
    assert_eq!(h.balance(&a, BASE), (20_000, 0));
}

#[derive(Debug, Clone)]
enum Op {
    Deposit(u8, u8, u64),
    Order(u8, bool, u64, u64, u8),
    Cancel(u8, u64),
    CancelAll(u8),
    Floor(u8, u64),
    Replace(u8, u64, bool, u64, u64, u8),
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u8..4, 0u8..2, 1u64..2_000_000).prop_map(|(u, a, x)| Op::Deposit(u, a, x)),
        8 => (0u8..4, any::<bool>(), 95u64..106, 1u64..20, 0u8..6).prop_map(|(u, b, p, s, t)| Op::Order(u, b, p, s, t)),
        2 => (0u8..4, 1u64..40).prop_map(|(u, n)| Op::Cancel(u, n)),
        1 => (0u8..4).prop_map(Op::CancelAll),
        1 => (0u8..4, 1u64..40).prop_map(|(u, n)| Op::Floor(u, n)),
        2 => (0u8..4, 1u64..40, any::<bool>(), 95u64..106, 1u64..20, 0u8..6)
            .prop_map(|(u, n, b, p, s, t)| Op::Replace(u, n, b, p, s, t)),
        1 => Just(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 200, ..ProptestConfig::default() })]

    /// After every command: per asset, Σ (available + frozen) over every owner (fees included)
    /// equals Σ deposits; and a replay of the same log gives the same events and state.
    #[test]
    fn conservation_and_deterministic_replay(ops in proptest::collection::vec(op(), 1..120)) {
        let mut h = Harness::new();
        let mut wallets: Vec<Wallet> = (0..4).map(|i| Wallet::new(10 + i)).collect();
        let mut deposited = [0u128; 2];
        let mut all_events = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            let command = match op {
                Op::Deposit(u, a, x) => {
                    deposited[usize::from(a)] += u128::from(x);
                    wallets[usize::from(u)].deposit(a, x, i as u8)
                }
                Op::Order(u, buy, p, s, t) => {
                    let side = if buy { Side::Buy } else { Side::Sell };
                    let t = OrderType::from_u8(t).unwrap();
                    wallets[usize::from(u)].order(side, p, s, t)
                }
                Op::Cancel(u, n) => Command::Cancel(Cancel {
                    exchange: exchange(),
                    owner: Pubkey::new_from_array(wallets[usize::from(u)].owner()),
                    market_index: 0,
                    order_nonce: n,
                    expiry: 0,
                }),
                Op::CancelAll(u) => Command::CancelAll(CancelAll {
                    exchange: exchange(),
                    owner: Pubkey::new_from_array(wallets[usize::from(u)].owner()),
                    market_index: kestrel::encoding::ALL_MARKETS,
                    side: CancelSide::Both,
                    up_to_nonce: u64::MAX,
                    expiry: 0,
                }),
                Op::Floor(u, n) => Command::NonceFloorObserved { owner: wallets[usize::from(u)].owner(), floor: n },
                Op::Replace(u, n, buy, p, s, t) => {
                    let side = if buy { Side::Buy } else { Side::Sell };
                    wallets[usize::from(u)].replace(n, side, p, s, OrderType::from_u8(t).unwrap())
                }
                Op::Tick => Command::Tick,
            };
            let deposit_dup = matches!(&command, Command::DepositObserved { tx, .. } if h.log.iter().any(|(_, _, c)| matches!(c, Command::DepositObserved { tx: t2, .. } if t2 == tx)));
            if deposit_dup {
                if let Command::DepositObserved { asset, amount, .. } = &command {
                    deposited[usize::from(*asset)] -= u128::from(*amount);
                }
            }
            all_events.push(h.apply(command));
            for asset in [BASE, QUOTE] {
                prop_assert_eq!(h.state.ledger().total(asset), deposited[usize::from(asset)], "asset {}", asset);
            }
        }
        let mut replay = State::new(rules()).unwrap();
        for ((seq, now, command), events) in h.log.iter().zip(&all_events) {
            prop_assert_eq!(&replay.apply(*seq, *now, command), events);
        }
        prop_assert_eq!(replay.state_hash(), h.state.state_hash());
    }
}
