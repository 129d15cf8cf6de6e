//! `custos log witness`: a simple witness for a custos log (C2SP tlog-cosignature/v1).
//!
//! `init` makes a witness key (an Ed25519 seed in `<dir>/witness-key.json`, mode 0600) and
//! prints its verifier key for the log operator's `[[witnesses]]`. `cosign` audits the log
//! exactly as `custos log verify` does — checkpoint signature, every tile against the signed
//! root, and consistency with the checkpoint this witness cosigned last (its state, kept in
//! `<dir>`) — and only then cosigns the checkpoint, printing the cosigned note or handing it
//! back to the log (`--submit`). A log that rewinds or forks is never cosigned.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use tlog::{Cosigner, ED25519_SECRET_KEY_BYTES};
use zeroize::Zeroizing;

use crate::log_commands::{VerifyArgs, progress_bar_if_terminal, verify_log_command};

const WITNESS_KEY_FILE: &str = "witness-key.json";

#[derive(Debug, clap::Subcommand)]
pub enum WitnessCommand {
    /// Create a witness key in DIR and print its cosignature verifier key.
    Init {
        #[arg(long)]
        dir: PathBuf,
        /// The witness's key name, e.g. `witness.example.org/w1`.
        #[arg(long)]
        name: String,
    },
    /// Audit a log and cosign its checkpoint if it extends the one cosigned last.
    Cosign {
        #[arg(long)]
        dir: PathBuf,
        /// The log prefix, e.g. `https://custos.example/log/us`.
        #[arg(long)]
        url: String,
        /// The log's verifier key.
        #[arg(long)]
        key: String,
        /// Hand the cosigned checkpoint back to the log (`POST …/v1/log/<region>/cosignatures`).
        #[arg(long)]
        submit: bool,
    },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WitnessKeyFile {
    name: String,
    /// Ed25519 seed, standard base64.
    seed: String,
}

pub fn run(command: WitnessCommand) -> anyhow::Result<ExitCode> {
    match command {
        WitnessCommand::Init { dir, name } => {
            let cosigner = create_key(&dir, &name)?;
            println!("{}", cosigner.verifier().to_vkey());
            Ok(ExitCode::SUCCESS)
        }
        WitnessCommand::Cosign { dir, url, key, submit } => {
            let cosigner = open_key(&dir)?;
            let args = VerifyArgs { url: url.clone(), key, state: Some(dir.join("state")), entries: false, witnesses: Vec::new(), token: None };
            let summary = verify_log_command(&args, progress_bar_if_terminal())
                .context("the log failed the audit; not cosigning")?;
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).context("system clock")?.as_secs();
            let signature = cosigner.cosign(&summary.report.checkpoint, now).context("cosigning")?;
            let mut note = summary.report.note.clone();
            note.add_signature(signature).context("adding the cosignature")?;
            let text = note.to_string();
            if submit {
                let endpoint = cosignature_endpoint(&url)?;
                let mut response = ureq::post(&endpoint)
                    .config()
                    .http_status_as_error(false)
                    .build()
                    .header("content-type", "text/plain")
                    .send(text.as_bytes())
                    .with_context(|| format!("failed to reach {endpoint}"))?;
                let status = response.status().as_u16();
                let body = response.body_mut().read_to_string().unwrap_or_default();
                if status != 200 {
                    bail!("{endpoint} refused the cosignature ({status}): {body}");
                }
                println!("cosigned {} at size {} and handed it back: {body}", summary.report.checkpoint.origin(), summary.report.checkpoint.size());
            } else {
                print!("{text}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `http://host/log/us` → `http://host/v1/log/us/cosignatures`.
fn cosignature_endpoint(url: &str) -> anyhow::Result<String> {
    let trimmed = url.trim_end_matches('/');
    let Some(position) = trimmed.rfind("/log/") else { bail!("{url} is not a custos log prefix (…/log/<region>)") };
    Ok(format!("{}/v1{}/cosignatures", &trimmed[..position], &trimmed[position..]))
}

fn create_key(dir: &Path, name: &str) -> anyhow::Result<Cosigner> {
    std::fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    let mut seed = Zeroizing::new([0u8; ED25519_SECRET_KEY_BYTES]);
    aws_lc_rs::rand::fill(seed.as_mut()).map_err(|_| anyhow::anyhow!("system random failed"))?;
    let cosigner = Cosigner::new(name, &seed).with_context(|| format!("{name:?} is not a valid key name"))?;
    let document = WitnessKeyFile { name: name.to_owned(), seed: base64::engine::general_purpose::STANDARD.encode(seed.as_ref()) };
    let path = dir.join(WITNESS_KEY_FILE);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("failed to create {} (refusing to overwrite a witness key)", path.display()))?;
    file.write_all(serde_json::to_string_pretty(&document)?.as_bytes())?;
    file.sync_all()?;
    Ok(cosigner)
}

fn open_key(dir: &Path) -> anyhow::Result<Cosigner> {
    let path = dir.join(WITNESS_KEY_FILE);
    let mode = std::fs::metadata(&path).with_context(|| format!("no witness key at {}; run `custos log witness init`", path.display()))?.permissions().mode();
    if mode & 0o077 != 0 {
        bail!("{} has mode {:04o}; run `chmod 600 {}`", path.display(), mode & 0o777, path.display());
    }
    let document: WitnessKeyFile = serde_json::from_slice(&std::fs::read(&path)?).with_context(|| format!("{} is not a witness key file", path.display()))?;
    let bytes = Zeroizing::new(base64::engine::general_purpose::STANDARD.decode(&document.seed).context("the seed is not base64")?);
    let seed: Zeroizing<[u8; ED25519_SECRET_KEY_BYTES]> =
        Zeroizing::new(bytes.as_slice().try_into().map_err(|_| anyhow::anyhow!("the seed is not {ED25519_SECRET_KEY_BYTES} bytes"))?);
    Cosigner::new(&document.name, &seed).context("witness key")
}
