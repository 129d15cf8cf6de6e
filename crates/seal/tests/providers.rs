//! Key-provider conformance: the keyring file and a PKCS#11 token (a real SoftHSM2 token) pass
//! the same checks, then what is particular to each (file permissions and contents; keys that
//! never leave the token).
//!
//! The PKCS#11 tests run through `run_with_softhsm_token`, which re-runs each of them alone in
//! a child process with its own token directory (see `seal::softhsm_testing`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CryptokiError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeInfo, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use model::{RegionId, SubjectId};
use seal::softhsm_testing::run_with_softhsm_token;
use seal::{DataKey, KeyError, KeyProvider, KeyringFile, KekVersion, Pkcs11Config, Pkcs11Provider, ShredGroup, WrappedKey};

fn region(name: &str) -> RegionId {
    RegionId::new(name).unwrap()
}

fn subject(id: &str) -> SubjectId {
    SubjectId::new(id).unwrap()
}

fn group(number: u16) -> ShredGroup {
    ShredGroup::new(number).unwrap()
}

fn assert_integrity(result: Result<DataKey, KeyError>, what: &str) {
    match result {
        Err(KeyError::Integrity) => {}
        Err(other) => panic!("{what}: expected an integrity error, got {other}"),
        Ok(_) => panic!("{what}: expected an integrity error, but the key unwrapped"),
    }
}

