//! Withdrawals in the router's deterministic core: the co-signed flow (Pending → Broadcasting →
//! Confirmed, or Failed with the funds released), the exit hatch seen on-chain (held, then paid
//! out), exactly-once by (signature, instruction), refusals that change nothing, the journal
//! codec of the new commands and replay to the same state.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use anchor_lang::prelude::Pubkey;
use kestrel::encoding::{Order, OrderType, SelfTrade, Side, WithdrawRequest};
use kestrel_router::codec;
use kestrel_router::market::MarketSpec;
use kestrel_router::model::{
    ChainWithdrawalKind, Command, DoneReason, Event, Owner, WithdrawalKind, WithdrawalStatus,
};
use kestrel_router::reject::Reject;
use kestrel_router::state::{Rules, State};

const BASE: u8 = 0;
const QUOTE: u8 = 1;
const NOW_MS: u64 = 1_800_000_000_000;
const OWNER: Owner = [7; 32];

fn exchange() -> Pubkey {
    Pubkey::new_from_array([9; 32])
}

fn mint(asset: u8) -> Pubkey {
    Pubkey::new_from_array([asset + 1; 32])
}

fn rules() -> Rules {
    Rules {
        exchange: exchange(),
        assets: vec![mint(BASE), mint(QUOTE)],
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
            maker_fee_bps: 2,
            taker_fee_bps: 5,
            max_orders: 4_096,
        }],
        max_expiry_horizon_secs: 86_400 * 365,
        expiry_margin_secs: 30,
        max_open_orders: 64,
    }
}

/// Applies commands with increasing sequence numbers, keeping the log for replay. The state
/// never checks order signatures (the verification pool does), so commands are built unsigned.
struct Harness {
    state: State,
    log: Vec<Command>,
}

impl Harness {
    fn new() -> Self {
        Harness {
            state: State::new(rules()).unwrap(),
            log: Vec::new(),
        }
    }

    fn apply(&mut self, command: Command) -> Vec<Event> {
        self.log.push(command.clone());
        let seq = self.log.len() as u64;
        self.state.apply(seq, NOW_MS + seq, &command)
    }

    fn balance(&self, asset: u8) -> (u64, u64) {
        let b = self.state.ledger().balance(&OWNER, asset);
        (b.available, b.frozen)
    }

    /// Seq of the next command.
    fn next_seq(&self) -> u64 {
        self.log.len() as u64 + 1
    }
}

fn deposit(asset: u8, amount: u64) -> Command {
    Command::DepositObserved {
        owner: OWNER,
        asset,
        amount,
        tx: [1; 64],
        ix_index: u16::from(asset),
    }
}

fn request(asset: u8, amount: u64, nonce: u64) -> Command {
    Command::Withdraw(WithdrawRequest {
        exchange: exchange(),
        owner: Pubkey::new_from_array(OWNER),
        mint: mint(asset),
        amount,
        nonce,
        expiry: 0,
    })
}

fn broadcast(id: u64, tx: u8) -> Command {
    Command::WithdrawalBroadcast {
        id,
        tx: [tx; 64],
        last_valid_block_height: 1_000,
    }
}

fn chain(asset: u8, tx: u8, ix_index: u16, kind: ChainWithdrawalKind) -> Command {
    Command::ChainWithdrawal {
        owner: OWNER,
        asset,
        tx: [tx; 64],
        ix_index,
        kind,
    }
}

/// The co-signed `withdraw` landing as transaction `[landed; 64]`, co-signed `[cosig; 64]`.
fn landed(landed: u8, ix_index: u16, amount: u64, cosig: u8) -> Command {
    chain(
        QUOTE,
        landed,
        ix_index,
        ChainWithdrawalKind::Immediate {
            amount,
            cosignature: [cosig; 64],
        },
    )
}

fn rejected(events: &[Event]) -> Option<Reject> {
    events.iter().find_map(|e| match e {
        Event::Rejected { reason, .. } => Some(*reason),
        _ => None,
    })
}

