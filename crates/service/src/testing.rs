//! Test support (feature `testing`), shared by this crate's tests and the server's.
//! Test deployments over real backends: SQLite in a temporary directory, PostgreSQL on a
//! fresh schema (dropped afterwards), with a keyring file or a SoftHSM2 token. Raw access to
//! the stored rows lets tests tamper with them and take backups as an attacker would.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use model::{FieldKind, RegionId, SubjectId};
use seal::{DataKeyCache, KeyProvider, KeyringFile};
use crate::{ManualClock, RegionLog, RegionSetup, SubjectInput, ValidatedSubject, Vault, VaultOptions, validate_subject};
use store::testing::SchemaGuard;
use store::{LogStore, PostgresStore, RegionStore, SqliteStore, StoredKey, SubjectIndexStore};

pub enum Backend {
    Sqlite { dir: PathBuf },
    Postgres { url: String, schema: String, _guard: SchemaGuard },
}

pub struct TestVault {
    pub vault: Arc<Vault>,
    pub region: RegionId,
    pub keys: Arc<dyn KeyProvider>,
    pub store: Arc<dyn RegionStore>,
    /// The same store object, as the region's log store.
    pub log_store: Arc<dyn LogStore>,
    pub backend: Backend,
    pub root: tempfile::TempDir,
    clock: Arc<ManualClock>,
}

/// The seed of every test vault's log key; tests verify against [`TestVault::log_verifier_key`].
pub const TEST_LOG_SEED: [u8; 32] = [7; 32];
/// Every test vault's blind-index key.
pub const TEST_SEARCH_KEY: [u8; 32] = [9; 32];
/// The seed of every test vault's subject token key.
pub const TEST_SUBJECT_TOKEN_SEED: [u8; 32] = [11; 32];
/// Host of every test vault's log origin.
pub const TEST_LOG_ORIGIN_HOST: &str = "custos.test";

/// A member of staff of `platform-us`, working from the US in region `us`, with `roles`.
pub fn us_staff(id: &str, roles: &[&str]) -> crate::Caller {
    crate::Caller {
        id: id.to_owned(),
        kind: crate::CallerKind::Staff,
        roles: roles.iter().map(|role| (*role).to_owned()).collect(),
        team: None,
        entity: Some("platform-us".to_owned()),
        country: Some("US".to_owned()),
        region: Some("us".to_owned()),
    }
}

pub fn region(name: &str) -> RegionId {
    RegionId::new(name).unwrap()
}

pub fn subject(name: &str) -> SubjectId {
    SubjectId::new(name).unwrap()
}

pub fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()))
}

pub fn keyring(root: &tempfile::TempDir, region: &RegionId) -> Arc<dyn KeyProvider> {
    let path = root.path().join("keyring.json");
    if !path.exists() {
        KeyringFile::create(&path, std::slice::from_ref(region)).unwrap();
    }
    Arc::new(KeyringFile::open(&path, region.clone()).unwrap())
}

pub async fn sqlite_vault(keys: Option<Arc<dyn KeyProvider>>) -> TestVault {
    let root = tempfile::tempdir().unwrap();
    let region = region("us");
    let keys = keys.unwrap_or_else(|| keyring(&root, &region));
    let dir = root.path().join("regions");
    let store = Arc::new(SqliteStore::open(&dir, region.clone()).unwrap());
    build(root, region, keys, store.clone(), store.clone(), store, Backend::Sqlite { dir }).await
}

/// A vault on a fresh PostgreSQL schema, or `None` (after a SKIP line) without a server.
pub async fn postgres_vault(keys: Option<Arc<dyn KeyProvider>>, region_name: Option<RegionId>) -> Option<TestVault> {
    let url = store::testing::postgres_url_or_skip().await?;
    let root = tempfile::tempdir().unwrap();
    let region = region_name.unwrap_or_else(store::testing::unique_region);
    let guard = SchemaGuard::new(&url, &region);
    let keys = keys.unwrap_or_else(|| keyring(&root, &region));
    let store = Arc::new(PostgresStore::connect(&url, region.clone()).await.unwrap());
    let schema = guard.schema().to_owned();
    Some(build(root, region, keys, store.clone(), store.clone(), store, Backend::Postgres { url, schema, _guard: guard }).await)
}

