//! The compliance console and the subject report in a real browser: serves `custos demo`
//! and drives it with `tests/browser/console.mjs` (playwright-core on Debian's headless
//! Chromium) — the officer signs in, finds the leak hunt's alert, reads the actor's
//! timeline and resolves the alert; the journalist reads the refusals in their own report.
//! Screenshots of every step land in `target/browser-artifacts/`, beside the demo's output.
//!
//! When node, `tests/browser/node_modules` or Chromium is missing the test says so and
//! passes, unless `CUSTOS_REQUIRE_BROWSER=1` (set by `scripts/test`, which installs them),
//! where a skipped browser would hide a broken console: then it fails.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// When this variable is `1`, a missing browser prerequisite fails the test.
const REQUIRE_BROWSER_VARIABLE: &str = "CUSTOS_REQUIRE_BROWSER";
/// The Chromium binary the script drives; the same variable is read by `console.mjs`.
const CHROMIUM_VARIABLE: &str = "CUSTOS_CHROMIUM";
/// Debian's Chromium, used when [`CHROMIUM_VARIABLE`] is not set.
const CHROMIUM_DEFAULT: &str = "/usr/bin/chromium";
/// How long the demo may take to build its deployment and listen.
const DEMO_START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the browser script may run; it has its own, shorter, limit on every wait.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Pause between two looks at a child process or at the file it should write.
const POLL_INTERVAL: Duration = Duration::from_millis(200);
/// The oldest Node.js playwright-core supports.
const NODE_MAJOR_MIN: u32 = 20;
/// Synthetic users in the demo: few, so that it starts quickly.
const DEMO_SUBJECTS: &str = "200";

#[test]
fn an_officer_resolves_the_leak_hunt_alert_and_the_journalist_sees_the_refusals() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap();
    if !browser_available(&workspace) {
        return;
    }
    let artifacts = workspace.join("target/browser-artifacts");
    // Screenshots of an earlier run must not pass for this one's.
    if artifacts.exists() {
        std::fs::remove_dir_all(&artifacts).unwrap();
    }
    std::fs::create_dir_all(&artifacts).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");

    let demo_log_path = artifacts.join("demo.log");
    let demo_log = File::create(&demo_log_path).unwrap();
    let mut demo = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(["demo", "--data", data.to_str().unwrap(), "--subjects", DEMO_SUBJECTS, "--listen", "127.0.0.1:0"])
            // The demo finds the IP → country database beside the checkout, as in the CLI tests.
            .current_dir(&workspace)
            .stdin(Stdio::null())
            .stdout(demo_log.try_clone().unwrap())
            .stderr(demo_log)
            .spawn()
            .unwrap(),
    );
    let urls = wait_for_urls(&mut demo, &data.join("demo-urls.json"), &demo_log_path);

    let output_path = artifacts.join("console-output.txt");
    let output = File::create(&output_path).unwrap();
    let mut script = KillOnDrop(
        Command::new("node")
            .arg("tests/browser/console.mjs")
            .arg(&urls)
            .arg(&artifacts)
            .current_dir(&workspace)
            .stdin(Stdio::null())
            .stdout(output.try_clone().unwrap())
            .stderr(output)
            .spawn()
            .unwrap(),
    );
    let status = wait_with_timeout(&mut script, SCRIPT_TIMEOUT);
    let printed = std::fs::read_to_string(&output_path).unwrap_or_default();
    println!("{printed}");
    let Some(status) = status else {
        panic!("the browser script ran longer than {SCRIPT_TIMEOUT:?} and was killed; it printed:\n{printed}\nthe demo's output: {}", demo_log_path.display());
    };
    assert!(
        status.success(),
        "the browser script failed ({status}); it printed:\n{printed}\nscreenshots, failure.png among them: {}\nthe demo's output: {}",
        artifacts.display(),
        demo_log_path.display()
    );
    for screenshot in ["01-login.png", "02-alerts.png", "03-alert.png", "04-actor-timeline.png", "05-resolved.png", "06-journalist-report.png"] {
        let size = std::fs::metadata(artifacts.join(screenshot)).map(|metadata| metadata.len()).unwrap_or(0);
        assert!(size > 0, "the browser script passed but left no {screenshot} in {}", artifacts.display());
    }
}

/// Kills the child when dropped, so that a failing test leaves no demo or browser behind.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether node, the script's packages and Chromium are all here. When one is missing:
/// prints what and how to install it and returns false, or panics when
/// [`REQUIRE_BROWSER_VARIABLE`] is `1`.
fn browser_available(workspace: &Path) -> bool {
    let mut missing = Vec::new();
    match node_version() {
        None => missing.push(format!("node (Node.js {NODE_MAJOR_MIN} or later: `apt-get install nodejs npm`)")),
        Some((major, version)) if major < NODE_MAJOR_MIN => {
            missing.push(format!("Node.js {NODE_MAJOR_MIN} or later (found {version}; Debian 12 ships 18: take it from NodeSource)"));
        }
        Some(_) => {}
    }
    if !workspace.join("tests/browser/node_modules/playwright-core/package.json").exists() {
        missing.push("tests/browser/node_modules (`cd tests/browser && npm ci --no-audit --no-fund`)".to_owned());
    }
    let chromium = std::env::var_os(CHROMIUM_VARIABLE).map(PathBuf::from).unwrap_or_else(|| PathBuf::from(CHROMIUM_DEFAULT));
    if !chromium.exists() {
        missing.push(format!("Chromium at {} (`apt-get install chromium`, or name another in {CHROMIUM_VARIABLE})", chromium.display()));
    }
    if missing.is_empty() {
        return true;
    }
    let missing = missing.join("; ");
    if std::env::var(REQUIRE_BROWSER_VARIABLE).is_ok_and(|value| value == "1") {
        panic!("browser tests are required ({REQUIRE_BROWSER_VARIABLE}=1) but these are missing: {missing}; scripts/test installs all of them");
    }
    eprintln!("SKIP browser tests: missing {missing}; scripts/test installs all of them");
    false
}

/// The major version of `node` on the path and its full version string, if it runs.
fn node_version() -> Option<(u32, String)> {
    let output = Command::new("node").arg("--version").stderr(Stdio::null()).output().ok().filter(|output| output.status.success())?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major = version.strip_prefix('v')?.split('.').next()?.parse().ok()?;
    Some((major, version))
}

/// Waits for the served demo to write its URLs file as complete JSON; panics with the demo's
/// output if it exits first or takes longer than [`DEMO_START_TIMEOUT`].
fn wait_for_urls(demo: &mut KillOnDrop, urls: &Path, log: &Path) -> PathBuf {
    let deadline = Instant::now() + DEMO_START_TIMEOUT;
    loop {
        // The file is written in one go after the server listens; a partial read is retried.
        let written = std::fs::read_to_string(urls).ok().and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok());
        if written.is_some_and(|value| value["console"].is_string() && value["journalist_report"].is_string()) {
            return urls.to_owned();
        }
        let demo_output = || std::fs::read_to_string(log).unwrap_or_default();
        if let Some(status) = demo.0.try_wait().unwrap() {
            panic!("custos demo exited ({status}) before writing {}:\n{}", urls.display(), demo_output());
        }
        assert!(Instant::now() < deadline, "custos demo wrote no {} within {DEMO_START_TIMEOUT:?}:\n{}", urls.display(), demo_output());
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// The child's exit status, or `None` (and the child killed) past `timeout`.
fn wait_with_timeout(child: &mut KillOnDrop, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.0.kill();
            let _ = child.0.wait();
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}
