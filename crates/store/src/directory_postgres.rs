//! The server directory: one PostgreSQL schema per deployment, by default
//! `custos_directory`, with the pool and migration machinery of [`crate::PostgresStore`].
//!
//! Schema (see [`crate::directory`] for the meaning of each column):
//!
//! ```sql
//! CREATE TABLE <schema>.staff (id TEXT PRIMARY KEY, roles TEXT, team TEXT NULL,
//!     entity TEXT NULL, country TEXT NULL, region TEXT NULL, shift TEXT NULL,
//!     updated_at_ms BIGINT);
//! CREATE TABLE <schema>.hr_facts (seq BIGINT IDENTITY PRIMARY KEY, staff_id TEXT,
//!     at_ms BIGINT, event TEXT, country TEXT NULL, until_ms BIGINT NULL);
//! CREATE INDEX hr_facts_by_staff ON <schema>.hr_facts (staff_id, at_ms, seq);
//! CREATE TABLE <schema>.on_call (seq BIGINT IDENTITY PRIMARY KEY, staff_id TEXT,
//!     from_ms BIGINT, until_ms BIGINT, CHECK (from_ms < until_ms));
//! CREATE INDEX on_call_by_staff ON <schema>.on_call (staff_id, from_ms, seq);
//! CREATE TABLE <schema>.cases (id TEXT PRIMARY KEY, purpose TEXT, open BOOLEAN,
//!     assignees TEXT, subjects TEXT, requested_by TEXT NULL, legal_process TEXT NULL,
//!     destinations TEXT, created_at_ms BIGINT, updated_at_ms BIGINT);
//! CREATE TABLE <schema>.access_requests (id TEXT PRIMARY KEY, actor TEXT,
//!     created_at_ms BIGINT, expires_at_ms BIGINT, status TEXT, needs TEXT, request TEXT,
//!     approvals TEXT);
//! -- version 2
//! CREATE TABLE <schema>.alerts (id TEXT PRIMARY KEY CHECK (length = 32), rule TEXT,
//!     severity TEXT, actor TEXT, subjects TEXT, evidence TEXT, summary TEXT, at_ms BIGINT,
//!     raised_at_ms BIGINT, status TEXT, updated_at_ms BIGINT);
//! CREATE INDEX alerts_by_time ON <schema>.alerts (at_ms, id);   -- and by (status | rule | actor, at_ms, id)
//! CREATE TABLE <schema>.alert_subjects (subject TEXT, alert_id TEXT REFERENCES alerts,
//!     PRIMARY KEY (subject, alert_id));
//! CREATE TABLE <schema>.alert_notes (seq BIGINT IDENTITY PRIMARY KEY,
//!     alert_id TEXT REFERENCES alerts, at_ms BIGINT, noted_by TEXT, action TEXT, note TEXT);
//! CREATE INDEX alert_notes_by_alert ON <schema>.alert_notes (alert_id, seq);
//! CREATE TABLE <schema>.alert_deliveries (alert_id TEXT PRIMARY KEY REFERENCES alerts,
//!     state TEXT, attempts BIGINT, next_at_ms BIGINT, last_error TEXT NULL,
//!     delivered_at_ms BIGINT NULL);
//! CREATE INDEX alert_deliveries_due ON <schema>.alert_deliveries (next_at_ms, alert_id)
//!     WHERE state = 'pending';
//! CREATE TABLE <schema>.detector_checkpoints (name TEXT PRIMARY KEY, cursors TEXT,
//!     state BYTEA, saved_at_ms BIGINT);
//! ```
//!
//! Concurrency at `READ COMMITTED`, as in the region store: `record_approval` locks the
//! request row (`FOR UPDATE`) before it checks the status, so a second approver waits for
//! the first and then sees the decision; adding an HR fact or on-call period takes a
//! transaction-level advisory lock on (table, staff member) before it counts, so the
//! per-staff limits hold under concurrent writers. `update_alert` locks the alert row the
//! same way before it checks the transition; `alert` reads the alert and its notes in one
//! `REPEATABLE READ` snapshot. An alert batch is inserted with `UNNEST` (one statement per
//! table) and `ON CONFLICT DO NOTHING … RETURNING id`, so a concurrent insert of the same
//! alert waits and then leaves it as the first one stored it.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use model::StaffId;
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::ToSql;

