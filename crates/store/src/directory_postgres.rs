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
//! ```
//!
//! Concurrency at `READ COMMITTED`, as in the region store: `record_approval` locks the
//! request row (`FOR UPDATE`) before it checks the status, so a second approver waits for
//! the first and then sees the decision; adding an HR fact or on-call period takes a
//! transaction-level advisory lock on (table, staff member) before it counts, so the
//! per-staff limits hold under concurrent writers.

use std::sync::Arc;

use async_trait::async_trait;
use deadpool_postgres::{Pool, Transaction};
use model::StaffId;

use crate::StoreError;
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
const MIGRATIONS: [&str; DIRECTORY_SCHEMA_VERSION as usize] = [r#"
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
"#];

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
        let pool = postgres::connect_pool(url)?;
        postgres::migrate(&pool, schema, &MIGRATIONS).await?;
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
