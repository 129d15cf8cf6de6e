//! Benchmarks of the vault's hot paths. Results, the machine and the anchors they are
//! compared with: docs/PERFORMANCE.md. Run: `cargo bench -p service --bench vault`.
//!
//! - `unseal_view`: open one sealed value (AES-256-GCM), parse it back, apply a view, with the
//!   data key already unwrapped (a warm data-key cache). One core.
//! - `reveal`: `Vault::reveal` of one subject's IP address, including the SQLite read.
//! - `ingest_sqlite`: `Vault::ingest` of 500 new subjects × 8 values into SQLite (new data
//!   keys, sealing, one durable transaction).

use std::sync::Arc;

use chrono::NaiveDate;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use model::{FieldKind, FieldValue, RegionId, SubjectId, View, ViewContext};
use seal::{DataKey, ValueAad};
use service::testing::{person, sqlite_vault};
use store::SealedValue;

const VALUES_PER_BATCH: usize = 1_000;

fn sealed_values(key: &DataKey, region: &RegionId) -> Vec<SealedValue> {
    (0..VALUES_PER_BATCH)
        .map(|index| {
            let subject = SubjectId::new(&format!("u-{index}")).unwrap();
            let value = FieldValue::parse(FieldKind::IpAddress, &format!("198.51.{}.{}", index / 256, index % 256)).unwrap();
            let canonical = value.to_canonical();
            let value_id = seal::value_digest(key, FieldKind::IpAddress, canonical.as_bytes());
            let aad = ValueAad { region, subject: &subject, field: FieldKind::IpAddress, value_id: &value_id };
            let sealed = seal::seal(key, &aad, canonical.as_bytes()).unwrap();
            SealedValue { subject, field: FieldKind::IpAddress, value_id, sealed, first_seen_ms: 0, last_seen_ms: 0 }
        })
        .collect()
}

fn unseal_view(c: &mut Criterion) {
    let region = RegionId::new("us").unwrap();
    let key = DataKey::generate().unwrap();
    let values = sealed_values(&key, &region);
    let context = ViewContext { today: NaiveDate::from_ymd_opt(2026, 11, 26).unwrap(), geo: None };
    let mut group = c.benchmark_group("unseal_view");
    group.throughput(Throughput::Elements(VALUES_PER_BATCH as u64));
    for view in [View::PREFIX_24, View::Exact] {
        group.bench_function(format!("ip_address/{view}"), |bench| {
            bench.iter(|| {
                for value in &values {
                    let plain = service::open_value(&region, &key, value).unwrap();
                    std::hint::black_box(view.apply(&plain, &context).unwrap());
                }
            });
        });
    }
    group.finish();
}

fn reveal(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let vault = runtime.block_on(async {
        let vault = sqlite_vault(None).await;
        vault.ingest("u-1", &[("ip_address", "198.51.100.23"), ("email", "ada@example.com")]).await;
        vault
    });
    let subject = SubjectId::new("u-1").unwrap();
    let mut group = c.benchmark_group("reveal");
    group.throughput(Throughput::Elements(1));
    group.bench_function("sqlite/one_field", |bench| {
        bench.to_async(&runtime).iter(|| vault.vault.reveal(&vault.region, &subject, &[(FieldKind::IpAddress, View::Country)]));
    });
    group.finish();
}

fn ingest_sqlite(c: &mut Criterion) {
    const SUBJECTS: usize = 500;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let vault = Arc::new(runtime.block_on(sqlite_vault(None)));
    let mut round = 0usize;
    let mut group = c.benchmark_group("ingest_sqlite");
    group.throughput(Throughput::Elements((SUBJECTS * 8) as u64));
    group.sample_size(20);
    group.bench_function("500_subjects_x_8_values", |bench| {
        bench.to_async(&runtime).iter_batched(
            || {
                round += 1;
                (0..SUBJECTS)
                    .map(|index| {
                        let n = round * SUBJECTS + index;
                        let ip = format!("10.{}.{}.{}", n / 65_536 % 256, n / 256 % 256, n % 256);
                        let email = format!("user{n}@example.com");
                        let phone = format!("+1202{:07}", n % 10_000_000);
                        let device = format!("device-{n:012}");
                        person(&format!("u-{n}"), &vault.region, &[
                            ("ip_address", &ip),
                            ("ip_address", "2001:db8::7"),
                            ("email", &email),
                            ("phone", &phone),
                            ("name", "Synthetic Person"),
                            ("location", "40.712800,-74.006000"),
                            ("date_of_birth", "1990-04-01"),
                            ("device_id", &device),
                        ])
                    })
                    .collect::<Vec<_>>()
            },
            |batch| {
                let vault = Arc::clone(&vault);
                async move { vault.vault.ingest(batch).await.unwrap() }
            },
            BatchSize::PerIteration,
        );
    });
    group.finish();
}

criterion_group!(benches, unseal_view, reveal, ingest_sqlite);
criterion_main!(benches);
