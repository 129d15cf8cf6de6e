//! The per-subject access index of a region's log: which log entries name which subject, so
//! that a data subject's report reads their entries without scanning the log.
//!
//! A follower (`service::SubjectIndexer`) reads the log from the stored cursor, decodes each
//! entry and hands the store one [`SubjectIndexBatch`]: the rows it found and the cursor past
//! them, written in one transaction. The cursor moves only from where the store has it, so
//! two followers, or one restarted after a crash, never skip or double an entry; rows are
//! keyed by (subject, index), so re-adding one is a no-op.
//!
//! The same batch carries the compliance console's timeline rows: (actor, case or subject,
//! log index, time) for every entry that names them, so a timeline of 100,000 accesses and
//! its activity chart are index reads, not log scans.

use async_trait::async_trait;
use model::SubjectId;

use crate::StoreError;
use crate::log::LOG_BATCH_ENTRIES_MAX;

/// Most rows one [`SubjectIndexBatch`] may carry: one log read's worth of entries, each
/// naming at most one subject.
pub const SUBJECT_INDEX_BATCH_ROWS_MAX: usize = LOG_BATCH_ENTRIES_MAX;
/// Most log indexes one [`SubjectIndexStore::subject_entries`] call returns.
pub const SUBJECT_ENTRIES_MAX: usize = 10_000;
/// Most timeline rows one [`SubjectIndexBatch`] may carry: an entry names at most an actor, a
/// case and a subject, and counts towards at most three tallies.
pub const TIMELINE_BATCH_ROWS_MAX: usize = 6 * LOG_BATCH_ENTRIES_MAX;
/// Longest timeline key (a staff, case or subject id), in bytes.
pub const TIMELINE_KEY_BYTES_MAX: usize = 256;
/// Most buckets one [`SubjectIndexStore::timeline_activity`] call returns.
pub const TIMELINE_BUCKETS_MAX: usize = 10_000;

/// What a timeline follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimelineKind {
    /// The staff member or machine who acted (the caller, the approver, the reviewer).
    Actor,
    /// The case an access named.
    Case,
    /// The subject an access was about.
    Subject,
    /// A public tally the transparency page counts per month: `purpose:<purpose>`,
    /// `decision:<allow|deny|pending>`, `break_glass`, `approval:<decision>`.
    Tally,
}

impl TimelineKind {
    /// The stored code (1, 2, 3): part of the schema.
    pub fn code(self) -> i16 {
        match self {
            TimelineKind::Actor => 1,
            TimelineKind::Case => 2,
            TimelineKind::Subject => 3,
            TimelineKind::Tally => 4,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TimelineKind::Actor => "actor",
            TimelineKind::Case => "case",
            TimelineKind::Subject => "subject",
            TimelineKind::Tally => "tally",
        }
    }
}

/// One log entry on one timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineRow {
    pub kind: TimelineKind,
    pub key: String,
    pub index: u64,
    /// The entry's own time (`at_ms`).
    pub at_ms: i64,
}

/// A timeline's entry: its log index and time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimelinePoint {
    pub index: u64,
    pub at_ms: i64,
}

/// What the follower found in the log entries `from..to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectIndexBatch {
    /// The cursor the follower read from: the store's cursor must equal it.
    pub from: u64,
    /// The new cursor: every entry below it has been indexed.
    pub to: u64,
    /// (subject, log index) for every entry in `from..to` that names a subject.
    pub rows: Vec<(SubjectId, u64)>,
    /// Every timeline an entry in `from..to` belongs to.
    pub timeline: Vec<TimelineRow>,
}

#[async_trait]
pub trait SubjectIndexStore: Send + Sync {
    /// The log index below which every entry is indexed (0 for a new region).
    async fn subject_index_cursor(&self) -> Result<u64, StoreError>;

    /// Adds `batch.rows` and moves the cursor from `batch.from` to `batch.to`, in one
    /// transaction. Fails with [`StoreError::SubjectIndexCursorMismatch`] (writing nothing)
    /// unless the stored cursor is `batch.from`.
    async fn index_subjects(&self, batch: &SubjectIndexBatch) -> Result<(), StoreError>;

