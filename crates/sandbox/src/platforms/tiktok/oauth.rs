//! TikTok's rules: `client_key` (never `client_id`) in a form body, a flat token response with
//! comma-separated scopes, rotating refresh tokens, the `data.user`-wrapped user info with a
//! required `fields` parameter, and TikTok's two error shapes (OAuth and API).
//!
//! Sources: https://developers.tiktok.com/doc/oauth-user-access-token-management,
//! https://developers.tiktok.com/doc/tiktok-api-v2-get-user-info,
//! https://developers.tiktok.com/doc/oauth-error-handling

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::exchange::{self, bearer_token, reject, TokenCall};
use crate::platform::{unknown_scopes, Rejection};
use crate::spec::{ConsentMemory, PkceRule, PlatformSpec, ScopeSeparator, TEN_MINUTES};
use crate::state::{
    no_object_tokens, ClientCheck, CodeRedemption, CodeRejection, RefreshLookup, Simulator,
};

/// The platform's key.
pub(super) const SLUG: &str = "tiktok";

/// TikTok Login Kit v2. https://developers.tiktok.com/doc/login-kit-web
pub(super) static SPEC: PlatformSpec = PlatformSpec {
    key: SLUG,
    display_name: "TikTok",
    authorize_path: "/sandbox/tiktok/v2/auth/authorize/",
    token_path: "/sandbox/tiktok/v2/oauth/token/",
    revoke_path: "/sandbox/tiktok/v2/oauth/revoke/",
    userinfo_path: "/sandbox/tiktok/v2/user/info/",
    token_accepts_get: false,
    // T6: `https://open.tiktokapis.com/v2/`.
    api_root: "v2",
    // TikTok names the client `client_key`, never `client_id`.
    client_param: "client_key",
    scope_separator: ScopeSeparator::Comma,
    scope_required: true,
    response_type_optional: false,
    // The web flow has no code_challenge; PKCE is for desktop and mobile apps only.
    pkce: PkceRule::Ignored,
    state_max_len: None,
    // TikTok appends the granted scopes to the callback as `scopes=a,b`.
    callback_reports_scopes: true,
    consent_memory: ConsentMemory::Forgotten,
    api_token_in_params: false,
    code_lifetime_seconds: TEN_MINUTES,
    code_prefix: "sbx-tt-",
    access_prefix: "act.",
    refresh_prefix: "rft.",
    account_name: "Sandbox Merchant",
    denial_error: "access_denied",
    denial_reason: None,
    denial_description: "The user denied the request.",
};

const ACCESS_SECONDS: i64 = 86_400;
const REFRESH_SECONDS: i64 = 31_536_000;
/// The simulated user's `open_id` (the same for every simulated account).
pub(super) const OPEN_ID: &str = "sbx-tiktok-open-id";

/// Revocation and user info; the token route is the shared one.
pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/sandbox/tiktok/v2/oauth/revoke/", post(revoke))
        .route("/sandbox/tiktok/v2/user/info/", get(user_info))
}

/// An OAuth-endpoint error: `{"error","error_description","log_id"}`.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    exchange::json(
        status,
        json!({ "error": error, "error_description": description, "log_id": exchange::trace_id() }),
    )
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn invalid_client(description: &str) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

/// An API error: `{"data":{},"error":{"code","message","log_id"}}`.
pub(super) fn api_error(status: StatusCode, code: &str, message: &str) -> Response {
    exchange::json(
        status,
        json!({
            "data": {},
            "error": { "code": code, "message": message, "log_id": exchange::trace_id() },
        }),
    )
}

pub(super) fn fault_body(status: StatusCode) -> Response {
    let error = match status {
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_exceeded",
        StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
        _ => "server_error",
    };
    oauth_error(status, error, "The sandbox was told to fail this request.")
}

