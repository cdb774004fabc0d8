//! Who may call the API and what they may do: API keys, their scopes, and the check every API
//! handler makes.
//!
//! Owns key generation and hashing, the scope grammar ([`Scope`], [`Operation`]), the verified
//! caller ([`Caller`], [`Caller::require`] and [`Caller::require_store`]), the store list a key
//! may be bound to ([`parse_stores`]), and [`ApiKeyRegistry`], which turns a presented key
//! into a caller: keys from `API_KEYS` are full-access callers named `env:<n>`; other keys are looked
//! up by hash in the store (the `api_keys` table), with a short in-process cache that every replica
//! empties as soon as it sees a new revocation ([`ApiKeyRegistry::check_revocations`], every
//! [`REVOCATION_CHECK`]). Keys the store does not know are remembered as unknown for
//! [`UNKNOWN_WINDOW`], and each client may cause only a few failed lookups ([`LOOKUP_BURST`], then
//! one per [`LOOKUP_REFILL`]): a flood of made-up keys costs the database a bounded number of
//! lookups. It does not own HTTP (the edge's extractor reads the header, names the client and maps
//! [`MissingScope`] and [`StoreNotAllowed`] to a 403) nor the CLI.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use base64::Engine as _;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::clock::SharedClock;
use crate::domain::StoreId;
use crate::metrics::Metrics;
use crate::store::{ApiKeyRecord, Store, StoreError};

/// What every generated key starts with, so that a leaked key is recognisable by secret scanners.
pub(crate) const KEY_PREFIX: &str = "ge_";

/// How long a verified database key is trusted without asking the database again; also the longest
/// a revoked key keeps working in a replica that cannot ask the database whether keys were revoked.
pub const CACHE_WINDOW: Duration = Duration::seconds(30);

/// How often each replica asks the database whether a key was revoked (one `count` of a small
/// table): a revoked key stops working within about this.
pub const REVOCATION_CHECK: std::time::Duration = std::time::Duration::from_secs(1);

/// The most keys the cache holds; beyond it, the cache is emptied and refills on demand.
const CACHE_CAPACITY: usize = 1024;

/// `last_used_at` is written at most this often per key.
const TOUCH_EVERY: Duration = Duration::seconds(60);

/// How long a key the store does not know (or knows as revoked) is answered 401 without asking the
/// store again. A key created meanwhile (`api-key create`, in another process, which no replica
/// hears of) works at most this long after a request that presented it before it existed.
pub const UNKNOWN_WINDOW: Duration = Duration::seconds(5);

/// The most unknown keys remembered; beyond it, the expired ones are dropped, then all of them (the
/// per-client allowance below still bounds the lookups).
const UNKNOWN_CAPACITY: usize = 4096;

/// The store lookups of keys it turns out not to know (or knows as revoked) that one client may
/// cause at once; its allowance then comes back one lookup per [`LOOKUP_REFILL`]. A lookup that
/// finds a live key costs nothing, and a live key is cached for [`CACHE_WINDOW`] after it.
pub const LOOKUP_BURST: u32 = 10;

/// How fast a client's allowance of failed lookups comes back (10 a minute).
pub const LOOKUP_REFILL: std::time::Duration = std::time::Duration::from_secs(6);

/// The most clients whose allowances are tracked (about 40 bytes each).
const TRACKED_CLIENTS: usize = 10_000;

/// An operation of the API, as a scope names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// `connections:read`: list a store's connections.
    ConnectionsRead,
    /// `connect`: start an authorization flow.
    Connect,
    /// `disconnect`: revoke and delete a connection.
    Disconnect,
    /// `tokens:read`: fetch (or force the refresh of) an access token.
    TokensRead,
    /// `proxy`: call a platform's API through the service.
    Proxy,
    /// `selection:write`: choose the ad account or page a connection uses.
    SelectionWrite,
    /// `audit:read`: read the audit trail.
    AuditRead,
    /// `posts:write`: create and cancel posts.
    PostsWrite,
    /// `posts:read`: read posts.
    PostsRead,
}

