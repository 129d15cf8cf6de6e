//! Alerts raised by the detector, kept in the deployment-wide directory: the alerts with their
//! subjects and evidence, the notes of the people who acknowledged or resolved them, their
//! webhook deliveries, and the detector's own checkpoint (per-region cursors and an opaque
//! state snapshot) so that it resumes where it stopped after a restart. Both directory
//! backends implement [`AlertStore`] and pass [`crate::alert_conformance`].
//!
//! As for the rest of the directory, every record is checked here, in one place, before
//! either backend writes: a rejected record writes nothing, and the error names the limit and
//! the record. The status transitions are decided here too ([`apply_transition`]), on the
//! row each backend read under its write lock.
//!
//! The tables (directory schema version 2) are described in [`crate::directory`].

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use model::RegionId;
use serde::{Deserialize, Serialize};

use crate::StoreError;
use crate::directory::{Checker, DIRECTORY_TEXT_BYTES_MAX, from_json, to_json};

/// Most alerts one [`AlertStore::alerts`] page returns ([`AlertFilter::limit`]).
pub const ALERTS_PAGE_MAX: usize = 1_000;
/// Most alerts one [`AlertStore::insert_alerts`] call may carry.
pub const ALERTS_PER_INSERT_MAX: usize = 1_000;
/// Longest alert rule name, in bytes (of `a-z 0-9 _`).
pub const ALERT_RULE_BYTES_MAX: usize = 64;
/// Longest alert summary, in bytes.
pub const ALERT_SUMMARY_BYTES_MAX: usize = 4_096;
/// Most subjects one alert names.
pub const ALERT_SUBJECTS_MAX: usize = 1_000;
/// Most evidence references (log entries) one alert carries.
pub const ALERT_EVIDENCE_MAX: usize = 10_000;
/// Longest note on an acknowledgement or resolution, in bytes.
pub const ALERT_NOTE_BYTES_MAX: usize = 4_096;
/// Longest author (`by`) of a note, in bytes.
pub const ALERT_NOTE_BY_BYTES_MAX: usize = 256;
/// Longest detector checkpoint name, in bytes (of `a-z 0-9 _`).
pub const DETECTOR_NAME_BYTES_MAX: usize = 64;
/// Most region cursors one detector checkpoint holds.
pub const DETECTOR_CURSORS_MAX: usize = 1_000;
/// Largest detector state snapshot, in bytes (256 MiB).
pub const DETECTOR_STATE_BYTES_MAX: usize = 256 * 1024 * 1024;
/// Longest stored delivery error, in bytes; a longer one is cut at a character boundary.
pub const DELIVERY_ERROR_BYTES_MAX: usize = 1_024;
/// Most deliveries one [`AlertStore::due_deliveries`] call returns.
pub const DELIVERIES_DUE_MAX: usize = 1_000;

/// How bad an alert is, from `Info` to `Critical` (one type for the detector and the store).
pub use model::Severity;

/// Where an alert stands: raised, seen by someone, or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
}

/// What a person did to an alert: `Acknowledge` takes an open alert to acknowledged,
/// `Resolve` an open or acknowledged one to resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertAction {
    Acknowledge,
    Resolve,
}

/// One log entry an alert points at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceRef {
    /// A valid region id.
    pub region: String,
    /// The entry's index in the region's log.
    pub index: u64,
    /// The logged request's id; at most [`DIRECTORY_TEXT_BYTES_MAX`] bytes.
    pub request: String,
}

/// An alert as raised by the detector and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertRecord {
    /// 32 lowercase hexadecimal digits, given by the detector (deterministic, so that the
    /// same alert raised again after a restart is recognised).
    pub id: String,
    /// 1 to [`ALERT_RULE_BYTES_MAX`] bytes of `a-z 0-9 _`.
    pub rule: String,
    pub severity: Severity,
    /// The staff or machine id whose access raised the alert.
    pub actor: String,
    /// The subjects concerned, in the detector's order (duplicates kept as given).
    pub subjects: Vec<String>,
    pub evidence: Vec<EvidenceRef>,
    /// The explanation in words.
    pub summary: String,
    /// Time of the log entry that triggered the alert.
    pub at_ms: i64,
    /// When the detector raised it.
    pub raised_at_ms: i64,
    /// Stored as given; the detector raises open alerts.
    pub status: AlertStatus,
    pub updated_at_ms: i64,
}

