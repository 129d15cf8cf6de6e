//! Scenarios shared by the SQLite and PostgreSQL tests: each takes a fresh log store and
//! checks the sequencer and checkpointer against tlog's own computations.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sequencer::{AppendError, CheckpointError, Checkpointer, Receipt, Sequencer, StoredHashes, TileCache};
use store::{LOG_BATCH_ENTRIES_MAX, LogBatch, LogState, LogStore, StoreError, StoredCheckpoint, StoredCosignature};
use tlog::{
    Checkpoint, CompactRange, ENTRY_BYTES_MAX, Hash, LeafIndex, Note, TileId, TreeSize,
    consistency_proof, encode_tile, inclusion_proof, leaf_hash, root_from_leaves, subtrees_for_consistency_proof,
    subtrees_for_inclusion_proof, tile_hashes, tiles_for_size, verify_consistency, verify_inclusion,
};

pub const ORIGIN: &str = "custos.example/custos/eu";
pub const SECRET_KEY: [u8; 32] = [7; 32];

/// Appends `entries` concurrently, one task each, and returns the outcomes in input order.
pub async fn append_all(
    sequencer: &Arc<Sequencer>,
    entries: Vec<Vec<u8>>,
) -> Vec<Result<Receipt, AppendError>> {
    let handles: Vec<_> = entries
        .into_iter()
        .map(|entry| {
            let sequencer = Arc::clone(sequencer);
            tokio::spawn(async move { sequencer.append(entry).await })
        })
        .collect();
    let mut results = Vec::new();
    for handle in handles {
        results.push(handle.await.expect("append task"));
    }
    results
}

pub fn entries(tag: &str, count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|index| format!("{tag} {index}").into_bytes())
        .collect()
}

/// Reads the whole log back and checks state, root and every tile against tlog; returns
/// the entries.
pub async fn verify_log(store: &dyn LogStore, size: u64) -> Vec<Vec<u8>> {
    let state = store.log_state().await.expect("state");
    assert_eq!(state.size, TreeSize(size), "stored size");
    let mut all = Vec::new();
    while (all.len() as u64) < size {
        let start = all.len() as u64;
        let chunk = store
            .log_entries(start, (start + LOG_BATCH_ENTRIES_MAX as u64).min(size))
            .await
            .expect("entries");
        assert!(!chunk.is_empty(), "entries missing from {start}");
        all.extend(chunk);
    }
    assert_eq!(all.len() as u64, size);
    let leaves: Vec<Hash> = all.iter().map(|entry| leaf_hash(entry)).collect();
    let range = CompactRange::from_parts(state.size, state.frontier).expect("frontier");
    assert_eq!(
        range.root(),
        root_from_leaves(&leaves),
        "stored frontier root"
    );
    for tile in tiles_for_size(TreeSize(size)) {
        let expected =
            encode_tile(&tile_hashes(&leaves[..], TreeSize(size), tile).expect("tile hashes"));
        assert_eq!(
            sequencer::tile_bytes(store, tile).await.expect("tile"),
            Some(expected),
            "tile {tile}"
        );
        if tile.level() == 0 && tile.is_partial() {
            // Read back from the entries, never written.
            assert_eq!(store.log_tile(tile).await.expect("tile"), None, "stored tile {tile}");
        }
    }
    all
}

