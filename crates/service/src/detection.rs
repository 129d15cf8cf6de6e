//! The detector at work over this node's logs: reads the entries past its cursors, loads the
//! facts the rules need from the directory, feeds the entries in order and returns the alerts.
//! The server stores what it raises; scenario replay prints it.
//!
//! Order: within a region, log order; across regions, the entries read in one call are merged
//! by time, then region, then index — the same order for the same logs, so a replay from a
//! saved state raises what an uninterrupted run raised.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use detect::{Alert, CaseFacts, DetectionConfig, Detector, Entry, FactTable, HrEventKind, HrFactFacts, ShiftFacts, StaffFacts};
use model::{RegionId, StaffId};
use serde::{Deserialize, Serialize};
use store::{CaseRecord, HrEvent};

use crate::{Gate, ServiceError};

/// Most entries read from one region's log at a time.
pub const DETECTION_READ_ENTRIES_MAX: u64 = 4_096;

/// Where a detector stands: the next index to read in each region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursors(pub BTreeMap<String, u64>);

/// The detector and its cursors.
#[derive(Debug)]
pub struct Detection {
    detector: Detector,
    cursors: Cursors,
    read_entries_max: u64,
}

impl Detection {
    pub fn new(config: &DetectionConfig) -> Detection {
        Detection { detector: Detector::new(config), cursors: Cursors::default(), read_entries_max: DETECTION_READ_ENTRIES_MAX }
    }

    /// Reads at most `entries` (1 to [`DETECTION_READ_ENTRIES_MAX`]) per region in a step.
    pub fn reading_at_most(mut self, entries: u64) -> Detection {
        self.read_entries_max = entries.clamp(1, DETECTION_READ_ENTRIES_MAX);
        self
    }

    /// A detector continuing from a saved state (see [`Detection::save`]).
    pub fn restored(config: &DetectionConfig, cursors: Cursors, state: &[u8]) -> Result<Detection, ServiceError> {
        let mut detector = Detector::new(config);
        detector.restore(state).map_err(|error| ServiceError::Internal(error.to_string()))?;
        Ok(Detection { detector, cursors, read_entries_max: DETECTION_READ_ENTRIES_MAX })
    }

    pub fn cursors(&self) -> &Cursors {
        &self.cursors
    }

    /// The cursors and the detector's state, to store together.
    pub fn save(&self) -> (Cursors, Vec<u8>) {
        (self.cursors.clone(), self.detector.save())
    }

    /// Entries observed since the detector's state began.
    pub fn observed(&self) -> u64 {
        self.detector.observed()
    }

    /// Reads up to [`DETECTION_READ_ENTRIES_MAX`] (or the configured fewer) entries past the cursor of each region the
    /// gate serves, observes them in order and returns the alerts raised. `Ok` with nothing
    /// read means the detector is level with the logs.
    pub async fn step(&mut self, gate: &Gate) -> Result<Step, ServiceError> {
        let vault = gate.vault();
        let mut batch: Vec<(i64, String, u64, Entry)> = Vec::new();
        let mut advanced: BTreeMap<String, u64> = BTreeMap::new();
        let regions: Vec<RegionId> = vault.regions().cloned().collect();
        for region in &regions {
            let log = vault.log(region)?;
            let start = self.cursors.0.get(region.as_str()).copied().unwrap_or(0);
            let size = log.size().await?;
            if size <= start {
                continue;
            }
            let end = size.min(start + self.read_entries_max);
            for (offset, canonical) in log.canonical_entries(start, end).await?.into_iter().enumerate() {
                // A batch is hundreds of entries of CPU work on a runtime worker: give the
                // requests queued behind it their turns (the access path's p99).
                tokio::task::coop::consume_budget().await;
                let index = start + offset as u64;
                let entry = detect::decode(region.as_str(), index, &canonical).map_err(|error| ServiceError::Log(error.to_string()))?;
                let at_ms = entry.at_ms().unwrap_or(i64::MIN);
                batch.push((at_ms, region.to_string(), index, entry));
            }
            advanced.insert(region.to_string(), end);
        }
        let read = batch.len();
        if read == 0 {
            return Ok(Step { read: 0, alerts: Vec::new() });
        }
        batch.sort_by(|left, right| (left.0, &left.1, left.2).cmp(&(right.0, &right.1, right.2)));
        let facts = load_facts(gate, &batch).await?;
        let mut alerts = Vec::new();
        for (_, region, index, entry) in &batch {
            tokio::task::coop::consume_budget().await;
            alerts.extend(self.detector.observe(region, *index, entry, &facts));
        }
        self.cursors.0.extend(advanced);
        Ok(Step { read, alerts })
    }

