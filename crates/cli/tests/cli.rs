//! The `custos` binary end to end: init, import (JSON Lines and CSV, rejections, re-runs),
//! serve, key rotation and the demo.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn custos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos")).args(args).env("CUSTOS_LOG", "warn").output().expect("run custos")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn init(dir: &Path) -> String {
    let output = custos(&["init", "--data", dir.to_str().unwrap(), "--regions", "us,eu"]);
    assert!(output.status.success(), "{}", text(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout.lines().find(|line| line.starts_with("cst_")).expect("init prints the service token").to_owned()
}

#[test]
fn init_creates_a_private_keyring_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    init(&data);
    let mode = std::fs::metadata(data.join("keyring.json")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let config = std::fs::read_to_string(data.join("custos.toml")).unwrap();
    assert!(config.contains("regions = [") && config.contains("sha256"), "{config}");
    let again = custos(&["init", "--data", data.to_str().unwrap()]);
    assert!(!again.status.success());
    assert!(text(&again).contains("already holds a deployment"), "{}", text(&again));

    std::fs::set_permissions(data.join("keyring.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = dir.path().join("one.jsonl");
    std::fs::write(&file, "{\"id\":\"u-1\",\"region\":\"us\"}\n").unwrap();
    let refused = custos(&["import", "--data", data.to_str().unwrap(), file.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("chmod 600"), "{}", text(&refused));
}

#[test]
fn import_reports_rejected_lines_and_reruns_add_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    init(&data);
    let file = dir.path().join("users.jsonl");
    let lines = [
        r#"{"op":"subject","id":"u-1","region":"us","labels":["journalist"],"values":{"ip_address":["198.51.100.23"],"email":["ada@example.com"]}}"#,
        r#"{"id":"u-2","region":"us","values":{"ip_address":["198.51.100.24","999.0.0.1"]}}"#,
        "# a comment line",
        r#"{"id":"u-3","region":"eu","values":{"phone":["+44 20 7946 0958"]}}"#,
        "{not json",
        r#"{"op":"access","id":"a-1"}"#,
        r#"{"id":"u-4","region":"sg","values":{"email":["x@example.com"]}}"#,
        "",
        r#"{"id":"u-5","region":"us","values":{"name":["Grace"],"location":["1.35,103.8"]}}"#,
    ];
    let mut content = lines.join("\n");
    // Line 10: longer than the import's line limit; skipped without reading it whole.
    content.push_str(&format!("\n{{\"id\":\"u-6\",\"region\":\"us\",\"values\":{{\"text\":[\"{}\"]}}}}\n", "x".repeat(1_100_000)));
    content.push_str(r#"{"id":"u-7","region":"us","values":{"email":["last@example.com"]}}"#);
    std::fs::write(&file, content).unwrap();
    let output = custos(&["import", "--data", data.to_str().unwrap(), file.to_str().unwrap(), "--rejects", dir.path().join("rejects.jsonl").to_str().unwrap()]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(3), "{report}");
    assert!(report.contains("4 subjects created") && report.contains("6 values added") && report.contains("5 lines rejected"), "{report}");
    assert!(report.contains("line 2: subject \"u-2\", field ip_address, value 1"), "{report}");
    assert!(report.contains("line 5: invalid JSON"), "{report}");
    assert!(report.contains("line 6: op \"access\""), "{report}");
    assert!(report.contains("line 7: region sg is not served by this node"), "{report}");
    assert!(report.contains("line 10: line is longer than 1048576 bytes"), "{report}");
    let rejects = std::fs::read_to_string(dir.path().join("rejects.jsonl")).unwrap();
    assert_eq!(rejects.lines().count(), 5);

    let again = custos(&["import", "--data", data.to_str().unwrap(), file.to_str().unwrap()]);
    let report = text(&again);
    assert!(report.contains("0 subjects created, 4 updated; 0 values added, 6 already present"), "{report}");
}

#[test]
fn import_csv() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    init(&data);
    let file = dir.path().join("users.csv");
    std::fs::write(
        &file,
        "id,region,labels,staff,ip_address,ip_address,email,location\n\
         u-1,us,journalist;vip,,198.51.100.23,2001:db8::1,ada@example.com,\"40.7128,-74.006\"\n\
         u-2,us,,s-7,203.0.113.9,,not-an-email,\n\
         u-3,eu,,,,,b@example.org,\n",
    )
    .unwrap();
    let output = custos(&["import", "--data", data.to_str().unwrap(), file.to_str().unwrap()]);
    let report = text(&output);
    assert_eq!(output.status.code(), Some(3), "{report}");
    assert!(report.contains("2 subjects created") && report.contains("5 values added") && report.contains("1 lines rejected"), "{report}");
    assert!(report.contains("line 3: subject \"u-2\", field email, value 0"), "{report}");
}

/// Stops the server also when the test fails half-way.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_answers_health_and_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let token = init(&data);
    let mut child = KillOnDrop(
        Command::new(env!("CARGO_BIN_EXE_custos"))
            .args(["serve", "--data", data.to_str().unwrap(), "--listen", "127.0.0.1:0"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stderr = BufReader::new(child.0.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let address = line.trim().rsplit("http://").next().unwrap().to_owned();
    assert!(line.contains("serving regions us, eu"), "{line}");
    let http = |request: String| {
        let mut stream = TcpStream::connect(&address).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    };
    let health = http("GET /healthz HTTP/1.1\r\nHost: custos\r\nConnection: close\r\n\r\n".to_owned());
    assert!(health.starts_with("HTTP/1.1 200") && health.contains("\"status\":\"ok\""), "{health}");
    let body = r#"{"subjects":[{"id":"u-1","region":"us","values":{"email":["ada@example.com"]}}]}"#;
    let ingest = http(format!(
        "POST /v1/subjects HTTP/1.1\r\nHost: custos\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    ));
    assert!(ingest.starts_with("HTTP/1.1 200") && ingest.contains("\"values_added\":1"), "{ingest}");
    // An auditor checks the region's log from outside with the published key.
    let key = custos(&["log", "key", "--data", data.to_str().unwrap(), "--region", "us"]);
    assert!(key.status.success(), "{}", text(&key));
    let key = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    assert!(key.starts_with("localhost/custos/us+"), "{key}");
    let state = dir.path().join("audit-state");
    let url = format!("http://{address}/log/us");
    let verified = custos(&["log", "verify", "--url", &url, "--key", &key, "--state", state.to_str().unwrap()]);
    assert!(verified.status.success(), "{}", text(&verified));
    assert!(text(&verified).contains("verified localhost/custos/us size 0"), "{}", text(&verified));
    let wrong_key = custos(&["log", "key", "--data", data.to_str().unwrap(), "--region", "eu"]);
    let wrong_key = String::from_utf8_lossy(&wrong_key.stdout).trim().to_owned();
    let refused = custos(&["log", "verify", "--url", &url, "--key", &wrong_key]);
    assert!(!refused.status.success(), "{}", text(&refused));

    // One process per deployment: a second one is refused while the server runs.
    let refused = custos(&["keys", "rotate", "--data", data.to_str().unwrap(), "--region", "us"]);
    assert!(!refused.status.success());
    assert!(text(&refused).contains("in use by another custos process"), "{}", text(&refused));
    drop(child);

    // With the server stopped, the keys can be rotated from the CLI.
    let rotated = custos(&["keys", "rotate", "--data", data.to_str().unwrap(), "--region", "us"]);
    assert!(rotated.status.success(), "{}", text(&rotated));
    assert!(text(&rotated).contains("1 data keys re-wrapped"), "{}", text(&rotated));
}

#[test]
fn demo_runs_to_the_end_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let output = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["demo", "--data", data.to_str().unwrap(), "--no-serve", "--subjects", "300"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    for expected in [
        "none of them appears",
        "region us is not served by this node",
        "does not exist (destroyed or never created)",
        "newsroom.example",
        "11 purposes, 29 policies; nothing the controller must state is missing",
        "internal_investigation: roles internal_audit; subjects reached: staff; ip_address at prefix",
    ] {
        assert!(report.contains(expected), "missing {expected:?} in:\n{report}");
    }
    // Running it again starts over from a fresh directory.
    let again = Command::new(env!("CARGO_BIN_EXE_custos"))
        .args(["demo", "--data", data.to_str().unwrap(), "--no-serve", "--subjects", "50"])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", text(&again));
}
