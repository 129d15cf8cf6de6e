//! A data subject's own access report (`GET /v1/subjects/{id}/accesses`): every access
//! decision about them in their region's log, as of a signed checkpoint, each with the
//! entry, its receipt and an inclusion proof against that checkpoint, so that the subject
//! (or anyone they hand the report to) can check it offline with `custos receipt verify
//! --report`.
//!
//! The report is JSON Lines (docs/api.md): a first line describing the report and carrying
//! the checkpoint note, then one line per access. What a line shows of an access
//! ([`ReportAccess`]) is a pure function of the entry ([`summarize`]), so a verifier
//! recomputes it from the entry bytes the proof covers and notices any altered line.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use model::decision_entry::AccessEntry;
use serde::{Deserialize, Serialize};

use crate::subject_token::SubjectBearer;
use crate::{Gate, ServiceError};

/// The `format` of a report's first line.
pub const SUBJECT_REPORT_FORMAT: &str = "custos-subject-report/1";
/// Most accesses one report lists; a report that stops there says `truncated`.
pub const SUBJECT_REPORT_ACCESSES_MAX: usize = 1_000;

/// The report's first line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportHeader {
    /// Always [`SUBJECT_REPORT_FORMAT`].
    pub format: String,
    pub subject: String,
    pub region: String,
    /// The origin of the region's log.
    pub origin: String,
    pub generated_at: DateTime<Utc>,
    /// The signed checkpoint note (C2SP tlog-checkpoint) every proof leads to.
    pub checkpoint: String,
    /// The checkpoint's tree size: the report covers log entries below it.
    pub tree_size: u64,
    /// Accesses younger than this are withheld (the operator's notice delay).
    pub notice_delay_seconds: u64,
    /// How many accesses the notice delay withheld.
    pub withheld: u64,
    /// How many access lines follow.
    pub accesses: u64,
    /// Whether the report stopped at [`SUBJECT_REPORT_ACCESSES_MAX`] accesses.
    pub truncated: bool,
    /// The first log index this page looked at (`from`; 0 on the first page).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub from: u64,
    /// When `truncated`: the `from` of the next page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<u64>,
}

/// One access line: what happened, and the proof that the log holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportLine {
    pub access: ReportAccess,
    pub receipt: ReportReceipt,
    /// The entry as the log holds it (version byte, 32-byte salt, canonical decision), base64.
    pub entry: String,
    /// The RFC 6962 inclusion proof of the entry in the checkpoint's tree, base64 hashes.
    pub proof: Vec<String>,
}

/// Where the entry sits in the log and what it hashes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportReceipt {
    pub origin: String,
    pub index: u64,
    /// `SHA-256(0x00 ‖ entry)`, base64.
    pub leaf_hash: String,
}

/// What one access decision means for the subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportAccess {
    pub at: DateTime<Utc>,
    /// The access request; a request decided again after approval appears twice.
    pub request: String,
    /// `read`, `search`, `export` or `account_control`.
    pub action: String,
    pub purpose: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    /// `allow`, `pending` or `deny`.
    pub decision: String,
    pub fields: Vec<ReportField>,
    pub actor: ReportActor,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    /// The actor was outside the subject's region.
    pub cross_border: bool,
    /// How many approvals the decision relied on.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub approvals: u64,
    pub reasons: Vec<String>,
}

/// One field asked for, and what was granted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportField {
    pub field: String,
    pub requested: String,
    pub decision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
}

/// Who accessed: role, employer and country; the staff id only when the operator says so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportActor {
    /// `staff` or `machine`.
    pub kind: String,
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Only with `[access] report_actor_ids = true`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// Whether a report line names the actor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorIds {
    Shown,
    Hidden,
}

/// A whole report: the first line and the access lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectReport {
    pub header: ReportHeader,
    pub lines: Vec<ReportLine>,
}

impl SubjectReport {
    /// The report as JSON Lines, one `\n` after each line.
    pub fn to_json_lines(&self) -> String {
        // INVARIANT: the report types are strings, integers and lists; serializing cannot fail.
        let mut text = serde_json::to_string(&self.header).expect("report header serializes");
        text.push('\n');
        for line in &self.lines {
            text.push_str(&serde_json::to_string(line).expect("report line serializes"));
            text.push('\n');
        }
        text
    }
}