use crate::StoreError;
use crate::alerts::{
    self, ALERT_COLUMNS, AlertFilter, AlertNote, AlertRecord, AlertRow, AlertStore,
    CHECKPOINT_COLUMNS, DELIVERY_COLUMNS, Delivery, DetectorCheckpoint, FilterSql, NOTE_COLUMNS,
    Placeholder, Severity, SqlParameter,
};
use crate::directory::{
    self, AccessRequestRecord, ApprovalRecord, CASE_COLUMNS, CaseRecord, CaseRow,
    DIRECTORY_SCHEMA_VERSION, DirectoryStore, HR_FACT_COLUMNS, HR_FACTS_PER_STAFF_MAX, HrFact,
    ON_CALL_COLUMNS, ON_CALL_PER_STAFF_MAX, OnCall, REQUEST_COLUMNS, RequestRow, RequestStatus,
    STAFF_COLUMNS, StaffRecord, StaffRow,
};
use crate::postgres::{self, finish, postgres_error, quoted};

/// Longest PostgreSQL identifier, in bytes.
const SCHEMA_NAME_BYTES_MAX: usize = 63;

/// Ordered migrations: index `i` brings the schema from version `i` to `i + 1`. `{schema}`
/// is replaced by the quoted schema name.
const MIGRATIONS: [&str; DIRECTORY_SCHEMA_VERSION as usize] = [
    r#"
CREATE TABLE {schema}.staff (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    roles TEXT NOT NULL,
    team TEXT,
    entity TEXT,
    country TEXT,
    region TEXT,
    shift TEXT,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE {schema}.hr_facts (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    staff_id TEXT COLLATE "C" NOT NULL,
    at_ms BIGINT NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('dismissal_notice', 'leaving', 'travel', 'new_hire')),
    country TEXT,
    until_ms BIGINT
);

CREATE INDEX hr_facts_by_staff ON {schema}.hr_facts (staff_id, at_ms, seq);

CREATE TABLE {schema}.on_call (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    staff_id TEXT COLLATE "C" NOT NULL,
    from_ms BIGINT NOT NULL,
    until_ms BIGINT NOT NULL,
    CHECK (from_ms < until_ms)
);

CREATE INDEX on_call_by_staff ON {schema}.on_call (staff_id, from_ms, seq);

CREATE TABLE {schema}.cases (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    purpose TEXT NOT NULL,
    open BOOLEAN NOT NULL,
    assignees TEXT NOT NULL,
    subjects TEXT NOT NULL,
    requested_by TEXT,
    legal_process TEXT,
    destinations TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    updated_at_ms BIGINT NOT NULL
);

CREATE TABLE {schema}.access_requests (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    actor TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    expires_at_ms BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    needs TEXT NOT NULL,
    request TEXT NOT NULL,
    approvals TEXT NOT NULL
);
"#,
    r#"
CREATE TABLE {schema}.alerts (
    id TEXT COLLATE "C" NOT NULL PRIMARY KEY CHECK (length(id) = 32),
    rule TEXT COLLATE "C" NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    actor TEXT COLLATE "C" NOT NULL,
    subjects TEXT NOT NULL,
    evidence TEXT NOT NULL,
    summary TEXT NOT NULL,
    at_ms BIGINT NOT NULL,
    raised_at_ms BIGINT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    updated_at_ms BIGINT NOT NULL
);

CREATE INDEX alerts_by_time ON {schema}.alerts (at_ms, id);
CREATE INDEX alerts_by_status ON {schema}.alerts (status, at_ms, id);
CREATE INDEX alerts_by_rule ON {schema}.alerts (rule, at_ms, id);
CREATE INDEX alerts_by_actor ON {schema}.alerts (actor, at_ms, id);

CREATE TABLE {schema}.alert_subjects (
    subject TEXT COLLATE "C" NOT NULL,
    alert_id TEXT COLLATE "C" NOT NULL REFERENCES {schema}.alerts (id),
    PRIMARY KEY (subject, alert_id)
);

CREATE TABLE {schema}.alert_notes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id TEXT COLLATE "C" NOT NULL REFERENCES {schema}.alerts (id),
    at_ms BIGINT NOT NULL,
    noted_by TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('acknowledge', 'resolve')),
    note TEXT NOT NULL
);

CREATE INDEX alert_notes_by_alert ON {schema}.alert_notes (alert_id, seq);

CREATE TABLE {schema}.alert_deliveries (
    alert_id TEXT COLLATE "C" NOT NULL PRIMARY KEY REFERENCES {schema}.alerts (id),
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'given_up')),
    attempts BIGINT NOT NULL CHECK (attempts >= 0),
    next_at_ms BIGINT NOT NULL,
    last_error TEXT,
    delivered_at_ms BIGINT
);

CREATE INDEX alert_deliveries_due ON {schema}.alert_deliveries (next_at_ms, alert_id)
    WHERE state = 'pending';

CREATE TABLE {schema}.detector_checkpoints (
    name TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    cursors TEXT NOT NULL,
    state BYTEA NOT NULL,
    saved_at_ms BIGINT NOT NULL
);
"#,
];