/// (id, status, kind, tx) of the withdrawal events.
fn withdrawals(events: &[Event]) -> Vec<(u64, WithdrawalStatus, WithdrawalKind, Option<String>)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Withdrawal {
                id,
                status,
                kind,
                tx,
                ..
            } => Some((*id, *status, *kind, tx.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_cosigned_withdrawal_broadcasts_once_and_confirms_once_when_its_transaction_lands() {
    let mut h = Harness::new();
    h.apply(deposit(QUOTE, 10_000));
    let id = h.next_seq();
    h.apply(request(QUOTE, 4_000, 1));
    assert_eq!(h.balance(QUOTE), (6_000, 4_000));

    let events = h.apply(broadcast(id, 0xaa));
    let tx = Some(hex::encode([0xaa; 64]));
    assert_eq!(
        withdrawals(&events),
        vec![(
            id,
            WithdrawalStatus::Broadcasting,
            WithdrawalKind::Cosigned,
            tx.clone()
        )]
    );
    // A second co-signed transaction is never handed out.
    let again = h.apply(broadcast(id, 0xbb));
    assert_eq!(rejected(&again), Some(Reject::WithdrawalNotPending));
    assert_eq!(again.len(), 1);

    // Another transaction, or the right one with other terms, is an alert and moves nothing.
    let stranger = h.apply(landed(0x10, 0, 4_000, 0xbb));
    assert_eq!(rejected(&stranger), Some(Reject::UnexpectedWithdrawal));
    let wrong = h.apply(landed(0x11, 0, 4_001, 0xaa));
    assert_eq!(rejected(&wrong), Some(Reject::UnexpectedWithdrawal));
    assert_eq!(h.balance(QUOTE), (6_000, 4_000));

    let landed = landed(0x12, 0, 4_000, 0xaa);
    let events = h.apply(landed.clone());
    assert_eq!(
        withdrawals(&events),
        vec![(
            id,
            WithdrawalStatus::Confirmed,
            WithdrawalKind::Cosigned,
            Some(hex::encode([0x12; 64]))
        )]
    );
    assert_eq!(h.balance(QUOTE), (6_000, 0));
    // The listener reprocessing history changes nothing.
    for _ in 0..3 {
        assert!(h.apply(landed.clone()).is_empty());
    }
    assert_eq!(h.balance(QUOTE), (6_000, 0));
}

#[test]
fn an_expired_transaction_fails_the_withdrawal_and_releases_the_funds() {
    let mut h = Harness::new();
    h.apply(deposit(QUOTE, 10_000));
    let id = h.next_seq();
    h.apply(request(QUOTE, 4_000, 1));
    h.apply(broadcast(id, 0xaa));
    let events = h.apply(Command::WithdrawalFinished {
        id,
        confirmed: false,
    });
    assert_eq!(withdrawals(&events)[0].1, WithdrawalStatus::Failed);
    assert_eq!(h.balance(QUOTE), (10_000, 0));
    // Finishing twice is refused; nothing moves.
    let twice = h.apply(Command::WithdrawalFinished {
        id,
        confirmed: false,
    });
    assert_eq!(rejected(&twice), Some(Reject::WithdrawalNotPending));
    // Its transaction showing up after all is an alert, once.
    let late = landed(0x12, 0, 4_000, 0xaa);
    assert_eq!(
        rejected(&h.apply(late.clone())),
        Some(Reject::UnexpectedWithdrawal)
    );
    assert!(h.apply(late).is_empty());
    assert_eq!(h.balance(QUOTE), (10_000, 0));
}

#[test]
fn the_exit_hatch_holds_what_the_chain_set_aside_cancelling_orders_and_pays_it_on_execution() {
    let mut h = Harness::new();
    h.apply(deposit(BASE, 5_000));
    // A sell of 3 lots holds 3,000 base atoms.
    let order_id = h.next_seq();
    let order = Order {
        exchange: exchange(),
        owner: Pubkey::new_from_array(OWNER),
        market_index: 0,
        side: Side::Sell,
        order_type: OrderType::Limit,
        self_trade: SelfTrade::CancelTaker,
        price_ticks: 100,
        size_lots: 3,
        nonce: 1,
        expiry: 0,
        client_order_id: 0,
    };
    let placed = h.apply(Command::Place {
        order,
        signature: [0; 64],
    });
    assert_eq!(rejected(&placed), None);
    assert_eq!(h.balance(BASE), (2_000, 3_000));

    let id = h.next_seq();
    let requested = chain(
        BASE,
        0xcc,
        2,
        ChainWithdrawalKind::Requested { amount: 4_000 },
    );
    let events = h.apply(requested.clone());
    assert!(events.iter().any(|e| matches!(
        e,
        Event::OrderDone { order_id: o, reason: DoneReason::Cancelled, .. } if *o == order_id
    )));
    assert_eq!(
        withdrawals(&events),
        vec![(
            id,
            WithdrawalStatus::Pending,
            WithdrawalKind::ExitHatch,
            Some(hex::encode([0xcc; 64]))
        )]
    );
    assert_eq!(h.balance(BASE), (1_000, 4_000));
    assert!(h.apply(requested).is_empty());
    assert_eq!(h.balance(BASE), (1_000, 4_000));

    // The held atoms can be neither co-sign requested nor broadcast.
    assert_eq!(
        rejected(&h.apply(request(BASE, 2_000, 1))),
        Some(Reject::InsufficientBalance)
    );
    assert_eq!(
        rejected(&h.apply(broadcast(id, 0xdd))),
        Some(Reject::WithdrawalNotPending)
    );
    assert_eq!(
        rejected(&h.apply(Command::WithdrawalFinished {
            id,
            confirmed: false
        })),
        Some(Reject::WithdrawalNotPending)
    );

    let executed = chain(BASE, 0xee, 0, ChainWithdrawalKind::Executed);
    let events = h.apply(executed.clone());
    assert_eq!(
        withdrawals(&events),
        vec![(
            id,
            WithdrawalStatus::Confirmed,
            WithdrawalKind::ExitHatch,
            Some(hex::encode([0xee; 64]))
        )]
    );
    assert_eq!(h.balance(BASE), (1_000, 0));
    for _ in 0..3 {
        assert!(h.apply(executed.clone()).is_empty());
    }
    // An execution with nothing requested is an alert.
    assert_eq!(
        rejected(&h.apply(chain(BASE, 0xef, 0, ChainWithdrawalKind::Executed))),
        Some(Reject::UnexpectedWithdrawal)
    );
    assert_eq!(h.balance(BASE), (1_000, 0));
}

#[test]
fn a_request_beyond_the_ledger_holds_what_there_is() {
    let mut h = Harness::new();
    h.apply(deposit(QUOTE, 1_000));
    let events = h.apply(chain(
        QUOTE,
        0xcc,
        0,
        ChainWithdrawalKind::Requested { amount: 5_000 },
    ));
    assert!(events
        .iter()
        .any(|e| matches!(e, Event::Withdrawal { amount: 1_000, .. })));
    assert_eq!(h.balance(QUOTE), (0, 1_000));
}

#[test]
fn bad_withdrawal_inputs_are_refused_and_change_nothing() {
    let mut h = Harness::new();
    h.apply(deposit(QUOTE, 1_000));
    let before = h.state.state_hash();
    for (command, reason) in [
        (broadcast(99, 1), Reject::WithdrawalNotPending),
        (
            Command::WithdrawalFinished {
                id: 99,
                confirmed: true,
            },
            Reject::WithdrawalNotPending,
        ),
        (
            chain(7, 1, 0, ChainWithdrawalKind::Requested { amount: 1 }),
            Reject::InvalidAmount,
        ),
        (
            chain(QUOTE, 2, 0, ChainWithdrawalKind::Requested { amount: 0 }),
            Reject::InvalidAmount,
        ),
    ] {
        let events = h.apply(command);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(rejected(&events), Some(reason));
    }
    assert_eq!(h.balance(QUOTE), (1_000, 0));
    // Only the sequence number moved.
    let mut expected = State::new(rules()).unwrap();
    expected.apply(1, NOW_MS + 1, &deposit(QUOTE, 1_000));
    expected.apply(h.log.len() as u64, NOW_MS, &Command::Tick);
    assert_eq!(h.state.state_hash(), expected.state_hash());
    assert_ne!(before, h.state.state_hash());
}

#[test]
fn the_new_commands_round_trip_the_journal_codec_and_replay_to_the_same_state() {
    let mut h = Harness::new();
    h.apply(deposit(QUOTE, 10_000));
    h.apply(deposit(BASE, 10_000));
    let id = h.next_seq();
    h.apply(request(QUOTE, 4_000, 1));
    h.apply(broadcast(id, 0xaa));
    h.apply(landed(0x12, 3, 4_000, 0xaa));
    h.apply(chain(
        BASE,
        0xcc,
        1,
        ChainWithdrawalKind::Requested { amount: 2_500 },
    ));
    h.apply(chain(BASE, 0xee, 0, ChainWithdrawalKind::Executed));
    let mut replayed = State::new(rules()).unwrap();
    for (i, command) in h.log.iter().enumerate() {
        let mut bytes = Vec::new();
        codec::encode(command, &mut bytes);
        let decoded = codec::decode(&bytes).unwrap();
        assert_eq!(&decoded, command);
        // Truncated or extended bytes are refused.
        assert!(codec::decode(&bytes[..bytes.len() - 1]).is_err());
        bytes.push(0);
        assert!(codec::decode(&bytes).is_err());
        let seq = i as u64 + 1;
        replayed.apply(seq, NOW_MS + seq, &decoded);
    }
    assert_eq!(replayed.state_hash(), h.state.state_hash());
    assert_eq!(h.balance(QUOTE), (6_000, 0));
    assert_eq!(h.balance(BASE), (7_500, 0));
    // An unknown chain-withdrawal kind byte is refused.
    let mut bytes = Vec::new();
    codec::encode(
        &chain(BASE, 1, 0, ChainWithdrawalKind::Executed),
        &mut bytes,
    );
    *bytes.last_mut().unwrap() = 9;
    assert!(codec::decode(&bytes).is_err());
}

#[test]
fn withdrawals_in_every_state_survive_a_snapshot() {
    let mut h = Harness::new();
    h.apply(deposit(QUOTE, 10_000));
    h.apply(deposit(BASE, 10_000));
    let broadcasting = h.next_seq();
    h.apply(request(QUOTE, 1_000, 1));
    h.apply(broadcast(broadcasting, 0xaa));
    h.apply(request(QUOTE, 2_000, 2));
    h.apply(chain(
        BASE,
        0xcc,
        1,
        ChainWithdrawalKind::Requested { amount: 2_500 },
    ));
    let mut bytes = Vec::new();
    h.state.encode_snapshot(&mut bytes);
    let mut restored = State::decode_snapshot(rules(), &bytes).unwrap();
    assert_eq!(restored.snapshot_digest(), h.state.snapshot_digest());
    assert_eq!(restored.state_hash(), h.state.state_hash());
    // The restored state treats what follows exactly as the original: the broadcast
    // transaction lands, the exit hatch executes, and a replayed chain event is ignored.
    let seq = h.next_seq();
    for (i, command) in [
        landed(0x12, 3, 1_000, 0xaa),
        chain(BASE, 0xee, 0, ChainWithdrawalKind::Executed),
        chain(
            BASE,
            0xcc,
            1,
            ChainWithdrawalKind::Requested { amount: 2_500 },
        ),
    ]
    .into_iter()
    .enumerate()
    {
        let seq = seq + i as u64;
        let original = h.state.apply(seq, NOW_MS + seq, &command);
        let again = restored.apply(seq, NOW_MS + seq, &command);
        assert_eq!(original, again);
    }
    assert_eq!(restored.snapshot_digest(), h.state.snapshot_digest());
    // A snapshot cut anywhere inside a withdrawal entry is refused.
    for cut in 1..bytes.len() {
        assert!(State::decode_snapshot(rules(), &bytes[..cut]).is_err());
    }
}