/// A person's note on an alert, recorded with the action it came with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertNote {
    pub at_ms: i64,
    /// Who acted: 1 to [`ALERT_NOTE_BY_BYTES_MAX`] bytes.
    pub by: String,
    pub action: AlertAction,
    /// At most [`ALERT_NOTE_BYTES_MAX`] bytes; may be empty.
    pub note: String,
}

/// Which alerts to list or count; every field set narrows the set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertFilter {
    pub status: Option<AlertStatus>,
    /// This severity or a worse one.
    pub severity_min: Option<Severity>,
    pub rule: Option<String>,
    pub actor: Option<String>,
    /// Alerts naming this subject.
    pub subject: Option<String>,
    /// `at_ms >= since_ms`.
    pub since_ms: Option<i64>,
    /// `at_ms < until_ms`.
    pub until_ms: Option<i64>,
    /// Page cursor: only alerts strictly older than `(at_ms, id)` in the listing order, i.e.
    /// the `(at_ms, id)` of the last alert of the previous page.
    pub before: Option<(i64, String)>,
    /// 1 to [`ALERTS_PAGE_MAX`]; ignored by [`AlertStore::alert_counts`].
    pub limit: usize,
}

/// The detector's own state, saved so that it resumes after a restart: how far it has read
/// each region's log, and an opaque snapshot of its windows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetectorCheckpoint {
    /// 1 to [`DETECTOR_NAME_BYTES_MAX`] bytes of `a-z 0-9 _`.
    pub name: String,
    /// Region id → the next log index to read; at most [`DETECTOR_CURSORS_MAX`] regions.
    pub cursors: BTreeMap<String, u64>,
    /// At most [`DETECTOR_STATE_BYTES_MAX`] bytes.
    pub state: Vec<u8>,
    pub saved_at_ms: i64,
}

/// A pending webhook delivery of one alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub alert_id: String,
    /// Failed attempts so far.
    pub attempts: u32,
    /// When the next attempt is due.
    pub next_at_ms: i64,
    /// The last failure, at most [`DELIVERY_ERROR_BYTES_MAX`] bytes.
    pub last_error: Option<String>,
}

/// Alerts, their notes and deliveries, and the detector's checkpoint. Every method is one
/// transaction; every write is checked first and writes nothing when the check fails.
#[async_trait]
pub trait AlertStore: Send + Sync {
    /// Inserts the alerts whose id is not stored yet (a stored id is left as it is, not an
    /// error: the detector may raise the same alert again after a restart; within one call
    /// the first alert of an id wins), and when `deliver` queues each newly inserted one for
    /// webhook delivery (`next_at_ms = now_ms`). Every alert is checked before anything is
    /// written; at most [`ALERTS_PER_INSERT_MAX`] alerts (`BatchTooLarge`). Returns the ids
    /// newly inserted, in input order.
    async fn insert_alerts(
        &self,
        alerts: &[AlertRecord],
        deliver: bool,
        now_ms: i64,
    ) -> Result<Vec<String>, StoreError>;

    /// The alerts matching the filter, newest first by `(at_ms, id)` descending, at most
    /// `filter.limit` (1 to [`ALERTS_PAGE_MAX`], else a client error).
    async fn alerts(&self, filter: &AlertFilter) -> Result<Vec<AlertRecord>, StoreError>;

    /// The alert and its notes in the order they were added.
    async fn alert(&self, id: &str) -> Result<Option<(AlertRecord, Vec<AlertNote>)>, StoreError>;

    /// Counts by severity of the alerts matching the filter (`limit` and `before` ignored);
    /// every severity is present, zero when no alert has it.
    async fn alert_counts(
        &self,
        filter: &AlertFilter,
    ) -> Result<BTreeMap<Severity, u64>, StoreError>;

    /// open → acknowledged (`Acknowledge`); open or acknowledged → resolved (`Resolve`).
    /// Appends the note and sets the status and `updated_at_ms = note.at_ms` in one
    /// transaction, compare-and-set on the status: of two concurrent calls, the second sees
    /// the first's result. `NotFound` for an unknown id; any other transition is
    /// `InvalidAlertTransition` (naming the alert, its status and the action) and changes
    /// nothing. Returns the stored alert.
    async fn update_alert(&self, id: &str, note: &AlertNote) -> Result<AlertRecord, StoreError>;

