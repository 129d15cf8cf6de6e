//! One region's access log as the node runs it: the sequencer (the one writer), the
//! checkpointer (signs on demand, and periodically so that every acknowledged entry is
//! covered within the checkpoint interval), and the reads the tile and proof endpoints
//! serve from the region's store (full tiles for proofs through a bounded cache).
//!
//! The server only serves what the store holds: clients check every tile against the
//! signed root (tlog-tiles), and every proof against a checkpoint they verified, so a read
//! here trusts nothing and promises nothing beyond "these are the stored bytes".
//!
//! Ownership of the periodic checkpoint task: the [`RegionLog`] owns it. It is spawned by
//! [`RegionLog::start`] when given an interval (as [`crate::open_deployment`] does, from
//! `checkpoint_interval_ms`) and aborted when the `RegionLog` (so the [`crate::Vault`]) is
//! dropped.

use std::sync::Arc;
use std::time::Duration;

use model::RegionId;
use sequencer::{Checkpointer, SALT_BYTES, Sequencer, StoredHashError, StoredHashes, TileCache, parse_salted_entry, salted_entry};
use store::LogStore;
use tlog::{
    EntryBundleId, Hash, LeafIndex, Subtree, TileId, TreeSize, encode_bundle, subtrees_for_consistency_proof,
    subtrees_for_inclusion_proof,
};
use tokio::task::JoinHandle;

use crate::ServiceError;

/// What an appender gets once its entry is durable: which log, where, and its leaf hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReceipt {
    pub origin: String,
    pub index: LeafIndex,
    pub leaf_hash: Hash,
    /// The entry as logged: salt, then the canonical bytes.
    pub entry: Vec<u8>,
}

/// The origin line (and signing key name) of a region's log.
pub fn log_origin(host: &str, region: &RegionId) -> String {
    format!("{host}/custos/{region}")
}

/// One served region's log.
pub struct RegionLog {
    region: RegionId,
    store: Arc<dyn LogStore>,
    sequencer: Sequencer,
    checkpointer: Arc<Checkpointer>,
    /// Full tiles with their interior nodes, shared with the checkpointer: every proof
    /// this log builds (endpoints, receipts, consistency before signing) reads through it.
    tiles: Arc<TileCache>,
    periodic: Option<JoinHandle<()>>,
    /// Witnesses whose cosignatures are accepted, and how many make a checkpoint witnessed.
    witnesses: Vec<tlog::CosignatureVerifier>,
    quorum: usize,
    /// Which entries name which subject (the same database as the log); absent on logs
    /// that serve no subject reports.
    subject_index: Option<Arc<dyn store::SubjectIndexStore>>,
}

/// Where a region's latest checkpoint stands with its witnesses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Witnessing {
    pub size: u64,
    /// Names of the configured witnesses whose cosignature of this checkpoint is held.
    pub cosigners: Vec<String>,
    pub quorum: usize,
    /// Whether at least `quorum` configured witnesses cosigned it.
    pub witnessed: bool,
}

impl std::fmt::Debug for RegionLog {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("RegionLog")
            .field("region", &self.region)
            .field("origin", &self.checkpointer.origin())
            .finish_non_exhaustive()
    }
}

impl Drop for RegionLog {
    fn drop(&mut self) {
        if let Some(task) = self.periodic.take() {
            task.abort();
        }
    }
}

/// A region's latest signed checkpoint, read and parsed once.
#[derive(Debug, Clone)]
pub struct SignedCheckpoint {
    /// The signed note as served (`/log/{region}/checkpoint`).
    pub text: String,
    pub note: tlog::Note,
    /// Its tree size.
    pub size: u64,
}

impl RegionLog {
    /// Starts the sequencer over `store`, signs the current tree once (so a checkpoint is
    /// always published), and with `checkpoint_interval` spawns the periodic signer.
    pub async fn start(
        region: RegionId,
        store: Arc<dyn LogStore>,
        origin: &str,
        seed: &[u8; 32],
        checkpoint_interval: Option<Duration>,
    ) -> Result<RegionLog, ServiceError> {
        let internal = |message: String| ServiceError::Internal(format!("log of region {region}: {message}"));
        let sequencer = Sequencer::start_for(Arc::clone(&store), region.as_str()).await.map_err(|error| internal(error.to_string()))?;
        let checkpointer = Arc::new(
            Checkpointer::new(Arc::clone(&store), origin, seed)
                .map_err(|error| internal(error.to_string()))?
                .tracking(sequencer.coverage()),
        );
        let tiles = checkpointer.tile_cache();
        checkpointer.sign_now().await.map_err(|error| internal(error.to_string()))?;
        let periodic = checkpoint_interval.map(|interval| Arc::clone(&checkpointer).spawn_periodic(interval));
        Ok(RegionLog { region, store, sequencer, checkpointer, tiles, periodic, witnesses: Vec::new(), quorum: 0, subject_index: None })
    }

