//! The vault against real storage and real keys: values round-trip through views, storage
//! never holds a plaintext value, tampering is an integrity error, residency is enforced, and
//! erasure leaves a backup taken before it unreadable. Each scenario runs on SQLite and on
//! PostgreSQL (and, where keys matter, on a SoftHSM2 token).

use std::sync::Arc;

use service::testing::*;
use model::{FieldKind, View};
use seal::{KekVersion, KeyError, KeyProvider, ShredGroup, WrappedKey};
use service::ServiceError;

fn wrapped(stored: &store::StoredKey, version: u32) -> WrappedKey {
    WrappedKey { group: ShredGroup::new(stored.group).unwrap(), version: KekVersion(version), bytes: stored.wrapped.clone() }
}

async fn for_each_backend<F, Fut>(check: F)
where
    F: Fn(TestVault) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    check(sqlite_vault(None).await).await;
    if let Some(vault) = postgres_vault(None, None).await {
        check(vault).await;
    }
}

async fn values_round_trip_through_views(t: TestVault) {
    t.ingest("u-1", &KNOWN_VALUES).await;
    let reveals = t
        .vault
        .reveal(&t.region, &subject("u-1"), &[
            (FieldKind::IpAddress, View::PREFIX_24),
            (FieldKind::Email, View::Domain),
            (FieldKind::Phone, View::Exact),
            (FieldKind::DateOfBirth, View::Exists),
        ])
        .await
        .unwrap();
    let shown: Vec<(String, bool, Vec<String>)> =
        reveals.into_iter().map(|reveal| (reveal.view, reveal.exists, reveal.values.into_iter().map(|value| value.value).collect())).collect();
    assert_eq!(shown, vec![
        ("prefix".to_owned(), true, vec!["198.51.100.0/24".to_owned()]),
        ("domain".to_owned(), true, vec!["newsroom.example".to_owned()]),
        ("exact".to_owned(), true, vec!["+12125550123".to_owned()]),
        ("exists".to_owned(), false, vec![]),
    ]);
}

#[tokio::test]
async fn values_round_trip_through_views_on_every_backend() {
    for_each_backend(values_round_trip_through_views).await;
}

async fn reingest_is_idempotent(t: TestVault) {
    t.ingest("u-1", &KNOWN_VALUES).await;
    let again = t.vault.ingest(vec![person("u-1", &t.region, &KNOWN_VALUES)]).await.unwrap();
    assert_eq!((again.values_added, again.values_merged, again.subjects_updated), (0, 6, 1));
    let summary = t.vault.subject(&t.region, &subject("u-1")).await.unwrap();
    assert_eq!(summary.value_counts.values().sum::<u64>(), 6);
}

#[tokio::test]
async fn reingest_is_idempotent_on_every_backend() {
    for_each_backend(reingest_is_idempotent).await;
}

async fn storage_never_holds_plaintext(t: TestVault) {
    t.ingest("u-1", &KNOWN_VALUES).await;
    let stored = t.stored_bytes().await;
    for (field, value) in KNOWN_VALUES {
        assert!(!stored.windows(value.len()).any(|window| window == value.as_bytes()), "{field} value {value} found in storage");
    }
    // The check can fail: the subject id, which is not personal data, is stored in clear.
    assert!(stored.windows(3).any(|window| window == b"u-1"), "the scan does not see the stored rows");
}

#[tokio::test]
async fn storage_never_holds_plaintext_on_every_backend() {
    for_each_backend(storage_never_holds_plaintext).await;
}

async fn tampered_ciphertext_is_an_integrity_error(t: TestVault) {
    t.ingest("u-1", &KNOWN_VALUES).await;
    let mut sealed = t.sealed("u-1", FieldKind::Email).await;
    let last = sealed.len() - 1;
    sealed[last] ^= 0x01;
    t.set_sealed("u-1", FieldKind::Email, &sealed).await;
    let error = t.vault.reveal(&t.region, &subject("u-1"), &[(FieldKind::Email, View::Exact)]).await.unwrap_err();
    assert!(matches!(error, ServiceError::Integrity { .. }), "{error:?}");
    assert!(error.to_string().contains("integrity"), "{error}");
    // Other fields of the subject still open.
    t.vault.reveal(&t.region, &subject("u-1"), &[(FieldKind::Phone, View::Exact)]).await.unwrap();
}

#[tokio::test]
async fn tampered_ciphertext_is_an_integrity_error_on_every_backend() {
    for_each_backend(tampered_ciphertext_is_an_integrity_error).await;
}

async fn swapped_ciphertext_is_an_integrity_error(t: TestVault) {
    t.ingest("u-1", &[("email", "one@example.com")]).await;
    t.ingest("u-2", &[("email", "two@example.com")]).await;
    let other = t.sealed("u-2", FieldKind::Email).await;
    t.set_sealed("u-1", FieldKind::Email, &other).await;
    let error = t.vault.reveal(&t.region, &subject("u-1"), &[(FieldKind::Email, View::Exact)]).await.unwrap_err();
    assert!(matches!(error, ServiceError::Integrity { .. }), "{error:?}");
}

