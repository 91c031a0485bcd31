//! Journal: framing, group commit, rotation, snapshots, recovery, torn tails and corruption.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::arithmetic_side_effects
)]

mod common;

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{segments, temp_dir, Stream};
use kestrel_matcher::journal::{read_all, recover, JournalConfig, JournalError};
use kestrel_matcher::workload::Mix;
use kestrel_matcher::{Command, Engine, NullSink, Timestamp};

fn config(dir: &Path) -> JournalConfig {
    JournalConfig {
        dir: dir.to_path_buf(),
        segment_bytes: 16 << 10,
        group_max_records: 32,
        group_window: Duration::from_millis(2),
    }
}

/// Journals and applies `n` commands of the seeded stream; snapshots at `snapshot_at`.
fn write(dir: &Path, n: u64, snapshot_at: Option<u64>) -> (Vec<(Command, Timestamp)>, u64) {
    let mut r = recover(config(dir), Mix::Random.market_config(), &mut NullSink).unwrap();
    let mut stream = Stream::new(11);
    let mut cmds = Vec::new();
    for seq in 1..=n {
        let (cmd, ts) = stream.next_cmd();
        r.writer.append(seq, ts, &cmd, Instant::now()).unwrap();
        r.engine.apply(&cmd, ts, &mut NullSink);
        r.writer.commit_if_due(Instant::now()).unwrap();
        if Some(seq) == snapshot_at {
            r.writer.snapshot(&r.engine, seq).unwrap();
        }
        cmds.push((cmd, ts));
    }
    r.writer.commit().unwrap();
    (cmds, r.engine.state_hash())
}

fn replay(cmds: &[(Command, Timestamp)]) -> Engine {
    let mut e = Engine::new(Mix::Random.market_config()).unwrap();
    for (c, t) in cmds {
        e.apply(c, *t, &mut NullSink);
    }
    e
}

#[test]
fn recovery_is_snapshot_plus_replay_and_equals_a_clean_run() {
    let dir = temp_dir("roundtrip");
    let (cmds, hash) = write(&dir, 3_000, Some(2_000));
    assert!(segments(&dir).len() > 1, "segments should have rotated");
    let r = recover(config(&dir), Mix::Random.market_config(), &mut NullSink).unwrap();
    assert_eq!(
        (r.last_seq, r.snapshot_seq, r.replayed, r.truncated_bytes),
        (3_000, 2_000, 1_000, 0)
    );
    assert_eq!(r.engine.state_hash(), hash);
    assert_eq!(replay(&cmds).state_hash(), hash);
    // Segments wholly before the snapshot were pruned; what remains matches the stream.
    let records = read_all(&dir).unwrap();
    let first = records[0].seq;
    assert!(first > 1 && first <= 2_001);
    for rec in &records {
        assert_eq!((rec.command, rec.timestamp), cmds[(rec.seq - 1) as usize]);
    }
    assert_eq!(records.last().unwrap().seq, 3_000);
}

#[test]
fn recovered_writer_continues_the_sequence() {
    let dir = temp_dir("continue");
    write(&dir, 100, None);
    let mut r = recover(config(&dir), Mix::Random.market_config(), &mut NullSink).unwrap();
    let err = r
        .writer
        .append(7, Timestamp(0), &Command::ExpireDue, Instant::now())
        .unwrap_err();
    assert!(matches!(
        err,
        JournalError::SequenceGap {
            expected: 101,
            found: 7
        }
    ));
    r.writer
        .append(101, Timestamp(0), &Command::ExpireDue, Instant::now())
        .unwrap();
    assert_eq!(r.writer.commit().unwrap(), 101);
    drop(r);
    let r = recover(config(&dir), Mix::Random.market_config(), &mut NullSink).unwrap();
    assert_eq!(r.last_seq, 101);
}

#[test]
fn group_commit_waits_for_the_window_or_the_count() {
    let dir = temp_dir("group");
    let mut r = recover(config(&dir), Mix::Random.market_config(), &mut NullSink).unwrap();
    let t0 = Instant::now();
    r.writer
        .append(1, Timestamp(0), &Command::ExpireDue, t0)
        .unwrap();
    assert_eq!(
        r.writer
            .commit_if_due(t0 + Duration::from_millis(1))
            .unwrap(),
        None
    );
    assert_eq!(r.writer.durable_seq(), 0);
    assert_eq!(
        r.writer
            .commit_if_due(t0 + Duration::from_millis(2))
            .unwrap(),
        Some(1)
    );
    for seq in 2..=32 {
        r.writer
            .append(seq, Timestamp(0), &Command::ExpireDue, t0)
            .unwrap();
        assert_eq!(r.writer.commit_if_due(t0).unwrap(), None);
    }
    r.writer
        .append(33, Timestamp(0), &Command::ExpireDue, t0)
        .unwrap();
    assert_eq!(r.writer.commit_if_due(t0).unwrap(), Some(33));
}