    /// Creates or replaces the checkpoint of `checkpoint.name`.
    async fn save_detector_checkpoint(
        &self,
        checkpoint: &DetectorCheckpoint,
    ) -> Result<(), StoreError>;

    async fn detector_checkpoint(
        &self,
        name: &str,
    ) -> Result<Option<DetectorCheckpoint>, StoreError>;

    /// Deliveries due at `now_ms` (`next_at_ms <= now_ms`, neither delivered nor given up),
    /// oldest first by `(next_at_ms, alert_id)`, with their alerts; at most `limit` (1 to
    /// [`DELIVERIES_DUE_MAX`], else a client error).
    async fn due_deliveries(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(Delivery, AlertRecord)>, StoreError>;

    /// Marks the alert's pending delivery delivered; it is never due again. `NotFound`
    /// (`pending alert delivery`) when the alert has no pending delivery.
    async fn delivery_succeeded(&self, alert_id: &str, at_ms: i64) -> Result<(), StoreError>;

    /// Records a failed attempt (`attempts += 1`, `last_error` cut to
    /// [`DELIVERY_ERROR_BYTES_MAX`]); the delivery is due again at `next_at_ms`, or never
    /// when `give_up`. `NotFound` when the alert has no pending delivery.
    async fn delivery_failed(
        &self,
        alert_id: &str,
        error: &str,
        next_at_ms: i64,
        give_up: bool,
    ) -> Result<(), StoreError>;
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 3] = [
        AlertStatus::Open,
        AlertStatus::Acknowledged,
        AlertStatus::Resolved,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Open => "open",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Resolved => "resolved",
        }
    }
}

impl AlertAction {
    pub const ALL: [AlertAction; 2] = [AlertAction::Acknowledge, AlertAction::Resolve];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertAction::Acknowledge => "acknowledge",
            AlertAction::Resolve => "resolve",
        }
    }

    /// The status this action leads to from `from`, or `None` when it does not apply.
    pub fn apply(self, from: AlertStatus) -> Option<AlertStatus> {
        match (self, from) {
            (AlertAction::Acknowledge, AlertStatus::Open) => Some(AlertStatus::Acknowledged),
            (AlertAction::Resolve, AlertStatus::Open | AlertStatus::Acknowledged) => {
                Some(AlertStatus::Resolved)
            }
            (AlertAction::Acknowledge, AlertStatus::Acknowledged | AlertStatus::Resolved)
            | (AlertAction::Resolve, AlertStatus::Resolved) => None,
        }
    }
}

/// Parses the names of [`as_str`](AlertStatus::as_str) and friends; an unknown name is a client
/// error (`InvalidRecord`) naming what was expected.
macro_rules! named {
    ($type:ident, $what:literal) => {
        impl FromStr for $type {
            type Err = StoreError;
            fn from_str(text: &str) -> Result<Self, StoreError> {
                $type::ALL
                    .into_iter()
                    .find(|value| value.as_str() == text)
                    .ok_or_else(|| {
                        let names: Vec<&str> =
                            $type::ALL.iter().map(|value| value.as_str()).collect();
                        StoreError::InvalidRecord {
                            what: $what,
                            id: text.to_owned(),
                            reason: format!("expected one of {}", names.join(", ")),
                        }
                    })
            }
        }

        impl fmt::Display for $type {
            fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str(self.as_str())
            }
        }
    };
}

named!(AlertStatus, "alert status");
named!(AlertAction, "alert action");

/// Columns of `alerts`, in the order both backends read them.
pub(crate) const ALERT_COLUMNS: &str = "id, rule, severity, actor, subjects, evidence, summary, \
     at_ms, raised_at_ms, status, updated_at_ms";
/// Columns of `alert_notes` as read (without `seq` and `alert_id`).
pub(crate) const NOTE_COLUMNS: &str = "at_ms, noted_by, action, note";
/// Columns of `alert_deliveries` as read beside an alert's [`ALERT_COLUMNS`].
pub(crate) const DELIVERY_COLUMNS: &str = "alert_id, attempts, next_at_ms, last_error";
/// Columns of `detector_checkpoints`.
pub(crate) const CHECKPOINT_COLUMNS: &str = "name, cursors, state, saved_at_ms";

