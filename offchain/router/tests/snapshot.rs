//! Router-state snapshots: snapshot + tail replay reaches exactly the state of a full replay
//! (state hash and the digest of the whole canonical encoding), at many cut points and for
//! snapshots the running sequencer takes in the middle of a busy stream; a damaged newest
//! snapshot falls back to the older one, then to a full replay; compaction drops only
//! segments the oldest kept snapshot covers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use common::{journal_config, rules, stream};
use kestrel_matcher::journal::recover_log;
use kestrel_router::codec;
use kestrel_router::recovery::{self, Recovery};
use kestrel_router::sequencer::{self, Config};
use kestrel_router::snapshot::{self, SnapshotConfig};
use kestrel_router::state::State;
use std::path::Path;
use std::time::Duration;

const NOW_MS: u64 = 1_800_000_000_000;

#[test]
fn snapshot_then_tail_equals_full_replay_at_every_cut() {
    let commands: Vec<_> = stream(11).take(4_000).collect();
    let mut full = State::new(rules()).unwrap();
    let mut snaps = Vec::new();
    let cuts = [0usize, 1, 13, 14, 500, 1_999, 2_000, 3_999, 4_000];
    for (i, command) in commands.iter().enumerate() {
        if cuts.contains(&i) {
            let mut bytes = Vec::new();
            full.encode_snapshot(&mut bytes);
            snaps.push((i, bytes));
        }
        full.apply(i as u64 + 1, NOW_MS + i as u64 * 7, command);
    }
    let mut bytes = Vec::new();
    full.encode_snapshot(&mut bytes);
    snaps.push((commands.len(), bytes));
    let mut events_full = State::new(rules()).unwrap();
    let all_events: Vec<_> = commands
        .iter()
        .enumerate()
        .map(|(i, c)| events_full.apply(i as u64 + 1, NOW_MS + i as u64 * 7, c))
        .collect();
    for (cut, bytes) in snaps {
        let mut state = State::decode_snapshot(rules(), &bytes).unwrap();
        assert_eq!(state.last_seq(), cut as u64);
        let mut again = Vec::new();
        state.encode_snapshot(&mut again);
        assert_eq!(again, bytes, "cut {cut}: the encoding is canonical");
        for (i, command) in commands.iter().enumerate().skip(cut) {
            let events = state.apply(i as u64 + 1, NOW_MS + i as u64 * 7, command);
            assert_eq!(
                events,
                all_events[i],
                "cut {cut}: events of command {}",
                i + 1
            );
        }
        assert_eq!(state.state_hash(), full.state_hash(), "cut {cut}");
        assert_eq!(state.snapshot_digest(), full.snapshot_digest(), "cut {cut}");
    }
}

#[test]
fn a_damaged_or_foreign_snapshot_never_loads() {
    let mut state = State::new(rules()).unwrap();
    for (i, command) in stream(5).take(600).enumerate() {
        state.apply(i as u64 + 1, NOW_MS, &command);
    }
    let mut body = Vec::new();
    state.encode_snapshot(&mut body);
    let framed = snapshot::frame(600, &body);
    assert!(snapshot::unframe(&framed).is_ok());
    for at in (0..framed.len()).step_by(97) {
        let mut bad = framed.clone();
        bad[at] ^= 0x40;
        assert!(snapshot::unframe(&bad).is_err(), "flipped byte {at}");
    }
    for len in [0, 10, 59, 60, framed.len() / 2, framed.len() - 1] {
        assert!(snapshot::unframe(&framed[..len]).is_err(), "cut to {len}");
    }
    for len in (0..body.len()).step_by(31) {
        assert!(State::decode_snapshot(rules(), &body[..len]).is_err());
    }
    let mut other = rules();
    other.max_open_orders += 1;
    assert!(State::decode_snapshot(other, &body).is_err());
}

fn config(dir: &Path, snapshots: SnapshotConfig) -> Config {
    Config {
        journal: journal_config(dir),
        tick_interval: Duration::from_millis(3),
        snapshots,
        light_load_below: 5_000,
    }
}

/// Runs the real sequencer over `n` commands of `seed`, 64 in flight at a time, and stops it.
fn run(dir: &Path, snapshots: SnapshotConfig, seed: u64, skip: usize, n: usize) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let s = sequencer::start(rules(), config(dir, snapshots), Vec::new()).unwrap();
        let commands: Vec<_> = stream(seed).skip(skip).take(n).collect();
        for chunk in commands.chunks(64) {
            let acks = chunk.iter().map(|c| s.handle.submit(c.clone()));
            for ack in futures_util::future::join_all(acks).await {
                ack.unwrap();
            }
        }
        drop(s.handle);
        tokio::task::spawn_blocking(move || s.thread.join())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    });
}

