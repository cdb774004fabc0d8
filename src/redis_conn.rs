//! The Redis handle the flow-state store and the token cache share, built so that Redis stays an
//! accelerator and never a dependency of serving a token.
//!
//! Every command goes through [`RedisHandle::call`], which bounds it by a short timeout and feeds a
//! circuit breaker. After a transport failure or a timeout the breaker opens: calls fail at once, with
//! no network, so a token read goes straight to the database instead of waiting on a partitioned
//! Redis. One background probe (one task per handle, started by the call that opened the breaker)
//! connects afresh and PINGs every second; when Redis answers it first deletes the cache keys that
//! could not be updated meanwhile (see [`RedisHandle::forget_when_back`]), then closes the breaker.
//!
//! Redis is one server (`REDIS_URL`) or the primary that Redis Sentinel names (`REDIS_SENTINELS`,
//! through the `redis` crate's `sentinel` module). With Sentinel, every connection (the shared one,
//! the probe's, a subscriber's) starts by asking a sentinel for the primary, which the crate then
//! checks with `ROLE`; so a failover is followed without a restart: the old primary's death (or its
//! demotion: Sentinel closes its clients, and a write to a replica answers `READONLY`) trips the
//! breaker like any outage, and the probe's next connection goes to the promoted replica. One task
//! per handle also listens to the sentinels' `+switch-master` announcement and trips the breaker
//! when it names our primary: in a planned failover the old primary stays up, as a primary, until
//! Sentinel demotes it, and writes sent to it meanwhile would be lost. When the
//! primary has moved, the keys registered with [`RedisHandle::forget_on_failover`] are deleted
//! before the breaker closes: replication is asynchronous, so the last writes acknowledged by the
//! old primary may be missing from the new one, and a cache entry must never go backwards.
//!
//! No lock is held across an await: the connection slot is a plain `RwLock` read only to clone the
//! (multiplexed, cheap-clone) connection, so callers never queue behind a reconnect. The handle does
//! not own what is stored: `state.rs` and `lifecycle/cache.rs` do.

use std::collections::HashSet;
use std::future::Future;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use futures::StreamExt;
use redis::aio::MultiplexedConnection;
use redis::sentinel::{SentinelClientBuilder, SentinelServerType};
use redis::{
    AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ErrorKind, RedisConnectionInfo, TlsMode,
};
use secrecy::{ExposeSecret, SecretString};

use crate::metrics::Metrics;

/// `REDIS_SENTINELS` and its companions: Redis found through Sentinel, so that a failover is
/// followed without a restart. The passwords are secrets (and may come from `<NAME>_FILE`).
#[derive(Debug, Clone)]
pub struct RedisSentinelSettings {
    /// `REDIS_SENTINELS`: the sentinels' addresses (`host:port`), asked in turn.
    pub sentinels: Vec<(String, u16)>,
    /// `REDIS_SENTINEL_MASTER`: the name the sentinels know the primary by.
    pub master: String,
    /// `REDIS_SENTINEL_USERNAME`: the ACL user for the sentinels, if any.
    pub sentinel_username: Option<String>,
    /// `REDIS_SENTINEL_PASSWORD`: the sentinels' own password (their `requirepass`), if any.
    pub sentinel_password: Option<SecretString>,
    /// `REDIS_SENTINEL_MASTER_USERNAME`: the ACL user for the primary, if any.
    pub master_username: Option<String>,
    /// `REDIS_SENTINEL_MASTER_PASSWORD`: the primary's (and replicas') password, if any.
    pub master_password: Option<SecretString>,
    /// `REDIS_SENTINEL_TLS` (default false): TLS to the sentinels and the primary, certificates
    /// checked against the system's CA store (as `rediss://`).
    pub tls: bool,
}

