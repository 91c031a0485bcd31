//! Start-up recovery: the newest usable router snapshot, then the journal records after it
//! through the same [`State::apply`] as live commands.
//!
//! A damaged, truncated or foreign snapshot is skipped with a warning and the next older one
//! is tried, down to a replay of the whole journal. A snapshot is only usable if every
//! subscriber already holds the events up to it (`max_snapshot_seq`): their events are
//! re-derived from the replay, and the SQL store must not miss any.

use crate::codec;
use crate::model::{Event, Seq, Sequenced};
use crate::snapshot;
use crate::state::{Rules, State, StateError};
use kestrel_matcher::journal::{self, JournalConfig, JournalError, JournalWriter};

/// Told the state loaded from a snapshot, before the journal tail is replayed.
pub type OnSnapshot = Box<dyn FnOnce(&State) + Send>;

/// What recovery may use, and who wants to see a loaded snapshot.
pub struct Recovery {
    /// The newest snapshot sequence the subscribers can start from: they hold every event of
    /// the commands up to it, and receive the events of every later one.
    pub max_snapshot_seq: Seq,
    /// Called with the state loaded from a snapshot, before the journal tail is replayed (the
    /// market-data projection seeds its books from it).
    pub on_snapshot: Option<OnSnapshot>,
}

impl Default for Recovery {
    /// Any snapshot, nobody told.
    fn default() -> Self {
        Recovery {
            max_snapshot_seq: Seq::MAX,
            on_snapshot: None,
        }
    }
}

/// Recovery failed; the router must not start.
#[derive(Debug, thiserror::Error)]
pub enum RecoveryError {
    /// The state's rules are invalid.
    #[error(transparent)]
    State(#[from] StateError),
    /// The journal could not be recovered (damage, or segments compacted away before the
    /// snapshot that would need them).
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The snapshot directory could not be listed.
    #[error("listing snapshots: {0}")]
    Snapshots(std::io::Error),
    /// A journal record does not decode as a router command.
    #[error("journal record {0} is not a router command")]
    Codec(Seq),
    /// The snapshot claims commands the journal does not hold.
    #[error("snapshot at {snapshot} is ahead of the journal, which ends at {journal}")]
    SnapshotAhead {
        /// The snapshot's sequence.
        snapshot: Seq,
        /// The journal's last sequence.
        journal: Seq,
    },
}

/// The recovered state and what it took.
pub struct Recovered {
    /// The state after the last journaled command.
    pub state: State,
    /// A journal writer positioned after it.
    pub writer: JournalWriter,
    /// Sequence of the snapshot loaded (0: none, whole journal replayed).
    pub snapshot_seq: Seq,
    /// Commands replayed from the journal.
    pub replayed: u64,
    /// The replayed commands' events, in order, for the subscribers.
    pub events: Vec<Sequenced>,
}

/// Rebuilds the state of `rules` from the snapshots and journal in `config.dir`.
pub fn recover(
    rules: Rules,
    config: JournalConfig,
    recovery: Recovery,
) -> Result<Recovered, RecoveryError> {
    std::fs::create_dir_all(&config.dir).map_err(RecoveryError::Snapshots)?;
    let loaded = snapshot::newest_valid(&config.dir, &rules, recovery.max_snapshot_seq)
        .map_err(RecoveryError::Snapshots)?;
    let (mut state, snapshot_seq) = match loaded {
        Some(state) => {
            let seq = state.last_seq();
            tracing::info!(seq, "recovering from router snapshot");
            if let Some(f) = recovery.on_snapshot {
                f(&state);
            }
            (state, seq)
        }
        None => (State::new(rules)?, 0),
    };
    let mut events = Vec::new();
    let mut bad_record = None;
    let mut replayed = 0u64;
    let (writer, last) = journal::recover_log_from(
        config,
        snapshot_seq.saturating_add(1),
        |seq, timestamp, bytes| match codec::decode(bytes) {
            Ok(command) => {
                let now_ms = timestamp.0 / 1_000_000;
                let applied = state.apply(seq, now_ms, &command);
                events.extend(sequenced(seq, now_ms, applied));
                replayed = replayed.saturating_add(1);
            }
            Err(_) => {
                bad_record.get_or_insert(seq);
            }
        },
    )?;
    if let Some(seq) = bad_record {
        return Err(RecoveryError::Codec(seq));
    }
    if last < snapshot_seq {
        return Err(RecoveryError::SnapshotAhead {
            snapshot: snapshot_seq,
            journal: last,
        });
    }
    Ok(Recovered {
        state,
        writer,
        snapshot_seq,
        replayed,
        events,
    })
}

/// The events of command `seq`, numbered within it.
pub(crate) fn sequenced(
    seq: Seq,
    timestamp_ms: u64,
    events: Vec<Event>,
) -> impl Iterator<Item = Sequenced> {
    events
        .into_iter()
        .enumerate()
        .map(move |(index, event)| Sequenced {
            seq,
            index: u32::try_from(index).unwrap_or(u32::MAX),
            timestamp_ms,
            event,
        })
}