/// 10,000 appends from 50 tasks: every index once, every entry where its receipt says.
pub async fn concurrent_appends_are_sequenced_once(store: Arc<dyn LogStore>) {
    const TASKS: usize = 50;
    const PER_TASK: usize = 200;
    let sequencer = Arc::new(Sequencer::start(Arc::clone(&store)).await.expect("start"));
    let handles: Vec<_> = (0..TASKS)
        .map(|task| {
            let sequencer = Arc::clone(&sequencer);
            tokio::spawn(async move {
                let mut receipts = Vec::new();
                for index in 0..PER_TASK {
                    let entry = format!("task {task} entry {index}").into_bytes();
                    let receipt = sequencer.append(entry.clone()).await.expect("append");
                    receipts.push((receipt, entry));
                }
                receipts
            })
        })
        .collect();
    let mut receipts = Vec::new();
    for handle in handles {
        receipts.extend(handle.await.expect("task"));
    }
    receipts.sort_by_key(|(receipt, _)| receipt.index);
    let indexes: Vec<u64> = receipts
        .iter()
        .map(|(receipt, _)| receipt.index.0)
        .collect();
    assert_eq!(
        indexes,
        (0..(TASKS * PER_TASK) as u64).collect::<Vec<_>>(),
        "each index exactly once"
    );
    let stored = verify_log(store.as_ref(), (TASKS * PER_TASK) as u64).await;
    for (receipt, entry) in &receipts {
        assert_eq!(
            &stored[receipt.index.0 as usize], entry,
            "entry at {}",
            receipt.index
        );
        assert_eq!(receipt.leaf_hash, leaf_hash(entry));
    }
    Arc::try_unwrap(sequencer)
        .expect("sole owner")
        .close()
        .await;
}

/// The size limit is checked before queueing; the largest entry is accepted.
pub async fn entry_size_limit(store: Arc<dyn LogStore>) {
    let sequencer = Sequencer::start(Arc::clone(&store)).await.expect("start");
    match sequencer.append(vec![0; ENTRY_BYTES_MAX + 1]).await {
        Err(AppendError::EntryTooLarge { bytes }) => assert_eq!(bytes, ENTRY_BYTES_MAX + 1),
        other => panic!("expected EntryTooLarge, got {other:?}"),
    }
    assert_eq!(
        store.log_state().await.expect("state").size,
        TreeSize(0),
        "nothing logged"
    );
    let receipt = sequencer
        .append(vec![1; ENTRY_BYTES_MAX])
        .await
        .expect("largest entry");
    assert_eq!(receipt.index, LeafIndex(0));
    sequencer.close().await;
    verify_log(store.as_ref(), 1).await;
}

/// A store that fails on demand, and can pretend to hold another tree.
pub struct FaultyStore {
    pub inner: Arc<dyn LogStore>,
    pub failing_appends: AtomicBool,
    pub fail_after_commit: AtomicBool,
    pub failing_saves: AtomicBool,
    pub reported_state: Mutex<Option<LogState>>,
    pub appends_attempted: AtomicUsize,
    /// Tiles read through [`LogStore::log_tile`].
    pub tiles_read: AtomicUsize,
}

impl FaultyStore {
    pub fn new(inner: Arc<dyn LogStore>) -> Arc<FaultyStore> {
        Arc::new(FaultyStore {
            inner,
            failing_appends: AtomicBool::new(false),
            fail_after_commit: AtomicBool::new(false),
            failing_saves: AtomicBool::new(false),
            reported_state: Mutex::new(None),
            appends_attempted: AtomicUsize::new(0),
            tiles_read: AtomicUsize::new(0),
        })
    }
}

fn injected() -> StoreError {
    StoreError::Io("injected failure".to_owned())
}

#[async_trait::async_trait]
impl LogStore for FaultyStore {
    async fn append_batch(&self, batch: &LogBatch) -> Result<(), StoreError> {
        self.appends_attempted.fetch_add(1, Ordering::SeqCst);
        if self.failing_appends.load(Ordering::SeqCst) {
            return Err(injected());
        }
        if self.fail_after_commit.swap(false, Ordering::SeqCst) {
            self.inner.append_batch(batch).await?;
            return Err(injected());
        }
        self.inner.append_batch(batch).await
    }

    async fn log_state(&self) -> Result<LogState, StoreError> {
        let reported = self.reported_state.lock().expect("lock").clone();
        match reported {
            Some(state) => Ok(state),
            None => self.inner.log_state().await,
        }
    }

    async fn log_entries(&self, start: u64, end: u64) -> Result<Vec<Vec<u8>>, StoreError> {
        self.inner.log_entries(start, end).await
    }

