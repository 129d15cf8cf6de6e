//! The default policy set against the rules of the access issue: the table files in
//! `policies/tests`, the leak hunt spelled out in Rust, loading errors operators will meet,
//! and properties every decision keeps.

use std::fs;
use std::path::{Path, PathBuf};

use model::{FieldKind, View};
use policy::{
    AccessQuery, Action, Actor, ActorKind, ApprovalKind, Approvals, CaseFacts, Outcome,
    PolicyEngine, PolicyError, SubjectFacts, run_policy_tests,
};
use proptest::prelude::*;

/// The most policies one request may meet (Cedar costs about 1.1 µs each).
const SLICE_POLICIES_MAX: usize = 20;

const PURPOSES: [&str; 11] = [
    "support",
    "account_recovery",
    "trust_safety",
    "fraud",
    "legal_request",
    "emergency_request",
    "security_incident",
    "data_subject_request",
    "internal_investigation",
    "analytics",
    "app_function",
];

fn policies_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../policies")
}

fn engine() -> PolicyEngine {
    PolicyEngine::default_set().expect("the default policy set loads")
}

fn staff(id: &str, roles: &[&str], entity: &str, country: &str, region: &str) -> Actor {
    Actor {
        id: id.to_owned(),
        kind: ActorKind::Staff,
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        team: String::new(),
        entity: entity.to_owned(),
        country: country.to_owned(),
        region: region.to_owned(),
    }
}

fn subject(id: &str, region: &str, labels: &[&str]) -> SubjectFacts {
    SubjectFacts {
        id: id.to_owned(),
        region: region.to_owned(),
        labels: labels.iter().map(|label| (*label).to_owned()).collect(),
    }
}

fn case(id: &str, purpose: &str, assignees: &[&str], subjects: &[&str]) -> CaseFacts {
    CaseFacts {
        id: id.to_owned(),
        purpose: purpose.to_owned(),
        open: true,
        assignees: assignees.iter().map(|id| (*id).to_owned()).collect(),
        subjects: subjects.iter().map(|id| (*id).to_owned()).collect(),
        requested_by: None,
        legal_process_validated: false,
        destinations: Vec::new(),
    }
}

fn read<'a>(
    actor: &'a Actor,
    case: &'a CaseFacts,
    subject: &'a SubjectFacts,
    field: FieldKind,
    view: View,
) -> AccessQuery<'a> {
    AccessQuery {
        actor,
        action: Action::Read,
        purpose: &case.purpose,
        case: Some(case),
        subject,
        field: Some((field, view)),
        destination: None,
        break_glass: false,
        cross_border: actor.region != subject.region,
        approvals: Approvals::default(),
    }
}

#[test]
fn table_files_pass() {
    let report = run_policy_tests(&engine(), &policies_dir().join("tests")).expect("tests run");
    let failures: Vec<String> = report.failures.iter().map(ToString::to_string).collect();
    assert!(failures.is_empty(), "failures:\n{}", failures.join("\n"));
    assert!(
        report.passed >= 40,
        "only {} table tests ran",
        report.passed
    );
}

#[test]
fn wrong_expectation_is_reported_with_its_case() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let original = fs::read_to_string(policies_dir().join("tests/purposes.json")).expect("read");
    let needle =
        r#""expect": { "decision": "allow", "view": "masked", "policies": ["support-read"] }"#;
    assert!(
        original.contains(needle),
        "purposes.json changed: update this test"
    );
    let wrong = original.replacen(
        needle,
        r#""expect": { "decision": "allow", "view": "exact" }"#,
        1,
    );
    fs::write(directory.path().join("wrong.json"), wrong).expect("write");

    let report = run_policy_tests(&engine(), directory.path()).expect("tests run");
    assert_eq!(report.failures.len(), 1, "{:?}", report.failures);
    let failure = &report.failures[0];
    assert_eq!(failure.file, "wrong.json");
    assert_eq!(failure.case, "support: email masked");
    assert_eq!(failure.expected, "allow at exact");
    assert!(
        failure.got.starts_with("allow at masked"),
        "{}",
        failure.got
    );
    assert!(failure.to_string().contains("support: email masked"));
}

