//! The `[identity]` section of `custos.toml`: which issuer and audience a token must name,
//! where its keys come from, how much clock skew is forgiven and which algorithms are allowed.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::jwks::JwksError;

/// Clock skew forgiven on `exp` and `nbf` unless configured otherwise.
pub const LEEWAY_SECONDS_DEFAULT: u64 = 30;
/// The most clock skew that may be configured: more would keep expired tokens alive.
pub const LEEWAY_SECONDS_MAX: u64 = 300;
/// The algorithms this verifier can check. HMAC is absent on purpose: a shared secret would
/// let anyone who can verify also mint, and a public key must never be used as one.
pub const ALGORITHMS_SUPPORTED: [&str; 3] = ["EdDSA", "ES256", "RS256"];
/// The allow-list unless configured otherwise.
pub const ALGORITHMS_DEFAULT: [&str; 3] = ALGORITHMS_SUPPORTED;

/// How tokens are verified. In `custos.toml`:
///
/// ```toml
/// [identity]
/// issuer = "https://id.example.com"
/// audience = "custos"
/// jwks_url = "https://id.example.com/.well-known/jwks.json"   # or jwks_file = "path"
/// leeway_seconds = 30                                          # optional, at most 300
/// algorithms = ["EdDSA", "ES256", "RS256"]                     # optional
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "IdentityConfigToml", into = "IdentityConfigToml")]
pub struct IdentityConfig {
    /// The exact `iss` a token must carry.
    pub issuer: String,
    /// The `aud` a token must carry (alone or among others).
    pub audience: String,
    /// Where the issuer's public keys come from.
    pub jwks: JwksSource,
    /// Clock skew forgiven on `exp` and `nbf`, at most [`LEEWAY_SECONDS_MAX`].
    pub leeway_seconds: u64,
    /// The `alg` values accepted, a subset of [`ALGORITHMS_SUPPORTED`].
    pub algorithms: Vec<String>,
}

/// Where the issuer's key set (RFC 7517 JWKS) is read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// A JSON file; a relative path is taken as given (the deployment resolves it).
    File(PathBuf),
    /// An `http://` or `https://` URL; plain HTTP is for tests and loopback only.
    Url(String),
}

/// Why an identity configuration or its key set cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("identity issuer is empty")]
    EmptyIssuer,
    #[error("identity audience is empty")]
    EmptyAudience,
    #[error("identity leeway of {leeway_seconds} s exceeds the maximum of {LEEWAY_SECONDS_MAX} s")]
    LeewayTooLarge { leeway_seconds: u64 },
    #[error("identity algorithm list is empty")]
    NoAlgorithms,
    #[error("identity algorithm {alg:?} is not allowed (supported: EdDSA, ES256, RS256)")]
    AlgorithmNotAllowed { alg: String },
    #[error("identity key set must be given as exactly one of jwks_file and jwks_url")]
    JwksSourceAmbiguous,
    #[error("identity jwks_url {url:?} is not an http:// or https:// URL")]
    JwksUrlInvalid { url: String },
    #[error("identity key set could not be loaded")]
    Jwks(#[from] JwksError),
}

impl IdentityConfig {
    /// A configuration with the default leeway and algorithms.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>, jwks: JwksSource) -> Self {
        IdentityConfig {
            issuer: issuer.into(),
            audience: audience.into(),
            jwks,
            leeway_seconds: LEEWAY_SECONDS_DEFAULT,
            algorithms: ALGORITHMS_DEFAULT
                .iter()
                .map(|alg| (*alg).to_owned())
                .collect(),
        }
    }

    /// Checks everything that can be checked without reading the key set.
    pub fn validate(&self) -> Result<(), IdentityError> {
        if self.issuer.trim().is_empty() {
            return Err(IdentityError::EmptyIssuer);
        }
        if self.audience.trim().is_empty() {
            return Err(IdentityError::EmptyAudience);
        }
        if self.leeway_seconds > LEEWAY_SECONDS_MAX {
            return Err(IdentityError::LeewayTooLarge {
                leeway_seconds: self.leeway_seconds,
            });
        }
        if self.algorithms.is_empty() {
            return Err(IdentityError::NoAlgorithms);
        }
        if let Some(alg) = self
            .algorithms
            .iter()
            .find(|alg| !ALGORITHMS_SUPPORTED.contains(&alg.as_str()))
        {
            return Err(IdentityError::AlgorithmNotAllowed { alg: alg.clone() });
        }
        if let JwksSource::Url(url) = &self.jwks
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(IdentityError::JwksUrlInvalid { url: url.clone() });
        }
        Ok(())
    }
}

/// The TOML shape: the key set source is one of two keys rather than a nested table.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityConfigToml {
    issuer: String,
    audience: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jwks_file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    jwks_url: Option<String>,
    #[serde(default = "leeway_seconds_default")]
    leeway_seconds: u64,
    #[serde(default = "algorithms_default")]
    algorithms: Vec<String>,
}

fn leeway_seconds_default() -> u64 {
    LEEWAY_SECONDS_DEFAULT
}

fn algorithms_default() -> Vec<String> {
    ALGORITHMS_DEFAULT
        .iter()
        .map(|alg| (*alg).to_owned())
        .collect()
}

impl TryFrom<IdentityConfigToml> for IdentityConfig {
    type Error = IdentityError;

    fn try_from(toml: IdentityConfigToml) -> Result<Self, IdentityError> {
        let jwks = match (toml.jwks_file, toml.jwks_url) {
            (Some(path), None) => JwksSource::File(path),
            (None, Some(url)) => JwksSource::Url(url),
            _ => return Err(IdentityError::JwksSourceAmbiguous),
        };
        let config = IdentityConfig {
            issuer: toml.issuer,
            audience: toml.audience,
            jwks,
            leeway_seconds: toml.leeway_seconds,
            algorithms: toml.algorithms,
        };
        config.validate()?;
        Ok(config)
    }
}

impl From<IdentityConfig> for IdentityConfigToml {
    fn from(config: IdentityConfig) -> Self {
        let (jwks_file, jwks_url) = match config.jwks {
            JwksSource::File(path) => (Some(path), None),
            JwksSource::Url(url) => (None, Some(url)),
        };
        IdentityConfigToml {
            issuer: config.issuer,
            audience: config.audience,
            jwks_file,
            jwks_url,
            leeway_seconds: config.leeway_seconds,
            algorithms: config.algorithms,
        }
    }
}
