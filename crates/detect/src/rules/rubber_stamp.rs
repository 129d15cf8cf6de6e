//! `rubber_stamp`: an approver who grants many requests in a short time, or grants them within
//! seconds of their being asked: the second person has stopped being a second look.
//!
//! Not raised for rejections, nor for approvals custos refused.

use std::collections::{BTreeMap, VecDeque};

use model::Severity;
use serde::{Deserialize, Serialize};

use super::{DAY_MS, Rule, restore_state, save_state};
use crate::engine::Finding;
use crate::event::{Access, Approval, Evidence};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub enabled: bool,
    pub window_minutes: u64,
    /// Approvals by one approver within the window.
    pub approvals: usize,
    /// Approvals given within this many seconds of the request…
    pub fast_seconds: u64,
    /// …this many times within the window.
    pub fast_approvals: usize,
    pub severity: Severity,
}

impl Default for Config {
    fn default() -> Config {
        Config { enabled: true, window_minutes: 60, approvals: 10, fast_seconds: 30, fast_approvals: 5, severity: Severity::Medium }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Granted {
    at_ms: i64,
    fast: bool,
    evidence: Evidence,
}

#[derive(Debug)]
pub struct RubberStamp {
    config: Config,
    /// Request id → when it was first left pending (kept a week).
    asked: BTreeMap<String, i64>,
    approvers: BTreeMap<String, VecDeque<Granted>>,
}

impl RubberStamp {
    pub fn new(config: Config) -> RubberStamp {
        RubberStamp { config, asked: BTreeMap::new(), approvers: BTreeMap::new() }
    }
}

impl Rule for RubberStamp {
    fn name(&self) -> &'static str {
        "rubber_stamp"
    }

    fn on_access(&mut self, access: &Access<'_>, _out: &mut Vec<Finding>) {
        if access.entry.decision == "pending" {
            self.asked.entry(access.entry.request.clone()).or_insert(access.at_ms());
        }
    }

    fn on_approval(&mut self, approval: &Approval<'_>, out: &mut Vec<Finding>) {
        let entry = approval.entry;
        if entry.decision != "approve" {
            return;
        }
        let at = entry.at_ms;
        let window_ms = i64::try_from(self.config.window_minutes).unwrap_or(i64::MAX / 60_000).saturating_mul(60_000);
        let fast_ms = i64::try_from(self.config.fast_seconds).unwrap_or(i64::MAX / 1_000).saturating_mul(1_000);
        let fast = self.asked.get(&entry.request).is_some_and(|asked| at - asked < fast_ms);
        let approver = entry.approver.id.clone();
        let granted = self.approvers.entry(approver.clone()).or_default();
        while granted.front().is_some_and(|oldest| at - oldest.at_ms >= window_ms) {
            granted.pop_front();
        }
        granted.push_back(Granted { at_ms: at, fast, evidence: approval.evidence.clone() });
        let fast_count = granted.iter().filter(|granted| granted.fast).count();
        let many = granted.len() >= self.config.approvals;
        let quick = fast_count >= self.config.fast_approvals;
        if !(many || quick) {
            return;
        }
        let summary = if quick {
            format!("{approver} approved {fast_count} requests within {} seconds of their being asked, in {} minutes", self.config.fast_seconds, self.config.window_minutes)
        } else {
            format!("{approver} approved {} requests within {} minutes", granted.len(), self.config.window_minutes)
        };
        out.push(Finding {
            severity: self.config.severity,
            actor: approver.clone(),
            subjects: Vec::new(),
            evidence: granted.iter().map(|granted| granted.evidence.clone()).collect(),
            summary: format!("{summary}: approvals that fast are not a second look"),
            key: approver,
        });
    }

    fn sweep(&mut self, now_ms: i64) {
        self.asked.retain(|_, asked| now_ms - *asked < 7 * DAY_MS);
        let window_ms = i64::try_from(self.config.window_minutes).unwrap_or(i64::MAX / 60_000).saturating_mul(60_000);
        self.approvers.retain(|_, granted| granted.back().is_some_and(|last| now_ms - last.at_ms < window_ms));
    }

    fn save(&self) -> serde_json::Value {
        save_state(&(&self.asked, &self.approvers))
    }

    fn restore(&mut self, state: serde_json::Value) -> Result<(), serde_json::Error> {
        (self.asked, self.approvers) = restore_state(state)?;
        Ok(())
    }
}
