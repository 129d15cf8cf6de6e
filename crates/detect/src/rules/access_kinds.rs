//! Rules about what an access *does* rather than whom it reads:
//! `account_control` — taking control of an account (2FA reset, email change, sessions
//! revoked) that its owner did not ask for; `export_destination` — exporting data to a
//! destination the case did not approve.
//!
//! Both are raised even when the policy refused: the attempt is what a reviewer needs to see.

use model::Severity;
use serde::{Deserialize, Serialize};

use super::Rule;
use crate::engine::Finding;
use crate::event::Access;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccountControlConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub refused_severity: Severity,
}

impl Default for AccountControlConfig {
    fn default() -> AccountControlConfig {
        AccountControlConfig { enabled: true, severity: Severity::High, refused_severity: Severity::Medium }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExportConfig {
    pub enabled: bool,
    pub severity: Severity,
    pub refused_severity: Severity,
}

impl Default for ExportConfig {
    fn default() -> ExportConfig {
        ExportConfig { enabled: true, severity: Severity::High, refused_severity: Severity::Medium }
    }
}

#[derive(Debug)]
pub struct AccountControl {
    config: AccountControlConfig,
}

impl AccountControl {
    pub fn new(config: AccountControlConfig) -> AccountControl {
        AccountControl { config }
    }
}

impl Rule for AccountControl {
    fn name(&self) -> &'static str {
        "account_control"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        let entry = access.entry;
        let subject = access.subject_id();
        if entry.action != "account_control" || subject.is_empty() {
            return;
        }
        if access.case.and_then(|case| case.requested_by.as_deref()) == Some(subject) {
            return;
        }
        let severity = if access.allowed() { self.config.severity } else { self.config.refused_severity };
        let actor = access.actor_id();
        let control = entry.control.as_deref().unwrap_or("account control");
        out.push(Finding {
            severity,
            actor: actor.to_owned(),
            subjects: vec![subject.to_owned()],
            evidence: vec![access.evidence.clone()],
            summary: format!("{actor} asked to {control} on {subject}'s account, which {subject} did not request (decision {})", entry.decision),
            key: format!("{actor}\u{1f}{subject}"),
        });
    }
}

#[derive(Debug)]
pub struct ExportDestination {
    config: ExportConfig,
}

impl ExportDestination {
    pub fn new(config: ExportConfig) -> ExportDestination {
        ExportDestination { config }
    }
}

impl Rule for ExportDestination {
    fn name(&self) -> &'static str {
        "export_destination"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        let entry = access.entry;
        if entry.action != "export" || access.subject_id().is_empty() {
            return;
        }
        let destination = entry.destination.as_deref().unwrap_or("");
        if access.case.is_some_and(|case| case.destinations.iter().any(|approved| approved == destination)) {
            return;
        }
        let severity = if access.allowed() { self.config.severity } else { self.config.refused_severity };
        let actor = access.actor_id();
        let subject = access.subject_id();
        let case = entry.case.as_deref().unwrap_or("no case");
        out.push(Finding {
            severity,
            actor: actor.to_owned(),
            subjects: vec![subject.to_owned()],
            evidence: vec![access.evidence.clone()],
            summary: format!(
                "{actor} exported {} of {subject} to {:?}, which {case} does not approve (decision {})",
                access.fields_asked(),
                destination,
                entry.decision
            ),
            key: format!("{actor}\u{1f}{}\u{1f}{destination}", entry.request),
        });
    }
}
