//! `unexplained_access`: an access no case explains — no case, a case that does not assign
//! the actor or does not cover the subject, a closed or unknown case. This is the residue
//! explanation-based auditing leaves for review. The first unexplained look at a subject
//! weighs more than a repeat (repeats are `repeated_targeting`'s); an actor working through a
//! list of unexplained subjects in one day is raised as such.
//!
//! Not raised: break-glass (its own review rule), machine actors, searches that matched
//! nobody.

use std::collections::{BTreeMap, BTreeSet};

use model::Severity;
use serde::{Deserialize, Serialize};

use super::{DAY_MS, Rule, push_capped, restore_state, save_state};
use crate::engine::{ALERT_EVIDENCE_MAX, Finding};
use crate::event::{Access, Evidence, Explanation};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    /// The first unexplained look that revealed something about a subject.
    pub first_severity: Severity,
    /// A look that revealed nothing (denied, pending, a bare search hit).
    pub attempt_severity: Severity,
    /// This many distinct unexplained subjects by one actor in one UTC day: list working.
    pub list_subjects_per_day: usize,
    pub list_severity: Severity,
    /// How long a subject stays "already looked at" for the first-look weighting.
    pub memory_days: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            enabled: true,
            first_severity: Severity::Medium,
            attempt_severity: Severity::Low,
            list_subjects_per_day: 10,
            list_severity: Severity::High,
            memory_days: 90,
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ActorState {
    /// Subject → last unexplained look.
    seen: BTreeMap<String, i64>,
    day: i64,
    day_subjects: BTreeSet<String>,
    day_evidence: Vec<Evidence>,
    list_raised: bool,
}

#[derive(Debug)]
pub struct UnexplainedAccess {
    config: Config,
    actors: BTreeMap<String, ActorState>,
}

impl UnexplainedAccess {
    pub fn new(config: Config) -> UnexplainedAccess {
        UnexplainedAccess { config, actors: BTreeMap::new() }
    }
}

impl Rule for UnexplainedAccess {
    fn name(&self) -> &'static str {
        "unexplained_access"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        if access.explanation.explained() || access.explanation == Explanation::BreakGlass || access.subject_id().is_empty() {
            return;
        }
        let memory_ms = i64::try_from(self.config.memory_days).unwrap_or(i64::MAX / DAY_MS).saturating_mul(DAY_MS);
        let state = self.actors.entry(access.actor_id().to_owned()).or_default();
        let at = access.at_ms();
        let subject = access.subject_id().to_owned();
        let first = state.seen.get(&subject).is_none_or(|last| at - last >= memory_ms);
        state.seen.insert(subject.clone(), at);
        let day = at.div_euclid(DAY_MS);
        if state.day != day {
            state.day = day;
            state.day_subjects.clear();
            state.day_evidence.clear();
            state.list_raised = false;
        }
        state.day_subjects.insert(subject.clone());
        push_capped(&mut state.day_evidence, access.evidence.clone(), ALERT_EVIDENCE_MAX);
        let actor = access.actor_id();
        let how = access.explanation.describe();
        if first {
            let (severity, what) = if access.revealed {
                (self.config.first_severity, "revealed")
            } else {
                (self.config.attempt_severity, "asked for")
            };
            out.push(Finding {
                severity,
                actor: actor.to_owned(),
                subjects: vec![subject.clone()],
                evidence: vec![access.evidence.clone()],
                summary: format!(
                    "{actor} {what} {} of {subject} ({}, purpose {}) with {how}: nothing on record explains it",
                    access.fields_asked(),
                    access.entry.action,
                    access.entry.purpose
                ),
                key: format!("{actor}\u{1f}{subject}"),
            });
        }
        if !state.list_raised && state.day_subjects.len() >= self.config.list_subjects_per_day {
            state.list_raised = true;
            out.push(Finding {
                severity: self.config.list_severity,
                actor: actor.to_owned(),
                subjects: state.day_subjects.iter().cloned().collect(),
                evidence: state.day_evidence.clone(),
                summary: format!(
                    "{actor} looked up {} different people in one day without a case explaining any of them: working a list",
                    state.day_subjects.len()
                ),
                key: format!("{actor}\u{1f}list\u{1f}{day}"),
            });
        }
    }

    fn sweep(&mut self, now_ms: i64) {
        let memory_ms = i64::try_from(self.config.memory_days).unwrap_or(i64::MAX / DAY_MS).saturating_mul(DAY_MS);
        self.actors.retain(|_, state| {
            state.seen.retain(|_, last| now_ms - *last < memory_ms);
            !state.seen.is_empty()
        });
    }

    fn save(&self) -> serde_json::Value {
        save_state(&self.actors)
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), serde_json::Error> {
        self.actors = restore_state(state)?;
        Ok(())
    }
}
