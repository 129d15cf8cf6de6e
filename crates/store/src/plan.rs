//! The backend-independent half of a write: limits, folding of duplicates, the order of the
//! checks, and the counting of the outcome. Both backends gather facts from their database,
//! hand them to [`BatchPlan::validate`] and write what the plan says, so they cannot drift
//! apart on semantics.

use std::collections::{BTreeSet, HashMap, HashSet};

use model::{FieldKind, Label, StaffId, SubjectId};

use crate::{
    SealedValue, StoreError, StoredKey, SubjectRecord, WRITE_BATCH_ROWS_MAX, WriteBatch,
    WriteOutcome,
};

/// What the database says about a subject a batch touches. Absent means unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubjectState {
    Live,
    Erased,
}

/// One subject upsert after folding its duplicates within the batch.
#[derive(Debug)]
pub(crate) struct PlannedSubject<'a> {
    pub id: &'a SubjectId,
    /// Of the last upsert: each upsert replaces labels and staff link.
    pub labels: &'a BTreeSet<Label>,
    pub staff: Option<&'a StaffId>,
    /// Of the first upsert: what a fresh row's `created_at_ms` would have been.
    pub first_at_ms: i64,
    /// Largest `at_ms` of the upserts: `updated_at_ms` only moves forward.
    pub last_at_ms: i64,
    pub occurrences: u64,
}

/// One value after folding its duplicates within the batch.
#[derive(Debug)]
pub(crate) struct PlannedValue<'a> {
    /// The first occurrence: its sealed bytes are the ones a fresh row keeps.
    pub value: &'a SealedValue,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub occurrences: u64,
}

#[derive(Debug)]
pub(crate) struct BatchPlan<'a> {
    pub subjects: Vec<PlannedSubject<'a>>,
    pub values: Vec<PlannedValue<'a>>,
    /// Distinct owners of values, in batch order.
    pub value_owners: Vec<&'a SubjectId>,
    /// Blind-index entries, each owned by a value owner of the batch.
    pub blind_indexes: &'a [crate::BlindIndexEntry],
}

impl<'a> BatchPlan<'a> {
    pub fn new(batch: &'a WriteBatch) -> Result<Self, StoreError> {
        let rows = batch.subjects.len() + batch.values.len() + batch.blind_indexes.len();
        check_rows(rows)?;

        let mut subjects: Vec<PlannedSubject<'a>> = Vec::new();
        let mut subject_index: HashMap<&SubjectId, usize> = HashMap::new();
        for upsert in &batch.subjects {
            if let Some(&index) = subject_index.get(&upsert.id) {
                let planned = &mut subjects[index];
                planned.labels = &upsert.labels;
                planned.staff = upsert.staff.as_ref();
                planned.last_at_ms = planned.last_at_ms.max(upsert.at_ms);
                planned.occurrences += 1;
            } else {
                subject_index.insert(&upsert.id, subjects.len());
                subjects.push(PlannedSubject {
                    id: &upsert.id,
                    labels: &upsert.labels,
                    staff: upsert.staff.as_ref(),
                    first_at_ms: upsert.at_ms,
                    last_at_ms: upsert.at_ms,
                    occurrences: 1,
                });
            }
        }

        let mut values: Vec<PlannedValue<'a>> = Vec::new();
        let mut value_index: HashMap<(&SubjectId, FieldKind, &[u8; 16]), usize> = HashMap::new();
        let mut value_owners = Vec::new();
        let mut owners_seen: HashSet<&SubjectId> = HashSet::new();
        for value in &batch.values {
            let key = (&value.subject, value.field, &value.value_id);
            if let Some(&index) = value_index.get(&key) {
                let planned = &mut values[index];
                planned.first_seen_ms = planned.first_seen_ms.min(value.first_seen_ms);
                planned.last_seen_ms = planned.last_seen_ms.max(value.last_seen_ms);
                planned.occurrences += 1;
            } else {
                value_index.insert(key, values.len());
                values.push(PlannedValue {
                    value,
                    first_seen_ms: value.first_seen_ms,
                    last_seen_ms: value.last_seen_ms,
                    occurrences: 1,
                });
            }
            if owners_seen.insert(&value.subject) {
                value_owners.push(&value.subject);
            }
        }
        if let Some(entry) = batch.blind_indexes.iter().find(|entry| !owners_seen.contains(&entry.subject)) {
            return Err(StoreError::InvalidRecord {
                what: "blind index entry",
                id: entry.subject.to_string(),
                reason: "its subject owns no value in the batch".to_owned(),
            });
        }
        Ok(Self {
            subjects,
            values,
            value_owners,
            blind_indexes: &batch.blind_indexes,
        })
    }

