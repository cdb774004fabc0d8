//! TikTok's API as the sandbox serves it under `/sandbox/tiktok/api/v2/`: `user/info/` (the OAuth
//! side's handler), `post/publish/creator_info/query/` and the posting calls (answered by
//! `super::posting`).
//!
//! It owns TikTok's API envelope `{"data","error":{"code","message","log_id"}}` for refused tokens
//! (401 `access_token_invalid`), missing scopes (**401** `scope_not_authorized`), bad requests
//! (400 `invalid_params`) and throttling (429 `rate_limit_exceeded`, no documented headers) [T6,
//! T17].

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::json;

use super::oauth::{api_error, user_info, SPEC};
use super::posting::{self, ok, per_token_limit, scope_not_authorized, PRIVACY_LEVELS};
use crate::state::{ApiCaller, Denial, Simulator};

pub(super) fn routes() -> Router<Simulator> {
    let at = |rest: &str| SPEC.api_path(rest);
    Router::new()
        .route(&at("user/info/"), get(user_info))
        .route(&at("post/publish/creator_info/query/"), post(creator_info))
        .merge(posting::routes())
}

/// Every refused token is `access_token_invalid` at 401, the refresh-worthy error (T6, T21).
pub(super) fn denied(_denial: Denial) -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "access_token_invalid",
        "The access token is invalid or not found in the request.",
    )
}

/// `POST /v2/post/publish/creator_info/query/` (T18): scope `video.publish`, empty body.
async fn creator_info(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
) -> Response {
    if !caller.grant.has_scope("video.publish") {
        return scope_not_authorized("video.publish");
    }
    if let Some(throttled) = per_token_limit(&sim, &headers, "creator_info", 20) {
        return throttled;
    }
    ok(json!({
        "creator_avatar_url": "https://sandbox.example/tiktok/sandbox-merchant.jpeg",
        "creator_username": "sandboxmerchant",
        "creator_nickname": "Sandbox Merchant",
        "privacy_level_options": PRIVACY_LEVELS,
        "comment_disabled": false,
        "duet_disabled": false,
        "stitch_disabled": true,
        "max_video_post_duration_sec": 600,
    }))
}

/// TikTok's answer to an injected server failure: `internal_error` (T6).
pub(super) fn fault_body(status: StatusCode) -> Response {
    api_error(
        status,
        "internal_error",
        "Something went wrong. Please try again later.",
    )
}
