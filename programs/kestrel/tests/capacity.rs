//! Settle transaction capacity: how many fills one legacy transaction carries within the
//! 1,232-byte packet limit, measured by serializing real settle transactions (bincode, the wire
//! format) and proved by sending the largest one to the bank.
//!
//! Scenarios: (a) every fill between two brand-new orders, (b) one new taker sweeping makers
//! whose orders are already recorded, (c) both orders of every fill already recorded. Each runs
//! with distinct wallets (every order from its own wallet, the sweeping taker aside: the worst
//! case for accounts) and with shared wallets (all makers one wallet, all takers another).
//! The operator pays the fee, so the transaction carries one signature, as the relayer sends it.
//!
//! `cargo test -p kestrel-program --test capacity -- --nocapture` prints the figures recorded in
//! docs/benchmarks.md.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]
mod program_test;

use kestrel::constants::{MAX_FILLS_PER_BATCH, MAX_ORDERS_PER_BATCH};
use kestrel::encoding::{Order, OrderType, SelfTrade, Side};
use program_test::*;
use solana_sdk::hash::Hash;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use solana_sdk::transaction::Transaction;

/// Largest serialized transaction a validator accepts (solana-packet's `PACKET_DATA_SIZE`).
const PACKET_DATA_SIZE: usize = 1232;
/// Most accounts one transaction may lock (the runtime's `MAX_TX_ACCOUNT_LOCKS`).
const MAX_TX_ACCOUNT_LOCKS: usize = 64;
const PRICE: u64 = 100;
/// Size of every maker order and of every pair-scenario taker order, in lots.
const ORDER_LOTS: u64 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    /// (a) both orders of every fill are new: two signatures and two order bodies per fill.
    NewPairs,
    /// (b) one new taker order fills against makers already recorded on-chain.
    TakerSweepsRecordedMakers,
    /// (c) both orders of every fill are already recorded: no Ed25519 instruction at all.
    RecordedPairs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wallets {
    /// Every order from its own wallet (the sweeping taker aside).
    Distinct,
    /// All makers one wallet, all takers another.
    Shared,
}

#[derive(Clone, Copy, Debug)]
struct Plan {
    scenario: Scenario,
    wallets: Wallets,
}

/// Orders with the wallets that sign them.
type Signed<'w> = Vec<(Order, &'w Keypair)>;

/// One measured transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Measure {
    bytes: usize,
    accounts: usize,
}

fn order(exchange: Pubkey, owner: &Keypair, side: Side, size_lots: u64, nonce: u64) -> Order {
    Order {
        exchange,
        owner: owner.pubkey(),
        market_index: 0,
        side,
        order_type: OrderType::Limit,
        self_trade: SelfTrade::CancelTaker,
        price_ticks: PRICE,
        size_lots,
        nonce,
        expiry: 0,
        client_order_id: 0,
    }
}

impl Plan {
    fn maker_wallets(&self, fills: usize) -> usize {
        match self.wallets {
            Wallets::Distinct => fills,
            Wallets::Shared => 1,
        }
    }

    fn taker_wallets(&self, fills: usize) -> usize {
        match (self.scenario, self.wallets) {
            (Scenario::TakerSweepsRecordedMakers, _) | (_, Wallets::Shared) => 1,
            _ => fills,
        }
    }