/// Full replay of the journal: (last sequence, state hash, full digest).
fn full_replay(dir: &Path) -> (u64, u64, [u8; 32]) {
    let mut state = State::new(rules()).unwrap();
    let (_, last) = recover_log(journal_config(dir), |seq, ts, body| {
        state.apply(seq, ts.0 / 1_000_000, &codec::decode(body).unwrap());
    })
    .unwrap();
    (last, state.state_hash(), state.snapshot_digest())
}

fn recover(dir: &Path) -> recovery::Recovered {
    recovery::recover(rules(), journal_config(dir), Recovery::default()).unwrap()
}

#[test]
fn snapshots_taken_under_load_recover_the_full_replay_state_and_fall_back_when_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let every = SnapshotConfig {
        every_commands: 700,
        ..SnapshotConfig::default()
    };
    // A run that snapshots as it goes and once more at shutdown.
    run(dir.path(), every, 3, 0, 5_000);
    let files = snapshot::list(dir.path()).unwrap();
    assert_eq!(files.len(), 2, "the newest two are kept: {files:?}");
    let (last, hash, digest) = full_replay(dir.path());
    let r = recover(dir.path());
    assert_eq!(r.snapshot_seq, files[0].0);
    assert_eq!(
        r.snapshot_seq, last,
        "a final snapshot is taken at shutdown"
    );
    assert_eq!(
        (r.state.state_hash(), r.state.snapshot_digest()),
        (hash, digest)
    );
    drop(r);

    // A run without snapshots leaves a tail after the shutdown snapshot.
    run(dir.path(), SnapshotConfig::disabled(), 3, 5_000, 1_500);
    let (last, hash, digest) = full_replay(dir.path());
    assert_eq!(snapshot::list(dir.path()).unwrap(), files);
    let r = recover(dir.path());
    assert_eq!(r.snapshot_seq, files[0].0);
    assert!(r.replayed > 1_500 && r.snapshot_seq + r.replayed == last);
    assert_eq!(
        (r.state.state_hash(), r.state.snapshot_digest()),
        (hash, digest)
    );
    drop(r);

    // Damage the newest: the older one is used.
    let newest = &files[0].1;
    let mut bytes = std::fs::read(newest).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(newest, &bytes).unwrap();
    let r = recover(dir.path());
    assert_eq!(r.snapshot_seq, files[1].0);
    assert_eq!(
        (r.state.state_hash(), r.state.snapshot_digest()),
        (hash, digest)
    );
    drop(r);

    // Truncate the older one too: a full replay.
    let older = std::fs::read(&files[1].1).unwrap();
    std::fs::write(&files[1].1, &older[..older.len() - 3]).unwrap();
    let r = recover(dir.path());
    assert_eq!((r.snapshot_seq, r.replayed), (0, last));
    assert_eq!(
        (r.state.state_hash(), r.state.snapshot_digest()),
        (hash, digest)
    );
}

#[test]
fn a_snapshot_newer_than_the_subscribers_hold_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let every = SnapshotConfig {
        every_commands: 400,
        ..SnapshotConfig::default()
    };
    run(dir.path(), every, 9, 0, 1_000);
    let files = snapshot::list(dir.path()).unwrap();
    let (last, hash, _) = full_replay(dir.path());
    let limit = files[1].0;
    let r = recovery::recover(
        rules(),
        journal_config(dir.path()),
        Recovery {
            max_snapshot_seq: limit,
            on_snapshot: None,
        },
    )
    .unwrap();
    assert_eq!(r.snapshot_seq, limit);
    assert_eq!(r.replayed, last - limit);
    assert!(r.events.iter().all(|e| e.seq > limit) && !r.events.is_empty());
    assert_eq!((r.state.last_seq(), r.state.state_hash()), (last, hash));
}

#[test]
fn compaction_drops_only_segments_the_oldest_kept_snapshot_covers() {
    let dir = tempfile::tempdir().unwrap();
    let every = SnapshotConfig {
        every_commands: 1_000,
        compact_journal: true,
        ..SnapshotConfig::default()
    };
    let segments = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .ends_with(".log")
            })
            .count()
    };
    run(dir.path(), SnapshotConfig::disabled(), 4, 0, 3_000);
    let (last, _, _) = full_replay(dir.path());
    let before = segments(dir.path());
    assert!(before > 4, "the journal rotates ({before} segments)");
    run(dir.path(), every, 4, 3_000, 3_000);
    let after = segments(dir.path());
    assert!(after < before, "segments compacted: {before} → {after}");
    let files = snapshot::list(dir.path()).unwrap();
    assert_eq!(files.len(), 2);
    let r = recover(dir.path());
    assert_eq!(r.snapshot_seq, files[0].0);
    drop(r);
    // The older snapshot still has every segment it needs.
    std::fs::remove_file(&files[0].1).unwrap();
    let r = recover(dir.path());
    assert_eq!(r.snapshot_seq, files[1].0);
    assert!(r.state.last_seq() > last);
    drop(r);
    // A full replay is no longer possible: the journal says so rather than guessing.
    std::fs::remove_file(&files[1].1).unwrap();
    assert!(recovery::recover(rules(), journal_config(dir.path()), Recovery::default()).is_err());
}

