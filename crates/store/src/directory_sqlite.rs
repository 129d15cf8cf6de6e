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
//! -- version 2
//! CREATE TABLE alerts (id TEXT PRIMARY KEY CHECK (length = 32), rule TEXT,
//!     severity TEXT CHECK (info … critical), actor TEXT, subjects TEXT, evidence TEXT,
//!     summary TEXT, at_ms INTEGER, raised_at_ms INTEGER,
//!     status TEXT CHECK (open, acknowledged, resolved), updated_at_ms INTEGER) STRICT;
//! CREATE INDEX alerts_by_time ON alerts (at_ms, id);      -- and by (status | rule | actor, at_ms, id)
//! CREATE TABLE alert_subjects (subject TEXT, alert_id TEXT REFERENCES alerts,
//!     PRIMARY KEY (subject, alert_id)) STRICT, WITHOUT ROWID;
//! CREATE TABLE alert_notes (seq INTEGER PRIMARY KEY, alert_id TEXT REFERENCES alerts,
//!     at_ms INTEGER, noted_by TEXT, action TEXT CHECK (acknowledge, resolve), note TEXT) STRICT;
//! CREATE INDEX alert_notes_by_alert ON alert_notes (alert_id, seq);
//! CREATE TABLE alert_deliveries (alert_id TEXT PRIMARY KEY REFERENCES alerts,
//!     state TEXT CHECK (pending, delivered, given_up), attempts INTEGER, next_at_ms INTEGER,
//!     last_error TEXT NULL, delivered_at_ms INTEGER NULL) STRICT, WITHOUT ROWID;
//! CREATE INDEX alert_deliveries_due ON alert_deliveries (next_at_ms, alert_id)
//!     WHERE state = 'pending';
//! CREATE TABLE detector_checkpoints (name TEXT PRIMARY KEY, cursors TEXT, state BLOB,
//!     saved_at_ms INTEGER) STRICT;
//! ```
//!
//! `cases`, `access_requests`, `alerts` and `detector_checkpoints` keep their rowid: a
//! case's subject list or an alert's evidence can reach hundreds of kilobytes, a detector's
//! state megabytes, and SQLite keeps large rows better in a rowid table.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use model::StaffId;
use rusqlite::types::ToSqlOutput;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params, params_from_iter};

use crate::alerts::{
    self, ALERT_COLUMNS, AlertFilter, AlertNote, AlertRecord, AlertRow, AlertStore,
    CHECKPOINT_COLUMNS, DELIVERY_COLUMNS, Delivery, DetectorCheckpoint, FilterSql, NOTE_COLUMNS,
    Placeholder, PlannedAlert, Severity, SqlParameter,
};
use crate::directory::{
    self, AccessRequestRecord, ApprovalRecord, CASE_COLUMNS, CaseRecord, CaseRow,
    DIRECTORY_FILE_NAME, DIRECTORY_SCHEMA_VERSION, DirectoryStore, HR_FACT_COLUMNS,
    HR_FACTS_PER_STAFF_MAX, HrFact, ON_CALL_COLUMNS, ON_CALL_PER_STAFF_MAX, OnCall,
    REQUEST_COLUMNS, RequestRow, RequestStatus, STAFF_COLUMNS, StaffRecord, StaffRow,
};
use crate::sqlite::{self, Durability, Shared, sqlite_error};
use crate::{SqlitePragmas, StoreError};

/// The point reads every access request makes, their SQL built once (not per call, as the
/// statement cache's key).
static SELECT_STAFF: LazyLock<String> = LazyLock::new(|| format!("SELECT {STAFF_COLUMNS} FROM staff WHERE id = ?1"));
static SELECT_CASE: LazyLock<String> = LazyLock::new(|| format!("SELECT {CASE_COLUMNS} FROM cases WHERE id = ?1"));

/// Ordered migrations: index `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: [&str; DIRECTORY_SCHEMA_VERSION as usize] = [
    r#"
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
"#,
    r#"
CREATE TABLE alerts (
    id TEXT NOT NULL PRIMARY KEY CHECK (length(id) = 32),
    rule TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'low', 'medium', 'high', 'critical')),
    actor TEXT NOT NULL,
    subjects TEXT NOT NULL,
    evidence TEXT NOT NULL,
    summary TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    raised_at_ms INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    updated_at_ms INTEGER NOT NULL
) STRICT;

