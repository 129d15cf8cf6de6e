//! Storage of one region's subjects, sealed values and wrapped data keys. The only crate that
//! touches SQLite or PostgreSQL. Two backends behind [`RegionStore`], held to one conformance
//! suite ([`conformance`]): SQLite (embedded default, one database file per region, WAL) and
//! PostgreSQL (one schema per region).
//!
//! The store never sees a plaintext value or an unwrapped key: values arrive sealed, keys
//! wrapped.
//!
//! # Schema (version [`SCHEMA_VERSION`])
//!
//! Both backends hold the same tables with the same meaning; only the column types are
//! spelled per dialect (SQLite `INTEGER`/`BLOB` in `STRICT` tables, PostgreSQL
//! `BIGINT`/`BYTEA`). SQLite keeps them in `<dir>/<region>.db`; PostgreSQL in the schema
//! `custos_<region with '-' replaced by '_'>`.
//!
//! ```text
//! schema_migrations(version PK, applied_at_ms)          one row per applied migration
//! subjects(id PK, labels, staff_id NULL, created_at_ms, updated_at_ms, erased_at_ms NULL)
//!     labels: JSON array of label names, e.g. ["journalist","staff"]
//! data_keys(subject_id PK, shred_group, kek_version, wrapped)
//!     index (shred_group, kek_version) for key rotation
//!     no foreign key: a key is stored before its subject's first write
//! field_values(subject_id FK subjects, field, value_id 16 bytes, sealed,
//!              first_seen_ms, last_seen_ms, PK (subject_id, field, value_id))
//!     field: FieldKind::as_str()
//! erasures(subject_id PK FK subjects, erased_at_ms, requested_by, reason, values_destroyed)
//!
//! -- version 2: the region's Merkle log (see [`log`])
//! log_entries(entry_index PK, entry)                    entry <= 65,535 bytes
//! log_tiles(tile_level, tile_index, hashes, PK (tile_level, tile_index))
//!     hashes: the widest version written of the tile (32 * width bytes, width 1..=256);
//!     a narrower partial tile is its prefix
//! log_state(id PK = 1, tree_size, frontier)             frontier: right-edge subtree hashes
//! log_checkpoints(tree_size PK, root 32 bytes, note, saved_at_ms)
//!
//! -- version 3: witnesses
//! log_cosignatures(tree_size FK log_checkpoints, witness, line, saved_at_ms, PK (tree_size, witness))
//!     line: the signed-note signature line, e.g. "— witness.example/w1 base64…\n"
//!
//! -- version 4: search
//! blind_index(field, digest 32 bytes, subject_id FK subjects, PK (field, digest, subject_id))
//!     index (subject_id); rows of a subject are deleted when it is erased
//!
//! -- version 5: the per-subject access index (see [`subject_index`])
//! subject_entries(subject_id, entry_index, PK (subject_id, entry_index))
//!     no foreign key: the log outlives erasure, and so does the record of who was read
//! subject_index_state(id PK = 1, next_index)             every entry below next_index is indexed
//!
//! -- version 6: the compliance console's timelines (see [`subject_index`])
//! timeline_entries(kind 1 actor | 2 case | 3 subject | 4 tally, key, entry_index, at_ms,
//!                  PK (kind, key, entry_index))
//!     the migration sets subject_index_state.next_index back to 0, so the follower fills
//!     the timelines of entries indexed before (subject rows it re-adds are no-ops)
//!
//! -- version 7: in SQLite the three index tables move out of `<region>.db` into
//! `<region>.index.db` (its own schema version, [`INDEX_SCHEMA_VERSION`], and
//! `synchronous=NORMAL`: the index is derived from the log); the migration drops them from
//! the region database, and the follower rebuilds the index from the log. PostgreSQL keeps
//! them in the region's schema.
//! ```
//!
//!
//! The deployment-wide [`directory`] (staff, HR facts, on-call periods, cases, access
//! requests, and the detector's [`alerts`] with their deliveries and checkpoint) is a
//! separate database with its own schema version
//! ([`DIRECTORY_SCHEMA_VERSION`]): `<data dir>/directory.db` in SQLite ([`SqliteDirectory`],
//! same connection settings), one schema (default `custos_directory`) in PostgreSQL
//! ([`PostgresDirectory`]). Its tables are documented in [`directory`].
//!
//! Migrations are ordered lists of SQL embedded in each backend, applied at open, one
//! transaction each; a database whose version is newer than the build is refused with
//! [`StoreError::SchemaTooNew`] rather than written with assumptions it does not meet.
//!
//! # Semantics both backends share
//!
//! - A batch is planned before it touches the database (duplicates folded, limits checked),
//!   so both backends count and merge the same way.
//! - A subject upsert replaces labels and staff link; `created_at_ms` is kept and
//!   `updated_at_ms` only moves forward.
//! - A value seen again keeps its sealed bytes; first seen becomes the minimum, last seen the
//!   maximum (counted in [`WriteOutcome::values_merged`]).
//! - An erased subject stays erased: no write, no new data key.

