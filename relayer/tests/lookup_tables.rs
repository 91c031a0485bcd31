//! v0 settle transactions over an address lookup table, on the embedded chain (where the
//! address-lookup-table program runs as real SBF) through `RpcClient` only: the relayer creates
//! and extends the table, waits until it is usable, packs with exact v0 sizes, and a batch
//! beyond the legacy limits settles as one v0 transaction with the right balances and fee;
//! `getTransaction` reports the addresses it loaded; a refused v0 batch is bisected in v0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;

use common::{Chain, Exchange, LOT, TICK};
use kestrel::error::KestrelError;
use kestrel::state::{Market, UserAccount};
use kestrel_relayer::batcher::{Limits, Packer, PendingFill};
use kestrel_relayer::lookup::{fixed_accounts, frequent_accounts, LookupTables};
use kestrel_relayer::submitter::{
    Attempt, Outcome, Quarantined, SettlementReport, Submitter, SubmitterConfig,
};
use kestrel_sdk::order::SignedOrder;
use kestrel_sdk::settle::PACKET_DATA_SIZE;
use kestrel_sdk::OrderBuilder;
use solana_client::rpc_config::RpcTransactionConfig;
use solana_sdk::message::VersionedMessage;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_transaction_status::{UiLoadedAddresses, UiTransactionEncoding};
use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

const MAKERS: usize = 12;

#[derive(Default)]
struct Report {
    attempts: Mutex<Vec<Attempt>>,
    quarantined: Mutex<Vec<Quarantined>>,
}

impl SettlementReport for Report {
    fn submitted(&self, _: &Attempt) {}
    fn finished(&self, attempt: &Attempt) {
        self.attempts.lock().unwrap().push(attempt.clone());
    }
    fn confirmed(&self, _: u32, _: u64, _: Option<Signature>) {}
    fn quarantined(&self, fill: &Quarantined) {
        self.quarantined.lock().unwrap().push(fill.clone());
    }
}

