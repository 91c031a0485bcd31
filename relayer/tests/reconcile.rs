//! Reconciliation end to end on the embedded chain: after deposits, settlement through the
//! submitter, the exit hatch and an immediate withdrawal, the vaults hold exactly what the
//! program owes and the on-chain balances match the off-chain figures; a ledger that disagrees,
//! or tokens slipped into a vault, trip the alert and halt withdrawals until a clean run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;

use common::{eventually, Chain, Exchange, LOT, TICK};
use kestrel::state::UserAccount;
use kestrel_relayer::batcher::{Limits, Packer, PendingFill};
use kestrel_relayer::reconcile::{LedgerError, Mismatch, OffchainLedger, Reconciler};
use kestrel_relayer::submitter::{
    Attempt, Quarantined, SettlementReport, Submitter, SubmitterConfig,
};
use kestrel_sdk::OrderBuilder;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Signature, Signer};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

/// Expected balances and credited deposits.
struct Ledger(HashMap<(Pubkey, u8), u64>, HashMap<(Pubkey, u8), u64>);

impl OffchainLedger for Ledger {
    fn expected_balances(
        &self,
    ) -> impl Future<Output = Result<HashMap<(Pubkey, u8), u64>, LedgerError>> + Send {
        let balances = self.0.clone();
        async move { Ok(balances) }
    }

    fn credited_deposits(
        &self,
    ) -> impl Future<Output = Result<HashMap<(Pubkey, u8), u64>, LedgerError>> + Send {
        let deposits = self.1.clone();
        async move { Ok(deposits) }
    }
}

struct Quiet;

