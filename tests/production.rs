//! Production mode end to end: the embedded chain runs in this test process; the deployment is
//! made with the admin subcommands' code path; `kestrel router` and `kestrel relayer` run as
//! separate processes (the real binary) against a fresh PostgreSQL database and the chain's
//! JSON-RPC; orders arrive over REST.
//!
//! - A crossing pair settles on-chain and the router learns it through the internal endpoint,
//!   as a v0 transaction over the relayer's lookup table; a restarted relayer reopens that
//!   table from its file and settles the next fill over it, creating no second table.
//! - The other admin subcommands (pause, fees, operator) change the exchange as they say.
//!
//! The router killed with `kill -9` between a fill and its settlement is in `end_to_end.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;
mod support;

use anchor_lang::AccountDeserialize;
use kestrel::state::Exchange;
use kestrel_node::admin::{self, AdminCommand};
use kestrel_node::keys;
use kestrel_sdk::rest::RestClient;
use solana_sdk::signature::{Keypair, Signer};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_and_relayer_processes_settle_a_crossing_pair() {
    with_database(|database_url| async move {
        let cluster = Cluster::start().await;
        let (router, api, internal) = start_router(&cluster, &database_url).await;
        let rest = RestClient::new(api, cluster.deployment.exchange);
        wait_for_deposits(&cluster, &rest).await;
        // The internal endpoint takes nothing without the operator's token.
        let url = format!("{internal}{}", kestrel_node::internal::SETTLEMENT_PATH);
        let update = serde_json::json!({"market": 0, "fill_id": 1, "status": "confirmed"});
        for token in [None, Some("wrong-token-0123456789")] {
            let mut request = reqwest::Client::new().post(&url).json(&update);
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            assert_eq!(request.send().await.unwrap().status().as_u16(), 401);
        }
        let refused = reqwest::Client::new()
            .post(&url)
            .bearer_auth(TOKEN)
            .body("{\"market\": 0, \"fill_id\": -1}")
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status().as_u16(), 400);

        let (relayer, metrics) = start_relayer(&cluster, &database_url, &internal).await;
        cross(&cluster, &rest).await;
        assert_settled_once(&cluster, &rest, &database_url).await;
        // The relayer's own reconciliation runs and finds nothing; its metrics say so.
        assert_eq!(
            metric(&metrics, "kestrel_relayer_fills_settled_total").await,
            Some(1)
        );
        eventually("a reconciliation run", || async {
            metric(&metrics, "kestrel_relayer_reconcile_runs_total")
                .await
                .filter(|runs| *runs > 0)
        })
        .await;
        assert_eq!(
            metric(&metrics, "kestrel_relayer_withdrawals_halted").await,
            Some(0)
        );
        assert_eq!(
            metric(&metrics, "kestrel_relayer_reconcile_mismatches").await,
            Some(0)
        );
        // The fill went out as v0 over the one table the relayer created and kept in its file.
        let tables = kestrel_node::tables::read_file(&cluster.tables_file()).unwrap();
        assert_eq!(tables.len(), 1);
        assert_eq!(cluster.lookup_tables().await, tables);
        let market = cluster.deployment.market_address(0);
        assert_eq!(
            common::settle_transactions(&cluster.rpc, &market).await,
            vec![Some(tables.clone())]
        );

        // SIGTERM: it drains and exits cleanly; restarted, it reopens the same table.
        terminate(relayer).await;
        let (relayer, _) = start_relayer(&cluster, &database_url, &internal).await;
        cross_with_nonce(&cluster, &rest, 2).await;
        eventually("the second fill to be confirmed", || async {
            let fills = rest.fills(&cluster.taker.pubkey()).await.ok()?;
            let fills = fills.as_array()?.clone();
            (fills.len() == 2 && fills.iter().all(|f| f["settlement_status"] == "confirmed"))
                .then_some(())
        })
        .await;
        assert_eq!(cluster.market().await.last_fill_id, 2);
        assert_eq!(
            common::settle_transactions(&cluster.rpc, &market).await,
            vec![Some(tables.clone()), Some(tables.clone())]
        );
        assert_eq!(cluster.lookup_tables().await, tables, "no second table");
        assert_eq!(
            kestrel_node::tables::read_file(&cluster.tables_file()).unwrap(),
            tables
        );

        // SIGTERM: both drain and exit cleanly.
        for process in [relayer, router] {
            terminate(process).await;
        }
        cluster.chain.shutdown().await.unwrap();
    })
    .await;
}

/// The remaining admin subcommands change what they say, and only that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_subcommands_pause_announce_fees_and_rotate_the_operator() {
    let cluster = Cluster::start().await;
    let admin_key = keys::load(&cluster.dir.path().join("admin.json")).unwrap();
    let exchange = || async {
        let account = cluster
            .rpc
            .get_account(&cluster.deployment.exchange)
            .await
            .unwrap();
        Exchange::try_deserialize(&mut account.data.as_slice()).unwrap()
    };
    let run = |command: AdminCommand| {
        let admin_key = &admin_key;
        let rpc = &cluster.rpc;
        async move { admin::run(rpc, admin_key, DOMAIN_ID, &command).await }
    };

    let paused = run(AdminCommand::SetPause {
        settlement: true,
        deposits: false,
    })
    .await
    .unwrap();
    assert_eq!(
        paused.accounts,
        vec![("exchange", cluster.deployment.exchange)]
    );
    let e = exchange().await;
    assert_eq!((e.settlement_paused, e.deposits_paused), (1, 0));

    let fees = run(AdminCommand::SetFees {
        market: 0,
        maker_fee_bps: 1,
        taker_fee_bps: 9,
    })
    .await
    .unwrap();
    assert!(fees
        .accounts
        .contains(&("market", cluster.deployment.market_address(0))));
    let market = cluster.market().await;
    assert_eq!(
        (market.pending_maker_fee_bps, market.pending_taker_fee_bps),
        (1, 9)
    );
    assert_eq!((market.maker_fee_bps, market.taker_fee_bps), (2, 5));

    let operator = Keypair::new().pubkey();
    run(AdminCommand::SetOperator { operator }).await.unwrap();
    assert_eq!(exchange().await.operator, operator);

    // A key that is not the admin's (the funded former operator) is refused.
    let stranger = keys::load(&cluster.dir.path().join("operator.json")).unwrap();
    assert!(admin::run(
        &cluster.rpc,
        &stranger,
        DOMAIN_ID,
        &AdminCommand::SetPause {
            settlement: false,
            deposits: false,
        },
    )
    .await
    .is_err());
    assert_eq!(exchange().await.settlement_paused, 1);
    cluster.chain.shutdown().await.unwrap();
}
