//! `custos import`: bulk load subjects from JSON Lines or CSV. Each line is validated on its
//! own; a rejected line is reported with its number and reasons and never stops or corrupts
//! the others. Values are idempotent (same field and value = one stored value), so re-running
//! a file adds nothing.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use service::{IngestOutcome, ServiceError, SubjectInput, SystemClock, ValidatedSubject, ValueInput, Vault, validate_subject};

/// Values gathered before one write; one transaction (and one fsync) per batch.
const IMPORT_BATCH_VALUES_MAX: usize = 20_000;
/// Subjects gathered before one write.
const IMPORT_BATCH_SUBJECTS_MAX: usize = 5_000;
/// Longest accepted input line, in bytes.
const IMPORT_LINE_BYTES_MAX: usize = 1024 * 1024;
/// Rejections printed in the summary; the rest are counted (and all written with --rejects).
const REJECTIONS_SHOWN_MAX: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Jsonl,
    Csv,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    #[arg(long, env = "CUSTOS_DATA")]
    data: PathBuf,
    /// The file to import.
    file: PathBuf,
    /// Input format; by default from the extension (`.csv` is CSV, anything else JSON Lines).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Write every rejected line, with its reasons, to this file as JSON Lines.
    #[arg(long)]
    rejects: Option<PathBuf>,
}

/// One rejected input line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rejection {
    pub line: u64,
    pub reasons: Vec<String>,
}

#[derive(Debug, Default)]
pub struct ImportSummary {
    pub lines: u64,
    pub outcome: IngestOutcome,
    pub rejected: Vec<Rejection>,
    pub elapsed_seconds: f64,
}

pub async fn run(args: ImportArgs) -> anyhow::Result<ExitCode> {
    let (_, vault) = service::open_deployment(&args.data, Arc::new(SystemClock)).await?;
    let format = args.format.unwrap_or_else(|| match args.file.extension().and_then(|ext| ext.to_str()) {
        Some("csv") => Format::Csv,
        _ => Format::Jsonl,
    });
    let summary = import_file(&vault, &args.file, format, true).await?;
    print_summary(&summary);
    if let Some(path) = &args.rejects {
        let mut text = String::new();
        for rejection in &summary.rejected {
            text.push_str(&serde_json::to_string(rejection)?);
            text.push('\n');
        }
        std::fs::write(path, text).with_context(|| format!("failed to write {}", path.display()))?;
    }
    Ok(if summary.rejected.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(3) })
}

pub fn print_summary(summary: &ImportSummary) {
    let outcome = &summary.outcome;
    let total_values = outcome.values_added + outcome.values_merged;
    println!(
        "imported {} lines in {:.2} s: {} subjects created, {} updated; {} values added, {} already present; {} lines rejected ({:.0} values/s)",
        summary.lines,
        summary.elapsed_seconds,
        outcome.subjects_created,
        outcome.subjects_updated,
        outcome.values_added,
        outcome.values_merged,
        summary.rejected.len(),
        total_values as f64 / summary.elapsed_seconds.max(1e-9),
    );
    for rejection in summary.rejected.iter().take(REJECTIONS_SHOWN_MAX) {
        println!("  line {}: {}", rejection.line, rejection.reasons.join("; "));
    }
    if summary.rejected.len() > REJECTIONS_SHOWN_MAX {
        println!("  … and {} more (use --rejects FILE for all)", summary.rejected.len() - REJECTIONS_SHOWN_MAX);
    }
}

