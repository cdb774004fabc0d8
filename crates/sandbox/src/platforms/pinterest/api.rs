//! Pinterest API v5 as the sandbox serves it under `/sandbox/pinterest/api/v5/`: `user_account`,
//! `boards`, `ad_accounts` and `POST pins` (validated as the spec describes it, its image URLs
//! fetched as Pinterest fetches them, links on a spam list refused with a 429).
//!
//! It owns Pinterest's `{"code","message"}` errors (P1): 401 `code:2` for any refused token (the
//! only refresh-worthy one), **401** `code:3` for a missing scope, 429 `code:8` for throttling.
//! Pinterest's rate-limit response headers are not in the stored docs (P9, unverified), so the
//! sandbox sends none rather than invent them.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::oauth::{error, SLUG, SPEC, USER_ID};
use crate::exchange;
use crate::params::{query_pairs, query_param};
use crate::state::{random_string, ApiCaller, Denial, PublishedItem, Simulator};

pub(super) fn routes() -> Router<Simulator> {
    let at = |rest: &str| SPEC.api_path(rest);
    Router::new()
        .route(&at("user_account"), get(user_account))
        .route(&at("boards"), get(boards))
        .route(&at("ad_accounts"), get(ad_accounts))
        .route(&at("pins"), post(create_pin))
}

pub(super) fn denied(_denial: Denial) -> Response {
    error(StatusCode::UNAUTHORIZED, 2, "Authentication failed.")
}

pub(super) fn throttled() -> Response {
    error(
        StatusCode::TOO_MANY_REQUESTS,
        8,
        "This request exceeded a rate limit. This can be caused by too many requests within a short time period.",
    )
}

/// P1: a token without the operation's scopes is a 401 with `code:3`.
fn require_scopes(caller: &ApiCaller, scopes: &[&str]) -> Result<(), Box<Response>> {
    if scopes.iter().all(|scope| caller.grant.has_scope(scope)) {
        return Ok(());
    }
    exchange::reject(error(
        StatusCode::UNAUTHORIZED,
        3,
        "Your token does not have sufficient permissions to perform this operation. Please ensure your token is authorized with the correct set of scopes.",
    ))
}

fn invalid(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, 1, message)
}

/// The simulated user's boards: one public, one secret (listed only with `boards:read_secret`).
fn all_boards() -> [Value; 2] {
    let owner = json!({ "username": "sandboxmerchant" });
    [
        json!({
            "id": "900000000000000001", "name": "Sandbox Merchant Products",
            "description": "Everything in the shop.", "privacy": "PUBLIC", "owner": owner,
            "follower_count": 12, "collaborator_count": 0, "pin_count": 3,
            "created_at": "2024-01-01T00:00:00",
        }),
        json!({
            "id": "900000000000000002", "name": "Sandbox Merchant Drafts",
            "description": "", "privacy": "SECRET", "owner": owner,
            "follower_count": 0, "collaborator_count": 0, "pin_count": 0,
            "created_at": "2024-01-02T00:00:00",
        }),
    ]
}

/// `GET /v5/user_account` (`user_accounts:read`, P1).
async fn user_account(Extension(caller): Extension<ApiCaller>) -> Response {
    if let Err(response) = require_scopes(&caller, &["user_accounts:read"]) {
        return *response;
    }
    exchange::json(
        StatusCode::OK,
        json!({
            "account_type": "BUSINESS",
            "id": USER_ID,
            "username": "sandboxmerchant",
            "business_name": "Sandbox Merchant",
            "profile_image": "https://sandbox.example/pinterest/sandbox-merchant.jpg",
            "website_url": "https://sandbox.example/shop",
            "board_count": 2,
            "pin_count": 3,
            "follower_count": 12,
            "following_count": 1,
            "monthly_views": 0,
        }),
    )
}

