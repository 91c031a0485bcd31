//! `kill -9` at random points: after every crash, every acknowledged command is in the
//! journal with the same bytes, its replay produces exactly the events the client was told,
//! recovery is repeatable, and the sequencer continues the sequence.
//!
//! The child is this same test binary re-run with `KESTREL_CRASH_CHILD` set: it runs the real
//! sequencer on a journal directory and prints `ack <seq> <events digest>` for each
//! acknowledgement. The variant with snapshots has the child snapshot every few hundred
//! commands, and checks that snapshot + tail recovery reaches exactly the state of a full
//! replay after every crash.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

use anchor_lang::prelude::Pubkey;
use ed25519_dalek::{Signer, SigningKey};
use kestrel::encoding::{Order, OrderType, SelfTrade, Side};
use kestrel_matcher::journal::{recover_log, JournalConfig};
use kestrel_router::codec;
use kestrel_router::market::MarketSpec;
use kestrel_router::model::{Command, Event};
use kestrel_router::recovery::{self, Recovery};
use kestrel_router::sequencer::{self, Config};
use kestrel_router::snapshot::SnapshotConfig;
use kestrel_router::state::{Rules, State};
use rand::{Rng, SeedableRng};
use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::time::Duration;

fn rules() -> Rules {
    Rules {
        exchange: Pubkey::new_from_array([9; 32]),
        assets: vec![
            Pubkey::new_from_array([1; 32]),
            Pubkey::new_from_array([2; 32]),
        ],
        markets: vec![MarketSpec {
            index: 0,
            base_asset: 0,
            quote_asset: 1,
            base_lot_size: 100,
            tick_size: 1,
            min_size_lots: 1,
            max_size_lots: 1_000_000,
            min_price_ticks: 1,
            max_price_ticks: 1_000_000,
            maker_fee_bps: 1,
            taker_fee_bps: 3,
            max_orders: 100_000,
        }],
        max_expiry_horizon_secs: 86_400,
        expiry_margin_secs: 0,
        max_open_orders: 10_000,
    }
}

fn digest(events: &[Event]) -> String {
    let json = serde_json::to_vec(events).unwrap();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in json {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn journal_config(dir: &str) -> JournalConfig {
    let mut config = JournalConfig::new(dir);
    config.segment_bytes = 64 * 1024; // rotate often
    config.group_window = Duration::from_millis(1);
    config
}

/// A deterministic command stream from `seed`: deposits for 6 wallets, then random orders.
fn commands(seed: u64, start: u64) -> impl Iterator<Item = Command> {
    let keys: Vec<SigningKey> = (0..6u8)
        .map(|i| SigningKey::from_bytes(&[i + 1; 32]))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut nonce = start * 1_000_000;
    (0u64..).map(move |i| {
        let key = &keys[rng.gen_range(0..keys.len())];
        let owner = key.verifying_key().to_bytes();
        if i < 12 {
            return Command::DepositObserved {
                owner: keys[(i % 6) as usize].verifying_key().to_bytes(),
                asset: (i / 6) as u8,
                amount: 1_000_000_000,
                tx: [((seed + start + i) % 251) as u8; 64].map(|b| b ^ (i as u8)),
                ix_index: (start + i) as u16,
            };
        }
        nonce += 1;
        let order = Order {
            exchange: Pubkey::new_from_array([9; 32]),
            owner: Pubkey::new_from_array(owner),
            market_index: 0,
            side: if rng.gen_bool(0.5) {
                Side::Buy
            } else {
                Side::Sell
            },
            order_type: if rng.gen_bool(0.8) {
                OrderType::Limit
            } else {
                OrderType::ImmediateOrCancel
            },
            self_trade: SelfTrade::CancelTaker,
            price_ticks: rng.gen_range(990..1_010),
            size_lots: rng.gen_range(1..50),
            nonce,
            expiry: 0,
            client_order_id: 0,
        };
        Command::Place {
            order,
            signature: key.sign(&order.encode()).to_bytes(),
        }
    })
}

#[test]
fn crash_child_entry() {
    let Ok(dir) = std::env::var("KESTREL_CRASH_CHILD") else {
        return;
    };
    let seed: u64 = std::env::var("KESTREL_CRASH_SEED")
        .unwrap()
        .parse()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let snapshots = if std::env::var("KESTREL_CRASH_SNAPSHOTS").is_ok() {
            SnapshotConfig {
                every_commands: 300,
                ..SnapshotConfig::default()
            }
        } else {
            SnapshotConfig::disabled()
        };
        let config = Config {
            journal: journal_config(&dir),
            tick_interval: Duration::from_millis(5),
            snapshots,
            light_load_below: 5_000,
        };
        let s = sequencer::start(rules(), config, Vec::new()).unwrap();
        let start = s.replayed + s.snapshot_seq;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (i, command) in commands(seed, start).enumerate().take(20_000) {
            let handle = s.handle.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Ok(ack) = handle.submit(command).await {
                    let _ = tx.send(format!("ack {} {}", ack.seq, digest(&ack.events)));
                }
            });
            if i % 16 == 15 {
                while let Ok(line) = rx.try_recv() {
                    println!("{line}");
                }
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        }
        while let Some(line) = rx.recv().await {
            println!("{line}");
        }
    });
}

