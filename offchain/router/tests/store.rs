//! The SQL store, on SQLite (temp file) and on the real PostgreSQL server (a fresh database
//! per test, dropped afterwards): projected tables match the state that emitted the events,
//! re-applying changes nothing, a rebuild from the journal is identical, deposits are unique,
//! candles and pagination are exact. PostgreSQL tests fail, never skip, without a server
//! (`KESTREL_TEST_POSTGRES_URL`, default `postgres://postgres@127.0.0.1:5432`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use anchor_lang::prelude::Pubkey;
use ed25519_dalek::{Signer, SigningKey};
use kestrel::encoding::{Cancel, Order, OrderType, SelfTrade, Side, WithdrawRequest};
use kestrel_router::market::MarketSpec;
use kestrel_router::model::{
    ChainWithdrawalKind, Command, DoneReason, Event, Owner, Sequenced, SettlementStatus,
    WithdrawalKind, WithdrawalStatus,
};
use kestrel_router::state::{Rules, State};
use kestrel_router::store::{
    spawn_projector, FillRow, ListenerCursor, OrderStatus, Page, Position, ProjectorConfig, Store,
    StoreError,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{AnyConnection, Connection, Executor};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

// ---------------------------------------------------------------- backends and fixtures

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Creates stores for one test and removes them afterwards, whatever the test's outcome.
#[derive(Clone)]
struct Fixture {
    backend: Backend,
    dir: Arc<tempfile::TempDir>,
    databases: Arc<Mutex<Vec<String>>>,
}

fn postgres_server() -> String {
    std::env::var("KESTREL_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_string())
}

async fn postgres_admin() -> AnyConnection {
    sqlx::any::install_default_drivers();
    let url = format!("{}/postgres", postgres_server());
    AnyConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("PostgreSQL must be reachable at {url}: {e}"))
}

static NEXT_DB: AtomicU32 = AtomicU32::new(0);

impl Fixture {
    fn new(backend: Backend) -> Self {
        Fixture {
            backend,
            dir: Arc::new(tempfile::tempdir().unwrap()),
            databases: Arc::default(),
        }
    }

    /// A fresh, empty store.
    async fn store(&self) -> Store {
        let n = NEXT_DB.fetch_add(1, Ordering::SeqCst);
        match self.backend {
            Backend::Sqlite => {
                let path = self.dir.path().join(format!("store-{n}.db"));
                Store::connect(&format!("sqlite://{}?mode=rwc", path.display()))
                    .await
                    .unwrap()
            }
            Backend::Postgres => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .subsec_nanos();
                let name = format!("kestrel_store_{}_{n}_{nanos}", std::process::id());
                let mut admin = postgres_admin().await;
                admin
                    .execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .unwrap();
                self.databases.lock().unwrap().push(name.clone());
                Store::connect(&format!("{}/{name}", postgres_server()))
                    .await
                    .unwrap()
            }
        }
    }

    async fn cleanup(&self) {
        let names = std::mem::take(&mut *self.databases.lock().unwrap());
        if names.is_empty() {
            return;
        }
        let mut admin = postgres_admin().await;
        for name in names {
            admin
                .execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                .await
                .unwrap();
        }
    }
}

/// Runs `test` with a fixture, drops its databases, then reports the test's outcome.
async fn run<F, Fut>(backend: Backend, test: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let fixture = Fixture::new(backend);
    let outcome = tokio::spawn(test(fixture.clone())).await;
    fixture.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                super::run(super::Backend::Sqlite, super::$name).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                super::run(super::Backend::Postgres, super::$name).await
            })*
        }
    };
}

on_both_backends!(
    projection_matches_the_state,
    reapplying_changes_nothing,
    rebuild_from_scratch_is_identical,
    duplicate_deposit_is_refused,
    an_unknown_order_is_inconsistent_and_writes_nothing,
    an_order_created_twice_in_one_batch_is_refused,
    candles_are_exact,
    pagination_walks_everything,
    wide_values_round_trip,
    replaced_orders_keep_every_signed_version,
    listener_cursor_is_saved_and_replaced,
);

// ---------------------------------------------------------------- event streams from State

const BASE: u8 = 0;
const QUOTE: u8 = 1;
/// An hour boundary (unix seconds).
const T0: u64 = 1_699_999_200;

fn exchange() -> Pubkey {
    Pubkey::new_from_array([9; 32])
}

