//! Accountable access: the flow of one read (DESIGN.md §4). A caller asks for fields of
//! subjects for a purpose on a case; the policy decides per field; the decision is appended
//! to each subject's region log and is durable before any value is unwrapped; only then are
//! the granted views revealed, each answer carrying its receipt.
//!
//! Requests the policy would allow with a second person's approval are stored as pending.
//! Another staff member with an approver role answers them ([`Gate::approve`]); the approval
//! is logged before it takes effect, and the requester then opens the request
//! ([`Gate::open_request`]), which decides again with the approvals and logs that decision.

use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use model::{FieldKind, RegionId, StaffId, SubjectId, View};
use policy::{AccessQuery, Action, ActorKind, ApprovalKind, Approvals, CaseFacts, Outcome, PolicyEngine, SubjectFacts};
use serde::{Deserialize, Serialize};
use store::{AccessRequestRecord, ApprovalRecord, CaseRecord, DirectoryStore, RequestStatus, StaffRecord};

use model::decision_entry::{
    AccessEntry, ActorSnapshot, ApprovalEntry, DECISION_ENTRY_VERSION, FieldDecisionEntry, QuerySnapshot, SubjectSnapshot,
    encode,
};
use crate::log::LogReceipt;
use crate::vault::{FieldReveal, RevealedValue};
use crate::{ServiceError, Vault};

/// Most subjects one access request may name.
pub const ACCESS_SUBJECTS_MAX: usize = 100;
/// Longest justification accepted, in bytes.
pub const JUSTIFICATION_BYTES_MAX: usize = 2_048;
/// Longest purpose, destination, control or case id, in bytes.
pub const ACCESS_NAME_BYTES_MAX: usize = 128;
/// Longest search value, in bytes.
pub const ACCESS_QUERY_BYTES_MAX: usize = 1_024;
/// Longest export destination, in bytes.
pub const DESTINATION_BYTES_MAX: usize = 256;
/// Longest approval note, in bytes.
pub const APPROVAL_NOTE_BYTES_MAX: usize = 2_048;
/// How long a pending request waits for approval (and an approved one may be opened) when
/// the configuration does not say.
pub const APPROVAL_TTL_DEFAULT: Duration = Duration::from_secs(24 * 3600);
/// Roles whose holders may approve colleagues' requests when the configuration does not say.
pub const APPROVER_ROLES_DEFAULT: [&str; 1] = ["privacy_officer"];

/// Who is asking: a staff member or a machine identity, as its verified token and the staff
/// directory describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub id: String,
    pub kind: CallerKind,
    pub roles: Vec<String>,
    pub team: Option<String>,
    pub entity: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerKind {
    Staff,
    Machine,
}

impl Caller {
    /// Fills the attributes the token left out from the directory's record; the token (the
    /// identity provider) wins where both speak.
    pub fn completed_by(mut self, record: Option<&StaffRecord>) -> Caller {
        if let Some(record) = record {
            if self.roles.is_empty() {
                self.roles = record.roles.clone();
            }
            self.team = self.team.or_else(|| record.team.clone());
            self.entity = self.entity.or_else(|| record.entity.clone());
            self.country = self.country.or_else(|| record.country.clone());
            self.region = self.region.or_else(|| record.region.clone());
        }
        self
    }

    pub(crate) fn snapshot(&self, from_country: &str) -> ActorSnapshot {
        ActorSnapshot {
            id: self.id.clone(),
            kind: match self.kind {
                CallerKind::Staff => "staff",
                CallerKind::Machine => "machine",
            }
            .to_owned(),
            roles: self.roles.clone(),
            team: self.team.clone().unwrap_or_default(),
            entity: self.entity.clone().unwrap_or_default(),
            country: self.country.clone().unwrap_or_default(),
            region: self.region.clone().unwrap_or_default(),
            from_country: from_country.to_owned(),
        }
    }
}

/// What a caller asks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AccessInput {
    /// Client-chosen request id (scenario replay, idempotent integrations); generated when
    /// absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// `read`, `search`, `export` or `account_control`.
    #[serde(default = "action_read")]
    pub action: String,
    /// The subjects (not for `search`).
    #[serde(default)]
    pub subjects: Vec<String>,
    /// `search`: exactly one field and its exact value, e.g. `{"email": "a@example.com"}`
    /// (email, phone, ip_address or name). The value is compared by keyed digest and never
    /// logged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<BTreeMap<String, String>>,
    /// Field kind → the view asked for (`exact`, `masked`, `country`, …).
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    pub purpose: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    #[serde(default)]
    pub justification: String,
    #[serde(default)]
    pub break_glass: bool,
    /// Export destination (action `export`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    /// The control to perform (action `account_control`): `reset_2fa`, `change_email`,
    /// `revoke_sessions`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    /// ISO country the caller works from right now; defaults to the caller's work country.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_country: Option<String>,
}

fn action_read() -> String {
    "read".to_owned()
}

