//! The compliance console on a large deployment: the timeline page of an actor with 100,000
//! access decisions (spread over 60 days, beside 20,000 decisions by others), rendered by
//! the real HTTP application — cookie sign-in checked, the timeline and its activity chart
//! read from the index, the page's `record_view` entry appended and durable, the HTML
//! rendered. Server time is measured around the application's answer, body included.
//!
//! The decisions are made by the real access flow (`Gate::access`, policy, durable log
//! entries, unseal) on a manual clock, then indexed by the follower.
//!
//! Run: `cargo bench -p server --bench console [-- ACCESSES VIEWS]` (defaults 100,000 and
//! 50); `BENCH_POSTGRES=1` runs it on PostgreSQL too. Results: docs/PERFORMANCE.md.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use service::testing::{TestVault, person, postgres_vault, sqlite_vault};
use service::{AccessInput, AccessSettings, Caller, CallerKind, CaseInput, Clock};
use tower::ServiceExt;

const SUBJECTS: usize = 1_000;
const DAYS: i64 = 60;
const CONCURRENCY: usize = 256;

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).filter(|argument| !argument.starts_with("--")).collect();
    let accesses: usize = arguments.first().and_then(|value| value.parse().ok()).unwrap_or(100_000);
    let views: usize = arguments.get(1).and_then(|value| value.parse().ok()).unwrap_or(50);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let sqlite = sqlite_vault(None).await;
        run("sqlite", sqlite, accesses, views).await;
        if std::env::var_os("BENCH_POSTGRES").is_some()
            && let Some(postgres) = postgres_vault(None, None).await
        {
            run("postgres", postgres, accesses, views).await;
        }
    });
}

fn caller(id: &str) -> Arc<Caller> {
    Arc::new(Caller {
        id: id.to_owned(),
        kind: CallerKind::Staff,
        roles: vec!["support_agent".to_owned()],
        team: None,
        entity: Some("platform-us".to_owned()),
        country: Some("US".to_owned()),
        region: Some("us".to_owned()),
    })
}

async fn run(backend: &str, t: TestVault, accesses: usize, views: usize) {
    let gate = t.gate(AccessSettings::default());
    let subjects: Vec<String> = (0..SUBJECTS).map(|index| format!("u-{index}")).collect();
    for chunk in subjects.chunks(500) {
        let people = chunk.iter().map(|id| person(id, &t.region, &[("email", &format!("{id}@mail.example"))])).collect();
        t.vault.ingest(people).await.unwrap();
    }
    for (index, subject) in subjects.iter().enumerate() {
        let case = CaseInput {
            id: format!("T-{index}"),
            purpose: "support".to_owned(),
            status: None,
            assignees: vec!["s-busy".to_owned(), "s-other".to_owned()],
            subjects: vec![subject.clone()],
            requested_by: Some(subject.clone()),
            legal_process: None,
            destinations: Vec::new(),
        };
        gate.register_case(&case).await.unwrap();
    }
    let start = Instant::now();
    // One access in six is someone else's: 20,000 beside 100,000.
    let total = accesses + accesses / 5;
    let step_ms = DAYS * 86_400_000 / total as i64;
    let (busy, other) = (caller("s-busy"), caller("s-other"));
    for chunk in (0..total).collect::<Vec<_>>().chunks(CONCURRENCY) {
        let clock = t.clock();
        clock.advance_to(clock.now() + chrono::Duration::milliseconds(step_ms * chunk.len() as i64));
        let asks = chunk.iter().map(|&index| {
            let gate = Arc::clone(&gate);
            let who = if index % 6 == 5 { Arc::clone(&other) } else { Arc::clone(&busy) };
            let input = AccessInput {
                id: None,
                action: "read".to_owned(),
                subjects: vec![subjects[index % SUBJECTS].clone()],
                fields: [("email".to_owned(), "masked".to_owned())].into(),
                purpose: "support".to_owned(),
                case: Some(format!("T-{}", index % SUBJECTS)),
                justification: String::new(),
                break_glass: false,
                destination: None,
                control: None,
                from_country: None,
                query: None,
            };
            tokio::spawn(async move { gate.access(&who, &input).await.unwrap() })
        });
        for ask in asks.collect::<Vec<_>>() {
            ask.await.unwrap();
        }
    }
    let log = t.vault.log(&t.region).unwrap();
    log.index_subjects_to(u64::MAX).await.unwrap();
    let busy_total = log.subject_index().unwrap().timeline_activity(store::TimelineKind::Actor, "s-busy", 86_400_000).await.unwrap();
    let busy_total: u64 = busy_total.iter().map(|(_, count)| count).sum();
    println!(
        "{backend}: {total} access decisions made and indexed in {:.1} s; s-busy has {busy_total}",
        start.elapsed().as_secs_f64()
    );

    let (issuer, state) = common::issuer_and_state(&t, &gate, "cst_bench-console").await;
    let app = server::app(state);
    let claims = auth::IdentityClaims {
        id: "s-officer".to_owned(),
        kind: auth::IdentityKind::Staff,
        roles: vec!["compliance_officer".to_owned()],
        team: None,
        entity: Some("platform-us".to_owned()),
        country: Some("US".to_owned()),
        region: Some("us".to_owned()),
    };
    let token = issuer.mint(&claims, t.vault.clock().now(), Duration::from_secs(86_400)).unwrap();
    let cookie = format!("{}={token}", server::CONSOLE_COOKIE);
    let view = async |path: &str| {
        let request = Request::get(path).header(header::COOKIE, &cookie).body(Body::empty()).unwrap();
        let started = Instant::now();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let elapsed = started.elapsed();
        assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
        (elapsed, body)
    };
    // Warm up once, and check the page is the timeline asked for.
    let (_, body) = view("/console/actors/s-busy").await;
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains(&format!("{busy_total} log entries in all")), "the page counts the whole timeline");
    let next = body.split("id=\"next-page\" href=\"").nth(1).unwrap().split('"').next().unwrap().replace("&amp;", "&");
    for (name, path) in [("first page", "/console/actors/s-busy".to_owned()), ("second page", next)] {
        let mut times: Vec<Duration> = Vec::with_capacity(views);
        let mut bytes = 0;
        for _ in 0..views {
            let (elapsed, body) = view(&path).await;
            times.push(elapsed);
            bytes = body.len();
        }
        times.sort_unstable();
        let at = |quantile: f64| times[((times.len() as f64 * quantile).ceil() as usize).clamp(1, times.len()) - 1];
        println!(
            "{backend}: actor timeline ({busy_total} entries), {name}: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms over {views} views ({} KiB of HTML, 100 rows, chart of {DAYS} days)",
            at(0.50).as_secs_f64() * 1e3,
            at(0.99).as_secs_f64() * 1e3,
            times[times.len() - 1].as_secs_f64() * 1e3,
            bytes / 1024
        );
    }
}