/// The deployment's directory in one PostgreSQL schema. Cheap to clone; clones share the
/// pool.
#[derive(Clone)]
pub struct PostgresDirectory {
    schema: String,
    pool: Pool,
    sql: Arc<Statements>,
}

impl std::fmt::Debug for PostgresDirectory {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PostgresDirectory")
            .field("schema", &self.schema)
            .finish()
    }
}

impl PostgresDirectory {
    /// Connects to `url` (`postgres://user@host:port/db`, no TLS), creates `schema` if missing
    /// and brings it up to date. `schema` is 1 to 63 of `a-z`, `0-9` and `_`, starting with a
    /// letter (usually [`crate::POSTGRES_DIRECTORY_SCHEMA_DEFAULT`]).
    pub async fn connect(url: &str, schema: &str) -> Result<PostgresDirectory, StoreError> {
        let valid = schema.len() <= SCHEMA_NAME_BYTES_MAX
            && schema.starts_with(|first: char| first.is_ascii_lowercase())
            && schema
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
        if !valid {
            return Err(StoreError::Postgres(format!(
                "invalid schema name {schema:?}: expected 1 to {SCHEMA_NAME_BYTES_MAX} of a-z, \
                 0-9 and '_', starting with a letter"
            )));
        }
        Self::connect_with(url, schema, &MIGRATIONS).await
    }

    /// Connects and applies `migrations` (all of them but in tests of the upgrade path).
    async fn connect_with(
        url: &str,
        schema: &str,
        migrations: &[&str],
    ) -> Result<PostgresDirectory, StoreError> {
        let pool = postgres::connect_pool(url)?;
        postgres::migrate(&pool, schema, migrations).await?;
        Ok(PostgresDirectory {
            schema: schema.to_owned(),
            pool,
            sql: Arc::new(Statements::new(schema)),
        })
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }

    /// The schema version recorded in the directory's schema.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        let client = self.client().await?;
        postgres::schema_version(&client, &self.schema).await
    }

    /// Drops the directory's schema with everything in it. For tests; the directory is
    /// unusable afterwards.
    pub async fn drop_schema(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        postgres::drop_schema(&client, &self.schema).await
    }

    async fn client(&self) -> Result<deadpool_postgres::Client, StoreError> {
        self.pool
            .get()
            .await
            .map_err(|error| StoreError::Postgres(error.to_string()))
    }
}

/// Every statement of the directory, qualified with its schema.
struct Statements {
    upsert_staff: String,
    select_staff: String,
    insert_hr_fact: String,
    select_hr_facts: String,
    insert_on_call: String,
    select_on_call: String,
    insert_case: String,
    update_case: String,
    select_case: String,
    insert_request: String,
    select_request: String,
    lock_request: String,
    update_request: String,
    insert_alerts: String,
    insert_alert_subjects: String,
    insert_deliveries: String,
    select_alert: String,
    lock_alert: String,
    update_alert: String,
    insert_note: String,
    select_notes: String,
    upsert_checkpoint: String,
    select_checkpoint: String,
    select_due: String,
    delivery_succeeded: String,
    delivery_failed: String,
    schema: String,
}

