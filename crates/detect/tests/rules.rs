//! Each rule against small, hand-built histories: what it must raise and what it must leave
//! alone. Entries are built as the service logs them; time is explicit.

use std::sync::Arc;

use detect::{Alert, CaseFacts, DetectionConfig, Detector, Entry, FactTable, HrEventKind, HrFactFacts, Severity, ShiftFacts, StaffFacts};
use model::decision_entry::{AccessEntry, ActorSnapshot, ApprovalEntry, FieldDecisionEntry, SubjectSnapshot};

const T0: i64 = 1_772_442_000_000; // 2026-03-02T09:00:00Z, a Monday
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

struct Run {
    detector: Detector,
    facts: FactTable,
    next_index: u64,
    alerts: Vec<Alert>,
}

impl Run {
    fn new() -> Run {
        Run { detector: Detector::new(&DetectionConfig::default()), facts: FactTable::default(), next_index: 0, alerts: Vec::new() }
    }

    fn case(&mut self, id: &str, purpose: &str, assignees: &[&str], subjects: &[&str], requested_by: Option<&str>) {
        self.facts.cases.insert(
            id.to_owned(),
            Arc::new(CaseFacts {
                id: id.to_owned(),
                purpose: purpose.to_owned(),
                open: true,
                assignees: assignees.iter().map(|id| (*id).to_owned()).collect(),
                subjects: subjects.iter().map(|id| (*id).to_owned()).collect(),
                requested_by: requested_by.map(str::to_owned),
                legal_process_validated: false,
                destinations: vec!["ir_enclave".to_owned()],
                created_at_ms: T0,
                updated_at_ms: T0,
            }),
        );
    }

    fn staff(&mut self, staff: StaffFacts) {
        self.facts.staff.insert(staff.id.clone(), Arc::new(staff));
    }

    fn observe(&mut self, entry: Entry) -> Vec<Alert> {
        let alerts = self.detector.observe("us", self.next_index, &entry, &self.facts);
        self.next_index += 1;
        self.alerts.extend(alerts.clone());
        alerts
    }

    fn access(&mut self, access: AccessEntry) -> Vec<Alert> {
        self.observe(Entry::Access(Box::new(access)))
    }

    fn raised(&self, rule: &str) -> Vec<&Alert> {
        self.alerts.iter().filter(|alert| alert.rule == rule).collect()
    }

    fn worst(&self) -> Option<Severity> {
        self.alerts.iter().map(|alert| alert.severity).max()
    }
}

/// An allowed read of `fields` (field, view) of `subject` by `actor` at `at_ms`.
fn read(actor: &str, subject: &str, labels: &[&str], fields: &[(&str, &str)], purpose: &str, case: Option<&str>, at_ms: i64) -> AccessEntry {
    AccessEntry {
        v: 1,
        kind: "access".to_owned(),
        request: format!("r-{actor}-{subject}-{at_ms}"),
        at_ms,
        actor: ActorSnapshot {
            id: actor.to_owned(),
            kind: "staff".to_owned(),
            roles: vec!["support_agent".to_owned()],
            team: "support".to_owned(),
            entity: "platform-us".to_owned(),
            country: "US".to_owned(),
            region: "us".to_owned(),
            from_country: "US".to_owned(),
        },
        action: "read".to_owned(),
        purpose: purpose.to_owned(),
        case: case.map(str::to_owned),
        justification: String::new(),
        break_glass: false,
        destination: None,
        control: None,
        subject: SubjectSnapshot { id: subject.to_owned(), region: "us".to_owned(), labels: labels.iter().map(|label| (*label).to_owned()).collect() },
        cross_border: false,
        approved_by: Vec::new(),
        decision: "allow".to_owned(),
        fields: fields
            .iter()
            .map(|(field, view)| FieldDecisionEntry {
                field: (*field).to_owned(),
                requested: (*view).to_owned(),
                decision: "allow".to_owned(),
                view: Some((*view).to_owned()),
                needs: Vec::new(),
            })
            .collect(),
        policies: vec!["support-own-ticket".to_owned()],
        reasons: Vec::new(),
        query: None,
    }
}