/// The answer to an access request.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct AccessAnswer {
    pub request: String,
    pub at: DateTime<Utc>,
    /// `allow` when some field of some subject was granted, `pending` when nothing was but
    /// an approval would, `deny` otherwise.
    pub decision: String,
    pub subjects: Vec<SubjectAnswer>,
    /// When pending: what approvals are needed, and until when they can come.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    /// `search`: matches the policy refused, left out of `subjects` so that a refused search
    /// does not reveal who matched (they are in the log).
    #[serde(skip_serializing_if = "is_zero")]
    pub withheld: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SubjectAnswer {
    pub subject: String,
    pub region: String,
    pub decision: String,
    pub fields: Vec<FieldAnswer>,
    pub policies: Vec<String>,
    pub reasons: Vec<String>,
    /// Where the decision sits in the region's log.
    pub receipt: Receipt,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldAnswer {
    pub field: String,
    pub requested: String,
    pub decision: String,
    /// The granted view (`allow`), or the view an approval would grant (`pending`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// Whether the subject has any value of this field (`allow` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exists: Option<bool>,
    /// The values under the granted view (`allow` only; empty for `exists`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<RevealedValue>>,
}

/// A log receipt: the entry's origin, index and leaf hash, and the entry itself so that the
/// holder can check it offline (`custos receipt verify`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Receipt {
    pub origin: String,
    pub index: u64,
    /// Standard base64 of the 32-byte RFC 6962 leaf hash.
    pub leaf_hash: String,
    /// Standard base64 of the logged entry (salt and canonical decision).
    pub entry: String,
}

impl From<&LogReceipt> for Receipt {
    fn from(receipt: &LogReceipt) -> Self {
        use base64::Engine as _;
        let base64 = base64::engine::general_purpose::STANDARD;
        Receipt {
            origin: receipt.origin.clone(),
            index: receipt.index.0,
            leaf_hash: base64.encode(receipt.leaf_hash.as_bytes()),
            entry: base64.encode(&receipt.entry),
        }
    }
}

/// What an approver sees of a pending request: the request and the reasons, never a value.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct PendingView {
    pub request: String,
    pub requester: String,
    pub status: String,
    pub needs: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    #[schema(value_type = Object)]
    pub asked: serde_json::Value,
    /// Per subject: what the policy would grant with approval, and why it waits.
    #[schema(value_type = Object)]
    pub decisions: serde_json::Value,
    pub approvals: Vec<ApprovalView>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ApprovalView {
    pub approver: String,
    pub decision: String,
    pub note: String,
    pub at: DateTime<Utc>,
    pub satisfies: Vec<String>,
}

/// An approver's answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalInput {
    /// `approve` or `reject`.
    pub decision: String,
    #[serde(default)]
    pub note: String,
}

/// Settings of access control a deployment chooses.
#[derive(Debug, Clone)]
pub struct AccessSettings {
    /// Roles whose holders may approve others' requests; a holder whose region is the
    /// subject's is that region's custodian.
    pub approver_roles: BTreeSet<String>,
    /// ISO countries inside each region: an actor working from elsewhere is cross-border.
    /// A region without an entry is judged by the actor's home region alone.
    pub region_countries: BTreeMap<String, BTreeSet<String>>,
    pub approval_ttl: Duration,
    /// Roles whose machine identities may exchange a platform session for a subject token
    /// (`POST /v1/subject-tokens`).
    pub subject_token_roles: BTreeSet<String>,
    /// How long a minted subject token is valid.
    pub subject_token_lifetime: Duration,
    /// Accesses younger than this are withheld from a subject's report (counted, not shown).
    pub report_notice_delay: Duration,
    /// Whether a subject's report names the staff (or machine) id of each actor.
    pub report_actor_ids: bool,
}

/// Roles that may mint subject tokens when the configuration does not say.
pub const SUBJECT_TOKEN_ROLES_DEFAULT: [&str; 1] = ["subject_token_exchange"];

impl Default for AccessSettings {
    fn default() -> Self {
        AccessSettings {
            approver_roles: APPROVER_ROLES_DEFAULT.iter().map(|role| (*role).to_owned()).collect(),
            region_countries: BTreeMap::new(),
            approval_ttl: APPROVAL_TTL_DEFAULT,
            subject_token_roles: SUBJECT_TOKEN_ROLES_DEFAULT.iter().map(|role| (*role).to_owned()).collect(),
            subject_token_lifetime: crate::subject_token::SUBJECT_TOKEN_LIFETIME_DEFAULT,
            report_notice_delay: Duration::ZERO,
            report_actor_ids: false,
        }
    }
}

/// The access use cases over a vault, the directory and a policy set.
pub struct Gate {
    vault: Arc<Vault>,
    directory: Arc<dyn DirectoryStore>,
    /// Where alerts and the detector's checkpoint are kept: the directory's database.
    alerts: Option<Arc<dyn store::AlertStore>>,
    engine: Arc<PolicyEngine>,
    settings: AccessSettings,
    /// Signs and checks subject tokens; absent when the deployment has no keys for them, and
    /// then the subject routes are off.
    subject_tokens: Option<Arc<crate::SubjectTokenKeys>>,
}

/// A validated request.
struct Asked {
    id: String,
    action: Action,
    /// `search`: the field and the value looked for.
    query: Option<(FieldKind, String)>,
    /// `search`: the value's blind-index digest per region, hex (filled by `resolve_search`).
    query_digests: BTreeMap<RegionId, String>,
    subjects: Vec<SubjectId>,
    fields: Vec<(FieldKind, View)>,
    purpose: String,
    case: Option<String>,
    justification: String,
    break_glass: bool,
    destination: Option<String>,
    control: Option<String>,
    from_country: String,
}

