//! The chain listener end to end on the embedded chain, through `RpcClient` only: successful
//! kestrel deposits and exits are reported once each with the amounts the vault moved; failed
//! transactions, other programs' look-alike instructions and tokens sent to a vault outside a
//! deposit are not; re-reading the whole history gives the same events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::arithmetic_side_effects)]

mod common;

use common::{eventually, noop_program, Chain, Exchange};
use kestrel::error::KestrelError;
use kestrel::state::UserAccount;
use kestrel_relayer::listener::{
    ChainEvent, ChainSink, Listener, ListenerConfig, Origin, SinkError,
};
use solana_sdk::account::Account;
use solana_sdk::instruction::{AccountMeta, InstructionError};
use solana_sdk::native_token::LAMPORTS_PER_SOL;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::TransactionError;
use solana_transaction_status::UiTransactionEncoding;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

#[derive(Default)]
struct Recorder(Mutex<Vec<ChainEvent>>);

impl ChainSink for Recorder {
    fn emit(&self, event: ChainEvent) -> impl Future<Output = Result<(), SinkError>> + Send {
        self.0.lock().unwrap().push(event);
        async { Ok(()) }
    }
}

impl Recorder {
    fn take(&self) -> Vec<ChainEvent> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

async fn origin(c: &Chain, tx_signature: Signature, ix_index: u8) -> Origin {
    let statuses = c.rpc.get_signature_statuses(&[tx_signature]).await.unwrap();
    let slot = statuses.value[0].as_ref().unwrap().slot;
    Origin {
        tx_signature,
        ix_index,
        slot,
    }
}

fn custom(err: &Option<TransactionError>) -> Option<u32> {
    match err {
        Some(TransactionError::InstructionError(_, InstructionError::Custom(code))) => Some(*code),
        _ => None,
    }
}

fn spl_transfer(
    from: &Pubkey,
    to: &Pubkey,
    owner: &Keypair,
    amount: u64,
) -> solana_sdk::instruction::Instruction {
    spl_token_interface::instruction::transfer(
        &spl_token_interface::ID,
        from,
        to,
        &owner.pubkey(),
        &[],
        amount,
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_reports_successful_deposits_and_exits_once_and_nothing_else() {
    let noop = Pubkey::new_unique();
    let c = Chain::start_with(vec![(
        noop,
        Account {
            lamports: LAMPORTS_PER_SOL,
            data: noop_program(),
            owner: solana_sdk::bpf_loader::id(),
            executable: true,
            rent_epoch: 0,
        },
    )])
    .await;
    let ex = Exchange::deploy(&c).await;
    let d = &ex.d;
    let config = ListenerConfig { page_size: 2 };
    // A listener that has already seen the deployment's setup follows from its cursor.
    let follower_sink = Recorder::default();
    let mut follower = Listener::new(&c.rpc, d, config, None);
    follower.poll_once(&follower_sink).await.unwrap();
    assert_eq!(follower_sink.take(), vec![], "setup emits no event");

    let alice = c.funded().await;
    let alice_quote = c
        .token_account(&ex.quote, &alice, &ex.admin, 1_000_000)
        .await;
    let alice_base = c.token_account(&ex.base, &alice, &ex.admin, 5_000).await;
    let vault = d.vault_address(&ex.quote);
    let mut expected = Vec::new();

    // 1. A deposit: reported with what the vault received.
    let sig = c
        .send(
            &[
                d.create_user(&alice.pubkey()),
                d.deposit(&alice.pubkey(), 1, &alice_quote, 250_000)
                    .unwrap(),
            ],
            &alice,
            &[],
        )
        .await;
    let o = origin(&c, sig, 1).await;
    expected.push(ChainEvent::Deposit {
        owner: alice.pubkey(),
        asset: 1,
        amount: 250_000,
        tx_signature: sig,
        ix_index: 1,
        slot: o.slot,
    });

    // 2. A deposit of more than the wallet holds lands, failed: nothing.
    let (_, err) = c
        .send_unchecked(
            &[d.deposit(&alice.pubkey(), 1, &alice_quote, 10_000_000)
                .unwrap()],
            &alice,
            &[],
        )
        .await;
    assert!(err.is_some(), "the overdrawn deposit fails on-chain");

    // 3. The same instruction to another program succeeds and names the kestrel program, so
    // it is in kestrel's history, but it is no deposit.
    let mut lookalike = d.deposit(&alice.pubkey(), 1, &alice_quote, 1_000).unwrap();
    lookalike.program_id = noop;
    lookalike
        .accounts
        .push(AccountMeta::new_readonly(kestrel::ID, false));
    let lookalike_sig = c.send(&[lookalike], &alice, &[]).await;
    let history = c
        .rpc
        .get_signatures_for_address(&kestrel::ID)
        .await
        .unwrap();
    assert!(history
        .iter()
        .any(|s| s.signature == lookalike_sig.to_string()));

    // 4. A deposit of the wrong mint is refused on-chain: nothing.
    let (_, err) = c
        .send_unchecked(
            &[d.deposit(&alice.pubkey(), 1, &alice_base, 5_000).unwrap()],
            &alice,
            &[],
        )
        .await;
    assert_eq!(custom(&err), Some(u32::from(KestrelError::WrongMint)));

    // 5. Tokens sent straight to the vault beside a kestrel instruction are nobody's deposit;
    // a deposit beside such a transfer is credited only its own amount.
    let sig = c
        .send(
            &[
                spl_transfer(&alice_quote, &vault, &alice, 1_000),
                d.cancel_up_to(&alice.pubkey(), 10),
            ],
            &alice,
            &[],
        )
        .await;
    expected.push(ChainEvent::NonceFloor {
        owner: alice.pubkey(),
        floor: 10,
        origin: origin(&c, sig, 1).await,
    });
    let sig = c
        .send(
            &[
                d.deposit(&alice.pubkey(), 1, &alice_quote, 2_000).unwrap(),
                spl_transfer(&alice_quote, &vault, &alice, 3_000),
            ],
            &alice,
            &[],
        )
        .await;
    let o = origin(&c, sig, 0).await;
    expected.push(ChainEvent::Deposit {
        owner: alice.pubkey(),
        asset: 1,
        amount: 2_000,
        tx_signature: sig,
        ix_index: 0,
        slot: o.slot,
    });

    // 6. The exit hatch: request, wait for the delay, execute.
    let sig = c
        .send(
            &[d.request_withdrawal(&alice.pubkey(), 1, 100_000)],
            &alice,
            &[],
        )
        .await;
    expected.push(ChainEvent::WithdrawalRequested {
        owner: alice.pubkey(),
        asset: 1,
        amount: 100_000,
        origin: origin(&c, sig, 0).await,
    });
    let user: UserAccount = c.load(&d.user_address(&alice.pubkey())).await;
    let ready = user.balances[1].withdrawal_ready_slot;
    eventually(Duration::from_secs(10), "the withdrawal delay", || async {
        (c.rpc.get_slot().await.unwrap() > ready).then_some(())
    })
    .await;
    let sig = c
        .send(
            &[d.execute_withdrawal(&alice.pubkey(), 1, &alice_quote)
                .unwrap()],
            &alice,
            &[],
        )
        .await;
    expected.push(ChainEvent::WithdrawalExecuted {
        owner: alice.pubkey(),
        asset: 1,
        amount: Some(100_000),
        origin: origin(&c, sig, 0).await,
    });

    // 7. An immediate withdrawal co-signed by the operator.
    let sig = c
        .send(
            &[d.withdraw(
                &alice.pubkey(),
                &ex.operator.pubkey(),
                1,
                &alice_quote,
                50_000,
            )
            .unwrap()],
            &alice,
            &[&ex.operator],
        )
        .await;
    let landed = c
        .rpc
        .get_transaction(&sig, UiTransactionEncoding::Base64)
        .await
        .unwrap()
        .transaction
        .transaction
        .decode()
        .unwrap();
    let operator_at = landed
        .message
        .static_account_keys()
        .iter()
        .position(|k| *k == ex.operator.pubkey())
        .unwrap();
    expected.push(ChainEvent::Withdrawn {
        owner: alice.pubkey(),
        asset: 1,
        amount: 50_000,
        cosignature: landed.signatures[operator_at],
        origin: origin(&c, sig, 0).await,
    });

    // The follower, resuming from its cursor, sees exactly the new events, then nothing more.
    let emitted = follower.poll_once(&follower_sink).await.unwrap();
    assert_eq!(emitted, expected.len());
    assert_eq!(follower_sink.take(), expected);
    assert_eq!(follower.poll_once(&follower_sink).await.unwrap(), 0);

    // Re-reading the whole history from scratch, three times, gives the same list.
    for _ in 0..3 {
        let sink = Recorder::default();
        let mut fresh = Listener::new(&c.rpc, d, ListenerConfig::default(), None);
        fresh.poll_once(&sink).await.unwrap();
        assert_eq!(sink.take(), expected);
        assert_eq!(fresh.cursor(), follower.cursor());
    }

    // The on-chain balance agrees with the events: 250,000 + 2,000 − 100,000 − 50,000.
    let user: UserAccount = c.load(&d.user_address(&alice.pubkey())).await;
    assert_eq!(user.balances[1].available, 102_000);
    assert_eq!(user.nonce_floor, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listener_ignores_another_deployment_of_the_same_program() {
    let c = Chain::start().await;
    let ours = Exchange::deploy(&c).await;
    let theirs = {
        // A second deployment (another domain id) sharing the program and the mints.
        let d = kestrel_sdk::Deployment::new(8, vec![ours.base, ours.quote]);
        let setup = vec![
            d.initialize_exchange(
                &ours.admin.pubkey(),
                &ours.operator.pubkey(),
                &ours.admin.pubkey(),
                4,
                10,
            ),
            d.add_asset(&ours.admin.pubkey(), 0).unwrap(),
            d.add_asset(&ours.admin.pubkey(), 1).unwrap(),
        ];
        c.send(&setup, &ours.admin, &[]).await;
        d
    };
    let bob = c.funded().await;
    let bob_quote = c
        .token_account(&ours.quote, &bob, &ours.admin, 10_000)
        .await;
    c.send(
        &[
            theirs.create_user(&bob.pubkey()),
            theirs.deposit(&bob.pubkey(), 1, &bob_quote, 4_000).unwrap(),
            ours.d.create_user(&bob.pubkey()),
            ours.d.deposit(&bob.pubkey(), 1, &bob_quote, 6_000).unwrap(),
        ],
        &bob,
        &[],
    )
    .await;
    let sink = Recorder::default();
    let mut listener = Listener::new(&c.rpc, &ours.d, ListenerConfig::default(), None);
    listener.poll_once(&sink).await.unwrap();
    let events = sink.take();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(
        events[0],
        ChainEvent::Deposit { amount: 6_000, ix_index: 3, asset: 1, owner, .. } if owner == bob.pubkey()
    ));
}