/// The vault with the region's log started (no periodic signer: tests sign on demand).
async fn build(
    root: tempfile::TempDir,
    region: RegionId,
    keys: Arc<dyn KeyProvider>,
    store: Arc<dyn RegionStore>,
    log_store: Arc<dyn LogStore>,
    subject_index: Arc<dyn SubjectIndexStore>,
    backend: Backend,
) -> TestVault {
    let setup = RegionSetup { region: region.clone(), store: Arc::clone(&store), keys: Arc::clone(&keys) };
    let origin = crate::log_origin(TEST_LOG_ORIGIN_HOST, &region);
    let log = RegionLog::start(region.clone(), Arc::clone(&log_store), &origin, &TEST_LOG_SEED, None).await.unwrap().with_subject_index(subject_index);
    let clock = clock();
    let vault = Vault::new(vec![setup], VaultOptions { geo: None, clock: clock.clone(), cache: DataKeyCache::default() })
        .with_logs(vec![log])
        .with_search_keys(vec![(region.clone(), zeroize::Zeroizing::new(TEST_SEARCH_KEY))]);
    TestVault { vault: Arc::new(vault), region, keys, store, log_store, backend, root, clock }
}

/// The personal values every test ingests; none of them may ever appear in storage.
pub const KNOWN_VALUES: [(&str, &str); 6] = [
    ("ip_address", "198.51.100.23"),
    ("email", "ada.reporter@newsroom.example"),
    ("phone", "+12125550123"),
    ("name", "Ada Lovelace-Reporter"),
    ("location", "40.712800,-74.006000"),
    ("device_id", "device-7f3a9c1e5b"),
];

pub fn person(id: &str, region: &RegionId, values: &[(&str, &str)]) -> ValidatedSubject {
    let mut grouped: std::collections::BTreeMap<String, Vec<crate::ValueInput>> = std::collections::BTreeMap::new();
    for (field, value) in values {
        grouped.entry((*field).to_owned()).or_default().push(crate::ValueInput::Plain((*value).to_owned()));
    }
    let values = grouped;
    let input = SubjectInput { id: id.to_owned(), region: region.to_string(), labels: vec![], staff: None, values };
    validate_subject(&input).unwrap()
}

impl TestVault {
    /// Access control over this vault: the default policy set and a SQLite directory in the
    /// test's temporary directory, with `settings`.
    pub fn gate(&self, settings: crate::AccessSettings) -> Arc<crate::Gate> {
        let directory = Arc::new(store::SqliteDirectory::open(self.root.path()).unwrap());
        let engine = Arc::new(policy::PolicyEngine::default_set().unwrap());
        let alerts: Arc<dyn store::AlertStore> = directory.clone();
        Arc::new(
            crate::Gate::new(Arc::clone(&self.vault), directory, engine, settings)
                .with_alerts(alerts)
                .with_subject_tokens(Arc::new(self.subject_token_keys())),
        )
    }

    /// The subject token keys every test gate uses (from [`TEST_SUBJECT_TOKEN_SEED`]).
    pub fn subject_token_keys(&self) -> crate::SubjectTokenKeys {
        crate::SubjectTokenKeys::from_seeds(TEST_LOG_ORIGIN_HOST, vec![(self.region.clone(), zeroize::Zeroizing::new(TEST_SUBJECT_TOKEN_SEED))])
    }

    /// The test clock (every test vault runs on a [`ManualClock`]).
    pub fn clock(&self) -> &ManualClock {
        self.clock.as_ref()
    }

    /// The verifier key of the region's log.
    pub fn log_verifier_key(&self) -> String {
        self.vault.log(&self.region).unwrap().verifier_key()
    }

    pub async fn ingest(&self, id: &str, values: &[(&str, &str)]) {
        self.vault.ingest(vec![person(id, &self.region, values)]).await.unwrap();
    }

    /// Client for raw SQL on the PostgreSQL schema.
    async fn postgres(&self) -> Option<(tokio_postgres::Client, String)> {
        let Backend::Postgres { url, schema, .. } = &self.backend else { return None };
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        Some((client, schema.clone()))
    }

    /// The sealed bytes of a subject's only value of `field`.
    pub async fn sealed(&self, id: &str, field: FieldKind) -> Vec<u8> {
        let values = self.store.values(&subject(id), &[field]).await.unwrap();
        assert_eq!(values.len(), 1);
        values[0].sealed.clone()
    }

    /// Makes the region's log storage fail from now on, as a full disk or a dropped table
    /// would: its entry table is renamed behind custos' back. Subjects and values stay
    /// readable, so a read that still succeeded would have skipped the log.
    pub async fn break_log_storage(&self) {
        match &self.backend {
            Backend::Sqlite { dir } => {
                let connection = rusqlite::Connection::open(dir.join(format!("{}.db", self.region))).unwrap();
                connection.execute_batch("ALTER TABLE log_entries RENAME TO log_entries_gone").unwrap();
            }
            Backend::Postgres { .. } => {
                let (client, schema) = self.postgres().await.unwrap();
                client.batch_execute(&format!("ALTER TABLE \"{schema}\".log_entries RENAME TO log_entries_gone")).await.unwrap();
            }
        }
    }

