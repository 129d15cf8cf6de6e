//! The staff directory and the cases, as the platform's integrations write them: staff
//! attributes the identity provider does not carry (shift, HR facts, on-call periods) and the
//! cases (tickets, queue items, legal requests, incidents) that explain access.
//!
//! Input shapes follow the scenario format (shared/scenario-format.md), so the ticketing
//! integration, the HTTP API and scenario replay speak the same JSON.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use model::{StaffId, SubjectId};
use serde::{Deserialize, Serialize};
use store::{CaseRecord, HrEvent, HrFact, LegalProcess, OnCall, Shift, StaffRecord};

use crate::access::{Gate, check_name, invalid};
use crate::ServiceError;

/// A staff member as the directory integration (or configuration) describes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StaffInput {
    pub id: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    /// ISO 3166-1 alpha-2 work country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Home region of the staff member's employing entity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift: Option<ShiftInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShiftInput {
    /// IANA time zone, e.g. `Asia/Shanghai`.
    pub tz: String,
    /// `HH:MM`, local time.
    pub start: String,
    pub end: String,
}

/// A fact from HR about a staff member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HrInput {
    /// `dismissal_notice`, `leaving`, `travel` or `new_hire`.
    pub event: String,
    /// Travel: the country visited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Travel: until when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
}

/// A case as the ticketing integration registers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseInput {
    pub id: String,
    pub purpose: String,
    /// `open` (default) or `closed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default)]
    pub assignees: Vec<String>,
    #[serde(default)]
    pub subjects: Vec<String>,
    /// The subject who asked for this case (their own ticket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_process: Option<LegalProcessInput>,
    /// Export destinations approved for this case.
    #[serde(default)]
    pub destinations: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LegalProcessInput {
    pub kind: String,
    pub issuer: String,
    /// Hex SHA-256 of the legal document.
    pub document_sha256: String,
    #[serde(default)]
    pub validated: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validated_by: Option<String>,
    /// A legal hold (RFC 3339): the case's accesses are left out of the subjects' own
    /// reports until then, or until the case closes if sooner; at most
    /// [`LEGAL_HOLD_DAYS_MAX`] days ahead. Setting or changing it is logged
    /// (`disclosure_deferral`) before it takes effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nondisclosure_until: Option<DateTime<Utc>>,
}

/// Longest legal hold, in days from when it is set; a longer one is renewed by updating the
/// case (and logged again).
pub const LEGAL_HOLD_DAYS_MAX: i64 = 730;

/// A change to a case: status, more assignees or subjects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaseUpdate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default)]
    pub add_assignees: Vec<String>,
    #[serde(default)]
    pub add_subjects: Vec<String>,
    #[serde(default)]
    pub add_destinations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_process: Option<LegalProcessInput>,
}

