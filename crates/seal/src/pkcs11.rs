//! The PKCS#11 key provider: key-encryption keys are AES-256 secret keys generated inside a
//! token (an HSM, a cloud KMS's PKCS#11 interface, SoftHSM2 in tests), marked sensitive and
//! non-extractable, so they never leave the device; wrapping and unwrapping are AES-GCM
//! operations the token performs.
//!
//! Objects: the key of shred group `g`, version `n`, in region `r` is a token object labelled
//! `custos/<r>/<g>/v<n>` with `CKA_ID = custos/<r>/<g>`, so that one search finds all versions
//! of a group. Wrapped keys have the format of the `wrapping` module (the same as the keyring),
//! with a random 96-bit IV from the operating system and a 128-bit tag.
//!
//! Sharing: a module is loaded and initialized once per process; providers on one token share
//! its logged-in sessions (a small pool: PKCS#11 sessions may not be used from two threads at
//! once), and providers for one (token, region) share one cache of object handles, so a
//! rotation through one handle is seen by all in the process. Another process changing the
//! token's objects is noticed when a cached handle turns invalid (the group is reloaded and the
//! operation retried once) or a version is missing from the cache; the erase protocol above
//! this crate must keep two processes from rotating one group at the same time.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Function, Pkcs11};
use cryptoki::error::{Error as CryptokiError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use model::{RegionId, SubjectId};
use zeroize::Zeroizing;

use crate::aead::{DATA_KEY_BYTES, NONCE_BYTES, TAG_BYTES};
use crate::provider::{KeyError, KeyProvider, KekVersion, ShredGroup, WrappedKey};
use crate::wrapping::{KEK_BYTES, join_wrapped, split_wrapped, wrap_aad};
use crate::DataKey;

/// Idle sessions kept open per token. More threads than this still work: extra sessions are
/// opened on demand and closed after use.
pub const PKCS11_SESSIONS_POOLED_MAX: usize = 8;

const GCM_TAG_BITS: u64 = (TAG_BYTES * 8) as u64;

/// Where the token is and how to log in to it.
#[derive(Clone)]
pub struct Pkcs11Config {
    /// The PKCS#11 module (shared library), e.g. `/usr/lib/softhsm/libsofthsm2.so`.
    pub module: PathBuf,
    /// The label of the token holding the region's keys.
    pub token_label: String,
    /// The user PIN.
    pub pin: String,
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &"(redacted)")
            .finish()
    }
}

/// One region's keys in a PKCS#11 token.
pub struct Pkcs11Provider {
    shared: Arc<TokenRegion>,
}

impl Pkcs11Provider {
    /// Loads the module (once per process), finds the token by label and logs in, so that a
    /// wrong module, label or PIN fails here rather than at the first wrap.
    pub fn open(config: Pkcs11Config, region: RegionId) -> Result<Pkcs11Provider, KeyError> {
        let module = std::fs::canonicalize(&config.module).map_err(|error| {
            KeyError::Pkcs11(format!("cannot find module {}: {error}", config.module.display()))
        })?;
        let mut registry = lock_registry();
        registry.tokens.retain(|_, token| token.strong_count() > 0);
        registry.regions.retain(|_, region| region.strong_count() > 0);

        let token_key = (module.clone(), config.token_label.clone());
        let token = match registry.tokens.get(&token_key).and_then(Weak::upgrade) {
            Some(token) => {
                // The token is already logged in for this process, so logging in again would
                // not check the PIN: compare it with the one that did log in.
                if !token.pin_matches(&config.pin) {
                    return Err(KeyError::Pkcs11(format!("incorrect PIN for token {}", config.token_label)));
                }
                token
            }
            None => {
                let context = registry.context(&module)?;
                let token = Arc::new(Token::open(context, module.clone(), &config)?);
                registry.tokens.insert(token_key, Arc::downgrade(&token));
                token
            }
        };
        let region_key = (module, config.token_label, region.clone());
        let shared = match registry.regions.get(&region_key).and_then(Weak::upgrade) {
            Some(shared) => shared,
            None => {
                let shared = Arc::new(TokenRegion { token, region, keks: Mutex::default() });
                registry.regions.insert(region_key, Arc::downgrade(&shared));
                shared
            }
        };
        Ok(Pkcs11Provider { shared })
    }
}