#[test]
fn market_data_seeded_from_a_snapshot_shows_the_books_of_a_full_projection() {
    use kestrel_router::marketdata::{MarketData, MarketDataConfig};
    use kestrel_router::model::Sequenced;
    let commands: Vec<_> = stream(21).take(3_000).collect();
    let full = MarketData::new(MarketDataConfig::default(), [0, 1]);
    let seeded = MarketData::new(MarketDataConfig::default(), [0, 1]);
    let mut state = State::new(rules()).unwrap();
    let cut = 2_000;
    for (i, command) in commands.iter().enumerate() {
        let seq = i as u64 + 1;
        if i == cut {
            let mut bytes = Vec::new();
            state.encode_snapshot(&mut bytes);
            seeded.seed(&State::decode_snapshot(rules(), &bytes).unwrap());
            for market in [0, 1] {
                let (a, b) = (full.book(market, 1_000), seeded.book(market, 1_000));
                let (a, b) = (a.unwrap(), b.unwrap());
                assert_eq!((&a.bids, &a.asks), (&b.bids, &b.asks), "market {market}");
                // The engine's sequence (which may have moved past the last delta).
                assert!(b.market_seq >= a.market_seq);
            }
            assert!(full.book(0, 1_000).unwrap().bids.len() > 3);
        }
        let batch: Vec<Sequenced> = state
            .apply(seq, NOW_MS + seq, command)
            .into_iter()
            .enumerate()
            .map(|(index, event)| Sequenced {
                seq,
                index: index as u32,
                timestamp_ms: NOW_MS + seq,
                event,
            })
            .collect();
        full.apply(&batch);
        seeded.apply(&batch);
    }
    for market in [0, 1] {
        let (a, b) = (full.book(market, 1_000), seeded.book(market, 1_000));
        assert_eq!(a, b, "market {market} after the tail");
    }
    // A client resuming from before the snapshot is sent to snapshots, never shown a gap.
    let before = kestrel_router::marketdata::Position { seq: 10, index: 0 };
    assert!(seeded.attach(Some(before), &[0]).replay.is_none());
    assert!(full.attach(Some(before), &[0]).replay.is_some());
}

/// Figures for docs/benchmarks.md (prints, asserts nothing about time):
/// `cargo test --release -p kestrel-router --test snapshot -- --ignored --nocapture`.
#[test]
#[ignore = "prints recovery figures; run by hand"]
fn recovery_figures() {
    use std::time::Instant;
    let total: usize = std::env::var("KESTREL_SNAPSHOT_COMMANDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let tail = total / 20;
    let dir = tempfile::tempdir().unwrap();
    let mut journal = recover_log(journal_config(dir.path()), |_, _, _| {})
        .unwrap()
        .0;
    let mut state = State::new(rules()).unwrap();
    let mut body = Vec::new();
    let mut snapshot_at = 0;
    let (mut encode_time, mut write_time) = (Duration::ZERO, Duration::ZERO);
    for (i, command) in stream(1).take(total).enumerate() {
        let seq = i as u64 + 1;
        body.clear();
        codec::encode(&command, &mut body);
        let ts = kestrel_matcher::Timestamp((NOW_MS + seq) * 1_000_000);
        journal
            .append_bytes(seq, ts, &body, Instant::now())
            .unwrap();
        state.apply(seq, NOW_MS + seq, &command);
        if i + 1 == total - tail {
            journal.commit().unwrap();
            let started = Instant::now();
            let mut snap = Vec::new();
            state.encode_snapshot(&mut snap);
            encode_time = started.elapsed();
            let started = Instant::now();
            snapshot::write(dir.path(), seq, &snap).unwrap();
            write_time = started.elapsed();
            snapshot_at = seq;
        }
    }
    journal.commit().unwrap();
    drop(journal);
    let size = std::fs::metadata(dir.path().join(snapshot::file_name(snapshot_at)))
        .unwrap()
        .len();
    let resting: u32 = [0, 1]
        .iter()
        .map(|m| state.engine(*m).unwrap().resting_orders())
        .sum();
    let started = Instant::now();
    let full = recovery::recover(
        rules(),
        journal_config(dir.path()),
        Recovery {
            max_snapshot_seq: 0,
            on_snapshot: None,
        },
    )
    .unwrap();
    let full_time = started.elapsed();
    drop(full.writer);
    let started = Instant::now();
    let fast = recover(dir.path());
    let fast_time = started.elapsed();
    assert_eq!(fast.snapshot_seq, snapshot_at);
    assert_eq!(fast.state.snapshot_digest(), full.state.snapshot_digest());
    println!(
        "{total} commands, {resting} resting orders; snapshot at {snapshot_at}: {size} bytes, \
         encode {encode_time:?}, write+fsync {write_time:?}; recovery: full replay \
         {full_time:?} ({} commands), snapshot + tail {fast_time:?} ({} commands)",
        full.replayed, fast.replayed
    );
}
