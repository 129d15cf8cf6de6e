//! `custos scenario run FILE…`: replays a whole situation (shared/scenario-format.md) through
//! the same service code `custos serve` runs — a fresh temporary deployment with embedded
//! storage and generated keys, the default policy set, a simulated clock — and prints what
//! custos decided as JSON Lines, ending with a summary whose `log_verified` comes from
//! auditing each region's log from its signed checkpoint and tiles.
//!
//! Exit status: 0 when every file replayed, 2 with a message naming the file, line and field
//! when one is malformed (nothing of that file is replayed then: the whole file is parsed
//! before the first line runs). Files are read twice, once to check every line and once to
//! replay it, so a file of millions of lines is never held in memory.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use model::RegionId;
use serde::Deserialize;
use serde_json::json;
use detect::{Alert, DetectionConfig, Severity};
use service::{
    AccessAnswer, Detection, AccessInput, ApprovalInput, Caller, CallerKind, Clock as _, CaseInput, CaseUpdate, Gate, GeoConfig, HrInput,
    InitOptions, KeysConfig, ManualClock, ServiceError, StaffInput, StorageConfig, SubjectInput,
};

/// Longest scenario line accepted, in bytes.
pub const SCENARIO_LINE_BYTES_MAX: usize = 1 << 20;
/// Most lines one scenario file may hold: a generated million accesses is about 2.2 million
/// lines; ten million accesses, the generator's limit, about 22 million.
pub const SCENARIO_LINES_MAX: usize = 50_000_000;
/// Where the replay clock starts when the first line carries no `at`.
const REPLAY_EPOCH: &str = "2026-01-01T00:00:00Z";

#[derive(Debug, Clone, clap::Subcommand)]
pub enum ScenarioCommand {
    /// Replay scenario files and print decisions and a summary as JSON Lines.
    Run(RunArgs),
    /// Write background traffic: ordinary, explained work by a platform's staff.
    Generate(crate::generate::GenerateArgs),
    /// Hide scenarios in background traffic: their ids prefixed, their lines merged by time.
    Mix(crate::mix::MixArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Scenario files (JSON Lines).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// IP → country database (MaxMind DB) for `country` views; defaults to the demo's.
    #[arg(long)]
    pub geo_mmdb: Option<PathBuf>,
    /// Keep the replay deployment in this directory (created; it must not exist yet), to
    /// serve it, run `custos detect` over it or audit its logs afterwards. Only one file
    /// can be replayed into a kept deployment.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Which lines to print: every line, or only alerts and the summary.
    #[arg(long, value_enum, default_value_t = Print::All)]
    pub print: Print,
}

/// The lines `custos scenario run` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Print {
    /// Decisions, approval outcomes, alerts and the summary.
    All,
    /// Alerts and the summary.
    Alerts,
}

