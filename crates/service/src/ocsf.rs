//! Alerts as OCSF Detection Findings, for SIEMs and security data lakes that read the Open
//! Cybersecurity Schema Framework: the webhook posts them (`format = "ocsf"`) and
//! `GET /v1/alerts/{id}/ocsf` serves them.
//!
//! The mapping follows OCSF schema **1.8.0** (`ocsf/ocsf-schema`, tag `1.8.0`:
//! `events/findings/detection_finding.json`, which extends `finding.json` and
//! `base_event.json`; objects `finding_info`, `analytic`, `metadata`, `product`, `actor`,
//! `user`, `resource_details`, `evidences`):
//!
//! - class Detection Finding (`class_uid` 2004) in category Findings (`category_uid` 2),
//!   activity Create (`activity_id` 1, so `type_uid` 200401);
//! - `severity_id` 1 Informational … 5 Critical from the alert's severity;
//! - `status_id` 1 New (open), 2 In Progress (acknowledged), 4 Resolved (resolved);
//! - `time` (the finding's creation, when the detector raised it), `end_time` (the log entry
//!   that triggered it) and every `*_time` in milliseconds since the epoch (`timestamp_t`);
//! - `finding_info`: `uid` the alert id, `title` the rule, `desc` the summary, `types` the
//!   rule, `analytic` the rule as a Rule analytic, `data_sources` the region logs read;
//! - `actor.user.uid` the staff or machine id whose access raised it, one `resources` entry per
//!   subject (type `data_subject`), one `evidences` entry per log position (its `data` holds
//!   region, index and request: OCSF has no object for a transparency-log position).

use serde_json::{Value, json};
use store::{AlertRecord, AlertStatus, Severity};

/// The OCSF schema version the findings follow (`metadata.version`).
pub const OCSF_SCHEMA_VERSION: &str = "1.8.0";
/// Detection Finding.
pub const OCSF_CLASS_UID: u32 = 2004;
/// Findings.
pub const OCSF_CATEGORY_UID: u32 = 2;
/// Create: the finding is exported as raised, with its current status.
pub const OCSF_ACTIVITY_CREATE: u32 = 1;

/// The alert as an OCSF Detection Finding; `product_version` is custos' version
/// (`metadata.product.version`). Pure: the same alert gives the same JSON.
pub fn detection_finding(alert: &AlertRecord, product_version: &str) -> Value {
    let (severity_id, severity) = severity(alert.severity);
    let (status_id, status) = status(alert.status);
    let mut subjects: Vec<&str> = Vec::new();
    for subject in &alert.subjects {
        if !subjects.contains(&subject.as_str()) {
            subjects.push(subject);
        }
    }
    let mut regions: Vec<&str> = Vec::new();
    for evidence in &alert.evidence {
        if !regions.contains(&evidence.region.as_str()) {
            regions.push(&evidence.region);
        }
    }
    let resources: Vec<Value> = subjects.iter().map(|subject| json!({"uid": subject, "type": "data_subject"})).collect();
    let evidences: Vec<Value> = alert
        .evidence
        .iter()
        .map(|evidence| {
            json!({
                "uid": format!("{}/{}", evidence.region, evidence.index),
                "name": "custos access log entry",
                "data": {"region": evidence.region, "index": evidence.index, "request": evidence.request},
            })
        })
        .collect();
    let data_sources: Vec<String> = regions.iter().map(|region| format!("custos access log {region}")).collect();
    json!({
        "class_uid": OCSF_CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": OCSF_CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": OCSF_ACTIVITY_CREATE,
        "activity_name": "Create",
        "type_uid": OCSF_CLASS_UID * 100 + OCSF_ACTIVITY_CREATE,
        "type_name": "Detection Finding: Create",
        "severity_id": severity_id,
        "severity": severity,
        "status_id": status_id,
        "status": status,
        "time": alert.raised_at_ms,
        "end_time": alert.at_ms,
        "message": alert.summary,
        "is_alert": true,
        "finding_info": {
            "uid": alert.id,
            "title": alert.rule,
            "desc": alert.summary,
            "types": [alert.rule],
            "analytic": {"name": alert.rule, "type_id": 1, "type": "Rule"},
            "created_time": alert.raised_at_ms,
            "modified_time": alert.updated_at_ms,
            "data_sources": data_sources,
        },
        "metadata": {
            "version": OCSF_SCHEMA_VERSION,
            "product": {"name": "custos", "vendor_name": "custos project", "version": product_version},
        },
        "actor": {"user": {"uid": alert.actor}},
        "resources": resources,
        "evidences": evidences,
    })
}