    /// Overwrites the sealed bytes of a subject's values of `field`, behind custos' back.
    pub async fn set_sealed(&self, id: &str, field: FieldKind, sealed: &[u8]) {
        match &self.backend {
            Backend::Sqlite { dir } => {
                let connection = rusqlite::Connection::open(dir.join(format!("{}.db", self.region))).unwrap();
                let changed = connection
                    .execute(
                        "UPDATE field_values SET sealed = ?1 WHERE subject_id = ?2 AND field = ?3",
                        rusqlite::params![sealed, id, field.as_str()],
                    )
                    .unwrap();
                assert_eq!(changed, 1);
            }
            Backend::Postgres { .. } => {
                let (client, schema) = self.postgres().await.unwrap();
                let changed = client
                    .execute(
                        &format!("UPDATE \"{schema}\".field_values SET sealed = $1 WHERE subject_id = $2 AND field = $3"),
                        &[&sealed, &id, &field.as_str()],
                    )
                    .await
                    .unwrap();
                assert_eq!(changed, 1);
            }
        }
    }

    /// Every byte the backend stores for this region: the SQLite files (database and WAL),
    /// or every row of every table of the PostgreSQL schema as text and binary.
    pub async fn stored_bytes(&self) -> Vec<u8> {
        match &self.backend {
            Backend::Sqlite { dir } => {
                let mut bytes = Vec::new();
                let mut files = 0;
                for entry in std::fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    bytes.extend(std::fs::read(&path).unwrap());
                    files += 1;
                }
                assert!(files >= 2, "expected the database and its WAL, found {files} files");
                bytes
            }
            Backend::Postgres { .. } => {
                let (client, schema) = self.postgres().await.unwrap();
                let tables = client
                    .query("SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1", &[&schema])
                    .await
                    .unwrap();
                assert!(tables.len() >= 4, "expected the custos tables in {schema}");
                let mut bytes = Vec::new();
                for table in tables {
                    let name: String = table.get(0);
                    for row in client.query(&format!("SELECT t::text FROM \"{schema}\".\"{name}\" t"), &[]).await.unwrap() {
                        let text: String = row.get(0);
                        bytes.extend(text.as_bytes());
                    }
                    // bytea columns again, raw, in case text rendering hid anything.
                    let columns = client
                        .query(
                            "SELECT column_name::text FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 AND data_type = 'bytea'",
                            &[&schema, &name],
                        )
                        .await
                        .unwrap();
                    for column in columns {
                        let column: String = column.get(0);
                        for row in client.query(&format!("SELECT \"{column}\" FROM \"{schema}\".\"{name}\""), &[]).await.unwrap() {
                            let raw: Vec<u8> = row.get(0);
                            bytes.extend(raw);
                        }
                    }
                }
                bytes
            }
        }
    }

    /// A copy of the region's storage as it is now (a backup an attacker may keep), opened as
    /// a store of its own.
    pub async fn backup(&self) -> Backup {
        match &self.backend {
            Backend::Sqlite { dir } => {
                let copy = self.root.path().join(format!("backup-{}", rand::random::<u32>()));
                std::fs::create_dir_all(&copy).unwrap();
                for entry in std::fs::read_dir(dir).unwrap() {
                    let path = entry.unwrap().path();
                    std::fs::copy(&path, copy.join(path.file_name().unwrap())).unwrap();
                }
                Backup { store: Arc::new(SqliteStore::open(&copy, self.region.clone()).unwrap()), _guard: None }
            }
            Backend::Postgres { url, schema, .. } => {
                let copy_region = store::testing::unique_region();
                let guard = SchemaGuard::new(url, &copy_region);
                let copy = PostgresStore::connect(url, copy_region).await.unwrap();
                let (client, _) = self.postgres().await.unwrap();
                let target = copy.schema().to_owned();
                for table in ["subjects", "data_keys", "field_values", "erasures"] {
                    client
                        .batch_execute(&format!("INSERT INTO \"{target}\".{table} SELECT * FROM \"{schema}\".{table}"))
                        .await
                        .unwrap();
                }
                Backup { store: Arc::new(copy), _guard: Some(guard) }
            }
        }
    }
}

pub struct Backup {
    pub store: Arc<dyn RegionStore>,
    _guard: Option<SchemaGuard>,
}

impl Backup {
    pub async fn data_key(&self, id: &str) -> Option<StoredKey> {
        self.store.data_keys(&[subject(id)]).await.unwrap().into_iter().next()
    }
}

