//! `custos demo`: builds a synthetic platform on embedded defaults (SQLite, keyring file) and
//! walks a newcomer through what custos does with it: sealed storage per region, minimized
//! views, residency, erasure by crypto-shredding, then the 2022 leak hunt replayed through
//! the access API beside ordinary support work — what was granted, coarsened, held for
//! approval and refused, and why; then serves the API with a development token issuer.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use model::{FieldKind, RegionId, SubjectId, View};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use service::{GeoConfig, InitOptions, KeysConfig, ServiceError, StorageConfig, SubjectInput, SystemClock, ValueInput};

use crate::import::{self, Format};

/// Where the demo looks for an IP → country database when `--geo-mmdb` is not given.
const DEMO_MMDB_CANDIDATES: [&str; 2] = ["../shared/data/geo-whois-asn-country.mmdb", "shared/data/geo-whois-asn-country.mmdb"];
const DEMO_TOKEN_FILE: &str = "demo-service-token";
/// Reasons printed per decision of the leak hunt; the log entry holds them all.
const DEMO_REASONS_SHOWN: usize = 2;
/// Where the served demo writes its URLs and tokens (JSON, [`DemoUrls`]) once it listens.
pub const DEMO_URLS_FILE: &str = "demo-urls.json";
/// The compliance officer the demo signs into the console as.
const DEMO_OFFICER: &str = "s-compliance-1";
/// How long the demo's officer and journalist tokens last.
const DEMO_TOKEN_LIFETIME: std::time::Duration = std::time::Duration::from_secs(3_600);

/// What the served demo prints at the end, also written to [`DEMO_URLS_FILE`] for scripts
/// and the browser tests.
#[derive(Debug, serde::Serialize)]
struct DemoUrls {
    base: String,
    /// The console's sign-in page.
    console: String,
    officer: String,
    /// A staff token of the demo's compliance officer, from the development issuer.
    officer_token: String,
    journalist: String,
    /// The journalist's own access report as HTML, with a subject token in the query.
    journalist_report: String,
}

/// A staff token for the demo's compliance officer (in the `us` region's compliance team).
fn mint_demo_officer(data: &Path) -> anyhow::Result<String> {
    let issuer = auth::DevIssuer::open(&data.join(service::DEV_ISSUER_DIR_NAME))?;
    let claims = auth::IdentityClaims {
        id: DEMO_OFFICER.to_owned(),
        kind: auth::IdentityKind::Staff,
        roles: vec![server::COMPLIANCE_OFFICER_ROLE.to_owned()],
        team: Some("compliance".to_owned()),
        entity: Some("platform-us".to_owned()),
        country: Some("US".to_owned()),
        region: Some("us".to_owned()),
    };
    Ok(issuer.mint(&claims, chrono::Utc::now(), DEMO_TOKEN_LIFETIME)?)
}

/// Seed of the synthetic population: the demo is the same on every machine.
const DEMO_SEED: u64 = 2022;

/// Where the demo's regions' people are, and what a controller states for the record of
/// processing (`custos report --processing`, the console's "Record of processing"), for the
/// demo's fictional platform. Everything else in the record is read off the deployment and
/// its policies.
const DEMO_CONFIG_TAIL: &str = r#"
[access.region_countries]
us = ["US"]
eu = ["AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"]
sg = ["SG"]

[processing]
controller = "Example Video Platform Inc. (fictional), 1 Example Street, Los Angeles"
contact = "privacy@platform.example"
dpo = "dpo@platform.example"
representative = "Example Video Platform Ireland Ltd (fictional), Dublin"
data_subjects = ["users of the platform", "people who write to support", "the platform's own staff, as users"]