/// Reads `client_key` and `client_secret` from the form body, the only place TikTok looks.
fn authenticate_client<'a>(sim: &Simulator, call: &'a TokenCall) -> Result<&'a str, Box<Response>> {
    if !call.form_encoded {
        return reject(invalid_request(
            "Content-Type must be application/x-www-form-urlencoded.",
        ));
    }
    let Some(client_key) = call.body("client_key") else {
        if call.body("client_id").is_some() {
            return reject(invalid_request(
                "Missing client_key: TikTok identifies the app by client_key, not client_id.",
            ));
        }
        if call.has_authorization_header {
            return reject(invalid_client(
                "Client authentication must use client_key and client_secret in the request body.",
            ));
        }
        return reject(invalid_request("Missing required parameter: client_key."));
    };
    let Some(client_secret) = call.body("client_secret") else {
        if call.has_authorization_header {
            return reject(invalid_client(
                "Client authentication must use client_key and client_secret in the request body.",
            ));
        }
        return reject(invalid_request(
            "Missing required parameter: client_secret.",
        ));
    };
    match sim.check_client(SLUG, client_key, client_secret) {
        ClientCheck::Valid => Ok(client_key),
        ClientCheck::UnknownClient | ClientCheck::WrongSecret => {
            reject(invalid_client("Client key or secret is invalid."))
        }
    }
}

pub(super) fn answer_token(sim: &Simulator, call: &TokenCall) -> Response {
    let client_key = match authenticate_client(sim, call) {
        Ok(client_key) => client_key,
        Err(response) => return *response,
    };
    match call.body("grant_type") {
        Some("authorization_code") => redeem(sim, client_key, call),
        Some("refresh_token") => refresh(sim, client_key, call),
        None => invalid_request("Missing required parameter: grant_type."),
        Some(_) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "The grant_type is not supported.",
        ),
    }
}

fn redeem(sim: &Simulator, client_key: &str, call: &TokenCall) -> Response {
    let Some(code) = call.body("code") else {
        return invalid_request("Missing required parameter: code.");
    };
    let redemption = CodeRedemption {
        code,
        client_id: client_key,
        redirect_uri: call.body("redirect_uri"),
        code_verifier: None,
        check_pkce: false,
        object_tokens: no_object_tokens,
    };
    let redeemed = match sim.redeem_code(SLUG, &redemption) {
        Ok(redeemed) => redeemed,
        Err(CodeRejection::RedirectMissing | CodeRejection::RedirectMismatch) => {
            return invalid_request(
                "Redirect_uri is not matched with the uri when requesting code.",
            )
        }
        Err(CodeRejection::Reused) => return invalid_grant("Authorization code has been used."),
        Err(_) => return invalid_grant("Authorization code is expired or invalid."),
    };
    token_response(sim, redeemed.grant_id, &redeemed.approved.granted_scopes)
}

/// Refresh tokens rotate: the presented one stops working once its successor is issued.
fn refresh(sim: &Simulator, client_key: &str, call: &TokenCall) -> Response {
    let Some(refresh_token) = call.body("refresh_token") else {
        return invalid_request("Missing required parameter: refresh_token.");
    };
    match sim.refresh_token_state(SLUG, client_key, refresh_token) {
        RefreshLookup::Active(grant) => {
            sim.retire_refresh_token(refresh_token);
            token_response(sim, grant.grant_id, &grant.scopes)
        }
        RefreshLookup::Unknown | RefreshLookup::Dead | RefreshLookup::Rotated(_) => {
            invalid_grant("Refresh token is invalid or expired.")
        }
    }
}

fn token_response(sim: &Simulator, grant_id: u64, scopes: &[String]) -> Response {
    let ttl = sim.access_ttl(SLUG, ACCESS_SECONDS);
    let access_token = sim.issue_access_token(grant_id, ttl);
    let refresh_token = sim.issue_refresh_token(grant_id, Some(REFRESH_SECONDS));
    exchange::json(
        StatusCode::OK,
        json!({
            "access_token": access_token,
            "expires_in": ttl,
            "open_id": OPEN_ID,
            "refresh_expires_in": REFRESH_SECONDS,
            "refresh_token": refresh_token,
            "scope": exchange::join_scopes(scopes, ","),
            "token_type": "Bearer",
        }),
    )
}

/// The scope each user field needs, and its sandbox value.
fn user_field(field: &str) -> Option<(&'static str, Value)> {
    let (scope, value) = match field {
        "open_id" => ("user.info.basic", json!(OPEN_ID)),
        "union_id" => ("user.info.basic", json!("sbx-tiktok-union-id")),
        "avatar_url" | "avatar_url_100" | "avatar_large_url" => (
            "user.info.basic",
            json!("https://sandbox.example/tiktok/sandbox-merchant.jpeg"),
        ),
        "display_name" => ("user.info.basic", json!("Sandbox Merchant")),
        "username" => ("user.info.profile", json!("sandboxmerchant")),
        "bio_description" => ("user.info.profile", json!("A simulated merchant.")),
        "profile_deep_link" => (
            "user.info.profile",
            json!("https://sandbox.example/tiktok/@sandboxmerchant"),
        ),
        "is_verified" => ("user.info.profile", json!(false)),
        "follower_count" | "following_count" | "likes_count" | "video_count" => {
            ("user.info.stats", json!(0))
        }
        _ => return None,
    };
    Some((scope, value))
}