    /// Keeps the per-subject access index of this log in `index` (see
    /// [`RegionLog::index_subjects_to`]).
    pub fn with_subject_index(mut self, index: Arc<dyn store::SubjectIndexStore>) -> RegionLog {
        self.subject_index = Some(index);
        self
    }

    /// The per-subject access index, when this log keeps one.
    pub fn subject_index(&self) -> Result<&Arc<dyn store::SubjectIndexStore>, ServiceError> {
        self.subject_index.as_ref().ok_or_else(|| ServiceError::Log(format!("region {} keeps no subject index", self.region)))
    }

    /// Accepts cosignatures from `witnesses` (tlog-cosignature/v1 vkeys, already parsed);
    /// a checkpoint is reported witnessed once `quorum` of them cosigned it.
    pub fn with_witnesses(mut self, witnesses: Vec<tlog::CosignatureVerifier>, quorum: usize) -> RegionLog {
        self.witnesses = witnesses;
        self.quorum = quorum;
        self
    }

    /// Stores the cosignatures a witness sent: `note` is the log's checkpoint with the
    /// witness's signature lines added. The checkpoint text must be exactly that of a
    /// checkpoint this log signed; each line from a configured witness must verify (one that
    /// does not rejects the whole submission); lines from other keys are ignored. Returns
    /// the names of the witnesses whose cosignatures were stored.
    pub async fn add_cosignatures(&self, note: &[u8]) -> Result<Vec<String>, ServiceError> {
        let refused = |message: String| ServiceError::InvalidRequest { field: "cosignature".to_owned(), message };
        let note = tlog::Note::parse(note).map_err(|error| refused(format!("not a signed note: {error}")))?;
        let checkpoint = tlog::Checkpoint::parse(note.text()).map_err(|error| refused(format!("not a checkpoint: {error}")))?;
        let size = checkpoint.size();
        let stored = self.store.checkpoint_at(size).await?.ok_or_else(|| refused(format!("this log signed no checkpoint of size {size}")))?;
        let stored_note = tlog::Note::parse(stored.note.as_bytes()).map_err(|error| ServiceError::Log(format!("stored checkpoint: {error}")))?;
        if stored_note.text() != note.text() {
            return Err(refused(format!("the checkpoint text differs from the one this log signed at size {size}")));
        }
        // Verified before any await: the verifier references are not Send.
        let verified: Vec<(String, String)> = {
            let verifiers: Vec<&dyn tlog::NoteVerifier> = self.witnesses.iter().map(|witness| witness as &dyn tlog::NoteVerifier).collect();
            let verified = note.verify_known(&verifiers).map_err(|error| refused(format!("a witness cosignature does not verify: {error}")))?;
            verified.into_iter().map(|signature| (signature.name().as_str().to_owned(), signature.to_line())).collect()
        };
        if verified.is_empty() {
            return Err(refused("no cosignature from a configured witness".to_owned()));
        }
        let mut accepted = Vec::with_capacity(verified.len());
        for (witness, line) in verified {
            self.store.save_cosignature(&store::StoredCosignature { size, witness: witness.clone(), line }).await?;
            accepted.push(witness);
        }
        Ok(accepted)
    }

    /// The latest checkpoint's standing with the configured witnesses.
    pub async fn witnessing(&self) -> Result<Witnessing, ServiceError> {
        let latest = self.store.latest_checkpoint().await?.ok_or_else(|| ServiceError::Log("no checkpoint has been signed".to_owned()))?;
        let cosigners: Vec<String> = self.store.cosignatures(latest.size).await?.into_iter().map(|cosignature| cosignature.witness).collect();
        Ok(Witnessing { size: latest.size.0, witnessed: cosigners.len() >= self.quorum, quorum: self.quorum, cosigners })
    }

