//! The contract between the shared simulator code and one simulated platform: the
//! [`SimulatedPlatform`] trait, with a default for every stage, and [`Platform`], a platform's
//! description ([`PlatformSpec`]) paired with its behaviour, as the table lists it.
//!
//! The shared code (consent screen, token route, API gate, router) reaches a platform only
//! through these; a platform module implements what its platform does differently and leaves
//! the rest to the defaults. This module names no platform.

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::json;

use crate::exchange::{json, TokenCall};
use crate::outbox::Notice;
use crate::params::QueryParams;
use crate::spec::{AuthorizeOptions, PlatformSpec};
use crate::state::{
    ApiCaller, ApiRateLimit, AppBudgetUsage, Denial, GrantView, PublishedItem, Simulator,
};

/// An error to redirect to the client with from the authorization endpoint: its `error` code and
/// `error_description`.
pub(crate) type Refusal = (&'static str, String);

/// How the authorization endpoint turns away a request whose client and redirect URI it trusts.
pub(crate) enum Rejection {
    /// Reported to the client by redirecting with `error` and `error_description` (RFC 6749
    /// §4.1.2.1).
    Redirect(Refusal),
    /// Shown to the person on the platform's own error page, with this message: the client hears
    /// nothing, as with the errors several platforms show the developer instead of redirecting.
    Page(String),
}

impl From<Refusal> for Rejection {
    fn from(refusal: Refusal) -> Self {
        Self::Redirect(refusal)
    }
}

/// The requested scopes the platform does not know (in the request's order), given the ones it
/// knows.
pub(crate) fn unknown_scopes<'a>(scopes: &'a [String], known: &[&str]) -> Vec<&'a str> {
    scopes
        .iter()
        .map(String::as_str)
        .filter(|scope| !known.contains(scope))
        .collect()
}

/// A simulated platform's behaviour, stage by stage. Object-safe: the table holds
/// `&'static dyn SimulatedPlatform`. Every method has a default that does nothing special, so a
/// platform implements only its own rules.
pub(crate) trait SimulatedPlatform: Sync {
    /// The platform's own OAuth routes besides the authorize and consent routes (which the consent
    /// screen serves from the spec) and the token route (served from the spec, answered by
    /// [`Self::answer_token`]): typically revocation, identity and introspection.
    fn oauth_routes(&self) -> Router<Simulator> {
        Router::new()
    }

    /// The platform's resource-API routes, mounted behind the shared gate (paths from
    /// [`PlatformSpec::api_path`]).
    fn api_routes(&self) -> Router<Simulator> {
        Router::new()
    }

    /// Reads the platform's own authorization-request options (e.g. offline access), refusing
    /// invalid ones; called once the common parameters passed.
    fn authorize_options(&self, _params: &QueryParams) -> Result<AuthorizeOptions, Refusal> {
        Ok(AuthorizeOptions::default())
    }

    /// Checks the requested scopes against the ones the platform knows, as the platform does:
    /// returns those the consent screen asks for (a platform may drop unknown ones) or refuses the
    /// request. `strict` is the strict reading ([`crate::Simulator::strict`]), for a platform whose
    /// documentation leaves open what it does with an unknown scope. By default every scope is
    /// asked for.
    fn check_scopes(&self, scopes: Vec<String>, _strict: bool) -> Result<Vec<String>, Rejection> {
        Ok(scopes)
    }

    /// Answers a token-endpoint call (any grant type) by the platform's rules. The shared token
    /// route has already applied the test faults and records the answer.
    fn answer_token(&self, _sim: &Simulator, _call: &TokenCall) -> Response {
        json(
            StatusCode::BAD_REQUEST,
            json!({ "error": "unsupported_grant_type", "error_description": "No grant is supported." }),
        )
    }

    /// The platform-shaped error body for an injected token-endpoint failure status.
    fn fault_body(&self, status: StatusCode) -> Response {
        json(
            status,
            json!({ "error": "server_error", "error_description": "The sandbox was told to fail this request." }),
        )
    }

