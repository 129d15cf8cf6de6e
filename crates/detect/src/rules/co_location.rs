//! `co_location_probe`: one actor, or the staff of one case together, ask for IP addresses or
//! locations of outside subjects (protected ones above all) *and* of employees' own accounts
//! within a window — comparing where reporters were with where staff were, the 2022 leak hunt.
//! Attempts count as much as reads: a refused probe is still a probe. Critical when a
//! protected subject is among the outside ones.
//!
//! Not raised for country-level views, nor for looks at only one side. A look at a subject
//! on a case that subject asked for (`Explanation::OwnRequest`: a data subject request, an
//! account recovery) is not a probe of their whereabouts and does not count: a privacy
//! officer preparing the copies that a journalist and an employee asked for in the same week
//! compares nobody's whereabouts.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use model::Severity;
use serde::{Deserialize, Serialize};

use super::{Rule, hours_ms, restore_state, save_state, when};
use crate::engine::{ALERT_EVIDENCE_MAX, Finding};
use crate::event::{Access, Evidence, Explanation};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    pub window_hours: u64,
    /// A protected outside subject and an employee.
    pub protected_severity: Severity,
    /// Unprotected outside subjects and an employee, not explained by a case.
    pub severity: Severity,
    /// Unprotected outside subjects and an employee, all on a case that assigns the actor.
    pub explained_severity: Severity,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            enabled: true,
            window_hours: 7 * 24,
            protected_severity: Severity::Critical,
            severity: Severity::Medium,
            explained_severity: Severity::Low,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Look {
    at_ms: i64,
    actor: String,
    subject: String,
    staff: bool,
    protected: bool,
    explained: bool,
    evidence: Evidence,
}

#[derive(Debug)]
pub struct CoLocationProbe {
    config: Config,
    /// `actor:<id>` or `case:<id>` → looks at whereabouts in the window.
    groups: BTreeMap<String, VecDeque<Look>>,
}

impl CoLocationProbe {
    pub fn new(config: Config) -> CoLocationProbe {
        CoLocationProbe { config, groups: BTreeMap::new() }
    }
}

impl Rule for CoLocationProbe {
    fn name(&self) -> &'static str {
        "co_location_probe"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        if !access.asked_whereabouts
            || access.subject_id().is_empty()
            || access.entry.actor.kind == "machine"
            || access.explanation == Explanation::OwnRequest
        {
            return;
        }
        let window_ms = hours_ms(self.config.window_hours);
        let look = Look {
            at_ms: access.at_ms(),
            actor: access.actor_id().to_owned(),
            subject: access.subject_id().to_owned(),
            staff: access.staff_target,
            protected: access.protected.iter().any(|label| *label != "staff"),
            explained: access.explanation.explained(),
            evidence: access.evidence.clone(),
        };
        let actor = access.actor_id();
        let mut groups = vec![format!("actor:{actor}")];
        if let Some(case) = &access.entry.case {
            groups.push(format!("case:{case}"));
        }
        let mut raised_for_actor = false;
        for group in groups {
            let looks = self.groups.entry(group.clone()).or_default();
            while looks.front().is_some_and(|oldest| look.at_ms - oldest.at_ms >= window_ms) {
                looks.pop_front();
            }
            if looks.len() < ALERT_EVIDENCE_MAX {
                looks.push_back(look.clone());
            }
            let by_others = looks.iter().any(|earlier| earlier.actor != actor);
            if raised_for_actor && !by_others {
                // The case's looks are all this actor's: the actor's alert already says it.
                continue;
            }
            let staff: BTreeSet<&str> = looks.iter().filter(|look| look.staff).map(|look| look.subject.as_str()).collect();
            let outside: BTreeSet<&str> = looks.iter().filter(|look| !look.staff).map(|look| look.subject.as_str()).collect();
            if staff.is_empty() || outside.is_empty() {
                continue;
            }
            raised_for_actor = true;
            let protected = looks.iter().any(|look| !look.staff && look.protected);
            let severity = if protected {
                self.config.protected_severity
            } else if looks.iter().all(|look| look.explained) {
                self.config.explained_severity
            } else {
                self.config.severity
            };
            let mut subjects: Vec<String> = Vec::new();
            for look in looks.iter().filter(|look| !look.staff).chain(looks.iter().filter(|look| look.staff)) {
                if !subjects.contains(&look.subject) {
                    subjects.push(look.subject.clone());
                }
            }
            let scope = match group.split_once(':') {
                Some(("case", case)) => {
                    let actors: BTreeSet<&str> = looks.iter().map(|look| look.actor.as_str()).collect();
                    format!("on case {case} ({} staff: {})", actors.len(), actors.into_iter().collect::<Vec<_>>().join(", "))
                }
                _ => actor.to_owned(),
            };
            out.push(Finding {
                severity,
                actor: actor.to_owned(),
                subjects,
                evidence: looks.iter().map(|look| look.evidence.clone()).collect(),
                summary: format!(
                    "{scope} asked for IP addresses or locations of {} outside {}{} and of {} since {}: comparing where outsiders were with where staff were",
                    outside.len(),
                    if outside.len() == 1 { "person" } else { "people" },
                    match (protected, outside.len()) {
                        (false, _) => "",
                        (true, 1) => " (protected)",
                        (true, _) => ", protected ones among them,",
                    },
                    if staff.len() == 1 { "1 employee's own account".to_owned() } else { format!("{} employees' own accounts", staff.len()) },
                    when(looks.front().map_or(look.at_ms, |first| first.at_ms)),
                ),
                key: format!("{group}\u{1f}{actor}"),
            });
        }
    }

    fn sweep(&mut self, now_ms: i64) {
        let window_ms = hours_ms(self.config.window_hours);
        self.groups.retain(|_, looks| looks.back().is_some_and(|last| now_ms - last.at_ms < window_ms));
    }

    fn save(&self) -> serde_json::Value {
        save_state(&self.groups)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), serde_json::Error> {
        self.groups = restore_state(state)?;
        Ok(())
    }
}