pub mod alert_conformance;
pub mod alerts;
pub mod conformance;
pub mod directory;
pub mod directory_conformance;
mod directory_postgres;
mod directory_sqlite;
pub mod log;
mod plan;
mod postgres;
mod sqlite;
pub mod subject_index;
pub mod subject_index_conformance;
pub mod testing;

use std::collections::BTreeSet;

use async_trait::async_trait;
use model::{FieldKind, Label, RegionId, StaffId, SubjectId};

pub use alerts::{
    ALERT_EVIDENCE_MAX, ALERT_NOTE_BY_BYTES_MAX, ALERT_NOTE_BYTES_MAX, ALERT_RULE_BYTES_MAX,
    ALERT_SUBJECTS_MAX, ALERT_SUMMARY_BYTES_MAX, ALERTS_PAGE_MAX, ALERTS_PER_INSERT_MAX,
    AlertAction, AlertFilter, AlertNote, AlertRecord, AlertStatus, AlertStore,
    DELIVERIES_DUE_MAX, DELIVERY_ERROR_BYTES_MAX, DETECTOR_CURSORS_MAX, DETECTOR_NAME_BYTES_MAX,
    DETECTOR_STATE_BYTES_MAX, Delivery, DetectorCheckpoint, EvidenceRef, Severity,
};
pub use directory::{
    APPROVAL_NOTE_BYTES_MAX, AccessRequestRecord, ApprovalRecord, CASE_ASSIGNEES_MAX,
    CASE_DESTINATIONS_MAX, CASE_PURPOSE_BYTES_MAX, CASE_SUBJECTS_MAX, CaseRecord,
    DIRECTORY_FILE_NAME, DIRECTORY_SCHEMA_VERSION, DIRECTORY_TEXT_BYTES_MAX, DirectoryStore,
    HR_FACTS_PER_STAFF_MAX, HrEvent, HrFact, LegalProcess, ON_CALL_PER_STAFF_MAX, OnCall,
    POSTGRES_DIRECTORY_SCHEMA_DEFAULT, RECORD_ID_BYTES_MAX, REQUEST_APPROVALS_MAX,
    REQUEST_BYTES_MAX, REQUEST_NEEDS_MAX, RequestStatus, STAFF_ROLES_MAX, Shift, StaffRecord,
};
pub use directory_postgres::PostgresDirectory;
pub use directory_sqlite::SqliteDirectory;
pub use log::{
    COSIGNATURE_LINE_BYTES_MAX, COSIGNATURES_PER_CHECKPOINT_MAX, LOG_BATCH_ENTRIES_MAX, LOG_BATCH_TILES_MAX, LogBatch,
    LogState, LogStore, StoredCheckpoint, StoredCosignature,
};
pub use postgres::{
    POSTGRES_CONNECT_TIMEOUT_MS, POSTGRES_CONNECTIONS_MAX, POSTGRES_POOL_WAIT_TIMEOUT_MS,
    POSTGRES_SCHEMA_PREFIX, PostgresStore,
};
pub use subject_index::{
    SUBJECT_ENTRIES_MAX, SUBJECT_INDEX_BATCH_ROWS_MAX, SubjectIndexBatch, SubjectIndexStore, TIMELINE_BATCH_ROWS_MAX, TIMELINE_BUCKETS_MAX,
    TIMELINE_KEY_BYTES_MAX, TimelineKind, TimelinePoint, TimelineRow,
};
pub use sqlite::{
    INDEX_SCHEMA_VERSION, SQLITE_BUSY_TIMEOUT_MS, SQLITE_DERIVED_CACHE_KIB, SQLITE_READERS_IDLE_MAX, SqlitePragmas, SqliteStore,
};

/// Most rows one [`WriteBatch`] may carry (subjects plus values). Also the most keys one
/// call of [`RegionStore::ensure_data_keys`], [`RegionStore::data_keys`] or
/// [`RegionStore::rewrap_keys`] may carry.
pub const WRITE_BATCH_ROWS_MAX: usize = 100_000;

/// The schema version this build writes and understands: the number of migrations each
/// backend carries.
pub const SCHEMA_VERSION: i64 = 7;

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
    /// Keyed digests of exact values, for search (see [`BlindIndexEntry`]). Each entry's
    /// subject must own a value in the batch.
    pub blind_indexes: Vec<BlindIndexEntry>,
}

/// A keyed digest (HMAC-SHA-256 under the region's search key) of one value of a field, so
/// that a subject can be found by an exact email, phone, IP address or name without the
/// store holding the value. The store never sees the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlindIndexEntry {
    pub subject: SubjectId,
    pub field: FieldKind,
    pub digest: [u8; 32],
}

/// Most subjects one blind-index lookup returns.
pub const BLIND_INDEX_MATCHES_MAX: usize = 100;

