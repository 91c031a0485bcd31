//! Router-state snapshot files: framing, atomic writes, listing, loading, and the background
//! writer that keeps the newest few.
//!
//! A file is `magic "KSTRLRS1" | version u32 | seq u64 | body length u64 | SHA-256[32] of
//! everything before it and the body | body` (the body is [`State::encode_snapshot`]). It is
//! named `state-<seq, 20 digits>.snap`, lives in the journal directory and appears only by the
//! rename of a fully written and synced `.tmp` file, followed by a sync of the directory, so a
//! crash leaves either the whole file or none (a leftover `.tmp` is removed by the journal's
//! recovery). A snapshot at `seq` is taken only when every command up to `seq` is durable in
//! the journal.

use crate::model::Seq;
use crate::state::{Rules, State, StateSnapshotError};
use kestrel_matcher::journal;
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const MAGIC: &[u8; 8] = b"KSTRLRS1";
/// Format version of the file and of the state encoding inside it.
pub const VERSION: u32 = 1;
const HEADER: usize = 8 + 4 + 8 + 8 + 32;

/// When snapshots are taken and what is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotConfig {
    /// Take a snapshot once this many commands were applied since the last one (0: never by
    /// count).
    pub every_commands: u64,
    /// Take a snapshot once this long has passed since the last one and at least one command
    /// was applied (zero: never by time).
    pub every: Duration,
    /// Snapshots kept (at least 1; the default 2 leaves a fallback if the newest is damaged).
    pub keep: usize,
    /// Delete journal segments older than the oldest kept snapshot. Off by default: the SQL
    /// store and other projections can only be rebuilt from scratch from a whole journal.
    pub compact_journal: bool,
}

impl Default for SnapshotConfig {
    /// Every 100,000 commands or 5 minutes, keep 2, no compaction.
    fn default() -> Self {
        SnapshotConfig {
            every_commands: 100_000,
            every: Duration::from_secs(300),
            keep: 2,
            compact_journal: false,
        }
    }
}

impl SnapshotConfig {
    /// Snapshots switched off (recovery replays the whole journal).
    pub fn disabled() -> Self {
        SnapshotConfig {
            every_commands: 0,
            every: Duration::ZERO,
            ..SnapshotConfig::default()
        }
    }

    /// Whether snapshots are taken at all.
    pub fn enabled(&self) -> bool {
        self.every_commands > 0 || !self.every.is_zero()
    }
}

/// A snapshot file could not be read or is not valid.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// File system error.
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
    /// Not a snapshot file of this version, or cut short.
    #[error("bad snapshot header or version")]
    Header,
    /// The checksum does not match: the file is damaged.
    #[error("snapshot checksum mismatch")]
    Checksum,
    /// The name and the sequence inside disagree.
    #[error("snapshot file name and content disagree")]
    Name,
    /// The body does not decode into a state.
    #[error(transparent)]
    State(#[from] StateSnapshotError),
}

/// The file name of the snapshot taken after command `seq`.
pub fn file_name(seq: Seq) -> String {
    format!("state-{seq:020}.snap")
}

fn parse_name(name: &str) -> Option<Seq> {
    let digits = name.strip_prefix("state-")?.strip_suffix(".snap")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// Frames a state encoding taken after command `seq`.
pub fn frame(seq: Seq, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len().saturating_add(HEADER));
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    let sum = Sha256::new()
        .chain_update(&out)
        .chain_update(body)
        .finalize();
    out.extend_from_slice(&sum);
    out.extend_from_slice(body);
    out
}

/// Checks a framed file and returns its sequence and body.
pub fn unframe(data: &[u8]) -> Result<(Seq, &[u8]), SnapshotFileError> {
    let header = data.get(..HEADER).ok_or(SnapshotFileError::Header)?;
    let (fixed, sum) = header.split_at(HEADER.saturating_sub(32));
    let field = |at: usize| -> Result<u64, SnapshotFileError> {
        fixed
            .get(at..at.saturating_add(8))
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or(SnapshotFileError::Header)
    };
    let version = fixed
        .get(8..12)
        .and_then(|b| b.try_into().ok())
        .map(u32::from_le_bytes);
    if fixed.get(..8) != Some(MAGIC.as_slice()) || version != Some(VERSION) {
        return Err(SnapshotFileError::Header);
    }
    let seq = field(12)?;
    let len = usize::try_from(field(20)?).map_err(|_| SnapshotFileError::Header)?;
    let body = data.get(HEADER..).ok_or(SnapshotFileError::Header)?;
    if body.len() != len {
        return Err(SnapshotFileError::Header);
    }
    let actual = Sha256::new()
        .chain_update(fixed)
        .chain_update(body)
        .finalize();
    if actual.as_slice() != sum {
        return Err(SnapshotFileError::Checksum);
    }
    Ok((seq, body))
}

/// Writes a framed snapshot atomically: temporary file, fsync, rename, fsync of the directory.
pub fn write(dir: &Path, seq: Seq, body: &[u8]) -> std::io::Result<PathBuf> {
    let path = dir.join(file_name(seq));
    let tmp = dir.join(format!("{}.tmp", file_name(seq)));
    {
        let mut f = File::create(&tmp)?;
        f.write_all(&frame(seq, body))?;
        f.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()?;
    Ok(path)
}

/// Snapshot files in `dir`, newest first.
pub fn list(dir: &Path) -> std::io::Result<Vec<(Seq, PathBuf)>> {
    let mut out = Vec::new();
    if !dir.exists() {
        return Ok(out);
    }
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(seq) = entry.file_name().to_str().and_then(parse_name) {
            out.push((seq, entry.path()));
        }
    }
    out.sort_unstable_by_key(|(seq, _)| std::cmp::Reverse(*seq));
    Ok(out)
}