/// What the policy decided for one subject, before logging.
struct SubjectDecision {
    region: RegionId,
    facts: SubjectFacts,
    cross_border: bool,
    fields: Vec<FieldOutcome>,
    policies: Vec<String>,
    reasons: Vec<String>,
}

struct FieldOutcome {
    kind: Option<FieldKind>,
    requested: Option<View>,
    outcome: Outcome,
}

impl Gate {
    pub fn new(vault: Arc<Vault>, directory: Arc<dyn DirectoryStore>, engine: Arc<PolicyEngine>, settings: AccessSettings) -> Gate {
        Gate { vault, directory, alerts: None, engine, settings, subject_tokens: None }
    }

    /// Mints and checks subject tokens with `keys`.
    pub fn with_subject_tokens(mut self, keys: Arc<crate::SubjectTokenKeys>) -> Gate {
        self.subject_tokens = Some(keys);
        self
    }

    /// The subject token keys, when this gate has them.
    pub fn subject_tokens(&self) -> Option<&Arc<crate::SubjectTokenKeys>> {
        self.subject_tokens.as_ref()
    }

    /// Keeps alerts in `alerts` (the directory's own database in a deployment).
    pub fn with_alerts(mut self, alerts: Arc<dyn store::AlertStore>) -> Gate {
        self.alerts = Some(alerts);
        self
    }

    /// The alert store, when this gate has one.
    pub fn alerts(&self) -> Option<&Arc<dyn store::AlertStore>> {
        self.alerts.as_ref()
    }

    pub fn vault(&self) -> &Arc<Vault> {
        &self.vault
    }

    pub fn directory(&self) -> &Arc<dyn DirectoryStore> {
        &self.directory
    }

    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    /// [`Gate::engine`], shared, for work handed to another thread.
    pub fn shared_engine(&self) -> Arc<PolicyEngine> {
        Arc::clone(&self.engine)
    }

    pub fn settings(&self) -> &AccessSettings {
        &self.settings
    }

    /// The caller as the directory completes it.
    pub async fn caller(&self, caller: Caller) -> Result<Caller, ServiceError> {
        let record = match StaffId::new(&caller.id) {
            Ok(id) if caller.kind == CallerKind::Staff => self.directory.staff(&id).await?,
            _ => None,
        };
        Ok(caller.completed_by(record.as_ref()))
    }

    /// Decides, logs and answers one access request.
    pub async fn access(&self, caller: &Caller, input: &AccessInput) -> Result<AccessAnswer, ServiceError> {
        let mut asked = self.validate(caller, input)?;
        let now = self.vault.clock().now();
        if !self.resolve_search(&mut asked).await? {
            return self.log_no_match(caller, &asked, now).await;
        }
        let decisions = self.decide(caller, &asked, Approvals { independent: false, custodian: false }).await?;
        let needs = needs_of(&decisions);
        let answer_decision = overall(&decisions);
        let expires_at = now + chrono::Duration::from_std(self.settings.approval_ttl).unwrap_or(chrono::Duration::hours(24));
        if answer_decision == "pending" || !needs.is_empty() {
            // Stored before logging: a request id that is already taken fails here, before
            // anything is written to the log under its name.
            self.directory
                .create_access_request(&AccessRequestRecord {
                    id: asked.id.clone(),
                    actor: caller.id.clone(),
                    created_at_ms: now.timestamp_millis(),
                    expires_at_ms: expires_at.timestamp_millis(),
                    status: RequestStatus::Pending,
                    needs: needs.clone(),
                    request: pending_body(input, &asked, &decisions),
                    approvals: Vec::new(),
                })
                .await?;
        }
        let answer = self.log_and_reveal(caller, &asked, decisions, &[], now).await?;
        Ok(AccessAnswer {
            expires_at: (!needs.is_empty()).then_some(expires_at),
            needs,
            ..answer
        })
    }

    /// What an approver may see of a request: the request and its reasons, no values.
    pub async fn pending(&self, caller: &Caller, request: &str) -> Result<PendingView, ServiceError> {
        self.require_approver(caller)?;
        let record = self.request_record(request).await?;
        Ok(pending_view(&record))
    }