#[test]
fn malformed_test_file_is_an_error_naming_it() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let text = r#"{ "tests": [ { "name": "x", "actor": "nobody", "subject": "s", "purpose": "support",
        "expect": { "decision": "deny" } } ] }"#;
    fs::write(directory.path().join("broken.json"), text).expect("write");
    let error = run_policy_tests(&engine(), directory.path()).expect_err("unknown actor");
    let message = error.to_string();
    assert!(
        message.contains("broken.json") && message.contains("nobody"),
        "{message}"
    );
}

#[test]
fn leak_hunt_on_a_journalist_is_denied_not_pending() {
    let engine = engine();
    let auditor = staff("auditor-cn", &["internal_audit"], "parentco-cn", "CN", "cn");
    let journalist = subject("journalist-us", "us", &["journalist"]);
    let employee = subject("employee-us", "us", &["staff"]);
    let hunt = case(
        "leak-hunt",
        "internal_investigation",
        &["auditor-cn"],
        &["journalist-us", "employee-us"],
    );

    let decision = engine.decide(&read(
        &auditor,
        &hunt,
        &journalist,
        FieldKind::IpAddress,
        View::Exact,
    ));
    assert_eq!(decision.outcome, Outcome::Deny);
    assert!(
        decision
            .policies
            .contains(&"internal-investigation-staff-only".to_owned())
    );
    assert!(
        decision
            .reasons
            .iter()
            .any(|reason| reason.contains("only target subjects labelled staff"))
    );

    let pending = engine.decide(&read(
        &auditor,
        &hunt,
        &employee,
        FieldKind::IpAddress,
        View::Exact,
    ));
    assert_eq!(
        pending.outcome,
        Outcome::Pending {
            needs: vec![ApprovalKind::Custodian],
            view: Some(View::PREFIX_24),
        }
    );
    assert!(
        pending
            .policies
            .contains(&"cross-border-needs-custodian".to_owned())
    );

    for approvals in [
        Approvals {
            independent: false,
            custodian: true,
        },
        Approvals {
            independent: true,
            custodian: true,
        },
    ] {
        let mut query = read(
            &auditor,
            &hunt,
            &employee,
            FieldKind::IpAddress,
            View::Exact,
        );
        query.approvals = approvals;
        let approved = engine.decide(&query);
        assert_eq!(
            approved.outcome,
            Outcome::Allow {
                view: Some(View::PREFIX_24)
            },
            "{approvals:?}"
        );
    }
}

#[test]
fn journalist_own_ticket_is_ordinary_support() {
    let engine = engine();
    let agent = staff("ana", &["support_agent"], "platform-us", "US", "us");
    let journalist = subject("j", "us", &["journalist"]);
    let mut ticket = case("t", "support", &["ana"], &["j"]);
    ticket.requested_by = Some("j".to_owned());

    let masked = engine.decide(&read(
        &agent,
        &ticket,
        &journalist,
        FieldKind::Email,
        View::Masked,
    ));
    assert_eq!(
        masked.outcome,
        Outcome::Allow {
            view: Some(View::Masked)
        }
    );
    assert_eq!(masked.policies, vec!["support-read".to_owned()]);
    assert!(masked.reasons.is_empty(), "{:?}", masked.reasons);

    let exact = engine.decide(&read(
        &agent,
        &ticket,
        &journalist,
        FieldKind::Email,
        View::Exact,
    ));
    assert_eq!(
        exact.outcome,
        Outcome::Allow {
            view: Some(View::Masked)
        }
    );
    assert_eq!(
        exact.reasons,
        vec!["coarsened: email exact → masked (highest view for purpose support)".to_owned()]
    );

    // The same request on a ticket someone else opened waits for a second person.
    ticket.requested_by = None;
    let other = engine.decide(&read(
        &agent,
        &ticket,
        &journalist,
        FieldKind::Email,
        View::Masked,
    ));
    assert_eq!(
        other.outcome,
        Outcome::Pending {
            needs: vec![ApprovalKind::Independent],
            view: Some(View::Masked),
        }
    );
}