    pub fn region(&self) -> &RegionId {
        &self.region
    }

    pub fn origin(&self) -> &str {
        self.checkpointer.origin()
    }

    /// The log's verifier key (`<name>+<key id>+<base64 key>`).
    pub fn verifier_key(&self) -> String {
        self.checkpointer.verifier().to_vkey()
    }

    /// Appends `canonical` under a fresh 32-byte salt; returns once it is durable.
    pub async fn append(&self, canonical: &[u8]) -> Result<LogReceipt, ServiceError> {
        let mut salt = [0u8; SALT_BYTES];
        aws_lc_rs::rand::fill(&mut salt).map_err(|_| ServiceError::Internal("system random failed".to_owned()))?;
        let entry = salted_entry(canonical, salt).map_err(|error| ServiceError::LogEntryRejected(error.to_string()))?;
        let receipt = self.sequencer.append(entry.clone()).await.map_err(|error| ServiceError::Log(error.to_string()))?;
        Ok(LogReceipt { origin: self.origin().to_owned(), index: receipt.index, leaf_hash: receipt.leaf_hash, entry })
    }

    /// How many entries are durable in the log (sequenced, whether or not a checkpoint covers
    /// them yet).
    pub async fn size(&self) -> Result<u64, ServiceError> {
        Ok(self.store.log_state().await?.size.0)
    }

    /// The canonical decision bytes of entries `start..end` (salts removed), in index order.
    /// `end` beyond [`RegionLog::size`] is an error naming the range.
    pub async fn canonical_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, ServiceError> {
        let entries = self.store.log_entries(start, end).await?;
        if entries.len() as u64 != end.saturating_sub(start) {
            return Err(ServiceError::Log(format!("entries {start}..{end} of region {} are not all stored", self.region)));
        }
        entries
            .iter()
            .enumerate()
            .map(|(offset, entry)| {
                parse_salted_entry(entry)
                    .map(|(_salt, canonical)| canonical.to_vec())
                    .map_err(|error| ServiceError::Log(format!("entry {} of region {}: {error}", start + offset as u64, self.region)))
            })
            .collect()
    }

    /// The entry at `index` as the log holds it (salt and canonical bytes: what its leaf hash
    /// covers), or `None` beyond the log's size.
    pub async fn stored_entry(&self, index: u64) -> Result<Option<Vec<u8>>, ServiceError> {
        let Some(end) = index.checked_add(1) else { return Ok(None) };
        Ok(self.store.log_entries(index, end).await?.into_iter().next())
    }

    /// Signs the current tree now and returns the note text.
    pub async fn sign_now(&self) -> Result<String, ServiceError> {
        let signed = self.checkpointer.sign_now().await.map_err(|error| ServiceError::Log(error.to_string()))?;
        note_text(signed.note.to_bytes())
    }

    /// The latest signed checkpoint note, as published: the log's signature, then the
    /// witnesses' cosignatures of it.
    pub async fn checkpoint(&self) -> Result<String, ServiceError> {
        match self.store.latest_checkpoint().await? {
            Some(stored) => {
                let mut note = stored.note;
                for cosignature in self.store.cosignatures(stored.size).await? {
                    note.push_str(&cosignature.line);
                }
                Ok(note)
            }
            // `start` signs once, so this only happens if the store lost the checkpoint.
            None => Err(ServiceError::Log("no checkpoint has been signed".to_owned())),
        }
    }

    /// The latest signed checkpoint (as [`RegionLog::checkpoint`]), parsed once: its text,
    /// its note and its tree size, what a proof against it may cover.
    pub async fn signed_checkpoint(&self) -> Result<SignedCheckpoint, ServiceError> {
        let text = self.checkpoint().await?;
        let note = tlog::Note::parse(text.as_bytes()).map_err(|error| ServiceError::Log(format!("stored checkpoint: {error}")))?;
        let checkpoint = tlog::Checkpoint::parse(note.text()).map_err(|error| ServiceError::Log(format!("stored checkpoint: {error}")))?;
        let size = checkpoint.size().0;
        Ok(SignedCheckpoint { text, note, size })
    }