fn rules() -> Rules {
    Rules {
        exchange: exchange(),
        assets: vec![
            Pubkey::new_from_array([1; 32]),
            Pubkey::new_from_array([2; 32]),
        ],
        markets: vec![MarketSpec {
            index: 0,
            base_asset: BASE,
            quote_asset: QUOTE,
            base_lot_size: 1_000,
            tick_size: 10,
            min_size_lots: 1,
            max_size_lots: 1_000_000,
            min_price_ticks: 1,
            max_price_ticks: 1_000_000,
            maker_fee_bps: 10,
            taker_fee_bps: 25,
            max_orders: 4_096,
        }],
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

    fn owner(&self) -> Owner {
        self.key.verifying_key().to_bytes()
    }

    fn order(&mut self, side: Side, order_type: OrderType, price: u64, size: u64) -> Command {
        self.nonce += 1;
        let client_order_id = 1_000 + self.nonce;
        self.order_with(side, order_type, price, size, self.nonce, client_order_id)
    }

    fn order_with(
        &self,
        side: Side,
        order_type: OrderType,
        price: u64,
        size: u64,
        nonce: u64,
        client_order_id: u64,
    ) -> Command {
        let order = Order {
            exchange: exchange(),
            owner: Pubkey::new_from_array(self.owner()),
            market_index: 0,
            side,
            order_type,
            self_trade: SelfTrade::CancelTaker,
            price_ticks: price,
            size_lots: size,
            nonce,
            expiry: 0,
            client_order_id,
        };
        let signature = self.key.sign(&order.encode()).to_bytes();
        Command::Place { order, signature }
    }

    fn cancel(&self, nonce: u64) -> Command {
        Command::Cancel(Cancel {
            exchange: exchange(),
            owner: Pubkey::new_from_array(self.owner()),
            market_index: 0,
            order_nonce: nonce,
            expiry: 0,
        })
    }

    fn withdraw(&self, asset: u8, amount: u64, nonce: u64) -> Command {
        Command::Withdraw(WithdrawRequest {
            exchange: exchange(),
            owner: Pubkey::new_from_array(self.owner()),
            mint: rules().assets[usize::from(asset)],
            amount,
            nonce,
            expiry: 0,
        })
    }
}

/// Drives the real state and keeps every event it emits, in sequence.
struct Journal {
    state: State,
    seq: u64,
    now_ms: u64,
    events: Vec<Sequenced>,
}

impl Journal {
    fn new() -> Self {
        Journal {
            state: State::new(rules()).unwrap(),
            seq: 0,
            now_ms: T0 * 1_000,
            events: Vec::new(),
        }
    }

    fn apply(&mut self, command: &Command) -> Vec<Event> {
        self.seq += 1;
        let events = self.state.apply(self.seq, self.now_ms, command);
        for (index, event) in events.iter().enumerate() {
            self.events.push(Sequenced {
                seq: self.seq,
                index: index as u32,
                timestamp_ms: self.now_ms,
                event: event.clone(),
            });
        }
        events
    }

    fn deposit(&mut self, owner: Owner, asset: u8, amount: u64) {
        let mut tx = [0u8; 64];
        tx[..8].copy_from_slice(&(self.seq + 1).to_le_bytes());
        self.apply(&Command::DepositObserved {
            owner,
            asset,
            amount,
            tx,
            ix_index: u16::from(asset),
        });
    }

    fn fills(&self) -> Vec<(Position, Event)> {
        self.events
            .iter()
            .filter(|e| matches!(e.event, Event::Fill { .. }))
            .map(|e| (position(e), e.event.clone()))
            .collect()
    }
}

fn position(e: &Sequenced) -> Position {
    Position {
        seq: e.seq,
        index: e.index,
    }
}

/// A realistic stream: deposits, random crossing limit and IOC orders over ~40 minutes,
/// cancels, settlement updates, withdrawals (confirmed, failed, pending) and a raised floor.
fn random_journal() -> (Journal, Vec<Wallet>) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut journal = Journal::new();
    let mut wallets: Vec<Wallet> = (1..=4).map(Wallet::new).collect();
    for w in &wallets {
        journal.deposit(w.owner(), BASE, 1_000_000_000);
        journal.deposit(w.owner(), QUOTE, 1_000_000_000);
    }
    let mut fill_ids = Vec::new();
    for _ in 0..180 {
        journal.now_ms += rng.gen_range(0..15_000);
        let who = rng.gen_range(0..wallets.len());
        let command = match rng.gen_range(0..10) {
            0..=6 => {
                let side = if rng.gen_bool(0.5) {
                    Side::Buy
                } else {
                    Side::Sell
                };
                let order_type = if rng.gen_range(0..6) == 0 {
                    OrderType::ImmediateOrCancel
                } else {
                    OrderType::Limit
                };
                let price = rng.gen_range(95..=105);
                let size = rng.gen_range(1..=20);
                wallets[who].order(side, order_type, price, size)
            }
            7 => {
                let nonce = rng.gen_range(1..=wallets[who].nonce.max(1));
                wallets[who].cancel(nonce)
            }
            8 if !fill_ids.is_empty() => Command::SettlementUpdate {
                market: 0,
                fill_id: fill_ids[rng.gen_range(0..fill_ids.len())],
                status: if rng.gen_bool(0.5) {
                    SettlementStatus::Submitted
                } else {
                    SettlementStatus::Confirmed
                },
            },
            _ => Command::Tick,
        };
        for event in journal.apply(&command) {
            if let Event::Fill { fill_id, .. } = event {
                fill_ids.push(fill_id);
            }
        }
    }
    if let Some(fill_id) = fill_ids.first() {
        journal.apply(&Command::SettlementUpdate {
            market: 0,
            fill_id: *fill_id,
            status: SettlementStatus::Quarantined,
        });
    }
    let w = &wallets[0];
    journal.apply(&w.withdraw(QUOTE, 1_000, 1));
    let confirmed = journal.seq;
    journal.apply(&w.withdraw(QUOTE, 2_000, 2));
    let failed = journal.seq;
    journal.apply(&w.withdraw(BASE, 3_000, 3));
    journal.apply(&w.withdraw(QUOTE, 4_000, 4));
    let broadcasting = journal.seq;
    journal.apply(&Command::WithdrawalFinished {
        id: confirmed,
        confirmed: true,
    });
    journal.apply(&Command::WithdrawalBroadcast {
        id: failed,
        tx: [0xf1; 64],
        last_valid_block_height: 77,
    });
    journal.apply(&Command::WithdrawalFinished {
        id: failed,
        confirmed: false,
    });
    journal.apply(&Command::WithdrawalBroadcast {
        id: broadcasting,
        tx: [0xf2; 64],
        last_valid_block_height: 88,
    });
    for kind in [
        ChainWithdrawalKind::Requested { amount: 5_000 },
        ChainWithdrawalKind::Executed,
    ] {
        journal.apply(&Command::ChainWithdrawal {
            owner: w.owner(),
            asset: BASE,
            tx: [0xe0; 64],
            ix_index: u16::from(kind == ChainWithdrawalKind::Executed),
            kind,
        });
    }
    journal.apply(&Command::NonceFloorObserved {
        owner: wallets[1].owner(),
        floor: wallets[1].nonce / 2,
    });
    (journal, wallets)
}

