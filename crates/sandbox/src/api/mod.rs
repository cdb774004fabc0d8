//! The platforms' resource APIs, served strictly so that a client of them (the social agent, the
//! service's proxy) can be built and tested offline: per platform the identity call, the asset
//! listings and one publishing call, under `/sandbox/{platform}/api/...` with the real API's path
//! structure after its real base (`https://graph.facebook.com/` becomes
//! `{base}/sandbox/meta/api/`).
//!
//! This module owns what the five APIs share: their bases ([`api_base`]), the gate every API call
//! goes through ([`gate`]: forced token failures, bearer validation, Meta's `appsecret_proof`,
//! throttling, usage headers, recording), and the test controls and observations
//! (`set_api_rate_limited`, `fail_next_api_calls_with_invalid_token`, `api_requests`,
//! `published`). `bearer` judges a presented token against the grants the OAuth side issued; one
//! file per platform holds that platform's routes, error bodies and headers. It does not own the
//! OAuth endpoints (the platform files at the crate root) nor any upload or media processing.
//!
//! Every fact follows `/work/shared/platform-apis.md`; comments cite its source keys (M16, T6, ...).

mod bearer;
mod google;
mod meta;
mod pinterest;
mod tiktok;
mod twitter;

use std::collections::HashMap;
use std::fmt;

use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Utc};

use crate::exchange::reject;
use crate::meta::PageGrant;
use crate::spec::Platform;
use crate::{GrantView, Simulator};
pub(crate) use bearer::Denial;

/// The API root of each platform after its real host: the pinned version segment.
fn version_segment(platform: Platform) -> &'static str {
    match platform {
        // M15: "always specify the version"; the sandbox pins the EN docs' v25.0.
        Platform::Meta => "v25.0",
        // T6: `https://open.tiktokapis.com/v2/`.
        Platform::TikTok => "v2",
        // G9: docs crawled late 2026 call v26 "the latest active version".
        Platform::Google => "v26",
        // P1: `https://api.pinterest.com/v5`.
        Platform::Pinterest => "v5",
        // X11: `https://api.x.com/2/`.
        Platform::Twitter => "2",
    }
}

/// The route of `rest` (e.g. `me/accounts`) under `platform`'s simulated API root.
pub(crate) fn api_path(platform: Platform, rest: &str) -> String {
    format!(
        "/sandbox/{}/api/{}/{rest}",
        platform.key(),
        version_segment(platform)
    )
}

/// The URL the service should use as `platform`'s API base when pointed at the sandbox under
/// `base` (e.g. `http://127.0.0.1:8003`): the real version segment and a trailing slash, as in
/// `{base}/sandbox/meta/api/v25.0/`. `None` for a platform the sandbox does not simulate.
pub fn api_base(base: &str, platform: &str) -> Option<String> {
    let platform = Platform::parse(platform)?;
    Some(format!(
        "{}{}",
        base.trim_end_matches('/'),
        api_path(platform, "")
    ))
}

/// Every API route, behind the gate.
pub(crate) fn routes(sim: Simulator) -> Router<Simulator> {
    Router::new()
        .merge(meta::routes())
        .merge(tiktok::routes())
        .merge(google::routes())
        .merge(pinterest::routes())
        .merge(twitter::routes())
        .route_layer(middleware::from_fn_with_state(sim, gate))
}

/// Makes a platform's API throttle every call (see [`Simulator::set_api_rate_limited`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiRateLimit {
    /// When access comes back, in seconds: X's `x-rate-limit-reset`, Google's `retryDelay`, Meta's
    /// `estimated_time_to_regain_access` (rounded up to minutes).
    pub retry_after_seconds: u64,
}

/// One call to a simulated API, as the tests observe it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiRequestRecord {
    /// The HTTP method.
    pub method: String,
    /// The path, without the query (which may carry a token).
    pub path: String,
    /// The access token presented (bearer header, or Meta's `access_token` parameter).
    pub token: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
}

// The token is a credential: a failing assertion or a log line prints only whether there was one.
impl fmt::Debug for ApiRequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiRequestRecord")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("status", &self.status)
            .finish()
    }
}