impl Statements {
    fn new(schema: &str) -> Self {
        let s = quoted(schema);
        let select_request =
            format!("SELECT {REQUEST_COLUMNS} FROM {s}.access_requests WHERE id = $1");
        Statements {
            upsert_staff: format!(
                "INSERT INTO {s}.staff ({STAFF_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                 ON CONFLICT (id) DO UPDATE SET roles = excluded.roles, team = excluded.team, \
                 entity = excluded.entity, country = excluded.country, region = excluded.region, \
                 shift = excluded.shift, updated_at_ms = excluded.updated_at_ms"
            ),
            select_staff: format!("SELECT {STAFF_COLUMNS} FROM {s}.staff WHERE id = $1"),
            insert_hr_fact: format!(
                "INSERT INTO {s}.hr_facts ({HR_FACT_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
            ),
            select_hr_facts: format!(
                "SELECT {HR_FACT_COLUMNS} FROM {s}.hr_facts WHERE staff_id = $1 ORDER BY at_ms, seq"
            ),
            insert_on_call: format!(
                "INSERT INTO {s}.on_call ({ON_CALL_COLUMNS}) VALUES ($1, $2, $3)"
            ),
            select_on_call: format!(
                "SELECT {ON_CALL_COLUMNS} FROM {s}.on_call WHERE staff_id = $1 ORDER BY from_ms, seq"
            ),
            insert_case: format!(
                "INSERT INTO {s}.cases ({CASE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                 ON CONFLICT (id) DO NOTHING"
            ),
            update_case: format!(
                "UPDATE {s}.cases SET purpose = $2, open = $3, assignees = $4, subjects = $5, \
                 requested_by = $6, legal_process = $7, destinations = $8, updated_at_ms = $9 \
                 WHERE id = $1"
            ),
            select_case: format!("SELECT {CASE_COLUMNS} FROM {s}.cases WHERE id = $1"),
            insert_request: format!(
                "INSERT INTO {s}.access_requests ({REQUEST_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (id) DO NOTHING"
            ),
            lock_request: format!("{select_request} FOR UPDATE"),
            select_request,
            update_request: format!(
                "UPDATE {s}.access_requests SET status = $2, needs = $3, approvals = $4 WHERE id = $1"
            ),
            insert_alerts: format!(
                "INSERT INTO {s}.alerts ({ALERT_COLUMNS}) \
                 SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
                 $6::TEXT[], $7::TEXT[], $8::BIGINT[], $9::BIGINT[], $10::TEXT[], $11::BIGINT[]) \
                 ON CONFLICT (id) DO NOTHING RETURNING id"
            ),
            insert_alert_subjects: format!(
                "INSERT INTO {s}.alert_subjects (subject, alert_id) \
                 SELECT * FROM UNNEST($1::TEXT[], $2::TEXT[])"
            ),
            insert_deliveries: format!(
                "INSERT INTO {s}.alert_deliveries (alert_id, state, attempts, next_at_ms) \
                 SELECT alert_id, 'pending', 0, $2 FROM UNNEST($1::TEXT[]) AS alert_id"
            ),
            lock_alert: format!("SELECT {ALERT_COLUMNS} FROM {s}.alerts WHERE id = $1 FOR UPDATE"),
            select_alert: format!("SELECT {ALERT_COLUMNS} FROM {s}.alerts WHERE id = $1"),
            update_alert: format!(
                "UPDATE {s}.alerts SET status = $2, updated_at_ms = $3 WHERE id = $1"
            ),
            insert_note: format!(
                "INSERT INTO {s}.alert_notes (alert_id, {NOTE_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
            ),
            select_notes: format!(
                "SELECT {NOTE_COLUMNS} FROM {s}.alert_notes WHERE alert_id = $1 ORDER BY seq"
            ),
            upsert_checkpoint: format!(
                "INSERT INTO {s}.detector_checkpoints ({CHECKPOINT_COLUMNS}) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO UPDATE SET cursors = excluded.cursors, \
                 state = excluded.state, saved_at_ms = excluded.saved_at_ms"
            ),
            select_checkpoint: format!(
                "SELECT {CHECKPOINT_COLUMNS} FROM {s}.detector_checkpoints WHERE name = $1"
            ),
            select_due: format!(
                "SELECT {DELIVERY_COLUMNS}, {ALERT_COLUMNS} FROM {s}.alert_deliveries \
                 JOIN {s}.alerts ON alerts.id = alert_deliveries.alert_id \
                 WHERE state = 'pending' AND next_at_ms <= $1 \
                 ORDER BY next_at_ms, alert_id LIMIT $2"
            ),
            delivery_succeeded: format!(
                "UPDATE {s}.alert_deliveries SET state = 'delivered', delivered_at_ms = $2 \
                 WHERE alert_id = $1 AND state = 'pending'"
            ),
            delivery_failed: format!(
                "UPDATE {s}.alert_deliveries SET attempts = attempts + 1, last_error = $2, \
                 next_at_ms = $3, state = $4 WHERE alert_id = $1 AND state = 'pending'"
            ),
            schema: s,
        }
    }

    /// Counts the staff member's rows of `table`.
    fn count_per_staff(&self, table: &str) -> String {
        format!(
            "SELECT count(*) FROM {}.{table} WHERE staff_id = $1",
            self.schema
        )
    }
}

#[async_trait]
impl DirectoryStore for PostgresDirectory {
    async fn upsert_staff(&self, staff: &StaffRecord) -> Result<(), StoreError> {
        let row = StaffRow::new(staff)?;
        let client = self.client().await?;
        client
            .execute(
                &self.sql.upsert_staff,
                &[
                    &row.id,
                    &row.roles,
                    &row.team,
                    &row.entity,
                    &row.country,
                    &row.region,
                    &row.shift,
                    &row.updated_at_ms,
                ],
            )
            .await
            .map_err(postgres_error)?;
        Ok(())
    }