/// Events by sequence, the final state hash, the last sequence, the records, and the
/// full-state digest.
type Replay = (
    std::collections::HashMap<u64, String>,
    u64,
    u64,
    Vec<Vec<u8>>,
    [u8; 32],
);

/// Replays the journal into a fresh state.
fn replay(dir: &str) -> Replay {
    let mut state = State::new(rules()).unwrap();
    let mut digests = std::collections::HashMap::new();
    let mut bodies = Vec::new();
    let (_, last) = recover_log(journal_config(dir), |seq, ts, body| {
        let command = codec::decode(body).expect("router command");
        let events = state.apply(seq, ts.0 / 1_000_000, &command);
        digests.insert(seq, digest(&events));
        bodies.push(body.to_vec());
    })
    .expect("journal recovers");
    (
        digests,
        state.state_hash(),
        last,
        bodies,
        state.snapshot_digest(),
    )
}

#[test]
fn kill_9_loses_no_acknowledged_command() {
    crash_rounds(false);
}

#[test]
fn kill_9_with_snapshots_recovers_the_state_of_a_full_replay() {
    crash_rounds(true);
}

fn crash_rounds(snapshots: bool) {
    let dir = tempdir(snapshots);
    let mut from_snapshot = 0;
    let exe = std::env::current_exe().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut acked: Vec<(u64, String)> = Vec::new();
    for round in 0..12u64 {
        let mut child = Process::new(&exe);
        if snapshots {
            child.env("KESTREL_CRASH_SNAPSHOTS", "1");
        }
        let mut child = child
            .args([
                "--exact",
                "crash_child_entry",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env("KESTREL_CRASH_CHILD", &dir)
            .env("KESTREL_CRASH_SEED", round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let kill_after = rng.gen_range(20..600);
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("ack ") {
                let (seq, d) = rest.split_once(' ').unwrap();
                acked.push((seq.parse().unwrap(), d.to_string()));
                seen += 1;
                if seen >= kill_after {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let (digests, hash, last, bodies, full) = replay(&dir);
        for (seq, d) in &acked {
            assert!(
                *seq <= last,
                "round {round}: acknowledged {seq} missing (journal ends at {last})"
            );
            assert_eq!(
                digests.get(seq),
                Some(d),
                "round {round}: replay of {seq} differs from its ack"
            );
        }
        let (_, again, last_again, bodies_again, _) = replay(&dir);
        assert_eq!((again, last_again), (hash, last), "recovery is repeatable");
        assert_eq!(bodies, bodies_again);
        if snapshots {
            let r = recovery::recover(rules(), journal_config(&dir), Recovery::default())
                .expect("snapshot recovery");
            assert_eq!(r.snapshot_seq + r.replayed, last);
            assert_eq!(r.state.last_seq(), last);
            assert_eq!(r.state.state_hash(), hash, "round {round}: snapshot + tail");
            assert_eq!(r.state.snapshot_digest(), full, "round {round}: full state");
            drop(r.writer);
            if r.snapshot_seq > 0 {
                from_snapshot += 1;
            }
        }
    }
    if snapshots {
        assert!(from_snapshot > 0, "no round recovered from a snapshot");
    }
    assert!(
        acked.len() > 100,
        "the child acknowledged too little to mean anything"
    );
    std::fs::remove_dir_all(&dir).ok();
}

fn tempdir(snapshots: bool) -> String {
    let dir = std::env::temp_dir().join(format!(
        "kestrel-router-crash-{}-{snapshots}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir.to_string_lossy().into_owned()
}
