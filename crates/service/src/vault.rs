//! The vault: per-region sealed storage behind residency checks. Ingest seals values under each
//! subject's data key; reveal opens them and applies a minimizing view; erase destroys the data
//! key and re-keys its shred group so that old copies of the database cannot be opened.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};
use model::{FieldKind, FieldValue, GeoDb, RegionId, StaffId, SubjectId, View, ViewContext};
use seal::{DataKey, DataKeyCache, KeyProvider, KekVersion, ShredGroup, ValueAad, WrappedKey, shred_group_of};
use serde::Serialize;
use store::{ErasureRecord, RegionStore, Rewrap, SealedValue, StoredKey, SubjectUpsert, WriteBatch};

use crate::log::{LogReceipt, RegionLog};
use crate::{Clock, IngestOutcome, ServiceError, ValidatedSubject};

/// One region this node serves: its storage and its key provider.
pub struct RegionSetup {
    pub region: RegionId,
    pub store: Arc<dyn RegionStore>,
    pub keys: Arc<dyn KeyProvider>,
}

pub struct VaultOptions {
    pub geo: Option<Arc<GeoDb>>,
    pub clock: Arc<dyn Clock>,
    pub cache: DataKeyCache,
}

struct RegionVault {
    store: Arc<dyn RegionStore>,
    keys: Arc<dyn KeyProvider>,
    /// Writes that create data keys, erase or re-key take it exclusively, so that a key wrapped
    /// under a version being rotated away is never stored after the re-wrap scan. Reveals take
    /// it shared, so that an erase cannot interleave with a reveal and leave the erased
    /// subject's key in the cache, and a rotation cannot destroy a version mid-reveal.
    lock: tokio::sync::RwLock<()>,
}

pub struct Vault {
    regions: BTreeMap<RegionId, RegionVault>,
    geo: Option<Arc<GeoDb>>,
    clock: Arc<dyn Clock>,
    cache: DataKeyCache,
    /// The access log of each served region that has one (see [`Vault::with_logs`]).
    logs: BTreeMap<RegionId, RegionLog>,
    /// Per region, the key of the blind index that search uses (see [`blind_digest`]).
    search_keys: BTreeMap<RegionId, Arc<zeroize::Zeroizing<[u8; 32]>>>,
    /// The deployment lock file, held for as long as the vault lives.
    _lock: Option<std::fs::File>,
}

/// What a caller may learn about a subject without any value: metadata and counts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubjectSummary {
    pub id: String,
    pub region: String,
    pub labels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staff: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<DateTime<Utc>>,
    /// Number of stored values per field kind.
    pub value_counts: BTreeMap<String, u64>,
}

/// The values of one field under one view. Values that look the same under a coarse view are
/// merged, so the count of distinct exact values is not revealed either.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct FieldReveal {
    pub field: String,
    pub view: String,
    pub exists: bool,
    pub values: Vec<RevealedValue>,
}

#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RevealedValue {
    pub value: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RotationReport {
    pub groups_rotated: u64,
    pub data_keys_rewrapped: u64,
}

impl Vault {
    pub fn new(regions: Vec<RegionSetup>, options: VaultOptions) -> Self {
        let regions = regions
            .into_iter()
            .map(|setup| {
                assert_eq!(setup.store.region(), &setup.region, "store serves another region");
                assert_eq!(setup.keys.region(), &setup.region, "key provider serves another region");
                let vault = RegionVault { store: setup.store, keys: setup.keys, lock: tokio::sync::RwLock::new(()) };
                (setup.region, vault)
            })
            .collect();
        Self {
            regions,
            geo: options.geo,
            clock: options.clock,
            cache: options.cache,
            logs: BTreeMap::new(),
            search_keys: BTreeMap::new(),
            _lock: None,
        }
    }

    /// Keeps `lock` (an exclusively locked file) for the vault's lifetime.
    pub(crate) fn holding(mut self, lock: std::fs::File) -> Self {
        self._lock = Some(lock);
        self
    }

