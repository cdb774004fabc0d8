//! Meta's simulator: Facebook Login's OAuth rules (`oauth`: the Graph token endpoint with its
//! long-lived exchange, `/me`, Pages with their own tokens, permissions, `debug_token`) and the
//! Graph API (`api`: identity, Pages, ad accounts, Page and Instagram publishing, throttling with
//! usage headers, `appsecret_proof`; `subscriptions`: a Page's `subscribed_apps`), joined to the
//! shared simulator code by [`SimulatedPlatform`] and listed in the table as [`PLATFORM`].
//!
//! Sources are cited in each file.

mod api;
mod oauth;
mod subscriptions;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::exchange::TokenCall;
use crate::params::QueryParams;
use crate::platform::{ApiCall, Platform, Refusal, SimulatedPlatform};
use crate::spec::AuthorizeOptions;
use crate::state::{ApiCaller, ApiRateLimit, Denial, Simulator};

/// Meta's entry in the table.
pub(crate) const PLATFORM: Platform = Platform {
    spec: &oauth::SPEC,
    rules: &Meta,
};

struct Meta;

impl SimulatedPlatform for Meta {
    fn oauth_routes(&self) -> Router<Simulator> {
        oauth::routes()
    }

    fn api_routes(&self) -> Router<Simulator> {
        api::routes()
    }

    fn authorize_options(&self, params: &QueryParams) -> Result<AuthorizeOptions, Refusal> {
        oauth::authorize_options(params)
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

    fn api_unreadable_body(&self) -> Response {
        api::unreadable_body()
    }

    fn api_admit(
        &self,
        sim: &Simulator,
        call: &ApiCall<'_>,
        caller: &ApiCaller,
    ) -> Result<(), Box<Response>> {
        api::check_appsecret_proof(sim, call, caller)
    }

    fn api_throttled(
        &self,
        caller: &ApiCaller,
        limit: ApiRateLimit,
        _now: DateTime<Utc>,
    ) -> Response {
        api::throttled(caller, limit)
    }

    fn api_usage_headers(
        &self,
        caller: &ApiCaller,
        headers: &mut HeaderMap,
        _now: DateTime<Utc>,
        _path: &str,
    ) {
        api::usage_headers(caller, headers, None);
    }
}
