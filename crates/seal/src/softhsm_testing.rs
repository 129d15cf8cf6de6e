//! Test support (feature `softhsm-testing`): real SoftHSM2 tokens in private directories, for
//! this crate's tests and other crates' tests of the PKCS#11 provider.
//!
//! SoftHSM reads its configuration, and so its token directory, from the `SOFTHSM2_CONF`
//! environment variable when the module is initialized, once per process. Setting an
//! environment variable in a running, multi-threaded test process is unsound (and `unsafe`
//! since Rust 2024, which this workspace forbids), so [`run_with_softhsm_token`] creates the
//! token, then re-runs the calling test alone in a child process of the same test binary with
//! `SOFTHSM2_CONF` set, and fails the parent test when the child fails. Each test thus gets its
//! own token directory and its own SoftHSM state.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

use tempfile::TempDir;

use crate::Pkcs11Config;

/// Where distributions install the SoftHSM2 module; the first that exists is used.
pub const SOFTHSM_MODULE_CANDIDATES: [&str; 4] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
];
/// The user PIN of test tokens.
pub const SOFTHSM_TEST_PIN: &str = "1234";
/// The security officer PIN of test tokens.
pub const SOFTHSM_TEST_SO_PIN: &str = "5678";
/// Longest token label PKCS#11 allows, in bytes.
pub const TOKEN_LABEL_BYTES_MAX: usize = 32;

/// Set in the child process: the test it runs.
const CHILD_TEST_VARIABLE: &str = "CUSTOS_SOFTHSM_TEST";
/// Set in the child process: the label of the token created for it.
const CHILD_TOKEN_VARIABLE: &str = "CUSTOS_SOFTHSM_TOKEN";

/// A SoftHSM2 token in a temporary directory, removed when this is dropped.
pub struct SoftHsmToken {
    directory: TempDir,
    conf_path: PathBuf,
    config: Pkcs11Config,
}

impl SoftHsmToken {
    /// How to open the token, valid in a process whose `SOFTHSM2_CONF` is [`Self::conf_path`].
    pub fn config(&self) -> &Pkcs11Config {
        &self.config
    }

    /// The SoftHSM2 configuration file naming the token directory.
    pub fn conf_path(&self) -> &Path {
        &self.conf_path
    }

    /// The temporary directory holding the configuration and the tokens.
    pub fn directory(&self) -> &Path {
        self.directory.path()
    }
}

/// The installed SoftHSM2 module.
pub fn softhsm_module() -> Result<PathBuf, String> {
    SOFTHSM_MODULE_CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .ok_or_else(|| format!("no SoftHSM2 module at {}: install SoftHSM2 (Debian: softhsm2)", SOFTHSM_MODULE_CANDIDATES.join(", ")))
}

/// Creates a token labelled `label` (at most 32 bytes) with `softhsm2-util`, in a fresh
/// directory with its own SoftHSM2 configuration. Errors when SoftHSM2 is not installed: a
/// test needing it must fail, not skip.
pub fn softhsm_test_token(label: &str) -> Result<SoftHsmToken, String> {
    if label.is_empty() || label.len() > TOKEN_LABEL_BYTES_MAX {
        return Err(format!("token label {label:?} must be 1 to {TOKEN_LABEL_BYTES_MAX} bytes"));
    }
    let module = softhsm_module()?;
    let directory = tempfile::tempdir().map_err(|error| format!("cannot create a temporary directory: {error}"))?;
    let tokens = directory.path().join("tokens");
    std::fs::create_dir(&tokens).map_err(|error| format!("cannot create {}: {error}", tokens.display()))?;
    let conf_path = directory.path().join("softhsm2.conf");
    let conf = format!(
        "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
        tokens.display()
    );
    std::fs::write(&conf_path, conf).map_err(|error| format!("cannot write {}: {error}", conf_path.display()))?;

    let output = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", label, "--so-pin", SOFTHSM_TEST_SO_PIN, "--pin", SOFTHSM_TEST_PIN])
        .env("SOFTHSM2_CONF", &conf_path)
        .output()
        .map_err(|error| format!("cannot run softhsm2-util (install SoftHSM2, Debian: softhsm2): {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "softhsm2-util --init-token failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let config = Pkcs11Config { module, token_label: label.to_owned(), pin: SOFTHSM_TEST_PIN.to_owned() };
    Ok(SoftHsmToken { directory, conf_path, config })
}

/// Runs `body` against a fresh SoftHSM2 token, in a child process of the current test binary.
///
/// `test_name` is the test's full name as libtest knows it (`cargo test -- --list`), e.g.
/// `pkcs11_round_trip` in an integration test file, or `module::test` inside a module. In the
/// parent process this creates the token, re-runs exactly that test in a child with
/// `SOFTHSM2_CONF` set, and panics with the child's output unless the child ran the test and
/// it passed. In the child it calls `body`. Call it from a `#[test]` in a libtest harness.
pub fn run_with_softhsm_token(test_name: &str, body: impl FnOnce(&Pkcs11Config)) {
    if std::env::var_os(CHILD_TEST_VARIABLE).as_deref() == Some(OsStr::new(test_name)) {
        let token_label = std::env::var(CHILD_TOKEN_VARIABLE)
            .unwrap_or_else(|_| panic!("{CHILD_TOKEN_VARIABLE} is not set in the SoftHSM test child"));
        let module = softhsm_module().unwrap_or_else(|error| panic!("{error}"));
        body(&Pkcs11Config { module, token_label, pin: SOFTHSM_TEST_PIN.to_owned() });
        return;
    }

    let label = token_label_for(test_name);
    let token = softhsm_test_token(&label).unwrap_or_else(|error| panic!("cannot create a SoftHSM2 token: {error}"));
    let executable = std::env::current_exe().unwrap_or_else(|error| panic!("cannot find the test binary: {error}"));
    let output = Command::new(&executable)
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("SOFTHSM2_CONF", token.conf_path())
        .env(CHILD_TEST_VARIABLE, test_name)
        .env(CHILD_TOKEN_VARIABLE, &label)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {}: {error}", executable.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // A wrong test name makes libtest run nothing and succeed: demand that one test passed.
    let passed = output.status.success() && stdout.contains("test result: ok. 1 passed;");
    assert!(
        passed,
        "SoftHSM test {test_name} failed in its child process ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        output.status
    );
    print!("{stdout}");
    eprint!("{stderr}");
}

/// A token label from the test's name: its last path segment, cut to the label limit.
fn token_label_for(test_name: &str) -> String {
    let last = test_name.rsplit("::").next().unwrap_or(test_name);
    let mut label: String = last.chars().filter(char::is_ascii).take(TOKEN_LABEL_BYTES_MAX).collect();
    if label.is_empty() {
        label.push_str("custos-test");
    }
    label
}