CREATE INDEX alerts_by_time ON alerts (at_ms, id);
CREATE INDEX alerts_by_status ON alerts (status, at_ms, id);
CREATE INDEX alerts_by_rule ON alerts (rule, at_ms, id);
CREATE INDEX alerts_by_actor ON alerts (actor, at_ms, id);

CREATE TABLE alert_subjects (
    subject TEXT NOT NULL,
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    PRIMARY KEY (subject, alert_id)
) STRICT, WITHOUT ROWID;

CREATE TABLE alert_notes (
    seq INTEGER NOT NULL PRIMARY KEY,
    alert_id TEXT NOT NULL REFERENCES alerts (id),
    at_ms INTEGER NOT NULL,
    noted_by TEXT NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('acknowledge', 'resolve')),
    note TEXT NOT NULL
) STRICT;

CREATE INDEX alert_notes_by_alert ON alert_notes (alert_id, seq);

CREATE TABLE alert_deliveries (
    alert_id TEXT NOT NULL PRIMARY KEY REFERENCES alerts (id),
    state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'given_up')),
    attempts INTEGER NOT NULL CHECK (attempts >= 0),
    next_at_ms INTEGER NOT NULL,
    last_error TEXT,
    delivered_at_ms INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX alert_deliveries_due ON alert_deliveries (next_at_ms, alert_id)
    WHERE state = 'pending';

