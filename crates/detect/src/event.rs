//! What the rules look at: one decoded log entry, and for an access decision the facts
//! derived from it once (what explains it, what it revealed, who the target is) so that
//! every rule reads the same answers.

use model::decision_entry::{AccessEntry, AlertActionEntry, ApprovalEntry, RecordViewEntry, kind_of};
use serde::{Deserialize, Serialize};

use crate::facts::{CaseFacts, Facts, StaffFacts};

/// Where an alert's evidence sits: a log entry, and the access request it recorded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Evidence {
    pub region: String,
    pub index: u64,
    pub request: String,
}

/// A log entry the detector understands.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Access(Box<AccessEntry>),
    Approval(Box<ApprovalEntry>),
    AlertAction(Box<AlertActionEntry>),
    RecordView(Box<RecordViewEntry>),
    /// An entry of a kind this build has no rules for (kept so the cursor still moves).
    Other { kind: String },
}

impl Entry {
    /// The entry's own time, when its kind carries one.
    pub fn at_ms(&self) -> Option<i64> {
        match self {
            Entry::Access(access) => Some(access.at_ms),
            Entry::Approval(approval) => Some(approval.at_ms),
            Entry::AlertAction(action) => Some(action.at_ms),
            Entry::RecordView(view) => Some(view.at_ms),
            Entry::Other { .. } => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("decode entry {region}/{index}: not a custos decision entry")]
    NotAnEntry { region: String, index: u64 },
    #[error("decode entry {region}/{index}: {message}")]
    Malformed { region: String, index: u64, message: String },
}

/// Decodes the canonical bytes of the entry at `region`/`index` (the salt already removed).
pub fn decode(region: &str, index: u64, canonical: &[u8]) -> Result<Entry, DecodeError> {
    let malformed = |error: serde_json::Error| DecodeError::Malformed { region: region.to_owned(), index, message: error.to_string() };
    // The four kinds decoded here are parsed whole below, which checks every field again;
    // only the others need `kind_of`'s own parse of the whole entry.
    let kind = match decoded_kind(canonical) {
        Some(kind) => kind.to_owned(),
        None => match kind_of(canonical) {
            Some((_version, kind)) => kind,
            None => return Err(DecodeError::NotAnEntry { region: region.to_owned(), index }),
        },
    };
    Ok(match kind.as_str() {
        "access" => Entry::Access(Box::new(serde_json::from_slice(canonical).map_err(malformed)?)),
        "approval" => Entry::Approval(Box::new(serde_json::from_slice(canonical).map_err(malformed)?)),
        "alert_action" => Entry::AlertAction(Box::new(serde_json::from_slice(canonical).map_err(malformed)?)),
        "record_view" => Entry::RecordView(Box::new(serde_json::from_slice(canonical).map_err(malformed)?)),
        _ => Entry::Other { kind },
    })
}

/// The kind of an entry that begins as custos writes them, `{"v":N,"type":"KIND",`, when
/// KIND is one [`decode`] parses whole; `None` for anything else.
fn decoded_kind(canonical: &[u8]) -> Option<&'static str> {
    let rest = canonical.strip_prefix(br#"{"v":"#)?;
    let digits = rest.iter().take_while(|byte| byte.is_ascii_digit()).count();
    let rest = rest[digits..].strip_prefix(br#","type":""#).filter(|_| digits > 0)?;
    ["access", "approval", "alert_action", "record_view"].into_iter().find(|kind| {
        rest.strip_prefix(kind.as_bytes())
            .is_some_and(|after| after.starts_with(br#"","#) || after.starts_with(br#""}"#))
    })
}

/// Most threads [`decode_batch`] uses.
pub const DECODE_THREADS_MAX: usize = 8;

/// Decodes many entries, in order, spreading the work over up to `threads` threads: decoding
/// costs more than observing, and entries decode independently of each other.
pub fn decode_batch(region: &str, first_index: u64, canonical: &[Vec<u8>], threads: usize) -> Vec<Result<Entry, DecodeError>> {
    let threads = threads.clamp(1, DECODE_THREADS_MAX);
    if threads == 1 || canonical.len() < 256 {
        return canonical.iter().enumerate().map(|(offset, bytes)| decode(region, first_index + offset as u64, bytes)).collect();
    }
    let chunk = canonical.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = canonical
            .chunks(chunk)
            .enumerate()
            .map(|(number, part)| {
                let start = first_index + (number * chunk) as u64;
                scope.spawn(move || part.iter().enumerate().map(|(offset, bytes)| decode(region, start + offset as u64, bytes)).collect::<Vec<_>>())
            })
            .collect();
        // INVARIANT: decoding does not panic on any input (errors are values).
        workers.into_iter().flat_map(|worker| worker.join().expect("decoder thread")).collect()
    })
}

/// Labels that mark a subject as someone staff must not look up out of curiosity or for
/// leverage.
pub const PROTECTED_LABELS: [&str; 8] =
    ["journalist", "journalist_contact", "public_official", "activist", "minor", "vip", "staff", "prior_victim"];

/// Views that reveal no more than a category or a country: seeing them identifies nobody.
const COARSE_VIEWS: [&str; 6] = ["exists", "country", "country_code", "domain", "age_band", "year"];

/// What explains an access — the question explanation-based auditing asks of every record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Explanation {
    /// A case the subject asked for themselves, worked by the actor.
    OwnRequest,
    /// A case with a validated legal process, worked by the actor.
    LegalProcess,
    /// An open case that assigns the actor and covers the subject.
    Case,
    /// Break-glass: explained only once someone reviews it.
    BreakGlass,
    /// A machine actor working for the platform.
    Machine,
    NoCase,
    UnknownCase,
    CaseClosed,
    ActorNotAssigned,
    SubjectNotInScope,
}

impl Explanation {
    pub fn explained(self) -> bool {
        matches!(self, Explanation::OwnRequest | Explanation::LegalProcess | Explanation::Case | Explanation::Machine)
    }