async fn apply_in_batches(store: &Store, events: &[Sequenced], size: usize) {
    for batch in events.chunks(size) {
        store.apply_batch(batch).await.unwrap();
    }
}

// ---------------------------------------------------------------- tests

async fn projection_matches_the_state(fx: Fixture) {
    let (journal, wallets) = random_journal();
    let store = fx.store().await;
    apply_in_batches(&store, &journal.events, 7).await;
    assert_eq!(
        store.cursor().await.unwrap(),
        position(journal.events.last().unwrap())
    );

    // Balances: every (owner, asset) of the ledger, exactly.
    let mut by_owner: HashMap<Owner, usize> = HashMap::new();
    for ((owner, asset), balance) in journal.state.ledger().iter() {
        *by_owner.entry(*owner).or_default() += 1;
        let rows = store.balances(owner).await.unwrap();
        let row = rows.iter().find(|r| r.asset == *asset).unwrap();
        assert_eq!(
            (row.available, row.frozen, row.version),
            (balance.available, balance.frozen, balance.version)
        );
    }
    for (owner, count) in by_owner {
        assert_eq!(store.balances(&owner).await.unwrap().len(), count);
    }

    // Fills: the table is the Fill events, in order, with the last settlement status.
    let fills = journal.fills();
    assert!(fills.len() > 20, "the stream should trade: {}", fills.len());
    let mut status: HashMap<u64, SettlementStatus> = HashMap::new();
    for e in &journal.events {
        if let Event::Settlement {
            fill_id, status: s, ..
        } = e.event
        {
            status.insert(fill_id, s);
        }
    }
    let mut stored = store.recent_trades(0, 1_000).await.unwrap();
    stored.reverse();
    assert_eq!(stored.len(), fills.len());
    for (row, (at, event)) in stored.iter().zip(&fills) {
        let Event::Fill {
            market,
            fill_id,
            maker_order_id,
            taker_order_id,
            maker,
            taker,
            taker_side,
            price_ticks,
            size_lots,
            notional,
            maker_fee,
            taker_fee,
            maker_nonce,
            taker_nonce,
        } = event.clone()
        else {
            unreachable!()
        };
        assert_eq!(row.position, *at);
        assert_eq!(
            (
                row.market,
                row.fill_id,
                row.maker_order_id,
                row.taker_order_id
            ),
            (market, fill_id, maker_order_id, taker_order_id)
        );
        assert_eq!(
            (row.maker, row.taker, row.taker_side),
            (maker, taker, taker_side)
        );
        assert_eq!(
            (
                row.price_ticks,
                row.size_lots,
                row.notional,
                row.maker_fee,
                row.taker_fee
            ),
            (price_ticks, size_lots, notional, maker_fee, taker_fee)
        );
        assert_eq!(
            (row.maker_nonce, row.taker_nonce),
            (maker_nonce, taker_nonce)
        );
        let expected = status
            .get(&fill_id)
            .copied()
            .unwrap_or(SettlementStatus::Pending);
        assert_eq!(row.settlement_status, expected);
        let outbox = store.settlement(market, fill_id).await.unwrap().unwrap();
        assert_eq!(outbox.status, expected);
    }
    let pending: Vec<u64> = store
        .next_pending_settlements(1_000)
        .await
        .unwrap()
        .iter()
        .map(|f| f.fill_id)
        .collect();
    let expected_pending: Vec<u64> = stored
        .iter()
        .filter(|f| f.settlement_status == SettlementStatus::Pending)
        .map(|f| f.fill_id)
        .collect();
    assert_eq!(pending, expected_pending);
    assert!(!pending.is_empty() && pending.len() < stored.len());
    assert_eq!(store.next_pending_settlements(2).await.unwrap().len(), 2);
    // Not final (pending or submitted), with their parties, paged from a position.
    let unsettled: Vec<(u64, [u8; 32], [u8; 32])> = store
        .unsettled_fills(Position::default(), 1_000)
        .await
        .unwrap()
        .iter()
        .map(|f| (f.fill_id, f.maker, f.taker))
        .collect();
    let not_final: Vec<&FillRow> = stored
        .iter()
        .filter(|f| {
            matches!(
                f.settlement_status,
                SettlementStatus::Pending | SettlementStatus::Submitted
            )
        })
        .collect();
    let expected: Vec<(u64, [u8; 32], [u8; 32])> = not_final
        .iter()
        .map(|f| (f.fill_id, f.maker, f.taker))
        .collect();
    assert_eq!(unsettled, expected);
    assert!(unsettled.len() > pending.len() && unsettled.len() < stored.len());
    let tail = store
        .unsettled_fills(not_final[0].position, 1_000)
        .await
        .unwrap();
    assert_eq!(tail.len(), unsettled.len() - 1);

    // Orders: every accepted order, open exactly until its OrderDone, with its reason.
    let mut done: HashMap<u64, (DoneReason, u64)> = HashMap::new();
    let mut filled: HashMap<u64, u64> = HashMap::new();
    for e in &journal.events {
        match &e.event {
            Event::OrderDone {
                order_id,
                reason,
                remaining_lots,
                ..
            } => {
                done.insert(*order_id, (*reason, *remaining_lots));
            }
            Event::Fill {
                maker_order_id,
                taker_order_id,
                size_lots,
                ..
            } => {
                *filled.entry(*maker_order_id).or_default() += size_lots;
                *filled.entry(*taker_order_id).or_default() += size_lots;
            }
            _ => {}
        }
    }
    let mut reasons = std::collections::HashSet::new();
    for e in &journal.events {
        let Event::OrderAccepted {
            order_id,
            owner,
            size_lots,
            client_order_id,
            signed,
            ..
        } = &e.event
        else {
            continue;
        };
        let row = store.order(*order_id).await.unwrap().unwrap();
        assert_eq!(row.owner, *owner);
        assert_eq!(row.signed, *signed);
        assert_eq!(row.created_seq, e.seq);
        let fill = filled.get(order_id).copied().unwrap_or(0);
        assert_eq!(row.filled_lots, fill);
        match done.get(order_id) {
            Some((reason, remaining)) => {
                reasons.insert(*reason);
                assert_eq!(row.status, OrderStatus::from(*reason));
                assert_eq!(row.remaining_lots, *remaining);
            }
            None => {
                assert_eq!(row.status, OrderStatus::Open);
                assert_eq!(row.remaining_lots, size_lots - fill);
            }
        }
        let by_client = store
            .order_by_client_id(owner, *client_order_id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_client.order_id, *order_id);
    }
    assert!(reasons.contains(&DoneReason::Filled) && reasons.contains(&DoneReason::Cancelled));
    for w in &wallets {
        let open = store.open_orders(&w.owner()).await.unwrap();
        assert_eq!(open.len(), journal.state.open_orders(&w.owner()));
        assert!(open.iter().all(|o| o.status == OrderStatus::Open));
    }

    // Deposits, withdrawals, nonce floor.
    let mut credited: BTreeMap<([u8; 32], u8), u64> = BTreeMap::new();
    for e in &journal.events {
        if let Event::DepositCredited {
            owner,
            asset,
            amount,
            tx,
            ix_index,
        } = &e.event
        {
            *credited.entry((*owner, *asset)).or_default() += amount;
            let mut sig = [0u8; 64];
            hex::decode_to_slice(tx, &mut sig).unwrap();
            let rows = store.deposits_by_tx(&sig).await.unwrap();
            assert_eq!(rows.len(), 1);
            assert_eq!(
                (
                    rows[0].owner,
                    rows[0].asset,
                    rows[0].amount,
                    rows[0].ix_index,
                    rows[0].seq
                ),
                (*owner, *asset, *amount, *ix_index, e.seq)
            );
        }
    }
    assert!(!credited.is_empty());
    assert_eq!(store.credited_deposits().await.unwrap(), credited);
    let withdrawals = store.withdrawals(&wallets[0].owner()).await.unwrap();
    let statuses: Vec<_> = withdrawals
        .iter()
        .map(|w| {
            (
                w.amount,
                w.status,
                w.kind,
                w.tx.clone(),
                w.last_valid_block_height,
            )
        })
        .collect();
    let (cosigned, exit) = (WithdrawalKind::Cosigned, WithdrawalKind::ExitHatch);
    let hex_of = |b: u8| Some(hex::encode([b; 64]));
    assert_eq!(
        statuses,
        vec![
            (5_000, WithdrawalStatus::Confirmed, exit, hex_of(0xe0), None),
            (
                4_000,
                WithdrawalStatus::Broadcasting,
                cosigned,
                hex_of(0xf2),
                Some(88)
            ),
            (3_000, WithdrawalStatus::Pending, cosigned, None, None),
            (
                2_000,
                WithdrawalStatus::Failed,
                cosigned,
                hex_of(0xf1),
                Some(77)
            ),
            (1_000, WithdrawalStatus::Confirmed, cosigned, None, None),
        ]
    );
    let broadcasting = store.broadcasting_withdrawals(10).await.unwrap();
    assert_eq!(broadcasting.len(), 1);
    assert_eq!(broadcasting[0].amount, 4_000);
    assert_eq!(
        store.withdrawal(broadcasting[0].id).await.unwrap().as_ref(),
        Some(&broadcasting[0])
    );
    assert_eq!(store.withdrawal(u64::MAX >> 1).await.unwrap(), None);
    assert_eq!(
        store.nonce_floor(&wallets[1].owner()).await.unwrap(),
        Some(wallets[1].nonce / 2)
    );
    assert_eq!(store.nonce_floor(&wallets[2].owner()).await.unwrap(), None);
}

