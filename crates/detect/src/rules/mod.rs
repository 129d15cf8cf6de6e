//! The rules. Each lives in its own module with its own configuration and state; adding one
//! means a module, a field in [`crate::DetectionConfig`] and a line in [`enabled`] — no other
//! rule changes. docs/detection.md says what each catches and what it deliberately does not.

use serde::Serialize;
use serde::de::DeserializeOwned;

use model::decision_entry::AlertActionEntry;

use crate::config::DetectionConfig;
use crate::engine::Finding;
use crate::event::{Access, Approval};

pub mod access_kinds;
pub mod break_glass;
pub mod co_location;
pub mod cross_border;
pub mod curiosity;
pub mod denied_retry;
pub mod off_hours;
pub mod protected;
pub mod purpose;
pub mod repeated;
pub mod rubber_stamp;
pub mod unexplained;
pub mod volume;

/// One rule: sees entries in log order, keeps its own state, reports findings.
pub trait Rule: Send {
    /// The rule's name in alerts and configuration, `a-z0-9_`.
    fn name(&self) -> &'static str;
    /// Rule time moved to `now_ms` (before the entry of that time is shown): deadlines.
    fn advance(&mut self, _now_ms: i64, _out: &mut Vec<Finding>) {}
    fn on_access(&mut self, _access: &Access<'_>, _out: &mut Vec<Finding>) {}
    fn on_approval(&mut self, _approval: &Approval<'_>, _out: &mut Vec<Finding>) {}
    /// Someone acknowledged or resolved an alert (the entry was logged before it took effect).
    fn on_alert_action(&mut self, _action: &AlertActionEntry, _out: &mut Vec<Finding>) {}
    /// Drops state no window can reach any more.
    fn sweep(&mut self, _now_ms: i64) {}
    /// The rule's state, for [`crate::Detector::save`]; stateless rules keep the default.
    fn save(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    fn restore(&mut self, _state: serde_json::Value) -> Result<(), serde_json::Error> {
        Ok(())
    }
}

/// The enabled rules, in a fixed order (alerts of one entry come out in this order).
pub fn enabled(config: &DetectionConfig) -> Vec<Box<dyn Rule>> {
    let mut rules: Vec<Box<dyn Rule>> = Vec::new();
    let mut add = |enabled: bool, rule: Box<dyn Rule>| {
        if enabled {
            rules.push(rule);
        }
    };
    add(config.unexplained_access.enabled, Box::new(unexplained::UnexplainedAccess::new(config.unexplained_access.clone())));
    add(config.protected_target.enabled, Box::new(protected::ProtectedTarget::new(config.protected_target.clone())));
    add(config.purpose_mismatch.enabled, Box::new(purpose::PurposeMismatch::new(config.purpose_mismatch.clone())));
    add(config.co_location_probe.enabled, Box::new(co_location::CoLocationProbe::new(config.co_location_probe.clone())));
    add(config.cross_border.enabled, Box::new(cross_border::CrossBorder::new(config.cross_border.clone())));
    add(config.repeated_targeting.enabled, Box::new(repeated::RepeatedTargeting::new(config.repeated_targeting.clone())));
    add(config.volume_baseline.enabled, Box::new(volume::VolumeBaseline::new(config.volume_baseline.clone())));
    add(config.off_hours.enabled, Box::new(off_hours::OffHours::new(config.off_hours.clone())));
    add(config.curiosity_burst.enabled, Box::new(curiosity::CuriosityBurst::new(config.curiosity_burst.clone())));
    add(config.denied_retry.enabled, Box::new(denied_retry::DeniedRetry::new(config.denied_retry.clone())));
    add(config.break_glass_review.enabled, Box::new(break_glass::BreakGlassReview::new(config.break_glass_review.clone())));
    add(config.rubber_stamp.enabled, Box::new(rubber_stamp::RubberStamp::new(config.rubber_stamp.clone())));
    add(config.account_control.enabled, Box::new(access_kinds::AccountControl::new(config.account_control.clone())));
    add(config.export_destination.enabled, Box::new(access_kinds::ExportDestination::new(config.export_destination.clone())));
    rules
}

/// Every rule name, in [`enabled`] order.
pub const RULE_NAMES: [&str; 14] = [
    "unexplained_access",
    "protected_target",
    "purpose_mismatch",
    "co_location_probe",
    "cross_border",
    "repeated_targeting",
    "volume_baseline",
    "off_hours",
    "curiosity_burst",
    "denied_retry",
    "break_glass_review",
    "rubber_stamp",
    "account_control",
    "export_destination",
];

pub(crate) fn save_state<S: Serialize>(state: &S) -> serde_json::Value {
    // INVARIANT: rule states are maps, strings and numbers, which always encode.
    serde_json::to_value(state).expect("rule state encodes")
}

pub(crate) fn restore_state<S: DeserializeOwned>(state: serde_json::Value) -> Result<S, serde_json::Error> {
    serde_json::from_value(state)
}

/// A stable 64-bit key for a pair of ids (FNV-1a): compact state for per-pair counters that
/// must survive a save and restore unchanged, unlike the standard library's seeded hash.
pub(crate) fn pair_key(left: &str, right: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in left.bytes().chain([0x1f]).chain(right.bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

pub(crate) const HOUR_MS: i64 = 3_600_000;
pub(crate) const DAY_MS: i64 = 24 * HOUR_MS;

/// Milliseconds in `hours` hours, saturating.
pub(crate) fn hours_ms(hours: u64) -> i64 {
    i64::try_from(hours).unwrap_or(i64::MAX).saturating_mul(HOUR_MS)
}

/// "2026-03-03 01:10 UTC" for summaries.
pub(crate) fn when(at_ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(at_ms)
        .map(|at| at.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|| at_ms.to_string())
}

/// Adds `item` to a capped list (evidence, subjects) unless already there.
pub(crate) fn push_capped<T: PartialEq>(list: &mut Vec<T>, item: T, cap: usize) {
    if list.len() < cap && !list.contains(&item) {
        list.push(item);
    }
}