    /// Every subject the batch touches, each once: upserted subjects, then value owners.
    pub fn touched_subjects(&self) -> Vec<&'a SubjectId> {
        let mut seen = HashSet::new();
        self.subjects
            .iter()
            .map(|planned| planned.id)
            .chain(self.value_owners.iter().copied())
            .filter(|id| seen.insert(*id))
            .collect()
    }

    /// The checks of [`crate::RegionStore::write`], in its documented order. `states` holds
    /// every touched subject that exists; `keyed` every value owner that has a data key.
    pub fn validate(
        &self,
        states: &HashMap<SubjectId, SubjectState>,
        keyed: &HashSet<SubjectId>,
    ) -> Result<(), StoreError> {
        for id in self.touched_subjects() {
            if states.get(id) == Some(&SubjectState::Erased) {
                return Err(StoreError::Erased(id.clone()));
            }
        }
        let upserted: HashSet<&SubjectId> =
            self.subjects.iter().map(|planned| planned.id).collect();
        for owner in &self.value_owners {
            if !states.contains_key(*owner) && !upserted.contains(owner) {
                return Err(StoreError::UnknownSubject((*owner).clone()));
            }
            if !keyed.contains(*owner) {
                return Err(StoreError::MissingDataKey((*owner).clone()));
            }
        }
        Ok(())
    }

    /// Counts the outcome from how many distinct subjects were created and how many distinct
    /// values were added; everything else in the batch was an update or a merge.
    pub fn outcome(&self, subjects_created: u64, values_added: u64) -> WriteOutcome {
        let subject_rows: u64 = self
            .subjects
            .iter()
            .map(|planned| planned.occurrences)
            .sum();
        let value_rows: u64 = self.values.iter().map(|planned| planned.occurrences).sum();
        WriteOutcome {
            subjects_created,
            subjects_updated: subject_rows - subjects_created,
            values_added,
            values_merged: value_rows - values_added,
        }
    }
}

pub(crate) fn check_rows(rows: usize) -> Result<(), StoreError> {
    if rows > WRITE_BATCH_ROWS_MAX {
        return Err(StoreError::BatchTooLarge {
            rows,
            max: WRITE_BATCH_ROWS_MAX,
        });
    }
    Ok(())
}

/// The first key given for each subject, in input order: within one call the first wins.
pub(crate) fn first_key_per_subject(keys: &[StoredKey]) -> Vec<&StoredKey> {
    let mut seen = HashSet::new();
    keys.iter()
        .filter(|key| seen.insert(&key.subject))
        .collect()
}

/// Labels as stored: a JSON array of label names, in `Label` order.
pub(crate) fn labels_to_json(labels: &BTreeSet<Label>) -> String {
    let names: Vec<&str> = labels.iter().map(|label| label.as_str()).collect();
    serde_json::Value::from(names).to_string()
}

pub(crate) fn labels_from_json(text: &str) -> Result<BTreeSet<Label>, StoreError> {
    let names: Vec<String> = serde_json::from_str(text)
        .map_err(|error| StoreError::Corrupt(format!("labels {text:?}: {error}")))?;
    names
        .iter()
        .map(|name| {
            name.parse::<Label>()
                .map_err(|error| StoreError::Corrupt(error.to_string()))
        })
        .collect()
}

/// A subject row as both backends read it, converted and checked.
pub(crate) struct SubjectRow {
    pub id: String,
    pub labels: String,
    pub staff: Option<String>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
    pub erased_at_ms: Option<i64>,
}

impl SubjectRow {
    pub fn into_record(self) -> Result<SubjectRecord, StoreError> {
        Ok(SubjectRecord {
            id: subject_id(&self.id)?,
            labels: labels_from_json(&self.labels)?,
            staff: self
                .staff
                .map(|staff| {
                    StaffId::new(&staff).map_err(|error| StoreError::Corrupt(error.to_string()))
                })
                .transpose()?,
            created_at_ms: self.created_at_ms,
            updated_at_ms: self.updated_at_ms,
            erased_at_ms: self.erased_at_ms,
        })
    }
}

pub(crate) fn subject_id(text: &str) -> Result<SubjectId, StoreError> {
    SubjectId::new(text).map_err(|error| StoreError::Corrupt(error.to_string()))
}

pub(crate) fn field_kind(text: &str) -> Result<FieldKind, StoreError> {
    text.parse()
        .map_err(|_| StoreError::Corrupt(format!("unknown field {text:?}")))
}

pub(crate) fn value_id(bytes: &[u8]) -> Result<[u8; 16], StoreError> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("value id of {} bytes, expected 16", bytes.len())))
}

pub(crate) fn shred_group(stored: i64) -> Result<u16, StoreError> {
    u16::try_from(stored)
        .map_err(|_| StoreError::Corrupt(format!("shred group {stored} out of range")))
}

pub(crate) fn kek_version(stored: i64) -> Result<u32, StoreError> {
    u32::try_from(stored)
        .map_err(|_| StoreError::Corrupt(format!("key version {stored} out of range")))
}

pub(crate) fn count(stored: i64) -> Result<u64, StoreError> {
    u64::try_from(stored).map_err(|_| StoreError::Corrupt(format!("negative count {stored}")))
}