/// One input line, after `op` and `at` were taken out of it.
#[derive(Debug, Clone)]
enum Line {
    Staff(StaffInput),
    Subject(SubjectInput),
    Case(CaseInput),
    CaseUpdate { id: String, update: CaseUpdate },
    Hr { staff: String, fact: HrInput },
    OnCall(OnCallLine),
    Access(AccessLine),
    Approve(ApproveLine),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct OnCallLine {
    staff: String,
    until: DateTime<Utc>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApproveLine {
    access: String,
    approver: String,
    decision: String,
    #[serde(default)]
    note: String,
}

/// An access line: the access request of the HTTP API (`service::AccessInput`, whose `id`
/// the scenario requires) and the staff member asking.
#[derive(Debug, Clone)]
struct AccessLine {
    actor: String,
    input: AccessInput,
}


/// A checked file: where its lines come from, and the regions it names. Its lines are parsed
/// again as they are replayed ([`Scenario::lines`]).
pub struct Scenario {
    path: PathBuf,
    source: Source,
    regions: BTreeSet<RegionId>,
    first_at: Option<DateTime<Utc>>,
}

enum Source {
    Text(String),
    File,
}

/// One line to replay: its number in the file, its `at`, and what it says.
type Numbered = (usize, Option<DateTime<Utc>>, Line);

/// A malformed file: where and what.
#[derive(Debug, thiserror::Error)]
#[error("{path}:{line}: {message}")]
pub struct ScenarioError {
    path: String,
    line: usize,
    message: String,
}

pub async fn run(command: ScenarioCommand) -> anyhow::Result<ExitCode> {
    let args = match command {
        ScenarioCommand::Run(args) => args,
        ScenarioCommand::Generate(args) => {
            tokio::task::spawn_blocking(move || crate::generate::run(&args)).await??;
            return Ok(ExitCode::SUCCESS);
        }
        ScenarioCommand::Mix(args) => {
            tokio::task::spawn_blocking(move || crate::mix::run(&args)).await??;
            return Ok(ExitCode::SUCCESS);
        }
    };
    if args.data.is_some() && args.files.len() > 1 {
        eprintln!("error: --data keeps one replay deployment; name one scenario file, not {}", args.files.len());
        return Ok(ExitCode::from(2));
    }
    if let Some(data) = &args.data
        && data.exists()
    {
        eprintln!("error: --data {}: already exists; a kept replay deployment is created anew", data.display());
        return Ok(ExitCode::from(2));
    }
    let mut scenarios = Vec::with_capacity(args.files.len());
    for path in &args.files {
        match parse(path) {
            Ok(scenario) => scenarios.push(scenario),
            Err(error) => {
                eprintln!("error: {error}");
                return Ok(ExitCode::from(2));
            }
        }
    }
    let geo = args.geo_mmdb.clone().or_else(crate::demo::default_mmdb);
    let stdout = std::io::stdout();
    for scenario in scenarios {
        let mut out = stdout.lock();
        match replay(&scenario, geo.as_deref(), args.data.as_deref(), args.print, &mut out).await {
            Ok(()) => {}
            Err(Failure::Input(error)) => {
                eprintln!("error: {error}");
                return Ok(ExitCode::from(2));
            }
            Err(Failure::Other(error)) => return Err(error),
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse(path: &Path) -> Result<Scenario, ScenarioError> {
    let mut scenario = Scenario { path: path.to_owned(), source: Source::File, regions: BTreeSet::new(), first_at: None };
    scenario.check()?;
    Ok(scenario)
}

/// Checks a whole scenario held in memory; nothing runs until every line parsed.
pub fn parse_text(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let mut scenario = Scenario { path: path.to_owned(), source: Source::Text(text.to_owned()), regions: BTreeSet::new(), first_at: None };
    scenario.check()?;
    Ok(scenario)
}

impl Scenario {
    /// Parses every line, keeping only the regions named and the first `at`.
    fn check(&mut self) -> Result<(), ScenarioError> {
        let mut regions = BTreeSet::new();
        let mut first_at = None;
        for item in self.lines()? {
            let (number, at, line) = item?;
            first_at = first_at.or(at);
            let region = match &line {
                Line::Staff(staff) => staff.region.as_deref(),
                Line::Subject(subject) => Some(subject.region.as_str()),
                _ => None,
            };
            if let Some(region) = region {
                regions.insert(RegionId::new(region).map_err(|error| self.failed(number, format!("field region: {error}")))?);
            }
        }
        if regions.is_empty() {
            return Err(self.failed(0, "the scenario names no region (no subject and no staff with a region)".to_owned()));
        }
        self.regions = regions;
        self.first_at = first_at;
        Ok(())
    }

    /// The lines to replay, parsed one at a time (comments and blank lines skipped).
    fn lines(&self) -> Result<Box<dyn Iterator<Item = Result<Numbered, ScenarioError>> + '_>, ScenarioError> {
        let mut reader: Box<dyn std::io::BufRead + '_> = match &self.source {
            Source::Text(text) => Box::new(text.as_bytes()),
            Source::File => {
                let file = std::fs::File::open(&self.path).map_err(|error| self.failed(0, error.to_string()))?;
                Box::new(std::io::BufReader::with_capacity(1 << 16, file))
            }
        };
        let mut number = 0;
        let mut buffer = Vec::new();
        Ok(Box::new(std::iter::from_fn(move || {
            loop {
                number += 1;
                let raw = match read_line(&mut reader, &mut buffer) {
                    Ok(Some(raw)) => raw,
                    Ok(None) => return None,
                    Err(message) => return Some(Err(self.failed(number, message))),
                };
                if number > SCENARIO_LINES_MAX {
                    return Some(Err(self.failed(number, format!("more than {SCENARIO_LINES_MAX} lines"))));
                }
                let trimmed = raw.trim();
                if trimmed.is_empty() || trimmed.starts_with('#') {
                    continue;
                }
                return Some(match parse_line(trimmed) {
                    Ok((at, line)) => Ok((number, at, line)),
                    Err(message) => Err(self.failed(number, message)),
                });
            }
        })))
    }

    fn failed(&self, line: usize, message: String) -> ScenarioError {
        ScenarioError { path: self.path.display().to_string(), line, message }
    }
}

/// Reads the next line of a scenario file into `buffer` and returns it without its newline;
/// `None` at the end. A line longer than [`SCENARIO_LINE_BYTES_MAX`] is refused before it is
/// all read, so one bad line cannot fill memory; the message says what is wrong with it.
pub(crate) fn read_line<'b>(reader: &mut impl std::io::BufRead, buffer: &'b mut Vec<u8>) -> Result<Option<&'b str>, String> {
    buffer.clear();
    let read = std::io::BufRead::read_until(&mut std::io::Read::take(&mut *reader, SCENARIO_LINE_BYTES_MAX as u64 + 1), b'\n', buffer).map_err(|error| error.to_string())?;
    if read == 0 {
        return Ok(None);
    }
    if buffer.last() == Some(&b'\n') {
        buffer.pop();
    } else if buffer.len() > SCENARIO_LINE_BYTES_MAX {
        return Err(format!("line is over {SCENARIO_LINE_BYTES_MAX} bytes"));
    }
    std::str::from_utf8(buffer).map(Some).map_err(|_| "line is not UTF-8".to_owned())
}

/// Splits `op` and `at` off a line and decodes the rest strictly for that op: unknown ops
/// and unknown members are errors.
fn parse_line(text: &str) -> Result<(Option<DateTime<Utc>>, Line), String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|error| format!("not a JSON object: {error}"))?;
    let serde_json::Value::Object(mut object) = value else { return Err("not a JSON object".to_owned()) };
    let op = match object.remove("op") {
        Some(serde_json::Value::String(op)) => op,
        Some(_) => return Err("field op: must be a string".to_owned()),
        None => return Err("field op: missing".to_owned()),
    };
    let at = match object.remove("at") {
        None => None,
        Some(serde_json::Value::String(at)) => Some(
            DateTime::parse_from_rfc3339(&at).map_err(|error| format!("field at: {at:?} is not an RFC 3339 time: {error}"))?.to_utc(),
        ),
        Some(_) => return Err("field at: must be an RFC 3339 string".to_owned()),
    };
    let mut take = |name: &str| -> Result<String, String> {
        match object.remove(name) {
            Some(serde_json::Value::String(value)) => Ok(value),
            Some(_) => Err(format!("field {name}: must be a string")),
            None => Err(format!("field {name}: missing")),
        }
    };
    let line = match op.as_str() {
        "case_update" => {
            let id = take("id")?;
            Line::CaseUpdate { id, update: decode(&op, object)? }
        }
        "hr" => {
            let staff = take("staff")?;
            Line::Hr { staff, fact: decode(&op, object)? }
        }
        "staff" => Line::Staff(decode(&op, object)?),
        "subject" => Line::Subject(decode(&op, object)?),
        "case" => Line::Case(decode(&op, object)?),
        "on_call" => Line::OnCall(decode(&op, object)?),
        "access" => {
            let actor = take("actor")?;
            let input: AccessInput = decode(&op, object)?;
            if input.id.is_none() {
                return Err("field id: missing".to_owned());
            }
            Line::Access(AccessLine { actor, input })
        }
        "approve" => Line::Approve(decode(&op, object)?),
        other => return Err(format!("field op: unknown op {other:?} (staff, subject, case, case_update, hr, on_call, access, approve)")),
    };
    Ok((at, line))
}

