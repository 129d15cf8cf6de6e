//! The deployment-wide directory: facts about staff (roles, team, entity, shift, HR events,
//! on-call periods), the cases that explain access, access requests waiting for a second
//! person's approval, and the detector's alerts ([`crate::alerts`]). One per deployment, not
//! per region: SQLite `<data>/directory.db` ([`crate::SqliteDirectory`]) or one PostgreSQL
//! schema, by default [`POSTGRES_DIRECTORY_SCHEMA_DEFAULT`] ([`crate::PostgresDirectory`]).
//! Both backends pass [`crate::directory_conformance`] and [`crate::alert_conformance`].
//!
//! Every record is checked here, in one place, before either backend writes: ids, formats
//! (country codes, `HH:MM` shift times, SHA-256 digests) and the limits below. A rejected
//! record writes nothing, and the error names the limit and the record's id.
//!
//! # Schema (version [`DIRECTORY_SCHEMA_VERSION`])
//!
//! ```text
//! schema_migrations(version PK, applied_at_ms)
//! staff(id PK, roles JSON array, team NULL, entity NULL, country NULL, region NULL,
//!       shift NULL JSON {"tz","start","end"}, updated_at_ms)
//! hr_facts(seq PK, staff_id, at_ms, event, country NULL, until_ms NULL)
//!     index (staff_id, at_ms, seq); event: HrEvent::as_str(); no foreign key to staff:
//!     the HR feed may name someone before the staff directory does
//! on_call(seq PK, staff_id, from_ms, until_ms)           CHECK from_ms < until_ms
//!     index (staff_id, from_ms, seq)
//! cases(id PK, purpose, open, assignees JSON array, subjects JSON array,
//!       requested_by NULL, legal_process NULL JSON, destinations JSON array,
//!       created_at_ms, updated_at_ms)
//! access_requests(id PK, actor, created_at_ms, expires_at_ms, status, needs JSON array,
//!       request JSON (opaque), approvals JSON array of ApprovalRecord)
//!
//! -- version 2: the detector's alerts (see [`crate::alerts`])
//! alerts(id PK 32 hex, rule, severity, actor, subjects JSON array, evidence JSON array of
//!       {"region","index","request"}, summary, at_ms, raised_at_ms, status, updated_at_ms)
//!     severity: Severity::as_str(); status: AlertStatus::as_str()
//!     indexes (at_ms, id), (status, at_ms, id), (rule, at_ms, id), (actor, at_ms, id):
//!     each listing filter walks an index newest first
//! alert_subjects(subject, alert_id FK alerts, PK (subject, alert_id))
//!     one row per distinct subject of an alert: the subject filter's index
//! alert_notes(seq PK, alert_id FK alerts, at_ms, noted_by, action, note)
//!     index (alert_id, seq); action: AlertAction::as_str(); at most two per alert
//!     (acknowledge, resolve)
//! alert_deliveries(alert_id PK FK alerts, state, attempts, next_at_ms, last_error NULL,
//!       delivered_at_ms NULL)
//!     state: pending, delivered or given_up; partial index (next_at_ms, alert_id)
//!     WHERE state = 'pending' for the due queue
//! detector_checkpoints(name PK, cursors JSON {region: next index}, state bytes, saved_at_ms)
//! ```
//!
//! Lists are JSON text columns: they are always read and written whole with their record,
//! and nothing queries inside them (an alert's subjects are also in `alert_subjects`, which
//! is what the subject filter reads). `seq` orders facts, periods and notes that share a
//! time in the order they were added. Alerts are never deleted.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use model::{RegionId, StaffId, SubjectId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::StoreError;

/// The directory schema version this build writes and understands.
pub const DIRECTORY_SCHEMA_VERSION: i64 = 2;
/// The SQLite directory's file name in the data directory.
pub const DIRECTORY_FILE_NAME: &str = "directory.db";
/// The PostgreSQL schema of the directory unless configured otherwise. A region named
/// `directory` would map to the same schema; deployments must not name a region so.
pub const POSTGRES_DIRECTORY_SCHEMA_DEFAULT: &str = "custos_directory";

