//! The PostgreSQL store: production's source of truth, shared by every replica.
//!
//! The pool is tuned for outages and restarts: connections open lazily (the service starts while
//! PostgreSQL is down), a request waits at most [`ACQUIRE_TIMEOUT`] for a connection and then gets a
//! prompt 503 instead of hanging, every connection is checked before use so the ones a restart
//! killed are replaced by themselves, and every statement is cut by the server after the statement
//! timeout so that nothing (a webhook batch, a stuck lock) holds a connection for ever. What
//! neither bounds, a statement whose answer a partition lost, [`PgStore::call_limit`] does (the service
//! wraps this store in [`Bounded`](super::Bounded)).

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};

/// How long a request waits for a pooled connection before answering 503.
pub(crate) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The default statement timeout (`DATABASE_STATEMENT_TIMEOUT_SECONDS` once settings carry it).
pub(crate) const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Slack past the acquire and statement timeouts before a call that has had no answer is given up.
const CALL_MARGIN: Duration = Duration::from_secs(2);

/// Connections in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects lazily with the default statement timeout: the pool opens connections on first use,
    /// so the service starts (and reports itself unhealthy) while PostgreSQL is down, and recovers
    /// when it comes back.
    pub async fn connect(url: &str) -> Result<Self, crate::store::contract::StoreError> {
        Self::connect_with(url, DEFAULT_STATEMENT_TIMEOUT).await
    }

    /// Connects lazily; the server cancels any statement running longer than `statement_timeout`.
    pub async fn connect_with(
        url: &str,
        statement_timeout: Duration,
    ) -> Result<Self, crate::store::contract::StoreError> {
        // Sent in the startup packet (`options=-c statement_timeout=...`), so every connection the
        // pool ever opens carries it, with no extra round trip per connection.
        let options = PgConnectOptions::from_str(url)?.options([(
            "statement_timeout",
            format!("{}ms", statement_timeout.as_millis().max(1)),
        )]);
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection a restart killed fails this check and is replaced, not handed out.
            .test_before_acquire(true)
            .idle_timeout(Duration::from_secs(300))
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// The longest one store call waits for PostgreSQL with this statement timeout: a connection,
    /// then a statement the server would have cancelled by now, then a margin. Past it the answer
    /// was lost on the way.
    pub fn call_limit(statement_timeout: Duration) -> Duration {
        ACQUIRE_TIMEOUT + statement_timeout + CALL_MARGIN
    }

    /// The underlying pool (benchmarks and tests seed through it).
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

super::sql::impl_store!(
    PgStore,
    sqlx::Postgres,
    "postgres",
    sqlx::migrate!("./migrations/postgres"),
    "select now()",
    " for update skip locked",
    "(case when jsonb_typeof(metadata->'data_access_expires_at') = 'number' then (metadata->>'data_access_expires_at')::numeric end)"
);

super::posts::impl_post_store!(
    crate::store::pg::PgStore,
    sqlx::Postgres,
    " for update skip locked"
);