    /// Attaches started region logs. Each must be for a served region.
    pub fn with_logs(mut self, logs: Vec<RegionLog>) -> Self {
        for log in logs {
            assert!(self.regions.contains_key(log.region()), "log of a region this vault does not serve");
            self.logs.insert(log.region().clone(), log);
        }
        self
    }

    /// Indexes exact emails, phones, IP addresses and names of each region under its key,
    /// so that [`Vault::find_subjects`] can find subjects without the store holding values.
    /// Values ingested before a region had a key are not indexed.
    pub fn with_search_keys(mut self, keys: Vec<(RegionId, zeroize::Zeroizing<[u8; 32]>)>) -> Self {
        for (region, key) in keys {
            assert!(self.regions.contains_key(&region), "search key of a region this vault does not serve");
            self.search_keys.insert(region, Arc::new(key));
        }
        self
    }

    /// The blind-index digest of `value` (a `kind` value, normalized first) in each served
    /// region that has a search key: what a search compares, and what its log entries record
    /// instead of the value.
    pub fn query_digests(&self, kind: FieldKind, value: &str) -> Result<BTreeMap<RegionId, [u8; 32]>, ServiceError> {
        if !SEARCHABLE_FIELDS.contains(&kind) {
            return Err(ServiceError::InvalidRequest {
                field: "query".to_owned(),
                message: format!("{kind} is not searchable (email, phone, ip_address, name)"),
            });
        }
        let parsed = FieldValue::parse(kind, value)
            .map_err(|_| ServiceError::InvalidRequest { field: format!("query.{kind}"), message: format!("not a valid {kind}") })?;
        let canonical = parsed.to_canonical();
        Ok(self.search_keys.iter().map(|(region, key)| (region.clone(), blind_digest(key, kind, &canonical))).collect())
    }

    /// The subjects whose `kind` value has the region's digest in `digests` (from
    /// [`Vault::query_digests`]), at most [`SEARCH_MATCHES_MAX`]. The value itself is never
    /// stored: only keyed digests are compared.
    pub async fn find_subjects(&self, kind: FieldKind, digests: &BTreeMap<RegionId, [u8; 32]>) -> Result<Vec<SubjectId>, ServiceError> {
        let mut found = Vec::new();
        for (region, digest) in digests {
            let left = SEARCH_MATCHES_MAX - found.len();
            found.extend(self.region(region)?.store.find_blind_index(kind, digest, left).await?);
            if found.len() >= SEARCH_MATCHES_MAX {
                break;
            }
        }
        Ok(found)
    }

    /// The access log of a served region.
    pub fn log(&self, region: &RegionId) -> Result<&RegionLog, ServiceError> {
        self.region(region)?;
        self.logs.get(region).ok_or_else(|| ServiceError::Log(format!("region {region} has no access log open")))
    }

    /// Appends a canonical decision to the region's log under a fresh salt; returns once
    /// it is durable.
    pub async fn append_log(&self, region: &RegionId, canonical: Vec<u8>) -> Result<LogReceipt, ServiceError> {
        self.log(region)?.append(&canonical).await
    }

    /// The latest signed checkpoint note of the region's log.
    pub async fn checkpoint(&self, region: &RegionId) -> Result<String, ServiceError> {
        self.log(region)?.checkpoint().await
    }

    /// Signs the region's log now; returns the note.
    pub async fn sign_checkpoint_now(&self, region: &RegionId) -> Result<String, ServiceError> {
        self.log(region)?.sign_now().await
    }

    pub fn regions(&self) -> impl Iterator<Item = &RegionId> {
        self.regions.keys()
    }

    pub fn clock(&self) -> &dyn Clock {
        self.clock.as_ref()
    }

    pub fn has_geo(&self) -> bool {
        self.geo.is_some()
    }

    /// Storage backend and key provider of a served region, for operators.
    pub fn describe_region(&self, region: &RegionId) -> Result<(String, String), ServiceError> {
        let vault = self.region(region)?;
        Ok((vault.store.backend().to_owned(), vault.keys.describe()))
    }