impl Operation {
    /// Every operation, in the order `api-key list` prints them.
    pub(crate) const ALL: [Operation; 9] = [
        Self::ConnectionsRead,
        Self::Connect,
        Self::Disconnect,
        Self::TokensRead,
        Self::Proxy,
        Self::SelectionWrite,
        Self::AuditRead,
        Self::PostsWrite,
        Self::PostsRead,
    ];

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConnectionsRead => "connections:read",
            Self::Connect => "connect",
            Self::Disconnect => "disconnect",
            Self::TokensRead => "tokens:read",
            Self::Proxy => "proxy",
            Self::SelectionWrite => "selection:write",
            Self::AuditRead => "audit:read",
            Self::PostsWrite => "posts:write",
            Self::PostsRead => "posts:read",
        }
    }
}

/// A scope: an operation, on every platform or on one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    /// The operation it allows.
    pub operation: Operation,
    /// The one platform it is narrowed to; `None` covers every platform.
    pub platform: Option<String>,
}

/// Why a scope list was refused (`api-key create` prints it as one line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Not one of the operations.
    #[error("unknown scope {0:?} (known: connections:read, connect, disconnect, tokens:read, proxy, selection:write, audit:read, posts:write, posts:read, each optionally :<platform>)")]
    UnknownScope(String),
    /// A platform suffix that names no platform.
    #[error("unknown platform {platform:?} in scope {scope:?} (known: {known})")]
    UnknownPlatform {
        /// The scope as written.
        scope: String,
        /// The platform it names.
        platform: String,
        /// The known platforms, comma-separated.
        known: String,
    },
    /// No scope at all.
    #[error("at least one scope is required")]
    Empty,
}

impl FromStr for Scope {
    type Err = ScopeError;

    /// Parses `operation[:platform]`; the platform is checked against the catalog by
    /// [`parse_scopes`], not here.
    fn from_str(text: &str) -> Result<Self, ScopeError> {
        let text = text.trim();
        // The longest operation name that prefixes the text, so `connections:read:meta` is not
        // read as an unknown `connections` with a platform.
        let operation = Operation::ALL
            .iter()
            .copied()
            .filter(|op| {
                text == op.as_str()
                    || text
                        .strip_prefix(op.as_str())
                        .is_some_and(|rest| rest.starts_with(':'))
            })
            .max_by_key(|op| op.as_str().len())
            .ok_or_else(|| ScopeError::UnknownScope(text.to_owned()))?;
        let platform = text[operation.as_str().len()..].strip_prefix(':');
        match platform {
            None => Ok(Self {
                operation,
                platform: None,
            }),
            Some(p)
                if !p.is_empty()
                    && p.len() <= 32
                    && p.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') =>
            {
                Ok(Self {
                    operation,
                    platform: Some(p.to_owned()),
                })
            }
            Some(_) => Err(ScopeError::UnknownScope(text.to_owned())),
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.platform {
            Some(platform) => write!(f, "{}:{platform}", self.operation.as_str()),
            None => f.write_str(self.operation.as_str()),
        }
    }
}

/// Parses a comma-separated scope list, checking each platform suffix against `platforms`.
pub fn parse_scopes(text: &str, platforms: &[String]) -> Result<Vec<Scope>, ScopeError> {
    let mut scopes = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let scope: Scope = part.parse()?;
        if let Some(platform) = &scope.platform {
            if !platforms.iter().any(|p| p == platform) {
                return Err(ScopeError::UnknownPlatform {
                    scope: part.to_owned(),
                    platform: platform.clone(),
                    known: platforms.join(", "),
                });
            }
        }
        if !scopes.contains(&scope) {
            scopes.push(scope);
        }
    }
    if scopes.is_empty() {
        return Err(ScopeError::Empty);
    }
    Ok(scopes)
}

/// Scopes as stored and printed: comma-separated.
pub fn format_scopes(scopes: &[Scope]) -> String {
    scopes
        .iter()
        .map(Scope::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A call outside the caller's scopes: names the scope that would allow it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this API key lacks the scope {scope} needed for this call")]
pub struct MissingScope {
    /// The narrowest scope that would allow the call (`tokens:read:meta`).
    pub scope: String,
}

/// The most stores one key may be bound to.
pub const MAX_KEY_STORES: usize = 100;

/// Why a store list was refused (`api-key create` prints it as one line).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoresError {
    /// One entry is not a valid store id (the message names its position, not its text).
    #[error("store {position} of the list: {reason}")]
    Invalid {
        /// Its 1-based position in the list.
        position: usize,
        /// Why it is not a store id.
        reason: String,
    },
    /// No store at all (`--stores ""`): leave the option out for a key that covers every store.
    #[error(
        "at least one store is required (leave --stores out for a key that covers every store)"
    )]
    Empty,
    /// More than [`MAX_KEY_STORES`] distinct stores.
    #[error("at most {MAX_KEY_STORES} stores, {0} given")]
    TooMany(usize),
}