/// Reads and decodes the snapshot file `path` (named for `seq`) under `rules`.
pub fn load(path: &Path, seq: Seq, rules: Rules) -> Result<State, SnapshotFileError> {
    let data = fs::read(path)?;
    let (inner_seq, body) = unframe(&data)?;
    let state = State::decode_snapshot(rules, body)?;
    if inner_seq != seq || state.last_seq() != seq {
        return Err(SnapshotFileError::Name);
    }
    Ok(state)
}

/// The newest snapshot in `dir` taken at or before `max_seq` that loads; a damaged or
/// unreadable one is skipped with a warning. `None` if there is none (replay from the start).
pub fn newest_valid(dir: &Path, rules: &Rules, max_seq: Seq) -> std::io::Result<Option<State>> {
    for (seq, path) in list(dir)? {
        if seq > max_seq {
            continue;
        }
        match load(&path, seq, rules.clone()) {
            Ok(state) => return Ok(Some(state)),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "skipping unusable snapshot");
            }
        }
    }
    Ok(None)
}

/// Deletes all but the newest `keep` snapshots; returns the sequence of the oldest kept one.
fn prune(dir: &Path, keep: usize) -> std::io::Result<Option<Seq>> {
    let all = list(dir)?;
    let keep = keep.max(1);
    for (_, path) in all.iter().skip(keep) {
        fs::remove_file(path)?;
    }
    Ok(all.iter().take(keep).next_back().map(|(seq, _)| *seq))
}

/// Decides when the sequencer takes a snapshot and hands the encoding to a background thread
/// that writes it, so the file I/O and fsyncs stay off the sequencer. The thread holds at most
/// one snapshot: while it is busy, a due snapshot is postponed rather than waited for.
pub struct Schedule {
    config: SnapshotConfig,
    last_seq: Seq,
    last_at: Instant,
    busy: Arc<AtomicBool>,
    tx: Option<mpsc::SyncSender<(Seq, Vec<u8>)>>,
    thread: Option<JoinHandle<()>>,
}

impl Schedule {
    /// Starts the writer thread for `dir` (unless snapshots are disabled); `last_seq` is the
    /// sequence of the newest snapshot on disk, or 0.
    pub fn start(dir: PathBuf, config: SnapshotConfig, last_seq: Seq) -> std::io::Result<Self> {
        let busy = Arc::new(AtomicBool::new(false));
        let (tx, thread) = if config.enabled() {
            let (tx, rx) = mpsc::sync_channel::<(Seq, Vec<u8>)>(0);
            let flag = busy.clone();
            let thread = std::thread::Builder::new()
                .name("kestrel-snapshot".into())
                .spawn(move || {
                    for (seq, body) in rx {
                        if let Err(error) = persist(&dir, config, seq, &body) {
                            tracing::warn!(seq, %error, "writing a router snapshot failed");
                        }
                        flag.store(false, Ordering::Release);
                    }
                })?;
            (Some(tx), Some(thread))
        } else {
            (None, None)
        };
        Ok(Schedule {
            config,
            last_seq,
            last_at: Instant::now(),
            busy,
            tx,
            thread,
        })
    }

    /// Called by the sequencer when every applied command is durable: hands a snapshot of
    /// `state` to the writer if one is due and the writer is free.
    pub fn after_commit(&mut self, state: &State, now: Instant) {
        let seq = state.last_seq();
        let since = seq.saturating_sub(self.last_seq);
        let by_count = self.config.every_commands > 0 && since >= self.config.every_commands;
        let by_time = !self.config.every.is_zero()
            && since > 0
            && now.saturating_duration_since(self.last_at) >= self.config.every;
        if !(by_count || by_time) || self.busy.load(Ordering::Acquire) {
            return;
        }
        let Some(tx) = &self.tx else { return };
        let mut body = Vec::new();
        state.encode_snapshot(&mut body);
        self.busy.store(true, Ordering::Release);
        if tx.try_send((seq, body)).is_ok() {
            self.last_seq = seq;
            self.last_at = now;
        } else {
            self.busy.store(false, Ordering::Release);
        }
    }

    /// At shutdown, with every command durable: snapshots `state` if anything happened since
    /// the last snapshot, waits for the writer and stops it.
    pub fn finish(mut self, state: &State) {
        if let Some(tx) = self.tx.take() {
            if state.last_seq() > self.last_seq {
                let mut body = Vec::new();
                state.encode_snapshot(&mut body);
                let _ = tx.send((state.last_seq(), body));
            }
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writing, pruning or compacting after a snapshot failed (logged; the journal still holds
/// everything, so recovery only gets slower).
#[derive(Debug, thiserror::Error)]
enum PersistError {
    #[error("snapshot I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("journal compaction: {0}")]
    Journal(#[from] journal::JournalError),
}

fn persist(dir: &Path, config: SnapshotConfig, seq: Seq, body: &[u8]) -> Result<(), PersistError> {
    write(dir, seq, body)?;
    let oldest = prune(dir, config.keep)?;
    if let (true, Some(oldest)) = (config.compact_journal, oldest) {
        journal::compact(dir, oldest)?;
    }
    tracing::debug!(seq, bytes = body.len(), "router snapshot written");
    Ok(())
}
