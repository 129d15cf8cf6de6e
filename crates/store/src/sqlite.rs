//! The embedded backend: one SQLite database file per region, `<dir>/<region>.db`, and
//! beside it `<dir>/<region>.index.db`, the per-subject index and timelines the follower
//! derives from the log. The index has a file of its own because SQLite has one writer per
//! file: in the region's file, each indexing step held the writer the log's commits need.
//! Restore both files together, or restore `<region>.db` alone and delete the index: the
//! follower refuses an index that covers more entries than the log holds.
//!
//! Schema (see the crate docs for the meaning of each column):
//!
//! ```sql
//! CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL);
//! CREATE TABLE subjects (id TEXT PRIMARY KEY, labels TEXT, staff_id TEXT NULL,
//!     created_at_ms INTEGER, updated_at_ms INTEGER, erased_at_ms INTEGER NULL);
//! CREATE TABLE data_keys (subject_id TEXT PRIMARY KEY, shred_group INTEGER,
//!     kek_version INTEGER, wrapped BLOB);
//! CREATE INDEX data_keys_rotation ON data_keys (shred_group, kek_version);
//! CREATE TABLE field_values (subject_id TEXT REFERENCES subjects, field TEXT,
//!     value_id BLOB CHECK (length = 16), sealed BLOB, first_seen_ms INTEGER,
//!     last_seen_ms INTEGER, PRIMARY KEY (subject_id, field, value_id));
//! CREATE TABLE erasures (subject_id TEXT PRIMARY KEY REFERENCES subjects,
//!     erased_at_ms INTEGER, requested_by TEXT, reason TEXT, values_destroyed INTEGER);
//! -- version 2
//! CREATE TABLE log_entries (entry_index INTEGER PRIMARY KEY, entry BLOB CHECK (length <= 65535));
//! CREATE TABLE log_tiles (tile_level INTEGER, tile_index INTEGER,
//!     hashes BLOB CHECK (32..=8192 bytes, a multiple of 32), PRIMARY KEY (tile_level, tile_index));
//! CREATE TABLE log_state (id INTEGER PRIMARY KEY CHECK (id = 1), tree_size INTEGER, frontier BLOB);
//! CREATE TABLE log_checkpoints (tree_size INTEGER PRIMARY KEY, root BLOB CHECK (length = 32),
//!     note TEXT, saved_at_ms INTEGER);
//! ```
//!
//! `log_entries` keeps its rowid (the integer primary key is the rowid), so appends go to
//! the end of the b-tree.
//!
//! Tables are `STRICT` (a wrong type is an error, not a silent conversion) and `WITHOUT
//! ROWID` (rows are small and always found by their primary key, so the key is the table).
//!
//! Connection settings, and why:
//! - `journal_mode=WAL`: readers do not block the writer nor the writer the readers.
//! - `synchronous=FULL`: the WAL is fsynced at every commit, so a write that was acknowledged
//!   survives a power loss. `NORMAL` would only fsync at checkpoints: the database stays
//!   consistent but the last acknowledged transactions can vanish — an ingest the platform
//!   was told succeeded, or worse an erasure that was confirmed to the data subject.
//! - `secure_delete=ON`: deleted rows are overwritten with zeros in the file instead of left
//!   in free space. Erasure also runs a WAL checkpoint so the zeroed pages reach the main
//!   file and the WAL is truncated. This is best effort against forensic recovery from the
//!   file; the guarantee of erasure is that the data key is destroyed (crypto-shredding).
//! - `foreign_keys=ON`: values and erasures cannot point at a missing subject.
//! - a busy timeout, so that a second process (a backup, the CLI) waits instead of failing.
//!
//! Blocking calls run on tokio's blocking pool. One writer connection sits behind a mutex
//! (SQLite has one writer anyway, and each write is an `IMMEDIATE` transaction so it takes
//! the write lock up front instead of failing on upgrade); reads use a small pool of
//! read-only connections, which WAL lets run beside the writer.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use model::{FieldKind, RegionId, SubjectId};
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};

use crate::log::{self, COSIGNATURES_PER_CHECKPOINT_MAX, LogBatch, LogState, LogStore, StoredCheckpoint, StoredCosignature};
use crate::plan::{self, BatchPlan, SubjectRow, SubjectState};
use crate::subject_index::{self, SubjectIndexBatch, SubjectIndexStore, TimelineKind, TimelinePoint};
use crate::{
    ErasureRecord, RegionStore, Rewrap, SCHEMA_VERSION, SealedValue, StoreError, StoreStats,
    StoredKey, SubjectRecord, WriteBatch, WriteOutcome,
};

/// How long a connection waits for another process's lock before giving up.
pub const SQLITE_BUSY_TIMEOUT_MS: u64 = 5_000;
/// Most read-only connections of one database, all kept for reuse: further readers wait for
/// one instead of opening their own (opening costs far more than a point read).
pub const SQLITE_READERS_IDLE_MAX: usize = 8;
/// Prepared statements cached per connection; more than the store has, so none is evicted.
const STATEMENTS_CACHED_MAX: usize = 64;
/// Bytes of the database file a scanning read connection maps into memory (SQLite's
/// `mmap_size`): scans of the log's entries and tiles then come straight from the OS page
/// cache instead of a `read` call and a copy per page. Address space only. Point readers and
/// the writer keep ordinary I/O: in WAL mode a read transaction that finds the database
/// changed drops the whole mapping (`munmap`, then page faults to map it again), and under
/// steady writes that is nearly every point read — 3 % of the server's CPU on the access path,
/// and 15 % more CPU per request in all (docs/PERFORMANCE.md).
pub const SQLITE_SCAN_READER_MMAP_BYTES: i64 = 1 << 30;
/// The SQLite VFS every connection of a database uses: `unix-excl`. The first connection
/// takes an exclusive lock on the file for the whole process, and the WAL's index (the
/// `-shm` file) lives in this process's memory, so the connections inside the process
/// coordinate in memory. With the ordinary `unix` VFS each read transaction takes and drops
/// `fcntl` locks on the `-shm` file, which under steady commits cost 7.7 % of the server's
/// CPU on the access path (docs/PERFORMANCE.md). One process per deployment was already the
/// rule (`custos.lock`, docs/storage.md); this makes SQLite hold it too: another process
/// cannot open the database while custos has it open.
const SQLITE_VFS: &std::ffi::CStr = c"unix-excl";

/// The per-subject index's tables and cursor (region schema version 5; the index file's
/// version 1), as a literal for `concat!`.
macro_rules! subject_entries_tables {
    () => {
        r#"
CREATE TABLE subject_entries (
    subject_id TEXT NOT NULL,
    entry_index INTEGER NOT NULL CHECK (entry_index >= 0),
    PRIMARY KEY (subject_id, entry_index)
) STRICT, WITHOUT ROWID;

CREATE TABLE subject_index_state (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    next_index INTEGER NOT NULL CHECK (next_index >= 0)
) STRICT;

INSERT INTO subject_index_state (id, next_index) VALUES (1, 0);
"#
    };
}