    fn region(&self, region: &RegionId) -> Result<&RegionVault, ServiceError> {
        self.regions.get(region).ok_or_else(|| ServiceError::RegionNotServed(region.clone()))
    }

    /// Writes validated subjects and their values. Every region must be served, or nothing is
    /// written. Within a region the write is one transaction; across regions each region
    /// commits on its own.
    pub async fn ingest(&self, subjects: Vec<ValidatedSubject>) -> Result<IngestOutcome, ServiceError> {
        let mut by_region: BTreeMap<RegionId, Vec<ValidatedSubject>> = BTreeMap::new();
        for subject in subjects {
            self.region(&subject.region)?;
            by_region.entry(subject.region.clone()).or_default().push(subject);
        }
        let mut outcome = IngestOutcome::default();
        for (region, subjects) in by_region {
            outcome.add(self.ingest_region(&region, subjects).await?);
        }
        Ok(outcome)
    }

    async fn ingest_region(&self, region: &RegionId, subjects: Vec<ValidatedSubject>) -> Result<IngestOutcome, ServiceError> {
        let vault = self.region(region)?;
        let _writer = vault.lock.write().await;
        let now_ms = self.clock.now().timestamp_millis();
        let ids: Vec<SubjectId> = subjects.iter().map(|subject| subject.id.clone()).collect();
        let keys = self.data_keys(region, vault, &ids, KeyCreation::CreateMissing).await?;
        let region_owned = region.clone();
        let search_key = self.search_keys.get(region).cloned();
        let batch = tokio::task::spawn_blocking(move || seal_batch(&region_owned, &subjects, &keys, search_key.as_deref().map(|key| &**key), now_ms))
            .await
            .map_err(|error| ServiceError::Internal(format!("sealing task failed: {error}")))??;
        let written = vault.store.write(&batch).await?;
        metrics::counter!("custos_values_ingested_total", "region" => region.to_string()).increment(written.values_added);
        Ok(IngestOutcome {
            subjects_created: written.subjects_created,
            subjects_updated: written.subjects_updated,
            values_added: written.values_added,
            values_merged: written.values_merged,
        })
    }

    /// Metadata and value counts of a subject; never a value.
    pub async fn subject(&self, region: &RegionId, id: &SubjectId) -> Result<SubjectSummary, ServiceError> {
        let vault = self.region(region)?;
        let record = subject_record(vault, region, id).await?;
        let mut value_counts = BTreeMap::new();
        for value in vault.store.values(id, &[]).await? {
            *value_counts.entry(value.field.as_str().to_owned()).or_insert(0) += 1;
        }
        Ok(SubjectSummary {
            id: record.id.to_string(),
            region: region.to_string(),
            labels: record.labels.iter().map(|label| label.as_str().to_owned()).collect(),
            staff: record.staff.as_ref().map(StaffId::to_string),
            created_at: time_of(record.created_at_ms),
            updated_at: time_of(record.updated_at_ms),
            erased_at: record.erased_at_ms.map(time_of),
            value_counts,
        })
    }

    /// Finds a subject among the served regions: its home region and stored record. Subject
    /// ids are unique across a deployment (the platform's user ids); a subject whose region
    /// this node does not serve is not found here.
    pub async fn locate_subject(&self, id: &SubjectId) -> Result<(RegionId, store::SubjectRecord), ServiceError> {
        for (region, vault) in &self.regions {
            if let Some(record) = vault.store.subject(id).await? {
                return Ok((region.clone(), record));
            }
        }
        Err(ServiceError::NotFound(format!("subject {id} in the regions this node serves")))
    }