/// An alert row as both backends write and read it.
#[derive(Debug, Clone)]
pub(crate) struct AlertRow {
    pub id: String,
    pub rule: String,
    pub severity: String,
    pub actor: String,
    pub subjects: String,
    pub evidence: String,
    pub summary: String,
    pub at_ms: i64,
    pub raised_at_ms: i64,
    pub status: String,
    pub updated_at_ms: i64,
}

/// An alert to insert: its row and its distinct subjects, for `alert_subjects`.
#[derive(Debug, Clone)]
pub(crate) struct PlannedAlert {
    pub row: AlertRow,
    pub subjects: Vec<String>,
}

impl AlertRow {
    /// Checks the alert and encodes it.
    pub fn new(alert: &AlertRecord) -> Result<AlertRow, StoreError> {
        let check = Checker::new("alert", &alert.id);
        let hexadecimal = alert.id.len() == 32
            && alert
                .id
                .bytes()
                .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
        if !hexadecimal {
            return Err(check.invalid("the id is not 32 lowercase hexadecimal digits"));
        }
        check_name(
            &check,
            "rule",
            &alert.rule,
            "ALERT_RULE_BYTES_MAX",
            ALERT_RULE_BYTES_MAX,
        )?;
        check.text("actor", &alert.actor)?;
        check.bytes(
            "ALERT_SUMMARY_BYTES_MAX",
            alert.summary.len(),
            ALERT_SUMMARY_BYTES_MAX,
        )?;
        check.count(
            "ALERT_SUBJECTS_MAX",
            alert.subjects.len(),
            ALERT_SUBJECTS_MAX,
        )?;
        for subject in &alert.subjects {
            check.text("subject", subject)?;
        }
        check.count(
            "ALERT_EVIDENCE_MAX",
            alert.evidence.len(),
            ALERT_EVIDENCE_MAX,
        )?;
        for evidence in &alert.evidence {
            RegionId::new(&evidence.region).map_err(|error| {
                check.invalid(format!("evidence region {:?}: {error}", evidence.region))
            })?;
            check.bytes(
                "DIRECTORY_TEXT_BYTES_MAX",
                evidence.request.len(),
                DIRECTORY_TEXT_BYTES_MAX,
            )?;
        }
        Ok(AlertRow {
            id: alert.id.clone(),
            rule: alert.rule.clone(),
            severity: alert.severity.as_str().to_owned(),
            actor: alert.actor.clone(),
            subjects: to_json(&alert.subjects),
            evidence: to_json(&alert.evidence),
            summary: alert.summary.clone(),
            at_ms: alert.at_ms,
            raised_at_ms: alert.raised_at_ms,
            status: alert.status.as_str().to_owned(),
            updated_at_ms: alert.updated_at_ms,
        })
    }

