//! The PostgreSQL backend: the conformance suite on a fresh schema per test (dropped at the
//! end, also on failure), region separation, and the schema version guard. Skips with a
//! `SKIP postgres tests: …` line when the server is unreachable, unless
//! `CUSTOS_REQUIRE_POSTGRES=1`.

use model::{RegionId, SubjectId};
use store::testing::{self, SchemaGuard};
use store::{
    PostgresStore, RegionStore, SCHEMA_VERSION, StoreError, SubjectUpsert, WriteBatch, conformance,
};

fn subject(name: &str) -> SubjectId {
    SubjectId::new(name).unwrap()
}

fn upsert(name: &str) -> WriteBatch {
    WriteBatch { blind_indexes: Vec::new(),
        subjects: vec![SubjectUpsert {
            id: subject(name),
            labels: Default::default(),
            staff: None,
            at_ms: 1,
        }],
        values: Vec::new(),
    }
}

async fn schema_exists(url: &str, schema: &str) -> bool {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*) FROM information_schema.schemata WHERE schema_name = $1",
            &[&schema],
        )
        .await
        .unwrap();
    drop(client);
    driver.await.unwrap().unwrap();
    row.get::<_, i64>(0) == 1
}

#[tokio::test]
async fn conformance_suite_passes_twice_on_one_schema() {
    let Some(url) = testing::postgres_url_or_skip().await else {
        return;
    };
    let (store, _guard) = testing::postgres_test_store(&url).await;
    conformance::run_all(&store).await;
    conformance::run_all(&store).await;
    conformance::run_log_all(&store, "postgres").await;
    conformance::run_log_all(&store, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subject_index_conformance_passes_twice_on_one_schema() {
    let Some(url) = testing::postgres_url_or_skip().await else {
        return;
    };
    let (store, _guard) = testing::postgres_test_store(&url).await;
    store::subject_index_conformance::run_all(&store, "postgres").await;
    store::subject_index_conformance::run_all(&store, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_a_multi_thread_runtime() {
    let Some(url) = testing::postgres_url_or_skip().await else {
        return;
    };
    let (store, _guard) = testing::postgres_test_store(&url).await;
    conformance::run_all(&store).await;
    conformance::run_log_all(&store, "postgres").await;
}

#[tokio::test]
async fn regions_are_separate_schemas() {
    let Some(url) = testing::postgres_url_or_skip().await else {
        return;
    };
    let (first, first_guard) = testing::postgres_test_store(&url).await;
    let (second, second_guard) = testing::postgres_test_store(&url).await;
    assert_ne!(first.schema(), second.schema());
    assert_eq!(first.schema(), first_guard.schema());
    assert!(first.schema().starts_with("custos_t"), "{}", first.schema());
    assert!(!first.schema().contains('-'), "{}", first.schema());

    first.write(&upsert("only-in-first")).await.unwrap();
    second.write(&upsert("only-in-second")).await.unwrap();
    assert!(
        first
            .subject(&subject("only-in-second"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        second
            .subject(&subject("only-in-first"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        first
            .subject(&subject("only-in-first"))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(first.stats().await.unwrap().subjects, 1);
    assert_eq!(second.stats().await.unwrap().subjects, 1);
    drop(second_guard);
    assert!(
        !schema_exists(&url, second.schema()).await,
        "the guard drops the schema"
    );
    assert!(schema_exists(&url, first.schema()).await);
}

#[tokio::test]
async fn schema_name_replaces_dashes() {
    let region = RegionId::new("us-east-2").unwrap();
    assert_eq!(PostgresStore::schema_for(&region), "custos_us_east_2");
}

#[tokio::test]
async fn reconnecting_keeps_the_data_and_drop_schema_removes_it() {
    let Some(url) = testing::postgres_url_or_skip().await else {
        return;
    };
    let region = testing::unique_region();
    let _guard = SchemaGuard::new(&url, &region);
    let store = PostgresStore::connect(&url, region.clone()).await.unwrap();
    store.write(&upsert("kept")).await.unwrap();
    drop(store);
    let store = PostgresStore::connect(&url, region).await.unwrap();
    assert!(store.subject(&subject("kept")).await.unwrap().is_some());
    assert_eq!(store.schema_version().await.unwrap(), SCHEMA_VERSION);
    store.drop_schema().await.unwrap();
    assert!(!schema_exists(&url, store.schema()).await);
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let Some(url) = testing::postgres_url_or_skip().await else {
        return;
    };
    let region = testing::unique_region();
    let _guard = SchemaGuard::new(&url, &region);
    let store = PostgresStore::connect(&url, region.clone()).await.unwrap();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    client
        .execute(
            &format!(
                "INSERT INTO \"{}\".schema_migrations (version, applied_at_ms) VALUES ($1, 0)",
                store.schema()
            ),
            &[&(SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    drop(client);
    driver.await.unwrap().unwrap();
    match PostgresStore::connect(&url, region).await {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_server_is_an_error() {
    let region = RegionId::new("nowhere").unwrap();
    // Port 1 on loopback: refused at once, no server there.
    let error = PostgresStore::connect("postgres://postgres@127.0.0.1:1/test", region)
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Postgres(_)), "{error:?}");
}

#[tokio::test]
async fn the_guard_drops_the_schema_when_a_test_panics() {
    let Some(url) = testing::postgres_url_or_skip().await else {
        return;
    };
    let region = testing::unique_region();
    let schema = PostgresStore::schema_for(&region);
    let task_url = url.clone();
    let failed = tokio::spawn(async move {
        let _guard = SchemaGuard::new(&task_url, &region);
        let store = PostgresStore::connect(&task_url, region).await.unwrap();
        store.write(&upsert("before-the-panic")).await.unwrap();
        panic!("a failing test");
    })
    .await;
    assert!(failed.unwrap_err().is_panic());
    assert!(!schema_exists(&url, &schema).await, "{schema} left behind");
}