/// Something a publishing call created (a post, a pin, a tweet, an Instagram media, a TikTok
/// publish).
#[derive(Clone, Debug, PartialEq)]
pub struct PublishedItem {
    /// What was published: `facebook_post`, `instagram_media`, `tiktok_video`, `pinterest_pin` or
    /// `tweet`.
    pub kind: String,
    /// The id the platform answered with.
    pub id: String,
    /// Where it was published: the Page, Instagram account, TikTok `open_id`, board or X user.
    pub target: String,
    /// The fields the client sent (caption, message, text, media source...).
    pub fields: serde_json::Value,
}

/// A caller the gate let through: the grant behind the token and, for a Meta Page token, the Page.
#[derive(Clone)]
pub(crate) struct ApiCaller {
    pub(crate) grant: GrantView,
    pub(crate) page: Option<PageGrant>,
}

/// The most API calls remembered per platform: the oldest are forgotten beyond it, so that a
/// sandbox serving for days (the development default) or under a benchmark's load neither grows
/// without bound nor stalls, under its lock, to copy an ever larger log.
const REMEMBERED_REQUESTS: usize = 10_000;

/// The API side of one platform's simulator state.
#[derive(Default)]
pub(crate) struct ApiState {
    requests: std::collections::VecDeque<ApiRequestRecord>,
    published: Vec<PublishedItem>,
    rate_limit: Option<ApiRateLimit>,
    forced_invalid: u32,
    meta_requires_proof: bool,
    /// Created but not yet published items (Instagram containers), by id.
    drafts: HashMap<String, PublishedItem>,
}

impl Simulator {
    /// Makes every call to `platform`'s API answer as throttled, in the platform's shape and with
    /// its headers (or stop with `None`).
    pub fn set_api_rate_limited(&self, platform: &str, limit: Option<ApiRateLimit>) {
        self.control(platform, |p| p.api.rate_limit = limit);
    }

    /// Makes the next `count` calls to `platform`'s API answer "token invalid" (the platform's
    /// refresh-worthy error) whatever token they carry, so a client's refresh-and-retry can be
    /// tested with a token that is in fact valid.
    pub fn fail_next_api_calls_with_invalid_token(&self, platform: &str, count: u32) {
        self.control(platform, |p| p.api.forced_invalid = count);
    }

    /// Makes Meta's API refuse calls without `appsecret_proof`, as an app with *Require App
    /// Secret* does (M17).
    pub fn set_meta_requires_appsecret_proof(&self, required: bool) {
        self.control("meta", |p| p.api.meta_requires_proof = required);
    }

    /// The calls to `platform`'s API so far (the last 10,000), in order.
    pub fn api_requests(&self, platform: &str) -> Vec<ApiRequestRecord> {
        self.observe(platform, |p| p.api.requests.iter().cloned().collect())
    }

    /// Everything `platform`'s publishing calls have published, in order.
    pub fn published(&self, platform: &str) -> Vec<PublishedItem> {
        self.observe(platform, |p| p.api.published.clone())
    }

    /// Runs `change` on `platform`'s API state.
    pub(crate) fn with_api<T>(
        &self,
        platform: Platform,
        change: impl FnOnce(&mut ApiState) -> T,
    ) -> T {
        change(&mut self.lock().platforms.entry(platform).or_default().api)
    }

    /// Records a published item.
    pub(crate) fn publish(&self, platform: Platform, item: PublishedItem) {
        self.with_api(platform, |api| api.published.push(item));
    }

    /// Keeps a created, not yet published item (an Instagram container).
    pub(crate) fn store_draft(&self, platform: Platform, item: PublishedItem) {
        self.with_api(platform, |api| {
            api.drafts.insert(item.id.clone(), item);
        });
    }

    /// A draft by id, without consuming it.
    pub(crate) fn draft(&self, platform: Platform, id: &str) -> Option<PublishedItem> {
        self.with_api(platform, |api| api.drafts.get(id).cloned())
    }

    /// Takes (and so consumes) a draft.
    pub(crate) fn take_draft(&self, platform: Platform, id: &str) -> Option<PublishedItem> {
        self.with_api(platform, |api| api.drafts.remove(id))
    }

    /// Consumes one forced "token invalid" answer, if any are left.
    fn take_forced_invalid(&self, platform: Platform) -> bool {
        self.with_api(platform, |api| {
            let forced = api.forced_invalid > 0;
            api.forced_invalid = api.forced_invalid.saturating_sub(1);
            forced
        })
    }
}

