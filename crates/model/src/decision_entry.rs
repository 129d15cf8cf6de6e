//! The canonical bytes of one decision as it goes into a region's access log (before the
//! sequencer's salt is prepended). docs/log-entry.md describes them byte by byte.
//!
//! An entry is UTF-8 JSON without insignificant whitespace whose members appear in exactly
//! the order the structs below declare (serde keeps declaration order), absent optionals left
//! out, strings escaped as `serde_json` escapes them. It is written once and only ever
//! hashed afterwards, so readers never need to re-encode it; the fixed order makes two
//! entries about the same decision byte-identical apart from their salts.
//!
//! Version [`DECISION_ENTRY_VERSION`]: `{"v":1,"type":"access"|"approval",…}`.

use serde::{Deserialize, Serialize};

/// The format version written in every entry's `v` member.
pub const DECISION_ENTRY_VERSION: u32 = 1;

/// One access decision about one subject: who asked, as they were at that moment, for what,
/// and what was decided per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessEntry {
    pub v: u32,
    /// Always `access`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The access request id: the same for the first decision and for the decision made
    /// again once approvals arrive.
    pub request: String,
    /// Milliseconds since the Unix epoch (the service clock).
    pub at_ms: i64,
    pub actor: ActorSnapshot,
    pub action: String,
    pub purpose: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub case: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub justification: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub break_glass: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
    pub subject: SubjectSnapshot,
    /// Whether the actor was outside the subject's region (entity or current country).
    pub cross_border: bool,
    /// Ids of the approvals this decision relied on (empty on a first decision).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approved_by: Vec<String>,
    /// `allow` when any field was granted, `pending` when none was and one waits for an
    /// approval, `deny` otherwise.
    pub decision: String,
    pub fields: Vec<FieldDecisionEntry>,
    pub policies: Vec<String>,
    pub reasons: Vec<String>,
    /// `search`: the field searched and the keyed digest of the value (hex), never the value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<QuerySnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySnapshot {
    pub field: String,
    pub digest: String,
}

/// The actor's attributes as the decision saw them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActorSnapshot {
    pub id: String,
    /// `staff` or `machine`.
    pub kind: String,
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub team: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub entity: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub country: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub region: String,
    /// Where the actor worked from at the time of the request.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub from_country: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubjectSnapshot {
    pub id: String,
    pub region: String,
    pub labels: Vec<String>,
}

/// One field's outcome. `view` is the granted view (`allow`) or the view an approval would
/// grant (`pending`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldDecisionEntry {
    pub field: String,
    pub requested: String,
    pub decision: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub view: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
}

/// A second person's answer to a pending request, logged before it takes effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalEntry {
    pub v: u32,
    /// Always `approval`.
    #[serde(rename = "type")]
    pub kind: String,
    pub request: String,
    pub at_ms: i64,
    pub approver: ActorSnapshot,
    /// The requester whose request this answers.
    pub requester: String,
    pub subjects: Vec<String>,
    /// `approve`, `reject`, or `refused` when custos did not accept the answer.
    pub decision: String,
    /// Approval kinds this answer satisfied (`independent`, `custodian`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub satisfies: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasons: Vec<String>,
}

/// What a person did with an alert (acknowledged it, resolved it with a note), logged before
/// it takes effect: reviewing abuse is itself reviewable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertActionEntry {
    pub v: u32,
    /// Always `alert_action`.
    #[serde(rename = "type")]
    pub kind: String,
    pub alert: String,
    pub rule: String,
    /// The staff member the alert is about.
    pub alert_actor: String,
    /// The access requests the alert's evidence recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<String>,
    pub at_ms: i64,
    pub by: ActorSnapshot,
    /// `acknowledge` or `resolve`.
    pub action: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
}

