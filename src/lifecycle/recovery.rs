//! Recovery records: a renewed token set the database refused to store, kept until it is written.
//!
//! A platform that rotates refresh tokens invalidates the old one as soon as it answers, so a
//! renewed set that cannot be written must not be dropped. It is kept sealed (the vault binds it to
//! its store and platform) in this process's memory and in Redis under `recovery:{connection id}`,
//! where any replica finds it: every refresh looks for a record after taking the lease and writes
//! it first, and a background pass writes the ones held in memory as soon as the database answers.
//! With Redis down too, memory alone holds the set, and the log says so loudly.
//!
//! A record names the grant it belongs to: `base`, a fingerprint (SHA-256) of the access and
//! refresh tokens the renewal started from, which the row still holds while its write is pending.
//! It is applied only to a row that holds exactly those tokens, under that row's refresh lease (a
//! reconnect's upsert clears the lease, so a reconnect landing between the check and the write
//! makes the write a conflict); any other row (a reconnect's new grant, the same id) drops it. A
//! recorded grant also deletes the connection's record (`grants.rs`).
//!
//! This module owns the records' storage; `refresh.rs` decides when to write and apply them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use super::merge::Sealed;
use crate::domain::{PlatformId, StoreId, TokenSet};
use crate::redis_conn::RedisHandle;

/// How long Redis keeps a record: far longer than any outage worth surviving.
const RECORD_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// A renewed token set waiting to be written.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct RecoveryRecord {
    /// The connection it belongs to.
    pub connection_id: Uuid,
    /// Its store.
    pub store_id: StoreId,
    /// Its platform.
    pub platform: PlatformId,
    /// The sealed token set.
    pub sealed: Sealed,
    /// When the platform issued it.
    pub renewed_at: DateTime<Utc>,
    /// The grant it renews: [`fingerprint`] of the token set the renewal started from. `None` only
    /// in records kept by an older release.
    #[serde(default)]
    pub base: Option<String>,
    /// The lease owner whose write failed (this process only): its lease may still be live.
    #[serde(skip)]
    pub owner: Option<String>,
}

/// A one-way fingerprint of a token set's grant (its access and refresh tokens): equal for the
/// same grant however it is sealed, different after a reconnect or a renewal. Never logged.
pub(crate) fn fingerprint(tokens: &TokenSet) -> String {
    let mut hash = Sha256::new();
    hash.update(b"growth-engine recovery base\0");
    hash.update(tokens.access_token.expose_secret().as_bytes());
    hash.update(b"\0");
    if let Some(refresh) = &tokens.refresh_token {
        hash.update(b"r");
        hash.update(refresh.expose_secret().as_bytes());
    }
    hex::encode(hash.finalize())
}

/// Where recovery records live: this process's memory, and Redis when configured.
#[derive(Debug, Clone, Default)]
pub(crate) struct RecoveryStore {
    memory: Arc<Mutex<HashMap<Uuid, RecoveryRecord>>>,
    redis: Option<RedisHandle>,
}

impl RecoveryStore {
    /// Records kept in memory and, when given, in Redis.
    pub(crate) fn new(redis: Option<RedisHandle>) -> Self {
        Self {
            memory: Arc::default(),
            redis,
        }
    }

    fn key(redis: &RedisHandle, id: Uuid) -> String {
        redis.key(&format!("recovery:{id}"))
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, RecoveryRecord>> {
        self.memory
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Keeps a record (memory first: it cannot fail).
    pub(crate) async fn keep(&self, record: RecoveryRecord) {
        self.memory().insert(record.connection_id, record.clone());
        let Some(redis) = &self.redis else {
            tracing::error!(connection_id = %record.connection_id, "a renewed token set is held in memory only (no Redis): it is lost if this process stops before the database answers");
            return;
        };
        let result = async {
            let body = serde_json::to_string(&record).map_err(|e| e.to_string())?;
            let mut command = redis::cmd("SET");
            command
                .arg(Self::key(redis, record.connection_id))
                .arg(body)
                .arg("EX")
                .arg(RECORD_TTL_SECONDS);
            redis
                .call(|mut conn| async move { command.query_async::<()>(&mut conn).await })
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        if let Err(error) = result {
            tracing::error!(connection_id = %record.connection_id, %error, "Redis refused a recovery record: the renewed token set is held in this process's memory only until the database answers");
        }
    }

    /// The record of a connection: memory first, then Redis (another replica's).
    pub(crate) async fn find(&self, id: Uuid) -> Option<RecoveryRecord> {
        if let Some(record) = self.memory().get(&id).cloned() {
            return Some(record);
        }
        let redis = self.redis.as_ref()?;
        let mut command = redis::cmd("GET");
        command.arg(Self::key(redis, id));
        let body: Option<String> = redis
            .call(|mut conn| async move { command.query_async(&mut conn).await })
            .await
            .map_err(|e| tracing::warn!(error = %e, "recovery records unreadable"))
            .ok()?;
        serde_json::from_str(&body?).ok()
    }

    /// Forgets a record once its tokens are in the database.
    pub(crate) async fn forget(&self, id: Uuid) {
        self.memory().remove(&id);
        let Some(redis) = &self.redis else {
            return;
        };
        let mut command = redis::cmd("DEL");
        command.arg(Self::key(redis, id));
        if let Err(error) = redis
            .call(|mut conn| async move { command.query_async::<()>(&mut conn).await })
            .await
        {
            // A stale record is harmless: applying it is skipped once the row is newer.
            tracing::warn!(%error, "could not delete a written recovery record");
        }
    }

    /// The records this process holds in memory.
    pub(crate) fn pending(&self) -> Vec<RecoveryRecord> {
        self.memory().values().cloned().collect()
    }
}