#[test]
fn view_off_the_ladder_is_denied_with_a_reason() {
    let engine = engine();
    let agent = staff("ana", &["support_agent"], "platform-us", "US", "us");
    let user = subject("u", "us", &[]);
    let ticket = case("t", "support", &["ana"], &["u"]);
    let decision = engine.decide(&read(
        &agent,
        &ticket,
        &user,
        FieldKind::IpAddress,
        View::Masked,
    ));
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(
        decision.reasons,
        vec!["view masked does not apply to ip_address".to_owned()]
    );
}

#[test]
fn unknown_purpose_meets_only_the_common_rules_and_is_denied() {
    let engine = engine();
    let agent = staff("ana", &["support_agent"], "platform-us", "US", "us");
    let user = subject("u", "us", &[]);
    let ticket = case("t", "curiosity", &["ana"], &["u"]);
    let decision = engine.decide(&read(
        &agent,
        &ticket,
        &user,
        FieldKind::Email,
        View::Domain,
    ));
    assert_eq!(decision.outcome, Outcome::Deny);
    assert_eq!(
        decision.reasons,
        vec!["no policy permits email at domain for purpose curiosity".to_owned()]
    );
}

#[test]
fn every_request_meets_few_policies() {
    let engine = engine();
    for kind in ActorKind::ALL {
        for action in Action::ALL {
            for purpose in PURPOSES.iter().copied().chain(["unknown"]) {
                let count = engine.slice_len(kind, action, purpose);
                assert!(
                    count <= SLICE_POLICIES_MAX,
                    "{kind:?}/{action}/{purpose}: {count} policies"
                );
            }
        }
    }
    assert!(engine.slice_len(ActorKind::Staff, Action::Read, "support") >= 10);
}

#[test]
fn a_policy_scoped_to_one_kind_of_actor_is_not_met_by_the_other() {
    let engine = engine();
    let ids = |kind| engine.slice_ids(kind, Action::Read, "app_function");
    // `principal is Custos::Machine`: machines only.
    assert!(ids(ActorKind::Machine).contains(&"machine-app-function-only".to_owned()));
    assert!(!ids(ActorKind::Staff).contains(&"machine-app-function-only".to_owned()));
    // `principal is Custos::Staff`: staff only.
    assert!(ids(ActorKind::Staff).contains(&"case-required".to_owned()));
    assert!(!ids(ActorKind::Machine).contains(&"case-required".to_owned()));
    // An unscoped principal: both.
    for kind in ActorKind::ALL {
        assert!(ids(kind).contains(&"case-purpose-matches".to_owned()), "{kind:?}");
    }
}

#[test]
fn an_ordinary_read_meets_neither_the_break_glass_nor_the_cross_border_rules() {
    let engine = engine();
    let agent = staff("ana", &["support_agent"], "platform-us", "US", "us");
    let user = subject("u-1", "us", &[]);
    let ticket = case("T-1", "support", &["ana"], &["u-1"]);
    let ordinary = read(&agent, &ticket, &user, FieldKind::Email, View::Masked);
    let met = engine.met_by(&ordinary);
    // `case-required` is for requests without a case.
    for skipped in ["break-glass-read", "break-glass-roles-only", "cross-border-needs-custodian", "exact-ip-location-stay-in-region", "case-required"] {
        assert!(!met.contains(&skipped.to_owned()), "{skipped} met: {met:?}");
    }
    for kept in ["case-open", "case-assignee", "protected-label-needs-independent-approval", "support-read"] {
        assert!(met.contains(&kept.to_owned()), "{kept} not met: {met:?}");
    }
    assert!(met.len() < engine.slice_len(ActorKind::Staff, Action::Read, "support"));

    // Break-glass without a case meets the break-glass rules and not the case's.
    let sre = staff("sam", &["sre"], "platform-us", "US", "us");
    let emergency = AccessQuery { actor: &sre, purpose: "security_incident", case: None, break_glass: true, ..ordinary };
    let met = engine.met_by(&emergency);
    assert!(met.contains(&"break-glass-read".to_owned()), "{met:?}");
    assert!(!met.contains(&"case-required".to_owned()), "{met:?}");
    assert_eq!(engine.decide(&emergency).outcome, Outcome::Allow { view: Some(View::Masked) });

    // Cross-border meets the custodian's rule.
    let abroad = staff("ana", &["support_agent"], "parentco-cn", "CN", "cn");
    let met = engine.met_by(&read(&abroad, &ticket, &user, FieldKind::Email, View::Masked));
    assert!(met.contains(&"cross-border-needs-custodian".to_owned()), "{met:?}");
}