CREATE TABLE detector_checkpoints (
    name TEXT NOT NULL PRIMARY KEY,
    cursors TEXT NOT NULL,
    state BLOB NOT NULL,
    saved_at_ms INTEGER NOT NULL
) STRICT;
"#,
];

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
        let shared = Shared::open(Self::path_for(dir), &MIGRATIONS, Durability::Synced)?;
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
        Shared::with_point_reader(&self.shared, move |connection| {
            let row = connection
                .prepare_cached(&SELECT_STAFF)
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
        Shared::with_point_reader(&self.shared, move |connection| {
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
        Shared::with_point_reader(&self.shared, move |connection| {
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
        Shared::with_point_reader(&self.shared, move |connection| {
            let row = connection
                .prepare_cached(&SELECT_CASE)
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
        Shared::with_point_reader(&self.shared, move |connection| {
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

#[async_trait]
impl AlertStore for SqliteDirectory {
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
        Shared::with_writer(&self.shared, move |connection| {
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            let inserted = insert_planned(&transaction, planned, deliver.then_some(now_ms))?;
            transaction.commit().map_err(sqlite_error)?;
            Ok(inserted)
        })
        .await
    }

    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRecord>, StoreError> {
        let built = FilterSql::page(filter, "", Placeholder::Question)?;
        Shared::with_reader(&self.shared, move |connection| {
            let mut select = connection
                .prepare_cached(&built.sql)
                .map_err(sqlite_error)?;
            let rows = select
                .query_map(params_from_iter(&built.parameters), |row| alert_row(row, 0))
                .map_err(sqlite_error)?;
            rows.map(|row| row.map_err(sqlite_error)?.into_record())
                .collect()
        })
        .await
    }

    async fn alert(&self, id: &str) -> Result<Option<(AlertRecord, Vec<AlertNote>)>, StoreError> {
        let id = id.to_owned();
        Shared::with_reader(&self.shared, move |connection| {
            // One read transaction, so that the notes match the status read with the alert.
            let transaction = connection.unchecked_transaction().map_err(sqlite_error)?;
            let Some(alert) = select_alert(&transaction, &id)? else {
                return Ok(None);
            };
            let notes = {
                let mut select = transaction
                    .prepare_cached(&format!(
                        "SELECT {NOTE_COLUMNS} FROM alert_notes WHERE alert_id = ?1 ORDER BY seq"
                    ))
                    .map_err(sqlite_error)?;
                let rows = select
                    .query_map([&id], |row| {
                        Ok((
                            row.get(0)?,
                            row.get(1)?,
                            row.get::<_, String>(2)?,
                            row.get(3)?,
                        ))
                    })
                    .map_err(sqlite_error)?;
                rows.map(|row| {
                    let (at_ms, by, action, note) = row.map_err(sqlite_error)?;
                    alerts::note_from_columns(at_ms, by, &action, note)
                })
                .collect::<Result<Vec<_>, _>>()?
            };
            transaction.commit().map_err(sqlite_error)?;
            Ok(Some((alert, notes)))
        })
        .await
    }

    async fn alert_counts(
        &self,
        filter: &AlertFilter,
    ) -> Result<BTreeMap<Severity, u64>, StoreError> {
        let built = FilterSql::counts(filter, "", Placeholder::Question);
        Shared::with_reader(&self.shared, move |connection| {
            let mut select = connection
                .prepare_cached(&built.sql)
                .map_err(sqlite_error)?;
            let rows = select
                .query_map(params_from_iter(&built.parameters), |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(sqlite_error)?;
            let counted = rows.collect::<Result<Vec<_>, _>>().map_err(sqlite_error)?;
            alerts::severity_counts(counted)
        })
        .await
    }

    async fn update_alert(&self, id: &str, note: &AlertNote) -> Result<AlertRecord, StoreError> {
        alerts::check_note(id, note)?;
        let (id, note) = (id.to_owned(), note.clone());
        Shared::with_writer(&self.shared, move |connection| {
            // IMMEDIATE takes the write lock before the read: no other writer can change the
            // status between the check and the update.
            let transaction = connection
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sqlite_error)?;
            let stored =
                select_alert(&transaction, &id)?.ok_or_else(|| alerts::alert_not_found(&id))?;
            let updated = alerts::apply_transition(stored, &note)?;
            transaction
                .execute(
                    "UPDATE alerts SET status = ?2, updated_at_ms = ?3 WHERE id = ?1",
                    params![updated.id, updated.status.as_str(), updated.updated_at_ms],
                )
                .map_err(sqlite_error)?;
            transaction
                .execute(
                    "INSERT INTO alert_notes (alert_id, at_ms, noted_by, action, note) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![
                        updated.id,
                        note.at_ms,
                        note.by,
                        note.action.as_str(),
                        note.note
                    ],
                )
                .map_err(sqlite_error)?;
            transaction.commit().map_err(sqlite_error)?;
            Ok(updated)
        })
        .await
    }

    async fn save_detector_checkpoint(
        &self,
        checkpoint: &DetectorCheckpoint,
    ) -> Result<(), StoreError> {
        let cursors = alerts::check_checkpoint(checkpoint)?;
        // The blocking pool needs the bytes owned: one copy of the state.
        let checkpoint = checkpoint.clone();
        Shared::with_writer(&self.shared, move |connection| {
            connection
                .prepare_cached(&format!(
                    "INSERT INTO detector_checkpoints ({CHECKPOINT_COLUMNS}) VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (name) DO UPDATE SET cursors = excluded.cursors, \
                     state = excluded.state, saved_at_ms = excluded.saved_at_ms"
                ))
                .map_err(sqlite_error)?
                .execute(params![
                    checkpoint.name,
                    cursors,
                    checkpoint.state,
                    checkpoint.saved_at_ms
                ])
                .map_err(sqlite_error)?;
            Ok(())
        })
        .await
    }

    async fn detector_checkpoint(
        &self,
        name: &str,
    ) -> Result<Option<DetectorCheckpoint>, StoreError> {
        let name = name.to_owned();
        Shared::with_reader(&self.shared, move |connection| {
            let columns = connection
                .prepare_cached(&format!(
                    "SELECT {CHECKPOINT_COLUMNS} FROM detector_checkpoints WHERE name = ?1"
                ))
                .map_err(sqlite_error)?
                .query_row([name], |row| {
                    Ok((
                        row.get(0)?,
                        row.get::<_, String>(1)?,
                        row.get(2)?,
                        row.get(3)?,
                    ))
                })
                .optional()
                .map_err(sqlite_error)?;
            columns
                .map(|(name, cursors, state, saved_at_ms)| {
                    alerts::checkpoint_from_columns(name, &cursors, state, saved_at_ms)
                })
                .transpose()
        })
        .await
    }

    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Delivery, AlertRecord)>, StoreError> {
        let limit = alerts::check_due_limit(limit)?;
        Shared::with_reader(&self.shared, move |connection| {
            let mut select = connection
                .prepare_cached(&format!(
                    "SELECT {DELIVERY_COLUMNS}, {ALERT_COLUMNS} FROM alert_deliveries \
                     JOIN alerts ON alerts.id = alert_deliveries.alert_id \
                     WHERE state = 'pending' AND next_at_ms <= ?1 \
                     ORDER BY next_at_ms, alert_id LIMIT ?2"
                ))
                .map_err(sqlite_error)?;
            let rows = select
                .query_map(params![now_ms, limit], |row| {
                    Ok((
                        (row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?),
                        alert_row(row, 4)?,
                    ))
                })
                .map_err(sqlite_error)?;
            rows.map(|row| {
                let ((alert_id, attempts, next_at_ms, last_error), alert) =
                    row.map_err(sqlite_error)?;
                Ok((
                    alerts::delivery_from_columns(alert_id, attempts, next_at_ms, last_error)?,
                    alert.into_record()?,
                ))
            })
            .collect()
        })
        .await
    }

    async fn delivery_succeeded(&self, alert_id: &str, at_ms: i64) -> Result<(), StoreError> {
        let alert_id = alert_id.to_owned();
        Shared::with_writer(&self.shared, move |connection| {
            let updated = connection
                .prepare_cached(
                    "UPDATE alert_deliveries SET state = 'delivered', delivered_at_ms = ?2 \
                     WHERE alert_id = ?1 AND state = 'pending'",
                )
                .map_err(sqlite_error)?
                .execute(params![alert_id, at_ms])
                .map_err(sqlite_error)?;
            if updated == 0 {
                return Err(alerts::delivery_not_found(&alert_id));
            }
            Ok(())
        })
        .await
    }

    async fn delivery_failed(
        &self,
        alert_id: &str,
        error: &str,
        next_at_ms: i64,
        give_up: bool,
    ) -> Result<(), StoreError> {
        let alert_id = alert_id.to_owned();
        let error = alerts::truncate_delivery_error(error).to_owned();
        let state = if give_up { "given_up" } else { "pending" };
        Shared::with_writer(&self.shared, move |connection| {
            let updated = connection
                .prepare_cached(
                    "UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ?2, \
                     next_at_ms = ?3, state = ?4 WHERE alert_id = ?1 AND state = 'pending'",
                )
                .map_err(sqlite_error)?
                .execute(params![alert_id, error, next_at_ms, state])
                .map_err(sqlite_error)?;
            if updated == 0 {
                return Err(alerts::delivery_not_found(&alert_id));
            }
            Ok(())
        })
        .await
    }
}

impl rusqlite::ToSql for SqlParameter {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        match self {
            SqlParameter::Text(text) => text.to_sql(),
            SqlParameter::Integer(integer) => integer.to_sql(),
        }
    }
}

/// Inserts the planned alerts that are not stored yet, with their subjects and, when
/// `deliver_at_ms` is set, their deliveries; returns the ids inserted, in order.
fn insert_planned(
    transaction: &rusqlite::Transaction<'_>,
    planned: Vec<PlannedAlert>,
    deliver_at_ms: Option<i64>,
) -> Result<Vec<String>, StoreError> {
    let mut insert_alert = transaction
        .prepare_cached(&format!(
            "INSERT INTO alerts ({ALERT_COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT (id) DO NOTHING"
        ))
        .map_err(sqlite_error)?;
    let mut insert_subject = transaction
        .prepare_cached("INSERT INTO alert_subjects (subject, alert_id) VALUES (?1, ?2)")
        .map_err(sqlite_error)?;
    let mut insert_delivery = transaction
        .prepare_cached(
            "INSERT INTO alert_deliveries (alert_id, state, attempts, next_at_ms) \
             VALUES (?1, 'pending', 0, ?2)",
        )
        .map_err(sqlite_error)?;
    let mut inserted = Vec::new();
    for PlannedAlert { row, subjects } in planned {
        let added = insert_alert
            .execute(params![
                row.id,
                row.rule,
                row.severity,
                row.actor,
                row.subjects,
                row.evidence,
                row.summary,
                row.at_ms,
                row.raised_at_ms,
                row.status,
                row.updated_at_ms
            ])
            .map_err(sqlite_error)?;
        if added == 0 {
            continue;
        }
        // A new alert has no subject or delivery rows yet: alerts are never deleted.
        for subject in &subjects {
            insert_subject
                .execute(params![subject, row.id])
                .map_err(sqlite_error)?;
        }
        if let Some(at_ms) = deliver_at_ms {
            insert_delivery
                .execute(params![row.id, at_ms])
                .map_err(sqlite_error)?;
        }
        inserted.push(row.id);
    }
    Ok(inserted)
}

fn select_alert(connection: &Connection, id: &str) -> Result<Option<AlertRecord>, StoreError> {
    let row = connection
        .prepare_cached(&format!("SELECT {ALERT_COLUMNS} FROM alerts WHERE id = ?1"))
        .map_err(sqlite_error)?
        .query_row([id], |row| alert_row(row, 0))
        .optional()
        .map_err(sqlite_error)?;
    row.map(AlertRow::into_record).transpose()
}

/// The [`ALERT_COLUMNS`] of `row`, starting at column `first`.
fn alert_row(row: &rusqlite::Row<'_>, first: usize) -> rusqlite::Result<AlertRow> {
    Ok(AlertRow {
        id: row.get(first)?,
        rule: row.get(first + 1)?,
        severity: row.get(first + 2)?,
        actor: row.get(first + 3)?,
        subjects: row.get(first + 4)?,
        evidence: row.get(first + 5)?,
        summary: row.get(first + 6)?,
        at_ms: row.get(first + 7)?,
        raised_at_ms: row.get(first + 8)?,
        status: row.get(first + 9)?,
        updated_at_ms: row.get(first + 10)?,
    })
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

#[cfg(test)]
mod tests {
    use model::SubjectId;

    use super::*;
    use crate::alerts::{AlertStatus, EvidenceRef, Severity};

    fn alert() -> AlertRecord {
        AlertRecord {
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
        }
    }

    #[tokio::test]
    async fn a_version_1_directory_upgrades_in_place() {
        let dir = tempfile::tempdir().unwrap();
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
        {
            let shared =
                Shared::open(SqliteDirectory::path_for(dir.path()), &MIGRATIONS[..1], Durability::Synced).unwrap();
            let version_1 = SqliteDirectory {
                shared: Arc::new(shared),
            };
            assert_eq!(version_1.schema_version().await.unwrap(), 1);
            version_1.upsert_staff(&staff).await.unwrap();
            version_1.create_case(&case).await.unwrap();
        }
        let directory = SqliteDirectory::open(dir.path()).unwrap();
        assert_eq!(directory.schema_version().await.unwrap(), 2);
        assert_eq!(directory.staff(&staff.id).await.unwrap(), Some(staff));
        assert_eq!(directory.case(&case.id).await.unwrap(), Some(case));
        let alert = alert();
        assert_eq!(
            directory
                .insert_alerts(std::slice::from_ref(&alert), false, 0)
                .await
                .unwrap(),
            std::slice::from_ref(&alert.id)
        );
        assert_eq!(
            directory.alert(&alert.id).await.unwrap(),
            Some((alert, Vec::new()))
        );
    }

    /// The query plans of the listing: the subject filter searches `alert_subjects` by its
    /// key, and the other filters walk an index instead of scanning the table.
    #[tokio::test]
    async fn alert_filters_search_by_index() {
        let dir = tempfile::tempdir().unwrap();
        let directory = SqliteDirectory::open(dir.path()).unwrap();
        directory.insert_alerts(&[alert()], false, 0).await.unwrap();
        let connection = Connection::open(directory.path()).unwrap();
        let plan = |filter: AlertFilter| -> String {
            let built = FilterSql::page(&filter, "", Placeholder::Question).unwrap();
            let mut explain = connection
                .prepare(&format!("EXPLAIN QUERY PLAN {}", built.sql))
                .unwrap();
            let details: Vec<String> = explain
                .query_map(params_from_iter(&built.parameters), |row| row.get(3))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            details.join("; ")
        };
        let page = |filter: AlertFilter| AlertFilter {
            limit: 10,
            ..filter
        };
        let by_subject = plan(page(AlertFilter {
            subject: Some("user-1".to_owned()),
            ..AlertFilter::default()
        }));
        assert!(
            by_subject.contains("SEARCH alert_subjects USING PRIMARY KEY (subject=?)"),
            "{by_subject}"
        );
        assert!(!by_subject.contains("SCAN"), "{by_subject}");
        for (filter, index) in [
            (AlertFilter::default(), "alerts_by_time"),
            (
                AlertFilter {
                    rule: Some("after_hours".to_owned()),
                    ..AlertFilter::default()
                },
                "alerts_by_rule",
            ),
            (
                AlertFilter {
                    actor: Some("staff-1".to_owned()),
                    before: Some((5, "f".repeat(32))),
                    ..AlertFilter::default()
                },
                "alerts_by_actor",
            ),
            (
                AlertFilter {
                    status: Some(AlertStatus::Open),
                    ..AlertFilter::default()
                },
                "alerts_by_status",
            ),
        ] {
            let found = plan(page(filter));
            assert!(found.contains(index), "{index}: {found}");
            assert!(!found.contains("TEMP B-TREE"), "{index}: no sort: {found}");
        }
    }
}