    /// An approver's answer to a pending request. The answer is logged (in every region the
    /// request touches) before it is recorded; refused answers are logged too.
    pub async fn approve(&self, approver: &Caller, request: &str, input: &ApprovalInput) -> Result<PendingView, ServiceError> {
        let approve = match input.decision.as_str() {
            "approve" => true,
            "reject" => false,
            other => return Err(invalid("decision", &format!("must be approve or reject, not {other:?}"))),
        };
        if input.note.len() > APPROVAL_NOTE_BYTES_MAX {
            return Err(invalid("note", &format!("is over {APPROVAL_NOTE_BYTES_MAX} bytes")));
        }
        let record = self.request_record(request).await?;
        let body: PendingBody = serde_json::from_value(record.request.clone())
            .map_err(|error| ServiceError::Internal(format!("stored request {request} does not decode: {error}")))?;
        let now = self.vault.clock().now();
        let refusal = if approver.id == record.actor {
            Some(ServiceError::ApprovalRefused { request: request.to_owned(), reason: "the requester cannot approve their own request".to_owned() })
        } else if !self.is_approver(approver) {
            Some(ServiceError::ApprovalRefused {
                request: request.to_owned(),
                reason: format!("approving needs one of the roles {}", join(&self.settings.approver_roles)),
            })
        } else if record.status != RequestStatus::Pending {
            Some(ServiceError::AlreadyDecided { request: request.to_owned(), status: status_name(record.status).to_owned() })
        } else if now.timestamp_millis() >= record.expires_at_ms {
            Some(ServiceError::ApprovalExpired { request: request.to_owned(), expired_at: time_of(record.expires_at_ms) })
        } else {
            None
        };
        let satisfies = if refusal.is_none() && approve { self.satisfied_by(approver, &body) } else { Vec::new() };
        let entry = ApprovalEntry {
            v: DECISION_ENTRY_VERSION,
            kind: "approval".to_owned(),
            request: request.to_owned(),
            at_ms: now.timestamp_millis(),
            approver: approver.snapshot(approver.country.as_deref().unwrap_or_default()),
            requester: record.actor.clone(),
            subjects: body.subjects.iter().map(|subject| subject.id.clone()).collect(),
            decision: match (&refusal, approve) {
                (Some(_), _) => "refused",
                (None, true) => "approve",
                (None, false) => "reject",
            }
            .to_owned(),
            satisfies: satisfies.clone(),
            note: input.note.clone(),
            reasons: refusal.iter().map(ToString::to_string).collect(),
        };
        let canonical = encode(&entry);
        for region in body.regions() {
            self.append(&region, canonical.clone()).await?;
        }
        if let Some(refusal) = refusal {
            return Err(refusal);
        }
        let needs: Vec<String> = record.needs.iter().filter(|need| !satisfies.contains(need)).cloned().collect();
        let status = match (approve, needs.is_empty()) {
            (false, _) => RequestStatus::Rejected,
            (true, true) => RequestStatus::Approved,
            (true, false) => RequestStatus::Pending,
        };
        let approval = ApprovalRecord {
            approver: approver.id.clone(),
            approve,
            note: input.note.clone(),
            at_ms: now.timestamp_millis(),
            satisfies,
        };
        let updated = self.directory.record_approval(request, &approval, status, &needs).await.map_err(|error| match error {
            store::StoreError::AlreadyDecided { .. } => {
                ServiceError::AlreadyDecided { request: request.to_owned(), status: "decided".to_owned() }
            }
            other => other.into(),
        })?;
        Ok(pending_view(&updated))
    }

    /// The requester opens an approved request: the policy decides again with the
    /// approvals it received, the decision is logged, and what is granted is revealed.
    pub async fn open_request(&self, caller: &Caller, request: &str) -> Result<AccessAnswer, ServiceError> {
        let record = self.request_record(request).await?;
        if record.actor != caller.id {
            return Err(ServiceError::Forbidden(format!("request {request} belongs to another caller")));
        }
        if record.status == RequestStatus::Rejected {
            return Err(ServiceError::AlreadyDecided { request: request.to_owned(), status: status_name(record.status).to_owned() });
        }
        let now = self.vault.clock().now();
        if now.timestamp_millis() >= record.expires_at_ms {
            return Err(ServiceError::ApprovalExpired { request: request.to_owned(), expired_at: time_of(record.expires_at_ms) });
        }
        let body: PendingBody = serde_json::from_value(record.request.clone())
            .map_err(|error| ServiceError::Internal(format!("stored request {request} does not decode: {error}")))?;
        let granted: BTreeSet<&str> = record
            .approvals
            .iter()
            .filter(|approval| approval.approve)
            .flat_map(|approval| approval.satisfies.iter().map(String::as_str))
            .collect();
        let approvals = if record.status == RequestStatus::Approved {
            Approvals { independent: granted.contains("independent"), custodian: granted.contains("custodian") }
        } else {
            // Still pending or rejected: decide without approvals, so the answer says so.
            Approvals { independent: false, custodian: false }
        };
        let approvers: Vec<String> = record.approvals.iter().filter(|approval| approval.approve).map(|approval| approval.approver.clone()).collect();
        let mut asked = self.validate(caller, &body.input)?;
        if !self.resolve_search(&mut asked).await? {
            return self.log_no_match(caller, &asked, now).await;
        }
        let decisions = self.decide(caller, &asked, approvals).await?;
        let mut answer = self.log_and_reveal(caller, &asked, decisions, &approvers, now).await?;
        if record.status == RequestStatus::Pending {
            answer.needs = record.needs.clone();
            answer.expires_at = Some(time_of(record.expires_at_ms));
        }
        Ok(answer)
    }

