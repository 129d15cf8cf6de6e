//! Evidence for an outside lawyer or regulator (`custos report`, `GET /v1/records`): every log
//! entry of an actor, a case, a subject or a period, in time order, each with the entry as
//! the log holds it, its leaf hash and an RFC 6962 inclusion proof against the region's
//! latest signed checkpoint, which the report carries. Anyone holding the region's verifier
//! key checks each line without trusting the operator.
//!
//! Reading records is viewing them: the entries are logged (`record_view`, view `report`)
//! before the report is handed out.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use model::RegionId;
use serde::{Deserialize, Serialize};
use store::{SUBJECT_ENTRIES_MAX, TimelineKind};

use crate::{Caller, Gate, ServiceError};

/// The `format` of a records report's first line.
pub const RECORDS_FORMAT: &str = "custos-records/1";
/// Most records one report holds; a report that stops there says `truncated` (a timeline
/// keeps its most recent records, a period its first).
pub const RECORDS_MAX: usize = 10_000;
/// Entries read per step when scanning a period.
const PERIOD_STEP_ENTRIES: u64 = 1_024;

/// Whose or which records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordScope {
    /// Every entry naming this actor, case or subject.
    Timeline(TimelineKind, String),
    /// Every entry whose time is in `[since, until)`.
    Period { since: DateTime<Utc>, until: DateTime<Utc> },
}

impl std::fmt::Display for RecordScope {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordScope::Timeline(kind, key) => write!(formatter, "{} {key}", kind.as_str()),
            RecordScope::Period { since, until } => write!(formatter, "period {} to {}", since.to_rfc3339(), until.to_rfc3339()),
        }
    }
}

impl std::str::FromStr for RecordScope {
    type Err = String;

    /// The scope as [`RecordScope`]'s `Display` writes it (a report header's `scope`).
    fn from_str(text: &str) -> Result<RecordScope, String> {
        if let Some(period) = text.strip_prefix("period ") {
            let (since, until) = period.split_once(" to ").ok_or_else(|| format!("{text:?}: a period is `period FROM to UNTIL`"))?;
            let parse = |moment: &str| DateTime::parse_from_rfc3339(moment).map(|moment| moment.with_timezone(&Utc)).map_err(|error| format!("{moment:?} is not an RFC 3339 time: {error}"));
            return Ok(RecordScope::Period { since: parse(since)?, until: parse(until)? });
        }
        let (kind, key) = text.split_once(' ').ok_or_else(|| format!("{text:?} is not a scope (`actor ID`, `case ID`, `subject ID` or `period FROM to UNTIL`)"))?;
        let kind = [TimelineKind::Actor, TimelineKind::Case, TimelineKind::Subject]
            .into_iter()
            .find(|known| known.as_str() == kind)
            .ok_or_else(|| format!("{kind:?} is not a scope kind (actor, case, subject or period)"))?;
        if key.is_empty() {
            return Err(format!("{text:?} names no {kind}", kind = kind.as_str()));
        }
        Ok(RecordScope::Timeline(kind, key.to_owned()))
    }
}

/// The report's first line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordsHeader {
    /// Always [`RECORDS_FORMAT`].
    pub format: String,
    /// `actor ID`, `case ID`, `subject ID` or `period FROM to UNTIL`.
    pub scope: String,
    pub generated_at: DateTime<Utc>,
    /// Region → its latest signed checkpoint (C2SP note); every proof of that region leads
    /// to it, and the report covers the entries below its size.
    pub checkpoints: BTreeMap<String, String>,
    pub records: u64,
    /// Whether the report stopped at [`RECORDS_MAX`] records.
    pub truncated: bool,
}

/// One record with its evidence.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecordLine {
    pub region: String,
    pub origin: String,
    pub index: u64,
    pub at: DateTime<Utc>,
    /// The decision as the log holds it (the canonical JSON, docs/log-entry.md), for reading.
    pub record: serde_json::Value,
    /// The same, decoded, for rendering (not serialized; `None` when read back from JSON).
    #[serde(skip)]
    pub decoded: Option<crate::LogEntry>,
    /// The entry as the log holds it (version byte, salt, canonical bytes), base64: what the
    /// leaf hash covers.
    pub entry: String,
    /// RFC 6962 leaf hash of `entry`, base64.
    pub leaf_hash: String,
    /// The inclusion proof of `index` in the region's checkpoint, base64 hashes.
    pub proof: Vec<String>,
}

/// A whole records report.
#[derive(Debug, Clone)]
pub struct RecordsReport {
    pub header: RecordsHeader,
    pub lines: Vec<RecordLine>,
}

impl RecordsReport {
    /// JSON Lines: the header, then one line per record.
    pub fn to_json_lines(&self) -> String {
        let mut out = serde_json::to_string(&self.header).unwrap_or_default();
        out.push('\n');
        for line in &self.lines {
            // INVARIANT: lines hold strings, integers and JSON values only.
            out.push_str(&serde_json::to_string(line).unwrap_or_default());
            out.push('\n');
        }
        out
    }
}