fn assert_missing(result: Result<DataKey, KeyError>, expected_region: &str, expected_group: u16, expected_version: u32) {
    match result {
        Err(KeyError::MissingKek { region, group, version }) => {
            assert_eq!((region.as_str(), group, version), (expected_region, expected_group, expected_version));
        }
        Err(other) => panic!("expected a missing key-encryption key, got {other}"),
        Ok(_) => panic!("expected a missing key-encryption key, but the key unwrapped"),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

/// The contract every `KeyProvider` keeps. `provider` (region `us`) and `other_region`
/// (region `eu`) are fresh handles on one store (file or token) with no keys yet; `reopen`
/// opens another handle on `provider`'s store and region.
fn provider_conformance(provider: &dyn KeyProvider, other_region: &dyn KeyProvider, reopen: &dyn Fn() -> Box<dyn KeyProvider>) {
    assert_eq!(provider.region(), &region("us"));
    assert_eq!(other_region.region(), &region("eu"));
    let (alice, bob) = (subject("alice"), subject("bob"));
    let seven = group(7);

    // Version 1 is created by the first wrap.
    assert_eq!(provider.current_version(seven).unwrap(), None);
    let key = DataKey::generate().unwrap();
    let wrapped = provider.wrap(seven, &alice, &key).unwrap();
    assert_eq!((wrapped.group, wrapped.version), (seven, KekVersion(1)));
    assert_eq!(provider.current_version(seven).unwrap(), Some(KekVersion(1)));
    assert!(!contains(&wrapped.bytes, key.as_bytes()), "the wrapped key shows the data key");

    // Round trip; wrapping is randomized.
    assert_eq!(provider.unwrap(&alice, &wrapped).unwrap().as_bytes(), key.as_bytes());
    let again = provider.wrap(seven, &alice, &key).unwrap();
    assert_ne!(again.bytes, wrapped.bytes);
    assert_eq!(provider.unwrap(&alice, &again).unwrap().as_bytes(), key.as_bytes());

    // Bound to the subject.
    assert_integrity(provider.unwrap(&bob, &wrapped), "unwrap for another subject");

    // Any change to the bytes is caught.
    for position in 0..wrapped.bytes.len() {
        for flip in [0x01, 0x80] {
            let mut tampered = wrapped.clone();
            tampered.bytes[position] ^= flip;
            assert_integrity(provider.unwrap(&alice, &tampered), &format!("byte {position} flipped by {flip:#04x}"));
        }
    }
    let mut truncated = wrapped.clone();
    truncated.bytes.pop();
    assert_integrity(provider.unwrap(&alice, &truncated), "truncated");
    let mut extended = wrapped.clone();
    extended.bytes.push(0);
    assert_integrity(provider.unwrap(&alice, &extended), "extended");
    assert_integrity(provider.unwrap(&alice, &WrappedKey { bytes: Vec::new(), ..wrapped.clone() }), "empty");

    // A version or group that has no key.
    assert_missing(provider.unwrap(&alice, &WrappedKey { version: KekVersion(9), ..wrapped.clone() }), "us", 7, 9);
    assert_missing(provider.unwrap(&alice, &WrappedKey { group: group(8), ..wrapped.clone() }), "us", 8, 1);
    // The key of another group does not open it.
    provider.wrap(group(8), &alice, &DataKey::generate().unwrap()).unwrap();
    assert_integrity(provider.unwrap(&alice, &WrappedKey { group: group(8), ..wrapped.clone() }), "unwrap under another group");

    // Another region's provider cannot unwrap it, before and after it has its own key.
    assert_missing(other_region.unwrap(&alice, &wrapped), "eu", 7, 1);
    let eu_key = DataKey::generate().unwrap();
    let eu_wrapped = other_region.wrap(seven, &bob, &eu_key).unwrap();
    assert_eq!(eu_wrapped.version, KekVersion(1));
    assert_integrity(other_region.unwrap(&alice, &wrapped), "region us key unwrapped by region eu");
    assert_integrity(provider.unwrap(&bob, &eu_wrapped), "region eu key unwrapped by region us");
    assert_eq!(other_region.unwrap(&bob, &eu_wrapped).unwrap().as_bytes(), eu_key.as_bytes());

    // Rotation: new wraps use the new version, old ones unwrap until destroyed.
    assert_eq!(provider.rotate(seven).unwrap(), KekVersion(2));
    assert_eq!(provider.current_version(seven).unwrap(), Some(KekVersion(2)));
    let bob_key = DataKey::generate().unwrap();
    let wrapped_v2 = provider.wrap(seven, &bob, &bob_key).unwrap();
    assert_eq!(wrapped_v2.version, KekVersion(2));
    assert_eq!(provider.unwrap(&alice, &wrapped).unwrap().as_bytes(), key.as_bytes());

    // Another handle sees the rotation and both versions.
    let second = reopen();
    assert_eq!(second.current_version(seven).unwrap(), Some(KekVersion(2)));
    assert_eq!(second.unwrap(&alice, &wrapped).unwrap().as_bytes(), key.as_bytes());
    assert_eq!(second.unwrap(&bob, &wrapped_v2).unwrap().as_bytes(), bob_key.as_bytes());

    // The current version is never destroyed.
    match provider.destroy_before(seven, KekVersion(3)) {
        Err(KeyError::DestroyCurrent { current: 2, keep_from: 3, .. }) => {}
        other => panic!("expected a refusal to destroy the current version, got {other:?}"),
    }
    assert_eq!(provider.unwrap(&alice, &wrapped).unwrap().as_bytes(), key.as_bytes());

    // Destroying old versions makes their keys unrecoverable, through every handle.
    provider.destroy_before(seven, KekVersion(2)).unwrap();
    assert_missing(provider.unwrap(&alice, &wrapped), "us", 7, 1);
    assert_missing(second.unwrap(&alice, &wrapped), "us", 7, 1);
    assert_eq!(provider.unwrap(&bob, &wrapped_v2).unwrap().as_bytes(), bob_key.as_bytes());
    assert_eq!(second.unwrap(&bob, &wrapped_v2).unwrap().as_bytes(), bob_key.as_bytes());
    assert_eq!(provider.current_version(seven).unwrap(), Some(KekVersion(2)));
    provider.destroy_before(seven, KekVersion(2)).unwrap();
    // The other region's key of the same group is untouched.
    assert_eq!(other_region.unwrap(&bob, &eu_wrapped).unwrap().as_bytes(), eu_key.as_bytes());

    // Rotating an unused group creates version 1; destroying in an unused group does nothing.
    assert_eq!(provider.rotate(group(9)).unwrap(), KekVersion(1));
    provider.destroy_before(group(200), KekVersion(5)).unwrap();
    assert_eq!(provider.current_version(group(200)).unwrap(), None);

    assert!(!provider.describe().is_empty());
}

/// Threads share a provider: concurrent first wraps of a group create one version only.
fn concurrent_use(provider: &dyn KeyProvider) {
    let shared = group(42);
    std::thread::scope(|scope| {
        for worker in 0..4 {
            scope.spawn(move || {
                for index in 0..25 {
                    let subject = subject(&format!("worker-{worker}-{index}"));
                    let key = DataKey::generate().unwrap();
                    let wrapped = provider.wrap(shared, &subject, &key).unwrap();
                    assert_eq!(provider.unwrap(&subject, &wrapped).unwrap().as_bytes(), key.as_bytes());
                }
            });
        }
    });
    assert_eq!(provider.current_version(shared).unwrap(), Some(KekVersion(1)));
}

// ---------------------------------------------------------------------------------------------
// Keyring file

fn new_keyring(directory: &Path) -> std::path::PathBuf {
    let path = directory.join("keyring.json");
    KeyringFile::create(&path, &[region("us"), region("eu")]).unwrap();
    path
}

#[test]
fn keyring_conformance() {
    let directory = tempfile::tempdir().unwrap();
    let path = new_keyring(directory.path());
    let us = KeyringFile::open(&path, region("us")).unwrap();
    let eu = KeyringFile::open(&path, region("eu")).unwrap();
    provider_conformance(&us, &eu, &|| Box::new(KeyringFile::open(&path, region("us")).unwrap()));
    concurrent_use(&us);
}

#[test]
fn keyring_keys_survive_closing_and_reopening() {
    let directory = tempfile::tempdir().unwrap();
    let path = new_keyring(directory.path());
    let key = DataKey::generate().unwrap();
    let wrapped = {
        let us = KeyringFile::open(&path, region("us")).unwrap();
        us.rotate(group(3)).unwrap();
        us.wrap(group(3), &subject("alice"), &key).unwrap()
    };
    // Every handle is closed: this reads the file again.
    let us = KeyringFile::open(&path, region("us")).unwrap();
    assert_eq!(us.current_version(group(3)).unwrap(), Some(KekVersion(1)));
    assert_eq!(us.unwrap(&subject("alice"), &wrapped).unwrap().as_bytes(), key.as_bytes());
    let names: Vec<String> =
        std::fs::read_dir(directory.path()).unwrap().map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned()).collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["keyring.json", "keyring.json.lock"], "temporary files are left behind");
}

