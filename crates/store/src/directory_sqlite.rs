//! The embedded directory: one SQLite file per deployment, `<data dir>/directory.db`, with
//! the connection settings of the region databases (WAL, `synchronous=FULL`, `secure_delete`,
//! a busy timeout; see [`crate::SqliteStore`]) and the same connection handling: one writer
//! behind a mutex taking `IMMEDIATE` transactions, a small pool of read-only connections,
//! all on tokio's blocking pool.
//!
//! Schema (see [`crate::directory`] for the meaning of each column):
//!
//! ```sql
//! CREATE TABLE staff (id TEXT PRIMARY KEY, roles TEXT, team TEXT NULL, entity TEXT NULL,
//!     country TEXT NULL, region TEXT NULL, shift TEXT NULL, updated_at_ms INTEGER)
//!     STRICT, WITHOUT ROWID;
//! CREATE TABLE hr_facts (seq INTEGER PRIMARY KEY, staff_id TEXT, at_ms INTEGER, event TEXT,
//!     country TEXT NULL, until_ms INTEGER NULL) STRICT;
//! CREATE INDEX hr_facts_by_staff ON hr_facts (staff_id, at_ms, seq);
//! CREATE TABLE on_call (seq INTEGER PRIMARY KEY, staff_id TEXT, from_ms INTEGER,
//!     until_ms INTEGER, CHECK (from_ms < until_ms)) STRICT;
//! CREATE INDEX on_call_by_staff ON on_call (staff_id, from_ms, seq);
//! CREATE TABLE cases (id TEXT PRIMARY KEY, purpose TEXT, open INTEGER CHECK (0 or 1),
//!     assignees TEXT, subjects TEXT, requested_by TEXT NULL, legal_process TEXT NULL,
//!     destinations TEXT, created_at_ms INTEGER, updated_at_ms INTEGER) STRICT;
//! CREATE TABLE access_requests (id TEXT PRIMARY KEY, actor TEXT, created_at_ms INTEGER,
//!     expires_at_ms INTEGER, status TEXT CHECK (pending, approved, rejected), needs TEXT,
//!     request TEXT, approvals TEXT) STRICT;
//! ```
//!
//! `cases` and `access_requests` keep their rowid: a case's subject list can reach hundreds
//! of kilobytes, and SQLite keeps large rows better in a rowid table.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use model::StaffId;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use crate::directory::{
    self, AccessRequestRecord, ApprovalRecord, CASE_COLUMNS, CaseRecord, CaseRow,
    DIRECTORY_FILE_NAME, DIRECTORY_SCHEMA_VERSION, DirectoryStore, HR_FACT_COLUMNS,
    HR_FACTS_PER_STAFF_MAX, HrFact, ON_CALL_COLUMNS, ON_CALL_PER_STAFF_MAX, OnCall,
    REQUEST_COLUMNS, RequestRow, RequestStatus, STAFF_COLUMNS, StaffRecord, StaffRow,
};
use crate::sqlite::{self, Shared, sqlite_error};
use crate::{SqlitePragmas, StoreError};

