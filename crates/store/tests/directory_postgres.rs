//! The PostgreSQL directory: the directory and alert conformance suites on a fresh schema per
//! test (dropped at the end, also on failure), reconnecting, the schema version guard and
//! schema name checks. (The upgrade from schema version 1 is tested beside the migrations, in
//! `directory_postgres.rs`.) Skips with a `SKIP postgres tests: …` line when the server is
//! unreachable, unless `CUSTOS_REQUIRE_POSTGRES=1`.

use model::StaffId;
use store::testing::{self, SchemaGuard};
use store::{
    DIRECTORY_SCHEMA_VERSION, DirectoryStore, PostgresDirectory, StaffRecord, StoreError,
    alert_conformance, directory_conformance,
};

#[tokio::test]
async fn conformance_suite_passes_twice_on_one_schema() {
    let Some(url) = testing::postgres_url_or_skip().await else {
        return;
    };
    let (directory, _guard) = testing::postgres_test_directory(&url).await;
    directory_conformance::run_all(&directory, "postgres").await;
    alert_conformance::run_all(&directory, "postgres").await;
    directory_conformance::run_all(&directory, "postgres").await;
    alert_conformance::run_all(&directory, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_on_a_multi_thread_runtime() {
    let Some(url) = testing::postgres_url_or_skip().await else {
        return;
    };
    let (directory, _guard) = testing::postgres_test_directory(&url).await;
    directory_conformance::run_all(&directory, "postgres").await;
    alert_conformance::run_all(&directory, "postgres").await;
}

#[tokio::test]
async fn reconnecting_keeps_the_data_and_drop_schema_removes_it() {
    let Some(url) = testing::postgres_url_or_skip().await else {
        return;
    };
    let schema = testing::unique_directory_schema();
    let _guard = SchemaGuard::for_schema(&url, &schema);
    let staff = StaffRecord {
        id: StaffId::new("kept").unwrap(),
        roles: vec!["support".to_owned()],
        team: None,
        entity: None,
        country: None,
        region: None,
        shift: None,
        updated_at_ms: 1,
    };
    let directory = PostgresDirectory::connect(&url, &schema).await.unwrap();
    directory.upsert_staff(&staff).await.unwrap();
    drop(directory);
    let directory = PostgresDirectory::connect(&url, &schema).await.unwrap();
    assert_eq!(directory.schema(), schema);
    assert_eq!(directory.staff(&staff.id).await.unwrap(), Some(staff));
    assert_eq!(
        directory.schema_version().await.unwrap(),
        DIRECTORY_SCHEMA_VERSION
    );
    directory.drop_schema().await.unwrap();
    let error = directory.schema_version().await.unwrap_err();
    assert!(matches!(error, StoreError::Postgres(_)), "{error:?}");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let Some(url) = testing::postgres_url_or_skip().await else {
        return;
    };
    let (directory, _guard) = testing::postgres_test_directory(&url).await;
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    let driver = tokio::spawn(connection);
    client
        .execute(
            &format!(
                "INSERT INTO \"{}\".schema_migrations (version, applied_at_ms) VALUES ($1, 0)",
                directory.schema()
            ),
            &[&(DIRECTORY_SCHEMA_VERSION + 1)],
        )
        .await
        .unwrap();
    drop(client);
    driver.await.unwrap().unwrap();
    match PostgresDirectory::connect(&url, directory.schema()).await {
        Err(StoreError::SchemaTooNew { found, supported }) => {
            assert_eq!(
                (found, supported),
                (DIRECTORY_SCHEMA_VERSION + 1, DIRECTORY_SCHEMA_VERSION)
            );
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[tokio::test]
async fn an_invalid_schema_name_is_refused_before_connecting() {
    // Port 1: were the name accepted, the error would be a refused connection instead.
    for schema in [
        "",
        "Custos",
        "custos-directory",
        "1custos",
        &"a".repeat(64),
        "x\"; DROP",
    ] {
        match PostgresDirectory::connect("postgres://postgres@127.0.0.1:1/test", schema).await {
            Err(StoreError::Postgres(message)) => {
                assert!(
                    message.contains("invalid schema name"),
                    "{schema:?}: {message}"
                );
            }
            other => panic!("{schema:?}: expected an invalid name error, got {other:?}"),
        }
    }
}