/// The documented order of [`crate::RegionStore::values`]; applied in Rust so that both
/// backends agree regardless of collation.
pub(crate) fn sort_values(values: &mut [SealedValue]) {
    values.sort_by(|left, right| {
        (left.field, left.first_seen_ms, left.value_id).cmp(&(
            right.field,
            right.first_seen_ms,
            right.value_id,
        ))
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SubjectUpsert;

    fn subject(id: &str) -> SubjectId {
        SubjectId::new(id).unwrap()
    }

    fn upsert(id: &str, labels: &[Label], at_ms: i64) -> SubjectUpsert {
        SubjectUpsert {
            id: subject(id),
            labels: labels.iter().copied().collect(),
            staff: None,
            at_ms,
        }
    }

    fn value(owner: &str, id: u8, first_seen_ms: i64, last_seen_ms: i64) -> SealedValue {
        SealedValue {
            subject: subject(owner),
            field: FieldKind::Email,
            value_id: [id; 16],
            sealed: vec![id],
            first_seen_ms,
            last_seen_ms,
        }
    }

    #[test]
    fn duplicates_fold_and_count() {
        let batch = WriteBatch { blind_indexes: Vec::new(),
            subjects: vec![
                upsert("a", &[Label::Vip], 10),
                upsert("b", &[], 5),
                upsert("a", &[Label::Staff], 7),
            ],
            values: vec![
                value("a", 1, 5, 6),
                value("a", 1, 3, 4),
                value("b", 2, 1, 1),
                value("a", 1, 9, 9),
            ],
        };
        let plan = BatchPlan::new(&batch).unwrap();
        assert_eq!(plan.subjects.len(), 2);
        let a = &plan.subjects[0];
        assert_eq!((a.first_at_ms, a.last_at_ms, a.occurrences), (10, 10, 2));
        assert_eq!(
            a.labels,
            &[Label::Staff].into_iter().collect::<BTreeSet<_>>()
        );
        assert_eq!(plan.values.len(), 2);
        let folded = &plan.values[0];
        assert_eq!(
            (
                folded.first_seen_ms,
                folded.last_seen_ms,
                folded.occurrences
            ),
            (3, 9, 3)
        );
        assert_eq!(folded.value.sealed, vec![1]);
        assert_eq!(plan.value_owners, vec![&subject("a"), &subject("b")]);
        let outcome = plan.outcome(1, 2);
        assert_eq!(
            outcome,
            WriteOutcome {
                subjects_created: 1,
                subjects_updated: 2,
                values_added: 2,
                values_merged: 2
            }
        );
    }

    #[test]
    fn validation_order() {
        fn check(states: &[(&str, SubjectState)], keyed: &[&str], expected: Option<&str>) {
            let batch = WriteBatch { blind_indexes: Vec::new(),
                subjects: vec![upsert("new", &[], 1)],
                values: vec![value("old", 1, 1, 1), value("new", 2, 1, 1)],
            };
            let plan = BatchPlan::new(&batch).unwrap();
            let states = states
                .iter()
                .map(|(id, state)| (subject(id), *state))
                .collect();
            let keyed = keyed.iter().map(|id| subject(id)).collect();
            let found = plan
                .validate(&states, &keyed)
                .err()
                .map(|error| error.to_string());
            assert_eq!(found.as_deref(), expected);
        }
        check(&[("old", SubjectState::Live)], &["old", "new"], None);
        check(&[], &["old", "new"], Some("subject old does not exist"));
        check(
            &[("old", SubjectState::Live)],
            &["old"],
            Some("value for subject new has no data key stored"),
        );
        check(
            &[("old", SubjectState::Erased), ("new", SubjectState::Erased)],
            &[],
            Some("subject new was erased; it cannot be written again"),
        );
        check(
            &[("old", SubjectState::Erased)],
            &["old", "new"],
            Some("subject old was erased; it cannot be written again"),
        );
    }

    #[test]
    fn batch_limit() {
        assert!(check_rows(WRITE_BATCH_ROWS_MAX).is_ok());
        assert!(matches!(
            check_rows(WRITE_BATCH_ROWS_MAX + 1),
            Err(StoreError::BatchTooLarge { rows, max }) if rows == WRITE_BATCH_ROWS_MAX + 1 && max == WRITE_BATCH_ROWS_MAX
        ));
    }

    #[test]
    fn labels_round_trip() {
        let labels: BTreeSet<Label> = Label::ALL.into_iter().collect();
        let json = labels_to_json(&labels);
        assert!(json.starts_with("[\"journalist\","), "{json}");
        assert_eq!(labels_from_json(&json).unwrap(), labels);
        assert_eq!(labels_to_json(&BTreeSet::new()), "[]");
        assert!(matches!(
            labels_from_json("[\"reporter\"]"),
            Err(StoreError::Corrupt(_))
        ));
        assert!(matches!(
            labels_from_json("journalist"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