/// Parses a comma-separated store list: each a valid [`StoreId`], duplicates dropped (first kept),
/// 1 to [`MAX_KEY_STORES`] of them.
pub fn parse_stores(text: &str) -> Result<Vec<StoreId>, StoresError> {
    let mut stores: Vec<StoreId> = Vec::new();
    for (n, part) in text.split(',').map(str::trim).enumerate() {
        if part.is_empty() {
            continue;
        }
        let store = StoreId::parse(part).map_err(|e| StoresError::Invalid {
            position: n + 1,
            reason: e.to_string(),
        })?;
        if !stores.contains(&store) {
            stores.push(store);
        }
    }
    match stores.len() {
        0 => Err(StoresError::Empty),
        n if n > MAX_KEY_STORES => Err(StoresError::TooMany(n)),
        _ => Ok(stores),
    }
}

/// Stores as stored and printed: comma-separated (a store id never holds a comma).
pub fn format_stores(stores: &[StoreId]) -> String {
    stores
        .iter()
        .map(StoreId::as_str)
        .collect::<Vec<_>>()
        .join(",")
}

/// A call for a store the key is not bound to. Names neither the key's stores nor the store asked
/// for: the answer must not tell a caller which stores exist or which the key covers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("this API key may not act for this store")]
pub struct StoreNotAllowed;

/// A verified API caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The key's name (`env:<n>` for a key from `API_KEYS`); recorded as the actor in the audit.
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// The stores it may act for; `None` covers every store (keys from `API_KEYS`, and stored
    /// keys created without `--stores`).
    pub stores: Option<Vec<StoreId>>,
}

impl Caller {
    /// A caller allowed everything on every platform (the keys of `API_KEYS`).
    pub(crate) fn full_access(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            scopes: Operation::ALL
                .iter()
                .map(|&operation| Scope {
                    operation,
                    platform: None,
                })
                .collect(),
            stores: None,
        }
    }

    /// Allows a call for `store`: every store for an unbound key, else only the key's stores.
    ///
    /// Each handler calls this itself, after [`Caller::require`], rather than an extractor or a
    /// middleware doing it once: the store comes from a different place on each route (a path
    /// segment, a query parameter, a JSON body, a header, the stored post), and some routes name
    /// it only after a lookup.
    pub fn require_store(&self, store: &StoreId) -> Result<(), StoreNotAllowed> {
        match &self.stores {
            None => Ok(()),
            Some(stores) if stores.contains(store) => Ok(()),
            Some(_) => Err(StoreNotAllowed),
        }
    }

    /// Whether any scope, bare or narrowed, allows `operation`.
    pub(crate) fn has_any(&self, operation: Operation) -> bool {
        self.scopes.iter().any(|scope| scope.operation == operation)
    }

    /// Allows `operation` on at least one platform, or names the bare scope: the first check of
    /// a call whose platform is known only later (in its body, or from the row it names).
    pub fn require_some(&self, operation: Operation) -> Result<(), MissingScope> {
        if self.has_any(operation) {
            Ok(())
        } else {
            self.require(operation, None)
        }
    }

    /// Allows `operation` on `platform` (`None`: a call not about one platform, which only a bare
    /// scope covers), or names the missing scope.
    pub fn require(
        &self,
        operation: Operation,
        platform: Option<&str>,
    ) -> Result<(), MissingScope> {
        let allowed = self.scopes.iter().any(|scope| {
            scope.operation == operation
                && match (&scope.platform, platform) {
                    (None, _) => true,
                    (Some(narrow), Some(asked)) => narrow == asked,
                    (Some(_), None) => false,
                }
        });
        if allowed {
            Ok(())
        } else {
            Err(MissingScope {
                scope: Scope {
                    operation,
                    platform: platform.map(str::to_owned),
                }
                .to_string(),
            })
        }
    }
}

/// Validates a key name: 1 to 64 characters of `a-z`, `0-9`, `_` and `-`.
pub(crate) fn valid_key_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A new key: `ge_` and 32 random bytes in URL-safe base64. Shown once, stored only as its hash.
pub fn generate_key() -> SecretString {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let encoded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    SecretString::from(format!("{KEY_PREFIX}{encoded}"))
}

