//! `custos`, the one binary: set up a deployment, serve it, import data, run the demo, manage
//! keys, audit a log and check receipts. Each subcommand is a thin shell over the `service` and `server` crates.

mod demo;
mod detect;
mod generate;
mod import;
mod log_commands;
mod mix;
mod report;
mod scenario;
mod witness;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use model::RegionId;
use service::{GeoConfig, InitOptions, KeysConfig, StorageConfig, SystemClock};

/// mimalloc instead of glibc's allocator: under load a request allocates and frees many
/// small buffers across two threads, and glibc's malloc/free were an eighth of the server's
/// CPU (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    /// Run the detector over a deployment's logs until level with them, storing alerts.
    Detect(detect::DetectArgs),
    /// Audit a region's transparency log from outside, or witness it.
    Log {
        #[command(subcommand)]
        command: LogCli,
    },
    /// Download the evidence report of an actor, a case, a subject or a period from a server
    /// (JSON Lines with proofs, CSV or HTML).
    Report(report::ReportArgs),
    /// Check receipts offline.
    Receipt {
        #[command(subcommand)]
        command: log_commands::ReceiptCommand,
    },
    /// Replay scenario files (shared/scenario-format.md) through the service code.
    Scenario {
        #[command(subcommand)]
        command: scenario::ScenarioCommand,
    },
    /// Check and test Cedar policy sets.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Staff identities from the development issuer (`custos init --dev-issuer`).
    Staff {
        #[command(subcommand)]
        command: StaffCommand,
    },
    /// Key management.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
}