    fn validate(&self, caller: &Caller, input: &AccessInput) -> Result<Asked, ServiceError> {
        let action = match input.action.as_str() {
            "read" => Action::Read,
            "search" => Action::Search,
            "export" => Action::Export,
            "account_control" => Action::AccountControl,
            other => return Err(invalid("action", &format!("unknown action {other:?} (read, search, export, account_control)"))),
        };
        let query = match (action, &input.query) {
            (Action::Search, Some(query)) if query.len() == 1 && input.subjects.is_empty() => {
                let (field, value) = query.iter().next().expect("one entry");
                let kind = FieldKind::from_str(field).map_err(|error| invalid(&format!("query.{field}"), &error.to_string()))?;
                if value.is_empty() || value.len() > ACCESS_QUERY_BYTES_MAX {
                    return Err(invalid(&format!("query.{field}"), &format!("must be 1 to {ACCESS_QUERY_BYTES_MAX} bytes")));
                }
                Some((kind, value.clone()))
            }
            (Action::Search, _) => return Err(invalid("query", "search takes exactly one query field and no subjects")),
            (_, Some(_)) => return Err(invalid("query", "only search takes a query")),
            (_, None) => None,
        };
        if action != Action::Search && (input.subjects.is_empty() || input.subjects.len() > ACCESS_SUBJECTS_MAX) {
            return Err(invalid("subjects", &format!("name 1 to {ACCESS_SUBJECTS_MAX} subjects")));
        }
        let mut subjects = Vec::with_capacity(input.subjects.len());
        for (index, subject) in input.subjects.iter().enumerate() {
            let id = SubjectId::new(subject).map_err(|error| invalid(&format!("subjects[{index}]"), &error.to_string()))?;
            if subjects.contains(&id) {
                return Err(invalid(&format!("subjects[{index}]"), &format!("subject {id} is named twice")));
            }
            subjects.push(id);
        }
        let mut fields = Vec::with_capacity(input.fields.len() + 1);
        for (field, view) in &input.fields {
            let kind = FieldKind::from_str(field).map_err(|error| invalid(&format!("fields.{field}"), &error.to_string()))?;
            let view = View::from_str(view).map_err(|error| invalid(&format!("fields.{field}"), &error.to_string()))?;
            if !view.applies_to(kind) {
                return Err(invalid(&format!("fields.{field}"), &format!("view {view} does not apply to {kind}")));
            }
            fields.push((kind, view));
        }
        match action {
            Action::AccountControl if !fields.is_empty() => {
                return Err(invalid("fields", "account_control reveals no fields; leave fields out"));
            }
            Action::AccountControl if input.control.is_none() => {
                return Err(invalid("control", "account_control needs the control to perform"));
            }
            Action::Export if input.destination.is_none() => return Err(invalid("destination", "export needs a destination")),
            Action::Read | Action::Export if fields.is_empty() => return Err(invalid("fields", "name at least one field")),
            // A bare search asks whether the query field exists: the least a match reveals.
            Action::Search if fields.is_empty() => {
                if let Some((kind, _)) = &query {
                    fields.push((*kind, View::Exists));
                }
            }
            _ => {}
        }
        check_name("purpose", &input.purpose)?;
        for (what, value) in [("case", &input.case), ("control", &input.control), ("from_country", &input.from_country)] {
            if let Some(value) = value {
                check_name(what, value)?;
            }
        }
        if let Some(destination) = &input.destination {
            check_destination("destination", destination)?;
        }
        if input.justification.len() > JUSTIFICATION_BYTES_MAX {
            return Err(invalid("justification", &format!("is over {JUSTIFICATION_BYTES_MAX} bytes")));
        }
        let id = match &input.id {
            Some(id) => {
                check_name("id", id)?;
                id.clone()
            }
            None => request_id()?,
        };
        let from_country = input.from_country.clone().or_else(|| caller.country.clone()).unwrap_or_default();
        Ok(Asked {
            id,
            action,
            query,
            query_digests: BTreeMap::new(),
            subjects,
            fields,
            purpose: input.purpose.clone(),
            case: input.case.clone(),
            justification: input.justification.clone(),
            break_glass: input.break_glass,
            destination: input.destination.clone(),
            control: input.control.clone(),
            from_country,
        })
    }

    async fn decide(&self, caller: &Caller, asked: &Asked, approvals: Approvals) -> Result<Vec<SubjectDecision>, ServiceError> {
        let case = match &asked.case {
            Some(id) => self.directory.case(id).await?,
            None => None,
        };
        let actor = policy::Actor {
            id: caller.id.clone(),
            kind: match caller.kind {
                CallerKind::Staff => ActorKind::Staff,
                CallerKind::Machine => ActorKind::Machine,
            },
            roles: caller.roles.clone(),
            team: caller.team.clone().unwrap_or_default(),
            entity: caller.entity.clone().unwrap_or_default(),
            country: asked.from_country.clone(),
            region: caller.region.clone().unwrap_or_default(),
        };
        let mut decisions = Vec::with_capacity(asked.subjects.len());
        for subject in &asked.subjects {
            let (region, record) = self.vault.locate_subject(subject).await?;
            let facts = SubjectFacts {
                id: subject.to_string(),
                region: region.to_string(),
                labels: record.labels.iter().map(|label| label.as_str().to_owned()).collect(),
            };
            let cross_border = self.cross_border(caller, &asked.from_country, &region);
            let case_facts = case.as_ref().map(|case| case_facts(case, &caller.id, subject.as_str()));
            let mut policies = BTreeSet::new();
            let mut reasons = Vec::new();
            if let (Some(id), None) = (&asked.case, &case) {
                reasons.push(format!("case {id} is not registered"));
            }
            let targets: Vec<Option<(FieldKind, View)>> =
                if asked.fields.is_empty() { vec![None] } else { asked.fields.iter().copied().map(Some).collect() };
            let mut fields = Vec::with_capacity(targets.len());
            for field in targets {
                let decision = self.engine.decide(&AccessQuery {
                    actor: &actor,
                    action: asked.action,
                    purpose: &asked.purpose,
                    case: case_facts.as_ref(),
                    subject: &facts,
                    field,
                    destination: asked.destination.as_deref(),
                    break_glass: asked.break_glass,
                    cross_border,
                    approvals,
                });
                policies.extend(decision.policies);
                for reason in decision.reasons {
                    let reason = match field {
                        Some((kind, _)) if !reason.contains(kind.as_str()) => format!("{kind}: {reason}"),
                        _ => reason,
                    };
                    if !reasons.contains(&reason) {
                        reasons.push(reason);
                    }
                }
                fields.push(FieldOutcome { kind: field.map(|(kind, _)| kind), requested: field.map(|(_, view)| view), outcome: decision.outcome });
            }
            decisions.push(SubjectDecision { region, facts, cross_border, fields, policies: policies.into_iter().collect(), reasons });
        }
        Ok(decisions)
    }

