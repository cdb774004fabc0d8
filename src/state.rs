//! The flow-state store: short-lived, single-use records (OAuth states, first-hop tickets), in Redis
//! when replicas share it, or in process for the embedded default.
//!
//! A record is looked up by the SHA-256 of its secret (the state value never appears as a key), sealed
//! by the vault (the PKCE verifier inside is never stored in clear), expires after its TTL, and is
//! consumed atomically: `GETDEL` in Redis, a map removal under one lock in process. Of any number of
//! concurrent takers, exactly one gets the record.
//!
//! A kind of record that must not simply vanish (a parked grant, which is revoked at the platform
//! when nobody settles it) is also put on a due index ([`FlowStates::schedule_reap`]): a sorted
//! set of lookup keys by due time (milliseconds) in Redis, a list in process.
//! [`FlowStates::take_next_due`] takes one record whose time has come, by the same atomic take, so
//! that of several replicas reaping at once exactly one gets a record, and a record already taken
//! (settled) is simply skipped.
//!
//! Redis calls go through the handle's circuit breaker: while Redis is known to be unreachable, a
//! flow fails at once with [`StateError::Unavailable`] (a 503 `state_store_unavailable`) instead of
//! waiting on a dead connection.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use secrecy::ExposeSecret;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::SharedClock;
use crate::redis_conn::{RedisHandle, RedisUnavailable};
use crate::vault::{Binding, Keyring};

/// Why the store could not serve a call.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Redis is down; no flow can start or finish until it is back.
    #[error(transparent)]
    Unavailable(#[from] RedisUnavailable),
    /// A record failed to open (tampered with, or sealed by an unknown key).
    #[error("stored flow state is unreadable")]
    Unreadable,
}

#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    expires_at: DateTime<Utc>,
    value: T,
}

/// In-process records: lookup key to (expiry, sealed value).
type MemoryRecords = Arc<Mutex<HashMap<String, (DateTime<Utc>, String)>>>;

/// The in-process due index: (due time, lookup key).
type MemoryDue = Arc<Mutex<Vec<(DateTime<Utc>, String)>>>;

#[derive(Clone)]
enum Backend {
    Redis(Box<RedisHandle>),
    Memory(MemoryRecords, MemoryDue),
}

/// Single-use, expiring records.
#[derive(Clone)]
pub struct FlowStates {
    backend: Backend,
    keyring: Arc<Keyring>,
    clock: SharedClock,
}

impl std::fmt::Debug for FlowStates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.backend {
            Backend::Redis(_) => "FlowStates(redis)",
            Backend::Memory(..) => "FlowStates(in-process)",
        })
    }
}

impl FlowStates {
    /// Records in Redis, shared by replicas.
    pub fn redis(redis: RedisHandle, keyring: Arc<Keyring>, clock: SharedClock) -> Self {
        Self {
            backend: Backend::Redis(Box::new(redis)),
            keyring,
            clock,
        }
    }

    /// Records in this process only (one replica, development).
    pub fn in_process(keyring: Arc<Keyring>, clock: SharedClock) -> Self {
        Self {
            backend: Backend::Memory(Arc::default(), Arc::default()),
            keyring,
            clock,
        }
    }

