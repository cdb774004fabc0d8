//! Growth Engine: the OAuth foundation of the marketing hub.
//!
//! # Layout
//! - [`config`]: settings from the environment, validated once.
//! - [`domain`]: identifiers, the connection record and the secret token set.
//! - [`vault`]: AES-256-GCM sealing of tokens at rest, with a keyring for rotation.
//! - [`store`]: the `Store` trait with PostgreSQL and SQLite implementations.
//! - [`clock`]: time as a dependency.

pub mod clock;
pub mod config;
pub mod domain;
pub mod store;
pub mod vault;
pub mod redis_conn;
pub mod state;
pub mod sandbox;
