//! The token lifecycle: recording a grant, handing out a valid access token (refreshing it first when
//! it is about to expire), renewing before expiry, marking dead connections, and disconnecting.
//!
//! One refresh at a time, across every replica: a refresh first takes the connection's lease in the
//! database (a conditional update, so PostgreSQL arbitrates between replicas), and only the lease's
//! holder may write the result (the lease is the fencing token). Others wait and then read the fresh
//! row. A rotated refresh token is written to the database before anything uses it.
//!
//! Layout. The services, each a cheap-clone handle with a few verbs, built once by the app:
//! - `shared`: [`Core`], the handle they all stand on (store, row cache, vault binding, catalog,
//!   clock, and the listing invalidation every write path calls: [`Core::changed`]);
//! - `refresh`: [`Refresh`], the thin I/O of a refresh (lease, platform call, write, recovery
//!   record, in a tracked task that outlives its caller) and the shutdown drain;
//! - `tokens`: [`Tokens`], the hand-out of a valid token (refreshed first when due);
//! - `connections`: [`Connections`], the read side: a store's rows (through the listing cache) and
//!   each connection's health;
//! - `grants`: [`Grants`], recording a grant, disconnecting, re-sealing with the current key;
//!   `removal`: what a platform's own notice does to a connection (removed at the platform,
//!   deleted on a data deletion request);
//! - `merchant_assets`: [`Assets`], the merchant's assets (discovery after connect and on demand, the
//!   selection, the token for an account);
//! - `liveness`: the background probe of tokens and the sweep that sends the health events;
//!   `refresher`: the background refresh loop.
//!
//! And what they use: `renewal` (pure: is a token due, which renewal, the schedule), `merge` (pure:
//! a renewal's answer merged into the old token set; the row rewrites), `outcome` (pure: a failure
//! classified into a [`RefreshFailure`] and what it implies), `health` (pure: a connection's health
//! state, `reconnect_by`, which expiry warning is owed; the health settings), `issued` (the token
//! handed out), `recovery` (renewed sets the database refused, kept until written), `supervise`
//! (restarts background tasks that panic), `cache` (rows in Redis), `listing` (the per-replica
//! cache of a store's rows behind the connections listing), `events` and `webhooks`.
//!
//! This file only declares the modules and re-exports their public types: no file below imports it.

pub mod cache;
mod connections;
pub mod events;
mod grants;
pub mod health;
mod issued;
pub mod listing;
pub mod liveness;
mod merchant_assets;
mod merge;
pub mod outcome;
mod recovery;
mod refresh;
pub mod refresher;
pub mod removal;
mod renewal;
mod shared;
pub mod supervise;
mod tokens;
pub mod webhooks;

pub use crate::platforms::GrantDetails;
pub use cache::TokenCache;
pub use connections::Connections;
pub use grants::{DisconnectOutcome, Grants};
pub use health::HealthSettings;
pub use issued::IssuedToken;
pub use listing::{Listing, ListingCache};
pub use merchant_assets::{AccountRef, AccountToken, Assets};
pub use outcome::{backoff, RefreshFailure};
pub use refresh::{Refresh, RefreshParts};
pub use shared::{Core, CoreParts};
pub use tokens::Tokens;