/// The stored form of a key: hex SHA-256. Generated keys carry 256 random bits, so a fast hash is
/// enough: there is nothing to guess, and a slow password hash would only cost every request.
pub fn hash_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

struct CachedKey {
    caller: Caller,
    verified_at: DateTime<Utc>,
}

/// What verifying a presented key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verified {
    /// A live key: its caller.
    Caller(Caller),
    /// No such key, or a revoked one.
    Unknown,
    /// Not looked up: the client has used up its allowance of failed lookups; it may try again
    /// in this many seconds.
    Throttled(u64),
}

/// Turns a presented key into a [`Caller`]: `API_KEYS` first, then the store.
///
/// A key verified in the store is cached in process for [`CACHE_WINDOW`] (by the clock), so a
/// request does not cost a database round trip. A revoke empties the cache of every replica at its
/// next [`ApiKeyRegistry::check_revocations`]; the window bounds it when the database cannot be
/// asked. A key the store does not know is remembered for [`UNKNOWN_WINDOW`], and before any
/// lookup the client must have allowance left ([`LookupAllowance`]), so made-up keys cost the
/// store at most [`LOOKUP_BURST`] lookups per client, then one per [`LOOKUP_REFILL`].
#[derive(Clone)]
pub(crate) struct ApiKeyRegistry {
    env: Arc<Vec<[u8; 32]>>,
    store: Option<Arc<dyn Store>>,
    clock: Option<SharedClock>,
    cache: Arc<Mutex<HashMap<String, CachedKey>>>,
    /// Keys that were cached when a revocation emptied the cache: looked up again on their next
    /// use (a revoked one is found revoked), but never throttled, since they are no guesses.
    vouched: Arc<Mutex<std::collections::HashSet<String>>>,
    unknown: Arc<Mutex<HashMap<String, DateTime<Utc>>>>,
    allowance: Arc<LookupAllowance>,
    metrics: Option<Metrics>,
    revocations: Arc<RevocationWatch>,
}

/// What [`ApiKeyRegistry::check_revocations`] last saw, and a generation bumped at each emptying:
/// a verification that read its row before an emptying does not cache it after (its row may
/// predate the revoke).
struct RevocationWatch {
    /// The revoked-key count last read; -1 before the first reading.
    seen: AtomicI64,
    generation: AtomicU64,
}

impl fmt::Debug for ApiKeyRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyRegistry({} environment keys)", self.env.len())
    }
}

impl ApiKeyRegistry {
    /// Only the environment's keys (no database keys).
    pub(crate) fn from_env_keys(keys: &[SecretString]) -> Self {
        Self {
            env: Arc::new(
                keys.iter()
                    .map(|k| Sha256::digest(k.expose_secret().as_bytes()).into())
                    .collect(),
            ),
            store: None,
            clock: None,
            cache: Arc::default(),
            vouched: Arc::default(),
            unknown: Arc::default(),
            allowance: Arc::new(LookupAllowance::new(TRACKED_CLIENTS)),
            metrics: None,
            revocations: Arc::new(RevocationWatch {
                seen: AtomicI64::new(-1),
                generation: AtomicU64::new(0),
            }),
        }
    }

    /// The environment's keys, and the database's keys from `store`.
    pub fn new(keys: &[SecretString], store: Arc<dyn Store>, clock: SharedClock) -> Self {
        Self {
            store: Some(store),
            clock: Some(clock),
            ..Self::from_env_keys(keys)
        }
    }