impl KeyProvider for Pkcs11Provider {
    fn region(&self) -> &RegionId {
        &self.shared.region
    }

    fn describe(&self) -> String {
        format!("pkcs11 token {} (module {})", self.shared.token.label, self.shared.token.module.display())
    }

    fn wrap(&self, group: ShredGroup, subject: &SubjectId, key: &DataKey) -> Result<WrappedKey, KeyError> {
        let aad = wrap_aad(&self.shared.region, subject);
        let mut iv = [0u8; NONCE_BYTES];
        SystemRandom::new()
            .fill(&mut iv)
            .map_err(|_| KeyError::Pkcs11("the system random number generator failed".to_owned()))?;
        let mut retried = false;
        loop {
            let (version, handle) = self.shared.current_kek_or_new(group)?;
            let encrypted = self.shared.token.with_session(|session| {
                let mut iv_for_token = iv;
                let params = GcmParams::new(&mut iv_for_token, &aad, GCM_TAG_BITS.into())?;
                session.encrypt(&Mechanism::AesGcm(params), handle, key.as_bytes())
            });
            match encrypted {
                Ok(ciphertext_and_tag) => {
                    if ciphertext_and_tag.len() != DATA_KEY_BYTES + TAG_BYTES {
                        return Err(KeyError::Pkcs11(format!(
                            "C_Encrypt returned {} bytes, {} expected",
                            ciphertext_and_tag.len(),
                            DATA_KEY_BYTES + TAG_BYTES
                        )));
                    }
                    return Ok(WrappedKey { group, version, bytes: join_wrapped(&iv, &ciphertext_and_tag) });
                }
                Err(error) if is_stale_handle(&error) && !retried => {
                    retried = true;
                    self.shared.forget(group);
                }
                Err(error) => return Err(pkcs11_error(error)),
            }
        }
    }

    fn unwrap(&self, subject: &SubjectId, wrapped: &WrappedKey) -> Result<DataKey, KeyError> {
        let parts = split_wrapped(&wrapped.bytes)?;
        let aad = wrap_aad(&self.shared.region, subject);
        let mut retried = false;
        loop {
            let handle = self.shared.kek(wrapped.group, wrapped.version)?;
            let decrypted = self.shared.token.with_session(|session| {
                let mut iv = parts.nonce;
                let params = GcmParams::new(&mut iv, &aad, GCM_TAG_BITS.into())?;
                session.decrypt(&Mechanism::AesGcm(params), handle, parts.ciphertext_and_tag)
            });
            match decrypted {
                Ok(plaintext) => {
                    let plaintext = Zeroizing::new(plaintext);
                    let bytes: [u8; DATA_KEY_BYTES] = plaintext.as_slice().try_into().map_err(|_| KeyError::Integrity)?;
                    return Ok(DataKey::from_bytes(bytes));
                }
                Err(error) if is_stale_handle(&error) && !retried => {
                    retried = true;
                    self.shared.forget(wrapped.group);
                }
                Err(error) if is_integrity_failure(&error) => return Err(KeyError::Integrity),
                // SoftHSM2 (and maybe other tokens) reports a GCM tag mismatch as a general
                // failure. Telling it from a broken device takes a probe: if the same key
                // round-trips other data, the device works and the wrapped key was wrong.
                Err(error) if is_unspecific_failure(&error) => {
                    return Err(if self.shared.kek_round_trips(handle) { KeyError::Integrity } else { pkcs11_error(error) });
                }
                Err(error) => return Err(pkcs11_error(error)),
            }
        }
    }

    fn current_version(&self, group: ShredGroup) -> Result<Option<KekVersion>, KeyError> {
        let mut keks = self.shared.lock_keks();
        let versions = self.shared.versions(&mut keks, group)?;
        Ok(versions.keys().next_back().copied())
    }

    fn rotate(&self, group: ShredGroup) -> Result<KekVersion, KeyError> {
        let mut keks = self.shared.lock_keks();
        // Reload, so that a version another process created is not created twice.
        keks.remove(&group);
        let (version, _) = self.shared.add_version(&mut keks, group)?;
        Ok(version)
    }