/// OCSF `severity_id` and its caption.
fn severity(severity: Severity) -> (u32, &'static str) {
    match severity {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// OCSF finding `status_id` and its caption.
fn status(status: AlertStatus) -> (u32, &'static str) {
    match status {
        AlertStatus::Open => (1, "New"),
        AlertStatus::Acknowledged => (2, "In Progress"),
        AlertStatus::Resolved => (4, "Resolved"),
    }
}

#[cfg(test)]
mod tests {
    use store::EvidenceRef;

    use super::*;

    fn alert() -> AlertRecord {
        AlertRecord {
            id: "0123456789abcdef0123456789abcdef".to_owned(),
            rule: "unexplained_access".to_owned(),
            severity: Severity::High,
            actor: "s-agent".to_owned(),
            subjects: vec!["u-1".to_owned(), "u-2".to_owned(), "u-1".to_owned()],
            evidence: vec![
                EvidenceRef { region: "us".to_owned(), index: 17, request: "ar-1".to_owned() },
                EvidenceRef { region: "eu".to_owned(), index: 3, request: String::new() },
                EvidenceRef { region: "us".to_owned(), index: 18, request: "ar-2".to_owned() },
            ],
            summary: "s-agent revealed email of u-1 with no case".to_owned(),
            at_ms: 1_772_442_000_000,
            raised_at_ms: 1_772_442_000_250,
            status: AlertStatus::Acknowledged,
            updated_at_ms: 1_772_442_060_000,
        }
    }

    const GOLDEN: &str = r#"{
      "class_uid": 2004, "class_name": "Detection Finding",
      "category_uid": 2, "category_name": "Findings",
      "activity_id": 1, "activity_name": "Create",
      "type_uid": 200401, "type_name": "Detection Finding: Create",
      "severity_id": 4, "severity": "High",
      "status_id": 2, "status": "In Progress",
      "time": 1772442000250, "end_time": 1772442000000,
      "message": "s-agent revealed email of u-1 with no case",
      "is_alert": true,
      "finding_info": {
        "uid": "0123456789abcdef0123456789abcdef",
        "title": "unexplained_access",
        "desc": "s-agent revealed email of u-1 with no case",
        "types": ["unexplained_access"],
        "analytic": {"name": "unexplained_access", "type_id": 1, "type": "Rule"},
        "created_time": 1772442000250,
        "modified_time": 1772442060000,
        "data_sources": ["custos access log us", "custos access log eu"]
      },
      "metadata": {
        "version": "1.8.0",
        "product": {"name": "custos", "vendor_name": "custos project", "version": "0.1.0"}
      },
      "actor": {"user": {"uid": "s-agent"}},
      "resources": [{"uid": "u-1", "type": "data_subject"}, {"uid": "u-2", "type": "data_subject"}],
      "evidences": [
        {"uid": "us/17", "name": "custos access log entry", "data": {"region": "us", "index": 17, "request": "ar-1"}},
        {"uid": "eu/3", "name": "custos access log entry", "data": {"region": "eu", "index": 3, "request": ""}},
        {"uid": "us/18", "name": "custos access log entry", "data": {"region": "us", "index": 18, "request": "ar-2"}}
      ]
    }"#;

    #[test]
    fn an_alert_maps_to_the_golden_detection_finding() {
        let golden: Value = serde_json::from_str(GOLDEN).unwrap();
        assert_eq!(detection_finding(&alert(), "0.1.0"), golden);
    }

    #[test]
    fn severities_and_statuses_map_to_their_ocsf_ids() {
        let check = |severity: Severity, status: AlertStatus, expected: (u64, &str, u64, &str)| {
            let finding = detection_finding(&AlertRecord { severity, status, ..alert() }, "0.1.0");
            let got = (
                finding["severity_id"].as_u64().unwrap(),
                finding["severity"].as_str().unwrap(),
                finding["status_id"].as_u64().unwrap(),
                finding["status"].as_str().unwrap(),
            );
            assert_eq!(got, expected, "{severity} {status}");
        };
        check(Severity::Info, AlertStatus::Open, (1, "Informational", 1, "New"));
        check(Severity::Low, AlertStatus::Open, (2, "Low", 1, "New"));
        check(Severity::Medium, AlertStatus::Acknowledged, (3, "Medium", 2, "In Progress"));
        check(Severity::High, AlertStatus::Resolved, (4, "High", 4, "Resolved"));
        check(Severity::Critical, AlertStatus::Resolved, (5, "Critical", 4, "Resolved"));
    }
}
