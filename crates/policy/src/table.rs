//! Table-driven policy tests: the format `custos policy test DIR` runs.
//!
//! A test file is JSON: named actors, subjects and cases, then a list of tests, each one
//! request and the decision expected. docs/policy.md describes the format.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::path::Path;

use model::{FieldKind, View};
use serde::Deserialize;

use crate::error::PolicyError;
use crate::source::read_text;
use crate::{
    AccessQuery, Action, Actor, ActorKind, ApprovalKind, Approvals, CaseFacts, Decision,
    PolicyEngine, SubjectFacts,
};

/// Largest test file read, in bytes.
pub const TEST_FILE_BYTES_MAX: u64 = 4 * 1024 * 1024;
/// Most tests in one file.
pub const TEST_CASES_MAX: usize = 10_000;
/// Most test files in one directory.
const TEST_FILES_MAX: usize = 1000;

/// The outcome of running a test directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestReport {
    pub passed: usize,
    pub failures: Vec<TestFailure>,
}

/// One test whose decision was not the one expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestFailure {
    /// The test file, as named in the directory.
    pub file: String,
    /// The test's `name`.
    pub case: String,
    pub expected: String,
    pub got: String,
}

impl fmt::Display for TestFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: expected {}, got {}",
            self.file, self.case, self.expected, self.got
        )
    }
}

