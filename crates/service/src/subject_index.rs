//! The follower that keeps a region's per-subject access index level with its log: it reads
//! the entries past the stored cursor, decodes them with the detector's decoder and stores
//! (subject, index) for every access decision, moving the cursor in the same transaction.
//!
//! Crash-safe and complete by construction: the cursor and the rows it covers commit
//! together, the store refuses a batch that does not start at its cursor, and rows are keyed
//! by (subject, index). A follower killed at any point, or two running at once, leave every
//! entry below the cursor indexed exactly once.

use std::sync::Arc;
use std::time::Duration;

use store::{StoreError, SubjectIndexBatch, TIMELINE_KEY_BYTES_MAX, TimelineKind, TimelineRow};
use tokio::task::JoinHandle;

use crate::{RegionLog, ServiceError, Vault};

/// Most log entries one indexing step reads and commits: as many as one store batch takes.
/// In SQLite the index has a file of its own (`<region>.index.db`), so a step's transaction
/// no longer holds the writer the log's commits need, as it did when the index shared the
/// region's file (1,000-entry steps then stalled the access path for tens of milliseconds,
/// and steps were cut to 128). A step rewrites the last page of every timeline it touches,
/// however many of its rows land there, so fewer, larger steps write fewer pages: a step
/// of 4,096 entries commits about 25,000 rows.
pub const SUBJECT_INDEX_STEP_ENTRIES_MAX: u64 = store::LOG_BATCH_ENTRIES_MAX as u64;
/// How often the live follower brings each region's index level with its log.
pub const SUBJECT_INDEX_INTERVAL: Duration = Duration::from_secs(1);

/// The live follower for `custos serve`: every [`SUBJECT_INDEX_INTERVAL`], indexes each
/// served region's log up to its size, so a report rarely has entries left to index. A
/// failure is logged and retried on the next tick; reports catch up on their own anyway.
pub fn spawn_subject_indexer(vault: Arc<Vault>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(SUBJECT_INDEX_INTERVAL);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            for region in vault.regions() {
                let Ok(log) = vault.log(region) else { continue };
                if log.subject_index().is_err() {
                    continue;
                }
                if let Err(error) = log.index_subjects_to(u64::MAX).await {
                    tracing::warn!(%region, %error, "subject index follower failed; retrying");
                }
            }
        }
    })
}

impl RegionLog {
    /// Indexes the log up to `target` entries (clamped to the durable size) and returns the
    /// cursor reached: every entry below it is indexed.
    pub async fn index_subjects_to(&self, target: u64) -> Result<u64, ServiceError> {
        let index = self.subject_index()?;
        let size = self.size().await?;
        let target = target.min(size);
        let mut cursor = index.subject_index_cursor().await?;
        if cursor > size {
            // In SQLite the index is a file of its own: a region database restored from a
            // backup without it meets an index of a longer log. Its rows would point at
            // entries this log does not hold, or holds with other contents.
            return Err(ServiceError::Log(format!(
                "the subject index of region {} covers {cursor} log entries but the log holds {size}: it was not built \
                 from this log (a database restored without its index?); with SQLite, delete {}.index.db to rebuild it",
                self.region(),
                self.region()
            )));
        }
        while cursor < target {
            let end = target.min(cursor + SUBJECT_INDEX_STEP_ENTRIES_MAX);
            let entries = self.canonical_entries(cursor, end).await?;
            let mut rows = Vec::new();
            let mut timeline = Vec::new();
            for (offset, canonical) in entries.iter().enumerate() {
                // A step is up to a thousand entries of CPU work on a runtime worker: give the
                // requests queued behind it their turns (the access path's p99).
                tokio::task::coop::consume_budget().await;
                let at = cursor + offset as u64;
                let entry = detect::decode(self.region().as_str(), at, canonical).map_err(|error| ServiceError::Log(error.to_string()))?;
                timeline_rows(&entry, at, &mut timeline);
                if let detect::Entry::Access(access) = entry
                    && !access.subject.id.is_empty()
                {
                    let subject = model::SubjectId::new(&access.subject.id)
                        .map_err(|error| ServiceError::Log(format!("entry {at} of region {}: subject id: {error}", self.region())))?;
                    rows.push((subject, at));
                }
            }
            match index.index_subjects(&SubjectIndexBatch { from: cursor, to: end, rows, timeline }).await {
                Ok(()) => cursor = end,
                // Another follower got there first: carry on from where it left the cursor.
                Err(StoreError::SubjectIndexCursorMismatch { stored, .. }) => cursor = stored,
                Err(error) => return Err(error.into()),
            }
        }
        Ok(cursor)
    }
}

/// Tally key prefixes (the transparency page counts them per month): an access decision's
/// purpose and outcome, a second person's answer.
pub const TALLY_PURPOSE: &str = "purpose:";
pub const TALLY_DECISION: &str = "decision:";
pub const TALLY_APPROVAL: &str = "approval:";
/// The tally of access decisions made under break-glass.
pub const TALLY_BREAK_GLASS: &str = "break_glass";

/// The timelines and tallies the entry at `index` belongs to: whoever acted in it (the caller, the
/// approver, the reviewer, the viewer), and for an access decision its case and subject.
/// Ids longer than a timeline key can hold are left off (they cannot be asked for either).
pub fn timeline_rows(entry: &detect::Entry, index: u64, rows: &mut Vec<TimelineRow>) {
    let Some(at_ms) = entry.at_ms() else { return };
    let mut push = |kind: TimelineKind, key: &str| {
        if !key.is_empty() && key.len() <= TIMELINE_KEY_BYTES_MAX {
            rows.push(TimelineRow { kind, key: key.to_owned(), index, at_ms });
        }
    };
    match entry {
        detect::Entry::Access(access) => {
            push(TimelineKind::Actor, &access.actor.id);
            push(TimelineKind::Case, access.case.as_deref().unwrap_or(""));
            push(TimelineKind::Subject, &access.subject.id);
            push(TimelineKind::Tally, &format!("{TALLY_PURPOSE}{}", access.purpose));
            push(TimelineKind::Tally, &format!("{TALLY_DECISION}{}", access.decision));
            if access.break_glass {
                push(TimelineKind::Tally, TALLY_BREAK_GLASS);
            }
        }
        detect::Entry::Approval(approval) => {
            push(TimelineKind::Actor, &approval.approver.id);
            push(TimelineKind::Tally, &format!("{TALLY_APPROVAL}{}", approval.decision));
        }
        detect::Entry::AlertAction(action) => push(TimelineKind::Actor, &action.by.id),
        detect::Entry::RecordView(view) => push(TimelineKind::Actor, &view.by.id),
        detect::Entry::Other { .. } => {}
    }
}