    fn destroy_before(&self, group: ShredGroup, keep_from: KekVersion) -> Result<(), KeyError> {
        let mut keks = self.shared.lock_keks();
        // Reload, so that versions another process created are destroyed too.
        keks.remove(&group);
        let versions = self.shared.versions(&mut keks, group)?.clone();
        let Some(current) = versions.keys().next_back().copied() else {
            return Ok(());
        };
        if keep_from > current {
            return Err(KeyError::DestroyCurrent {
                region: self.shared.region.to_string(),
                group: group.as_u16(),
                current: current.0,
                keep_from: keep_from.0,
            });
        }
        for (version, handle) in versions.range(..keep_from) {
            // Forget first: a handle that failed to destroy is reloaded next time.
            if let Some(cached) = keks.get_mut(&group) {
                cached.remove(version);
            }
            self.shared.token.with_session(|session| session.destroy_object(*handle)).map_err(pkcs11_error)?;
        }
        Ok(())
    }
}

/// The process-wide state: loaded modules, logged-in tokens, per-region handle caches.
#[derive(Default)]
struct Registry {
    /// Initialized modules, kept for the life of the process: PKCS#11 allows one
    /// `C_Initialize` per module per process.
    contexts: HashMap<PathBuf, Pkcs11>,
    tokens: HashMap<(PathBuf, String), Weak<Token>>,
    regions: HashMap<(PathBuf, String, RegionId), Weak<TokenRegion>>,
}

fn lock_registry() -> MutexGuard<'static, Registry> {
    static REGISTRY: OnceLock<Mutex<Registry>> = OnceLock::new();
    REGISTRY.get_or_init(Mutex::default).lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Registry {
    fn context(&mut self, module: &PathBuf) -> Result<Pkcs11, KeyError> {
        if let Some(context) = self.contexts.get(module) {
            return Ok(context.clone());
        }
        let context = Pkcs11::new(module)
            .map_err(|error| KeyError::Pkcs11(format!("cannot load module {}: {error}", module.display())))?;
        match context.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
            // Someone else in the process (another library, a test) initialized it: fine.
            Ok(()) | Err(CryptokiError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => {}
            Err(error) => return Err(pkcs11_error(error)),
        }
        self.contexts.insert(module.clone(), context.clone());
        Ok(context)
    }
}

/// A logged-in token and its idle sessions.
struct Token {
    context: Pkcs11,
    slot: Slot,
    module: PathBuf,
    label: String,
    pin: AuthPin,
    pin_text: Zeroizing<String>,
    sessions: Mutex<Vec<Session>>,
}

impl Token {
    fn open(context: Pkcs11, module: PathBuf, config: &Pkcs11Config) -> Result<Token, KeyError> {
        let slot = find_slot(&context, &config.token_label)?;
        let token = Token {
            context,
            slot,
            module,
            label: config.token_label.clone(),
            pin: AuthPin::from(config.pin.clone()),
            pin_text: Zeroizing::new(config.pin.clone()),
            sessions: Mutex::default(),
        };
        let session = token.open_session().map_err(|error| match error {
            CryptokiError::Pkcs11(RvError::PinIncorrect, _) => {
                KeyError::Pkcs11(format!("incorrect PIN for token {}", config.token_label))
            }
            other => pkcs11_error(other),
        })?;
        token.lock_sessions().push(session);
        Ok(token)
    }

    fn pin_matches(&self, pin: &str) -> bool {
        aws_lc_rs::constant_time::verify_slices_are_equal(self.pin_text.as_bytes(), pin.as_bytes()).is_ok()
    }

