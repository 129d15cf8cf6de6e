//! A local development issuer: an Ed25519 key in a 0600 file and its public key set beside
//! it, for demos and tests. Never for production — it exists only when created on purpose
//! (`custos init --dev-issuer`), and anyone who can read its key file can mint any identity.
//! The verifier treats it like any other issuer, through the key set file.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::{IdentityConfig, JwksSource};
use crate::verifier::{CLAIM_BYTES_MAX, IdentityKind, ROLES_MAX};

/// The private key file (JSON, mode 0600) in the issuer's directory.
pub const DEV_ISSUER_KEY_FILE: &str = "dev-issuer.json";
/// The public key set in the issuer's directory; point `jwks_file` at it.
pub const DEV_JWKS_FILE: &str = "dev-jwks.json";
/// The longest lifetime of a minted token.
pub const DEV_TOKEN_TTL_MAX: Duration = Duration::from_secs(24 * 60 * 60);
/// The largest key file read back.
const KEY_FILE_BYTES_MAX: u64 = 16 * 1024;

/// What a development token asserts about its bearer (the verified [`crate::Identity`]
/// without the fields the issuer sets: expiry and token id).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityClaims {
    pub id: String,
    pub kind: IdentityKind,
    pub roles: Vec<String>,
    pub team: Option<String>,
    pub entity: Option<String>,
    pub country: Option<String>,
    pub region: Option<String>,
}

/// Why the development issuer could not be created, opened or used.
#[derive(Debug, thiserror::Error)]
pub enum DevIssuerError {
    #[error("development issuer file {path} already exists")]
    Exists { path: PathBuf },
    #[error("development issuer file {path}: {reason}")]
    Io { path: PathBuf, reason: String },
    #[error(
        "development issuer key file {path} has mode {mode:o}; it must not be readable by group or others (chmod 600)"
    )]
    LoosePermissions { path: PathBuf, mode: u32 },
    #[error("development issuer key file {path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("development issuer issuer and audience must not be empty")]
    EmptyIssuerOrAudience,
    #[error("development token claims are invalid: {reason}")]
    InvalidClaims { reason: &'static str },
    #[error("development token lifetime must be between 1 s and {} s", DEV_TOKEN_TTL_MAX.as_secs())]
    TtlInvalid,
    #[error("the system random number generator or key generation failed")]
    Crypto,
}

/// A development issuer opened from its directory.
pub struct DevIssuer {
    directory: PathBuf,
    issuer: String,
    audience: String,
    kid: String,
    key_pair: Ed25519KeyPair,
}

impl std::fmt::Debug for DevIssuer {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key is never printed.
        formatter
            .debug_struct("DevIssuer")
            .field("directory", &self.directory)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// The key file's contents.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    issuer: String,
    audience: String,
    kid: String,
    /// PKCS#8 document, standard base64.
    private_key_pkcs8: String,
}

