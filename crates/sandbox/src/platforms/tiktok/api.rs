//! TikTok's Content Posting API as the sandbox serves it under `/sandbox/tiktok/api/v2/`:
//! `user/info/` (the OAuth side's handler), `post/publish/creator_info/query/` and the direct-post
//! `post/publish/video/init/`.
//!
//! It owns TikTok's API envelope `{"data","error":{"code","message","log_id"}}` for refused tokens
//! (401 `access_token_invalid`), missing scopes (**401** `scope_not_authorized`), bad requests
//! (400 `invalid_params`) and throttling (429 `rate_limit_exceeded`, no documented headers) [T6,
//! T17]. The chunk upload to `upload_url` is not simulated.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::oauth::{api_error, user_info, SLUG, SPEC};
use crate::exchange;
use crate::state::{random_string, ApiCaller, Denial, PublishedItem, Simulator};

/// The `open_id` of the simulated creator (the OAuth side's value).
const OPEN_ID: &str = "sbx-tiktok-open-id";

/// The privacy levels the simulated creator may post with (T18).
const PRIVACY_LEVELS: [&str; 4] = [
    "PUBLIC_TO_EVERYONE",
    "MUTUAL_FOLLOW_FRIENDS",
    "FOLLOWER_OF_CREATOR",
    "SELF_ONLY",
];

pub(super) fn routes() -> Router<Simulator> {
    let at = |rest: &str| SPEC.api_path(rest);
    Router::new()
        .route(&at("user/info/"), get(user_info))
        .route(&at("post/publish/creator_info/query/"), post(creator_info))
        .route(&at("post/publish/video/init/"), post(video_init))
}

/// Every refused token is `access_token_invalid` at 401, the refresh-worthy error (T6, T21).
pub(super) fn denied(_denial: Denial) -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "access_token_invalid",
        "The access token is invalid or not found in the request.",
    )
}

/// T17: HTTP 429 `rate_limit_exceeded`; TikTok documents no rate-limit headers.
pub(super) fn throttled() -> Response {
    api_error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        "API rate limit exceeded, please retry later.",
    )
}

/// T6: a scope not granted is a **401**, which a refresh cannot fix.
fn scope_not_authorized(scope: &str) -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "scope_not_authorized",
        &format!(
            "The user did not authorize the scope required for completing this request: {scope}."
        ),
    )
}

fn invalid_params(message: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, "invalid_params", message)
}

fn ok(data: Value) -> Response {
    exchange::json(
        StatusCode::OK,
        json!({
            "data": data,
            "error": { "code": "ok", "message": "", "log_id": exchange::trace_id() },
        }),
    )
}

/// `POST /v2/post/publish/creator_info/query/` (T18): scope `video.publish`, empty body.
async fn creator_info(Extension(caller): Extension<ApiCaller>) -> Response {
    if !caller.grant.has_scope("video.publish") {
        return scope_not_authorized("video.publish");
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

/// `POST /v2/post/publish/video/init/` (T19): scope `video.publish`, a JSON body with `post_info`
/// (a `privacy_level` from creator_info) and `source_info` (`FILE_UPLOAD` with sizes and chunk
/// count, or `PULL_FROM_URL` with `video_url`). Answers `publish_id`, plus `upload_url` for
/// `FILE_UPLOAD`.
async fn video_init(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !caller.grant.has_scope("video.publish") {
        return scope_not_authorized("video.publish");
    }
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return invalid_params("Content-Type must be application/json; charset=UTF-8.");
    }
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return invalid_params("The request body is not valid JSON.");
    };
    let privacy = request
        .pointer("/post_info/privacy_level")
        .and_then(Value::as_str);
    match privacy {
        None => return invalid_params("post_info.privacy_level is required."),
        Some(level) if !PRIVACY_LEVELS.contains(&level) => {
            return invalid_params(&format!(
                "post_info.privacy_level {level} is not one of the creator's privacy_level_options."
            ))
        }
        Some(_) => {}
    }
    let upload = match source_kind(&request) {
        Ok(upload) => upload,
        Err(response) => return *response,
    };
    let publish_id = format!(
        "v_pub_{}~v2-1.{}",
        if upload { "file" } else { "url" },
        random_string(19)
    );
    sim.publish(
        SLUG,
        PublishedItem {
            kind: "tiktok_video".to_owned(),
            id: publish_id.clone(),
            target: OPEN_ID.to_owned(),
            fields: request,
        },
    );
    let mut data = json!({ "publish_id": publish_id });
    if let (true, Some(map)) = (upload, data.as_object_mut()) {
        map.insert(
            "upload_url".to_owned(),
            json!(format!(
                "https://open-upload.tiktokapis.com/video/?upload_id={}&upload_token=sbx",
                random_string(19)
            )),
        );
    }
    ok(data)
}

/// Validates `source_info`; `Ok(true)` for a file upload, `Ok(false)` for a URL pull.
fn source_kind(request: &Value) -> Result<bool, Box<Response>> {
    let source = request.get("source_info");
    let field = |name: &str| source.and_then(|s| s.get(name));
    match field("source").and_then(Value::as_str) {
        Some("FILE_UPLOAD") => {
            for name in ["video_size", "chunk_size", "total_chunk_count"] {
                if field(name).and_then(Value::as_u64).is_none_or(|n| n == 0) {
                    return exchange::reject(invalid_params(&format!(
                        "source_info.{name} must be a positive integer for FILE_UPLOAD."
                    )));
                }
            }
            Ok(true)
        }
        Some("PULL_FROM_URL") => match field("video_url").and_then(Value::as_str) {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => Ok(false),
            _ => exchange::reject(invalid_params(
                "source_info.video_url is required for PULL_FROM_URL.",
            )),
        },
        _ => exchange::reject(invalid_params(
            "source_info.source must be FILE_UPLOAD or PULL_FROM_URL.",
        )),
    }
}
