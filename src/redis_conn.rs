//! A Redis handle that survives Redis being down: it connects on first use, reconnects by itself
//! (redis' `ConnectionManager`), and fails fast instead of hanging when Redis is unreachable.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Mutex;

/// Why Redis could not serve a call. Never carries the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
#[error("redis unavailable")]
pub struct RedisUnavailable(#[source] pub redis::RedisError);

/// A lazily connected, self-healing Redis connection shared by the state store and the cache.
#[derive(Clone)]
pub struct RedisHandle {
    client: redis::Client,
    manager: Arc<Mutex<Option<ConnectionManager>>>,
    prefix: Arc<str>,
}

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHandle")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisHandle {
    /// A handle for `url`; nothing is connected yet.
    pub fn new(url: &SecretString, prefix: &str) -> Result<Self, RedisUnavailable> {
        let client = redis::Client::open(url.expose_secret()).map_err(RedisUnavailable)?;
        Ok(Self {
            client,
            manager: Arc::new(Mutex::new(None)),
            prefix: prefix.into(),
        })
    }

    /// The key prefix every key of this deployment starts with.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// A connection, opened if need be.
    pub async fn connection(&self) -> Result<ConnectionManager, RedisUnavailable> {
        let mut slot = self.manager.lock().await;
        if let Some(manager) = slot.as_ref() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2))
            .set_number_of_retries(1);
        let manager = ConnectionManager::new_with_config(self.client.clone(), config)
            .await
            .map_err(RedisUnavailable)?;
        *slot = Some(manager.clone());
        Ok(manager)
    }

    /// A round trip, for health checks.
    pub async fn ping(&self) -> Result<(), RedisUnavailable> {
        let mut conn = self.connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(|_| ())
            .map_err(RedisUnavailable)
    }
}