/// Opens a fresh keyring whose mode was set to `mode`; `expected` is `Ok` or the words the
/// refusal must contain.
fn check_mode(mode: u32, expected: Result<(), &[&str]>) {
    let directory = tempfile::tempdir().unwrap();
    let path = new_keyring(directory.path());
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    match (KeyringFile::open(&path, region("us")), expected) {
        (Ok(_), Ok(())) => {}
        (Err(error), Err(words)) => {
            let message = error.to_string();
            for word in words {
                assert!(message.contains(word), "mode {mode:o}: {message:?} does not mention {word:?}");
            }
        }
        (Ok(_), Err(_)) => panic!("mode {mode:o} was accepted"),
        (Err(error), Ok(())) => panic!("mode {mode:o} was refused: {error}"),
    }
}

#[test]
fn keyring_refuses_loose_permissions() {
    check_mode(0o600, Ok(()));
    check_mode(0o400, Ok(()));
    check_mode(0o640, Err(&["mode 0640", "chmod 600"]));
    check_mode(0o644, Err(&["mode 0644", "chmod 600"]));
    check_mode(0o604, Err(&["mode 0604", "chmod 600"]));
    check_mode(0o602, Err(&["mode 0602", "chmod 600"]));
    check_mode(0o660, Err(&["mode 0660", "chmod 600"]));
}