/// The timelines' table as region schema version 6 and the index file's version 1 created it
/// (the index file's version 2 replaces its `CHECK`).
macro_rules! timeline_entries_table {
    () => {
        r#"
CREATE TABLE timeline_entries (
    kind INTEGER NOT NULL CHECK (kind IN (1, 2, 3, 4)),
    key TEXT NOT NULL,
    entry_index INTEGER NOT NULL CHECK (entry_index >= 0),
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, key, entry_index)
) STRICT, WITHOUT ROWID;
"#
    };
}

/// Ordered migrations: index `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    r#"
CREATE TABLE subjects (
    id TEXT NOT NULL PRIMARY KEY,
    labels TEXT NOT NULL,
    staff_id TEXT,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    erased_at_ms INTEGER
) STRICT, WITHOUT ROWID;

CREATE TABLE data_keys (
    subject_id TEXT NOT NULL PRIMARY KEY,
    shred_group INTEGER NOT NULL,
    kek_version INTEGER NOT NULL,
    wrapped BLOB NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX data_keys_rotation ON data_keys (shred_group, kek_version);

CREATE TABLE field_values (
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    field TEXT NOT NULL,
    value_id BLOB NOT NULL CHECK (length(value_id) = 16),
    sealed BLOB NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    last_seen_ms INTEGER NOT NULL,
    PRIMARY KEY (subject_id, field, value_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE erasures (
    subject_id TEXT NOT NULL PRIMARY KEY REFERENCES subjects (id),
    erased_at_ms INTEGER NOT NULL,
    requested_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    values_destroyed INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
"#,
    r#"
CREATE TABLE log_entries (
    entry_index INTEGER NOT NULL PRIMARY KEY CHECK (entry_index >= 0),
    entry BLOB NOT NULL CHECK (length(entry) <= 65535)
) STRICT;

CREATE TABLE log_tiles (
    tile_level INTEGER NOT NULL CHECK (tile_level BETWEEN 0 AND 63),
    tile_index INTEGER NOT NULL CHECK (tile_index >= 0),
    hashes BLOB NOT NULL CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),
    PRIMARY KEY (tile_level, tile_index)
) STRICT, WITHOUT ROWID;

CREATE TABLE log_state (
    id INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    tree_size INTEGER NOT NULL CHECK (tree_size >= 0),
    frontier BLOB NOT NULL
) STRICT;

CREATE TABLE log_checkpoints (
    tree_size INTEGER NOT NULL PRIMARY KEY CHECK (tree_size >= 0),
    root BLOB NOT NULL CHECK (length(root) = 32),
    note TEXT NOT NULL,
    saved_at_ms INTEGER NOT NULL
) STRICT;
"#,
    r#"
CREATE TABLE log_cosignatures (
    tree_size INTEGER NOT NULL REFERENCES log_checkpoints (tree_size),
    witness TEXT NOT NULL,
    line TEXT NOT NULL CHECK (length(line) <= 1024),
    saved_at_ms INTEGER NOT NULL,
    PRIMARY KEY (tree_size, witness)
) STRICT, WITHOUT ROWID;
"#,
    r#"
CREATE TABLE blind_index (
    field TEXT NOT NULL,
    digest BLOB NOT NULL CHECK (length(digest) = 32),
    subject_id TEXT NOT NULL REFERENCES subjects (id),
    PRIMARY KEY (field, digest, subject_id)
) STRICT, WITHOUT ROWID;

CREATE INDEX blind_index_subject ON blind_index (subject_id);
"#,
    subject_entries_tables!(),
    concat!(timeline_entries_table!(), "\nUPDATE subject_index_state SET next_index = 0 WHERE id = 1;\n"),
    // Version 7: the index moves to its own file (INDEX_MIGRATIONS), where its commits no
    // longer wait for, nor hold up, the log's; it is rebuilt there from the log.
    r#"
DROP TABLE timeline_entries;
DROP TABLE subject_entries;
DROP TABLE subject_index_state;
"#,
];

/// Schema versions of a region's index file (`<region>.index.db`).
pub const INDEX_SCHEMA_VERSION: i64 = 2;

/// Ordered migrations of the index file: version 1 holds the tables schema versions 5 and 6
/// of the region database held until version 7.
const INDEX_MIGRATIONS: [&str; INDEX_SCHEMA_VERSION as usize] = [
    concat!(subject_entries_tables!(), timeline_entries_table!()),
    // Version 2: the same rows under `kind BETWEEN 1 AND 4`. SQLite checks `IN` against a
    // list of more than two constants by building a temporary b-tree on every statement
    // run, and the follower inserts several timeline rows per log entry (an insert took
    // 4.7 µs with the list, 2.5 µs without, measured). The table is copied, not rebuilt.
    r#"
CREATE TABLE timeline_entries_v2 (
    kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 4),
    key TEXT NOT NULL,
    entry_index INTEGER NOT NULL CHECK (entry_index >= 0),
    at_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, key, entry_index)
) STRICT, WITHOUT ROWID;

INSERT INTO timeline_entries_v2 (kind, key, entry_index, at_ms)
    SELECT kind, key, entry_index, at_ms FROM timeline_entries;
DROP TABLE timeline_entries;
ALTER TABLE timeline_entries_v2 RENAME TO timeline_entries;
"#,
];

const SELECT_SUBJECT_STATE: &str = "SELECT erased_at_ms FROM subjects WHERE id = ?1";
const SELECT_SUBJECT: &str = "SELECT id, labels, staff_id, created_at_ms, updated_at_ms, erased_at_ms \
     FROM subjects WHERE id = ?1";
const INSERT_SUBJECT: &str = "INSERT INTO subjects (id, labels, staff_id, created_at_ms, updated_at_ms) \
     VALUES (?1, ?2, ?3, ?4, ?5)";
const UPDATE_SUBJECT: &str = "UPDATE subjects SET labels = ?2, staff_id = ?3, \
     updated_at_ms = max(updated_at_ms, ?4) WHERE id = ?1";
const SELECT_KEY: &str =
    "SELECT subject_id, shred_group, kek_version, wrapped FROM data_keys WHERE subject_id = ?1";
const INSERT_KEY: &str = "INSERT INTO data_keys (subject_id, shred_group, kek_version, wrapped) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT (subject_id) DO NOTHING";
const INSERT_VALUE: &str = "INSERT INTO field_values \
     (subject_id, field, value_id, sealed, first_seen_ms, last_seen_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
     ON CONFLICT (subject_id, field, value_id) DO NOTHING";
const MERGE_VALUE: &str = "UPDATE field_values SET first_seen_ms = min(first_seen_ms, ?4), \
     last_seen_ms = max(last_seen_ms, ?5) WHERE subject_id = ?1 AND field = ?2 AND value_id = ?3";
const SELECT_VALUES: &str = "SELECT field, value_id, sealed, first_seen_ms, last_seen_ms \
     FROM field_values WHERE subject_id = ?1";
const SELECT_VALUES_OF_FIELD: &str = "SELECT field, value_id, sealed, first_seen_ms, last_seen_ms \
     FROM field_values WHERE subject_id = ?1 AND field = ?2";
const SELECT_ERASURE: &str = "SELECT subject_id, erased_at_ms, requested_by, reason, values_destroyed \
     FROM erasures WHERE subject_id = ?1";
