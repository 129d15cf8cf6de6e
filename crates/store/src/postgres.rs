//! The server backend: one PostgreSQL schema per region, `custos_<region>` with `-` replaced
//! by `_` (region names are lowercase `a-z0-9-`, so the name needs no escaping and two
//! regions never map to one schema).
//!
//! Schema (see the crate docs for the meaning of each column):
//!
//! ```sql
//! CREATE TABLE custos_<region>.schema_migrations (version BIGINT PRIMARY KEY, applied_at_ms BIGINT);
//! CREATE TABLE custos_<region>.subjects (id TEXT PRIMARY KEY, labels TEXT, staff_id TEXT NULL,
//!     created_at_ms BIGINT, updated_at_ms BIGINT, erased_at_ms BIGINT NULL);
//! CREATE TABLE custos_<region>.data_keys (subject_id TEXT PRIMARY KEY, shred_group INTEGER,
//!     kek_version BIGINT, wrapped BYTEA);
//! CREATE INDEX data_keys_rotation ON custos_<region>.data_keys (shred_group, kek_version);
//! CREATE TABLE custos_<region>.field_values (subject_id TEXT REFERENCES subjects, field TEXT,
//!     value_id BYTEA CHECK (length = 16), sealed BYTEA, first_seen_ms BIGINT,
//!     last_seen_ms BIGINT, PRIMARY KEY (subject_id, field, value_id));
//! CREATE TABLE custos_<region>.erasures (subject_id TEXT PRIMARY KEY REFERENCES subjects,
//!     erased_at_ms BIGINT, requested_by TEXT, reason TEXT, values_destroyed BIGINT);
//! -- version 2
//! CREATE TABLE custos_<region>.log_entries (entry_index BIGINT PRIMARY KEY, entry BYTEA);
//! CREATE TABLE custos_<region>.log_tiles (tile_level SMALLINT, tile_index BIGINT, hashes BYTEA,
//!     PRIMARY KEY (tile_level, tile_index));
//! CREATE TABLE custos_<region>.log_state (id SMALLINT PRIMARY KEY CHECK (id = 1),
//!     tree_size BIGINT, frontier BYTEA);
//! CREATE TABLE custos_<region>.log_checkpoints (tree_size BIGINT PRIMARY KEY, root BYTEA,
//!     note TEXT, saved_at_ms BIGINT);
//! ```
//!
//! A log batch locks the state row (`FOR UPDATE`, after inserting it if missing) before it
//! compares sizes, so two sequencers racing on one schema serialize there and the second
//! one fails the size check; a checkpoint save takes a transaction-level advisory lock for
//! the same reason.
//!
//! Text keys use `COLLATE "C"` so that ordering is bytewise, as in SQLite, whatever the
//! database's default collation; `kek_version` is `BIGINT` because a `u32` does not fit
//! PostgreSQL's signed `INTEGER`.
//!
//! Every statement names its schema (`"custos_eu".subjects`) instead of relying on
//! `SET search_path`: pooled connections outlive any one use, a session setting would leak
//! into whatever borrows the connection next (and is lost behind a transaction-pooling proxy
//! such as PgBouncer), and a qualified statement cannot silently read another region's
//! table. The statements are built once at connect.
//!
//! Atomic check-then-write uses row locks at `READ COMMITTED` rather than `SERIALIZABLE`
//! (which would need a retry loop around every transaction): a write, an erasure and
//! `ensure_data_keys` each lock the subject rows they depend on first (`FOR UPDATE` or `FOR
//! SHARE`, in id order so that two batches cannot deadlock), so an erasure cannot slip between
//! a write's "not erased" check and its insert. `ensure_data_keys` relies on
//! `INSERT … ON CONFLICT DO NOTHING` and then reads back what is stored, so the key that
//! committed first wins for everyone. Batches are written with `UNNEST` over arrays: one
//! statement per table per batch, in one transaction.
//!
//! Deleted rows stay in the table file until vacuum reclaims them; as with SQLite, the
//! guarantee of erasure is the destroyed data key.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime, Transaction};
use model::{FieldKind, RegionId, SubjectId};
use tokio_postgres::NoTls;

use crate::log::{self, COSIGNATURES_PER_CHECKPOINT_MAX, LogBatch, LogState, LogStore, StoredCheckpoint, StoredCosignature};
use crate::plan::{self, BatchPlan, PlannedSubject, PlannedValue, SubjectRow, SubjectState};
use crate::subject_index::{self, SubjectIndexBatch, SubjectIndexStore, TimelineKind, TimelinePoint};
use crate::{
    ErasureRecord, RegionStore, Rewrap, SCHEMA_VERSION, SealedValue, StoreError, StoreStats,
    StoredKey, SubjectRecord, WriteBatch, WriteOutcome,
};

/// Most connections one store holds open.
pub const POSTGRES_CONNECTIONS_MAX: usize = 16;
/// How long opening one connection may take.
pub const POSTGRES_CONNECT_TIMEOUT_MS: u64 = 5_000;
/// How long a caller waits for a free pooled connection.
pub const POSTGRES_POOL_WAIT_TIMEOUT_MS: u64 = 30_000;

/// Prefix of every region schema.
pub const POSTGRES_SCHEMA_PREFIX: &str = "custos_";