fn denied(mut entry: AccessEntry) -> AccessEntry {
    entry.decision = "deny".to_owned();
    for field in &mut entry.fields {
        field.decision = "deny".to_owned();
        field.view = None;
    }
    entry
}

#[test]
fn explained_ordinary_work_raises_nothing() {
    let mut run = Run::new();
    run.case("T-1", "support", &["s-1"], &["u-1"], Some("u-1"));
    for day in 0..20 {
        run.access(read("s-1", "u-1", &[], &[("email", "masked"), ("ip_address", "country")], "support", Some("T-1"), T0 + day * HOUR));
    }
    // Twenty looks at the same ticket would be repetition without case activity — but the
    // window is 14 days and the case is the subject's own request: still only repeats.
    assert!(run.raised("unexplained_access").is_empty());
    assert!(run.raised("protected_target").is_empty());
    assert!(run.raised("co_location_probe").is_empty());
}

#[test]
fn a_case_explains_the_looks_made_before_it_closed_and_none_after() {
    let mut run = Run::new();
    run.case("T-1", "support", &["s-1"], &["u-1"], None);
    let closed = |run: &mut Run, at_ms: i64| {
        let mut case = (*run.facts.cases["T-1"]).clone();
        case.open = false;
        case.updated_at_ms = at_ms;
        run.facts.cases.insert("T-1".to_owned(), Arc::new(case));
    };
    // The detector reads the directory as it is now: the ticket was closed an hour after the
    // read, so the read was made on an open case.
    closed(&mut run, T0 + HOUR);
    run.access(read("s-1", "u-1", &[], &[("email", "masked")], "support", Some("T-1"), T0));
    assert!(run.raised("unexplained_access").is_empty(), "{:#?}", run.alerts);
    // A read after the closing is not explained by the case.
    run.access(read("s-1", "u-1", &[], &[("email", "masked")], "support", Some("T-1"), T0 + 2 * HOUR));
    assert_eq!(run.raised("unexplained_access").len(), 1, "{:#?}", run.alerts);
}

#[test]
fn an_unexplained_first_look_is_medium_and_a_list_of_them_high() {
    let mut run = Run::new();
    let alerts = run.access(read("s-1", "u-1", &[], &[("phone", "exact")], "support", None, T0));
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    assert_eq!((alerts[0].rule.as_str(), alerts[0].severity), ("unexplained_access", Severity::Medium));
    assert!(alerts[0].summary.contains("no case"), "{}", alerts[0].summary);
    // A look that revealed nothing is an attempt: low.
    let alerts = run.access(denied(read("s-1", "u-2", &[], &[("phone", "exact")], "support", None, T0 + MINUTE)));
    assert!(alerts.iter().any(|alert| alert.rule == "unexplained_access" && alert.severity == Severity::Low), "{alerts:#?}");
    for n in 3..=10 {
        run.access(read("s-1", &format!("u-{n}"), &[], &[("email", "masked")], "support", None, T0 + i64::from(n) * MINUTE));
    }
    let list: Vec<_> = run.raised("unexplained_access").into_iter().filter(|alert| alert.severity == Severity::High).collect();
    assert_eq!(list.len(), 1, "one list alert for the day");
    assert_eq!(list[0].subjects.len(), 10);
}

#[test]
fn protected_targets_are_info_on_their_own_request_and_high_otherwise() {
    let mut run = Run::new();
    run.case("T-9", "support", &["s-1"], &["u-j"], Some("u-j"));
    run.case("T-10", "support", &["s-1"], &["u-j", "u-k"], Some("u-k"));
    let own = run.access(read("s-1", "u-j", &["journalist"], &[("ip_address", "exact")], "support", Some("T-9"), T0));
    assert!(own.iter().any(|alert| alert.rule == "protected_target" && alert.severity == Severity::Info), "{own:#?}");
    let other = run.access(read("s-1", "u-j", &["journalist"], &[("ip_address", "exact")], "support", Some("T-10"), T0 + HOUR));
    assert!(other.iter().any(|alert| alert.rule == "protected_target" && alert.severity == Severity::High), "{other:#?}");
    assert!(other.iter().any(|alert| alert.rule == "purpose_mismatch"), "support on someone who did not ask: {other:#?}");
}

