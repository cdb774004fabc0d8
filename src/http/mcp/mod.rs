//! The MCP endpoint (`/mcp`): the merchant's connections, accounts, posts and read-only platform
//! calls as tools for LLM agents, over the Streamable HTTP transport of the official Rust SDK
//! (`rmcp`).
//!
//! The tools are the REST API, called in-process ([`rest`]): a tool needs the scope of the route
//! it stands for, a store-bound key is refused another store's data the same way, and each answer
//! or error is the route's own, with its stable code. What this module adds is the protocol
//! ([`server`]), the tools' fixed definitions ([`tools`]), the bearer key at the door, the tool
//! list a key's scopes allow, and one audit row and metric per tool call.
//!
//! It keeps no state between requests: every protocol revision is served statelessly (no
//! `MCP-Session-Id`), so any replica answers any request and nothing is shared through Redis.

mod rest;
mod server;
mod tools;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{json, Value};
use url::Url;

use super::extract::{ApiCaller, ApiKeys};
use crate::audit::AuditLog;
use crate::metrics::Metrics;

pub use server::AgentServer;

/// The endpoint's path.
pub const PATH: &str = "/mcp";

/// What the endpoint is built from.
pub struct McpParts {
    /// The REST routes the tools call, with their state and without the edge's middleware
    /// (the MCP request already passed it).
    pub api: Router,
    /// The keys the bearer header is checked against.
    pub keys: ApiKeys,
    /// Where each tool call is recorded.
    pub audit: AuditLog,
    /// Tool call counts and latencies.
    pub metrics: Metrics,
    /// `API_URL`: its host and origin are allowed.
    pub api_url: Url,
}

/// The `/mcp` route: the bearer key first, then the protocol.
pub fn router(parts: McpParts) -> Router {
    let server = AgentServer::new(parts.api, parts.audit, parts.metrics);
    let config = StreamableHttpServerConfig::default()
        // Stateless for every revision: no session pins a client to the replica that began it.
        .with_legacy_session_mode(false)
        // One JSON answer per request where no notification precedes it: no event stream to
        // hold open, and cheaper for the client too.
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_allowed_hosts(allowed_hosts(&parts.api_url))
        .with_allowed_origins([origin_of(&parts.api_url)])
        .enforce_origin_validation();
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        NeverSessionManager::default().into(),
        config,
    );
    Router::new()
        .route_service(PATH, service)
        .route_layer(axum::middleware::from_fn(check_message))
        .route_layer(axum::middleware::from_fn_with_state(
            parts.keys,
            authenticate,
        ))
}

/// The most a message may hold (a post's text and options are far smaller).
const MESSAGE_LIMIT: usize = 256 * 1024;

/// Answers what the transport would answer with a bare text or a misleading code, with a
/// JSON-RPC error instead: a body that is not JSON (`-32700`), a batch or non-object (`-32600`:
/// one message per POST since 2025-06-18), a `tools/call` without a string `name` or with
/// non-object `arguments` (`-32602`; rmcp says "method not found"). Its other refusals (a
/// foreign `Host` or `Origin`, a missing `Accept`) keep their status and get the same JSON body.
/// Written here because rmcp answers these in plain text, and MCP clients read JSON-RPC.
async fn check_message(request: Request, next: Next) -> Response {
    if request.method() != axum::http::Method::POST {
        return json_rpc_errors(next.run(request).await).await;
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MESSAGE_LIMIT).await else {
        let message = format!("The message is larger than {} KiB.", MESSAGE_LIMIT / 1024);
        return json_rpc_error(StatusCode::PAYLOAD_TOO_LARGE, Value::Null, -32600, &message);
    };
    let message: Value = match serde_json::from_slice(&bytes) {
        Ok(message) => message,
        Err(error) => {
            let text = format!("Parse error: the body is not JSON ({error}).");
            return json_rpc_error(StatusCode::BAD_REQUEST, Value::Null, -32700, &text);
        }
    };
    let Some(object) = message.as_object() else {
        let text = "Invalid Request: send one JSON-RPC message (an object) per POST; batches are not supported.";
        return json_rpc_error(StatusCode::BAD_REQUEST, Value::Null, -32600, text);
    };
    if object.get("method").and_then(Value::as_str) == Some("tools/call") {
        let params = &message["params"];
        let arguments_ok = params
            .get("arguments")
            .is_none_or(|a| a.is_object() || a.is_null());
        if !params["name"].is_string() || !arguments_ok {
            let id = object.get("id").cloned().unwrap_or(Value::Null);
            let text =
                "Invalid params: tools/call takes `name` (a string) and `arguments` (an object).";
            return json_rpc_error(StatusCode::OK, id, -32602, text);
        }
    }
    let request = Request::from_parts(parts, axum::body::Body::from(bytes));
    json_rpc_errors(next.run(request).await).await
}

/// A transport refusal in plain text, as a JSON-RPC error with the same status.
async fn json_rpc_errors(response: Response) -> Response {
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/event-stream"));
    let status = response.status();
    if is_json || !status.is_client_error() || status == StatusCode::METHOD_NOT_ALLOWED {
        return response;
    }
    let text = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let code = if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        -32700
    } else {
        -32600
    };
    json_rpc_error(status, Value::Null, code, &text)
}

fn json_rpc_error(status: StatusCode, id: Value, code: i64, message: &str) -> Response {
    let body = json!({"jsonrpc": "2.0", "id": id, "error": {"code": code, "message": message}});
    (status, axum::Json(body)).into_response()
}

/// `API_URL`'s host, and the loopback names (a health check or an agent on the same machine):
/// the transport refuses any other `Host` with a 403, so that a DNS-rebound page cannot reach us.
fn allowed_hosts(api_url: &Url) -> Vec<String> {
    let mut hosts = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    if let Some(host) = api_url.host_str() {
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        if !hosts.contains(&host) {
            hosts.push(host);
        }
    }
    hosts
}

/// `API_URL`'s origin (scheme, host and port): the only browser origin allowed to call.
fn origin_of(api_url: &Url) -> String {
    api_url.origin().ascii_serialization()
}

/// Lets through a request with an accepted API key (its verdict stays in the request's
/// extensions for the tools' REST calls); anything else gets the API's 401 or 429.
async fn authenticate(State(keys): State<ApiKeys>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    match ApiCaller::from_request_parts(&mut parts, &keys).await {
        Ok(_) => next.run(Request::from_parts(parts, body)).await,
        // The API's own 401 carries the `WWW-Authenticate: Bearer` challenge MCP clients expect.
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_urls_host_and_loopback_are_allowed() {
        let url = Url::parse("https://growth.example.com:8443/").expect("url");
        let hosts = allowed_hosts(&url);
        assert!(
            hosts.contains(&"growth.example.com".to_owned()),
            "{hosts:?}"
        );
        assert!(hosts.contains(&"127.0.0.1".to_owned()));
        assert_eq!(origin_of(&url), "https://growth.example.com:8443");
        let ipv6 = Url::parse("http://[::1]:8003/").expect("url");
        assert_eq!(allowed_hosts(&ipv6).len(), 3);
    }
}
