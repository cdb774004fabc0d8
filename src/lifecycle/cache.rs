//! The read-through cache of connections (tokens still sealed) in Redis.
//!
//! PostgreSQL stays the source of truth; the cache only saves a round trip. It never goes backwards:
//! every entry carries an order key `{row id (UUIDv7, time-ordered)}|{version}`, and a Lua script
//! writes only a strictly newer key. Writers write their new row through after committing; a delete
//! leaves a tombstone with the highest version of that row id. So a reader that loaded an old row
//! before a write cannot put it back over the newer one.
//!
//! Redis failures are misses: reads fall back to the database, and while the handle's circuit
//! breaker is open they do not even try Redis. An entry that could not be updated or removed during
//! an outage is deleted before the breaker closes, so no stale copy outlives the outage.

use std::time::Duration;

use crate::domain::{Connection, PlatformId, StoreId};
use crate::redis_conn::{RedisHandle, RedisUnavailable};

const TOMBSTONE_VERSION: i64 = 99_999_999_999_999_999;

/// Writes `ARGV[2]` under `KEYS[1]` (with expiry `ARGV[3]` seconds) only if the stored order key is
/// older than `ARGV[1]`. Order keys are fixed-width, so byte-wise comparison orders them.
const SET_IF_NEWER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local cut = string.find(current, '\n', 1, true)
  if cut and string.sub(current, 1, cut - 1) >= ARGV[1] then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1] .. '\n' .. ARGV[2], 'EX', ARGV[3])
return 1
";

/// The connection cache; `None` backend when Redis is not configured.
#[derive(Debug, Clone)]
pub struct TokenCache {
    redis: Option<RedisHandle>,
    ttl: Duration,
}

fn order_key(connection: &Connection, version: i64) -> String {
    format!("{}|{version:020}", connection.id)
}

impl TokenCache {
    /// A cache in Redis, or none.
    pub fn new(redis: Option<RedisHandle>, ttl: Duration) -> Self {
        Self { redis, ttl }
    }

    fn key(redis: &RedisHandle, store_id: &StoreId, platform: &PlatformId) -> String {
        redis.key(&format!("conn:{}:{}", platform, store_id))
    }

    /// The cached connection, if any. A tombstone or any Redis failure reads as a miss; while the
    /// breaker is open this costs no I/O at all.
    pub async fn get(&self, store_id: &StoreId, platform: &PlatformId) -> Option<Connection> {
        let redis = self.redis.as_ref()?;
        let command = redis::cmd("GET")
            .arg(Self::key(redis, store_id, platform))
            .clone();
        let value: Option<String> = redis
            .call(|mut conn| async move { command.query_async(&mut conn).await })
            .await
            .map_err(|e| match e {
                RedisUnavailable::CircuitOpen => {}
                other => tracing::warn!(error = %other, "token cache read failed"),
            })
            .ok()?;
        let (_, body) = value?
            .split_once('\n')
            .map(|(a, b)| (a.to_owned(), b.to_owned()))?;
        if body.is_empty() {
            return None;
        }
        serde_json::from_str(&body).ok()
    }

    /// Puts a connection read from (or just written to) the database, unless a newer one is there.
    pub async fn put(&self, connection: &Connection) {
        let body = match serde_json::to_string(connection) {
            Ok(body) => body,
            Err(_) => return,
        };
        self.write(connection, order_key(connection, connection.version), body)
            .await;
    }

    /// Marks a deleted connection so that no older copy of it can be cached again.
    pub async fn tombstone(&self, connection: &Connection) {
        self.write(
            connection,
            order_key(connection, TOMBSTONE_VERSION),
            String::new(),
        )
        .await;
    }

    async fn write(&self, connection: &Connection, order: String, body: String) {
        let Some(redis) = &self.redis else {
            return;
        };
        static SCRIPT: std::sync::LazyLock<redis::Script> =
            std::sync::LazyLock::new(|| redis::Script::new(SET_IF_NEWER));
        let key = Self::key(redis, &connection.store_id, &connection.platform);
        let mut invocation = SCRIPT.key(&key);
        invocation
            .arg(order)
            .arg(body)
            .arg(self.ttl.as_secs().max(1));
        let result = redis
            .call(|mut conn| async move { invocation.invoke_async::<i64>(&mut conn).await })
            .await;
        let Err(error) = result else {
            return;
        };
        if !matches!(error, RedisUnavailable::CircuitOpen) {
            tracing::warn!(error = %error, "token cache write failed; dropping the entry");
        }
        // An entry that could not move forward must not stay behind: remove it now if Redis
        // answers, and in any case before the cache is used again after an outage.
        let del = redis::cmd("DEL").arg(&key).clone();
        let deleted = redis
            .call(|mut conn| async move { del.query_async::<()>(&mut conn).await })
            .await;
        if deleted.is_err() {
            redis.forget_when_back(key, &redis.key("conn:*"));
        }
    }
}