    /// Logs each subject's decision in its region and waits until it is durable; only then
    /// reveals what was granted.
    async fn log_and_reveal(
        &self,
        caller: &Caller,
        asked: &Asked,
        decisions: Vec<SubjectDecision>,
        approvers: &[String],
        now: DateTime<Utc>,
    ) -> Result<AccessAnswer, ServiceError> {
        let actor = caller.snapshot(&asked.from_country);
        let mut receipts = Vec::with_capacity(decisions.len());
        // INVARIANT (DESIGN.md §4): every decision of this request is durable in its region's
        // log before any value of any subject is unwrapped or decrypted. A failed append ends
        // the request here, with nothing revealed.
        for decision in &decisions {
            let entry = AccessEntry {
                cross_border: decision.cross_border,
                approved_by: approvers.to_vec(),
                decision: subject_decision(decision).to_owned(),
                fields: decision.fields.iter().map(field_entry).collect(),
                policies: decision.policies.clone(),
                reasons: decision.reasons.clone(),
                ..access_entry(asked, &actor, now, &decision.region, SubjectSnapshot {
                    id: decision.facts.id.clone(),
                    region: decision.facts.region.clone(),
                    labels: decision.facts.labels.clone(),
                })
            };
            receipts.push(self.append(&decision.region, encode(&entry)).await?);
        }
        let mut subjects = Vec::with_capacity(decisions.len());
        for (decision, receipt) in decisions.iter().zip(&receipts) {
            let granted: Vec<(FieldKind, View)> = decision
                .fields
                .iter()
                .filter_map(|field| match (&field.outcome, field.kind) {
                    (Outcome::Allow { view: Some(view) }, Some(kind)) => Some((kind, *view)),
                    _ => None,
                })
                .collect();
            let subject = SubjectId::new(&decision.facts.id).map_err(|error| ServiceError::Internal(error.to_string()))?;
            let reveals = if granted.is_empty() { Vec::new() } else { self.vault.reveal(&decision.region, &subject, &granted).await? };
            let fields = decision.fields.iter().map(|field| field_answer(field, &reveals)).collect();
            subjects.push(SubjectAnswer {
                subject: decision.facts.id.clone(),
                region: decision.facts.region.clone(),
                decision: subject_decision(decision).to_owned(),
                fields,
                policies: decision.policies.clone(),
                reasons: decision.reasons.clone(),
                receipt: Receipt::from(receipt),
            });
        }
        let before = subjects.len();
        if asked.action == Action::Search {
            subjects.retain(|subject| subject.decision != "deny");
        }
        Ok(AccessAnswer {
            request: asked.id.clone(),
            at: now,
            decision: overall(&decisions).to_owned(),
            withheld: before - subjects.len(),
            subjects,
            needs: Vec::new(),
            expires_at: None,
        })
    }

    /// For a search, finds the matching subjects and makes them the request's subjects;
    /// `false` when nothing matched. Other requests are left as they are.
    async fn resolve_search(&self, asked: &mut Asked) -> Result<bool, ServiceError> {
        let Some((kind, value)) = &asked.query else { return Ok(true) };
        let digests = self.vault.query_digests(*kind, value)?;
        asked.subjects = self.vault.find_subjects(*kind, &digests).await?;
        asked.query_digests = digests.into_iter().map(|(region, digest)| (region, hex::encode(digest))).collect();
        Ok(!asked.subjects.is_empty())
    }

    /// A search that matched no subject is still a decision on the record: one entry in
    /// each served region's log, naming the query field and its keyed digest, never the
    /// value.
    async fn log_no_match(&self, caller: &Caller, asked: &Asked, now: DateTime<Utc>) -> Result<AccessAnswer, ServiceError> {
        let actor = caller.snapshot(&asked.from_country);
        let regions: Vec<RegionId> = self.vault.regions().cloned().collect();
        for region in regions {
            let subject = SubjectSnapshot { id: String::new(), region: region.to_string(), labels: Vec::new() };
            let entry = AccessEntry {
                reasons: vec!["no subject matches the query".to_owned()],
                ..access_entry(asked, &actor, now, &region, subject)
            };
            self.append(&region, encode(&entry)).await?;
        }
        Ok(AccessAnswer {
            request: asked.id.clone(),
            at: now,
            decision: "deny".to_owned(),
            subjects: Vec::new(),
            needs: Vec::new(),
            expires_at: None,
            withheld: 0,
        })
    }

    async fn append(&self, region: &RegionId, canonical: Vec<u8>) -> Result<LogReceipt, ServiceError> {
        // A failure here is `ServiceError::Log`, which the HTTP edge answers with 503.
        self.vault.append_log(region, canonical).await
    }