fn decode<T: serde::de::DeserializeOwned>(op: &str, object: serde_json::Map<String, serde_json::Value>) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|error| format!("op {op}: {error}"))
}

pub enum Failure {
    Input(ScenarioError),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(error: anyhow::Error) -> Self {
        Failure::Other(error)
    }
}

/// What a replay decided: every access id, the latest decision of each, and the alerts
/// raised by severity.
#[derive(Default)]
pub struct Tally {
    accesses: BTreeSet<String>,
    latest: HashMap<String, String>,
    alerts: BTreeMap<Severity, u64>,
}

/// Runs every line of `scenario` through `gate`, handing each output line (decisions,
/// approval outcomes, and the alerts `detection` raises on the entries each line logged) to
/// `on`. With a `clock`, each line's `at` moves it; without one (the demo, on the wall
/// clock) `at` is ignored.
pub async fn replay_into(
    gate: &Gate,
    clock: Option<&ManualClock>,
    scenario: &Scenario,
    detection: &mut Detection,
    on: &mut dyn FnMut(&serde_json::Value),
) -> Result<Tally, Failure> {
    let mut tally = Tally::default();
    for item in scenario.lines().map_err(Failure::Input)? {
        let (number, at, line) = item.map_err(Failure::Input)?;
        let (at, line) = (&at, &line);
        let failed = |message: String| Failure::Input(scenario.failed(number, message));
        if let (Some(at), Some(clock)) = (at, clock)
            && !clock.advance_to(*at)
        {
            return Err(failed(format!("field at: {at} is before the replay clock ({})", clock.now())));
        }
        let now = gate.vault().clock().now();
        let input_error = |error: ServiceError| match error {
            ServiceError::Invalid(_) | ServiceError::InvalidRequest { .. } | ServiceError::NotFound(_) | ServiceError::AlreadyExists(_) => {
                failed(error.to_string())
            }
            other => Failure::Other(anyhow::Error::new(other)),
        };
        match line {
            Line::Staff(staff) => gate.put_staff(staff).await.map_err(input_error)?,
            Line::Subject(subject) => {
                let validated = service::validate_subject(subject).map_err(|rejections| {
                    failed(rejections.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))
                })?;
                gate.vault().ingest(vec![validated]).await.map_err(input_error)?;
            }
            Line::Case(case) => {
                gate.register_case(case).await.map_err(input_error)?;
            }
            Line::CaseUpdate { id, update } => {
                gate.update_case(id, update).await.map_err(input_error)?;
            }
            Line::Hr { staff, fact } => gate.add_hr_fact(staff, fact).await.map_err(input_error)?,
            Line::OnCall(OnCallLine { staff, until }) => gate.add_on_call(staff, *until).await.map_err(input_error)?,
            Line::Access(AccessLine { actor, input: access }) => {
                let id = access.id.as_ref().expect("checked when parsed");
                let caller = staff_caller(gate, actor).await.map_err(input_error)?;
                let answer = gate.access(&caller, access).await.map_err(input_error)?;
                on(&decision_line(id, &answer));
                tally.accesses.insert(id.clone());
                tally.latest.insert(id.clone(), answer.decision.clone());
            }
            Line::Approve(ApproveLine { access, approver, decision, note }) => {
                let caller = staff_caller(gate, approver).await.map_err(input_error)?;
                let input = ApprovalInput { decision: decision.clone(), note: note.clone() };
                match gate.approve(&caller, access, &input).await {
                    Ok(view) if view.status == "approved" => {
                        let record = gate.directory().access_request(access).await.map_err(|error| input_error(error.into()))?;
                        let requester = record.map(|record| record.actor).unwrap_or_default();
                        let requester = staff_caller(gate, &requester).await.map_err(input_error)?;
                        let answer = gate.open_request(&requester, access).await.map_err(input_error)?;
                        on(&decision_line(access, &answer));
                        tally.latest.insert(access.clone(), answer.decision.clone());
                    }
                    Ok(view) => {
                        if view.status == "rejected" {
                            tally.latest.insert(access.clone(), "deny".to_owned());
                        }
                        on(&json!({"kind": "approval", "access": access, "at": now, "approver": approver,
                            "outcome": decision, "status": view.status, "needs": view.needs}));
                    }
                    Err(error @ (ServiceError::ApprovalRefused { .. } | ServiceError::AlreadyDecided { .. } | ServiceError::ApprovalExpired { .. } | ServiceError::NotFound(_))) => {
                        on(&json!({"kind": "approval", "access": access, "at": now, "approver": approver,
                            "outcome": "refused", "reason": error.to_string()}));
                    }
                    Err(error) => return Err(input_error(error)),
                }
            }
        }
        if matches!(line, Line::Access(_) | Line::Approve(_)) {
            for alert in detection.catch_up(gate).await.context("running the detector")? {
                *tally.alerts.entry(alert.severity).or_default() += 1;
                on(&alert_line(&alert));
            }
        }
    }
    Ok(tally)
}

