//! The embedded chain's JSON-RPC, exercised only through solana-client's `RpcClient` (and raw
//! HTTP where a client could not send the request at all).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

use anchor_lang::{Discriminator, InstructionData, ToAccountMetas};
use kestrel::constants::EXCHANGE_SEED;
use kestrel::error::KestrelError;
use kestrel::instructions::InitializeExchangeArgs;
use kestrel::state::Exchange;
use kestrel_relayer::embedded::{Config, EmbeddedChain};
use serde_json::{json, Value};
use solana_client::client_error::ClientErrorKind;
use solana_client::nonblocking::rpc_client::RpcClient;
use solana_client::rpc_client::GetConfirmedSignaturesForAddress2Config;
use solana_client::rpc_config::{
    RpcAccountInfoConfig, RpcProgramAccountsConfig, RpcSendTransactionConfig, RpcTransactionConfig,
};
use solana_client::rpc_filter::{Memcmp, RpcFilterType};
use solana_client::rpc_request::{RpcError, RpcRequest, RpcResponseErrorData};
use solana_client::rpc_response::RpcConfirmedTransactionStatusWithSignature;
use solana_sdk::account::Account;
use solana_sdk::hash::Hash;
use solana_sdk::instruction::{Instruction, InstructionError};
use solana_sdk::message::v0;
use solana_sdk::message::{AddressLookupTableAccount, VersionedMessage};
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::program_pack::Pack;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::{Transaction, TransactionError, VersionedTransaction};
use solana_transaction_status::{
    EncodedTransaction, TransactionConfirmationStatus, UiLoadedAddresses, UiTransactionEncoding,
};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn start() -> (EmbeddedChain, RpcClient) {
    let chain = EmbeddedChain::start(Config {
        slot_interval: Duration::from_millis(100),
        ..Config::default()
    })
    .await
    .unwrap();
    let client = RpcClient::new(chain.rpc_url());
    (chain, client)
}

async fn funded(client: &RpcClient, sol: u64) -> Keypair {
    let wallet = Keypair::new();
    let signature = client
        .request_airdrop(&wallet.pubkey(), sol * LAMPORTS_PER_SOL)
        .await
        .unwrap();
    wait_for_status(client, &signature).await;
    wallet
}