const SELECT_KEYS_BEFORE: &str = "SELECT subject_id, shred_group, kek_version, wrapped FROM data_keys \
     WHERE shred_group = ?1 AND kek_version < ?2 ORDER BY subject_id";
const REWRAP_KEY: &str = "UPDATE data_keys SET kek_version = ?3, wrapped = ?4 \
     WHERE subject_id = ?1 AND shred_group = ?2 AND kek_version = ?5";
const SELECT_STATS: &str = "SELECT (SELECT count(*) FROM subjects), \
     (SELECT count(*) FROM subjects WHERE erased_at_ms IS NOT NULL), (SELECT count(*) FROM field_values)";

/// The connection settings as a connection of the store reports them (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlitePragmas {
    pub journal_mode: String,
    /// 0 = OFF, 1 = NORMAL, 2 = FULL, 3 = EXTRA.
    pub synchronous: i64,
    pub secure_delete: bool,
    pub foreign_keys: bool,
    pub busy_timeout_ms: i64,
    /// SQLite's `cache_size`: pages when positive, KiB when negative.
    pub cache_size: i64,
    /// WAL pages after which a commit checkpoints.
    pub wal_autocheckpoint: i64,
}

/// One region's data in one SQLite file. Cheap to clone; clones share the connections.
#[derive(Clone)]
pub struct SqliteStore {
    region: RegionId,
    shared: Arc<Shared>,
    /// The per-subject access index and the timelines, in their own file
    /// ([`SqliteStore::index_path_for`]).
    index: Arc<Shared>,
}

pub(crate) struct Shared {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Idle connections for point reads (unmapped).
    point_readers: Mutex<Vec<Connection>>,
    /// Idle connections for scans (mapped, [`SQLITE_SCAN_READER_MMAP_BYTES`]).
    scan_readers: Mutex<Vec<Connection>>,
    /// One permit per read connection in use, of either kind ([`SQLITE_READERS_IDLE_MAX`]).
    reader_slots: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SqliteStore")
            .field("region", &self.region)
            .field("path", &self.shared.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) `<dir>/<region>.db` and `<dir>/<region>.index.db` and
    /// brings their schemas up to date. Blocks on file IO: call it at startup or from a
    /// blocking task.
    pub fn open(dir: &Path, region: RegionId) -> Result<SqliteStore, StoreError> {
        let shared = Arc::new(Shared::open(Self::path_for(dir, &region), &MIGRATIONS, Durability::Synced)?);
        let index = Arc::new(Shared::open(Self::index_path_for(dir, &region), &INDEX_MIGRATIONS, Durability::Derived)?);
        Ok(SqliteStore { region, shared, index })
    }

    /// Where [`SqliteStore::open`] keeps a region's database in `dir`.
    pub fn path_for(dir: &Path, region: &RegionId) -> PathBuf {
        dir.join(format!("{}.db", region.as_str()))
    }

    /// Where [`SqliteStore::open`] keeps a region's per-subject index and timelines in
    /// `dir`: derived from the log, so a lost or deleted file is rebuilt from it.
    pub fn index_path_for(dir: &Path, region: &RegionId) -> PathBuf {
        dir.join(format!("{}.index.db", region.as_str()))
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// The settings of the writer connection, for health checks and tests.
    pub async fn pragmas(&self) -> Result<SqlitePragmas, StoreError> {
        self.with_writer(|connection| read_pragmas(connection))
            .await
    }

    /// The settings of the index file's writer connection ([`SqliteStore::index_path_for`]).
    pub async fn index_pragmas(&self) -> Result<SqlitePragmas, StoreError> {
        Shared::with_writer(&self.index, |connection| read_pragmas(connection)).await
    }

    /// The schema version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        self.with_reader(recorded_version).await
    }

    async fn with_writer<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Shared::with_writer(&self.shared, work).await
    }

    async fn with_reader<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        Shared::with_reader(&self.shared, work).await
    }

    async fn with_point_reader<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        Shared::with_point_reader(&self.shared, work).await
    }
}

impl Shared {
    /// Opens (creating it and its directory if missing) the database at `path` with the documented connection
    /// settings and applies `migrations` (index `i` brings the schema from version `i` to
    /// `i + 1`). Shared with the directory database.
    pub(crate) fn open(path: PathBuf, migrations: &[&str], durability: Durability) -> Result<Shared, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|error| StoreError::Io(format!("create {}: {error}", dir.display())))?;
        }
        let mut writer = Connection::open_with_flags_and_vfs(&path, OpenFlags::default(), SQLITE_VFS).map_err(sqlite_error)?;
        configure_writer(&writer, durability)?;
        migrate(&mut writer, migrations)?;
        Ok(Shared {
            path,
            writer: Mutex::new(writer),
            point_readers: Mutex::new(Vec::new()),
            scan_readers: Mutex::new(Vec::new()),
            reader_slots: Arc::new(tokio::sync::Semaphore::new(SQLITE_READERS_IDLE_MAX)),
        })
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `work` on the one writer connection, on the blocking pool.
    pub(crate) async fn with_writer<T, F>(shared: &Arc<Shared>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let shared = Arc::clone(shared);
        run_blocking(move || {
            let mut connection = lock(&shared.writer);
            work(&mut connection)
        })
        .await
    }

    /// Runs `work` on a pooled read-only connection, on the blocking pool: for reads that
    /// scan (log ranges, timelines, alert lists, statistics).
    pub(crate) async fn with_reader<T, F>(shared: &Arc<Shared>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let shared = Arc::clone(shared);
        let slot = shared.reader_slot().await?;
        run_blocking(move || {
            let _slot = slot;
            shared.read(ReaderKind::Scan, work)
        })
        .await
    }

    /// Runs `work`, a point read (rows found by key, bounded by what one request names), on
    /// a pooled read-only connection on the calling task. Such a read takes microseconds from
    /// SQLite's and the system's page cache, less than the two thread hand-offs of the
    /// blocking pool, which on the access path cost a third of the throughput (measured:
    /// docs/PERFORMANCE.md, "Access path"). A read that misses the cache holds this worker
    /// for one disk read; scans stay on [`Shared::with_reader`], writes (and their fsync) on
    /// [`Shared::with_writer`].
    pub(crate) async fn with_point_reader<T, F>(shared: &Arc<Shared>, work: F) -> Result<T, StoreError>
    where
        F: FnOnce(&Connection) -> Result<T, StoreError>,
    {
        let _slot = shared.reader_slot().await?;
        shared.read(ReaderKind::Point, work)
    }

    async fn reader_slot(&self) -> Result<tokio::sync::OwnedSemaphorePermit, StoreError> {
        Arc::clone(&self.reader_slots)
            .acquire_owned()
            .await
            .map_err(|_| StoreError::Io("the read connection pool is closed".to_owned()))
    }

    /// `work` on an idle read connection of `kind` (or a new one), returned to its pool
    /// afterwards. The caller holds a reader slot.
    fn read<T>(&self, kind: ReaderKind, work: impl FnOnce(&Connection) -> Result<T, StoreError>) -> Result<T, StoreError> {
        let pool = match kind {
            ReaderKind::Point => &self.point_readers,
            ReaderKind::Scan => &self.scan_readers,
        };
        let idle = lock(pool).pop();
        let connection = match idle {
            Some(connection) => connection,
            None => open_reader(&self.path, kind)?,
        };
        let result = work(&connection);
        let mut readers = lock(pool);
        if readers.len() < SQLITE_READERS_IDLE_MAX {
            readers.push(connection);
        }
        result
    }
}

