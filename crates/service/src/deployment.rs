//! A deployment on disk: the data directory, its configuration file, and opening the regions
//! it names with their storage and key providers.
//!
//! Layout of a data directory (SQLite, keyring defaults):
//! - `custos.toml` — the configuration ([`Config`]);
//! - `keyring.json` — key-encryption keys, mode 0600 (keyring provider only);
//! - `regions/<region>.db` — one SQLite database per region (SQLite backend only);
//! - `log-keys.json` — the access logs' Ed25519 signing seeds, mode 0600 ([`LogKeys`]);
//! - `directory.db` — staff, cases and pending access requests (SQLite backend only; on
//!   PostgreSQL the schema `custos_directory`).

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use model::{GeoDb, RegionId};
use seal::{DataKeyCache, KeyProvider, KeyringFile, Pkcs11Config, Pkcs11Provider};
use serde::{Deserialize, Serialize};
use policy::PolicyEngine;
use store::{DirectoryStore, LogStore, PostgresDirectory, PostgresStore, RegionStore, SqliteDirectory, SqliteStore, SubjectIndexStore};

use crate::log::{RegionLog, log_origin};
use crate::log_keys::LogKeys;
use crate::{AccessSettings, Clock, Gate, RegionSetup, SubjectTokenKeys, Vault, VaultOptions};

/// The PostgreSQL schema of a deployment's directory.
pub const DIRECTORY_SCHEMA_DEFAULT: &str = "custos_directory";

pub const CONFIG_FILE_NAME: &str = "custos.toml";
/// Held exclusively by the one process that has a deployment open (see [`open_deployment`]).
const LOCK_FILE_NAME: &str = "custos.lock";
const KEYRING_FILE_NAME: &str = "keyring.json";
const REGIONS_DIR_NAME: &str = "regions";
/// Prefix of service tokens, so that a leaked one is recognisable by secret scanners.
const SERVICE_TOKEN_PREFIX: &str = "cst_";
/// Host part of the log origins (`<host>/custos/<region>`) when the configuration names none.
pub const LOG_ORIGIN_HOST_DEFAULT: &str = "localhost";
/// How often each region's log is signed when the configuration does not say.
pub const CHECKPOINT_INTERVAL_MS_DEFAULT: u64 = 1_000;
/// Longest accepted checkpoint interval: a log that signs less often than this delays every
/// receipt's verifiability for too long.
pub const CHECKPOINT_INTERVAL_MS_MAX: u64 = 3_600_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The regions this node serves; it holds keys and storage for these only.
    pub regions: Vec<RegionId>,
    // Plain values before the tables, so that TOML can write them.
    /// Host part of each region's log origin, `<host>/custos/<region>`: the name in the
    /// signed checkpoints and the verifier key. Default `localhost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_origin_host: Option<String>,
    /// Milliseconds between checkpoint signings of each region's log. Default 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_ms: Option<u64>,
    /// How many of the configured witnesses must cosign a checkpoint before it is reported
    /// witnessed. Default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub witness_quorum: Option<usize>,
    pub storage: StorageConfig,
    pub keys: KeysConfig,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<GeoConfig>,
    /// Machine identities allowed to call the ingest API. Only token digests are stored.
    #[serde(default)]
    pub service_tokens: Vec<ServiceToken>,
    /// Witnesses whose C2SP tlog-cosignature/v1 cosignatures of this deployment's checkpoints
    /// are accepted and served.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub witnesses: Vec<WitnessConfig>,
    /// A directory of Cedar policies replacing the default set (relative paths are taken
    /// from the data directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<PathBuf>,
    /// Approvers, approval lifetime, the countries of each region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access: Option<AccessConfig>,
    /// The identity provider whose JWTs staff and machines present (issuer, audience,
    /// JWKS). Without it the staff routes answer 503. A relative `jwks_file` is taken from
    /// the data directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<auth::IdentityConfig>,
    /// Detector thresholds, windows and severities per rule (`[detection]`,
    /// `[detection.<rule>]`); every rule with its defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detection: Option<detect::DetectionConfig>,
    /// Where new alerts are posted (`[alert_webhook]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_webhook: Option<crate::alert_desk::WebhookConfig>,
    /// What the record of processing needs from the controller (`[processing]`): controller,
    /// contacts, each purpose's description and legal basis, recipients, retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processing: Option<crate::processing::ProcessingConfig>,
}

