//! `cross_border`: data revealed to someone outside the subject's region — employed by an
//! entity of another region, or working from a country outside it. Registered travel of an
//! employee of the subject's own region lowers it; an approval by the region's custodian makes
//! it information only.
//!
//! Not raised for refused cross-border requests beyond `low` (the policy held), nor for a
//! bare `exists`.

use model::Severity;
use serde::{Deserialize, Serialize};

use super::Rule;
use crate::engine::Finding;
use crate::event::Access;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    pub severity: Severity,
    /// When the subject is protected.
    pub protected_severity: Severity,
    /// An employee of the subject's region on registered travel.
    pub travel_severity: Severity,
    /// Revealed after a second person's approval.
    pub approved_severity: Severity,
    /// Refused, or only coarse views.
    pub attempt_severity: Severity,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            enabled: true,
            severity: Severity::Medium,
            protected_severity: Severity::High,
            travel_severity: Severity::Low,
            approved_severity: Severity::Info,
            attempt_severity: Severity::Low,
        }
    }
}

#[derive(Debug)]
pub struct CrossBorder {
    config: Config,
}

impl CrossBorder {
    pub fn new(config: Config) -> CrossBorder {
        CrossBorder { config }
    }
}

impl Rule for CrossBorder {
    fn name(&self) -> &'static str {
        "cross_border"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        let entry = access.entry;
        if !entry.cross_border || access.subject_id().is_empty() || entry.decision == "pending" {
            return;
        }
        let home_region = entry.actor.region == entry.subject.region;
        let travelling = access.travelling_to.is_some_and(|country| country == entry.actor.from_country);
        let (severity, why) = if !access.revealed_identifying {
            (self.config.attempt_severity, if access.allowed() { "coarse views only" } else { "refused" })
        } else if !entry.approved_by.is_empty() {
            (self.config.approved_severity, "approved by a second person")
        } else if home_region && travelling {
            (self.config.travel_severity, "on registered travel")
        } else if !access.protected.is_empty() {
            (self.config.protected_severity, "of a protected person")
        } else {
            (self.config.severity, "without approval")
        };
        let actor = access.actor_id();
        let subject = access.subject_id();
        out.push(Finding {
            severity,
            actor: actor.to_owned(),
            subjects: vec![subject.to_owned()],
            evidence: vec![access.evidence.clone()],
            summary: format!(
                "{actor} ({}, entity {}, working from {}) — {} of {subject}, whose data lives in region {}: cross-border, {why}",
                entry.actor.region,
                entry.actor.entity,
                entry.actor.from_country,
                access.fields_asked(),
                entry.subject.region
            ),
            key: format!("{actor}\u{1f}{subject}"),
        });
    }
}