    /// The maker and taker orders of `fills` fills: maker `i` sells from wallet
    /// `i % makers.len()` with nonce `i + 1`; takers buy likewise (the sweep: one order).
    fn orders<'w>(
        &self,
        exchange: Pubkey,
        fills: usize,
        makers: &[&'w Keypair],
        takers: &[&'w Keypair],
    ) -> (Signed<'w>, Signed<'w>) {
        let side_orders = |wallets: &[&'w Keypair], side: Side, count: usize, lots: u64| {
            (0..count)
                .map(|i| {
                    let w = wallets[i % wallets.len()];
                    (order(exchange, w, side, lots, i as u64 + 1), w)
                })
                .collect::<Vec<_>>()
        };
        let maker_orders = side_orders(makers, Side::Sell, fills, ORDER_LOTS);
        let taker_orders = match self.scenario {
            Scenario::TakerSweepsRecordedMakers => side_orders(takers, Side::Buy, 1, fills as u64),
            _ => side_orders(takers, Side::Buy, fills, ORDER_LOTS),
        };
        (maker_orders, taker_orders)
    }

    /// The batch of the scenario: one lot per fill at `PRICE`.
    fn batch(
        &self,
        makers: &[(Order, &Keypair)],
        takers: &[(Order, &Keypair)],
        batch_id: u64,
        first_fill_id: u64,
    ) -> Batch {
        let entry = |(o, w): &(Order, &Keypair), new: bool| {
            if new {
                BatchOrder::new(o, w)
            } else {
                BatchOrder::recorded(o)
            }
        };
        let id = |i: usize| first_fill_id + i as u64;
        let (orders, fills) = match self.scenario {
            Scenario::TakerSweepsRecordedMakers => (
                std::iter::once(entry(&takers[0], true))
                    .chain(makers.iter().map(|m| entry(m, false)))
                    .collect(),
                (0..makers.len())
                    .map(|i| fill(id(i), (i + 1) as u8, 0, PRICE, 1))
                    .collect(),
            ),
            Scenario::NewPairs | Scenario::RecordedPairs => {
                let new = self.scenario == Scenario::NewPairs;
                (
                    makers
                        .iter()
                        .zip(takers)
                        .flat_map(|(m, t)| [entry(m, new), entry(t, new)])
                        .collect(),
                    (0..makers.len())
                        .map(|i| fill(id(i), (2 * i) as u8, (2 * i + 1) as u8, PRICE, 1))
                        .collect(),
                )
            }
        };
        Batch {
            batch_id,
            orders,
            fills,
        }
    }

    /// Orders the batch references: within the program's per-instruction limits?
    fn within_program_limits(&self, fills: usize) -> bool {
        let orders = match self.scenario {
            Scenario::TakerSweepsRecordedMakers => fills + 1,
            _ => 2 * fills,
        };
        fills <= MAX_FILLS_PER_BATCH && orders <= MAX_ORDERS_PER_BATCH
    }

    /// Size and account count of the settle transaction for `fills` fills, built from fresh
    /// keys (the layout does not depend on key or field values).
    fn measure_offline(&self, t: &TestExchange, fills: usize) -> Measure {
        let makers: Vec<Keypair> = (0..self.maker_wallets(fills))
            .map(|_| Keypair::new())
            .collect();
        let takers: Vec<Keypair> = (0..self.taker_wallets(fills))
            .map(|_| Keypair::new())
            .collect();
        let (m, k) = self.orders(
            t.exchange,
            fills,
            &makers.iter().collect::<Vec<_>>(),
            &takers.iter().collect::<Vec<_>>(),
        );
        let batch = self.batch(&m, &k, 1, 1);
        measure(&transaction(t, &batch, Hash::default()))
    }

    /// The most fills within the packet limit (and the program's batch limits).
    fn max_fills(&self, t: &TestExchange) -> usize {
        let mut n = 0;
        while self.within_program_limits(n + 1)
            && self.measure_offline(t, n + 1).bytes <= PACKET_DATA_SIZE
        {
            n += 1;
        }
        n
    }
}

/// The settle transaction as the relayer sends it: the operator pays and is the only signer.
fn transaction(t: &TestExchange, batch: &Batch, blockhash: Hash) -> Transaction {
    let ixs = t.settle_instructions(batch);
    Transaction::new_signed_with_payer(&ixs, Some(&t.operator.pubkey()), &[&t.operator], blockhash)
}

fn measure(tx: &Transaction) -> Measure {
    Measure {
        bytes: bincode::serialize(tx).expect("serialize").len(),
        accounts: tx.message.account_keys.len(),
    }
}

/// Sets up the wallets and any orders the scenario needs recorded, then sends the settle
/// transaction of `fills` fills and checks it settled. Returns its measure.
async fn send_max(plan: Plan, fills: usize) -> Measure {
    let mut t = TestExchange::new().await;
    let mut makers = Vec::new();
    for _ in 0..plan.maker_wallets(fills) {
        makers.push(t.funded_user(1_000_000, 0).await);
    }
    let mut takers = Vec::new();
    for _ in 0..plan.taker_wallets(fills) {
        takers.push(t.funded_user(0, 10_000_000).await);
    }
    let maker_keys: Vec<&Keypair> = makers.iter().map(|u| &u.wallet).collect();
    let taker_keys: Vec<&Keypair> = takers.iter().map(|u| &u.wallet).collect();
    let (maker_orders, taker_orders) = plan.orders(t.exchange, fills, &maker_keys, &taker_keys);

    // Record what the scenario takes as already on-chain, one lot per setup fill.
    let helper = t.funded_user(0, 10_000_000).await;
    let mut setup_lots = 0;
    for (i, maker) in maker_orders.iter().enumerate() {
        let counterpart = match plan.scenario {
            Scenario::NewPairs => continue,
            Scenario::RecordedPairs => taker_orders[i],
            Scenario::TakerSweepsRecordedMakers => {
                let o = order(t.exchange, &helper.wallet, Side::Buy, 1, i as u64 + 1);
                (o, &helper.wallet)
            }
        };
        let batch = Batch {
            batch_id: t.batch_id(),
            orders: vec![
                BatchOrder::new(&maker.0, maker.1),
                BatchOrder::new(&counterpart.0, counterpart.1),
            ],
            fills: vec![fill(t.fill_id(), 0, 1, PRICE, 1)],
        };
        t.settle(&batch)
            .await
            .expect("setup fill records the orders");
        setup_lots += 1;
    }

    let batch_id = t.batch_id();
    let first_fill_id = t.fill_id();
    for _ in 1..fills {
        t.fill_id();
    }
    let batch = plan.batch(&maker_orders, &taker_orders, batch_id, first_fill_id);
    let blockhash = t.ctx.get_new_latest_blockhash().await.expect("blockhash");
    let tx = transaction(&t, &batch, blockhash);
    let m = measure(&tx);
    assert!(m.bytes <= PACKET_DATA_SIZE, "{plan:?}: {m:?}");
    t.ctx
        .banks_client
        .process_transaction(tx)
        .await
        .unwrap_or_else(|e| panic!("{plan:?} with {fills} fills must settle: {e:?}"));

    let market = t.market_state().await;
    assert_eq!(market.last_batch_id, batch_id);
    assert_eq!(market.last_fill_id, first_fill_id + fills as u64 - 1);
    assert_eq!(market.volume_lots, setup_lots + fills as u64);
    for (o, _) in &maker_orders {
        let record = t.order_record(&o.owner, o.nonce).await.expect("record");
        let before = u64::from(plan.scenario != Scenario::NewPairs);
        assert_eq!(record.filled_lots, before + 1, "maker {}", o.nonce);
    }
    t.assert_conservation().await;
    m
}

async fn capacity(plan: Plan) {
    let t = TestExchange::new().await;
    let n = plan.max_fills(&t);
    assert!(n >= 1, "{plan:?}: not even one fill fits in a transaction");
    let one = plan.measure_offline(&t, 1);
    let at_max = plan.measure_offline(&t, n);
    let over = plan.measure_offline(&t, n + 1);
    assert!(
        over.bytes > PACKET_DATA_SIZE || !plan.within_program_limits(n + 1),
        "{plan:?}: {} fills would fit too",
        n + 1
    );
    let per_fill = over.bytes - at_max.bytes;
    let sent = send_max(plan, n).await;
    assert_eq!(sent, at_max, "the sent transaction has the measured layout");
    assert!(sent.accounts <= MAX_TX_ACCOUNT_LOCKS);
    println!(
        "capacity {:?} / {:?} wallets: 1 fill = {} bytes, +{} bytes and +{} accounts per fill; \
         max {} fills = {} bytes, {} accounts ({} fills = {} bytes)",
        plan.scenario,
        plan.wallets,
        one.bytes,
        per_fill,
        over.accounts - at_max.accounts,
        n,
        at_max.bytes,
        at_max.accounts,
        n + 1,
        over.bytes,
    );
}

#[tokio::test]
async fn fills_between_two_new_orders_per_transaction() {
    for wallets in [Wallets::Distinct, Wallets::Shared] {
        capacity(Plan {
            scenario: Scenario::NewPairs,
            wallets,
        })
        .await;
    }
}

#[tokio::test]
async fn fills_of_one_new_taker_sweeping_recorded_makers_per_transaction() {
    for wallets in [Wallets::Distinct, Wallets::Shared] {
        capacity(Plan {
            scenario: Scenario::TakerSweepsRecordedMakers,
            wallets,
        })
        .await;
    }
}

#[tokio::test]
async fn fills_between_two_recorded_orders_per_transaction() {
    for wallets in [Wallets::Distinct, Wallets::Shared] {
        capacity(Plan {
            scenario: Scenario::RecordedPairs,
            wallets,
        })
        .await;
    }
}