async fn reapplying_changes_nothing(fx: Fixture) {
    let (journal, _) = random_journal();
    let store = fx.store().await;
    apply_in_batches(&store, &journal.events, 11).await;
    let before = store.table_digests().await.unwrap();
    for batch in journal.events.chunks(11) {
        assert_eq!(store.apply_batch(batch).await.unwrap().events, 0);
    }
    // Overlapping windows and the whole journal at once.
    assert_eq!(
        store
            .apply_batch(&journal.events[5..300])
            .await
            .unwrap()
            .events,
        0
    );
    assert_eq!(store.apply_batch(&journal.events).await.unwrap().events, 0);
    assert_eq!(store.table_digests().await.unwrap(), before);
}

async fn rebuild_from_scratch_is_identical(fx: Fixture) {
    let (journal, _) = random_journal();
    // Live: small batches that split commands' events, with an overlap replayed midway.
    let live = fx.store().await;
    let half = journal.events.len() / 2;
    apply_in_batches(&live, &journal.events[..half], 5).await;
    apply_in_batches(&live, &journal.events[half - 17..], 5).await;
    // Rebuilds: the whole journal in one batch, and through the projector task.
    let rebuilt = fx.store().await;
    let applied = rebuilt.apply_batch(&journal.events).await.unwrap();
    assert_eq!(applied.events, journal.events.len());
    let projected = fx.store().await;
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let task = spawn_projector(
        projected.clone(),
        receiver,
        ProjectorConfig {
            max_batch: 16,
            max_delay: Duration::from_millis(10),
        },
        |_| {},
    );
    for (i, e) in journal.events.iter().enumerate() {
        sender.send(e.clone()).await.unwrap();
        if i % 97 == 0 {
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    drop(sender);
    let cursor = task.await.unwrap().unwrap();
    assert_eq!(cursor, position(journal.events.last().unwrap()));

    // One event per batch: what folding a batch in memory must reproduce.
    let one_by_one = fx.store().await;
    apply_in_batches(&one_by_one, &journal.events, 1).await;

    let digests = live.table_digests().await.unwrap();
    assert!(digests.iter().all(|d| d.rows > 0), "{digests:?}");
    assert_eq!(rebuilt.table_digests().await.unwrap(), digests);
    assert_eq!(projected.table_digests().await.unwrap(), digests);
    assert_eq!(one_by_one.table_digests().await.unwrap(), digests);
}

/// Projects a random journal, then applies the batch `build` makes (given the journal and the
/// next sequence number), which must be refused without writing anything: the cursor and every
/// table stay as they were. Returns the store and the refusal.
async fn refused_batch(
    fx: Fixture,
    build: impl FnOnce(&Journal, u64) -> Vec<Sequenced>,
) -> (Store, StoreError) {
    let (journal, _) = random_journal();
    let store = fx.store().await;
    store.apply_batch(&journal.events).await.unwrap();
    let cursor = store.cursor().await.unwrap();
    let before = store.table_digests().await.unwrap();
    let batch = build(&journal, cursor.seq + 1);
    let refused = store.apply_batch(&batch).await.unwrap_err();
    assert_eq!(store.cursor().await.unwrap(), cursor);
    assert_eq!(store.table_digests().await.unwrap(), before);
    (store, refused)
}

/// A valid event to open a batch with, so that a refusal later in it must undo it.
fn nonce_floor(journal: &Journal, seq: u64) -> Sequenced {
    Sequenced {
        seq,
        index: 0,
        timestamp_ms: journal.now_ms,
        event: Event::NonceFloor {
            owner: [7; 32],
            floor: 3,
        },
    }
}

async fn duplicate_deposit_is_refused(fx: Fixture) {
    let mut original = None;
    let (store, refused) = refused_batch(fx, |journal, next| {
        let deposit = journal
            .events
            .iter()
            .find(|e| matches!(e.event, Event::DepositCredited { .. }))
            .unwrap()
            .clone();
        original = Some(deposit.clone());
        vec![
            nonce_floor(journal, next),
            Sequenced {
                seq: next,
                index: 1,
                ..deposit
            },
        ]
    })
    .await;
    assert!(matches!(refused, StoreError::Database(_)), "{refused:?}");
    let original = original.unwrap();
    let Event::DepositCredited { tx, .. } = original.event else {
        unreachable!()
    };
    let mut sig = [0u8; 64];
    hex::decode_to_slice(tx, &mut sig).unwrap();
    let rows = store.deposits_by_tx(&sig).await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].seq, original.seq);
}