    /// Opens the subject's values of the requested fields and applies each field's view.
    ///
    /// INVARIANT: no value may leave custos without a durable log entry for the decision that
    /// allowed it (DESIGN.md §4). This function does not log; the access flow that calls it
    /// must have appended and synced the decision first. It is not reachable over HTTP.
    pub async fn reveal(
        &self,
        region: &RegionId,
        id: &SubjectId,
        fields: &[(FieldKind, View)],
    ) -> Result<Vec<FieldReveal>, ServiceError> {
        let vault = self.region(region)?;
        let _reader = vault.lock.read().await;
        let record = subject_record(vault, region, id).await?;
        if record.erased_at_ms.is_some() {
            return Err(ServiceError::SubjectErased(id.clone()));
        }
        let kinds: Vec<FieldKind> = fields.iter().map(|(kind, _)| *kind).collect();
        let sealed = vault.store.values(id, &kinds).await?;
        let mut reveals: Vec<FieldReveal> = fields
            .iter()
            .map(|(kind, view)| FieldReveal { field: kind.as_str().to_owned(), view: view.to_string(), exists: false, values: Vec::new() })
            .collect();
        if sealed.is_empty() {
            return Ok(reveals);
        }
        let keys = self.data_keys(region, vault, std::slice::from_ref(id), KeyCreation::ExistingOnly).await?;
        let key = keys.get(id).ok_or_else(|| ServiceError::Integrity {
            subject: id.clone(),
            detail: "values are stored but the data key is missing".to_owned(),
        })?;
        let context = ViewContext { today: self.clock.now().date_naive(), geo: self.geo.as_deref().map(|geo| geo as _) };
        for ((kind, view), reveal) in fields.iter().zip(reveals.iter_mut()) {
            let mut merged: Vec<RevealedValue> = Vec::new();
            for value in sealed.iter().filter(|value| value.field == *kind) {
                reveal.exists = true;
                if *view == View::Exists {
                    continue;
                }
                let plain = open_value(region, key, value)?;
                let shown = view.apply(&plain, &context).map_err(|error| ServiceError::Invalid(vec![crate::ValueRejection {
                    subject: id.to_string(),
                    field: Some(kind.as_str().to_owned()),
                    index: None,
                    message: error.to_string(),
                }]))?;
                let (first_seen, last_seen) = (time_of(value.first_seen_ms), time_of(value.last_seen_ms));
                match merged.iter_mut().find(|existing| existing.value == shown.as_str()) {
                    Some(existing) => {
                        existing.first_seen = existing.first_seen.min(first_seen);
                        existing.last_seen = existing.last_seen.max(last_seen);
                    }
                    None => merged.push(RevealedValue { value: shown.as_str().to_owned(), first_seen, last_seen }),
                }
            }
            reveal.values = merged;
        }
        metrics::counter!("custos_values_revealed_total", "region" => region.to_string())
            .increment(reveals.iter().map(|reveal| reveal.values.len() as u64).sum());
        Ok(reveals)
    }

    /// Erases a subject: deletes its values and data key, keeps the record of the erasure, and
    /// re-keys its shred group so the destroyed data key cannot be unwrapped from any copy of
    /// the database taken before. Calling it again finishes an interrupted re-key.
    pub async fn erase(
        &self,
        region: &RegionId,
        id: &SubjectId,
        requested_by: &str,
        reason: &str,
    ) -> Result<ErasureRecord, ServiceError> {
        let vault = self.region(region)?;
        let _writer = vault.lock.write().await;
        subject_record(vault, region, id).await?;
        let group = shred_group_of(id);
        // Rotate before deleting: from here on, a crash leaves an older key version behind,
        // which `complete_pending_shreds` (run at every start) re-wraps away and destroys.
        let provider = Arc::clone(&vault.keys);
        let new_version = blocking(move || provider.rotate(group)).await??;
        let now_ms = self.clock.now().timestamp_millis();
        let record = vault.store.erase(id, now_ms, requested_by, reason).await.map_err(|error| match error {
            store::StoreError::UnknownSubject(subject) => ServiceError::SubjectNotFound { region: region.clone(), subject },
            other => other.into(),
        })?;
        self.cache.remove(region, id);
        complete_rotation(vault, group, new_version).await?;
        metrics::counter!("custos_subjects_erased_total", "region" => region.to_string()).increment(1);
        Ok(record)
    }