impl SettlementReport for Quiet {
    fn submitted(&self, _: &Attempt) {}
    fn finished(&self, _: &Attempt) {}
    fn confirmed(&self, _: u32, _: u64, _: Option<Signature>) {}
    fn quarantined(&self, fill: &Quarantined) {
        panic!("unexpected quarantine {fill:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconciliation_is_clean_after_activity_and_a_mismatch_halts_withdrawals() {
    let c = Chain::start().await;
    let ex = Exchange::deploy(&c).await;
    let d = &ex.d;
    let (taker, taker_quote) = ex.user(&c, 1, 1_000_000, 0).await;
    let (m1, _) = ex.user(&c, 0, 5 * LOT, 0).await;
    let (m2, _) = ex.user(&c, 0, 5 * LOT, 0).await;

    // Two fills settled through the submitter.
    let bid = OrderBuilder::limit(0)
        .buy()
        .price(100)
        .size(10)
        .sign(d.exchange, &taker, 100)
        .unwrap();
    let fills: Vec<PendingFill> = [&m1, &m2]
        .iter()
        .enumerate()
        .map(|(i, m)| PendingFill {
            market: 0,
            fill_id: i as u64 + 1,
            maker: OrderBuilder::limit(0)
                .sell()
                .price(100)
                .size(5)
                .sign(d.exchange, *m, 1)
                .unwrap(),
            taker: bid,
            price_ticks: 100,
            size_lots: 5,
        })
        .collect();
    let packed = Packer {
        deployment: d,
        operator: ex.operator.pubkey(),
        limits: Limits::default(),
    }
    .pack(&fills, &HashSet::new(), &mut 1)
    .unwrap();
    let mut submitter = Submitter::new(
        &c.rpc,
        d,
        &ex.operator,
        &Quiet,
        SubmitterConfig {
            poll_interval: Duration::from_millis(20),
            rebroadcast_interval: Duration::from_millis(500),
            ..SubmitterConfig::default()
        },
    );
    assert_eq!(submitter.settle(&packed).await.unwrap().confirmed.len(), 2);

    // The taker starts the exit hatch for 100,000 and executes it after the delay; maker 1
    // withdraws 1,000 quote at once; maker 2 leaves 2,000 quote pending.
    c.send(
        &[d.request_withdrawal(&taker.pubkey(), 1, 100_000)],
        &taker,
        &[],
    )
    .await;
    let ready = c
        .load::<UserAccount>(&d.user_address(&taker.pubkey()))
        .await
        .balances[1]
        .withdrawal_ready_slot;
    eventually(Duration::from_secs(10), "the withdrawal delay", || async {
        (c.rpc.get_slot().await.unwrap() > ready).then_some(())
    })
    .await;
    c.send(
        &[d.execute_withdrawal(&taker.pubkey(), 1, &taker_quote)
            .unwrap()],
        &taker,
        &[],
    )
    .await;
    let m1_quote = c.token_account(&ex.quote, &m1, &ex.admin, 0).await;
    c.send(
        &[
            d.withdraw(&m1.pubkey(), &ex.operator.pubkey(), 1, &m1_quote, 1_000)
                .unwrap(),
        ],
        &m1,
        &[&ex.operator],
    )
    .await;
    c.send(&[d.request_withdrawal(&m2.pubkey(), 1, 2_000)], &m2, &[])
        .await;

    // What the off-chain ledger holds after the same history.
    let notional = 100 * TICK * 5;
    let (maker_fee, taker_fee) = (
        (notional * 2).div_ceil(10_000),
        (notional * 5).div_ceil(10_000),
    );
    let mut expected = HashMap::from([
        ((taker.pubkey(), 0), 10 * LOT),
        (
            (taker.pubkey(), 1),
            1_000_000 - 2 * (notional + taker_fee) - 100_000,
        ),
        ((m1.pubkey(), 0), 0),
        ((m1.pubkey(), 1), notional - maker_fee - 1_000),
        ((m2.pubkey(), 1), notional - maker_fee),
    ]);
    let deposits = HashMap::from([
        ((taker.pubkey(), 1), 1_000_000),
        ((m1.pubkey(), 0), 5 * LOT),
        ((m2.pubkey(), 0), 5 * LOT),
    ]);
    let reconciler = Reconciler::new();
    let report = reconciler
        .run(&c.rpc, d, &Ledger(expected.clone(), deposits.clone()))
        .await
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.mismatches);
    assert!(!reconciler.withdrawals_halted());
    let quote = &report.mints[1];
    assert_eq!(quote.fees_accrued, u128::from(2 * (maker_fee + taker_fee)));
    assert_eq!(
        u128::from(quote.vault_balance),
        quote.user_balances + quote.fees_accrued
    );
    assert_eq!(report.mints[0].vault_balance, 10 * LOT);

    // A ledger that thinks maker 1 holds one atom more: alert, withdrawals halted.
    let mut wrong = expected.clone();
    *wrong.get_mut(&(m1.pubkey(), 1)).unwrap() += 1;
    let report = reconciler
        .run(&c.rpc, d, &Ledger(wrong, deposits.clone()))
        .await
        .unwrap();
    assert_eq!(
        report.mismatches,
        vec![Mismatch::User {
            owner: m1.pubkey(),
            asset: 1,
            on_chain: notional - maker_fee - 1_000,
            off_chain: notional - maker_fee - 1_000 + 1,
        }]
    );
    assert!(reconciler.withdrawals_halted());
    assert_eq!(reconciler.alerts(), 1);

    // A clean run lifts the halt; the alert count stays.
    assert!(reconciler
        .run(&c.rpc, d, &Ledger(expected.clone(), deposits.clone()))
        .await
        .unwrap()
        .is_clean());
    assert!(!reconciler.withdrawals_halted());
    assert_eq!(reconciler.alerts(), 1);

    // Tokens sent straight into the base vault belong to nobody: the vault no longer equals
    // what the program owes.
    let donor = c.funded().await;
    let donor_base = c.token_account(&ex.base, &donor, &ex.admin, 7).await;
    c.send(
        &[spl_token_interface::instruction::transfer(
            &spl_token_interface::ID,
            &donor_base,
            &d.vault_address(&ex.base),
            &donor.pubkey(),
            &[],
            7,
        )
        .unwrap()],
        &donor,
        &[],
    )
    .await;
    expected.insert((donor.pubkey(), 0), 0);
    let report = reconciler
        .run(&c.rpc, d, &Ledger(expected, deposits))
        .await
        .unwrap();
    assert!(matches!(
        report.mismatches.as_slice(),
        [Mismatch::Vault(books)] if books.asset == 0 && books.vault_balance == 10 * LOT + 7
            && books.user_balances == u128::from(10 * LOT)
    ));
    assert!(reconciler.withdrawals_halted());
    assert_eq!(reconciler.alerts(), 2);
}