/// A batch naming an order the projection does not have stops there: the typed error names
/// the event, and nothing of the batch (not even its valid events before) is written.
async fn an_unknown_order_is_inconsistent_and_writes_nothing(fx: Fixture) {
    let mut next_seq = 0;
    let (_, refused) = refused_batch(fx, |journal, next| {
        next_seq = next;
        vec![
            nonce_floor(journal, next),
            Sequenced {
                seq: next,
                index: 1,
                timestamp_ms: journal.now_ms,
                event: Event::OrderDone {
                    order_id: 999_999,
                    market: 0,
                    owner: [7; 32],
                    reason: DoneReason::Cancelled,
                    remaining_lots: 0,
                },
            },
        ]
    })
    .await;
    assert!(
        matches!(
            refused,
            StoreError::Inconsistent {
                seq,
                index: 1,
                what: "order",
                id: 999_999,
            } if seq == next_seq
        ),
        "{refused:?}"
    );
}

/// Two acceptances of one order id in a batch: a typed refusal naming the second, nothing
/// written.
async fn an_order_created_twice_in_one_batch_is_refused(fx: Fixture) {
    let mut next_seq = 0;
    let (_, refused) = refused_batch(fx, |journal, next| {
        next_seq = next;
        let accepted = journal
            .events
            .iter()
            .find(|e| matches!(e.event, Event::OrderAccepted { .. }))
            .unwrap();
        let mut twice = Vec::new();
        for (index, nonce) in [(0, 777_777), (1, 777_778)] {
            let mut event = accepted.event.clone();
            if let Event::OrderAccepted {
                order_id,
                nonce: signed_nonce,
                ..
            } = &mut event
            {
                *order_id = 888_888;
                *signed_nonce = nonce;
            }
            twice.push(Sequenced {
                seq: next,
                index,
                timestamp_ms: journal.now_ms,
                event,
            });
        }
        twice
    })
    .await;
    assert!(
        matches!(
            refused,
            StoreError::Duplicate {
                seq,
                index: 1,
                what: "order",
                id: 888_888,
            } if seq == next_seq
        ),
        "{refused:?}"
    );
}