#[test]
fn keyring_files_are_private_and_never_overwritten() {
    let directory = tempfile::tempdir().unwrap();
    let path = new_keyring(directory.path());
    let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    let before = std::fs::read(&path).unwrap();
    let error = KeyringFile::create(&path, &[region("sg")]).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
    assert_eq!(std::fs::read(&path).unwrap(), before);

    // Rewritten files are private too.
    let us = KeyringFile::open(&path, region("us")).unwrap();
    us.rotate(group(1)).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&directory.path().join("keyring.json.lock")), 0o600);
}

#[test]
fn keyring_open_errors_name_the_problem() {
    let directory = tempfile::tempdir().unwrap();
    let path = new_keyring(directory.path());
    let check = |result: Result<KeyringFile, KeyError>, words: &[&str]| {
        let message = result.err().map(|error| error.to_string()).unwrap_or_default();
        for word in words {
            assert!(message.contains(word), "{message:?} does not mention {word:?}");
        }
    };
    check(KeyringFile::open(&path, region("sg")), &["region sg", "us", "eu"]);
    // After that refusal the file still opens (the refused handle released its lock).
    assert!(KeyringFile::open(&path, region("us")).is_ok());
    check(KeyringFile::open(directory.path().join("absent.json"), region("us")), &["absent.json", "cannot read"]);
    check(KeyringFile::open(directory.path(), region("us")), &["not a regular file"]);

    let garbled = directory.path().join("garbled.json");
    std::fs::write(&garbled, b"{\"format\": \"custos-keyring\", \"version\": 1, \"regions\": {\"us\": {\"groups\": {\"300\": {\"current\": 1, \"keys\": {}}}}}}").unwrap();
    std::fs::set_permissions(&garbled, std::fs::Permissions::from_mode(0o600)).unwrap();
    check(KeyringFile::open(&garbled, region("us")), &["shred group 300 out of range"]);
    std::fs::write(&garbled, b"not json").unwrap();
    check(KeyringFile::open(&garbled, region("us")), &["not a valid keyring"]);
    let error = KeyringFile::create(directory.path().join("empty.json"), &[]).unwrap_err();
    assert!(error.to_string().contains("at least one region"), "{error}");
}

#[test]
fn keyring_is_locked_against_other_processes_while_open() {
    let directory = tempfile::tempdir().unwrap();
    let path = new_keyring(directory.path());
    let lock_path = directory.path().join("keyring.json.lock");
    let try_lock = || std::fs::File::open(&lock_path).unwrap().try_lock().is_ok();
    let first = KeyringFile::open(&path, region("us")).unwrap();
    let second = KeyringFile::open(&path, region("eu")).unwrap();
    // flock locks belong to open files, so another open of the lock file stands in for another
    // process.
    assert!(!try_lock());
    drop(first);
    assert!(!try_lock(), "released while a handle is still open");
    drop(second);
    assert!(try_lock(), "still locked after every handle was closed");
}