/// Ordered migrations: index `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; DIRECTORY_SCHEMA_VERSION as usize] = [r#"
CREATE TABLE staff (
    id TEXT NOT NULL PRIMARY KEY,
    roles TEXT NOT NULL,
    team TEXT,
    entity TEXT,
    country TEXT,
    region TEXT,
    shift TEXT,
    updated_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE hr_facts (
    seq INTEGER NOT NULL PRIMARY KEY,
    staff_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    event TEXT NOT NULL CHECK (event IN ('dismissal_notice', 'leaving', 'travel', 'new_hire')),
    country TEXT,
    until_ms INTEGER
) STRICT;

CREATE INDEX hr_facts_by_staff ON hr_facts (staff_id, at_ms, seq);

CREATE TABLE on_call (
    seq INTEGER NOT NULL PRIMARY KEY,
    staff_id TEXT NOT NULL,
    from_ms INTEGER NOT NULL,
    until_ms INTEGER NOT NULL,
    CHECK (from_ms < until_ms)
) STRICT;

CREATE INDEX on_call_by_staff ON on_call (staff_id, from_ms, seq);

CREATE TABLE cases (
    id TEXT NOT NULL PRIMARY KEY,
    purpose TEXT NOT NULL,
    open INTEGER NOT NULL CHECK (open IN (0, 1)),
    assignees TEXT NOT NULL,
    subjects TEXT NOT NULL,
    requested_by TEXT,
    legal_process TEXT,
    destinations TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE access_requests (
    id TEXT NOT NULL PRIMARY KEY,
    actor TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
    needs TEXT NOT NULL,
    request TEXT NOT NULL,
    approvals TEXT NOT NULL
) STRICT;
"#];

/// The deployment's directory in one SQLite file. Cheap to clone; clones share the
/// connections.
#[derive(Clone)]
pub struct SqliteDirectory {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for SqliteDirectory {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SqliteDirectory")
            .field("path", &self.shared.path())
            .finish()
    }
}

impl SqliteDirectory {
    /// Opens (creating if missing) `<dir>/directory.db` and brings its schema up to date.
    /// Blocks on file IO: call it at startup or from a blocking task.
    pub fn open(dir: &Path) -> Result<SqliteDirectory, StoreError> {
        let shared = Shared::open(Self::path_for(dir), &MIGRATIONS)?;
        Ok(SqliteDirectory {
            shared: Arc::new(shared),
        })
    }

    /// Where [`SqliteDirectory::open`] keeps the directory in `dir`.
    pub fn path_for(dir: &Path) -> PathBuf {
        dir.join(DIRECTORY_FILE_NAME)
    }

    pub fn path(&self) -> &Path {
        self.shared.path()
    }

    /// The settings of the writer connection, for health checks and tests.
    pub async fn pragmas(&self) -> Result<SqlitePragmas, StoreError> {
        Shared::with_writer(&self.shared, |connection| sqlite::read_pragmas(connection)).await
    }

    /// The schema version recorded in the database.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        Shared::with_reader(&self.shared, sqlite::recorded_version).await
    }
}

#[async_trait]
impl DirectoryStore for SqliteDirectory {
    async fn upsert_staff(&self, staff: &StaffRecord) -> Result<(), StoreError> {
        let row = StaffRow::new(staff)?;
        Shared::with_writer(&self.shared, move |connection| {
            connection
                .prepare_cached(&format!(
                    "INSERT OR REPLACE INTO staff ({STAFF_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
                ))
                .map_err(sqlite_error)?
                .execute(params![
                    row.id,
                    row.roles,
                    row.team,
                    row.entity,
                    row.country,
                    row.region,
                    row.shift,
                    row.updated_at_ms
                ])
                .map_err(sqlite_error)?;
            Ok(())
        })
        .await
    }

    async fn staff(&self, id: &StaffId) -> Result<Option<StaffRecord>, StoreError> {
        let id = id.clone();
        Shared::with_reader(&self.shared, move |connection| {
            let row = connection
                .prepare_cached(&format!("SELECT {STAFF_COLUMNS} FROM staff WHERE id = ?1"))
                .map_err(sqlite_error)?
                .query_row([id.as_str()], |row| {
                    Ok(StaffRow {
                        id: row.get(0)?,
                        roles: row.get(1)?,
                        team: row.get(2)?,
                        entity: row.get(3)?,
                        country: row.get(4)?,
                        region: row.get(5)?,
                        shift: row.get(6)?,
                        updated_at_ms: row.get(7)?,
                    })
                })
                .optional()
                .map_err(sqlite_error)?;
            row.map(StaffRow::into_record).transpose()
        })
        .await
    }

    async fn add_hr_fact(&self, fact: &HrFact) -> Result<(), StoreError> {
        directory::check_hr_fact(fact)?;
        let fact = fact.clone();
        Shared::with_writer(&self.shared, move |connection| {
            insert_per_staff(
                connection,
                PerStaff {
                    table: "hr_facts",
                    limit: "HR_FACTS_PER_STAFF_MAX",
                    max: HR_FACTS_PER_STAFF_MAX,
                },
                &fact.staff,
                |transaction| {
                    transaction
                        .execute(
                            &format!("INSERT INTO hr_facts ({HR_FACT_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5)"),
                            params![
                                fact.staff.as_str(),
                                fact.at_ms,
                                fact.event.as_str(),
                                fact.country,
                                fact.until_ms
                            ],
                        )
                        .map_err(sqlite_error)
                },
            )
        })
        .await
    }

    async fn hr_facts(&self, staff: &StaffId) -> Result<Vec<HrFact>, StoreError> {
        let staff = staff.clone();
        Shared::with_reader(&self.shared, move |connection| {
            let mut select = connection
                .prepare_cached(&format!(
                    "SELECT {HR_FACT_COLUMNS} FROM hr_facts WHERE staff_id = ?1 ORDER BY at_ms, seq"
                ))
                .map_err(sqlite_error)?;
            let rows = select
                .query_map([staff.as_str()], |row| {
                    Ok((
                        row.get::<_, String>(0)?,
                        row.get(1)?,
                        row.get::<_, String>(2)?,
                        row.get(3)?,
                        row.get(4)?,
                    ))
                })
                .map_err(sqlite_error)?;
            rows.map(|row| {
                let (staff, at_ms, event, country, until_ms) = row.map_err(sqlite_error)?;
                directory::hr_fact_from_columns(&staff, at_ms, &event, country, until_ms)
            })
            .collect()
        })
        .await
    }

    async fn add_on_call(&self, period: &OnCall) -> Result<(), StoreError> {
        directory::check_on_call(period)?;
        let period = period.clone();
        Shared::with_writer(&self.shared, move |connection| {
            insert_per_staff(
                connection,
                PerStaff {
                    table: "on_call",
                    limit: "ON_CALL_PER_STAFF_MAX",
                    max: ON_CALL_PER_STAFF_MAX,
                },
                &period.staff,
                |transaction| {
                    transaction
                        .execute(
                            &format!("INSERT INTO on_call ({ON_CALL_COLUMNS}) VALUES (?1, ?2, ?3)"),
                            params![period.staff.as_str(), period.from_ms, period.until_ms],
                        )
                        .map_err(sqlite_error)
                },
            )
        })
        .await
    }

    async fn on_call(&self, staff: &StaffId) -> Result<Vec<OnCall>, StoreError> {
        let staff = staff.clone();
        Shared::with_reader(&self.shared, move |connection| {
            let mut select = connection
                .prepare_cached(&format!(
                    "SELECT {ON_CALL_COLUMNS} FROM on_call WHERE staff_id = ?1 ORDER BY from_ms, seq"
                ))
                .map_err(sqlite_error)?;
            let rows = select
                .query_map([staff.as_str()], |row| {
                    Ok((row.get::<_, String>(0)?, row.get(1)?, row.get(2)?))
                })
                .map_err(sqlite_error)?;
            rows.map(|row| {
                let (staff, from_ms, until_ms) = row.map_err(sqlite_error)?;
                directory::on_call_from_columns(&staff, from_ms, until_ms)
            })
            .collect()
        })
        .await
    }

    async fn create_case(&self, case: &CaseRecord) -> Result<(), StoreError> {
        let row = CaseRow::new(case)?;
        Shared::with_writer(&self.shared, move |connection| {
            let inserted = connection
                .prepare_cached(&format!(
                    "INSERT INTO cases ({CASE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
                     ON CONFLICT (id) DO NOTHING"
                ))
                .map_err(sqlite_error)?
                .execute(params![
                    row.id,
                    row.purpose,
                    row.open,
                    row.assignees,
                    row.subjects,
                    row.requested_by,
                    row.legal_process,
                    row.destinations,
                    row.created_at_ms,
                    row.updated_at_ms
                ])
                .map_err(sqlite_error)?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists {
                    what: "case",
                    id: row.id,
                });
            }
            Ok(())
        })
        .await
    }

    async fn update_case(&self, case: &CaseRecord) -> Result<(), StoreError> {
        let row = CaseRow::new(case)?;
        Shared::with_writer(&self.shared, move |connection| {
            let updated = connection
                .prepare_cached(
                    "UPDATE cases SET purpose = ?2, open = ?3, assignees = ?4, subjects = ?5, \
                     requested_by = ?6, legal_process = ?7, destinations = ?8, updated_at_ms = ?9 \
                     WHERE id = ?1",
                )
                .map_err(sqlite_error)?
                .execute(params![
                    row.id,
                    row.purpose,
                    row.open,
                    row.assignees,
                    row.subjects,
                    row.requested_by,
                    row.legal_process,
                    row.destinations,
                    row.updated_at_ms
                ])
                .map_err(sqlite_error)?;
            if updated == 0 {
                return Err(StoreError::NotFound {
                    what: "case",
                    id: row.id,
                });
            }
            Ok(())
        })
        .await
    }

    async fn case(&self, id: &str) -> Result<Option<CaseRecord>, StoreError> {
        let id = id.to_owned();
        Shared::with_reader(&self.shared, move |connection| {
            let row = connection
                .prepare_cached(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ?1"))
                .map_err(sqlite_error)?
                .query_row([id], |row| {
                    Ok(CaseRow {
                        id: row.get(0)?,
                        purpose: row.get(1)?,
                        open: row.get(2)?,
                        assignees: row.get(3)?,
                        subjects: row.get(4)?,
                        requested_by: row.get(5)?,
                        legal_process: row.get(6)?,
                        destinations: row.get(7)?,
                        created_at_ms: row.get(8)?,
                        updated_at_ms: row.get(9)?,
                    })
                })
                .optional()
                .map_err(sqlite_error)?;
            row.map(CaseRow::into_record).transpose()
        })
        .await
    }

    async fn create_access_request(&self, request: &AccessRequestRecord) -> Result<(), StoreError> {
        let row = RequestRow::new(request)?;
        Shared::with_writer(&self.shared, move |connection| {
            let inserted = connection
                .prepare_cached(&format!(
                    "INSERT INTO access_requests ({REQUEST_COLUMNS}) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (id) DO NOTHING"
                ))
                .map_err(sqlite_error)?
                .execute(params![
                    row.id,
                    row.actor,
                    row.created_at_ms,
                    row.expires_at_ms,
                    row.status,
                    row.needs,
                    row.request,
                    row.approvals
                ])
                .map_err(sqlite_error)?;
            if inserted == 0 {
                return Err(StoreError::AlreadyExists {
                    what: "access request",
                    id: row.id,
                });
            }
            Ok(())
        })
        .await
    }

    async fn access_request(&self, id: &str) -> Result<Option<AccessRequestRecord>, StoreError> {
        let id = id.to_owned();
        Shared::with_reader(&self.shared, move |connection| {
            select_request(connection, &id)
        })
        .await
    }

    async fn record_approval(
        &self,
        id: &str,
        approval: &ApprovalRecord,
        status: RequestStatus,
        needs: &[String],
    ) -> Result<AccessRequestRecord, StoreError> {
        directory::check_approval(id, approval, needs)?;
        let (id, approval, needs) = (id.to_owned(), approval.clone(), needs.to_vec());
        Shared::with_writer(&self.shared, move |connection| {
            // IMMEDIATE takes the write lock before the read, so no other writer (in this
            // process or another) can decide the request between the check and the update.
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            let stored =
                select_request(&transaction, &id)?.ok_or_else(|| directory::request_not_found(&id))?;
            let decided = directory::apply_approval(stored, &approval, status, &needs)?;
            let row = RequestRow::new(&decided)?;
            transaction
                .execute(
                    "UPDATE access_requests SET status = ?2, needs = ?3, approvals = ?4 WHERE id = ?1",
                    params![row.id, row.status, row.needs, row.approvals],
                )
                .map_err(sqlite_error)?;
            transaction.commit().map_err(sqlite_error)?;
            Ok(decided)
        })
        .await
    }
}

