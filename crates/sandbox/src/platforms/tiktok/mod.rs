//! TikTok's simulator: Login Kit's OAuth rules (`oauth`: `client_key`, rotating refresh tokens,
//! the `data.user` user info and TikTok's two error shapes) and the Content Posting API (`api`:
//! creator info; `posting`: direct, inbox and photo posts, the chunked upload, the publish
//! status, verified domains and per-token limits) and TikTok's signed webhook events (`events`), joined
//! to the shared simulator code by [`SimulatedPlatform`] and listed in the table as [`PLATFORM`].
//!
//! Sources are cited in each file.

mod api;
mod events;
mod oauth;
mod posting;

use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::exchange::TokenCall;
use crate::outbox::Notice;
use crate::platform::{Platform, Rejection, SimulatedPlatform};
use crate::state::{ApiCaller, ApiRateLimit, Denial, GrantView, PublishedItem, Simulator};

/// TikTok's entry in the table.
pub(crate) const PLATFORM: Platform = Platform {
    spec: &oauth::SPEC,
    rules: &TikTok,
};

struct TikTok;

impl SimulatedPlatform for TikTok {
    fn oauth_routes(&self) -> Router<Simulator> {
        oauth::routes()
    }

    fn api_routes(&self) -> Router<Simulator> {
        api::routes()
    }

    fn check_scopes(&self, scopes: Vec<String>, _strict: bool) -> Result<Vec<String>, Rejection> {
        oauth::check_scopes(scopes)
    }

    fn answer_token(&self, sim: &Simulator, call: &TokenCall) -> Response {
        oauth::answer_token(sim, call)
    }

    fn fault_body(&self, status: StatusCode) -> Response {
        oauth::fault_body(status)
    }

    fn api_denied(&self, denial: Denial) -> Response {
        api::denied(denial)
    }

    fn api_fault_body(&self, status: StatusCode) -> Response {
        api::fault_body(status)
    }

    fn item_url(&self, item: &PublishedItem) -> Option<String> {
        posting::item_url(item)
    }

    fn api_throttled(
        &self,
        _caller: &ApiCaller,
        _limit: ApiRateLimit,
        _now: DateTime<Utc>,
    ) -> Response {
        posting::throttled()
    }

    fn account_id(&self, _account: u32) -> String {
        oauth::OPEN_ID.to_owned()
    }

    /// `authorization.removed` [T25].
    fn removal_notices(
        &self,
        sim: &Simulator,
        account: &str,
        _removed: &[GrantView],
    ) -> Vec<Notice> {
        events::removal(sim, account).into_iter().collect()
    }
}
