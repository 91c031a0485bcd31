//! The wallet's side of a co-signed withdrawal, without a chain: the ownership proof is the
//! router's byte for byte, and the check refuses every transaction that is not exactly the
//! withdrawal asked for, signed by the operator.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use base64::Engine;
use kestrel_sdk::withdrawal::{self, ExpectedWithdrawal, WithdrawalTxError};
use kestrel_sdk::Deployment;
use solana_sdk::hash::Hash;
use solana_sdk::instruction::Instruction;
use solana_sdk::message::Message;
use solana_sdk::pubkey::Pubkey;
use solana_sdk::signature::{Keypair, Signature, Signer};
use solana_sdk::transaction::Transaction;

struct Fixture {
    deployment: Deployment,
    owner: Keypair,
    operator: Keypair,
    expected: ExpectedWithdrawal,
}

fn fixture() -> Fixture {
    let deployment = Deployment::new(
        1,
        vec![
            Pubkey::new_from_array([1; 32]),
            Pubkey::new_from_array([2; 32]),
        ],
    );
    let operator = Keypair::new();
    let expected = ExpectedWithdrawal {
        asset: 1,
        amount: 2_500,
        destination: Pubkey::new_from_array([5; 32]),
        operator: operator.pubkey(),
    };
    Fixture {
        deployment,
        owner: Keypair::new(),
        operator,
        expected,
    }
}

impl Fixture {
    fn withdraw(&self) -> Instruction {
        let e = &self.expected;
        self.deployment
            .withdraw(
                &self.owner.pubkey(),
                &e.operator,
                e.asset,
                &e.destination,
                e.amount,
            )
            .unwrap()
    }

    /// `instructions` paid by `payer`, signed by the operator only.
    fn cosigned(&self, instructions: &[Instruction], payer: &Pubkey) -> Transaction {
        let blockhash = Hash::new_from_array([3; 32]);
        let message = Message::new_with_blockhash(instructions, Some(payer), &blockhash);
        let mut tx = Transaction::new_unsigned(message);
        tx.try_partial_sign(&[&self.operator], blockhash).unwrap();
        tx
    }

    fn encode(tx: &Transaction) -> String {
        base64::engine::general_purpose::STANDARD.encode(bincode::serialize(tx).unwrap())
    }

    fn sign(&self, tx: &Transaction) -> Result<Transaction, WithdrawalTxError> {
        withdrawal::sign_cosigned(
            &Self::encode(tx),
            &self.deployment,
            &self.owner,
            &self.expected,
        )
    }
}

#[test]
fn the_exact_withdrawal_is_signed_and_then_fully_signed() {
    let f = fixture();
    let tx = f.cosigned(&[f.withdraw()], &f.owner.pubkey());
    let signed = f.sign(&tx).unwrap();
    signed.verify().unwrap();
    assert_eq!(signed.message, tx.message);
}

#[test]
fn anything_else_is_refused() {
    let f = fixture();
    let owner = f.owner.pubkey();

    // Another amount in the data.
    let mut more = f.withdraw();
    let last = more.data.len() - 1;
    more.data[last] ^= 1;
    // Another destination.
    let mut elsewhere = f.withdraw();
    elsewhere.accounts[5].pubkey = Pubkey::new_unique();
    // Another program.
    let mut program = f.withdraw();
    program.program_id = Pubkey::new_unique();
    // An extra instruction riding along.
    let extra = solana_system_interface::instruction::transfer(&owner, &Pubkey::new_unique(), 1);
    for tx in [
        f.cosigned(&[more], &owner),
        f.cosigned(&[elsewhere], &owner),
        f.cosigned(&[program], &owner),
        f.cosigned(&[f.withdraw(), extra], &owner),
        f.cosigned(&[f.withdraw()], &f.operator.pubkey()),
    ] {
        assert!(
            matches!(f.sign(&tx), Err(WithdrawalTxError::Mismatch(_))),
            "{tx:?}"
        );
    }

    // The operator's signature missing or forged.
    let mut unsigned = f.cosigned(&[f.withdraw()], &owner);
    unsigned.signatures = vec![Signature::default(); 2];
    assert_eq!(f.sign(&unsigned), Err(WithdrawalTxError::OperatorSignature));
    let mut forged = f.cosigned(&[f.withdraw()], &owner);
    forged.signatures[1] = Keypair::new().sign_message(&forged.message.serialize());
    assert_eq!(f.sign(&forged), Err(WithdrawalTxError::OperatorSignature));

    // Not a transaction at all.
    assert_eq!(
        withdrawal::sign_cosigned("%%", &f.deployment, &f.owner, &f.expected),
        Err(WithdrawalTxError::Encoding)
    );
    assert_eq!(
        withdrawal::sign_cosigned("AAAA", &f.deployment, &f.owner, &f.expected),
        Err(WithdrawalTxError::Encoding)
    );
}

#[test]
fn the_ownership_proof_is_the_routers_message() {
    let f = fixture();
    let destination = f.expected.destination;
    let body = withdrawal::transaction_request(&f.deployment.exchange, &f.owner, 42, &destination);
    let router = kestrel_router::api::withdrawals::transaction_request_message(
        &f.deployment.exchange.to_bytes(),
        &f.owner.pubkey().to_bytes(),
        42,
        &destination.to_bytes(),
    );
    let sdk = withdrawal::transaction_request_message(
        &f.deployment.exchange,
        &f.owner.pubkey(),
        42,
        &destination,
    );
    assert_eq!(router, sdk);
    assert_eq!(body["owner"], hex(f.owner.pubkey().as_ref()));
    let signature: Signature = hex_decode(body["signature"].as_str().unwrap())
        .as_slice()
        .try_into()
        .unwrap();
    assert!(signature.verify(f.owner.pubkey().as_ref(), &sdk));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}
