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
//! No lock is held across an await: the connection slot is a plain `RwLock` read only to clone the
//! (multiplexed, cheap-clone) connection, so callers never queue behind a reconnect. The handle does
//! not own what is stored: `state.rs` and `lifecycle/cache.rs` do.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::AsyncConnectionConfig;
use secrecy::{ExposeSecret, SecretString};

use crate::metrics::Metrics;

/// How long one command may take before Redis counts as unreachable, unless
/// `REDIS_TIMEOUT_MILLISECONDS` says otherwise.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);

/// How often the probe tries Redis while the breaker is open: it bounds how long the service takes
/// to notice that Redis is back.
const PROBE_INTERVAL: Duration = Duration::from_secs(1);

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
}

/// A lazily connected Redis connection behind a circuit breaker, shared by the state store and the
/// cache.
#[derive(Clone)]
pub struct RedisHandle {
    /// Shared: handles are cloned with the services on every request, and a client holds strings.
    client: Arc<redis::Client>,
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

impl RedisHandle {
    /// A handle for `url` with the default timeout; nothing is connected yet.
    pub fn new(url: &SecretString, prefix: &str) -> Result<Self, RedisUnavailable> {
        let client = redis::Client::open(url.expose_secret()).map_err(RedisUnavailable::Failed)?;
        Ok(Self {
            client: Arc::new(client),
            prefix: prefix.into(),
            timeout: DEFAULT_TIMEOUT,
            probe_interval: PROBE_INTERVAL,
            metrics: None,
            breaker: Arc::default(),
        })
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
    /// A transport failure or a timeout opens the breaker; an error reply from Redis does not.
    pub async fn call<T, F, Fut>(&self, op: F) -> Result<T, RedisUnavailable>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_available() {
            return Err(RedisUnavailable::CircuitOpen);
        }
        let connection = match self.current_connection() {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        match tokio::time::timeout(self.timeout, op(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                if is_transport_failure(&error) {
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
        match tokio::time::timeout(self.timeout, self.client.get_async_pubsub()).await {
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
        match open_connection(&self.client, self.timeout).await {
            Ok(connection) => {
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
                client: self.client.clone(),
                timeout: self.timeout,
                interval: self.probe_interval,
                metrics: self.metrics.clone(),
                breaker: Arc::downgrade(&self.breaker),
            };
            tokio::spawn(probe.run());
        }
    }
}

async fn open_connection(
    client: &redis::Client,
    timeout: Duration,
) -> Result<MultiplexedConnection, RedisUnavailable> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(timeout)
        .set_response_timeout(timeout);
    match tokio::time::timeout(
        timeout,
        client.get_multiplexed_async_connection_with_config(&config),
    )
    .await
    {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(error)) => Err(RedisUnavailable::Failed(error)),
        Err(_) => Err(RedisUnavailable::TimedOut),
    }
}

/// The one task that watches an open breaker; it ends when it closes it, or when every handle is
/// gone.
struct Probe {
    client: Arc<redis::Client>,
    timeout: Duration,
    interval: Duration,
    metrics: Option<Metrics>,
    breaker: Weak<Breaker>,
}

impl Probe {
    async fn run(self) {
        loop {
            tokio::time::sleep(self.interval).await;
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

    /// A fresh connection that answers PING, after the stale keys are deleted through it.
    async fn try_recover(&self, breaker: &Breaker) -> Result<MultiplexedConnection, ()> {
        let mut connection = open_connection(&self.client, self.timeout)
            .await
            .map_err(|_| ())?;
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.timeout, ping.query_async::<String>(&mut connection)).await
        {
            Ok(Ok(_)) => {}
            _ => return Err(()),
        }
        let stale = std::mem::take(&mut *breaker.stale.lock().unwrap_or_else(|p| p.into_inner()));
        if let Err(error) = self.delete_stale(&mut connection, &stale).await {
            tracing::warn!(error = %error, "could not drop cache entries written while redis was unreachable; retrying");
            let mut pending = breaker.stale.lock().unwrap_or_else(|p| p.into_inner());
            pending.keys.extend(stale.keys);
            if pending.overflow_pattern.is_none() {
                pending.overflow_pattern = stale.overflow_pattern;
            }
            return Err(());
        }
        Ok(connection)
    }

    async fn delete_stale(
        &self,
        connection: &mut MultiplexedConnection,
        stale: &StaleKeys,
    ) -> Result<(), RedisUnavailable> {
        let mut keys: Vec<String> = stale.keys.iter().cloned().collect();
        if let Some(pattern) = &stale.overflow_pattern {
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