[processing.purposes.support]
description = "Answering a user's support ticket"
legal_basis = "Art. 6(1)(b): performance of the contract"
[processing.purposes.account_recovery]
description = "Giving a user back an account they lost"
legal_basis = "Art. 6(1)(b): performance of the contract"
[processing.purposes.trust_safety]
description = "Enforcing the community guidelines"
legal_basis = "Art. 6(1)(f): legitimate interest in a safe service"
[processing.purposes.fraud]
description = "Detecting and stopping fraud and account takeover"
legal_basis = "Art. 6(1)(f): legitimate interest in preventing fraud"
[processing.purposes.security_incident]
description = "Investigating a security incident"
legal_basis = "Art. 6(1)(f) and Art. 32: security of processing"
[processing.purposes.emergency_request]
description = "Answering an emergency request where a life is at risk"
legal_basis = "Art. 6(1)(d): vital interests"
[processing.purposes.legal_request]
description = "Answering a validated subpoena, warrant or court order"
legal_basis = "Art. 6(1)(c): legal obligation"
[processing.purposes.data_subject_request]
description = "Answering a person's request about their own data (Art. 15-22)"
legal_basis = "Art. 6(1)(c): legal obligation"
[processing.purposes.internal_investigation]
description = "Investigating an employee's misconduct"
legal_basis = "Art. 6(1)(f): legitimate interest, under the employment contract"
[processing.purposes.analytics]
description = "Aggregate product statistics"
legal_basis = "Art. 6(1)(f): legitimate interest in improving the service"
[processing.purposes.app_function]
description = "The platform sending its own emails and messages"
legal_basis = "Art. 6(1)(b): performance of the contract"

[processing.retention]
ip_address = "180 days after collection"
location = "30 days after collection"
email = "while the account exists, then 30 days"
phone = "while the account exists, then 30 days"
device_id = "180 days after last use"
name = "while the account exists, then 30 days"
date_of_birth = "while the account exists, then 30 days"
text = "while the account exists, then 30 days"

[[processing.recipients]]
name = "Mail relay (fictional processor)"
kind = "processor"
country = "US"
purposes = ["app_function"]

[[processing.recipients]]
name = "Law enforcement authorities"
kind = "public authority"
country = "US"
purposes = ["legal_request", "emergency_request"]
"#;

#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Data directory; created with embedded defaults when empty.
    #[arg(long, env = "CUSTOS_DATA", default_value = "demo-data")]
    data: PathBuf,
    /// How many synthetic platform users to create.
    #[arg(long, default_value_t = 5_000)]
    subjects: usize,
    /// Stop after the walkthrough instead of serving the API.
    #[arg(long)]
    no_serve: bool,
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// IP → country database (MaxMind DB format); defaults to $CUSTOS_GEO_DB, then to the one
    /// in ../shared/data.
    #[arg(long)]
    geo_mmdb: Option<PathBuf>,
}

fn region(name: &str) -> RegionId {
    RegionId::new(name).expect("demo region names are valid")
}