    /// Words for a summary: "no case", "a case that does not assign them", …
    pub fn describe(self) -> &'static str {
        match self {
            Explanation::OwnRequest => "the subject's own request",
            Explanation::LegalProcess => "a validated legal process",
            Explanation::Case => "a case assigned to them",
            Explanation::BreakGlass => "break-glass",
            Explanation::Machine => "a platform function",
            Explanation::NoCase => "no case",
            Explanation::UnknownCase => "a case custos does not know",
            Explanation::CaseClosed => "a closed case",
            Explanation::ActorNotAssigned => "a case that does not assign them",
            Explanation::SubjectNotInScope => "a case that does not cover this subject",
        }
    }
}

/// One access decision with what the rules need derived from it.
#[derive(Debug)]
pub struct Access<'a> {
    pub evidence: Evidence,
    pub entry: &'a AccessEntry,
    pub case: Option<&'a CaseFacts>,
    pub actor: Option<&'a StaffFacts>,
    pub explanation: Explanation,
    /// Something beyond `exists` was granted.
    pub revealed: bool,
    /// A view finer than a country or category was granted.
    pub revealed_identifying: bool,
    /// A view finer than a country or category was asked for (granted or not).
    pub asked_identifying: bool,
    /// An IP address or location was asked for at a view finer than a country.
    pub asked_whereabouts: bool,
    /// The location was asked for exactly (where the person is now).
    pub asked_live_location: bool,
    /// The subject's protected labels.
    pub protected: Vec<&'a str>,
    /// The subject is an employee's own account.
    pub staff_target: bool,
    pub off_shift: bool,
    pub notice_since: Option<i64>,
    /// Registered travel covering the access.
    pub travelling_to: Option<&'a str>,
}

impl<'a> Access<'a> {
    /// Derives the facts of `entry`, logged at `region`/`index`.
    pub fn derive(region: &str, index: u64, entry: &'a AccessEntry, facts: &'a dyn Facts) -> Access<'a> {
        let case = entry.case.as_deref().and_then(|id| facts.case(id));
        let actor = facts.staff(&entry.actor.id);
        let subject = entry.subject.id.as_str();
        let explanation = if entry.actor.kind == "machine" {
            Explanation::Machine
        } else {
            match (&entry.case, case) {
                (None, _) if entry.break_glass => Explanation::BreakGlass,
                (None, _) => Explanation::NoCase,
                (Some(_), None) => Explanation::UnknownCase,
                (Some(_), Some(case)) if case.closed_by(entry.at_ms) => Explanation::CaseClosed,
                (Some(_), Some(case)) if !case.assignees.contains(&entry.actor.id) => Explanation::ActorNotAssigned,
                (Some(_), Some(case)) if !subject.is_empty() && !case.subjects.contains(subject) => {
                    if entry.break_glass { Explanation::BreakGlass } else { Explanation::SubjectNotInScope }
                }
                (Some(_), Some(case)) if case.requested_by.as_deref() == Some(subject) => Explanation::OwnRequest,
                (Some(_), Some(case)) if case.legal_process_validated => Explanation::LegalProcess,
                (Some(_), Some(_)) => Explanation::Case,
            }
        };
        let granted = |field: &&model::decision_entry::FieldDecisionEntry| field.decision == "allow";
        let identifying = |view: &str| !view.is_empty() && !COARSE_VIEWS.contains(&view);
        let revealed = entry.fields.iter().filter(granted).any(|field| field.view.as_deref().is_some_and(|view| view != "exists"));
        let revealed_identifying =
            entry.fields.iter().filter(granted).any(|field| field.view.as_deref().is_some_and(identifying));
        let asked_identifying = entry.fields.iter().any(|field| identifying(&field.requested));
        let asked_whereabouts = entry
            .fields
            .iter()
            .any(|field| matches!(field.field.as_str(), "ip_address" | "location") && identifying(&field.requested));
        let asked_live_location = entry.fields.iter().any(|field| field.field == "location" && field.requested == "exact");
        let protected: Vec<&str> =
            entry.subject.labels.iter().map(String::as_str).filter(|label| PROTECTED_LABELS.contains(label)).collect();
        let staff_target = protected.contains(&"staff");
        let at = entry.at_ms;
        Access {
            evidence: Evidence { region: region.to_owned(), index, request: entry.request.clone() },
            entry,
            case,
            actor,
            explanation,
            revealed,
            revealed_identifying,
            asked_identifying,
            asked_whereabouts,
            asked_live_location,
            protected,
            staff_target,
            off_shift: actor.is_some_and(|staff| staff.off_shift(at)),
            notice_since: actor.and_then(|staff| staff.notice_since(at)),
            travelling_to: actor.and_then(|staff| staff.travelling_to(at)),
        }
    }

    pub fn actor_id(&self) -> &str {
        &self.entry.actor.id
    }

    pub fn subject_id(&self) -> &str {
        &self.entry.subject.id
    }

    pub fn at_ms(&self) -> i64 {
        self.entry.at_ms
    }

    pub fn allowed(&self) -> bool {
        self.entry.decision == "allow"
    }

    pub fn denied(&self) -> bool {
        self.entry.decision == "deny"
    }

    /// The fields asked for, as "ip_address (exact), email (masked)".
    pub fn fields_asked(&self) -> String {
        self.entry.fields.iter().map(|field| format!("{} ({})", field.field, field.requested)).collect::<Vec<_>>().join(", ")
    }

    /// "journalist" or "journalist, minor", or "" for an unprotected subject.
    pub fn protected_labels(&self) -> String {
        self.protected.join(", ")
    }
}

