//! LinkedIn's simulator: the member authorization flow's OAuth rules (`oauth`: body-only client
//! credentials, 30-minute codes, 60-day access tokens, partner-only refresh tokens whose year runs
//! from the first grant, revocation, introspection) and its APIs (`api`: the OpenID user info and
//! the versioned `/rest/` Marketing API with its required headers, organization and ad-account
//! discovery; `posts`: images and organization posts), joined to the shared simulator code by
//! [`SimulatedPlatform`] and listed in the table as [`PLATFORM`]. LinkedIn sends no notice when a member removes the app [L3, L18];
//! `events` sends the challenge it validates a webhook endpoint with.
//!
//! Every rule follows `/work/shared/linkedin.md`; the files cite its facts.

mod api;
mod events;
mod oauth;
mod posts;

use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::exchange::TokenCall;
use crate::platform::{ApiCall, Platform, Rejection, SimulatedPlatform};
use crate::state::{ApiCaller, ApiRateLimit, Denial, Simulator};

/// LinkedIn's entry in the table.
pub(crate) const PLATFORM: Platform = Platform {
    spec: &oauth::SPEC,
    rules: &LinkedIn,
};

struct LinkedIn;

impl SimulatedPlatform for LinkedIn {
    fn oauth_routes(&self) -> Router<Simulator> {
        oauth::routes()
    }

    fn api_routes(&self) -> Router<Simulator> {
        api::routes().merge(posts::routes())
    }

    fn check_scopes(&self, scopes: Vec<String>, _strict: bool) -> Result<Vec<String>, Rejection> {
        oauth::check_scopes(&scopes)?;
        Ok(scopes)
    }

    fn answer_token(&self, sim: &Simulator, call: &TokenCall) -> Response {
        oauth::answer_token(sim, call)
    }

    fn api_denied(&self, denial: Denial) -> Response {
        api::denied(denial)
    }

    fn api_admit(
        &self,
        sim: &Simulator,
        call: &ApiCall<'_>,
        _caller: &ApiCaller,
    ) -> Result<(), Box<Response>> {
        api::check_rest_headers(sim, call)
    }

    fn api_throttled(
        &self,
        _caller: &ApiCaller,
        _limit: ApiRateLimit,
        _now: DateTime<Utc>,
    ) -> Response {
        api::throttled()
    }

    fn fault_body(&self, status: StatusCode) -> Response {
        oauth::fault_body(status)
    }

    fn account_id(&self, account: u32) -> String {
        api::member(account).0
    }
}