#[tokio::test]
async fn swapped_ciphertext_is_an_integrity_error_on_every_backend() {
    for_each_backend(swapped_ciphertext_is_an_integrity_error).await;
}

#[tokio::test]
async fn a_wrong_region_key_is_an_integrity_error() {
    let t = sqlite_vault(None).await;
    t.ingest("u-1", &KNOWN_VALUES).await;
    // Another deployment's keyring for the same region name: same group, same version,
    // different key.
    let other_root = tempfile::tempdir().unwrap();
    let other_keys = keyring(&other_root, &t.region);
    let stored = t.store.data_keys(&[subject("u-1")]).await.unwrap().remove(0);
    other_keys.wrap(ShredGroup::new(stored.group).unwrap(), &subject("someone-else"), &seal::DataKey::generate().unwrap()).unwrap();
    let impostor = service::Vault::new(
        vec![service::RegionSetup { region: t.region.clone(), store: Arc::clone(&t.store), keys: other_keys }],
        service::VaultOptions { geo: None, clock: clock(), cache: seal::DataKeyCache::default() },
    );
    let error = impostor.reveal(&t.region, &subject("u-1"), &[(FieldKind::Email, View::Exact)]).await.unwrap_err();
    assert!(matches!(error, ServiceError::Integrity { .. }), "{error:?}");
}

#[tokio::test]
async fn a_region_not_served_is_refused_before_anything_happens() {
    let t = sqlite_vault(None).await;
    let eu = region("eu");
    let error = t.vault.ingest(vec![person("u-9", &eu, &KNOWN_VALUES)]).await.unwrap_err();
    assert!(matches!(error, ServiceError::RegionNotServed(ref region) if *region == eu), "{error:?}");
    // A mixed request writes nothing, not even the served region's part.
    let mixed = vec![person("u-1", &t.region, &KNOWN_VALUES), person("u-9", &eu, &KNOWN_VALUES)];
    assert!(matches!(t.vault.ingest(mixed).await, Err(ServiceError::RegionNotServed(_))));
    assert!(matches!(t.vault.subject(&t.region, &subject("u-1")).await, Err(ServiceError::SubjectNotFound { .. })));
    let error = t.vault.reveal(&eu, &subject("u-9"), &[(FieldKind::Email, View::Domain)]).await.unwrap_err();
    assert_eq!(error.to_string(), "region eu is not served by this node");
}

async fn erase_leaves_a_prior_backup_unreadable(t: TestVault) {
    t.ingest("u-1", &KNOWN_VALUES).await;
    t.ingest("u-2", &[("email", "neighbour@example.com")]).await;
    let backup = t.backup().await;
    let record = t.vault.erase(&t.region, &subject("u-1"), "dsr-1", "asked to be forgotten").await.unwrap();
    assert_eq!(record.values_destroyed, 6);

    // The live vault refuses the subject and keeps the record.
    let error = t.vault.reveal(&t.region, &subject("u-1"), &[(FieldKind::Email, View::Exact)]).await.unwrap_err();
    assert!(matches!(error, ServiceError::SubjectErased(_)), "{error:?}");
    assert_eq!(t.store.erasure(&subject("u-1")).await.unwrap().unwrap().reason, "asked to be forgotten");
    let again = t.vault.ingest(vec![person("u-1", &t.region, &KNOWN_VALUES)]).await.unwrap_err();
    assert!(matches!(again, ServiceError::SubjectErased(_)), "{again:?}");

    // The backup still holds the wrapped data key and the sealed values ...
    let stored = backup.data_key("u-1").await.expect("the backup has the old wrapped key");
    let sealed = backup.store.values(&subject("u-1"), &[]).await.unwrap();
    assert_eq!(sealed.len(), 6);
    // ... but today's keys open neither: the version it names is destroyed, and the current
    // version of the group is a different key.
    match t.keys.unwrap(&subject("u-1"), &wrapped(&stored, stored.version)) {
        Err(KeyError::MissingKek { .. }) => {}
        other => panic!("expected the old key-encryption key to be gone, got {other:?}"),
    }
    let current = t.keys.current_version(ShredGroup::new(stored.group).unwrap()).unwrap().unwrap();
    assert!(current.0 > stored.version);
    for version in 1..=current.0 {
        assert!(t.keys.unwrap(&subject("u-1"), &wrapped(&stored, version)).is_err(), "version {version} opened the old key");
    }

    // Neighbours in the same shred group were re-wrapped and still read.
    let neighbour = t.vault.reveal(&t.region, &subject("u-2"), &[(FieldKind::Email, View::Exact)]).await.unwrap();
    assert_eq!(neighbour[0].values[0].value, "neighbour@example.com");
}

#[tokio::test]
async fn erase_leaves_a_prior_backup_unreadable_on_every_backend() {
    for_each_backend(erase_leaves_a_prior_backup_unreadable).await;
}

