//! "What if": the access decisions of the last days decided again under a proposed policy
//! set, and every field whose outcome would change — before the set is put in force.
//!
//! Each access entry in the window is turned back into the question the engine was asked:
//! the actor, purpose, subject (labels) and cross-border flag as the entry recorded them, the
//! case as the directory holds it now (assignment and scope are checked for that actor and
//! subject), approvals taken as granted when the entry relied on any. That question is put to
//! the set in force and to the proposed set; a field is listed when the two answer it
//! differently, so what the list shows is the proposal's doing, not a case that changed since.
//! Fields the set in force no longer answers as logged (the case changed, or the set did) are
//! counted apart (`unreproduced`). Reading those decisions is viewing them, so the page logs a
//! `record_view` (view `what_if`) first.

use std::collections::HashMap;
use std::sync::Arc;

use model::decision_entry::AccessEntry;
use model::{FieldKind, RegionId, View};
use policy::{AccessQuery, Action, ActorKind, Approvals, PolicyEngine, SubjectFacts};
use serde::Serialize;

use crate::{Caller, Gate, ServiceError};

/// Most log entries one what-if reads, over every region; the answer says when it stopped.
pub const WHAT_IF_ENTRIES_MAX: usize = 20_000;
/// Most changed decisions one what-if lists (all are counted).
pub const WHAT_IF_CHANGES_MAX: usize = 500;
/// The longest window, in days.
pub const WHAT_IF_DAYS_MAX: u32 = 90;

/// One field whose outcome would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DecisionChange {
    pub region: String,
    pub index: u64,
    pub at_ms: i64,
    pub actor: String,
    pub purpose: String,
    pub case: Option<String>,
    pub subject: String,
    pub field: String,
    pub requested: String,
    /// What the log holds: `allow (masked)`, `deny`, `pending (prefix)`.
    pub logged: String,
    /// What the set in force decides, asked again now.
    pub before: String,
    /// What the proposed set decides.
    pub after: String,
}

/// The outcome of one what-if.
#[derive(Debug, Clone, Serialize)]
pub struct WhatIf {
    pub days: u32,
    /// Access decision entries decided again.
    pub entries: u64,
    /// Fields decided again.
    pub fields: u64,
    /// Fields whose outcome would change.
    pub changed: u64,
    /// Fields the set in force, asked again, does not answer as logged: the case or the set
    /// changed since. Their comparison stands, but rests on today's facts.
    pub unreproduced: u64,
    /// The first [`WHAT_IF_CHANGES_MAX`] of them, oldest first.
    pub changes: Vec<DecisionChange>,
    /// Whether the window held more than [`WHAT_IF_ENTRIES_MAX`] entries (the newest were left).
    pub truncated: bool,
}

impl Gate {
    /// [`Gate::what_if`] under the policy set `text` (Cedar, validated against the schema);
    /// a set that does not load is refused naming the problem.
    pub async fn what_if_text(&self, caller: &Caller, text: &str, days: u32) -> Result<WhatIf, ServiceError> {
        let proposed = PolicyEngine::from_sources(&[("proposed.cedar".to_owned(), text.to_owned())])
            .map_err(|error| ServiceError::InvalidRequest { field: "policies".to_owned(), message: error.to_string() })?;
        self.what_if(caller, Arc::new(proposed), days).await
    }

