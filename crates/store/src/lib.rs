//! Storage of one region's subjects, sealed values and wrapped data keys. The only crate that
//! touches SQLite or PostgreSQL. Two backends behind [`RegionStore`], held to one conformance
//! suite ([`conformance`]): SQLite (embedded default, one database file per region, WAL) and
//! PostgreSQL (one schema per region).
//!
//! The store never sees a plaintext value or an unwrapped key: values arrive sealed, keys
//! wrapped.

pub mod conformance;
mod postgres;
mod sqlite;

use std::collections::BTreeSet;

use async_trait::async_trait;
use model::{FieldKind, Label, RegionId, StaffId, SubjectId};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Most rows one [`WriteBatch`] may carry (subjects plus values).
pub const WRITE_BATCH_ROWS_MAX: usize = 100_000;

/// A subject as stored: metadata only, never values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectRecord {
    pub id: SubjectId,
    pub labels: BTreeSet<Label>,
    pub staff: Option<StaffId>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub erased_at_ms: Option<i64>,
}

/// Create or update a subject: labels and staff link are replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectUpsert {
    pub id: SubjectId,
    pub labels: BTreeSet<Label>,
    pub staff: Option<StaffId>,
    pub at_ms: i64,
}

/// A subject's data key, wrapped by key-encryption key `version` of shred group `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    pub subject: SubjectId,
    pub group: u16,
    pub version: u32,
    pub wrapped: Vec<u8>,
}

/// One sealed value. `value_id` is a keyed digest of the plaintext under the subject's data
/// key, so the same value ingested twice is one row (first/last seen are merged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedValue {
    pub subject: SubjectId,
    pub field: FieldKind,
    pub value_id: [u8; 16],
    pub sealed: Vec<u8>,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
}

/// Subjects and values written in one transaction: all or nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteBatch {
    pub subjects: Vec<SubjectUpsert>,
    pub values: Vec<SealedValue>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOutcome {
    pub subjects_created: u64,
    pub subjects_updated: u64,
    pub values_added: u64,
    pub values_merged: u64,
}

/// What is kept of an erased subject: when, why, by whom, and how many values were destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasureRecord {
    pub subject: SubjectId,
    pub erased_at_ms: i64,
    pub requested_by: String,
    pub reason: String,
    pub values_destroyed: u64,
}

/// A data key re-wrapped under a newer key-encryption key version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rewrap {
    pub key: StoredKey,
    pub previous_version: u32,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub subjects: u64,
    pub subjects_erased: u64,
    pub values: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("subject {0} was erased; it cannot be written again")]
    Erased(SubjectId),
    #[error("subject {0} does not exist")]
    UnknownSubject(SubjectId),
    #[error("batch of {rows} rows exceeds the limit of {max}")]
    BatchTooLarge { rows: usize, max: usize },
    #[error("value for subject {0} has no data key stored")]
    MissingDataKey(SubjectId),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("sqlite: {0}")]
    Sqlite(String),
    #[error("postgres: {0}")]
    Postgres(String),
    #[error("io: {0}")]
    Io(String),
}

/// One region's storage. Every method is one transaction.
#[async_trait]
pub trait RegionStore: Send + Sync {
    fn region(&self) -> &RegionId;

    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Stores each key unless its subject already has one; returns, in input order, the key
    /// that is stored now (the existing one wins, so concurrent first writes agree).
    async fn ensure_data_keys(&self, keys: &[StoredKey]) -> Result<Vec<StoredKey>, StoreError>;

    /// The stored keys of these subjects (missing subjects are left out).
    async fn data_keys(&self, subjects: &[SubjectId]) -> Result<Vec<StoredKey>, StoreError>;

    /// Upserts subjects and values atomically. Fails without writing anything when a subject
    /// in the batch (or owning a value) was erased, when a value's subject has no data key,
    /// or when the batch is over [`WRITE_BATCH_ROWS_MAX`]. Values of subjects not in the
    /// batch must belong to existing subjects.
    async fn write(&self, batch: &WriteBatch) -> Result<WriteOutcome, StoreError>;

    async fn subject(&self, id: &SubjectId) -> Result<Option<SubjectRecord>, StoreError>;

    /// The sealed values of a subject, of the given fields (all fields when empty), ordered
    /// by field, then first seen, then value id.
    async fn values(&self, subject: &SubjectId, fields: &[FieldKind]) -> Result<Vec<SealedValue>, StoreError>;

    /// Deletes the subject's values and data key, marks it erased and records the erasure,
    /// in one transaction. `UnknownSubject` if absent; erasing twice returns the first record.
    async fn erase(&self, subject: &SubjectId, at_ms: i64, requested_by: &str, reason: &str) -> Result<ErasureRecord, StoreError>;

    async fn erasure(&self, subject: &SubjectId) -> Result<Option<ErasureRecord>, StoreError>;

    /// Keys of shred group `group` wrapped under a version older than `version`.
    async fn keys_wrapped_before(&self, group: u16, version: u32) -> Result<Vec<StoredKey>, StoreError>;

    /// Replaces the wrapped bytes and version of existing keys (re-wrap after rotation), each
    /// only where the stored version still equals its `previous_version`; returns how many
    /// rows changed. One transaction.
    async fn rewrap_keys(&self, rewraps: &[Rewrap]) -> Result<u64, StoreError>;

    async fn stats(&self) -> Result<StoreStats, StoreError>;
}