    async fn log_tile(&self, tile: TileId) -> Result<Option<Vec<u8>>, StoreError> {
        self.tiles_read.fetch_add(1, Ordering::SeqCst);
        self.inner.log_tile(tile).await
    }

    async fn latest_checkpoint(&self) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.latest_checkpoint().await
    }

    async fn save_checkpoint(&self, checkpoint: &StoredCheckpoint) -> Result<(), StoreError> {
        if self.failing_saves.load(Ordering::SeqCst) {
            return Err(injected());
        }
        self.inner.save_checkpoint(checkpoint).await
    }

    async fn checkpoint_at(&self, size: TreeSize) -> Result<Option<StoredCheckpoint>, StoreError> {
        self.inner.checkpoint_at(size).await
    }

    async fn save_cosignature(&self, cosignature: &StoredCosignature) -> Result<(), StoreError> {
        self.inner.save_cosignature(cosignature).await
    }

    async fn cosignatures(&self, size: TreeSize) -> Result<Vec<StoredCosignature>, StoreError> {
        self.inner.cosignatures(size).await
    }
}

/// A failing write acknowledges no one; the sequencer reloads and carries on, also when
/// the failed write had in fact committed.
pub async fn failed_batches_acknowledge_nothing(inner: Arc<dyn LogStore>) {
    let faulty = FaultyStore::new(Arc::clone(&inner));
    let sequencer = Arc::new(Sequencer::start(faulty.clone()).await.expect("start"));
    for (position, result) in append_all(&sequencer, entries("before", 5))
        .await
        .into_iter()
        .enumerate()
    {
        assert!(result.is_ok(), "append {position}: {result:?}");
    }
    faulty.failing_appends.store(true, Ordering::SeqCst);
    let attempts_before = faulty.appends_attempted.load(Ordering::SeqCst);
    let failed = append_all(&sequencer, entries("failing", 100)).await;
    for result in &failed {
        assert!(
            matches!(result, Err(AppendError::Store(_))),
            "expected a store error, got {result:?}"
        );
    }
    assert!(
        faulty.appends_attempted.load(Ordering::SeqCst) > attempts_before,
        "the store was tried"
    );
    assert_eq!(inner.log_state().await.expect("state").size, TreeSize(5));
    faulty.failing_appends.store(false, Ordering::SeqCst);
    let receipt = sequencer
        .append(b"after".to_vec())
        .await
        .expect("append after failure");
    assert_eq!(receipt.index, LeafIndex(5), "resumes at the stored size");

    // The write commits but reports failure: not acknowledged, yet the sequencer must
    // not reuse its index.
    faulty.fail_after_commit.store(true, Ordering::SeqCst);
    assert!(sequencer.append(b"ambiguous".to_vec()).await.is_err());
    let receipt = sequencer
        .append(b"next".to_vec())
        .await
        .expect("append after ambiguous commit");
    assert_eq!(
        receipt.index,
        LeafIndex(7),
        "the committed batch is not overwritten"
    );
    Arc::try_unwrap(sequencer)
        .expect("sole owner")
        .close()
        .await;
    let stored = verify_log(inner.as_ref(), 8).await;
    assert_eq!(stored[5], b"after".to_vec());
    assert_eq!(stored[6], b"ambiguous".to_vec());
    assert_eq!(stored[7], b"next".to_vec());
}

/// After the store breaks (backend-specific), every appender in flight gets an error.
pub async fn appenders_fail_on_broken_store(sequencer: &Arc<Sequencer>, count: usize) {
    let results = append_all(sequencer, entries("broken", count)).await;
    let acknowledged = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(
        acknowledged,
        0,
        "no appender is acknowledged: {:?}",
        results.iter().find(|result| result.is_ok())
    );
}

