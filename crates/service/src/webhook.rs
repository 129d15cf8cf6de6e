//! Webhook delivery of new alerts: each alert the desk queued is posted once, as JSON (the
//! API's alert view, or an OCSF Detection Finding), to the configured URL. A failed post is
//! retried with exponential backoff and given up after [`WEBHOOK_ATTEMPTS_MAX`] attempts; the
//! queue lives in the alert store, so retries survive restarts.
//!
//! Every post carries `Idempotency-Key: <alert id>`: a post that reached the receiver but
//! whose answer was lost is retried, and the receiver recognises the repeat.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use store::{AlertRecord, AlertStore};

use crate::alert_desk::{AlertView, WebhookConfig, WebhookFormat};
use crate::{Clock, ServiceError, SystemClock};

/// How long one post may take, connection to answer.
pub const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// The wait after the first failed attempt; it doubles after each further failure…
pub const WEBHOOK_BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// …up to this.
pub const WEBHOOK_BACKOFF_MAX: Duration = Duration::from_secs(60 * 60);
/// Attempts per alert before the delivery is given up (the alert stays in the API).
pub const WEBHOOK_ATTEMPTS_MAX: u32 = 12;
/// How often the delivery loop looks for due deliveries.
pub const WEBHOOK_INTERVAL: Duration = Duration::from_secs(1);
/// Most deliveries one [`deliver_due`] call attempts: at worst this many timeouts in a row.
pub const WEBHOOK_DELIVERIES_PER_ROUND_MAX: usize = 32;
/// Longest webhook URL, in bytes.
pub const WEBHOOK_URL_BYTES_MAX: usize = 2_048;

/// What one [`deliver_due`] call did, by alert id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeliveryReport {
    /// Accepted by the receiver (a 2xx answer).
    pub delivered: Vec<String>,
    /// Failed; due again after the backoff.
    pub retrying: Vec<String>,
    /// Failed for the last time ([`WEBHOOK_ATTEMPTS_MAX`] attempts).
    pub given_up: Vec<String>,
}

impl DeliveryReport {
    /// How many deliveries were attempted.
    pub fn attempted(&self) -> usize {
        self.delivered.len() + self.retrying.len() + self.given_up.len()
    }
}

/// Posts each delivery due at `now_ms` (at most [`WEBHOOK_DELIVERIES_PER_ROUND_MAX`], oldest
/// first) and records the outcome: a 2xx answer marks it delivered; anything else (another
/// status, a refused connection, a timeout) is a failed attempt, due again after
/// [`backoff`], or given up after [`WEBHOOK_ATTEMPTS_MAX`] attempts. Errors are the store's,
/// or a configuration [`WebhookConfig::check`] refuses.
pub async fn deliver_due(store: &dyn AlertStore, config: &WebhookConfig, now_ms: i64) -> Result<DeliveryReport, ServiceError> {
    config.check()?;
    let due = store.due_deliveries(now_ms, WEBHOOK_DELIVERIES_PER_ROUND_MAX).await?;
    let mut report = DeliveryReport::default();
    if due.is_empty() {
        return Ok(report);
    }
    let agent = http_agent();
    for (delivery, alert) in due {
        let post = Post {
            agent: agent.clone(),
            url: config.url.clone(),
            bearer_token: config.bearer_token.clone(),
            idempotency_key: alert.id.clone(),
            body: payload(&alert, config.format),
        };
        let outcome = tokio::task::spawn_blocking(move || post.send())
            .await
            .map_err(|error| ServiceError::Internal(format!("webhook post of alert {} panicked: {error}", alert.id)))?;
        match outcome {
            Ok(()) => {
                store.delivery_succeeded(&alert.id, now_ms).await?;
                report.delivered.push(alert.id);
            }
            Err(error) => {
                let attempts = delivery.attempts.saturating_add(1);
                let give_up = attempts >= WEBHOOK_ATTEMPTS_MAX;
                let wait_ms = i64::try_from(backoff(attempts).as_millis()).unwrap_or(i64::MAX);
                let next_at_ms = now_ms.saturating_add(wait_ms);
                store.delivery_failed(&alert.id, &error, next_at_ms, give_up).await?;
                if give_up {
                    tracing::error!(alert = %alert.id, attempts, %error, "webhook delivery given up");
                    report.given_up.push(alert.id);
                } else {
                    tracing::warn!(alert = %alert.id, attempts, %error, "webhook delivery failed; retrying");
                    report.retrying.push(alert.id);
                }
            }
        }
    }
    Ok(report)
}

/// The wait after `attempts` failed attempts (1 or more): [`WEBHOOK_BACKOFF_FIRST`] doubled
/// `attempts - 1` times, at most [`WEBHOOK_BACKOFF_MAX`].
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(31);
    WEBHOOK_BACKOFF_FIRST.saturating_mul(1 << doublings).min(WEBHOOK_BACKOFF_MAX)
}

/// Spawns the delivery loop: every [`WEBHOOK_INTERVAL`], deliver what is due by the wall
/// clock (remote receivers live in real time, whatever clock the desk runs on). Errors are
/// logged and retried; the loop ends with the runtime.
pub fn spawn_webhook(store: Arc<dyn AlertStore>, config: WebhookConfig) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now_ms = SystemClock.now().timestamp_millis();
            match deliver_due(store.as_ref(), &config, now_ms).await {
                // A full round may have left more due: go on at once.
                Ok(report) if report.attempted() == WEBHOOK_DELIVERIES_PER_ROUND_MAX => continue,
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "webhook delivery round failed; retrying"),
            }
            tokio::time::sleep(WEBHOOK_INTERVAL).await;
        }
    })
}