/// Ordered migrations: index `i` brings the schema from version `i` to `i + 1`. `{schema}`
/// is replaced by the quoted schema name.
const MIGRATIONS: [&str; SCHEMA_VERSION as usize] = [
    r#"
CREATE TABLE {schema}.subjects (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    labels TEXT NOT NULL,
    staff_id TEXT,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL,
    erased_at_ms BIGINT
);

CREATE TABLE {schema}.data_keys (
    subject_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    shred_group INTEGER NOT NULL CHECK (shred_group BETWEEN 0 AND 65535),
    kek_version BIGINT NOT NULL CHECK (kek_version BETWEEN 0 AND 4294967295),
    wrapped BYTEA NOT NULL
);

CREATE INDEX data_keys_rotation ON {schema}.data_keys (shred_group, kek_version);

CREATE TABLE {schema}.field_values (
    subject_id TEXT COLLATE "C" NOT NULL REFERENCES {schema}.subjects (id),
    field TEXT COLLATE "C" NOT NULL,
    value_id BYTEA NOT NULL CHECK (length(value_id) = 16),
    sealed BYTEA NOT NULL,
    first_seen_ms BIGINT NOT NULL,
    last_seen_ms BIGINT NOT NULL,
    PRIMARY KEY (subject_id, field, value_id)
);

CREATE TABLE {schema}.erasures (
    subject_id TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES {schema}.subjects (id),
    erased_at_ms BIGINT NOT NULL,
    requested_by TEXT NOT NULL,
    reason TEXT NOT NULL,
    values_destroyed BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE {schema}.log_entries (
    entry_index BIGINT NOT NULL PRIMARY KEY CHECK (entry_index >= 0),
    entry BYTEA NOT NULL CHECK (length(entry) <= 65535)
);

CREATE TABLE {schema}.log_tiles (
    tile_level SMALLINT NOT NULL CHECK (tile_level BETWEEN 0 AND 63),
    tile_index BIGINT NOT NULL CHECK (tile_index >= 0),
    hashes BYTEA NOT NULL CHECK (length(hashes) BETWEEN 32 AND 8192 AND length(hashes) % 32 = 0),
    PRIMARY KEY (tile_level, tile_index)
);

CREATE TABLE {schema}.log_state (
    id SMALLINT NOT NULL PRIMARY KEY CHECK (id = 1),
    tree_size BIGINT NOT NULL CHECK (tree_size >= 0),
    frontier BYTEA NOT NULL
);

CREATE TABLE {schema}.log_checkpoints (
    tree_size BIGINT NOT NULL PRIMARY KEY CHECK (tree_size >= 0),
    root BYTEA NOT NULL CHECK (length(root) = 32),
    note TEXT NOT NULL,
    saved_at_ms BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE {schema}.log_cosignatures (
    tree_size BIGINT NOT NULL REFERENCES {schema}.log_checkpoints (tree_size),
    witness TEXT COLLATE "C" NOT NULL,
    line TEXT NOT NULL CHECK (length(line) <= 1024),
    saved_at_ms BIGINT NOT NULL,
    PRIMARY KEY (tree_size, witness)
);
"#,
    r#"
CREATE TABLE {schema}.blind_index (
    field TEXT COLLATE "C" NOT NULL,
    digest BYTEA NOT NULL CHECK (length(digest) = 32),
    subject_id TEXT COLLATE "C" NOT NULL REFERENCES {schema}.subjects (id),
    PRIMARY KEY (field, digest, subject_id)
);

CREATE INDEX blind_index_subject ON {schema}.blind_index (subject_id);
"#,
    r#"
CREATE TABLE {schema}.subject_entries (
    subject_id TEXT COLLATE "C" NOT NULL,
    entry_index BIGINT NOT NULL CHECK (entry_index >= 0),
    PRIMARY KEY (subject_id, entry_index)
);

CREATE TABLE {schema}.subject_index_state (
    id SMALLINT NOT NULL PRIMARY KEY CHECK (id = 1),
    next_index BIGINT NOT NULL CHECK (next_index >= 0)
);

INSERT INTO {schema}.subject_index_state (id, next_index) VALUES (1, 0);
"#,
    r#"
CREATE TABLE {schema}.timeline_entries (
    kind SMALLINT NOT NULL CHECK (kind IN (1, 2, 3, 4)),
    key TEXT COLLATE "C" NOT NULL,
    entry_index BIGINT NOT NULL CHECK (entry_index >= 0),
    at_ms BIGINT NOT NULL,
    PRIMARY KEY (kind, key, entry_index)
);

UPDATE {schema}.subject_index_state SET next_index = 0 WHERE id = 1;
"#,
    // Version 7 moved SQLite's per-subject index into a file of its own, so that its commits
    // stop queueing behind the log's on SQLite's one writer. PostgreSQL has no such writer:
    // its index stays in the region's schema, unchanged.
    r#"
SELECT 1;
"#,
];

/// One region's data in one PostgreSQL schema. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    region: RegionId,
    schema: String,
    pool: Pool,
    sql: std::sync::Arc<Statements>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresStore")
            .field("region", &self.region)
            .field("schema", &self.schema)
            .finish()
    }
}

impl PostgresStore {
    /// Connects to `url` (`postgres://user@host:port/db`, no TLS), creates the region's
    /// schema if missing and brings it up to date.
    pub async fn connect(url: &str, region: RegionId) -> Result<PostgresStore, StoreError> {
        let pool = connect_pool(url)?;
        let schema = Self::schema_for(&region);
        let store = PostgresStore {
            sql: std::sync::Arc::new(Statements::new(&schema)),
            region,
            schema,
            pool,
        };
        migrate(&store.pool, &store.schema, &MIGRATIONS).await?;
        Ok(store)
    }

    /// The schema that holds `region`'s tables.
    pub fn schema_for(region: &RegionId) -> String {
        format!(
            "{POSTGRES_SCHEMA_PREFIX}{}",
            region.as_str().replace('-', "_")
        )
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The schema version recorded in the region's schema.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        schema_version(&client, &self.schema).await
    }

    /// Drops the region's schema with everything in it. For tests and for decommissioning a
    /// region; the store is unusable afterwards.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        drop_schema(&client, &self.schema).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| StoreError::Postgres(error.to_string()))
    }
}

/// A pool of connections to `url` (`postgres://user@host:port/db`, no TLS) with the limits
/// above. Connects lazily; shared with the directory.
pub(crate) fn connect_pool(url: &str) -> Result<Pool, StoreError> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|error| StoreError::Postgres(format!("invalid url: {error}")))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_millis(POSTGRES_CONNECT_TIMEOUT_MS));
    }
    if config.get_application_name().is_none() {
        config.application_name("custos");
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(POSTGRES_CONNECTIONS_MAX)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_millis(POSTGRES_CONNECT_TIMEOUT_MS)))
        .wait_timeout(Some(Duration::from_millis(POSTGRES_POOL_WAIT_TIMEOUT_MS)))
        .build()
        .map_err(|error| StoreError::Postgres(error.to_string()))?;
    Ok(pool)
}

/// Creates `schema` if missing and applies `migrations` (index `i` brings the schema from
/// version `i` to `i + 1`), one transaction each; refuses a schema newer than that.
pub(crate) async fn migrate(
    pool: &Pool,
    schema: &str,
    migrations: &[&str],
) -> Result<(), StoreError> {
    let mut client = pool
        .get()
        .await
        .map_err(|error| StoreError::Postgres(error.to_string()))?;
    let supported = migrations.len() as i64;
    for (index, sql) in migrations.iter().enumerate() {
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = migrate_to(&transaction, schema, index as i64 + 1, supported, sql).await;
        finish(transaction, result).await?;
    }
    let found = schema_version(&client, schema).await?;
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    Ok(())
}

/// Drops `schema` with everything in it.
pub(crate) async fn drop_schema(
    client: &tokio_postgres::Client,
    schema: &str,
) -> Result<(), StoreError> {
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", quoted(schema)))
        .await
        .map_err(postgres_error)
}

/// The version recorded in `schema`'s `schema_migrations`.
pub(crate) async fn schema_version<C: deadpool_postgres::GenericClient>(
    client: &C,
    schema: &str,
) -> Result<i64, StoreError> {
    let row = client
        .query_one(&select_version(schema), &[])
        .await
        .map_err(postgres_error)?;
    Ok(row.get(0))
}

fn select_version(schema: &str) -> String {
    format!(
        "SELECT coalesce(max(version), 0)::BIGINT FROM {}.schema_migrations",
        quoted(schema)
    )
}