/// Longest case or access request id, in bytes (of `A-Z a-z 0-9 . _ : -`).
pub const RECORD_ID_BYTES_MAX: usize = 128;
/// Longest short text: a role, team, entity, time zone, destination, approval kind, actor,
/// approver, legal process kind or issuer.
pub const DIRECTORY_TEXT_BYTES_MAX: usize = 256;
/// Most roles of one staff member.
pub const STAFF_ROLES_MAX: usize = 64;
/// Most HR facts stored for one staff member.
pub const HR_FACTS_PER_STAFF_MAX: usize = 1_000;
/// Most on-call periods stored for one staff member.
pub const ON_CALL_PER_STAFF_MAX: usize = 1_000;
/// Longest case purpose, in bytes.
pub const CASE_PURPOSE_BYTES_MAX: usize = 4_096;
/// Most staff assigned to one case.
pub const CASE_ASSIGNEES_MAX: usize = 1_000;
/// Most subjects one case covers.
pub const CASE_SUBJECTS_MAX: usize = 10_000;
/// Most destinations (where revealed data may go) of one case.
pub const CASE_DESTINATIONS_MAX: usize = 64;
/// Largest stored access request (its JSON text), in bytes.
pub const REQUEST_BYTES_MAX: usize = 65_536;
/// Most approval kinds one request may still need, and one approval may satisfy.
pub const REQUEST_NEEDS_MAX: usize = 16;
/// Most approvals recorded on one request.
pub const REQUEST_APPROVALS_MAX: usize = 32;
/// Longest approval note, in bytes.
pub const APPROVAL_NOTE_BYTES_MAX: usize = 4_096;

/// Columns of `staff`, in the order both backends read them.
pub(crate) const STAFF_COLUMNS: &str =
    "id, roles, team, entity, country, region, shift, updated_at_ms";
/// Columns of `hr_facts` as read (without `seq`).
pub(crate) const HR_FACT_COLUMNS: &str = "staff_id, at_ms, event, country, until_ms";
/// Columns of `on_call` as read (without `seq`).
pub(crate) const ON_CALL_COLUMNS: &str = "staff_id, from_ms, until_ms";
/// Columns of `cases`, in the order both backends read them.
pub(crate) const CASE_COLUMNS: &str = "id, purpose, open, assignees, subjects, requested_by, \
     legal_process, destinations, created_at_ms, updated_at_ms";
/// Columns of `access_requests`, in the order both backends read them.
pub(crate) const REQUEST_COLUMNS: &str =
    "id, actor, created_at_ms, expires_at_ms, status, needs, request, approvals";

/// What the directory knows about one staff member. An upsert replaces every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffRecord {
    pub id: StaffId,
    pub roles: Vec<String>,
    pub team: Option<String>,
    pub entity: Option<String>,
    /// ISO 3166-1 alpha-2, uppercase.
    pub country: Option<String>,
    /// Home region of the staff member's entity.
    pub region: Option<String>,
    pub shift: Option<Shift>,
    pub updated_at_ms: i64,
}

/// Working hours in a time zone; `end` before `start` means the shift crosses midnight.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shift {
    /// An IANA time zone name; not checked against a database here.
    pub tz: String,
    /// `HH:MM`, 24-hour.
    pub start: String,
    /// `HH:MM`, 24-hour.
    pub end: String,
}

/// One fact from HR about a staff member, at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HrFact {
    pub staff: StaffId,
    pub at_ms: i64,
    pub event: HrEvent,
    /// Where, for travel: ISO 3166-1 alpha-2, uppercase.
    pub country: Option<String>,
    /// When the fact stops applying, if it does (not before `at_ms`).
    pub until_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HrEvent {
    DismissalNotice,
    Leaving,
    Travel,
    NewHire,
}

