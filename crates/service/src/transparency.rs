//! The public transparency report: per region and month, how many access decisions were
//! made for each purpose, how many were refused or held for approval, how second persons
//! answered, how often break-glass was used — aggregates only, never a person or a case —
//! with each region's signed checkpoint and the key that verifies it.
//!
//! The counts come from the tallies the index follower keeps beside the timelines
//! (`subject_index.rs`): each log entry is counted once, in the same transaction that moves
//! the cursor past it.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Utc};
use serde::Serialize;
use store::TimelineKind;

use crate::subject_index::{TALLY_APPROVAL, TALLY_BREAK_GLASS, TALLY_DECISION, TALLY_PURPOSE};
use crate::{Gate, ServiceError};

/// Purposes whose access decisions answer a legal or emergency request from an authority.
pub const LEGAL_PURPOSES: [&str; 2] = ["legal_request", "emergency_request"];
/// Most tally keys read per region (purposes, outcomes, answers): far above what a policy
/// set defines, and a bound on the work one public page can cause.
pub const TALLY_KEYS_MAX: usize = 1_000;

/// What one month of one region's log holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct MonthTally {
    /// Access decisions per stated purpose.
    pub purposes: BTreeMap<String, u64>,
    /// Access decisions per outcome: `allow`, `deny`, `pending`.
    pub decisions: BTreeMap<String, u64>,
    /// Second persons' answers: `approve`, `reject`, `refused`.
    pub approvals: BTreeMap<String, u64>,
    /// Access decisions made under break-glass.
    pub break_glass: u64,
}

impl MonthTally {
    /// Access decisions answering legal or emergency requests ([`LEGAL_PURPOSES`]).
    pub fn legal_requests(&self) -> u64 {
        LEGAL_PURPOSES.iter().filter_map(|purpose| self.purposes.get(*purpose)).sum()
    }

    /// Every access decision of the month.
    pub fn decisions_total(&self) -> u64 {
        self.decisions.values().sum()
    }
}

/// One region's part of the report.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RegionTransparency {
    pub region: String,
    /// The log's origin (C2SP checkpoint first line).
    pub origin: String,
    /// The note verifier key (`custos log verify --key`).
    pub verifier_key: String,
    /// The latest signed checkpoint, absent before the first is signed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<String>,
    /// Month (`YYYY-MM`, UTC) → what the log holds for it, ascending.
    pub months: BTreeMap<String, MonthTally>,
}

/// The report as of `generated_at`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct TransparencyReport {
    pub generated_at: DateTime<Utc>,
    pub regions: Vec<RegionTransparency>,
}

/// The month (`YYYY-MM`, UTC) a time falls in.
pub fn month_of(at: DateTime<Utc>) -> String {
    format!("{:04}-{:02}", at.year(), at.month())
}

impl Gate {
    /// The transparency report over every served region, the index brought level first.
    pub async fn transparency(&self) -> Result<TransparencyReport, ServiceError> {
        let mut regions = Vec::new();
        for region in self.vault().regions() {
            let log = self.vault().log(region)?;
            let index = log.subject_index()?;
            log.index_subjects_to(u64::MAX).await?;
            let mut months: BTreeMap<String, MonthTally> = BTreeMap::new();
            let mut after = String::new();
            for _ in 0..TALLY_KEYS_MAX {
                let Some(key) = index.timeline_next_key(TimelineKind::Tally, &after).await? else { break };
                for (day, count) in index.timeline_activity(TimelineKind::Tally, &key, crate::ACTIVITY_BUCKET_MS).await? {
                    let month = months.entry(month_of(crate::time_from_ms(day))).or_default();
                    if let Some(purpose) = key.strip_prefix(TALLY_PURPOSE) {
                        *month.purposes.entry(purpose.to_owned()).or_default() += count;
                    } else if let Some(decision) = key.strip_prefix(TALLY_DECISION) {
                        *month.decisions.entry(decision.to_owned()).or_default() += count;
                    } else if let Some(answer) = key.strip_prefix(TALLY_APPROVAL) {
                        *month.approvals.entry(answer.to_owned()).or_default() += count;
                    } else if key == TALLY_BREAK_GLASS {
                        month.break_glass += count;
                    }
                }
                after = key;
            }
            let checkpoint = match log.checkpoint().await {
                Ok(note) => Some(note),
                Err(ServiceError::Log(_)) => None,
                Err(error) => return Err(error),
            };
            regions.push(RegionTransparency {
                region: region.to_string(),
                origin: log.origin().to_owned(),
                verifier_key: log.verifier_key(),
                checkpoint,
                months,
            });
        }
        Ok(TransparencyReport { generated_at: self.vault().clock().now(), regions })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_and_zero_padded() {
        let at = DateTime::parse_from_rfc3339("2026-03-31T23:59:59-05:00").unwrap().with_timezone(&Utc);
        assert_eq!(month_of(at), "2026-04");
        assert_eq!(month_of(DateTime::from_timestamp(0, 0).unwrap()), "1970-01");
    }

    #[test]
    fn legal_requests_add_up_the_legal_purposes_only() {
        let tally = MonthTally {
            purposes: [("legal_request".to_owned(), 2), ("emergency_request".to_owned(), 1), ("support".to_owned(), 40)].into(),
            decisions: [("allow".to_owned(), 30), ("deny".to_owned(), 13)].into(),
            ..MonthTally::default()
        };
        assert_eq!((tally.legal_requests(), tally.decisions_total()), (3, 43));
    }
}