    /// Steps until level with the logs; returns every alert raised.
    pub async fn catch_up(&mut self, gate: &Gate) -> Result<Vec<Alert>, ServiceError> {
        let mut alerts = Vec::new();
        loop {
            let step = self.step(gate).await?;
            if step.read == 0 {
                return Ok(alerts);
            }
            alerts.extend(step.alerts);
        }
    }
}

/// What one [`Detection::step`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Entries read and observed.
    pub read: usize,
    pub alerts: Vec<Alert>,
}

/// The cases and staff the entries of a batch name, as the directory has them now.
async fn load_facts(gate: &Gate, batch: &[(i64, String, u64, Entry)]) -> Result<FactTable, ServiceError> {
    let mut case_ids = BTreeSet::new();
    let mut staff_ids = BTreeSet::new();
    for (_, _, _, entry) in batch {
        if let Entry::Access(access) = entry {
            if let Some(case) = &access.case {
                case_ids.insert(case.clone());
            }
            if access.actor.kind == "staff" {
                staff_ids.insert(access.actor.id.clone());
            }
        }
    }
    let directory = gate.directory();
    let mut facts = FactTable { cases: HashMap::new(), staff: HashMap::new() };
    for id in case_ids {
        if let Some(case) = directory.case(&id).await? {
            facts.cases.insert(id, Arc::new(case_facts(&case)));
        }
    }
    for id in staff_ids {
        let Ok(staff_id) = StaffId::new(&id) else { continue };
        let record = directory.staff(&staff_id).await?;
        let hr = directory.hr_facts(&staff_id).await?;
        let on_call = directory.on_call(&staff_id).await?;
        let shift = record.as_ref().and_then(|record| record.shift.as_ref()).and_then(|shift| ShiftFacts::parse(&shift.tz, &shift.start, &shift.end));
        let staff = StaffFacts {
            id: id.clone(),
            shift,
            hr: hr
                .iter()
                .map(|fact| HrFactFacts {
                    at_ms: fact.at_ms,
                    event: match fact.event {
                        HrEvent::DismissalNotice => HrEventKind::DismissalNotice,
                        HrEvent::Leaving => HrEventKind::Leaving,
                        HrEvent::Travel => HrEventKind::Travel,
                        HrEvent::NewHire => HrEventKind::NewHire,
                    },
                    country: fact.country.clone(),
                    until_ms: fact.until_ms,
                })
                .collect(),
            on_call: on_call.iter().map(|period| (period.from_ms, period.until_ms)).collect(),
        };
        facts.staff.insert(id, Arc::new(staff));
    }
    Ok(facts)
}

fn case_facts(case: &CaseRecord) -> CaseFacts {
    CaseFacts {
        id: case.id.clone(),
        purpose: case.purpose.clone(),
        open: case.open,
        assignees: case.assignees.iter().map(ToString::to_string).collect(),
        subjects: case.subjects.iter().map(ToString::to_string).collect(),
        requested_by: case.requested_by.as_ref().map(ToString::to_string),
        legal_process_validated: case.legal_process.as_ref().is_some_and(|process| process.validated),
        destinations: case.destinations.clone(),
        created_at_ms: case.created_at_ms,
        updated_at_ms: case.updated_at_ms,
    }
}