/// An approval answer with its evidence.
#[derive(Debug)]
pub struct Approval<'a> {
    pub evidence: Evidence,
    pub entry: &'a ApprovalEntry,
}

#[cfg(test)]
mod tests {
    use super::*;

    const BY: &str = r#"{"id":"s-ann","kind":"staff","roles":["compliance"],"team":"privacy","entity":"platform-us","country":"US","region":"us","from_country":"US"}"#;

    fn record_view(head: &str, tail: &str) -> Vec<u8> {
        format!(r#"{{{head},"at_ms":5,"by":{BY},"view":"actor_timeline","target":"s-bob"{tail}}}"#).into_bytes()
    }

    fn decoded(bytes: &[u8]) -> Result<Entry, DecodeError> {
        decode("us", 7, bytes)
    }

    #[test]
    fn an_entry_as_custos_writes_it_is_known_by_its_first_bytes() {
        let bytes = record_view(r#""v":1,"type":"record_view""#, "");
        assert_eq!(decoded_kind(&bytes), Some("record_view"));
        let Ok(Entry::RecordView(entry)) = decoded(&bytes) else { panic!("{:?}", decoded(&bytes)) };
        assert_eq!((entry.kind.as_str(), entry.target.as_str()), ("record_view", "s-bob"));
    }

    #[test]
    fn an_entry_in_another_order_decodes_the_same() {
        let custos = record_view(r#""v":1,"type":"record_view""#, "");
        let reordered = record_view(r#""type":"record_view","v":1"#, "");
        assert_eq!(decoded_kind(&reordered), None);
        let (Ok(Entry::RecordView(first)), Ok(Entry::RecordView(second))) = (decoded(&custos), decoded(&reordered)) else {
            panic!("both decode")
        };
        assert_eq!(first, second);
    }

    #[test]
    fn other_kinds_and_lookalikes_take_the_whole_parse() {
        for head in [r#""v":1,"type":"record_viewer""#, r#""v":1,"type":"disclosure_deferral""#] {
            let bytes = record_view(head, "");
            assert_eq!(decoded_kind(&bytes), None, "{head}");
            assert!(matches!(decoded(&bytes), Ok(Entry::Other { .. })), "{head}: {:?}", decoded(&bytes));
        }
        for bytes in [&b"not json"[..], br#"{"v":,"type":"access","#, br#"{"type":"access"}"#] {
            assert_eq!(decoded_kind(bytes), None);
            assert!(matches!(decoded(bytes), Err(DecodeError::NotAnEntry { .. })), "{:?}", decoded(bytes));
        }
    }

    #[test]
    fn a_known_head_does_not_excuse_the_rest_of_the_entry() {
        let duplicate = record_view(r#""v":1,"type":"record_view""#, r#","type":"access""#);
        let unknown_field = record_view(r#""v":1,"type":"record_view""#, r#","extra":1"#);
        let mut truncated = record_view(r#""v":1,"type":"record_view""#, "");
        truncated.truncate(truncated.len() - 1);
        for bytes in [duplicate, unknown_field, truncated] {
            assert_eq!(decoded_kind(&bytes), Some("record_view"));
            assert!(matches!(decoded(&bytes), Err(DecodeError::Malformed { .. })), "{:?}", decoded(&bytes));
        }
    }
}