/// A period in which a staff member is on call: `from_ms` inclusive, `until_ms` exclusive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OnCall {
    pub staff: StaffId,
    pub from_ms: i64,
    pub until_ms: i64,
}

/// A case: the reason staff may access some subjects' data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseRecord {
    /// 1 to [`RECORD_ID_BYTES_MAX`] bytes of `A-Z a-z 0-9 . _ : -`.
    pub id: String,
    pub purpose: String,
    pub open: bool,
    pub assignees: Vec<StaffId>,
    pub subjects: Vec<SubjectId>,
    /// The data subject who asked for the case, if one did.
    pub requested_by: Option<SubjectId>,
    pub legal_process: Option<LegalProcess>,
    pub destinations: Vec<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// The legal document behind a case (a court order, a subpoena…), known by its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegalProcess {
    pub kind: String,
    pub issuer: String,
    /// 64 lowercase hexadecimal digits.
    pub document_sha256: String,
    pub validated: bool,
    pub validated_by: Option<StaffId>,
    /// A legal hold: the case's accesses are not disclosed to the subjects in scope before
    /// this time (ms since the epoch) while the case is open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nondisclosure_until_ms: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Pending,
    Approved,
    Rejected,
}

/// An access request as the service stores it while it waits for approvals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessRequestRecord {
    /// Generated by the service; same alphabet and length as a case id.
    pub id: String,
    /// The staff or machine id that asked.
    pub actor: String,
    pub created_at_ms: i64,
    /// Not before `created_at_ms`.
    pub expires_at_ms: i64,
    pub status: RequestStatus,
    /// Approval kinds still needed, e.g. `["independent", "custodian"]`.
    pub needs: Vec<String>,
    /// The request itself, opaque to the store; at most [`REQUEST_BYTES_MAX`] as JSON text.
    pub request: serde_json::Value,
    pub approvals: Vec<ApprovalRecord>,
}

/// One approver's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub approver: String,
    pub approve: bool,
    pub note: String,
    pub at_ms: i64,
    /// The approval kinds this answer satisfied.
    pub satisfies: Vec<String>,
}

/// The directory. Every method is one transaction; every write is checked first (see the
/// module docs) and writes nothing when the check fails.
#[async_trait]
pub trait DirectoryStore: Send + Sync {
    /// Creates or replaces the staff member's record (every field).
    async fn upsert_staff(&self, staff: &StaffRecord) -> Result<(), StoreError>;

    async fn staff(&self, id: &StaffId) -> Result<Option<StaffRecord>, StoreError>;

    /// Adds a fact; `LimitExceeded` when the staff member already has
    /// [`HR_FACTS_PER_STAFF_MAX`].
    async fn add_hr_fact(&self, fact: &HrFact) -> Result<(), StoreError>;

    /// The staff member's facts ordered by `at_ms`, then in the order they were added.
    async fn hr_facts(&self, staff: &StaffId) -> Result<Vec<HrFact>, StoreError>;

    /// Adds a period; `LimitExceeded` when the staff member already has
    /// [`ON_CALL_PER_STAFF_MAX`].
    async fn add_on_call(&self, period: &OnCall) -> Result<(), StoreError>;

    /// The staff member's periods ordered by `from_ms`, then in the order they were added.
    async fn on_call(&self, staff: &StaffId) -> Result<Vec<OnCall>, StoreError>;

    /// `AlreadyExists` naming the id when a case with this id exists (it is left unchanged).
    async fn create_case(&self, case: &CaseRecord) -> Result<(), StoreError>;

    /// Replaces every field of an existing case except `created_at_ms`, which keeps its stored
    /// value. `NotFound` when there is no such case (none is created).
    async fn update_case(&self, case: &CaseRecord) -> Result<(), StoreError>;

    async fn case(&self, id: &str) -> Result<Option<CaseRecord>, StoreError>;

    /// `AlreadyExists` naming the id when a request with this id exists.
    async fn create_access_request(&self, request: &AccessRequestRecord) -> Result<(), StoreError>;