/// The settings of `connection` (see the module docs).
pub(crate) fn read_pragmas(connection: &Connection) -> Result<SqlitePragmas, StoreError> {
    let text =
        |name: &str| connection.pragma_query_value(None, name, |row| row.get::<_, String>(0));
    let number = |name: &str| connection.pragma_query_value(None, name, |row| row.get::<_, i64>(0));
    Ok(SqlitePragmas {
        journal_mode: text("journal_mode").map_err(sqlite_error)?,
        synchronous: number("synchronous").map_err(sqlite_error)?,
        secure_delete: number("secure_delete").map_err(sqlite_error)? == 1,
        foreign_keys: number("foreign_keys").map_err(sqlite_error)? == 1,
        busy_timeout_ms: number("busy_timeout").map_err(sqlite_error)?,
        cache_size: number("cache_size").map_err(sqlite_error)?,
        wal_autocheckpoint: number("wal_autocheckpoint").map_err(sqlite_error)?,
    })
}

#[async_trait]
impl RegionStore for SqliteStore {
    fn region(&self) -> &RegionId {
        &self.region
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }

    async fn ensure_data_keys(&self, keys: &[StoredKey]) -> Result<Vec<StoredKey>, StoreError> {
        plan::check_rows(keys.len())?;
        let keys = keys.to_vec();
        self.with_writer(move |connection| {
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            for key in plan::first_key_per_subject(&keys) {
                if subject_state(&transaction, &key.subject)? == Some(SubjectState::Erased) {
                    return Err(StoreError::Erased(key.subject.clone()));
                }
                let mut insert = transaction
                    .prepare_cached(INSERT_KEY)
                    .map_err(sqlite_error)?;
                insert
                    .execute(params![
                        key.subject.as_str(),
                        key.group,
                        key.version,
                        key.wrapped
                    ])
                    .map_err(sqlite_error)?;
            }
            let mut stored = Vec::with_capacity(keys.len());
            for key in &keys {
                let found = select_key(&transaction, &key.subject)?;
                stored.push(found.ok_or_else(|| {
                    StoreError::Corrupt(format!("key of {} vanished", key.subject))
                })?);
            }
            transaction.commit().map_err(sqlite_error)?;
            Ok(stored)
        })
        .await
    }

    async fn data_keys(&self, subjects: &[SubjectId]) -> Result<Vec<StoredKey>, StoreError> {
        plan::check_rows(subjects.len())?;
        let subjects = subjects.to_vec();
        self.with_point_reader(move |connection| {
            let mut keys = Vec::with_capacity(subjects.len());
            for subject in &subjects {
                keys.extend(select_key(connection, subject)?);
            }
            Ok(keys)
        })
        .await
    }

    async fn write(&self, batch: &WriteBatch) -> Result<WriteOutcome, StoreError> {
        // Checked before the batch is copied to the blocking pool.
        BatchPlan::new(batch)?;
        let batch = batch.clone();
        self.with_writer(move |connection| write_batch(connection, &batch))
            .await
    }

    async fn subject(&self, id: &SubjectId) -> Result<Option<SubjectRecord>, StoreError> {
        let id = id.clone();
        self.with_point_reader(move |connection| {
            let mut select = connection
                .prepare_cached(SELECT_SUBJECT)
                .map_err(sqlite_error)?;
            let row = select
                .query_row([id.as_str()], |row| {
                    Ok(SubjectRow {
                        id: row.get(0)?,
                        labels: row.get(1)?,
                        staff: row.get(2)?,
                        created_at_ms: row.get(3)?,
                        updated_at_ms: row.get(4)?,
                        erased_at_ms: row.get(5)?,
                    })
                })
                .optional()
                .map_err(sqlite_error)?;
            row.map(SubjectRow::into_record).transpose()
        })
        .await
    }

    async fn values(
        &self,
        subject: &SubjectId,
        fields: &[FieldKind],
    ) -> Result<Vec<SealedValue>, StoreError> {
        let subject = subject.clone();
        let fields: Vec<FieldKind> = fields
            .iter()
            .copied()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        self.with_point_reader(move |connection| {
            let mut values = Vec::new();
            if fields.is_empty() {
                let mut select = connection
                    .prepare_cached(SELECT_VALUES)
                    .map_err(sqlite_error)?;
                let rows = select
                    .query_map([subject.as_str()], value_columns)
                    .map_err(sqlite_error)?;
                for row in rows {
                    values.push(value_from_columns(&subject, row.map_err(sqlite_error)?)?);
                }
            } else {
                let mut select = connection
                    .prepare_cached(SELECT_VALUES_OF_FIELD)
                    .map_err(sqlite_error)?;
                for field in fields {
                    let rows = select
                        .query_map([subject.as_str(), field.as_str()], value_columns)
                        .map_err(sqlite_error)?;
                    for row in rows {
                        values.push(value_from_columns(&subject, row.map_err(sqlite_error)?)?);
                    }
                }
            }
            plan::sort_values(&mut values);
            Ok(values)
        })
        .await
    }