    pub fn into_record(self) -> Result<AlertRecord, StoreError> {
        Ok(AlertRecord {
            severity: stored("alerts.severity", &self.severity)?,
            subjects: from_json("alerts.subjects", &self.subjects)?,
            evidence: from_json("alerts.evidence", &self.evidence)?,
            status: stored("alerts.status", &self.status)?,
            id: self.id,
            rule: self.rule,
            actor: self.actor,
            summary: self.summary,
            at_ms: self.at_ms,
            raised_at_ms: self.raised_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

/// Checks every alert of an insert before either backend writes, and folds repeated ids
/// (the first alert of an id wins, as a stored one would).
pub(crate) fn plan_insert(alerts: &[AlertRecord]) -> Result<Vec<PlannedAlert>, StoreError> {
    if alerts.len() > ALERTS_PER_INSERT_MAX {
        return Err(StoreError::BatchTooLarge {
            rows: alerts.len(),
            max: ALERTS_PER_INSERT_MAX,
        });
    }
    let mut seen = HashSet::new();
    let mut planned = Vec::with_capacity(alerts.len());
    for alert in alerts {
        let row = AlertRow::new(alert)?;
        if !seen.insert(alert.id.as_str()) {
            continue;
        }
        let mut distinct = HashSet::new();
        let subjects = alert
            .subjects
            .iter()
            .filter(|subject| distinct.insert(subject.as_str()))
            .cloned()
            .collect();
        planned.push(PlannedAlert { row, subjects });
    }
    Ok(planned)
}

/// Checks a note before the backend reads anything.
pub(crate) fn check_note(id: &str, note: &AlertNote) -> Result<(), StoreError> {
    let check = Checker::new("alert", id);
    if note.by.is_empty() {
        return Err(check.invalid("the note has no author"));
    }
    check.bytes(
        "ALERT_NOTE_BY_BYTES_MAX",
        note.by.len(),
        ALERT_NOTE_BY_BYTES_MAX,
    )?;
    check.bytes(
        "ALERT_NOTE_BYTES_MAX",
        note.note.len(),
        ALERT_NOTE_BYTES_MAX,
    )
}

/// The compare-and-set of [`AlertStore::update_alert`], run by both backends on the row they
/// locked: `stored` with the note's action applied.
pub(crate) fn apply_transition(
    mut stored: AlertRecord,
    note: &AlertNote,
) -> Result<AlertRecord, StoreError> {
    let Some(status) = note.action.apply(stored.status) else {
        return Err(StoreError::InvalidAlertTransition {
            id: stored.id,
            status: stored.status,
            action: note.action,
        });
    };
    // INVARIANT: every note is a transition and no transition leads back to `Open`, so an
    // alert holds at most two notes; `alert_notes` needs no per-alert limit.
    stored.status = status;
    stored.updated_at_ms = note.at_ms;
    Ok(stored)
}

pub(crate) fn alert_not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        what: "alert",
        id: id.to_owned(),
    }
}

pub(crate) fn delivery_not_found(alert_id: &str) -> StoreError {
    StoreError::NotFound {
        what: "pending alert delivery",
        id: alert_id.to_owned(),
    }
}

pub(crate) fn note_from_columns(
    at_ms: i64,
    by: String,
    action: &str,
    note: String,
) -> Result<AlertNote, StoreError> {
    Ok(AlertNote {
        at_ms,
        by,
        action: stored("alert_notes.action", action)?,
        note,
    })
}

pub(crate) fn delivery_from_columns(
    alert_id: String,
    attempts: i64,
    next_at_ms: i64,
    last_error: Option<String>,
) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        attempts: u32::try_from(attempts).map_err(|_| {
            StoreError::Corrupt(format!("alert delivery {alert_id}: attempts {attempts}"))
        })?,
        alert_id,
        next_at_ms,
        last_error,
    })
}

/// `error` cut to at most [`DELIVERY_ERROR_BYTES_MAX`] bytes, at a character boundary.
pub(crate) fn truncate_delivery_error(error: &str) -> &str {
    if error.len() <= DELIVERY_ERROR_BYTES_MAX {
        return error;
    }
    let mut end = DELIVERY_ERROR_BYTES_MAX;
    while !error.is_char_boundary(end) {
        end -= 1;
    }
    &error[..end]
}

/// The `limit` of [`AlertStore::due_deliveries`], checked.
pub(crate) fn check_due_limit(limit: usize) -> Result<i64, StoreError> {
    check_limit(
        "due deliveries",
        "DELIVERIES_DUE_MAX",
        limit,
        DELIVERIES_DUE_MAX,
    )
}

/// Checks a checkpoint and encodes its cursors (JSON).
pub(crate) fn check_checkpoint(checkpoint: &DetectorCheckpoint) -> Result<String, StoreError> {
    let check = Checker::new("detector checkpoint", &checkpoint.name);
    check_name(
        &check,
        "name",
        &checkpoint.name,
        "DETECTOR_NAME_BYTES_MAX",
        DETECTOR_NAME_BYTES_MAX,
    )?;
    check.count(
        "DETECTOR_CURSORS_MAX",
        checkpoint.cursors.len(),
        DETECTOR_CURSORS_MAX,
    )?;
    for region in checkpoint.cursors.keys() {
        RegionId::new(region)
            .map_err(|error| check.invalid(format!("cursor region {region:?}: {error}")))?;
    }
    check.bytes(
        "DETECTOR_STATE_BYTES_MAX",
        checkpoint.state.len(),
        DETECTOR_STATE_BYTES_MAX,
    )?;
    Ok(to_json(&checkpoint.cursors))
}