#[test]
fn the_leak_hunt_pattern_is_a_critical_co_location_probe() {
    let mut run = Run::new();
    run.case("LEAK-7", "internal_investigation", &["s-cn-1"], &["u-j1", "u-e1"], None);
    let journalist = denied(read("s-cn-1", "u-j1", &["journalist"], &[("ip_address", "exact"), ("location", "exact")], "internal_investigation", Some("LEAK-7"), T0));
    run.access(journalist);
    assert!(run.raised("co_location_probe").is_empty(), "one side only");
    let employee = read("s-cn-1", "u-e1", &["staff"], &[("ip_address", "exact")], "internal_investigation", Some("LEAK-7"), T0 + 20 * MINUTE);
    run.access(employee);
    let probes = run.raised("co_location_probe");
    assert!(!probes.is_empty());
    assert!(probes.iter().all(|alert| alert.severity == Severity::Critical && alert.actor == "s-cn-1"));
    assert_eq!(probes[0].subjects, vec!["u-j1".to_owned(), "u-e1".to_owned()]);
    assert_eq!(probes[0].evidence.len(), 2);
    assert!(run.raised("purpose_mismatch").iter().any(|alert| alert.subjects == vec!["u-j1".to_owned()] && alert.severity == Severity::High));
}

/// Found in the 1,000,000-access background run: a privacy officer answering data subject
/// requests read everything of the requesters, a journalist and an employee among them,
/// within a week. Each look is on the subject's own request: no probe.
#[test]
fn answering_data_subject_requests_is_not_a_co_location_probe() {
    let mut run = Run::new();
    run.case("DSR-1", "data_subject_request", &["s-po"], &["u-j1"], Some("u-j1"));
    run.case("DSR-2", "data_subject_request", &["s-po"], &["u-e1"], Some("u-e1"));
    run.case("DSR-3", "data_subject_request", &["s-po"], &["u-3"], Some("u-3"));
    let all = [("ip_address", "exact"), ("location", "exact"), ("email", "exact")];
    run.access(read("s-po", "u-j1", &["journalist"], &all, "data_subject_request", Some("DSR-1"), T0));
    run.access(read("s-po", "u-e1", &["staff"], &all, "data_subject_request", Some("DSR-2"), T0 + DAY));
    run.access(read("s-po", "u-3", &[], &all, "data_subject_request", Some("DSR-3"), T0 + 2 * DAY));
    assert!(run.raised("co_location_probe").is_empty(), "{:#?}", run.raised("co_location_probe"));
    // The same looks on a case nobody of them asked for are the leak hunt.
    run.case("INV-4", "internal_investigation", &["s-po"], &["u-j1", "u-e1"], None);
    run.access(read("s-po", "u-j1", &["journalist"], &all, "internal_investigation", Some("INV-4"), T0 + 3 * DAY));
    run.access(read("s-po", "u-e1", &["staff"], &all, "internal_investigation", Some("INV-4"), T0 + 3 * DAY + HOUR));
    assert!(run.raised("co_location_probe").iter().any(|alert| alert.severity == Severity::Critical));
}

#[test]
fn off_shift_without_a_case_is_high_and_on_call_is_quiet() {
    let mut run = Run::new();
    let shift = ShiftFacts::parse("America/New_York", "09:00", "17:00");
    run.staff(StaffFacts { id: "s-1".to_owned(), shift, hr: Vec::new(), on_call: Vec::new() });
    run.staff(StaffFacts { id: "s-2".to_owned(), shift, hr: Vec::new(), on_call: vec![(T0 - DAY, T0 + DAY)] });
    run.case("INC-1", "security_incident", &["s-2"], &["u-2"], None);
    let night = T0 - 2 * HOUR - 5 * HOUR; // 02:00 in New York
    run.access(read("s-1", "u-1", &[], &[("location", "exact")], "support", None, night));
    assert!(run.raised("off_hours").iter().any(|alert| alert.severity == Severity::High));
    run.access(read("s-2", "u-2", &[], &[("ip_address", "exact")], "security_incident", Some("INC-1"), night + MINUTE));
    assert!(run.raised("off_hours").iter().all(|alert| alert.actor == "s-1"));
}