#[test]
fn built_in_set_is_the_policies_folder() {
    let built_in = engine().policy_ids();
    let folder = PolicyEngine::load_dir(&policies_dir())
        .expect("folder loads")
        .policy_ids();
    let mut built_in_sorted = built_in.clone();
    built_in_sorted.sort();
    let mut folder_sorted = folder;
    folder_sorted.sort();
    assert_eq!(
        built_in_sorted, folder_sorted,
        "add new policy files to DEFAULT_SOURCES"
    );
    let schema = fs::read_to_string(policies_dir().join("custos.cedarschema")).expect("schema");
    assert_eq!(schema, PolicyEngine::schema_text());
}

fn load_one(name: &str, text: &str) -> Result<PolicyEngine, PolicyError> {
    let directory = tempfile::tempdir().expect("temporary directory");
    let path = directory.path().join(name);
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(&path, text).expect("write");
    fs::write(
        directory.path().join("fine.cedar"),
        "@id(\"fine\")\npermit (principal, action, resource) when { context.field == \"name\" };\n",
    )
    .expect("write");
    PolicyEngine::load_dir(directory.path())
}

#[test]
fn syntax_error_names_file_and_line() {
    let text = "// first line\n@id(\"broken\")\npermit (principal, action, resource)\nwhen { context.field == };\n";
    let error = load_one("purposes/broken.cedar", text).expect_err("syntax error");
    match &error {
        PolicyError::Syntax { at, .. } => {
            assert_eq!(at.file, "purposes/broken.cedar");
            assert_eq!(at.line, Some(4));
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    assert!(
        error
            .to_string()
            .starts_with("purposes/broken.cedar:4: syntax error"),
        "{error}"
    );
}

#[test]
fn schema_type_error_names_file_line_and_policy() {
    let text = "@id(\"typo\")\n@reason(\"r\")\nforbid (principal, action, resource)\nwhen {\n  resource.labels.contains(3)\n};\n";
    let error = load_one("typo.cedar", text).expect_err("type error");
    match &error {
        PolicyError::Schema { at, id, .. } => {
            assert_eq!(at.file, "typo.cedar");
            assert_eq!(at.line, Some(5));
            assert_eq!(id, "typo");
        }
        other => panic!("expected a schema error, got {other:?}"),
    }
    let unknown_attribute = "@id(\"attr\")\npermit (principal, action, resource) when { resource.nickname == \"x\" };\n";
    let error = load_one("attr.cedar", unknown_attribute).expect_err("unknown attribute");
    assert!(
        matches!(&error, PolicyError::Schema { at, .. } if at.file == "attr.cedar"),
        "{error}"
    );
}

#[test]
fn annotation_mistakes_are_errors() {
    let cases = [
        ("permit (principal, action, resource);", "has no @id"),
        (
            "@id(\"Bad_Id\") permit (principal, action, resource);",
            "kebab-case",
        ),
        (
            "@id(\"no-reason\") forbid (principal, action, resource);",
            "@reason",
        ),
        (
            "@id(\"odd\") @reason(\"r\") @approval(\"manager\") forbid (principal, action, resource);",
            "independent",
        ),
        (
            "@id(\"fine\") permit (principal, action, resource);",
            "used twice",
        ),
        (
            "@id(\"p\") @purpose(\"two purposes\") permit (principal, action, resource);",
            "@purpose",
        ),
    ];
    for (text, expected) in cases {
        let error = load_one("mistake.cedar", text).expect_err(text);
        let message = error.to_string();
        assert!(
            message.contains(expected) && message.contains(".cedar"),
            "{text}: {message}"
        );
    }
}

#[test]
fn empty_directory_is_an_error() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let error = PolicyEngine::load_dir(directory.path()).expect_err("empty");
    assert!(matches!(error, PolicyError::Empty { .. }), "{error}");
}

#[test]
fn operator_permit_cannot_override_a_forbid() {
    // An operator adds an over-broad analytics permit; the analytics forbid still holds.
    let mut sources: Vec<(String, String)> = Vec::new();
    for entry in [
        "actions",
        "break_glass",
        "case",
        "cross_border",
        "machine",
        "protected",
    ] {
        let name = format!("{entry}.cedar");
        let text = fs::read_to_string(policies_dir().join(&name)).expect("read");
        sources.push((name, text));
    }
    let analytics =
        fs::read_to_string(policies_dir().join("purposes/analytics.cedar")).expect("read");
    sources.push(("purposes/analytics.cedar".to_owned(), analytics));
    sources.push((
        "site/analytics-everything.cedar".to_owned(),
        "@id(\"site-analytics-everything\")\n@purpose(\"analytics\")\npermit (principal, action, resource);\n"
            .to_owned(),
    ));
    let engine = PolicyEngine::from_sources(&sources).expect("extended set loads");
    let scientist = staff("dana", &["data_scientist"], "platform-us", "US", "us");
    let user = subject("u", "us", &[]);
    let study = case("study", "analytics", &["dana"], &["u"]);

    let decision = engine.decide(&read(
        &scientist,
        &study,
        &user,
        FieldKind::Phone,
        View::Exact,
    ));
    assert_eq!(
        decision.outcome,
        Outcome::Allow {
            view: Some(View::CountryCode)
        }
    );
    assert!(
        decision
            .policies
            .contains(&"analytics-no-direct-identifiers".to_owned())
    );
    assert!(
        decision
            .policies
            .contains(&"site-analytics-everything".to_owned())
    );

    let name = engine.decide(&read(
        &scientist,
        &study,
        &user,
        FieldKind::Name,
        View::Exact,
    ));
    assert_eq!(
        name.outcome,
        Outcome::Allow {
            view: Some(View::Exists)
        }
    );
}

#[test]
fn account_control_answers_without_a_view() {
    let engine = engine();
    let agent = staff("t2", &["support_tier2"], "platform-us", "US", "us");
    let user = subject("u", "us", &[]);
    let mut recovery = case("r", "account_recovery", &["t2"], &["u"]);
    recovery.requested_by = Some("u".to_owned());
    let mut query = read(&agent, &recovery, &user, FieldKind::Email, View::Exact);
    query.action = Action::AccountControl;
    query.field = None;
    assert_eq!(engine.decide(&query).outcome, Outcome::Allow { view: None });
    query.cross_border = true;
    assert_eq!(
        engine.decide(&query).outcome,
        Outcome::Pending {
            needs: vec![ApprovalKind::Custodian],
            view: None
        }
    );
}

fn field_and_view() -> impl Strategy<Value = (FieldKind, View)> {
    proptest::sample::select(FieldKind::ALL.to_vec()).prop_flat_map(|kind| {
        proptest::sample::select(model::ladder(kind)).prop_map(move |view| (kind, view))
    })
}

fn labels() -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(
        vec![
            "journalist",
            "journalist_contact",
            "public_official",
            "minor",
            "staff",
            "vip",
        ],
        0..3,
    )
    .prop_map(|labels| labels.into_iter().map(str::to_owned).collect())
}