impl Config {
    /// The identity configuration with a relative JWKS file resolved against `dir`.
    pub fn identity_in(&self, dir: &Path) -> Option<auth::IdentityConfig> {
        self.identity.clone().map(|mut identity| {
            if let auth::JwksSource::File(path) = &identity.jwks
                && path.is_relative()
            {
                identity.jwks = auth::JwksSource::File(dir.join(path));
            }
            identity
        })
    }
}

/// Where `custos init --dev-issuer` puts the development token issuer.
pub const DEV_ISSUER_DIR_NAME: &str = "dev-issuer";
/// The development issuer's `iss` and the audience its tokens carry.
pub const DEV_ISSUER_NAME: &str = "custos-dev-issuer";
pub const DEV_AUDIENCE: &str = "custos";

/// One `[[witnesses]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WitnessConfig {
    /// The witness's cosignature verifier key (signed-note vkey of type 0x04), as
    /// `custos log witness init` prints it.
    pub vkey: String,
}

impl Config {
    /// The configured witnesses' verifiers (already validated by [`read_config`]).
    pub fn witness_verifiers(&self) -> Vec<tlog::CosignatureVerifier> {
        self.witnesses.iter().filter_map(|witness| tlog::CosignatureVerifier::from_vkey(&witness.vkey).ok()).collect()
    }
}

/// The `[access]` section.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessConfig {
    /// Roles that may approve colleagues' requests. Default `["privacy_officer"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approver_roles: Option<Vec<String>>,
    /// How long a request waits for approval, in seconds. Default 86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_ttl_seconds: Option<u64>,
    /// ISO countries inside each region, e.g. `us = ["US"]`: staff working from elsewhere
    /// read that region's subjects cross-border.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub region_countries: BTreeMap<String, Vec<String>>,
    /// Roles whose machine identities may exchange a platform session for a subject token.
    /// Default `["subject_token_exchange"]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token_roles: Option<Vec<String>>,
    /// How long a subject token is valid, in seconds. Default 300, at most 3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_token_lifetime_seconds: Option<u64>,
    /// Accesses younger than this many seconds are withheld from a subject's report (and
    /// counted). Default 0, at most a year.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_notice_delay_seconds: Option<u64>,
    /// Whether subject reports name the id of each actor. Default false: role, employing
    /// entity and country only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_actor_ids: Option<bool>,
}

/// Longest notice delay a deployment may set: a year.
pub const REPORT_NOTICE_DELAY_SECONDS_MAX: u64 = 366 * 24 * 3600;

/// Longest accepted approval lifetime: a week.
pub const APPROVAL_TTL_SECONDS_MAX: u64 = 7 * 24 * 3600;

impl AccessConfig {
    pub fn settings(&self) -> AccessSettings {
        let mut settings = AccessSettings::default();
        if let Some(roles) = &self.approver_roles {
            settings.approver_roles = roles.iter().cloned().collect();
        }
        if let Some(seconds) = self.approval_ttl_seconds {
            settings.approval_ttl = Duration::from_secs(seconds);
        }
        if let Some(roles) = &self.subject_token_roles {
            settings.subject_token_roles = roles.iter().cloned().collect();
        }
        if let Some(seconds) = self.subject_token_lifetime_seconds {
            settings.subject_token_lifetime = Duration::from_secs(seconds);
        }
        if let Some(seconds) = self.report_notice_delay_seconds {
            settings.report_notice_delay = Duration::from_secs(seconds);
        }
        settings.report_actor_ids = self.report_actor_ids.unwrap_or(false);
        settings.region_countries =
            self.region_countries.iter().map(|(region, countries)| (region.clone(), countries.iter().cloned().collect())).collect();
        settings
    }
}