pub(crate) fn checkpoint_from_columns(
    name: String,
    cursors: &str,
    state: Vec<u8>,
    saved_at_ms: i64,
) -> Result<DetectorCheckpoint, StoreError> {
    Ok(DetectorCheckpoint {
        name,
        cursors: from_json("detector_checkpoints.cursors", cursors)?,
        state,
        saved_at_ms,
    })
}

/// A parameter of a statement built by [`FilterSql`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SqlParameter {
    Text(String),
    Integer(i64),
}

/// How the backend numbers parameters: SQLite `?1`, PostgreSQL `$1`.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Placeholder {
    Question,
    Dollar,
}

/// The statements of [`AlertStore::alerts`] and [`AlertStore::alert_counts`] for one filter,
/// built here so that both backends filter alike. Only parameters carry the filter's values.
#[derive(Debug)]
pub(crate) struct FilterSql {
    pub sql: String,
    pub parameters: Vec<SqlParameter>,
}

impl FilterSql {
    /// The page of alerts matching `filter`, newest first. `tables` qualifies table names
    /// (`""` or `"schema".`).
    pub fn page(
        filter: &AlertFilter,
        tables: &str,
        placeholder: Placeholder,
    ) -> Result<FilterSql, StoreError> {
        let limit = check_limit(
            "alert filter",
            "ALERTS_PAGE_MAX",
            filter.limit,
            ALERTS_PAGE_MAX,
        )?;
        let mut built = FilterSql::conditions(filter, tables, placeholder, true);
        let limit = built.bind(SqlParameter::Integer(limit), placeholder);
        built.sql = format!(
            "SELECT {ALERT_COLUMNS} FROM {} ORDER BY at_ms DESC, id DESC LIMIT {limit}",
            built.sql
        );
        Ok(built)
    }

    /// The count by severity of the alerts matching `filter`.
    pub fn counts(filter: &AlertFilter, tables: &str, placeholder: Placeholder) -> FilterSql {
        let mut built = FilterSql::conditions(filter, tables, placeholder, false);
        built.sql = format!(
            "SELECT severity, count(*) FROM {} GROUP BY severity",
            built.sql
        );
        built
    }

    /// The tables and conditions: `alerts …[ WHERE …]`. No column name of `alert_subjects`
    /// (`subject`, `alert_id`) is one of `alerts`, so the statements need no table aliases.
    fn conditions(
        filter: &AlertFilter,
        tables: &str,
        placeholder: Placeholder,
        page: bool,
    ) -> FilterSql {
        let mut built = FilterSql {
            sql: String::new(),
            parameters: Vec::new(),
        };
        let mut conditions = Vec::new();
        if let Some(status) = filter.status {
            let status = built.bind(SqlParameter::Text(status.as_str().to_owned()), placeholder);
            conditions.push(format!("status = {status}"));
        }
        if let Some(minimum) = filter.severity_min {
            let names: Vec<String> = Severity::ALL
                .into_iter()
                .filter(|severity| *severity >= minimum)
                .map(|severity| {
                    built.bind(
                        SqlParameter::Text(severity.as_str().to_owned()),
                        placeholder,
                    )
                })
                .collect();
            conditions.push(format!("severity IN ({})", names.join(", ")));
        }
        if let Some(rule) = &filter.rule {
            let rule = built.bind(SqlParameter::Text(rule.clone()), placeholder);
            conditions.push(format!("rule = {rule}"));
        }
        if let Some(actor) = &filter.actor {
            let actor = built.bind(SqlParameter::Text(actor.clone()), placeholder);
            conditions.push(format!("actor = {actor}"));
        }
        let mut from = format!("{tables}alerts");
        if let Some(subject) = &filter.subject {
            // A join on the (subject, alert_id) primary key of alert_subjects, not a scan of
            // the alerts' JSON; each alert has one row per distinct subject, so the join
            // repeats no alert.
            let subject = built.bind(SqlParameter::Text(subject.clone()), placeholder);
            from.push_str(&format!(
                " JOIN {tables}alert_subjects ON alert_subjects.alert_id = alerts.id"
            ));
            conditions.push(format!("subject = {subject}"));
        }
        if let Some(since_ms) = filter.since_ms {
            let since = built.bind(SqlParameter::Integer(since_ms), placeholder);
            conditions.push(format!("at_ms >= {since}"));
        }
        if let Some(until_ms) = filter.until_ms {
            let until = built.bind(SqlParameter::Integer(until_ms), placeholder);
            conditions.push(format!("at_ms < {until}"));
        }
        if let (true, Some((at_ms, id))) = (page, &filter.before) {
            let at = built.bind(SqlParameter::Integer(*at_ms), placeholder);
            let id = built.bind(SqlParameter::Text(id.clone()), placeholder);
            conditions.push(format!("(at_ms, id) < ({at}, {id})"));
        }
        built.sql = if conditions.is_empty() {
            from
        } else {
            format!("{from} WHERE {}", conditions.join(" AND "))
        };
        built
    }

