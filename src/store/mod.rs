//! Storage: the [`Store`] trait and its two implementations, PostgreSQL (production, shared by
//! replicas) and SQLite (the embedded default).
//!
//! The store holds connections with their tokens already sealed, and the webhook outbox. It knows
//! nothing of OAuth or HTTP; callers pass the time in, so the store reads no clock of its own, except
//! the database's clock for refresh leases (one clock for every replica). Both backends
//! run the same SQL (see `sql.rs`) and the same contract tests. `contract.rs` holds the trait and
//! its records, which the backends import (never this file, which only re-exports). `posts.rs` holds the
//! posts' half of the trait ([`PostStore`]) and its SQL. `bounded.rs`
//! wraps a store so that no call waits longer than a limit (PostgreSQL's, behind a network).

mod bounded;
mod contract;
mod pg;
mod posts;
mod shared;
mod sql;
mod sqlite;

pub use bounded::Bounded;
pub use contract::*;
pub use pg::PgStore;
pub use posts::{PostQuery, PostRow, PostStore, PostTransition};
pub use sqlite::SqliteStore;