    /// The API's answer to a token it refuses.
    fn api_denied(&self, _denial: Denial) -> Response {
        json(
            StatusCode::UNAUTHORIZED,
            json!({ "error": "invalid_token" }),
        )
    }

    /// The API's answer to an injected server failure (see `Simulator::fail_next_api_calls`), in
    /// the platform's error shape.
    fn api_fault_body(&self, status: StatusCode) -> Response {
        json(status, json!({ "error": "server_error" }))
    }

    /// The public URL of a published item, as the platform would show it (the feed page links
    /// it; the platform's API answers it where it has a permalink). None by default.
    fn item_url(&self, _item: &PublishedItem) -> Option<String> {
        None
    }

    /// The API's answer when the gate could not read a request body it needed.
    fn api_unreadable_body(&self) -> Response {
        json(
            StatusCode::BAD_REQUEST,
            json!({ "error": "invalid_request" }),
        )
    }

    /// The platform's own checks of an API call whose token is live, before throttling (proofs,
    /// required headers such as a version).
    fn api_admit(
        &self,
        _sim: &Simulator,
        _call: &ApiCall<'_>,
        _caller: &ApiCaller,
    ) -> Result<(), Box<Response>> {
        Ok(())
    }

    /// The API's throttled answer, headers included.
    fn api_throttled(
        &self,
        _caller: &ApiCaller,
        _limit: ApiRateLimit,
        _now: DateTime<Utc>,
    ) -> Response {
        json(
            StatusCode::TOO_MANY_REQUESTS,
            json!({ "error": "rate_limited" }),
        )
    }

    /// The usage headers the platform puts on every admitted API answer (none by default).
    fn api_usage_headers(
        &self,
        _caller: &ApiCaller,
        _headers: &mut HeaderMap,
        _now: DateTime<Utc>,
        _path: &str,
    ) {
    }

    /// The headers in which the platform reports its app-wide budget (see
    /// [`Simulator::set_app_budget`]) on an admitted answer: none by default.
    fn api_app_usage(&self, _headers: &mut HeaderMap, _usage: &AppBudgetUsage) {}

    /// The id the platform gives a simulated account (0 the default merchant): what its user-info
    /// answers, so the app and the sandbox's pages name the account alike.
    fn account_id(&self, account: u32) -> String {
        account.to_string()
    }

    /// The notices the platform sends the app when `account` (its [`Self::account_id`]) removes
    /// the app, whose grants `removed` have just ended: none by default (a platform without a
    /// revocation notice).
    fn removal_notices(
        &self,
        _sim: &Simulator,
        _account: &str,
        _removed: &[GrantView],
    ) -> Vec<Notice> {
        Vec::new()
    }

    /// Whether the platform lets a user who removed the app ask it to delete their data (a
    /// notice of its own); `false` by default.
    fn offers_data_deletion(&self) -> bool {
        false
    }

    /// `account` removes the app, if not yet done, and asks it to delete their data: returns the
    /// deletion notice's event number (`None` where the platform offers no such request).
    fn request_data_deletion(&self, _sim: &Simulator, _account: &str) -> Option<u64> {
        None
    }
}

/// An API call as the gate saw it, for [`SimulatedPlatform::api_admit`].
pub(crate) struct ApiCall<'a> {
    /// The presented token (a secret: never log it).
    pub(crate) token: &'a str,
    /// Query (and, where the platform reads them, form) parameters.
    pub(crate) params: &'a [(String, String)],
    pub(crate) headers: &'a HeaderMap,
    /// The request's path, without the query.
    pub(crate) path: &'a str,
}

/// One simulated platform as the table lists it: its description and its behaviour.
#[derive(Clone, Copy)]
pub(crate) struct Platform {
    pub(crate) spec: &'static PlatformSpec,
    pub(crate) rules: &'static dyn SimulatedPlatform,
}