    async fn staff(&self, id: &StaffId) -> Result<Option<StaffRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.select_staff, &[&id.as_str()])
            .await
            .map_err(postgres_error)?;
        row.map(|row| {
            StaffRow {
                id: row.get(0),
                roles: row.get(1),
                team: row.get(2),
                entity: row.get(3),
                country: row.get(4),
                region: row.get(5),
                shift: row.get(6),
                updated_at_ms: row.get(7),
            }
            .into_record()
        })
        .transpose()
    }

    async fn add_hr_fact(&self, fact: &HrFact) -> Result<(), StoreError> {
        directory::check_hr_fact(fact)?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = async {
            self.check_per_staff(
                &transaction,
                ("hr_facts", "HR_FACTS_PER_STAFF_MAX", HR_FACTS_PER_STAFF_MAX),
                &fact.staff,
            )
            .await?;
            transaction
                .execute(
                    &self.sql.insert_hr_fact,
                    &[
                        &fact.staff.as_str(),
                        &fact.at_ms,
                        &fact.event.as_str(),
                        &fact.country,
                        &fact.until_ms,
                    ],
                )
                .await
                .map_err(postgres_error)
        }
        .await;
        finish(transaction, result).await.map(|_| ())
    }

    async fn hr_facts(&self, staff: &StaffId) -> Result<Vec<HrFact>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&self.sql.select_hr_facts, &[&staff.as_str()])
            .await
            .map_err(postgres_error)?;
        rows.iter()
            .map(|row| {
                directory::hr_fact_from_columns(
                    row.get(0),
                    row.get(1),
                    row.get(2),
                    row.get(3),
                    row.get(4),
                )
            })
            .collect()
    }

    async fn add_on_call(&self, period: &OnCall) -> Result<(), StoreError> {
        directory::check_on_call(period)?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = async {
            self.check_per_staff(
                &transaction,
                ("on_call", "ON_CALL_PER_STAFF_MAX", ON_CALL_PER_STAFF_MAX),
                &period.staff,
            )
            .await?;
            transaction
                .execute(
                    &self.sql.insert_on_call,
                    &[&period.staff.as_str(), &period.from_ms, &period.until_ms],
                )
                .await
                .map_err(postgres_error)
        }
        .await;
        finish(transaction, result).await.map(|_| ())
    }

    async fn on_call(&self, staff: &StaffId) -> Result<Vec<OnCall>, StoreError> {
        let client = self.client().await?;
        let rows = client
            .query(&self.sql.select_on_call, &[&staff.as_str()])
            .await
            .map_err(postgres_error)?;
        rows.iter()
            .map(|row| directory::on_call_from_columns(row.get(0), row.get(1), row.get(2)))
            .collect()
    }

    async fn create_case(&self, case: &CaseRecord) -> Result<(), StoreError> {
        let row = CaseRow::new(case)?;
        let client = self.client().await?;
        let inserted = client
            .execute(
                &self.sql.insert_case,
                &[
                    &row.id,
                    &row.purpose,
                    &row.open,
                    &row.assignees,
                    &row.subjects,
                    &row.requested_by,
                    &row.legal_process,
                    &row.destinations,
                    &row.created_at_ms,
                    &row.updated_at_ms,
                ],
            )
            .await
            .map_err(postgres_error)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                what: "case",
                id: row.id,
            });
        }
        Ok(())
    }

    async fn update_case(&self, case: &CaseRecord) -> Result<(), StoreError> {
        let row = CaseRow::new(case)?;
        let client = self.client().await?;
        let updated = client
            .execute(
                &self.sql.update_case,
                &[
                    &row.id,
                    &row.purpose,
                    &row.open,
                    &row.assignees,
                    &row.subjects,
                    &row.requested_by,
                    &row.legal_process,
                    &row.destinations,
                    &row.updated_at_ms,
                ],
            )
            .await
            .map_err(postgres_error)?;
        if updated == 0 {
            return Err(StoreError::NotFound {
                what: "case",
                id: row.id,
            });
        }
        Ok(())
    }

    async fn case(&self, id: &str) -> Result<Option<CaseRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.select_case, &[&id])
            .await
            .map_err(postgres_error)?;
        row.map(|row| {
            CaseRow {
                id: row.get(0),
                purpose: row.get(1),
                open: row.get(2),
                assignees: row.get(3),
                subjects: row.get(4),
                requested_by: row.get(5),
                legal_process: row.get(6),
                destinations: row.get(7),
                created_at_ms: row.get(8),
                updated_at_ms: row.get(9),
            }
            .into_record()
        })
        .transpose()
    }

    async fn create_access_request(&self, request: &AccessRequestRecord) -> Result<(), StoreError> {
        let row = RequestRow::new(request)?;
        let client = self.client().await?;
        let inserted = client
            .execute(
                &self.sql.insert_request,
                &[
                    &row.id,
                    &row.actor,
                    &row.created_at_ms,
                    &row.expires_at_ms,
                    &row.status,
                    &row.needs,
                    &row.request,
                    &row.approvals,
                ],
            )
            .await
            .map_err(postgres_error)?;
        if inserted == 0 {
            return Err(StoreError::AlreadyExists {
                what: "access request",
                id: row.id,
            });
        }
        Ok(())
    }

    async fn access_request(&self, id: &str) -> Result<Option<AccessRequestRecord>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.select_request, &[&id])
            .await
            .map_err(postgres_error)?;
        row.as_ref().map(request_from_row).transpose()
    }

    async fn record_approval(
        &self,
        id: &str,
        approval: &ApprovalRecord,
        status: RequestStatus,
        needs: &[String],
    ) -> Result<AccessRequestRecord, StoreError> {
        directory::check_approval(id, approval, needs)?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = async {
            // The row lock makes a concurrent second call wait here, then read the first
            // one's committed result.
            let stored = transaction
                .query_opt(&self.sql.lock_request, &[&id])
                .await
                .map_err(postgres_error)?
                .ok_or_else(|| directory::request_not_found(id))?;
            let decided =
                directory::apply_approval(request_from_row(&stored)?, approval, status, needs)?;
            let row = RequestRow::new(&decided)?;
            transaction
                .execute(
                    &self.sql.update_request,
                    &[&row.id, &row.status, &row.needs, &row.approvals],
                )
                .await
                .map_err(postgres_error)?;
            Ok(decided)
        }
        .await;
        finish(transaction, result).await
    }
}

