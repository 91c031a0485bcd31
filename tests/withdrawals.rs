//! Withdrawals end to end on the devnet composition started in-process: a signed request over
//! REST holds the funds; the operator's co-signed transaction, obtained with an ownership proof
//! and checked by the SDK before the owner signs, lands and the router confirms it (ledger,
//! store and chain agree); a co-signed transaction left to expire fails and releases the funds;
//! reconciliation differences halt co-signing; the exit hatch (request, then execution after the
//! delay) done on-chain alone is followed by the ledger; a withdraw the router never co-signed
//! raises an alert. The devnet's own periodic reconciliation halts co-signing on a real
//! difference between the chain and the books (tokens sent straight into a vault).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod devnet_support;

use devnet_support::{eventually, Rest};
use kestrel::encoding::WithdrawRequest;
use kestrel_e2e::{token_balance, user_account};
use kestrel_node::devnet::DEPOSITED;
use kestrel_node::{Devnet, DevnetConfig};
use kestrel_relayer::reconcile::{LedgerError, OffchainLedger};
use kestrel_sdk::withdrawal::{self, ExpectedWithdrawal, WithdrawalTxError};
use kestrel_sdk::Deployment;
use serde_json::{json, Value};
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signer};
use std::collections::HashMap;
use std::time::Duration;

/// Generous: a co-signed transaction takes 150 blocks to expire.
const TIMEOUT: Duration = Duration::from_secs(90);

impl Rest {
    /// The router's (available, frozen) of `owner` in `asset`, zero without a balance row.
    async fn held(&self, owner: &Pubkey, asset: u8) -> (u64, u64) {
        self.balance(owner, asset).await.unwrap_or((0, 0))
    }

    /// The withdrawal `id` of `owner` as the store has it.
    async fn withdrawal(&self, owner: &Pubkey, id: u64) -> Option<Value> {
        let rows = self
            .get(&format!("/v1/accounts/{}/withdrawals", hex::encode(owner)))
            .await;
        rows.as_array()?.iter().find(|w| w["id"] == id).cloned()
    }

    /// Waits until withdrawal `id` of `owner` is in `status`.
    async fn wait_status(&self, owner: &Pubkey, id: u64, status: &str) -> Value {
        eventually(&format!("withdrawal {id} {status}"), || async {
            self.withdrawal(owner, id)
                .await
                .filter(|w| w["status"] == status)
        })
        .await
    }

    /// Requests a co-signed withdrawal; returns its id once the store shows it pending.
    async fn request(
        &self,
        d: &Deployment,
        owner: &Keypair,
        asset: u8,
        amount: u64,
        nonce: u64,
    ) -> u64 {
        let request = WithdrawRequest {
            exchange: d.exchange,
            owner: owner.pubkey(),
            mint: d.mint(asset).unwrap(),
            amount,
            nonce,
            expiry: 0,
        };
        let bytes = request.encode();
        let body = json!({
            "message": hex::encode(bytes),
            "signature": hex::encode(owner.sign_message(&bytes)),
        });
        let (status, answer) = self.post("/v1/withdrawals", &body).await;
        assert_eq!(status, 200, "{answer}");
        let id = answer["withdrawal_id"].as_u64().unwrap();
        self.wait_status(&owner.pubkey(), id, "pending").await;
        id
    }
}

/// Expected on-chain balances and credited deposits from fixed maps (reconciliation input).
struct Fixed {
    balances: HashMap<(Pubkey, u8), u64>,
    deposits: HashMap<(Pubkey, u8), u64>,
}

impl OffchainLedger for Fixed {
    async fn expected_balances(&self) -> Result<HashMap<(Pubkey, u8), u64>, LedgerError> {
        Ok(self.balances.clone())
    }