#[test]
fn keyring_file_holds_only_key_encryption_keys() {
    let directory = tempfile::tempdir().unwrap();
    let path = new_keyring(directory.path());
    let us = KeyringFile::open(&path, region("us")).unwrap();
    let mut data_keys = Vec::new();
    let mut wrapped_keys = Vec::new();
    for index in 0..20u16 {
        let key = DataKey::generate().unwrap();
        wrapped_keys.push(us.wrap(group(index % 4), &subject(&format!("s{index}")), &key).unwrap());
        data_keys.push(key);
    }
    us.rotate(group(0)).unwrap();
    let contents = std::fs::read(&path).unwrap();
    let forms = |bytes: &[u8]| [bytes.to_vec(), BASE64.encode(bytes).into_bytes(), hex::encode(bytes).into_bytes()];
    for key in &data_keys {
        for form in forms(key.as_bytes()) {
            assert!(!contains(&contents, &form), "the keyring file holds a data key");
        }
    }
    for wrapped in &wrapped_keys {
        for form in forms(&wrapped.bytes) {
            assert!(!contains(&contents, &form), "the keyring file holds a wrapped data key");
        }
    }

    // What it does hold: key-encryption keys, and after destroy_before not the old ones.
    let document: serde_json::Value = serde_json::from_slice(&contents).unwrap();
    let group_zero = &document["regions"]["us"]["groups"]["0"];
    assert_eq!(group_zero["current"], 2);
    let old_key = group_zero["keys"]["1"].as_str().unwrap().to_owned();
    assert_eq!(BASE64.decode(&old_key).unwrap().len(), 32);
    us.destroy_before(group(0), KekVersion(2)).unwrap();
    let contents = std::fs::read_to_string(&path).unwrap();
    assert!(!contents.contains(&old_key), "a destroyed key is still in the file");
    let document: serde_json::Value = serde_json::from_str(&contents).unwrap();
    let versions: Vec<&String> = document["regions"]["us"]["groups"]["0"]["keys"].as_object().unwrap().keys().collect();
    assert_eq!(versions, ["2"]);
}

// ---------------------------------------------------------------------------------------------
// PKCS#11 on SoftHSM2

/// A raw session on the test token, to look at the objects the provider made.
fn raw_session(config: &Pkcs11Config) -> Session {
    let context = Pkcs11::new(&config.module).unwrap();
    match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CryptokiError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
        Err(error) => panic!("C_Initialize: {error}"),
    }
    let slot = context
        .get_slots_with_initialized_token()
        .unwrap()
        .into_iter()
        .find(|slot| context.get_token_info(*slot).unwrap().label().trim_end() == config.token_label)
        .unwrap();
    let session = context.open_rw_session(slot).unwrap();
    match session.login(UserType::User, Some(&AuthPin::from(config.pin.clone()))) {
        Ok(()) | Err(CryptokiError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
        Err(error) => panic!("C_Login: {error}"),
    }
    session
}

fn object_labelled(session: &Session, label: &str) -> Option<ObjectHandle> {
    let found = session.find_objects(&[Attribute::Label(label.as_bytes().to_vec())]).unwrap();
    assert!(found.len() <= 1, "{} objects labelled {label}", found.len());
    found.first().copied()
}

#[test]
fn pkcs11_conformance() {
    run_with_softhsm_token("pkcs11_conformance", |config| {
        let us = Pkcs11Provider::open(config.clone(), region("us")).unwrap();
        let eu = Pkcs11Provider::open(config.clone(), region("eu")).unwrap();
        provider_conformance(&us, &eu, &|| Box::new(Pkcs11Provider::open(config.clone(), region("us")).unwrap()));
        concurrent_use(&us);

        // The objects on the token are exactly the versions that were not destroyed.
        let session = raw_session(config);
        assert!(object_labelled(&session, "custos/us/7/v1").is_none());
        assert!(object_labelled(&session, "custos/us/7/v2").is_some());
        assert!(object_labelled(&session, "custos/eu/7/v1").is_some());
    });
}

