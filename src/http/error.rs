//! The one place errors become HTTP: every layer's error maps to a status and a JSON body
//! `{"error": {"code": "...", "message": "..."}}`. A 5xx body stays generic; its cause is logged once
//! by the edge's middleware from the response's extensions.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

use crate::access::{MissingScope, StoreNotAllowed};
use crate::domain::PlatformId;
use crate::oauth::OAuthError;
use crate::platforms::error::PlatformError;

/// The error body.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// The error's code, message and, where useful, details.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ErrorDetail {
    /// A stable machine-readable code.
    pub code: String,
    /// A human sentence.
    pub message: String,
    /// Extra facts (the known platforms, the connection's status).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// Marks a response as this service's own error (not an answer passed through from a platform,
/// whose body may look the same): the MCP tools read it from the response's extensions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OwnError;

/// The cause of a 5xx, kept for the logging middleware (never sent to the client).
#[derive(Debug, Clone)]
pub(crate) struct InternalCause(pub Arc<str>);

/// An error at the edge.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
    details: Option<serde_json::Value>,
    cause: Option<String>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            details: None,
            cause: None,
        }
    }

    /// Adds details.
    pub(crate) fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 401.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid API key is required: send Authorization: Bearer <key>.",
        )
    }

    /// A 400 about a parameter.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    fn internal(code: &str, message: &str, cause: String) -> Self {
        Self {
            cause: Some(cause),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code (`missing_scope`, `not_found`, ...), for the audit trail.
    pub fn code(&self) -> &str {
        &self.code
    }
}

impl From<crate::platforms::error::PlatformError> for ApiError {
    fn from(error: crate::platforms::error::PlatformError) -> Self {
        OAuthError::from(error).into()
    }
}

impl From<OAuthError> for ApiError {
    fn from(error: OAuthError) -> Self {
        let code = error.reason();
        match &error {
            // A slug that could not name any platform is malformed input, not an unknown
            // platform; the answer names the parameter and does not echo it (it can be 64 KB).
            OAuthError::Platform(PlatformError::UnknownPlatform(slug)) => match PlatformId::parse(slug) {
                Err(invalid) => Self::bad_request("invalid_path", invalid.to_string()),
                Ok(_) => Self::new(
                    StatusCode::NOT_FOUND,
                    code,
                    format!("Unknown platform {slug:?}."),
                ),
            },
            OAuthError::Platform(PlatformError::NotConfigured(platform)) => Self::new(
                StatusCode::CONFLICT,
                code,
                format!("{platform} has no credentials configured on this service."),
            ),
            OAuthError::TicketInvalid
            | OAuthError::StateInvalid
            | OAuthError::StateMismatch
            | OAuthError::BrowserMismatch
            | OAuthError::Declined(_)
            | OAuthError::InvalidScope
            | OAuthError::MissingParameter(_) => {
                Self::new(StatusCode::BAD_REQUEST, code, error.merchant_message())
            }
            OAuthError::NotFound => Self::new(
                StatusCode::NOT_FOUND,
                code,
                "There is no connection for this store and platform.",
            ),
            OAuthError::AssetNotFound => Self::new(
                StatusCode::NOT_FOUND,
                code,
                "The connection has no such asset; refresh its assets or pick one it lists.",
            ),
            OAuthError::NotUsable(status) => Self::new(
                StatusCode::CONFLICT,
                code,
                format!(
                    "The connection is {status}; the merchant must reconnect it from the connections page."
                ),
            )
            .with_details(serde_json::json!({ "status": status, "reconnect": true })),
            OAuthError::Platform(PlatformError::Unavailable { .. })
            | OAuthError::Platform(PlatformError::Rejected { .. })
            | OAuthError::Platform(PlatformError::BadResponse { .. }) => Self {
                cause: Some(error.to_string()),
                ..Self::new(StatusCode::BAD_GATEWAY, code, error.merchant_message())
            },
            // A row sealed with a key this replica lacks answers `key_unavailable` (a key rollout in
            // progress); a replica shutting down answers `shutting_down`: both 503, retry elsewhere.
            OAuthError::Store(_)
            | OAuthError::State(_)
            | OAuthError::Vault(_)
            | OAuthError::ShuttingDown => Self::internal(
                code,
                "The service is temporarily unavailable. Please retry shortly.",
                error_chain(&error),
            ),
        }
    }
}

impl From<crate::publish::PostError> for ApiError {
    fn from(error: crate::publish::PostError) -> Self {
        use crate::publish::PostError;
        let message = error.to_string();
        match error {
            PostError::Invalid(_) => Self::bad_request("invalid_post", message),
            PostError::MissingIdempotencyKey => {
                Self::bad_request("missing_idempotency_key", format!("{message}."))
            }
            PostError::IdempotencyConflict => Self::new(
                StatusCode::CONFLICT,
                "idempotency_key_reused",
                "This Idempotency-Key was used for another post of this store; use a new key for a new post.",
            ),
            PostError::Refused(failure) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                failure.code.as_str(),
                failure.message,
            ),
            PostError::NoAccount => Self::new(
                StatusCode::CONFLICT,
                "no_account",
                "The connection has no selected account this platform publishes to: name one in `account`, or select one on the connections page.",
            ),
            PostError::NotFound => {
                Self::new(StatusCode::NOT_FOUND, "post_not_found", "There is no such post.")
            }
            PostError::WrongState(state) => Self::new(
                StatusCode::CONFLICT,
                "post_wrong_state",
                format!("The post is {state}."),
            ),
            PostError::ApprovalLinkInvalid => Self::new(
                StatusCode::GONE,
                "approval_link_invalid",
                "This approval link is not valid any more.",
            ),
            PostError::Connection(error) => error.into(),
            PostError::Store(error) => OAuthError::Store(error).into(),
        }
    }
}