impl RedisSentinelSettings {
    /// The sentinels as `host:port,...`, for printing.
    pub fn addresses(&self) -> String {
        self.sentinels
            .iter()
            .map(|(host, port)| {
                if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// How long one command may take before Redis counts as unreachable, unless
/// `REDIS_TIMEOUT_MILLISECONDS` says otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// How often the probe tries Redis while the breaker is open: it bounds how long the service takes
/// to notice that Redis is back.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How often the failover watch, while no announcement comes, checks that a handle still exists
/// and that its sentinel still answers (a frozen one would announce nothing).
const WATCH_CHECK: Duration = Duration::from_secs(2);

/// The sentinels' announcement that a failover ended: `<name> <old ip> <old port> <new ip> <new
/// port>` (<https://redis.io/docs/latest/operate/oss_and_stack/management/sentinel/#pubsub-messages>).
const SWITCH_MASTER: &str = "+switch-master";

/// Keys remembered for deletion on recovery; past this, the caller's pattern is deleted instead.
const MAX_STALE_KEYS: usize = 10_000;

/// Why Redis could not serve a call. Never carries the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum RedisUnavailable {
    /// Redis answered with an error, or the connection failed.
    #[error("redis unavailable")]
    Failed(#[source] redis::RedisError),
    /// Redis did not answer within the timeout (frozen, partitioned, overloaded).
    #[error("redis did not answer in time")]
    TimedOut,
    /// Redis is known to be unreachable; the call was not attempted.
    #[error("redis is unreachable (circuit open)")]
    CircuitOpen,
}

/// What to delete once Redis is back: cache entries whose update could not be written.
#[derive(Default)]
struct StaleKeys {
    keys: HashSet<String>,
    /// Too many keys to remember: delete everything matching this `SCAN` pattern instead.
    overflow_pattern: Option<String>,
}

/// The breaker and the connection slot, shared by every clone of a handle.
#[derive(Default)]
struct Breaker {
    /// Held only to clone or replace the connection, never across an await.
    connection: RwLock<Option<MultiplexedConnection>>,
    open: AtomicBool,
    probing: AtomicBool,
    stale: Mutex<StaleKeys>,
    /// The primary moved and the failover patterns are not deleted yet (the probe retries).
    failover_pending: AtomicBool,
    /// The primary (`host:port`) the shared connection last went to, through Sentinel.
    primary: Mutex<Option<String>>,
    /// The failover watch is running (started by the first call, through Sentinel only).
    watching: AtomicBool,
    /// Wakes a waiting probe: the sentinels announced the new primary, no need to wait to ask.
    nudge: Arc<tokio::sync::Notify>,
}

impl Breaker {
    /// Records where the shared connection now goes; `true` if the primary moved.
    fn record_primary(&self, primary: Option<String>) -> bool {
        let Some(primary) = primary else {
            return false;
        };
        let previous = self
            .primary
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(primary.clone());
        let moved = previous.is_some_and(|previous| previous != primary);
        if moved {
            tracing::warn!(%primary, "redis sentinel names a new primary: following the failover");
        }
        moved
    }
}

/// Where the handle finds Redis.
enum Target {
    /// One server (`REDIS_URL`).
    Direct(redis::Client),
    /// The primary the sentinels name (`REDIS_SENTINELS`), asked for at every connection.
    Sentinel(SentinelTarget),
}

/// How to ask the sentinels, and what they answered last. Holds passwords: no `Debug`.
struct SentinelTarget {
    sentinels: Vec<ConnectionAddr>,
    master: String,
    sentinel_username: Option<String>,
    sentinel_password: Option<SecretString>,
    master_username: Option<String>,
    master_password: Option<SecretString>,
    tls: bool,
    /// The sentinel that answered last: asked first next time, so that a dead or frozen sentinel
    /// costs one timeout once rather than on every connection.
    preferred: AtomicUsize,
}

/// A connection target: the client to connect with and, through Sentinel, the primary's address
/// (`host:port`), to notice that it moved.
struct Resolved {
    client: redis::Client,
    primary: Option<String>,
}

impl Target {
    /// The client for the current primary, bounded by `timeout` per server asked.
    async fn resolve(&self, timeout: Duration) -> Result<Resolved, RedisUnavailable> {
        match self {
            Self::Direct(client) => Ok(Resolved {
                client: client.clone(),
                primary: None,
            }),
            // Boxed: the crate's sentinel futures are deep, and every caller's future would
            // otherwise contain them (past the compiler's layout depth limit).
            Self::Sentinel(sentinel) => Box::pin(sentinel.resolve(timeout)).await,
        }
    }
}

impl SentinelTarget {
    fn new(settings: &RedisSentinelSettings) -> Self {
        let sentinels = settings
            .sentinels
            .iter()
            .map(|(host, port)| {
                if settings.tls {
                    ConnectionAddr::TcpTls {
                        host: host.clone(),
                        port: *port,
                        insecure: false,
                        tls_params: None,
                    }
                } else {
                    ConnectionAddr::Tcp(host.clone(), *port)
                }
            })
            .collect();
        Self {
            sentinels,
            master: settings.master.clone(),
            sentinel_username: settings.sentinel_username.clone(),
            sentinel_password: settings.sentinel_password.clone(),
            master_username: settings.master_username.clone(),
            master_password: settings.master_password.clone(),
            tls: settings.tls,
            preferred: AtomicUsize::new(0),
        }
    }

    /// Asks the sentinels in turn (the last one that answered first), each bounded by twice
    /// `timeout` (two connections and two commands: `SENTINEL MASTERS` to the sentinel, `ROLE` to
    /// the primary it names), for a primary that answers `ROLE` as one. The crate's own client
    /// would try its sentinels in a fixed order with no time limit: one frozen sentinel would then
    /// hang every reconnect, so each is given a client of its own here.
    async fn resolve(&self, timeout: Duration) -> Result<Resolved, RedisUnavailable> {
        let timeout = timeout * 2;
        let count = self.sentinels.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_error = RedisUnavailable::TimedOut;
        for offset in 0..count {
            let index = (first + offset) % count;
            let asked = async {
                let mut client = self.client_for(index)?;
                client.async_get_client().await
            };
            match tokio::time::timeout(timeout, asked).await {
                Ok(Ok(client)) => {
                    self.preferred.store(index, Ordering::Relaxed);
                    let primary = Some(client.get_connection_info().addr.to_string());
                    return Ok(Resolved { client, primary });
                }
                Ok(Err(error)) => {
                    self.pass_over(index);
                    last_error = RedisUnavailable::Failed(error);
                }
                Err(_) => {
                    self.pass_over(index);
                    last_error = RedisUnavailable::TimedOut;
                }
            }
        }
        Err(last_error)
    }

    /// The sentinel at `index` did not help: the next one is asked first from now on (unless
    /// another attempt already moved on), so a frozen sentinel is not waited for every time.
    fn pass_over(&self, index: usize) {
        let next = (index + 1) % self.sentinels.len();
        let _ = self
            .preferred
            .compare_exchange(index, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A sentinel client for the sentinel at `index` alone, with the settings' credentials.
    fn client_for(&self, index: usize) -> redis::RedisResult<redis::sentinel::SentinelClient> {
        let address = self.sentinels[index % self.sentinels.len()].clone();
        let mut builder =
            SentinelClientBuilder::new([address], self.master.clone(), SentinelServerType::Master)?;
        if let Some(user) = &self.sentinel_username {
            builder = builder.set_client_to_sentinel_username(user.clone());
        }
        if let Some(password) = &self.sentinel_password {
            builder = builder.set_client_to_sentinel_password(password.expose_secret().to_owned());
        }
        if let Some(user) = &self.master_username {
            builder = builder.set_client_to_redis_username(user.clone());
        }
        if let Some(password) = &self.master_password {
            builder = builder.set_client_to_redis_password(password.expose_secret().to_owned());
        }
        if self.tls {
            builder = builder.set_client_to_redis_tls_mode(TlsMode::Secure);
        }
        builder.build()
    }

    /// A subscription to `+switch-master` on the first sentinel that accepts it (the last one
    /// that answered first), each bounded by `timeout`.
    async fn switch_announcements(
        &self,
        timeout: Duration,
    ) -> Result<redis::aio::PubSub, RedisUnavailable> {
        let count = self.sentinels.len();
        let first = self.preferred.load(Ordering::Relaxed);
        let mut last_error = RedisUnavailable::TimedOut;
        for offset in 0..count {
            let index = (first + offset) % count;
            let info = ConnectionInfo {
                addr: self.sentinels[index].clone(),
                redis: RedisConnectionInfo {
                    username: self.sentinel_username.clone(),
                    password: self
                        .sentinel_password
                        .as_ref()
                        .map(|p| p.expose_secret().to_owned()),
                    ..RedisConnectionInfo::default()
                },
            };
            let subscribe = async {
                let mut pubsub = redis::Client::open(info)?.get_async_pubsub().await?;
                pubsub.subscribe(SWITCH_MASTER).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            match tokio::time::timeout(timeout, subscribe).await {
                Ok(Ok(pubsub)) => return Ok(pubsub),
                Ok(Err(error)) => {
                    self.pass_over(index);
                    last_error = RedisUnavailable::Failed(error);
                }
                Err(_) => {
                    self.pass_over(index);
                    last_error = RedisUnavailable::TimedOut;
                }
            }
        }
        Err(last_error)
    }
}

/// A lazily connected Redis connection behind a circuit breaker, shared by the state store and the
/// cache.
#[derive(Clone)]
pub struct RedisHandle {
    /// Shared: handles are cloned with the services on every request, and a target holds strings.
    target: Arc<Target>,
    /// `SCAN` patterns (full keys) deleted when the primary has moved: see the module doc.
    failover_patterns: Arc<[String]>,
    prefix: Arc<str>,
    timeout: Duration,
    probe_interval: Duration,
    metrics: Option<Metrics>,
    breaker: Arc<Breaker>,
}

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHandle")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("available", &self.is_available())
            .finish_non_exhaustive()
    }
}

/// An error that says the connection (not the command) failed, so Redis should count as down.
fn is_transport_failure(error: &redis::RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
        || error.is_unrecoverable_error()
}

/// An error that says this server cannot serve us as the primary: a replica (`READONLY`: a
/// primary demoted by a failover), one that lost its primary (`MASTERDOWN`) or one still loading
/// its data (`LOADING`). The connection must be given up and the primary found again.
fn is_wrong_server(error: &redis::RedisError) -> bool {
    error.kind() == ErrorKind::ReadOnly
        || matches!(error.code(), Some("READONLY" | "MASTERDOWN" | "LOADING"))
}

impl RedisHandle {
    /// A handle for `url` with the default timeout; nothing is connected yet.
    pub fn new(url: &SecretString, prefix: &str) -> Result<Self, RedisUnavailable> {
        let client = redis::Client::open(url.expose_secret()).map_err(RedisUnavailable::Failed)?;
        Ok(Self::with_target(Target::Direct(client), prefix))
    }

    /// A handle for the primary the sentinels of `settings` name, with the default timeout;
    /// nothing is connected (and no sentinel asked) yet.
    pub fn sentinel(settings: &RedisSentinelSettings, prefix: &str) -> Self {
        Self::with_target(Target::Sentinel(SentinelTarget::new(settings)), prefix)
    }

    fn with_target(target: Target, prefix: &str) -> Self {
        Self {
            target: Arc::new(target),
            failover_patterns: Arc::new([]),
            prefix: prefix.into(),
            timeout: DEFAULT_TIMEOUT,
            probe_interval: PROBE_INTERVAL,
            metrics: None,
            breaker: Arc::default(),
        }
    }

    /// Deletes every key matching `pattern` (after the prefix) before Redis is used again on a
    /// primary that Sentinel promoted: for data that must never be older than what was last
    /// written, such as the token cache, whose newest writes the old primary may not have passed
    /// on. Without Sentinel the primary never moves and this does nothing.
    pub fn forget_on_failover(mut self, pattern: &str) -> Self {
        let mut patterns = self.failover_patterns.to_vec();
        patterns.push(self.key(pattern));
        self.failover_patterns = patterns.into();
        self
    }

    /// Whether the primary is found through Sentinel.
    pub fn through_sentinel(&self) -> bool {
        matches!(*self.target, Target::Sentinel(_))
    }

    /// Bounds every command (and connection attempt) by `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Counts the breaker's state changes in `metrics`.
    pub fn with_metrics(mut self, metrics: Metrics) -> Self {
        metrics.redis_available(self.is_available());
        self.metrics = Some(metrics);
        self
    }

    /// The key prefix every key of this deployment starts with.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// `false` while the breaker is open (Redis known to be unreachable). No I/O.
    pub fn is_available(&self) -> bool {
        !self.breaker.open.load(Ordering::Acquire)
    }

    /// Runs `op` on a connection, bounded by the timeout; fails at once while the breaker is open.
    /// A transport failure, a timeout or an answer from a server that is not the primary opens the
    /// breaker; any other error reply from Redis does not.
    pub async fn call<T, F, Fut>(&self, op: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_available() {
            return Err(RedisUnavailable::CircuitOpen);
        }
        // `load` first: the swap (a write to a shared line) happens once, not on every call.
        if self.through_sentinel()
            && !self.breaker.watching.load(Ordering::Relaxed)
            && !self.breaker.watching.swap(true, Ordering::AcqRel)
        {
            tokio::spawn(FailoverWatch::new(self).run());
        }
        let connection = match self.current_connection() {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        match tokio::time::timeout(self.timeout, op(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                if is_transport_failure(&error) || is_wrong_server(&error) {
                    self.trip();
                }
                Err(RedisUnavailable::Failed(error))
            }
            Err(_) => {
                self.trip();
                Err(RedisUnavailable::TimedOut)
            }
        }
    }

    /// A round trip, for health checks (through the breaker: no I/O while it is open).
    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        self.call(|mut conn| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(|_| ())
        })
        .await
    }

    /// Publishes `message` on `channel` (a full channel name), through the breaker. Returns how
    /// many subscribers received it.
    pub(crate) async fn publish(
        &self,
        channel: &str,
        message: &str,
    ) -> Result<i64, RedisUnavailable> {
        let command = redis::cmd("PUBLISH").arg(channel).arg(message).clone();
        self.call(|mut conn| async move { command.query_async(&mut conn).await })
            .await
    }

    /// A connection of its own in subscriber mode (a subscribed connection can carry nothing
    /// else), opened within the timeout. Not through the breaker: its owner watches it itself and
    /// must be able to come back before any other call trips the breaker closed.
    pub(crate) async fn subscriber(&self) -> Result<redis::aio::PubSub, RedisUnavailable> {
        let client = self.target.resolve(self.timeout).await?.client;
        match tokio::time::timeout(self.timeout, client.get_async_pubsub()).await {
            Ok(Ok(pubsub)) => Ok(pubsub),
            Ok(Err(error)) => Err(RedisUnavailable::Failed(error)),
            Err(_) => Err(RedisUnavailable::TimedOut),
        }
    }

    /// How long one command may take.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Remembers `key` (a full key) for deletion before the breaker closes again: an entry that
    /// could not be updated while Redis was unreachable must not be served once it is back. If too
    /// many keys pile up, every key matching `overflow_pattern` is deleted instead.
    pub(crate) fn forget_when_back(&self, key: String, overflow_pattern: &str) {
        let mut stale = self.breaker.stale.lock().unwrap_or_else(|p| p.into_inner());
        if stale.overflow_pattern.is_some() {
            return;
        }
        if stale.keys.len() >= MAX_STALE_KEYS {
            stale.keys.clear();
            stale.overflow_pattern = Some(overflow_pattern.to_owned());
        } else {
            stale.keys.insert(key);
        }
    }

    fn current_connection(&self) -> Option<MultiplexedConnection> {
        self.breaker
            .connection
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Opens a connection outside any lock (concurrent first callers may each open one; the last
    /// one stored wins and the others are dropped).
    async fn connect(&self) -> Result<MultiplexedConnection, RedisUnavailable> {
        match open_connection(&self.target, self.timeout).await {
            Ok((connection, primary)) => {
                // Normally only the first connection comes here (the probe makes the later ones);
                // a call racing with a trip may find a new primary first: the probe must clean
                // it before it is used.
                if self.breaker.record_primary(primary) {
                    self.breaker.failover_pending.store(true, Ordering::Release);
                    self.trip();
                    return Err(RedisUnavailable::CircuitOpen);
                }
                *self
                    .breaker
                    .connection
                    .write()
                    .unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
                Ok(connection)
            }
            Err(error) => {
                self.trip();
                Err(error)
            }
        }
    }

    /// Opens the breaker (if it was closed) and makes sure one probe is running.
    fn trip(&self) {
        self.trip_then_probe_after(self.probe_interval);
    }

    /// [`Self::trip`], with the probe's first attempt after `first_attempt` (a known switch of
    /// primary is worth trying at once; a failure is worth the interval).
    fn trip_then_probe_after(&self, first_attempt: Duration) {
        // The connection may be wedged (a frozen server): the probe opens a fresh one.
        self.breaker
            .connection
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if !self.breaker.open.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "redis is unreachable: serving tokens from the database until it answers again"
            );
            if let Some(metrics) = &self.metrics {
                metrics.redis_circuit_changed(false);
            }
        }
        if !self.breaker.probing.swap(true, Ordering::AcqRel) {
            let probe = Probe {
                target: self.target.clone(),
                failover_patterns: self.failover_patterns.clone(),
                timeout: self.timeout,
                interval: self.probe_interval,
                first_attempt,
                nudge: self.breaker.nudge.clone(),
                metrics: self.metrics.clone(),
                breaker: Arc::downgrade(&self.breaker),
            };
            tokio::spawn(probe.run());
        }
    }
}

/// A handle that does not keep the breaker alive: what the failover watch holds, so that it ends
/// with the last real handle.
struct WeakHandle {
    target: Arc<Target>,
    failover_patterns: Arc<[String]>,
    prefix: Arc<str>,
    timeout: Duration,
    probe_interval: Duration,
    metrics: Option<Metrics>,
    breaker: Weak<Breaker>,
}

impl WeakHandle {
    fn upgrade(&self) -> Option<RedisHandle> {
        Some(RedisHandle {
            target: self.target.clone(),
            failover_patterns: self.failover_patterns.clone(),
            prefix: self.prefix.clone(),
            timeout: self.timeout,
            probe_interval: self.probe_interval,
            metrics: self.metrics.clone(),
            breaker: self.breaker.upgrade()?,
        })
    }
}

/// The one task (per handle, through Sentinel) that listens for `+switch-master` and trips the
/// breaker when our primary is switched, so that the probe reconnects to the new one at once
/// rather than when the old one is demoted.
struct FailoverWatch {
    handle: WeakHandle,
}

impl FailoverWatch {
    fn new(handle: &RedisHandle) -> Self {
        Self {
            handle: WeakHandle {
                target: handle.target.clone(),
                failover_patterns: handle.failover_patterns.clone(),
                prefix: handle.prefix.clone(),
                timeout: handle.timeout,
                probe_interval: handle.probe_interval,
                metrics: handle.metrics.clone(),
                breaker: Arc::downgrade(&handle.breaker),
            },
        }
    }

    async fn run(self) {
        let Target::Sentinel(sentinel) = &*self.handle.target else {
            return;
        };
        loop {
            if self.handle.breaker.strong_count() == 0 {
                return;
            }
            // A sentinel may be down: the others are tried, and all of them again a little later.
            if let Ok(pubsub) = sentinel.switch_announcements(self.handle.timeout).await {
                if self.listen(pubsub, &sentinel.master).await.is_break() {
                    return;
                }
            }
            tokio::time::sleep(self.handle.probe_interval).await;
        }
    }

    /// Until the subscription is lost (`Continue`: subscribe again) or every handle is gone.
    async fn listen(&self, pubsub: redis::aio::PubSub, master: &str) -> ControlFlow<()> {
        let (mut sink, mut announcements) = pubsub.split();
        loop {
            match tokio::time::timeout(WATCH_CHECK, announcements.next()).await {
                Err(_) if self.handle.breaker.strong_count() == 0 => return ControlFlow::Break(()),
                Err(_) => {
                    // Subscribing again to the same channel is a round trip on this connection
                    // that proves the sentinel alive (a subscribed connection takes few commands).
                    let alive =
                        tokio::time::timeout(self.handle.timeout, sink.subscribe(SWITCH_MASTER));
                    if !matches!(alive.await, Ok(Ok(()))) {
                        return ControlFlow::Continue(());
                    }
                }
                Ok(None) => return ControlFlow::Continue(()),
                Ok(Some(message)) => {
                    let payload: String = message.get_payload().unwrap_or_default();
                    let mut words = payload.split(' ');
                    if words.next() != Some(master) {
                        continue;
                    }
                    let Some(handle) = self.handle.upgrade() else {
                        return ControlFlow::Break(());
                    };
                    let new_primary = words.skip(2).collect::<Vec<_>>().join(":");
                    let current = handle
                        .breaker
                        .primary
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    if handle.is_available() && current.as_deref() == Some(new_primary.as_str()) {
                        // The probe got there first (the primary died, and the sentinels named
                        // the new one before this announcement arrived).
                        continue;
                    }
                    tracing::warn!(
                        primary = %new_primary,
                        "redis sentinel switched the primary: reconnecting to it"
                    );
                    // The sentinels name the new primary already: no need to wait to ask them
                    // (a probe already waiting, after the old primary died, is woken).
                    handle.trip_then_probe_after(Duration::ZERO);
                    handle.breaker.nudge.notify_one();
                }
            }
        }
    }
}

/// A connection to the primary, and the primary's address when found through Sentinel.
async fn open_connection(
    target: &Target,
    timeout: Duration,
) -> Result<(MultiplexedConnection, Option<String>), RedisUnavailable> {
    let Resolved { client, primary } = target.resolve(timeout).await?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    match tokio::time::timeout(
        timeout,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    {
        Ok(Ok(connection)) => Ok((connection, primary)),
        Ok(Err(error)) => Err(RedisUnavailable::Failed(error)),
        Err(_) => Err(RedisUnavailable::TimedOut),
    }
}

/// The one task that watches an open breaker; it ends when it closes it, or when every handle is
/// gone.
struct Probe {
    target: Arc<Target>,
    failover_patterns: Arc<[String]>,
    timeout: Duration,
    interval: Duration,
    /// The wait before the first attempt (then `interval` between attempts).
    first_attempt: Duration,
    /// Cuts a wait short (held apart from the breaker, which the probe must not keep alive).
    nudge: Arc<tokio::sync::Notify>,
    metrics: Option<Metrics>,
    breaker: Weak<Breaker>,
}

impl Probe {
    async fn run(self) {
        let mut wait = self.first_attempt;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.nudge.notified() => {}
            }
            wait = self.interval;
            let Some(breaker) = self.breaker.upgrade() else {
                return;
            };
            let Ok(connection) = self.try_recover(&breaker).await else {
                continue;
            };
            *breaker
                .connection
                .write()
                .unwrap_or_else(|p| p.into_inner()) = Some(connection);
            // `probing` first: a failure racing with the close then starts a new probe rather than
            // leaving the breaker open with nobody watching it.
            breaker.probing.store(false, Ordering::Release);
            breaker.open.store(false, Ordering::Release);
            tracing::info!("redis answers again: the cache and shared flow state are back");
            if let Some(metrics) = &self.metrics {
                metrics.redis_circuit_changed(true);
            }
            return;
        }
    }

    /// A fresh connection that answers PING, after the stale keys are deleted through it (and,
    /// when the primary moved, every key of the failover patterns).
    async fn try_recover(&self, breaker: &Breaker) -> Result<MultiplexedConnection, ()> {
        let (mut connection, primary) = open_connection(&self.target, self.timeout)
            .await
            .map_err(|_| ())?;
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.timeout, ping.query_async::<String>(&mut connection)).await
        {
            Ok(Ok(_)) => {}
            _ => return Err(()),
        }
        let stale = std::mem::take(&mut *breaker.stale.lock().unwrap_or_else(|p| p.into_inner()));
        if breaker.record_primary(primary) {
            breaker.failover_pending.store(true, Ordering::Release);
        }
        let failover: &[String] = if breaker.failover_pending.load(Ordering::Acquire) {
            &self.failover_patterns
        } else {
            &[]
        };
        if let Err(error) = self.delete_stale(&mut connection, &stale, failover).await {
            tracing::warn!(error = %error, "could not drop cache entries written while redis was unreachable; retrying");
            let mut pending = breaker.stale.lock().unwrap_or_else(|p| p.into_inner());
            pending.keys.extend(stale.keys);
            if pending.overflow_pattern.is_none() {
                pending.overflow_pattern = stale.overflow_pattern;
            }
            return Err(());
        }
        breaker.failover_pending.store(false, Ordering::Release);
        Ok(connection)
    }

    async fn delete_stale(
        &self,
        connection: &mut MultiplexedConnection,
        stale: &StaleKeys,
        failover_patterns: &[String],
    ) -> Result<(), RedisUnavailable> {
        let mut keys: Vec<String> = stale.keys.iter().cloned().collect();
        for pattern in stale.overflow_pattern.iter().chain(failover_patterns) {
            let mut cursor = 0u64;
            loop {
                let mut scan = redis::cmd("SCAN");
                scan.arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000);
                let (next, found): (u64, Vec<String>) =
                    tokio::time::timeout(self.timeout, scan.query_async(connection))
                        .await
                        .map_err(|_| RedisUnavailable::TimedOut)?
                        .map_err(RedisUnavailable::Failed)?;
                keys.extend(found);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        for chunk in keys.chunks(500) {
            let mut delete = redis::cmd("DEL");
            delete.arg(chunk);
            tokio::time::timeout(self.timeout, delete.query_async::<i64>(connection))
                .await
                .map_err(|_| RedisUnavailable::TimedOut)?
                .map_err(RedisUnavailable::Failed)?;
        }
        Ok(())
    }
}
