//! The platforms' resource APIs, served strictly so that a client of them (the social agent, the
//! service's proxy and publishing clients) can be built and tested offline: per platform the
//! identity call, the asset listings and the publishing calls, under `/sandbox/{platform}/api/...` with the real API's path
//! structure after its real base (a real `https://api.example.com/v1/` becomes
//! `{base}/sandbox/{platform}/api/v1/`).
//!
//! This module owns what the APIs share: their bases ([`api_base`]) and the gate every API call
//! goes through ([`gate`]: injected faults (a 5xx without acting, or an answer lost after
//! acting), forced token failures, bearer validation, the platform's own checks, throttling,
//! usage headers, recording). Each platform's routes, error bodies and headers are
//! its module's, reached through `SimulatedPlatform`. It does not own the OAuth endpoints nor any
//! upload or media processing (the platform modules', with `media`'s fetching).
//!
//! Every fact follows `/work/shared/platform-apis.md`; the platform modules cite its source keys.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::Router;

use crate::bearer::{form_params, presented_token};
use crate::exchange::{lost_answer, reject};
use crate::params::query_pairs;
use crate::platform::{ApiCall, Platform};
use crate::platforms::{find, TABLE};
use crate::state::{
    ApiCaller, ApiFaultKind, ApiRateLimit, ApiRequestRecord, AppBudgetUsage, Denial, Simulator,
};

/// The URL the service should use as `platform`'s API base when pointed at the sandbox under
/// `base` (e.g. `http://127.0.0.1:8003`): the real root segment and a trailing slash, as in
/// `{base}/sandbox/{platform}/api/v25.0/`. `None` for a platform the sandbox does not simulate.
pub fn api_base(base: &str, platform: &str) -> Option<String> {
    let platform = find(platform)?;
    Some(format!(
        "{}{}",
        base.trim_end_matches('/'),
        platform.spec.api_path("")
    ))
}

/// Every API route, behind the gate.
pub(crate) fn routes(sim: Simulator) -> Router<Simulator> {
    TABLE
        .iter()
        .fold(Router::new(), |router, platform| {
            router.merge(platform.rules.api_routes())
        })
        .route_layer(middleware::from_fn_with_state(sim, gate))
}

/// The platform an API path belongs to (`/sandbox/{platform}/api/...`).
fn platform_of(path: &str) -> Option<Platform> {
    let mut segments = path.trim_start_matches('/').split('/');
    let (Some("sandbox"), Some(key), Some("api")) =
        (segments.next(), segments.next(), segments.next())
    else {
        return None;
    };
    find(key)
}

/// The gate of every API call: refuses what the platform would refuse before looking at the
/// resource (a forced failure, a missing, unknown, expired or revoked token, the platform's own
/// checks, a throttle), adds the usage headers the platform always sends, and records the call.
async fn gate(State(sim): State<Simulator>, request: Request, next: Next) -> Response {
    let Some(platform) = platform_of(request.uri().path()) else {
        return next.run(request).await;
    };
    let key = platform.spec.key;
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let mut params = query_pairs(request.uri().query());
    let mut request = request;
    if platform.spec.api_token_in_params {
        match form_params(request).await {
            Ok((rebuilt, form)) => {
                request = rebuilt;
                params.extend(form);
            }
            Err(()) => return platform.rules.api_unreadable_body(),
        }
    }
    let token = presented_token(platform.spec, request.headers(), &params);
    let fault = sim.take_api_fault(key, &path);
    if let Some(ApiFaultKind::Status(status)) = fault {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let response = platform.rules.api_fault_body(status);
        sim.record_api_request(
            key,
            ApiRequestRecord {
                method,
                path,
                token,
                status: status.as_u16(),
            },
        );
        return response;
    }
    sim.wait_while_held(key, &path).await;
    let admitted = admit(
        &sim,
        platform,
        token.as_deref(),
        &params,
        request.headers(),
        &path,
    );
    let response = match admitted {
        Ok((caller, app_usage)) => {
            request.extensions_mut().insert(caller.clone());
            let mut response = next.run(request).await;
            platform
                .rules
                .api_usage_headers(&caller, response.headers_mut(), sim.now(), &path);
            // After the per-call headers: the app-wide budget's numbers are what it reports.
            if let Some(usage) = app_usage {
                platform.rules.api_app_usage(response.headers_mut(), &usage);
            }
            response
        }
        Err(response) => *response,
    };
    let status = response.status().as_u16();
    sim.record_api_request(
        key,
        ApiRequestRecord {
            method,
            path,
            token,
            status,
        },
    );
    if fault == Some(ApiFaultKind::LoseAnswer) {
        return lost_answer();
    }
    response
}

fn admit(
    sim: &Simulator,
    platform: Platform,
    token: Option<&str>,
    params: &[(String, String)],
    headers: &HeaderMap,
    path: &str,
) -> Result<(ApiCaller, Option<AppBudgetUsage>), Box<Response>> {
    let key = platform.spec.key;
    if sim.take_forced_invalid(key) {
        return reject(platform.rules.api_denied(Denial::Invalid));
    }
    let Some(token) = token else {
        return reject(platform.rules.api_denied(Denial::Missing));
    };
    let caller = sim
        .inspect_api_token(key, token)
        .map_err(|denial| Box::new(platform.rules.api_denied(denial)))?;
    let call = ApiCall {
        token,
        params,
        headers,
        path,
    };
    platform.rules.api_admit(sim, &call, &caller)?;
    let limit = sim.with_api(key, |api| api.rate_limit);
    if let Some(limit) = limit {
        return reject(platform.rules.api_throttled(&caller, limit, sim.now()));
    }
    let now = sim.now();
    let app_usage = match sim.spend_app_budget(key, now) {
        Some((usage, true)) => {
            let retry_after_seconds = u64::try_from(usage.reset - now.timestamp())
                .unwrap_or(0)
                .max(1);
            let limit = ApiRateLimit {
                retry_after_seconds,
            };
            return reject(platform.rules.api_throttled(&caller, limit, now));
        }
        Some((usage, false)) => Some(usage),
        None => None,
    };
    Ok((caller, app_usage))
}
