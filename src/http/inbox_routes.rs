//! The platforms' receivers (`/api/v1/platform-events/{platform}/{receiver}`: public, no API key:
//! each platform proves itself by its signature) and the data deletion status page. Parse, hand
//! to the inbox, shape its answer; verification and storage live in `crate::inbox`.

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;

use super::error::ApiError;
use super::state::AppState;
use crate::inbox::{Answer, DeletionStatus, Inbox, ReceiveError};
use crate::platforms::events::{EventRejection, InboundRequest};

/// The largest notice body read: Meta batches up to 1000 entries in one POST [M31].
pub const MAX_BODY_BYTES: usize = 2 << 20;

/// The receivers and the status page.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/platform-events/{platform}/{receiver}",
            any(receive),
        )
        .route(
            "/api/v1/platform-events/{platform}/data-deletion/{code}",
            get(deletion_status),
        )
}

async fn receive(
    State(inbox): State<Inbox>,
    Path((platform, receiver)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    method: Method,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    if method != Method::GET && method != Method::POST {
        return Err(rejected(EventRejection::MethodNotAllowed));
    }
    let body: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("A notice body may hold at most {MAX_BODY_BYTES} bytes."),
            )
        })?;
    let query: Vec<(String, String)> = query
        .as_deref()
        .map(|q| serde_urlencoded::from_str(q).unwrap_or_default())
        .unwrap_or_default();
    let request = InboundRequest {
        method: &method,
        receiver: &receiver,
        query: &query,
        headers: &headers,
        body: &body,
        now: inbox.now(),
    };
    match inbox.receive(&platform, &request).await {
        Ok(Answer::Challenge { content_type, body }) => {
            Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
        }
        Ok(Answer::Stored { status, body }) => Ok((
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            axum::Json(body),
        )
            .into_response()),
        Err(ReceiveError::Platform(error)) => Err(error.into()),
        Err(ReceiveError::Rejected(rejection)) => Err(rejected(rejection)),
        Err(ReceiveError::Store(error)) => Err(crate::oauth::OAuthError::Store(error).into()),
    }
}

/// A refused notice's answer: the platform sees a stable code and a sentence.
fn rejected(rejection: EventRejection) -> ApiError {
    let (status, code) = match &rejection {
        EventRejection::NoSuchReceiver => (StatusCode::NOT_FOUND, "unknown_receiver"),
        EventRejection::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        EventRejection::NotConfigured(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "receiver_not_configured")
        }
        EventRejection::BadSignature(_) => (StatusCode::UNAUTHORIZED, "invalid_signature"),
        EventRejection::Stale => (StatusCode::UNAUTHORIZED, "stale_signature"),
        EventRejection::Malformed(_) => (StatusCode::BAD_REQUEST, "invalid_event"),
        EventRejection::KeysUnavailable => {
            (StatusCode::SERVICE_UNAVAILABLE, "signing_keys_unavailable")
        }
    };
    ApiError::new(status, code, rejection.to_string())
}

async fn deletion_status(
    State(inbox): State<Inbox>,
    Path((platform, code)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let status = inbox
        .deletion_status(&platform, &code)
        .await
        .map_err(crate::oauth::OAuthError::Store)?;
    let Some(status) = status else {
        return Ok((
            StatusCode::NOT_FOUND,
            Html(page(
                "Unknown request",
                "<p>No data deletion request has this confirmation code.</p>",
            )),
        )
            .into_response());
    };
    Ok(Html(status_page(&status)).into_response())
}

fn status_page(status: &DeletionStatus) -> String {
    let state =
        match status.completed_at {
            Some(at) => format!(
            "<p><strong>Completed</strong> on {}. We deleted every connection, token and account \
             detail we held for this account ({} connection{}). The audit trail keeps only that a \
             deletion took place, with no personal data.</p>",
            at.format("%Y-%m-%d %H:%M UTC"),
            status.connections_deleted,
            if status.connections_deleted == 1 { "" } else { "s" }
        ),
            None => "<p><strong>In progress.</strong> Deletion usually completes within seconds; \
                 refresh this page.</p>"
                .to_owned(),
        };
    page(
        "Data deletion request",
        &format!(
            "<p>Confirmation code: <code>{}</code></p><p>Received on {}.</p>{state}",
            html_escape(&status.confirmation_code),
            status.requested_at.format("%Y-%m-%d %H:%M UTC"),
        ),
    )
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"></head>\
         <body><main><h1>{title}</h1>{body}</main></body></html>"
    )
}

fn html_escape(text: &str) -> String {
    text.chars().filter(char::is_ascii_alphanumeric).collect()
}