/// The signature's status once the chain reports one.
async fn wait_for_status(client: &RpcClient, signature: &Signature) -> Option<TransactionError> {
    for _ in 0..50 {
        let statuses = client.get_signature_statuses(&[*signature]).await.unwrap();
        if let Some(status) = statuses.value.into_iter().next().flatten() {
            assert_eq!(
                status.confirmation_status,
                Some(TransactionConfirmationStatus::Finalized)
            );
            return status.err;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no status for {signature}");
}

async fn send(client: &RpcClient, instructions: &[Instruction], signers: &[&Keypair]) -> Signature {
    let blockhash = client.get_latest_blockhash().await.unwrap();
    let tx = Transaction::new_signed_with_payer(
        instructions,
        Some(&signers[0].pubkey()),
        signers,
        blockhash,
    );
    client.send_and_confirm_transaction(&tx).await.unwrap()
}

fn exchange_address(domain_id: u64) -> Pubkey {
    Pubkey::find_program_address(&[EXCHANGE_SEED, &domain_id.to_le_bytes()], &kestrel::ID).0
}

fn initialize_exchange(admin: &Pubkey, domain_id: u64, withdrawal_delay_slots: u64) -> Instruction {
    Instruction {
        program_id: kestrel::ID,
        accounts: kestrel::accounts::InitializeExchange {
            admin: *admin,
            exchange: exchange_address(domain_id),
            system_program: solana_system_interface::program::ID,
        }
        .to_account_metas(None),
        data: kestrel::instruction::InitializeExchange {
            args: InitializeExchangeArgs {
                domain_id,
                operator: Pubkey::new_unique(),
                fee_collector: Pubkey::new_unique(),
                withdrawal_delay_slots,
                fee_change_delay_slots: 10,
            },
        }
        .data(),
    }
}

fn rpc_error(err: &solana_client::client_error::ClientError) -> (i64, &RpcResponseErrorData) {
    match err.kind() {
        ClientErrorKind::RpcError(RpcError::RpcResponseError { code, data, .. }) => (*code, data),
        other => panic!("not an RPC error answer: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_health_and_slots_advancing_with_time() {
    let (chain, client) = start().await;
    let version = client.get_version().await.unwrap();
    assert_eq!(
        version.solana_core,
        solana_version::Version::default().to_string()
    );
    assert!(version.feature_set.is_some());
    client.get_health().await.unwrap();

    let slot = client.get_slot().await.unwrap();
    let height = client.get_block_height().await.unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = client.get_slot().await.unwrap();
    assert!(
        later >= slot + 3,
        "slot {slot} -> {later} in 600 ms at 100 ms"
    );
    assert!(client.get_block_height().await.unwrap() > height);
    chain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn airdrop_credits_the_balance_within_the_faucet_limit() {
    let (chain, client) = start().await;
    let wallet = Keypair::new();
    assert_eq!(client.get_balance(&wallet.pubkey()).await.unwrap(), 0);
    // Two identical airdrops are two transactions.
    for _ in 0..2 {
        let signature = client
            .request_airdrop(&wallet.pubkey(), 2 * LAMPORTS_PER_SOL)
            .await
            .unwrap();
        assert_eq!(wait_for_status(&client, &signature).await, None);
    }
    assert_eq!(
        client.get_balance(&wallet.pubkey()).await.unwrap(),
        4 * LAMPORTS_PER_SOL
    );
    // Over the faucet's limit: refused (RpcClient words every airdrop error the same way).
    let refused = client
        .send::<String>(
            RpcRequest::RequestAirdrop,
            json!([wallet.pubkey().to_string(), 1_000_000 * LAMPORTS_PER_SOL]),
        )
        .await
        .unwrap_err();
    assert_eq!(rpc_error(&refused).0, -32602);
    assert_eq!(
        client.get_balance(&wallet.pubkey()).await.unwrap(),
        4 * LAMPORTS_PER_SOL
    );
    assert_eq!(
        client
            .get_minimum_balance_for_rent_exemption(165)
            .await
            .unwrap(),
        solana_sdk::rent::Rent::default().minimum_balance(165)
    );
    chain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spl_mint_and_token_account_through_real_transactions() {
    let (chain, client) = start().await;
    let payer = funded(&client, 10).await;
    let mint = Keypair::new();
    let holder = Keypair::new();
    let token_account = Keypair::new();
    let token = spl_token_interface::ID;
    let mint_rent = client
        .get_minimum_balance_for_rent_exemption(spl_token_interface::state::Mint::LEN)
        .await
        .unwrap();
    let account_rent = client
        .get_minimum_balance_for_rent_exemption(spl_token_interface::state::Account::LEN)
        .await
        .unwrap();
    let instructions = [
        solana_system_interface::instruction::create_account(
            &payer.pubkey(),
            &mint.pubkey(),
            mint_rent,
            spl_token_interface::state::Mint::LEN as u64,
            &token,
        ),
        spl_token_interface::instruction::initialize_mint2(
            &token,
            &mint.pubkey(),
            &payer.pubkey(),
            None,
            6,
        )
        .unwrap(),
        solana_system_interface::instruction::create_account(
            &payer.pubkey(),
            &token_account.pubkey(),
            account_rent,
            spl_token_interface::state::Account::LEN as u64,
            &token,
        ),
        spl_token_interface::instruction::initialize_account3(
            &token,
            &token_account.pubkey(),
            &mint.pubkey(),
            &holder.pubkey(),
        )
        .unwrap(),
        spl_token_interface::instruction::mint_to(
            &token,
            &mint.pubkey(),
            &token_account.pubkey(),
            &payer.pubkey(),
            &[],
            1_500_000,
        )
        .unwrap(),
    ];
    let signature = send(&client, &instructions, &[&payer, &mint, &token_account]).await;

    let balance = client
        .get_token_account_balance(&token_account.pubkey())
        .await
        .unwrap();
    assert_eq!(balance.amount, "1500000");
    assert_eq!(balance.decimals, 6);
    assert_eq!(balance.ui_amount_string, "1.5");
    // Not a token account.
    let err = client
        .get_token_account_balance(&payer.pubkey())
        .await
        .unwrap_err();
    assert_eq!(rpc_error(&err).0, -32602);

    // RpcClient reads accounts as base64+zstd.
    let account = client.get_account(&mint.pubkey()).await.unwrap();
    assert_eq!(account.owner, token);
    assert_eq!(account.data.len(), spl_token_interface::state::Mint::LEN);
    let accounts = client
        .get_multiple_accounts(&[token_account.pubkey(), Pubkey::new_unique()])
        .await
        .unwrap();
    assert_eq!(accounts[0].as_ref().unwrap().owner, token);
    assert!(accounts[1].is_none());

    // The transaction's token balances, before and after, as listeners read them.
    let tx = client
        .get_transaction(&signature, UiTransactionEncoding::Base64)
        .await
        .unwrap();
    let meta = tx.transaction.meta.unwrap();
    let post: Option<Vec<_>> = meta.post_token_balances.into();
    let post = post.unwrap();
    assert_eq!(post.len(), 1);
    assert_eq!(post[0].mint, mint.pubkey().to_string());
    assert_eq!(post[0].ui_token_amount.amount, "1500000");
    let pre: Option<Vec<_>> = meta.pre_token_balances.into();
    assert_eq!(pre.unwrap().len(), 0);
    chain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kestrel_transaction_is_visible_to_listeners() {
    let (chain, client) = start().await;
    let admin = funded(&client, 5).await;
    let instruction = initialize_exchange(&admin.pubkey(), 7, 100);
    let signature = send(&client, std::slice::from_ref(&instruction), &[&admin]).await;

    assert_eq!(wait_for_status(&client, &signature).await, None);
    // JSON, as explorers read it.
    let json_tx = client
        .get_transaction(&signature, UiTransactionEncoding::Json)
        .await
        .unwrap();
    match &json_tx.transaction.transaction {
        EncodedTransaction::Json(ui) => {
            assert_eq!(ui.signatures, vec![signature.to_string()]);
        }
        other => panic!("asked for JSON, got {other:?}"),
    }
    // Binary, as listeners decode it.
    let tx = client
        .get_transaction(&signature, UiTransactionEncoding::Base64)
        .await
        .unwrap();
    assert_eq!(tx.slot, json_tx.slot);
    assert!(tx.block_time.is_some());
    let slot = tx.slot;
    assert!(slot <= client.get_slot().await.unwrap());
    let meta = tx.transaction.meta.clone().unwrap();
    assert!(meta.err.is_none());
    assert_eq!(meta.fee, 5_000);
    let decoded = tx.transaction.transaction.decode().unwrap();
    assert_eq!(decoded.signatures[0], signature);
    assert_eq!(
        meta.pre_balances.len(),
        decoded.message.static_account_keys().len()
    );
    // The admin paid the fee and the exchange account's rent.
    let exchange = exchange_address(7);
    let exchange_at = decoded
        .message
        .static_account_keys()
        .iter()
        .position(|key| *key == exchange)
        .unwrap();
    assert_eq!(meta.pre_balances[exchange_at], 0);
    assert!(meta.post_balances[exchange_at] > 0);
    assert!(meta.post_balances[0] < meta.pre_balances[0] - 5_000);
    // A listener finds the kestrel instruction and its data.
    let compiled = &decoded.message.instructions()[0];
    assert_eq!(
        decoded.message.static_account_keys()[usize::from(compiled.program_id_index)],
        kestrel::ID
    );
    assert_eq!(compiled.data, instruction.data);

    let history = client
        .get_signatures_for_address(&kestrel::ID)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].signature, signature.to_string());
    assert_eq!(history[0].slot, slot);
    assert!(history[0].err.is_none());
    let admin_history = client
        .get_signatures_for_address(&admin.pubkey())
        .await
        .unwrap();
    assert_eq!(admin_history.len(), 2, "airdrop and initialize");
    assert_eq!(
        admin_history[0].signature,
        signature.to_string(),
        "newest first"
    );

    let account = client.get_account(&exchange).await.unwrap();
    assert_eq!(account.owner, kestrel::ID);
    assert_eq!(&account.data[..8], Exchange::DISCRIMINATOR);

    let scan = |bytes: &[u8]| RpcProgramAccountsConfig {
        filters: Some(vec![RpcFilterType::Memcmp(Memcmp::new_base58_encoded(
            0, bytes,
        ))]),
        account_config: RpcAccountInfoConfig {
            encoding: Some(solana_account_decoder::UiAccountEncoding::Base64),
            ..RpcAccountInfoConfig::default()
        },
        ..RpcProgramAccountsConfig::default()
    };
    let found = client
        .get_program_ui_accounts_with_config(&kestrel::ID, scan(Exchange::DISCRIMINATOR))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].0, exchange);
    let none = client
        .get_program_ui_accounts_with_config(&kestrel::ID, scan(&[0xff; 8]))
        .await
        .unwrap();
    assert!(none.is_empty());
    chain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_transaction_reports_its_error_and_simulation_commits_nothing() {
    let (chain, client) = start().await;
    let admin = funded(&client, 5).await;
    // A zero withdrawal delay is refused by the program.
    let instruction = initialize_exchange(&admin.pubkey(), 9, 0);
    let expected = TransactionError::InstructionError(
        0,
        InstructionError::Custom(u32::from(KestrelError::InvalidWithdrawalDelay)),
    );
    let blockhash = client.get_latest_blockhash().await.unwrap();
    let tx = Transaction::new_signed_with_payer(
        &[instruction],
        Some(&admin.pubkey()),
        &[&admin],
        blockhash,
    );

    let simulated = client.simulate_transaction(&tx).await.unwrap();
    assert_eq!(simulated.value.err, Some(expected.clone().into()));
    assert!(simulated.value.units_consumed.is_some());
    assert_eq!(simulated.value.fee, Some(5_000));
    let statuses = client.get_signature_statuses(&tx.signatures).await.unwrap();
    assert!(statuses.value[0].is_none(), "a simulation is not committed");
    assert_eq!(
        client.get_balance(&admin.pubkey()).await.unwrap(),
        5 * LAMPORTS_PER_SOL
    );

    // With a preflight, the send is refused with the simulation attached.
    let refused = client.send_transaction(&tx).await.unwrap_err();
    match rpc_error(&refused) {
        (-32002, RpcResponseErrorData::SendTransactionPreflightFailure(result)) => {
            assert_eq!(result.err, Some(expected.clone().into()));
        }
        other => panic!("expected a preflight failure, got {other:?}"),
    }

    // Without one it lands, fails, and pays its fee.
    let signature = client
        .send_transaction_with_config(
            &tx,
            RpcSendTransactionConfig {
                skip_preflight: true,
                ..RpcSendTransactionConfig::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(signature, tx.signatures[0]);
    assert_eq!(
        wait_for_status(&client, &signature).await,
        Some(expected.clone())
    );
    let landed = client
        .get_transaction(&signature, UiTransactionEncoding::Base58)
        .await
        .unwrap();
    let meta = landed.transaction.meta.unwrap();
    assert_eq!(meta.err, Some(expected.clone().into()));
    assert_eq!(meta.fee, 5_000);
    assert_eq!(
        client.get_balance(&admin.pubkey()).await.unwrap(),
        5 * LAMPORTS_PER_SOL - 5_000
    );
    let history = client
        .get_signatures_for_address(&kestrel::ID)
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].err, Some(expected.into()));
    assert!(client
        .get_account_with_commitment(&exchange_address(9), client.commitment())
        .await
        .unwrap()
        .value
        .is_none());
    chain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v0_transaction_with_a_lookup_table_and_paged_history() {
    let (chain, client) = start().await;
    let payer = funded(&client, 10).await;
    let recipients: Vec<Pubkey> = (0..3).map(|_| Pubkey::new_unique()).collect();
    let recent_slot = client.get_slot().await.unwrap() - 1;
    let (create, table) = solana_address_lookup_table_interface::instruction::create_lookup_table(
        payer.pubkey(),
        payer.pubkey(),
        recent_slot,
    );
    let extend = solana_address_lookup_table_interface::instruction::extend_lookup_table(
        table,
        payer.pubkey(),
        Some(payer.pubkey()),
        recipients.clone(),
    );
    send(&client, &[create, extend], &[&payer]).await;
    // Addresses added to a table are usable from the next slot on.
    let extended_at = client.get_slot().await.unwrap();
    while client.get_slot().await.unwrap() <= extended_at {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut signatures = Vec::new();
    for recipient in &recipients {
        let transfer = solana_system_interface::instruction::transfer(
            &payer.pubkey(),
            recipient,
            LAMPORTS_PER_SOL,
        );
        let blockhash = client.get_latest_blockhash().await.unwrap();
        let message = v0::Message::try_compile(
            &payer.pubkey(),
            &[transfer],
            &[AddressLookupTableAccount {
                key: table,
                addresses: recipients.clone(),
            }],
            blockhash,
        )
        .unwrap();
        let tx = VersionedTransaction::try_new(VersionedMessage::V0(message), &[&payer]).unwrap();
        signatures.push(client.send_and_confirm_transaction(&tx).await.unwrap());
    }
    for recipient in &recipients {
        assert_eq!(
            client.get_balance(recipient).await.unwrap(),
            LAMPORTS_PER_SOL
        );
    }

    // A v0 transaction needs the client to accept version 0.
    let config = |max_supported_transaction_version| RpcTransactionConfig {
        encoding: Some(UiTransactionEncoding::Base64),
        max_supported_transaction_version,
        ..RpcTransactionConfig::default()
    };
    let legacy_only = client
        .get_transaction_with_config(&signatures[0], config(None))
        .await
        .unwrap_err();
    assert_eq!(rpc_error(&legacy_only).0, -32015);
    let tx = client
        .get_transaction_with_config(&signatures[0], config(Some(0)))
        .await
        .unwrap();
    let meta = tx.transaction.meta.unwrap();
    let loaded: Option<UiLoadedAddresses> = meta.loaded_addresses.into();
    assert_eq!(loaded.unwrap().writable, vec![recipients[0].to_string()]);
    // Static keys (payer, system program), then the loaded recipient.
    assert_eq!(meta.pre_balances.len(), 3);
    assert_eq!(meta.pre_balances[2], 0);
    assert_eq!(meta.post_balances[2], LAMPORTS_PER_SOL);
    let decoded = tx.transaction.transaction.decode().unwrap();
    assert!(matches!(decoded.message, VersionedMessage::V0(_)));

    // The recipient's history holds its transaction, found through the lookup table.
    let history = client
        .get_signatures_for_address(&recipients[1])
        .await
        .unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].signature, signatures[1].to_string());

    // The payer's history, newest first, paged with `before` and `until`.
    let page = |before, until, limit| GetConfirmedSignaturesForAddress2Config {
        before,
        until,
        limit: Some(limit),
        ..GetConfirmedSignaturesForAddress2Config::default()
    };
    let names = |found: Vec<RpcConfirmedTransactionStatusWithSignature>| {
        found
            .into_iter()
            .map(|status| status.signature)
            .collect::<Vec<_>>()
    };
    let newest = client
        .get_signatures_for_address_with_config(&payer.pubkey(), page(None, None, 2))
        .await
        .unwrap();
    assert_eq!(
        names(newest),
        vec![signatures[2].to_string(), signatures[1].to_string()]
    );
    let older = client
        .get_signatures_for_address_with_config(&payer.pubkey(), page(Some(signatures[1]), None, 1))
        .await
        .unwrap();
    assert_eq!(names(older), vec![signatures[0].to_string()]);
    let until = client
        .get_signatures_for_address_with_config(
            &payer.pubkey(),
            page(None, Some(signatures[0]), 10),
        )
        .await
        .unwrap();
    assert_eq!(
        names(until),
        vec![signatures[2].to_string(), signatures[1].to_string()]
    );
    chain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blockhash_validity() {
    let (chain, client) = start().await;
    let fresh = client.get_latest_blockhash().await.unwrap();
    assert!(client
        .is_blockhash_valid(&fresh, client.commitment())
        .await
        .unwrap());
    let garbage = Hash::new_from_array(rand_bytes());
    assert!(!client
        .is_blockhash_valid(&garbage, client.commitment())
        .await
        .unwrap());
    chain.shutdown().await.unwrap();
}

fn rand_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (i, byte) in bytes.iter_mut().enumerate() {
        *byte = (i as u8).wrapping_mul(37).wrapping_add(11);
    }
    bytes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genesis_accounts_are_served() {
    let address = Pubkey::new_unique();
    let owner = Pubkey::new_unique();
    let chain = EmbeddedChain::start(Config {
        accounts: vec![(
            address,
            Account {
                lamports: 1_000_000,
                data: vec![1, 2, 3, 4],
                owner,
                executable: false,
                rent_epoch: 0,
            },
        )],
        ..Config::default()
    })
    .await
    .unwrap();
    let client = RpcClient::new(chain.rpc_url());
    let account = client.get_account(&address).await.unwrap();
    assert_eq!(account.data, vec![1, 2, 3, 4]);
    let owned = client.get_program_accounts(&owner).await.unwrap();
    assert_eq!(owned.len(), 1);
    assert_eq!(owned[0].0, address);
    chain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_and_malformed_requests_get_json_rpc_errors() {
    let (chain, client) = start().await;
    let err = client
        .send::<Value>(
            RpcRequest::Custom {
                method: "getNoSuchThing",
            },
            Value::Null,
        )
        .await
        .unwrap_err();
    assert_eq!(rpc_error(&err).0, -32601);
    let err = client
        .send::<Value>(RpcRequest::GetBalance, json!(["not a pubkey"]))
        .await
        .unwrap_err();
    assert_eq!(rpc_error(&err).0, -32602);

    for body in [
        &b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"[..],
        &b"\xff\xfe not utf-8"[..],
        &b""[..],
    ] {
        let answer = post_raw(&chain, body).await;
        assert_eq!(answer["error"]["code"], -32700, "{answer}");
    }
    let answer = post_raw(&chain, br#"[{"jsonrpc":"2.0","id":1,"method":"getHealth"},{"jsonrpc":"2.0","id":2,"method":"nope"}]"#).await;
    assert_eq!(answer[0]["result"], "ok");
    assert_eq!(answer[1]["error"]["code"], -32601);
    // Still serving.
    client.get_health().await.unwrap();
    chain.shutdown().await.unwrap();
}

/// POSTs raw bytes to the server and parses the JSON answer.
async fn post_raw(chain: &EmbeddedChain, body: &[u8]) -> Value {
    let mut stream = tokio::net::TcpStream::connect(chain.local_addr())
        .await
        .unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    serde_json::from_str(body).unwrap()
}