#[test]
fn a_torn_final_record_is_truncated_at_every_cut_point() {
    let dir = temp_dir("torn");
    let (cmds, _) = write(&dir, 40, None);
    let seg = segments(&dir).pop().unwrap();
    let full = std::fs::read(&seg).unwrap();
    let last_len = {
        let records = read_all(&dir).unwrap();
        assert_eq!(records.len(), 40);
        let mut v = Vec::new();
        kestrel_matcher::journal::format::Record::clone(&records[39])
            .command
            .encode(&mut v);
        v.len() + 24
    };
    for cut in 1..last_len {
        std::fs::write(&seg, &full[..full.len() - cut]).unwrap();
        let r = recover(config(&dir), Mix::Random.market_config(), &mut NullSink).unwrap();
        assert_eq!(r.last_seq, 39, "cut {cut}");
        assert_eq!(r.truncated_bytes, (last_len - cut) as u64);
        assert_eq!(r.engine.state_hash(), replay(&cmds[..39]).state_hash());
        assert_eq!(
            std::fs::metadata(&seg).unwrap().len() as usize,
            full.len() - last_len
        );
    }
    // A complete final record with a bad checksum, and zeroed space after the data, are torn.
    let mut bad = full.clone();
    *bad.last_mut().unwrap() ^= 0xff;
    std::fs::write(&seg, &bad).unwrap();
    assert_eq!(
        recover(config(&dir), Mix::Random.market_config(), &mut NullSink)
            .unwrap()
            .last_seq,
        39
    );
    let mut zeros = full.clone();
    zeros.extend_from_slice(&[0u8; 4096]);
    std::fs::write(&seg, &zeros).unwrap();
    let r = recover(config(&dir), Mix::Random.market_config(), &mut NullSink).unwrap();
    assert_eq!((r.last_seq, r.truncated_bytes), (40, 4096));
}

#[test]
fn damage_before_valid_records_is_a_hard_error() {
    let dir = temp_dir("corrupt");
    write(&dir, 40, None);
    let seg = segments(&dir).pop().unwrap();
    let len = std::fs::metadata(&seg).unwrap().len();
    let mut f = OpenOptions::new().write(true).open(&seg).unwrap();
    f.seek(SeekFrom::Start(len / 2)).unwrap();
    f.write_all(&[0xde, 0xad]).unwrap();
    drop(f);
    let err = recover(config(&dir), Mix::Random.market_config(), &mut NullSink).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err:?}");
}

#[test]
fn a_torn_older_segment_is_a_hard_error() {
    let dir = temp_dir("older");
    write(&dir, 1_000, None);
    let segs = segments(&dir);
    assert!(segs.len() >= 2);
    let first = &segs[0];
    let len = std::fs::metadata(first).unwrap().len();
    OpenOptions::new()
        .write(true)
        .open(first)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let err = recover(config(&dir), Mix::Random.market_config(), &mut NullSink).unwrap_err();
    assert!(matches!(err, JournalError::Corrupt { .. }), "{err:?}");
}

#[test]
fn a_damaged_snapshot_is_a_hard_error() {
    let dir = temp_dir("snapshot");
    write(&dir, 500, Some(400));
    let snap = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "snap"))
        .unwrap();
    let mut bytes = std::fs::read(&snap).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 1;
    std::fs::write(&snap, &bytes).unwrap();
    let err = recover(config(&dir), Mix::Random.market_config(), &mut NullSink).unwrap_err();
    assert!(matches!(err, JournalError::SnapshotDamaged(_)), "{err:?}");
}

#[test]
fn a_snapshot_of_another_market_is_refused() {
    let dir = temp_dir("mismatch");
    write(&dir, 50, Some(50));
    let mut other = Mix::Random.market_config();
    other.market_id = 99;
    let err = recover(config(&dir), other, &mut NullSink).unwrap_err();
    assert!(matches!(err, JournalError::ConfigMismatch), "{err:?}");
}

#[test]
fn opaque_records_round_trip_through_recover_log() {
    use kestrel_matcher::journal::{format::MAX_BODY, recover_log};
    let dir = temp_dir("opaque");
    let (mut w, last) = recover_log(config(&dir), |_, _, _| panic!("empty journal")).unwrap();
    assert_eq!(last, 0);
    let t0 = Instant::now();
    for seq in 1..=500u64 {
        let body = vec![seq as u8; (seq as usize * 37) % 3_000];
        w.append_bytes(seq, Timestamp(seq * 10), &body, t0).unwrap();
    }
    let big = vec![0u8; MAX_BODY + 1];
    assert!(matches!(
        w.append_bytes(501, Timestamp(0), &big, t0),
        Err(JournalError::TooLarge(_))
    ));
    w.append_bytes(501, Timestamp(5_010), &big[..MAX_BODY], t0)
        .unwrap();
    assert_eq!(w.commit().unwrap(), 501);
    drop(w);
    let mut seen = 0u64;
    let (_, last) = recover_log(config(&dir), |seq, ts, body| {
        seen += 1;
        assert_eq!((seq, ts), (seen, Timestamp(seen * 10)));
        let len = if seq == 501 {
            MAX_BODY
        } else {
            (seq as usize * 37) % 3_000
        };
        assert_eq!(body.len(), len);
    })
    .unwrap();
    assert_eq!((last, seen), (501, 501));
}
