//! The issuer's key set (RFC 7517 JWKS): parsing with limits, loading from a file or a URL,
//! and a cache that is refreshed when a token names an unknown `kid` — at most once per
//! [`JWKS_REFRESH_INTERVAL_MIN`], so a stream of forged `kid`s cannot make us hammer the
//! identity provider.

use std::collections::{HashMap, HashSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::DecodingKey;
use serde_json::Value;
use tokio::time::Instant;

use crate::config::JwksSource;

/// The largest key set accepted, from a file or over HTTP (after decompression).
pub const JWKS_BODY_BYTES_MAX: usize = 256 * 1024;
/// The most keys a key set may list; identity providers publish a handful.
pub const JWKS_KEYS_MAX: usize = 64;
/// The shortest time between two refreshes of the key set. A token naming an unknown `kid`
/// triggers a refresh only if the last one is at least this old.
pub const JWKS_REFRESH_INTERVAL_MIN: Duration = Duration::from_secs(30);
/// A key set older than this is refreshed on the next verification (under the same rate
/// limit), so keys the issuer withdrew stop being accepted. If the refresh fails, the old set
/// stays in use and a warning is logged.
pub const JWKS_CACHE_AGE_MAX: Duration = Duration::from_secs(15 * 60);
/// The longest one fetch of a key set URL may take, connection to last byte.
pub const JWKS_FETCH_DURATION_MAX: Duration = Duration::from_secs(10);
/// Redirects followed when fetching a key set URL.
const JWKS_REDIRECTS_MAX: u32 = 3;
/// The longest `kid` kept; a longer one is not a key id any provider issues.
pub(crate) const KEY_ID_BYTES_MAX: usize = 256;
/// The smallest RSA modulus accepted, in bytes (2048 bits).
const RSA_MODULUS_BYTES_MIN: usize = 256;

/// Why a key set could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("key set file {path} could not be read: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("key set {url} could not be fetched: {reason}")]
    Fetch { url: String, reason: String },
    #[error("key set {url} answered with http status {status}")]
    Status { url: String, status: u16 },
    #[error("key set is larger than {JWKS_BODY_BYTES_MAX} bytes")]
    TooLarge,
    #[error("key set is not a jwks document: {reason}")]
    Parse { reason: String },
    #[error("key set holds private key material (kid {kid:?}); refusing it")]
    PrivateKeyMaterial { kid: String },
    #[error("key set lists {keys} keys, more than {JWKS_KEYS_MAX}")]
    TooManyKeys { keys: usize },
    #[error("key set lists the kid {kid:?} twice")]
    DuplicateKeyId { kid: String },
    #[error("key set holds no usable signature key")]
    NoUsableKey,
    #[error("key set fetch task did not complete")]
    Task,
}

/// The type of a verification key, which fixes the one algorithm it may be used with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyType {
    /// `kty: OKP`, `crv: Ed25519`: EdDSA.
    Ed25519,
    /// `kty: EC`, `crv: P-256`: ES256.
    EcP256,
    /// `kty: RSA`, at least 2048 bits: RS256.
    Rsa,
}

impl KeyType {
    /// The JWS `alg` this key type verifies.
    pub(crate) fn algorithm(self) -> &'static str {
        match self {
            KeyType::Ed25519 => "EdDSA",
            KeyType::EcP256 => "ES256",
            KeyType::Rsa => "RS256",
        }
    }
}

/// One usable public key from the set.
#[derive(Clone, Debug)]
pub(crate) struct VerificationKey {
    pub(crate) key_type: KeyType,
    /// The key's own `alg`, if it states one; it must then equal the token's.
    pub(crate) algorithm: Option<String>,
    pub(crate) decoding_key: DecodingKey,
}

/// A parsed key set, by `kid`.
#[derive(Debug)]
pub(crate) struct KeySet {
    keys: HashMap<String, VerificationKey>,
    loaded_at: Instant,
}