/// A case as stored, for the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct CaseView {
    pub id: String,
    pub purpose: String,
    pub status: String,
    pub assignees: Vec<String>,
    pub subjects: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub legal_process: Option<LegalProcessInput>,
    pub destinations: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Gate {
    /// Creates or replaces a staff member's directory record.
    pub async fn put_staff(&self, input: &StaffInput) -> Result<(), ServiceError> {
        let id = staff_id("id", &input.id)?;
        for (what, value) in [("team", &input.team), ("entity", &input.entity), ("region", &input.region)] {
            if let Some(value) = value {
                check_name(what, value)?;
            }
        }
        if let Some(country) = &input.country {
            check_country("country", country)?;
        }
        for (index, role) in input.roles.iter().enumerate() {
            check_name(&format!("roles[{index}]"), role)?;
        }
        let shift = match &input.shift {
            Some(shift) => {
                shift.tz.parse::<chrono_tz::Tz>().map_err(|_| invalid("shift.tz", &format!("unknown time zone {:?}", shift.tz)))?;
                for (what, time) in [("shift.start", &shift.start), ("shift.end", &shift.end)] {
                    chrono::NaiveTime::parse_from_str(time, "%H:%M").map_err(|_| invalid(what, &format!("{time:?} is not HH:MM")))?;
                }
                Some(Shift { tz: shift.tz.clone(), start: shift.start.clone(), end: shift.end.clone() })
            }
            None => None,
        };
        let record = StaffRecord {
            id,
            roles: input.roles.clone(),
            team: input.team.clone(),
            entity: input.entity.clone(),
            country: input.country.clone(),
            region: input.region.clone(),
            shift,
            updated_at_ms: self.vault().clock().now().timestamp_millis(),
        };
        Ok(self.directory().upsert_staff(&record).await?)
    }

    /// Records an HR fact about a staff member, at the service clock's time.
    pub async fn add_hr_fact(&self, staff: &str, input: &HrInput) -> Result<(), ServiceError> {
        let staff = staff_id("staff", staff)?;
        let event = HrEvent::from_str(&input.event)
            .map_err(|_| invalid("event", &format!("unknown HR event {:?} (dismissal_notice, leaving, travel, new_hire)", input.event)))?;
        if let Some(country) = &input.country {
            check_country("country", country)?;
        }
        if event == HrEvent::Travel && input.country.is_none() {
            return Err(invalid("country", "travel needs the country visited"));
        }
        let fact = HrFact {
            staff,
            at_ms: self.vault().clock().now().timestamp_millis(),
            event,
            country: input.country.clone(),
            until_ms: input.until.map(|until| until.timestamp_millis()),
        };
        Ok(self.directory().add_hr_fact(&fact).await?)
    }

    /// Records an on-call period from now until `until`.
    pub async fn add_on_call(&self, staff: &str, until: DateTime<Utc>) -> Result<(), ServiceError> {
        let staff = staff_id("staff", staff)?;
        let from = self.vault().clock().now();
        if until <= from {
            return Err(invalid("until", "the on-call period must end after it starts"));
        }
        Ok(self.directory().add_on_call(&OnCall { staff, from_ms: from.timestamp_millis(), until_ms: until.timestamp_millis() }).await?)
    }

    /// Registers a new case.
    pub async fn register_case(&self, input: &CaseInput) -> Result<CaseView, ServiceError> {
        let now_ms = self.vault().clock().now().timestamp_millis();
        let record = CaseRecord {
            id: input.id.clone(),
            purpose: input.purpose.clone(),
            open: open_of(input.status.as_deref())?,
            assignees: staff_ids("assignees", &input.assignees)?,
            subjects: subject_ids("subjects", &input.subjects)?,
            requested_by: input.requested_by.as_deref().map(|id| subject_id("requested_by", id)).transpose()?,
            legal_process: input.legal_process.as_ref().map(|process| legal_process(process, self.vault().clock().now())).transpose()?,
            destinations: input.destinations.clone(),
            created_at_ms: now_ms,
            updated_at_ms: now_ms,
        };
        check_name("purpose", &record.purpose)?;
        for (index, destination) in record.destinations.iter().enumerate() {
            crate::access::check_destination(&format!("destinations[{index}]"), destination)?;
        }
        self.log_legal_hold(&record, None).await?;
        self.directory().create_case(&record).await?;
        Ok(case_view(&record))
    }

    /// Applies an update to a registered case.
    pub async fn update_case(&self, id: &str, update: &CaseUpdate) -> Result<CaseView, ServiceError> {
        let mut record = self.directory().case(id).await?.ok_or_else(|| ServiceError::NotFound(format!("case {id}")))?;
        if let Some(status) = &update.status {
            record.open = open_of(Some(status))?;
        }
        for assignee in staff_ids("add_assignees", &update.add_assignees)? {
            if !record.assignees.contains(&assignee) {
                record.assignees.push(assignee);
            }
        }
        for subject in subject_ids("add_subjects", &update.add_subjects)? {
            if !record.subjects.contains(&subject) {
                record.subjects.push(subject);
            }
        }
        for (index, destination) in update.add_destinations.iter().enumerate() {
            crate::access::check_destination(&format!("add_destinations[{index}]"), destination)?;
            if !record.destinations.contains(destination) {
                record.destinations.push(destination.clone());
            }
        }
        let before = record.legal_process.as_ref().and_then(|process| process.nondisclosure_until_ms);
        if let Some(process) = &update.legal_process {
            record.legal_process = Some(legal_process(process, self.vault().clock().now())?);
        }
        record.updated_at_ms = self.vault().clock().now().timestamp_millis().max(record.updated_at_ms);
        self.log_legal_hold(&record, before).await?;
        self.directory().update_case(&record).await?;
        Ok(case_view(&record))
    }

    /// Logs a case's legal hold when it is new or changed (its end differs from `before`):
    /// one `disclosure_deferral` entry in the region of each subject in scope, durable before
    /// the case is stored, so no access is ever withheld from a subject on an unlogged hold.
    async fn log_legal_hold(&self, record: &CaseRecord, before: Option<i64>) -> Result<(), ServiceError> {
        let Some(process) = &record.legal_process else { return Ok(()) };
        let Some(until_ms) = process.nondisclosure_until_ms else { return Ok(()) };
        if before == Some(until_ms) {
            return Ok(());
        }
        let mut per_region: std::collections::BTreeMap<model::RegionId, Vec<String>> = std::collections::BTreeMap::new();
        for subject in &record.subjects {
            match self.vault().locate_subject(subject).await {
                Ok((region, _)) => per_region.entry(region).or_default().push(subject.to_string()),
                // A subject not stored here (another node's region, or not yet ingested) has
                // nothing in these logs to withhold.
                Err(ServiceError::SubjectNotFound { .. } | ServiceError::RegionNotServed(_)) => {}
                Err(error) => return Err(error),
            }
        }
        let at_ms = self.vault().clock().now().timestamp_millis();
        for (region, subjects) in per_region {
            let entry = model::decision_entry::DisclosureDeferralEntry {
                v: model::decision_entry::DECISION_ENTRY_VERSION,
                kind: "disclosure_deferral".to_owned(),
                at_ms,
                case: record.id.clone(),
                subjects,
                until_ms,
                legal_kind: process.kind.clone(),
                issuer: process.issuer.clone(),
                document_sha256: process.document_sha256.clone(),
            };
            self.vault().append_log(&region, model::decision_entry::encode(&entry)).await?;
        }
        Ok(())
    }

    pub async fn case(&self, id: &str) -> Result<CaseView, ServiceError> {
        let record = self.directory().case(id).await?.ok_or_else(|| ServiceError::NotFound(format!("case {id}")))?;
        Ok(case_view(&record))
    }
}