/// The alert line of the contract: `accesses` are the access ids of the evidence, in order.
/// Extra members: the alert's `id` and its evidence as log positions.
pub fn alert_line(alert: &Alert) -> serde_json::Value {
    let mut accesses: Vec<&str> = Vec::new();
    for evidence in &alert.evidence {
        if !evidence.request.is_empty() && !accesses.contains(&evidence.request.as_str()) {
            accesses.push(&evidence.request);
        }
    }
    let at = DateTime::<Utc>::from_timestamp_millis(alert.at_ms);
    json!({
        "kind": "alert",
        "at": at,
        "rule": alert.rule,
        "severity": alert.severity,
        "actor": alert.actor,
        "subjects": alert.subjects,
        "accesses": accesses,
        "summary": alert.summary,
        "id": alert.id,
        "evidence": alert.evidence.iter().map(|evidence| json!({"region": evidence.region, "index": evidence.index})).collect::<Vec<_>>(),
    })
}

async fn replay(scenario: &Scenario, geo: Option<&Path>, keep: Option<&Path>, print: Print, out: &mut impl std::io::Write) -> Result<(), Failure> {
    let directory = tempfile::tempdir().context("creating the replay deployment")?;
    let data = match keep {
        Some(keep) => keep.to_owned(),
        None => directory.path().join("data"),
    };
    let geo = geo.map(|path| std::fs::canonicalize(path).map(|mmdb| GeoConfig { mmdb })).transpose().context("geo database")?;
    service::init_data_dir(
        &data,
        InitOptions {
            regions: scenario.regions.iter().cloned().collect(),
            storage: StorageConfig::Sqlite,
            keys: KeysConfig::Keyring,
            geo,
            dev_issuer: false,
        },
    )
    .context("creating the replay deployment")?;
    let start = scenario.first_at.unwrap_or_else(|| REPLAY_EPOCH.parse().expect("the replay epoch parses"));
    let clock = Arc::new(ManualClock::new(start));
    let (_config, gate) = service::open_gate(&data, clock.clone()).await.context("opening the replay deployment")?;
    let mut emitted: Result<(), Failure> = Ok(());
    let mut detection = Detection::new(&DetectionConfig::default());
    let tally = replay_into(&gate, Some(&clock), scenario, &mut detection, &mut |line| {
        if emitted.is_ok() && (print == Print::All || line["kind"] == "alert") {
            emitted = emit(out, line);
        }
    })
    .await?;
    emitted?;
    let (log_size, log_verified) = audit_logs(&gate, &data).await?;
    let count = |decision: &str| tally.latest.values().filter(|latest| latest.as_str() == decision).count();
    emit(
        out,
        &json!({
            "kind": "summary",
            "accesses": tally.accesses.len(),
            "allowed": count("allow"),
            "denied": count("deny"),
            "pending": count("pending"),
            "alerts": Severity::ALL.iter().map(|severity| (severity.as_str(), tally.alerts.get(severity).copied().unwrap_or(0))).collect::<BTreeMap<_, _>>(),
            "log_size": log_size,
            "log_verified": log_verified,
        }),
    )?;
    Ok(())
}