/// A compliance officer's view of access records (a console timeline, an alert, a report),
/// logged before the records are shown: whoever audits is audited too. One entry per region
/// whose records the view shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordViewEntry {
    pub v: u32,
    /// Always `record_view`.
    #[serde(rename = "type")]
    pub kind: String,
    pub at_ms: i64,
    pub by: ActorSnapshot,
    /// What was viewed: `actor_timeline`, `case_timeline`, `subject_timeline`, `alert`,
    /// `report`, `what_if`.
    pub view: String,
    /// The actor, case, subject or alert id viewed.
    pub target: String,
    /// The log indexes of this region's records shown, as inclusive ranges `[first, last]`
    /// in ascending order (empty when none were).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shown: Vec<[u64; 2]>,
}

/// A legal hold: a case's legal process defers disclosing its accesses to the subjects in
/// scope until `until_ms` (or until the case closes, if sooner). Logged in each subject's
/// region before the hold takes effect, again whenever it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisclosureDeferralEntry {
    pub v: u32,
    /// Always `disclosure_deferral`.
    #[serde(rename = "type")]
    pub kind: String,
    pub at_ms: i64,
    pub case: String,
    /// The subjects in the case's scope whose data lives in this log's region.
    pub subjects: Vec<String>,
    pub until_ms: i64,
    /// The legal process that asks for it: kind, issuer and the document's SHA-256.
    pub legal_kind: String,
    pub issuer: String,
    pub document_sha256: String,
}

/// Encodes an entry canonically.
pub fn encode<T: Serialize>(entry: &T) -> Vec<u8> {
    // INVARIANT: the entry types hold only strings, integers, booleans and sequences of them,
    // which serde_json always encodes.
    serde_json::to_vec(entry).expect("decision entries always encode")
}

/// The kind of a canonical entry (`access`, `approval`, …) and its version, without
/// decoding the rest.
pub fn kind_of(canonical: &[u8]) -> Option<(u32, String)> {
    #[derive(Deserialize)]
    struct Head {
        v: u32,
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_slice::<Head>(canonical).ok().map(|head| (head.v, head.kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AccessEntry {
        AccessEntry {
            v: DECISION_ENTRY_VERSION,
            kind: "access".to_owned(),
            request: "a-1".to_owned(),
            at_ms: 1_772_442_300_000,
            actor: ActorSnapshot {
                id: "s-cn-1".to_owned(),
                kind: "staff".to_owned(),
                roles: vec!["internal_audit".to_owned()],
                team: "audit".to_owned(),
                entity: "parentco-cn".to_owned(),
                country: "CN".to_owned(),
                region: "cn".to_owned(),
                from_country: "CN".to_owned(),
            },
            action: "read".to_owned(),
            purpose: "internal_investigation".to_owned(),
            case: Some("LEAK-1".to_owned()),
            justification: String::new(),
            break_glass: false,
            destination: None,
            control: None,
            subject: SubjectSnapshot { id: "u-1".to_owned(), region: "us".to_owned(), labels: vec!["journalist".to_owned()] },
            cross_border: true,
            approved_by: Vec::new(),
            decision: "deny".to_owned(),
            fields: vec![FieldDecisionEntry {
                field: "ip_address".to_owned(),
                requested: "exact".to_owned(),
                decision: "deny".to_owned(),
                view: None,
                needs: Vec::new(),
            }],
            policies: vec!["internal-investigation-staff-only".to_owned()],
            reasons: vec!["internal investigations may only target staff".to_owned()],
            query: None,
        }
    }

    #[test]
    fn encoding_is_fixed_member_order_without_whitespace() {
        let bytes = encode(&entry());
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(text.starts_with(r#"{"v":1,"type":"access","request":"a-1","at_ms":1772442300000,"actor":{"id":"s-cn-1","kind":"staff","roles":["internal_audit"],"team":"audit","#), "{text}");
        assert!(text.contains(r#""case":"LEAK-1","subject":{"id":"u-1","region":"us","labels":["journalist"]},"cross_border":true,"decision":"deny","fields":[{"field":"ip_address","requested":"exact","decision":"deny"}]"#), "{text}");
        assert!(!text.contains(' ') || text.contains("may only"), "no insignificant whitespace");
        let decoded: AccessEntry = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(decoded, entry());
        assert_eq!(encode(&decoded), bytes, "decode → encode reproduces the bytes");
        assert_eq!(kind_of(&bytes), Some((1, "access".to_owned())));
    }
}
