//! Growth Engine: the OAuth foundation of the marketing hub.
//!
//! # Layout
//! From the edge down; a module imports only modules below it (`tests/architecture.rs` keeps the
//! graph of top-level modules free of cycles).
//! - [`app`], [`cli`]: build the services, the router and the background tasks from settings; the
//!   binary's commands.
//! - [`http`]: the edge. Routes, extractors, the one error-to-HTTP mapping, middleware, the security
//!   perimeter, and the merchant's connections page (`/dashboard/marketing`). Parses and shapes;
//!   holds no OAuth logic.
//! - [`connect`]: the connect workflow above the flow and the lifecycle: what becomes of a
//!   finished flow's grant (recorded, then its assets discovered; or parked when a page reconnect
//!   signed in to another account), the merchant's answer to a parked grant, and the reaper of
//!   unanswered ones.
//! - [`oauth`]: the authorization-code flow (begin, first hop, callback). It returns a grant; the
//!   connect workflow records it with the lifecycle.
//! - [`lifecycle`]: valid tokens, as services with a few verbs each on one shared core: token
//!   hand-out, refresh under a lease, the read side of a store's connections, grants (record,
//!   disconnect, re-seal), assets, the background refresher and liveness probe, webhook events. A
//!   sibling of the flow: neither imports the other, nor the connect workflow above them.
//! - [`error`]: the core's error, shared by the flow, the lifecycle and the connect workflow: their
//!   own failures, the platform layer's error wrapped whole, and the stores' errors.
//! - [`access`]: who may call the API: API keys (from `API_KEYS`, or created by the CLI and stored
//!   as hashes), their scopes, and the check each API handler makes.
//! - [`audit`]: the append-only audit trail of token hand-outs, connects, disconnects and key
//!   changes, written off the request path and pruned by age.
//! - [`proxy`]: the authenticated proxy to each platform's API: target URLs that cannot leave the
//!   API base, credentials injected per platform, one refresh and retry on a dead token.
//! - [`links`]: dashboard links and sessions as signed tokens (minted by the CLI and the app,
//!   carried in URLs and cookies by the edge).
//! - [`config`]: settings from the environment, validated once; the platforms' variables come from
//!   the platform table.
//! - [`platforms`]: the platform layer at the bottom of the core. What a platform is (its spec as
//!   data, its behaviour as the `Platform` trait with a plain-OAuth default for every stage), the
//!   table of built-in platforms (one module each under `platforms/builtin/`: a platform's name
//!   stands nowhere else), the catalog resolved from it and the settings, the HTTP client that
//!   speaks to platforms, and the layer's own error (`PlatformError`: platform facts only).
//! - `sandbox` (the `growth-engine-sandbox` crate, behind the default-on `sandbox` feature): strict
//!   simulators of the five platforms' OAuth protocols, served in development and used by the tests;
//!   absent from the production build.
//! - [`state`]: single-use, expiring flow state, in Redis or in process.
//! - [`store`]: the `Store` trait with PostgreSQL and SQLite implementations.
//! - [`vault`]: AES-256-GCM sealing of tokens at rest, with a keyring for rotation.
//! - [`metrics`], [`domain`], [`clock`], [`redis_conn`]: counters, shared types, time, the Redis
//!   handle.

pub mod access;
pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod connect;
pub mod domain;
pub mod error;
pub mod http;
pub mod inbox;
pub mod lifecycle;
pub mod links;
pub mod metrics;
pub mod oauth;
pub mod platforms;
pub mod proxy;
pub mod publish;
pub mod redis_conn;
#[cfg(feature = "sandbox")]
pub use growth_engine_sandbox as sandbox;
pub mod state;
pub mod store;
pub mod vault;
