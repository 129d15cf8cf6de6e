//! Ingest input: the subject shape shared by the HTTP API, bulk import and scenario files, and
//! its validation into typed values. Validation is pure and complete before anything is
//! written: one bad value rejects its whole subject, with the subject, field and index named.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use model::{FieldKind, FieldValue, Label, RegionId, StaffId, SubjectId};
use serde::{Deserialize, Serialize};

use crate::ValueRejection;

/// Most subjects one ingest request may carry.
pub const INGEST_SUBJECTS_MAX: usize = 1_000;
/// Most values one subject may carry in one request (all fields together).
pub const VALUES_PER_SUBJECT_MAX: usize = 1_000;

/// A subject with its values, as platform services send it (and as a scenario `subject`
/// line carries it). Unknown fields are refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectInput {
    /// Opaque subject id (1 to 128 printable ASCII characters).
    pub id: String,
    /// Home region; the node must serve it.
    pub region: String,
    /// Protection labels; replaces the stored set when given.
    #[serde(default)]
    pub labels: Vec<String>,
    /// Staff id of the employee who owns this platform account, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub staff: Option<String>,
    /// Values per field kind (`ip_address`, `location`, `email`, `phone`, `device_id`, `name`,
    /// `date_of_birth`, `text`).
    #[serde(default)]
    pub values: BTreeMap<String, Vec<ValueInput>>,
}

/// One value: a bare string, or a string with the time it was observed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum ValueInput {
    Plain(String),
    Observed {
        value: String,
        #[schema(value_type = String, format = DateTime)]
        observed_at: DateTime<Utc>,
    },
}

impl ValueInput {
    fn parts(&self) -> (&str, Option<DateTime<Utc>>) {
        match self {
            ValueInput::Plain(value) => (value, None),
            ValueInput::Observed { value, observed_at } => (value, Some(*observed_at)),
        }
    }
}

/// A subject whose every part parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidatedSubject {
    pub id: SubjectId,
    pub region: RegionId,
    pub labels: BTreeSet<Label>,
    pub staff: Option<StaffId>,
    /// (field value, observed at; `None` = at ingest time), in input order per field.
    pub values: Vec<(FieldValue, Option<DateTime<Utc>>)>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IngestOutcome {
    pub subjects_created: u64,
    pub subjects_updated: u64,
    pub values_added: u64,
    /// Values that were already stored (same field and value): their first/last seen times
    /// were merged instead of adding a duplicate.
    pub values_merged: u64,
}

impl IngestOutcome {
    pub fn add(&mut self, other: IngestOutcome) {
        self.subjects_created += other.subjects_created;
        self.subjects_updated += other.subjects_updated;
        self.values_added += other.values_added;
        self.values_merged += other.values_merged;
    }
}

/// Parses every part of `input`; returns all the problems found, not only the first.
pub fn validate_subject(input: &SubjectInput) -> Result<ValidatedSubject, Vec<ValueRejection>> {
    let mut rejections = Vec::new();
    let reject = |field: Option<&str>, index: Option<usize>, message: String| ValueRejection {
        subject: input.id.clone(),
        field: field.map(str::to_owned),
        index,
        message,
    };
    let id = SubjectId::new(&input.id).map_err(|error| reject(None, None, error.to_string()));
    let region = RegionId::new(&input.region).map_err(|error| reject(None, None, error.to_string()));
    let mut labels = BTreeSet::new();
    for label in &input.labels {
        match label.parse::<Label>() {
            Ok(label) => {
                labels.insert(label);
            }
            Err(error) => rejections.push(reject(Some("labels"), None, error.to_string())),
        }
    }
    let staff = match &input.staff {
        Some(staff) => match StaffId::new(staff) {
            Ok(staff) => Some(staff),
            Err(error) => {
                rejections.push(reject(Some("staff"), None, error.to_string()));
                None
            }
        },
        None => None,
    };
    let value_count: usize = input.values.values().map(Vec::len).sum();
    if value_count > VALUES_PER_SUBJECT_MAX {
        rejections.push(reject(
            None,
            None,
            format!("{value_count} values exceed the limit of {VALUES_PER_SUBJECT_MAX} per subject"),
        ));
    }
    let mut values = Vec::with_capacity(value_count);
    for (field_name, field_values) in &input.values {
        let kind = match field_name.parse::<FieldKind>() {
            Ok(kind) => kind,
            Err(error) => {
                rejections.push(reject(Some(field_name), None, error.to_string()));
                continue;
            }
        };
        for (index, value) in field_values.iter().enumerate() {
            let (text, observed_at) = value.parts();
            match FieldValue::parse(kind, text) {
                Ok(parsed) => values.push((parsed, observed_at)),
                Err(error) => rejections.push(reject(Some(field_name), Some(index), error.to_string())),
            }
        }
    }
    match (id, region) {
        (Ok(id), Ok(region)) if rejections.is_empty() => Ok(ValidatedSubject { id, region, labels, staff, values }),
        (id, region) => {
            rejections.extend(id.err());
            rejections.extend(region.err());
            Err(rejections)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> SubjectInput {
        serde_json::from_str(json).expect("test input parses")
    }

    fn check(json: &str, expected: &[(&str, Option<usize>)]) {
        let result = validate_subject(&input(json));
        let found: Vec<(String, Option<usize>)> = match result {
            Ok(_) => Vec::new(),
            Err(rejections) => rejections
                .into_iter()
                .map(|rejection| (rejection.field.unwrap_or_default(), rejection.index))
                .collect(),
        };
        let expected: Vec<(String, Option<usize>)> =
            expected.iter().map(|(field, index)| ((*field).to_owned(), *index)).collect();
        assert_eq!(found, expected, "for {json}");
    }

    #[test]
    fn validation_names_subject_field_and_index() {
        check(r#"{"id":"u-1","region":"us","values":{"ip_address":["198.51.100.23"]}}"#, &[]);
        check(
            r#"{"id":"u-1","region":"us","values":{"ip_address":["198.51.100.23","300.1.1.1"]}}"#,
            &[("ip_address", Some(1))],
        );
        check(r#"{"id":"u-1","region":"us","values":{"shoe_size":["44"]}}"#, &[("shoe_size", None)]);
        check(r#"{"id":"u-1","region":"us","labels":["celebrity"]}"#, &[("labels", None)]);
        check(r#"{"id":"u 1","region":"US"}"#, &[("", None), ("", None)]);
        check(
            r#"{"id":"u-1","region":"us","values":{"email":["a@b.example","nope"],"phone":["+12125550123","12"]}}"#,
            &[("email", Some(1)), ("phone", Some(1))],
        );
    }

    #[test]
    fn observed_values_and_unknown_keys() {
        let subject = validate_subject(&input(
            r#"{"id":"u-1","region":"us","values":{"ip_address":[{"value":"::ffff:10.0.0.1","observed_at":"2026-03-02T09:00:00Z"}]}}"#,
        ))
        .unwrap();
        assert_eq!(subject.values.len(), 1);
        assert!(subject.values[0].1.is_some());
        assert!(serde_json::from_str::<SubjectInput>(r#"{"id":"u","region":"us","colour":"red"}"#).is_err());
    }

    #[test]
    fn too_many_values() {
        let many: Vec<String> = (0..=VALUES_PER_SUBJECT_MAX).map(|i| format!("\"d{i}\"")).collect();
        let json = format!(r#"{{"id":"u-1","region":"us","values":{{"device_id":[{}]}}}}"#, many.join(","));
        check(&json, &[("", None)]);
    }
}
