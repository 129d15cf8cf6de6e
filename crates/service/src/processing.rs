//! The record of processing activities (GDPR Art. 30(1)) generated from the configuration.
//!
//! What only the controller can say — who it is, its contact and data protection officer,
//! each purpose's description and legal basis, the recipients outside the platform, how long
//! each kind of data is kept — comes from `[processing]` in custos.toml. What custos itself
//! enforces is read from the deployment, not written twice: the purposes, which staff roles
//! and services see which fields at which highest view, which subjects need a second person,
//! what may leave a region, come from probing the policy set in force with the engine that
//! decides real requests; the regions, their countries, key custody, storage and witnesses
//! from the configuration. A statement the controller has not made is listed as a gap, so
//! the record never reads more complete than it is.
//!
//! Probing: for each purpose, the engine is asked about a subject in scope of an open case
//! the actor is assigned to, with a validated legal process and an approved export
//! destination, by an actor holding one role at a time (or none, when the policies ask for
//! none). Roles and labels are open strings in the schema, so the candidates are the
//! literals the policies test `principal.roles` and `resource.labels` for. The views are the
//! engine's own answers (asking `exact` returns the highest view it allows), so the record
//! cannot drift from what the service decides. What it cannot see: grants that need two
//! roles held together, and conditions on facts it does not vary (team, entity, country).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use model::{FieldKind, View};
use policy::{AccessQuery, Action, Actor, ActorKind, Approvals, CaseFacts, Outcome, PolicyEngine, SubjectFacts};
use serde::{Deserialize, Serialize};

use crate::deployment::{Config, KeysConfig, StorageConfig};

/// The `format` of a record of processing.
pub const PROCESSING_FORMAT: &str = "custos-processing/1";
/// Longest accepted statement in `[processing]`, in bytes.
pub const PROCESSING_STATEMENT_BYTES_MAX: usize = 2_000;
/// Most recipients `[processing]` may list.
pub const RECIPIENTS_MAX: usize = 200;
/// The retention key for the access log itself (beside the field kinds).
pub const RETENTION_ACCESS_LOG: &str = "access_log";
/// What the record says of the subjects no label protects.
const ORDINARY_SUBJECTS: &str = "ordinary";

/// `[processing]` in custos.toml: what only the controller can state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessingConfig {
    /// The controller's name and address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<String>,
    /// How to reach the controller about this processing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contact: Option<String>,
    /// The data protection officer's contact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpo: Option<String>,
    /// The representative in the Union (Art. 27), when the controller is outside it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub representative: Option<String>,
    /// Categories of data subjects, e.g. "users of the platform".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub data_subjects: Vec<String>,
    /// Per purpose (as the policies name it): what it is for and on what legal basis.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub purposes: BTreeMap<String, PurposeStatement>,
    /// Per field kind (`ip_address`, …) or `access_log`: how long it is kept, as the
    /// controller states it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retention: BTreeMap<String, String>,
    /// Recipients outside the platform's own staff and services (`[[processing.recipients]]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<RecipientStatement>,
}

/// `[processing.purposes.<purpose>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurposeStatement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// E.g. "Art. 6(1)(b): performance of the contract".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub legal_basis: Option<String>,
}

/// One `[[processing.recipients]]`: someone data is disclosed to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecipientStatement {
    pub name: String,
    /// E.g. "processor", "group company", "public authority".
    pub kind: String,
    /// Where the recipient is, ISO 3166-1 alpha-2.
    pub country: String,
    /// The purposes under which data goes to it.
    #[serde(default)]
    pub purposes: Vec<String>,
    /// The safeguards of a transfer outside the subjects' regions (Art. 46), e.g. "standard
    /// contractual clauses 2021/914".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safeguards: Option<String>,
}

