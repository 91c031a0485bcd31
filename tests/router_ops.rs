//! Production mode, the router's operations: `kestrel router --cosigner-keypair` co-signs a
//! withdrawal that lands and is Confirmed, reconciles, and serves its alerts on its metrics
//! port; a restarted router resumes its chain listener from the cursor saved in the store (it
//! does not submit the history before it again) and credits a deposit made while it was down
//! once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod support;

use kestrel_node::reconcile::StoreLedger;
use kestrel_relayer::reconcile::Reconciler;
use kestrel_router::store::Store;
use kestrel_sdk::chain;
use kestrel_sdk::rest::RestClient;
use solana_sdk::signature::Signer;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_router_with_the_cosigner_lands_a_cosigned_withdrawal() {
    with_database(|database_url| async move {
        let cluster = Cluster::start().await;
        let keypair = cluster.dir.path().join("operator.json");
        let keypair = keypair.display().to_string();
        let (router, [api, _, metrics]) = start_router_with(
            &cluster,
            &database_url,
            &["--cosigner-keypair", &keypair, "--reconcile-secs", "1"],
        )
        .await;
        let rest = RestClient::new(api.clone(), cluster.deployment.exchange);
        wait_for_deposits(&cluster, &rest).await;
        // Reconciliation runs in the router and finds the books clean.
        eventually("a clean reconciliation run", || async {
            metric(&metrics, "kestrel_api_reconcile_runs_total")
                .await
                .filter(|runs| *runs > 0)
        })
        .await;
        assert_eq!(
            metric(&metrics, "kestrel_api_withdrawals_halted").await,
            Some(0)
        );

        let amount = 2_000_000;
        maker_withdraws(&cluster, &rest, 1, amount, 1).await;
        let maker = cluster.maker.pubkey();
        assert_eq!(balance(&rest, &maker, 1).await, Some((DEPOSIT - amount, 0)));
        assert_eq!(cluster.on_chain_balance(&maker, 1).await, DEPOSIT - amount);
        // The landed withdrawal was expected: no alert, nothing expired.
        for name in [
            "kestrel_api_withdrawal_alerts_total",
            "kestrel_api_withdrawals_expired_total",
        ] {
            assert_eq!(metric(&metrics, name).await, Some(0), "{name}");
        }
        terminate(router).await;
        cluster.chain.shutdown().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_router_resumes_its_listener_from_the_saved_cursor() {
    with_database(|database_url| async move {
        let cluster = Cluster::start().await;
        let (router, [api, _, metrics]) = start_router_with(&cluster, &database_url, &[]).await;
        let rest = RestClient::new(api, cluster.deployment.exchange);
        wait_for_deposits(&cluster, &rest).await;
        let history = eventually("the listener's events counted", || async {
            metric(&metrics, "kestrel_api_listener_chain_events_total")
                .await
                .filter(|events| *events >= 4)
        })
        .await;
        let newest = cluster
            .rpc
            .get_signatures_for_address(&kestrel::ID)
            .await
            .unwrap()
            .remove(0);
        let store = Store::connect(&database_url).await.unwrap();
        let name = cluster.deployment.exchange.to_string();
        let saved = eventually("the cursor at the newest transaction", || async {
            store
                .listener_cursor(&name)
                .await
                .unwrap()
                .filter(|c| c.signature == newest.signature)
        })
        .await;
        assert_eq!(saved.slot, newest.slot);
        // Without a co-signer the router does not reconcile.
        assert_eq!(
            metric(&metrics, "kestrel_api_reconcile_runs_total").await,
            None
        );
        terminate(router).await;

        // While the router is down, the maker deposits again.
        let extra = 3_000_000;
        let (maker, d) = (&cluster.maker, &cluster.deployment);
        let deposit = d
            .deposit(&maker.pubkey(), 0, &cluster.maker_accounts[0], extra)
            .unwrap();
        let landed = chain::send(&cluster.rpc, &[deposit], maker, &[])
            .await
            .unwrap();

        let (router, [api, _, metrics]) = start_router_with(&cluster, &database_url, &[]).await;
        let rest = RestClient::new(api, cluster.deployment.exchange);
        eventually("the deposit made while down to be credited", || async {
            (balance(&rest, &maker.pubkey(), 0).await == Some((DEPOSIT + extra, 0))).then_some(())
        })
        .await;
        // Only the new deposit went to the sequencer: the history before the cursor was not
        // read again (it had produced `history` events).
        assert_eq!(
            metric(&metrics, "kestrel_api_listener_chain_events_total").await,
            Some(1),
            "the first run submitted {history}"
        );
        let saved = eventually("the cursor at the new deposit", || async {
            store
                .listener_cursor(&name)
                .await
                .unwrap()
                .filter(|c| c.signature == landed.to_string())
        })
        .await;
        assert!(saved.slot > newest.slot);
        // Credited exactly once: the ledger and the chain's deposit counters agree.
        let run = Reconciler::new()
            .run(&cluster.rpc, d, &StoreLedger(store.clone()))
            .await
            .unwrap();
        assert!(run.is_clean(), "{:?}", run.mismatches);
        assert_eq!(
            cluster.on_chain_balance(&maker.pubkey(), 0).await,
            DEPOSIT + extra
        );
        store.close().await;
        terminate(router).await;
        cluster.chain.shutdown().await.unwrap();
    })
    .await;
}
