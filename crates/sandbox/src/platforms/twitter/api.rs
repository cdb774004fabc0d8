//! X API v2 as the sandbox serves it under `/sandbox/twitter/api/2/`: `users/me` (the OAuth
//! side's handler), the media upload (`media`) and `POST tweets` (text counted as X counts it,
//! media that must be the user's own finished uploads, duplicates refused, the per-user and
//! per-app posting limits counted).
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

use super::media::{self, invalid_request};
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
        .route(
            &at("media/upload"),
            post(media::simple_upload).get(media::status),
        )
        .route(&at("media/upload/initialize"), post(media::initialize))
        .route(&at("media/upload/{id}/append"), post(media::append_segment))
        .route(
            &at("media/upload/{id}/finalize"),
            post(media::finalize_upload),
        )
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
    if headers.contains_key("x-rate-limit-limit") {
        // The handler counted the calls itself (`POST /2/tweets`): its numbers stand.
        return;
    }
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
    if weighted_length(text) > MAX_WEIGHTED_LENGTH {
        // X's wording for it is not in the stored docs: the sandbox names the rule.
        return invalid_request("Your Tweet text is too long (more than 280 weighted characters).");
    }
    let now = sim.now();
    if let Some(ids) = tweet.pointer("/media/media_ids") {
        let ids = ids.as_array().cloned().unwrap_or_default();
        if let Err(refusal) = media::check_attachable(&sim, USER_ID, &ids, now) {
            return *refusal;
        }
    }
    let duplicate = !text.is_empty()
        && sim.published(SLUG).iter().any(|item| {
            item.kind == "tweet" && item.target == USER_ID && item.fields["text"] == text
        });
    if duplicate {
        // The answer X gives a repeated status (reported by its users; not in the stored docs).
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            Some(
                json!({ "detail": "You are not allowed to create a Tweet with duplicate content." }),
            ),
        );
    }
    let user_counter = format!("user:{USER_ID}");
    let app_counter = format!("app:{}", caller.grant.client_id);
    let user_since = now - chrono::Duration::seconds(WINDOW_SECONDS);
    let app_since = now - chrono::Duration::seconds(APP_WINDOW_SECONDS);
    let user_made = sim.count_call(SLUG, &user_counter, user_since, USER_POSTS, false);
    let app_made = sim.count_call(SLUG, &app_counter, app_since, APP_POSTS, false);
    if user_made >= USER_POSTS || app_made >= APP_POSTS {
        let (counter, since, window, total) = if user_made >= USER_POSTS {
            (&user_counter, user_since, WINDOW_SECONDS, USER_POSTS)
        } else {
            (&app_counter, app_since, APP_WINDOW_SECONDS, APP_POSTS)
        };
        let reset = sim
            .first_call_since(SLUG, counter, since)
            .map_or(now.timestamp() + window, |first| first.timestamp() + window);
        let mut response = problem(StatusCode::TOO_MANY_REQUESTS, "Too Many Requests", None);
        counted_headers(response.headers_mut(), total, 0, reset);
        return response;
    }
    sim.count_call(SLUG, &user_counter, user_since, USER_POSTS, true);
    sim.count_call(SLUG, &app_counter, app_since, APP_POSTS, true);
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
    let reset = sim
        .first_call_since(SLUG, &user_counter, user_since)
        .map_or(now.timestamp() + WINDOW_SECONDS, |first| {
            first.timestamp() + WINDOW_SECONDS
        });
    let mut response = exchange::json(
        StatusCode::CREATED,
        json!({ "data": { "id": id, "text": text, "edit_history_tweet_ids": [id] } }),
    );
    counted_headers(
        response.headers_mut(),
        USER_POSTS,
        USER_POSTS - user_made - 1,
        reset,
    );
    response
}

/// X10: `POST /2/tweets` 100 per 15 minutes per user, 10,000 per 24 hours per app.
const USER_POSTS: usize = 100;
const APP_POSTS: usize = 10_000;
const APP_WINDOW_SECONDS: i64 = 86_400;

fn counted_headers(headers: &mut HeaderMap, total: usize, remaining: usize, reset: i64) {
    headers.insert("x-rate-limit-limit", HeaderValue::from(total));
    headers.insert("x-rate-limit-remaining", HeaderValue::from(remaining));
    headers.insert("x-rate-limit-reset", HeaderValue::from(reset));
}

/// The most weighted characters a post's text holds.
const MAX_WEIGHTED_LENGTH: usize = 280;

/// A text's length as X counts it (twitter-text's v3 configuration,
/// <https://docs.x.com/fundamentals/counting-characters>): code points in the Latin and common
/// punctuation ranges weigh 1, all others (CJK, emoji) 2; a URL weighs 23 whatever its length.
/// Emoji sequences joined by U+200D count per code point here, a little more than X counts them.
pub(super) fn weighted_length(text: &str) -> usize {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let bare = word.trim_end();
            let is_url = bare.starts_with("https://") || bare.starts_with("http://");
            let tail = &word[bare.len()..];
            if is_url {
                23 + tail.chars().map(weight).sum::<usize>()
            } else {
                word.chars().map(weight).sum()
            }
        })
        .sum()
}

fn weight(c: char) -> usize {
    match u32::from(c) {
        0..=4351 | 8192..=8205 | 8208..=8223 | 8242..=8247 => 1,
        _ => 2,
    }
}
