//! The alert desk: runs the detector over this node's logs as they grow, keeps what it raises
//! in the alert store with the detector's checkpoint, queues new alerts for the webhook, and
//! takes people's actions on alerts (acknowledge, resolve) — each logged before it takes
//! effect.
//!
//! Restarts: the checkpoint (cursors and the detector's whole state) is saved every
//! [`CHECKPOINT_EVERY_ENTRIES`] entries and when the desk is level with the logs after
//! [`CHECKPOINT_EVERY`]; a restarted desk restores it and re-reads from its cursors. Alerts
//! re-raised from entries read again carry the same ids and are not stored or delivered
//! twice, so the alerts after a crash are exactly those of an uninterrupted run.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use detect::{Alert, DetectionConfig};
use model::decision_entry::{AlertActionEntry, DECISION_ENTRY_VERSION, encode};
use serde::{Deserialize, Serialize};
use store::{
    ALERT_NOTE_BYTES_MAX, AlertAction, AlertNote, AlertRecord, AlertStatus, AlertStore, DetectorCheckpoint, EvidenceRef,
};
use tokio::sync::Mutex;

use crate::detection::{Cursors, Detection};
use crate::{Caller, Gate, ServiceError};

/// The detector's name in the checkpoint table.
pub const DETECTOR_NAME: &str = "main";
/// Save the checkpoint at least this often, in entries observed.
pub const CHECKPOINT_EVERY_ENTRIES: u64 = 100_000;
/// …and when level with the logs, at least this often.
pub const CHECKPOINT_EVERY: Duration = Duration::from_secs(30);
/// How often the live loop looks for new entries.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// `[alert_webhook]`: where new alerts are posted, as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// `https://…` (or `http://` on loopback for tests).
    pub url: String,
    /// `custos` (the alert as the API shows it) or `ocsf` (an OCSF Detection Finding).
    #[serde(default)]
    pub format: WebhookFormat,
    /// Sent as `Authorization: Bearer <token>` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    Custos,
    Ocsf,
}

/// How the desk paces itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeskOptions {
    /// Save the checkpoint after this many entries observed.
    pub checkpoint_every_entries: u64,
    /// Entries read per region per step.
    pub read_entries_max: u64,
}

impl Default for DeskOptions {
    fn default() -> DeskOptions {
        DeskOptions { checkpoint_every_entries: CHECKPOINT_EVERY_ENTRIES, read_entries_max: crate::DETECTION_READ_ENTRIES_MAX }
    }
}

/// What one [`AlertDesk::run_once`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Entries observed.
    pub observed: usize,
    /// Alerts stored for the first time.
    pub stored: Vec<String>,
    /// Whether the detector is level with the logs.
    pub level: bool,
}

/// An alert as the API shows it and the webhook posts it (`format = "custos"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    /// 32 lowercase hexadecimal digits.
    pub id: String,
    /// The detector rule that raised it (`unexplained_access`, …).
    pub rule: String,
    /// `info`, `low`, `medium`, `high` or `critical`.
    #[schema(value_type = String, example = "medium")]
    pub severity: model::Severity,
    /// `open`, `acknowledged` or `resolved`.
    #[schema(value_type = String, example = "open")]
    pub status: AlertStatus,
    /// The staff or machine id whose access raised the alert.
    pub actor: String,
    /// The subjects concerned.
    pub subjects: Vec<String>,
    /// The log entries the alert rests on.
    pub evidence: Vec<EvidenceView>,
    /// The explanation in words.
    pub summary: String,
    /// Time of the log entry that triggered the alert.
    pub at: DateTime<Utc>,
    /// When the detector raised it.
    pub raised_at: DateTime<Utc>,
    /// When its status last changed.
    pub updated_at: DateTime<Utc>,
}

/// One log entry an alert rests on: its region's log and index, and the logged request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct EvidenceView {
    pub region: String,
    pub index: u64,
    pub request: String,
}

/// A person's note on an alert, with the action it came with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct NoteView {
    pub at: DateTime<Utc>,
    /// Who acted.
    pub by: String,
    /// `acknowledge` or `resolve`.
    #[schema(value_type = String, example = "resolve")]
    pub action: AlertAction,
    pub note: String,
}

impl AlertView {
    pub fn new(alert: &AlertRecord) -> AlertView {
        AlertView {
            id: alert.id.clone(),
            rule: alert.rule.clone(),
            severity: alert.severity,
            status: alert.status,
            actor: alert.actor.clone(),
            subjects: alert.subjects.clone(),
            evidence: alert
                .evidence
                .iter()
                .map(|evidence| EvidenceView { region: evidence.region.clone(), index: evidence.index, request: evidence.request.clone() })
                .collect(),
            summary: alert.summary.clone(),
            at: time(alert.at_ms),
            raised_at: time(alert.raised_at_ms),
            updated_at: time(alert.updated_at_ms),
        }
    }
}