/// Applies migration `version` unless it already is; refuses a newer schema.
async fn migrate_to(
    transaction: &Transaction<'_>,
    schema_name: &str,
    version: i64,
    supported: i64,
    sql: &str,
) -> Result<(), StoreError> {
    let schema = quoted(schema_name);
    // Two nodes starting at once must not both apply a migration: the lock is held to the
    // end of the transaction, and the version is read after taking it.
    transaction
        .execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&format!("custos migrate {schema_name}")],
        )
        .await
        .map_err(postgres_error)?;
    transaction
        .batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {schema}; \
             CREATE TABLE IF NOT EXISTS {schema}.schema_migrations \
             (version BIGINT PRIMARY KEY, applied_at_ms BIGINT NOT NULL)"
        ))
        .await
        .map_err(postgres_error)?;
    let found: i64 = transaction
        .query_one(&select_version(schema_name), &[])
        .await
        .map_err(postgres_error)?
        .get(0);
    if found > supported {
        return Err(StoreError::SchemaTooNew { found, supported });
    }
    if found >= version {
        return Ok(());
    }
    transaction
        .batch_execute(&sql.replace("{schema}", &schema))
        .await
        .map_err(postgres_error)?;
    transaction
        .execute(
            &format!(
                "INSERT INTO {schema}.schema_migrations (version, applied_at_ms) VALUES ($1, $2)"
            ),
            &[&version, &now_ms()],
        )
        .await
        .map_err(postgres_error)?;
    Ok(())
}

/// Every statement of the store, qualified with the region's schema.
struct Statements {
    lock_subjects: String,
    share_subjects: String,
    select_subject: String,
    insert_subjects: String,
    update_subjects: String,
    select_keys: String,
    select_keyed: String,
    insert_keys: String,
    merge_values: String,
    insert_values: String,
    select_values: String,
    select_erasure: String,
    delete_values: String,
    delete_key: String,
    mark_erased: String,
    insert_erasure: String,
    select_keys_before: String,
    rewrap_key: String,
    select_stats: String,
    ensure_log_state: String,
    lock_log_state: String,
    select_log_state: String,
    update_log_state: String,
    insert_log_entries: String,
    upsert_log_tiles: String,
    select_log_entries: String,
    select_log_tile: String,
    select_latest_checkpoint: String,
    insert_checkpoint: String,
}

impl Statements {
    fn new(schema: &str) -> Self {
        let s = quoted(schema);
        Statements {
            lock_subjects: format!(
                "SELECT id, erased_at_ms IS NOT NULL FROM {s}.subjects WHERE id = ANY($1::TEXT[]) ORDER BY id FOR UPDATE"
            ),
            share_subjects: format!(
                "SELECT id, erased_at_ms IS NOT NULL FROM {s}.subjects WHERE id = ANY($1::TEXT[]) ORDER BY id FOR SHARE"
            ),
            select_subject: format!(
                "SELECT id, labels, staff_id, created_at_ms, updated_at_ms, erased_at_ms FROM {s}.subjects WHERE id = $1"
            ),
            insert_subjects: format!(
                "INSERT INTO {s}.subjects (id, labels, staff_id, created_at_ms, updated_at_ms) \
                 SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[]) \
                 ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            update_subjects: format!(
                "UPDATE {s}.subjects AS t SET labels = u.labels, staff_id = u.staff_id, \
                 updated_at_ms = GREATEST(t.updated_at_ms, u.at_ms) \
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::BIGINT[]) AS u (id, labels, staff_id, at_ms) \
                 WHERE t.id = u.id"
            ),
            select_keys: format!(
                "SELECT subject_id, shred_group, kek_version, wrapped FROM {s}.data_keys WHERE subject_id = ANY($1::TEXT[])"
            ),
            select_keyed: format!(
                "SELECT subject_id FROM {s}.data_keys WHERE subject_id = ANY($1::TEXT[])"
            ),
            insert_keys: format!(
                "INSERT INTO {s}.data_keys (subject_id, shred_group, kek_version, wrapped) \
                 SELECT * FROM UNNEST($1::TEXT[], $2::INTEGER[], $3::BIGINT[], $4::BYTEA[]) \
                 ON CONFLICT (subject_id) DO NOTHING"
            ),
            merge_values: format!(
                "UPDATE {s}.field_values AS t SET first_seen_ms = LEAST(t.first_seen_ms, u.first_seen_ms), \
                 last_seen_ms = GREATEST(t.last_seen_ms, u.last_seen_ms) \
                 FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BYTEA[], $4::BIGINT[], $5::BIGINT[]) \
                 AS u (subject_id, field, value_id, first_seen_ms, last_seen_ms) \
                 WHERE t.subject_id = u.subject_id AND t.field = u.field AND t.value_id = u.value_id"
            ),
            insert_values: format!(
                "INSERT INTO {s}.field_values (subject_id, field, value_id, sealed, first_seen_ms, last_seen_ms) \
                 SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::BYTEA[], $4::BYTEA[], $5::BIGINT[], $6::BIGINT[]) \
                 ON CONFLICT (subject_id, field, value_id) DO NOTHING"
            ),
            select_values: format!(
                "SELECT field, value_id, sealed, first_seen_ms, last_seen_ms FROM {s}.field_values \
                 WHERE subject_id = $1 AND (cardinality($2::TEXT[]) = 0 OR field = ANY($2::TEXT[]))"
            ),
            select_erasure: format!(
                "SELECT subject_id, erased_at_ms, requested_by, reason, values_destroyed FROM {s}.erasures \
                 WHERE subject_id = $1"
            ),
            delete_values: format!("DELETE FROM {s}.field_values WHERE subject_id = $1"),
            delete_key: format!("DELETE FROM {s}.data_keys WHERE subject_id = $1"),
            mark_erased: format!(
                "UPDATE {s}.subjects SET erased_at_ms = $2, updated_at_ms = GREATEST(updated_at_ms, $2) WHERE id = $1"
            ),
            insert_erasure: format!(
                "INSERT INTO {s}.erasures (subject_id, erased_at_ms, requested_by, reason, values_destroyed) \
                 VALUES ($1, $2, $3, $4, $5)"
            ),
            select_keys_before: format!(
                "SELECT subject_id, shred_group, kek_version, wrapped FROM {s}.data_keys \
                 WHERE shred_group = $1 AND kek_version < $2 ORDER BY subject_id"
            ),
            rewrap_key: format!(
                "UPDATE {s}.data_keys SET kek_version = $3, wrapped = $4 \
                 WHERE subject_id = $1 AND shred_group = $2 AND kek_version = $5"
            ),
            select_stats: format!(
                "SELECT (SELECT count(*) FROM {s}.subjects), \
                 (SELECT count(*) FROM {s}.subjects WHERE erased_at_ms IS NOT NULL), \
                 (SELECT count(*) FROM {s}.field_values)"
            ),
            ensure_log_state: format!(
                "INSERT INTO {s}.log_state (id, tree_size, frontier) VALUES (1, 0, ''::BYTEA) \
                 ON CONFLICT (id) DO NOTHING"
            ),
            lock_log_state: format!("SELECT tree_size FROM {s}.log_state WHERE id = 1 FOR UPDATE"),
            select_log_state: format!("SELECT tree_size, frontier FROM {s}.log_state WHERE id = 1"),
            update_log_state: format!(
                "UPDATE {s}.log_state SET tree_size = $1, frontier = $2 WHERE id = 1"
            ),
            insert_log_entries: format!(
                "INSERT INTO {s}.log_entries (entry_index, entry) \
                 SELECT * FROM UNNEST($1::BIGINT[], $2::BYTEA[])"
            ),
            upsert_log_tiles: format!(
                "INSERT INTO {s}.log_tiles (tile_level, tile_index, hashes) \
                 SELECT * FROM UNNEST($1::SMALLINT[], $2::BIGINT[], $3::BYTEA[]) \
                 ON CONFLICT (tile_level, tile_index) DO UPDATE SET hashes = excluded.hashes"
            ),
            select_log_entries: format!(
                "SELECT entry FROM {s}.log_entries WHERE entry_index >= $1 AND entry_index < $2 \
                 ORDER BY entry_index"
            ),
            select_log_tile: format!(
                "SELECT hashes FROM {s}.log_tiles WHERE tile_level = $1 AND tile_index = $2"
            ),
            select_latest_checkpoint: format!(
                "SELECT tree_size, root, note FROM {s}.log_checkpoints ORDER BY tree_size DESC LIMIT 1"
            ),
            insert_checkpoint: format!(
                "INSERT INTO {s}.log_checkpoints (tree_size, root, note, saved_at_ms) VALUES ($1, $2, $3, $4)"
            ),
        }
    }
}