/// What a [`RegionStore::write`] did. Every upsert and every value of the batch is counted
/// once: a subject or value that appears twice in one batch counts as created (added) once
/// and updated (merged) for each further appearance.
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
    /// Every subject row, erased ones included.
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
    #[error("log batch starts at index {first_index} but the stored log has {stored_size} entries")]
    LogSizeMismatch { first_index: u64, stored_size: u64 },
    #[error("log batch is invalid: {0}")]
    LogBatchInvalid(String),
    #[error("subject index batch starts at {from} but the stored cursor is {stored}")]
    SubjectIndexCursorMismatch { from: u64, stored: u64 },
    #[error("subject index batch is invalid: {0}")]
    SubjectIndexInvalid(String),
    #[error("checkpoint of size {new} is smaller than the saved checkpoint of size {saved}")]
    CheckpointRollback { saved: u64, new: u64 },
    #[error("checkpoint of size {size} has a different root than the saved one of that size")]
    CheckpointFork { size: u64 },
    #[error("no checkpoint of size {size} was saved")]
    NoCheckpoint { size: u64 },
    #[error("checkpoint of size {size} already holds {max} cosignatures")]
    TooManyCosignatures { size: u64, max: usize },
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("{what} {id} does not exist")]
    NotFound { what: &'static str, id: String },
    #[error("access request {id} was already decided ({status})")]
    AlreadyDecided { id: String, status: RequestStatus },
    #[error("{what} {id}: {count} exceeds {limit} ({max})")]
    LimitExceeded {
        what: &'static str,
        id: String,
        limit: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{what} {id:?} is invalid: {reason}")]
    InvalidRecord {
        what: &'static str,
        id: String,
        reason: String,
    },
    #[error("cannot {action} alert {id}: it is {status}")]
    InvalidAlertTransition {
        id: String,
        status: AlertStatus,
        action: AlertAction,
    },
}

/// One region's storage. Every method is one transaction.
#[async_trait]
pub trait RegionStore: Send + Sync {
    fn region(&self) -> &RegionId;

    /// `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;

    /// Stores each key unless its subject already has one; returns, in input order, the key
    /// that is stored now (the existing one wins, so concurrent first writes agree; within
    /// one call the first key of a subject wins). `Erased` if a subject was erased: its key
    /// was destroyed on purpose and must not come back.
    async fn ensure_data_keys(&self, keys: &[StoredKey]) -> Result<Vec<StoredKey>, StoreError>;

    /// The stored keys of these subjects, in input order (missing subjects are left out).
    async fn data_keys(&self, subjects: &[SubjectId]) -> Result<Vec<StoredKey>, StoreError>;

    /// Upserts subjects and values atomically. Fails without writing anything when a subject
    /// in the batch (or owning a value) was erased, when a value's subject has no data key,
    /// or when the batch is over [`WRITE_BATCH_ROWS_MAX`]. Values of subjects not in the
    /// batch must belong to existing subjects (else `UnknownSubject`). Checks run in this
    /// order: batch size, erased subjects (batch subjects first, then value owners, each in
    /// batch order), then per value owner in batch order unknown subject and missing key.
    async fn write(&self, batch: &WriteBatch) -> Result<WriteOutcome, StoreError>;

    async fn subject(&self, id: &SubjectId) -> Result<Option<SubjectRecord>, StoreError>;

    /// The sealed values of a subject, of the given fields (all fields when empty), ordered
    /// by field (in [`FieldKind`] declaration order, as its `Ord`), then first seen, then
    /// value id. Empty for an unknown or erased subject.
    async fn values(
        &self,
        subject: &SubjectId,
        fields: &[FieldKind],
    ) -> Result<Vec<SealedValue>, StoreError>;

    /// Deletes the subject's values and data key, marks it erased and records the erasure,
    /// in one transaction. `UnknownSubject` if absent; erasing twice returns the first record.
    /// The subject row stays (labels and staff link too): the log's entries about the subject
    /// still need to be explained.
    async fn erase(
        &self,
        subject: &SubjectId,
        at_ms: i64,
        requested_by: &str,
        reason: &str,
    ) -> Result<ErasureRecord, StoreError>;

    async fn erasure(&self, subject: &SubjectId) -> Result<Option<ErasureRecord>, StoreError>;

    /// Keys of shred group `group` wrapped under a version older than `version`, ordered by
    /// subject id (bytewise).
    async fn keys_wrapped_before(
        &self,
        group: u16,
        version: u32,
    ) -> Result<Vec<StoredKey>, StoreError>;

    /// Replaces the wrapped bytes and version of existing keys (re-wrap after rotation), each
    /// only where the stored version still equals its `previous_version` and the stored
    /// group equals `key.group`; returns how many rows changed. Applied in input order, in
    /// one transaction.
    async fn rewrap_keys(&self, rewraps: &[Rewrap]) -> Result<u64, StoreError>;

    async fn stats(&self) -> Result<StoreStats, StoreError>;

    /// Subjects, not erased, with a value of `field` whose blind-index digest is `digest`,
    /// ordered by id, at most `limit` (itself at most [`BLIND_INDEX_MATCHES_MAX`]).
    async fn find_blind_index(&self, field: FieldKind, digest: &[u8; 32], limit: usize) -> Result<Vec<SubjectId>, StoreError>;
}