    /// The bytes of a hash tile, or `None` beyond the stored tree.
    pub async fn tile(&self, tile: TileId) -> Result<Option<Vec<u8>>, ServiceError> {
        Ok(self.tiles.tile_bytes(self.store.as_ref(), tile).await?)
    }

    /// An entry bundle, or `None` when the stored tree does not reach its last entry.
    pub async fn entry_bundle(&self, bundle: EntryBundleId) -> Result<Option<Vec<u8>>, ServiceError> {
        let Some(first) = bundle.first_entry() else { return Ok(None) };
        let Some(end) = first.checked_add(u64::from(bundle.width())) else { return Ok(None) };
        // One read: entries, tiles and state are written in one transaction, so a bundle
        // whose entries are all there lies within the stored tree. Only a short read needs
        // the state, to tell "beyond the tree" from entries missing inside it.
        let entries = self.store.log_entries(first, end).await?;
        if entries.len() as u64 != end - first {
            if end > self.store.log_state().await?.size.0 {
                return Ok(None);
            }
            return Err(ServiceError::Log(format!("entries {first}..{end} are not all stored")));
        }
        let bytes = encode_bundle(&entries).map_err(|error| ServiceError::Log(error.to_string()))?;
        Ok(Some(bytes))
    }

    /// A C2SP tlog-proof for the entry at `index`: its inclusion proof in the latest signed
    /// checkpoint, with that checkpoint. An index the latest checkpoint does not cover yet is
    /// an invalid request (the next signing covers it).
    pub async fn tlog_proof(&self, index: u64) -> Result<Vec<u8>, ServiceError> {
        let SignedCheckpoint { note, size, .. } = self.signed_checkpoint().await?;
        if index >= size {
            return Err(ServiceError::InvalidProofRequest(format!(
                "index {index} is not covered by the latest signed checkpoint (size {size}) yet"
            )));
        }
        let proof = self.inclusion_proof(index, size).await?;
        let proof = tlog::TlogProof::new(None, LeafIndex(index), proof, note).map_err(|error| ServiceError::Log(error.to_string()))?;
        Ok(proof.to_bytes())
    }

    /// The inclusion proof of leaf `index` in the tree of `size` leaves.
    pub async fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, ServiceError> {
        self.check_size(size).await?;
        if index >= size {
            return Err(ServiceError::InvalidProofRequest(format!("index {index} is not below tree size {size}")));
        }
        let (index, size) = (LeafIndex(index), TreeSize(size));
        let reader = self.prefetch(size, subtrees_for_inclusion_proof(index, size)).await?;
        tlog::inclusion_proof(&reader, index, size).map_err(|error| ServiceError::Log(error.to_string()))
    }

    /// The consistency proof from the tree of `old` leaves to the tree of `new` leaves.
    pub async fn consistency_proof(&self, old: u64, new: u64) -> Result<Vec<Hash>, ServiceError> {
        self.check_size(new).await?;
        if old > new {
            return Err(ServiceError::InvalidProofRequest(format!("old size {old} exceeds new size {new}")));
        }
        let (old, new) = (TreeSize(old), TreeSize(new));
        let reader = self.prefetch(new, subtrees_for_consistency_proof(old, new)).await?;
        tlog::consistency_proof(&reader, old, new).map_err(|error| ServiceError::Log(error.to_string()))
    }

    async fn check_size(&self, size: u64) -> Result<(), ServiceError> {
        let stored = self.store.log_state().await?.size.0;
        if size > stored {
            return Err(ServiceError::InvalidProofRequest(format!("tree size {size} exceeds the log's {stored} entries")));
        }
        Ok(())
    }

    /// Reads the hashes of `subtrees` (complete subtrees of the tree of `size` leaves) from
    /// the stored tiles, full tiles through the log's [`TileCache`].
    async fn prefetch(&self, size: TreeSize, subtrees: Vec<Subtree>) -> Result<StoredHashes, ServiceError> {
        self.tiles.read(self.store.as_ref(), size, &subtrees).await.map_err(|error| match error {
            StoredHashError::Store(error) => error.into(),
            missing => ServiceError::Log(missing.to_string()),
        })
    }
}

fn note_text(bytes: Vec<u8>) -> Result<String, ServiceError> {
    String::from_utf8(bytes).map_err(|_| ServiceError::Internal("a signed note is not UTF-8".to_owned()))
}
