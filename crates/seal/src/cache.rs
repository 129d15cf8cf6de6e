//! A bounded, thread-safe cache of unwrapped data keys, so that reading a subject twice does
//! not cost two calls to the key provider (an HSM may do only hundreds of unwraps a second).
//!
//! Keys leave the cache after an age limit even when in use, so that an unwrapped key does not
//! stay in memory indefinitely, and the least recently used key goes when the cache is full.
//! Time is passed in, so tests are deterministic.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use model::{RegionId, SubjectId};

use crate::DataKey;

/// Default bound on cached keys: 100,000 keys of 32 bytes plus bookkeeping is a few tens of
/// megabytes at most.
pub const DATA_KEY_CACHE_ENTRIES_MAX: usize = 100_000;
/// Default time a key stays cached after it was unwrapped.
pub const DATA_KEY_CACHE_AGE_MAX: Duration = Duration::from_secs(5 * 60);

/// Unwrapped data keys by (region, subject).
///
/// One mutex guards the map: the critical sections are a hash lookup and a small ordered-map
/// update, far cheaper than the unwrap the cache saves, so sharding is not worth its
/// approximate bounds.
pub struct DataKeyCache {
    entries_max: usize,
    age_max: Duration,
    state: Mutex<CacheState>,
}

type CacheKey = (RegionId, SubjectId);

#[derive(Default)]
struct CacheState {
    entries: HashMap<CacheKey, CacheEntry>,
    /// Use stamps in order: the first is the least recently used entry.
    // INVARIANT: holds exactly one stamp per entry, the entry's `last_used`.
    recency: BTreeMap<u64, CacheKey>,
    next_stamp: u64,
}

struct CacheEntry {
    key: Arc<DataKey>,
    inserted_at: Instant,
    last_used: u64,
}

impl DataKeyCache {
    /// A cache holding at most `entries_max` keys, each for at most `age_max` after insertion.
    /// `entries_max == 0` disables caching.
    pub fn new(entries_max: usize, age_max: Duration) -> DataKeyCache {
        DataKeyCache { entries_max, age_max, state: Mutex::new(CacheState::default()) }
    }

    /// The key of `subject` in `region`, unless absent or older than the age limit (then it is
    /// removed).
    pub fn get(&self, region: &RegionId, subject: &SubjectId, now: Instant) -> Option<Arc<DataKey>> {
        let mut state = self.lock();
        let cache_key = (region.clone(), subject.clone());
        let entry = state.entries.get(&cache_key)?;
        if self.expired(entry, now) {
            state.remove(&cache_key);
            return None;
        }
        let key = Arc::clone(&entry.key);
        state.touch(&cache_key);
        Some(key)
    }

    /// Caches `key`, replacing any key cached for the subject, and evicting the least
    /// recently used keys when full.
    pub fn insert(&self, region: &RegionId, subject: &SubjectId, key: Arc<DataKey>, now: Instant) {
        if self.entries_max == 0 {
            return;
        }
        let mut state = self.lock();
        let cache_key = (region.clone(), subject.clone());
        state.remove(&cache_key);
        while state.entries.len() >= self.entries_max {
            state.remove_least_recently_used();
        }
        let stamp = state.stamp();
        state.recency.insert(stamp, cache_key.clone());
        state.entries.insert(cache_key, CacheEntry { key, inserted_at: now, last_used: stamp });
        debug_assert_eq!(state.entries.len(), state.recency.len());
    }

    /// Forgets the key of `subject` (when it is erased).
    pub fn remove(&self, region: &RegionId, subject: &SubjectId) {
        self.lock().remove(&(region.clone(), subject.clone()));
    }

    /// Forgets every key of `region`.
    pub fn clear_region(&self, region: &RegionId) {
        let mut state = self.lock();
        let doomed: Vec<CacheKey> = state.entries.keys().filter(|(key_region, _)| key_region == region).cloned().collect();
        for cache_key in &doomed {
            state.remove(cache_key);
        }
    }

    /// Forgets every key older than the age limit; returns how many. For a periodic sweep, so
    /// that keys nobody asks for again do not wait for eviction.
    pub fn remove_expired(&self, now: Instant) -> usize {
        let mut state = self.lock();
        let doomed: Vec<CacheKey> =
            state.entries.iter().filter(|(_, entry)| self.expired(entry, now)).map(|(cache_key, _)| cache_key.clone()).collect();
        for cache_key in &doomed {
            state.remove(cache_key);
        }
        doomed.len()
    }

    /// Number of cached keys, expired ones included until they are looked up or swept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn expired(&self, entry: &CacheEntry, now: Instant) -> bool {
        now.saturating_duration_since(entry.inserted_at) >= self.age_max
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // A panic while holding the lock leaves the maps consistent (each method restores the
        // invariant before any call that can panic), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Default for DataKeyCache {
    fn default() -> DataKeyCache {
        DataKeyCache::new(DATA_KEY_CACHE_ENTRIES_MAX, DATA_KEY_CACHE_AGE_MAX)
    }
}

impl CacheState {
    fn stamp(&mut self) -> u64 {
        let stamp = self.next_stamp;
        self.next_stamp += 1;
        stamp
    }