/// The decision line of the contract; `fields` maps each granted field to its view. Extra
/// members: `denied` and `pending` fields, and per-subject detail when several were named.
fn decision_line(access: &str, answer: &AccessAnswer) -> serde_json::Value {
    let mut fields = BTreeMap::new();
    let mut denied = BTreeSet::new();
    let mut pending = BTreeMap::new();
    let mut reasons = Vec::new();
    let mut policies = BTreeSet::new();
    for subject in &answer.subjects {
        for field in &subject.fields {
            match (field.decision.as_str(), &field.view) {
                ("allow", Some(view)) => {
                    fields.entry(field.field.clone()).or_insert_with(|| view.clone());
                }
                ("pending", view) => {
                    pending.insert(field.field.clone(), view.clone());
                }
                _ => {
                    denied.insert(field.field.clone());
                }
            }
        }
        for reason in &subject.reasons {
            if !reasons.contains(reason) {
                reasons.push(reason.clone());
            }
        }
        policies.extend(subject.policies.iter().cloned());
    }
    let mut line = json!({
        "kind": "decision",
        "access": access,
        "at": answer.at,
        "decision": answer.decision,
        "fields": fields,
        "reasons": reasons,
        "policies": policies,
        "log_index": answer.subjects.first().map(|subject| subject.receipt.index),
    });
    if !denied.is_empty() {
        line["denied"] = json!(denied);
    }
    if !pending.is_empty() {
        line["pending"] = json!(pending);
        line["needs"] = json!(answer.needs);
    }
    if answer.subjects.len() > 1 {
        line["subjects"] = json!(answer
            .subjects
            .iter()
            .map(|subject| json!({"subject": subject.subject, "region": subject.region, "decision": subject.decision,
                "log_index": subject.receipt.index}))
            .collect::<Vec<_>>());
    }
    line
}

