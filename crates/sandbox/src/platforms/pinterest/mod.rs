//! Pinterest's simulator: its OAuth rules (`oauth`: HTTP Basic only, a new refresh token on every
//! refresh, no revocation of user tokens, `{"code","message"}` errors) and API v5 (`api`: user
//! account, boards, ad accounts, pins), joined to the shared simulator code by
//! [`SimulatedPlatform`] and listed in the table as [`PLATFORM`]. Pinterest sends the app no
//! notice when a user removes it: its API defines none [P1].
//!
//! Sources are cited in the two files.

mod api;
mod oauth;

use axum::http::StatusCode;
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::exchange::TokenCall;
use crate::platform::{Platform, Rejection, SimulatedPlatform};
use crate::state::{ApiCaller, ApiRateLimit, Denial, Simulator};

/// Pinterest's entry in the table.
pub(crate) const PLATFORM: Platform = Platform {
    spec: &oauth::SPEC,
    rules: &Pinterest,
};

struct Pinterest;

impl SimulatedPlatform for Pinterest {
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
        _limit: ApiRateLimit,
        _now: DateTime<Utc>,
    ) -> Response {
        api::throttled()
    }

    fn account_id(&self, _account: u32) -> String {
        oauth::USER_ID.to_owned()
    }
}