impl KeySet {
    /// Parses a JWKS document. Keys that cannot verify our algorithms (symmetric keys,
    /// encryption keys, other curves, short RSA keys, keys without `kid`) are skipped with a
    /// warning; a document with duplicate `kid`s, private key material or no usable key is
    /// refused whole.
    pub(crate) fn parse(bytes: &[u8]) -> Result<KeySet, JwksError> {
        if bytes.len() > JWKS_BODY_BYTES_MAX {
            return Err(JwksError::TooLarge);
        }
        let document: Value = serde_json::from_slice(bytes).map_err(|error| JwksError::Parse {
            reason: error.to_string(),
        })?;
        let Some(entries) = document.get("keys").and_then(Value::as_array) else {
            return Err(JwksError::Parse {
                reason: "no \"keys\" array".to_owned(),
            });
        };
        if entries.len() > JWKS_KEYS_MAX {
            return Err(JwksError::TooManyKeys {
                keys: entries.len(),
            });
        }
        let mut seen = HashSet::new();
        let mut keys = HashMap::new();
        for (index, entry) in entries.iter().enumerate() {
            let Some(object) = entry.as_object() else {
                return Err(JwksError::Parse {
                    reason: format!("key {index} is not an object"),
                });
            };
            let kid = object
                .get("kid")
                .and_then(Value::as_str)
                .unwrap_or_default();
            // A published private key is a mistake at the issuer; using its public half would
            // accept tokens anyone could have minted.
            if ["d", "p", "q", "dp", "dq", "qi"]
                .iter()
                .any(|member| object.contains_key(*member))
            {
                return Err(JwksError::PrivateKeyMaterial {
                    kid: kid.to_owned(),
                });
            }
            if kid.is_empty() || kid.len() > KEY_ID_BYTES_MAX {
                tracing::warn!(index, "key set entry without a usable kid skipped");
                continue;
            }
            if !seen.insert(kid.to_owned()) {
                return Err(JwksError::DuplicateKeyId {
                    kid: kid.to_owned(),
                });
            }
            match verification_key(object) {
                Ok(key) => {
                    keys.insert(kid.to_owned(), key);
                }
                Err(reason) => tracing::warn!(kid, reason, "key set entry skipped"),
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        Ok(KeySet {
            keys,
            loaded_at: Instant::now(),
        })
    }

    pub(crate) fn find(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.get(kid)
    }

    pub(crate) fn is_stale(&self) -> bool {
        self.loaded_at.elapsed() >= JWKS_CACHE_AGE_MAX
    }
}

/// The verification key an entry describes, or why it cannot be used.
fn verification_key(
    object: &serde_json::Map<String, Value>,
) -> Result<VerificationKey, &'static str> {
    let text = |name: &str| object.get(name).and_then(Value::as_str);
    if let Some(key_use) = object.get("use")
        && key_use.as_str() != Some("sig")
    {
        return Err("not a signature key (use)");
    }
    if let Some(operations) = object.get("key_ops")
        && !operations.as_array().is_some_and(|operations| {
            operations
                .iter()
                .any(|operation| operation.as_str() == Some("verify"))
        })
    {
        return Err("not a verification key (key_ops)");
    }
    let algorithm = match object.get("alg") {
        None => None,
        Some(Value::String(alg)) => Some(alg.clone()),
        Some(_) => return Err("alg is not a string"),
    };
    let decoded = |name: &str| -> Result<Vec<u8>, &'static str> {
        let value = text(name).ok_or("a key parameter is missing")?;
        URL_SAFE_NO_PAD
            .decode(value)
            .map_err(|_| "a key parameter is not base64url")
    };
    let (key_type, decoding_key) = match (text("kty"), text("crv")) {
        (Some("OKP"), Some("Ed25519")) => {
            let x = decoded("x")?;
            if x.len() != 32 {
                return Err("Ed25519 public key is not 32 bytes");
            }
            (KeyType::Ed25519, DecodingKey::from_ed_der(&x))
        }
        (Some("EC"), Some("P-256")) => {
            let (x, y) = (decoded("x")?, decoded("y")?);
            if x.len() != 32 || y.len() != 32 {
                return Err("P-256 coordinates are not 32 bytes");
            }
            let mut point = Vec::with_capacity(65);
            point.push(0x04);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            (KeyType::EcP256, DecodingKey::from_ec_der(&point))
        }
        (Some("RSA"), _) => {
            let (modulus, exponent) = (decoded("n")?, decoded("e")?);
            let significant = modulus.iter().skip_while(|byte| **byte == 0).count();
            if significant < RSA_MODULUS_BYTES_MIN {
                return Err("RSA modulus is shorter than 2048 bits");
            }
            (
                KeyType::Rsa,
                DecodingKey::from_rsa_raw_components(&modulus, &exponent),
            )
        }
        (Some("oct"), _) => return Err("symmetric keys are never used"),
        _ => return Err("unsupported key type or curve"),
    };
    Ok(VerificationKey {
        key_type,
        algorithm,
        decoding_key,
    })
}

/// The key set, cached, with the refresh rate limit.
#[derive(Debug)]
pub(crate) struct KeyCache {
    source: JwksSource,
    agent: Option<ureq::Agent>,
    // INVARIANT: replaced only while `refresh` is held, so two refreshes never race.
    keys: RwLock<Arc<KeySet>>,
    refresh: tokio::sync::Mutex<RefreshState>,
}

#[derive(Debug, Default)]
struct RefreshState {
    /// When a refresh was last attempted (successful or not); the load at start does not
    /// count, so the first unknown `kid` after start is looked up at once.
    last_attempt: Option<Instant>,
}