fn subject(name: &str) -> SubjectId {
    SubjectId::new(name).expect("demo subject ids are valid")
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    println!("custos demo: a synthetic platform whose staff must go through custos to see personal data\n");
    let token = prepare(&args)?;
    let (config, gate) = service::open_gate(&args.data, Arc::new(SystemClock)).await?;
    let vault = Arc::clone(gate.vault());

    step(1, "ingest a synthetic population, sealed in its home region");
    let population = args.data.join("population.jsonl");
    write_population(&population, args.subjects)?;
    let summary = import::import_file(&vault, &population, Format::Jsonl, true).await?;
    import::print_summary(&summary);
    if !summary.rejected.is_empty() {
        bail!("the synthetic population had rejected lines");
    }

    step(2, "storage holds only ciphertext");
    show_sealed_storage(&args.data)?;

    step(3, "answers are as coarse as the purpose needs");
    show_views(&gate).await?;

    step(4, "residency: a node holds the keys of its own regions only");
    show_residency(&args.data).await?;

    step(5, "erasure destroys the key, and with it every copy");
    show_erasure(&args.data, &vault).await?;

    step(6, "the 2022 leak hunt, replayed through the access API beside ordinary support work");
    show_leak_hunt(&gate).await?;

    step(7, "the record of processing (GDPR Art. 30), read off this deployment's policies");
    show_processing(&config, &gate);

    println!();
    if args.no_serve {
        println!("done (--no-serve). Serve this deployment with: custos serve --data {}", args.data.display());
        return Ok(ExitCode::SUCCESS);
    }
    // The officer who reviews the leak hunt in the console, and the journalist who reads
    // their own report: tokens minted now, valid for the demo's afternoon.
    let officer_token = mint_demo_officer(&args.data)?;
    // A journalist the leak hunt went after (the scenario's u-j1).
    let journalist = subject("u-j1");
    let subject_token = gate
        .subject_tokens()
        .context("the demo deployment has subject token keys")?
        .mint(&journalist, &region("us"), chrono::Utc::now(), DEMO_TOKEN_LIFETIME)?;
    // One process per deployment: the walkthrough's vault lets go before the server opens it.
    drop(vault);
    drop(gate);
    let (ready_sender, ready) = tokio::sync::oneshot::channel();
    let data = args.data.clone();
    let server = tokio::spawn(async move { crate::serve(&data, args.listen, Some(ready_sender)).await });
    let address = match ready.await {
        Ok(address) => address,
        Err(_) => return server.await?.map(|()| ExitCode::FAILURE),
    };
    println!("serving regions {} on http://{address} (Ctrl-C to stop)", crate::join(&config.regions));
    println!("  http://{address}/healthz   http://{address}/metrics   http://{address}/openapi.json");
    println!("  curl -H 'Authorization: Bearer {token}' http://{address}/v1/regions/us/subjects/u-journalist-1");
    println!("ask as a staff member (tokens from the demo's development issuer):");
    println!("  TOKEN=$(custos staff token --data {} --id s-sup-1)", args.data.display());
    println!(
        "  curl -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' http://{address}/v1/access \\\n    -d '{{\"subjects\":[\"u-101\"],\"fields\":{{\"email\":\"exact\"}},\"purpose\":\"support\",\"case\":\"T-5512\"}}'"
    );
    println!("verify each region's log from outside:");
    for region in &config.regions {
        println!("  custos log verify --url http://{address}/log/{region} --key \"$(custos log key --data {} --region {region})\" --state audit-state", args.data.display());
    }
    let urls = DemoUrls {
        base: format!("http://{address}"),
        console: format!("http://{address}/console/login"),
        officer: DEMO_OFFICER.to_owned(),
        officer_token,
        journalist: journalist.to_string(),
        journalist_report: format!("http://{address}/v1/subjects/{journalist}/accesses?format=html&token={subject_token}"),
    };
    println!("\nthe leak hunt, refused and flagged, in the compliance console ({} signs in with the token below):", urls.officer);
    println!("  {}", urls.console);
    println!("  {}", urls.officer_token);
    println!("the journalist's own report of who looked at their data (valid for an hour):");
    println!("  {}", urls.journalist_report);
    let urls_path = args.data.join(DEMO_URLS_FILE);
    let mut file = fs::OpenOptions::new();
    file.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    file.open(&urls_path)?.write_all(serde_json::to_string_pretty(&urls)?.as_bytes())?;
    server.await??;
    Ok(ExitCode::SUCCESS)
}

/// The IP → country database used when none is named: `CUSTOS_GEO_DB`, else the
/// repository's development copy when run from a checkout.
pub fn default_mmdb() -> Option<PathBuf> {
    std::env::var_os("CUSTOS_GEO_DB")
        .map(PathBuf::from)
        .or_else(|| DEMO_MMDB_CANDIDATES.iter().map(PathBuf::from).find(|path| path.exists()))
}

fn step(number: u32, title: &str) {
    println!("\n── {number}. {title}");
}

/// What the record of processing says of the two purposes of the story: the support work
/// and the internal investigation the leak hunt claimed to be.
fn show_processing(config: &service::Config, gate: &service::Gate) {
    // A fraction of a second of policy decisions; nothing else runs meanwhile.
    let record = service::processing_record(config, gate.engine(), chrono::Utc::now());
    let missing = match record.gaps.len() {
        0 => "nothing the controller must state is missing".to_owned(),
        gaps => format!("{gaps} statements missing: {}", record.gaps.join("; ")),
    };
    println!("  {} purposes, {} policies; {missing}", record.purposes.len(), record.policy_set.policies);
    for purpose in record.purposes.iter().filter(|purpose| ["support", "internal_investigation"].contains(&purpose.purpose.as_str())) {
        let reached: Vec<String> = purpose
            .subjects
            .iter()
            .map(|subject| if subject.approvals.is_empty() { subject.category.clone() } else { format!("{} (with {} approval)", subject.category, subject.approvals.join(" + ")) })
            .collect();
        let fields: Vec<String> = purpose.fields.iter().filter(|field| ["ip_address", "email"].contains(&field.field.as_str())).map(|field| format!("{} at {}", field.field, field.view.as_deref().unwrap_or("nothing"))).collect();
        println!("  {}: roles {}; subjects reached: {}; {}", purpose.purpose, purpose.roles.join(", "), reached.join(", "), fields.join(", "));
    }
    println!("  the whole record: custos report --processing, or \"Record of processing\" in the console");
}

