//! The per-replica cache of store listings: a store's connection rows and asset rows, as the store
//! returns them (never a rendered view: views are computed from the rows at read time), so that
//! repeated `GET /api/v1/oauth/connections/{store_id}` cost no database round trip.
//!
//! It owns the entries, their bounds (count, bytes, age) and their invalidation; it does not own
//! the rows (the store) nor decide what a write is (the lifecycle calls [`ListingCache::changed`]
//! after every write that changes a connection or its assets).
//!
//! Not stale after a change, beyond the moment pub/sub takes to deliver (on loopback, well under a
//! millisecond; `tests/api/listing.rs` allows 500 ms):
//! - **locally**, every write path of the lifecycle drops the store's entry after writing;
//! - **across replicas**, the same call publishes the store id on a Redis channel under the key
//!   prefix (`{prefix}listing-changed`); every replica holds a subscription of its own and drops
//!   the entry when the message comes;
//! - **while not subscribed** (Redis down, the subscription lost or being re-established, or its
//!   liveness unproven for [`LIVENESS`]: a round trip on the subscribed connection every
//!   [`PROBE_EVERY`]), the cache is bypassed: reads go to the database and nothing is stored. Each
//!   (re)subscription empties the cache, so a message missed while unsubscribed cannot matter;
//! - a fill that raced with an invalidation is not stored: each read notes an epoch before asking
//!   the database and stores its rows only if no invalidation (of any store) happened meanwhile;
//! - entries expire after [`MAX_AGE`] whatever happens, which bounds the two windows pub/sub
//!   cannot close: a write made on a replica that cannot reach Redis (its message is lost while
//!   the others' subscriptions are still up), and a partition not yet noticed (at most
//!   [`LIVENESS`]).
//!
//! Without Redis the cache is used only on SQLite (one process by design) with local invalidation;
//! PostgreSQL without Redis may have several replicas nobody could tell, so it is bypassed.
//!
//! Other per-replica memories of a store's connections (the proxy's token memo) follow the same
//! invalidations: they register with [`ListingCache::watch`], are told of every store dropped here
//! (by a local write or another replica's message) and of every full drop (each (re)subscription,
//! each loss of the subscription), and may be used only while [`ListingCache::announced`] holds.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use futures::StreamExt;

use crate::domain::{Connection, StoreId};
use crate::redis_conn::RedisHandle;
use crate::store::StoredAsset;

/// How long an entry is served at most, whatever the invalidation says.
pub const MAX_AGE: Duration = Duration::from_secs(2);
/// How long a successful probe of the subscription keeps it trusted.
pub const LIVENESS: Duration = Duration::from_millis(1000);
/// How often the subscription's connection is probed (a repeated SUBSCRIBE, confirmed by Redis).
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// How long the subscriber waits before subscribing again after losing the subscription.
const RESUBSCRIBE_AFTER: Duration = Duration::from_millis(500);
/// The most stores held.
const MAX_ENTRIES: usize = 10_000;
/// The most bytes (estimated as the rows' JSON size) held.
const MAX_BYTES: usize = 64 * 1024 * 1024;
/// How many fill locks the stores are spread over.
const FILL_STRIPES: usize = 64;
/// The channel, under the key prefix.
const CHANNEL: &str = "listing-changed";

/// A store's rows: its connections (by platform) and their assets, as the store returns them.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    /// The store's connections, ordered by platform.
    pub connections: Vec<Connection>,
    /// Every asset of those connections.
    pub assets: Vec<StoredAsset>,
}

/// Whether the cache may be used, and how invalidations reach the other replicas.
#[derive(Debug, Clone)]
enum Mode {
    /// Never used.
    Off,
    /// Used; this process is the only one (SQLite without Redis).
    Local,
    /// Used while the subscription is live; writes are published on `channel`.
    Shared { redis: RedisHandle, channel: String },
}

struct Entry {
    listing: Arc<Listing>,
    at: Instant,
    bytes: usize,
}

#[derive(Default)]
struct Entries {
    map: HashMap<StoreId, Entry>,
    bytes: usize,
}

struct Inner {
    mode: Mode,
    entries: Mutex<Entries>,
    /// One fill at a time per stripe of stores: when an entry expires under load, the readers
    /// that miss together wait for one read of the database instead of each making their own.
    fills: [tokio::sync::Mutex<()>; FILL_STRIPES],
    /// Bumped (under the entries' lock) by every invalidation.
    epoch: AtomicU64,
    /// Milliseconds since `started` until which the subscription is trusted; 0 when not
    /// subscribed.
    live_until: AtomicU64,
    started: Instant,
    /// Told of every invalidation: a store's (`Some`) or every store's (`None`).
    watchers: Mutex<Vec<Watcher>>,
}

