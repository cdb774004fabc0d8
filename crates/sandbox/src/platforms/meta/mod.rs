//! Meta's simulator: Facebook Login's OAuth rules (`oauth`: the Graph token endpoint with its
//! long-lived exchange, `/me`, Pages with their own tokens, permissions, `debug_token`) and the
//! Graph API (`api`: identity, Pages, ad accounts, throttling with usage headers,
//! `appsecret_proof`; `publishing`: Page posts and photos, Instagram containers with their status
//! transitions, `media_publish` and the daily limit; `subscriptions`: a Page's `subscribed_apps`) and Meta's
//! notices to the app (`events`: the Deauthorize and Data Deletion callbacks, signed webhooks,
//! the webhook verification), joined to the shared simulator code by [`SimulatedPlatform`] and
//! listed in the table as [`PLATFORM`].
//!
//! Sources are cited in each file.

mod api;
mod events;
mod oauth;
mod publishing;
mod subscriptions;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::exchange::TokenCall;
use crate::outbox::Notice;
use crate::params::QueryParams;
use crate::platform::{ApiCall, Platform, Refusal, Rejection, SimulatedPlatform};
use crate::spec::AuthorizeOptions;
use crate::state::{
    ApiCaller, ApiRateLimit, AppBudgetUsage, Denial, GrantView, PublishedItem, Simulator,
};

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

    fn api_unreadable_body(&self) -> Response {
        api::unreadable_body()
    }

    fn api_fault_body(&self, status: StatusCode) -> Response {
        api::fault_body(status)
    }

    fn item_url(&self, item: &PublishedItem) -> Option<String> {
        publishing::item_url(item)
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

    /// The platform limit of user and app tokens is the app's (M16): `X-App-Usage`, in percent.
    fn api_app_usage(&self, headers: &mut HeaderMap, usage: &AppBudgetUsage) {
        api::app_usage_header(headers, usage);
    }

    fn account_id(&self, account: u32) -> String {
        oauth::account_identity(account).0
    }

    /// The Deauthorize callback only [M26]; the `permissions` webhook is
    /// `Simulator::send_meta_permissions_change`'s.
    fn removal_notices(
        &self,
        sim: &Simulator,
        account: &str,
        _removed: &[GrantView],
    ) -> Vec<Notice> {
        events::deauthorize(sim, account).into_iter().collect()
    }

    fn offers_data_deletion(&self) -> bool {
        true
    }

    fn request_data_deletion(&self, sim: &Simulator, account: &str) -> Option<u64> {
        events::request_deletion(sim, account)
    }
}
