//! `off_hours`: access outside the actor's shift with no on-call period covering it, and
//! access after HR gave notice of dismissal or a leaving date. High when nothing explains
//! the access (late-night stalking; a leaver harvesting data); low when a case does.
//!
//! Not raised for staff without a registered shift (no shift, no off-shift reasoning), nor
//! for the on call.

use model::Severity;
use serde::{Deserialize, Serialize};

use super::{DAY_MS, Rule, when};
use crate::engine::Finding;
use crate::event::Access;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    /// Off shift, nothing explains it.
    pub severity: Severity,
    /// Off shift on a case.
    pub explained_severity: Severity,
    /// After a dismissal notice: nothing explains it, or the subject is protected.
    pub notice_severity: Severity,
    pub notice_explained_severity: Severity,
    /// How long after a notice accesses are watched.
    pub notice_window_days: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            enabled: true,
            severity: Severity::High,
            explained_severity: Severity::Low,
            notice_severity: Severity::High,
            notice_explained_severity: Severity::Low,
            notice_window_days: 90,
        }
    }
}

#[derive(Debug)]
pub struct OffHours {
    config: Config,
}

impl OffHours {
    pub fn new(config: Config) -> OffHours {
        OffHours { config }
    }
}

impl Rule for OffHours {
    fn name(&self) -> &'static str {
        "off_hours"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        let subject = access.subject_id();
        if subject.is_empty() || !(access.revealed || access.asked_identifying) {
            return;
        }
        let actor = access.actor_id();
        let explained = access.explanation.explained();
        let suspicious = !explained || (!access.protected.is_empty() && access.explanation != crate::Explanation::OwnRequest);
        if access.off_shift {
            let severity = if explained { self.config.explained_severity } else { self.config.severity };
            out.push(Finding {
                severity,
                actor: actor.to_owned(),
                subjects: vec![subject.to_owned()],
                evidence: vec![access.evidence.clone()],
                summary: format!(
                    "{actor} asked for {} of {subject} at {}, outside their shift and not on call, with {}",
                    access.fields_asked(),
                    when(access.at_ms()),
                    access.explanation.describe()
                ),
                key: format!("{actor}\u{1f}shift\u{1f}{subject}"),
            });
        }
        let window_ms = i64::try_from(self.config.notice_window_days).unwrap_or(i64::MAX / DAY_MS).saturating_mul(DAY_MS);
        if let Some(since) = access.notice_since
            && access.at_ms() - since < window_ms
        {
            let severity = if suspicious { self.config.notice_severity } else { self.config.notice_explained_severity };
            out.push(Finding {
                severity,
                actor: actor.to_owned(),
                subjects: vec![subject.to_owned()],
                evidence: vec![access.evidence.clone()],
                summary: format!(
                    "{actor} asked for {} of {subject} after HR recorded a dismissal notice or leaving date on {}, with {}",
                    access.fields_asked(),
                    when(since),
                    access.explanation.describe()
                ),
                key: format!("{actor}\u{1f}notice\u{1f}{subject}"),
            });
        }
    }
}