#[async_trait]
impl AlertStore for PostgresDirectory {
    async fn insert_alerts(
        &self,
        alerts: &[AlertRecord],
        deliver: bool,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError> {
        let planned = alerts::plan_insert(alerts)?;
        if planned.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<&AlertRow> = planned.iter().map(|alert| &alert.row).collect();
        let columns = (
            rows.iter().map(|row| row.id.as_str()).collect::<Vec<_>>(),
            rows.iter().map(|row| row.rule.as_str()).collect::<Vec<_>>(),
            rows.iter()
                .map(|row| row.severity.as_str())
                .collect::<Vec<_>>(),
            rows.iter()
                .map(|row| row.actor.as_str())
                .collect::<Vec<_>>(),
            rows.iter()
                .map(|row| row.subjects.as_str())
                .collect::<Vec<_>>(),
            rows.iter()
                .map(|row| row.evidence.as_str())
                .collect::<Vec<_>>(),
            rows.iter()
                .map(|row| row.summary.as_str())
                .collect::<Vec<_>>(),
        );
        let times = (
            rows.iter().map(|row| row.at_ms).collect::<Vec<_>>(),
            rows.iter().map(|row| row.raised_at_ms).collect::<Vec<_>>(),
            rows.iter()
                .map(|row| row.status.as_str())
                .collect::<Vec<_>>(),
            rows.iter().map(|row| row.updated_at_ms).collect::<Vec<_>>(),
        );
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = async {
            let returned = transaction
                .query(
                    &self.sql.insert_alerts,
                    &[
                        &columns.0, &columns.1, &columns.2, &columns.3, &columns.4, &columns.5,
                        &columns.6, &times.0, &times.1, &times.2, &times.3,
                    ],
                )
                .await
                .map_err(postgres_error)?;
            let returned: std::collections::HashSet<String> =
                returned.iter().map(|row| row.get(0)).collect();
            let inserted: Vec<&alerts::PlannedAlert> = planned
                .iter()
                .filter(|alert| returned.contains(&alert.row.id))
                .collect();
            let (subjects, owners): (Vec<&str>, Vec<&str>) = inserted
                .iter()
                .flat_map(|alert| {
                    alert
                        .subjects
                        .iter()
                        .map(|subject| (subject.as_str(), alert.row.id.as_str()))
                })
                .unzip();
            if !subjects.is_empty() {
                transaction
                    .execute(&self.sql.insert_alert_subjects, &[&subjects, &owners])
                    .await
                    .map_err(postgres_error)?;
            }
            let ids: Vec<String> = inserted.iter().map(|alert| alert.row.id.clone()).collect();
            if deliver && !ids.is_empty() {
                transaction
                    .execute(&self.sql.insert_deliveries, &[&ids, &now_ms])
                    .await
                    .map_err(postgres_error)?;
            }
            Ok(ids)
        }
        .await;
        finish(transaction, result).await
    }

    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRecord>, StoreError> {
        let built = FilterSql::page(
            filter,
            &format!("{}.", self.sql.schema),
            Placeholder::Dollar,
        )?;
        let client = self.client().await?;
        let rows = client
            .query(&built.sql, &parameters(&built.parameters))
            .await
            .map_err(postgres_error)?;
        rows.iter()
            .map(|row| alert_row(row, 0).into_record())
            .collect()
    }

    async fn alert(&self, id: &str) -> Result<Option<(AlertRecord, Vec<AlertNote>)>, StoreError> {
        let mut client = self.client().await?;
        // One snapshot, so that the notes match the status read with the alert.
        let transaction = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(postgres_error)?;
        let result = async {
            let Some(row) = transaction
                .query_opt(&self.sql.select_alert, &[&id])
                .await
                .map_err(postgres_error)?
            else {
                return Ok(None);
            };
            let alert = alert_row(&row, 0).into_record()?;
            let notes = transaction
                .query(&self.sql.select_notes, &[&id])
                .await
                .map_err(postgres_error)?
                .iter()
                .map(|row| {
                    alerts::note_from_columns(row.get(0), row.get(1), row.get(2), row.get(3))
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some((alert, notes)))
        }
        .await;
        finish(transaction, result).await
    }

    async fn alert_counts(
        &self,
        filter: &AlertFilter,
    ) -> Result<BTreeMap<Severity, u64>, StoreError> {
        let built = FilterSql::counts(
            filter,
            &format!("{}.", self.sql.schema),
            Placeholder::Dollar,
        );
        let client = self.client().await?;
        let rows = client
            .query(&built.sql, &parameters(&built.parameters))
            .await
            .map_err(postgres_error)?;
        alerts::severity_counts(rows.iter().map(|row| (row.get(0), row.get(1))))
    }

    async fn update_alert(&self, id: &str, note: &AlertNote) -> Result<AlertRecord, StoreError> {
        alerts::check_note(id, note)?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(postgres_error)?;
        let result = async {
            // The row lock makes a concurrent second call wait here, then read the first
            // one's committed status.
            let stored = transaction
                .query_opt(&self.sql.lock_alert, &[&id])
                .await
                .map_err(postgres_error)?
                .ok_or_else(|| alerts::alert_not_found(id))?;
            let updated = alerts::apply_transition(alert_row(&stored, 0).into_record()?, note)?;
            transaction
                .execute(
                    &self.sql.update_alert,
                    &[
                        &updated.id,
                        &updated.status.as_str(),
                        &updated.updated_at_ms,
                    ],
                )
                .await
                .map_err(postgres_error)?;
            transaction
                .execute(
                    &self.sql.insert_note,
                    &[
                        &updated.id,
                        &note.at_ms,
                        &note.by,
                        &note.action.as_str(),
                        &note.note,
                    ],
                )
                .await
                .map_err(postgres_error)?;
            Ok(updated)
        }
        .await;
        finish(transaction, result).await
    }

    async fn save_detector_checkpoint(
        &self,
        checkpoint: &DetectorCheckpoint,
    ) -> Result<(), StoreError> {
        let cursors = alerts::check_checkpoint(checkpoint)?;
        let client = self.client().await?;
        client
            .execute(
                &self.sql.upsert_checkpoint,
                &[
                    &checkpoint.name,
                    &cursors,
                    &checkpoint.state,
                    &checkpoint.saved_at_ms,
                ],
            )
            .await
            .map_err(postgres_error)?;
        Ok(())
    }

    async fn detector_checkpoint(
        &self,
        name: &str,
    ) -> Result<Option<DetectorCheckpoint>, StoreError> {
        let client = self.client().await?;
        let row = client
            .query_opt(&self.sql.select_checkpoint, &[&name])
            .await
            .map_err(postgres_error)?;
        row.map(|row| {
            alerts::checkpoint_from_columns(row.get(0), row.get(1), row.get(2), row.get(3))
        })
        .transpose()
    }

    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Delivery, AlertRecord)>, StoreError> {
        let limit = alerts::check_due_limit(limit)?;
        let client = self.client().await?;
        let rows = client
            .query(&self.sql.select_due, &[&now_ms, &limit])
            .await
            .map_err(postgres_error)?;
        rows.iter()
            .map(|row| {
                Ok((
                    alerts::delivery_from_columns(row.get(0), row.get(1), row.get(2), row.get(3))?,
                    alert_row(row, 4).into_record()?,
                ))
            })
            .collect()
    }

    async fn delivery_succeeded(&self, alert_id: &str, at_ms: i64) -> Result<(), StoreError> {
        let client = self.client().await?;
        let updated = client
            .execute(&self.sql.delivery_succeeded, &[&alert_id, &at_ms])
            .await
            .map_err(postgres_error)?;
        if updated == 0 {
            return Err(alerts::delivery_not_found(alert_id));
        }
        Ok(())
    }

    async fn delivery_failed(
        &self,
        alert_id: &str,
        error: &str,
        next_at_ms: i64,
        give_up: bool,
    ) -> Result<(), StoreError> {
        let error = alerts::truncate_delivery_error(error);
        let state = if give_up { "given_up" } else { "pending" };
        let client = self.client().await?;
        let updated = client
            .execute(
                &self.sql.delivery_failed,
                &[&alert_id, &error, &next_at_ms, &state],
            )
            .await
            .map_err(postgres_error)?;
        if updated == 0 {
            return Err(alerts::delivery_not_found(alert_id));
        }
        Ok(())
    }
}

/// The parameters of a [`FilterSql`] as tokio-postgres takes them.
fn parameters(parameters: &[SqlParameter]) -> Vec<&(dyn ToSql + Sync)> {
    parameters
        .iter()
        .map(|parameter| match parameter {
            SqlParameter::Text(text) => text as &(dyn ToSql + Sync),
            SqlParameter::Integer(integer) => integer as &(dyn ToSql + Sync),
        })
        .collect()
}

/// The [`ALERT_COLUMNS`] of `row`, starting at column `first`.
fn alert_row(row: &tokio_postgres::Row, first: usize) -> AlertRow {
    AlertRow {
        id: row.get(first),
        rule: row.get(first + 1),
        severity: row.get(first + 2),
        actor: row.get(first + 3),
        subjects: row.get(first + 4),
        evidence: row.get(first + 5),
        summary: row.get(first + 6),
        at_ms: row.get(first + 7),
        raised_at_ms: row.get(first + 8),
        status: row.get(first + 9),
        updated_at_ms: row.get(first + 10),
    }
}

impl PostgresDirectory {
    /// Serializes writers of one staff member's rows of `table`, then checks that one more
    /// row stays within `max`.
    async fn check_per_staff(
        &self,
        transaction: &Transaction<'_>,
        (table, limit, max): (&str, &'static str, usize),
        staff: &StaffId,
    ) -> Result<(), StoreError> {
        transaction
            .execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                &[&format!("custos {} {table} {staff}", self.schema)],
            )
            .await
            .map_err(postgres_error)?;
        let count: i64 = transaction
            .query_one(&self.sql.count_per_staff(table), &[&staff.as_str()])
            .await
            .map_err(postgres_error)?
            .get(0);
        directory::check_per_staff(staff, limit, count, max)
    }
}

fn request_from_row(row: &tokio_postgres::Row) -> Result<AccessRequestRecord, StoreError> {
    RequestRow::decode(
        row.get(0),
        row.get(1),
        (row.get(2), row.get(3)),
        row.get(4),
        row.get(5),
        row.get(6),
        row.get(7),
    )
}

#[cfg(test)]
mod tests {
    use model::SubjectId;