#[test]
fn pkcs11_key_never_leaves_the_token() {
    run_with_softhsm_token("pkcs11_key_never_leaves_the_token", |config| {
        let us = Pkcs11Provider::open(config.clone(), region("us")).unwrap();
        us.wrap(group(5), &subject("alice"), &DataKey::generate().unwrap()).unwrap();
        let session = raw_session(config);
        let kek = object_labelled(&session, "custos/us/5/v1").expect("the key-encryption key is a token object");

        let info = session.get_attribute_info(kek, &[AttributeType::Value]).unwrap();
        assert!(matches!(info[0], AttributeInfo::Sensitive), "CKA_VALUE is readable: {:?}", info[0]);
        let attributes = session
            .get_attributes(kek, &[AttributeType::Value, AttributeType::Sensitive, AttributeType::Extractable, AttributeType::Token])
            .unwrap();
        assert!(!attributes.iter().any(|attribute| matches!(attribute, Attribute::Value(_))), "CKA_VALUE was returned");
        assert!(attributes.iter().any(|attribute| matches!(attribute, Attribute::Sensitive(true))));
        assert!(attributes.iter().any(|attribute| matches!(attribute, Attribute::Extractable(false))));
        assert!(attributes.iter().any(|attribute| matches!(attribute, Attribute::Token(true))));
        // PKCS#11 forbids turning a non-extractable key extractable again.
        assert!(session.update_attributes(kek, &[Attribute::Extractable(true)]).is_err());
        // Nor can it be wrapped out of the token under a key we know.
        let known = session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32u64.into()),
                    Attribute::Token(false),
                    Attribute::Wrap(true),
                ],
            )
            .unwrap();
        assert!(session.wrap_key(&Mechanism::AesKeyWrap, known, kek).is_err());
        // Control: the same wrap of an extractable key works, so the refusal above is the
        // key's attributes at work, not a missing mechanism.
        let extractable = session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32u64.into()),
                    Attribute::Token(false),
                    Attribute::Extractable(true),
                ],
            )
            .unwrap();
        assert_eq!(session.wrap_key(&Mechanism::AesKeyWrap, known, extractable).unwrap().len(), 40);
    });
}

#[test]
fn pkcs11_notices_objects_changed_elsewhere() {
    run_with_softhsm_token("pkcs11_notices_objects_changed_elsewhere", |config| {
        let us = Pkcs11Provider::open(config.clone(), region("us")).unwrap();
        let key = DataKey::generate().unwrap();
        let old = us.wrap(group(11), &subject("alice"), &key).unwrap();
        assert_eq!(old.version, KekVersion(1));

        // Another process rotates the group and destroys version 1 behind this one's back.
        let session = raw_session(config);
        session
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32u64.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Label(b"custos/us/11/v2".to_vec()),
                    Attribute::Id(b"custos/us/11".to_vec()),
                ],
            )
            .unwrap();
        session.destroy_object(object_labelled(&session, "custos/us/11/v1").unwrap()).unwrap();

        // The cached handle of version 1 is stale: reported missing, not as a device error.
        assert_missing(us.unwrap(&subject("alice"), &old), "us", 11, 1);
        // A wrap with a stale current handle finds version 2.
        let new = us.wrap(group(11), &subject("alice"), &key).unwrap();
        assert_eq!(new.version, KekVersion(2));
        assert_eq!(us.unwrap(&subject("alice"), &new).unwrap().as_bytes(), key.as_bytes());
        assert_eq!(us.current_version(group(11)).unwrap(), Some(KekVersion(2)));
    });
}

#[test]
fn pkcs11_open_errors_name_the_problem() {
    run_with_softhsm_token("pkcs11_open_errors_name_the_problem", |config| {
        let check = |config: Pkcs11Config, words: &[&str]| {
            let message = Pkcs11Provider::open(config, region("us")).err().map(|error| error.to_string()).unwrap_or_default();
            for word in words {
                assert!(message.contains(word), "{message:?} does not mention {word:?}");
            }
        };
        check(Pkcs11Config { pin: "0000".to_owned(), ..config.clone() }, &["incorrect PIN"]);
        check(Pkcs11Config { token_label: "absent".to_owned(), ..config.clone() }, &["no token labelled \"absent\""]);
        check(Pkcs11Config { module: "/nonexistent/libpkcs11.so".into(), ..config.clone() }, &["/nonexistent/libpkcs11.so"]);

        // Once logged in, a second provider with a wrong PIN is still refused.
        let us = Pkcs11Provider::open(config.clone(), region("us")).unwrap();
        check(Pkcs11Config { pin: "0000".to_owned(), ..config.clone() }, &["incorrect PIN"]);
        let description = us.describe();
        assert!(description.contains(&config.token_label) && !description.contains(&config.pin), "{description}");
        assert!(!format!("{config:?}").contains(&config.pin));
    });
}