/// What a report line shows of `entry`. A verifier calls it with the decoded entry bytes
/// and compares.
pub fn summarize(entry: &AccessEntry, actor_ids: ActorIds) -> ReportAccess {
    let non_empty = |text: &str| (!text.is_empty()).then(|| text.to_owned());
    ReportAccess {
        at: DateTime::from_timestamp_millis(entry.at_ms).unwrap_or_default(),
        request: entry.request.clone(),
        action: entry.action.clone(),
        purpose: entry.purpose.clone(),
        case: entry.case.clone(),
        decision: entry.decision.clone(),
        fields: entry
            .fields
            .iter()
            .map(|field| ReportField {
                field: field.field.clone(),
                requested: field.requested.clone(),
                decision: field.decision.clone(),
                view: field.view.clone(),
            })
            .collect(),
        actor: ReportActor {
            kind: entry.actor.kind.clone(),
            roles: entry.actor.roles.clone(),
            entity: non_empty(&entry.actor.entity),
            country: non_empty(&entry.actor.country),
            id: match actor_ids {
                ActorIds::Shown => Some(entry.actor.id.clone()),
                ActorIds::Hidden => None,
            },
        },
        break_glass: entry.break_glass,
        cross_border: entry.cross_border,
        approvals: entry.approved_by.len() as u64,
        reasons: entry.reasons.clone(),
    }
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

impl Gate {
    /// The access report of the subject `bearer` speaks for, as of the latest signed
    /// checkpoint of their region's log: the index is brought level with that checkpoint
    /// first, so no access it covers is missing.
    ///
    /// A page lists the accesses logged at index `from` or later, at most
    /// [`SUBJECT_REPORT_ACCESSES_MAX`]; `next` in its header starts the following page.
    pub async fn subject_report(&self, bearer: &SubjectBearer, from: u64) -> Result<SubjectReport, ServiceError> {
        let log = self.vault().log(&bearer.region)?;
        let crate::SignedCheckpoint { text: note, size, .. } = log.signed_checkpoint().await?;
        let indexed = log.index_subjects_to(size).await?;
        if indexed < size {
            return Err(ServiceError::Log(format!("the subject index of region {} stopped at {indexed} of {size}", bearer.region)));
        }
        let indexes = log.subject_index()?.subject_entries(&bearer.subject, from.min(size), size, SUBJECT_REPORT_ACCESSES_MAX + 1).await?;
        let truncated = indexes.len() > SUBJECT_REPORT_ACCESSES_MAX;
        let next = indexes.get(SUBJECT_REPORT_ACCESSES_MAX).copied();
        let now = self.vault().clock().now();
        let delay = self.settings().report_notice_delay;
        let cutoff_ms = now.timestamp_millis().saturating_sub(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        let actor_ids = if self.settings().report_actor_ids { ActorIds::Shown } else { ActorIds::Hidden };
        let mut lines = Vec::new();
        let mut withheld = 0;
        // Case id → whether a legal hold on it still defers disclosure (looked up once).
        let mut held: std::collections::HashMap<String, bool> = std::collections::HashMap::new();
        for index in indexes.into_iter().take(SUBJECT_REPORT_ACCESSES_MAX) {
            let entry = log.stored_entry(index).await?.ok_or_else(|| ServiceError::Log(format!("entry {index} is indexed but not stored")))?;
            let (_salt, canonical) = sequencer::parse_salted_entry(&entry).map_err(|error| ServiceError::Log(format!("entry {index}: {error}")))?;
            let detect::Entry::Access(access) =
                detect::decode(bearer.region.as_str(), index, canonical).map_err(|error| ServiceError::Log(error.to_string()))?
            else {
                return Err(ServiceError::Log(format!("entry {index} is indexed as an access but is not one")));
            };
            // INVARIANT: the index only lists entries naming this subject; a row that does
            // not is a corrupt index, and showing it would leak another subject's access.
            if access.subject.id != bearer.subject.as_str() {
                return Err(ServiceError::Integrity {
                    subject: bearer.subject.clone(),
                    detail: format!("subject index row for entry {index} names another subject"),
                });
            }
            if access.at_ms > cutoff_ms {
                withheld += 1;
                continue;
            }
            // A legal hold defers the case's accesses without saying so: telling the subject
            // would defeat it. It is in the log (`disclosure_deferral`) for auditors, and
            // ends at its date or when the case closes; then the accesses appear here.
            if let Some(case) = &access.case {
                if !held.contains_key(case) {
                    let holds = match self.directory().case(case).await? {
                        Some(record) => {
                            record.open
                                && record
                                    .legal_process
                                    .as_ref()
                                    .and_then(|process| process.nondisclosure_until_ms)
                                    .is_some_and(|until_ms| until_ms > now.timestamp_millis())
                        }
                        None => false,
                    };
                    held.insert(case.clone(), holds);
                }
                if held[case] {
                    continue;
                }
            }
            let proof = log.inclusion_proof(index, size).await?;
            lines.push(ReportLine {
                access: summarize(&access, actor_ids),
                receipt: ReportReceipt {
                    origin: log.origin().to_owned(),
                    index,
                    leaf_hash: STANDARD.encode(tlog::leaf_hash(&entry).as_bytes()),
                },
                entry: STANDARD.encode(&entry),
                proof: proof.iter().map(|hash| STANDARD.encode(hash.as_bytes())).collect(),
            });
        }
        let header = ReportHeader {
            format: SUBJECT_REPORT_FORMAT.to_owned(),
            subject: bearer.subject.to_string(),
            region: bearer.region.to_string(),
            origin: log.origin().to_owned(),
            generated_at: now,
            checkpoint: note,
            tree_size: size,
            notice_delay_seconds: delay.as_secs(),
            withheld,
            accesses: lines.len() as u64,
            truncated,
            from,
            next,
        };
        Ok(SubjectReport { header, lines })
    }
}