#[async_trait]
impl RegionStore for PostgresStore {
    fn region(&self) -> &RegionId {
        &self.region
    }

    fn backend(&self) -> &'static str {
        "postgres"
    }

    async fn ensure_data_keys(&self, keys: &[StoredKey]) -> Result<Vec<StoredKey>, StoreError> {
        plan::check_rows(keys.len())?;
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let firsts = plan::first_key_per_subject(keys);

        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = self.ensure_data_keys_in(&transaction, firsts).await;
        let stored = finish(transaction, result).await?;
        keys.iter()
            .map(|key| {
                stored
                    .get(&key.subject)
                    .cloned()
                    .ok_or_else(|| StoreError::Corrupt(format!("key of {} vanished", key.subject)))
            })
            .collect()
    }

    async fn data_keys(&self, subjects: &[SubjectId]) -> Result<Vec<StoredKey>, StoreError> {
        plan::check_rows(subjects.len())?;
        let ids: Vec<&str> = subjects.iter().map(SubjectId::as_str).collect();
        let client = self.client().await?;
        let stored = select_keys(&client, &self.sql.select_keys, &ids).await?;
        Ok(subjects
            .iter()
            .filter_map(|subject| stored.get(subject).cloned())
            .collect())
    }

    async fn write(&self, batch: &WriteBatch) -> Result<WriteOutcome, StoreError> {
        let plan = BatchPlan::new(batch)?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = self.write_in(&transaction, &plan).await;
        finish(transaction, result).await
    }

    async fn subject(&self, id: &SubjectId) -> Result<Option<SubjectRecord>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.select_subject)
            .await
            .map_err(postgres_error)?;
        let row = client
            .query_opt(&statement, &[&id.as_str()])
            .await
            .map_err(postgres_error)?;
        row.map(|row| {
            SubjectRow {
                id: row.get(0),
                labels: row.get(1),
                staff: row.get(2),
                created_at_ms: row.get(3),
                updated_at_ms: row.get(4),
                erased_at_ms: row.get(5),
            }
            .into_record()
        })
        .transpose()
    }

    async fn values(
        &self,
        subject: &SubjectId,
        fields: &[FieldKind],
    ) -> Result<Vec<SealedValue>, StoreError> {
        let fields: Vec<&str> = fields
            .iter()
            .map(|field| field.as_str())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.select_values)
            .await
            .map_err(postgres_error)?;
        let rows = client
            .query(&statement, &[&subject.as_str(), &fields])
            .await
            .map_err(postgres_error)?;
        let mut values = rows
            .iter()
            .map(|row| {
                Ok(SealedValue {
                    subject: subject.clone(),
                    field: plan::field_kind(row.get(0))?,
                    value_id: plan::value_id(row.get(1))?,
                    sealed: row.get(2),
                    first_seen_ms: row.get(3),
                    last_seen_ms: row.get(4),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        plan::sort_values(&mut values);
        Ok(values)
    }

    async fn erase(
        &self,
        subject: &SubjectId,
        at_ms: i64,
        requested_by: &str,
        reason: &str,
    ) -> Result<ErasureRecord, StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = self
            .erase_in(&transaction, subject, at_ms, requested_by, reason)
            .await;
        finish(transaction, result).await
    }

    async fn erasure(&self, subject: &SubjectId) -> Result<Option<ErasureRecord>, StoreError> {
        let client = self.client().await?;
        select_erasure(&client, &self.sql.select_erasure, subject).await
    }

    async fn keys_wrapped_before(
        &self,
        group: u16,
        version: u32,
    ) -> Result<Vec<StoredKey>, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(&self.sql.select_keys_before)
            .await
            .map_err(postgres_error)?;
        let rows = client
            .query(&statement, &[&i32::from(group), &i64::from(version)])
            .await
            .map_err(postgres_error)?;
        rows.iter().map(key_from_row).collect()
    }

    async fn rewrap_keys(&self, rewraps: &[Rewrap]) -> Result<u64, StoreError> {
        plan::check_rows(rewraps.len())?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = self.rewrap_keys_in(&transaction, rewraps).await;
        finish(transaction, result).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_one(&self.sql.select_stats, &[])
            .await
            .map_err(postgres_error)?;
        Ok(StoreStats {
            subjects: plan::count(row.get(0))?,
            subjects_erased: plan::count(row.get(1))?,
            values: plan::count(row.get(2))?,
        })
    }

    async fn find_blind_index(&self, field: FieldKind, digest: &[u8; 32], limit: usize) -> Result<Vec<SubjectId>, StoreError> {
        let limit = limit.min(crate::BLIND_INDEX_MATCHES_MAX) as i64;
        let client = self.client().await?;
        let schema = quoted(&self.schema);
        let rows = client
            .query(
                &format!(
                    "SELECT b.subject_id FROM {schema}.blind_index b JOIN {schema}.subjects s ON s.id = b.subject_id \
                     WHERE b.field = $1 AND b.digest = $2 AND s.erased_at_ms IS NULL ORDER BY b.subject_id LIMIT $3"
                ),
                &[&field.as_str(), &&digest[..], &limit],
            )
            .await
            .map_err(postgres_error)?;
        rows.iter().map(|row| plan::subject_id(row.get(0))).collect()
    }
}