#[test]
fn a_dismissal_notice_makes_unexplained_looks_high() {
    let mut run = Run::new();
    let hr = vec![HrFactFacts { at_ms: T0 - DAY, event: HrEventKind::DismissalNotice, country: None, until_ms: None }];
    run.staff(StaffFacts { id: "s-1".to_owned(), shift: None, hr, on_call: Vec::new() });
    run.access(read("s-1", "u-1", &[], &[("email", "exact")], "support", None, T0));
    assert!(run.raised("off_hours").iter().any(|alert| alert.severity == Severity::High && alert.summary.contains("dismissal")));
}

#[test]
fn repeated_looks_without_case_activity_and_location_polling() {
    let mut run = Run::new();
    for n in 0..5 {
        run.access(read("s-1", "u-1", &["activist"], &[("email", "exact")], "partnerships", None, T0 + n * 2 * DAY));
    }
    assert!(run.raised("repeated_targeting").iter().any(|alert| alert.severity == Severity::Medium));
    for n in 0..3 {
        run.access(read("s-2", "u-2", &[], &[("location", "exact")], "support", None, T0 + n * HOUR));
    }
    assert!(run.raised("repeated_targeting").iter().any(|alert| alert.actor == "s-2" && alert.summary.contains("live-location")));
}

#[test]
fn a_curiosity_wave_names_every_member_once_the_threshold_is_crossed() {
    let mut run = Run::new();
    for n in 0..6 {
        run.access(read(&format!("s-{n}"), "u-star", &["vip"], &[("email", "masked")], "support", None, T0 + n * 10 * MINUTE));
    }
    let wave = run.raised("curiosity_burst");
    let named: std::collections::BTreeSet<&str> = wave.iter().map(|alert| alert.actor.as_str()).collect();
    assert_eq!(named.len(), 6, "{wave:#?}");
    assert!(wave.iter().all(|alert| alert.severity == Severity::Medium));
}

#[test]
fn a_changed_retry_after_a_refusal_is_probing() {
    let mut run = Run::new();
    run.access(denied(read("s-1", "u-1", &[], &[("ip_address", "exact")], "internal_investigation", None, T0)));
    run.access(read("s-1", "u-1", &[], &[("ip_address", "prefix")], "support", None, T0 + 5 * MINUTE));
    assert!(run.raised("denied_retry").iter().any(|alert| alert.severity == Severity::Medium && alert.evidence.len() == 2));
}

#[test]
fn break_glass_not_reviewed_in_time_is_raised_when_the_window_closes() {
    let mut run = Run::new();
    let mut glass = read("s-sre", "u-1", &[], &[("ip_address", "exact")], "security_incident", None, T0);
    glass.break_glass = true;
    run.access(glass);
    assert!(run.raised("break_glass_review").iter().all(|alert| alert.severity == Severity::Info));
    run.access(read("s-2", "u-2", &[], &[("email", "masked")], "support", None, T0 + 25 * HOUR));
    assert!(run.raised("break_glass_review").iter().any(|alert| alert.severity == Severity::High && alert.actor == "s-sre"));
    // Reviewed in time: nothing more.
    let mut reviewed = Run::new();
    let mut glass = read("s-sre", "u-1", &[], &[("ip_address", "exact")], "security_incident", None, T0);
    glass.break_glass = true;
    let request = glass.request.clone();
    reviewed.access(glass);
    reviewed.observe(Entry::Approval(Box::new(approval("s-po", "s-sre", &request, T0 + HOUR))));
    reviewed.access(read("s-2", "u-2", &[], &[("email", "masked")], "support", None, T0 + 25 * HOUR));
    assert!(reviewed.raised("break_glass_review").iter().all(|alert| alert.severity == Severity::Info));
}