async fn staff_caller(gate: &Gate, id: &str) -> Result<Caller, ServiceError> {
    let caller = Caller { id: id.to_owned(), kind: CallerKind::Staff, roles: Vec::new(), team: None, entity: None, country: None, region: None };
    gate.caller(caller).await
}

fn emit(out: &mut impl std::io::Write, value: &serde_json::Value) -> Result<(), Failure> {
    writeln!(out, "{value}").context("writing to stdout")?;
    Ok(())
}

/// Signs each region's log and audits it from its checkpoint and tiles (entries included)
/// as an outside verifier would; returns the total size and whether every region verified.
async fn audit_logs(gate: &Gate, data: &Path) -> Result<(u64, bool), Failure> {
    let mut size = 0;
    let mut verified = true;
    let regions: Vec<RegionId> = gate.vault().regions().cloned().collect();
    for region in regions {
        gate.vault().sign_checkpoint_now(&region).await.context("signing the replay log")?;
        let key = service::log_verifier_key(data, &region).context("reading the replay log key")?;
        let resources = crate::log_commands::snapshot_log(gate.vault().log(&region).context("replay log")?).await.context("reading the replay log")?;
        match tokio::task::spawn_blocking(move || crate::log_commands::verify_snapshot(&resources, &key)).await.context("verifier task")? {
            Ok(region_size) => size += region_size,
            Err(error) => {
                eprintln!("log of region {region} failed verification: {error:#}");
                verified = false;
            }
        }
    }
    Ok((size, verified))
}

/// A one-line description of each access of a scenario (`s-cn-1 asks ip_address exact of
/// u-j1 for internal_investigation on LEAK-7`), by access id, for people reading a replay.
pub fn describe_accesses(scenario: &Scenario) -> HashMap<String, String> {
    let Ok(lines) = scenario.lines() else { return HashMap::new() };
    lines
        .filter_map(|item| match item {
            Ok((_, _, Line::Access(AccessLine { actor, input }))) => {
                let fields: Vec<String> = input.fields.iter().map(|(field, view)| format!("{field} {view}")).collect();
                let case = input.case.as_deref().map(|case| format!(" on {case}")).unwrap_or_else(|| " with no case".to_owned());
                Some((
                    input.id.clone().unwrap_or_default(),
                    format!("{actor} asks {} of {} for {}{case}", fields.join(", "), input.subjects.join(", "), input.purpose),
                ))
            }
            _ => None,
        })
        .collect()
}