    fn lock_sessions(&self) -> MutexGuard<'_, Vec<Session>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A read-write session, logged in as the user. Login is per application and token: the
    /// first session logs in, the others share its state (`UserAlreadyLoggedIn`).
    fn open_session(&self) -> Result<Session, CryptokiError> {
        let session = self.context.open_rw_session(self.slot)?;
        if !matches!(session.get_session_info()?.session_state(), SessionState::RwUser) {
            match session.login(UserType::User, Some(&self.pin)) {
                Ok(()) | Err(CryptokiError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(session)
    }

    /// Runs `operation` on an idle session (or a new one), then returns the session to the
    /// pool unless the error says it is no longer usable.
    fn with_session<T>(&self, operation: impl FnOnce(&Session) -> Result<T, CryptokiError>) -> Result<T, CryptokiError> {
        let pooled = self.lock_sessions().pop();
        let session = match pooled {
            Some(session) => session,
            None => self.open_session()?,
        };
        let result = operation(&session);
        let usable = !matches!(
            &result,
            Err(CryptokiError::Pkcs11(
                RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::DeviceRemoved
                    | RvError::DeviceError
                    | RvError::TokenNotPresent
                    | RvError::UserNotLoggedIn,
                _
            ))
        );
        let mut sessions = self.lock_sessions();
        if usable && sessions.len() < PKCS11_SESSIONS_POOLED_MAX {
            sessions.push(session);
        }
        result
    }
}

/// One region's keys on a token, with the object handles found so far.
struct TokenRegion {
    token: Arc<Token>,
    region: RegionId,
    /// Per group, every version found on the token. A group absent from the map is loaded
    /// from the token on first use.
    keks: Mutex<HashMap<ShredGroup, BTreeMap<KekVersion, ObjectHandle>>>,
}

type KekHandles = HashMap<ShredGroup, BTreeMap<KekVersion, ObjectHandle>>;

impl TokenRegion {
    fn lock_keks(&self) -> MutexGuard<'_, KekHandles> {
        // The map is a cache of the token: a panic mid-update at worst forgets a handle.
        self.keks.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn forget(&self, group: ShredGroup) {
        self.lock_keks().remove(&group);
    }

    fn label(&self, group: ShredGroup, version: KekVersion) -> String {
        format!("custos/{}/{}/v{}", self.region, group.as_u16(), version.0)
    }

    fn object_id(&self, group: ShredGroup) -> Vec<u8> {
        format!("custos/{}/{}", self.region, group.as_u16()).into_bytes()
    }

    /// The versions of `group` on the token, from the cache or a search.
    fn versions<'a>(
        &self,
        keks: &'a mut KekHandles,
        group: ShredGroup,
    ) -> Result<&'a BTreeMap<KekVersion, ObjectHandle>, KeyError> {
        Ok(match keks.entry(group) {
            Entry::Occupied(entry) => entry.into_mut(),
            Entry::Vacant(entry) => entry.insert(self.find_versions(group)?),
        })
    }

    fn find_versions(&self, group: ShredGroup) -> Result<BTreeMap<KekVersion, ObjectHandle>, KeyError> {
        let prefix = format!("custos/{}/{}/v", self.region, group.as_u16());
        let template = [Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Id(self.object_id(group))];
        let labelled = self
            .token
            .with_session(|session| {
                let mut labelled = Vec::new();
                for handle in session.find_objects(&template)? {
                    let label = session.get_attributes(handle, &[AttributeType::Label])?.into_iter().find_map(
                        |attribute| match attribute {
                            Attribute::Label(bytes) => Some(bytes),
                            _ => None,
                        },
                    );
                    labelled.push((handle, label));
                }
                Ok(labelled)
            })
            .map_err(pkcs11_error)?;
        let mut versions = BTreeMap::new();
        for (handle, label) in labelled {
            let label = label.map(|bytes| String::from_utf8_lossy(&bytes).into_owned()).unwrap_or_default();
            let version = label
                .strip_prefix(&prefix)
                .and_then(|number| number.parse::<u32>().ok())
                .ok_or_else(|| KeyError::Pkcs11(format!("token object {label:?} has the id of {prefix}* but not its label")))?;
            if versions.insert(KekVersion(version), handle).is_some() {
                return Err(KeyError::Pkcs11(format!("token holds two objects labelled {label}")));
            }
        }
        Ok(versions)
    }

    /// The current version's handle, creating version 1 when the group has none.
    fn current_kek_or_new(&self, group: ShredGroup) -> Result<(KekVersion, ObjectHandle), KeyError> {
        let mut keks = self.lock_keks();
        if let Some((version, handle)) = self.versions(&mut keks, group)?.last_key_value() {
            return Ok((*version, *handle));
        }
        self.add_version(&mut keks, group)
    }

    /// The handle of one version; a version missing from the cache is looked up on the token
    /// once more (another process may have created it) before it is reported missing.
    fn kek(&self, group: ShredGroup, version: KekVersion) -> Result<ObjectHandle, KeyError> {
        let mut keks = self.lock_keks();
        if let Some(handle) = self.versions(&mut keks, group)?.get(&version) {
            return Ok(*handle);
        }
        keks.remove(&group);
        self.versions(&mut keks, group)?.get(&version).copied().ok_or_else(|| KeyError::MissingKek {
            region: self.region.to_string(),
            group: group.as_u16(),
            version: version.0,
        })
    }

    /// Whether the key behind `handle` encrypts and decrypts a probe: tells a wrapped key
    /// that fails its tag from a token that fails.
    fn kek_round_trips(&self, handle: ObjectHandle) -> bool {
        const PROBE: &[u8] = b"custos key-encryption key probe";
        let mut iv = [0u8; NONCE_BYTES];
        if SystemRandom::new().fill(&mut iv).is_err() {
            return false;
        }
        let round_trip = self.token.with_session(|session| {
            let mut encrypt_iv = iv;
            let params = GcmParams::new(&mut encrypt_iv, PROBE, GCM_TAG_BITS.into())?;
            let sealed = session.encrypt(&Mechanism::AesGcm(params), handle, PROBE)?;
            let mut decrypt_iv = iv;
            let params = GcmParams::new(&mut decrypt_iv, PROBE, GCM_TAG_BITS.into())?;
            session.decrypt(&Mechanism::AesGcm(params), handle, &sealed)
        });
        round_trip.is_ok_and(|opened| opened == PROBE)
    }

    /// Generates the next version of `group`'s key in the token and caches its handle.
    fn add_version(&self, keks: &mut KekHandles, group: ShredGroup) -> Result<(KekVersion, ObjectHandle), KeyError> {
        let versions = self.versions(keks, group)?;
        let version = match versions.keys().next_back() {
            None => KekVersion(1),
            Some(last) => KekVersion(last.0.checked_add(1).ok_or_else(|| KeyError::Pkcs11("key version overflow".to_owned()))?),
        };
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen((KEK_BYTES as u64).into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Label(self.label(group, version).into_bytes()),
            Attribute::Id(self.object_id(group)),
        ];
        let handle = self
            .token
            .with_session(|session| session.generate_key(&Mechanism::AesKeyGen, &template))
            .map_err(pkcs11_error)?;
        keks.entry(group).or_default().insert(version, handle);
        Ok((version, handle))
    }
}

fn find_slot(context: &Pkcs11, label: &str) -> Result<Slot, KeyError> {
    let mut found = Vec::new();
    let mut labels = Vec::new();
    for slot in context.get_slots_with_initialized_token().map_err(pkcs11_error)? {
        let info = context.get_token_info(slot).map_err(pkcs11_error)?;
        let slot_label = info.label().trim_end().to_owned();
        if slot_label == label {
            found.push(slot);
        }
        labels.push(slot_label);
    }
    match found.as_slice() {
        [slot] => Ok(*slot),
        [] => Err(KeyError::Pkcs11(format!("no token labelled {label:?} (tokens: {})", labels.join(", ")))),
        _ => Err(KeyError::Pkcs11(format!("{} tokens are labelled {label:?}; labels must be unique", found.len()))),
    }
}

/// A cached handle that no longer names the key: another process destroyed or replaced it.
fn is_stale_handle(error: &CryptokiError) -> bool {
    matches!(error, CryptokiError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _))
}

/// A decrypt failure that may be a GCM tag mismatch or a device fault.
fn is_unspecific_failure(error: &CryptokiError) -> bool {
    matches!(error, CryptokiError::Pkcs11(RvError::GeneralError | RvError::FunctionFailed, Function::Decrypt))
}

/// How the standard says tokens report a GCM tag mismatch on decrypt.
fn is_integrity_failure(error: &CryptokiError) -> bool {
    matches!(
        error,
        CryptokiError::Pkcs11(RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange, Function::Decrypt)
    )
}

fn pkcs11_error(error: CryptokiError) -> KeyError {
    match error {
        CryptokiError::Pkcs11(rv, function) => KeyError::Pkcs11(format!("C_{function:?} failed: {rv:?}")),
        other => KeyError::Pkcs11(other.to_string()),
    }
}
