//! Helpers for tests that need a real database, shared by this crate's tests and those of
//! the crates above it: finding the test PostgreSQL server (or skipping loudly when it is
//! absent), unique region and directory schema names, and dropping a test schema even when
//! the test fails.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use model::RegionId;

use crate::{PostgresDirectory, PostgresStore};

/// Environment variable naming the test PostgreSQL server.
pub const DATABASE_URL_VARIABLE: &str = "CUSTOS_TEST_DATABASE_URL";
/// Used when [`DATABASE_URL_VARIABLE`] is not set.
pub const DATABASE_URL_DEFAULT: &str = "postgres://postgres@127.0.0.1:5432/test";
/// When this variable is `1`, an unreachable server fails the test instead of skipping it
/// (set in CI, where a skipped backend would hide a broken one).
pub const REQUIRE_POSTGRES_VARIABLE: &str = "CUSTOS_REQUIRE_POSTGRES";
/// How long the reachability probe waits for the server.
pub const PROBE_TIMEOUT_MS: u64 = 5_000;

/// The test server's URL if it answers. Otherwise prints
/// `SKIP postgres tests: <url> unreachable: <error>` and returns `None`, or panics when
/// [`REQUIRE_POSTGRES_VARIABLE`] is `1`.
pub async fn postgres_url_or_skip() -> Option<String> {
    let url =
        std::env::var(DATABASE_URL_VARIABLE).unwrap_or_else(|_| DATABASE_URL_DEFAULT.to_owned());
    match probe(&url).await {
        Ok(()) => Some(url),
        Err(error) => {
            if std::env::var(REQUIRE_POSTGRES_VARIABLE).is_ok_and(|value| value == "1") {
                panic!(
                    "postgres tests are required ({REQUIRE_POSTGRES_VARIABLE}=1) but {url} is unreachable: {error}"
                );
            }
            eprintln!("SKIP postgres tests: {url} unreachable: {error}");
            None
        }
    }
}

async fn probe(url: &str) -> Result<(), String> {
    let mut config: tokio_postgres::Config = url
        .parse()
        .map_err(|error| format!("invalid url: {error}"))?;
    config.connect_timeout(Duration::from_millis(PROBE_TIMEOUT_MS));
    let connecting = config.connect(tokio_postgres::NoTls);
    let (client, connection) =
        tokio::time::timeout(Duration::from_millis(PROBE_TIMEOUT_MS), connecting)
            .await
            .map_err(|_| format!("no answer within {PROBE_TIMEOUT_MS} ms"))?
            .map_err(crate::postgres::postgres_detail)?;
    let driver = tokio::spawn(connection);
    let answer = client.simple_query("SELECT 1").await.map(|_| ());
    drop(client);
    let _ = driver.await;
    answer.map_err(crate::postgres::postgres_detail)
}

/// A region name no other test (in this or another process) uses: `t<pid>-<time>-<n>`.
pub fn unique_region() -> RegionId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    // The time part keeps names apart across runs that reuse a process id, should a run have
    // been killed before its guard dropped its schema.
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_micros() % 1_000_000_000)
        .unwrap_or(0);
    let name = format!("t{}-{micros}-{count}", std::process::id());
    RegionId::new(&name).expect("the test region name is valid")
}

/// Connects a store on a fresh region schema; the returned guard drops the schema when it
/// goes out of scope, also when the test panics.
pub async fn postgres_test_store(url: &str) -> (PostgresStore, SchemaGuard) {
    let region = unique_region();
    // Made before connecting, so that a schema left half-migrated is dropped as well.
    let guard = SchemaGuard::new(url, &region);
    let store = PostgresStore::connect(url, region)
        .await
        .expect("connect to the test database");
    (store, guard)
}

/// A directory schema name no other test uses: the schema of a [`unique_region`] with
/// `_directory` appended.
pub fn unique_directory_schema() -> String {
    format!("{}_directory", PostgresStore::schema_for(&unique_region()))
}

/// Connects a directory on a fresh schema; the returned guard drops the schema when it goes
/// out of scope, also when the test panics.
pub async fn postgres_test_directory(url: &str) -> (PostgresDirectory, SchemaGuard) {
    let schema = unique_directory_schema();
    // Made before connecting, so that a schema left half-migrated is dropped as well.
    let guard = SchemaGuard::for_schema(url, &schema);
    let directory = PostgresDirectory::connect(url, &schema)
        .await
        .expect("connect the directory to the test database");
    (directory, guard)
}

/// Drops a region's (or any test) schema on drop. Drop cannot await, and the test's runtime may be the
/// single thread that is dropping this guard, so it uses its own thread, runtime and
/// connection.
#[derive(Debug)]
pub struct SchemaGuard {
    url: String,
    schema: String,
}

impl SchemaGuard {
    pub fn new(url: &str, region: &RegionId) -> SchemaGuard {
        SchemaGuard {
            url: url.to_owned(),
            schema: PostgresStore::schema_for(region),
        }
    }

    /// A guard for a schema named directly, such as a directory's.
    pub fn for_schema(url: &str, schema: &str) -> SchemaGuard {
        SchemaGuard {
            url: url.to_owned(),
            schema: schema.to_owned(),
        }
    }

    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl Drop for SchemaGuard {
    fn drop(&mut self) {
        let url = self.url.clone();
        let schema = self.schema.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|error| error.to_string())?;
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .map_err(crate::postgres::postgres_detail)?;
                let driver = tokio::spawn(connection);
                let result = client
                    .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
                    .await
                    .map_err(crate::postgres::postgres_detail);
                drop(client);
                let _ = driver.await;
                result
            })
        })
        .join();
        // Never panic here: this may run while the test is already unwinding.
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop test schema {}: {error}", self.schema),
            Err(_) => eprintln!(
                "could not drop test schema {}: the dropping thread panicked",
                self.schema
            ),
        }
    }
}
