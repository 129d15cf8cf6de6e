//! Tidy: rules about the code itself, checked by plain `cargo test` — every Rust file opens
//! with a `//!` comment, no stubs or disabled tests, dependencies point one way, and the pure
//! crates do no IO, read no clock and draw no randomness.

use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name != "target") {
                rust_files(&path, found);
            }
        } else if path.extension().is_some_and(|extension| extension == "rs") {
            found.push(path);
        }
    }
}

fn all_rust_files() -> Vec<PathBuf> {
    let mut files = Vec::new();
    rust_files(&workspace().join("crates"), &mut files);
    assert!(files.len() > 20, "tidy found only {} files", files.len());
    files
}

#[test]
fn every_file_says_what_it_is_for() {
    let missing: Vec<String> = all_rust_files()
        .into_iter()
        .filter(|path| !std::fs::read_to_string(path).unwrap().starts_with("//!"))
        .map(|path| path.display().to_string())
        .collect();
    assert!(missing.is_empty(), "files without a `//!` header: {missing:#?}");
}

#[test]
fn no_stubs_and_no_disabled_tests() {
    // Spelled in pieces so that this file does not match itself.
    let banned = [concat!("todo", "!("), concat!("unimplemented", "!("), concat!("#[", "ignore"), concat!("dbg", "!(")];
    let mut found = Vec::new();
    for path in all_rust_files() {
        let text = std::fs::read_to_string(&path).unwrap();
        for (number, line) in text.lines().enumerate() {
            if let Some(pattern) = banned.iter().find(|pattern| line.contains(*pattern)) {
                found.push(format!("{}:{}: {pattern}", path.display(), number + 1));
            }
        }
    }
    assert!(found.is_empty(), "{found:#?}");
}

/// The workspace crates a crate's `[dependencies]` names (dev-dependencies may go anywhere).
fn workspace_dependencies(krate: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(workspace().join("crates").join(krate).join("Cargo.toml")).unwrap();
    let ours = ["model", "seal", "store", "service", "server", "cli", "tlog", "audit", "sequencer", "auth", "policy", "detect", "traffic"];
    let mut in_dependencies = false;
    let mut found = Vec::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
            continue;
        }
        let name = line.split(['=', '.', ' ']).next().unwrap_or("");
        if in_dependencies && ours.contains(&name) {
            found.push(name.to_owned());
        }
    }
    found
}

#[test]
fn dependencies_point_toward_the_pure_crates() {
    let allowed: [(&str, &[&str]); 13] = [
        ("model", &[]),
        ("traffic", &[]),
        ("detect", &["model"]),
        ("tlog", &[]),
        ("auth", &[]),
        ("policy", &["model"]),
        ("audit", &["tlog"]),
        ("seal", &["model"]),
        ("store", &["model", "tlog"]),
        ("sequencer", &["store", "tlog"]),
        ("service", &["model", "seal", "store", "tlog", "sequencer", "policy", "auth", "detect"]),
        ("server", &["model", "service", "store", "tlog", "auth"]),
        ("cli", &["model", "seal", "store", "service", "server", "tlog", "audit", "sequencer", "auth", "policy", "detect", "traffic"]),
    ];
    for (krate, allowed) in allowed {
        for dependency in workspace_dependencies(krate) {
            assert!(allowed.contains(&dependency.as_str()), "{krate} must not depend on {dependency}");
        }
    }
}

#[test]
fn pure_crates_do_no_io_and_read_no_clock() {
    let banned = ["std::fs", "TcpStream", "TcpListener", "UdpSocket", "std::process", "SystemTime::now", "Instant::now", "Utc::now", "Local::now", "rand::", "tokio"];
    let mut found = Vec::new();
    for krate in ["model", "tlog", "detect"] {
        let mut files = Vec::new();
        rust_files(&workspace().join("crates").join(krate).join("src"), &mut files);
        assert!(!files.is_empty());
        for path in files {
            let text = std::fs::read_to_string(&path).unwrap();
            // Unit tests at the bottom of a file may read fixtures.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for pattern in banned {
                if code.contains(pattern) {
                    found.push(format!("{}: {pattern}", path.display()));
                }
            }
        }
    }
    assert!(found.is_empty(), "IO, clock or randomness in a pure crate: {found:#?}");
}
