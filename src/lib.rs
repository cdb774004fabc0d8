//! Growth Engine: the OAuth foundation of the marketing hub.
//!
//! # Layout
//! - [`config`]: settings from the environment, validated once.
//! - [`app`]: builds the services, the router and the background tasks from settings.
//! - [`http`]: the edge. Routes, extractors, the one error-to-HTTP mapping, middleware, the security
//!   perimeter, and the merchant's connections page (`/dashboard/marketing`).
//! - [`oauth`]: the core. The platform catalog, calls to platforms and their quirks, the flow.
//! - [`lifecycle`]: valid tokens. Recording grants, refresh under a lease, the background
//!   refresher, disconnect, webhook events.
//! - [`vault`]: AES-256-GCM sealing of tokens at rest, with a keyring for rotation.
//! - [`state`]: single-use, expiring flow state, in Redis or in process.
//! - [`store`]: the `Store` trait with PostgreSQL and SQLite implementations.
//! - `sandbox` (the `growth-engine-sandbox` crate, behind the default-on `sandbox` feature): strict
//!   simulators of the five platforms' OAuth protocols, served in development and used by the tests;
//!   absent from the production build.
//! - [`domain`], [`clock`], [`redis_conn`]: shared types, time, the Redis handle.

pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod http;
pub mod lifecycle;
pub mod metrics;
pub mod oauth;
pub mod platforms;
pub mod redis_conn;
#[cfg(feature = "sandbox")]
pub use growth_engine_sandbox as sandbox;
pub mod state;
pub mod store;
pub mod vault;
