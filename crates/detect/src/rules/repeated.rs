//! `repeated_targeting`: the same actor looks at the same subject again and again with no new
//! case activity in between (the same case, unchanged since their last look, or no case); and live-location polling — the subject's exact location asked for repeatedly in a
//! short window, whatever the case says.
//!
//! Not raised for follow-ups after the case moved (new assignee, new subject, status), nor
//! for location asked again under a validated legal process or on the subject's own request.

use std::collections::HashMap;

use model::Severity;
use serde::{Deserialize, Serialize};

use super::{DAY_MS, Rule, hours_ms, pair_key, restore_state, save_state, when};
use crate::engine::Finding;
use crate::event::{Access, Evidence, Explanation};

/// Evidence kept per actor and subject: the first looks of a run (the alert's summary counts all).
const EVIDENCE_PER_PAIR_MAX: usize = 12;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    pub window_days: u64,
    /// Unexplained looks (no case, or one that does not cover them) before an alert.
    pub looks: u32,
    /// Looks on a case that assigns the actor and covers the subject, unchanged since, before
    /// an alert: long tickets take follow-ups.
    pub explained_looks: u32,
    pub severity: Severity,
    /// Looks without new case activity before the alert becomes `high_severity`.
    pub high_looks: u32,
    pub high_severity: Severity,
    /// Exact-location requests for one subject within `polling_window_hours`.
    pub location_polls: u32,
    pub polling_window_hours: u64,
    pub polling_severity: Severity,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            enabled: true,
            window_days: 14,
            looks: 5,
            explained_looks: 12,
            severity: Severity::Medium,
            high_looks: 10,
            high_severity: Severity::High,
            location_polls: 3,
            polling_window_hours: 24,
            polling_severity: Severity::High,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Pair {
    first_at_ms: i64,
    last_at_ms: i64,
    /// The case's `updated_at_ms` at the last look (0: no case).
    case_updated_ms: i64,
    /// Which case the last look was on (0: none).
    #[serde(default)]
    case_key: u64,
    looks: u32,
    #[serde(default)]
    unexplained_looks: u32,
    polls: Vec<i64>,
    evidence: Vec<Evidence>,
}

#[derive(Debug)]
pub struct RepeatedTargeting {
    config: Config,
    pairs: HashMap<u64, Pair>,
}

impl RepeatedTargeting {
    pub fn new(config: Config) -> RepeatedTargeting {
        RepeatedTargeting { config, pairs: HashMap::new() }
    }
}

impl Rule for RepeatedTargeting {
    fn name(&self) -> &'static str {
        "repeated_targeting"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        let subject = access.subject_id();
        if subject.is_empty() || access.entry.actor.kind == "machine" || !(access.revealed || access.asked_identifying) {
            return;
        }
        let actor = access.actor_id();
        let at = access.at_ms();
        let window_ms = i64::try_from(self.config.window_days).unwrap_or(i64::MAX / DAY_MS).saturating_mul(DAY_MS);
        let case_updated = access.case.map_or(0, |case| case.updated_at_ms);
        let pair = self.pairs.entry(pair_key(actor, subject)).or_default();
        let case_key = access.case.map_or(0, |case| pair_key(&case.id, ""));
        // A look on another case than the last one, or on a case that changed since, has a
        // fresh reason.
        let fresh_reason = access.case.is_some() && (case_updated > pair.case_updated_ms || case_key != pair.case_key);
        if pair.looks == 0 || at - pair.last_at_ms >= window_ms || fresh_reason {
            *pair = Pair { first_at_ms: at, polls: std::mem::take(&mut pair.polls), ..Pair::default() };
        }
        pair.looks += 1;
        if !access.explanation.explained() {
            pair.unexplained_looks += 1;
        }
        pair.last_at_ms = at;
        pair.case_updated_ms = case_updated;
        pair.case_key = case_key;
        if pair.evidence.len() < EVIDENCE_PER_PAIR_MAX {
            pair.evidence.push(access.evidence.clone());
        }
        let looks = pair.looks;
        let unexplained = pair.unexplained_looks;
        if unexplained >= self.config.looks || looks >= self.config.explained_looks {
            let severity = if unexplained >= self.config.high_looks || looks >= 2 * self.config.explained_looks {
                self.config.high_severity
            } else {
                self.config.severity
            };
            out.push(Finding {
                severity,
                actor: actor.to_owned(),
                subjects: vec![subject.to_owned()],
                evidence: pair.evidence.clone(),
                summary: format!(
                    "{actor} looked at {subject} {looks} times since {} with no new activity on any case explaining it",
                    when(pair.first_at_ms)
                ),
                key: format!("{actor}\u{1f}{subject}"),
            });
        }
        // An emergency under a validated legal process, or the subject's own request, may
        // need the location more than once.
        let legitimate_polling = matches!(access.explanation, Explanation::LegalProcess | Explanation::OwnRequest);
        if access.asked_live_location && !legitimate_polling {
            let polling_ms = hours_ms(self.config.polling_window_hours);
            pair.polls.retain(|poll| at - poll < polling_ms);
            pair.polls.push(at);
            let polls = pair.polls.len();
            if u32::try_from(polls).unwrap_or(u32::MAX) >= self.config.location_polls {
                out.push(Finding {
                    severity: self.config.polling_severity,
                    actor: actor.to_owned(),
                    subjects: vec![subject.to_owned()],
                    evidence: pair.evidence.iter().rev().take(polls).rev().cloned().collect(),
                    summary: format!(
                        "{actor} asked for the exact location of {subject} {polls} times within {} hours: live-location polling",
                        self.config.polling_window_hours
                    ),
                    key: format!("{actor}\u{1f}{subject}\u{1f}polling"),
                });
            }
        }
    }

    fn sweep(&mut self, now_ms: i64) {
        let window_ms = i64::try_from(self.config.window_days).unwrap_or(i64::MAX / DAY_MS).saturating_mul(DAY_MS);
        self.pairs.retain(|_, pair| now_ms - pair.last_at_ms < window_ms);
    }

    fn save(&self) -> serde_json::Value {
        let mut pairs: Vec<(&u64, &Pair)> = self.pairs.iter().collect();
        pairs.sort_by_key(|(key, _)| **key);
        save_state(&pairs)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), serde_json::Error> {
        let pairs: Vec<(u64, Pair)> = restore_state(state)?;
        self.pairs = pairs.into_iter().collect();
        Ok(())
    }
}