impl Config {
    pub fn log_origin_host(&self) -> &str {
        self.log_origin_host.as_deref().unwrap_or(LOG_ORIGIN_HOST_DEFAULT)
    }

    pub fn checkpoint_interval(&self) -> Duration {
        Duration::from_millis(self.checkpoint_interval_ms.unwrap_or(CHECKPOINT_INTERVAL_MS_DEFAULT))
    }

    /// The origin of `region`'s log under this configuration.
    pub fn log_origin(&self, region: &RegionId) -> String {
        log_origin(self.log_origin_host(), region)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "backend", rename_all = "snake_case", deny_unknown_fields)]
pub enum StorageConfig {
    /// One database file per region under `<data>/regions/`.
    Sqlite,
    /// One schema per region in this database.
    Postgres { url: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "provider", rename_all = "snake_case", deny_unknown_fields)]
pub enum KeysConfig {
    /// Key-encryption keys in `<data>/keyring.json` (mode 0600).
    Keyring,
    /// Key-encryption keys generated in and never leaving a PKCS#11 token. The PIN is read
    /// from the environment variable named by `pin_env`, never from this file.
    Pkcs11 { module: PathBuf, token: String, pin_env: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoConfig {
    /// An IP → country database in MaxMind DB format.
    pub mmdb: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceToken {
    pub name: String,
    /// Hex SHA-256 of the bearer token.
    pub sha256: String,
}

impl ServiceToken {
    /// Does `presented` hash to this token's digest? Compares in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        let digest = hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, presented.as_bytes()));
        aws_lc_rs::constant_time::verify_slices_are_equal(digest.as_bytes(), self.sha256.as_bytes()).is_ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    #[error("{path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("{path} already holds a deployment; refusing to overwrite it")]
    AlreadyInitialized { path: PathBuf },
    #[error("{path} holds no deployment (no {CONFIG_FILE_NAME}); run `custos init --data {path}` first")]
    NotInitialized { path: PathBuf },
    #[error("{path} is in use by another custos process (stop it first: one process per deployment)")]
    InUse { path: PathBuf },
    #[error("{path}: invalid configuration: {message}")]
    Config { path: PathBuf, message: String },
    #[error("keys for region {region}: {message}")]
    Keys { region: RegionId, message: String },
    #[error("storage for region {region}: {message}")]
    Storage { region: RegionId, message: String },
    #[error("geo database {path}: {message}")]
    Geo { path: PathBuf, message: String },
    #[error("log keys: {0}")]
    LogKeys(#[from] crate::LogKeyError),
    #[error("access log of region {region}: {message}")]
    Log { region: RegionId, message: String },
    #[error("staff and case directory: {message}")]
    Directory { message: String },
    #[error("policies {path}: {message}")]
    Policy { path: PathBuf, message: String },
}

/// What `custos init` sets up.
#[derive(Debug, Clone)]
pub struct InitOptions {
    pub regions: Vec<RegionId>,
    pub storage: StorageConfig,
    pub keys: KeysConfig,
    pub geo: Option<GeoConfig>,
    /// Create a local development token issuer (`custos staff token`) and trust it. Never
    /// for production: whoever reads the data directory can mint any identity.
    pub dev_issuer: bool,
}

/// Creates a data directory: configuration, keyring (for the keyring provider) and one
/// service token, returned in clear exactly once.
pub fn init_data_dir(dir: &Path, options: InitOptions) -> Result<String, DeploymentError> {
    let io = |path: &Path, error: std::io::Error| DeploymentError::Io { path: path.to_owned(), message: error.to_string() };
    let config_path = dir.join(CONFIG_FILE_NAME);
    if config_path.exists() {
        return Err(DeploymentError::AlreadyInitialized { path: dir.to_owned() });
    }
    if options.regions.is_empty() {
        return Err(DeploymentError::Config { path: config_path, message: "at least one region is required".to_owned() });
    }
    fs::create_dir_all(dir).map_err(|error| io(dir, error))?;
    if options.keys == KeysConfig::Keyring {
        KeyringFile::create(dir.join(KEYRING_FILE_NAME), &options.regions).map_err(|error| DeploymentError::Keys {
            region: options.regions[0].clone(),
            message: error.to_string(),
        })?;
    }
    LogKeys::in_data_dir(dir).seeds_creating(&options.regions)?;
    LogKeys::search_in_data_dir(dir).seeds_creating(&options.regions)?;
    let identity = if options.dev_issuer {
        let issuer_dir = dir.join(DEV_ISSUER_DIR_NAME);
        fs::create_dir_all(&issuer_dir).map_err(|error| io(&issuer_dir, error))?;
        let issuer = auth::DevIssuer::create(&issuer_dir, DEV_ISSUER_NAME, DEV_AUDIENCE)
            .map_err(|error| DeploymentError::Io { path: issuer_dir.clone(), message: error.to_string() })?;
        let mut identity = issuer.identity_config();
        identity.jwks = auth::JwksSource::File(PathBuf::from(DEV_ISSUER_DIR_NAME).join(auth::DEV_JWKS_FILE));
        Some(identity)
    } else {
        None
    };
    let token = new_service_token()?;
    let config = Config {
        regions: options.regions,
        storage: options.storage,
        keys: options.keys,
        geo: options.geo,
        service_tokens: vec![ServiceToken {
            name: "platform".to_owned(),
            sha256: hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes())),
        }],
        log_origin_host: Some(LOG_ORIGIN_HOST_DEFAULT.to_owned()),
        checkpoint_interval_ms: Some(CHECKPOINT_INTERVAL_MS_DEFAULT),
        witness_quorum: None,
        witnesses: Vec::new(),
        policies: None,
        access: None,
        identity,
        detection: None,
        alert_webhook: None,
        processing: None,
    };
    let text = toml::to_string_pretty(&config)
        .map_err(|error| DeploymentError::Config { path: config_path.clone(), message: error.to_string() })?;
    let mut file = fs::File::create_new(&config_path).map_err(|error| io(&config_path, error))?;
    file.write_all(format!("# custos deployment configuration (see docs/configuration.md)\n{text}{PROCESSING_TEMPLATE}").as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|error| io(&config_path, error))?;
    Ok(token)
}

/// Appended to a new configuration: what the record of processing needs from the controller
/// (docs/processing.md), commented out until the controller states it.
const PROCESSING_TEMPLATE: &str = r#"
# The record of processing (`custos report --processing`, GDPR Art. 30) reads purposes,
# roles, views, regions and security measures off this deployment and its policies. What
# only the controller can state goes here; the record lists whatever is missing as a gap.
# [processing]
# controller = "Example Platform Ltd, 1 Example Street, Dublin"
# contact = "privacy@platform.example"
# dpo = "dpo@platform.example"
# data_subjects = ["users of the platform"]
# [processing.purposes.support]
# description = "Answering a user's support ticket"
# legal_basis = "Art. 6(1)(b): performance of the contract"
# [processing.retention]
# ip_address = "180 days after collection"
# [[processing.recipients]]
# name = "Mail relay"
# kind = "processor"
# country = "DE"
# purposes = ["app_function"]
# safeguards = "only needed outside the regions' countries, e.g. standard contractual clauses"
"#;

fn new_service_token() -> Result<String, DeploymentError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| DeploymentError::Io { path: PathBuf::from("<random>"), message: "system random failed".to_owned() })?;
    Ok(format!("{SERVICE_TOKEN_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// Reads `<dir>/custos.toml`.
pub fn read_config(dir: &Path) -> Result<Config, DeploymentError> {
    let path = dir.join(CONFIG_FILE_NAME);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Err(DeploymentError::NotInitialized { path: dir.to_owned() });
        }
        Err(error) => return Err(DeploymentError::Io { path, message: error.to_string() }),
    };
    let config: Config = toml::from_str(&text).map_err(|error| DeploymentError::Config { path: path.clone(), message: error.to_string() })?;
    if config.regions.is_empty() {
        return Err(DeploymentError::Config { path, message: "`regions` is empty".to_owned() });
    }
    if let Some(interval) = config.checkpoint_interval_ms
        && !(1..=CHECKPOINT_INTERVAL_MS_MAX).contains(&interval)
    {
        return Err(DeploymentError::Config {
            path,
            message: format!("`checkpoint_interval_ms` must be between 1 and {CHECKPOINT_INTERVAL_MS_MAX}"),
        });
    }
    if let Some(seconds) = config.access.as_ref().and_then(|access| access.approval_ttl_seconds)
        && !(1..=APPROVAL_TTL_SECONDS_MAX).contains(&seconds)
    {
        return Err(DeploymentError::Config {
            path,
            message: format!("`access.approval_ttl_seconds` must be between 1 and {APPROVAL_TTL_SECONDS_MAX}"),
        });
    }
    if let Some(seconds) = config.access.as_ref().and_then(|access| access.report_notice_delay_seconds)
        && seconds > REPORT_NOTICE_DELAY_SECONDS_MAX
    {
        return Err(DeploymentError::Config {
            path,
            message: format!("`access.report_notice_delay_seconds` must be at most {REPORT_NOTICE_DELAY_SECONDS_MAX}"),
        });
    }
    let subject_token_lifetime_seconds_max = crate::SUBJECT_TOKEN_LIFETIME_MAX.as_secs();
    if let Some(seconds) = config.access.as_ref().and_then(|access| access.subject_token_lifetime_seconds)
        && !(1..=subject_token_lifetime_seconds_max).contains(&seconds)
    {
        return Err(DeploymentError::Config {
            path,
            message: format!("`access.subject_token_lifetime_seconds` must be between 1 and {subject_token_lifetime_seconds_max}"),
        });
    }
    for (index, witness) in config.witnesses.iter().enumerate() {
        if let Err(error) = tlog::CosignatureVerifier::from_vkey(&witness.vkey) {
            return Err(DeploymentError::Config { path, message: format!("`witnesses[{index}].vkey` is not a cosignature key: {error}") });
        }
    }
    if config.witness_quorum.unwrap_or(0) > config.witnesses.len() {
        return Err(DeploymentError::Config {
            path,
            message: format!("`witness_quorum` {} exceeds the {} configured witnesses", config.witness_quorum.unwrap_or(0), config.witnesses.len()),
        });
    }
    if let Some(Err(message)) = config.processing.as_ref().map(crate::processing::ProcessingConfig::check) {
        return Err(DeploymentError::Config { path, message });
    }
    let host = config.log_origin_host();
    if host.is_empty() || host.contains(['/', ' ', '\n', '+']) || !host.is_ascii() {
        return Err(DeploymentError::Config {
            path,
            message: "`log_origin_host` must be a host name: non-empty ASCII without '/', '+', spaces or newlines".to_owned(),
        });
    }
    Ok(config)
}

/// Opens every region of the deployment in `dir`: storage, keys, optional geo database.
///
/// Only one process may have a deployment open at a time: creating data keys, erasing and
/// re-keying are serialized per region inside the process, and a second process (a `custos
/// keys rotate` next to a running server) could otherwise destroy a key-encryption key that
/// the first had just used. The lock is held until the process exits.
pub async fn open_deployment(dir: &Path, clock: Arc<dyn Clock>) -> Result<(Config, Vault), DeploymentError> {
    let config = read_config(dir)?;
    let lock = lock_deployment(dir)?;
    // Under the lock: only the process holding it draws missing log keys.
    let seeds = LogKeys::in_data_dir(dir).seeds_creating(&config.regions)?;
    let search_keys = LogKeys::search_in_data_dir(dir).seeds_creating(&config.regions)?;
    let mut regions = Vec::with_capacity(config.regions.len());
    let mut log_stores: Vec<(Arc<dyn LogStore>, Arc<dyn SubjectIndexStore>)> = Vec::with_capacity(config.regions.len());
    for region in &config.regions {
        let storage = |error: store::StoreError| DeploymentError::Storage { region: region.clone(), message: error.to_string() };
        // One object serves both the region's data and its log.
        let (store, log, index): (Arc<dyn RegionStore>, Arc<dyn LogStore>, Arc<dyn SubjectIndexStore>) = match &config.storage {
            StorageConfig::Sqlite => {
                let store = Arc::new(SqliteStore::open(&dir.join(REGIONS_DIR_NAME), region.clone()).map_err(storage)?);
                (store.clone(), store.clone(), store)
            }
            StorageConfig::Postgres { url } => {
                let store = Arc::new(PostgresStore::connect(url, region.clone()).await.map_err(storage)?);
                (store.clone(), store.clone(), store)
            }
        };
        let keys = open_keys(dir, &config.keys, region)?;
        regions.push(RegionSetup { region: region.clone(), store, keys });
        log_stores.push((log, index));
    }
    let mut logs = Vec::with_capacity(config.regions.len());
    for ((region, (store, index)), seed) in config.regions.iter().zip(log_stores).zip(&seeds) {
        let log = RegionLog::start(region.clone(), store, &config.log_origin(region), seed, Some(config.checkpoint_interval()))
            .await
            .map_err(|error| DeploymentError::Log { region: region.clone(), message: error.to_string() })?
            .with_witnesses(config.witness_verifiers(), config.witness_quorum.unwrap_or(0))
            .with_subject_index(index);
        logs.push(log);
    }
    let geo = match &config.geo {
        Some(geo) => {
            let bytes = fs::read(&geo.mmdb).map_err(|error| DeploymentError::Geo { path: geo.mmdb.clone(), message: error.to_string() })?;
            Some(Arc::new(
                GeoDb::from_bytes(bytes).map_err(|error| DeploymentError::Geo { path: geo.mmdb.clone(), message: error.to_string() })?,
            ))
        }
        None => None,
    };
    let vault = Vault::new(regions, VaultOptions { geo, clock, cache: DataKeyCache::default() })
        .with_logs(logs)
        .with_search_keys(config.regions.iter().cloned().zip(search_keys).collect())
        .holding(lock);
    vault.complete_pending_shreds().await.map_err(|error| DeploymentError::Keys {
        region: config.regions[0].clone(),
        message: format!("failed to finish an interrupted erase or rotation: {error}"),
    })?;
    Ok((config, vault))
}

/// Opens the deployment in `dir` for access: the vault with its logs, the directory (staff,
/// cases, pending requests) in the same storage, and the policy set in force.
pub async fn open_gate(dir: &Path, clock: Arc<dyn Clock>) -> Result<(Config, Gate), DeploymentError> {
    let (config, vault) = open_deployment(dir, clock).await?;
    let directory_failed = |error: store::StoreError| DeploymentError::Directory { message: error.to_string() };
    // One database holds the directory and the alerts.
    let (directory, alerts): (Arc<dyn DirectoryStore>, Arc<dyn store::AlertStore>) = match &config.storage {
        StorageConfig::Sqlite => {
            let directory = Arc::new(SqliteDirectory::open(dir).map_err(directory_failed)?);
            (directory.clone(), directory)
        }
        StorageConfig::Postgres { url } => {
            let directory = Arc::new(PostgresDirectory::connect(url, DIRECTORY_SCHEMA_DEFAULT).await.map_err(directory_failed)?);
            (directory.clone(), directory)
        }
    };
    let engine = match &config.policies {
        Some(policies) => {
            let path = dir.join(policies);
            PolicyEngine::load_dir(&path).map_err(|error| DeploymentError::Policy { path, message: error.to_string() })?
        }
        None => PolicyEngine::default_set()
            .map_err(|error| DeploymentError::Policy { path: PathBuf::from("<default policies>"), message: error.to_string() })?,
    };
    let settings = config.access.clone().unwrap_or_default().settings();
    // The vault holds the deployment lock, so only this process draws missing keys.
    let seeds = LogKeys::subject_tokens_in_data_dir(dir).seeds_creating(&config.regions)?;
    let subject_tokens = SubjectTokenKeys::from_seeds(config.log_origin_host(), config.regions.iter().cloned().zip(seeds).collect());
    let gate = Gate::new(Arc::new(vault), directory, Arc::new(engine), settings)
        .with_alerts(alerts)
        .with_subject_tokens(Arc::new(subject_tokens));
    Ok((config, gate))
}

/// The verifier key (`<origin>+<key id hex>+<base64 type ‖ public key>`, the signed-note
/// vkey form) of `region`'s log in the deployment at `dir`, for `custos log key`. Creates the
/// region's signing key if the deployment predates log keys and no process has it open
/// (a running node creates missing keys when it opens the deployment).
pub fn log_verifier_key(dir: &Path, region: &RegionId) -> Result<String, DeploymentError> {
    let config = read_config(dir)?;
    if !config.regions.contains(region) {
        return Err(DeploymentError::Config {
            path: dir.join(CONFIG_FILE_NAME),
            message: format!("region {region} is not served by this deployment"),
        });
    }
    let keys = LogKeys::in_data_dir(dir);
    let seed = match keys.seed(region) {
        Ok(seed) => seed,
        Err(crate::LogKeyError::Missing { .. }) => match lock_deployment(dir) {
            Ok(_lock) => keys.seeds_creating(std::slice::from_ref(region))?.remove(0),
            // The holder created every missing key when it opened the deployment.
            Err(DeploymentError::InUse { .. }) => keys.seed(region)?,
            Err(error) => return Err(error),
        },
        Err(error) => return Err(error.into()),
    };
    let origin = config.log_origin(region);
    let signer = tlog::Signer::new(&origin, &seed)
        .map_err(|error| DeploymentError::Log { region: region.clone(), message: error.to_string() })?;
    Ok(signer.verifier().to_vkey())
}

fn lock_deployment(dir: &Path) -> Result<fs::File, DeploymentError> {
    let path = dir.join(LOCK_FILE_NAME);
    let io = |error: std::io::Error| DeploymentError::Io { path: path.clone(), message: error.to_string() };
    let file = fs::OpenOptions::new().create(true).truncate(false).write(true).open(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => Err(DeploymentError::InUse { path: dir.to_owned() }),
        Err(fs::TryLockError::Error(error)) => Err(io(error)),
    }
}

fn open_keys(dir: &Path, keys: &KeysConfig, region: &RegionId) -> Result<Arc<dyn KeyProvider>, DeploymentError> {
    let failed = |message: String| DeploymentError::Keys { region: region.clone(), message };
    match keys {
        KeysConfig::Keyring => Ok(Arc::new(
            KeyringFile::open(dir.join(KEYRING_FILE_NAME), region.clone()).map_err(|error| failed(error.to_string()))?,
        )),
        KeysConfig::Pkcs11 { module, token, pin_env } => {
            let pin = std::env::var(pin_env).map_err(|_| failed(format!("environment variable {pin_env} (the token PIN) is not set")))?;
            let config = Pkcs11Config { module: module.clone(), token_label: token.clone(), pin };
            Ok(Arc::new(Pkcs11Provider::open(config, region.clone()).map_err(|error| failed(error.to_string()))?))
        }
    }
}