    async fn credited_deposits(&self) -> Result<HashMap<(Pubkey, u8), u64>, LedgerError> {
        Ok(self.deposits.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosigned_and_exit_hatch_withdrawals_move_tokens_and_the_ledger_follows() {
    let dir = tempfile::tempdir().unwrap();
    // Shorter slots: a co-signed transaction expires after 150 blocks. This test drives
    // reconciliation itself, so the periodic run stays out of its way.
    let net = Devnet::start(DevnetConfig {
        slot_interval: Duration::from_millis(50),
        reconcile_interval: Duration::from_secs(3_600),
        ..DevnetConfig::ephemeral(dir.path())
    })
    .await
    .unwrap();
    let rest = Rest {
        base: net.http_url(),
        http: reqwest::Client::new(),
    };
    let rpc = RpcClient::new(net.rpc_url());
    let d = net.deployment().clone();
    let operator = net.operator().pubkey();
    let [alice, bob] = net.wallets() else {
        panic!("two demo wallets")
    };
    let (a, b) = (alice.keypair.pubkey(), bob.keypair.pubkey());
    for owner in [a, b] {
        for asset in [0, 1] {
            eventually("the bootstrap deposits", || async {
                (rest.held(&owner, asset).await == (DEPOSITED, 0)).then_some(())
            })
            .await;
        }
    }

    // 1. A co-signed withdrawal of quote.
    let amount = 3_000_000;
    let destination = alice.token_accounts[1];
    let id = rest.request(&d, &alice.keypair, 1, amount, 1).await;
    assert_eq!(rest.held(&a, 1).await, (DEPOSITED - amount, amount));
    let tx_path = format!("/v1/withdrawals/{id}/transaction");

    // Proofs that do not come from the owner, and a destination that is not hers, are refused.
    let (status, e) = rest
        .post(
            &tx_path,
            &withdrawal::transaction_request(&d.exchange, &bob.keypair, id, &destination),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (401, Some("unauthorized")),
        "{e}"
    );
    let mut forged = withdrawal::transaction_request(&d.exchange, &bob.keypair, id, &destination);
    forged["owner"] = json!(hex::encode(a));
    let (status, e) = rest.post(&tx_path, &forged).await;
    assert_eq!(status, 401, "{e}");
    let bobs_account = bob.token_accounts[1];
    let (status, e) = rest
        .post(
            &tx_path,
            &withdrawal::transaction_request(&d.exchange, &alice.keypair, id, &bobs_account),
        )
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (400, Some("invalid_request")),
        "{e}"
    );
    rest.wait_status(&a, id, "pending").await;

    // The owner's proof gets the co-signed transaction, once.
    let proof = withdrawal::transaction_request(&d.exchange, &alice.keypair, id, &destination);
    let (status, cosigned) = rest.post(&tx_path, &proof).await;
    assert_eq!(status, 200, "{cosigned}");
    let (status, e) = rest.post(&tx_path, &proof).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (409, Some("withdrawal_not_pending")),
        "{e}"
    );
    let broadcasting = rest.wait_status(&a, id, "broadcasting").await;
    assert_eq!(
        broadcasting["tx"], cosigned["cosignature"],
        "{broadcasting}"
    );
    assert_eq!(
        broadcasting["last_valid_block_height"], cosigned["last_valid_block_height"],
        "{broadcasting}"
    );

    // The SDK refuses to sign anything but the withdrawal asked for.
    let transaction = cosigned["transaction"].as_str().unwrap();
    let expected = ExpectedWithdrawal {
        asset: 1,
        amount,
        destination,
        operator,
    };
    for wrong in [
        ExpectedWithdrawal {
            amount: amount - 1,
            ..expected
        },
        ExpectedWithdrawal {
            destination: bobs_account,
            ..expected
        },
        ExpectedWithdrawal {
            asset: 0,
            ..expected
        },
    ] {
        assert!(matches!(
            withdrawal::sign_cosigned(transaction, &d, &alice.keypair, &wrong),
            Err(WithdrawalTxError::Mismatch(_))
        ));
    }
    assert!(matches!(
        withdrawal::sign_cosigned(transaction, &d, &bob.keypair, &expected),
        Err(WithdrawalTxError::Mismatch(_))
    ));
    assert_eq!(
        withdrawal::sign_cosigned(
            transaction,
            &d,
            &alice.keypair,
            &ExpectedWithdrawal {
                operator: b,
                ..expected
            }
        ),
        Err(WithdrawalTxError::Mismatch(
            "program, accounts, amount, destination or fee payer differ"
        ))
    );

    let before = token_balance(&rpc, &destination).await;
    let signed = withdrawal::sign_cosigned(transaction, &d, &alice.keypair, &expected).unwrap();
    let landed = rpc.send_and_confirm_transaction(&signed).await.unwrap();
    assert_eq!(token_balance(&rpc, &destination).await, before + amount);
    let confirmed = rest.wait_status(&a, id, "confirmed").await;
    assert_eq!(confirmed["tx"], json!(hex::encode(landed)), "{confirmed}");
    assert_eq!(rest.held(&a, 1).await, (DEPOSITED - amount, 0));
    assert_eq!(
        user_account(&rpc, &d, &a).await.balances[1].available,
        DEPOSITED - amount
    );

    // 2. A co-signed transaction never sent expires: Failed, funds released.
    let second = 1_000_000;
    let id2 = rest.request(&d, &alice.keypair, 1, second, 2).await;
    let proof = withdrawal::transaction_request(&d.exchange, &alice.keypair, id2, &destination);
    let (status, stale) = rest
        .post(&format!("/v1/withdrawals/{id2}/transaction"), &proof)
        .await;
    assert_eq!(status, 200, "{stale}");
    rest.wait_status(&a, id2, "failed").await;
    assert_eq!(rest.held(&a, 1).await, (DEPOSITED - amount, 0));
    assert_eq!(net.bridge().withdrawals_expired(), 1);
    let late = withdrawal::sign_cosigned(
        stale["transaction"].as_str().unwrap(),
        &d,
        &alice.keypair,
        &ExpectedWithdrawal {
            amount: second,
            ..expected
        },
    )
    .unwrap();
    assert!(rpc.send_and_confirm_transaction(&late).await.is_err());
    assert_eq!(
        user_account(&rpc, &d, &a).await.balances[1].available,
        DEPOSITED - amount
    );

    // 3. Reconciliation differences halt co-signing until a clean run.
    let id3 = rest.request(&d, &alice.keypair, 1, second, 3).await;
    let mut books = HashMap::new();
    for owner in [a, b] {
        for asset in [0u8, 1] {
            let (available, frozen) = rest.held(&owner, asset).await;
            books.insert((owner, asset), available + frozen);
        }
    }
    let deposits: HashMap<(Pubkey, u8), u64> = net
        .api()
        .store()
        .credited_deposits()
        .await
        .unwrap()
        .into_iter()
        .map(|((owner, asset), total)| ((Pubkey::new_from_array(owner), asset), total))
        .collect();
    let mut wrong = books.clone();
    *wrong.get_mut(&(b, 0)).unwrap() += 1;
    let reconciler = net.reconciler();
    assert!(!reconciler
        .run(
            &rpc,
            &d,
            &Fixed {
                balances: wrong,
                deposits: deposits.clone(),
            },
        )
        .await
        .unwrap()
        .is_clean());
    let proof = withdrawal::transaction_request(&d.exchange, &alice.keypair, id3, &destination);
    let path3 = format!("/v1/withdrawals/{id3}/transaction");
    let (status, e) = rest.post(&path3, &proof).await;
    assert_eq!(
        (status, e["error"].as_str()),
        (503, Some("withdrawals_halted")),
        "{e}"
    );
    assert!(reconciler
        .run(
            &rpc,
            &d,
            &Fixed {
                balances: books,
                deposits,
            },
        )
        .await
        .unwrap()
        .is_clean());
    let (status, e) = rest.post(&path3, &proof).await;
    assert_eq!(status, 200, "{e}");

    // 4. The exit hatch, on-chain alone: the request is held, the execution paid out.
    let exit = 5_000_000;
    let request = d.request_withdrawal(&b, 0, exit);
    let requested = kestrel_sdk::chain::send(&rpc, &[request], &bob.keypair, &[])
        .await
        .unwrap();
    eventually("the exit request held", || async {
        (rest.held(&b, 0).await == (DEPOSITED - exit, exit)).then_some(())
    })
    .await;
    let rows = rest
        .get(&format!("/v1/accounts/{}/withdrawals", hex::encode(b)))
        .await;
    let held = rows[0].clone();
    assert_eq!(
        (
            held["kind"].as_str(),
            held["status"].as_str(),
            held["amount"].as_u64()
        ),
        (Some("exit_hatch"), Some("pending"), Some(exit)),
        "{held}"
    );
    assert_eq!(held["tx"], json!(hex::encode(requested)), "{held}");
    let ready = user_account(&rpc, &d, &b).await.balances[0].withdrawal_ready_slot;
    eventually("the withdrawal delay", || async {
        (rpc.get_slot().await.unwrap() > ready).then_some(())
    })
    .await;
    let base_account = bob.token_accounts[0];
    let before = token_balance(&rpc, &base_account).await;
    let execute = d.execute_withdrawal(&b, 0, &base_account).unwrap();
    kestrel_sdk::chain::send(&rpc, &[execute], &bob.keypair, &[])
        .await
        .unwrap();
    assert_eq!(token_balance(&rpc, &base_account).await, before + exit);
    let id4 = held["id"].as_u64().unwrap();
    rest.wait_status(&b, id4, "confirmed").await;
    assert_eq!(rest.held(&b, 0).await, (DEPOSITED - exit, 0));
    let on_chain = user_account(&rpc, &d, &b).await.balances[0];
    assert_eq!(
        (on_chain.available, on_chain.pending_withdrawal),
        (DEPOSITED - exit, 0)
    );

    // Ledger and chain agree for both wallets (Alice's third withdrawal is still held off-chain,
    // available on-chain), and nothing unexpected was seen.
    for owner in [a, b] {
        let chain_user = user_account(&rpc, &d, &owner).await;
        for asset in [0u8, 1] {
            let (available, frozen) = rest.held(&owner, asset).await;
            let on_chain = chain_user.balances[usize::from(asset)];
            assert_eq!(
                on_chain.available + on_chain.pending_withdrawal,
                available + frozen,
                "{owner} asset {asset}"
            );
        }
    }
    assert_eq!(net.bridge().withdrawal_alerts(), 0);

    // 5. A withdraw the router never co-signed (only a leaked operator key makes one) is an
    // alert, raised once, and moves nothing in the ledger.
    let ledger_before = rest.held(&a, 1).await;
    let rogue = d.withdraw(&a, &operator, 1, &destination, 1).unwrap();
    kestrel_sdk::chain::send(&rpc, &[rogue], &alice.keypair, &[net.operator()])
        .await
        .unwrap();
    eventually("the alert", || async {
        (net.bridge().withdrawal_alerts() == 1).then_some(())
    })
    .await;
    assert_eq!(rest.held(&a, 1).await, ledger_before);
    net.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_devnets_own_reconciliation_halts_cosigning_on_a_real_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let net = Devnet::start(DevnetConfig {
        reconcile_interval: Duration::from_millis(300),
        ..DevnetConfig::ephemeral(dir.path())
    })
    .await
    .unwrap();
    let rest = Rest {
        base: net.http_url(),
        http: reqwest::Client::new(),
    };
    let rpc = RpcClient::new(net.rpc_url());
    let d = net.deployment().clone();
    let alice = &net.wallets()[0];
    let a = alice.keypair.pubkey();
    for asset in [0, 1] {
        eventually("the bootstrap deposits", || async {
            (rest.held(&a, asset).await == (DEPOSITED, 0)).then_some(())
        })
        .await;
    }
    let reconcile = net.reconcile().clone();
    eventually("a clean periodic run", || async {
        (reconcile.runs.get() > 0 && !net.status().reconcile_mismatch).then_some(())
    })
    .await;
    assert!(net
        .status()
        .line(&net.status(), Duration::from_secs(1))
        .ends_with("| recon ok"));
    let id = rest.request(&d, &alice.keypair, 1, 1_000_000, 1).await;

    // Tokens sent straight into the quote vault: the vault holds more than the program owes.
    let vault = d.vault_address(&d.mint(1).unwrap());
    let gift = spl_token_interface::instruction::transfer(
        &spl_token_interface::ID,
        &alice.token_accounts[1],
        &vault,
        &a,
        &[],
        7,
    )
    .unwrap();
    kestrel_sdk::chain::send(&rpc, &[gift], &alice.keypair, &[])
        .await
        .unwrap();
    // The run halts withdrawals first and updates its gauges after: wait for both.
    eventually("the periodic run to find the difference", || async {
        (net.status().reconcile_mismatch && reconcile.alerts.get() > 0).then_some(())
    })
    .await;
    let status = net.status();
    assert!(status
        .line(&status, Duration::from_secs(1))
        .ends_with("| recon MISMATCH"));
    assert_eq!(reconcile.halted.get(), 1);
    assert!(reconcile.mismatches.get() > 0);
    assert!(reconcile.alerts.get() > 0);
    let proof =
        withdrawal::transaction_request(&d.exchange, &alice.keypair, id, &alice.token_accounts[1]);
    let (status, e) = rest
        .post(&format!("/v1/withdrawals/{id}/transaction"), &proof)
        .await;
    assert_eq!(
        (status, e["error"].as_str()),
        (503, Some("withdrawals_halted")),
        "{e}"
    );
    net.shutdown().await.unwrap();
}