    /// Counts the store's key lookups in `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The caller a key belongs to, [`Verified::Unknown`] for an unknown or revoked key, or
    /// [`Verified::Throttled`] when the store would have to be asked but `client` (the caller's
    /// address; `None` when it is not known, all such callers sharing one allowance) has used up
    /// its allowance of failed lookups.
    pub async fn verify(
        &self,
        presented: &str,
        client: Option<IpAddr>,
    ) -> Result<Verified, StoreError> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Check every key, not stopping at the first match, so timing says nothing about which.
        let env_match = self.env.iter().enumerate().fold(None, |found, (n, key)| {
            if bool::from(key.ct_eq(&digest)) {
                Some(n + 1)
            } else {
                found
            }
        });
        if let Some(n) = env_match {
            return Ok(Verified::Caller(Caller::full_access(format!("env:{n}"))));
        }
        let (Some(store), Some(clock)) = (&self.store, &self.clock) else {
            return Ok(Verified::Unknown);
        };
        if !presented.starts_with(KEY_PREFIX) {
            return Ok(Verified::Unknown);
        }
        // Looking a key up by its hash leaks nothing by timing: the hash of a guess says nothing
        // about the hash of a real key.
        let hash = hex::encode(digest);
        let now = clock.now();
        if let Some(caller) = self.cached(&hash, now) {
            return Ok(Verified::Caller(caller));
        }
        if self.known_unknown(&hash, now) {
            return Ok(Verified::Unknown);
        }
        let vouched = self
            .vouched
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&hash);
        // Taken before the lookup and given back when it finds a live key (or fails on our side),
        // so that concurrent requests cannot overshoot the allowance.
        if let (false, Err(wait)) = (vouched, self.allowance.take(client)) {
            if let Some(metrics) = &self.metrics {
                metrics.api_key_lookup_throttled();
            }
            return Ok(Verified::Throttled(wait));
        }
        if let Some(metrics) = &self.metrics {
            metrics.api_key_lookup();
        }
        let generation = self.revocations.generation.load(Ordering::SeqCst);
        let record = match store.find_api_key(&hash).await {
            Ok(record) => record,
            Err(error) => {
                if !vouched {
                    self.allowance.give_back(client);
                }
                return Err(error);
            }
        };
        let Some(record) = record else {
            self.remember_unknown(hash, now);
            return Ok(Verified::Unknown);
        };
        if record.revoked_at.is_some() {
            self.forget(&hash);
            self.remember_unknown(hash, now);
            return Ok(Verified::Unknown);
        }
        if !vouched {
            self.allowance.give_back(client);
        }
        let caller = caller_of(&record)?;
        if record.last_used_at.is_none_or(|at| at < now - TOUCH_EVERY) {
            // Best effort: a failed write only leaves "last used" stale.
            if let Err(error) = store.touch_api_key(record.id, now, now - TOUCH_EVERY).await {
                tracing::warn!(error = %error, key = %record.name, "could not record the key's last use");
            }
        }
        self.remember(hash, caller.clone(), now, generation);
        Ok(Verified::Caller(caller))
    }

    /// Asks the store whether a key was revoked since the last call; if so, forgets every cached
    /// key (they are verified again on their next use). Returns whether it did. The app calls this
    /// every [`REVOCATION_CHECK`] on every replica.
    pub(crate) async fn check_revocations(&self) -> Result<bool, StoreError> {
        let Some(store) = &self.store else {
            return Ok(false);
        };
        let count = store.revoked_api_key_count().await?;
        if self.revocations.seen.swap(count, Ordering::SeqCst) == count {
            return Ok(false);
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        self.revocations.generation.fetch_add(1, Ordering::SeqCst);
        let mut vouched = self.vouched.lock().unwrap_or_else(|p| p.into_inner());
        if vouched.len() < CACHE_CAPACITY {
            vouched.extend(cache.drain().map(|(hash, _)| hash));
        }
        cache.clear();
        Ok(true)
    }

    fn cached(&self, hash: &str, now: DateTime<Utc>) -> Option<Caller> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(hash)
            .filter(|entry| now - entry.verified_at < CACHE_WINDOW && entry.verified_at <= now)
            .map(|entry| entry.caller.clone())
    }

    fn remember(&self, hash: String, caller: Caller, now: DateTime<Utc>, generation: u64) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        // Emptied since this key's row was read: the row may predate a revoke.
        if self.revocations.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if cache.len() >= CACHE_CAPACITY {
            cache.retain(|_, entry| now - entry.verified_at < CACHE_WINDOW);
            if cache.len() >= CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(
            hash,
            CachedKey {
                caller,
                verified_at: now,
            },
        );
    }

    fn forget(&self, hash: &str) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(hash);
    }

    /// Whether the store said it does not know this key less than [`UNKNOWN_WINDOW`] ago.
    fn known_unknown(&self, hash: &str, now: DateTime<Utc>) -> bool {
        let unknown = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
        unknown
            .get(hash)
            .is_some_and(|at| now - *at < UNKNOWN_WINDOW && *at <= now)
    }

    fn remember_unknown(&self, hash: String, now: DateTime<Utc>) {
        let mut unknown = self.unknown.lock().unwrap_or_else(|p| p.into_inner());
        if unknown.len() >= UNKNOWN_CAPACITY {
            unknown.retain(|_, at| now - *at < UNKNOWN_WINDOW);
            if unknown.len() >= UNKNOWN_CAPACITY {
                unknown.clear();
            }
        }
        unknown.insert(hash, now);
    }
}