fn roles() -> impl Strategy<Value = Vec<String>> {
    proptest::sample::subsequence(
        vec![
            "support_agent",
            "support_tier2",
            "trust_safety_analyst",
            "fraud_analyst",
            "legal_officer",
            "privacy_officer",
            "internal_audit",
            "data_scientist",
            "sre",
        ],
        1..3,
    )
    .prop_map(|roles| roles.into_iter().map(str::to_owned).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Granted views are never finer than asked; more approvals never make an answer worse;
    /// an exact IP address or location never crosses a border.
    #[test]
    fn decisions_keep_their_promises(
        (field, asked) in field_and_view(),
        purpose in proptest::sample::select(PURPOSES.to_vec()),
        roles in roles(),
        labels in labels(),
        cross_border in any::<bool>(),
        requested_by_subject in any::<bool>(),
        break_glass in any::<bool>(),
        validated in any::<bool>(),
    ) {
        let engine = engine_once();
        let mut actor = staff("a", &[], "platform-us", "US", "us");
        actor.roles = roles;
        let subject = SubjectFacts { id: "s".to_owned(), region: "us".to_owned(), labels };
        let mut case = case("c", purpose, &["a"], &["s"]);
        case.legal_process_validated = validated;
        if requested_by_subject {
            case.requested_by = Some("s".to_owned());
        }
        let mut query = read(&actor, &case, &subject, field, asked);
        query.cross_border = cross_border;
        query.break_glass = break_glass;

        let without = engine.decide(&query);
        query.approvals = Approvals::ALL;
        let with = engine.decide(&query);
        for decision in [&without, &with] {
            if let Some(view) = decision.outcome.view() {
                prop_assert!(view.at_most(asked, field), "{view} finer than {asked}");
                if cross_border && matches!(field, FieldKind::IpAddress | FieldKind::Location) {
                    prop_assert_ne!(view, View::Exact);
                }
            }
            prop_assert!(!decision.policies.is_empty() || !decision.reasons.is_empty());
        }
        let with_pending = matches!(with.outcome, Outcome::Pending { .. });
        prop_assert!(!with_pending, "pending with every approval granted");
        match &without.outcome {
            Outcome::Allow { view } => prop_assert_eq!(&with.outcome, &Outcome::Allow { view: *view }),
            Outcome::Pending { view, .. } => prop_assert_eq!(&with.outcome, &Outcome::Allow { view: *view }),
            Outcome::Deny => prop_assert_eq!(&with.outcome, &Outcome::Deny),
        }
    }
}

fn engine_once() -> &'static PolicyEngine {
    static ENGINE: std::sync::OnceLock<PolicyEngine> = std::sync::OnceLock::new();
    ENGINE.get_or_init(engine)
}