impl Gate {
    /// The records of `scope` below each region's latest signed checkpoint, oldest first, at
    /// most [`RECORDS_MAX`], each with its proof; logged as a `record_view` (view `report`)
    /// before it is returned.
    pub async fn records(&self, caller: &Caller, scope: &RecordScope) -> Result<RecordsReport, ServiceError> {
        if let RecordScope::Timeline(TimelineKind::Tally, _) = scope {
            return Err(ServiceError::InvalidRequest { field: "scope".to_owned(), message: "tallies are counted, not reported entry by entry".to_owned() });
        }
        if let RecordScope::Period { since, until } = scope
            && since >= until
        {
            return Err(ServiceError::InvalidRequest { field: "until".to_owned(), message: format!("the period must end after it starts ({since} to {until})") });
        }
        let mut checkpoints = BTreeMap::new();
        let mut sizes: BTreeMap<RegionId, u64> = BTreeMap::new();
        let mut found: Vec<(RegionId, u64, i64)> = Vec::new();
        for region in self.vault().regions() {
            let log = self.vault().log(region)?;
            let (note, size) = match log.signed_checkpoint().await {
                Ok(signed) => (signed.text, signed.size),
                // No signed checkpoint yet: nothing in this region can be proved.
                Err(ServiceError::Log(_)) => continue,
                Err(error) => return Err(error),
            };
            checkpoints.insert(region.to_string(), note);
            sizes.insert(region.clone(), size);
            match scope {
                RecordScope::Timeline(kind, key) => {
                    log.index_subjects_to(size).await?;
                    let index = log.subject_index()?;
                    let (mut below, mut taken) = (size, 0);
                    while taken <= RECORDS_MAX {
                        let points = index.timeline(*kind, key, below, SUBJECT_ENTRIES_MAX.min(RECORDS_MAX + 1 - taken)).await?;
                        let Some(last) = points.last() else { break };
                        below = last.index;
                        taken += points.len();
                        found.extend(points.iter().map(|point| (region.clone(), point.index, point.at_ms)));
                    }
                }
                RecordScope::Period { since, until } => {
                    let (since_ms, until_ms) = (since.timestamp_millis(), until.timestamp_millis());
                    let mut at = self.first_at_or_after(region, since_ms, size).await?;
                    let mut taken = 0;
                    'scan: while at < size && taken <= RECORDS_MAX {
                        let end = size.min(at + PERIOD_STEP_ENTRIES);
                        for (offset, canonical) in log.canonical_entries(at, end).await?.iter().enumerate() {
                            let index = at + offset as u64;
                            let Some(at_ms) = detect::decode(region.as_str(), index, canonical).ok().and_then(|entry| entry.at_ms()) else { continue };
                            if at_ms >= until_ms {
                                break 'scan;
                            }
                            if at_ms >= since_ms {
                                found.push((region.clone(), index, at_ms));
                                taken += 1;
                            }
                        }
                        at = end;
                    }
                }
            }
        }
        // A timeline keeps its most recent records, a period its first ones; either way the
        // report lists them oldest first.
        let in_order = |a: &(RegionId, u64, i64), b: &(RegionId, u64, i64)| a.2.cmp(&b.2).then(a.0.cmp(&b.0)).then(a.1.cmp(&b.1));
        let truncated = found.len() > RECORDS_MAX;
        match scope {
            RecordScope::Timeline(..) => {
                found.sort_by(|a, b| in_order(b, a));
                found.truncate(RECORDS_MAX);
                found.reverse();
            }
            RecordScope::Period { .. } => {
                found.sort_by(in_order);
                found.truncate(RECORDS_MAX);
            }
        }
        let shown: Vec<(RegionId, u64)> = found.iter().map(|(region, index, _)| (region.clone(), *index)).collect();
        self.log_record_view(caller, "report", &scope.to_string(), &shown).await?;
        let mut lines = Vec::with_capacity(found.len());
        for (region, index, at_ms) in found {
            let log = self.vault().log(&region)?;
            // INVARIANT: records are only found in regions whose checkpoint was read above.
            let size = sizes[&region];
            let entry = log.stored_entry(index).await?.ok_or_else(|| ServiceError::Log(format!("entry {index} of region {region} is indexed but not stored")))?;
            let (_salt, canonical) = sequencer::parse_salted_entry(&entry).map_err(|error| ServiceError::Log(format!("entry {index}: {error}")))?;
            let record = serde_json::from_slice(canonical).map_err(|error| ServiceError::Log(format!("entry {index} of region {region}: {error}")))?;
            let decoded = detect::decode(region.as_str(), index, canonical).map_err(|error| ServiceError::Log(error.to_string()))?;
            let proof = log.inclusion_proof(index, size).await?;
            lines.push(RecordLine {
                region: region.to_string(),
                origin: log.origin().to_owned(),
                index,
                at: crate::time_from_ms(at_ms),
                record,
                decoded: Some(decoded),
                leaf_hash: STANDARD.encode(tlog::leaf_hash(&entry).as_bytes()),
                entry: STANDARD.encode(&entry),
                proof: proof.iter().map(|hash| STANDARD.encode(hash.as_bytes())).collect(),
            });
        }
        let header = RecordsHeader {
            format: RECORDS_FORMAT.to_owned(),
            scope: scope.to_string(),
            generated_at: self.vault().clock().now(),
            checkpoints,
            records: lines.len() as u64,
            truncated,
        };
        Ok(RecordsReport { header, lines })
    }

    /// The first log index below `size` whose entry's time is at or after `since_ms`, by
    /// binary search (entries are appended in time order, give or take concurrent requests'
    /// milliseconds, which the forward scan absorbs). Entries without a time count as before.
    pub(crate) async fn first_at_or_after(&self, region: &RegionId, since_ms: i64, size: u64) -> Result<u64, ServiceError> {
        let (mut low, mut high) = (0, size);
        while low < high {
            let middle = low + (high - low) / 2;
            let at_ms = self.record(region, middle).await?.at_ms().unwrap_or(i64::MIN);
            if at_ms < since_ms {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        // Step back over the few entries a concurrent batch may have left out of time order.
        Ok(low.saturating_sub(PERIOD_STEP_ENTRIES / 16))
    }
}
