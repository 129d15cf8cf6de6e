//! `break_glass_review`: break-glass lets an engineer through without a case in an emergency,
//! on the promise that someone reviews it. Every use is raised as information; a use that no
//! second person has answered (an approval entry for the same request) within the review
//! window is raised high when the window closes.
//!
//! Deadlines are checked against log time: a quiet log reports a missed review with the next
//! entry, never before the window has passed.

use std::collections::BTreeMap;

use model::Severity;
use model::decision_entry::AlertActionEntry;
use serde::{Deserialize, Serialize};

use super::{Rule, hours_ms, restore_state, save_state, when};
use crate::engine::Finding;
use crate::event::{Access, Approval, Evidence};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    pub review_hours: u64,
    pub use_severity: Severity,
    pub severity: Severity,
}

impl Default for Config {
    fn default() -> Config {
        Config { enabled: true, review_hours: 24, use_severity: Severity::Info, severity: Severity::High }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Awaiting {
    at_ms: i64,
    actor: String,
    subjects: Vec<String>,
    evidence: Vec<Evidence>,
}

#[derive(Debug)]
pub struct BreakGlassReview {
    config: Config,
    /// Request id → the use waiting for review.
    awaiting: BTreeMap<String, Awaiting>,
}

impl BreakGlassReview {
    pub fn new(config: Config) -> BreakGlassReview {
        BreakGlassReview { config, awaiting: BTreeMap::new() }
    }
}

impl Rule for BreakGlassReview {
    fn name(&self) -> &'static str {
        "break_glass_review"
    }

    fn advance(&mut self, now_ms: i64, out: &mut Vec<Finding>) {
        let review_ms = hours_ms(self.config.review_hours);
        let overdue: Vec<String> =
            self.awaiting.iter().filter(|(_, use_)| now_ms - use_.at_ms >= review_ms).map(|(request, _)| request.clone()).collect();
        for request in overdue {
            let Some(use_) = self.awaiting.remove(&request) else { continue };
            out.push(Finding {
                severity: self.config.severity,
                actor: use_.actor.clone(),
                subjects: use_.subjects,
                evidence: use_.evidence,
                summary: format!(
                    "break-glass request {request} by {} at {} was not reviewed within {} hours",
                    use_.actor,
                    when(use_.at_ms),
                    self.config.review_hours
                ),
                key: format!("{request}\u{1f}overdue"),
            });
        }
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        let entry = access.entry;
        if !entry.break_glass || !access.allowed() {
            return;
        }
        let subject = access.subject_id();
        let use_ = self.awaiting.entry(entry.request.clone()).or_insert_with(|| Awaiting {
            at_ms: entry.at_ms,
            actor: entry.actor.id.clone(),
            subjects: Vec::new(),
            evidence: Vec::new(),
        });
        super::push_capped(&mut use_.subjects, subject.to_owned(), crate::ALERT_SUBJECTS_MAX);
        super::push_capped(&mut use_.evidence, access.evidence.clone(), crate::ALERT_EVIDENCE_MAX);
        let actor = access.actor_id();
        out.push(Finding {
            severity: self.config.use_severity,
            actor: actor.to_owned(),
            subjects: vec![subject.to_owned()],
            evidence: vec![access.evidence.clone()],
            summary: format!(
                "{actor} used break-glass for {} of {subject} ({}): to be reviewed within {} hours",
                access.fields_asked(),
                if entry.justification.is_empty() { "no justification given" } else { &entry.justification },
                self.config.review_hours
            ),
            key: format!("{}\u{1f}use", entry.request),
        });
    }

    fn on_approval(&mut self, approval: &Approval<'_>, _out: &mut Vec<Finding>) {
        let entry = approval.entry;
        if entry.approver.id != entry.requester && entry.decision != "refused" {
            self.awaiting.remove(&entry.request);
        }
    }

    fn on_alert_action(&mut self, action: &AlertActionEntry, _out: &mut Vec<Finding>) {
        if action.rule == self.name() && action.action == "resolve" && action.by.id != action.alert_actor {
            for request in &action.requests {
                self.awaiting.remove(request);
            }
        }
    }

    fn save(&self) -> serde_json::Value {
        save_state(&self.awaiting)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), serde_json::Error> {
        self.awaiting = restore_state(state)?;
        Ok(())
    }
}