    use super::*;
    use crate::alerts::{AlertStatus, EvidenceRef, Severity};
    use crate::testing::{self, SchemaGuard};

    #[tokio::test]
    async fn a_version_1_directory_upgrades_in_place() {
        let Some(url) = testing::postgres_url_or_skip().await else {
            return;
        };
        let schema = testing::unique_directory_schema();
        let _guard = SchemaGuard::for_schema(&url, &schema);
        let staff = StaffRecord {
            id: StaffId::new("kept").unwrap(),
            roles: vec!["support".to_owned()],
            team: None,
            entity: None,
            country: None,
            region: None,
            shift: None,
            updated_at_ms: 1,
        };
        let case = CaseRecord {
            id: "case-1".to_owned(),
            purpose: "kept across the upgrade".to_owned(),
            open: true,
            assignees: vec![staff.id.clone()],
            subjects: vec![SubjectId::new("user-1").unwrap()],
            requested_by: None,
            legal_process: None,
            destinations: Vec::new(),
            created_at_ms: 1,
            updated_at_ms: 1,
        };
        let version_1 = PostgresDirectory::connect_with(&url, &schema, &MIGRATIONS[..1])
            .await
            .unwrap();
        assert_eq!(version_1.schema_version().await.unwrap(), 1);
        version_1.upsert_staff(&staff).await.unwrap();
        version_1.create_case(&case).await.unwrap();
        drop(version_1);

        let directory = PostgresDirectory::connect(&url, &schema).await.unwrap();
        assert_eq!(directory.schema_version().await.unwrap(), 2);
        assert_eq!(directory.staff(&staff.id).await.unwrap(), Some(staff));
        assert_eq!(directory.case(&case.id).await.unwrap(), Some(case));
        let alert = AlertRecord {
            id: "fedcba9876543210fedcba9876543210".to_owned(),
            rule: "after_hours".to_owned(),
            severity: Severity::Low,
            actor: "staff-1".to_owned(),
            subjects: vec!["user-1".to_owned()],
            evidence: vec![EvidenceRef {
                region: "eu".to_owned(),
                index: 1,
                request: "r".to_owned(),
            }],
            summary: "read at 03:00".to_owned(),
            at_ms: 1,
            raised_at_ms: 2,
            status: AlertStatus::Open,
            updated_at_ms: 2,
        };
        assert_eq!(
            directory
                .insert_alerts(std::slice::from_ref(&alert), true, 0)
                .await
                .unwrap(),
            std::slice::from_ref(&alert.id)
        );
        assert_eq!(
            directory.alert(&alert.id).await.unwrap(),
            Some((alert, Vec::new()))
        );
    }
}