    fn touch(&mut self, cache_key: &CacheKey) {
        let stamp = self.stamp();
        let entry = self.entries.get_mut(cache_key).expect("touched entries exist");
        let previous = std::mem::replace(&mut entry.last_used, stamp);
        let moved = self.recency.remove(&previous).expect("every entry has a recency stamp");
        self.recency.insert(stamp, moved);
    }

    fn remove(&mut self, cache_key: &CacheKey) {
        if let Some(entry) = self.entries.remove(cache_key) {
            self.recency.remove(&entry.last_used);
        }
    }

    fn remove_least_recently_used(&mut self) {
        if let Some((_, cache_key)) = self.recency.pop_first() {
            self.entries.remove(&cache_key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(name: &str) -> RegionId {
        RegionId::new(name).unwrap()
    }

    fn subject(id: &str) -> SubjectId {
        SubjectId::new(id).unwrap()
    }

    fn key(byte: u8) -> Arc<DataKey> {
        Arc::new(DataKey::from_bytes([byte; 32]))
    }

    /// Which of `subjects` (in region us) the cache still returns at `now`.
    fn cached(cache: &DataKeyCache, subjects: &[&str], now: Instant) -> Vec<String> {
        subjects.iter().filter(|id| cache.get(&region("us"), &subject(id), now).is_some()).map(|id| id.to_string()).collect()
    }

    #[test]
    fn returns_what_was_inserted() {
        let cache = DataKeyCache::default();
        let now = Instant::now();
        cache.insert(&region("us"), &subject("a"), key(1), now);
        let found = cache.get(&region("us"), &subject("a"), now).unwrap();
        assert_eq!(found.as_bytes(), &[1; 32]);
        assert!(cache.get(&region("eu"), &subject("a"), now).is_none());
        assert!(cache.get(&region("us"), &subject("b"), now).is_none());
        cache.insert(&region("us"), &subject("a"), key(2), now);
        assert_eq!(cache.get(&region("us"), &subject("a"), now).unwrap().as_bytes(), &[2; 32]);
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn evicts_least_recently_used_when_full() {
        let cache = DataKeyCache::new(3, Duration::from_secs(60));
        let now = Instant::now();
        for (index, id) in ["a", "b", "c"].iter().enumerate() {
            cache.insert(&region("us"), &subject(id), key(index as u8), now);
        }
        // Using "a" makes "b" the least recently used.
        assert!(cache.get(&region("us"), &subject("a"), now).is_some());
        cache.insert(&region("us"), &subject("d"), key(4), now);
        assert_eq!(cache.len(), 3);
        assert_eq!(cached(&cache, &["a", "b", "c", "d"], now), ["a", "c", "d"]);
        cache.insert(&region("us"), &subject("e"), key(5), now);
        cache.insert(&region("us"), &subject("f"), key(6), now);
        assert_eq!(cache.len(), 3);
        // The lookups above used a, c, d in that order; e and f pushed out a and c.
        assert_eq!(cached(&cache, &["a", "b", "c", "d", "e", "f"], now), ["d", "e", "f"]);
    }

    #[test]
    fn expires_by_age_since_insertion() {
        let cache = DataKeyCache::new(10, Duration::from_secs(300));
        let start = Instant::now();
        cache.insert(&region("us"), &subject("a"), key(1), start);
        cache.insert(&region("us"), &subject("b"), key(2), start + Duration::from_secs(100));
        // Use does not extend the age limit.
        assert_eq!(cached(&cache, &["a", "b"], start + Duration::from_secs(299)), ["a", "b"]);
        assert_eq!(cached(&cache, &["a", "b"], start + Duration::from_secs(300)), ["b"]);
        assert_eq!(cache.len(), 1, "an expired key is removed when looked up");
        assert_eq!(cache.remove_expired(start + Duration::from_secs(400)), 1);
        assert!(cache.is_empty());
    }

    #[test]
    fn remove_and_clear_region() {
        let cache = DataKeyCache::default();
        let now = Instant::now();
        for (region_name, id) in [("us", "a"), ("us", "b"), ("eu", "a"), ("eu", "c")] {
            cache.insert(&region(region_name), &subject(id), key(1), now);
        }
        cache.remove(&region("us"), &subject("a"));
        assert_eq!(cache.len(), 3);
        assert!(cache.get(&region("eu"), &subject("a"), now).is_some());
        cache.clear_region(&region("eu"));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&region("us"), &subject("b"), now).is_some());
    }

    #[test]
    fn zero_capacity_caches_nothing() {
        let cache = DataKeyCache::new(0, Duration::from_secs(60));
        let now = Instant::now();
        cache.insert(&region("us"), &subject("a"), key(1), now);
        assert!(cache.is_empty());
    }

    #[test]
    fn shared_between_threads() {
        let cache = Arc::new(DataKeyCache::new(50, Duration::from_secs(60)));
        let now = Instant::now();
        let workers: Vec<_> = (0..4)
            .map(|worker| {
                let cache = Arc::clone(&cache);
                std::thread::spawn(move || {
                    for index in 0..100 {
                        let id = subject(&format!("w{worker}-{index}"));
                        cache.insert(&region("us"), &id, key(worker), now);
                        // Other threads may have evicted it already; if not, it is ours.
                        if let Some(found) = cache.get(&region("us"), &id, now) {
                            assert_eq!(found.as_bytes(), &[worker; 32]);
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().unwrap();
        }
        assert_eq!(cache.len(), 50);
    }
}
