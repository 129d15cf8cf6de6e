//! `custos report`: downloads the evidence report of an actor, a case, a subject or a period
//! from a running server (`GET /v1/records`, a staff token with `compliance_officer` or
//! `auditor`) as JSON Lines with a proof per entry, CSV or HTML, or with `--processing` the
//! record of processing activities (`GET /v1/processing`), and writes it whole or not at all
//! (a temporary file renamed into place). The server logs a records read.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::log_commands::HttpFetcher;

/// Largest report accepted, in bytes: what `custos receipt verify --records` reads.
pub const REPORT_BYTES_MAX: u64 = crate::log_commands::RECORDS_REPORT_BYTES_MAX as u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// JSON Lines: a header with each region's signed checkpoint, then one record per line
    /// with its entry, leaf hash and inclusion proof.
    Json,
    Csv,
    Html,
}

#[derive(Debug, clap::Args)]
#[command(group = clap::ArgGroup::new("scope").required(true).args(["actor", "case", "subject", "since", "processing"]))]
pub struct ReportArgs {
    /// The server, e.g. `http://127.0.0.1:8080`.
    #[arg(long)]
    url: String,
    /// A staff token holding `compliance_officer` or `auditor`.
    #[arg(long, env = "CUSTOS_STAFF_TOKEN", hide_env_values = true)]
    token: String,
    /// Every entry naming this actor (staff or machine id).
    #[arg(long)]
    actor: Option<String>,
    /// Every entry naming this case.
    #[arg(long)]
    case: Option<String>,
    /// Every entry about this subject.
    #[arg(long)]
    subject: Option<String>,
    /// A period's start (RFC 3339, inclusive); needs `--until`.
    #[arg(long, requires = "until")]
    since: Option<String>,
    /// A period's end (RFC 3339, exclusive).
    #[arg(long, requires = "since")]
    until: Option<String>,
    /// The record of processing activities (GDPR Art. 30) generated from the server's
    /// configuration and policies, instead of records (`GET /v1/processing`).
    #[arg(long)]
    processing: bool,
    #[arg(long, value_enum, default_value_t = ReportFormat::Json)]
    format: ReportFormat,
    /// Where to write the report.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: &ReportArgs) -> anyhow::Result<()> {
    let fetcher = HttpFetcher::new(&args.url, None);
    let mut query = url_query(args);
    query.push(("format", match args.format {
        ReportFormat::Json => "json",
        ReportFormat::Csv => "csv",
        ReportFormat::Html => "html",
    }.to_owned()));
    let mut response = fetcher
        .agent()
        .get(format!("{}/v1/{}", fetcher.base(), if args.processing { "processing" } else { "records" }))
        .query_pairs(query.iter().map(|(name, value)| (*name, value.as_str())))
        .header("Authorization", format!("Bearer {}", args.token))
        .call()
        .with_context(|| format!("could not reach {}", fetcher.base()))?;
    let status = response.status().as_u16();
    let body = response.body_mut().with_config().limit(REPORT_BYTES_MAX).read_to_vec().context("reading the report")?;
    if !(200..300).contains(&status) {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|error| error["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("the server refused the report ({status}): {message}");
    }
    let directory = args.out.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut file = tempfile::NamedTempFile::new_in(directory).with_context(|| format!("cannot write in {}", directory.display()))?;
    file.write_all(&body)?;
    file.as_file().sync_all()?;
    file.persist(&args.out).with_context(|| format!("cannot write {}", args.out.display()))?;
    match args.format {
        ReportFormat::Json if args.processing => {
            let record: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            let gaps = record["gaps"].as_array().map_or(0, Vec::len);
            println!(
                "{}: record of processing, {} purposes, {}",
                args.out.display(),
                record["purposes"].as_array().map_or(0, Vec::len),
                if gaps == 0 { "nothing missing".to_owned() } else { format!("{gaps} statements missing (see `gaps`)") }
            );
        }
        ReportFormat::Csv | ReportFormat::Html if args.processing => println!("{}: record of processing, {} bytes", args.out.display(), body.len()),
        ReportFormat::Json => {
            let header: serde_json::Value = body.split(|byte| *byte == b'\n').next().and_then(|line| serde_json::from_slice(line).ok()).unwrap_or_default();
            println!(
                "{}: {} records of {}{}, with proofs against the checkpoints of {} (the server logged this read)",
                args.out.display(),
                header["records"],
                header["scope"].as_str().unwrap_or("?"),
                if header["truncated"] == true { " (truncated)" } else { "" },
                header["checkpoints"].as_object().map(|regions| regions.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default()
            );
        }
        ReportFormat::Csv | ReportFormat::Html => println!("{}: {} bytes (the server logged this read)", args.out.display(), body.len()),
    }
    Ok(())
}

fn url_query(args: &ReportArgs) -> Vec<(&'static str, String)> {
    [("actor", &args.actor), ("case", &args.case), ("subject", &args.subject), ("since", &args.since), ("until", &args.until)]
        .into_iter()
        .filter_map(|(name, value)| value.clone().map(|value| (name, value)))
        .collect()
}
