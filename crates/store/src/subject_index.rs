//! The per-subject access index of a region's log: which log entries name which subject, so
//! that a data subject's report reads their entries without scanning the log.
//!
//! A follower (`service::SubjectIndexer`) reads the log from the stored cursor, decodes each
//! entry and hands the store one [`SubjectIndexBatch`]: the rows it found and the cursor past
//! them, written in one transaction. The cursor moves only from where the store has it, so
//! two followers, or one restarted after a crash, never skip or double an entry; rows are
//! keyed by (subject, index), so re-adding one is a no-op.

use async_trait::async_trait;
use model::SubjectId;

use crate::StoreError;
use crate::log::LOG_BATCH_ENTRIES_MAX;

/// Most rows one [`SubjectIndexBatch`] may carry: one log read's worth of entries, each
/// naming at most one subject.
pub const SUBJECT_INDEX_BATCH_ROWS_MAX: usize = LOG_BATCH_ENTRIES_MAX;
/// Most log indexes one [`SubjectIndexStore::subject_entries`] call returns.
pub const SUBJECT_ENTRIES_MAX: usize = 10_000;

/// What the follower found in the log entries `from..to`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectIndexBatch {
    /// The cursor the follower read from: the store's cursor must equal it.
    pub from: u64,
    /// The new cursor: every entry below it has been indexed.
    pub to: u64,
    /// (subject, log index) for every entry in `from..to` that names a subject.
    pub rows: Vec<(SubjectId, u64)>,
}

#[async_trait]
pub trait SubjectIndexStore: Send + Sync {
    /// The log index below which every entry is indexed (0 for a new region).
    async fn subject_index_cursor(&self) -> Result<u64, StoreError>;

    /// Adds `batch.rows` and moves the cursor from `batch.from` to `batch.to`, in one
    /// transaction. Fails with [`StoreError::SubjectIndexCursorMismatch`] (writing nothing)
    /// unless the stored cursor is `batch.from`.
    async fn index_subjects(&self, batch: &SubjectIndexBatch) -> Result<(), StoreError>;

    /// The log indexes below `below` of the entries that name `subject`, ascending, at most
    /// `limit` (itself at most [`SUBJECT_ENTRIES_MAX`]).
    async fn subject_entries(&self, subject: &SubjectId, below: u64, limit: usize) -> Result<Vec<u64>, StoreError>;
}

/// The checks every backend applies before writing a batch.
pub(crate) fn check_index_batch(batch: &SubjectIndexBatch) -> Result<(), StoreError> {
    if batch.to < batch.from {
        return Err(StoreError::SubjectIndexInvalid(format!("cursor would move back from {} to {}", batch.from, batch.to)));
    }
    if batch.rows.len() > SUBJECT_INDEX_BATCH_ROWS_MAX {
        return Err(StoreError::BatchTooLarge { rows: batch.rows.len(), max: SUBJECT_INDEX_BATCH_ROWS_MAX });
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
