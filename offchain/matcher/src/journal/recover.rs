//! Recovery: newest snapshot + replay of the journal tail.

use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

use super::format::{self, RawRecord, Record, Scan};
use super::{JournalConfig, JournalError, JournalWriter};
use crate::config::MarketConfig;
use crate::engine::Engine;
use crate::event::EventSink;
use crate::types::Timestamp;

/// The result of [`recover`].
#[derive(Debug)]
pub struct Recovered {
    /// The engine, in the state after command `last_seq`.
    pub engine: Engine,
    /// A writer positioned to append `last_seq + 1`.
    pub writer: JournalWriter,
    /// Last command sequence recovered (0 for an empty journal).
    pub last_seq: u64,
    /// Sequence of the snapshot loaded (0 if none).
    pub snapshot_seq: u64,
    /// Commands replayed after the snapshot.
    pub replayed: u64,
    /// Bytes of torn tail removed from the last segment.
    pub truncated_bytes: u64,
}

struct Segment {
    first_seq: u64,
    path: PathBuf,
}

struct Listing {
    segments: Vec<Segment>,
    snapshot: Option<(u64, PathBuf)>,
}

fn list(dir: &Path, clean: bool) -> Result<Listing, JournalError> {
    let mut segments = Vec::new();
    let mut snapshot: Option<(u64, PathBuf)> = None;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp") {
            if clean {
                fs::remove_file(entry.path())?;
            }
        } else if let Some(first_seq) = format::parse_segment_name(name) {
            segments.push(Segment {
                first_seq,
                path: entry.path(),
            });
        } else if let Some(seq) = format::parse_snapshot_name(name) {
            if snapshot.as_ref().is_none_or(|(s, _)| seq > *s) {
                snapshot = Some((seq, entry.path()));
            }
        }
    }
    segments.sort_by_key(|s| s.first_seq);
    Ok(Listing { segments, snapshot })
}

/// True if any valid record with a sequence above `after` starts anywhere in `tail`.
fn valid_record_follows(tail: &[u8], after: u64) -> bool {
    (1..tail.len()).any(|offset| match tail.get(offset..).map(format::scan) {
        Some(Scan::Record(r, _)) => r.seq > after,
        _ => false,
    })
}

/// Walks every record of every segment in order, checking framing and sequence continuity.
/// Records before `from_seq` are skipped; the rest go to `visit`. The journal may start at
/// any sequence up to `from_seq` (older segments are pruned after a snapshot), or anywhere if
/// `any_start`. Returns the valid length of
/// the last segment and how many bytes of torn tail follow it.
fn walk(
    segments: &[Segment],
    from_seq: u64,
    any_start: bool,
    mut visit: impl FnMut(&RawRecord) -> Result<(), JournalError>,
) -> Result<(u64, u64, u64), JournalError> {
    let mut last_seq = 0u64;
    let mut valid_len = 0u64;
    let mut torn = 0u64;
    for (i, segment) in segments.iter().enumerate() {
        let is_last = i.saturating_add(1) == segments.len();
        let data = fs::read(&segment.path)?;
        let mut offset = 0usize;
        let mut first_in_segment = true;
        loop {
            let rest = data.get(offset..).unwrap_or_default();
            match format::scan(rest) {
                Scan::End => break,
                Scan::Record(record, size) => {
                    let expected = last_seq.saturating_add(1);
                    let in_order = if first_in_segment {
                        record.seq == segment.first_seq
                            && (record.seq == expected
                                || (record.seq > last_seq && (any_start || record.seq <= from_seq)))
                    } else {
                        record.seq == expected
                    };
                    if !in_order {
                        return Err(JournalError::SequenceGap {
                            expected,
                            found: record.seq,
                        });
                    }
                    first_in_segment = false;
                    last_seq = record.seq;
                    if record.seq >= from_seq {
                        visit(&record)?;
                    }
                    offset = offset.saturating_add(size);
                }
                Scan::Bad => {
                    let tail_ok = is_last
                        && (format::all_zero(rest) || !valid_record_follows(rest, last_seq));
                    if !tail_ok {
                        return Err(JournalError::Corrupt {
                            file: segment.path.clone(),
                            offset: offset as u64,
                        });
                    }
                    torn = rest.len() as u64;
                    break;
                }
            }
        }
        valid_len = offset as u64;
    }
    Ok((last_seq, valid_len, torn))
}

fn load_snapshot(
    snapshot: Option<&(u64, PathBuf)>,
    market: MarketConfig,
) -> Result<(Engine, u64), JournalError> {
    let Some((_, path)) = snapshot else {
        return Ok((Engine::new(market)?, 0));
    };
    let data = fs::read(path)?;
    let Some((seq, body)) = format::decode_snapshot_file(&data) else {
        return Err(JournalError::SnapshotDamaged(path.clone()));
    };
    let engine = Engine::decode_snapshot(body)?;
    if *engine.config() != market {
        return Err(JournalError::ConfigMismatch);
    }
    Ok((engine, seq))
}