/// The platform an API path belongs to (`/sandbox/{platform}/api/...`).
fn platform_of(path: &str) -> Option<Platform> {
    let mut segments = path.trim_start_matches('/').split('/');
    let (Some("sandbox"), Some(key), Some("api")) =
        (segments.next(), segments.next(), segments.next())
    else {
        return None;
    };
    Platform::parse(key)
}

/// The gate of every API call: refuses what the platform would refuse before looking at the
/// resource (a forced failure, a missing, unknown, expired or revoked token, a wrong
/// `appsecret_proof`, a throttle), adds the usage headers the platform always sends, and records
/// the call.
async fn gate(State(sim): State<Simulator>, request: Request, next: Next) -> Response {
    let Some(platform) = platform_of(request.uri().path()) else {
        return next.run(request).await;
    };
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let mut params = crate::meta::query_pairs(request.uri().query());
    let mut request = request;
    if platform == Platform::Meta {
        match bearer::meta_form_params(request).await {
            Ok((rebuilt, form)) => {
                request = rebuilt;
                params.extend(form);
            }
            Err(response) => return *response,
        }
    }
    let token = bearer::presented_token(platform, request.headers(), &params);
    let response = match admit(&sim, platform, token.as_deref(), &params) {
        Ok(caller) => {
            request.extensions_mut().insert(caller.clone());
            let mut response = next.run(request).await;
            usage_headers(platform, &caller, &mut response, sim.now(), &path);
            response
        }
        Err(response) => *response,
    };
    let status = response.status().as_u16();
    sim.with_api(platform, |api| {
        if api.requests.len() >= REMEMBERED_REQUESTS {
            api.requests.pop_front();
        }
        api.requests.push_back(ApiRequestRecord {
            method,
            path,
            token,
            status,
        });
    });
    response
}

fn admit(
    sim: &Simulator,
    platform: Platform,
    token: Option<&str>,
    query: &[(String, String)],
) -> Result<ApiCaller, Box<Response>> {
    if sim.take_forced_invalid(platform) {
        return reject(denied(platform, Denial::Invalid));
    }
    let Some(token) = token else {
        return reject(denied(platform, Denial::Missing));
    };
    let caller = sim
        .inspect_api_token(platform, token)
        .map_err(|denial| Box::new(denied(platform, denial)))?;
    if platform == Platform::Meta {
        meta::check_appsecret_proof(sim, &caller, token, query)?;
    }
    let limit = sim.with_api(platform, |api| api.rate_limit);
    if let Some(limit) = limit {
        return reject(throttled(platform, &caller, limit, sim.now()));
    }
    Ok(caller)
}

/// The platform's answer to a token it refuses.
fn denied(platform: Platform, denial: Denial) -> Response {
    match platform {
        Platform::Meta => meta::denied(denial),
        Platform::TikTok => tiktok::denied(denial),
        Platform::Google => google::denied(denial),
        Platform::Pinterest => pinterest::denied(denial),
        Platform::Twitter => twitter::denied(denial),
    }
}

/// The platform's throttled answer, headers included.
fn throttled(
    platform: Platform,
    caller: &ApiCaller,
    limit: ApiRateLimit,
    now: DateTime<Utc>,
) -> Response {
    match platform {
        Platform::Meta => meta::throttled(caller, limit),
        Platform::TikTok => tiktok::throttled(),
        Platform::Google => google::throttled(limit),
        Platform::Pinterest => pinterest::throttled(),
        Platform::Twitter => twitter::throttled(limit, now),
    }
}

/// The usage headers a platform puts on every answer (Meta M16, X X10); TikTok, Google and
/// Pinterest document none (T17, G12, P9).
fn usage_headers(
    platform: Platform,
    caller: &ApiCaller,
    response: &mut Response,
    now: DateTime<Utc>,
    path: &str,
) {
    match platform {
        Platform::Meta => meta::usage_headers(caller, response.headers_mut(), None),
        Platform::Twitter => twitter::usage_headers(response.headers_mut(), now, path, None),
        Platform::TikTok | Platform::Google | Platform::Pinterest => {}
    }
}
