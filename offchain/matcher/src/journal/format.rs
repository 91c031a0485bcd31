//! On-disk framing of journal records and snapshot files.
//!
//! A record is `len: u32 LE | crc: u32 LE | payload[len]`, where `crc` is CRC32C of the
//! payload and the payload is `seq: u64 LE | timestamp: u64 LE | command` (see
//! [`crate::Command::encode`]). Segment files are named `<first seq, 20 digits>.log`.
//!
//! A snapshot file is `magic[8] | seq: u64 LE | crc: u32 LE | engine snapshot`, where `crc`
//! is CRC32C of `seq` and the snapshot bytes; it is named `snapshot-<seq, 20 digits>.snap`
//! and appears only by an atomic rename of a fully written and synced temporary file.

use crate::command::Command;
use crate::types::Timestamp;

/// Bytes before the payload.
pub(crate) const HEADER: usize = 8;
/// Bytes of `seq` and `timestamp` at the start of the payload.
const PAYLOAD_PREFIX: usize = 16;
/// Longest payload accepted; a longer length field is corruption (or a torn tail).
pub(crate) const MAX_PAYLOAD: usize = 1 << 16;
/// Longest record body (payload minus sequence and timestamp): 65,520 bytes.
pub const MAX_BODY: usize = MAX_PAYLOAD - PAYLOAD_PREFIX;

pub(crate) const SNAPSHOT_MAGIC: &[u8; 8] = b"KSTRLSF1";

/// One decoded journal record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Command sequence number (1, 2, 3, … without gaps).
    pub seq: u64,
    /// The timestamp the command was applied with.
    pub timestamp: Timestamp,
    /// The command.
    pub command: Command,
}

/// A framed record before its command is decoded. The journal itself is agnostic of the
/// command encoding: the engine's [`Command`] is one; the router journals its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Command sequence number.
    pub seq: u64,
    /// The timestamp the command was applied with.
    pub timestamp: Timestamp,
    /// The encoded command.
    pub body: &'a [u8],
}

/// Appends one framed record of an engine command to `out`.
pub(crate) fn encode_record(out: &mut Vec<u8>, seq: u64, timestamp: Timestamp, cmd: &Command) {
    encode_record_with(out, seq, timestamp, |out| cmd.encode(out));
}

/// Appends one framed record whose body `write_body` appends to `out`.
pub(crate) fn encode_record_with(
    out: &mut Vec<u8>,
    seq: u64,
    timestamp: Timestamp,
    write_body: impl FnOnce(&mut Vec<u8>),
) {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&timestamp.0.to_le_bytes());
    write_body(out);
    let payload = out.get(start.saturating_add(HEADER)..).unwrap_or_default();
    let len = payload.len() as u32;
    let crc = crc32c::crc32c(payload);
    if let Some(header) = out.get_mut(start..start.saturating_add(HEADER)) {
        header[..4].copy_from_slice(&len.to_le_bytes());
        header[4..].copy_from_slice(&crc.to_le_bytes());
    }
}

/// What the scanner found at one offset.
pub(crate) enum Scan<'a> {
    /// A valid record of `size` bytes.
    Record(RawRecord<'a>, usize),
    /// Clean end of data.
    End,
    /// The bytes from here on do not start a valid record (short, bad length or bad checksum).
    Bad,
}

fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_le_bytes(a)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(b);
    u64::from_le_bytes(a)
}

/// Decodes the record starting at the beginning of `data`.
pub(crate) fn scan(data: &[u8]) -> Scan<'_> {
    if data.is_empty() {
        return Scan::End;
    }
    let Some(header) = data.get(..HEADER) else {
        return Scan::Bad;
    };
    let len = le_u32(&header[..4]) as usize;
    let crc = le_u32(&header[4..]);
    if !(PAYLOAD_PREFIX..=MAX_PAYLOAD).contains(&len) {
        return Scan::Bad;
    }
    let size = HEADER.saturating_add(len);
    let Some(payload) = data.get(HEADER..size) else {
        return Scan::Bad;
    };
    if crc32c::crc32c(payload) != crc {
        return Scan::Bad;
    }
    let seq = le_u64(&payload[..8]);
    let timestamp = Timestamp(le_u64(&payload[8..16]));
    Scan::Record(
        RawRecord {
            seq,
            timestamp,
            body: &payload[PAYLOAD_PREFIX..],
        },
        size,
    )
}

impl RawRecord<'_> {
    /// Decodes the body as an engine command.
    pub fn decode(&self) -> Option<Record> {
        Command::decode(self.body).ok().map(|command| Record {
            seq: self.seq,
            timestamp: self.timestamp,
            command,
        })
    }
}

/// True when every byte is zero (a file extended but never written).
pub(crate) fn all_zero(data: &[u8]) -> bool {
    data.iter().all(|&b| b == 0)
}

pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.log")
}

pub(crate) fn snapshot_name(seq: u64) -> String {
    format!("snapshot-{seq:020}.snap")
}

/// Parses a segment file name back into its first sequence number.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// Parses a snapshot file name back into its sequence number.
pub(crate) fn parse_snapshot_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("snapshot-")?.strip_suffix(".snap")?;
    (digits.len() == 20).then(|| digits.parse().ok()).flatten()
}

/// Frames an engine snapshot taken after command `seq`.
pub(crate) fn encode_snapshot_file(seq: u64, snapshot: &[u8]) -> Vec<u8> {
    let mut crc = crc32c::crc32c(&seq.to_le_bytes());
    crc = crc32c::crc32c_append(crc, snapshot);
    let mut out = Vec::with_capacity(snapshot.len().saturating_add(20));
    out.extend_from_slice(SNAPSHOT_MAGIC);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(snapshot);
    out
}

/// Unframes a snapshot file: `(seq, engine snapshot bytes)`, or `None` if it is damaged.
pub(crate) fn decode_snapshot_file(data: &[u8]) -> Option<(u64, &[u8])> {
    let magic = data.get(..8)?;
    if magic != SNAPSHOT_MAGIC {
        return None;
    }
    let seq_bytes = data.get(8..16)?;
    let crc = le_u32(data.get(16..20)?);
    let body = data.get(20..)?;
    let mut actual = crc32c::crc32c(seq_bytes);
    actual = crc32c::crc32c_append(actual, body);
    (actual == crc).then(|| (le_u64(seq_bytes), body))
}
