//! The Google Ads API as the sandbox serves it under `/sandbox/google/api/v26/`:
//! `customers:listAccessibleCustomers` (G9). Google Ads has no publishing call.
//!
//! It owns the google.rpc error shape with its `GoogleAdsFailure` details (G12, G13): 401
//! `UNAUTHENTICATED` with the `authenticationError` that says why, 403 `PERMISSION_DENIED` with
//! `ACCESS_TOKEN_SCOPE_INSUFFICIENT`, 429 `RESOURCE_EXHAUSTED` with the wait in
//! `quotaErrorDetails.retryDelay` (no header), and the `login-customer-id` header's format (G14).
//! `developer-token` is accepted and ignored, as Google now does (G8).

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::oauth::SPEC;
use crate::exchange;
use crate::state::{ApiCaller, ApiRateLimit, Denial, Simulator};

const ADWORDS_SCOPE: &str = "https://www.googleapis.com/auth/adwords";

/// The customers the simulated user reaches directly.
const CUSTOMERS: [&str; 2] = ["customers/1234567890", "customers/2345678901"];

pub(super) fn routes() -> Router<Simulator> {
    Router::new().route(
        &SPEC.api_path("customers:listAccessibleCustomers"),
        get(list_accessible_customers),
    )
}

/// A google.rpc error whose details hold one `GoogleAdsFailure` (G12).
fn ads_error(status: StatusCode, rpc_status: &str, message: &str, error: Value) -> Response {
    exchange::json(
        status,
        json!({ "error": {
            "code": status.as_u16(),
            "message": message,
            "status": rpc_status,
            "details": [{
                "@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
                "errors": [error],
                "requestId": exchange::trace_id(),
            }],
        } }),
    )
}

/// 401 `UNAUTHENTICATED` with the `AuthenticationError` for the reason (G12, G13).
pub(super) fn denied(denial: Denial) -> Response {
    let (reason, detail) = match denial {
        Denial::Missing => (
            "OAUTH_TOKEN_HEADER_INVALID",
            "The OAuth token in the request header is not valid.",
        ),
        Denial::Invalid => ("OAUTH_TOKEN_INVALID", "The OAuth token is not valid."),
        Denial::Expired => ("OAUTH_TOKEN_EXPIRED", "The OAuth token has expired."),
        Denial::Revoked => ("OAUTH_TOKEN_REVOKED", "The OAuth token has been revoked."),
    };
    ads_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        json!({ "errorCode": { "authenticationError": reason }, "message": detail }),
    )
}

/// 429 `RESOURCE_EXHAUSTED`: the only retry hint is `retryDelay` in the body (G12).
pub(super) fn throttled(limit: ApiRateLimit) -> Response {
    ads_error(
        StatusCode::TOO_MANY_REQUESTS,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        json!({
            "errorCode": { "quotaError": "RESOURCE_EXHAUSTED" },
            "message": "Too many requests. Retry in the time given in retryDelay.",
            "details": { "quotaErrorDetails": {
                "rateScope": "DEVELOPER",
                "rateName": "Number of operations for basic access",
                "retryDelay": format!("{}s", limit.retry_after_seconds),
            } },
        }),
    )
}

/// 403 `PERMISSION_DENIED` for a token without the Ads scope: the generic Google shape with
/// `ErrorInfo.reason` (G13).
fn insufficient_scope() -> Response {
    exchange::json(
        StatusCode::FORBIDDEN,
        json!({ "error": {
            "code": 403,
            "message": "Request had insufficient authentication scopes.",
            "status": "PERMISSION_DENIED",
            "details": [{
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
                "domain": "googleapis.com",
                "metadata": {
                    "service": "googleads.googleapis.com",
                    "method": "google.ads.googleads.v26.services.CustomerService.ListAccessibleCustomers",
                },
            }],
        } }),
    )
}

/// `login-customer-id`, when sent, must be a customer id in digits only, no dashes (G14, R3).
fn check_login_customer_id(headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(value) = headers.get("login-customer-id") else {
        return Ok(());
    };
    let valid = value
        .to_str()
        .is_ok_and(|v| v.len() == 10 && v.bytes().all(|b| b.is_ascii_digit()));
    if valid {
        return Ok(());
    }
    // HeaderError.INVALID_LOGIN_CUSTOMER_ID is Google Ads' enum for this header; its exact
    // wording is not in platform-apis.md.
    exchange::reject(ads_error(
        StatusCode::BAD_REQUEST,
        "INVALID_ARGUMENT",
        "Request contains an invalid argument.",
        json!({
            "errorCode": { "headerError": "INVALID_LOGIN_CUSTOMER_ID" },
            "message": "The login customer ID could not be validated. Use digits only, without dashes.",
        }),
    ))
}

/// `GET /v26/customers:listAccessibleCustomers` (G9): the customers the user reaches directly,
/// as resource names. Whether `login-customer-id` matters here is unverified: its format is
/// checked, its value otherwise ignored.
async fn list_accessible_customers(
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
) -> Response {
    if !caller.grant.has_scope(ADWORDS_SCOPE) {
        return insufficient_scope();
    }
    if let Err(response) = check_login_customer_id(&headers) {
        return *response;
    }
    exchange::json(StatusCode::OK, json!({ "resourceNames": CUSTOMERS }))
}
