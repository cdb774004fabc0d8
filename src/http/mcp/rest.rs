//! A tool's REST call, in-process: the request goes through the same router as a client's, with
//! the MCP request's verified key (and client address, request id) in its extensions, so the
//! route checks the same scopes and stores and answers the same codes. Its answer becomes the
//! tool's result: the body as structured content, or the route's error as a tool error.

use axum::body::Body;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::Router;
use http_body_util::{BodyExt, Limited};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::http::error::OwnError;

/// The most of an answer a tool reads (a platform's answer through the proxy can be large; an
/// agent's context is not).
pub(super) const ANSWER_LIMIT: usize = 512 * 1024;

/// One call to a REST route.
#[derive(Debug)]
pub(super) struct RestCall {
    pub method: Method,
    /// Path and query, encoded.
    pub target: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Option<Value>,
}

impl RestCall {
    /// A GET of `target`.
    pub fn get(target: String) -> Self {
        Self {
            method: Method::GET,
            target,
            headers: Vec::new(),
            body: None,
        }
    }
}

/// A route's answer.
#[derive(Debug)]
pub(super) enum RestAnswer {
    /// A 2xx with a JSON body (or none).
    Success(Value),
    /// This service's own error, with its stable code.
    Refused(ToolFailure),
    /// A platform's answer passed through (the proxy): its status and body.
    Passed { status: StatusCode, body: Value },
}

/// A tool's failure as the agent sees it: a stable code and a sentence.
#[derive(Debug, Clone)]
pub(super) struct ToolFailure {
    pub code: String,
    pub message: String,
    pub details: Option<Value>,
}

impl ToolFailure {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            details: None,
        }
    }

    /// The tool result's structured content: `{"error": {"code", "message", "details"?}}`, the
    /// REST API's error body.
    pub fn to_json(&self) -> Value {
        let mut error = json!({ "code": self.code, "message": self.message });
        if let Some(details) = &self.details {
            error["details"] = details.clone();
        }
        json!({ "error": error })
    }
}

/// Sends `call` through `api` on behalf of the MCP request whose head is `http`. With
/// `passes_through` (the proxy's route), an answer that is not this service's own error is the
/// platform's, whatever its status.
pub(super) async fn send(
    api: &Router,
    http: &Parts,
    call: RestCall,
    passes_through: bool,
) -> RestAnswer {
    let mut builder = Request::builder().method(call.method).uri(&call.target);
    for (name, value) in call.headers {
        builder = builder.header(name, value);
    }
    if let Some(id) = http.headers.get("x-request-id") {
        builder = builder.header("x-request-id", id.clone());
    }
    let body = match &call.body {
        Some(body) => {
            builder = builder.header("content-type", "application/json");
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    let Ok(mut request) = builder.body(body) else {
        return RestAnswer::Refused(ToolFailure::new(
            "invalid_arguments",
            "The arguments do not make a valid request (a path or header with characters a URL cannot carry).",
        ));
    };
    // The key's verdict, the client's address: verified once, at the MCP request.
    request.extensions_mut().extend(http.extensions.clone());
    let Ok(response) = api.clone().oneshot(request).await;
    let status = response.status();
    let own = response.extensions().get::<OwnError>().is_some();
    let body = match Limited::new(response.into_body(), ANSWER_LIMIT)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return RestAnswer::Refused(ToolFailure::new(
                "answer_too_large",
                format!(
                    "The answer is larger than {} KiB: narrow the request (fields, limit).",
                    ANSWER_LIMIT / 1024
                ),
            ))
        }
    };
    let value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()))
    };
    if own {
        return RestAnswer::Refused(failure_of(status, &value));
    }
    if passes_through {
        return RestAnswer::Passed {
            status,
            body: value,
        };
    }
    if status.is_success() {
        RestAnswer::Success(value)
    } else {
        RestAnswer::Refused(failure_of(status, &value))
    }
}

/// The route's error body as a tool failure.
fn failure_of(status: StatusCode, body: &Value) -> ToolFailure {
    let error = &body["error"];
    match (error["code"].as_str(), error["message"].as_str()) {
        (Some(code), Some(message)) => ToolFailure {
            code: code.to_owned(),
            message: message.to_owned(),
            details: error.get("details").cloned(),
        },
        _ => ToolFailure::new(
            "internal_error",
            format!("The service answered {status} without an error body."),
        ),
    }
}

/// Names of JSON keys whose values are credentials, compared without case and `_`.
const SECRET_KEYS: [&str; 7] = [
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "token",
    "clientsecret",
    "appsecret",
    "password",
];

/// The same JSON with every credential's value replaced by `"[redacted]"`: a platform's answer
/// can carry tokens (a page's own `access_token` in a list of pages), and no tool hands one to a
/// model.
pub(super) fn redact_credentials(value: &mut Value) -> usize {
    match value {
        Value::Object(map) => {
            let mut redacted = 0;
            for (key, item) in map.iter_mut() {
                let normalized: String = key
                    .chars()
                    .filter(|c| *c != '_' && *c != '-')
                    .flat_map(char::to_lowercase)
                    .collect();
                if SECRET_KEYS.contains(&normalized.as_str()) && !item.is_null() {
                    *item = Value::String("[redacted]".into());
                    redacted += 1;
                } else {
                    redacted += redact_credentials(item);
                }
            }
            redacted
        }
        Value::Array(items) => items.iter_mut().map(redact_credentials).sum(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted_at_any_depth_and_nothing_else() {
        let mut answer = json!({
            "data": [
                {"id": "1", "name": "Shop page", "access_token": "EAAB-secret"},
                {"id": "2", "accessToken": "t2", "paging": {"next_page_token": "keep"}},
            ],
            "Client-Secret": "s",
            "token_type": "bearer",
        });
        assert_eq!(redact_credentials(&mut answer), 3);
        let text = answer.to_string();
        assert!(
            !text.contains("EAAB-secret") && !text.contains("\"t2\""),
            "{text}"
        );
        assert_eq!(answer["data"][1]["paging"]["next_page_token"], "keep");
        assert_eq!(answer["token_type"], "bearer");
        assert_eq!(answer["data"][0]["name"], "Shop page");
    }

    #[test]
    fn a_route_error_keeps_its_code_and_message() {
        let body = json!({"error": {"code": "store_not_allowed", "message": "No."}});
        let failure = failure_of(StatusCode::FORBIDDEN, &body);
        assert_eq!(failure.code, "store_not_allowed");
        assert_eq!(failure.to_json(), body);
        let odd = failure_of(StatusCode::BAD_GATEWAY, &json!("text"));
        assert_eq!(odd.code, "internal_error");
    }
}
