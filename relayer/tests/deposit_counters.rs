//! Deposit-counter cross-check: the deposits the listener credited, summed per user and
//! asset, equal each user account's on-chain cumulative `deposited` counter. A deposit the
//! off-chain side missed, and one it credited twice, are reported with the exact difference,
//! count a deposit alert and halt withdrawals until a clean run.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;

use common::{Chain, Exchange};
use kestrel_relayer::listener::{ChainEvent, ChainSink, Listener, ListenerConfig, SinkError};
use kestrel_relayer::reconcile::{LedgerError, Mismatch, OffchainLedger, Reconciler};
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Signature, Signer};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Mutex;

/// The off-chain deposit book: each deposit credited once, keyed by (signature, instruction).
#[derive(Default)]
struct Credits {
    seen: Mutex<HashSet<(Signature, u8)>>,
    sums: Mutex<HashMap<(Pubkey, u8), u64>>,
    last: Mutex<Option<ChainEvent>>,
}

impl Credits {
    fn credit(&self, owner: Pubkey, asset: u8, amount: u64) {
        *self.sums.lock().unwrap().entry((owner, asset)).or_default() += amount;
    }

    fn sums(&self) -> HashMap<(Pubkey, u8), u64> {
        self.sums.lock().unwrap().clone()
    }
}

impl ChainSink for Credits {
    fn emit(&self, event: ChainEvent) -> impl Future<Output = Result<(), SinkError>> + Send {
        if let ChainEvent::Deposit {
            owner,
            asset,
            amount,
            tx_signature,
            ix_index,
            ..
        } = event
        {
            if self.seen.lock().unwrap().insert((tx_signature, ix_index)) {
                self.credit(owner, asset, amount);
            }
            *self.last.lock().unwrap() = Some(event);
        }
        async { Ok(()) }
    }
}

/// Expected balances and credited deposits (no trade happens here).
struct Ledger(HashMap<(Pubkey, u8), u64>, HashMap<(Pubkey, u8), u64>);

impl Ledger {
    /// Balances that are the credited deposits.
    fn credited(credits: &Credits) -> Ledger {
        Ledger(credits.sums(), credits.sums())
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credited_deposits_match_the_on_chain_counters_and_a_missed_or_double_credit_is_reported() {
    let c = Chain::start().await;
    let ex = Exchange::deploy(&c).await;
    let d = &ex.d;
    let (alice, alice_quote) = ex.user(&c, 1, 250_000, 40_000).await;
    let (bob, bob_base) = ex.user(&c, 0, 5_000, 3_000).await;
    c.send(
        &[d.deposit(&bob.pubkey(), 0, &bob_base, 3_000).unwrap()],
        &bob,
        &[],
    )
    .await;

    let credits = Credits::default();
    let mut listener = Listener::new(&c.rpc, d, ListenerConfig::default(), None);
    listener.poll_once(&credits).await.unwrap();
    assert_eq!(
        credits.sums(),
        HashMap::from([((alice.pubkey(), 1), 250_000), ((bob.pubkey(), 0), 8_000)])
    );
    let reconciler = Reconciler::new();
    let report = reconciler
        .run(&c.rpc, d, &Ledger::credited(&credits))
        .await
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.mismatches);
    assert_eq!((reconciler.deposit_alerts(), reconciler.alerts()), (0, 0));

    // Alice deposits 40,000 more; the off-chain side has not seen it as a deposit, though a
    // manual adjustment brought her balance in line: only the counter check can tell.
    c.send(
        &[d.deposit(&alice.pubkey(), 1, &alice_quote, 40_000).unwrap()],
        &alice,
        &[],
    )
    .await;
    let mut adjusted = credits.sums();
    *adjusted.get_mut(&(alice.pubkey(), 1)).unwrap() += 40_000;
    let report = reconciler
        .run(&c.rpc, d, &Ledger(adjusted.clone(), credits.sums()))
        .await
        .unwrap();
    assert_eq!(
        report.mismatches,
        vec![Mismatch::Deposits {
            owner: alice.pubkey(),
            asset: 1,
            on_chain: 290_000,
            credited: 250_000,
            difference: -40_000,
        }]
    );
    assert!(reconciler.withdrawals_halted());
    assert_eq!((reconciler.deposit_alerts(), reconciler.alerts()), (1, 1));

    // The listener catches up: clean again, the halt lifts.
    listener.poll_once(&credits).await.unwrap();
    let report = reconciler
        .run(&c.rpc, d, &Ledger::credited(&credits))
        .await
        .unwrap();
    assert!(report.is_clean(), "{:?}", report.mismatches);
    assert!(!reconciler.withdrawals_halted());

    // A ledger without the (signature, instruction) key credits the last deposit again (its
    // balance later corrected by hand).
    let Some(ChainEvent::Deposit {
        owner,
        asset,
        amount,
        ..
    }) = *credits.last.lock().unwrap()
    else {
        panic!("the listener saw deposits");
    };
    assert_eq!((owner, asset, amount), (alice.pubkey(), 1, 40_000));
    credits.credit(owner, asset, amount);
    let report = reconciler
        .run(&c.rpc, d, &Ledger(adjusted, credits.sums()))
        .await
        .unwrap();
    assert_eq!(
        report.mismatches,
        vec![Mismatch::Deposits {
            owner: alice.pubkey(),
            asset: 1,
            on_chain: 290_000,
            credited: 330_000,
            difference: 40_000,
        }]
    );
    assert!(reconciler.withdrawals_halted());
    assert_eq!((reconciler.deposit_alerts(), reconciler.alerts()), (2, 2));
}
