//! Fetching: a mirrored directory serves a log like the in-memory map does, transport
//! failures name the path that failed, and the directory fetcher stays inside its root.

mod support;

use std::error::Error as _;

use audit::{DirectoryFetcher, FetchError, Fetcher, VerifyOptions, verify_log};
use support::{History, log_signer, log_vkey};

const WITH_ENTRIES: VerifyOptions<'static> = VerifyOptions {
    entries: true,
    witnesses: &[],
    progress: None,
};

/// Serves the files it holds except `failing`, whose fetch fails.
struct Flaky {
    files: support::Files,
    failing: &'static str,
}

impl Fetcher for Flaky {
    fn fetch(&self, path: &str) -> Result<Option<Vec<u8>>, FetchError> {
        if path == self.failing {
            return Err(FetchError::Status { status: 503 });
        }
        self.files.fetch(path)
    }
}

#[test]
fn transport_failures_name_the_path() {
    let history = History::honest(600);
    let files = history.files(600, &log_signer());
    for failing in [
        "checkpoint",
        "tile/0/001",
        "tile/1/000.p/2",
        "tile/entries/002.p/88",
    ] {
        let flaky = Flaky {
            files: files.clone(),
            failing,
        };
        let error =
            verify_log(&flaky, &log_vkey(), None, WITH_ENTRIES).expect_err("fetch failure ignored");
        assert_eq!(error.to_string(), format!("failed to fetch {failing}"));
        let source = error.source().expect("fetch error kept as source");
        assert_eq!(source.to_string(), "server answered with status 503");
    }
}

#[test]
fn mirrored_directory_verifies() {
    let history = History::honest(600);
    let files = history.files(600, &log_signer());
    let root = std::env::temp_dir().join(format!("custos-audit-mirror-{}", std::process::id()));
    for (path, bytes) in &files {
        let file = root.join(path);
        std::fs::create_dir_all(file.parent().expect("has parent")).expect("create directory");
        std::fs::write(&file, bytes).expect("write file");
    }
    let fetcher = DirectoryFetcher::new(&root);
    let report = verify_log(&fetcher, &log_vkey(), None, WITH_ENTRIES);
    let missing = fetcher.fetch("tile/9/000");
    let escapes = ["../etc/passwd", "/etc/passwd", "tile//000", ""].map(|path| fetcher.fetch(path));
    std::fs::remove_dir_all(&root).expect("clean up");

    assert_eq!(report.expect("mirror verifies").entries_verified, Some(600));
    assert_eq!(missing, Ok(None));
    for (path, outcome) in ["../etc/passwd", "/etc/passwd", "tile//000", ""]
        .iter()
        .zip(escapes)
    {
        assert_eq!(
            outcome,
            Err(FetchError::InvalidPath {
                path: (*path).to_owned()
            })
        );
    }
}
