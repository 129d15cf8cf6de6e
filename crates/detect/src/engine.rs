//! The detector: feeds each log entry, in order, to every enabled rule, turns their findings
//! into alerts with stable ids, and keeps one alert per rule and key within a cool-down
//! unless the finding is more serious than the one already raised. Its whole state can be
//! saved and restored, so a restarted detector continues exactly where a saved one stood.

use std::collections::{BTreeMap, HashMap};

use model::Severity;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::DetectionConfig;
use crate::event::{Access, Approval, Entry, Evidence};
use crate::facts::Facts;
use crate::rules::{self, Rule};

/// Most evidence entries one alert carries; the summary says when more were seen.
pub const ALERT_EVIDENCE_MAX: usize = 100;
/// Most subjects one alert names.
pub const ALERT_SUBJECTS_MAX: usize = 100;

/// An alert as raised: what a compliance officer reads first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// 32 lowercase hex digits, derived from the rule and the entry that raised it: raising
    /// the same alert again (after a restart) gives the same id.
    pub id: String,
    pub rule: String,
    pub severity: Severity,
    pub actor: String,
    pub subjects: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub summary: String,
    /// Time of the entry that raised it (ms since the epoch).
    pub at_ms: i64,
}

/// What a rule found. The engine names the rule, assigns the id and applies the cool-down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub severity: Severity,
    pub actor: String,
    pub subjects: Vec<String>,
    pub evidence: Vec<Evidence>,
    pub summary: String,
    /// What makes two findings "the same alert" for the cool-down, within the rule
    /// (for example actor and subject).
    pub key: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("restore detector state: {0}")]
    Malformed(String),
    #[error("restore detector state: rule {rule}: {message}")]
    Rule { rule: String, message: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Raised {
    at_ms: i64,
    severity: Severity,
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    version: u32,
    now_ms: i64,
    observed: u64,
    raised: Vec<(String, Raised)>,
    rules: BTreeMap<String, serde_json::Value>,
}

const STATE_VERSION: u32 = 1;
/// How often (in entries) stale rule state and cool-downs are swept.
const SWEEP_EVERY_ENTRIES: u64 = 50_000;

pub struct Detector {
    rules: Vec<Box<dyn Rule>>,
    cooldown_ms: i64,
    raised: HashMap<String, Raised>,
    now_ms: i64,
    observed: u64,
    findings: Vec<Finding>,
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Detector")
            .field("rules", &self.rules.iter().map(|rule| rule.name()).collect::<Vec<_>>())
            .field("observed", &self.observed)
            .finish_non_exhaustive()
    }
}

impl Detector {
    pub fn new(config: &DetectionConfig) -> Detector {
        Detector {
            rules: rules::enabled(config),
            cooldown_ms: i64::try_from(config.cooldown_seconds).unwrap_or(i64::MAX / 1_000).saturating_mul(1_000),
            raised: HashMap::new(),
            now_ms: i64::MIN,
            observed: 0,
            findings: Vec::new(),
        }
    }

