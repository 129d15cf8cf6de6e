//! `protected_target`: a look at someone staff must not look up for curiosity or leverage —
//! journalists and their contacts, officials, activists, minors, VIPs, prior victims, and
//! employees' own accounts. `info` when the subject's own request explains it; low when a
//! safeguard did its job (a second person approved, a validated legal process, the request
//! waits for approval, or only coarse views on a case); high otherwise — including refused
//! attempts, because the attempt is the evidence of targeting.
//!
//! Not raised for a bare search that revealed only that someone exists.

use model::Severity;
use serde::{Deserialize, Serialize};

use super::Rule;
use crate::engine::Finding;
use crate::event::{Access, Explanation};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    pub severity: Severity,
    pub own_request_severity: Severity,
    pub safeguarded_severity: Severity,
}

impl Default for Config {
    fn default() -> Config {
        Config { enabled: true, severity: Severity::High, own_request_severity: Severity::Info, safeguarded_severity: Severity::Low }
    }
}

/// Views that locate or identify only roughly: what a case may see of a protected person
/// without a second person.
const ROUGH_VIEWS: [&str; 8] = ["exists", "country", "country_code", "domain", "age_band", "year", "prefix", "area"];

#[derive(Debug)]
pub struct ProtectedTarget {
    config: Config,
}

impl ProtectedTarget {
    pub fn new(config: Config) -> ProtectedTarget {
        ProtectedTarget { config }
    }
}

impl Rule for ProtectedTarget {
    fn name(&self) -> &'static str {
        "protected_target"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        if access.protected.is_empty() || access.subject_id().is_empty() {
            return;
        }
        let entry = access.entry;
        if entry.action == "search" && !access.revealed {
            return;
        }
        let rough_only = entry.fields.iter().all(|field| ROUGH_VIEWS.contains(&field.requested.as_str()));
        let (severity, why) = match access.explanation {
            Explanation::OwnRequest => (self.config.own_request_severity, "on the subject's own request".to_owned()),
            _ if entry.decision == "pending" => (self.config.safeguarded_severity, "waiting for a second person's approval".to_owned()),
            _ if !entry.approved_by.is_empty() && access.explanation.explained() => {
                (self.config.safeguarded_severity, "after a second person's approval".to_owned())
            }
            Explanation::LegalProcess => (self.config.safeguarded_severity, "under a validated legal process".to_owned()),
            Explanation::Case | Explanation::Machine if rough_only && !access.denied() => {
                (self.config.safeguarded_severity, "at coarse views on a case".to_owned())
            }
            other => (self.config.severity, format!("with {}", other.describe())),
        };
        let actor = access.actor_id();
        let subject = access.subject_id();
        let outcome = match entry.decision.as_str() {
            "allow" => "was shown",
            "pending" => "asked for",
            _ => "was refused",
        };
        out.push(Finding {
            severity,
            actor: actor.to_owned(),
            subjects: vec![subject.to_owned()],
            evidence: vec![access.evidence.clone()],
            summary: format!(
                "{actor} {outcome} {} of {subject} ({}), purpose {}, {why}",
                access.fields_asked(),
                access.protected_labels(),
                entry.purpose
            ),
            key: format!("{actor}\u{1f}{subject}"),
        });
    }
}