impl ProcessingConfig {
    /// Checks what can be checked without the policy set: lengths, field kinds, countries.
    /// The message names the offending key.
    pub fn check(&self) -> Result<(), String> {
        let statement = |key: &str, text: &str| -> Result<(), String> {
            if text.trim().is_empty() {
                return Err(format!("`processing.{key}` is empty"));
            }
            if text.len() > PROCESSING_STATEMENT_BYTES_MAX {
                return Err(format!("`processing.{key}` is longer than {PROCESSING_STATEMENT_BYTES_MAX} bytes"));
            }
            Ok(())
        };
        for (key, value) in [("controller", &self.controller), ("contact", &self.contact), ("dpo", &self.dpo), ("representative", &self.representative)] {
            if let Some(value) = value {
                statement(key, value)?;
            }
        }
        for (at, category) in self.data_subjects.iter().enumerate() {
            statement(&format!("data_subjects[{at}]"), category)?;
        }
        for (purpose, said) in &self.purposes {
            for (key, value) in [("description", &said.description), ("legal_basis", &said.legal_basis)] {
                if let Some(value) = value {
                    statement(&format!("purposes.{purpose}.{key}"), value)?;
                }
            }
        }
        for (key, kept) in &self.retention {
            if key != RETENTION_ACCESS_LOG && key.parse::<FieldKind>().is_err() {
                let kinds: Vec<&str> = FieldKind::ALL.iter().map(|kind| kind.as_str()).collect();
                return Err(format!("`processing.retention.{key}` is not a field kind ({}) or `{RETENTION_ACCESS_LOG}`", kinds.join(", ")));
            }
            statement(&format!("retention.{key}"), kept)?;
        }
        if self.recipients.len() > RECIPIENTS_MAX {
            return Err(format!("`processing.recipients` lists more than {RECIPIENTS_MAX} recipients"));
        }
        for (at, recipient) in self.recipients.iter().enumerate() {
            statement(&format!("recipients[{at}].name"), &recipient.name)?;
            statement(&format!("recipients[{at}].kind"), &recipient.kind)?;
            if !is_country(&recipient.country) {
                return Err(format!("`processing.recipients[{at}].country` {:?} is not an ISO 3166-1 alpha-2 code such as \"DE\"", recipient.country));
            }
            if let Some(safeguards) = &recipient.safeguards {
                statement(&format!("recipients[{at}].safeguards"), safeguards)?;
            }
        }
        Ok(())
    }
}

fn is_country(code: &str) -> bool {
    code.len() == 2 && code.bytes().all(|byte| byte.is_ascii_uppercase())
}

