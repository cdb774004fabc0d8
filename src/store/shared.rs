//! What both halves of the store's contract share (the connections' `Store` and the posts'
//! `PostStore`): the error every call fails with and the webhook event written with a change.

use chrono::{DateTime, Utc};

/// Why a storage call failed. Messages stay generic: database text never reaches a client.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row changed since it was read (optimistic concurrency), or a lease was lost.
    #[error("the connection changed concurrently")]
    Conflict,
    /// The database could not be reached or failed.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    /// A migration failed.
    #[error("migration failed")]
    Migration(#[source] sqlx::migrate::MigrateError),
    /// A stored value could not be read back.
    #[error("stored row is corrupt: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match error {
            sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => {
                Self::Corrupt(error.to_string())
            }
            other => Self::Unavailable(other),
        }
    }
}

/// A webhook event to write in the same transaction as a change.
#[derive(Debug, Clone)]
pub struct NewEvent {
    /// `connection.created`, `connection.expired`, ...
    pub event_type: String,
    /// The JSON body (never a token).
    pub payload: serde_json::Value,
    /// When it happened.
    pub at: DateTime<Utc>,
}