    async fn erase(
        &self,
        subject: &SubjectId,
        at_ms: i64,
        requested_by: &str,
        reason: &str,
    ) -> Result<ErasureRecord, StoreError> {
        let subject = subject.clone();
        let requested_by = requested_by.to_owned();
        let reason = reason.to_owned();
        self.with_writer(move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sqlite_error)?;
            match subject_state(&transaction, &subject)? {
                None => return Err(StoreError::UnknownSubject(subject)),
                Some(SubjectState::Erased) => {
                    return select_erasure(&transaction, &subject)?
                        .ok_or_else(|| StoreError::Corrupt(format!("subject {subject} is erased but has no erasure record")));
                }
                Some(SubjectState::Live) => {}
            }
            transaction
                .execute("DELETE FROM blind_index WHERE subject_id = ?1", [subject.as_str()])
                .map_err(sqlite_error)?;
            let destroyed = transaction
                .execute("DELETE FROM field_values WHERE subject_id = ?1", [subject.as_str()])
                .map_err(sqlite_error)?;
            transaction
                .execute("DELETE FROM data_keys WHERE subject_id = ?1", [subject.as_str()])
                .map_err(sqlite_error)?;
            transaction
                .execute(
                    "UPDATE subjects SET erased_at_ms = ?2, updated_at_ms = max(updated_at_ms, ?2) WHERE id = ?1",
                    params![subject.as_str(), at_ms],
                )
                .map_err(sqlite_error)?;
            let record = ErasureRecord {
                subject,
                erased_at_ms: at_ms,
                requested_by,
                reason,
                values_destroyed: destroyed as u64,
            };
            transaction
                .execute(
                    "INSERT INTO erasures (subject_id, erased_at_ms, requested_by, reason, values_destroyed) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![record.subject.as_str(), at_ms, record.requested_by, record.reason, destroyed as i64],
                )
                .map_err(sqlite_error)?;
            transaction.commit().map_err(sqlite_error)?;
            // Moves the zeroed pages into the main file and empties the WAL, where the old
            // page images would otherwise linger until the next automatic checkpoint. The
            // erasure is already durable, so a checkpoint that fails (or is kept from
            // completing by a long reader) only delays this clean-up to a later checkpoint.
            if let Err(error) = connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
                tracing::warn!(%error, "checkpoint after erasure failed");
            }
            Ok(record)
        })
        .await
    }

    async fn erasure(&self, subject: &SubjectId) -> Result<Option<ErasureRecord>, StoreError> {
        let subject = subject.clone();
        self.with_point_reader(move |connection| select_erasure(connection, &subject))
            .await
    }

    async fn keys_wrapped_before(
        &self,
        group: u16,
        version: u32,
    ) -> Result<Vec<StoredKey>, StoreError> {
        self.with_reader(move |connection| {
            let mut select = connection
                .prepare_cached(SELECT_KEYS_BEFORE)
                .map_err(sqlite_error)?;
            let rows = select
                .query_map(params![group, version], key_columns)
                .map_err(sqlite_error)?;
            rows.map(|row| key_from_columns(row.map_err(sqlite_error)?))
                .collect()
        })
        .await
    }

    async fn rewrap_keys(&self, rewraps: &[Rewrap]) -> Result<u64, StoreError> {
        plan::check_rows(rewraps.len())?;
        let rewraps = rewraps.to_vec();
        self.with_writer(move |connection| {
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            let mut changed = 0;
            {
                let mut update = transaction
                    .prepare_cached(REWRAP_KEY)
                    .map_err(sqlite_error)?;
                for rewrap in &rewraps {
                    let key = &rewrap.key;
                    changed += update
                        .execute(params![
                            key.subject.as_str(),
                            key.group,
                            key.version,
                            key.wrapped,
                            rewrap.previous_version
                        ])
                        .map_err(sqlite_error)? as u64;
                }
            }
            transaction.commit().map_err(sqlite_error)?;
            Ok(changed)
        })
        .await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.with_reader(|connection| {
            let (subjects, erased, values) = connection
                .query_row(SELECT_STATS, [], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, i64>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .map_err(sqlite_error)?;
            Ok(StoreStats {
                subjects: plan::count(subjects)?,
                subjects_erased: plan::count(erased)?,
                values: plan::count(values)?,
            })
        })
        .await
    }

    async fn find_blind_index(&self, field: FieldKind, digest: &[u8; 32], limit: usize) -> Result<Vec<SubjectId>, StoreError> {
        let (digest, limit) = (*digest, limit.min(crate::BLIND_INDEX_MATCHES_MAX) as i64);
        self.with_point_reader(move |connection| {
            let mut statement = connection
                .prepare_cached(
                    "SELECT b.subject_id FROM blind_index b JOIN subjects s ON s.id = b.subject_id \
                     WHERE b.field = ?1 AND b.digest = ?2 AND s.erased_at_ms IS NULL ORDER BY b.subject_id LIMIT ?3",
                )
                .map_err(sqlite_error)?;
            let rows = statement
                .query_map(params![field.as_str(), &digest[..], limit], |row| row.get::<_, String>(0))
                .map_err(sqlite_error)?;
            rows.map(|row| row.map_err(sqlite_error).and_then(|id| plan::subject_id(&id))).collect()
        })
        .await
    }
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn append_batch(&self, batch: &LogBatch) -> Result<(), StoreError> {
        log::check_batch(batch)?;
        let batch = batch.clone();
        self.with_writer(move |connection| {
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            let stored_size = select_log_size(&transaction)?;
            if stored_size != batch.first_index {
                return Err(StoreError::LogSizeMismatch {
                    first_index: batch.first_index,
                    stored_size,
                });
            }
            {
                let mut insert = transaction
                    .prepare_cached("INSERT INTO log_entries (entry_index, entry) VALUES (?1, ?2)")
                    .map_err(sqlite_error)?;
                for (offset, entry) in batch.entries.iter().enumerate() {
                    let index = log::to_i64(batch.first_index + offset as u64)?;
                    insert.execute(params![index, entry]).map_err(sqlite_error)?;
                }
                let mut tile = transaction
                    .prepare_cached(
                        "INSERT INTO log_tiles (tile_level, tile_index, hashes) VALUES (?1, ?2, ?3) \
                         ON CONFLICT (tile_level, tile_index) DO UPDATE SET hashes = excluded.hashes",
                    )
                    .map_err(sqlite_error)?;
                for (id, bytes) in &batch.tiles {
                    tile.execute(params![id.level(), log::to_i64(id.index())?, bytes])
                        .map_err(sqlite_error)?;
                }
            }
            transaction
                .execute(
                    "INSERT INTO log_state (id, tree_size, frontier) VALUES (1, ?1, ?2) \
                     ON CONFLICT (id) DO UPDATE SET tree_size = excluded.tree_size, frontier = excluded.frontier",
                    params![log::to_i64(batch.state.size.0)?, log::encode_frontier(&batch.state.frontier)],
                )
                .map_err(sqlite_error)?;
            // synchronous=FULL: the commit returns after the WAL is fsynced.
            transaction.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn log_state(&self) -> Result<LogState, StoreError> {
        self.with_reader(|connection| {
            let row: Option<(i64, Vec<u8>)> = connection
                .query_row(
                    "SELECT tree_size, frontier FROM log_state WHERE id = 1",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(sqlite_error)?;
            match row {
                None => Ok(LogState::default()),
                Some((size, frontier)) => log::decode_frontier(plan::count(size)?, &frontier),
            }
        })
        .await
    }

    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        let count = end.saturating_sub(start);
        if count > log::LOG_BATCH_ENTRIES_MAX as u64 {
            return Err(StoreError::BatchTooLarge {
                rows: usize::try_from(count).unwrap_or(usize::MAX),
                max: log::LOG_BATCH_ENTRIES_MAX,
            });
        }
        let (start, end) = (log::to_i64(start)?, log::to_i64(end)?);
        self.with_reader(move |connection| {
            let mut select = connection
                .prepare_cached(
                    "SELECT entry FROM log_entries WHERE entry_index >= ?1 AND entry_index < ?2 \
                     ORDER BY entry_index",
                )
                .map_err(sqlite_error)?;
            let rows = select
                .query_map([start, end], |row| row.get::<_, Vec<u8>>(0))
                .map_err(sqlite_error)?;
            rows.map(|row| row.map_err(sqlite_error)).collect()
        })
        .await
    }

    async fn log_tile(&self, tile: tlog::TileId) -> Result<Option<Vec<u8>>, StoreError> {
        let index = log::to_i64(tile.index())?;
        self.with_point_reader(move |connection| {
            let stored: Option<Vec<u8>> = connection
                .prepare_cached(
                    "SELECT hashes FROM log_tiles WHERE tile_level = ?1 AND tile_index = ?2",
                )
                .map_err(sqlite_error)?
                .query_row(params![tile.level(), index], |row| row.get(0))
                .optional()
                .map_err(sqlite_error)?;
            Ok(log::cut_tile(tile, stored))
        })
        .await
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.with_point_reader(|connection| {
            let row: Option<(i64, Vec<u8>, String)> = connection
                .query_row(
                    "SELECT tree_size, root, note FROM log_checkpoints ORDER BY tree_size DESC LIMIT 1",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )
                .optional()
                .map_err(sqlite_error)?;
            row.map(|(size, root, note)| {
                Ok(StoredCheckpoint {
                    size: tlog::TreeSize(plan::count(size)?),
                    root: log::decode_hash(&root)?,
                    note,
                })
            })
            .transpose()
        })
        .await
    }

    async fn save_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        let checkpoint = checkpoint.clone();
        let size = log::to_i64(checkpoint.size.0)?;
        self.with_writer(move |connection| {
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            let latest: Option<(i64, Vec<u8>)> = transaction
                .query_row(
                    "SELECT tree_size, root FROM log_checkpoints ORDER BY tree_size DESC LIMIT 1",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()
                .map_err(sqlite_error)?;
            let latest = latest
                .map(|(size, root)| plan::count(size).map(|size| (size, root)))
                .transpose()?;
            if log::check_checkpoint(latest, &checkpoint)? {
                transaction
                    .execute(
                        "INSERT INTO log_checkpoints (tree_size, root, note, saved_at_ms) VALUES (?1, ?2, ?3, ?4)",
                        params![size, checkpoint.root.as_bytes().as_slice(), checkpoint.note, now_ms()],
                    )
                    .map_err(sqlite_error)?;
            }
            transaction.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn checkpoint_at(&self, size: tlog::TreeSize) -> Result<Option<StoredCheckpoint>, StoreError> {
        let wanted = log::to_i64(size.0)?;
        self.with_reader(move |connection| {
            let row: Option<(Vec<u8>, String)> = connection
                .query_row("SELECT root, note FROM log_checkpoints WHERE tree_size = ?1", [wanted], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()
                .map_err(sqlite_error)?;
            row.map(|(root, note)| Ok(StoredCheckpoint { size, root: log::decode_hash(&root)?, note })).transpose()
        })
        .await
    }

    async fn save_cosignature(&self, cosignature: &StoredCosignature) -> Result<(), StoreError> {
        log::check_cosignature(cosignature)?;
        let cosignature = cosignature.clone();
        let size = log::to_i64(cosignature.size.0)?;
        self.with_writer(move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sqlite_error)?;
            let saved: Option<i64> = transaction
                .query_row("SELECT tree_size FROM log_checkpoints WHERE tree_size = ?1", [size], |row| row.get(0))
                .optional()
                .map_err(sqlite_error)?;
            if saved.is_none() {
                return Err(StoreError::NoCheckpoint { size: cosignature.size.0 });
            }
            let others: i64 = transaction
                .query_row("SELECT count(*) FROM log_cosignatures WHERE tree_size = ?1 AND witness <> ?2", params![size, cosignature.witness], |row| {
                    row.get(0)
                })
                .map_err(sqlite_error)?;
            if others >= COSIGNATURES_PER_CHECKPOINT_MAX as i64 {
                return Err(StoreError::TooManyCosignatures { size: cosignature.size.0, max: COSIGNATURES_PER_CHECKPOINT_MAX });
            }
            transaction
                .execute(
                    "INSERT INTO log_cosignatures (tree_size, witness, line, saved_at_ms) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (tree_size, witness) DO UPDATE SET line = excluded.line, saved_at_ms = excluded.saved_at_ms",
                    params![size, cosignature.witness, cosignature.line, now_ms()],
                )
                .map_err(sqlite_error)?;
            transaction.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn cosignatures(&self, size: tlog::TreeSize) -> Result<Vec<StoredCosignature>, StoreError> {
        let wanted = log::to_i64(size.0)?;
        self.with_reader(move |connection| {
            let mut statement = connection
                .prepare_cached("SELECT witness, line FROM log_cosignatures WHERE tree_size = ?1 ORDER BY witness")
                .map_err(sqlite_error)?;
            let rows = statement
                .query_map([wanted], |row| Ok(StoredCosignature { size, witness: row.get(0)?, line: row.get(1)? }))
                .map_err(sqlite_error)?;
            rows.collect::<Result<Vec<_>, _>>().map_err(sqlite_error)
        })
        .await
    }
}

fn select_log_size(connection: &Connection) -> Result<u64, StoreError> {
    let size: Option<i64> = connection
        .query_row("SELECT tree_size FROM log_state WHERE id = 1", [], |row| {
            row.get(0)
        })
        .optional()
        .map_err(sqlite_error)?;
    plan::count(size.unwrap_or(0))
}

fn write_batch(
    connection: &mut Connection,
    batch: &WriteBatch,
) -> Result<WriteOutcome, StoreError> {
    let plan = BatchPlan::new(batch)?;
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;

    let mut states = HashMap::new();
    for id in plan.touched_subjects() {
        if let Some(state) = subject_state(&transaction, id)? {
            states.insert(id.clone(), state);
        }
    }
    let mut keyed = HashSet::new();
    {
        let mut select = transaction
            .prepare_cached("SELECT 1 FROM data_keys WHERE subject_id = ?1")
            .map_err(sqlite_error)?;
        for owner in &plan.value_owners {
            if select.exists([owner.as_str()]).map_err(sqlite_error)? {
                keyed.insert((*owner).clone());
            }
        }
    }
    plan.validate(&states, &keyed)?;

    let mut subjects_created = 0;
    {
        let mut insert = transaction
            .prepare_cached(INSERT_SUBJECT)
            .map_err(sqlite_error)?;
        let mut update = transaction
            .prepare_cached(UPDATE_SUBJECT)
            .map_err(sqlite_error)?;
        for planned in &plan.subjects {
            let labels = plan::labels_to_json(planned.labels);
            let staff = planned.staff.map(|staff| staff.as_str());
            if states.contains_key(planned.id) {
                update
                    .execute(params![
                        planned.id.as_str(),
                        labels,
                        staff,
                        planned.last_at_ms
                    ])
                    .map_err(sqlite_error)?;
            } else {
                insert
                    .execute(params![
                        planned.id.as_str(),
                        labels,
                        staff,
                        planned.first_at_ms,
                        planned.last_at_ms
                    ])
                    .map_err(sqlite_error)?;
                subjects_created += 1;
            }
        }
    }

    let mut values_added = 0;
    {
        let mut insert = transaction
            .prepare_cached(INSERT_VALUE)
            .map_err(sqlite_error)?;
        let mut merge = transaction
            .prepare_cached(MERGE_VALUE)
            .map_err(sqlite_error)?;
        for planned in &plan.values {
            let value = planned.value;
            let (subject, field, value_id) = (
                value.subject.as_str(),
                value.field.as_str(),
                &value.value_id[..],
            );
            let inserted = insert
                .execute(params![
                    subject,
                    field,
                    value_id,
                    value.sealed,
                    planned.first_seen_ms,
                    planned.last_seen_ms
                ])
                .map_err(sqlite_error)?;
            if inserted == 1 {
                values_added += 1;
            } else {
                merge
                    .execute(params![
                        subject,
                        field,
                        value_id,
                        planned.first_seen_ms,
                        planned.last_seen_ms
                    ])
                    .map_err(sqlite_error)?;
            }
        }
    }
    {
        let mut insert = transaction
            .prepare_cached("INSERT INTO blind_index (field, digest, subject_id) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING")
            .map_err(sqlite_error)?;
        for entry in plan.blind_indexes {
            insert.execute(params![entry.field.as_str(), &entry.digest[..], entry.subject.as_str()]).map_err(sqlite_error)?;
        }
    }
    transaction.commit().map_err(sqlite_error)?;
    Ok(plan.outcome(subjects_created, values_added))
}

/// The page cache of a derived database's writer, in KiB (SQLite's default is 2 MiB). A step
/// of the subject index inserts into every timeline it touches, a few thousand b-tree pages
/// scattered over the file: with the default cache the writer spilled pages into the WAL in
/// the middle of its transaction and read them back for the next insert. Its checkpoints
/// stay at SQLite's default (every 1,000 WAL pages): 16,384 saved CPU, but each one then
/// flushed tens of MiB to the disk the log's commits sync on, and the access path's p99 rose
/// by 1.7–6.0 ms in 20 s runs (docs/PERFORMANCE.md).
pub const SQLITE_DERIVED_CACHE_KIB: i64 = 32 * 1024;

/// How much a database's commits must survive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// `synchronous=FULL`: an acknowledged commit survives a power loss.
    Synced,
    /// `synchronous=NORMAL`: for data derived from a synced database and rebuilt from it
    /// (the per-subject index follows the log). A power loss can take the last commits, never
    /// half of one: the follower's cursor goes back with its rows, and it indexes those
    /// entries again.
    Derived,
}

fn configure_writer(connection: &Connection, durability: Durability) -> Result<(), StoreError> {
    connection
        .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS))
        .map_err(sqlite_error)?;
    connection.set_prepared_statement_cache_capacity(STATEMENTS_CACHED_MAX);
    let journal_mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite_error)?;
    if !journal_mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Sqlite(format!(
            "journal mode is {journal_mode}, expected wal"
        )));
    }
    let synchronous = match durability {
        Durability::Synced => "FULL",
        Durability::Derived => "NORMAL",
    };
    for (name, value) in [
        ("synchronous", synchronous),
        ("secure_delete", "ON"),
        ("foreign_keys", "ON"),
    ] {
        connection
            .pragma_update(None, name, value)
            .map_err(sqlite_error)?;
    }
    if durability == Durability::Derived {
        connection
            .pragma_update(None, "cache_size", -SQLITE_DERIVED_CACHE_KIB)
            .map_err(sqlite_error)?;
    }
    Ok(())
}

/// What a read connection is kept for: it decides whether the connection maps the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReaderKind {
    /// Rows found by key, on the calling task ([`Shared::with_point_reader`]).
    Point,
    /// Ranges, on the blocking pool ([`Shared::with_reader`]).
    Scan,
}

fn open_reader(path: &Path, kind: ReaderKind) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        SQLITE_VFS,
    )
    .map_err(sqlite_error)?;
    connection
        .busy_timeout(Duration::from_millis(SQLITE_BUSY_TIMEOUT_MS))
        .map_err(sqlite_error)?;
    connection.set_prepared_statement_cache_capacity(STATEMENTS_CACHED_MAX);
    if kind == ReaderKind::Scan {
        connection
            .pragma_update(None, "mmap_size", SQLITE_SCAN_READER_MMAP_BYTES)
            .map_err(sqlite_error)?;
    }
    Ok(connection)
}

