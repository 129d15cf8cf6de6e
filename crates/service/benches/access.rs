//! The access path in process under an open-loop load: decision (Cedar) + durable log entry
//! (group commit, SQLite `synchronous=FULL` or PostgreSQL COMMIT) + unseal + view, for one
//! field, requests issued at a fixed rate whatever the latency (so slow answers are not hidden
//! by a client that waits). Latency is measured from each request's scheduled start; the
//! report also gives the parts of it that are not the access path's: the generator's own
//! lateness in issuing a request, and the runtime's delay in starting its task.
//!
//! Workload: 1,000 subjects, each with its own support ticket (the subject asked; one agent is
//! assigned to all of them); every request asks one field (email, masked) of one subject on
//! its ticket. `BENCH_QUEUE_CASE=1` puts all 1,000 subjects on one queue case instead (a case
//! of that size is read and decoded on every request).
//!
//! Run: `cargo bench -p service --bench access [-- RATE SECONDS]` (default 10,000 requests/s
//! for 10 s); `BENCH_POSTGRES=1` runs it on PostgreSQL too. `BENCH_DETECT=1` runs the alert
//! desk's live loop beside the load and makes every 20th request a look with no case: alert
//! latency is measured from that request's scheduled start to the moment its alert is stored.
//! Results and anchors: docs/PERFORMANCE.md.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use service::testing::{TestVault, person, postgres_vault, sqlite_vault};
use service::{AccessInput, AccessSettings, Caller, CallerKind, CaseInput, Gate};

const SUBJECTS: usize = 1_000;

/// The allocator of the `custos` binary, so that the figures are those of the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let arguments: Vec<String> = std::env::args().skip(1).filter(|argument| !argument.starts_with("--")).collect();
    let rate: u64 = arguments.first().and_then(|rate| rate.parse().ok()).unwrap_or(10_000);
    let seconds: u64 = arguments.get(1).and_then(|seconds| seconds.parse().ok()).unwrap_or(10);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    runtime.block_on(async {
        let sqlite = sqlite_vault(None).await;
        run("sqlite", &sqlite, rate, seconds).await;
        if std::env::var_os("BENCH_POSTGRES").is_some()
            && let Some(postgres) = postgres_vault(None, None).await
        {
            run("postgres", &postgres, rate, seconds).await;
        }
    });
}