async fn candles_are_exact(fx: Fixture) {
    let mut journal = Journal::new();
    let mut seller = Wallet::new(1);
    let mut buyer = Wallet::new(2);
    journal.deposit(seller.owner(), BASE, 1_000_000_000);
    journal.deposit(buyer.owner(), QUOTE, 1_000_000_000);
    // (seconds after T0, price, lots): three trades in the first minute, one in the second,
    // one an hour later.
    let trades = [
        (1, 100, 5),
        (20, 102, 3),
        (50, 98, 2),
        (70, 105, 4),
        (3_601, 90, 1),
    ];
    for (at, price, lots) in trades {
        journal.now_ms = (T0 + at) * 1_000;
        journal.apply(&seller.order(Side::Sell, OrderType::Limit, price, lots));
        journal.apply(&buyer.order(Side::Buy, OrderType::ImmediateOrCancel, price, lots));
    }
    assert_eq!(journal.fills().len(), trades.len());
    let store = fx.store().await;
    apply_in_batches(&store, &journal.events, 3).await;

    let ohlcv = |c: &kestrel_router::store::Candle| {
        (
            c.open_time,
            c.open_ticks,
            c.high_ticks,
            c.low_ticks,
            c.close_ticks,
            c.volume_lots,
            c.trades,
        )
    };
    let minutes: Vec<_> = store
        .candles(0, 60, T0, T0 + 7_200)
        .await
        .unwrap()
        .iter()
        .map(ohlcv)
        .collect();
    assert_eq!(
        minutes,
        vec![
            (T0, 100, 102, 98, 98, 10, 3),
            (T0 + 60, 105, 105, 105, 105, 4, 1),
            (T0 + 3_600, 90, 90, 90, 90, 1, 1),
        ]
    );
    let hours: Vec<_> = store
        .candles(0, 3_600, 0, u64::MAX)
        .await
        .unwrap()
        .iter()
        .map(ohlcv)
        .collect();
    assert_eq!(
        hours,
        vec![
            (T0, 100, 105, 98, 105, 14, 4),
            (T0 + 3_600, 90, 90, 90, 90, 1, 1)
        ]
    );
    // The newest candles first, as many as asked (what market data seeds itself from).
    let latest: Vec<_> = store
        .latest_candles(0, 60, 2)
        .await
        .unwrap()
        .iter()
        .map(ohlcv)
        .collect();
    assert_eq!(
        latest,
        vec![
            (T0 + 3_600, 90, 90, 90, 90, 1, 1),
            (T0 + 60, 105, 105, 105, 105, 4, 1),
        ]
    );
    // Quote volume is the sum of notionals (tick size 10).
    let hour = store.candles(0, 3_600, T0, T0 + 1).await.unwrap();
    assert_eq!(
        hour[0].quote_volume,
        (100 * 5 + 102 * 3 + 98 * 2 + 105 * 4) * 10
    );
    // The range is half-open and per interval.
    assert!(store
        .candles(0, 60, T0 + 1, T0 + 60)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.candles(0, 86_400, 0, u64::MAX).await.unwrap().len(),
        1
    );
    assert!(store.candles(1, 60, 0, u64::MAX).await.unwrap().is_empty());
}