/// One lot from each maker's ask, bought by `bid`, fill ids from `first`.
fn sweep(asks: &[SignedOrder], bid: SignedOrder, first: u64) -> Vec<PendingFill> {
    asks.iter()
        .enumerate()
        .map(|(i, ask)| PendingFill {
            market: 0,
            fill_id: first + i as u64,
            maker: *ask,
            taker: bid,
            price_ticks: 100,
            size_lots: 1,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_beyond_the_legacy_limits_settles_as_one_v0_transaction() {
    let c = Chain::start().await;
    let ex = Exchange::deploy(&c).await;
    let (d, operator) = (&ex.d, &ex.operator);
    let (taker, _) = ex.user(&c, 1, 1_000_000, 0).await;
    let mut makers: Vec<Keypair> = Vec::new();
    for _ in 0..MAKERS {
        makers.push(ex.user(&c, 0, 10 * LOT, 0).await.0);
    }
    let asks: Vec<SignedOrder> = makers
        .iter()
        .map(|m| {
            OrderBuilder::limit(0)
                .sell()
                .price(100)
                .size(10)
                .sign(d.exchange, m, 1)
                .unwrap()
        })
        .collect();
    let bid = |nonce| {
        OrderBuilder::limit(0)
            .buy()
            .price(100)
            .size(MAKERS as u64)
            .sign(d.exchange, &taker, nonce)
            .unwrap()
    };
    let first_sweep = sweep(&asks, bid(100), 1);
    let second_sweep = sweep(&asks, bid(101), 1 + MAKERS as u64);

    // The table: fixed accounts, then every user account and order record of both sweeps.
    let mut tables = LookupTables::new(Duration::from_millis(20));
    let mut wanted = fixed_accounts(d, 0);
    let all: Vec<PendingFill> = first_sweep.iter().chain(&second_sweep).copied().collect();
    wanted.extend(frequent_accounts(d, &all));
    let added = tables.add(&c.rpc, operator, &wanted).await.unwrap();
    assert_eq!(added, 4 + (1 + MAKERS) + (2 + MAKERS));
    assert_eq!(tables.tables().len(), 1);
    assert_eq!(tables.tables()[0].addresses, wanted);
    // Adding them again changes nothing.
    assert_eq!(tables.add(&c.rpc, operator, &wanted).await.unwrap(), 0);
    // A restarted relayer reads the same table back from the chain by its key.
    let key = tables.tables()[0].key;
    let reopened = LookupTables::existing(&c.rpc, &[key], Duration::from_millis(20))
        .await
        .unwrap();
    assert_eq!(reopened.tables(), tables.tables());
    assert!(
        LookupTables::existing(&c.rpc, &[Pubkey::new_unique()], Duration::from_millis(20))
            .await
            .is_err()
    );

    let packer = Packer {
        deployment: d,
        operator: operator.pubkey(),
        limits: Limits::default(),
    };
    let report = Report::default();
    let config = SubmitterConfig {
        poll_interval: Duration::from_millis(20),
        ..SubmitterConfig::default()
    };
    let mut submitter = Submitter::new(&c.rpc, d, operator, &report, config);

    // First sweep: every order new. v0 packs at least as densely as legacy.
    let mut next = 1;
    let legacy = packer
        .pack(&first_sweep, &HashSet::new(), &mut next.clone())
        .unwrap();
    let v0 = packer
        .pack_with_tables(&first_sweep, &HashSet::new(), &mut next, tables.tables())
        .unwrap();
    assert!(v0.len() <= legacy.len(), "{} > {}", v0.len(), legacy.len());
    assert!(v0.iter().all(|p| !p.lookup_tables.is_empty()));
    assert!(legacy.iter().all(|p| p.lookup_tables.is_empty()));
    let settled = submitter.settle(&v0).await.unwrap();
    assert_eq!(settled.confirmed.len(), MAKERS);
    assert!(settled.quarantined.is_empty());

    // Second sweep: the makers' orders are recorded, the taker's is new. Legacy needs several
    // transactions (6 fills at most with distinct makers); v0 carries all twelve in one.
    let recorded: HashSet<(Pubkey, u64)> = makers.iter().map(|m| (m.pubkey(), 1)).collect();
    let legacy = packer
        .pack(&second_sweep, &recorded, &mut next.clone())
        .unwrap();
    assert!(legacy.len() >= 2, "{}", legacy.len());
    let v0 = packer
        .pack_with_tables(&second_sweep, &recorded, &mut next, tables.tables())
        .unwrap();
    assert_eq!(v0.len(), 1);
    let packed = &v0[0];
    assert_eq!(packed.batch.fills.len(), MAKERS);
    assert!(packed.bytes <= PACKET_DATA_SIZE && packed.accounts <= 64);
    let before = c.rpc.get_balance(&operator.pubkey()).await.unwrap();
    let settled = submitter.settle(&v0).await.unwrap();
    assert_eq!(settled.confirmed.len(), MAKERS);
    let attempt = report.attempts.lock().unwrap().last().cloned().unwrap();
    assert_eq!(attempt.outcome, Outcome::Confirmed);
    assert_eq!(attempt.fills.len(), MAKERS);

    // The transaction as the chain recorded it: v0, exactly the packed size, every table
    // address it used reported as loaded, and the fee charged is the one reported.
    let tx = c
        .rpc
        .get_transaction_with_config(
            &attempt.signature,
            RpcTransactionConfig {
                encoding: Some(UiTransactionEncoding::Base64),
                max_supported_transaction_version: Some(0),
                ..RpcTransactionConfig::default()
            },
        )
        .await
        .unwrap();
    let meta = tx.transaction.meta.clone().unwrap();
    assert!(meta.err.is_none());
    let decoded = tx.transaction.transaction.decode().unwrap();
    assert_eq!(bincode::serialize(&decoded).unwrap().len(), packed.bytes);
    let VersionedMessage::V0(message) = &decoded.message else {
        panic!("a v0 message");
    };
    assert_eq!(message.address_table_lookups.len(), 1);
    let lookup = &message.address_table_lookups[0];
    assert_eq!(lookup.account_key, tables.tables()[0].key);
    let loaded: Option<UiLoadedAddresses> = meta.loaded_addresses.clone().into();
    let loaded = loaded.unwrap();
    let resolve = |indexes: &[u8]| -> Vec<String> {
        indexes
            .iter()
            .map(|i| tables.tables()[0].addresses[*i as usize].to_string())
            .collect()
    };
    assert_eq!(loaded.writable, resolve(&lookup.writable_indexes));
    assert_eq!(loaded.readonly, resolve(&lookup.readonly_indexes));
    // Only the signer and the invoked programs stay static: operator, Ed25519, kestrel.
    assert_eq!(message.account_keys.len(), 3);
    assert_eq!(
        message.account_keys.len() + loaded.writable.len() + loaded.readonly.len(),
        packed.accounts
    );
    assert!(loaded
        .writable
        .contains(&d.user_address(&makers[11].pubkey()).to_string()));
    // One operator signature and one Ed25519 signature (the taker's new order).
    assert_eq!(meta.fee, 10_000);
    // The operator paid the fee and the rent of the taker's new order record, nothing else.
    let after = c.rpc.get_balance(&operator.pubkey()).await.unwrap();
    let record = c
        .rpc
        .get_account(&d.order_address(&taker.pubkey(), 101))
        .await
        .unwrap();
    assert_eq!(before - after, meta.fee + record.lamports);
    assert_eq!(meta.pre_balances.len(), packed.accounts);
    // On-chain: 24 fills of one lot at 100, fees 2 and 5 bps rounded up.
    let market: Market = c.load(&d.market_address(0)).await;
    assert_eq!((market.last_fill_id, market.volume_lots), (24, 24));
    let notional = 100 * TICK;
    let (maker_fee, taker_fee) = (
        (notional * 2).div_ceil(10_000),
        (notional * 5).div_ceil(10_000),
    );
    assert_eq!(market.fees_accrued, 24 * (maker_fee + taker_fee));
    for m in &makers {
        let u: UserAccount = c.load(&d.user_address(&m.pubkey())).await;
        assert_eq!(
            (u.balances[0].available, u.balances[1].available),
            (8 * LOT, 2 * (notional - maker_fee))
        );
    }
    let t: UserAccount = c.load(&d.user_address(&taker.pubkey())).await;
    assert_eq!(
        (t.balances[0].available, t.balances[1].available),
        (24 * LOT, 1_000_000 - 24 * (notional + taker_fee))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_v0_batch_is_bisected_in_v0_and_the_bad_fill_quarantined() {
    let c = Chain::start().await;
    let ex = Exchange::deploy(&c).await;
    let (d, operator) = (&ex.d, &ex.operator);
    let (taker, _) = ex.user(&c, 1, 1_000_000, 0).await;
    let mut makers: Vec<Keypair> = Vec::new();
    for _ in 0..4 {
        makers.push(ex.user(&c, 0, 5 * LOT, 0).await.0);
    }
    let bid = OrderBuilder::limit(0)
        .buy()
        .price(100)
        .size(40)
        .sign(d.exchange, &taker, 100)
        .unwrap();
    // Fill 3 asks 6 lots of a 5-lot order: the program refuses it as an overfill.
    let fills: Vec<PendingFill> = makers
        .iter()
        .enumerate()
        .map(|(i, m)| PendingFill {
            market: 0,
            fill_id: i as u64 + 1,
            maker: OrderBuilder::limit(0)
                .sell()
                .price(100)
                .size(5)
                .sign(d.exchange, m, 1)
                .unwrap(),
            taker: bid,
            price_ticks: 100,
            size_lots: if i == 2 { 6 } else { 5 },
        })
        .collect();
    let mut tables = LookupTables::new(Duration::from_millis(20));
    let mut wanted = fixed_accounts(d, 0);
    wanted.extend(frequent_accounts(d, &fills));
    tables.add(&c.rpc, operator, &wanted).await.unwrap();
    let packed = Packer {
        deployment: d,
        operator: operator.pubkey(),
        limits: Limits::default(),
    }
    .pack_with_tables(&fills, &HashSet::new(), &mut 1, tables.tables())
    .unwrap();
    // The bad fill shares its transaction, so only bisection can isolate it.
    assert!(packed
        .iter()
        .any(|p| p.batch.fills.len() >= 2 && p.batch.fills.iter().any(|f| f.fill_id == 3)));

    let report = Report::default();
    let config = SubmitterConfig {
        poll_interval: Duration::from_millis(20),
        ..SubmitterConfig::default()
    };
    let mut submitter = Submitter::new(&c.rpc, d, operator, &report, config);
    let settled = submitter.settle(&packed).await.unwrap();
    assert_eq!(settled.confirmed, vec![(0, 1), (0, 2), (0, 4)]);
    let overfill = u32::from(KestrelError::SettlementOverfill);
    assert!(matches!(
        settled.quarantined.as_slice(),
        [q] if q.fill_id == 3 && q.code == Some(overfill)
    ));
    assert_eq!(report.quarantined.lock().unwrap().len(), 1);

    // Every attempt, the halves included, went out as a v0 message over the table.
    assert!(submitter.attempts().len() >= 3);
    for attempt in submitter.attempts() {
        let tx = c
            .rpc
            .get_transaction_with_config(
                &attempt.signature,
                RpcTransactionConfig {
                    encoding: Some(UiTransactionEncoding::Base64),
                    max_supported_transaction_version: Some(0),
                    ..RpcTransactionConfig::default()
                },
            )
            .await
            .unwrap();
        let decoded = tx.transaction.transaction.decode().unwrap();
        let VersionedMessage::V0(message) = &decoded.message else {
            panic!("attempt {attempt:?} was not v0");
        };
        assert_eq!(
            message.address_table_lookups[0].account_key,
            tables.tables()[0].key
        );
    }
    let market: Market = c.load(&d.market_address(0)).await;
    assert_eq!((market.last_fill_id, market.volume_lots), (4, 15));
}