/// Initializes the data directory on first use; returns the demo's service token.
fn prepare(args: &DemoArgs) -> anyhow::Result<String> {
    let token_path = args.data.join(DEMO_TOKEN_FILE);
    if args.data.join(service::CONFIG_FILE_NAME).exists() {
        // Every run tells the story from the start, so a directory the demo made is remade.
        if !token_path.exists() {
            bail!("{} holds a deployment the demo did not make; use another --data", args.data.display());
        }
        fs::remove_dir_all(&args.data).with_context(|| format!("failed to reset {}", args.data.display()))?;
    }
    let mmdb = args.geo_mmdb.clone().or_else(default_mmdb);
    match &mmdb {
        Some(path) => println!("IP country lookups: {}", path.display()),
        None => println!("no IP → country database found: the `country` view will answer \"unknown\""),
    }
    let geo = mmdb.map(|path| fs::canonicalize(&path).map(|mmdb| GeoConfig { mmdb })).transpose()?;
    let options = InitOptions {
        regions: vec![region("us"), region("eu"), region("sg")],
        storage: StorageConfig::Sqlite,
        keys: KeysConfig::Keyring,
        geo,
        dev_issuer: true,
    };
    let token = service::init_data_dir(&args.data, options)?;
    let config_path = args.data.join(service::CONFIG_FILE_NAME);
    fs::OpenOptions::new().append(true).open(&config_path)?.write_all(DEMO_CONFIG_TAIL.as_bytes())?;
    service::read_config(&args.data).context("the demo's region countries and record of processing statements")?;
    let mut file = fs::OpenOptions::new();
    file.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut file, 0o600);
    file.open(&token_path)?.write_all(token.as_bytes())?;
    println!("initialized {} (regions us, eu, sg; SQLite; keyring file)", args.data.display());
    Ok(token)
}