fn case_view(record: &CaseRecord) -> CaseView {
    CaseView {
        id: record.id.clone(),
        purpose: record.purpose.clone(),
        status: if record.open { "open" } else { "closed" }.to_owned(),
        assignees: record.assignees.iter().map(ToString::to_string).collect(),
        subjects: record.subjects.iter().map(ToString::to_string).collect(),
        requested_by: record.requested_by.as_ref().map(ToString::to_string),
        legal_process: record.legal_process.as_ref().map(|process| LegalProcessInput {
            kind: process.kind.clone(),
            issuer: process.issuer.clone(),
            document_sha256: process.document_sha256.clone(),
            validated: process.validated,
            validated_by: process.validated_by.as_ref().map(ToString::to_string),
            nondisclosure_until: process.nondisclosure_until_ms.map(crate::access::time_of),
        }),
        destinations: record.destinations.clone(),
        created_at: crate::access::time_of(record.created_at_ms),
        updated_at: crate::access::time_of(record.updated_at_ms),
    }
}

fn legal_process(input: &LegalProcessInput, now: DateTime<Utc>) -> Result<LegalProcess, ServiceError> {
    if let Some(until) = input.nondisclosure_until
        && until > now + chrono::Duration::days(LEGAL_HOLD_DAYS_MAX)
    {
        return Err(invalid("legal_process.nondisclosure_until", &format!("a legal hold lasts at most {LEGAL_HOLD_DAYS_MAX} days; renew it by updating the case")));
    }
    check_name("legal_process.kind", &input.kind)?;
    if input.issuer.is_empty() || input.issuer.len() > 256 {
        return Err(invalid("legal_process.issuer", "must be 1 to 256 bytes"));
    }
    let digest = &input.document_sha256;
    if digest.len() != 64 || !digest.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        return Err(invalid("legal_process.document_sha256", "must be 64 hex digits (SHA-256 of the document)"));
    }
    if input.validated && input.validated_by.is_none() {
        return Err(invalid("legal_process.validated_by", "a validated process names who validated it"));
    }
    Ok(LegalProcess {
        kind: input.kind.clone(),
        issuer: input.issuer.clone(),
        document_sha256: digest.to_ascii_lowercase(),
        validated: input.validated,
        validated_by: input.validated_by.as_deref().map(|id| staff_id("legal_process.validated_by", id)).transpose()?,
        nondisclosure_until_ms: input.nondisclosure_until.map(|until| until.timestamp_millis()),
    })
}

fn open_of(status: Option<&str>) -> Result<bool, ServiceError> {
    match status {
        None | Some("open") => Ok(true),
        Some("closed") => Ok(false),
        Some(other) => Err(invalid("status", &format!("must be open or closed, not {other:?}"))),
    }
}

fn staff_id(what: &str, value: &str) -> Result<StaffId, ServiceError> {
    StaffId::new(value).map_err(|error| invalid(what, &error.to_string()))
}

fn subject_id(what: &str, value: &str) -> Result<SubjectId, ServiceError> {
    SubjectId::new(value).map_err(|error| invalid(what, &error.to_string()))
}

fn staff_ids(what: &str, values: &[String]) -> Result<Vec<StaffId>, ServiceError> {
    values.iter().enumerate().map(|(index, value)| staff_id(&format!("{what}[{index}]"), value)).collect()
}

fn subject_ids(what: &str, values: &[String]) -> Result<Vec<SubjectId>, ServiceError> {
    values.iter().enumerate().map(|(index, value)| subject_id(&format!("{what}[{index}]"), value)).collect()
}


fn check_country(what: &str, value: &str) -> Result<(), ServiceError> {
    if value.len() == 2 && value.bytes().all(|byte| byte.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(invalid(what, &format!("{value:?} is not an ISO 3166-1 alpha-2 code such as US")))
    }
}
