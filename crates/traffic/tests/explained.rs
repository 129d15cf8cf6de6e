//! Generated traffic, read back as a replay would read it and checked line by line: every
//! access is explained — an open case it is assigned to, subjects in scope, the case's
//! purpose — the default policy set grants exactly the views asked (or, for the few that wait,
//! the approval that follows makes it so), the time is inside the actor's shift or on-call
//! week, the actor works in the subject's region unless a custodian approved, no one re-reads
//! a subject over and over, and each person's daily volume is steady.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use model::{FieldKind, View};
use policy::{AccessQuery, Action, ActorKind, Approvals, CaseFacts, Outcome, PolicyEngine, SubjectFacts};
use serde_json::Value;
use traffic::{TrafficParams, generate};

struct Staff {
    actor: policy::Actor,
    time_zone: Tz,
    shift_minutes: (u32, u32),
    new_hire: bool,
}

struct Case {
    facts: CaseFacts,
}

/// An access that waits for its approval.
struct Waiting {
    actor: String,
    line: Value,
}

#[derive(Default)]
struct Report {
    accesses: u64,
    approved: u64,
    cross_border: u64,
    problems: Vec<String>,
    per_actor_day: BTreeMap<(String, NaiveDate), u32>,
    reads_per_case_subject: HashMap<(String, String, String), u32>,
}

impl Report {
    fn problem(&mut self, line: usize, message: String) {
        self.problems.push(format!("line {line}: {message}"));
    }
}

fn time_of(value: &Value) -> i64 {
    DateTime::parse_from_rfc3339(value.as_str().expect("times are strings")).expect("RFC 3339 times").timestamp()
}

fn strings(value: &Value) -> Vec<String> {
    value.as_array().map(|items| items.iter().map(|item| item.as_str().expect("strings").to_owned()).collect()).unwrap_or_default()
}

fn minutes(text: &str) -> u32 {
    let (hours, minutes) = text.split_once(':').expect("HH:MM");
    hours.parse::<u32>().unwrap() * 60 + minutes.parse::<u32>().unwrap()
}

fn on_shift(staff: &Staff, at: i64) -> bool {
    let local = DateTime::<Utc>::from_timestamp(at, 0).unwrap().with_timezone(&staff.time_zone);
    let minute = local.hour() * 60 + local.minute();
    !matches!(local.weekday(), Weekday::Sat | Weekday::Sun) && minute >= staff.shift_minutes.0 && minute < staff.shift_minutes.1
}

/// Decides every (subject, field) of an access line; `Ok(needs_approval)` when each is
/// allowed at exactly the view asked (or, with `approvals`, would be), `Err` otherwise.
fn decide(
    engine: &PolicyEngine,
    staff: &Staff,
    line: &Value,
    subjects: &[SubjectFacts],
    case: &CaseFacts,
    approvals: Approvals,
) -> Result<bool, String> {
    let action = match line["action"].as_str().unwrap() {
        "read" => Action::Read,
        "search" => Action::Search,
        "export" => Action::Export,
        "account_control" => Action::AccountControl,
        other => return Err(format!("unknown action {other}")),
    };
    let mut fields: Vec<Option<(FieldKind, View)>> = Vec::new();
    if let Some(asked) = line["fields"].as_object() {
        for (field, view) in asked {
            let kind = FieldKind::from_str(field).map_err(|error| error.to_string())?;
            let view = View::from_str(view.as_str().unwrap()).map_err(|error| error.to_string())?;
            if !view.applies_to(kind) {
                return Err(format!("view {view} does not apply to {field}"));
            }
            fields.push(Some((kind, view)));
        }
    }
    if action == Action::AccountControl {
        fields.push(None);
    }
    let mut pending = false;
    for subject in subjects {
        for field in &fields {
            let decision = engine.decide(&AccessQuery {
                actor: &staff.actor,
                action,
                purpose: line["purpose"].as_str().unwrap(),
                case: Some(case),
                subject,
                field: *field,
                destination: line["destination"].as_str(),
                break_glass: false,
                cross_border: staff.actor.region != subject.region,
                approvals,
            });
            let asked = field.map(|(_, view)| view);
            match &decision.outcome {
                Outcome::Allow { view } if *view == asked => {}
                Outcome::Pending { view, .. } if *view == asked => pending = true,
                other => {
                    return Err(format!(
                        "{} of {}: {other:?} by {:?} {:?}",
                        field.map(|(kind, _)| kind.as_str()).unwrap_or("control"),
                        subject.id,
                        decision.policies,
                        decision.reasons
                    ));
                }
            }
        }
    }
    Ok(pending)
}