    fn cross_border(&self, caller: &Caller, from_country: &str, region: &RegionId) -> bool {
        let home_outside = caller.region.as_deref() != Some(region.as_str());
        let country_outside = match self.settings.region_countries.get(region.as_str()) {
            Some(countries) => !countries.contains(from_country),
            None => false,
        };
        home_outside || country_outside
    }

    fn is_approver(&self, caller: &Caller) -> bool {
        caller.kind == CallerKind::Staff && caller.roles.iter().any(|role| self.settings.approver_roles.contains(role))
    }

    fn require_approver(&self, caller: &Caller) -> Result<(), ServiceError> {
        if self.is_approver(caller) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!("needs one of the roles {}", join(&self.settings.approver_roles))))
        }
    }

    /// Approval kinds an approver's yes satisfies: independent always (they are not the
    /// requester and hold an approver role); custodian when their region is the region of
    /// every subject the request touches.
    fn satisfied_by(&self, approver: &Caller, body: &PendingBody) -> Vec<String> {
        let mut kinds = vec![ApprovalKind::Independent.as_str().to_owned()];
        let regions = body.regions();
        if approver.region.as_deref().is_some_and(|region| regions.iter().all(|subject_region| subject_region.as_str() == region)) {
            kinds.push(ApprovalKind::Custodian.as_str().to_owned());
        }
        kinds
    }

    async fn request_record(&self, request: &str) -> Result<AccessRequestRecord, ServiceError> {
        self.directory.access_request(request).await?.ok_or_else(|| ServiceError::NotFound(format!("access request {request}")))
    }
}

/// The request as stored while it waits: the input, the caller's id, and the first
/// decision's outcome per subject (for the approver's eyes).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingBody {
    input: AccessInput,
    subjects: Vec<PendingSubject>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct PendingSubject {
    id: String,
    region: String,
    labels: Vec<String>,
    decision: String,
    fields: Vec<FieldDecisionEntry>,
    reasons: Vec<String>,
    policies: Vec<String>,
}

impl PendingBody {
    fn regions(&self) -> Vec<RegionId> {
        let regions: BTreeSet<&str> = self.subjects.iter().map(|subject| subject.region.as_str()).collect();
        regions.into_iter().filter_map(|region| RegionId::new(region).ok()).collect()
    }
}

fn pending_body(input: &AccessInput, asked: &Asked, decisions: &[SubjectDecision]) -> serde_json::Value {
    let mut input = input.clone();
    input.id = Some(asked.id.clone());
    let body = PendingBody {
        input,
        subjects: decisions
            .iter()
            .map(|decision| PendingSubject {
                id: decision.facts.id.clone(),
                region: decision.facts.region.clone(),
                labels: decision.facts.labels.clone(),
                decision: subject_decision(decision).to_owned(),
                fields: decision.fields.iter().map(field_entry).collect(),
                reasons: decision.reasons.clone(),
                policies: decision.policies.clone(),
            })
            .collect(),
    };
    // INVARIANT: PendingBody holds only strings and sequences of them.
    serde_json::to_value(body).expect("pending bodies always encode")
}

fn pending_view(record: &AccessRequestRecord) -> PendingView {
    let (asked, decisions) = match serde_json::from_value::<PendingBody>(record.request.clone()) {
        Ok(body) => (
            serde_json::to_value(&body.input).unwrap_or_default(),
            serde_json::to_value(&body.subjects).unwrap_or_default(),
        ),
        Err(_) => (record.request.clone(), serde_json::Value::Null),
    };
    PendingView {
        request: record.id.clone(),
        requester: record.actor.clone(),
        status: status_name(record.status).to_owned(),
        needs: record.needs.clone(),
        created_at: time_of(record.created_at_ms),
        expires_at: time_of(record.expires_at_ms),
        asked,
        decisions,
        approvals: record
            .approvals
            .iter()
            .map(|approval| ApprovalView {
                approver: approval.approver.clone(),
                decision: if approval.approve { "approve" } else { "reject" }.to_owned(),
                note: approval.note.clone(),
                at: time_of(approval.at_ms),
                satisfies: approval.satisfies.clone(),
            })
            .collect(),
    }
}

/// The case as the policy sees it for one actor and one subject: its assignees and subjects
/// narrowed to that actor and that subject (when they belong). Policies ask whether the actor
/// is assigned and the subject in scope; a queue case can hold thousands of subjects, and
/// building them all into every evaluation would make each decision cost as much as the
/// case is large.
pub(crate) fn case_facts(case: &CaseRecord, actor: &str, subject: &str) -> CaseFacts {
    CaseFacts {
        id: case.id.clone(),
        purpose: case.purpose.clone(),
        open: case.open,
        assignees: case.assignees.iter().filter(|assignee| assignee.as_str() == actor).map(ToString::to_string).collect(),
        subjects: case.subjects.iter().filter(|member| member.as_str() == subject).map(ToString::to_string).collect(),
        requested_by: case.requested_by.as_ref().map(ToString::to_string),
        legal_process_validated: case.legal_process.as_ref().is_some_and(|process| process.validated),
        destinations: case.destinations.clone(),
    }
}