#[derive(Debug, Subcommand)]
enum LogCli {
    #[command(flatten)]
    Audit(log_commands::LogCommand),
    /// Act as a simple witness for a custos log: audit it, check it extends the checkpoint
    /// cosigned last, cosign it (C2SP tlog-cosignature/v1).
    Witness {
        #[command(subcommand)]
        command: witness::WitnessCommand,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Parse a policy directory and validate it against the published schema.
    Validate {
        /// The policy directory; the built-in default set when absent.
        dir: Option<PathBuf>,
    },
    /// Run table-driven policy tests (`*.json`: entities + request → expected decision).
    Test {
        /// Directory of test files.
        dir: PathBuf,
        /// The policy directory to test; the built-in default set when absent.
        #[arg(long)]
        policies: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum StaffCommand {
    /// Mint a bearer token for a staff member (or a machine) from the deployment's
    /// development issuer. Attributes left out are filled from the staff directory when the
    /// token is used.
    Token(StaffTokenArgs),
}

#[derive(Debug, clap::Args)]
struct StaffTokenArgs {
    #[arg(long, env = "CUSTOS_DATA")]
    data: PathBuf,
    /// The staff (or machine) id: the token's `sub`.
    #[arg(long)]
    id: String,
    /// A role (repeatable).
    #[arg(long = "role")]
    roles: Vec<String>,
    #[arg(long)]
    team: Option<String>,
    #[arg(long)]
    entity: Option<String>,
    #[arg(long)]
    country: Option<String>,
    #[arg(long)]
    region: Option<String>,
    /// Mint a machine identity instead of a staff member's.
    #[arg(long)]
    machine: bool,
    /// Lifetime in seconds (at most a day).
    #[arg(long, default_value_t = 3600)]
    ttl_seconds: u64,
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
    /// Create a local development token issuer and trust it (`custos staff token`). For
    /// demos and tests only: anyone who can read the data directory can mint any identity.
    #[arg(long)]
    dev_issuer: bool,
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
        Command::Detect(args) => detect::run(&args).await.map(|()| ExitCode::SUCCESS),
        Command::Log { command: LogCli::Audit(command) } => tokio::task::spawn_blocking(move || log_commands::run_log(command)).await?,
        Command::Log { command: LogCli::Witness { command } } => tokio::task::spawn_blocking(move || witness::run(command)).await?,
        Command::Scenario { command } => scenario::run(command).await,
        Command::Policy { command } => run_policy(command),
        Command::Staff { command: StaffCommand::Token(args) } => {
            println!("{}", mint_token(&args)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Report(args) => tokio::task::spawn_blocking(move || report::run(&args)).await?.map(|()| ExitCode::SUCCESS),
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

fn policy_engine(dir: Option<&std::path::Path>) -> anyhow::Result<policy::PolicyEngine> {
    Ok(match dir {
        Some(dir) => policy::PolicyEngine::load_dir(dir)?,
        None => policy::PolicyEngine::default_set()?,
    })
}

fn run_policy(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Validate { dir } => {
            let engine = policy_engine(dir.as_deref())?;
            let name = dir.map_or_else(|| "the default policy set".to_owned(), |dir| dir.display().to_string());
            println!("{name}: {} policies, valid against the custos schema", engine.policy_ids().len());
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Test { dir, policies } => {
            let engine = policy_engine(policies.as_deref())?;
            let report = policy::run_policy_tests(&engine, &dir)?;
            for failure in &report.failures {
                println!("FAIL {failure}");
            }
            println!("policy tests: {} passed, {} failed", report.passed, report.failures.len());
            Ok(if report.failures.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

fn mint_token(args: &StaffTokenArgs) -> anyhow::Result<String> {
    let directory = args.data.join(service::DEV_ISSUER_DIR_NAME);
    if !directory.exists() {
        anyhow::bail!(
            "{} has no development issuer (it exists only when made with `custos init --dev-issuer`)",
            args.data.display()
        );
    }
    let issuer = auth::DevIssuer::open(&directory)?;
    let claims = auth::IdentityClaims {
        id: args.id.clone(),
        kind: if args.machine { auth::IdentityKind::Machine } else { auth::IdentityKind::Staff },
        roles: args.roles.clone(),
        team: args.team.clone(),
        entity: args.entity.clone(),
        country: args.country.clone(),
        region: args.region.clone(),
    };
    Ok(issuer.mint(&claims, chrono::Utc::now(), std::time::Duration::from_secs(args.ttl_seconds))?)
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
    let options = InitOptions { regions: args.regions.clone(), storage, keys, geo, dev_issuer: args.dev_issuer };
    Ok(service::init_data_dir(&args.data, options)?)
}

/// How much less the kernel favours the followers' threads than the request workers (a nice
/// value: 5 gives a thread about a third of a nice-0 thread's share of a busy core).
const FOLLOWERS_NICE: i32 = 5;

/// The runtime the followers (detector, subject index, webhook) run on: one worker and its
/// blocking threads, all at [`FOLLOWERS_NICE`]. Their batches are hundreds of entries of
/// CPU work; at the workers' priority they took turns with requests on the same two cores
/// and lengthened the requests' tail. Under a load that leaves no idle CPU they fall behind
/// and catch up when it eases (they read from cursors in the logs, nothing is lost).
struct Followers {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Followers {
    /// Starts the runtime and returns once its worker runs at the followers' priority.
    async fn start() -> anyhow::Result<Followers> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("custos-follower")
            .on_thread_start(|| {
                if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), FOLLOWERS_NICE) {
                    tracing::warn!(%error, "the followers' thread keeps the workers' priority");
                }
            })
            .enable_all()
            .build()
            .context("starting the followers' runtime")?;
        // Held from here, so that an error below drops the runtime without waiting on it.
        let followers = Followers { runtime: Some(runtime) };
        // The worker lowers its own priority when its thread starts, before it runs any task;
        // one task run there means it has, so nothing the followers start runs at the
        // workers' priority (the threads they start inherit it).
        let (started, ready) = tokio::sync::oneshot::channel();
        {
            let _on_followers = followers.enter();
            tokio::spawn(async move {
                let _ = started.send(());
            });
        }
        ready.await.context("the followers' runtime did not start")?;
        Ok(followers)
    }

    /// While the guard lives, `tokio::spawn` puts tasks on the followers' runtime.
    fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        // INVARIANT: the runtime is only taken out by drop.
        self.runtime.as_ref().expect("followers' runtime").enter()
    }
}

impl Drop for Followers {
    fn drop(&mut self) {
        // `serve` is async: a runtime dropped here must not wait for its threads.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Serves the deployment in `data` until Ctrl-C. `ready` hears the bound address.
pub(crate) async fn serve(
    data: &std::path::Path,
    listen: SocketAddr,
    ready: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let (config, gate) = service::open_gate(data, Arc::new(SystemClock)).await?;
    let gate = Arc::new(gate);
    let identity = match config.identity_in(data) {
        Some(identity) => Some(auth::TokenVerifier::new(identity).await.context("identity provider")?),
        None => None,
    };
    if let Some(webhook) = &config.alert_webhook {
        webhook.check().context("[alert_webhook] in custos.toml")?;
    }
    // The detector follows the logs live in the background, starting with what was logged
    // while the node was down (a long backlog must not hold up serving access, and a detector
    // failure is retried by its loop, not fatal); new alerts are queued for the webhook when
    // one is configured.
    let detection = config.detection.clone().unwrap_or_default();
    let desk = Arc::new(
        service::AlertDesk::open(Arc::clone(&gate), detection, config.alert_webhook.is_some()).await.context("opening the alert desk")?,
    );
    let followers = Followers::start().await?;
    {
        let _on_followers = followers.enter();
        Arc::clone(&desk).spawn();
        if let Some(webhook) = config.alert_webhook.clone() {
            service::spawn_webhook(Arc::clone(desk.store()), webhook);
        }
        // Keeps each region's per-subject access index level with its log (reports also
        // catch up on their own before answering).
        service::spawn_subject_indexer(Arc::clone(gate.vault()));
    }
    let state = server::AppState::with_gate(gate, config.service_tokens.clone(), identity).with_alerts(Arc::clone(&desk)).with_config(config.clone());
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
    // The live loop holds the detector while it stores a step's alerts, so this saves a
    // state whose alerts are all stored; later steps are read again after the restart.
    desk.save().await.context("saving the detector checkpoint")?;
    Ok(())
}
