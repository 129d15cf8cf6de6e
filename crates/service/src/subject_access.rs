//! A data subject's own view of custos: the session exchange that gives the platform a
//! subject token for a signed-in user ([`Gate::exchange_subject_token`]) and the checks a
//! subject route applies to the token it is shown ([`Gate::subject_bearer`]).

use chrono::{DateTime, Utc};
use model::SubjectId;
use serde::{Deserialize, Serialize};

use crate::subject_token::{SubjectBearer, SubjectTokenError};
use crate::{Caller, CallerKind, Gate, ServiceError};

/// The platform's exchange: the user it has signed in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubjectTokenInput {
    /// The subject (the platform's user id) whose session is exchanged.
    pub subject: String,
}

/// A minted subject token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SubjectTokenGrant {
    /// `Authorization: Bearer <token>` on the subject's own routes; nowhere else.
    pub token: String,
    pub subject: String,
    pub region: String,
    pub expires_at: DateTime<Utc>,
}

/// Why a subject route refused its caller.
#[derive(Debug, thiserror::Error)]
pub enum SubjectAuthError {
    /// The deployment has no subject token keys: the subject routes are off.
    #[error("subject tokens are not configured on this node")]
    NotConfigured,
    #[error("{0}")]
    Token(#[from] SubjectTokenError),
    /// A valid token for another subject than the one asked about.
    #[error("the subject token speaks for another subject")]
    OtherSubject,
}

impl Gate {
    /// Mints a subject token for `input.subject`, for a machine identity holding one of the
    /// configured exchange roles (`[access] subject_token_roles`). The platform calls this
    /// once it has authenticated its user; the subject must live in a region this node serves.
    pub async fn exchange_subject_token(&self, caller: &Caller, input: &SubjectTokenInput) -> Result<SubjectTokenGrant, ServiceError> {
        let keys = self.subject_tokens().ok_or_else(|| ServiceError::Forbidden("subject tokens are not configured on this node".to_owned()))?;
        if caller.kind != CallerKind::Machine {
            return Err(ServiceError::Forbidden("only a machine identity (the platform) may exchange a session for a subject token".to_owned()));
        }
        if !caller.roles.iter().any(|role| self.settings().subject_token_roles.contains(role)) {
            return Err(ServiceError::Forbidden("the caller holds no subject token exchange role".to_owned()));
        }
        let subject = SubjectId::new(&input.subject)
            .map_err(|error| ServiceError::InvalidRequest { field: "subject".to_owned(), message: error.to_string() })?;
        let (region, _) = self.vault().locate_subject(&subject).await?;
        let now = self.vault().clock().now();
        let lifetime = self.settings().subject_token_lifetime;
        let token = keys.mint(&subject, &region, now, lifetime).map_err(|error| ServiceError::Internal(error.to_string()))?;
        let expires_at = crate::SubjectTokenKeys::expires_at(now, lifetime);
        Ok(SubjectTokenGrant { token, subject: subject.to_string(), region: region.to_string(), expires_at })
    }

    /// The bearer of `token`, if it is a valid subject token for `subject` (the subject the
    /// route names) at the service clock's now.
    pub fn subject_bearer(&self, token: &str, subject: &str) -> Result<SubjectBearer, SubjectAuthError> {
        let keys = self.subject_tokens().ok_or(SubjectAuthError::NotConfigured)?;
        let bearer = keys.verify(token, self.vault().clock().now())?;
        if bearer.subject.as_str() != subject {
            return Err(SubjectAuthError::OtherSubject);
        }
        Ok(bearer)
    }
}