fn approval(approver: &str, requester: &str, request: &str, at_ms: i64) -> ApprovalEntry {
    ApprovalEntry {
        v: 1,
        kind: "approval".to_owned(),
        request: request.to_owned(),
        at_ms,
        approver: ActorSnapshot {
            id: approver.to_owned(),
            kind: "staff".to_owned(),
            roles: vec!["privacy_officer".to_owned()],
            team: String::new(),
            entity: String::new(),
            country: "US".to_owned(),
            region: "us".to_owned(),
            from_country: "US".to_owned(),
        },
        requester: requester.to_owned(),
        subjects: vec!["u-1".to_owned()],
        decision: "approve".to_owned(),
        satisfies: vec!["independent".to_owned()],
        note: String::new(),
        reasons: Vec::new(),
    }
}

#[test]
fn fast_approvals_in_a_row_are_rubber_stamping() {
    let mut run = Run::new();
    for n in 0..5 {
        let mut asked = read("s-1", &format!("u-{n}"), &[], &[("ip_address", "exact")], "fraud", None, T0 + n * MINUTE);
        asked.decision = "pending".to_owned();
        let request = asked.request.clone();
        run.access(asked);
        run.observe(Entry::Approval(Box::new(approval("s-po", "s-1", &request, T0 + n * MINUTE + 5_000))));
    }
    let stamps = run.raised("rubber_stamp");
    assert_eq!(stamps.len(), 1, "{stamps:#?}");
    assert_eq!(stamps[0].actor, "s-po");
}

#[test]
fn account_control_and_exports_outside_what_the_case_allows() {
    let mut run = Run::new();
    run.case("T-1", "account_recovery", &["s-1"], &["u-1", "u-2"], Some("u-1"));
    let mut control = read("s-1", "u-2", &[], &[], "account_recovery", Some("T-1"), T0);
    control.action = "account_control".to_owned();
    control.control = Some("change_email".to_owned());
    run.access(control);
    assert!(run.raised("account_control").iter().any(|alert| alert.severity == Severity::High));
    let mut export = read("s-1", "u-1", &[], &[("email", "exact")], "account_recovery", Some("T-1"), T0 + MINUTE);
    export.action = "export".to_owned();
    export.destination = Some("personal_drive".to_owned());
    run.access(export);
    assert!(run.raised("export_destination").iter().any(|alert| alert.summary.contains("personal_drive")));
}

#[test]
fn a_restored_detector_raises_exactly_what_an_uninterrupted_one_does() {
    let history: Vec<AccessEntry> = (0..40)
        .map(|n| read(&format!("s-{}", n % 4), &format!("u-{}", n % 7), if n % 5 == 0 { &["journalist"] } else { &[] }, &[("ip_address", "exact")], "support", None, T0 + n * 7 * MINUTE))
        .collect();
    let mut whole = Run::new();
    for entry in &history {
        whole.access(entry.clone());
    }
    let mut first = Run::new();
    for entry in &history[..17] {
        first.access(entry.clone());
    }
    let saved = first.detector.save();
    let mut second = Run::new();
    second.detector.restore(&saved).expect("restores");
    second.next_index = first.next_index;
    for entry in &history[17..] {
        second.access(entry.clone());
    }
    let resumed: Vec<Alert> = first.alerts.into_iter().chain(second.alerts).collect();
    assert!(!whole.alerts.is_empty());
    assert_eq!(resumed, whole.alerts);
    assert!(second.detector.restore(b"{not json").is_err());
}

#[test]
fn disabled_rules_raise_nothing_and_alert_ids_are_stable() {
    let mut config = DetectionConfig::default();
    config.unexplained_access.enabled = false;
    let mut detector = Detector::new(&config);
    assert!(!detector.rule_names().contains(&"unexplained_access"));
    let entry = Entry::Access(Box::new(read("s-1", "u-1", &[], &[("phone", "exact")], "support", None, T0)));
    let alerts = detector.observe("us", 3, &entry, &FactTable::default());
    assert!(alerts.iter().all(|alert| alert.rule != "unexplained_access"));
    let mut again = Run::new();
    let first = again.detector.observe("us", 3, &entry, &FactTable::default());
    let mut other = Run::new();
    let second = other.detector.observe("us", 3, &entry, &FactTable::default());
    assert_eq!(first, second);
    assert!(first.iter().all(|alert| alert.id.len() == 32));
    let _ = again.worst();
}