/// The table and limit of rows kept per staff member.
struct PerStaff {
    table: &'static str,
    limit: &'static str,
    max: usize,
}

/// Counts the staff member's rows and runs `insert` if one more is within the limit, in one
/// `IMMEDIATE` transaction.
fn insert_per_staff(
    connection: &mut Connection,
    per_staff: PerStaff,
    staff: &StaffId,
    insert: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<usize, StoreError>,
) -> Result<(), StoreError> {
    let transaction = connection
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(sqlite_error)?;
    let count: i64 = transaction
        .query_row(
            &format!(
                "SELECT count(*) FROM {} WHERE staff_id = ?1",
                per_staff.table
            ),
            [staff.as_str()],
            |row| row.get(0),
        )
        .map_err(sqlite_error)?;
    directory::check_per_staff(staff, per_staff.limit, count, per_staff.max)?;
    insert(&transaction)?;
    transaction.commit().map_err(sqlite_error)
}

fn select_request(
    connection: &Connection,
    id: &str,
) -> Result<Option<AccessRequestRecord>, StoreError> {
    let columns = connection
        .prepare_cached(&format!(
            "SELECT {REQUEST_COLUMNS} FROM access_requests WHERE id = ?1"
        ))
        .map_err(sqlite_error)?
        .query_row([id], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, String>(1)?,
                (row.get(2)?, row.get(3)?),
                row.get::<_, String>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, String>(7)?,
            ))
        })
        .optional()
        .map_err(sqlite_error)?;
    columns
        .map(|(id, actor, times, status, needs, request, approvals)| {
            RequestRow::decode(id, actor, times, &status, &needs, &request, &approvals)
        })
        .transpose()
}
