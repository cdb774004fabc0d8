//! X API v2 as the sandbox serves it under `/sandbox/twitter/api/2/`: `users/me` (the OAuth
//! side's handler) and `POST tweets`.
//!
//! It owns X's problem-JSON errors (X5, X13): 401 `Unauthorized` for any refused token, 403
//! `Forbidden` for a missing scope, 429 `Too Many Requests`; and the `x-rate-limit-limit`,
//! `x-rate-limit-remaining`, `x-rate-limit-reset` (epoch seconds) headers X puts on every
//! response (X10).

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::oauth::{problem, users_me, SLUG, SPEC, USER_ID};
use crate::exchange;
use crate::state::{random_string, ApiCaller, ApiRateLimit, Denial, PublishedItem, Simulator};

/// The per-user window X documents (15 minutes, X10).
const WINDOW_SECONDS: i64 = 900;

pub(super) fn routes() -> Router<Simulator> {
    let at = |rest: &str| SPEC.api_path(rest);
    Router::new()
        .route(&at("users/me"), get(users_me))
        .route(&at("tweets"), post(create_tweet))
}

pub(super) fn denied(_denial: Denial) -> Response {
    problem(StatusCode::UNAUTHORIZED, "Unauthorized", None)
}

/// X10/X13: 429 problem JSON, remaining 0, reset when access comes back.
pub(super) fn throttled(limit: ApiRateLimit, now: DateTime<Utc>) -> Response {
    let mut response = problem(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", None);
    usage_headers(response.headers_mut(), now, "", Some(limit));
    response
}

/// X10's per-user limits: `POST /2/tweets` 100 per 15 minutes, `GET /2/users/me` 75.
fn limit_of(path: &str) -> u64 {
    if path.ends_with("/tweets") {
        100
    } else {
        75
    }
}

/// The `x-rate-limit-*` headers (X10). The sandbox does not count calls: a normal answer shows
/// one call used in a fresh window, a throttled one none left until the retry time.
pub(super) fn usage_headers(
    headers: &mut HeaderMap,
    now: DateTime<Utc>,
    path: &str,
    limit: Option<ApiRateLimit>,
) {
    let total = limit_of(path);
    let (remaining, reset) = match limit {
        None => (total - 1, now.timestamp() + WINDOW_SECONDS),
        Some(limit) => (
            0,
            now.timestamp() + i64::try_from(limit.retry_after_seconds).unwrap_or(i64::MAX / 2),
        ),
    };
    headers.insert("x-rate-limit-limit", HeaderValue::from(total));
    headers.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    headers.insert("x-rate-limit-reset", HeaderValue::from(reset));
}

fn invalid_request(message: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "Invalid Request",
        Some(json!({
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request",
            "errors": [{ "message": message }],
        })),
    )
}

/// `POST /2/tweets` (X11, X12): scopes `tweet.read tweet.write users.read`, a JSON body with
/// `text` or `media.media_ids`; answers 201 `{"data":{"id","text"}}`.
async fn create_tweet(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let scoped = ["tweet.read", "tweet.write", "users.read"]
        .iter()
        .all(|scope| caller.grant.has_scope(scope));
    if !scoped {
        return problem(StatusCode::FORBIDDEN, "Forbidden", None);
    }
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Some(tweet) = is_json
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten()
        .filter(Value::is_object)
    else {
        return invalid_request(
            "The request body must be a JSON object (Content-Type: application/json).",
        );
    };
    let text = tweet
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let has_media = tweet
        .pointer("/media/media_ids")
        .and_then(Value::as_array)
        .is_some_and(|ids| !ids.is_empty());
    if text.is_empty() && !has_media {
        return invalid_request("$.text or $.media.media_ids is required.");
    }
    let id: String = random_string(30)
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .take(18)
        .collect();
    let id = format!("1{id}");
    let text = text.to_owned();
    sim.publish(
        SLUG,
        PublishedItem {
            kind: "tweet".to_owned(),
            id: id.clone(),
            target: USER_ID.to_owned(),
            fields: tweet,
        },
    );
    exchange::json(
        StatusCode::CREATED,
        json!({ "data": { "id": id, "text": text, "edit_history_tweet_ids": [id] } }),
    )
}