/// Runs every `*.json` test file directly in `dir` (sorted by name) against `engine`.
/// A malformed file is an error; a wrong decision is a failure in the report.
pub fn run_policy_tests(engine: &PolicyEngine, dir: &Path) -> Result<TestReport, PolicyError> {
    let directory_error = |message: String| PolicyError::Directory {
        path: dir.display().to_string(),
        message,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|error| directory_error(error.to_string()))? {
        let entry = entry.map_err(|error| directory_error(error.to_string()))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".json") && !name.starts_with('.') {
            if files.len() == TEST_FILES_MAX {
                return Err(directory_error(format!(
                    "more than {TEST_FILES_MAX} test files"
                )));
            }
            files.push((name, entry.path()));
        }
    }
    if files.is_empty() {
        return Err(directory_error("no test files (*.json)".to_owned()));
    }
    files.sort();
    let mut report = TestReport {
        passed: 0,
        failures: Vec::new(),
    };
    for (name, path) in files {
        let text = read_text(&path, &name, TEST_FILE_BYTES_MAX)?;
        run_file(engine, &name, &text, &mut report)?;
    }
    Ok(report)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    #[serde(default)]
    #[expect(dead_code, reason = "read by people, not by the runner")]
    description: String,
    #[serde(default)]
    actors: BTreeMap<String, ActorSpec>,
    #[serde(default)]
    subjects: BTreeMap<String, SubjectSpec>,
    #[serde(default)]
    cases: BTreeMap<String, CaseSpec>,
    tests: Vec<TestSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ActorSpec {
    kind: ActorKind,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    team: String,
    #[serde(default)]
    entity: String,
    #[serde(default)]
    country: String,
    #[serde(default)]
    region: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubjectSpec {
    region: String,
    #[serde(default)]
    labels: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseSpec {
    purpose: String,
    #[serde(default = "yes")]
    open: bool,
    #[serde(default)]
    assignees: Vec<String>,
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    requested_by: Option<String>,
    #[serde(default)]
    legal_process_validated: bool,
    #[serde(default)]
    destinations: Vec<String>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestSpec {
    name: String,
    actor: String,
    subject: String,
    #[serde(default)]
    case: Option<String>,
    #[serde(default = "read")]
    action: Action,
    /// Defaults to the case's purpose.
    #[serde(default)]
    purpose: Option<String>,
    #[serde(default)]
    field: Option<FieldKind>,
    #[serde(default)]
    view: Option<View>,
    #[serde(default)]
    destination: Option<String>,
    #[serde(default)]
    break_glass: bool,
    #[serde(default)]
    cross_border: bool,
    #[serde(default)]
    approvals: Approvals,
    expect: Expectation,
}

fn read() -> Action {
    Action::Read
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    decision: ExpectedDecision,
    /// Checked when present: the view granted, or the view an approval would grant.
    #[serde(default)]
    view: Option<View>,
    /// Checked when present, as a set.
    #[serde(default)]
    needs: Option<Vec<ApprovalKind>>,
    /// Checked when present: each id must be among the deciding policies.
    #[serde(default)]
    policies: Vec<String>,
    /// Checked when present: each text must occur in one of the reasons.
    #[serde(default)]
    reasons_include: Vec<String>,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum ExpectedDecision {
    Allow,
    Deny,
    Pending,
}

impl ExpectedDecision {
    fn as_str(self) -> &'static str {
        match self {
            ExpectedDecision::Allow => "allow",
            ExpectedDecision::Deny => "deny",
            ExpectedDecision::Pending => "pending",
        }
    }
}

fn run_file(
    engine: &PolicyEngine,
    file: &str,
    text: &str,
    report: &mut TestReport,
) -> Result<(), PolicyError> {
    let file_error = |message: String| PolicyError::TestFile {
        file: file.to_owned(),
        message,
    };
    let parsed: TestFile =
        serde_json::from_str(text).map_err(|error| file_error(error.to_string()))?;
    if parsed.tests.len() > TEST_CASES_MAX {
        return Err(file_error(format!("more than {TEST_CASES_MAX} tests")));
    }
    let actors: BTreeMap<&str, Actor> = parsed
        .actors
        .iter()
        .map(|(id, spec)| {
            let actor = Actor {
                id: id.clone(),
                kind: spec.kind,
                roles: spec.roles.clone(),
                team: spec.team.clone(),
                entity: spec.entity.clone(),
                country: spec.country.clone(),
                region: spec.region.clone(),
            };
            (id.as_str(), actor)
        })
        .collect();
    let subjects: BTreeMap<&str, SubjectFacts> = parsed
        .subjects
        .iter()
        .map(|(id, spec)| {
            let subject = SubjectFacts {
                id: id.clone(),
                region: spec.region.clone(),
                labels: spec.labels.clone(),
            };
            (id.as_str(), subject)
        })
        .collect();
    let cases: BTreeMap<&str, CaseFacts> = parsed
        .cases
        .iter()
        .map(|(id, spec)| {
            let case = CaseFacts {
                id: id.clone(),
                purpose: spec.purpose.clone(),
                open: spec.open,
                assignees: spec.assignees.clone(),
                subjects: spec.subjects.clone(),
                requested_by: spec.requested_by.clone(),
                legal_process_validated: spec.legal_process_validated,
                destinations: spec.destinations.clone(),
            };
            (id.as_str(), case)
        })
        .collect();

    for test in &parsed.tests {
        let test_error = |message: String| file_error(format!("test {:?}: {message}", test.name));
        let actor = actors
            .get(test.actor.as_str())
            .ok_or_else(|| test_error(format!("unknown actor {:?}", test.actor)))?;
        let subject = subjects
            .get(test.subject.as_str())
            .ok_or_else(|| test_error(format!("unknown subject {:?}", test.subject)))?;
        let case = match &test.case {
            None => None,
            Some(id) => Some(
                cases
                    .get(id.as_str())
                    .ok_or_else(|| test_error(format!("unknown case {id:?}")))?,
            ),
        };
        let purpose = match (&test.purpose, case) {
            (Some(purpose), _) => purpose.as_str(),
            (None, Some(case)) => case.purpose.as_str(),
            (None, None) => {
                return Err(test_error(
                    "a test without a case needs a purpose".to_owned(),
                ));
            }
        };
        let field = match (test.field, test.view) {
            (Some(field), Some(view)) => Some((field, view)),
            (None, None) => None,
            _ => return Err(test_error("field and view go together".to_owned())),
        };
        let query = AccessQuery {
            actor,
            action: test.action,
            purpose,
            case,
            subject,
            field,
            destination: test.destination.as_deref(),
            break_glass: test.break_glass,
            cross_border: test.cross_border,
            approvals: test.approvals,
        };
        let decision = engine.decide(&query);
        match mismatch(&test.expect, &decision) {
            None => report.passed += 1,
            Some(expected) => report.failures.push(TestFailure {
                file: file.to_owned(),
                case: test.name.clone(),
                expected,
                got: describe(&decision),
            }),
        }
    }
    Ok(())
}

/// What was expected, in words, when `decision` does not meet it.
fn mismatch(expect: &Expectation, decision: &Decision) -> Option<String> {
    let mut wrong = decision.outcome.as_str() != expect.decision.as_str();
    if let Some(view) = expect.view {
        wrong |= decision.outcome.view() != Some(view);
    }
    if let Some(needs) = &expect.needs {
        let mut expected = needs.clone();
        expected.sort();
        expected.dedup();
        let got = match &decision.outcome {
            crate::Outcome::Pending { needs, .. } => needs.clone(),
            _ => Vec::new(),
        };
        wrong |= got != expected;
    }
    wrong |= expect
        .policies
        .iter()
        .any(|id| !decision.policies.contains(id));
    wrong |= expect.reasons_include.iter().any(|text| {
        !decision
            .reasons
            .iter()
            .any(|reason| reason.contains(text.as_str()))
    });
    if !wrong {
        return None;
    }
    let mut expected = expect.decision.as_str().to_owned();
    if let Some(view) = expect.view {
        expected.push_str(&format!(" at {view}"));
    }
    if let Some(needs) = &expect.needs {
        expected.push_str(&format!(
            " needing [{}]",
            join(needs.iter().map(|kind| kind.as_str()))
        ));
    }
    if !expect.policies.is_empty() {
        expected.push_str(&format!(" by [{}]", expect.policies.join(", ")));
    }
    if !expect.reasons_include.is_empty() {
        expected.push_str(&format!(
            " with reasons including [{}]",
            expect.reasons_include.join("; ")
        ));
    }
    Some(expected)
}

fn describe(decision: &Decision) -> String {
    let mut text = decision.outcome.as_str().to_owned();
    if let Some(view) = decision.outcome.view() {
        text.push_str(&format!(" at {view}"));
    }
    if let crate::Outcome::Pending { needs, .. } = &decision.outcome {
        text.push_str(&format!(
            " needing [{}]",
            join(needs.iter().map(|kind| kind.as_str()))
        ));
    }
    text.push_str(&format!(" by [{}]", decision.policies.join(", ")));
    if !decision.reasons.is_empty() {
        text.push_str(&format!(" ({})", decision.reasons.join("; ")));
    }
    text
}

fn join<'a>(items: impl Iterator<Item = &'a str>) -> String {
    items.collect::<Vec<_>>().join(", ")
}
