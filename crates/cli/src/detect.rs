//! `custos detect`: runs the detector over a deployment's logs until it is level with them,
//! as `custos serve` does live — the same rules from `[detection]`, alerts stored in the
//! directory and queued for the webhook once, the checkpoint saved as it goes. For a backlog
//! read apart from the server, or after a change of detection settings. It holds the
//! deployment's lock, so it does not run beside `custos serve` on the same data.
//!
//! Killed at any moment, it loses nothing and repeats nothing: a restart resumes from the
//! last checkpoint, alerts raised again after it keep their ids and are stored once.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use service::{AlertDesk, AlertView, DeskOptions, SystemClock};

#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    #[arg(long, env = "CUSTOS_DATA")]
    pub data: PathBuf,
    /// Save the detector's checkpoint after this many entries observed.
    #[arg(long, default_value_t = service::CHECKPOINT_EVERY_ENTRIES, value_parser = clap::value_parser!(u64).range(1..))]
    pub checkpoint_entries: u64,
    /// Entries read per region per step; the alerts of a step are stored together.
    #[arg(long, default_value_t = service::DETECTION_READ_ENTRIES_MAX, value_parser = clap::value_parser!(u64).range(1..=service::DETECTION_READ_ENTRIES_MAX))]
    pub step_entries: u64,
}

pub async fn run(args: &DetectArgs) -> anyhow::Result<()> {
    let (config, gate) = service::open_gate(&args.data, Arc::new(SystemClock)).await?;
    let detection = config.detection.clone().unwrap_or_default();
    let options = DeskOptions { checkpoint_every_entries: args.checkpoint_entries, read_entries_max: args.step_entries };
    let desk = AlertDesk::open_with(Arc::new(gate), detection, config.alert_webhook.is_some(), options)
        .await
        .context("opening the alert desk")?;
    let behind: u64 = desk.lag().await.context("reading the logs' sizes")?.iter().map(|(_, entries)| entries).sum();
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(behind);
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} detecting [{bar:40}] {pos}/{len} entries ({eta} left)") {
            bar.set_style(style);
        }
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut observed = 0u64;
    let mut stored = 0usize;
    let mut out = std::io::stdout().lock();
    loop {
        let progress = desk.run_once().await.context("running the detector")?;
        observed += progress.observed as u64;
        bar.set_position(observed);
        for id in &progress.stored {
            if let Some((alert, _notes)) = desk.store().alert(id).await.context("reading a stored alert")? {
                let line = serde_json::to_string(&AlertView::new(&alert)).context("encoding an alert")?;
                writeln!(out, "{line}").context("writing to stdout")?;
            }
        }
        stored += progress.stored.len();
        if progress.level {
            break;
        }
    }
    desk.save().await.context("saving the detector checkpoint")?;
    bar.finish_and_clear();
    eprintln!("detector level with the logs: {observed} entries observed, {stored} new alerts stored");
    Ok(())
}