/// Rebuilds the engine of `market` from the journal in `config.dir` (creating the directory
/// if needed): newest snapshot, then every later record through [`Engine::apply`], whose
/// events go to `sink`. Truncates a torn tail and returns a writer ready to continue.
pub fn recover<S: EventSink + ?Sized>(
    config: JournalConfig,
    market: MarketConfig,
    sink: &mut S,
) -> Result<Recovered, JournalError> {
    fs::create_dir_all(&config.dir)?;
    let listing = list(&config.dir, true)?;
    let (mut engine, snapshot_seq) = load_snapshot(listing.snapshot.as_ref(), market)?;
    let mut replayed = 0u64;
    let (journal_seq, valid_len, torn) = walk(
        &listing.segments,
        snapshot_seq.saturating_add(1),
        false,
        |raw| {
            let r = decode(raw)?;
            engine.apply(&r.command, r.timestamp, sink);
            replayed = replayed.saturating_add(1);
            Ok(())
        },
    )?;
    let last_seq = journal_seq.max(snapshot_seq);
    let writer = reopen(config, &listing, journal_seq, last_seq, valid_len, torn)?;
    Ok(Recovered {
        engine,
        writer,
        last_seq,
        snapshot_seq,
        replayed,
        truncated_bytes: torn,
    })
}

/// Reads every valid record in `dir` without changing anything (a torn tail is ignored;
/// other damage is an error). For tools and tests.
pub fn read_all(dir: &Path) -> Result<Vec<Record>, JournalError> {
    let listing = list(dir, false)?;
    let mut out = Vec::new();
    walk(&listing.segments, 0, true, |raw| {
        out.push(decode(raw)?);
        Ok(())
    })?;
    Ok(out)
}

/// Replays every record of a journal of any command encoding (no engine snapshot): `visit`
/// gets each record's sequence, timestamp and encoded command, in order. Truncates a torn
/// tail and returns a writer ready to append after the last record, with that sequence.
/// The router journals its own commands through this.
pub fn recover_log(
    config: JournalConfig,
    visit: impl FnMut(u64, Timestamp, &[u8]),
) -> Result<(JournalWriter, u64), JournalError> {
    recover_log_from(config, 1, visit)
}

/// [`recover_log`] for a caller that already holds the state after command `from_seq - 1`
/// (its own snapshot): only records from `from_seq` on are visited, and the journal may start
/// at any sequence up to `from_seq` (segments before it compacted away, see [`compact`]).
/// Earlier records are still read and checked, so damage anywhere is still detected.
///
/// [`compact`]: super::compact
pub fn recover_log_from(
    config: JournalConfig,
    from_seq: u64,
    mut visit: impl FnMut(u64, Timestamp, &[u8]),
) -> Result<(JournalWriter, u64), JournalError> {
    fs::create_dir_all(&config.dir)?;
    let listing = list(&config.dir, true)?;
    let (last_seq, valid_len, torn) = walk(&listing.segments, from_seq.max(1), false, |raw| {
        visit(raw.seq, raw.timestamp, raw.body);
        Ok(())
    })?;
    let writer = reopen(config, &listing, last_seq, last_seq, valid_len, torn)?;
    Ok((writer, last_seq))
}

/// A CRC-valid record whose command does not decode was written by other code: corruption.
fn decode(raw: &RawRecord) -> Result<Record, JournalError> {
    raw.decode()
        .ok_or(JournalError::Undecodable { seq: raw.seq })
}

/// Truncates a torn tail and opens the writer after `last_seq`.
fn reopen(
    config: JournalConfig,
    listing: &Listing,
    journal_seq: u64,
    last_seq: u64,
    valid_len: u64,
    torn: u64,
) -> Result<JournalWriter, JournalError> {
    if let (Some(segment), true) = (listing.segments.last(), torn > 0) {
        let file = OpenOptions::new().write(true).open(&segment.path)?;
        file.set_len(valid_len)?;
        file.sync_all()?;
    }
    match listing.segments.last() {
        Some(segment)
            if journal_seq == last_seq || segment.first_seq == last_seq.saturating_add(1) =>
        {
            let file = OpenOptions::new().append(true).open(&segment.path)?;
            JournalWriter::resume(config, file, valid_len, last_seq)
        }
        _ => {
            let file = JournalWriter::create_segment(&config.dir, last_seq.saturating_add(1))?;
            JournalWriter::resume(config, file, 0, last_seq)
        }
    }
}
