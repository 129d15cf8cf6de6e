//! The detector's configuration: the cool-down and one section per rule (thresholds,
//! windows, severities, on/off). Every field has a default; `custos.toml` sets only what it
//! changes, under `[detection]` and `[detection.<rule>]`.

use serde::{Deserialize, Serialize};

use crate::rules::{access_kinds, break_glass, co_location, cross_border, curiosity, denied_retry, off_hours, protected, purpose, repeated, rubber_stamp, unexplained, volume};

/// The default cool-down: one alert per rule and key a day, unless a finding is more serious.
pub const COOLDOWN_SECONDS_DEFAULT: u64 = 86_400;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionConfig {
    /// Within this long, the same rule and key (e.g. actor and subject) raise one alert
    /// unless a finding is more serious than the one raised.
    pub cooldown_seconds: u64,
    pub unexplained_access: unexplained::Config,
    pub protected_target: protected::Config,
    pub purpose_mismatch: purpose::Config,
    pub co_location_probe: co_location::Config,
    pub cross_border: cross_border::Config,
    pub repeated_targeting: repeated::Config,
    pub volume_baseline: volume::Config,
    pub off_hours: off_hours::Config,
    pub curiosity_burst: curiosity::Config,
    pub denied_retry: denied_retry::Config,
    pub break_glass_review: break_glass::Config,
    pub rubber_stamp: rubber_stamp::Config,
    pub account_control: access_kinds::AccountControlConfig,
    pub export_destination: access_kinds::ExportConfig,
}

impl Default for DetectionConfig {
    fn default() -> DetectionConfig {
        DetectionConfig {
            cooldown_seconds: COOLDOWN_SECONDS_DEFAULT,
            unexplained_access: Default::default(),
            protected_target: Default::default(),
            purpose_mismatch: Default::default(),
            co_location_probe: Default::default(),
            cross_border: Default::default(),
            repeated_targeting: Default::default(),
            volume_baseline: Default::default(),
            off_hours: Default::default(),
            curiosity_burst: Default::default(),
            denied_retry: Default::default(),
            break_glass_review: Default::default(),
            rubber_stamp: Default::default(),
            account_control: Default::default(),
            export_destination: Default::default(),
        }
    }
}