/// `GET /v5/boards` (`boards:read`; secret boards need `boards:read_secret`, P1). One page:
/// `bookmark` is null.
async fn boards(Extension(caller): Extension<ApiCaller>, RawQuery(query): RawQuery) -> Response {
    if let Err(response) = require_scopes(&caller, &["boards:read"]) {
        return *response;
    }
    let pairs = query_pairs(query.as_deref());
    if let Some(size) = query_param(&pairs, "page_size") {
        if !size.parse::<u32>().is_ok_and(|n| (1..=250).contains(&n)) {
            return invalid("page_size must be between 1 and 250.");
        }
    }
    let secret = caller.grant.has_scope("boards:read_secret");
    let items: Vec<Value> = all_boards()
        .into_iter()
        .filter(|board| secret || board["privacy"] != "SECRET")
        .collect();
    exchange::json(StatusCode::OK, json!({ "items": items, "bookmark": null }))
}

/// `GET /v5/ad_accounts` (`ads:read`, P1).
async fn ad_accounts(Extension(caller): Extension<ApiCaller>) -> Response {
    if let Err(response) = require_scopes(&caller, &["ads:read"]) {
        return *response;
    }
    exchange::json(
        StatusCode::OK,
        json!({
            "items": [{
                "id": "549755885175", "name": "Sandbox Merchant Ads",
                "owner": { "username": "sandboxmerchant" }, "country": "FR", "currency": "EUR",
                "permissions": ["OWNER"], "created_time": 1704067200, "updated_time": 1704067200,
            }],
            "bookmark": null,
        }),
    )
}

/// The length limits of a pin's texts (P1).
const LIMITS: [(&str, usize); 4] = [
    ("title", 100),
    ("description", 800),
    ("link", 2048),
    ("alt_text", 500),
];

/// Checks a pin's JSON body (P1): `board_id` of one of the user's boards, texts within their
/// limits, a `media_source` of a known `source_type` with its required field.
fn check_pin(pin: &Value) -> Result<String, Box<Response>> {
    let Some(board_id) = pin.get("board_id").and_then(Value::as_str) else {
        return exchange::reject(invalid("board_id is required."));
    };
    if !all_boards().iter().any(|board| board["id"] == board_id) {
        return exchange::reject(error(StatusCode::NOT_FOUND, 40, "Board not found."));
    }
    for (field, max) in LIMITS {
        if pin
            .get(field)
            .and_then(Value::as_str)
            .is_some_and(|v| v.chars().count() > max)
        {
            return exchange::reject(invalid(&format!(
                "{field} must be at most {max} characters."
            )));
        }
    }
    media_urls(pin.get("media_source").unwrap_or(&Value::Null))?;
    Ok(board_id.to_owned())
}

/// How many images a `multiple_image_urls` source holds: a carousel of two to five (the spec's
/// `items` array of `{url, title, description, link}`; the bounds are Pinterest's carousel rule,
/// unverified in the stored docs).
const CAROUSEL: std::ops::RangeInclusive<usize> = 2..=5;

/// A `media_source` of a known `source_type` with its required fields (P1), and the image URLs
/// Pinterest then fetches itself (none for `image_base64` and `video_id`).
fn media_urls(source: &Value) -> Result<Vec<String>, Box<Response>> {
    let url_of = |item: &Value| {
        item.get("url")
            .and_then(Value::as_str)
            .filter(|url| url.starts_with("https://") || url.starts_with("http://"))
            .map(str::to_owned)
    };
    match source.get("source_type").and_then(Value::as_str) {
        Some("image_url") => match url_of(source) {
            Some(url) => Ok(vec![url]),
            None => exchange::reject(invalid("media_source.url must be an http(s) URL.")),
        },
        Some("multiple_image_urls") => {
            let items = source
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if !CAROUSEL.contains(&items.len()) {
                return exchange::reject(invalid(
                    "media_source.items must hold between 2 and 5 images.",
                ));
            }
            items
                .iter()
                .map(|item| {
                    url_of(item).ok_or_else(|| {
                        Box::new(invalid("media_source.items[].url must be an http(s) URL."))
                    })
                })
                .collect()
        }
        Some("image_base64") => {
            let typed = matches!(
                source.get("content_type").and_then(Value::as_str),
                Some("image/jpeg" | "image/png")
            );
            if source.get("data").and_then(Value::as_str).is_none() || !typed {
                return exchange::reject(invalid(
                    "media_source.data and media_source.content_type (image/jpeg or image/png) are required.",
                ));
            }
            Ok(Vec::new())
        }
        Some("video_id") => {
            if source.get("media_id").and_then(Value::as_str).is_none() {
                return exchange::reject(invalid("media_source.media_id is required."));
            }
            Ok(Vec::new())
        }
        _ => exchange::reject(invalid(
            "media_source.source_type must be image_url, image_base64, multiple_image_urls or video_id.",
        )),
    }
}

