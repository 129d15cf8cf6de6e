//! `curiosity_burst`: many distinct staff look at one subject within hours, with nothing
//! explaining their looks — the wave after a celebrity is in the news. Tiered: staff who only
//! searched, staff who opened the record, staff who asked for whereabouts or exact values.
//! Once a tier's threshold is crossed, the wave is raised, and every further member of it is
//! named in an alert of their own.
//!
//! Not raised for explained looks (a ticket queue about the same person), however many.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use model::Severity;
use serde::{Deserialize, Serialize};

use super::{Rule, hours_ms, restore_state, save_state};
use crate::engine::{ALERT_EVIDENCE_MAX, Finding};
use crate::event::{Access, Evidence};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    pub window_hours: u64,
    pub searched_actors: usize,
    pub searched_severity: Severity,
    pub opened_actors: usize,
    pub opened_severity: Severity,
    pub sensitive_actors: usize,
    pub sensitive_severity: Severity,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            enabled: true,
            window_hours: 6,
            searched_actors: 10,
            searched_severity: Severity::Low,
            opened_actors: 5,
            opened_severity: Severity::Medium,
            sensitive_actors: 3,
            sensitive_severity: Severity::High,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
enum Tier {
    Searched,
    Opened,
    Sensitive,
}

impl Tier {
    fn describe(self) -> &'static str {
        match self {
            Tier::Searched => "searched for",
            Tier::Opened => "opened the record of",
            Tier::Sensitive => "asked for whereabouts or exact data of",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Look {
    at_ms: i64,
    actor: String,
    tier: Tier,
    evidence: Evidence,
}

#[derive(Debug)]
pub struct CuriosityBurst {
    config: Config,
    subjects: BTreeMap<String, VecDeque<Look>>,
}

impl CuriosityBurst {
    pub fn new(config: Config) -> CuriosityBurst {
        CuriosityBurst { config, subjects: BTreeMap::new() }
    }

    fn threshold(&self, tier: Tier) -> (usize, Severity) {
        match tier {
            Tier::Searched => (self.config.searched_actors, self.config.searched_severity),
            Tier::Opened => (self.config.opened_actors, self.config.opened_severity),
            Tier::Sensitive => (self.config.sensitive_actors, self.config.sensitive_severity),
        }
    }
}

impl Rule for CuriosityBurst {
    fn name(&self) -> &'static str {
        "curiosity_burst"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        let subject = access.subject_id();
        if subject.is_empty() || access.explanation.explained() || access.entry.actor.kind == "machine" {
            return;
        }
        let entry = access.entry;
        let tier = if access.asked_whereabouts || entry.fields.iter().any(|field| field.requested == "exact") {
            Tier::Sensitive
        } else if entry.action == "search" {
            Tier::Searched
        } else {
            Tier::Opened
        };
        let at = access.at_ms();
        let window_ms = hours_ms(self.config.window_hours);
        let looks = self.subjects.entry(subject.to_owned()).or_default();
        while looks.front().is_some_and(|oldest| at - oldest.at_ms >= window_ms) {
            looks.pop_front();
        }
        let actor = access.actor_id();
        if looks.len() < 10 * ALERT_EVIDENCE_MAX {
            looks.push_back(Look { at_ms: at, actor: actor.to_owned(), tier, evidence: access.evidence.clone() });
        }
        let looks = &self.subjects[subject];
        // The most serious tier this actor reached in the window, and how many actors reached each.
        for tier in [Tier::Sensitive, Tier::Opened, Tier::Searched] {
            let reached = |look: &&Look| look.tier >= tier;
            let actors: BTreeSet<&str> = looks.iter().filter(reached).map(|look| look.actor.as_str()).collect();
            if !actors.contains(actor) {
                continue;
            }
            let (threshold, severity) = self.threshold(tier);
            if actors.len() < threshold {
                continue;
            }
            let hours = self.config.window_hours;
            let count = actors.len();
            // Crossing the threshold names everyone in the wave so far; later members are
            // named as they join.
            let named: Vec<&str> = if count == threshold { actors.iter().copied().collect() } else { vec![actor] };
            for member in named {
                out.push(Finding {
                    severity,
                    actor: member.to_owned(),
                    subjects: vec![subject.to_owned()],
                    evidence: looks
                        .iter()
                        .filter(|look| look.actor == member && look.tier >= tier)
                        .map(|look| look.evidence.clone())
                        .take(ALERT_EVIDENCE_MAX)
                        .collect(),
                    summary: format!(
                        "{member} is one of {count} staff who {} {subject} within {hours} hours with nothing explaining it: a curiosity wave",
                        tier.describe()
                    ),
                    key: format!("{subject}\u{1f}{member}"),
                });
            }
            break;
        }
    }

    fn sweep(&mut self, now_ms: i64) {
        let window_ms = hours_ms(self.config.window_hours);
        self.subjects.retain(|_, looks| looks.back().is_some_and(|last| now_ms - last.at_ms < window_ms));
    }

    fn save(&self) -> serde_json::Value {
        save_state(&self.subjects)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), serde_json::Error> {
        self.subjects = restore_state(state)?;
        Ok(())
    }
}
