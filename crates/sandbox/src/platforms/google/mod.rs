//! Google's simulator: the web-server flow's OAuth rules (`oauth`: body or Basic client
//! authentication, optional PKCE, offline access and consent memory, revocation of the whole
//! grant, the OpenID user info) and the Google Ads API (`api`: accessible customers), joined to
//! the shared simulator code by [`SimulatedPlatform`] and listed in the table as [`PLATFORM`].
//! `risc` sends Google's Cross-Account Protection events and serves their keys.
//!
//! Sources are cited in each file.

mod api;
mod oauth;
mod risc;

use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::exchange::TokenCall;
use crate::outbox::Notice;
use crate::params::QueryParams;
use crate::platform::{Platform, Refusal, Rejection, SimulatedPlatform};
use crate::spec::AuthorizeOptions;
use crate::state::{ApiCaller, ApiRateLimit, Denial, GrantView, Simulator};

/// Google's entry in the table.
pub(crate) const PLATFORM: Platform = Platform {
    spec: &oauth::SPEC,
    rules: &Google,
};

struct Google;

impl SimulatedPlatform for Google {
    fn oauth_routes(&self) -> Router<Simulator> {
        oauth::routes().merge(risc::routes())
    }

    fn api_routes(&self) -> Router<Simulator> {
        api::routes()
    }

    fn authorize_options(&self, params: &QueryParams) -> Result<AuthorizeOptions, Refusal> {
        oauth::authorize_options(params)
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

    fn api_throttled(
        &self,
        _caller: &ApiCaller,
        limit: ApiRateLimit,
        _now: DateTime<Utc>,
    ) -> Response {
        api::throttled(limit)
    }

    fn account_id(&self, account: u32) -> String {
        oauth::subject(account)
    }

    /// A RISC tokens-revoked event, for grants with `profile` or `email` [G15].
    fn removal_notices(
        &self,
        sim: &Simulator,
        account: &str,
        removed: &[GrantView],
    ) -> Vec<Notice> {
        risc::removal(sim, account, removed).into_iter().collect()
    }
}