    /// Decides the last `days` days of access decisions again under `proposed`. The
    /// decisions (two per field of up to [`WHAT_IF_ENTRIES_MAX`] entries: seconds of CPU) run
    /// on the blocking pool, not on the request's task.
    pub async fn what_if(&self, caller: &Caller, proposed: Arc<PolicyEngine>, days: u32) -> Result<WhatIf, ServiceError> {
        if days == 0 || days > WHAT_IF_DAYS_MAX {
            return Err(ServiceError::InvalidRequest { field: "days".to_owned(), message: format!("1 to {WHAT_IF_DAYS_MAX} days, not {days}") });
        }
        let now = self.vault().clock().now();
        let since_ms = (now - chrono::Duration::days(i64::from(days))).timestamp_millis();
        let mut entries: Vec<(RegionId, u64, AccessEntry)> = Vec::new();
        let mut truncated = false;
        'regions: for region in self.vault().regions() {
            let log = self.vault().log(region)?;
            let size = log.size().await?;
            let mut at = self.first_at_or_after(region, since_ms, size).await?;
            while at < size {
                let end = size.min(at + 1_024);
                for (offset, canonical) in log.canonical_entries(at, end).await?.iter().enumerate() {
                    let index = at + offset as u64;
                    if let Ok(detect::Entry::Access(access)) = detect::decode(region.as_str(), index, canonical)
                        && access.at_ms >= since_ms
                        && !access.subject.id.is_empty()
                    {
                        if entries.len() == WHAT_IF_ENTRIES_MAX {
                            truncated = true;
                            break 'regions;
                        }
                        entries.push((region.clone(), index, *access));
                    }
                }
                at = end;
            }
        }
        let mut cases: HashMap<String, Option<store::CaseRecord>> = HashMap::new();
        for (_, _, entry) in &entries {
            if let Some(case) = &entry.case
                && !cases.contains_key(case)
            {
                cases.insert(case.clone(), self.directory().case(case).await?);
            }
        }
        let in_force = self.shared_engine();
        let (entries, decided) = tokio::task::spawn_blocking(move || {
            let decided: Vec<Vec<Redecided>> = entries
                .iter()
                .map(|(_, _, entry)| {
                    let case = entry.case.as_ref().and_then(|id| cases.get(id)).and_then(Option::as_ref);
                    redecide(&in_force, &proposed, entry, case)
                })
                .collect();
            (entries, decided)
        })
        .await
        .map_err(|error| ServiceError::Internal(format!("deciding again failed: {error}")))?;
        let mut answer = WhatIf { days, entries: entries.len() as u64, fields: 0, changed: 0, unreproduced: 0, changes: Vec::new(), truncated };
        let mut shown = Vec::new();
        for ((region, index, entry), fields) in entries.iter().zip(decided) {
            for Redecided { field, requested, logged, before, after } in fields {
                answer.fields += 1;
                if before != logged {
                    answer.unreproduced += 1;
                }
                if before == after {
                    continue;
                }
                answer.changed += 1;
                if answer.changes.len() < WHAT_IF_CHANGES_MAX {
                    shown.push((region.clone(), *index));
                    answer.changes.push(DecisionChange {
                        region: region.to_string(),
                        index: *index,
                        at_ms: entry.at_ms,
                        actor: entry.actor.id.clone(),
                        purpose: entry.purpose.clone(),
                        case: entry.case.clone(),
                        subject: entry.subject.id.clone(),
                        field,
                        requested,
                        logged,
                        before,
                        after,
                    });
                }
            }
        }
        self.log_record_view(caller, "what_if", &format!("last {days} days"), &shown).await?;
        Ok(answer)
    }
}

/// One field of an entry decided again.
struct Redecided {
    field: String,
    requested: String,
    /// As the log holds it.
    logged: String,
    /// Under the set in force.
    before: String,
    /// Under the proposed set.
    after: String,
}

/// Each field of `entry` asked again of the set `in_force` and of `proposed`. A field this
/// build cannot name is left out.
fn redecide(in_force: &PolicyEngine, proposed: &PolicyEngine, entry: &AccessEntry, case: Option<&store::CaseRecord>) -> Vec<Redecided> {
    let action = match entry.action.as_str() {
        "search" => Action::Search,
        "export" => Action::Export,
        "account_control" => Action::AccountControl,
        _ => Action::Read,
    };
    let actor = policy::Actor {
        id: entry.actor.id.clone(),
        kind: if entry.actor.kind == "machine" { ActorKind::Machine } else { ActorKind::Staff },
        roles: entry.actor.roles.clone(),
        team: entry.actor.team.clone(),
        entity: entry.actor.entity.clone(),
        country: if entry.actor.from_country.is_empty() { entry.actor.country.clone() } else { entry.actor.from_country.clone() },
        region: entry.actor.region.clone(),
    };
    let subject = SubjectFacts { id: entry.subject.id.clone(), region: entry.subject.region.clone(), labels: entry.subject.labels.clone() };
    let case_facts = case.map(|case| crate::access::case_facts(case, &actor.id, &subject.id));
    let approved = !entry.approved_by.is_empty();
    let approvals = Approvals { independent: approved, custodian: approved };
    entry
        .fields
        .iter()
        .filter_map(|logged| {
            let field = match (logged.field.parse::<FieldKind>(), logged.requested.parse::<View>()) {
                (Ok(kind), Ok(view)) => Some((kind, view)),
                _ if action == Action::AccountControl => None,
                _ => return None,
            };
            let query = AccessQuery {
                actor: &actor,
                action,
                purpose: &entry.purpose,
                case: case_facts.as_ref(),
                subject: &subject,
                field,
                destination: entry.destination.as_deref(),
                break_glass: entry.break_glass,
                cross_border: entry.cross_border,
                approvals,
            };
            let decided = |engine: &PolicyEngine| {
                let outcome = engine.decide(&query).outcome;
                describe(outcome.as_str(), outcome.view().map(|view| view.to_string()).as_deref())
            };
            Some(Redecided {
                field: logged.field.clone(),
                requested: logged.requested.clone(),
                logged: describe(&logged.decision, logged.view.as_deref()),
                before: decided(in_force),
                after: decided(proposed),
            })
        })
        .collect()
}

fn describe(decision: &str, view: Option<&str>) -> String {
    match view {
        Some(view) if decision != "deny" => format!("{decision} ({view})"),
        _ => decision.to_owned(),
    }
}