/// Imports one file into `vault`. With `progress`, draws a progress bar on a terminal.
pub async fn import_file(vault: &Vault, path: &Path, format: Format, progress: bool) -> anyhow::Result<ImportSummary> {
    let started = Instant::now();
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let size = file.metadata().map(|metadata| metadata.len()).unwrap_or(0);
    let bar = if progress && std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        let bar = ProgressBar::new(size);
        bar.set_style(
            ProgressStyle::with_template("{spinner} importing [{bar:40}] {bytes}/{total_bytes} ({eta} left) {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let reader = BufReader::new(bar.wrap_read(file));
    let mut summary = ImportSummary::default();
    let mut batch = Batch::default();
    let lines = match format {
        Format::Jsonl => jsonl_records(reader),
        Format::Csv => csv_records(reader)?,
    };
    for (line, record) in lines {
        summary.lines = line;
        match record.and_then(|input| validate_subject(&input).map_err(|problems| problems.iter().map(ToString::to_string).collect())) {
            Ok(subject) => batch.push(line, subject),
            Err(reasons) => summary.rejected.push(Rejection { line, reasons }),
        }
        if batch.is_full() {
            flush(vault, &mut batch, &mut summary).await?;
            bar.set_message(format!("{} values", summary.outcome.values_added + summary.outcome.values_merged));
        }
    }
    flush(vault, &mut batch, &mut summary).await?;
    bar.finish_and_clear();
    summary.rejected.sort_by_key(|rejection| rejection.line);
    summary.elapsed_seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

#[derive(Default)]
struct Batch {
    lines: Vec<u64>,
    subjects: Vec<ValidatedSubject>,
    values: usize,
}

impl Batch {
    fn push(&mut self, line: u64, subject: ValidatedSubject) {
        self.values += subject.values.len();
        self.lines.push(line);
        self.subjects.push(subject);
    }

    fn is_full(&self) -> bool {
        self.values >= IMPORT_BATCH_VALUES_MAX || self.subjects.len() >= IMPORT_BATCH_SUBJECTS_MAX
    }
}

/// Writes a batch in one go; if the batch as a whole fails (a subject was erased, a region is
/// not served), writes its lines one by one so only the offending lines are rejected.
async fn flush(vault: &Vault, batch: &mut Batch, summary: &mut ImportSummary) -> anyhow::Result<()> {
    let Batch { lines, subjects, .. } = std::mem::take(batch);
    if subjects.is_empty() {
        return Ok(());
    }
    // A subject may appear on several lines; one transaction cannot upsert it twice in order,
    // so such batches go line by line too.
    let mut seen = std::collections::HashSet::new();
    let unique = subjects.iter().all(|subject| seen.insert((subject.region.clone(), subject.id.clone())));
    if unique {
        match vault.ingest(subjects.clone()).await {
            Ok(outcome) => {
                summary.outcome.add(outcome);
                return Ok(());
            }
            Err(error) if is_about_the_line(&error) => tracing::debug!(%error, "batch failed; retrying line by line"),
            Err(error) => return Err(anyhow::Error::new(error).context("import stopped")),
        }
    }
    for (line, subject) in lines.into_iter().zip(subjects) {
        match vault.ingest(vec![subject]).await {
            Ok(outcome) => summary.outcome.add(outcome),
            Err(error) if is_about_the_line(&error) => summary.rejected.push(Rejection { line, reasons: vec![error.to_string()] }),
            Err(error) => return Err(anyhow::Error::new(error).context(format!("import stopped at line {line}"))),
        }
    }
    Ok(())
}

/// Errors caused by the line itself; anything else (storage, keys) stops the import instead
/// of rejecting every following line.
fn is_about_the_line(error: &ServiceError) -> bool {
    matches!(error, ServiceError::Invalid(_) | ServiceError::RegionNotServed(_) | ServiceError::SubjectErased(_))
}

type Record = (u64, Result<SubjectInput, Vec<String>>);

/// Reads one line of at most [`IMPORT_LINE_BYTES_MAX`] bytes (without its newline); a longer
/// line is skipped to its end and reported as too long, so memory stays bounded.
fn read_line_bounded(reader: &mut impl BufRead) -> std::io::Result<Option<Result<Vec<u8>, ()>>> {
    let mut line = Vec::new();
    let limit = IMPORT_LINE_BYTES_MAX as u64 + 1;
    let read = reader.by_ref().take(limit).read_until(b'\n', &mut line)?;
    if read == 0 {
        return Ok(None);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        return Ok(Some(Ok(line)));
    }
    if line.len() as u64 <= IMPORT_LINE_BYTES_MAX as u64 {
        return Ok(Some(Ok(line)));
    }
    // Over the limit: discard the rest of the line in bounded chunks.
    loop {
        let mut rest = Vec::new();
        let read = reader.by_ref().take(limit).read_until(b'\n', &mut rest)?;
        if read == 0 || rest.last() == Some(&b'\n') {
            return Ok(Some(Err(())));
        }
    }
}

fn jsonl_records(mut reader: impl BufRead + 'static) -> Box<dyn Iterator<Item = Record>> {
    let mut number = 0u64;
    let mut failed = false;
    Box::new(std::iter::from_fn(move || {
        loop {
            if failed {
                return None;
            }
            number += 1;
            let line = match read_line_bounded(&mut reader) {
                Ok(None) => return None,
                Ok(Some(line)) => line,
                Err(error) => {
                    // A read error does not go away by reading again: report it and stop.
                    failed = true;
                    return Some((number, Err(vec![format!("read error, import stopped here: {error}")])));
                }
            };
            if let Some(record) = jsonl_record(number, line) {
                return Some(record);
            }
        }
    }))
}

fn jsonl_record(number: u64, line: Result<Vec<u8>, ()>) -> Option<Record> {
    {
        let Ok(line) = line else {
            return Some((number, Err(vec![format!("line is longer than {IMPORT_LINE_BYTES_MAX} bytes")])));
        };
        let text = match std::str::from_utf8(&line) {
            Ok(text) => text.trim(),
            Err(_) => return Some((number, Err(vec!["line is not UTF-8".to_owned()]))),
        };
        if text.is_empty() || text.starts_with('#') {
            return None;
        }
        Some((number, parse_jsonl_subject(text)))
    }
}

/// A line is a subject object, optionally with `"op":"subject"` as in scenario files.
fn parse_jsonl_subject(text: &str) -> Result<SubjectInput, Vec<String>> {
    let mut value: serde_json::Value = serde_json::from_str(text).map_err(|error| vec![format!("invalid JSON: {error}")])?;
    if let Some(object) = value.as_object_mut() {
        match object.remove("op") {
            None => {}
            Some(serde_json::Value::String(op)) if op == "subject" => {}
            Some(other) => return Err(vec![format!("op {other} is not \"subject\"; only subject lines can be imported")]),
        }
    }
    serde_json::from_value(value).map_err(|error| vec![format!("invalid subject: {error}")])
}

/// CSV with a header row: `id`, `region`, optional `labels` (separated by `;`) and `staff`,
/// then one column per field kind. A field may appear in several columns (one value each);
/// empty cells are skipped.
fn csv_records(reader: impl Read + 'static) -> anyhow::Result<Box<dyn Iterator<Item = Record>>> {
    let mut csv = csv::ReaderBuilder::new().flexible(false).from_reader(reader);
    let headers: Vec<String> = csv.headers().context("failed to read the CSV header")?.iter().map(str::to_owned).collect();
    for required in ["id", "region"] {
        anyhow::ensure!(headers.iter().any(|header| header == required), "the CSV header has no `{required}` column");
    }
    Ok(Box::new(csv.into_records().map(move |record| {
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                let line = error.position().map_or(0, csv::Position::line);
                return (line, Err(vec![format!("invalid CSV: {error}")]));
            }
        };
        let number = record.position().map_or(0, csv::Position::line);
        let mut input =
            SubjectInput { id: String::new(), region: String::new(), labels: Vec::new(), staff: None, values: BTreeMap::new() };
        for (header, cell) in headers.iter().zip(record.iter()) {
            match header.as_str() {
                "id" => input.id = cell.to_owned(),
                "region" => input.region = cell.to_owned(),
                "labels" => input.labels = cell.split(';').map(str::trim).filter(|label| !label.is_empty()).map(str::to_owned).collect(),
                "staff" => input.staff = (!cell.is_empty()).then(|| cell.to_owned()),
                field => {
                    if !cell.is_empty() {
                        input.values.entry(field.to_owned()).or_default().push(ValueInput::Plain(cell.to_owned()));
                    }
                }
            }
        }
        (number, Ok(input))
    })))
}