/// Link domains the sandbox's spam filter blocks, so that a test can provoke Pinterest's spam
/// answer (P10: a 429 may be a spam block rather than a rate limit).
pub(super) const SPAM_DOMAINS: [&str; 1] = ["spam.sandbox.example"];

/// P10: Pinterest blocks links it judges spam with a 429. The body's code for it is not
/// documented; the sandbox sends `code:8` like a rate limit, so only the message tells a spam
/// block from a throttle, as it does for a client of the real API.
fn spam_block(pin: &Value) -> Option<Response> {
    let link = pin.get("link").and_then(Value::as_str)?;
    let host = url::Url::parse(link).ok()?.host_str()?.to_owned();
    SPAM_DOMAINS.contains(&host.as_str()).then(|| {
        error(
            StatusCode::TOO_MANY_REQUESTS,
            8,
            "Your request was blocked because the link was flagged as spam.",
        )
    })
}

/// Pinterest pulls an `image_url` itself (P1's media source is a URL, not bytes): the sandbox
/// fetches each one too and refuses what it cannot read as an image. The refusal's wording is the
/// sandbox's (the stored docs give none).
async fn fetch_images(urls: &[String]) -> Result<(), Box<Response>> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .map_err(|_| Box::new(invalid("Sorry, we could not fetch the image.")))?;
    for url in urls {
        let answer = client.get(url).send().await;
        let is_image = answer.as_ref().is_ok_and(|answer| {
            answer.status().is_success()
                && answer
                    .headers()
                    .get(CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .is_some_and(|v| v.starts_with("image/"))
        });
        if !is_image {
            return exchange::reject(invalid(&format!(
                "Sorry, we could not fetch the image at {url}."
            )));
        }
    }
    Ok(())
}

/// `POST /v5/pins` (P1): scopes `boards:read boards:write pins:read pins:write`, a JSON body;
/// answers 201 with the Pin.
async fn create_pin(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let scopes = ["boards:read", "boards:write", "pins:read", "pins:write"];
    if let Err(response) = require_scopes(&caller, &scopes) {
        return *response;
    }
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Some(pin) = is_json
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten()
        .filter(Value::is_object)
    else {
        return invalid("The request body must be a JSON object (Content-Type: application/json).");
    };
    let board_id = match check_pin(&pin) {
        Ok(board_id) => board_id,
        Err(response) => return *response,
    };
    if let Some(blocked) = spam_block(&pin) {
        return blocked;
    }
    let urls = media_urls(&pin["media_source"]).unwrap_or_default();
    if let Err(response) = fetch_images(&urls).await {
        return *response;
    }
    let id: String = random_string(30)
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .take(18)
        .collect();
    let text = |name: &str| pin.get(name).cloned().unwrap_or(Value::Null);
    let answer = json!({
        "id": id,
        "created_at": "2026-01-01T12:00:00",
        "board_id": board_id,
        "board_section_id": text("board_section_id"),
        "board_owner": { "username": "sandboxmerchant" },
        "title": text("title"),
        "description": text("description"),
        "link": text("link"),
        "alt_text": text("alt_text"),
        "media": { "media_type": if urls.len() > 1 { "multiple_images" } else { "image" } },
    });
    sim.publish(
        SLUG,
        PublishedItem {
            kind: "pinterest_pin".to_owned(),
            id,
            target: board_id,
            fields: pin,
        },
    );
    exchange::json(StatusCode::CREATED, answer)
}