    /// Names of the rules this detector runs, in order.
    pub fn rule_names(&self) -> Vec<&'static str> {
        self.rules.iter().map(|rule| rule.name()).collect()
    }

    /// How many entries it has observed since it started from an empty state.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// Observes the entry at `region`/`index` and returns the alerts it raises, in rule order.
    pub fn observe(&mut self, region: &str, index: u64, entry: &Entry, facts: &dyn Facts) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let at_ms = entry.at_ms().unwrap_or(self.now_ms);
        // Entries of one region are in log order, which concurrent requests may leave a few
        // milliseconds out of time order; rule time never goes backwards.
        self.now_ms = self.now_ms.max(at_ms);
        self.observed += 1;
        let now_ms = self.now_ms;
        let trigger = Evidence { region: region.to_owned(), index, request: String::new() };
        let derived = match entry {
            Entry::Access(access) => Some(Access::derive(region, index, access, facts)),
            _ => None,
        };
        for rule_index in 0..self.rules.len() {
            self.findings.clear();
            let rule = &mut self.rules[rule_index];
            rule.advance(now_ms, &mut self.findings);
            match (entry, &derived) {
                (Entry::Access(_), Some(access)) => rule.on_access(access, &mut self.findings),
                (Entry::Approval(approval), _) => {
                    let approval = Approval {
                        evidence: Evidence { region: region.to_owned(), index, request: approval.request.clone() },
                        entry: approval,
                    };
                    rule.on_approval(&approval, &mut self.findings);
                }
                (Entry::AlertAction(action), _) => rule.on_alert_action(action, &mut self.findings),
                _ => {}
            }
            let name = rule.name();
            let findings = std::mem::take(&mut self.findings);
            for (ordinal, finding) in findings.into_iter().enumerate() {
                if let Some(alert) = self.admit(name, &trigger, ordinal, now_ms, finding) {
                    alerts.push(alert);
                }
            }
        }
        if self.observed.is_multiple_of(SWEEP_EVERY_ENTRIES) {
            self.sweep();
        }
        alerts
    }

    /// Saves everything the detector holds; [`Detector::restore`] on a detector with the same
    /// configuration continues exactly from here.
    pub fn save(&self) -> Vec<u8> {
        let mut raised: Vec<(String, Raised)> = self.raised.iter().map(|(key, value)| (key.clone(), *value)).collect();
        raised.sort_by(|left, right| left.0.cmp(&right.0));
        let state = SavedState {
            version: STATE_VERSION,
            now_ms: self.now_ms,
            observed: self.observed,
            raised,
            rules: self.rules.iter().map(|rule| (rule.name().to_owned(), rule.save())).collect(),
        };
        // INVARIANT: the state holds only maps, strings and numbers, which always encode.
        serde_json::to_vec(&state).expect("detector state encodes")
    }

    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), StateError> {
        let state: SavedState = serde_json::from_slice(bytes).map_err(|error| StateError::Malformed(error.to_string()))?;
        if state.version != STATE_VERSION {
            return Err(StateError::Malformed(format!("state version {} is not {STATE_VERSION}", state.version)));
        }
        for rule in &mut self.rules {
            if let Some(saved) = state.rules.get(rule.name()) {
                rule.restore(saved.clone())
                    .map_err(|error| StateError::Rule { rule: rule.name().to_owned(), message: error.to_string() })?;
            }
        }
        self.now_ms = state.now_ms;
        self.observed = state.observed;
        self.raised = state.raised.into_iter().collect();
        Ok(())
    }

    fn admit(&mut self, rule: &'static str, trigger: &Evidence, ordinal: usize, now_ms: i64, finding: Finding) -> Option<Alert> {
        let key = format!("{rule}\u{1f}{}", finding.key);
        if let Some(previous) = self.raised.get(&key)
            && now_ms.saturating_sub(previous.at_ms) < self.cooldown_ms
            && finding.severity <= previous.severity
        {
            return None;
        }
        self.raised.insert(key, Raised { at_ms: now_ms, severity: finding.severity });
        let mut digest = Sha256::new();
        for part in ["custos-alert-v1", rule, &trigger.region, &trigger.index.to_string(), &ordinal.to_string()] {
            digest.update(part.as_bytes());
            digest.update([0]);
        }
        let id = hex::encode(&digest.finalize()[..16]);
        let mut subjects = finding.subjects;
        subjects.truncate(ALERT_SUBJECTS_MAX);
        let mut evidence = finding.evidence;
        evidence.truncate(ALERT_EVIDENCE_MAX);
        Some(Alert {
            id,
            rule: rule.to_owned(),
            severity: finding.severity,
            actor: finding.actor,
            subjects,
            evidence,
            summary: finding.summary,
            at_ms: now_ms,
        })
    }

    fn sweep(&mut self) {
        let now_ms = self.now_ms;
        let cooldown_ms = self.cooldown_ms;
        self.raised.retain(|_, raised| now_ms.saturating_sub(raised.at_ms) < cooldown_ms);
        for rule in &mut self.rules {
            rule.sweep(now_ms);
        }
    }
}