fn migrate(connection: &mut Connection, migrations: &[&str]) -> Result<(), StoreError> {
    let supported = migrations.len() as i64;
    connection
        .execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version INTEGER PRIMARY KEY, applied_at_ms INTEGER NOT NULL) STRICT",
        )
        .map_err(sqlite_error)?;
    for (index, sql) in migrations.iter().enumerate() {
        let version = index as i64 + 1;
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_error)?;
        // Read inside the write transaction: another connection opening the same file at the
        // same time (in this process: `SQLITE_VFS` keeps other processes out) waits here and
        // then sees the migration as done.
        let found = recorded_version(&transaction)?;
        if found > supported {
            return Err(StoreError::SchemaTooNew { found, supported });
        }
        if found >= version {
            continue;
        }
        transaction.execute_batch(sql).map_err(sqlite_error)?;
        transaction
            .execute(
                "INSERT INTO schema_migrations (version, applied_at_ms) VALUES (?1, ?2)",
                params![version, now_ms()],
            )
            .map_err(sqlite_error)?;
        transaction.commit().map_err(sqlite_error)?;
    }
    let found = recorded_version(connection)?;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    Ok(())
}

pub(crate) fn recorded_version(connection: &Connection) -> Result<i64, StoreError> {
    connection
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            [],
            |row| row.get(0),
        )
        .map_err(sqlite_error)
}