    /// Rotates every key-encryption key of the region: data keys are re-wrapped under new
    /// versions (sealed values are not touched) and the old versions are destroyed.
    pub async fn rotate_keys(&self, region: &RegionId) -> Result<RotationReport, ServiceError> {
        let vault = self.region(region)?;
        let _writer = vault.lock.write().await;
        let mut report = RotationReport::default();
        for group in ShredGroup::all() {
            let keys = Arc::clone(&vault.keys);
            let current = blocking(move || keys.current_version(group)).await??;
            if current.is_some() {
                report.groups_rotated += 1;
                report.data_keys_rewrapped += rotate_group(vault, group).await?;
            }
        }
        Ok(report)
    }

    /// Finishes every interrupted erase or rotation: in each shred group, data keys still
    /// wrapped under an older key-encryption key version are re-wrapped under the current one,
    /// and the older versions are destroyed. Idempotent; run at every start, before serving.
    pub async fn complete_pending_shreds(&self) -> Result<RotationReport, ServiceError> {
        let mut report = RotationReport::default();
        for vault in self.regions.values() {
            let _writer = vault.lock.write().await;
            for group in ShredGroup::all() {
                let keys = Arc::clone(&vault.keys);
                if let Some(current) = blocking(move || keys.current_version(group)).await?? {
                    let rewrapped = complete_rotation(vault, group, current).await?;
                    report.groups_rotated += u64::from(rewrapped > 0);
                    report.data_keys_rewrapped += rewrapped;
                }
            }
        }
        Ok(report)
    }