/// The people of the story, then a deterministic synthetic crowd.
fn write_population(path: &Path, crowd: usize) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(fs::File::create(path)?);
    for subject in story_subjects() {
        serde_json::to_writer(&mut out, &subject)?;
        out.write_all(b"\n")?;
    }
    let mut rng = StdRng::seed_from_u64(DEMO_SEED);
    for index in 0..crowd {
        serde_json::to_writer(&mut out, &synthetic_subject(&mut rng, index))?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn values(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<ValueInput>> {
    pairs
        .iter()
        .map(|(field, list)| ((*field).to_owned(), list.iter().map(|value| ValueInput::Plain((*value).to_owned())).collect()))
        .collect()
}

fn story_subjects() -> Vec<SubjectInput> {
    let person = |id: &str, labels: &[&str], staff: Option<&str>, pairs: &[(&str, &[&str])]| SubjectInput {
        id: id.to_owned(),
        region: "us".to_owned(),
        labels: labels.iter().map(|label| (*label).to_owned()).collect(),
        staff: staff.map(str::to_owned),
        values: values(pairs),
    };
    vec![
        person("u-journalist-1", &["journalist"], None, &[
            ("ip_address", &["73.162.88.201", "2600:1700:5a3c::17"]),
            ("email", &["ada.reporter@newsroom.example"]),
            ("phone", &["+1 (212) 555-0123"]),
            ("location", &["40.712800,-74.006000,35"]),
            ("name", &["Ada Reporter"]),
            ("date_of_birth", &["1984-05-17"]),
        ]),
        person("u-journalist-2", &["journalist"], None, &[
            ("ip_address", &["98.37.44.14"]),
            ("email", &["ben.columnist@newsroom.example"]),
            ("phone", &["+12025550188"]),
            ("location", &["38.907200,-77.036900"]),
            ("name", &["Ben Columnist"]),
        ]),
        person("u-employee-7", &["staff"], Some("s-us-7"), &[
            ("ip_address", &["73.162.88.77"]),
            ("email", &["sam@platform.example"]),
        ]),
        person("u-erase-me", &[], None, &[
            ("email", &["leaving@example.org"]),
            ("ip_address", &["98.37.10.4"]),
        ]),
    ]
}

fn synthetic_subject(rng: &mut StdRng, index: usize) -> SubjectInput {
    const FIRST: [&str; 12] = ["Alex", "Maria", "Wei", "Fatima", "John", "Aiko", "Lars", "Priya", "Omar", "Chloe", "Diego", "Nia"];
    const LAST: [&str; 12] = ["Smith", "Garcia", "Chen", "Khan", "Müller", "Sato", "Jensen", "Patel", "Haddad", "Martin", "López", "Okafor"];
    // Address blocks whose registration country matches the region in the shipped database.
    let (region, blocks, phone_prefix, centre): (&str, &[u8], &str, (f64, f64)) = match rng.random_range(0..10) {
        0..=5 => ("us", &[73, 98], "+1", (39.8, -98.6)),
        6..=8 => ("eu", &[31, 62, 80], "+49", (50.1, 8.7)),
        _ => ("sg", &[116, 118], "+65", (1.35, 103.8)),
    };
    let first = FIRST[rng.random_range(0..FIRST.len())];
    let last = LAST[rng.random_range(0..LAST.len())];
    let ips: Vec<String> = (0..rng.random_range(1..=3))
        .map(|_| {
            let block = blocks[rng.random_range(0..blocks.len())];
            format!("{block}.{}.{}.{}", rng.random_range(0..=255), rng.random_range(0..=255), rng.random_range(1..=254))
        })
        .collect();
    let email = format!("{}.{}{}@mail{}.example", first.to_lowercase(), index, rng.random_range(0..100), rng.random_range(0..5));
    let phone = format!("{phone_prefix}{}", rng.random_range(200_000_000u64..999_999_999));
    let location = format!("{:.5},{:.5}", centre.0 + rng.random_range(-3.0..3.0), centre.1 + rng.random_range(-3.0..3.0));
    let birth = format!("{}-{:02}-{:02}", rng.random_range(1940..2012), rng.random_range(1..=12), rng.random_range(1..=28));
    let device = format!("dev-{:016x}", rng.random::<u64>());
    let mut labels = Vec::new();
    if rng.random_range(0..200) == 0 {
        labels.push("public_official".to_owned());
    }
    SubjectInput {
        id: format!("u-{index:07}"),
        region: region.to_owned(),
        labels,
        staff: None,
        values: values(&[
            ("ip_address", &ips.iter().map(String::as_str).collect::<Vec<_>>()),
            ("email", &[&email]),
            ("phone", &[&phone]),
            ("location", &[&location]),
            ("name", &[&format!("{first} {last}")]),
            ("date_of_birth", &[&birth]),
            ("device_id", &[&device]),
        ]),
    }
}

/// Reads every byte of the `us` region's database files and looks for the journalist's values.
fn show_sealed_storage(data: &Path) -> anyhow::Result<()> {
    let needles = ["ada.reporter@newsroom.example", "73.162.88.201", "Ada Reporter", "+12125550123"];
    let mut bytes_read = 0usize;
    let mut found = Vec::new();
    let mut files = 0;
    for suffix in ["", "-wal"] {
        let path = data.join("regions").join(format!("us.db{suffix}"));
        let Ok(content) = fs::read(&path) else { continue };
        files += 1;
        bytes_read += content.len();
        for needle in needles {
            if content.windows(needle.len()).any(|window| window == needle.as_bytes()) {
                found.push(format!("{needle} in {}", path.display()));
            }
        }
    }
    println!("read {bytes_read} bytes of {files} database files of region us, looking for Ada Reporter's email, IP, name and phone");
    if found.is_empty() {
        println!("  none of them appears: values are AES-256-GCM sealed under a per-subject key, itself wrapped by the region's key");
        Ok(())
    } else {
        bail!("plaintext found in storage: {}", found.join(", "))
    }
}

/// The journalist's own data request, answered by a privacy officer through the access API:
/// every view of every field is a decision logged before the value is opened.
async fn show_views(gate: &service::Gate) -> anyhow::Result<()> {
    gate.put_staff(&service::StaffInput {
        id: "s-privacy-1".to_owned(),
        roles: vec!["privacy_officer".to_owned()],
        team: Some("privacy".to_owned()),
        entity: Some("platform-us".to_owned()),
        country: Some("US".to_owned()),
        region: Some("us".to_owned()),
        shift: None,
    })
    .await?;
    gate.register_case(&service::CaseInput {
        id: "DSAR-1".to_owned(),
        purpose: "data_subject_request".to_owned(),
        status: None,
        assignees: vec!["s-privacy-1".to_owned()],
        subjects: vec!["u-journalist-1".to_owned()],
        requested_by: Some("u-journalist-1".to_owned()),
        legal_process: None,
        destinations: Vec::new(),
    })
    .await?;
    let officer = gate
        .caller(service::Caller { id: "s-privacy-1".to_owned(), kind: service::CallerKind::Staff, roles: Vec::new(), team: None, entity: None, country: None, region: None })
        .await?;
    let asks: [(FieldKind, &[&str]); 6] = [
        (FieldKind::IpAddress, &["exists", "country", "prefix/16", "prefix", "exact"]),
        (FieldKind::Email, &["domain", "masked", "exact"]),
        (FieldKind::Phone, &["country_code", "last2", "exact"]),
        (FieldKind::Location, &["area/3", "area", "exact"]),
        (FieldKind::DateOfBirth, &["age_band", "year"]),
        (FieldKind::Name, &["exists"]),
    ];
    println!("the journalist u-journalist-1 asked for her own data (case DSAR-1); the privacy officer reads it, coarse to exact:");
    let mut last_index = 0;
    for (field, views) in asks {
        for view in views {
            let input = service::AccessInput {
                id: None,
                action: "read".to_owned(),
                subjects: vec!["u-journalist-1".to_owned()],
                fields: [(field.as_str().to_owned(), (*view).to_owned())].into(),
                purpose: "data_subject_request".to_owned(),
                case: Some("DSAR-1".to_owned()),
                justification: "data subject access request".to_owned(),
                break_glass: false,
                destination: None,
                control: None,
                from_country: None,
                query: None,
            };
            let answer = gate.access(&officer, &input).await?;
            let subject = answer.subjects.first().context("one subject answered")?;
            let reveal = subject.fields.first().context("one field answered")?;
            let shown = match (&reveal.values, reveal.exists) {
                (_, Some(exists)) if *view == "exists" => exists.to_string(),
                (Some(values), _) => values.iter().map(|value| value.value.as_str()).collect::<Vec<_>>().join(", "),
                (None, _) => format!("({})", reveal.decision),
            };
            println!("  {:<14} {:<13} {shown}", field.as_str(), view);
            last_index = subject.receipt.index;
        }
    }
    println!("  each line above is a decision in the us log (the last at index {last_index}), written before the value was opened");
    Ok(())
}

/// The leak-hunt scenario shipped in `scenarios/`, replayed on this deployment's gate (on
/// the wall clock), each decision printed with its reasons.
async fn show_leak_hunt(gate: &service::Gate) -> anyhow::Result<()> {
    let path = Path::new("scenarios/leak-hunt-2022.jsonl");
    let scenario = crate::scenario::parse_text(path, LEAK_HUNT).map_err(|error| anyhow::anyhow!("{error}"))?;
    let described = crate::scenario::describe_accesses(&scenario);
    let mut printed = Vec::new();
    let mut detection = service::Detection::new(&detect::DetectionConfig::default());
    let replayed = crate::scenario::replay_into(gate, None, &scenario, &mut detection, &mut |line| printed.push(line.clone())).await;
    if let Err(crate::scenario::Failure::Input(error)) = replayed {
        bail!("the shipped scenario did not replay: {error}");
    }
    if let Err(crate::scenario::Failure::Other(error)) = replayed {
        return Err(error);
    }
    for line in printed {
        let access = line["access"].as_str().unwrap_or_default();
        match line["kind"].as_str() {
            Some("decision") => {
                let outcome = match line["decision"].as_str() {
                    Some("allow") => "GRANTED",
                    Some("pending") => "HELD for approval",
                    _ => "REFUSED",
                };
                println!("  {access}: {}", described.get(access).map(String::as_str).unwrap_or("(approved request opened)"));
                let granted: Vec<String> =
                    line["fields"].as_object().into_iter().flatten().map(|(field, view)| format!("{field} as {}", view.as_str().unwrap_or("?"))).collect();
                let granted = if granted.is_empty() { String::new() } else { format!(": {}", granted.join(", ")) };
                println!("      {outcome}{granted}   [log index {}]", line["log_index"]);
                // The deciding reasons come first (rules no approval lifts); the rest is counted.
                let reasons: Vec<&str> = line["reasons"].as_array().into_iter().flatten().filter_map(|reason| reason.as_str()).collect();
                for reason in reasons.iter().take(DEMO_REASONS_SHOWN) {
                    println!("      - {reason}");
                }
                if reasons.len() > DEMO_REASONS_SHOWN {
                    println!("      (+{} more reasons in the log entry)", reasons.len() - DEMO_REASONS_SHOWN);
                }
            }
            Some("approval") => {
                println!(
                    "  {access}: {} answers {} → {}",
                    line["approver"].as_str().unwrap_or_default(),
                    line["outcome"].as_str().unwrap_or_default(),
                    line["reason"].as_str().or_else(|| line["status"].as_str()).unwrap_or_default()
                );
            }
            Some("alert") if line["severity"].as_str().is_some_and(|severity| !matches!(severity, "info" | "low")) => {
                println!(
                    "      FLAGGED {} ({}): {}",
                    line["severity"].as_str().unwrap_or_default().to_uppercase(),
                    line["rule"].as_str().unwrap_or_default(),
                    line["summary"].as_str().unwrap_or_default()
                );
            }
            _ => {}
        }
    }
    println!("  every decision above, granted or refused, is an entry in the us log, written before any value was decrypted;");
    println!("  the detector read each entry from the log as it was written and flagged what no case explains");
    Ok(())
}

/// The leak-hunt scenario, as shipped in `scenarios/`.
const LEAK_HUNT: &str = include_str!("../../../scenarios/leak-hunt-2022.jsonl");

async fn show_residency(data: &Path) -> anyhow::Result<()> {
    let node_dir = data.join("eu-node");
    if !node_dir.join(service::CONFIG_FILE_NAME).exists() {
        service::init_data_dir(
            &node_dir,
            InitOptions { regions: vec![region("eu")], storage: StorageConfig::Sqlite, keys: KeysConfig::Keyring, geo: None, dev_issuer: false },
        )?;
    }
    let (_, eu_node) = service::open_deployment(&node_dir, Arc::new(SystemClock)).await?;
    match eu_node.reveal(&region("us"), &subject("u-journalist-1"), &[(FieldKind::IpAddress, View::Country)]).await {
        Err(ServiceError::RegionNotServed(region)) => {
            println!("an eu-only node asked for a us subject answers: region {region} is not served by this node");
            println!("  it has neither the us keys nor the us storage; it never fetches or proxies");
            Ok(())
        }
        other => bail!("expected the eu node to refuse a us subject, got {other:?}"),
    }
}

async fn show_erasure(data: &Path, vault: &service::Vault) -> anyhow::Result<()> {
    let us = region("us");
    let target = subject("u-erase-me");
    let copy_dir = data.join("backup-before-erase");
    fs::create_dir_all(&copy_dir)?;
    for suffix in ["", "-wal", "-shm"] {
        let from = data.join("regions").join(format!("us.db{suffix}"));
        if from.exists() {
            fs::copy(&from, copy_dir.join(format!("us.db{suffix}")))?;
        }
    }
    println!("copied the us database aside (a backup taken before the erase)");
    let record = vault.erase(&us, &target, "dsr-4711", "data subject asked for erasure").await?;
    println!("erased u-erase-me: {} values destroyed; the record of the erasure is kept", record.values_destroyed);
    match vault.reveal(&us, &target, &[(FieldKind::Email, View::Exact)]).await {
        Err(ServiceError::SubjectErased(_)) => println!("  reading it now: refused, the subject was erased"),
        other => bail!("expected the erased subject to be unreadable, got {other:?}"),
    }
    let backup = store::SqliteStore::open(&copy_dir, us.clone())?;
    let keyring = seal::KeyringFile::open(data.join("keyring.json"), us.clone())?;
    let stored = store::RegionStore::data_keys(&backup, std::slice::from_ref(&target)).await?;
    let stored = stored.first().context("the backup should hold the old wrapped data key")?;
    let wrapped = seal::WrappedKey {
        group: seal::ShredGroup::new(stored.group).context("shred group")?,
        version: seal::KekVersion(stored.version),
        bytes: stored.wrapped.clone(),
    };
    match seal::KeyProvider::unwrap(&keyring, &target, &wrapped) {
        Err(error) => println!("  opening the backup's copy of its data key with today's keys: {error}"),
        Ok(_) => bail!("the backup's data key still unwraps after the erase"),
    }
    drop(backup);
    fs::remove_dir_all(&copy_dir)?;
    Ok(())
}