async fn pagination_walks_everything(fx: Fixture) {
    let (journal, wallets) = random_journal();
    let store = fx.store().await;
    apply_in_batches(&store, &journal.events, 50).await;
    let owner = wallets[2].owner();

    let expected_fills: Vec<Position> = journal
        .fills()
        .into_iter()
        .rev()
        .filter(|(_, e)| matches!(e, Event::Fill { maker, taker, .. } if *maker == owner || *taker == owner))
        .map(|(at, _)| at)
        .collect();
    assert!(expected_fills.len() > 8);
    let mut walked = Vec::new();
    let mut page = Page {
        before: None,
        limit: 4,
    };
    loop {
        let rows = store.fills_of_owner(&owner, page).await.unwrap();
        assert!(rows.len() <= 4);
        let Some(last) = rows.last() else { break };
        page.before = Some(last.position);
        walked.extend(rows.iter().map(|r| r.position));
    }
    assert_eq!(walked, expected_fills);

    for asset in [BASE, QUOTE] {
        let expected: Vec<(Position, u64, u64)> = journal
            .events
            .iter()
            .rev()
            .filter_map(|e| match &e.event {
                Event::Ledger {
                    owner: o,
                    asset: a,
                    available,
                    frozen,
                    ..
                } if *o == owner && *a == asset => Some((position(e), *available, *frozen)),
                _ => None,
            })
            .collect();
        let mut walked = Vec::new();
        let mut page = Page {
            before: None,
            limit: 7,
        };
        loop {
            let rows = store.ledger_history(&owner, asset, page).await.unwrap();
            let Some(last) = rows.last() else { break };
            page.before = Some(last.position);
            walked.extend(rows.iter().map(|r| (r.position, r.available, r.frozen)));
        }
        assert_eq!(walked, expected);
    }
    // A page size of zero returns nothing; an unknown owner has no history.
    let none = Page {
        before: None,
        limit: 0,
    };
    assert!(store.fills_of_owner(&owner, none).await.unwrap().is_empty());
    let stranger = Page {
        before: None,
        limit: 10,
    };
    assert!(store
        .fills_of_owner(&[0xee; 32], stranger)
        .await
        .unwrap()
        .is_empty());
}