/// A memory that follows the cache's invalidations (see [`ListingCache::watch`]).
type Watcher = Box<dyn Fn(Option<&StoreId>) + Send + Sync>;

/// The cache; a cheap-clone handle.
#[derive(Clone)]
pub struct ListingCache(Arc<Inner>);

impl std::fmt::Debug for ListingCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListingCache")
            .field("mode", &self.0.mode)
            .field("live", &self.usable())
            .finish_non_exhaustive()
    }
}

/// A read's ticket: the epoch it saw before asking the database.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket(u64);

impl ListingCache {
    fn with_mode(mode: Mode) -> Self {
        Self(Arc::new(Inner {
            mode,
            entries: Mutex::default(),
            fills: std::array::from_fn(|_| tokio::sync::Mutex::new(())),
            epoch: AtomicU64::new(0),
            live_until: AtomicU64::new(0),
            started: Instant::now(),
            watchers: Mutex::default(),
        }))
    }

    /// Tells `watcher` of every invalidation from now on: a store's (`Some`), or all (`None`). It
    /// runs on the invalidating task, so it must be quick and must not call back into this cache.
    pub(crate) fn watch(&self, watcher: impl Fn(Option<&StoreId>) + Send + Sync + 'static) {
        self.0
            .watchers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(Box::new(watcher));
    }

    /// Whether every change to a store's connections reaches this replica's watchers: always on
    /// SQLite (one process), while the subscription is live with Redis, never on PostgreSQL
    /// without Redis (other replicas cannot tell this one).
    pub(crate) fn announced(&self) -> bool {
        self.usable()
    }

    fn tell_watchers(&self, store_id: Option<&StoreId>) {
        let watchers = self.0.watchers.lock().unwrap_or_else(|p| p.into_inner());
        for watcher in watchers.iter() {
            watcher(store_id);
        }
    }

    /// A cache that is never used.
    pub fn off() -> Self {
        Self::with_mode(Mode::Off)
    }