    /// Adds a parameter; returns its placeholder.
    fn bind(&mut self, parameter: SqlParameter, placeholder: Placeholder) -> String {
        self.parameters.push(parameter);
        let number = self.parameters.len();
        match placeholder {
            Placeholder::Question => format!("?{number}"),
            Placeholder::Dollar => format!("${number}"),
        }
    }
}

/// Every severity with its count, zero where `counted` has none.
pub(crate) fn severity_counts(
    counted: impl IntoIterator<Item = (String, i64)>,
) -> Result<BTreeMap<Severity, u64>, StoreError> {
    let mut counts: BTreeMap<Severity, u64> = Severity::ALL
        .into_iter()
        .map(|severity| (severity, 0))
        .collect();
    for (severity, count) in counted {
        let count = u64::try_from(count)
            .map_err(|_| StoreError::Corrupt(format!("negative alert count {count}")))?;
        counts.insert(stored("alerts.severity", &severity)?, count);
    }
    Ok(counts)
}

/// A page or batch limit of 1 to `max`, as the `i64` both backends bind.
fn check_limit(
    what: &'static str,
    limit_name: &'static str,
    limit: usize,
    max: usize,
) -> Result<i64, StoreError> {
    let check = Checker::new(what, "limit");
    if limit == 0 {
        return Err(check.invalid(format!("the limit must be 1 to {max}")));
    }
    check.count(limit_name, limit, max)?;
    // INVARIANT: max is a small constant, so a limit within it fits an i64.
    Ok(i64::try_from(limit).expect("a checked limit fits an i64"))
}

/// 1 to `max` bytes of `a-z 0-9 _`.
fn check_name(
    check: &Checker<'_>,
    name: &str,
    value: &str,
    limit: &'static str,
    max: usize,
) -> Result<(), StoreError> {
    check.bytes(limit, value.len(), max)?;
    let valid = !value.is_empty()
        && value
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_');
    if !valid {
        return Err(check.invalid(format!(
            "{name} {value:?} is not 1 to {max} of a-z, 0-9 and '_'"
        )));
    }
    Ok(())
}