impl From<MissingScope> for ApiError {
    /// 403 `missing_scope`, naming the scope in the message and in `details.missing_scope`.
    fn from(missing: MissingScope) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "missing_scope",
            format!(
                "This API key may not make this call: it lacks the scope {}.",
                missing.scope
            ),
        )
        .with_details(serde_json::json!({ "missing_scope": missing.scope }))
    }
}

impl From<StoreNotAllowed> for ApiError {
    /// 403 `store_not_allowed`. Names neither the key's stores nor the one asked for.
    fn from(_: StoreNotAllowed) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "store_not_allowed",
            "This API key may not act for this store: it is limited to other stores.",
        )
    }
}

impl From<crate::proxy::ProxyError> for ApiError {
    fn from(error: crate::proxy::ProxyError) -> Self {
        use crate::proxy::ProxyError;
        match error {
            ProxyError::Token(error) => error.into(),
            ProxyError::NoApi(platform) => Self::new(
                StatusCode::NOT_FOUND,
                "proxy_not_available",
                format!("{platform} has no API configured for the proxy: set its _API_URL."),
            ),
            ProxyError::InvalidPath(why) => Self::bad_request(
                "invalid_proxy_path",
                format!("The path cannot be proxied: {why}."),
            ),
            ProxyError::AccountNotFound(account) => Self::new(
                StatusCode::NOT_FOUND,
                "account_not_found",
                format!("The connection has no account {account:?}."),
            ),
            ProxyError::BodyStalled => Self::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_body_timeout",
                "The request body paused for longer than the platform timeout; the call was cut.",
            ),
            ProxyError::BodyTooLarge(max) => Self::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "request_too_large",
                format!("The request body exceeds the proxy's limit of {max} bytes."),
            ),
            ProxyError::ResponseTooLarge(max) => Self::new(
                StatusCode::BAD_GATEWAY,
                "platform_response_too_large",
                format!("The platform's answer exceeds the proxy's limit of {max} bytes."),
            ),
            ProxyError::QuotaExceeded { reason, retry_after } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                match reason {
                    "store_ceiling" => format!("This store reached its limit of calls to the platform for now. Retry in {retry_after} s."),
                    _ => format!("The platform's limits shared by every store are nearly spent, and this store made more than its share of the recent calls. Retry in {retry_after} s."),
                },
            )
            .with_details(serde_json::json!({ "retry_after_seconds": retry_after, "reason": reason })),
            ProxyError::Unreachable(cause) => Self {
                cause: Some(cause),
                ..Self::new(
                    StatusCode::BAD_GATEWAY,
                    "platform_unreachable",
                    "The platform could not be reached or broke the connection. Please retry.",
                )
            },
        }
    }
}

impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> Self {
        Self::bad_request("invalid_query", rejection.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> Self {
        Self::bad_request("invalid_path", rejection.body_text())
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self::new(rejection.status(), "invalid_json", rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // Bearer only for the API key; the dashboard's 401s are about its session cookie.
        let bearer = self.status == StatusCode::UNAUTHORIZED && self.code == "unauthorized";
        // Read from the details rather than kept in a field of its own: every handler returns
        // this type, so it stays small.
        let retry_after = (self.status == StatusCode::TOO_MANY_REQUESTS)
            .then(|| self.details.as_ref()?.get("retry_after_seconds")?.as_u64())
            .flatten();
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
                details: self.details,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(OwnError);
        if bearer {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(cause) = self.cause {
            response
                .extensions_mut()
                .insert(InternalCause(Arc::from(cause)));
        }
        response
    }
}

impl From<crate::links::SessionError> for ApiError {
    fn from(error: crate::links::SessionError) -> Self {
        use crate::links::SessionError;
        let (status, code) = match error {
            SessionError::Missing => (StatusCode::UNAUTHORIZED, "session_required"),
            SessionError::Invalid | SessionError::LinkTooLong | SessionError::Used => {
                (StatusCode::UNAUTHORIZED, "session_invalid")
            }
            SessionError::Expired => (StatusCode::UNAUTHORIZED, "session_expired"),
            SessionError::CrossSite => (StatusCode::FORBIDDEN, "cross_site_request"),
        };
        Self::new(status, code, error.merchant_message())
    }
}

impl ApiError {
    /// 429 for a client over its rate limit, with `Retry-After` (also in the body's
    /// `details.retry_after_seconds`).
    pub fn rate_limited(retry_after_seconds: u64) -> Self {
        let seconds = retry_after_seconds.max(1);
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("Too many requests from this client. Retry in {seconds} s."),
        )
        .with_details(serde_json::json!({ "retry_after_seconds": seconds }))
    }

    /// 503 for a request that ran longer than `HTTP_REQUEST_TIMEOUT_SECONDS`. A 5xx, since the
    /// time went on our side (a slow client is cut by the header-read timeout before it gets here,
    /// and bodies are small); the cause is logged.
    pub fn request_timeout(limit: std::time::Duration) -> Self {
        Self::internal(
            "request_timeout",
            "The service took too long to answer. Please retry shortly.",
            format!("request exceeded the request timeout ({limit:?})"),
        )
    }
}

/// An error and its sources, by their `Display` only: a `Debug` of a database error can carry the
/// failing row.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