    /// The cache for a deployment: shared through `redis` when there is one (its subscriber task
    /// is spawned here and ends when the last handle is dropped), local on SQLite, else off.
    pub fn for_deployment(redis: Option<RedisHandle>, backend: &str) -> Self {
        match redis {
            Some(redis) => {
                let channel = redis.key(CHANNEL);
                let cache = Self::with_mode(Mode::Shared {
                    redis: redis.clone(),
                    channel: channel.clone(),
                });
                tokio::spawn(subscribe(Arc::downgrade(&cache.0), redis, channel));
                cache
            }
            None if backend == "sqlite" => Self::with_mode(Mode::Local),
            None => Self::off(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.0.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether entries may be served and stored now.
    fn usable(&self) -> bool {
        match self.0.mode {
            Mode::Off => false,
            Mode::Local => true,
            Mode::Shared { .. } => self.now_ms() < self.0.live_until.load(Ordering::Acquire),
        }
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        self.0.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The store's cached rows, when the cache may be used and holds them young enough.
    pub(crate) fn get(&self, store_id: &StoreId) -> Option<Arc<Listing>> {
        if !self.usable() {
            return None;
        }
        let entries = self.entries();
        entries
            .map
            .get(store_id)
            .filter(|entry| entry.at.elapsed() < MAX_AGE)
            .map(|entry| entry.listing.clone())
    }

    /// Waits for the store's fill lock (held while one reader fills the entry); a reader that
    /// missed takes it, then looks again before reading the database.
    pub(crate) async fn fill_lock(&self, store_id: &StoreId) -> tokio::sync::MutexGuard<'_, ()> {
        use std::hash::{BuildHasher, RandomState};
        static STRIPE_HASHER: std::sync::LazyLock<RandomState> =
            std::sync::LazyLock::new(RandomState::new);
        let stripe = STRIPE_HASHER.hash_one(store_id.as_str()) as usize % FILL_STRIPES;
        self.0.fills[stripe].lock().await
    }

    /// Taken before reading the database; `None` when the result must not be stored.
    pub(crate) fn ticket(&self) -> Option<Ticket> {
        self.usable()
            .then(|| Ticket(self.0.epoch.load(Ordering::Acquire)))
    }

    /// Stores rows read under `ticket`, unless an invalidation happened since it was taken.
    pub(crate) fn put(&self, store_id: &StoreId, ticket: Ticket, listing: Arc<Listing>) {
        let bytes = estimated_size(&listing);
        if bytes > MAX_BYTES / 16 {
            return;
        }
        let mut entries = self.entries();
        if self.0.epoch.load(Ordering::Acquire) != ticket.0 || !self.usable() {
            return;
        }
        if let Some(old) = entries.map.remove(store_id) {
            entries.bytes -= old.bytes;
        }
        if entries.map.len() >= MAX_ENTRIES || entries.bytes + bytes > MAX_BYTES {
            make_room(&mut entries, bytes);
        }
        entries.bytes += bytes;
        entries.map.insert(
            store_id.clone(),
            Entry {
                listing,
                at: Instant::now(),
                bytes,
            },
        );
    }

    /// Drops this replica's entry for `store_id` (and voids the fills under way).
    fn forget(&self, store_id: &StoreId) {
        let mut entries = self.entries();
        self.0.epoch.fetch_add(1, Ordering::AcqRel);
        if let Some(old) = entries.map.remove(store_id) {
            entries.bytes -= old.bytes;
        }
        drop(entries);
        self.tell_watchers(Some(store_id));
    }

    /// Drops every entry (and voids the fills under way).
    fn forget_all(&self) {
        let mut entries = self.entries();
        self.0.epoch.fetch_add(1, Ordering::AcqRel);
        entries.map.clear();
        entries.bytes = 0;
        drop(entries);
        self.tell_watchers(None);
    }

    /// After a write that changed a store's connection or assets: drops the entry here and tells
    /// the other replicas. A failed publish is logged; the others then see the change within
    /// [`MAX_AGE`].
    pub(crate) async fn changed(&self, store_id: &StoreId) {
        self.forget(store_id);
        let Mode::Shared { redis, channel } = &self.0.mode else {
            return;
        };
        if let Err(error) = redis.publish(channel, store_id.as_str()).await {
            tracing::warn!(error = %error, store_id = %store_id, "could not tell the other replicas that a store's connections changed; they see it within the listing cache's max age");
        }
    }

    fn mark_live(&self) {
        let until = self.now_ms() + u64::try_from(LIVENESS.as_millis()).unwrap_or(u64::MAX);
        self.0.live_until.store(until, Ordering::Release);
    }

    fn mark_unsubscribed(&self) {
        self.0.live_until.store(0, Ordering::Release);
        self.forget_all();
    }
}

/// Frees room for `bytes` more and a tenth of the bounds besides (so that a full cache does not
/// sort its entries on every insert): expired entries first, then the oldest ones.
fn make_room(entries: &mut Entries, bytes: usize) {
    const MAX_ENTRIES_AFTER: usize = MAX_ENTRIES - MAX_ENTRIES / 10;
    const MAX_BYTES_AFTER: usize = MAX_BYTES - MAX_BYTES / 10;
    entries.map.retain(|_, entry| entry.at.elapsed() < MAX_AGE);
    let mut by_age: Vec<(Instant, StoreId)> = entries
        .map
        .iter()
        .map(|(store, entry)| (entry.at, store.clone()))
        .collect();
    by_age.sort_unstable_by_key(|(at, _)| *at);
    let mut held: usize = entries.map.values().map(|entry| entry.bytes).sum();
    for (_, store) in by_age {
        if entries.map.len() < MAX_ENTRIES_AFTER && held + bytes <= MAX_BYTES_AFTER {
            break;
        }
        if let Some(old) = entries.map.remove(&store) {
            held -= old.bytes;
        }
    }
    entries.bytes = held;
}

/// Counts bytes written, to size rows by their JSON form without building it.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The rows' size, estimated as their JSON length plus a fixed overhead per row.
fn estimated_size(listing: &Listing) -> usize {
    const PER_ROW: usize = 256;
    let mut counter = Counter(0);
    for connection in &listing.connections {
        let _ = serde_json::to_writer(&mut counter, connection);
    }
    for asset in &listing.assets {
        let _ = serde_json::to_writer(&mut counter, &asset.details);
        counter.0 += asset.kind.len() + asset.id.len() + asset.name.as_ref().map_or(0, String::len);
    }
    counter.0 + PER_ROW * (1 + listing.connections.len() + listing.assets.len())
}

/// The subscriber: subscribes, drops the entries each message names, probes to prove the
/// subscription alive, and starts over when it is lost. Holds the cache only weakly, so that it
/// ends once the cache is dropped.
async fn subscribe(cache: Weak<Inner>, redis: RedisHandle, channel: String) {
    loop {
        match listen(&cache, &redis, &channel).await {
            Ok(()) => return,
            Err(reason) => {
                let Some(inner) = cache.upgrade() else {
                    return;
                };
                ListingCache(inner).mark_unsubscribed();
                tracing::debug!(
                    reason,
                    "listing cache unsubscribed: bypassed until subscribed again"
                );
            }
        }
        tokio::time::sleep(RESUBSCRIBE_AFTER).await;
    }
}

/// Runs `f` on the cache if it still exists.
fn with_cache(cache: &Weak<Inner>, f: impl FnOnce(&ListingCache)) -> bool {
    match cache.upgrade() {
        Some(inner) => {
            f(&ListingCache(inner));
            true
        }
        None => false,
    }
}

/// One subscription, until it is lost (`Err`) or the cache is dropped (`Ok`).
async fn listen(
    cache: &Weak<Inner>,
    redis: &RedisHandle,
    channel: &str,
) -> Result<(), &'static str> {
    let timeout = redis.timeout();
    let pubsub = redis.subscriber().await.map_err(|_| "connect failed")?;
    let (mut sink, mut stream) = pubsub.split();
    tokio::time::timeout(timeout, sink.subscribe(channel))
        .await
        .map_err(|_| "subscribe timed out")?
        .map_err(|_| "subscribe failed")?;
    // Whatever was published before now may have been missed: start empty.
    let alive = with_cache(cache, |cache| {
        cache.forget_all();
        cache.mark_live();
    });
    if !alive {
        return Ok(());
    }
    let mut probe = tokio::time::interval(PROBE_EVERY);
    probe.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            message = stream.next() => {
                let message = message.ok_or("subscription closed")?;
                let store = message
                    .get_payload::<String>()
                    .ok()
                    .and_then(|text| StoreId::parse(text).ok());
                let alive = with_cache(cache, |cache| match &store {
                    Some(store) => cache.forget(store),
                    // Not a store id: drop everything rather than guess.
                    None => cache.forget_all(),
                });
                if !alive {
                    return Ok(());
                }
            }
            _ = probe.tick() => {
                if cache.strong_count() == 0 {
                    return Ok(());
                }
                // Subscribing again to the same channel is a no-op that Redis confirms on this
                // connection: a round trip that proves it alive (and, unlike a PING, does not
                // count as a health check in Redis's statistics).
                tokio::time::timeout(timeout.min(LIVENESS), sink.subscribe(channel))
                    .await
                    .map_err(|_| "probe timed out")?
                    .map_err(|_| "probe failed")?;
                if !with_cache(cache, ListingCache::mark_live) {
                    return Ok(());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(name: &str) -> StoreId {
        StoreId::parse(name).expect("store id")
    }

    #[test]
    fn an_invalidation_during_a_read_keeps_its_rows_out() {
        let cache = ListingCache::with_mode(Mode::Local);
        let shop = store("shop");
        let ticket = cache.ticket().expect("usable");
        cache.forget(&store("other"));
        cache.put(&shop, ticket, Arc::default());
        assert!(cache.get(&shop).is_none(), "a racing fill was stored");
        let ticket = cache.ticket().expect("usable");
        cache.put(&shop, ticket, Arc::default());
        assert!(cache.get(&shop).is_some());
        cache.forget(&shop);
        assert!(cache.get(&shop).is_none());
    }

    #[test]
    fn a_shared_cache_is_bypassed_until_its_subscription_is_proven_live() {
        let redis = RedisHandle::new(&"redis://127.0.0.1:1".to_owned().into(), "t:").expect("url");
        let cache = ListingCache::with_mode(Mode::Shared {
            redis,
            channel: "t:listing-changed".into(),
        });
        let shop = store("shop");
        assert!(cache.ticket().is_none());
        cache.mark_live();
        let ticket = cache.ticket().expect("live");
        cache.put(&shop, ticket, Arc::default());
        assert!(cache.get(&shop).is_some());
        cache.mark_unsubscribed();
        assert!(cache.get(&shop).is_none());
        cache.mark_live();
        assert!(cache.get(&shop).is_none(), "emptied when unsubscribed");
    }

    #[test]
    fn the_cache_holds_a_bounded_number_of_stores() {
        let cache = ListingCache::with_mode(Mode::Local);
        for n in 0..MAX_ENTRIES + 10 {
            let ticket = cache.ticket().expect("usable");
            cache.put(&store(&format!("s{n}")), ticket, Arc::default());
        }
        let entries = cache.entries();
        assert!(entries.map.len() <= MAX_ENTRIES);
        assert_eq!(
            entries.bytes,
            entries.map.values().map(|e| e.bytes).sum::<usize>()
        );
    }
}