fn subject_state(
    connection: &Connection,
    id: &SubjectId,
) -> Result<Option<SubjectState>, StoreError> {
    let mut select = connection
        .prepare_cached(SELECT_SUBJECT_STATE)
        .map_err(sqlite_error)?;
    let erased_at: Option<Option<i64>> = select
        .query_row([id.as_str()], |row| row.get(0))
        .optional()
        .map_err(sqlite_error)?;
    Ok(erased_at.map(|erased_at| {
        if erased_at.is_some() {
            SubjectState::Erased
        } else {
            SubjectState::Live
        }
    }))
}

fn select_key(
    connection: &Connection,
    subject: &SubjectId,
) -> Result<Option<StoredKey>, StoreError> {
    let mut select = connection
        .prepare_cached(SELECT_KEY)
        .map_err(sqlite_error)?;
    let columns = select
        .query_row([subject.as_str()], key_columns)
        .optional()
        .map_err(sqlite_error)?;
    columns.map(key_from_columns).transpose()
}

fn select_erasure(
    connection: &Connection,
    subject: &SubjectId,
) -> Result<Option<ErasureRecord>, StoreError> {
    let mut select = connection
        .prepare_cached(SELECT_ERASURE)
        .map_err(sqlite_error)?;
    let columns = select
        .query_row([subject.as_str()], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get(1)?,
                row.get(2)?,
                row.get(3)?,
                row.get::<_, i64>(4)?,
            ))
        })
        .optional()
        .map_err(sqlite_error)?;
    columns
        .map(|(subject, erased_at_ms, requested_by, reason, destroyed)| {
            Ok(ErasureRecord {
                subject: plan::subject_id(&subject)?,
                erased_at_ms,
                requested_by,
                reason,
                values_destroyed: plan::count(destroyed)?,
            })
        })
        .transpose()
}

type KeyColumns = (String, i64, i64, Vec<u8>);

fn key_columns(row: &rusqlite::Row<'_>) -> rusqlite::Result<KeyColumns> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

fn key_from_columns(
    (subject, group, version, wrapped): KeyColumns,
) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        subject: plan::subject_id(&subject)?,
        group: plan::shred_group(group)?,
        version: plan::kek_version(version)?,
        wrapped,
    })
}

type ValueColumns = (String, Vec<u8>, Vec<u8>, i64, i64);

fn value_columns(row: &rusqlite::Row<'_>) -> rusqlite::Result<ValueColumns> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
    ))
}