impl WebhookConfig {
    /// Refuses a URL that is not `https://…` (or `http://` to a loopback host, for tests and
    /// local relays), is longer than [`WEBHOOK_URL_BYTES_MAX`], or carries credentials, and a
    /// bearer token that cannot be sent in a header. The error names the setting.
    pub fn check(&self) -> Result<(), ServiceError> {
        let invalid = |field: &str, message: String| ServiceError::InvalidRequest { field: field.to_owned(), message };
        let url = &self.url;
        if url.len() > WEBHOOK_URL_BYTES_MAX {
            return Err(invalid("alert_webhook.url", format!("the URL is {} bytes; the limit is {WEBHOOK_URL_BYTES_MAX}", url.len())));
        }
        let (secure, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(invalid("alert_webhook.url", format!("{url:?} is not an https:// URL")));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if authority.is_empty() || authority.contains('@') || url.chars().any(|character| character.is_control() || character == ' ') {
            return Err(invalid("alert_webhook.url", format!("{url:?} needs a host and no credentials, spaces or control characters")));
        }
        if !secure && !is_loopback(authority) {
            return Err(invalid("alert_webhook.url", format!("{url:?}: plain http:// is allowed to a loopback host only; use https://")));
        }
        if let Some(token) = &self.bearer_token
            && (token.is_empty() || !token.bytes().all(|byte| byte.is_ascii_graphic()))
        {
            return Err(invalid("alert_webhook.bearer_token", "the token must be printable ASCII without spaces".to_owned()));
        }
        Ok(())
    }
}

/// `localhost`, `127.x.y.z` or `[::1]`, with or without a port.
fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or(""),
        None => authority.split(':').next().unwrap_or(""),
    };
    host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok_and(|address| address.is_loopback())
}

/// The JSON body posted for an alert.
fn payload(alert: &AlertRecord, format: WebhookFormat) -> Vec<u8> {
    let value = match format {
        // INVARIANT: the view holds strings, integers and times only, which always encode.
        WebhookFormat::Custos => serde_json::to_value(AlertView::new(alert)).expect("alert views always encode"),
        WebhookFormat::Ocsf => crate::ocsf::detection_finding(alert, env!("CARGO_PKG_VERSION")),
    };
    value.to_string().into_bytes()
}

/// One post, run on the blocking pool.
struct Post {
    agent: ureq::Agent,
    url: String,
    bearer_token: Option<String>,
    idempotency_key: String,
    body: Vec<u8>,
}

impl Post {
    /// `Ok` on a 2xx answer; otherwise why not, in words (never the token).
    fn send(self) -> Result<(), String> {
        let mut request = self
            .agent
            .post(&self.url)
            .header("content-type", "application/json")
            .header("idempotency-key", &self.idempotency_key);
        if let Some(token) = &self.bearer_token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = request.send(&self.body[..]).map_err(|error| format!("failed to post to the webhook: {error}"))?;
        let status = response.status().as_u16();
        if (200..300).contains(&status) { Ok(()) } else { Err(format!("the webhook answered HTTP {status}")) }
    }
}

/// An HTTP(S) client as `custos log verify` and the JWKS fetcher use: rustls on the aws-lc-rs
/// provider, Mozilla's roots, bounded time. Redirects are not followed: the receiver is
/// configured, not discovered.
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
        .timeout_global(Some(WEBHOOK_TIMEOUT))
        .max_redirects(0)
        .user_agent(concat!("custos/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_an_hour() {
        let seconds: Vec<u64> = (1..=WEBHOOK_ATTEMPTS_MAX).map(|attempts| backoff(attempts).as_secs()).collect();
        assert_eq!(seconds, [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1_024, 2_048]);
        assert_eq!(backoff(13), Duration::from_secs(3_600));
        assert_eq!(backoff(u32::MAX), WEBHOOK_BACKOFF_MAX);
        assert_eq!(backoff(0), WEBHOOK_BACKOFF_FIRST);
    }

    #[test]
    fn webhook_urls_are_https_or_loopback_http() {
        let check = |url: &str, token: Option<&str>, expected: Result<(), &str>| {
            let config = WebhookConfig { url: url.to_owned(), format: WebhookFormat::Custos, bearer_token: token.map(str::to_owned) };
            let got = config.check().map_err(|error| match error {
                ServiceError::InvalidRequest { field, .. } => field,
                other => panic!("{url}: {other}"),
            });
            assert_eq!(got, expected.map_err(str::to_owned), "{url}");
        };
        check("https://siem.example/hooks/custos", Some("t0k3n"), Ok(()));
        check("http://127.0.0.1:8080/hook", None, Ok(()));
        check("http://localhost/hook", None, Ok(()));
        check("http://[::1]:9000", None, Ok(()));
        check("http://siem.example/hook", None, Err("alert_webhook.url"));
        check("http://127.0.0.1.siem.example/hook", None, Err("alert_webhook.url"));
        check("ftp://siem.example", None, Err("alert_webhook.url"));
        check("https://user:secret@siem.example/", None, Err("alert_webhook.url"));
        check("https:///hook", None, Err("alert_webhook.url"));
        check(&format!("https://siem.example/{}", "a".repeat(WEBHOOK_URL_BYTES_MAX)), None, Err("alert_webhook.url"));
        check("https://siem.example/", Some("two words"), Err("alert_webhook.bearer_token"));
        check("https://siem.example/", Some("line\nbreak"), Err("alert_webhook.bearer_token"));
    }
}
