//! Append-only command journal with group commit, rotation, snapshots and recovery.
//!
//! The router journals every command before it applies it and acknowledges a client only once
//! the command is durable ([`JournalWriter::durable_seq`]). Records are length- and
//! CRC32C-framed ([`mod@format`]); commits are grouped: a commit writes and `fdatasync`s everything
//! appended since the last one, and [`JournalWriter::commit_if_due`] commits once
//! `group_max_records` are pending or the oldest pending record has waited `group_window`.
//! Segments rotate at `segment_bytes`. [`JournalWriter::snapshot`] writes an engine snapshot
//! atomically and prunes the segments and snapshots it makes unnecessary.
//!
//! [`recover`] loads the newest snapshot and replays the journal tail through
//! [`crate::Engine::apply`]. A damaged record in the last segment that no valid record follows
//! (a write cut short by a crash) is truncated away; any other damage — a bad record followed
//! by a valid one, a bad record in an older segment, a sequence gap, a damaged snapshot — is a
//! hard error.

pub mod format;
mod recover;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::command::Command;
use crate::config::ConfigError;
use crate::engine::Engine;
use crate::snapshot::SnapshotError;
use crate::types::Timestamp;

pub use format::{RawRecord, Record};
pub use recover::{read_all, recover, recover_log, recover_log_from, Recovered};

/// Journal settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalConfig {
    /// Directory holding segments and snapshots (created if missing).
    pub dir: PathBuf,
    /// A segment is closed and a new one started once it reaches this size.
    pub segment_bytes: u64,
    /// Commit once this many records are pending.
    pub group_max_records: usize,
    /// Commit once the oldest pending record has waited this long.
    pub group_window: Duration,
}

impl JournalConfig {
    /// Defaults: 64 MiB segments, commit at 1,024 records or 2 ms.
    pub fn new(dir: impl Into<PathBuf>) -> JournalConfig {
        JournalConfig {
            dir: dir.into(),
            segment_bytes: 64 << 20,
            group_max_records: 1024,
            group_window: Duration::from_millis(2),
        }
    }
}