/// Each client's allowance of store lookups that find no live key: a token bucket of
/// [`LOOKUP_BURST`] per client address, refilled one per [`LOOKUP_REFILL`], in a table of at most
/// `capacity` clients.
///
/// A client whose bucket is full again is the same as one never seen, so a sweep drops those; at
/// the cap (after at most one sweep a second) a new client is refused until room comes back,
/// rather than evicting others and handing every client a fresh allowance in a flood. The clock
/// is the monotonic one: an allowance is about real elapsed time, not about the business clock.
pub(crate) struct LookupAllowance {
    table: Mutex<AllowanceTable>,
    capacity: usize,
}

struct AllowanceTable {
    buckets: HashMap<Option<IpAddr>, Bucket>,
    last_sweep: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Bucket {
    /// Lookups left, in units of one lookup (fractions accrue between refills).
    tokens: f64,
    updated: Instant,
}

impl Bucket {
    fn refilled(self, now: Instant) -> Self {
        let per_second = 1.0 / LOOKUP_REFILL.as_secs_f64();
        let gained = now.saturating_duration_since(self.updated).as_secs_f64() * per_second;
        Self {
            tokens: (self.tokens + gained).min(f64::from(LOOKUP_BURST)),
            updated: now,
        }
    }
}

impl LookupAllowance {
    fn new(capacity: usize) -> Self {
        Self {
            table: Mutex::new(AllowanceTable {
                buckets: HashMap::new(),
                last_sweep: None,
            }),
            capacity,
        }
    }

    /// Takes one lookup from `client`'s allowance, or says in how many seconds one comes back.
    fn take(&self, client: Option<IpAddr>) -> Result<(), u64> {
        let now = Instant::now();
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if !table.buckets.contains_key(&client) && table.buckets.len() >= self.capacity {
            let due = table
                .last_sweep
                .is_none_or(|at| now.saturating_duration_since(at).as_secs() >= 1);
            if due {
                table.last_sweep = Some(now);
                let full = f64::from(LOOKUP_BURST);
                table
                    .buckets
                    .retain(|_, bucket| bucket.refilled(now).tokens < full);
            }
            if table.buckets.len() >= self.capacity {
                return Err(1);
            }
        }
        let fresh = Bucket {
            tokens: f64::from(LOOKUP_BURST),
            updated: now,
        };
        let bucket = table.buckets.entry(client).or_insert(fresh);
        *bucket = bucket.refilled(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let missing = 1.0 - bucket.tokens;
        Err((missing * LOOKUP_REFILL.as_secs_f64()).ceil().max(1.0) as u64)
    }

    /// Returns a lookup taken by [`LookupAllowance::take`] that did not fail for the client's
    /// sake (it found a live key, or the store failed).
    fn give_back(&self, client: Option<IpAddr>) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bucket) = table.buckets.get_mut(&client) {
            bucket.tokens = (bucket.tokens + 1.0).min(f64::from(LOOKUP_BURST));
        }
    }
}