#[test]
fn erase_leaves_a_prior_backup_unreadable_with_pkcs11() {
    seal::softhsm_testing::run_with_softhsm_token("erase_leaves_a_prior_backup_unreadable_with_pkcs11", |config| {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let keys: Arc<dyn KeyProvider> = Arc::new(seal::Pkcs11Provider::open(config.clone(), region("us")).unwrap());
            erase_leaves_a_prior_backup_unreadable(sqlite_vault(Some(keys)).await).await;
            let postgres_region = store::testing::unique_region();
            let keys: Arc<dyn KeyProvider> = Arc::new(seal::Pkcs11Provider::open(config.clone(), postgres_region.clone()).unwrap());
            if let Some(vault) = postgres_vault(Some(keys), Some(postgres_region)).await {
                erase_leaves_a_prior_backup_unreadable(vault).await;
            }
        });
    });
}

async fn rotation_rewraps_without_touching_values(t: TestVault) {
    for index in 0..50 {
        t.ingest(&format!("u-{index}"), &[("email", &format!("person{index}@example.com"))]).await;
    }
    let sealed_before = t.sealed("u-7", FieldKind::Email).await;
    let backup = t.backup().await;
    let report = t.vault.rotate_keys(&t.region).await.unwrap();
    assert_eq!(report.data_keys_rewrapped, 50);
    assert!(report.groups_rotated >= 40, "{report:?}");
    assert_eq!(t.sealed("u-7", FieldKind::Email).await, sealed_before, "rotation must not touch sealed values");
    for index in 0..50 {
        let reveal = t.vault.reveal(&t.region, &subject(&format!("u-{index}")), &[(FieldKind::Email, View::Exact)]).await.unwrap();
        assert_eq!(reveal[0].values[0].value, format!("person{index}@example.com"));
    }
    // The old versions are destroyed: the pre-rotation backup's keys no longer unwrap.
    let old = backup.data_key("u-7").await.unwrap();
    assert!(matches!(t.keys.unwrap(&subject("u-7"), &wrapped(&old, old.version)), Err(KeyError::MissingKek { .. })));
}

#[tokio::test]
async fn rotation_rewraps_without_touching_values_on_every_backend() {
    for_each_backend(rotation_rewraps_without_touching_values).await;
}

#[test]
fn pkcs11_keys_seal_and_rotate() {
    seal::softhsm_testing::run_with_softhsm_token("pkcs11_keys_seal_and_rotate", |config| {
        let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let keys: Arc<dyn KeyProvider> = Arc::new(seal::Pkcs11Provider::open(config.clone(), region("us")).unwrap());
            let t = sqlite_vault(Some(keys)).await;
            assert!(t.keys.describe().contains("pkcs11"), "{}", t.keys.describe());
            storage_never_holds_plaintext(sqlite_vault(Some(Arc::clone(&t.keys))).await).await;
            rotation_rewraps_without_touching_values(t).await;
        });
    });
}

/// A subject id that falls in the same shred group as `id`.
fn neighbour_of(id: &str) -> String {
    let group = seal::shred_group_of(&subject(id));
    (0..).map(|index| format!("n-{index}")).find(|candidate| seal::shred_group_of(&subject(candidate)) == group).unwrap()
}

async fn an_interrupted_erase_is_finished_at_the_next_start(t: TestVault) {
    let neighbour = neighbour_of("u-1");
    t.ingest("u-1", &KNOWN_VALUES).await;
    t.ingest(&neighbour, &[("email", "neighbour@example.com")]).await;
    let backup = t.backup().await;
    let stored = backup.data_key("u-1").await.unwrap();
    // The process dies after rotating the group and deleting the subject, before re-wrapping
    // the neighbours and destroying the old key version.
    t.keys.rotate(ShredGroup::new(stored.group).unwrap()).unwrap();
    t.store.erase(&subject("u-1"), 0, "dsr-1", "interrupted").await.unwrap();
    assert!(t.keys.unwrap(&subject("u-1"), &wrapped(&stored, stored.version)).is_ok(), "the old version is still there");

    let report = t.vault.complete_pending_shreds().await.unwrap();
    assert_eq!(report.data_keys_rewrapped, 1, "{report:?}");
    assert!(matches!(t.keys.unwrap(&subject("u-1"), &wrapped(&stored, stored.version)), Err(KeyError::MissingKek { .. })));
    let shown = t.vault.reveal(&t.region, &subject(&neighbour), &[(FieldKind::Email, View::Exact)]).await.unwrap();
    assert_eq!(shown[0].values[0].value, "neighbour@example.com");
    // Nothing left to do the second time.
    assert_eq!(t.vault.complete_pending_shreds().await.unwrap().data_keys_rewrapped, 0);
}

#[tokio::test]
async fn an_interrupted_erase_is_finished_at_the_next_start_on_every_backend() {
    for_each_backend(an_interrupted_erase_is_finished_at_the_next_start).await;
}