    /// Unwrapped data keys for `subjects`, from the cache, else from the store; with
    /// `CreateMissing`, new keys are generated, wrapped and stored for subjects without one
    /// (the stored key wins a race).
    async fn data_keys(
        &self,
        region: &RegionId,
        vault: &RegionVault,
        subjects: &[SubjectId],
        creation: KeyCreation,
    ) -> Result<HashMap<SubjectId, Arc<DataKey>>, ServiceError> {
        let now = Instant::now();
        let mut found = HashMap::with_capacity(subjects.len());
        let mut missing = Vec::new();
        for subject in subjects {
            match self.cache.get(region, subject, now) {
                Some(key) => {
                    found.insert(subject.clone(), key);
                }
                None => missing.push(subject.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let stored = vault.store.data_keys(&missing).await?;
        let mut unwrapped = unwrap_all(&vault.keys, stored).await?;
        if creation == KeyCreation::CreateMissing {
            let absent: Vec<SubjectId> = missing.iter().filter(|subject| !unwrapped.contains_key(*subject)).cloned().collect();
            if !absent.is_empty() {
                let provider = Arc::clone(&vault.keys);
                let created = blocking(move || -> Result<Vec<(DataKey, StoredKey)>, ServiceError> {
                    absent
                        .into_iter()
                        .map(|subject| {
                            let key = DataKey::generate()?;
                            let wrapped = provider.wrap(shred_group_of(&subject), &subject, &key)?;
                            let stored = StoredKey {
                                subject,
                                group: wrapped.group.as_u16(),
                                version: wrapped.version.0,
                                wrapped: wrapped.bytes,
                            };
                            Ok((key, stored))
                        })
                        .collect()
                })
                .await??;
                let proposed: Vec<StoredKey> = created.iter().map(|(_, stored)| stored.clone()).collect();
                let effective = vault.store.ensure_data_keys(&proposed).await?;
                let mut lost_race = Vec::new();
                for ((key, ours), theirs) in created.into_iter().zip(effective) {
                    if ours == theirs {
                        unwrapped.insert(ours.subject, key);
                    } else {
                        lost_race.push(theirs);
                    }
                }
                unwrapped.extend(unwrap_all(&vault.keys, lost_race).await?);
            }
        }
        for (subject, key) in unwrapped {
            let key = Arc::new(key);
            self.cache.insert(region, &subject, Arc::clone(&key), now);
            found.insert(subject, key);
        }
        Ok(found)
    }
}

async fn subject_record(vault: &RegionVault, region: &RegionId, id: &SubjectId) -> Result<store::SubjectRecord, ServiceError> {
    vault
        .store
        .subject(id)
        .await?
        .ok_or_else(|| ServiceError::SubjectNotFound { region: region.clone(), subject: id.clone() })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyCreation {
    CreateMissing,
    ExistingOnly,
}

fn time_of(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> Result<T, ServiceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| ServiceError::Internal(format!("blocking task failed: {error}")))
}

async fn unwrap_all(provider: &Arc<dyn KeyProvider>, stored: Vec<StoredKey>) -> Result<HashMap<SubjectId, DataKey>, ServiceError> {
    if stored.is_empty() {
        return Ok(HashMap::new());
    }
    let provider = Arc::clone(provider);
    blocking(move || {
        stored
            .into_iter()
            .map(|stored| {
                let key = provider.unwrap(&stored.subject, &wrapped_of(&stored)?).map_err(|error| match error {
                    seal::KeyError::Integrity => ServiceError::Integrity {
                        subject: stored.subject.clone(),
                        detail: "the wrapped data key failed its integrity check".to_owned(),
                    },
                    other => other.into(),
                })?;
                Ok((stored.subject, key))
            })
            .collect()
    })
    .await?
}

fn wrapped_of(stored: &StoredKey) -> Result<WrappedKey, ServiceError> {
    let group = ShredGroup::new(stored.group)
        .ok_or_else(|| ServiceError::Integrity { subject: stored.subject.clone(), detail: format!("shred group {} out of range", stored.group) })?;
    Ok(WrappedKey { group, version: KekVersion(stored.version), bytes: stored.wrapped.clone() })
}

/// Seals every value of `subjects` (CPU work: runs on the blocking pool).
fn seal_batch(
    region: &RegionId,
    subjects: &[ValidatedSubject],
    keys: &HashMap<SubjectId, Arc<DataKey>>,
    search_key: Option<&[u8; 32]>,
    now_ms: i64,
) -> Result<WriteBatch, ServiceError> {
    let mut batch = WriteBatch::default();
    for subject in subjects {
        batch.subjects.push(SubjectUpsert {
            id: subject.id.clone(),
            labels: subject.labels.clone(),
            staff: subject.staff.clone(),
            at_ms: now_ms,
        });
        let key = keys.get(&subject.id).ok_or_else(|| ServiceError::Internal(format!("no data key for {}", subject.id)))?;
        for (value, observed_at) in &subject.values {
            let field = value.kind();
            let canonical = value.to_canonical();
            let value_id = seal::value_digest(key, field, canonical.as_bytes());
            if let Some(search_key) = search_key
                && SEARCHABLE_FIELDS.contains(&field)
            {
                let entry = store::BlindIndexEntry { subject: subject.id.clone(), field, digest: blind_digest(search_key, field, &canonical) };
                if !batch.blind_indexes.contains(&entry) {
                    batch.blind_indexes.push(entry);
                }
            }
            let aad = ValueAad { region, subject: &subject.id, field, value_id: &value_id };
            let sealed = seal::seal(key, &aad, canonical.as_bytes())?;
            let seen_ms = observed_at.map_or(now_ms, |at| at.timestamp_millis());
            batch.values.push(SealedValue {
                subject: subject.id.clone(),
                field,
                value_id,
                sealed,
                first_seen_ms: seen_ms,
                last_seen_ms: seen_ms,
            });
        }
    }
    Ok(batch)
}

/// Fields whose exact values can be searched for.
pub const SEARCHABLE_FIELDS: [FieldKind; 4] = [FieldKind::Email, FieldKind::Phone, FieldKind::IpAddress, FieldKind::Name];
/// Most subjects one search matches.
pub const SEARCH_MATCHES_MAX: usize = 20;
const BLIND_INDEX_CONTEXT: &[u8] = b"custos blind index v1\0";

/// The blind-index digest of a canonical value: HMAC-SHA-256 under the region's search key of
/// a context string, the field name, a zero byte and the value (names compared without case).
/// Without the key the digest says nothing; with it, low-entropy values (phones, IPv4) can be
/// tried one by one — the key is as sensitive as the values.
pub fn blind_digest(key: &[u8; 32], field: FieldKind, canonical: &str) -> [u8; 32] {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let mut context = aws_lc_rs::hmac::Context::with_key(&key);
    context.update(BLIND_INDEX_CONTEXT);
    context.update(field.as_str().as_bytes());
    context.update(&[0]);
    if field == FieldKind::Name {
        context.update(canonical.to_lowercase().as_bytes());
    } else {
        context.update(canonical.as_bytes());
    }
    let mut digest = [0u8; 32];
    digest.copy_from_slice(context.sign().as_ref());
    digest
}

/// Opens one sealed value and parses it back; any failure is an integrity error for the
/// subject, never garbage.
pub fn open_value(region: &RegionId, key: &DataKey, value: &SealedValue) -> Result<FieldValue, ServiceError> {
    let integrity = |detail: String| ServiceError::Integrity { subject: value.subject.clone(), detail };
    let aad = ValueAad { region, subject: &value.subject, field: value.field, value_id: &value.value_id };
    let plain = seal::open(key, &aad, &value.sealed)
        .map_err(|error| integrity(format!("{} value {}: {error}", value.field, hex_of(&value.value_id))))?;
    let text = String::from_utf8(plain).map_err(|_| integrity(format!("{} value is not UTF-8", value.field)))?;
    // The parse error quotes its input, which here is a decrypted value: keep it out of the
    // error, which is logged.
    FieldValue::parse(value.field, &text).map_err(|_| integrity(format!("{} value {} does not parse", value.field, hex_of(&value.value_id))))
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Moves every data key of `group` to a new key-encryption key version and destroys the older
/// versions. Returns how many keys were re-wrapped. The caller holds the region's writer lock.
async fn rotate_group(vault: &RegionVault, group: ShredGroup) -> Result<u64, ServiceError> {
    let provider = Arc::clone(&vault.keys);
    let new_version = blocking(move || provider.rotate(group)).await??;
    complete_rotation(vault, group, new_version).await
}

/// Re-wraps every data key of `group` older than `new_version` under it, then destroys the
/// older key-encryption key versions. The caller holds the region's write lock.
async fn complete_rotation(vault: &RegionVault, group: ShredGroup, new_version: KekVersion) -> Result<u64, ServiceError> {
    let old = vault.store.keys_wrapped_before(group.as_u16(), new_version.0).await?;
    let provider = Arc::clone(&vault.keys);
    let rewraps = blocking(move || -> Result<Vec<Rewrap>, ServiceError> {
        old.into_iter()
            .map(|stored| {
                let key = provider.unwrap(&stored.subject, &wrapped_of(&stored)?)?;
                let wrapped = provider.wrap(group, &stored.subject, &key)?;
                assert_eq!(wrapped.version, new_version, "wrap must use the version just rotated to");
                Ok(Rewrap {
                    previous_version: stored.version,
                    key: StoredKey { subject: stored.subject, group: group.as_u16(), version: new_version.0, wrapped: wrapped.bytes },
                })
            })
            .collect()
    })
    .await??;
    let mut count = 0;
    for chunk in rewraps.chunks(store::WRITE_BATCH_ROWS_MAX) {
        count += vault.store.rewrap_keys(chunk).await?;
    }
    // INVARIANT: a key-encryption key version is destroyed only when no stored data key is
    // wrapped under it; otherwise that subject's values would be lost with it.
    let left = vault.store.keys_wrapped_before(group.as_u16(), new_version.0).await?;
    if !left.is_empty() {
        return Err(ServiceError::Internal(format!(
            "{} data keys of shred group {} are still under an old key version; not destroying it",
            left.len(),
            group.as_u16()
        )));
    }
    let provider = Arc::clone(&vault.keys);
    blocking(move || provider.destroy_before(group, new_version)).await??;
    Ok(count)
}