/// The bodies of the transactional methods; [`finish`] commits or rolls back around them.
impl PostgresStore {
    async fn ensure_data_keys_in(
        &self,
        transaction: &Transaction<'_>,
        mut firsts: Vec<&StoredKey>,
    ) -> Result<HashMap<SubjectId, StoredKey>, StoreError> {
        let subjects: Vec<&str> = firsts.iter().map(|key| key.subject.as_str()).collect();
        let statement = transaction
            .prepare_cached(&self.sql.share_subjects)
            .await
            .map_err(postgres_error)?;
        let erased: HashSet<String> = transaction
            .query(&statement, &[&subjects])
            .await
            .map_err(postgres_error)?
            .into_iter()
            .filter(|row| row.get::<_, bool>(1))
            .map(|row| row.get(0))
            .collect();
        if let Some(key) = firsts
            .iter()
            .find(|key| erased.contains(key.subject.as_str()))
        {
            return Err(StoreError::Erased(key.subject.clone()));
        }

        // Inserted in id order so that two calls lock index entries in the same order.
        firsts.sort_by(|left, right| left.subject.cmp(&right.subject));
        let ids: Vec<&str> = firsts.iter().map(|key| key.subject.as_str()).collect();
        let groups: Vec<i32> = firsts.iter().map(|key| i32::from(key.group)).collect();
        let versions: Vec<i64> = firsts.iter().map(|key| i64::from(key.version)).collect();
        let wrapped: Vec<&[u8]> = firsts.iter().map(|key| key.wrapped.as_slice()).collect();
        let statement = transaction
            .prepare_cached(&self.sql.insert_keys)
            .await
            .map_err(postgres_error)?;
        transaction
            .execute(&statement, &[&ids, &groups, &versions, &wrapped])
            .await
            .map_err(postgres_error)?;

        select_keys(transaction, &self.sql.select_keys, &ids).await
    }

    async fn write_in(
        &self,
        transaction: &Transaction<'_>,
        plan: &BatchPlan<'_>,
    ) -> Result<WriteOutcome, StoreError> {
        let touched: Vec<&str> = plan
            .touched_subjects()
            .into_iter()
            .map(SubjectId::as_str)
            .collect();
        let mut states = lock_subjects(transaction, &self.sql.lock_subjects, &touched).await?;
        let owners: Vec<&str> = plan
            .value_owners
            .iter()
            .map(|owner| owner.as_str())
            .collect();
        let statement = transaction
            .prepare_cached(&self.sql.select_keyed)
            .await
            .map_err(postgres_error)?;
        let keyed: HashSet<SubjectId> = transaction
            .query(&statement, &[&owners])
            .await
            .map_err(postgres_error)?
            .iter()
            .map(|row| plan::subject_id(row.get(0)))
            .collect::<Result<_, _>>()?;
        plan.validate(&states, &keyed)?;

        let mut fresh: Vec<&PlannedSubject<'_>> = plan
            .subjects
            .iter()
            .filter(|planned| !states.contains_key(planned.id))
            .collect();
        fresh.sort_by(|left, right| left.id.cmp(right.id));
        let mut subjects_created = 0;
        if !fresh.is_empty() {
            let columns = SubjectColumns::new(&fresh);
            let statement = transaction
                .prepare_cached(&self.sql.insert_subjects)
                .await
                .map_err(postgres_error)?;
            let inserted: HashSet<String> = transaction
                .query(
                    &statement,
                    &[
                        &columns.ids,
                        &columns.labels,
                        &columns.staff,
                        &columns.first_at_ms,
                        &columns.last_at_ms,
                    ],
                )
                .await
                .map_err(postgres_error)?
                .into_iter()
                .map(|row| row.get(0))
                .collect();
            subjects_created = inserted.len() as u64;
            // A subject another transaction created after our lock query: lock it now and
            // check it again before updating it like any existing subject.
            let raced: Vec<&str> = columns
                .ids
                .iter()
                .copied()
                .filter(|id| !inserted.contains(*id))
                .collect();
            if !raced.is_empty() {
                let raced_states =
                    lock_subjects(transaction, &self.sql.lock_subjects, &raced).await?;
                if let Some((id, _)) = raced_states
                    .iter()
                    .find(|(_, state)| **state == SubjectState::Erased)
                {
                    return Err(StoreError::Erased(id.clone()));
                }
                states.extend(raced_states);
            }
        }
        let mut existing: Vec<&PlannedSubject<'_>> = plan
            .subjects
            .iter()
            .filter(|planned| states.contains_key(planned.id))
            .collect();
        existing.sort_by(|left, right| left.id.cmp(right.id));
        if !existing.is_empty() {
            let columns = SubjectColumns::new(&existing);
            let statement = transaction
                .prepare_cached(&self.sql.update_subjects)
                .await
                .map_err(postgres_error)?;
            transaction
                .execute(
                    &statement,
                    &[
                        &columns.ids,
                        &columns.labels,
                        &columns.staff,
                        &columns.last_at_ms,
                    ],
                )
                .await
                .map_err(postgres_error)?;
        }

        let mut values_added = 0;
        if !plan.values.is_empty() {
            let mut values: Vec<&PlannedValue<'_>> = plan.values.iter().collect();
            values.sort_by(|left, right| {
                let (left, right) = (left.value, right.value);
                (left.subject.as_str(), left.field, left.value_id).cmp(&(
                    right.subject.as_str(),
                    right.field,
                    right.value_id,
                ))
            });
            let subjects: Vec<&str> = values
                .iter()
                .map(|planned| planned.value.subject.as_str())
                .collect();
            let fields: Vec<&str> = values
                .iter()
                .map(|planned| planned.value.field.as_str())
                .collect();
            let value_ids: Vec<&[u8]> = values
                .iter()
                .map(|planned| &planned.value.value_id[..])
                .collect();
            let sealed: Vec<&[u8]> = values
                .iter()
                .map(|planned| planned.value.sealed.as_slice())
                .collect();
            let first_seen: Vec<i64> = values.iter().map(|planned| planned.first_seen_ms).collect();
            let last_seen: Vec<i64> = values.iter().map(|planned| planned.last_seen_ms).collect();
            // Merge first, then insert what is new: the owners are locked, so no other
            // transaction can add one of these values in between, and the insert's count is
            // exactly the values added.
            let statement = transaction
                .prepare_cached(&self.sql.merge_values)
                .await
                .map_err(postgres_error)?;
            transaction
                .execute(
                    &statement,
                    &[&subjects, &fields, &value_ids, &first_seen, &last_seen],
                )
                .await
                .map_err(postgres_error)?;
            let statement = transaction
                .prepare_cached(&self.sql.insert_values)
                .await
                .map_err(postgres_error)?;
            values_added = transaction
                .execute(
                    &statement,
                    &[
                        &subjects,
                        &fields,
                        &value_ids,
                        &sealed,
                        &first_seen,
                        &last_seen,
                    ],
                )
                .await
                .map_err(postgres_error)?;
        }
        if !plan.blind_indexes.is_empty() {
            let fields: Vec<&str> = plan.blind_indexes.iter().map(|entry| entry.field.as_str()).collect();
            let digests: Vec<&[u8]> = plan.blind_indexes.iter().map(|entry| &entry.digest[..]).collect();
            let subjects: Vec<&str> = plan.blind_indexes.iter().map(|entry| entry.subject.as_str()).collect();
            transaction
                .execute(
                    &format!(
                        "INSERT INTO {}.blind_index (field, digest, subject_id) \
                         SELECT * FROM UNNEST($1::text[], $2::bytea[], $3::text[]) ON CONFLICT DO NOTHING",
                        quoted(&self.schema)
                    ),
                    &[&fields, &digests, &subjects],
                )
                .await
                .map_err(postgres_error)?;
        }
        Ok(plan.outcome(subjects_created, values_added))
    }

