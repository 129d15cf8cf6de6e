//! `purpose_mismatch`: the stated purpose does not fit the target or the case — an internal
//! investigation of someone who is not an employee; a data subject request answered about
//! someone other than the requester; support on a ticket about someone else than the one who
//! asked; a purpose other than the case's own (retrying under another label).
//!
//! Not raised when there is no case (that is `unexplained_access`), nor for machine actors.

use model::Severity;
use serde::{Deserialize, Serialize};

use super::Rule;
use crate::engine::Finding;
use crate::event::Access;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    /// Internal investigation of a non-employee; a data subject request about someone else.
    pub severity: Severity,
    /// Support on someone who did not ask; a purpose other than the case's.
    pub other_severity: Severity,
}

impl Default for Config {
    fn default() -> Config {
        Config { enabled: true, severity: Severity::High, other_severity: Severity::Medium }
    }
}

#[derive(Debug)]
pub struct PurposeMismatch {
    config: Config,
}

impl PurposeMismatch {
    pub fn new(config: Config) -> PurposeMismatch {
        PurposeMismatch { config }
    }
}

impl Rule for PurposeMismatch {
    fn name(&self) -> &'static str {
        "purpose_mismatch"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        let subject = access.subject_id();
        if subject.is_empty() || access.entry.actor.kind == "machine" {
            return;
        }
        let entry = access.entry;
        let purpose = entry.purpose.as_str();
        let requested_by = access.case.and_then(|case| case.requested_by.as_deref());
        let mismatch = if purpose == "internal_investigation" && !access.staff_target {
            Some((self.config.severity, format!("an internal investigation looked at {subject}, who is not an employee")))
        } else if purpose == "data_subject_request" && requested_by != Some(subject) {
            Some((self.config.severity, format!("a data subject request answered about {subject}, who did not make it")))
        } else if matches!(purpose, "support" | "account_recovery") && requested_by.is_some_and(|asker| asker != subject) {
            Some((self.config.other_severity, format!("{purpose} on {subject}, while the ticket was opened by someone else")))
        } else if let Some(case) = access.case
            && case.purpose != purpose
        {
            Some((self.config.other_severity, format!("purpose {purpose} stated on case {}, which was opened for {}", case.id, case.purpose)))
        } else {
            None
        };
        let Some((severity, why)) = mismatch else { return };
        let actor = access.actor_id();
        out.push(Finding {
            severity,
            actor: actor.to_owned(),
            subjects: vec![subject.to_owned()],
            evidence: vec![access.evidence.clone()],
            summary: format!("{actor}: {why} ({}, decision {})", access.fields_asked(), entry.decision),
            key: format!("{actor}\u{1f}{subject}\u{1f}{purpose}"),
        });
    }
}