/// Journal failures. Every one of them means the journal cannot be trusted or written; the
/// router must stop rather than continue.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// File system error.
    #[error("journal I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A record is damaged somewhere other than the torn tail of the last segment.
    #[error("journal corrupt in {file} at byte {offset}")]
    Corrupt {
        /// The segment.
        file: PathBuf,
        /// Where the bad record starts.
        offset: u64,
    },
    /// Sequence numbers do not follow on (`expected`, `found`).
    #[error("journal sequence gap: expected {expected}, found {found}")]
    SequenceGap {
        /// The sequence that should come next.
        expected: u64,
        /// The sequence found.
        found: u64,
    },
    /// The newest snapshot file is damaged.
    #[error("snapshot file {0} is damaged")]
    SnapshotDamaged(PathBuf),
    /// The snapshot does not decode into an engine.
    #[error("snapshot invalid: {0}")]
    Snapshot(#[from] SnapshotError),
    /// The market configuration is invalid.
    #[error("market configuration invalid: {0}")]
    Config(#[from] ConfigError),
    /// The snapshot was taken with a different market configuration.
    #[error("snapshot was taken with a different market configuration")]
    ConfigMismatch,
    /// A record passed its checksum but its command does not decode.
    #[error("journal record {seq} does not decode")]
    Undecodable {
        /// Its sequence number.
        seq: u64,
    },
    /// A record body longer than [`format::MAX_BODY`]: it would be written but could never
    /// be read back, so it is refused.
    #[error("record body of {0} bytes exceeds the journal's limit")]
    TooLarge(usize),
    /// A snapshot was requested for a sequence the journal has not reached.
    #[error("snapshot at {requested} is beyond the last appended record {appended}")]
    SnapshotAhead {
        /// Sequence asked for.
        requested: u64,
        /// Last sequence appended.
        appended: u64,
    },
}

/// Appends records and makes them durable in groups.
#[derive(Debug)]
pub struct JournalWriter {
    config: JournalConfig,
    file: File,
    segment_len: u64,
    buf: Vec<u8>,
    pending: usize,
    pending_since: Option<Instant>,
    last_seq: u64,
    durable_seq: u64,
}

fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl JournalWriter {
    /// Continues `file` (already truncated to its valid length `len`) after `last_seq`.
    fn resume(
        config: JournalConfig,
        file: File,
        len: u64,
        last_seq: u64,
    ) -> Result<Self, JournalError> {
        let buf = Vec::with_capacity(config.group_max_records.saturating_mul(128));
        Ok(JournalWriter {
            config,
            file,
            segment_len: len,
            buf,
            pending: 0,
            pending_since: None,
            last_seq,
            durable_seq: last_seq,
        })
    }

    fn create_segment(dir: &Path, first_seq: u64) -> Result<File, JournalError> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join(format::segment_name(first_seq)))?;
        sync_dir(dir)?;
        Ok(file)
    }

    /// Sequence of the last appended record (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.last_seq
    }

    /// Sequence of the last record known to be on stable storage.
    pub fn durable_seq(&self) -> u64 {
        self.durable_seq
    }

    /// Records appended but not yet committed.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Buffers one record. `seq` must be `last_seq() + 1`. Nothing is durable until a commit.
    pub fn append(
        &mut self,
        seq: u64,
        timestamp: Timestamp,
        cmd: &Command,
        now: Instant,
    ) -> Result<(), JournalError> {
        self.check_next(seq)?;
        format::encode_record(&mut self.buf, seq, timestamp, cmd);
        self.appended(seq, now);
        Ok(())
    }

    /// Buffers one record whose command is already encoded (any encoding; see
    /// [`recover_log`]). `seq` must be `last_seq() + 1`. Nothing is durable until a commit.
    pub fn append_bytes(
        &mut self,
        seq: u64,
        timestamp: Timestamp,
        body: &[u8],
        now: Instant,
    ) -> Result<(), JournalError> {
        self.check_next(seq)?;
        if body.len() > format::MAX_BODY {
            return Err(JournalError::TooLarge(body.len()));
        }
        format::encode_record_with(&mut self.buf, seq, timestamp, |out| {
            out.extend_from_slice(body)
        });
        self.appended(seq, now);
        Ok(())
    }

    fn check_next(&self, seq: u64) -> Result<(), JournalError> {
        let expected = self.last_seq.saturating_add(1);
        if seq != expected {
            return Err(JournalError::SequenceGap {
                expected,
                found: seq,
            });
        }
        Ok(())
    }

    fn appended(&mut self, seq: u64, now: Instant) {
        self.last_seq = seq;
        self.pending = self.pending.saturating_add(1);
        self.pending_since.get_or_insert(now);
    }

    /// Commits if the group is full or its window has passed; returns the new durable sequence
    /// if it committed.
    pub fn commit_if_due(&mut self, now: Instant) -> Result<Option<u64>, JournalError> {
        let due = self.pending >= self.config.group_max_records
            || self
                .pending_since
                .is_some_and(|t| now.saturating_duration_since(t) >= self.config.group_window);
        if due {
            self.commit().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Writes and syncs everything pending; returns the durable sequence.
    pub fn commit(&mut self) -> Result<u64, JournalError> {
        if self.pending == 0 {
            return Ok(self.durable_seq);
        }
        self.file.write_all(&self.buf)?;
        self.file.sync_data()?;
        self.segment_len = self.segment_len.saturating_add(self.buf.len() as u64);
        self.buf.clear();
        self.pending = 0;
        self.pending_since = None;
        self.durable_seq = self.last_seq;
        if self.segment_len >= self.config.segment_bytes {
            self.file = Self::create_segment(&self.config.dir, self.last_seq.saturating_add(1))?;
            self.segment_len = 0;
        }
        Ok(self.durable_seq)
    }

    /// Commits, then atomically writes a snapshot of `engine`, which must reflect exactly the
    /// commands up to and including `seq`; then deletes older snapshots and every segment
    /// whose records all precede it.
    pub fn snapshot(&mut self, engine: &Engine, seq: u64) -> Result<(), JournalError> {
        if seq > self.last_seq {
            return Err(JournalError::SnapshotAhead {
                requested: seq,
                appended: self.last_seq,
            });
        }
        self.commit()?;
        let mut bytes = Vec::new();
        engine.encode_snapshot(&mut bytes);
        let framed = format::encode_snapshot_file(seq, &bytes);
        let dir = &self.config.dir;
        let tmp = dir.join(format!("{}.tmp", format::snapshot_name(seq)));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&framed)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, dir.join(format::snapshot_name(seq)))?;
        sync_dir(dir)?;
        self.prune(seq)
    }

    fn prune(&self, snapshot_seq: u64) -> Result<(), JournalError> {
        for entry in fs::read_dir(&self.config.dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if format::parse_snapshot_name(name).is_some_and(|s| s < snapshot_seq) {
                fs::remove_file(entry.path())?;
            }
        }
        compact(&self.config.dir, snapshot_seq).map(|_| ())
    }
}

/// Deletes every segment in `dir` whose records all come at or before `seq` (the next segment
/// starts at or before `seq + 1`), for a caller holding a durable snapshot taken after `seq`.
/// The last segment is never deleted, so a concurrent writer is never disturbed. Returns how
/// many segments were deleted.
pub fn compact(dir: &Path, seq: u64) -> Result<usize, JournalError> {
    let mut segments = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(first) = format::parse_segment_name(name) {
            segments.push((first, entry.path()));
        }
    }
    segments.sort();
    let mut removed = 0usize;
    for pair in segments.windows(2) {
        if let [(_, path), (next_first, _)] = pair {
            if *next_first <= seq.saturating_add(1) {
                fs::remove_file(path)?;
                removed = removed.saturating_add(1);
            }
        }
    }
    sync_dir(dir)?;
    Ok(removed)
}
