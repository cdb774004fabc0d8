//! The PostgreSQL store: production's source of truth, shared by every replica.

use std::time::Duration;

use sqlx::postgres::{PgPool, PgPoolOptions};

/// Connections in PostgreSQL.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects lazily: the pool opens connections on first use, so the service starts (and reports
    /// itself unhealthy) while PostgreSQL is down, and recovers when it comes back.
    pub async fn connect(url: &str) -> Result<Self, crate::store::StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .acquire_timeout(Duration::from_secs(3))
            .connect_lazy(url)?;
        Ok(Self { pool })
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
    "select now()"
);