    async fn access_request(&self, id: &str) -> Result<Option<AccessRequestRecord>, StoreError>;

    /// Appends `approval` and sets status and needs — only if the stored status is still
    /// `Pending` (compare-and-set in one transaction); otherwise `AlreadyDecided`, and nothing
    /// changes. Of two concurrent calls, the second sees the first's result: if the first
    /// decided the request, the second fails; if it left it pending, both approvals are kept.
    /// `NotFound` for an unknown id; `LimitExceeded` past [`REQUEST_APPROVALS_MAX`]. Expiry
    /// is the caller's to check: the store keeps no clock. Returns the stored record.
    async fn record_approval(
        &self,
        id: &str,
        approval: &ApprovalRecord,
        status: RequestStatus,
        needs: &[String],
    ) -> Result<AccessRequestRecord, StoreError>;
}

impl HrEvent {
    pub const ALL: [HrEvent; 4] = [
        HrEvent::DismissalNotice,
        HrEvent::Leaving,
        HrEvent::Travel,
        HrEvent::NewHire,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HrEvent::DismissalNotice => "dismissal_notice",
            HrEvent::Leaving => "leaving",
            HrEvent::Travel => "travel",
            HrEvent::NewHire => "new_hire",
        }
    }
}

impl FromStr for HrEvent {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<Self, StoreError> {
        HrEvent::ALL
            .into_iter()
            .find(|event| event.as_str() == text)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown hr event {text:?}")))
    }
}

impl fmt::Display for HrEvent {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 3] = [
        RequestStatus::Pending,
        RequestStatus::Approved,
        RequestStatus::Rejected,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Rejected => "rejected",
        }
    }
}

