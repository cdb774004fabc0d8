//! Strict offline simulators of the platforms' OAuth 2.0 protocols (one module each, listed in
//! `platforms`) and of the parts of their APIs the service's clients use.
//!
//! This crate owns the simulated authorization servers: a sandbox consent screen per platform, the
//! token, revocation and user-info endpoints, the codes, grants and tokens they hand out, and the
//! controls and observations the integration tests use (faults, token lifetimes, revoked grants,
//! recorded token requests). It also owns the simulated resource APIs (identity, asset listings,
//! publishing calls) that accept only the access tokens the simulated authorization servers
//! issued, with the controls and observations of those calls (throttling, forced token failures,
//! recorded API requests, published items). And it owns what the platforms send the app on their
//! own: revocation notices and webhook events, signed exactly as each platform signs them and
//! retried as it retries, the challenges with which a platform checks a receiver, and a page per
//! platform where the merchant removes the app. Each platform's rules follow the sourced
//! references in `/work/shared/` (`providers.md`, `platform-apis.md`, `platform-events.md` and one
//! file per later platform), cited in its module; every rejection carries the real platform's
//! status code and error body shape, so a client that passes against the simulator has handled
//! the platform's quirks rather than a forgiving stand-in.
//!
//! It does not own the service's OAuth client (that lives in the core) nor decide where it is mounted:
//! [`router`] returns routes under `/sandbox/{platform}/...` that the service merges in development and
//! the tests serve alone on their own port.
//!
//! It is a crate of its own so that the production build leaves it out: the service depends on it
//! through its default-on `sandbox` feature (re-exported as `growth_engine::sandbox`), and the
//! production image is built with `--no-default-features`. It depends on nothing of the service but
//! the shared clock crate (`growth-engine-clock`), so tests drive its time with the same
//! `ManualClock` as the service's.
//!
//! # Layout
//!
//! A platform is one module; the shared code never names one. Files are layered so that no two
//! import each other, directly or through others (each imports only those listed before it):
//!
//! - `spec`: a platform described as data (paths, parameter rules, code and token shapes).
//! - `params`: reading query strings.
//! - `outbox`: the shapes of the platforms' notices to the app (a signed `Notice`, the
//!   [`EventDelivery`] records, the per-platform queues and the delivery settings).
//! - `state`: the [`Simulator`] handle and everything it remembers (clients, codes, grants,
//!   tokens, the outbox, per-platform controls and observations), with code redemption and token
//!   minting.
//! - `memory` (what a user granted before), `exchange` (reading token calls, client
//!   credentials, JSON helpers), `bearer` (judging a presented API token) and `events` (sending
//!   notices: the delivery task with its retries, redelivery, challenges, and the generic HMAC
//!   and JSON helpers notices are built with): shared helpers on top of `state`.
//! - `media`: fetching a medium by URL as a platform does (bounded in time and size).
//! - `platform`: the `SimulatedPlatform` trait (one method per stage, each with a default) and
//!   `Platform`, a spec paired with its behaviour.
//! - `platforms/{platform}/`, one folder per platform: `oauth.rs` (its spec and OAuth rules),
//!   `api.rs` (its resource API), its notices where it sends any (`events.rs`; Google's
//!   `risc.rs`), other parts of its API in files of their own (Meta's `subscriptions.rs`, X's
//!   `media.rs` with its `multipart.rs`, LinkedIn's `posts.rs`) and
//!   `mod.rs` (the trait implementation and its table entry). These import only the modules
//!   above, never each other nor the shared code below.
//! - `platforms/mod.rs`: the table, the one list of platforms ([`PLATFORMS`] is its keys), and
//!   the lookup by key.
//! - `consent` (the shared consent screen), `token` (the shared token route: faults, recording)
//!   and `api` (the API gate and [`api_base`]), which reach platforms through the table only.
//! - `apps_page` (the "Apps and websites" page per platform and removing the app), which reaches
//!   platforms through the table only and renders with `consent`'s helper.
//! - `feed_page` (the feed per platform: what was published, per account, with each item's
//!   public URL), which reaches platforms through the table only.
//! - this file: the service-facing functions ([`endpoints`], [`router`]) and re-exports.

mod api;
mod apps_page;
mod bearer;
mod consent;
mod events;
mod exchange;
mod feed_page;
mod media;
mod memory;
mod outbox;
mod params;
mod platform;
mod platforms;
mod spec;
mod state;
mod token;

#[cfg(test)]
mod tests;

use axum::Router;

pub use api::api_base;
pub use outbox::EventDelivery;
pub use platforms::PLATFORMS;
pub use state::{
    ApiRateLimit, ApiRequestRecord, AppBudget, AppBudgetUsage, Fault, PublishedItem, SimClient,
    Simulator, TokenRequestRecord,
};

/// The endpoints of one platform's simulator under some base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxEndpoints {
    /// The consent screen (authorization endpoint).
    pub authorize: String,
    /// The token endpoint.
    pub token: String,
    /// The revocation endpoint.
    pub revoke: String,
    /// The endpoint that describes the authorizing account.
    pub userinfo: String,
}

/// The endpoints of `platform`'s simulator under `base` (e.g. `http://127.0.0.1:8003`, no trailing
/// slash); `None` for a platform the sandbox does not simulate.
pub fn endpoints(base: &str, platform: &str) -> Option<SandboxEndpoints> {
    let spec = platforms::find(platform)?.spec;
    let base = base.trim_end_matches('/');
    Some(SandboxEndpoints {
        authorize: format!("{base}{}", spec.authorize_path),
        token: format!("{base}{}", spec.token_path),
        revoke: format!("{base}{}", spec.revoke_path),
        userinfo: format!("{base}{}", spec.userinfo_path),
    })
}

/// Every simulator route (all under `/sandbox/{platform}/...`), state applied, ready to be merged
/// into another router or served alone.
pub fn router(sim: Simulator) -> Router {
    platforms::TABLE
        .iter()
        .fold(
            Router::new()
                .merge(consent::routes())
                .merge(token::routes())
                .merge(apps_page::routes())
                .merge(feed_page::routes()),
            |router, platform| router.merge(platform.rules.oauth_routes()),
        )
        .merge(api::routes(sim.clone()))
        .with_state(sim)
}