impl KeyCache {
    /// Loads the key set once.
    pub(crate) async fn open(source: JwksSource) -> Result<KeyCache, JwksError> {
        let agent = match &source {
            JwksSource::Url(url) => {
                if url.starts_with("http://") {
                    tracing::warn!(
                        url,
                        "key set fetched over plain http: for tests and loopback only"
                    );
                }
                Some(http_agent())
            }
            JwksSource::File(_) => None,
        };
        let keys = load(&source, agent.as_ref()).await?;
        Ok(KeyCache {
            source,
            agent,
            keys: RwLock::new(Arc::new(keys)),
            refresh: tokio::sync::Mutex::new(RefreshState::default()),
        })
    }

    /// The key set to look `kid` up in: the cached one, or a fresh one if `kid` is unknown
    /// (or the cache is old) and the last refresh is at least [`JWKS_REFRESH_INTERVAL_MIN`]
    /// ago. An error only when a refresh was needed for `kid`, was allowed, and failed.
    pub(crate) async fn keys_for(&self, kid: &str) -> Result<Arc<KeySet>, JwksError> {
        let keys = self.current();
        if keys.find(kid).is_some() && !keys.is_stale() {
            return Ok(keys);
        }
        let mut state = self.refresh.lock().await;
        // Another task may have refreshed while this one waited.
        let keys = self.current();
        if keys.find(kid).is_some() && !keys.is_stale() {
            return Ok(keys);
        }
        if state
            .last_attempt
            .is_some_and(|at| at.elapsed() < JWKS_REFRESH_INTERVAL_MIN)
        {
            return Ok(keys);
        }
        state.last_attempt = Some(Instant::now());
        match load(&self.source, self.agent.as_ref()).await {
            Ok(fresh) => {
                let fresh = Arc::new(fresh);
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fresh);
                tracing::info!("key set refreshed");
                Ok(fresh)
            }
            Err(error) if keys.find(kid).is_some() => {
                tracing::warn!(%error, "key set refresh failed; the cached set stays in use");
                Ok(keys)
            }
            Err(error) => Err(error),
        }
    }

    pub(crate) fn current(&self) -> Arc<KeySet> {
        Arc::clone(&self.keys.read().unwrap_or_else(PoisonError::into_inner))
    }
}

async fn load(source: &JwksSource, agent: Option<&ureq::Agent>) -> Result<KeySet, JwksError> {
    let bytes = match source {
        JwksSource::File(path) => read_file(path.clone()).await?,
        JwksSource::Url(url) => {
            let agent = agent.cloned().unwrap_or_else(http_agent);
            let url = url.clone();
            tokio::task::spawn_blocking(move || fetch(&agent, &url))
                .await
                .map_err(|_| JwksError::Task)??
        }
    };
    KeySet::parse(&bytes)
}

async fn read_file(path: PathBuf) -> Result<Vec<u8>, JwksError> {
    tokio::task::spawn_blocking(move || read_file_blocking(&path))
        .await
        .map_err(|_| JwksError::Task)?
}

fn read_file_blocking(path: &Path) -> Result<Vec<u8>, JwksError> {
    let read_error = |error: std::io::Error| JwksError::Read {
        path: path.to_owned(),
        reason: error.to_string(),
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut bytes = Vec::new();
    file.take(JWKS_BODY_BYTES_MAX as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() > JWKS_BODY_BYTES_MAX {
        return Err(JwksError::TooLarge);
    }
    Ok(bytes)
}

fn fetch(agent: &ureq::Agent, url: &str) -> Result<Vec<u8>, JwksError> {
    let fetch_error = |error: ureq::Error| JwksError::Fetch {
        url: url.to_owned(),
        reason: error.to_string(),
    };
    let mut response = agent
        .get(url)
        .header("Accept", "application/json, application/jwk-set+json")
        .call()
        .map_err(fetch_error)?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(JwksError::Status {
            url: url.to_owned(),
            status,
        });
    }
    // The limit applies after decompression, so a small gzip bomb is stopped too.
    response
        .body_mut()
        .with_config()
        .limit(JWKS_BODY_BYTES_MAX as u64)
        .read_to_vec()
        .map_err(|error| match error {
            ureq::Error::BodyExceedsLimit(_) => JwksError::TooLarge,
            other => fetch_error(other),
        })
}

/// An HTTP(S) client: rustls on the aws-lc-rs provider, Mozilla's roots, bounded time.
fn http_agent() -> ureq::Agent {
    let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .root_certs(ureq::tls::RootCerts::WebPki)
        .unversioned_rustls_crypto_provider(crypto)
        .build();
    ureq::Agent::config_builder()
        .tls_config(tls)
        .http_status_as_error(false)
        .timeout_global(Some(JWKS_FETCH_DURATION_MAX))
        .max_redirects(JWKS_REDIRECTS_MAX)
        .user_agent(concat!("custos/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}