    async fn erase_in(
        &self,
        transaction: &Transaction<'_>,
        subject: &SubjectId,
        at_ms: i64,
        requested_by: &str,
        reason: &str,
    ) -> Result<ErasureRecord, StoreError> {
        let states =
            lock_subjects(transaction, &self.sql.lock_subjects, &[subject.as_str()]).await?;
        match states.get(subject) {
            None => return Err(StoreError::UnknownSubject(subject.clone())),
            Some(SubjectState::Erased) => {
                return select_erasure(transaction, &self.sql.select_erasure, subject)
                    .await?
                    .ok_or_else(|| {
                        StoreError::Corrupt(format!(
                            "subject {subject} is erased but has no erasure record"
                        ))
                    });
            }
            Some(SubjectState::Live) => {}
        }
        let id = subject.as_str();
        transaction
            .execute(&format!("DELETE FROM {}.blind_index WHERE subject_id = $1", quoted(&self.schema)), &[&id])
            .await
            .map_err(postgres_error)?;
        let destroyed = transaction
            .execute(&self.sql.delete_values, &[&id])
            .await
            .map_err(postgres_error)?;
        transaction
            .execute(&self.sql.delete_key, &[&id])
            .await
            .map_err(postgres_error)?;
        transaction
            .execute(&self.sql.mark_erased, &[&id, &at_ms])
            .await
            .map_err(postgres_error)?;
        let destroyed_count = i64::try_from(destroyed)
            .map_err(|_| StoreError::Corrupt(format!("{destroyed} values destroyed")))?;
        transaction
            .execute(
                &self.sql.insert_erasure,
                &[&id, &at_ms, &requested_by, &reason, &destroyed_count],
            )
            .await
            .map_err(postgres_error)?;
        Ok(ErasureRecord {
            subject: subject.clone(),
            erased_at_ms: at_ms,
            requested_by: requested_by.to_owned(),
            reason: reason.to_owned(),
            values_destroyed: destroyed,
        })
    }

    async fn rewrap_keys_in(
        &self,
        transaction: &Transaction<'_>,
        rewraps: &[Rewrap],
    ) -> Result<u64, StoreError> {
        let statement = transaction
            .prepare_cached(&self.sql.rewrap_key)
            .await
            .map_err(postgres_error)?;
        let mut changed = 0;
        // One statement per key, in input order, so that a chain of re-wraps of one key in
        // one call behaves exactly as in SQLite.
        for rewrap in rewraps {
            let key = &rewrap.key;
            changed += transaction
                .execute(
                    &statement,
                    &[
                        &key.subject.as_str(),
                        &i32::from(key.group),
                        &i64::from(key.version),
                        &key.wrapped.as_slice(),
                        &i64::from(rewrap.previous_version),
                    ],
                )
                .await
                .map_err(postgres_error)?;
        }
        Ok(changed)
    }
}

#[async_trait]
impl LogStore for PostgresStore {
    async fn append_batch(&self, batch: &LogBatch) -> Result<(), StoreError> {
        log::check_batch(batch)?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = self.append_batch_in(&transaction, batch).await;
        // COMMIT returns once the WAL record is flushed (synchronous_commit defaults to on).
        finish(transaction, result).await
    }

    async fn log_state(&self) -> Result<LogState, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.select_log_state, &[])
            .await
            .map_err(postgres_error)?;
        match row {
            None => Ok(LogState::default()),
            Some(row) => {
                let frontier: Vec<u8> = row.get(1);
                log::decode_frontier(plan::count(row.get(0))?, &frontier)
            }
        }
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
        let client = self.client().await?;
        let rows = client
            .query(&self.sql.select_log_entries, &[&start, &end])
            .await
            .map_err(postgres_error)?;
        Ok(rows.iter().map(|row| row.get::<_, Vec<u8>>(0)).collect())
    }

    async fn log_tile(&self, tile: tlog::TileId) -> Result<Option<Vec<u8>>, StoreError> {
        let level = i16::from(tile.level());
        let index = log::to_i64(tile.index())?;
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.select_log_tile, &[&level, &index])
            .await
            .map_err(postgres_error)?;
        Ok(log::cut_tile(tile, row.map(|row| row.get(0))))
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.select_latest_checkpoint, &[])
            .await
            .map_err(postgres_error)?;
        row.map(|row| {
            let root: Vec<u8> = row.get(1);
            Ok(StoredCheckpoint {
                size: tlog::TreeSize(plan::count(row.get(0))?),
                root: log::decode_hash(&root)?,
                note: row.get(2),
            })
        })
        .transpose()
    }

    async fn save_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = self.save_checkpoint_in(&transaction, checkpoint).await;
        finish(transaction, result).await
    }

    async fn checkpoint_at(&self, size: tlog::TreeSize) -> Result<Option<StoredCheckpoint>, StoreError> {
        let wanted = log::to_i64(size.0)?;
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT root, note FROM {}.log_checkpoints WHERE tree_size = $1", quoted(&self.schema)), &[&wanted])
            .await
            .map_err(postgres_error)?;
        row.map(|row| Ok(StoredCheckpoint { size, root: log::decode_hash(&row.get::<_, Vec<u8>>(0))?, note: row.get(1) })).transpose()
    }

    async fn save_cosignature(&self, cosignature: &StoredCosignature) -> Result<(), StoreError> {
        log::check_cosignature(cosignature)?;
        let size = log::to_i64(cosignature.size.0)?;
        let schema = quoted(&self.schema);
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = async {
            let saved = transaction
                .query_opt(&format!("SELECT tree_size FROM {schema}.log_checkpoints WHERE tree_size = $1 FOR SHARE"), &[&size])
                .await
                .map_err(postgres_error)?;
            if saved.is_none() {
                return Err(StoreError::NoCheckpoint { size: cosignature.size.0 });
            }
            let others: i64 = transaction
                .query_one(&format!("SELECT count(*) FROM {schema}.log_cosignatures WHERE tree_size = $1 AND witness <> $2"), &[&size, &cosignature.witness])
                .await
                .map_err(postgres_error)?
                .get(0);
            if others >= COSIGNATURES_PER_CHECKPOINT_MAX as i64 {
                return Err(StoreError::TooManyCosignatures { size: cosignature.size.0, max: COSIGNATURES_PER_CHECKPOINT_MAX });
            }
            transaction
                .execute(
                    &format!(
                        "INSERT INTO {schema}.log_cosignatures (tree_size, witness, line, saved_at_ms) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (tree_size, witness) DO UPDATE SET line = excluded.line, saved_at_ms = excluded.saved_at_ms"
                    ),
                    &[&size, &cosignature.witness, &cosignature.line, &now_ms()],
                )
                .await
                .map_err(postgres_error)?;
            Ok(())
        }
        .await;
        finish(transaction, result).await
    }

    async fn cosignatures(&self, size: tlog::TreeSize) -> Result<Vec<StoredCosignature>, StoreError> {
        let wanted = log::to_i64(size.0)?;
        let client = self.client().await?;
        let rows = client
            .query(&format!("SELECT witness, line FROM {}.log_cosignatures WHERE tree_size = $1 ORDER BY witness", quoted(&self.schema)), &[&wanted])
            .await
            .map_err(postgres_error)?;
        Ok(rows.into_iter().map(|row| StoredCosignature { size, witness: row.get(0), line: row.get(1) }).collect())
    }
}

