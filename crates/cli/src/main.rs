//! `custos`, the one binary: set up a deployment, serve it, import data, run the demo, manage
//! keys, audit a log and check receipts. Each subcommand is a thin shell over the `service` and `server` crates.

mod demo;
mod import;
mod log_commands;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use model::RegionId;
use service::{GeoConfig, InitOptions, KeysConfig, StorageConfig, SystemClock};

#[derive(Debug, Parser)]
#[command(name = "custos", version, about = "Guards the guards: purpose-bound, logged, minimized access to personal data.")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a data directory: configuration, keys, and a service token (printed once).
    Init(InitArgs),
    /// Serve the HTTP API for the regions of a data directory.
    Serve {
        #[arg(long, env = "CUSTOS_DATA")]
        data: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
    },
    /// Import subjects from JSON Lines (one scenario-style `subject` per line) or CSV.
    Import(import::ImportArgs),
    /// Build a synthetic platform and show what custos does with it.
    Demo(demo::DemoArgs),
    /// Audit a region's transparency log from outside.
    Log {
        #[command(subcommand)]
        command: log_commands::LogCommand,
    },
    /// Check receipts offline.
    Receipt {
        #[command(subcommand)]
        command: log_commands::ReceiptCommand,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Re-wrap every data key of a region under new key-encryption keys and destroy the old
    /// ones. Sealed values are not touched.
    Rotate {
        #[arg(long, env = "CUSTOS_DATA")]
        data: PathBuf,
        #[arg(long)]
        region: RegionId,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KeyProviderKind {
    Keyring,
    Pkcs11,
}

#[derive(Debug, clap::Args)]
struct InitArgs {
    #[arg(long, env = "CUSTOS_DATA")]
    data: PathBuf,
    /// Regions this node serves, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "us")]
    regions: Vec<RegionId>,
    /// Store in PostgreSQL at this URL (one schema per region) instead of SQLite files.
    #[arg(long)]
    postgres: Option<String>,
    #[arg(long, value_enum, default_value = "keyring")]
    keys: KeyProviderKind,
    /// PKCS#11 module (with --keys pkcs11).
    #[arg(long, default_value = "/usr/lib/softhsm/libsofthsm2.so")]
    pkcs11_module: PathBuf,
    /// PKCS#11 token label (with --keys pkcs11).
    #[arg(long, default_value = "custos")]
    pkcs11_token: String,
    /// Environment variable holding the token PIN (with --keys pkcs11).
    #[arg(long, default_value = "CUSTOS_PKCS11_PIN")]
    pkcs11_pin_env: String,
    /// An IP → country database (MaxMind DB format) for the `country` view of IP addresses.
    #[arg(long)]
    geo_mmdb: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CUSTOS_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: failed to start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Init(args) => {
            let token = init(&args)?;
            println!("initialized {} for regions {}", args.data.display(), join(&args.regions));
            println!("service token (shown once; store it in your secret manager):\n{token}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { data, listen } => {
            serve(&data, listen, None).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Import(args) => import::run(args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Log { command } => tokio::task::spawn_blocking(move || log_commands::run_log(command)).await?,
        Command::Receipt { command } => tokio::task::spawn_blocking(move || log_commands::run_receipt(command)).await?,
        Command::Keys { command: KeysCommand::Rotate { data, region } } => {
            let (_, vault) = service::open_deployment(&data, Arc::new(SystemClock)).await?;
            let report = vault.rotate_keys(&region).await?;
            println!(
                "region {region}: {} key-encryption keys rotated, {} data keys re-wrapped, old keys destroyed",
                report.groups_rotated, report.data_keys_rewrapped
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn join(regions: &[RegionId]) -> String {
    regions.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

fn init(args: &InitArgs) -> anyhow::Result<String> {
    let storage = match &args.postgres {
        Some(url) => StorageConfig::Postgres { url: url.clone() },
        None => StorageConfig::Sqlite,
    };
    let keys = match args.keys {
        KeyProviderKind::Keyring => KeysConfig::Keyring,
        KeyProviderKind::Pkcs11 => KeysConfig::Pkcs11 {
            module: args.pkcs11_module.clone(),
            token: args.pkcs11_token.clone(),
            pin_env: args.pkcs11_pin_env.clone(),
        },
    };
    let geo = args.geo_mmdb.clone().map(|mmdb| GeoConfig { mmdb });
    let options = InitOptions { regions: args.regions.clone(), storage, keys, geo };
    Ok(service::init_data_dir(&args.data, options)?)
}

/// Serves the deployment in `data` until Ctrl-C. `ready` hears the bound address.
pub(crate) async fn serve(
    data: &std::path::Path,
    listen: SocketAddr,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let (config, vault) = service::open_deployment(data, Arc::new(SystemClock)).await?;
    let state = server::AppState { vault: Arc::new(vault), service_tokens: Arc::new(config.service_tokens) };
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("failed to listen on {listen}"))?;
    let address = listener.local_addr()?;
    match ready {
        Some(ready) => {
            let _ = ready.send(address);
        }
        None => eprintln!("custos serving regions {} on http://{address}", join(&config.regions)),
    }
    axum::serve(listener, server::app(state))
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
        .context("server failed")?;
    Ok(())
}
