//! What the compliance console reads: timelines of log entries per actor, case or subject
//! across every served region, with their activity over time, and the record of each view.
//!
//! Whoever audits is audited too: [`Gate::timeline`] and [`Gate::log_record_view`] append a
//! `record_view` entry (docs/log-entry.md) to the log of every region whose records a view
//! shows, and only once those entries are durable are the records handed back. A view that
//! cannot be logged shows nothing.

use std::collections::BTreeMap;

use model::RegionId;
use model::decision_entry::{DECISION_ENTRY_VERSION, RecordViewEntry, encode};
use store::{SUBJECT_ENTRIES_MAX, TIMELINE_KEY_BYTES_MAX, TimelineKind};

use crate::{Caller, Gate, ServiceError};

/// Entries one timeline page shows when no limit is given.
pub const TIMELINE_PAGE_DEFAULT: usize = 100;
/// Most entries one timeline page shows.
pub const TIMELINE_PAGE_MAX: usize = 1_000;
/// Entries of one region on a page are read as one range when the range is at most this
/// many times as long as the entries wanted.
const RANGE_READ_SPAN_FACTOR: u64 = 4;
/// The width of one bar of a timeline's activity chart: a day.
pub const ACTIVITY_BUCKET_MS: i64 = 86_400_000;

/// Which page of a timeline: per region, the log index below which to read (absent: from the
/// newest entry). Written as `region:index,region:index` in URLs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TimelineCursor {
    below: BTreeMap<String, u64>,
}

impl TimelineCursor {
    /// Parses `region:index,…`, naming the part that is wrong.
    pub fn parse(text: &str) -> Result<TimelineCursor, ServiceError> {
        let mut below = BTreeMap::new();
        for part in text.split(',').filter(|part| !part.is_empty()) {
            let invalid = || ServiceError::InvalidRequest { field: "before".to_owned(), message: format!("timeline cursor part {part:?} is not region:index") };
            let (region, index) = part.split_once(':').ok_or_else(invalid)?;
            let index: u64 = index.parse().map_err(|_| invalid())?;
            RegionId::new(region).map_err(|_| invalid())?;
            below.insert(region.to_owned(), index);
        }
        Ok(TimelineCursor { below })
    }

    fn below(&self, region: &RegionId) -> u64 {
        // Log indexes are below 2^63 (stores keep them as signed 64-bit integers).
        self.below.get(region.as_str()).copied().unwrap_or(i64::MAX as u64)
    }
}

impl std::fmt::Display for TimelineCursor {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.below.iter().map(|(region, index)| format!("{region}:{index}")).collect();
        formatter.write_str(&parts.join(","))
    }
}

/// One entry on a timeline.
#[derive(Debug, Clone)]
pub struct TimelineItem {
    pub region: RegionId,
    pub index: u64,
    pub at_ms: i64,
    pub entry: detect::Entry,
}

/// One page of a timeline, newest first, with the whole timeline's activity.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub kind: TimelineKind,
    pub key: String,
    pub items: Vec<TimelineItem>,
    /// Entries per day (start of the day in ms since the epoch), over every served region,
    /// ascending.
    pub activity: Vec<(i64, u64)>,
    /// Entries on the whole timeline.
    pub total: u64,
    /// The cursor of the next (older) page; absent on the last.
    pub next: Option<TimelineCursor>,
}

impl Gate {
    /// One page of the timeline of `kind`/`key` across the served regions, after logging the
    /// view in every region whose records it shows (or, when it shows none, in the first
    /// served region: looking someone up is itself on the record).
    pub async fn timeline(
        &self,
        caller: &Caller,
        kind: TimelineKind,
        key: &str,
        cursor: &TimelineCursor,
        limit: usize,
    ) -> Result<Timeline, ServiceError> {
        let view = match kind {
            TimelineKind::Actor => "actor_timeline",
            TimelineKind::Case => "case_timeline",
            TimelineKind::Subject => "subject_timeline",
            TimelineKind::Tally => {
                return Err(ServiceError::InvalidRequest { field: "kind".to_owned(), message: "tallies are counted, not shown entry by entry".to_owned() });
            }
        };
        if key.is_empty() || key.len() > TIMELINE_KEY_BYTES_MAX {
            return Err(ServiceError::InvalidRequest {
                field: kind.as_str().to_owned(),
                message: format!("a timeline key is 1 to {TIMELINE_KEY_BYTES_MAX} bytes, not {}", key.len()),
            });
        }
        if limit == 0 || limit > TIMELINE_PAGE_MAX {
            return Err(ServiceError::InvalidRequest {
                field: "limit".to_owned(),
                message: format!("a timeline page holds 1 to {TIMELINE_PAGE_MAX} entries, not {limit}"),
            });
        }
        let mut candidates = Vec::new();
        let mut activity: BTreeMap<i64, u64> = BTreeMap::new();
        for region in self.vault().regions() {
            let log = self.vault().log(region)?;
            let index = log.subject_index()?;
            log.index_subjects_to(u64::MAX).await?;
            for point in index.timeline(kind, key, cursor.below(region), (limit + 1).min(SUBJECT_ENTRIES_MAX)).await? {
                candidates.push((region.clone(), point));
            }
            for (bucket, count) in index.timeline_activity(kind, key, ACTIVITY_BUCKET_MS).await? {
                *activity.entry(bucket).or_default() += count;
            }
        }
        // Newest first across regions; within a region the log order breaks ties.
        candidates.sort_by(|(region_a, a), (region_b, b)| b.at_ms.cmp(&a.at_ms).then(region_a.cmp(region_b)).then(b.index.cmp(&a.index)));
        let more = candidates.len() > limit;
        candidates.truncate(limit);
        let mut next = cursor.clone();
        let mut entries = self.records_at(&candidates.iter().map(|(region, point)| (region.clone(), point.index)).collect::<Vec<_>>()).await?;
        let mut items = Vec::with_capacity(candidates.len());
        for (region, point) in candidates {
            let entry = entries.remove(&(region.clone(), point.index)).ok_or_else(|| ServiceError::Log(format!("entry {} of region {region} was not read", point.index)))?;
            let below = next.below.entry(region.to_string()).or_insert(u64::MAX);
            *below = (*below).min(point.index);
            items.push(TimelineItem { region, index: point.index, at_ms: point.at_ms, entry });
        }
        let shown: Vec<(RegionId, u64)> = items.iter().map(|item| (item.region.clone(), item.index)).collect();
        self.log_record_view(caller, view, key, &shown).await?;
        let total = activity.values().sum();
        Ok(Timeline { kind, key: key.to_owned(), items, activity: activity.into_iter().collect(), total, next: more.then_some(next) })
    }