impl PostgresStore {
    async fn append_batch_in(
        &self,
        transaction: &Transaction<'_>,
        batch: &LogBatch,
    ) -> Result<(), StoreError> {
        transaction
            .execute(&self.sql.ensure_log_state, &[])
            .await
            .map_err(postgres_error)?;
        let stored_size = plan::count(
            transaction
                .query_one(&self.sql.lock_log_state, &[])
                .await
                .map_err(postgres_error)?
                .get(0),
        )?;
        if stored_size != batch.first_index {
            return Err(StoreError::LogSizeMismatch {
                first_index: batch.first_index,
                stored_size,
            });
        }
        let indexes = (0..batch.entries.len() as u64)
            .map(|offset| log::to_i64(batch.first_index + offset))
            .collect::<Result<Vec<i64>, _>>()?;
        transaction
            .execute(&self.sql.insert_log_entries, &[&indexes, &batch.entries])
            .await
            .map_err(postgres_error)?;
        let levels: Vec<i16> = batch
            .tiles
            .iter()
            .map(|(tile, _)| i16::from(tile.level()))
            .collect();
        let tile_indexes = batch
            .tiles
            .iter()
            .map(|(tile, _)| log::to_i64(tile.index()))
            .collect::<Result<Vec<i64>, _>>()?;
        let hashes: Vec<&[u8]> = batch
            .tiles
            .iter()
            .map(|(_, bytes)| bytes.as_slice())
            .collect();
        transaction
            .execute(
                &self.sql.upsert_log_tiles,
                &[&levels, &tile_indexes, &hashes],
            )
            .await
            .map_err(postgres_error)?;
        transaction
            .execute(
                &self.sql.update_log_state,
                &[
                    &log::to_i64(batch.state.size.0)?,
                    &log::encode_frontier(&batch.state.frontier),
                ],
            )
            .await
            .map_err(postgres_error)?;
        Ok(())
    }

    async fn save_checkpoint_in(
        &self,
        transaction: &Transaction<'_>,
        checkpoint: &StoredCheckpoint,
    ) -> Result<(), StoreError> {
        // Two signers must not both pass the check against the same latest checkpoint.
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&format!("custos checkpoint {}", self.schema)],
            )
            .await
            .map_err(postgres_error)?;
        let latest = transaction
            .query_opt(&self.sql.select_latest_checkpoint, &[])
            .await
            .map_err(postgres_error)?
            .map(|row| plan::count(row.get(0)).map(|size| (size, row.get::<_, Vec<u8>>(1))))
            .transpose()?;
        if log::check_checkpoint(latest, checkpoint)? {
            transaction
                .execute(
                    &self.sql.insert_checkpoint,
                    &[
                        &log::to_i64(checkpoint.size.0)?,
                        &checkpoint.root.as_bytes().as_slice(),
                        &checkpoint.note,
                        &now_ms(),
                    ],
                )
                .await
                .map_err(postgres_error)?;
        }
        Ok(())
    }
}

/// Commits when the work succeeded, else rolls back at once: a dropped transaction only
/// queues its rollback until the connection is next driven, and until then it holds its
/// locks (a test that blocks its runtime while dropping a schema would wait forever).
pub(crate) async fn finish<T>(
    transaction: Transaction<'_>,
    result: Result<T, StoreError>,
) -> Result<T, StoreError> {
    match result {
        Ok(value) => {
            transaction.commit().await.map_err(postgres_error)?;
            Ok(value)
        }
        Err(error) => {
            // The work's error is the one worth reporting; a connection that cannot even roll
            // back is discarded by the pool's recycle check.
            let _ = transaction.rollback().await;
            Err(error)
        }
    }
}

/// Column arrays of subject upserts for an `UNNEST`.
struct SubjectColumns<'a> {
    ids: Vec<&'a str>,
    labels: Vec<String>,
    staff: Vec<Option<&'a str>>,
    first_at_ms: Vec<i64>,
    last_at_ms: Vec<i64>,
}

impl<'a> SubjectColumns<'a> {
    fn new(subjects: &[&PlannedSubject<'a>]) -> Self {
        SubjectColumns {
            ids: subjects.iter().map(|planned| planned.id.as_str()).collect(),
            labels: subjects
                .iter()
                .map(|planned| plan::labels_to_json(planned.labels))
                .collect(),
            staff: subjects
                .iter()
                .map(|planned| planned.staff.map(|staff| staff.as_str()))
                .collect(),
            first_at_ms: subjects.iter().map(|planned| planned.first_at_ms).collect(),
            last_at_ms: subjects.iter().map(|planned| planned.last_at_ms).collect(),
        }
    }
}

async fn lock_subjects<C: deadpool_postgres::GenericClient>(
    client: &C,
    sql: &str,
    ids: &[&str],
) -> Result<HashMap<SubjectId, SubjectState>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(postgres_error)?;
    let rows = client
        .query(&statement, &[&ids])
        .await
        .map_err(postgres_error)?;
    rows.iter()
        .map(|row| {
            let state = if row.get::<_, bool>(1) {
                SubjectState::Erased
            } else {
                SubjectState::Live
            };
            Ok((plan::subject_id(row.get(0))?, state))
        })
        .collect()
}

async fn select_keys<C: deadpool_postgres::GenericClient>(
    client: &C,
    sql: &str,
    ids: &[&str],
) -> Result<HashMap<SubjectId, StoredKey>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(postgres_error)?;
    let rows = client
        .query(&statement, &[&ids])
        .await
        .map_err(postgres_error)?;
    rows.iter()
        .map(|row| key_from_row(row).map(|key| (key.subject.clone(), key)))
        .collect()
}

async fn select_erasure<C: deadpool_postgres::GenericClient>(
    client: &C,
    sql: &str,
    subject: &SubjectId,
) -> Result<Option<ErasureRecord>, StoreError> {
    let statement = client.prepare_cached(sql).await.map_err(postgres_error)?;
    let row = client
        .query_opt(&statement, &[&subject.as_str()])
        .await
        .map_err(postgres_error)?;
    row.map(|row| {
        Ok(ErasureRecord {
            subject: plan::subject_id(row.get(0))?,
            erased_at_ms: row.get(1),
            requested_by: row.get(2),
            reason: row.get(3),
            values_destroyed: plan::count(row.get(4))?,
        })
    })
    .transpose()
}