/// Every policy file matters to the table tests: dropping any one of them makes some test
/// fail, so no rule is left untested.
#[test]
fn dropping_any_policy_file_fails_a_table_test() {
    let directory = policies_dir();
    let mut files = Vec::new();
    for sub in ["", "purposes"] {
        for entry in fs::read_dir(directory.join(sub)).expect("read policies") {
            let path = entry.expect("entry").path();
            if path
                .extension()
                .is_some_and(|extension| extension == "cedar")
            {
                let name = if sub.is_empty() {
                    path.file_name()
                        .expect("name")
                        .to_string_lossy()
                        .into_owned()
                } else {
                    format!(
                        "{sub}/{}",
                        path.file_name().expect("name").to_string_lossy()
                    )
                };
                files.push((name, fs::read_to_string(&path).expect("read")));
            }
        }
    }
    assert!(files.len() >= 15, "found {} policy files", files.len());
    for dropped in 0..files.len() {
        let sources: Vec<(String, String)> = files
            .iter()
            .enumerate()
            .filter(|(at, _)| *at != dropped)
            .map(|(_, source)| source.clone())
            .collect();
        let engine = PolicyEngine::from_sources(&sources).expect("still loads");
        let report = run_policy_tests(&engine, &directory.join("tests")).expect("tests run");
        assert!(
            !report.failures.is_empty(),
            "no table test notices {} missing",
            files[dropped].0
        );
    }
}