    /// The log indexes in `from..below` of the entries that name `subject`, ascending, at
    /// most `limit` (itself at most [`SUBJECT_ENTRIES_MAX`]).
    async fn subject_entries(&self, subject: &SubjectId, from: u64, below: u64, limit: usize) -> Result<Vec<u64>, StoreError>;

    /// The entries below `below` on the timeline of `kind`/`key`, newest (highest index)
    /// first, at most `limit` (itself at most [`SUBJECT_ENTRIES_MAX`]).
    async fn timeline(&self, kind: TimelineKind, key: &str, below: u64, limit: usize) -> Result<Vec<TimelinePoint>, StoreError>;

    /// How many entries of the timeline of `kind`/`key` fall in each `bucket_ms`-wide bucket
    /// of time (buckets start at multiples of `bucket_ms` since the epoch), ascending, empty
    /// buckets left out. Fails with [`StoreError::BatchTooLarge`] past
    /// [`TIMELINE_BUCKETS_MAX`] buckets.
    async fn timeline_activity(&self, kind: TimelineKind, key: &str, bucket_ms: i64) -> Result<Vec<(i64, u64)>, StoreError>;

    /// The smallest key of `kind` greater than `after` that has a row (`""` for the first):
    /// one index seek, so listing a kind's few keys never scans its rows.
    async fn timeline_next_key(&self, kind: TimelineKind, after: &str) -> Result<Option<String>, StoreError>;
}

/// The checks every backend applies before writing a batch.
pub(crate) fn check_index_batch(batch: &SubjectIndexBatch) -> Result<(), StoreError> {
    if batch.to < batch.from {
        return Err(StoreError::SubjectIndexInvalid(format!("cursor would move back from {} to {}", batch.from, batch.to)));
    }
    if batch.rows.len() > SUBJECT_INDEX_BATCH_ROWS_MAX {
        return Err(StoreError::BatchTooLarge { rows: batch.rows.len(), max: SUBJECT_INDEX_BATCH_ROWS_MAX });
    }
    if batch.timeline.len() > TIMELINE_BATCH_ROWS_MAX {
        return Err(StoreError::BatchTooLarge { rows: batch.timeline.len(), max: TIMELINE_BATCH_ROWS_MAX });
    }
    if let Some(row) = batch.timeline.iter().find(|row| !(batch.from..batch.to).contains(&row.index)) {
        return Err(StoreError::SubjectIndexInvalid(format!(
            "timeline entry {} of {} {} is outside the batch's range {}..{}",
            row.index,
            row.kind.as_str(),
            row.key,
            batch.from,
            batch.to
        )));
    }
    if let Some(row) = batch.timeline.iter().find(|row| row.key.is_empty() || row.key.len() > TIMELINE_KEY_BYTES_MAX) {
        return Err(StoreError::SubjectIndexInvalid(format!(
            "timeline entry {}: the {} key must be 1 to {TIMELINE_KEY_BYTES_MAX} bytes, not {}",
            row.index,
            row.kind.as_str(),
            row.key.len()
        )));
    }
    if let Some((subject, index)) = batch.rows.iter().find(|(_, index)| !(batch.from..batch.to).contains(index)) {
        return Err(StoreError::SubjectIndexInvalid(format!(
            "entry {index} of subject {subject} is outside the batch's range {}..{}",
            batch.from, batch.to
        )));
    }
    Ok(())
}

pub(crate) fn check_entries_limit(limit: usize) -> Result<(), StoreError> {
    if limit > SUBJECT_ENTRIES_MAX {
        return Err(StoreError::BatchTooLarge { rows: limit, max: SUBJECT_ENTRIES_MAX });
    }
    Ok(())
}

/// The checks every backend applies before counting a timeline's activity.
pub(crate) fn check_bucket(bucket_ms: i64) -> Result<(), StoreError> {
    if bucket_ms <= 0 {
        return Err(StoreError::SubjectIndexInvalid(format!("a timeline bucket must be a positive number of milliseconds, not {bucket_ms}")));
    }
    Ok(())
}

pub(crate) fn check_buckets(buckets: &[(i64, u64)]) -> Result<(), StoreError> {
    if buckets.len() > TIMELINE_BUCKETS_MAX {
        return Err(StoreError::BatchTooLarge { rows: buckets.len(), max: TIMELINE_BUCKETS_MAX });
    }
    Ok(())
}
