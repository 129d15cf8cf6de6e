//! `custos scenario generate`: writes background traffic — a scenario file of ordinary,
//! explained work by a platform's staff (the `traffic` crate) — for `custos scenario run` to
//! replay and for detection to be measured against. Same arguments, same bytes.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;
use chrono::NaiveDate;
use traffic::{START_DEFAULT, TrafficParams, TrafficStats};

/// Accesses from which a progress bar is worth drawing.
const PROGRESS_ACCESSES_MIN: u64 = 100_000;

#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Seed of the generator: the same arguments give the same file.
    #[arg(long)]
    pub seed: u64,
    /// Staff members, new hires included (10 to 10,000).
    #[arg(long)]
    pub staff: u32,
    /// Platform users (100 to 1,000,000).
    #[arg(long)]
    pub subjects: u32,
    /// Access lines, exactly (1 to 10,000,000).
    #[arg(long)]
    pub accesses: u64,
    /// Calendar days to spread the work over [default: enough for about 20-40 accesses per
    /// agent per working day].
    #[arg(long)]
    pub days: Option<u32>,
    /// First day, YYYY-MM-DD (a local date in every time zone) [default: 2026-03-02].
    #[arg(long)]
    pub start: Option<NaiveDate>,
    /// Where to write the scenario [default: standard output].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let params = TrafficParams {
        seed: args.seed,
        staff: args.staff,
        subjects: args.subjects,
        accesses: args.accesses,
        days: args.days,
        start: args.start.unwrap_or(START_DEFAULT),
    };
    let bar = if args.accesses >= PROGRESS_ACCESSES_MIN && std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(args.accesses);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} generating [{bar:40}] {pos}/{len} accesses ({eta} left)") {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut progress = |accesses: u64| bar.set_position(accesses);
    let stats = match &args.out {
        Some(path) => {
            let mut file = std::fs::File::create(path).with_context(|| format!("failed to create {}", path.display()))?;
            let stats =
                traffic::generate_with_progress(&params, &mut file, &mut progress).context("failed to generate background traffic")?;
            file.sync_all().with_context(|| format!("failed to write {}", path.display()))?;
            stats
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            let stats =
                traffic::generate_with_progress(&params, &mut stdout, &mut progress).context("failed to generate background traffic")?;
            stdout.flush().context("failed to write standard output")?;
            stats
        }
    };
    bar.finish_and_clear();
    eprintln!("{}", summary(&stats));
    Ok(())
}

fn summary(stats: &TrafficStats) -> String {
    let span = match (stats.first_at, stats.last_at) {
        (Some(first), Some(last)) => format!(" from {} to {}", first.format("%Y-%m-%d %H:%M"), last.format("%Y-%m-%d %H:%M UTC")),
        _ => String::new(),
    };
    format!(
        "wrote {} lines over {} days{span}: {} accesses ({} approved by a privacy officer, {} of them cross-border) on {} cases, \
         by {} staff ({} hired during the period) in regions {}, {} subjects ({} protected)",
        stats.lines,
        stats.days,
        stats.accesses,
        stats.approvals,
        stats.cross_border_accesses,
        stats.cases,
        stats.staff,
        stats.new_hires,
        stats.regions.join(", "),
        stats.subjects,
        stats.protected_subjects,
    )
}
