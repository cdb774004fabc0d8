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
use super::extract::ApiCaller;
use super::state::AppState;
use crate::access::Operation;
use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::domain::StoreId;
use crate::oauth::Flow;
use crate::proxy::{observe, Proxy, ProxyRequest};

/// `Growth-Engine-Store`: the store whose connection is used.
pub(crate) const STORE_HEADER: HeaderName = HeaderName::from_static("growth-engine-store");
/// `Growth-Engine-Account`: one of the connection's assets (a Meta Page id).
pub(crate) const ACCOUNT_HEADER: HeaderName = HeaderName::from_static("growth-engine-account");

const PREFIX: &str = "/api/v1/proxy/";

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
        (status = 403, body = ErrorBody, description = "store_not_allowed: the key is limited to other stores; missing_scope: the key lacks `proxy[:platform]`"),
        (status = 404, body = ErrorBody, description = "unknown platform, no connection, or unknown account"),
        (status = 409, body = ErrorBody, description = "the connection is EXPIRED or REVOKED: the merchant must reconnect"),
        (status = 413, body = ErrorBody, description = "request body over PROXY_MAX_BODY_BYTES"),
        (status = 502, body = ErrorBody, description = "the platform could not be reached"),
    ))]
#[tracing::instrument(skip_all, fields(platform))]
pub async fn proxy(
    State(proxy): State<Proxy>,
    State(audit): State<AuditLog>,
    State(flow): State<Flow>,
    caller: ApiCaller,
    request: Request,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    // The raw path, still percent-encoded: a decoded `{*path}` would hide `%2e%2e` and `%2f`, and
    // a path that does not decode would be refused before it could be recorded.
    let (platform, path) = raw_target(parts.uri.path());
    let slug = platform.to_ascii_lowercase();
    let store = store_of(&parts.headers);
    let recorded_store = store.as_ref().ok().cloned();
    // Every call is recorded, refused ones too: the key, the store and platform when they are
    // valid (a caller's made-up platform or store is not written as one), method, path without
    // query values, status and latency until the status line (`proxy::observe`); never a body
    // or a token.
    let known = flow
        .catalog()
        .find(&slug)
        .is_some()
        .then_some(slug.as_str());
    if let Some(platform) = known {
        tracing::Span::current().record("platform", platform);
    }
    let record = CallRecord {
        audit: &audit,
        actor: &caller.name,
        store: recorded_store.as_ref(),
        platform: known,
        method: parts.method.as_str(),
        path: observe::redacted_path(path, parts.uri.query()),
        started,
    };
    let answer = async {
        caller.require(Operation::Proxy, Some(&slug))?;
        let store_id = store?;
        // Not `allow_store`: this call's outcome, a refusal included, is recorded once below.
        caller.require_store(&store_id)?;
        let account = header_text(&parts.headers, &ACCOUNT_HEADER)
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        let request = ProxyRequest {
            platform: platform.to_owned(),
            store_id,
            account,
            method: parts.method.clone(),
            path: path.to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers.clone(),
            body: Box::pin(body.into_data_stream().map_err(std::io::Error::other)),
        };
        proxy.forward(request).await.map_err(ApiError::from)
    }
    .await;
    record.of(&answer);
    let answer = answer?;
    let mut response = Response::new(Body::from_stream(answer.body));
    *response.status_mut() = answer.status;
    *response.headers_mut() = answer.headers;
    Ok(response)
}

/// The platform and the path under its API base, as sent (still percent-encoded).
fn raw_target(uri_path: &str) -> (&str, &str) {
    uri_path
        .strip_prefix(PREFIX)
        .and_then(|rest| rest.split_once('/'))
        .unwrap_or_default()
}

/// What the audit row of one proxied call is made of.
struct CallRecord<'a> {
    audit: &'a AuditLog,
    actor: &'a str,
    store: Option<&'a StoreId>,
    platform: Option<&'a str>,
    method: &'a str,
    path: String,
    started: std::time::Instant,
}

impl CallRecord<'_> {
    /// Records the call's row: `GET me?fields 200 12ms` for an answer (a failure unless 2xx), and
    /// `missing_scope: GET me - 0ms` for a call refused or failed on our side.
    fn of(&self, answer: &Result<crate::proxy::ProxyResponse, ApiError>) {
        let mut event = AuditEvent::new(Actor::ApiKey(self.actor.to_owned()), "proxy", "success");
        if let Some(store) = self.store {
            event = event.with_store(store);
        }
        if let Some(platform) = self.platform {
            event = event.with_platform(platform);
        }
        let latency_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        let detail = |status: Option<u16>| {
            observe::audit_detail(self.method, &self.path, status, latency_ms)
        };
        self.audit.record(match answer {
            Ok(answer) if answer.status.is_success() => {
                event.with_detail(detail(Some(answer.status.as_u16())))
            }
            Ok(answer) => event
                .failed("platform_error")
                .with_detail(detail(Some(answer.status.as_u16()))),
            Err(error) => event.failed(error.code()).with_detail(format!(
                "{}: {}",
                error.code(),
                detail(None)
            )),
        });
    }
}