async fn wide_values_round_trip(fx: Fixture) {
    let mut journal = Journal::new();
    let whale = Wallet::new(5);
    let huge = u64::MAX - 5;
    journal.deposit(whale.owner(), BASE, huge);
    journal.apply(&whale.order_with(
        Side::Sell,
        OrderType::Limit,
        1_000_000,
        1_000_000,
        u64::MAX - 1,
        u64::MAX,
    ));
    let store = fx.store().await;
    store.apply_batch(&journal.events).await.unwrap();

    let balance = journal.state.ledger().balance(&whale.owner(), BASE);
    assert!(balance.available > i64::MAX as u64);
    let credited = store.credited_deposits().await.unwrap();
    assert_eq!(credited.get(&(whale.owner(), BASE)), Some(&huge));
    let rows = store.balances(&whale.owner()).await.unwrap();
    assert_eq!(
        (rows[0].available, rows[0].frozen),
        (balance.available, balance.frozen)
    );
    let order = store
        .order_by_client_id(&whale.owner(), u64::MAX)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (order.nonce, order.client_order_id),
        (u64::MAX - 1, u64::MAX)
    );
    let history = store
        .ledger_history(
            &whale.owner(),
            BASE,
            Page {
                before: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(history.last().unwrap().available_delta, i128::from(huge));
    assert_eq!(history[0].frozen_delta, 1_000_000_000);
    assert_eq!(history[0].available_delta, -1_000_000_000);
}

/// The listener cursor starts absent, is saved and replaced per name;
/// a slot beyond BIGINT is refused and changes nothing.
async fn listener_cursor_is_saved_and_replaced(fx: Fixture) {
    let store = fx.store().await;
    assert_eq!(store.listener_cursor("router").await.unwrap(), None);
    let first = ListenerCursor {
        signature: "5VERv8NMvzbJMEkV8xnrLkEaWRtSz9CosKDYjCJjBRnbJLgp8uirBgmQpjKhoR4tjF3ZpRzrFmBV6UjKdiSZkQUW".into(),
        slot: 41,
    };
    store.save_listener_cursor("router", &first).await.unwrap();
    let second = ListenerCursor {
        signature: "2nBhEBYYvfaAe16UMNqRHre4YNSskvuYgx3M6E4JP1oDYvZEJHvoPzyUidNgNX5r9sTyN1J9UxtbCXy2rqYcuyuv".into(),
        slot: i64::MAX as u64,
    };
    store.save_listener_cursor("router", &second).await.unwrap();
    store.save_listener_cursor("other", &first).await.unwrap();
    let too_far = ListenerCursor {
        slot: u64::MAX,
        ..first.clone()
    };
    assert!(matches!(
        store.save_listener_cursor("router", &too_far).await,
        Err(StoreError::OutOfRange { field: "slot", .. })
    ));
    assert_eq!(store.listener_cursor("router").await.unwrap(), Some(second));
    assert_eq!(store.listener_cursor("other").await.unwrap(), Some(first));
}

/// A fill, a replace (new nonce), a second fill: each fill names the nonce it matched, the
/// store keeps both signed versions, and the settled balances move only with confirmed fills.
async fn replaced_orders_keep_every_signed_version(fx: Fixture) {
    let store = fx.store().await;
    let mut journal = Journal::new();
    let mut maker = Wallet::new(1);
    let mut taker = Wallet::new(2);
    for w in [&maker, &taker] {
        journal.deposit(w.owner(), BASE, 1_000_000);
        journal.deposit(w.owner(), QUOTE, 1_000_000);
    }
    let first = maker.order(Side::Sell, OrderType::Limit, 100, 10);
    journal.apply(&first);
    journal.apply(&taker.order(Side::Buy, OrderType::Limit, 100, 4));
    let Command::Place {
        order: old_terms, ..
    } = first
    else {
        panic!("a place")
    };
    let Command::Place {
        order: new_terms,
        signature,
    } = maker.order_with(
        Side::Sell,
        OrderType::Limit,
        100,
        5,
        2,
        old_terms.client_order_id,
    )
    else {
        panic!("a place")
    };
    maker.nonce = 2;
    let replaced = journal.apply(&Command::Replace {
        cancel: Cancel {
            exchange: exchange(),
            owner: old_terms.owner,
            market_index: 0,
            order_nonce: 1,
            expiry: 0,
        },
        order: new_terms,
        signature,
    });
    assert!(
        replaced
            .iter()
            .any(|e| matches!(e, Event::OrderReplaced { nonce: 2, .. })),
        "{replaced:?}"
    );
    journal.apply(&taker.order(Side::Buy, OrderType::Limit, 100, 3));
    apply_in_batches(&store, &journal.events, 5).await;

    let fills = store.next_pending_settlements(10).await.unwrap();
    let maker_nonces: Vec<u64> = fills.iter().map(|f| f.maker_nonce).collect();
    assert_eq!(maker_nonces, vec![1, 2]);
    for (nonce, terms) in [(1, &old_terms), (2, &new_terms)] {
        let version = store
            .order_version(&maker.owner(), nonce)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(version.signed, hex::encode(terms.encode()), "nonce {nonce}");
        assert_eq!(version.order_id, fills[0].maker_order_id);
    }
    assert!(store
        .order_version(&maker.owner(), 3)
        .await
        .unwrap()
        .is_none());
    // The current row carries only the new terms.
    let current = store.order(fills[0].maker_order_id).await.unwrap().unwrap();
    assert_eq!(current.nonce, 2);

    // Nothing confirmed: the settled balances are the deposits.
    let settled = store.settled_balances().await.unwrap();
    for w in [&maker, &taker] {
        for asset in [BASE, QUOTE] {
            assert_eq!(settled.get(&(w.owner(), asset)), Some(&1_000_000));
        }
    }
    assert!(!settled.keys().any(|(owner, _)| *owner == [0; 32]));
    // The first fill confirmed: its base moves (4 lots of 1,000 atoms) on the settled figures.
    journal.apply(&Command::SettlementUpdate {
        market: 0,
        fill_id: fills[0].fill_id,
        status: SettlementStatus::Confirmed,
    });
    apply_in_batches(&store, &journal.events, 5).await;
    let settled = store.settled_balances().await.unwrap();
    assert_eq!(
        settled.get(&(maker.owner(), BASE)),
        Some(&(1_000_000 - 4_000))
    );
    assert_eq!(
        settled.get(&(taker.owner(), BASE)),
        Some(&(1_000_000 + 4_000))
    );

    // A fill left submitted (its relayer stopped) is listed for a restarted relayer, by page.
    journal.apply(&Command::SettlementUpdate {
        market: 0,
        fill_id: fills[1].fill_id,
        status: SettlementStatus::Submitted,
    });
    apply_in_batches(&store, &journal.events, 5).await;
    let submitted = store
        .submitted_settlements(Position::default(), 10)
        .await
        .unwrap();
    assert_eq!(submitted.len(), 1);
    assert_eq!(submitted[0].fill_id, fills[1].fill_id);
    let after = store
        .submitted_settlements(submitted[0].position, 10)
        .await
        .unwrap();
    assert!(after.is_empty());
}
