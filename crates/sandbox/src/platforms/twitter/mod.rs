//! X's simulator: its OAuth 2.0 rules (`oauth`: HTTP Basic, mandatory PKCE, 30-second codes,
//! rotating refresh tokens whose reuse ends the family, single-token revocation) and API v2
//! (`api`: `users/me`, `POST tweets`, `x-rate-limit-*` headers; `media`: the v2 media upload,
//! reading its forms with `multipart`), joined to the shared simulator code by
//! [`SimulatedPlatform`] and listed in the table as [`PLATFORM`]. `events` sends X's signed
//! webhook events and its CRC check.
//!
//! Sources are cited in each file.

mod api;
mod events;
mod media;
mod multipart;
mod oauth;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::exchange::TokenCall;
use crate::outbox::Notice;
use crate::platform::{Platform, Rejection, SimulatedPlatform};
use crate::state::{ApiCaller, ApiRateLimit, AppBudgetUsage, Denial, GrantView, Simulator};

/// X's entry in the table.
pub(crate) const PLATFORM: Platform = Platform {
    spec: &oauth::SPEC,
    rules: &Twitter,
};

struct Twitter;

impl SimulatedPlatform for Twitter {
    fn oauth_routes(&self) -> Router<Simulator> {
        oauth::routes()
    }

    fn api_routes(&self) -> Router<Simulator> {
        api::routes()
    }

    fn check_scopes(&self, scopes: Vec<String>, strict: bool) -> Result<Vec<String>, Rejection> {
        oauth::check_scopes(scopes, strict)
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

    fn api_throttled(
        &self,
        _caller: &ApiCaller,
        limit: ApiRateLimit,
        now: DateTime<Utc>,
    ) -> Response {
        api::throttled(limit, now)
    }

    fn api_usage_headers(
        &self,
        _caller: &ApiCaller,
        headers: &mut HeaderMap,
        now: DateTime<Utc>,
        path: &str,
    ) {
        api::usage_headers(headers, now, path, None);
    }

    /// `x-rate-limit-*` with the app budget's numbers (X10: limit, remaining, reset in Unix time).
    fn api_app_usage(&self, headers: &mut HeaderMap, usage: &AppBudgetUsage) {
        let remaining = usage.budget.calls.saturating_sub(usage.used);
        headers.insert("x-rate-limit-limit", HeaderValue::from(usage.budget.calls));
        headers.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
        headers.insert("x-rate-limit-reset", HeaderValue::from(usage.reset));
    }

    fn account_id(&self, _account: u32) -> String {
        oauth::USER_ID.to_owned()
    }

    /// XAA's `oauth.revoke` [X16].
    fn removal_notices(
        &self,
        sim: &Simulator,
        account: &str,
        _removed: &[GrantView],
    ) -> Vec<Notice> {
        events::removal(sim, account).into_iter().collect()
    }
}