/// The entry of one decision about one subject, before its outcome: who asked what, when,
/// and (for a search) the digest of the value looked for in that region. The outcome members
/// start as a denial with no fields; the caller fills them in.
fn access_entry(asked: &Asked, actor: &ActorSnapshot, now: DateTime<Utc>, region: &RegionId, subject: SubjectSnapshot) -> AccessEntry {
    AccessEntry {
        v: DECISION_ENTRY_VERSION,
        kind: "access".to_owned(),
        request: asked.id.clone(),
        at_ms: now.timestamp_millis(),
        actor: actor.clone(),
        action: asked.action.as_str().to_owned(),
        purpose: asked.purpose.clone(),
        case: asked.case.clone(),
        justification: asked.justification.clone(),
        break_glass: asked.break_glass,
        destination: asked.destination.clone(),
        control: asked.control.clone(),
        subject,
        cross_border: false,
        approved_by: Vec::new(),
        decision: "deny".to_owned(),
        fields: Vec::new(),
        policies: Vec::new(),
        reasons: Vec::new(),
        query: asked.query.as_ref().map(|(kind, _)| QuerySnapshot {
            field: kind.as_str().to_owned(),
            digest: asked.query_digests.get(region).cloned().unwrap_or_default(),
        }),
    }
}

fn field_entry(field: &FieldOutcome) -> FieldDecisionEntry {
    let (decision, view, needs) = outcome_parts(&field.outcome);
    FieldDecisionEntry {
        field: field.kind.map(|kind| kind.as_str().to_owned()).unwrap_or_default(),
        requested: field.requested.map(|view| view.to_string()).unwrap_or_default(),
        decision: decision.to_owned(),
        view,
        needs,
    }
}

fn field_answer(field: &FieldOutcome, reveals: &[FieldReveal]) -> FieldAnswer {
    let (decision, view, needs) = outcome_parts(&field.outcome);
    let reveal = field.kind.and_then(|kind| reveals.iter().find(|reveal| reveal.field == kind.as_str()));
    FieldAnswer {
        field: field.kind.map(|kind| kind.as_str().to_owned()).unwrap_or_default(),
        requested: field.requested.map(|view| view.to_string()).unwrap_or_default(),
        decision: decision.to_owned(),
        view,
        needs,
        exists: reveal.map(|reveal| reveal.exists),
        values: reveal.map(|reveal| reveal.values.clone()),
    }
}

fn outcome_parts(outcome: &Outcome) -> (&'static str, Option<String>, Vec<String>) {
    match outcome {
        Outcome::Allow { view } => ("allow", view.map(|view| view.to_string()), Vec::new()),
        Outcome::Deny => ("deny", None, Vec::new()),
        Outcome::Pending { needs, view } => {
            ("pending", view.map(|view| view.to_string()), needs.iter().map(|need| need.as_str().to_owned()).collect())
        }
    }
}

fn subject_decision(decision: &SubjectDecision) -> &'static str {
    let outcomes = decision.fields.iter().map(|field| &field.outcome);
    if outcomes.clone().any(|outcome| matches!(outcome, Outcome::Allow { .. })) {
        "allow"
    } else if outcomes.clone().any(|outcome| matches!(outcome, Outcome::Pending { .. })) {
        "pending"
    } else {
        "deny"
    }
}

fn overall(decisions: &[SubjectDecision]) -> &'static str {
    let each: Vec<&str> = decisions.iter().map(subject_decision).collect();
    if each.contains(&"allow") {
        "allow"
    } else if each.contains(&"pending") {
        "pending"
    } else {
        "deny"
    }
}

fn needs_of(decisions: &[SubjectDecision]) -> Vec<String> {
    let needs: BTreeSet<String> = decisions
        .iter()
        .flat_map(|decision| decision.fields.iter())
        .flat_map(|field| match &field.outcome {
            Outcome::Pending { needs, .. } => needs.iter().map(|need| need.as_str().to_owned()).collect(),
            _ => Vec::new(),
        })
        .collect();
    needs.into_iter().collect()
}

fn status_name(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Pending => "pending",
        RequestStatus::Approved => "approved",
        RequestStatus::Rejected => "rejected",
    }
}

pub(crate) fn check_name(what: &str, value: &str) -> Result<(), ServiceError> {
    let valid = !value.is_empty()
        && value.len() <= ACCESS_NAME_BYTES_MAX
        && value.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"._:-".contains(&byte));
    if valid {
        Ok(())
    } else {
        Err(invalid(what, &format!("must be 1 to {ACCESS_NAME_BYTES_MAX} bytes of letters, digits and . _ : -")))
    }
}

/// Export destinations are URIs or names: 1 to [`DESTINATION_BYTES_MAX`] printable ASCII
/// characters without spaces.
pub(crate) fn check_destination(what: &str, value: &str) -> Result<(), ServiceError> {
    if !value.is_empty() && value.len() <= DESTINATION_BYTES_MAX && value.bytes().all(|byte| byte.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(invalid(what, &format!("must be 1 to {DESTINATION_BYTES_MAX} printable ASCII characters without spaces")))
    }
}

pub(crate) fn invalid(what: &str, message: &str) -> ServiceError {
    ServiceError::InvalidRequest { field: what.to_owned(), message: message.to_owned() }
}

fn join(values: &BTreeSet<String>) -> String {
    values.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn request_id() -> Result<String, ServiceError> {
    let mut bytes = [0u8; 12];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| ServiceError::Internal("system random failed".to_owned()))?;
    Ok(format!("ar-{}", hex::encode(bytes)))
}

pub(crate) fn time_of(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}
