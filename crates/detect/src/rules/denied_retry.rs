//! `denied_retry`: probing the policy — after a refusal, the same actor asks about the same
//! person again with another purpose, case, action or views; or gathers many refusals in a
//! day. A refused request is the policy working; a changed retry is someone looking for the
//! door it left open.
//!
//! Not raised for an identical retry (a double click), nor for a request that waits for an
//! approval (that is the designed path).

use std::collections::{BTreeMap, VecDeque};

use model::Severity;
use serde::{Deserialize, Serialize};

use super::{Rule, hours_ms, restore_state, save_state};
use crate::engine::{ALERT_EVIDENCE_MAX, Finding};
use crate::event::{Access, Evidence};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    /// A changed retry within this long of a refusal.
    pub retry_window_minutes: u64,
    pub severity: Severity,
    /// This many refusals of one actor within `probe_window_hours`.
    pub probes: usize,
    pub probe_window_hours: u64,
    pub probe_severity: Severity,
}

impl Default for Config {
    fn default() -> Config {
        Config { enabled: true, retry_window_minutes: 60, severity: Severity::Medium, probes: 3, probe_window_hours: 24, probe_severity: Severity::High }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Refusal {
    at_ms: i64,
    target: String,
    /// Action, purpose, case and the fields with views asked: what a retry would change.
    shape: String,
    evidence: Evidence,
}

#[derive(Debug)]
pub struct DeniedRetry {
    config: Config,
    actors: BTreeMap<String, VecDeque<Refusal>>,
}

impl DeniedRetry {
    pub fn new(config: Config) -> DeniedRetry {
        DeniedRetry { config, actors: BTreeMap::new() }
    }
}

impl Rule for DeniedRetry {
    fn name(&self) -> &'static str {
        "denied_retry"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        let entry = access.entry;
        if entry.actor.kind == "machine" {
            return;
        }
        let target = match (&entry.query, access.subject_id()) {
            (_, subject) if !subject.is_empty() => subject.to_owned(),
            (Some(query), _) => format!("query:{}:{}", query.field, query.digest),
            (None, _) => return,
        };
        let actor = access.actor_id();
        // Most actors are never refused: nothing to compare with, nothing to keep.
        if !access.denied() && !self.actors.contains_key(actor) {
            return;
        }
        let shape = format!("{}|{}|{}|{}", entry.action, entry.purpose, entry.case.as_deref().unwrap_or(""), access.fields_asked());
        let at = access.at_ms();
        let probe_window_ms = hours_ms(self.config.probe_window_hours);
        let retry_window_ms = i64::try_from(self.config.retry_window_minutes).unwrap_or(i64::MAX / 60_000).saturating_mul(60_000);
        let refusals = self.actors.entry(actor.to_owned()).or_default();
        while refusals.front().is_some_and(|oldest| at - oldest.at_ms >= probe_window_ms) {
            refusals.pop_front();
        }
        let retried: Vec<&Refusal> =
            refusals.iter().filter(|refusal| refusal.target == target && at - refusal.at_ms < retry_window_ms && refusal.shape != shape).collect();
        if !retried.is_empty() && entry.decision != "pending" {
            let subject = access.subject_id();
            out.push(Finding {
                severity: self.config.severity,
                actor: actor.to_owned(),
                subjects: if subject.is_empty() { Vec::new() } else { vec![subject.to_owned()] },
                evidence: retried.iter().map(|refusal| refusal.evidence.clone()).chain([access.evidence.clone()]).collect(),
                summary: format!(
                    "{actor} was refused and asked again about {} within {} minutes, changing the request to {} ({}, purpose {}): probing the policy",
                    if subject.is_empty() { "the same search" } else { subject },
                    self.config.retry_window_minutes,
                    access.fields_asked(),
                    entry.action,
                    entry.purpose
                ),
                key: format!("{actor}\u{1f}{target}"),
            });
        }
        if !access.denied() {
            return;
        }
        if refusals.len() < ALERT_EVIDENCE_MAX {
            refusals.push_back(Refusal { at_ms: at, target, shape, evidence: access.evidence.clone() });
        }
        // One request about many subjects is one refusal.
        let requests: std::collections::BTreeSet<&str> = refusals.iter().map(|refusal| refusal.evidence.request.as_str()).collect();
        if requests.len() >= self.config.probes {
            let mut subjects: Vec<String> = Vec::new();
            for refusal in refusals.iter().filter(|refusal| !refusal.target.starts_with("query:")) {
                super::push_capped(&mut subjects, refusal.target.clone(), crate::ALERT_SUBJECTS_MAX);
            }
            out.push(Finding {
                severity: self.config.probe_severity,
                actor: actor.to_owned(),
                subjects,
                evidence: refusals.iter().map(|refusal| refusal.evidence.clone()).collect(),
                summary: format!(
                    "{actor} was refused {} times within {} hours",
                    requests.len(),
                    self.config.probe_window_hours
                ),
                key: format!("{actor}\u{1f}probes"),
            });
        }
    }

    fn sweep(&mut self, now_ms: i64) {
        let probe_window_ms = hours_ms(self.config.probe_window_hours);
        self.actors.retain(|_, refusals| refusals.back().is_some_and(|last| now_ms - last.at_ms < probe_window_ms));
    }

    fn save(&self) -> serde_json::Value {
        save_state(&self.actors)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), serde_json::Error> {
        self.actors = restore_state(state)?;
        Ok(())
    }
}