impl FromStr for RequestStatus {
    type Err = StoreError;
    fn from_str(text: &str) -> Result<Self, StoreError> {
        RequestStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown request status {text:?}")))
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A staff row as both backends write and read it.
pub(crate) struct StaffRow {
    pub id: String,
    pub roles: String,
    pub team: Option<String>,
    pub entity: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub shift: Option<String>,
    pub updated_at_ms: i64,
}

impl StaffRow {
    /// Checks the record and encodes it.
    pub fn new(staff: &StaffRecord) -> Result<StaffRow, StoreError> {
        let check = Checker::new("staff", staff.id.as_str());
        check.count("STAFF_ROLES_MAX", staff.roles.len(), STAFF_ROLES_MAX)?;
        for role in &staff.roles {
            check.text("role", role)?;
        }
        for text in [&staff.team, &staff.entity].into_iter().flatten() {
            check.text("team or entity", text)?;
        }
        check.country(staff.country.as_deref())?;
        if let Some(region) = &staff.region {
            RegionId::new(region).map_err(|error| check.invalid(error.to_string()))?;
        }
        if let Some(shift) = &staff.shift {
            check.text("shift time zone", &shift.tz)?;
            check.clock_time(&shift.start)?;
            check.clock_time(&shift.end)?;
        }
        Ok(StaffRow {
            id: staff.id.as_str().to_owned(),
            roles: to_json(&staff.roles),
            team: staff.team.clone(),
            entity: staff.entity.clone(),
            country: staff.country.clone(),
            region: staff.region.clone(),
            shift: staff.shift.as_ref().map(to_json),
            updated_at_ms: staff.updated_at_ms,
        })
    }

    pub fn into_record(self) -> Result<StaffRecord, StoreError> {
        Ok(StaffRecord {
            id: staff_id(&self.id)?,
            roles: from_json("staff.roles", &self.roles)?,
            team: self.team,
            entity: self.entity,
            country: self.country,
            region: self.region,
            shift: self
                .shift
                .map(|shift| from_json("staff.shift", &shift))
                .transpose()?,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

pub(crate) fn check_hr_fact(fact: &HrFact) -> Result<(), StoreError> {
    let check = Checker::new("staff", fact.staff.as_str());
    check.country(fact.country.as_deref())?;
    if fact.until_ms.is_some_and(|until_ms| until_ms < fact.at_ms) {
        return Err(check.invalid("hr fact ends before it starts"));
    }
    Ok(())
}

pub(crate) fn hr_fact_from_columns(
    staff: &str,
    at_ms: i64,
    event: &str,
    country: Option<String>,
    until_ms: Option<i64>,
) -> Result<HrFact, StoreError> {
    Ok(HrFact {
        staff: staff_id(staff)?,
        at_ms,
        event: event.parse()?,
        country,
        until_ms,
    })
}

pub(crate) fn check_on_call(period: &OnCall) -> Result<(), StoreError> {
    if period.from_ms >= period.until_ms {
        return Err(Checker::new("staff", period.staff.as_str())
            .invalid("on-call period does not end after it starts"));
    }
    Ok(())
}

pub(crate) fn on_call_from_columns(
    staff: &str,
    from_ms: i64,
    until_ms: i64,
) -> Result<OnCall, StoreError> {
    Ok(OnCall {
        staff: staff_id(staff)?,
        from_ms,
        until_ms,
    })
}

/// The error for a staff member who already has `count` facts or periods.
pub(crate) fn check_per_staff(
    staff: &StaffId,
    limit: &'static str,
    count: i64,
    max: usize,
) -> Result<(), StoreError> {
    let count = usize::try_from(count)
        .map_err(|_| StoreError::Corrupt(format!("negative count {count}")))?;
    Checker::new("staff", staff.as_str()).count(limit, count + 1, max)
}

/// A case row as both backends write and read it.
pub(crate) struct CaseRow {
    pub id: String,
    pub purpose: String,
    pub open: bool,
    pub assignees: String,
    pub subjects: String,
    pub requested_by: Option<String>,
    pub legal_process: Option<String>,
    pub destinations: String,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

impl CaseRow {
    /// Checks the case and encodes it.
    pub fn new(case: &CaseRecord) -> Result<CaseRow, StoreError> {
        let check = Checker::new("case", &case.id);
        check.record_id()?;
        check.bytes(
            "CASE_PURPOSE_BYTES_MAX",
            case.purpose.len(),
            CASE_PURPOSE_BYTES_MAX,
        )?;
        check.count(
            "CASE_ASSIGNEES_MAX",
            case.assignees.len(),
            CASE_ASSIGNEES_MAX,
        )?;
        check.count("CASE_SUBJECTS_MAX", case.subjects.len(), CASE_SUBJECTS_MAX)?;
        check.count(
            "CASE_DESTINATIONS_MAX",
            case.destinations.len(),
            CASE_DESTINATIONS_MAX,
        )?;
        for destination in &case.destinations {
            check.text("destination", destination)?;
        }
        if let Some(process) = &case.legal_process {
            check.text("legal process kind", &process.kind)?;
            check.text("legal process issuer", &process.issuer)?;
            let digest = &process.document_sha256;
            let hexadecimal = digest.len() == 64
                && digest
                    .bytes()
                    .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte));
            if !hexadecimal {
                return Err(check.invalid(format!(
                    "document digest {digest:?} is not 64 lowercase hexadecimal digits"
                )));
            }
        }
        Ok(CaseRow {
            id: case.id.clone(),
            purpose: case.purpose.clone(),
            open: case.open,
            assignees: to_json(&case.assignees),
            subjects: to_json(&case.subjects),
            requested_by: case
                .requested_by
                .as_ref()
                .map(|subject| subject.as_str().to_owned()),
            legal_process: case.legal_process.as_ref().map(to_json),
            destinations: to_json(&case.destinations),
            created_at_ms: case.created_at_ms,
            updated_at_ms: case.updated_at_ms,
        })
    }

    pub fn into_record(self) -> Result<CaseRecord, StoreError> {
        Ok(CaseRecord {
            id: self.id,
            purpose: self.purpose,
            open: self.open,
            assignees: from_json("cases.assignees", &self.assignees)?,
            subjects: from_json("cases.subjects", &self.subjects)?,
            requested_by: self
                .requested_by
                .map(|subject| {
                    SubjectId::new(&subject).map_err(|error| StoreError::Corrupt(error.to_string()))
                })
                .transpose()?,
            legal_process: self
                .legal_process
                .map(|process| from_json("cases.legal_process", &process))
                .transpose()?,
            destinations: from_json("cases.destinations", &self.destinations)?,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
        })
    }
}

/// An access request row as both backends write and read it.
pub(crate) struct RequestRow {
    pub id: String,
    pub actor: String,
    pub created_at_ms: i64,
    pub expires_at_ms: i64,
    pub status: &'static str,
    pub needs: String,
    pub request: String,
    pub approvals: String,
}

impl RequestRow {
    /// Checks the request and encodes it.
    pub fn new(request: &AccessRequestRecord) -> Result<RequestRow, StoreError> {
        let check = Checker::new("access request", &request.id);
        check.record_id()?;
        check.text("actor", &request.actor)?;
        if request.expires_at_ms < request.created_at_ms {
            return Err(check.invalid("expires before it was created"));
        }
        check.needs(&request.needs)?;
        check.count(
            "REQUEST_APPROVALS_MAX",
            request.approvals.len(),
            REQUEST_APPROVALS_MAX,
        )?;
        for approval in &request.approvals {
            check.approval(approval)?;
        }
        let body = to_json(&request.request);
        check.bytes("REQUEST_BYTES_MAX", body.len(), REQUEST_BYTES_MAX)?;
        Ok(RequestRow {
            id: request.id.clone(),
            actor: request.actor.clone(),
            created_at_ms: request.created_at_ms,
            expires_at_ms: request.expires_at_ms,
            status: request.status.as_str(),
            needs: to_json(&request.needs),
            request: body,
            approvals: to_json(&request.approvals),
        })
    }

    /// Decodes a stored row (its status still as text).
    pub fn decode(
        id: String,
        actor: String,
        (created_at_ms, expires_at_ms): (i64, i64),
        status: &str,
        needs: &str,
        request: &str,
        approvals: &str,
    ) -> Result<AccessRequestRecord, StoreError> {
        Ok(AccessRequestRecord {
            id,
            actor,
            created_at_ms,
            expires_at_ms,
            status: status.parse()?,
            needs: from_json("access_requests.needs", needs)?,
            request: from_json("access_requests.request", request)?,
            approvals: from_json("access_requests.approvals", approvals)?,
        })
    }
}

/// Checks an approval before the backend reads anything.
pub(crate) fn check_approval(
    id: &str,
    approval: &ApprovalRecord,
    needs: &[String],
) -> Result<(), StoreError> {
    let check = Checker::new("access request", id);
    check.record_id()?;
    check.approval(approval)?;
    check.needs(needs)
}

/// The compare-and-set of [`DirectoryStore::record_approval`], run by both backends on the
/// row they locked: `stored` with `approval` appended and the new status and needs.
pub(crate) fn apply_approval(
    mut stored: AccessRequestRecord,
    approval: &ApprovalRecord,
    status: RequestStatus,
    needs: &[String],
) -> Result<AccessRequestRecord, StoreError> {
    if stored.status != RequestStatus::Pending {
        return Err(StoreError::AlreadyDecided {
            id: stored.id,
            status: stored.status,
        });
    }
    Checker::new("access request", &stored.id).count(
        "REQUEST_APPROVALS_MAX",
        stored.approvals.len() + 1,
        REQUEST_APPROVALS_MAX,
    )?;
    stored.approvals.push(approval.clone());
    stored.status = status;
    stored.needs = needs.to_vec();
    Ok(stored)
}

pub(crate) fn request_not_found(id: &str) -> StoreError {
    StoreError::NotFound {
        what: "access request",
        id: id.to_owned(),
    }
}

/// Checks on one record, whose kind and id every error names. Shared with [`crate::alerts`].
pub(crate) struct Checker<'a> {
    what: &'static str,
    id: &'a str,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(what: &'static str, id: &'a str) -> Self {
        Checker { what, id }
    }

    pub(crate) fn invalid(&self, reason: impl Into<String>) -> StoreError {
        StoreError::InvalidRecord {
            what: self.what,
            id: self.id.to_owned(),
            reason: reason.into(),
        }
    }

    pub(crate) fn count(
        &self,
        limit: &'static str,
        count: usize,
        max: usize,
    ) -> Result<(), StoreError> {
        if count > max {
            return Err(StoreError::LimitExceeded {
                what: self.what,
                id: self.id.to_owned(),
                limit,
                count,
                max,
            });
        }
        Ok(())
    }

    pub(crate) fn bytes(
        &self,
        limit: &'static str,
        bytes: usize,
        max: usize,
    ) -> Result<(), StoreError> {
        self.count(limit, bytes, max)
    }

    /// Non-empty and at most [`DIRECTORY_TEXT_BYTES_MAX`].
    pub(crate) fn text(&self, name: &str, text: &str) -> Result<(), StoreError> {
        if text.is_empty() {
            return Err(self.invalid(format!("empty {name}")));
        }
        self.bytes(
            "DIRECTORY_TEXT_BYTES_MAX",
            text.len(),
            DIRECTORY_TEXT_BYTES_MAX,
        )
    }

    fn record_id(&self) -> Result<(), StoreError> {
        let valid = !self.id.is_empty()
            && self.id.len() <= RECORD_ID_BYTES_MAX
            && self
                .id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"._:-".contains(&byte));
        if !valid {
            return Err(self.invalid(format!(
                "expected 1 to {RECORD_ID_BYTES_MAX} of A-Z, a-z, 0-9, '.', '_', ':' and '-'"
            )));
        }
        Ok(())
    }

    fn country(&self, country: Option<&str>) -> Result<(), StoreError> {
        match country {
            Some(code) if code.len() != 2 || !code.bytes().all(|b| b.is_ascii_uppercase()) => {
                Err(self.invalid(format!("country {code:?} is not an uppercase alpha-2 code")))
            }
            _ => Ok(()),
        }
    }

    /// `HH:MM`, 00:00 to 23:59.
    fn clock_time(&self, time: &str) -> Result<(), StoreError> {
        let valid = match time.as_bytes() {
            [h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(|b| b.is_ascii_digit()) => {
                (h1 - b'0') * 10 + (h2 - b'0') < 24 && *m1 < b'6'
            }
            _ => false,
        };
        if !valid {
            return Err(self.invalid(format!("shift time {time:?} is not HH:MM")));
        }
        Ok(())
    }

    fn needs(&self, needs: &[String]) -> Result<(), StoreError> {
        self.count("REQUEST_NEEDS_MAX", needs.len(), REQUEST_NEEDS_MAX)?;
        needs
            .iter()
            .try_for_each(|kind| self.text("approval kind", kind))
    }

    fn approval(&self, approval: &ApprovalRecord) -> Result<(), StoreError> {
        self.text("approver", &approval.approver)?;
        self.bytes(
            "APPROVAL_NOTE_BYTES_MAX",
            approval.note.len(),
            APPROVAL_NOTE_BYTES_MAX,
        )?;
        self.needs(&approval.satisfies)
    }
}

fn staff_id(text: &str) -> Result<StaffId, StoreError> {
    StaffId::new(text).map_err(|error| StoreError::Corrupt(error.to_string()))
}

pub(crate) fn to_json<T: Serialize + ?Sized>(value: &T) -> String {
    // INVARIANT: every type stored as JSON is plain data (strings, numbers, booleans, lists
    // and maps with string keys), which serde_json always serializes.
    serde_json::to_string(value).expect("directory records serialize to JSON")
}

pub(crate) fn from_json<T: DeserializeOwned>(column: &str, text: &str) -> Result<T, StoreError> {
    serde_json::from_str(text).map_err(|error| StoreError::Corrupt(format!("{column}: {error}")))
}
