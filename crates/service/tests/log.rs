//! The access log as a deployment runs it: keys created at init (0600), the origin and
//! interval from `custos.toml`, the periodic signer started by `open_deployment`, the
//! verifier key the CLI prints, and configurations written before the log existed.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use model::RegionId;
use service::{
    CONFIG_FILE_NAME, DeploymentError, InitOptions, KeysConfig, LOG_KEYS_FILE_NAME, StorageConfig, SystemClock,
    init_data_dir, log_verifier_key, open_deployment, read_config,
};
use tlog::{Checkpoint, Note, TreeSize, Verifier};

fn region(name: &str) -> RegionId {
    RegionId::new(name).unwrap()
}

fn init(dir: &Path) {
    let options = InitOptions { regions: vec![region("us"), region("eu")], storage: StorageConfig::Sqlite, keys: KeysConfig::Keyring, geo: None, dev_issuer: false };
    init_data_dir(dir, options).unwrap();
}

fn edit_config(dir: &Path, edit: impl FnOnce(String) -> String) {
    let path = dir.join(CONFIG_FILE_NAME);
    let text = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, edit(text)).unwrap();
}

fn checkpoint_of(note: &str, vkey: &str) -> Checkpoint {
    let note = Note::parse(note.as_bytes()).unwrap();
    let verifier = Verifier::from_vkey(vkey).unwrap();
    note.verify(&[&verifier]).unwrap();
    Checkpoint::parse(note.text()).unwrap()
}

#[tokio::test]
async fn a_deployment_signs_its_logs_periodically_with_its_own_keys() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let mode = std::fs::metadata(dir.path().join(LOG_KEYS_FILE_NAME)).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let config = read_config(dir.path()).unwrap();
    assert_eq!(config.log_origin_host(), "localhost");
    assert_eq!(config.checkpoint_interval(), Duration::from_secs(1));
    edit_config(dir.path(), |text| {
        text.replace("log_origin_host = \"localhost\"", "log_origin_host = \"custos.example\"")
            .replace("checkpoint_interval_ms = 1000", "checkpoint_interval_ms = 20")
    });
    let us_key = log_verifier_key(dir.path(), &region("us")).unwrap();
    let eu_key = log_verifier_key(dir.path(), &region("eu")).unwrap();
    assert!(us_key.starts_with("custos.example/custos/us+"), "{us_key}");
    assert!(eu_key.starts_with("custos.example/custos/eu+"), "{eu_key}");
    assert_ne!(us_key.rsplit('+').next(), eu_key.rsplit('+').next(), "regions share a key");

    let (_, vault) = open_deployment(dir.path(), Arc::new(SystemClock)).await.unwrap();
    let vault = Arc::new(vault);
    assert_eq!(vault.log(&region("us")).unwrap().verifier_key(), us_key);
    // Read while the deployment is open: the key is not drawn again.
    assert_eq!(log_verifier_key(dir.path(), &region("us")).unwrap(), us_key);
    for number in 0..3 {
        let receipt = vault.append_log(&region("us"), format!("decision {number}").into_bytes()).await.unwrap();
        assert_eq!(receipt.index.0, number);
        assert_eq!(receipt.origin, "custos.example/custos/us");
    }
    // No sign_now: the periodic signer publishes the new tree.
    let mut size = TreeSize(0);
    for _ in 0..200 {
        size = checkpoint_of(&vault.checkpoint(&region("us")).await.unwrap(), &us_key).size();
        if size == TreeSize(3) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(size, TreeSize(3));
    assert_eq!(checkpoint_of(&vault.checkpoint(&region("eu")).await.unwrap(), &eu_key).size(), TreeSize(0));
    assert!(matches!(
        vault.append_log(&region("jp"), b"x".to_vec()).await,
        Err(service::ServiceError::RegionNotServed(_))
    ));
    assert!(matches!(
        vault.append_log(&region("us"), vec![0; tlog::ENTRY_BYTES_MAX]).await,
        Err(service::ServiceError::LogEntryRejected(_))
    ));
    drop(vault);

    // The log survives a restart and keeps its key.
    let (_, vault) = open_deployment(dir.path(), Arc::new(SystemClock)).await.unwrap();
    let receipt = vault.append_log(&region("us"), b"after restart".to_vec()).await.unwrap();
    assert_eq!(receipt.index.0, 3);
    let note = vault.sign_checkpoint_now(&region("us")).await.unwrap();
    assert_eq!(checkpoint_of(&note, &us_key).size(), TreeSize(4));
}

#[tokio::test]
async fn deployments_from_before_the_log_still_open() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    edit_config(dir.path(), |text| {
        text.lines().filter(|line| !line.starts_with("log_origin_host") && !line.starts_with("checkpoint_interval_ms")).collect::<Vec<_>>().join("\n")
    });
    std::fs::remove_file(dir.path().join(LOG_KEYS_FILE_NAME)).unwrap();
    let config = read_config(dir.path()).unwrap();
    assert_eq!(config.log_origin_host, None);
    assert_eq!(config.log_origin(&region("us")), "localhost/custos/us");
    // No process holds the deployment: the key is created, then kept.
    let key = log_verifier_key(dir.path(), &region("us")).unwrap();
    assert!(key.starts_with("localhost/custos/us+"), "{key}");
    let (_, vault) = open_deployment(dir.path(), Arc::new(SystemClock)).await.unwrap();
    assert_eq!(vault.log(&region("us")).unwrap().verifier_key(), key);
    assert!(matches!(log_verifier_key(dir.path(), &region("jp")), Err(DeploymentError::Config { .. })));
}

#[test]
fn bad_log_settings_are_refused() {
    let check = |setting: &str, expected_in_message: &str| {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path());
        edit_config(dir.path(), |text| {
            let kept: Vec<&str> = text.lines().filter(|line| !line.starts_with(setting.split(' ').next().unwrap())).collect();
            format!("{setting}\n{}", kept.join("\n"))
        });
        match read_config(dir.path()) {
            Err(DeploymentError::Config { message, .. }) => assert!(message.contains(expected_in_message), "{setting}: {message}"),
            other => panic!("{setting}: {other:?}"),
        }
    };
    check("checkpoint_interval_ms = 0", "checkpoint_interval_ms");
    check("checkpoint_interval_ms = 3600001", "checkpoint_interval_ms");
    check("log_origin_host = \"a/b\"", "log_origin_host");
    check("log_origin_host = \"\"", "log_origin_host");
    check("log_origin_hosts = \"x\"", "unknown field");
}

#[tokio::test]
async fn a_log_key_file_others_can_read_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    init(dir.path());
    let path = dir.path().join(LOG_KEYS_FILE_NAME);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(matches!(log_verifier_key(dir.path(), &region("us")), Err(DeploymentError::LogKeys(_))));
    assert!(matches!(open_deployment(dir.path(), Arc::new(SystemClock)).await, Err(DeploymentError::LogKeys(_))));
}