fn key_from_row(row: &tokio_postgres::Row) -> Result<StoredKey, StoreError> {
    Ok(StoredKey {
        subject: plan::subject_id(row.get(0))?,
        group: plan::shred_group(i64::from(row.get::<_, i32>(1)))?,
        version: plan::kek_version(row.get(2))?,
        wrapped: row.get(3),
    })
}

pub(crate) fn quoted(schema: &str) -> String {
    // INVARIANT: schema names come from `schema_for`, made of a-z, 0-9 and '_' only.
    debug_assert!(
        schema
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
    );
    format!("\"{schema}\"")
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

pub(crate) fn postgres_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::Postgres(postgres_detail(error))
}

/// tokio-postgres shows only "db error" for server errors; the server's message and code are
/// what an operator needs.
pub(crate) fn postgres_detail(error: tokio_postgres::Error) -> String {
    if let Some(database) = error.as_db_error() {
        return format!("{} ({})", database.message(), database.code().code());
    }
    match std::error::Error::source(&error) {
        Some(source) => format!("{error}: {source}"),
        None => error.to_string(),
    }
}

#[async_trait]
impl SubjectIndexStore for PostgresStore {
    async fn subject_index_cursor(&self) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&format!("SELECT next_index FROM {}.subject_index_state WHERE id = 1", quoted(&self.schema)), &[])
            .await
            .map_err(postgres_error)?;
        row.map_or(Ok(0), |row| plan::count(row.get(0)))
    }

    async fn index_subjects(&self, batch: &SubjectIndexBatch) -> Result<(), StoreError> {
        subject_index::check_index_batch(batch)?;
        let schema = quoted(&self.schema);
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = async {
            // The row lock orders concurrent followers: the second sees the first's cursor.
            let row = transaction
                .query_one(&format!("SELECT next_index FROM {schema}.subject_index_state WHERE id = 1 FOR UPDATE"), &[])
                .await
                .map_err(postgres_error)?;
            let stored = plan::count(row.get(0))?;
            if stored != batch.from {
                return Err(StoreError::SubjectIndexCursorMismatch { from: batch.from, stored });
            }
            let subjects: Vec<&str> = batch.rows.iter().map(|(subject, _)| subject.as_str()).collect();
            let indexes = batch.rows.iter().map(|(_, index)| log::to_i64(*index)).collect::<Result<Vec<i64>, _>>()?;
            transaction
                .execute(
                    &format!(
                        "INSERT INTO {schema}.subject_entries (subject_id, entry_index) \
                         SELECT * FROM UNNEST($1::TEXT[], $2::BIGINT[]) ON CONFLICT (subject_id, entry_index) DO NOTHING"
                    ),
                    &[&subjects, &indexes],
                )
                .await
                .map_err(postgres_error)?;
            let kinds: Vec<i16> = batch.timeline.iter().map(|row| row.kind.code()).collect();
            let keys: Vec<&str> = batch.timeline.iter().map(|row| row.key.as_str()).collect();
            let indexes = batch.timeline.iter().map(|row| log::to_i64(row.index)).collect::<Result<Vec<i64>, _>>()?;
            let times: Vec<i64> = batch.timeline.iter().map(|row| row.at_ms).collect();
            transaction
                .execute(
                    &format!(
                        "INSERT INTO {schema}.timeline_entries (kind, key, entry_index, at_ms) \
                         SELECT * FROM UNNEST($1::SMALLINT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[]) \
                         ON CONFLICT (kind, key, entry_index) DO NOTHING"
                    ),
                    &[&kinds, &keys, &indexes, &times],
                )
                .await
                .map_err(postgres_error)?;
            let to = log::to_i64(batch.to)?;
            transaction
                .execute(&format!("UPDATE {schema}.subject_index_state SET next_index = $1 WHERE id = 1"), &[&to])
                .await
                .map_err(postgres_error)?;
            Ok(())
        }
        .await;
        finish(transaction, result).await
    }

    async fn subject_entries(&self, subject: &SubjectId, from: u64, below: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        subject_index::check_entries_limit(limit)?;
        let (from, below, limit) = (log::to_i64(from)?, log::to_i64(below)?, log::to_i64(limit as u64)?);
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT entry_index FROM {}.subject_entries WHERE subject_id = $1 AND entry_index >= $4 AND entry_index < $2 \
                     ORDER BY entry_index LIMIT $3",
                    quoted(&self.schema)
                ),
                &[&subject.as_str(), &below, &limit, &from],
            )
            .await
            .map_err(postgres_error)?;
        rows.iter().map(|row| plan::count(row.get(0))).collect()
    }

    async fn timeline(&self, kind: TimelineKind, key: &str, below: u64, limit: usize) -> Result<Vec<TimelinePoint>, StoreError> {
        subject_index::check_entries_limit(limit)?;
        let (below, limit) = (log::to_i64(below)?, log::to_i64(limit as u64)?);
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    "SELECT entry_index, at_ms FROM {}.timeline_entries WHERE kind = $1 AND key = $2 AND entry_index < $3 \
                     ORDER BY entry_index DESC LIMIT $4",
                    quoted(&self.schema)
                ),
                &[&kind.code(), &key, &below, &limit],
            )
            .await
            .map_err(postgres_error)?;
        rows.iter().map(|row| Ok(TimelinePoint { index: plan::count(row.get(0))?, at_ms: row.get(1) })).collect()
    }

    async fn timeline_activity(&self, kind: TimelineKind, key: &str, bucket_ms: i64) -> Result<Vec<(i64, u64)>, StoreError> {
        subject_index::check_bucket(bucket_ms)?;
        let limit = subject_index::TIMELINE_BUCKETS_MAX as i64 + 1;
        let client = self.client().await?;
        let rows = client
            .query(
                &format!(
                    // Floor division in integers (`%` truncates toward zero): numeric
                    // arithmetic costs several times more per row.
                    "SELECT at_ms - ((at_ms % $3::BIGINT) + $3::BIGINT) % $3::BIGINT AS bucket, count(*) FROM {}.timeline_entries \
                     WHERE kind = $1 AND key = $2 GROUP BY bucket ORDER BY bucket LIMIT $4",
                    quoted(&self.schema)
                ),
                &[&kind.code(), &key, &bucket_ms, &limit],
            )
            .await
            .map_err(postgres_error)?;
        let buckets = rows.iter().map(|row| Ok((row.get::<_, i64>(0), plan::count(row.get(1))?))).collect::<Result<Vec<_>, StoreError>>()?;
        subject_index::check_buckets(&buckets)?;
        Ok(buckets)
    }

    async fn timeline_next_key(&self, kind: TimelineKind, after: &str) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(
                &format!("SELECT key FROM {}.timeline_entries WHERE kind = $1 AND key > $2 ORDER BY key LIMIT 1", quoted(&self.schema)),
                &[&kind.code(), &after],
            )
            .await
            .map_err(postgres_error)?;
        Ok(row.map(|row| row.get(0)))
    }
}