/// The caller a stored key describes; a scope or store list that no longer parses is a corrupt row.
fn caller_of(record: &ApiKeyRecord) -> Result<Caller, StoreError> {
    let scopes = record
        .scopes
        .split(',')
        .filter(|s| !s.is_empty())
        .map(Scope::from_str)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| StoreError::Corrupt(format!("api key {}: {e}", record.name)))?;
    // Fails closed: a bound key whose list does not parse is refused, never widened to every store.
    let stores = record
        .stores
        .as_deref()
        .map(parse_stores)
        .transpose()
        .map_err(|e| StoreError::Corrupt(format!("api key {}: stores: {e}", record.name)))?;
    Ok(Caller {
        name: record.name.clone(),
        scopes,
        stores,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn platforms() -> Vec<String> {
        vec!["meta".into(), "tiktok".into()]
    }

    #[test]
    fn scopes_parse_with_and_without_a_platform() {
        let scopes = parse_scopes(
            "tokens:read:meta,connections:read,proxy:tiktok,selection:write",
            &platforms(),
        )
        .unwrap();
        assert_eq!(
            format_scopes(&scopes),
            "tokens:read:meta,connections:read,proxy:tiktok,selection:write"
        );
    }

    #[test]
    fn unknown_scopes_and_platforms_are_refused() {
        assert!(matches!(
            parse_scopes("tokens:write", &platforms()),
            Err(ScopeError::UnknownScope(_))
        ));
        assert!(matches!(
            parse_scopes("tokens:read:myspace", &platforms()),
            Err(ScopeError::UnknownPlatform { .. })
        ));
        assert!(matches!(
            parse_scopes(" , ", &platforms()),
            Err(ScopeError::Empty)
        ));
        assert!(parse_scopes("connections", &platforms()).is_err());
    }

    #[test]
    fn a_narrowed_scope_covers_only_its_platform() {
        let caller = Caller {
            name: "k".into(),
            scopes: parse_scopes("tokens:read:meta,connect", &platforms()).unwrap(),
            stores: None,
        };
        assert!(caller.require(Operation::TokensRead, Some("meta")).is_ok());
        assert_eq!(
            caller.require(Operation::TokensRead, Some("tiktok")),
            Err(MissingScope {
                scope: "tokens:read:tiktok".into()
            })
        );
        assert!(caller.require(Operation::TokensRead, None).is_err());
        assert!(caller.require(Operation::Connect, Some("tiktok")).is_ok());
        assert_eq!(
            caller
                .require(Operation::AuditRead, None)
                .unwrap_err()
                .scope,
            "audit:read"
        );
    }

    #[test]
    fn store_lists_are_validated_deduplicated_and_bounded() {
        let stores = parse_stores(" shop-42,shop-43,shop-42 ").unwrap();
        assert_eq!(format_stores(&stores), "shop-42,shop-43");
        assert!(matches!(
            parse_stores("shop-42,shop 43"),
            Err(StoresError::Invalid { position: 2, .. })
        ));
        assert_eq!(parse_stores(" , "), Err(StoresError::Empty));
        let many: Vec<String> = (0..=MAX_KEY_STORES).map(|n| format!("s{n}")).collect();
        assert_eq!(
            parse_stores(&many.join(",")),
            Err(StoresError::TooMany(MAX_KEY_STORES + 1))
        );
        assert!(parse_stores(&many[..MAX_KEY_STORES].join(",")).is_ok());
    }

    #[test]
    fn a_bound_key_acts_only_for_its_stores_and_an_unbound_one_for_all() {
        let store = |s: &str| StoreId::parse(s).unwrap();
        let mut caller = Caller::full_access("k");
        assert_eq!(caller.require_store(&store("shop-b")), Ok(()));
        caller.stores = Some(vec![store("shop-a")]);
        assert_eq!(caller.require_store(&store("shop-a")), Ok(()));
        assert_eq!(caller.require_store(&store("shop-b")), Err(StoreNotAllowed));
    }

    #[test]
    fn generated_keys_are_prefixed_random_and_hashed_as_hex() {
        let a = generate_key();
        let b = generate_key();
        assert!(a.expose_secret().starts_with("ge_"));
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_eq!(hash_key(a.expose_secret()).len(), 64);
    }

    #[test]
    fn a_client_gets_a_burst_of_failed_lookups_then_waits_and_others_are_unaffected() {
        let allowance = LookupAllowance::new(2);
        let a = Some(IpAddr::from([192, 0, 2, 1]));
        let b = Some(IpAddr::from([192, 0, 2, 2]));
        for n in 0..LOOKUP_BURST {
            assert_eq!(allowance.take(a), Ok(()), "lookup {n}");
        }
        let wait = allowance.take(a).expect_err("the burst is spent");
        assert!((1..=LOOKUP_REFILL.as_secs()).contains(&wait), "{wait}");
        // A lookup given back (it found a live key) can be taken again.
        allowance.give_back(a);
        assert_eq!(allowance.take(a), Ok(()));
        assert_eq!(allowance.take(b), Ok(()), "another client has its own");
        // The table is full of clients still short of their allowance: a third waits.
        assert_eq!(allowance.take(None), Err(1));
    }

    #[test]
    fn key_names_are_short_lower_case_words() {
        assert!(valid_key_name("posting-agent_2"));
        assert!(!valid_key_name(""));
        assert!(!valid_key_name("Posting"));
        assert!(!valid_key_name(&"a".repeat(65)));
    }
}