/// A stored name read back: an unknown one means the database is corrupt, not the request.
fn stored<T: FromStr>(column: &str, text: &str) -> Result<T, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("{column}: unknown value {text:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_order_from_info_to_critical_and_parse_their_names() {
        let mut sorted = Severity::ALL;
        sorted.sort();
        assert_eq!(sorted, Severity::ALL);
        assert!(Severity::Info < Severity::Low && Severity::High < Severity::Critical);
        for severity in Severity::ALL {
            assert_eq!(severity.as_str().parse::<Severity>().unwrap(), severity);
            assert_eq!(
                serde_json::to_string(&severity).unwrap(),
                format!("\"{severity}\"")
            );
        }
        for status in AlertStatus::ALL {
            assert_eq!(status.as_str().parse::<AlertStatus>().unwrap(), status);
            assert_eq!(
                serde_json::to_string(&status).unwrap(),
                format!("\"{status}\"")
            );
        }
        for action in AlertAction::ALL {
            assert_eq!(action.as_str().parse::<AlertAction>().unwrap(), action);
            assert_eq!(
                serde_json::to_string(&action).unwrap(),
                format!("\"{action}\"")
            );
        }
        match "acknowledged_twice".parse::<AlertAction>() {
            Err(StoreError::InvalidRecord { what, id, reason }) => {
                assert_eq!((what, id.as_str()), ("alert action", "acknowledged_twice"));
                assert_eq!(reason, "expected one of acknowledge, resolve");
            }
            other => panic!("expected InvalidRecord, got {other:?}"),
        }
    }

    #[test]
    fn transitions() {
        use AlertAction::{Acknowledge, Resolve};
        use AlertStatus::{Acknowledged, Open, Resolved};
        let table = [
            (Acknowledge, Open, Some(Acknowledged)),
            (Acknowledge, Acknowledged, None),
            (Acknowledge, Resolved, None),
            (Resolve, Open, Some(Resolved)),
            (Resolve, Acknowledged, Some(Resolved)),
            (Resolve, Resolved, None),
        ];
        for (action, from, to) in table {
            assert_eq!(action.apply(from), to, "{action} from {from}");
        }
        let error = StoreError::InvalidAlertTransition {
            id: "ab".repeat(16),
            status: Resolved,
            action: Acknowledge,
        };
        assert_eq!(
            error.to_string(),
            format!(
                "cannot acknowledge alert {}: it is resolved",
                "ab".repeat(16)
            )
        );
    }

    #[test]
    fn delivery_errors_are_cut_at_a_character_boundary() {
        let check = |error: &str, expected_bytes: usize| {
            let cut = truncate_delivery_error(error);
            assert_eq!(cut.len(), expected_bytes, "{error:?}");
            assert!(error.starts_with(cut));
        };
        check("", 0);
        check(
            &"a".repeat(DELIVERY_ERROR_BYTES_MAX),
            DELIVERY_ERROR_BYTES_MAX,
        );
        check(
            &"a".repeat(DELIVERY_ERROR_BYTES_MAX + 1),
            DELIVERY_ERROR_BYTES_MAX,
        );
        // A 4-byte character straddling the limit is dropped whole.
        check(
            &format!("{}🦀", "a".repeat(DELIVERY_ERROR_BYTES_MAX - 2)),
            DELIVERY_ERROR_BYTES_MAX - 2,
        );
    }

    #[test]
    fn filters_bind_every_value_as_a_parameter() {
        let check = |filter: AlertFilter,
                     placeholder: Placeholder,
                     sql: &str,
                     parameters: &[SqlParameter]| {
            let built = FilterSql::page(&filter, "\"s\".", placeholder).unwrap();
            assert_eq!(built.sql, sql);
            assert_eq!(built.parameters, parameters);
        };
        let columns = ALERT_COLUMNS;
        check(
            AlertFilter {
                limit: 5,
                ..AlertFilter::default()
            },
            Placeholder::Question,
            &format!("SELECT {columns} FROM \"s\".alerts ORDER BY at_ms DESC, id DESC LIMIT ?1"),
            &[SqlParameter::Integer(5)],
        );
        check(
            AlertFilter {
                status: Some(AlertStatus::Open),
                severity_min: Some(Severity::High),
                rule: Some("r'; DROP".to_owned()),
                actor: Some("a".to_owned()),
                subject: Some("s".to_owned()),
                since_ms: Some(1),
                until_ms: Some(2),
                before: Some((3, "c".repeat(32))),
                limit: 1_000,
            },
            Placeholder::Dollar,
            &format!(
                "SELECT {columns} FROM \"s\".alerts JOIN \"s\".alert_subjects \
                 ON alert_subjects.alert_id = alerts.id WHERE status = $1 AND severity IN ($2, $3) \
                 AND rule = $4 AND actor = $5 AND subject = $6 AND at_ms >= $7 AND at_ms < $8 \
                 AND (at_ms, id) < ($9, $10) ORDER BY at_ms DESC, id DESC LIMIT $11"
            ),
            &[
                SqlParameter::Text("open".to_owned()),
                SqlParameter::Text("high".to_owned()),
                SqlParameter::Text("critical".to_owned()),
                SqlParameter::Text("r'; DROP".to_owned()),
                SqlParameter::Text("a".to_owned()),
                SqlParameter::Text("s".to_owned()),
                SqlParameter::Integer(1),
                SqlParameter::Integer(2),
                SqlParameter::Integer(3),
                SqlParameter::Text("c".repeat(32)),
                SqlParameter::Integer(1_000),
            ],
        );
        let counts = FilterSql::counts(
            &AlertFilter {
                before: Some((3, "c".repeat(32))),
                limit: 0,
                ..AlertFilter::default()
            },
            "",
            Placeholder::Question,
        );
        assert_eq!(
            counts.sql,
            "SELECT severity, count(*) FROM alerts GROUP BY severity"
        );
        assert_eq!(counts.parameters, []);
    }
}