fn value_from_columns(
    subject: &SubjectId,
    (field, value_id, sealed, first_seen_ms, last_seen_ms): ValueColumns,
) -> Result<SealedValue, StoreError> {
    Ok(SealedValue {
        subject: subject.clone(),
        field: plan::field_kind(&field)?,
        value_id: plan::value_id(&value_id)?,
        sealed,
        first_seen_ms,
        last_seen_ms,
    })
}

/// Runs blocking work on tokio's blocking pool; a panic in it resumes in the caller.
pub(crate) async fn run_blocking<T, F>(work: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, StoreError> + Send + 'static,
{
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result,
        Err(error) if error.is_panic() => std::panic::resume_unwind(error.into_panic()),
        Err(error) => Err(StoreError::Io(format!(
            "blocking task did not finish: {error}"
        ))),
    }
}

/// A poisoned lock only means another task panicked while holding the connection; SQLite
/// rolled back its open transaction when the `Transaction` was dropped, so the connection is
/// still sound.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn sqlite_error(error: rusqlite::Error) -> StoreError {
    StoreError::Sqlite(error.to_string())
}

#[async_trait]
impl SubjectIndexStore for SqliteStore {
    async fn subject_index_cursor(&self) -> Result<u64, StoreError> {
        Shared::with_reader(&self.index, |connection| select_subject_index_cursor(connection)).await
    }

    async fn index_subjects(&self, batch: &SubjectIndexBatch) -> Result<(), StoreError> {
        subject_index::check_index_batch(batch)?;
        let batch = batch.clone();
        Shared::with_writer(&self.index, move |connection| {
            let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate).map_err(sqlite_error)?;
            let stored = select_subject_index_cursor(&transaction)?;
            if stored != batch.from {
                return Err(StoreError::SubjectIndexCursorMismatch { from: batch.from, stored });
            }
            {
                let mut insert = transaction
                    .prepare_cached(
                        "INSERT INTO subject_entries (subject_id, entry_index) VALUES (?1, ?2) \
                         ON CONFLICT (subject_id, entry_index) DO NOTHING",
                    )
                    .map_err(sqlite_error)?;
                for (subject, index) in &batch.rows {
                    insert.execute(params![subject.as_str(), log::to_i64(*index)?]).map_err(sqlite_error)?;
                }
                let mut insert = transaction
                    .prepare_cached(
                        "INSERT INTO timeline_entries (kind, key, entry_index, at_ms) VALUES (?1, ?2, ?3, ?4) \
                         ON CONFLICT (kind, key, entry_index) DO NOTHING",
                    )
                    .map_err(sqlite_error)?;
                for row in &batch.timeline {
                    insert.execute(params![row.kind.code(), row.key, log::to_i64(row.index)?, row.at_ms]).map_err(sqlite_error)?;
                }
            }
            transaction
                .execute("UPDATE subject_index_state SET next_index = ?1 WHERE id = 1", params![log::to_i64(batch.to)?])
                .map_err(sqlite_error)?;
            transaction.commit().map_err(sqlite_error)
        })
        .await
    }

    async fn subject_entries(&self, subject: &SubjectId, from: u64, below: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        subject_index::check_entries_limit(limit)?;
        let (subject, from, below, limit) = (subject.to_string(), log::to_i64(from)?, log::to_i64(below)?, log::to_i64(limit as u64)?);
        Shared::with_reader(&self.index, move |connection| {
            let mut select = connection
                .prepare_cached(
                    "SELECT entry_index FROM subject_entries WHERE subject_id = ?1 AND entry_index >= ?4 AND entry_index < ?2 \
                     ORDER BY entry_index LIMIT ?3",
                )
                .map_err(sqlite_error)?;
            let rows = select.query_map(params![subject, below, limit, from], |row| row.get::<_, i64>(0)).map_err(sqlite_error)?;
            rows.map(|row| plan::count(row.map_err(sqlite_error)?)).collect()
        })
        .await
    }

    async fn timeline(&self, kind: TimelineKind, key: &str, below: u64, limit: usize) -> Result<Vec<TimelinePoint>, StoreError> {
        subject_index::check_entries_limit(limit)?;
        let (key, below, limit) = (key.to_owned(), log::to_i64(below)?, log::to_i64(limit as u64)?);
        Shared::with_reader(&self.index, move |connection| {
            let mut select = connection
                .prepare_cached(
                    "SELECT entry_index, at_ms FROM timeline_entries WHERE kind = ?1 AND key = ?2 AND entry_index < ?3 \
                     ORDER BY entry_index DESC LIMIT ?4",
                )
                .map_err(sqlite_error)?;
            let rows = select
                .query_map(params![kind.code(), key, below, limit], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
                .map_err(sqlite_error)?;
            rows.map(|row| {
                let (index, at_ms) = row.map_err(sqlite_error)?;
                Ok(TimelinePoint { index: plan::count(index)?, at_ms })
            })
            .collect()
        })
        .await
    }

    async fn timeline_activity(&self, kind: TimelineKind, key: &str, bucket_ms: i64) -> Result<Vec<(i64, u64)>, StoreError> {
        subject_index::check_bucket(bucket_ms)?;
        let key = key.to_owned();
        let buckets = Shared::with_reader(&self.index, move |connection| {
                // Integer division truncates toward zero; shift negative times so buckets start
                // at multiples of bucket_ms for them too.
                let mut select = connection
                    .prepare_cached(
                        "SELECT bucket, count(*) FROM (SELECT (CASE WHEN at_ms >= 0 THEN at_ms / ?3 ELSE (at_ms + 1) / ?3 - 1 END) * ?3 AS bucket \
                         FROM timeline_entries WHERE kind = ?1 AND key = ?2) GROUP BY bucket ORDER BY bucket LIMIT ?4",
                    )
                    .map_err(sqlite_error)?;
                let limit = subject_index::TIMELINE_BUCKETS_MAX as i64 + 1;
                let rows = select
                    .query_map(params![kind.code(), key, bucket_ms, limit], |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)))
                    .map_err(sqlite_error)?;
                rows.map(|row| {
                    let (bucket, count) = row.map_err(sqlite_error)?;
                    Ok((bucket, plan::count(count)?))
                })
                .collect::<Result<Vec<_>, StoreError>>()
            })
            .await?;
        subject_index::check_buckets(&buckets)?;
        Ok(buckets)
    }

    async fn timeline_next_key(&self, kind: TimelineKind, after: &str) -> Result<Option<String>, StoreError> {
        let after = after.to_owned();
        Shared::with_reader(&self.index, move |connection| {
            let mut select = connection
                .prepare_cached("SELECT key FROM timeline_entries WHERE kind = ?1 AND key > ?2 ORDER BY key LIMIT 1")
                .map_err(sqlite_error)?;
            select.query_row(params![kind.code(), after], |row| row.get::<_, String>(0)).optional().map_err(sqlite_error)
        })
        .await
    }
}

fn select_subject_index_cursor(connection: &Connection) -> Result<u64, StoreError> {
    let stored: i64 =
        connection.query_row("SELECT next_index FROM subject_index_state WHERE id = 1", [], |row| row.get(0)).map_err(sqlite_error)?;
    plan::count(stored)
}