fn parse_note(signed: &sequencer::SignedCheckpoint, checkpointer: &Checkpointer) -> Checkpoint {
    let note = Note::parse(&signed.note.to_bytes()).expect("note parses");
    let verifier = checkpointer.verifier();
    note.verify(&[&verifier]).expect("signature verifies");
    let checkpoint = Checkpoint::parse(note.text()).expect("checkpoint parses");
    assert_eq!(checkpoint, signed.checkpoint);
    assert_eq!(checkpoint.origin(), ORIGIN);
    checkpoint
}

/// Signs at many sizes (each checked for consistency against the previous one through
/// stored tiles); each note verifies and is persisted before it is returned.
pub async fn checkpoints_are_signed_and_persisted(store: Arc<dyn LogStore>) {
    let sequencer = Arc::new(Sequencer::start(Arc::clone(&store)).await.expect("start"));
    let checkpointer =
        Checkpointer::new(Arc::clone(&store), ORIGIN, &SECRET_KEY).expect("checkpointer");
    let mut all: Vec<Vec<u8>> = Vec::new();
    for target in [0usize, 1, 2, 3, 7, 8, 255, 256, 257, 1000, 1025, 66_000] {
        let added = entries(&format!("up to {target}"), target - all.len());
        for result in append_all(&sequencer, added.clone()).await {
            result.expect("append");
        }
        all.extend(added);
        // Concurrent appends land in any order: compare as sets, then hash the stored order.
        let stored = verify_log(store.as_ref(), target as u64).await;
        let (mut sorted_stored, mut sorted_all) = (stored.clone(), all.clone());
        sorted_stored.sort();
        sorted_all.sort();
        assert_eq!(sorted_stored, sorted_all, "stored entries at {target}");
        let signed = checkpointer.sign_now().await.expect("sign");
        let checkpoint = parse_note(&signed, &checkpointer);
        assert_eq!(checkpoint.size(), TreeSize(target as u64));
        let leaves: Vec<Hash> = stored.iter().map(|entry| leaf_hash(entry)).collect();
        assert_eq!(
            checkpoint.root(),
            root_from_leaves(&leaves),
            "root at {target}"
        );
        let stored = store
            .latest_checkpoint()
            .await
            .expect("latest")
            .expect("persisted");
        assert_eq!(
            stored.note.as_bytes(),
            signed.note.to_bytes().as_slice(),
            "persisted as returned"
        );
        assert_eq!(
            (stored.size, stored.root),
            (checkpoint.size(), checkpoint.root())
        );
    }
    // Signing again without new entries signs the same tree.
    let again = checkpointer.sign_now().await.expect("sign again");
    assert_eq!(again.checkpoint.size(), TreeSize(66_000));

    // The periodic task picks up new entries.
    let periodic =
        Arc::new(Checkpointer::new(Arc::clone(&store), ORIGIN, &SECRET_KEY).expect("checkpointer"));
    let handle = periodic.spawn_periodic(Duration::from_millis(20));
    for result in append_all(&sequencer, entries("periodic", 3)).await {
        result.expect("append");
    }
    let mut signed_size = 0;
    for _ in 0..250 {
        signed_size = store
            .latest_checkpoint()
            .await
            .expect("latest")
            .expect("some")
            .size
            .0;
        if signed_size == 66_003 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    handle.abort();
    assert_eq!(signed_size, 66_003, "the periodic task signed the new size");
    Arc::try_unwrap(sequencer)
        .expect("sole owner")
        .close()
        .await;
}

/// A checkpoint the store refuses to persist is not returned.
pub async fn unsaved_checkpoints_are_not_returned(inner: Arc<dyn LogStore>) {
    let faulty = FaultyStore::new(Arc::clone(&inner));
    let sequencer = Arc::new(Sequencer::start(faulty.clone()).await.expect("start"));
    for result in append_all(&sequencer, entries("saved", 4)).await {
        result.expect("append");
    }
    let checkpointer =
        Checkpointer::new(faulty.clone(), ORIGIN, &SECRET_KEY).expect("checkpointer");
    faulty.failing_saves.store(true, Ordering::SeqCst);
    match checkpointer.sign_now().await {
        Err(CheckpointError::Store(_)) => {}
        other => panic!("expected a store error, got {other:?}"),
    }
    assert_eq!(inner.latest_checkpoint().await.expect("latest"), None);
    faulty.failing_saves.store(false, Ordering::SeqCst);
    checkpointer.sign_now().await.expect("sign");
    assert_eq!(
        inner
            .latest_checkpoint()
            .await
            .expect("latest")
            .expect("saved")
            .size,
        TreeSize(4)
    );
    Arc::try_unwrap(sequencer)
        .expect("sole owner")
        .close()
        .await;
}

fn frontier_of(entries: &[Vec<u8>]) -> LogState {
    let mut range = CompactRange::new();
    for entry in entries {
        range.append(leaf_hash(entry));
    }
    LogState {
        size: range.size(),
        frontier: range.hashes().to_vec(),
    }
}

/// A store that reports a smaller or a different tree than the one signed makes signing
/// refuse, and the signed checkpoint stays the anchor.
pub async fn rewound_store_is_refused(inner: Arc<dyn LogStore>) {
    let faulty = FaultyStore::new(Arc::clone(&inner));
    let sequencer = Arc::new(Sequencer::start(faulty.clone()).await.expect("start"));
    let real = entries("real", 600);
    for result in append_all(&sequencer, real[..300].to_vec()).await {
        result.expect("append");
    }
    let checkpointer =
        Checkpointer::new(faulty.clone(), ORIGIN, &SECRET_KEY).expect("checkpointer");
    let anchor = checkpointer.sign_now().await.expect("sign");
    // Appended in order, so that the stored log is exactly `real`.
    for entry in &real[300..] {
        sequencer.append(entry.clone()).await.expect("append");
    }

    let forged = entries("forged", 600);
    let cases: [(&str, LogState); 3] = [
        ("smaller", frontier_of(&real[..200])),
        ("same size, other root", frontier_of(&forged[..300])),
        ("larger, not an extension", frontier_of(&forged)),
    ];
    for (name, state) in cases {
        *faulty.reported_state.lock().expect("lock") = Some(state);
        let result = checkpointer.sign_now().await;
        match (name, &result) {
            (
                "smaller",
                Err(CheckpointError::Rollback {
                    signed: 300,
                    size: 200,
                }),
            ) => {}
            (
                "same size, other root" | "larger, not an extension",
                Err(CheckpointError::Inconsistent { signed: 300, .. }),
            ) => {}
            _ => panic!("{name}: expected a refusal, got {result:?}"),
        }
        let latest = inner
            .latest_checkpoint()
            .await
            .expect("latest")
            .expect("anchor");
        assert_eq!(
            latest.note.as_bytes(),
            anchor.note.to_bytes().as_slice(),
            "{name}: anchor unchanged"
        );
    }
    *faulty.reported_state.lock().expect("lock") = None;
    let signed = checkpointer
        .sign_now()
        .await
        .expect("the real tree is signed");
    assert_eq!(signed.checkpoint.size(), TreeSize(600));
    let leaves: Vec<Hash> = real.iter().map(|entry| leaf_hash(entry)).collect();
    assert_eq!(signed.checkpoint.root(), root_from_leaves(&leaves));
    Arc::try_unwrap(sequencer)
        .expect("sole owner")
        .close()
        .await;
}

fn assert_size_mismatch(result: Result<Receipt, AppendError>) {
    match result {
        Err(AppendError::Store(error)) if matches!(*error, StoreError::LogSizeMismatch { .. }) => {}
        other => panic!("expected a size mismatch, got {other:?}"),
    }
}

/// Two sequencers on one log (a lease gone wrong): the stale one's batch is refused, not
/// written over the other's; after reloading it appends after the other's entries.
pub async fn two_sequencers_never_overwrite(store: Arc<dyn LogStore>) {
    let first = Sequencer::start(Arc::clone(&store)).await.expect("start first");
    let second = Sequencer::start(Arc::clone(&store)).await.expect("start second");
    assert_eq!(first.append(b"first 0".to_vec()).await.expect("append").index, LeafIndex(0));
    assert_size_mismatch(second.append(b"second stale".to_vec()).await);
    assert_eq!(second.append(b"second 1".to_vec()).await.expect("append").index, LeafIndex(1));
    assert_size_mismatch(first.append(b"first stale".to_vec()).await);
    assert_eq!(first.append(b"first 2".to_vec()).await.expect("append").index, LeafIndex(2));
    first.close().await;
    second.close().await;
    let stored = verify_log(store.as_ref(), 3).await;
    assert_eq!(stored, vec![b"first 0".to_vec(), b"second 1".to_vec(), b"first 2".to_vec()]);
}

/// Inclusion and consistency proofs for random sizes and indexes of a 66,000-entry log
/// (full tiles at levels 0 and 1, partial ones on the right edge) are the same through a
/// [`TileCache`] shared by all cases as read uncached from the store, and verify against
/// the root recomputed from the entries. Must run on a multi-threaded runtime.
pub async fn cached_proofs_match_uncached(store: Arc<dyn LogStore>) {
    use proptest::test_runner::{Config, TestRunner};
    const SIZE: u64 = 66_000;
    let sequencer = Arc::new(Sequencer::start(Arc::clone(&store)).await.expect("start"));
    for result in append_all(&sequencer, entries("cached", SIZE as usize)).await {
        result.expect("append");
    }
    let stored = verify_log(store.as_ref(), SIZE).await;
    let leaves: Vec<Hash> = stored.iter().map(|entry| leaf_hash(entry)).collect();
    let cache = TileCache::new();
    let handle = tokio::runtime::Handle::current();
    let mut runner = TestRunner::new(Config { cases: 512, ..Config::default() });
    let strategy = (1..=SIZE, 0..=SIZE, proptest::num::u64::ANY);
    tokio::task::block_in_place(|| {
        runner
            .run(&strategy, |(size, old, index)| {
                let (old, index) = (TreeSize(old.min(size)), LeafIndex(index % size));
                let size = TreeSize(size);
                let root = root_from_leaves(&leaves[..size.0 as usize]);
                handle.block_on(async {
                    let subtrees = subtrees_for_inclusion_proof(index, size);
                    let cached = cache.read(store.as_ref(), size, &subtrees).await.expect("cached");
                    let uncached = StoredHashes::read(store.as_ref(), size, &subtrees).await.expect("uncached");
                    let proof = inclusion_proof(&cached, index, size).expect("cached proof");
                    assert_eq!(proof, inclusion_proof(&uncached, index, size).expect("uncached proof"), "inclusion of {index:?} in {size:?}");
                    verify_inclusion(leaves[index.0 as usize], index, size, &proof, root).expect("inclusion verifies");

                    let subtrees = subtrees_for_consistency_proof(old, size);
                    let cached = cache.read(store.as_ref(), size, &subtrees).await.expect("cached");
                    let uncached = StoredHashes::read(store.as_ref(), size, &subtrees).await.expect("uncached");
                    let proof = consistency_proof(&cached, old, size).expect("cached proof");
                    assert_eq!(proof, consistency_proof(&uncached, old, size).expect("uncached proof"), "consistency {old:?} to {size:?}");
                    let old_root = root_from_leaves(&leaves[..old.0 as usize]);
                    verify_consistency(old, size, old_root, root, &proof).expect("consistency verifies");
                });
                Ok(())
            })
            .expect("cached proofs match");
    });
    // Full tiles were cached (and only those: 257 full tiles exist at size 66,000).
    assert!(!cache.is_empty() && cache.len() <= 257, "cached {} tiles", cache.len());
    Arc::try_unwrap(sequencer).expect("sole owner").close().await;
}

/// A tile that was partial when a proof read it is kept only as the prefix it had: a
/// proof in a tree it covers reads nothing from the store, a proof in a larger tree reads
/// the wider tile, and once the tree grows past it proofs through the same cache see its new
/// hashes, never the old prefix.
pub async fn a_grown_tile_is_never_served_stale(inner: Arc<dyn LogStore>) {
    let faulty = FaultyStore::new(inner);
    let store: Arc<dyn LogStore> = Arc::clone(&faulty) as Arc<dyn LogStore>;
    let tiles_read = || faulty.tiles_read.load(Ordering::SeqCst);
    let sequencer = Arc::new(Sequencer::start(Arc::clone(&store)).await.expect("start"));
    for entry in entries("first", 300) {
        sequencer.append(entry).await.expect("append");
    }
    let cache = TileCache::new();
    // A leaf in the full tile 0/000, whose proof also reads the partial tile 0/001.p/44.
    let (index, small) = (LeafIndex(100), TreeSize(300));
    let first = cache
        .read(store.as_ref(), small, &subtrees_for_inclusion_proof(index, small))
        .await
        .expect("read");
    let before = inclusion_proof(&first, index, small).expect("proof");
    // Tile 0/000 is full and cached; tile 0/001.p/44 is kept as a prefix only.
    assert_eq!((cache.len(), tiles_read()), (1, 2));
    let again = cache.read(store.as_ref(), small, &subtrees_for_inclusion_proof(index, small)).await.expect("read");
    assert_eq!(inclusion_proof(&again, index, small).expect("proof"), before);
    assert_eq!(tiles_read(), 2, "a second proof in the same tree reads no tile");

    // At 400 entries the partial tile is 0/001.p/144: wider than the prefix, so it is read;
    // the proof of leaf 350 also reads the first tile of level 1, 1/000.p/1.
    for entry in entries("middle", 100) {
        sequencer.append(entry).await.expect("append");
    }
    let (middle_index, middle) = (LeafIndex(350), TreeSize(400));
    let middle_leaves: Vec<Hash> = verify_log(store.as_ref(), 400).await.iter().map(|entry| leaf_hash(entry)).collect();
    let reads = tiles_read();
    let hashes = cache.read(store.as_ref(), middle, &subtrees_for_inclusion_proof(middle_index, middle)).await.expect("read");
    let proof = inclusion_proof(&hashes, middle_index, middle).expect("proof");
    verify_inclusion(middle_leaves[350], middle_index, middle, &proof, root_from_leaves(&middle_leaves)).expect("verifies at 400");
    assert_eq!(tiles_read(), reads + 2, "the wider partial tile is read once");
    // The tree of 300 is served from the first 44 hashes of the wider prefix.
    let again = cache.read(store.as_ref(), small, &subtrees_for_inclusion_proof(index, small)).await.expect("read");
    assert_eq!(inclusion_proof(&again, index, small).expect("proof"), before);
    assert_eq!(tiles_read(), reads + 2);

    for entry in entries("second", 200) {
        sequencer.append(entry).await.expect("append");
    }
    let stored = verify_log(store.as_ref(), 600).await;
    let leaves: Vec<Hash> = stored.iter().map(|entry| leaf_hash(entry)).collect();
    let large = TreeSize(600);
    for index in [LeafIndex(0), LeafIndex(290), LeafIndex(299), LeafIndex(300), LeafIndex(511), LeafIndex(599)] {
        let subtrees = subtrees_for_inclusion_proof(index, large);
        let cached = cache.read(store.as_ref(), large, &subtrees).await.expect("cached");
        let proof = inclusion_proof(&cached, index, large).expect("proof");
        verify_inclusion(leaves[index.0 as usize], index, large, &proof, root_from_leaves(&leaves))
            .unwrap_or_else(|error| panic!("leaf {index:?} after growth: {error}"));
        let uncached = StoredHashes::read(store.as_ref(), large, &subtrees).await.expect("uncached");
        assert_eq!(proof, inclusion_proof(&uncached, index, large).expect("uncached proof"));
    }
    // Tile 0/001 is full now and cached too; the old proof is unchanged through it.
    assert_eq!(cache.len(), 2);
    let again = cache
        .read(store.as_ref(), small, &subtrees_for_inclusion_proof(index, small))
        .await
        .expect("read");
    assert_eq!(inclusion_proof(&again, index, small).expect("proof"), before);
    Arc::try_unwrap(sequencer).expect("sole owner").close().await;
}

/// A log an earlier version wrote, which stored its level-0 partial tile at every commit:
/// a sequencer resumes from that row, grows the tile past it and then completes it, and
/// every tile read (the old width, wider ones, the full tile) is the one tlog computes.
pub async fn partial_tiles_an_earlier_version_stored_are_outgrown(store: Arc<dyn LogStore>) {
    let old = entries("earlier version", 100);
    let leaves: Vec<Hash> = old.iter().map(|entry| leaf_hash(entry)).collect();
    let mut range = CompactRange::new();
    range.extend(&leaves);
    let partial = TileId::new(0, 0, 100).expect("tile id");
    store
        .append_batch(&LogBatch {
            first_index: 0,
            entries: old,
            tiles: vec![(partial, encode_tile(&leaves))],
            state: LogState { size: range.size(), frontier: range.hashes().to_vec() },
        })
        .await
        .expect("batch as an earlier version wrote it");
    assert_eq!(sequencer::tile_bytes(store.as_ref(), partial).await.expect("tile"), Some(encode_tile(&leaves)));

    let sequencer = Arc::new(Sequencer::start(Arc::clone(&store)).await.expect("resume from the stored partial tile"));
    for (offset, result) in append_all(&sequencer, entries("this version", 60)).await.into_iter().enumerate() {
        assert_eq!(result.expect("append").index, LeafIndex(100 + offset as u64));
    }
    // 160 entries: the stored row is narrower than the tile now, which is read from the entries.
    verify_log(store.as_ref(), 160).await;
    for result in append_all(&sequencer, entries("past the tile", 200)).await {
        result.expect("append");
    }
    Arc::try_unwrap(sequencer).expect("sole owner").close().await;
    let all = verify_log(store.as_ref(), 360).await;
    let leaves: Vec<Hash> = all.iter().map(|entry| leaf_hash(entry)).collect();
    for width in [50, 100, 160, 256] {
        let tile = TileId::new(0, 0, width).expect("tile id");
        let expected = encode_tile(&tile_hashes(&leaves, TreeSize(360), TileId::new(0, 0, 256).expect("full")).expect("hashes")[..usize::from(width)]);
        assert_eq!(sequencer::tile_bytes(store.as_ref(), tile).await.expect("tile"), Some(expected), "tile 0/000 width {width}");
    }

    // As the tile endpoint serves it: read back from the entries once, then from the edge
    // prefix kept, for any width it covers; beyond the log, nothing.
    let counted = FaultyStore::new(Arc::clone(&store));
    let cache = TileCache::new();
    let tile = TileId::new(0, 1, 104).expect("tile id");
    let expected = encode_tile(&tile_hashes(&leaves, TreeSize(360), tile).expect("hashes"));
    assert_eq!(cache.tile_bytes(counted.as_ref(), tile).await.expect("tile"), Some(expected.clone()));
    assert_eq!(counted.tiles_read.load(Ordering::SeqCst), 1);
    assert_eq!(cache.tile_bytes(counted.as_ref(), tile).await.expect("tile"), Some(expected.clone()));
    let narrower = TileId::new(0, 1, 10).expect("tile id");
    assert_eq!(cache.tile_bytes(counted.as_ref(), narrower).await.expect("tile"), Some(expected[..10 * 32].to_vec()));
    assert_eq!(counted.tiles_read.load(Ordering::SeqCst), 1, "served from the prefix kept");
    let beyond = TileId::new(0, 1, 105).expect("tile id");
    assert_eq!(cache.tile_bytes(counted.as_ref(), beyond).await.expect("tile"), None);
}