fn check(text: &str) -> Report {
    let engine = PolicyEngine::default_set().expect("the default policy set loads");
    let mut report = Report::default();
    let mut staff: HashMap<String, Staff> = HashMap::new();
    let mut subjects: HashMap<String, SubjectFacts> = HashMap::new();
    let mut emails: HashMap<String, String> = HashMap::new();
    let mut cases: HashMap<String, Case> = HashMap::new();
    let mut on_call: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
    let mut access_ids: BTreeSet<String> = BTreeSet::new();
    let mut waiting: HashMap<String, Waiting> = HashMap::new();
    let mut last_at = i64::MIN;
    for (index, raw) in text.lines().enumerate() {
        let number = index + 1;
        if raw.trim().is_empty() || raw.starts_with('#') {
            continue;
        }
        let line: Value = serde_json::from_str(raw).unwrap_or_else(|error| panic!("line {number} is not JSON: {error}"));
        let at = line.get("at").map(time_of);
        if let Some(at) = at {
            assert!(at >= last_at, "line {number}: time goes backwards");
            last_at = at;
        }
        match line["op"].as_str().unwrap_or_default() {
            "staff" => {
                let id = line["id"].as_str().unwrap().to_owned();
                let shift = &line["shift"];
                staff.insert(
                    id.clone(),
                    Staff {
                        actor: policy::Actor {
                            id,
                            kind: ActorKind::Staff,
                            roles: strings(&line["roles"]),
                            team: line["team"].as_str().unwrap().to_owned(),
                            entity: line["entity"].as_str().unwrap().to_owned(),
                            country: line["country"].as_str().unwrap().to_owned(),
                            region: line["region"].as_str().unwrap().to_owned(),
                        },
                        time_zone: shift["tz"].as_str().unwrap().parse().unwrap(),
                        shift_minutes: (minutes(shift["start"].as_str().unwrap()), minutes(shift["end"].as_str().unwrap())),
                        new_hire: at.is_some(),
                    },
                );
            }
            "subject" => {
                let id = line["id"].as_str().unwrap().to_owned();
                if let Some(email) = line["values"]["email"][0].as_str() {
                    assert!(emails.insert(email.to_owned(), id.clone()).is_none(), "line {number}: email {email} twice");
                }
                subjects.insert(
                    id.clone(),
                    SubjectFacts { id, region: line["region"].as_str().unwrap().to_owned(), labels: strings(&line["labels"]) },
                );
            }
            "case" => {
                let id = line["id"].as_str().unwrap().to_owned();
                let facts = CaseFacts {
                    id: id.clone(),
                    purpose: line["purpose"].as_str().unwrap().to_owned(),
                    open: true,
                    assignees: strings(&line["assignees"]),
                    subjects: strings(&line["subjects"]),
                    requested_by: line["requested_by"].as_str().map(str::to_owned),
                    legal_process_validated: line["legal_process"]["validated"].as_bool().unwrap_or(false),
                    destinations: strings(&line["destinations"]),
                };
                if let Some(validator) = line["legal_process"]["validated_by"].as_str()
                    && !staff.get(validator).is_some_and(|member| member.actor.roles.iter().any(|role| role == "legal_officer"))
                {
                    report.problem(number, format!("legal process validated by {validator}, not a legal officer"));
                }
                assert!(cases.insert(id.clone(), Case { facts }).is_none(), "line {number}: case {id} twice");
            }
            "case_update" => {
                let case =
                    cases.get_mut(line["id"].as_str().unwrap()).unwrap_or_else(|| panic!("line {number}: update of an unknown case"));
                case.facts.assignees.extend(strings(&line["add_assignees"]));
                case.facts.subjects.extend(strings(&line["add_subjects"]));
                if line["status"] == "closed" {
                    case.facts.open = false;
                }
            }
            "hr" => {
                assert_eq!(line["event"], "new_hire", "line {number}");
                assert!(staff.contains_key(line["staff"].as_str().unwrap()), "line {number}: hr fact before the staff line");
            }
            "on_call" => {
                let until = time_of(&line["until"]);
                on_call.entry(line["staff"].as_str().unwrap().to_owned()).or_default().push((at.unwrap(), until));
            }
            "access" => {
                report.accesses += 1;
                let at = at.expect("accesses carry their time");
                let id = line["id"].as_str().unwrap().to_owned();
                assert!(access_ids.insert(id.clone()), "line {number}: access id {id} twice");
                let actor_id = line["actor"].as_str().unwrap().to_owned();
                let Some(actor) = staff.get(&actor_id) else {
                    report.problem(number, format!("unknown actor {actor_id}"));
                    continue;
                };
                let Some(case) = cases.get(line["case"].as_str().unwrap_or_default()) else {
                    report.problem(number, "no such case".to_owned());
                    continue;
                };
                let named: Vec<String> = match line["query"]["email"].as_str() {
                    Some(email) => emails.get(email).cloned().into_iter().collect(),
                    None => strings(&line["subjects"]),
                };
                let mut facts = Vec::new();
                for subject in &named {
                    match subjects.get(subject) {
                        Some(subject) => facts.push(subject.clone()),
                        None => report.problem(number, format!("unknown subject {subject}")),
                    }
                    if !case.facts.subjects.contains(subject) {
                        report.problem(number, format!("{subject} is not in the scope of {}", case.facts.id));
                    }
                    if line["action"] == "read" {
                        *report.reads_per_case_subject.entry((actor_id.clone(), subject.clone(), case.facts.id.clone())).or_default() += 1;
                    }
                }
                if facts.is_empty() {
                    report.problem(number, "the access names no subject".to_owned());
                }
                if !case.facts.open || !case.facts.assignees.contains(&actor_id) || case.facts.purpose != line["purpose"].as_str().unwrap()
                {
                    report.problem(number, format!("{actor_id} on {} is not explained by the case", case.facts.id));
                }
                let covered = on_shift(actor, at)
                    || on_call.get(&actor_id).is_some_and(|periods| periods.iter().any(|(from, until)| (*from..*until).contains(&at)));
                if !covered {
                    report.problem(number, format!("{actor_id} works off shift at {}", line["at"]));
                }
                if facts.iter().any(|subject| subject.region != actor.actor.region) {
                    report.cross_border += 1;
                }
                let local = DateTime::<Utc>::from_timestamp(at, 0).unwrap().with_timezone(&actor.time_zone).date_naive();
                if !actor.new_hire {
                    *report.per_actor_day.entry((actor_id.clone(), local)).or_default() += 1;
                }
                match decide(&engine, actor, &line, &facts, &case.facts, Approvals::default()) {
                    Ok(false) => {}
                    Ok(true) => {
                        waiting.insert(id, Waiting { actor: actor_id, line });
                    }
                    Err(message) => report.problem(number, format!("not allowed as asked: {message}")),
                }
            }
            "approve" => {
                let at = at.expect("approvals carry their time");
                let access = line["access"].as_str().unwrap();
                let Some(request) = waiting.remove(access) else {
                    report.problem(number, format!("approval of {access}, which waits for none"));
                    continue;
                };
                let approver_id = line["approver"].as_str().unwrap();
                let approver = &staff[approver_id];
                let requester = &staff[&request.actor];
                if approver_id == request.actor || !approver.actor.roles.iter().any(|role| role == "privacy_officer") {
                    report.problem(number, format!("{approver_id} cannot approve {access}"));
                }
                if !on_shift(approver, at) || !on_shift(requester, at) {
                    report.problem(number, format!("approval of {access} outside the shift of {approver_id} or {}", request.actor));
                }
                let case = &cases[request.line["case"].as_str().unwrap()];
                let named: Vec<SubjectFacts> = strings(&request.line["subjects"]).iter().map(|subject| subjects[subject].clone()).collect();
                let approvals =
                    Approvals { independent: true, custodian: named.iter().all(|subject| subject.region == approver.actor.region) };
                if let Err(message) = decide(&engine, requester, &request.line, &named, &case.facts, approvals) {
                    report.problem(number, format!("approved {access} still not allowed: {message}"));
                }
                report.approved += 1;
            }
            other => panic!("line {number}: unknown op {other:?}"),
        }
    }
    for access in waiting.keys() {
        report.problems.push(format!("{access} waits for an approval that never comes"));
    }
    report
}