    /// `redis` or `in-process`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Redis(_) => "redis",
            Backend::Memory(..) => "in-process",
        }
    }

    fn lookup_key(kind: &str, secret: &str) -> String {
        format!("{kind}:{}", hex::encode(Sha256::digest(secret.as_bytes())))
    }

    /// Stores `value` under `secret` for `ttl`.
    pub async fn put<T: Serialize>(
        &self,
        kind: &str,
        secret: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<(), StateError> {
        let key = Self::lookup_key(kind, secret);
        let expires_at = self.clock.now() + ttl;
        let plain = serde_json::to_vec(&Envelope { expires_at, value })
            .map_err(|_| StateError::Unreadable)?;
        let sealed = self.keyring.seal(Binding::FlowState(&key), &plain);
        match &self.backend {
            Backend::Redis(redis) => {
                let ttl_secs = u64::try_from(ttl.num_seconds().max(1)).unwrap_or(1);
                let command = redis::cmd("SET")
                    .arg(redis.key(&key))
                    .arg(sealed)
                    .arg("EX")
                    .arg(ttl_secs)
                    .clone();
                redis
                    .call(|mut conn| async move { command.query_async::<()>(&mut conn).await })
                    .await?;
            }
            Backend::Memory(map, _) => {
                let now = self.clock.now();
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                map.retain(|_, (expiry, _)| *expiry > now);
                map.insert(key, (expires_at, sealed));
            }
        }
        Ok(())
    }

    /// Records that `secret` was used; `false` if it already was within `ttl`. For bearer links that
    /// must work once (Redis `SET NX`, or an insert-if-absent under the lock in process).
    pub(crate) async fn claim_once(
        &self,
        kind: &str,
        secret: &str,
        ttl: Duration,
    ) -> Result<bool, StateError> {
        let key = Self::lookup_key(kind, secret);
        let expires_at = self.clock.now() + ttl;
        match &self.backend {
            Backend::Redis(redis) => {
                let ttl_secs = u64::try_from(ttl.num_seconds().max(1)).unwrap_or(1);
                let command = redis::cmd("SET")
                    .arg(redis.key(&key))
                    .arg("used")
                    .arg("NX")
                    .arg("EX")
                    .arg(ttl_secs)
                    .clone();
                let set: Option<String> = redis
                    .call(|mut conn| async move { command.query_async(&mut conn).await })
                    .await?;
                Ok(set.is_some())
            }
            Backend::Memory(map, _) => {
                let now = self.clock.now();
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                map.retain(|_, (expiry, _)| *expiry > now);
                if map.contains_key(&key) {
                    return Ok(false);
                }
                map.insert(key, (expires_at, String::new()));
                Ok(true)
            }
        }
    }

    /// Reads the record under `secret` without consuming it (a confirmation page shows what it is
    /// about to confirm; the confirmation itself still [`FlowStates::take`]s it).
    pub async fn peek<T: DeserializeOwned>(
        &self,
        kind: &str,
        secret: &str,
    ) -> Result<Option<T>, StateError> {
        let key = Self::lookup_key(kind, secret);
        let sealed: Option<String> = match &self.backend {
            Backend::Redis(redis) => {
                let command = redis::cmd("GET").arg(redis.key(&key)).clone();
                redis
                    .call(|mut conn| async move { command.query_async(&mut conn).await })
                    .await?
            }
            Backend::Memory(map, _) => map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&key)
                .map(|(_, sealed)| sealed.clone()),
        };
        self.open_record(&key, sealed)
    }

    fn open_record<T: DeserializeOwned>(
        &self,
        key: &str,
        sealed: Option<String>,
    ) -> Result<Option<T>, StateError> {
        let Some(sealed) = sealed else {
            return Ok(None);
        };
        let plain = self
            .keyring
            .open(Binding::FlowState(key), &sealed)
            .map_err(|_| StateError::Unreadable)?;
        let envelope: Envelope<T> =
            serde_json::from_slice(plain.expose_secret()).map_err(|_| StateError::Unreadable)?;
        // Redis' TTL is the first line; the clock check makes expiry exact and testable.
        if envelope.expires_at <= self.clock.now() {
            return Ok(None);
        }
        Ok(Some(envelope.value))
    }

    /// Removes and returns the record under `secret`, if it exists and has not expired. Only one caller
    /// ever gets a given record.
    pub async fn take<T: DeserializeOwned>(
        &self,
        kind: &str,
        secret: &str,
    ) -> Result<Option<T>, StateError> {
        let key = Self::lookup_key(kind, secret);
        let sealed: Option<String> = match &self.backend {
            Backend::Redis(redis) => {
                let command = redis::cmd("GETDEL").arg(redis.key(&key)).clone();
                redis
                    .call(|mut conn| async move { command.query_async(&mut conn).await })
                    .await?
            }
            Backend::Memory(map, _) => map
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&key)
                .map(|(_, sealed)| sealed),
        };
        self.open_record(&key, sealed)
    }

    /// Puts the record under `secret` on `kind`'s due index, to be taken by
    /// [`FlowStates::take_next_due`] from `due_at` on (the record's TTL must outlast `due_at`).
    /// Call it before putting the record: an index entry without a record is skipped, a record
    /// without an index entry would never be reaped.
    pub async fn schedule_reap(
        &self,
        kind: &str,
        secret: &str,
        due_at: DateTime<Utc>,
    ) -> Result<(), StateError> {
        let key = Self::lookup_key(kind, secret);
        match &self.backend {
            Backend::Redis(redis) => {
                // Milliseconds: a score in whole seconds would make a record due up to a second
                // early.
                let command = redis::cmd("ZADD")
                    .arg(redis.key(&Self::due_index(kind)))
                    .arg(due_at.timestamp_millis())
                    .arg(key)
                    .clone();
                redis
                    .call(|mut conn| async move { command.query_async::<()>(&mut conn).await })
                    .await?;
            }
            Backend::Memory(_, due) => due
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((due_at, key)),
        }
        Ok(())
    }

    /// Takes the next record of `kind` whose due time has come and that nobody took before, with
    /// the atomic take (of concurrent reapers, one gets it); `None` when none is due. Index
    /// entries whose record is gone (settled, taken by another reaper, expired) are dropped on the
    /// way, as are unreadable records (logged).
    pub async fn take_next_due<T: DeserializeOwned>(
        &self,
        kind: &str,
    ) -> Result<Option<T>, StateError> {
        loop {
            let Some((key, sealed)) = self.take_first_due(kind).await? else {
                return Ok(None);
            };
            match self.open_record(&key, sealed) {
                Ok(Some(value)) => return Ok(Some(value)),
                Ok(None) => {}
                Err(_) => tracing::warn!(kind, "a due flow-state record was unreadable: dropped"),
            }
        }
    }

    /// Removes the first due entry of `kind`'s index and takes its record (`None` inside when the
    /// record is gone); `None` when nothing is due. Each call removes one entry, so a caller that
    /// loops always ends.
    async fn take_first_due(
        &self,
        kind: &str,
    ) -> Result<Option<(String, Option<String>)>, StateError> {
        let now = self.clock.now();
        match &self.backend {
            Backend::Redis(redis) => {
                let index = redis.key(&Self::due_index(kind));
                let first = redis::cmd("ZRANGEBYSCORE")
                    .arg(&index)
                    .arg("-inf")
                    .arg(now.timestamp_millis())
                    .arg("LIMIT")
                    .arg(0)
                    .arg(1)
                    .clone();
                let keys: Vec<String> = redis
                    .call(|mut conn| async move { first.query_async(&mut conn).await })
                    .await?;
                let Some(key) = keys.into_iter().next() else {
                    return Ok(None);
                };
                let take = redis::pipe()
                    .cmd("GETDEL")
                    .arg(redis.key(&key))
                    .cmd("ZREM")
                    .arg(&index)
                    .arg(&key)
                    .ignore()
                    .clone();
                let (sealed,): (Option<String>,) = redis
                    .call(|mut conn| async move { take.query_async(&mut conn).await })
                    .await?;
                Ok(Some((key, sealed)))
            }
            Backend::Memory(map, due) => {
                let mut due = due.lock().unwrap_or_else(|p| p.into_inner());
                let Some(position) = due.iter().position(|(at, _)| *at <= now) else {
                    return Ok(None);
                };
                let (_, key) = due.swap_remove(position);
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                let sealed = map.remove(&key).map(|(_, sealed)| sealed);
                Ok(Some((key, sealed)))
            }
        }
    }

    fn due_index(kind: &str) -> String {
        format!("due:{kind}")
    }
}