impl NoteView {
    pub fn new(note: &AlertNote) -> NoteView {
        NoteView { at: time(note.at_ms), by: note.by.clone(), action: note.action, note: note.note.clone() }
    }
}

/// Milliseconds since the epoch as a time; a stored value beyond chrono's range (years past
/// ±262,000) is shown at the end of the range it overflowed rather than refused.
pub fn time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(if ms < 0 { DateTime::<Utc>::MIN_UTC } else { DateTime::<Utc>::MAX_UTC })
}

struct Running {
    detection: Detection,
    observed_at_save: u64,
    saved_at: Instant,
    /// When the checkpoint was last saved (by this desk or, on open, the stored one).
    saved_at_ms: Option<i64>,
}

pub struct AlertDesk {
    gate: Arc<Gate>,
    store: Arc<dyn AlertStore>,
    config: DetectionConfig,
    deliver: bool,
    options: DeskOptions,
    running: Mutex<Running>,
    // Held from the status check to the store update of an acknowledge or resolve, so two
    // concurrent actions on one alert cannot both be logged: the second sees the first's
    // status and is refused before anything is appended.
    acting: Mutex<()>,
}

impl std::fmt::Debug for AlertDesk {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("AlertDesk").field("deliver", &self.deliver).finish_non_exhaustive()
    }
}

impl AlertDesk {
    /// Opens the desk over `gate`'s logs and alert store, continuing from the stored
    /// checkpoint when there is one. `deliver`: queue new alerts for the webhook.
    pub async fn open(gate: Arc<Gate>, config: DetectionConfig, deliver: bool) -> Result<AlertDesk, ServiceError> {
        AlertDesk::open_with(gate, config, deliver, DeskOptions::default()).await
    }

    /// [`AlertDesk::open`] with its pace set.
    pub async fn open_with(gate: Arc<Gate>, config: DetectionConfig, deliver: bool, options: DeskOptions) -> Result<AlertDesk, ServiceError> {
        let store = Arc::clone(gate.alerts().ok_or_else(|| ServiceError::Internal("this gate keeps no alerts".to_owned()))?);
        let (detection, saved_at_ms) = match store.detector_checkpoint(DETECTOR_NAME).await? {
            Some(checkpoint) => {
                (Detection::restored(&config, Cursors(checkpoint.cursors), &checkpoint.state)?, Some(checkpoint.saved_at_ms))
            }
            None => (Detection::new(&config), None),
        };
        let detection = detection.reading_at_most(options.read_entries_max);
        let observed_at_save = detection.observed();
        Ok(AlertDesk {
            gate,
            store,
            config,
            deliver,
            options,
            running: Mutex::new(Running { detection, observed_at_save, saved_at: Instant::now(), saved_at_ms }),
            acting: Mutex::new(()),
        })
    }

    pub fn config(&self) -> &DetectionConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn AlertStore> {
        &self.store
    }

