//! The whole product through the binary: `custos init --dev-issuer` with a witness, `serve`,
//! a case registered by the ticketing integration, a staff token from `custos staff token`,
//! an access answered with a receipt, the receipt completed with its tlog-proof and checked
//! by `custos receipt verify`, and a witness (`custos log witness`) cosigning the log so
//! that `custos log verify --witness` counts it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use base64::Engine as _;
use serde_json::Value;

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn custos(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_custos")).args(args).env("CUSTOS_LOG", "warn").output().expect("run custos")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", text(output));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// One HTTP/1.1 request; returns the status code and the body.
fn http(address: &str, method: &str, path: &str, token: Option<&str>, body: Option<&str>) -> (u16, String) {
    let mut stream = TcpStream::connect(address).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: custos\r\nConnection: close\r\n");
    if let Some(token) = token {
        request.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    let body = body.unwrap_or("");
    request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    // Small bodies come in one chunk when the length is unknown; strip the chunk framing.
    let body = if answer.to_ascii_lowercase().contains("transfer-encoding: chunked") {
        body.split("\r\n").skip(1).step_by(2).collect::<Vec<_>>().join("")
    } else {
        body
    };
    (status, body)
}

fn configure_witness(data: &Path, vkey: &str) {
    let path = data.join("custos.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    // Plain keys go before the first table; the witness table goes at the end.
    let (head, tables) = config.split_at(config.find("\n[").unwrap() + 1);
    std::fs::write(&path, format!("{head}witness_quorum = 1\n{tables}\n[[witnesses]]\nvkey = \"{vkey}\"\n")).unwrap();
}

/// Each thread of process `pid`: its name and its nice value (`/proc/PID/task/TID/stat`).
fn threads_by_name(pid: u32) -> Vec<(String, i64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let stat = std::fs::read_to_string(task.unwrap().path().join("stat")).unwrap();
        let (head, rest) = stat.rsplit_once(')').unwrap();
        let comm = head.split_once('(').unwrap().1.to_owned();
        // After the name: state is field 3 of stat(5), nice field 19.
        let nice = rest.split_whitespace().nth(16).unwrap().parse().unwrap();
        threads.push((comm, nice));
    }
    threads
}

/// Waits until the served checkpoint has not changed for longer than the signing interval
/// (1 s by default): every entry logged so far is then covered by it.
fn settle_checkpoint(address: &str) {
    let (_, mut checkpoint) = http(address, "GET", "/log/us/checkpoint", None, None);
    for _ in 0..20 {
        std::thread::sleep(std::time::Duration::from_millis(1_500));
        let (_, now) = http(address, "GET", "/log/us/checkpoint", None, None);
        if now == checkpoint {
            return;
        }
        checkpoint = now;
    }
    panic!("the checkpoint kept changing: {checkpoint}");
}

#[test]
fn an_access_over_the_binary_is_logged_receipted_and_witnessed() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let init = custos(&["init", "--data", data.to_str().unwrap(), "--regions", "us", "--dev-issuer"]);
    let service_token = stdout(&init).lines().find(|line| line.starts_with("cst_")).unwrap().to_owned();
    let witness_dir = dir.path().join("witness");
    let witness_vkey = stdout(&custos(&["log", "witness", "init", "--dir", witness_dir.to_str().unwrap(), "--name", "witness.test/w1"]));
    configure_witness(&data, &witness_vkey);

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

    // Requests come first: the followers' threads run at a lower priority than the workers.
    let threads = threads_by_name(child.0.id());
    let nice_of = |name: &str| threads.iter().filter(|(comm, _)| comm == name).map(|(_, nice)| *nice).collect::<Vec<_>>();
    assert!(!nice_of("custos-follower").is_empty() && nice_of("custos-follower").iter().all(|nice| *nice == 5), "{threads:?}");
    assert!(!nice_of("tokio-rt-worker").is_empty() && nice_of("tokio-rt-worker").iter().all(|nice| *nice == 0), "{threads:?}");

    let subject = r#"{"subjects":[{"id":"u-1","region":"us","values":{"email":["ada.reporter@newsroom.example"],"ip_address":["198.51.100.23"]}}]}"#;
    assert_eq!(http(&address, "POST", "/v1/subjects", Some(&service_token), Some(subject)).0, 200);
    let case = r#"{"id":"T-1","purpose":"support","assignees":["s-agent"],"subjects":["u-1"],"requested_by":"u-1"}"#;
    let (status, body) = http(&address, "POST", "/v1/cases", Some(&service_token), Some(case));
    assert_eq!(status, 201, "{body}");
    let staff = r#"{"id":"s-agent","roles":["support_agent"],"entity":"platform-us","country":"US","region":"us"}"#;
    assert_eq!(http(&address, "PUT", "/v1/staff/s-agent", Some(&service_token), Some(staff)).0, 204);

    // The token carries only the id: the directory supplies role, entity, country, region.
    let token = stdout(&custos(&["staff", "token", "--data", data.to_str().unwrap(), "--id", "s-agent"]));
    let ask = r#"{"subjects":["u-1"],"fields":{"email":"exact","ip_address":"exact"},"purpose":"support","case":"T-1"}"#;
    let (status, body) = http(&address, "POST", "/v1/access", Some(&token), Some(ask));
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    let fields = &answer["subjects"][0]["fields"];
    assert_eq!(fields[0]["field"], "email");
    assert_eq!(fields[0]["values"][0]["value"], "a***@newsroom.example");
    assert_eq!(fields[1]["view"], "country");
    let receipt = &answer["subjects"][0]["receipt"];

    // Complete the receipt with its tlog-proof and check it offline.
    let (status, _) = http(&address, "POST", "/v1/log/us/checkpoint", Some(&service_token), None);
    assert_eq!(status, 200);
    let (status, proof) = http(&address, "GET", &format!("/v1/log/us/proof/receipt?index={}", receipt["index"]), None, None);
    assert_eq!(status, 200, "{proof}");
    let entry = base64::engine::general_purpose::STANDARD.decode(receipt["entry"].as_str().unwrap()).unwrap();
    std::fs::write(dir.path().join("entry"), &entry).unwrap();
    std::fs::write(dir.path().join("receipt.tlog-proof"), &proof).unwrap();
    let key = stdout(&custos(&["log", "key", "--data", data.to_str().unwrap(), "--region", "us"]));
    let verified = custos(&[
        "receipt", "verify", "--key", &key,
        "--entry", dir.path().join("entry").to_str().unwrap(),
        "--proof", dir.path().join("receipt.tlog-proof").to_str().unwrap(),
        "--leaf-hash", receipt["leaf_hash"].as_str().unwrap(),
    ]);
    assert!(verified.status.success(), "{}", text(&verified));

    // `custos report`: a compliance officer downloads the actor's records with their proofs;
    // the agent, without the role, gets a clear refusal and no file.
    let officer = stdout(&custos(&["staff", "token", "--data", data.to_str().unwrap(), "--id", "s-officer", "--role", "compliance_officer"]));
    let server = format!("http://{address}");
    let report = dir.path().join("records.jsonl");
    let downloaded = custos(&["report", "--url", &server, "--token", &officer, "--actor", "s-agent", "--out", report.to_str().unwrap()]);
    assert!(downloaded.status.success(), "{}", text(&downloaded));
    assert!(stdout(&downloaded).contains("1 records of actor s-agent"), "{}", text(&downloaded));
    let report_text = std::fs::read_to_string(&report).unwrap();
    let lines: Vec<Value> = report_text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!((lines[0]["format"].as_str(), lines.len()), (Some("custos-records/1"), 2), "{report_text}");
    assert_eq!(lines[1]["leaf_hash"], receipt["leaf_hash"], "the record is the entry the receipt named");
    // The lawyer checks it offline with one command and the region's key.
    let checked = custos(&["receipt", "verify", "--records", report.to_str().unwrap(), "--key", &key]);
    assert!(checked.status.success() && stdout(&checked).contains("records verified: 1 records of actor s-agent"), "{}", text(&checked));
    let csv = dir.path().join("records.csv");
    let downloaded = custos(&["report", "--url", &server, "--token", &officer, "--actor", "s-agent", "--format", "csv", "--out", csv.to_str().unwrap()]);
    assert!(downloaded.status.success(), "{}", text(&downloaded));
    assert_eq!(std::fs::read_to_string(&csv).unwrap().lines().count(), 2);
    let refused_file = dir.path().join("refused.jsonl");
    let refused = custos(&["report", "--url", &server, "--token", &token, "--case", "T-1", "--out", refused_file.to_str().unwrap()]);
    assert!(!refused.status.success() && text(&refused).contains("compliance_officer"), "{}", text(&refused));
    assert!(!refused_file.exists(), "nothing is written for a refused report");

    // The record of processing, generated from this deployment's configuration and policies:
    // every purpose the policies grant, and the statements `custos init` could not make
    // listed as gaps.
    let record_file = dir.path().join("processing.json");
    let downloaded = custos(&["report", "--url", &server, "--token", &officer, "--processing", "--out", record_file.to_str().unwrap()]);
    assert!(downloaded.status.success(), "{}", text(&downloaded));
    assert!(stdout(&downloaded).contains("record of processing, 11 purposes,"), "{}", text(&downloaded));
    let record: Value = serde_json::from_str(&std::fs::read_to_string(&record_file).unwrap()).unwrap();
    assert_eq!(record["format"], "custos-processing/1");
    assert!(record["gaps"].as_array().unwrap().iter().any(|gap| gap.as_str().unwrap().starts_with("no controller")), "{record}");
    let html_file = dir.path().join("processing.html");
    let downloaded = custos(&["report", "--url", &server, "--token", &officer, "--processing", "--format", "html", "--out", html_file.to_str().unwrap()]);
    assert!(downloaded.status.success(), "{}", text(&downloaded));
    assert!(std::fs::read_to_string(&html_file).unwrap().contains("<h3>internal_investigation</h3>"));
    let refused = custos(&["report", "--url", &server, "--token", &token, "--processing", "--out", refused_file.to_str().unwrap()]);
    assert!(!refused.status.success() && text(&refused).contains("compliance_officer"), "{}", text(&refused));
    assert!(!refused_file.exists(), "nothing is written for a refused record");

    // A witness audits the log, cosigns and hands the cosignature back; the quorum is met and
    // an auditor sees the cosigner. The reports above logged their reads; once the periodic
    // signer has covered them the checkpoint stays put, so every step below sees the one the
    // witness cosigns (a later one would carry no cosignature yet).
    settle_checkpoint(&address);
    let (_, witnesses) = http(&address, "GET", "/v1/log/us/witnesses", None, None);
    assert!(witnesses.contains("\"witnessed\":false"), "{witnesses}");
    let url = format!("http://{address}/log/us");
    let cosigned = custos(&["log", "witness", "cosign", "--dir", witness_dir.to_str().unwrap(), "--url", &url, "--key", &key, "--submit"]);
    assert!(cosigned.status.success(), "{}", text(&cosigned));
    let (_, witnesses) = http(&address, "GET", "/v1/log/us/witnesses", None, None);
    assert!(witnesses.contains("\"witnessed\":true") && witnesses.contains("witness.test/w1"), "{witnesses}");
    let (_, checkpoint) = http(&address, "GET", "/log/us/checkpoint", None, None);
    assert!(checkpoint.contains("— witness.test/w1 "), "{checkpoint}");
    let audited = custos(&["log", "verify", "--url", &url, "--key", &key, "--witness", &witness_vkey]);
    assert!(audited.status.success(), "{}", text(&audited));
    assert!(text(&audited).contains("witness.test/w1"), "{}", text(&audited));

    // A cosignature from a key the log does not know is not kept; a checkpoint the log never
    // signed, or one carrying only the log's own signature, is refused.
    let stranger_dir = dir.path().join("stranger");
    custos(&["log", "witness", "init", "--dir", stranger_dir.to_str().unwrap(), "--name", "stranger.test/w"]);
    let stranger = custos(&["log", "witness", "cosign", "--dir", stranger_dir.to_str().unwrap(), "--url", &url, "--key", &key, "--submit"]);
    assert!(stranger.status.success(), "{}", text(&stranger));
    let (_, witnesses) = http(&address, "GET", "/v1/log/us/witnesses", None, None);
    assert!(!witnesses.contains("stranger"), "{witnesses}");
    let (_, checkpoint) = http(&address, "GET", "/log/us/checkpoint", None, None);
    let log_only: String = checkpoint.lines().filter(|line| !line.contains("witness.test")).map(|line| format!("{line}\n")).collect();
    let (status, body) = http(&address, "POST", "/v1/log/us/cosignatures", None, Some(&log_only));
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("no cosignature from a configured witness"), "{body}");
    // The size line changed: the signatures no longer cover the text.
    let size: u64 = checkpoint.lines().nth(1).unwrap().parse().unwrap();
    let forged = checkpoint.replacen(&format!("\n{size}\n"), &format!("\n{}\n", size + 1), 1);
    assert_ne!(forged, checkpoint);
    let (status, body) = http(&address, "POST", "/v1/log/us/cosignatures", None, Some(&forged));
    assert_eq!(status, 400, "{body}");
    drop(child);
}