    /// The decoded log entry at `region`/`index`. Reading is not viewing: a caller that shows
    /// it to someone logs that first ([`Gate::log_record_view`]).
    pub async fn record(&self, region: &RegionId, index: u64) -> Result<detect::Entry, ServiceError> {
        let log = self.vault().log(region)?;
        let end = index.checked_add(1).ok_or_else(|| ServiceError::Log(format!("no entry {index} in region {region}")))?;
        let canonical = log.canonical_entries(index, end).await?.pop().unwrap_or_default();
        detect::decode(region.as_str(), index, &canonical).map_err(|error| ServiceError::Log(error.to_string()))
    }

    /// The decoded entries at `wanted` (region, index). A region's entries are read in one
    /// range when they lie close together (a busy actor's page), one by one otherwise.
    pub async fn records_at(&self, wanted: &[(RegionId, u64)]) -> Result<BTreeMap<(RegionId, u64), detect::Entry>, ServiceError> {
        let mut per_region: BTreeMap<&RegionId, Vec<u64>> = BTreeMap::new();
        for (region, index) in wanted {
            per_region.entry(region).or_default().push(*index);
        }
        let mut found = BTreeMap::new();
        for (region, mut indexes) in per_region {
            indexes.sort_unstable();
            indexes.dedup();
            let (first, last) = (indexes[0], indexes[indexes.len() - 1]);
            let span = last - first + 1;
            if span <= RANGE_READ_SPAN_FACTOR * indexes.len() as u64 {
                let log = self.vault().log(region)?;
                let canonical = log.canonical_entries(first, last + 1).await?;
                for index in indexes {
                    let bytes = &canonical[(index - first) as usize];
                    let entry = detect::decode(region.as_str(), index, bytes).map_err(|error| ServiceError::Log(error.to_string()))?;
                    found.insert((region.clone(), index), entry);
                }
            } else {
                for index in indexes {
                    found.insert((region.clone(), index), self.record(region, index).await?);
                }
            }
        }
        Ok(found)
    }

    /// Logs that `caller` viewed the records `shown` (region, log index) through `view` of
    /// `target`: one `record_view` entry per region shown (the first served region when none
    /// is), each durable before this returns.
    pub async fn log_record_view(&self, caller: &Caller, view: &str, target: &str, shown: &[(RegionId, u64)]) -> Result<(), ServiceError> {
        let mut per_region: BTreeMap<RegionId, Vec<u64>> = BTreeMap::new();
        for (region, index) in shown {
            per_region.entry(region.clone()).or_default().push(*index);
        }
        if per_region.is_empty() {
            let first = self.vault().regions().next().ok_or_else(|| ServiceError::Internal("no region to log the view in".to_owned()))?;
            per_region.insert(first.clone(), Vec::new());
        }
        let at_ms = self.vault().clock().now().timestamp_millis();
        for (region, indexes) in per_region {
            let entry = RecordViewEntry {
                v: DECISION_ENTRY_VERSION,
                kind: "record_view".to_owned(),
                at_ms,
                by: caller.snapshot(caller.country.as_deref().unwrap_or("")),
                view: view.to_owned(),
                target: target.to_owned(),
                shown: ranges(indexes),
            };
            self.vault().append_log(&region, encode(&entry)).await?;
        }
        Ok(())
    }
}

/// Log indexes as ascending inclusive ranges.
fn ranges(mut indexes: Vec<u64>) -> Vec<[u64; 2]> {
    indexes.sort_unstable();
    indexes.dedup();
    let mut ranges: Vec<[u64; 2]> = Vec::new();
    for index in indexes {
        match ranges.last_mut() {
            Some(range) if range[1] + 1 == index => range[1] = index,
            _ => ranges.push([index, index]),
        }
    }
    ranges
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_indexes_become_ranges() {
        assert_eq!(ranges(vec![7, 3, 4, 5, 9, 4]), vec![[3, 5], [7, 7], [9, 9]]);
        assert!(ranges(Vec::new()).is_empty());
    }

    #[test]
    fn cursors_round_trip_and_bad_ones_are_named() {
        let cursor = TimelineCursor::parse("us:12,eu:5").expect("cursor");
        assert_eq!(cursor.to_string(), "eu:5,us:12");
        assert_eq!(TimelineCursor::parse(&cursor.to_string()).expect("again"), cursor);
        assert_eq!(TimelineCursor::parse("").expect("empty"), TimelineCursor::default());
        for bad in ["us", "us:x", ":4", "US/x:1"] {
            let error = TimelineCursor::parse(bad).expect_err(bad).to_string();
            assert!(error.contains(bad), "{bad}: {error}");
        }
    }
}
