//! The proxy endpoint: `/api/v1/proxy/{platform}/{*path}`, any method, API key required. Parses
//! the store and account headers and the raw path, hands the call to [`crate::proxy`], and streams
//! the platform's answer back.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName};
use axum::response::Response;
use axum::routing::any;
use axum::Router;
use futures::TryStreamExt;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiCaller, ApiPath};
use super::state::AppState;
use crate::access::Operation;
use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::domain::StoreId;
use crate::proxy::{observe, Proxy, ProxyRequest};

/// `Growth-Engine-Store`: the store whose connection is used.
pub(crate) const STORE_HEADER: HeaderName = HeaderName::from_static("growth-engine-store");
/// `Growth-Engine-Account`: one of the connection's assets (a Meta Page id).
pub(crate) const ACCOUNT_HEADER: HeaderName = HeaderName::from_static("growth-engine-account");

const PREFIX: &str = "/api/v1/proxy/";

/// The route's path parameters (the decoded `path` is not used: see [`proxy`]).
#[derive(Debug, serde::Deserialize)]
pub struct ProxyPath {
    /// The platform's slug.
    pub platform: String,
    /// The path under its API base, decoded.
    pub path: String,
}

/// The proxy route.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/proxy/{platform}/{*path}", any(proxy))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// The store named by `Growth-Engine-Store`, validated like `store_id` elsewhere.
fn store_of(headers: &HeaderMap) -> Result<StoreId, ApiError> {
    let text = header_text(headers, &STORE_HEADER).ok_or_else(|| {
        ApiError::bad_request(
            "store_header_required",
            "Send the store in the Growth-Engine-Store header.",
        )
    })?;
    StoreId::parse(text)
        .map_err(|e| ApiError::bad_request("invalid_store_id", format!("Growth-Engine-Store: {e}")))
}

/// Calls the platform's API with the store's token. The path and query are the platform's (under
/// its API base); the caller's `Authorization` (the API key), cookies and hop-by-hop headers are
/// not forwarded, the platform's `Set-Cookie` is not passed back.
#[utoipa::path(
    method(get, post, put, patch, delete),
    path = "/api/v1/proxy/{platform}/{path}", tag = "proxy",
    security(("api_key" = [])),
    params(
        ("platform" = String, Path, description = "a platform's slug, as `GET /api/v1/oauth/platforms` lists them"),
        ("path" = String, Path, description = "the path under the platform's API base (`api_base` in `GET /api/v1/oauth/platforms`), e.g. `users/me`"),
        ("Growth-Engine-Store" = String, Header, description = "the store whose connection is used"),
        ("Growth-Engine-Account" = Option<String>, Header, description = "an asset id whose page token the call uses (a page the connection manages)"),
    ),
    responses(
        (status = 200, description = "the platform's answer (any status, passed through)"),
        (status = 400, body = ErrorBody, description = "missing store header, or a path that could leave the API base"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "missing_scope: the key lacks `proxy[:platform]`"),
        (status = 404, body = ErrorBody, description = "unknown platform, no connection, or unknown account"),
        (status = 409, body = ErrorBody, description = "the connection is EXPIRED or REVOKED: the merchant must reconnect"),
        (status = 413, body = ErrorBody, description = "request body over PROXY_MAX_BODY_BYTES"),
        (status = 502, body = ErrorBody, description = "the platform could not be reached"),
    ))]
#[tracing::instrument(skip_all, fields(platform = %platform))]
pub async fn proxy(
    State(proxy): State<Proxy>,
    State(audit): State<AuditLog>,
    caller: ApiCaller,
    ApiPath(ProxyPath { platform, .. }): ApiPath<ProxyPath>,
    request: Request,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let slug = platform.to_ascii_lowercase();
    caller.require(Operation::Proxy, Some(&slug))?;
    let (parts, body) = request.into_parts();
    let store_id = store_of(&parts.headers)?;
    let method = parts.method.clone();
    let account = header_text(&parts.headers, &ACCOUNT_HEADER)
        .filter(|a| !a.is_empty())
        .map(str::to_owned);
    // The raw path, still percent-encoded: the decoded `{*path}` would hide `%2e%2e` and `%2f`.
    let path = parts
        .uri
        .path()
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, path)| path.to_owned())
        .unwrap_or_default();
    let recorded_path = observe::redacted_path(&path, parts.uri.query());
    let request = ProxyRequest {
        platform,
        store_id: store_id.clone(),
        account,
        method: parts.method,
        path,
        query: parts.uri.query().map(str::to_owned),
        headers: parts.headers,
        body: Box::pin(body.into_data_stream().map_err(std::io::Error::other)),
    };
    let answer = proxy.forward(request).await.map_err(ApiError::from);
    // The audit row is the call's record: key, store, platform, method, path without query
    // values, status and latency until the status line (`proxy::observe`); never a body or a
    // token.
    let event = AuditEvent::new(Actor::ApiKey(caller.name.clone()), "proxy", "success")
        .with_store(&store_id)
        .with_platform(&slug);
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let detail = |status: Option<u16>| {
        observe::audit_detail(method.as_str(), &recorded_path, status, latency_ms)
    };
    audit.record(match &answer {
        Ok(answer) if answer.status.is_success() => {
            event.with_detail(detail(Some(answer.status.as_u16())))
        }
        Ok(answer) => event
            .failed("platform_error")
            .with_detail(detail(Some(answer.status.as_u16()))),
        Err(error) => event.failed(error.code()),
    });
    let answer = answer?;
    let mut response = Response::new(Body::from_stream(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    Ok(response)
}