pub(super) async fn user_info(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let invalid_token = || {
        api_error(
            StatusCode::UNAUTHORIZED,
            "access_token_invalid",
            "The access token is invalid or not found in the request.",
        )
    };
    let Some(token) = bearer_token(&headers) else {
        return invalid_token();
    };
    let Some(grant) = sim.authenticate(SLUG, &token) else {
        return invalid_token();
    };
    let pairs: Vec<(String, String)> = query
        .as_deref()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let Some(fields) = pairs
        .iter()
        .find(|(key, _)| key == "fields")
        .map(|(_, value)| value.as_str())
        .filter(|f| !f.is_empty())
    else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_params",
            "The fields parameter is required.",
        );
    };
    let mut user = Map::new();
    for field in fields.split(',').map(str::trim) {
        let Some((scope, value)) = user_field(field) else {
            return api_error(
                StatusCode::BAD_REQUEST,
                "invalid_params",
                &format!("Invalid field: {field}."),
            );
        };
        if !grant.has_scope(scope) {
            return api_error(
                StatusCode::UNAUTHORIZED,
                "scope_not_authorized",
                &format!("The user did not authorize the scope required for field {field}."),
            );
        }
        user.insert(field.to_owned(), value);
    }
    exchange::json(
        StatusCode::OK,
        json!({
            "data": { "user": user },
            "error": { "code": "ok", "message": "", "log_id": exchange::trace_id() },
        }),
    )
}

/// Revocation ends the user's authorization of the app: every token of the grant dies.
async fn revoke(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let call = TokenCall::parse(&headers, query.as_deref(), &body);
    let client_key = match authenticate_client(&sim, &call) {
        Ok(client_key) => client_key,
        Err(response) => return *response,
    };
    let Some(token) = call.body("token") else {
        return invalid_request("Missing required parameter: token.");
    };
    if let Some(grant) = sim.authenticate(SLUG, token) {
        if grant.client_id != client_key {
            return invalid_request("The token was not issued to this client.");
        }
        sim.kill_grant(grant.grant_id);
        sim.record_revocation(SLUG, token);
    } else if !matches!(
        sim.refresh_token_state(SLUG, client_key, token),
        RefreshLookup::Unknown
    ) {
        // TikTok's revoke endpoint takes the access token; a refresh token here is a client bug.
        return invalid_request("The token to revoke must be an access token.");
    }
    StatusCode::OK.into_response()
}

/// The scopes Login Kit and the Content Posting API give (providers.md §2 [T12, T13]).
const KNOWN_SCOPES: [&str; 6] = [
    "user.info.basic",
    "user.info.profile",
    "user.info.stats",
    "video.list",
    "video.publish",
    "video.upload",
];

/// TikTok refuses a scope it does not give the app always, strict or not: its OAuth errors include
/// `invalid_scope` (providers.md §2 [T7]), and its authorization page answers on its own page,
/// naming the parameter to correct, not by redirecting ("We couldn't log in with TikTok. This may
/// be due to specific app settings. If you're a developer, correct the following and try again:
/// scope"; andreaolivato/TikTok-LoginKit-PHP#12, where a scope the app lacked was the cause, and
/// #6 for the same page naming `redirect_uri`; 3rd-party). The sandbox adds which scope.
pub(super) fn check_scopes(scopes: Vec<String>) -> Result<Vec<String>, Rejection> {
    let unknown = unknown_scopes(&scopes, &KNOWN_SCOPES);
    if unknown.is_empty() {
        return Ok(scopes);
    }
    Err(Rejection::Page(format!(
        "Something went wrong. We couldn't log in with TikTok. This may be due to specific app \
         settings. If you're a developer, correct the following and try again: scope (not a scope \
         of this app: {}).",
        unknown.join(", ")
    )))
}
