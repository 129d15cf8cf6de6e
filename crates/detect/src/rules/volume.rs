//! `volume_baseline`: an actor who looks at far more distinct subjects in a day than they
//! usually do, or than the peers of their role usually do. Baselines are exponentially
//! weighted daily counts, learnt only from days that did not raise.
//!
//! Not raised until an actor has `history_days_min` days of history, nor for small absolute
//! numbers (`excess_min`): most targeted abuse is a handful of looks and is other rules' work.

use std::collections::{BTreeMap, BTreeSet};

use model::Severity;
use serde::{Deserialize, Serialize};

use super::{DAY_MS, Rule, restore_state, save_state};
use crate::engine::Finding;
use crate::event::{Access, Evidence};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    pub history_days_min: u32,
    /// Today's distinct subjects above this many times the actor's own baseline…
    pub own_ratio: f64,
    /// …or this many times their role peers' mean baseline…
    pub peer_ratio: f64,
    /// …and at least this many above the baseline compared with.
    pub excess_min: u32,
    pub severity: Severity,
    /// Weight of the newest day in the baseline.
    pub smoothing: f64,
}

impl Default for Config {
    fn default() -> Config {
        Config { enabled: true, history_days_min: 5, own_ratio: 3.0, peer_ratio: 4.0, excess_min: 30, severity: Severity::Medium, smoothing: 0.2 }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ActorState {
    role: String,
    baseline: f64,
    days: u32,
    day: i64,
    subjects: BTreeSet<u64>,
    first_evidence: Option<Evidence>,
    raised_today: bool,
}

#[derive(Debug)]
pub struct VolumeBaseline {
    config: Config,
    actors: BTreeMap<String, ActorState>,
    /// Per role: sum and count of the baselines of actors with enough history.
    roles: BTreeMap<String, (f64, u32)>,
}

impl VolumeBaseline {
    pub fn new(config: Config) -> VolumeBaseline {
        VolumeBaseline { config, actors: BTreeMap::new(), roles: BTreeMap::new() }
    }

    /// Mean baseline of the role's other actors with enough history, when there are three.
    fn peer_mean(&self, role: &str, own: Option<f64>) -> Option<f64> {
        let (sum, count) = self.roles.get(role).copied().unwrap_or((0.0, 0));
        let (sum, count) = match own {
            Some(baseline) => (sum - baseline, count.saturating_sub(1)),
            None => (sum, count),
        };
        (count >= 3).then(|| sum / f64::from(count))
    }
}

impl Rule for VolumeBaseline {
    fn name(&self) -> &'static str {
        "volume_baseline"
    }

    fn on_access(&mut self, access: &Access<'_>, out: &mut Vec<Finding>) {
        if access.subject_id().is_empty() || !access.revealed || access.entry.actor.kind == "machine" {
            return;
        }
        let actor = access.actor_id();
        let day = access.at_ms().div_euclid(DAY_MS);
        let smoothing = self.config.smoothing.clamp(0.0, 1.0);
        let history_days_min = self.config.history_days_min;
        if !self.actors.contains_key(actor) {
            self.actors.insert(actor.to_owned(), ActorState::default());
        }
        let state = self.actors.get_mut(actor).expect("inserted above");
        if state.day != day {
            state.role = access.entry.actor.roles.first().cloned().unwrap_or_default();
            if !state.subjects.is_empty() && !state.raised_today {
                let count = state.subjects.len() as f64;
                let role = self.roles.entry(state.role.clone()).or_insert((0.0, 0));
                if state.days >= history_days_min {
                    role.0 -= state.baseline;
                    role.1 -= 1;
                }
                state.baseline = if state.days == 0 { count } else { smoothing * count + (1.0 - smoothing) * state.baseline };
                state.days += 1;
                if state.days >= history_days_min {
                    role.0 += state.baseline;
                    role.1 += 1;
                }
            }
            state.day = day;
            state.subjects.clear();
            state.first_evidence = None;
            state.raised_today = false;
        }
        state.subjects.insert(super::pair_key(access.subject_id(), ""));
        state.first_evidence.get_or_insert_with(|| access.evidence.clone());
        if state.raised_today || state.days < self.config.history_days_min {
            return;
        }
        let today = state.subjects.len() as f64;
        let excess = f64::from(self.config.excess_min);
        let own = state.baseline;
        if today < excess {
            return;
        }
        let role = state.role.clone();
        let over_own = today > own * self.config.own_ratio && today - own >= excess;
        let peer = self.peer_mean(&role, Some(own));
        let over_peers = peer.is_some_and(|peer| today > peer * self.config.peer_ratio && today - peer >= excess);
        if !(over_own || over_peers) {
            return;
        }
        let state = self.actors.get_mut(actor).expect("present");
        state.raised_today = true;
        let compared = match (over_own, peer) {
            (true, _) => format!("their usual {own:.0} a day"),
            (false, Some(peer)) => format!("the {peer:.0} a day usual for {role}s"),
            (false, None) => String::new(),
        };
        out.push(Finding {
            severity: self.config.severity,
            actor: actor.to_owned(),
            subjects: Vec::new(),
            evidence: state.first_evidence.iter().cloned().chain([access.evidence.clone()]).collect(),
            summary: format!("{actor} has looked at {today:.0} different people today, against {compared}"),
            key: format!("{actor}\u{1f}{day}"),
        });
    }

    fn sweep(&mut self, now_ms: i64) {
        // Actors silent for a year start over.
        let history_days_min = self.config.history_days_min;
        let roles = &mut self.roles;
        self.actors.retain(|_, state| {
            let keep = now_ms.div_euclid(DAY_MS) - state.day < 366;
            if !keep && state.days >= history_days_min && let Some(role) = roles.get_mut(&state.role) {
                role.0 -= state.baseline;
                role.1 = role.1.saturating_sub(1);
            }
            keep
        });
    }

    fn save(&self) -> serde_json::Value {
        save_state(&(&self.actors, &self.roles))
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), serde_json::Error> {
        (self.actors, self.roles) = restore_state(state)?;
        Ok(())
    }
}