async fn run(backend: &str, t: &TestVault, rate: u64, seconds: u64) {
    let gate = t.gate(AccessSettings::default());
    let subjects: Vec<String> = (0..SUBJECTS).map(|index| format!("u-{index}")).collect();
    for chunk in subjects.chunks(500) {
        let people = chunk
            .iter()
            .enumerate()
            .map(|(index, id)| person(id, &t.region, &[("email", &format!("person{index}@mail.example")), ("ip_address", "198.51.100.23")]))
            .collect();
        t.vault.ingest(people).await.unwrap();
    }
    let queue = std::env::var_os("BENCH_QUEUE_CASE").is_some();
    let ticket = |index: usize| if queue { "Q-1".to_owned() } else { format!("T-{index}") };
    let cases: Vec<CaseInput> = if queue {
        vec![CaseInput {
            id: ticket(0),
            purpose: "support".to_owned(),
            status: None,
            assignees: vec!["s-agent".to_owned()],
            subjects: subjects.clone(),
            requested_by: None,
            legal_process: None,
            destinations: Vec::new(),
        }]
    } else {
        (0..SUBJECTS)
            .map(|index| CaseInput {
                id: ticket(index),
                purpose: "support".to_owned(),
                status: None,
                assignees: vec!["s-agent".to_owned()],
                subjects: vec![subjects[index].clone()],
                requested_by: Some(subjects[index].clone()),
                legal_process: None,
                destinations: Vec::new(),
            })
            .collect()
    };
    for case in &cases {
        gate.register_case(case).await.unwrap();
    }
    let agent = Arc::new(Caller {
        id: "s-agent".to_owned(),
        kind: CallerKind::Staff,
        roles: vec!["support_agent".to_owned()],
        team: None,
        entity: Some("platform-us".to_owned()),
        country: Some("US".to_owned()),
        region: Some("us".to_owned()),
    });
    let ask = |index: usize| AccessInput {
        id: None,
        action: "read".to_owned(),
        subjects: vec![subjects[index % SUBJECTS].clone()],
        fields: [("email".to_owned(), "masked".to_owned())].into(),
        purpose: "support".to_owned(),
        case: Some(ticket(index % SUBJECTS)),
        justification: String::new(),
        break_glass: false,
        destination: None,
        control: None,
        from_country: None,
        query: None,
    };
    // Warm up: data keys cached, SQLite pages in memory, one answer checked.
    for index in 0..SUBJECTS {
        let answer = gate.access(&agent, &ask(index)).await.unwrap();
        assert_eq!(answer.subjects[0].fields[0].view.as_deref(), Some("masked"));
    }

    let detect = std::env::var_os("BENCH_DETECT").is_some();
    let scheduled_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let alert_latencies: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let desk_task = if detect {
        let desk = Arc::new(service::AlertDesk::open(Arc::clone(&gate), detect::DetectionConfig::default(), false).await.unwrap());
        desk.catch_up().await.unwrap();
        let (scheduled_at, alert_latencies) = (Arc::clone(&scheduled_at), Arc::clone(&alert_latencies));
        // The live loop of `AlertDesk::spawn`, noting when each alert is stored.
        Some(tokio::spawn(async move {
            loop {
                let progress = desk.run_once().await.unwrap();
                let stored_at = Instant::now();
                for id in &progress.stored {
                    let (alert, _) = desk.store().alert(id).await.unwrap().unwrap();
                    // The first alert stored for a look counts; later ones (a list, a wave) do not.
                    if let Some(sent) = alert.evidence.first().and_then(|evidence| scheduled_at.lock().unwrap().remove(&evidence.request)) {
                        alert_latencies.lock().unwrap().push(stored_at - sent);
                    }
                }
                if progress.level {
                    tokio::time::sleep(service::POLL_INTERVAL).await;
                }
            }
        }))
    } else {
        None
    };

    let total = rate * seconds;
    let interval = Duration::from_nanos(1_000_000_000 / rate);
    // The requests are issued by a thread of their own that sleeps until each one's time
    // (with its timer slack at the minimum below; tokio's timer rounds up to the next
    // millisecond, which would add up to 1 ms of the generator's own to every latency).
    let inputs: Vec<AccessInput> = (0..SUBJECTS).map(ask).collect();
    let runtime = tokio::runtime::Handle::current();
    let started = Instant::now();
    // Each request's task sends its outcome and ends: holding every task's handle until the
    // run is over would keep all their memory, and the pages it grows into cost the bench
    // (not the server) a page fault each.
    let (outcomes, mut received) = tokio::sync::mpsc::unbounded_channel::<(Duration, Duration, bool)>();
    let generator = {
        let (gate, agent, subjects, scheduled_at) = (Arc::clone(&gate), Arc::clone(&agent), subjects.clone(), Arc::clone(&scheduled_at));
        std::thread::spawn(move || {
            // Linux lets a sleeping thread's timer fire up to its slack late (50 µs by
            // default): the generator asks for none, so that its own lateness is not counted
            // as the service's.
            rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1)).expect("set the generator's timer slack");
            let mut lateness = Vec::with_capacity(total as usize);
            for index in 0..total {
                let scheduled = started + interval * index as u32;
                if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                let mut input = inputs[index as usize % SUBJECTS].clone();
                if detect && index % 20 == 0 {
                    // A look with no case: the detector must flag it.
                    let id = format!("x-{index}");
                    input.case = None;
                    input.subjects = vec![subjects[(index as usize / 20) % SUBJECTS].clone()];
                    input.id = Some(id.clone());
                    scheduled_at.lock().unwrap().insert(id, scheduled);
                }
                let (gate, agent, outcomes): (Arc<Gate>, Arc<Caller>, _) = (Arc::clone(&gate), Arc::clone(&agent), outcomes.clone());
                lateness.push(scheduled.elapsed());
                runtime.spawn(async move {
                    let began = scheduled.elapsed();
                    let answer = gate.access(&agent, &input).await;
                    // The receiver outlives every sender.
                    let _ = outcomes.send((scheduled.elapsed(), began, answer.is_ok()));
                });
            }
            lateness
        })
    };
    let mut latencies = Vec::with_capacity(total as usize);
    let mut starts = Vec::with_capacity(total as usize);
    let mut failures = 0;
    while latencies.len() < total as usize {
        let (latency, began, ok) = received.recv().await.expect("a request's task ended without its outcome");
        latencies.push(latency);
        starts.push(began);
        failures += usize::from(!ok);
    }
    let mut lateness = tokio::task::spawn_blocking(move || generator.join().unwrap()).await.unwrap();
    let elapsed = started.elapsed();
    latencies.sort();
    println!(
        "access/{backend}{}: {total} requests offered at {rate}/s over {seconds} s, completed in {:.2} s ({:.0}/s), {failures} failed; \
         latency p50 {:?} p90 {:?} p99 {:?} max {:?}",
        if queue { "/queue_case" } else { "" },
        elapsed.as_secs_f64(),
        total as f64 / elapsed.as_secs_f64(),
        quantile(&latencies, 0.50),
        quantile(&latencies, 0.90),
        quantile(&latencies, 0.99),
        latencies.last().unwrap()
    );
    // Where a latency starts: the generator's own delay, then the runtime's in starting the
    // task; the rest is the access path's.
    lateness.sort();
    starts.sort();
    println!(
        "  of which the generator's lateness (scheduled → spawned) p50 {:?} p99 {:?}; a task's start (scheduled → first poll) p50 {:?} p99 {:?}",
        quantile(&lateness, 0.5),
        quantile(&lateness, 0.99),
        quantile(&starts, 0.5),
        quantile(&starts, 0.99)
    );
    if let Some(task) = desk_task {
        // Let the desk catch up with the last requests, then report.
        tokio::time::sleep(Duration::from_secs(2)).await;
        task.abort();
        let mut latencies = alert_latencies.lock().unwrap().clone();
        latencies.sort();
        let expected = (total as usize).div_ceil(20);
        println!(
            "alerts/{backend}: {} of {expected} looks with no case flagged (a subject's second look within the cool-down is not raised again); alert latency (scheduled request → alert stored) p50 {:?} p90 {:?} p99 {:?} max {:?}",
            latencies.len(),
            quantile(&latencies, 0.50),
            quantile(&latencies, 0.90),
            quantile(&latencies, 0.99),
            latencies.last().unwrap()
        );
    }
}

/// The `q` quantile of `sorted` (ascending, not empty).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}