fn traffic(params: &TrafficParams) -> (String, traffic::TrafficStats) {
    let mut bytes = Vec::new();
    let stats = generate(params, &mut bytes).expect("traffic generates");
    (String::from_utf8(bytes).expect("UTF-8"), stats)
}

fn assert_explained(params: &TrafficParams) -> Report {
    let (text, stats) = traffic(params);
    let report = check(&text);
    assert!(
        report.problems.is_empty(),
        "{} problems, first: {:#?}",
        report.problems.len(),
        &report.problems[..report.problems.len().min(20)]
    );
    assert_eq!(report.accesses, params.accesses);
    assert_eq!(stats.accesses, params.accesses);
    assert_eq!(report.approved, stats.approvals);
    // Cross-border work happens only with the custodian's approval.
    assert!(report.cross_border <= report.approved, "{} cross-border, {} approved", report.cross_border, report.approved);
    let most_reads = report.reads_per_case_subject.values().copied().max().unwrap_or(0);
    assert!(most_reads <= 8, "someone read one subject {most_reads} times on one case");
    report
}

/// Each person's volume on their working days stays near their own mean.
fn assert_steady(report: &Report) {
    let mut per_actor: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for ((actor, _), count) in &report.per_actor_day {
        per_actor.entry(actor).or_default().push(*count);
    }
    for (actor, counts) in per_actor {
        if counts.len() < 3 {
            continue;
        }
        let mean = f64::from(counts.iter().sum::<u32>()) / counts.len() as f64;
        for count in &counts {
            let count = f64::from(*count);
            assert!(count <= mean * 1.35 + 2.0 && count >= mean * 0.65 - 2.0, "{actor}: {counts:?}");
        }
    }
}

#[test]
fn small_platform_traffic_is_explained() {
    let report = assert_explained(&TrafficParams::new(7, 60, 2_000, 5_000));
    assert_steady(&report);
}

#[test]
fn one_region_traffic_is_explained() {
    let params = TrafficParams { days: Some(10), ..TrafficParams::new(11, 12, 300, 1_500) };
    let report = assert_explained(&params);
    assert_eq!(report.cross_border, 0, "one region leaves no border to cross");
    assert_steady(&report);
}

#[test]
fn four_regions_with_hires_over_weeks_are_explained() {
    let params = TrafficParams { start: NaiveDate::from_ymd_opt(2026, 3, 19).unwrap(), ..TrafficParams::new(3, 120, 20_000, 40_000) };
    let (_, stats) = traffic(&params);
    assert_eq!(stats.regions, ["us", "eu", "sg", "br"]);
    assert!(stats.days >= 14, "{} days", stats.days);
    assert!(stats.new_hires >= 1 && stats.approvals >= 1 && stats.cross_border_accesses >= 1, "{stats:?}");
    // Across the daylight-saving changes of both continents (8 and 29 March 2026).
    let report = assert_explained(&params);
    assert_steady(&report);
}