    /// The names of the rules this desk runs, in the detector's order.
    pub fn rules_enabled(&self) -> Vec<&'static str> {
        detect::rules::enabled(&self.config).iter().map(|rule| rule.name()).collect()
    }

    /// When the detector's checkpoint was last saved, if ever.
    pub async fn checkpoint_saved_at_ms(&self) -> Option<i64> {
        self.running.lock().await.saved_at_ms
    }

    /// Observes one batch of new entries, stores the alerts it raises, and saves the
    /// checkpoint when one is due.
    pub async fn run_once(&self) -> Result<Progress, ServiceError> {
        let mut running = self.running.lock().await;
        let step = running.detection.step(&self.gate).await?;
        let now_ms = self.gate.vault().clock().now().timestamp_millis();
        let mut stored = Vec::new();
        for chunk in step.alerts.chunks(store::ALERTS_PER_INSERT_MAX) {
            let records: Vec<AlertRecord> = chunk.iter().map(|alert| record(alert, now_ms)).collect();
            stored.extend(self.store.insert_alerts(&records, self.deliver, now_ms).await?);
        }
        let level = step.read == 0;
        let since_save = running.detection.observed().saturating_sub(running.observed_at_save);
        if since_save >= self.options.checkpoint_every_entries || (level && since_save > 0 && running.saved_at.elapsed() >= CHECKPOINT_EVERY) {
            self.save_locked(&mut running).await?;
        }
        Ok(Progress { observed: step.read, stored, level })
    }

    /// Runs until level with the logs; returns the ids of the alerts stored.
    pub async fn catch_up(&self) -> Result<Vec<String>, ServiceError> {
        let mut stored = Vec::new();
        loop {
            let progress = self.run_once().await?;
            stored.extend(progress.stored);
            if progress.level {
                return Ok(stored);
            }
        }
    }

    /// Saves the checkpoint now (on shutdown, or after a catch-up).
    pub async fn save(&self) -> Result<(), ServiceError> {
        let mut running = self.running.lock().await;
        self.save_locked(&mut running).await
    }

    async fn save_locked(&self, running: &mut Running) -> Result<(), ServiceError> {
        let (cursors, state) = running.detection.save();
        let checkpoint = DetectorCheckpoint {
            name: DETECTOR_NAME.to_owned(),
            cursors: cursors.0,
            state,
            saved_at_ms: self.gate.vault().clock().now().timestamp_millis(),
        };
        self.store.save_detector_checkpoint(&checkpoint).await?;
        running.observed_at_save = running.detection.observed();
        running.saved_at = Instant::now();
        running.saved_at_ms = Some(checkpoint.saved_at_ms);
        Ok(())
    }

    /// How far behind the logs the detector is, per region: entries logged but not observed.
    pub async fn lag(&self) -> Result<Vec<(String, u64)>, ServiceError> {
        let cursors = self.running.lock().await.detection.cursors().clone();
        let mut lag = Vec::new();
        for region in self.gate.vault().regions() {
            let size = self.gate.vault().log(region)?.size().await?;
            lag.push((region.to_string(), size.saturating_sub(cursors.0.get(region.as_str()).copied().unwrap_or(0))));
        }
        Ok(lag)
    }

    /// Spawns the live loop: every [`POLL_INTERVAL`], observe what was logged. Errors are
    /// logged and retried; the loop ends with the runtime.
    pub fn spawn(self: Arc<Self>) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_once().await {
                    Ok(progress) if !progress.level => continue,
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "detector step failed; retrying"),
                }
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        })
    }

    /// Acknowledges or resolves an alert for `caller`: the action is appended to the log of
    /// the alert's first evidence entry (and durable) before the store changes. The note is
    /// at most [`ALERT_NOTE_BYTES_MAX`] bytes, and a resolution must say why (a note that is
    /// not blank); both are checked before anything is logged.
    pub async fn act(&self, caller: &Caller, id: &str, action: AlertAction, note: &str) -> Result<AlertRecord, ServiceError> {
        if note.len() > ALERT_NOTE_BYTES_MAX {
            return Err(ServiceError::InvalidRequest {
                field: "note".to_owned(),
                message: format!("the note is {} bytes; the limit is {ALERT_NOTE_BYTES_MAX}", note.len()),
            });
        }
        if action == AlertAction::Resolve && note.trim().is_empty() {
            return Err(ServiceError::InvalidRequest {
                field: "note".to_owned(),
                message: "resolving an alert needs a note saying why".to_owned(),
            });
        }
        let _acting = self.acting.lock().await;
        let (alert, _notes) = self.store.alert(id).await?.ok_or_else(|| ServiceError::NotFound(format!("alert {id}")))?;
        if action.apply(alert.status).is_none() {
            return Err(ServiceError::InvalidAlertTransition {
                alert: id.to_owned(),
                status: alert.status.as_str().to_owned(),
                action: action.as_str().to_owned(),
            });
        }
        let region = alert
            .evidence
            .first()
            .map(|evidence| evidence.region.clone())
            .or_else(|| self.gate.vault().regions().next().map(ToString::to_string))
            .ok_or_else(|| ServiceError::Internal("no region to log the alert action in".to_owned()))?;
        let region = model::RegionId::new(&region).map_err(|error| ServiceError::Internal(error.to_string()))?;
        let now = self.gate.vault().clock().now();
        let entry = AlertActionEntry {
            v: DECISION_ENTRY_VERSION,
            kind: "alert_action".to_owned(),
            alert: id.to_owned(),
            rule: alert.rule.clone(),
            alert_actor: alert.actor.clone(),
            requests: {
                let mut requests: Vec<String> = Vec::new();
                for evidence in &alert.evidence {
                    if !evidence.request.is_empty() && !requests.contains(&evidence.request) {
                        requests.push(evidence.request.clone());
                    }
                }
                requests
            },
            at_ms: now.timestamp_millis(),
            by: caller.snapshot(caller.country.as_deref().unwrap_or("")),
            action: action.as_str().to_owned(),
            note: note.to_owned(),
        };
        self.gate.vault().append_log(&region, encode(&entry)).await?;
        let note = AlertNote { at_ms: now.timestamp_millis(), by: caller.id.clone(), action, note: note.to_owned() };
        Ok(self.store.update_alert(id, &note).await?)
    }
}

/// The stored form of an alert the detector raised.
pub fn record(alert: &Alert, raised_at_ms: i64) -> AlertRecord {
    AlertRecord {
        id: alert.id.clone(),
        rule: alert.rule.clone(),
        severity: alert.severity,
        actor: alert.actor.clone(),
        subjects: alert.subjects.clone(),
        evidence: alert
            .evidence
            .iter()
            .map(|evidence| EvidenceRef { region: evidence.region.clone(), index: evidence.index, request: evidence.request.clone() })
            .collect(),
        summary: alert.summary.clone(),
        at_ms: alert.at_ms,
        raised_at_ms,
        status: AlertStatus::Open,
        updated_at_ms: raised_at_ms,
    }
}