impl DevIssuer {
    /// Generates a key and writes [`DEV_ISSUER_KEY_FILE`] (0600) and [`DEV_JWKS_FILE`] in
    /// `directory` (which must exist). Refuses to overwrite either file.
    pub fn create(
        directory: &Path,
        issuer: &str,
        audience: &str,
    ) -> Result<DevIssuer, DevIssuerError> {
        if issuer.trim().is_empty() || audience.trim().is_empty() {
            return Err(DevIssuerError::EmptyIssuerOrAudience);
        }
        let key_path = directory.join(DEV_ISSUER_KEY_FILE);
        let jwks_path = directory.join(DEV_JWKS_FILE);
        for path in [&key_path, &jwks_path] {
            if path.exists() {
                return Err(DevIssuerError::Exists { path: path.clone() });
            }
        }
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new())
            .map_err(|_| DevIssuerError::Crypto)?;
        let key_pair =
            Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| DevIssuerError::Crypto)?;
        let x = URL_SAFE_NO_PAD.encode(key_pair.public_key().as_ref());
        let kid = thumbprint(&x);
        let key_file = KeyFile {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            kid: kid.clone(),
            private_key_pkcs8: STANDARD.encode(pkcs8.as_ref()),
        };
        let jwks = json!({
            "keys": [{ "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": "EdDSA", "use": "sig" }]
        });
        write_new(&key_path, 0o600, &to_json(&key_file))?;
        write_new(&jwks_path, 0o644, &to_json(&jwks))?;
        Ok(DevIssuer {
            directory: directory.to_owned(),
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            kid,
            key_pair,
        })
    }

    /// Opens the issuer in `directory`, refusing a key file readable by group or others.
    pub fn open(directory: &Path) -> Result<DevIssuer, DevIssuerError> {
        let path = directory.join(DEV_ISSUER_KEY_FILE);
        let io_error = |error: std::io::Error| DevIssuerError::Io {
            path: path.clone(),
            reason: error.to_string(),
        };
        let file = File::open(&path).map_err(io_error)?;
        let mode = file.metadata().map_err(io_error)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(DevIssuerError::LoosePermissions { path, mode });
        }
        let mut text = String::new();
        file.take(KEY_FILE_BYTES_MAX)
            .read_to_string(&mut text)
            .map_err(io_error)?;
        let corrupt = |reason: String| DevIssuerError::Corrupt {
            path: path.clone(),
            reason,
        };
        let key_file: KeyFile =
            serde_json::from_str(&text).map_err(|error| corrupt(error.to_string()))?;
        let pkcs8 = STANDARD
            .decode(&key_file.private_key_pkcs8)
            .map_err(|_| corrupt("private key is not base64".to_owned()))?;
        let key_pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| corrupt("private key is not Ed25519 PKCS#8".to_owned()))?;
        let kid = thumbprint(&URL_SAFE_NO_PAD.encode(key_pair.public_key().as_ref()));
        if kid != key_file.kid {
            return Err(corrupt("kid does not match the key".to_owned()));
        }
        Ok(DevIssuer {
            directory: directory.to_owned(),
            issuer: key_file.issuer,
            audience: key_file.audience,
            kid,
            key_pair,
        })
    }

    /// The `iss` of minted tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of minted tokens.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The key id: the RFC 7638 SHA-256 thumbprint of the public key.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key set file.
    pub fn jwks_path(&self) -> PathBuf {
        self.directory.join(DEV_JWKS_FILE)
    }

    /// An identity configuration that trusts this issuer (default leeway and algorithms).
    pub fn identity_config(&self) -> IdentityConfig {
        IdentityConfig::new(
            &self.issuer,
            &self.audience,
            JwksSource::File(self.jwks_path()),
        )
    }

    /// A token (EdDSA) for `claims`, valid from `now` for `ttl`.
    pub fn mint(
        &self,
        claims: &IdentityClaims,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<String, DevIssuerError> {
        if ttl.is_zero() || ttl > DEV_TOKEN_TTL_MAX {
            return Err(DevIssuerError::TtlInvalid);
        }
        check_claims(claims)?;
        // INVARIANT: ttl ≤ DEV_TOKEN_TTL_MAX, so the conversion cannot overflow.
        let expires_at = now + TimeDelta::seconds(ttl.as_secs() as i64);
        let mut token_id = [0u8; 16];
        aws_lc_rs::rand::fill(&mut token_id).map_err(|_| DevIssuerError::Crypto)?;
        let kind = match claims.kind {
            IdentityKind::Staff => "staff",
            IdentityKind::Machine => "machine",
        };
        let mut payload = json!({
            "iss": self.issuer,
            "aud": self.audience,
            "sub": claims.id,
            "iat": now.timestamp(),
            "nbf": now.timestamp(),
            "exp": expires_at.timestamp(),
            "jti": hex::encode(token_id),
            "custos_kind": kind,
            "roles": claims.roles,
        });
        for (name, value) in [
            ("team", &claims.team),
            ("entity", &claims.entity),
            ("country", &claims.country),
            ("region", &claims.region),
        ] {
            if let Some(value) = value {
                payload[name] = json!(value);
            }
        }
        let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": self.kid });
        let signed = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string())
        );
        let signature = self.key_pair.sign(signed.as_bytes());
        Ok(format!(
            "{signed}.{}",
            URL_SAFE_NO_PAD.encode(signature.as_ref())
        ))
    }
}

/// Refuses claims the verifier would refuse, so a minted token always verifies.
fn check_claims(claims: &IdentityClaims) -> Result<(), DevIssuerError> {
    let valid = |value: &str| {
        !value.is_empty() && value.len() <= CLAIM_BYTES_MAX && !value.chars().any(char::is_control)
    };
    if !valid(&claims.id) {
        return Err(DevIssuerError::InvalidClaims {
            reason: "id must be 1 to 256 bytes without control characters",
        });
    }
    if claims.roles.len() > ROLES_MAX || !claims.roles.iter().all(|role| valid(role)) {
        return Err(DevIssuerError::InvalidClaims {
            reason: "roles must be at most 64 non-empty names of at most 256 bytes",
        });
    }
    let attributes = [
        &claims.team,
        &claims.entity,
        &claims.country,
        &claims.region,
    ];
    if !attributes.into_iter().flatten().all(|value| valid(value)) {
        return Err(DevIssuerError::InvalidClaims {
            reason: "team, entity, country and region must be 1 to 256 bytes",
        });
    }
    Ok(())
}

/// RFC 7638 thumbprint of an Ed25519 public key (`x` in base64url).
fn thumbprint(x: &str) -> String {
    // Members in lexicographic order, no whitespace, as the RFC requires.
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()).as_ref())
}

fn to_json(value: &impl Serialize) -> Vec<u8> {
    // INVARIANT: these values are maps of strings; serializing them cannot fail.
    let mut text = serde_json::to_vec_pretty(value).expect("issuer files serialize");
    text.push(b'\n');
    text
}

fn write_new(path: &Path, mode: u32, bytes: &[u8]) -> Result<(), DevIssuerError> {
    let io_error = |error: std::io::Error| {
        if error.kind() == std::io::ErrorKind::AlreadyExists {
            DevIssuerError::Exists {
                path: path.to_owned(),
            }
        } else {
            DevIssuerError::Io {
                path: path.to_owned(),
                reason: error.to_string(),
            }
        }
    };
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io_error)?;
    file.write_all(bytes).map_err(io_error)?;
    file.sync_all().map_err(io_error)
}