/// The whole record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessingRecord {
    /// Always [`PROCESSING_FORMAT`].
    pub format: String,
    pub generated_at: DateTime<Utc>,
    pub controller: Controller,
    pub data_subjects: DataSubjects,
    /// Categories of personal data: one per field kind.
    pub personal_data: Vec<DataCategory>,
    pub purposes: Vec<PurposeRecord>,
    pub recipients: Vec<RecipientRecord>,
    pub regions: Vec<RegionRecord>,
    /// Technical and organisational measures (Art. 32), as this deployment applies them.
    pub security_measures: Vec<String>,
    pub policy_set: PolicySetRecord,
    /// Statements the record needs and the configuration does not make.
    pub gaps: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Controller {
    pub name: Option<String>,
    pub contact: Option<String>,
    pub dpo: Option<String>,
    pub representative: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataSubjects {
    /// As the controller states them.
    pub categories: Vec<String>,
    /// Labels under which a subject needs a second person's approval before staff see
    /// anything (read off the policies).
    pub protected_labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataCategory {
    pub field: String,
    /// The views custos can reveal it through, coarse to exact.
    pub views: Vec<String>,
    /// How long it is kept, as the controller states it.
    pub retention: Option<String>,
}

/// One purpose as the policies in force allow it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PurposeRecord {
    pub purpose: String,
    pub description: Option<String>,
    pub legal_basis: Option<String>,
    /// `staff`, `platform services` or both.
    pub actors: Vec<String>,
    /// Staff or service roles that are granted something under it.
    pub roles: Vec<String>,
    /// The subjects it can reach: `ordinary` (no label) and each protected label, with the
    /// approvals each needs. A label missing here cannot be reached under this purpose.
    pub subjects: Vec<SubjectReach>,
    /// What it can reveal of each field, for the first subject category in `subjects`, to
    /// the roles in `roles`.
    pub fields: Vec<FieldReach>,
    /// Whether it can act on an account (`account_control`, on a case the subject opened).
    pub account_control: bool,
    /// The roles that may use it without a case, by break-glass.
    pub break_glass: Vec<String>,
    /// The permit policies that grant it.
    pub policies: Vec<String>,
    /// Recipients outside the platform that `[processing]` names for it.
    pub recipients: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectReach {
    /// `ordinary` or a label.
    pub category: String,
    /// Approvals needed: `independent` (a second person), `custodian`.
    pub approvals: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldReach {
    pub field: String,
    /// The highest view staff or services get without an approval.
    pub view: Option<String>,
    /// The highest view an approval would give, when finer than `view`, and the approvals.
    pub with_approval: Option<String>,
    pub approvals: Vec<String>,
    /// Whether records can be found by this field's exact value (`search`).
    pub search: bool,
    /// The highest view that may be exported to a case's approved destination.
    pub export: Option<String>,
    /// The highest view an actor outside the subject's region gets, with the custodian's
    /// approval (a transfer); `None` when nothing of it leaves the region.
    pub leaves_region: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientRecord {
    pub name: String,
    pub kind: String,
    pub country: String,
    pub purposes: Vec<String>,
    /// Whether the country is outside every region's countries (a third-country transfer).
    pub transfer: bool,
    pub safeguards: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegionRecord {
    pub region: String,
    /// Where its subjects are, as `[access.region_countries]` says.
    pub countries: Vec<String>,
    /// Where its data is stored: `sqlite` or `postgres`.
    pub storage: String,
    /// Who holds its key-encryption keys: `keyring file` or `PKCS#11 token <label>`.
    pub key_custody: String,
    /// The origin of its access log.
    pub log_origin: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicySetRecord {
    /// SHA-256 over the files in load order (name, NUL, text, NUL), hex.
    pub sha256: String,
    pub files: Vec<String>,
    pub policies: usize,
}

/// Builds the record from the configuration and the policy set in force. Pure and
/// CPU-bound (a few thousand decisions): callers on an async runtime run it on a blocking
/// thread.
pub fn processing_record(config: &Config, engine: &PolicyEngine, now: DateTime<Utc>) -> ProcessingRecord {
    let said = config.processing.clone().unwrap_or_default();
    let mut gaps = Vec::new();
    let probe = Probe::new(engine);

    let protected_labels = probe.protected_labels();
    let mut purposes = Vec::new();
    for purpose in engine.purposes() {
        let statement = said.purposes.get(&purpose).cloned().unwrap_or_default();
        let record = probe.purpose(&purpose, &protected_labels, statement, &said.recipients);
        if record.legal_basis.is_none() && !record.actors.is_empty() {
            gaps.push(format!("no legal basis for purpose {purpose} (`[processing.purposes.{purpose}] legal_basis`)"));
        }
        purposes.push(record);
    }
    for purpose in said.purposes.keys().filter(|purpose| !purposes.iter().any(|record| record.purpose == **purpose)) {
        gaps.push(format!("`[processing.purposes.{purpose}]` describes a purpose no policy in force grants"));
    }

    let region_countries = config.access.as_ref().map(|access| access.region_countries.clone()).unwrap_or_default();
    let served: BTreeSet<&str> = region_countries.values().flatten().map(String::as_str).collect();
    let regions: Vec<RegionRecord> = config
        .regions
        .iter()
        .map(|region| {
            let countries = region_countries.get(region.as_str()).cloned().unwrap_or_default();
            if countries.is_empty() {
                gaps.push(format!("region {region} names no countries (`[access.region_countries]`): where its subjects are, and so what crosses a border, is not stated"));
            }
            RegionRecord {
                region: region.to_string(),
                countries,
                storage: match config.storage {
                    StorageConfig::Sqlite => "sqlite".to_owned(),
                    StorageConfig::Postgres { .. } => "postgres".to_owned(),
                },
                key_custody: match &config.keys {
                    KeysConfig::Keyring => "keyring file".to_owned(),
                    KeysConfig::Pkcs11 { token, .. } => format!("PKCS#11 token {token}"),
                },
                log_origin: config.log_origin(region),
            }
        })
        .collect();

    let recipients: Vec<RecipientRecord> = said
        .recipients
        .iter()
        .map(|recipient| {
            let transfer = !served.contains(recipient.country.as_str());
            if transfer && recipient.safeguards.is_none() {
                gaps.push(format!("recipient {} is in {}, outside every region, and no safeguards are stated", recipient.name, recipient.country));
            }
            for purpose in recipient.purposes.iter().filter(|purpose| !purposes.iter().any(|record| record.purpose == **purpose)) {
                gaps.push(format!("recipient {} is named for purpose {purpose}, which no policy in force grants", recipient.name));
            }
            RecipientRecord {
                name: recipient.name.clone(),
                kind: recipient.kind.clone(),
                country: recipient.country.clone(),
                purposes: recipient.purposes.clone(),
                transfer,
                safeguards: recipient.safeguards.clone(),
            }
        })
        .collect();

    let personal_data: Vec<DataCategory> = FieldKind::ALL
        .iter()
        .map(|kind| {
            let retention = said.retention.get(kind.as_str()).cloned();
            if retention.is_none() {
                gaps.push(format!("no retention period for {} (`[processing.retention] {}`)", kind.as_str(), kind.as_str()));
            }
            DataCategory { field: kind.as_str().to_owned(), views: model::ladder(*kind).iter().map(View::to_string).collect(), retention }
        })
        .collect();

    for (key, missing) in [("controller", said.controller.is_none()), ("contact", said.contact.is_none())] {
        if missing {
            gaps.push(format!("no {key} (`[processing] {key}`)"));
        }
    }
    if said.data_subjects.is_empty() {
        gaps.push("no categories of data subjects (`[processing] data_subjects`)".to_owned());
    }

    let security_measures = security_measures(config, engine, &record_facts(&purposes, &protected_labels), said.retention.get(RETENTION_ACCESS_LOG));
    ProcessingRecord {
        format: PROCESSING_FORMAT.to_owned(),
        generated_at: now,
        controller: Controller { name: said.controller.clone(), contact: said.contact.clone(), dpo: said.dpo.clone(), representative: said.representative.clone() },
        data_subjects: DataSubjects { categories: said.data_subjects.clone(), protected_labels },
        personal_data,
        purposes,
        recipients,
        regions,
        security_measures,
        policy_set: policy_set(engine),
        gaps,
    }
}

/// What the security measures say of the policies, read off the probed purposes.
struct RecordFacts {
    protected_labels: Vec<String>,
    /// `purpose: field` pairs whose exact IP address or location may leave its region.
    exact_network_data_abroad: Vec<String>,
}

fn record_facts(purposes: &[PurposeRecord], protected_labels: &[String]) -> RecordFacts {
    let exact_network_data_abroad = purposes
        .iter()
        .flat_map(|purpose| {
            purpose
                .fields
                .iter()
                .filter(|field| ["ip_address", "location"].contains(&field.field.as_str()) && field.leaves_region.as_deref() == Some("exact"))
                .map(|field| format!("{}: {}", purpose.purpose, field.field))
        })
        .collect();
    RecordFacts { protected_labels: protected_labels.to_vec(), exact_network_data_abroad }
}

/// Art. 32 measures as this deployment applies them: each sentence is true of the code, the
/// configuration read and the policies probed.
fn security_measures(config: &Config, engine: &PolicyEngine, facts: &RecordFacts, log_retention: Option<&String>) -> Vec<String> {
    let keys = match &config.keys {
        KeysConfig::Keyring => "key-encryption keys in a keyring file on the server".to_owned(),
        KeysConfig::Pkcs11 { token, .. } => format!("key-encryption keys generated in and never leaving the PKCS#11 token {token}"),
    };
    let witnesses = match (config.witnesses.len(), config.witness_quorum.unwrap_or(0)) {
        (0, _) => "no outside witnesses configured".to_owned(),
        (count, quorum) => format!("{count} outside witnesses configured, {quorum} of which must cosign a checkpoint"),
    };
    let abroad = if facts.exact_network_data_abroad.is_empty() {
        "no purpose lets an exact IP address or location leave it".to_owned()
    } else {
        format!("exact IP addresses or locations may leave it under {}", facts.exact_network_data_abroad.join(", "))
    };
    let protected = if facts.protected_labels.is_empty() {
        "no subject label requires a second person".to_owned()
    } else {
        format!("subjects labelled {} need a second person's approval", facts.protected_labels.join(", "))
    };
    let rules = detect::rules::enabled(&config.detection.clone().unwrap_or_default());
    let detection = if rules.is_empty() {
        "Detection: every detector rule is disabled.".to_owned()
    } else {
        format!(
            "Detection: {} rules ({}) read each region's log as it is written and raise alerts, with {} thresholds.",
            rules.len(),
            rules.iter().map(|rule| rule.name()).collect::<Vec<_>>().join(", "),
            if config.detection.is_some() { "this deployment's" } else { "the default" }
        )
    };
    vec![
        format!("Residency: each person's data is stored and decrypted only in their home region; {abroad}."),
        format!("Encryption at rest: every value sealed with AES-256-GCM under the person's own data key, data keys wrapped by the region's {keys}; erasure destroys the data key (crypto-shredding)."),
        format!("Access control: {} Cedar policies decide every access by purpose, case and role and reveal the coarsest view the purpose needs; {protected}.", engine.policy_ids().len()),
        format!(
            "Accountability: every decision, allowed or refused, is appended to the region's Merkle log (RFC 6962) and durable before any value is decrypted; checkpoints are signed every {} ms; {witnesses}. The log holds who asked, for what, on which case and what was decided, never the values, and is kept {}.",
            config.checkpoint_interval().as_millis(),
            log_retention.map_or("for the life of the deployment (entries are never deleted; a log that dropped one would fail verification)", String::as_str)
        ),
        detection,
        "Transparency: each person can download every access to their data with a proof against a signed checkpoint; auditors verify the log and receipts offline.".to_owned(),
    ]
}

fn policy_set(engine: &PolicyEngine) -> PolicySetRecord {
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for (name, text) in engine.sources() {
        digest.update(name.as_bytes());
        digest.update(&[0]);
        digest.update(text.as_bytes());
        digest.update(&[0]);
    }
    PolicySetRecord {
        sha256: hex::encode(digest.finish()),
        files: engine.sources().iter().map(|(name, _)| name.clone()).collect(),
        policies: engine.policy_ids().len(),
    }
}

/// Asks the engine what a purpose allows under the most favourable facts a real request
/// can have.
struct Probe<'a> {
    engine: &'a PolicyEngine,
    /// Every role the policies test `principal.roles` for.
    roles: Vec<String>,
    /// Every label the policies test `resource.labels` for.
    labels: Vec<String>,
}

const PROBE_ACTOR: &str = "probe-actor";
const PROBE_SUBJECT: &str = "probe-subject";
const PROBE_REGION: &str = "probe-region";
const PROBE_DESTINATION: &str = "probe-destination";

/// One question: who, doing what, to whom.
#[derive(Clone, Copy)]
struct Question<'q> {
    kind: ActorKind,
    roles: &'q [String],
    action: Action,
    purpose: &'q str,
    field: Option<FieldKind>,
    labels: &'q [String],
    cross_border: bool,
    approvals: Approvals,
    break_glass: bool,
    requested_by_subject: bool,
}

impl<'q> Question<'q> {
    /// A plain read of `field`: an open case, the actor assigned, the subject in scope, in
    /// the actor's region, no approval yet.
    fn read(kind: ActorKind, roles: &'q [String], purpose: &'q str, field: FieldKind) -> Question<'q> {
        Question {
            kind,
            roles,
            action: Action::Read,
            purpose,
            field: Some(field),
            labels: &[],
            cross_border: false,
            approvals: Approvals::default(),
            break_glass: false,
            requested_by_subject: false,
        }
    }
}

/// Who gets something under a purpose: an actor kind with one role, or with none when the
/// policies ask for none.
struct Holder {
    kind: ActorKind,
    roles: Vec<String>,
}

impl<'a> Probe<'a> {
    fn new(engine: &'a PolicyEngine) -> Probe<'a> {
        Probe {
            engine,
            roles: engine.set_literals("principal", "roles").into_iter().collect(),
            labels: engine.set_literals("resource", "labels").into_iter().collect(),
        }
    }

    fn ask(&self, question: Question<'_>) -> policy::Decision {
        let actor = Actor {
            id: PROBE_ACTOR.to_owned(),
            kind: question.kind,
            roles: question.roles.to_vec(),
            team: String::new(),
            entity: String::new(),
            country: String::new(),
            region: PROBE_REGION.to_owned(),
        };
        let subject = SubjectFacts { id: PROBE_SUBJECT.to_owned(), region: PROBE_REGION.to_owned(), labels: question.labels.to_vec() };
        let case = CaseFacts {
            id: "probe-case".to_owned(),
            purpose: question.purpose.to_owned(),
            open: true,
            assignees: vec![PROBE_ACTOR.to_owned()],
            subjects: vec![PROBE_SUBJECT.to_owned()],
            requested_by: question.requested_by_subject.then(|| PROBE_SUBJECT.to_owned()),
            legal_process_validated: true,
            destinations: vec![PROBE_DESTINATION.to_owned()],
        };
        self.engine.decide(&AccessQuery {
            actor: &actor,
            action: question.action,
            purpose: question.purpose,
            case: (!question.break_glass).then_some(&case),
            subject: &subject,
            field: question.field.map(|kind| (kind, View::Exact)),
            destination: (question.action == Action::Export).then_some(PROBE_DESTINATION),
            break_glass: question.break_glass,
            cross_border: question.cross_border,
            approvals: question.approvals,
        })
    }

    fn grants(&self, question: Question<'_>) -> bool {
        !matches!(self.ask(question).outcome, Outcome::Deny)
    }

    /// The labels that turn a plain read some role gets into one needing approval or refused.
    fn protected_labels(&self) -> Vec<String> {
        let mut protected = BTreeSet::new();
        for purpose in self.engine.purposes() {
            for holder in self.holders(&purpose, &[]) {
                for field in FieldKind::ALL {
                    let plain = Question::read(holder.kind, &holder.roles, &purpose, field);
                    if !matches!(self.ask(plain).outcome, Outcome::Allow { .. }) {
                        continue;
                    }
                    for label in &self.labels {
                        if !matches!(self.ask(Question { labels: std::slice::from_ref(label), ..plain }).outcome, Outcome::Allow { .. }) {
                            protected.insert(label.clone());
                        }
                    }
                }
            }
        }
        protected.into_iter().collect()
    }

    /// The actor kinds and roles granted any field of a subject labelled `labels` under
    /// `purpose`.
    fn holders(&self, purpose: &str, labels: &[String]) -> Vec<Holder> {
        let mut holders = Vec::new();
        for kind in [ActorKind::Staff, ActorKind::Machine] {
            let granted = |roles: &[String]| FieldKind::ALL.into_iter().any(|field| self.grants(Question { labels, ..Question::read(kind, roles, purpose, field) }));
            if granted(&[]) {
                holders.push(Holder { kind, roles: Vec::new() });
                continue;
            }
            for role in &self.roles {
                if granted(std::slice::from_ref(role)) {
                    holders.push(Holder { kind, roles: vec![role.clone()] });
                }
            }
        }
        holders
    }

    fn purpose(&self, purpose: &str, protected_labels: &[String], statement: PurposeStatement, recipients: &[RecipientStatement]) -> PurposeRecord {
        let categories: Vec<(String, Vec<String>)> = std::iter::once((ORDINARY_SUBJECTS.to_owned(), Vec::new()))
            .chain(protected_labels.iter().map(|label| (label.clone(), vec![label.clone()])))
            .collect();
        // The first category anyone reaches (ordinary, or `staff` for an internal
        // investigation) is the one the fields are described for.
        let reference: Vec<String> = categories
            .iter()
            .map(|(_, labels)| labels)
            .find(|labels| {
                [ActorKind::Staff, ActorKind::Machine].into_iter().any(|kind| {
                    FieldKind::ALL.into_iter().any(|field| self.grants(Question { labels, ..Question::read(kind, &self.roles, purpose, field) }))
                })
            })
            .cloned()
            .unwrap_or_default();
        let holders = self.holders(purpose, &reference);

        // The subject categories it reaches, ordinary first, and the approvals each needs
        // (the fewest any holder needs).
        let mut subjects: Vec<(String, Vec<String>, Vec<String>)> = Vec::new();
        for (category, labels) in &categories {
            let mut fewest: Option<Vec<String>> = None;
            for holder in &holders {
                for field in FieldKind::ALL {
                    let needs: Vec<String> = match self.ask(Question { labels, ..Question::read(holder.kind, &holder.roles, purpose, field) }).outcome {
                        Outcome::Allow { .. } => Vec::new(),
                        Outcome::Pending { needs, .. } => needs.iter().map(|need| need.as_str().to_owned()).collect(),
                        Outcome::Deny => continue,
                    };
                    if fewest.as_ref().is_none_or(|fewest| needs.len() < fewest.len()) {
                        fewest = Some(needs);
                    }
                }
            }
            if let Some(needs) = fewest {
                subjects.push((category.clone(), labels.clone(), needs));
            }
        }

        let mut policies = BTreeSet::new();
        let mut fields = Vec::new();
        for field in FieldKind::ALL {
            let mut reach = FieldReach { field: field.as_str().to_owned(), view: None, with_approval: None, approvals: Vec::new(), search: false, export: None, leaves_region: None };
            for holder in &holders {
                let plain = Question { labels: &reference, ..Question::read(holder.kind, &holder.roles, purpose, field) };
                let decision = self.ask(plain);
                policies.extend(decision.policies.iter().filter(|id| self.engine.is_permit(id)).cloned());
                match &decision.outcome {
                    Outcome::Allow { view } => finer(&mut reach.view, *view, field),
                    Outcome::Pending { needs, view } => {
                        finer(&mut reach.with_approval, *view, field);
                        reach.approvals.extend(needs.iter().map(|need| need.as_str().to_owned()));
                    }
                    Outcome::Deny => continue,
                }
                // The approvals a pending read needs open search and export as much.
                let approved = Question { approvals: Approvals::ALL, ..plain };
                reach.search |= self.grants(Question { action: Action::Search, ..approved });
                finer(&mut reach.export, self.ask(Question { action: Action::Export, ..approved }).outcome.view(), field);
                if let Outcome::Allow { view } = self.ask(Question { cross_border: true, ..approved }).outcome {
                    finer(&mut reach.leaves_region, view, field);
                }
            }
            if reach.with_approval.is_some() && reach.with_approval == reach.view {
                reach.with_approval = None;
            }
            reach.approvals.sort();
            reach.approvals.dedup();
            fields.push(reach);
        }

        let account_control = holders.iter().any(|holder| {
            self.grants(Question {
                action: Action::AccountControl,
                field: None,
                labels: &reference,
                approvals: Approvals::ALL,
                requested_by_subject: true,
                ..Question::read(holder.kind, &holder.roles, purpose, FieldKind::Email)
            })
        });
        let break_glass: Vec<String> = self
            .roles
            .iter()
            .filter(|role| {
                FieldKind::ALL.into_iter().any(|field| {
                    let roles = std::slice::from_ref(*role);
                    self.grants(Question { labels: &reference, break_glass: true, approvals: Approvals::ALL, ..Question::read(ActorKind::Staff, roles, purpose, field) })
                })
            })
            .cloned()
            .collect();
        let mut actors: Vec<String> = Vec::new();
        let mut roles: Vec<String> = Vec::new();
        for holder in &holders {
            if !actors.iter().any(|actor| actor == actor_name(holder.kind)) {
                actors.push(actor_name(holder.kind).to_owned());
            }
            match holder.roles.as_slice() {
                [] => roles.push(format!("any {}", match holder.kind {
                    ActorKind::Staff => "staff member",
                    ActorKind::Machine => "platform service",
                })),
                held => roles.extend(held.iter().cloned()),
            }
        }

        PurposeRecord {
            purpose: purpose.to_owned(),
            description: statement.description,
            legal_basis: statement.legal_basis,
            actors,
            roles,
            subjects: subjects.into_iter().map(|(category, _, approvals)| SubjectReach { category, approvals }).collect(),
            fields,
            account_control,
            break_glass,
            policies: policies.into_iter().collect(),
            recipients: recipients.iter().filter(|recipient| recipient.purposes.iter().any(|named| named == purpose)).map(|recipient| recipient.name.clone()).collect(),
        }
    }
}

fn actor_name(kind: ActorKind) -> &'static str {
    match kind {
        ActorKind::Staff => "staff",
        ActorKind::Machine => "platform services",
    }
}

/// Keeps the finer of `current` and `found` (both on `kind`'s ladder).
fn finer(current: &mut Option<String>, found: Option<View>, kind: FieldKind) {
    let Some(found) = found else { return };
    let rank_of = |text: &str| text.parse::<View>().ok().and_then(|view| view.rank(kind));
    if current.as_deref().and_then(rank_of).is_none_or(|rank| found.rank(kind).is_some_and(|found_rank| found_rank > rank)) {
        *current = Some(found.to_string());
    }
}

