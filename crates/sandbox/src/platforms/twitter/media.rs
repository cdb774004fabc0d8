//! X's v2 media upload as the sandbox serves it: the chunked flow (`POST /2/media/upload/
//! initialize`, `POST /2/media/upload/{id}/append`, `POST /2/media/upload/{id}/finalize`, then
//! `GET /2/media/upload?command=STATUS&media_id=` while `processing_info` says so) and the simple
//! upload of one image or GIF (`POST /2/media/upload`).
//!
//! Rules, from X's docs (<https://docs.x.com/x-api/media/initialize-media-upload>,
//! `.../append-media-upload`, `.../finalize-media-upload`, `.../get-media-upload-status`,
//! `.../upload-media`, `.../quickstart/media-upload-chunked`, `.../quickstart/best-practices`):
//! the `media.write` scope (platform-apis.md §5, X2); initialize takes a JSON body
//! (`media_type`, `total_bytes`, `media_category`) and `command=INIT` to `POST /2/media/upload`
//! is refused ("INIT / APPEND / FINALIZE use dedicated v2 paths"); an append is a
//! `multipart/form-data` body with `segment_index` (from 0) and the file part `media`, at most
//! 8 MB a segment; categories `tweet_image` (5 MB), `tweet_gif` (15 MB), `tweet_video` and
//! `amplify_video` (8 GB for a default account) with a matching media type; a finalized medium
//! may be attached for `expires_after_secs` (86,400); a video is processed (`pending`, then
//! `succeeded` on the next STATUS) before a post may carry it. Uploads are kept as drafts of the
//! platform's state, owned by the user who uploaded them.

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::multipart;
use super::oauth::{problem, SLUG};
use crate::exchange;
use crate::params::{query_pairs, query_param};
use crate::state::{random_string, ApiCaller, PublishedItem, Simulator};

/// How long a finalized medium may be attached to a post (the FINALIZE example's
/// `expires_after_secs`).
pub(super) const EXPIRES_AFTER_SECS: i64 = 86_400;

/// The largest segment one append takes ("server maximum is 8 MB").
const MAX_CHUNK: usize = 8 * 1024 * 1024;

/// The categories a post's media are uploaded with, their media types and size limits.
fn category_rule(category: &str) -> Option<(&'static [&'static str], u64)> {
    const MB: u64 = 1024 * 1024;
    match category {
        "tweet_image" => Some((&["image/jpeg", "image/png", "image/webp"], 5 * MB)),
        "tweet_gif" => Some((&["image/gif"], 15 * MB)),
        "tweet_video" | "amplify_video" => Some((&["video/mp4", "video/quicktime"], 8 * 1024 * MB)),
        _ => None,
    }
}

/// The category X assumes when none is named: from the media type.
fn default_category(media_type: &str) -> &'static str {
    if media_type == "image/gif" {
        "tweet_gif"
    } else if media_type.starts_with("video/") {
        "tweet_video"
    } else {
        "tweet_image"
    }
}

pub(super) fn invalid_request(message: &str) -> Response {
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

/// A request's fields and file, from a multipart body (or built from a JSON one).
struct Form {
    fields: Vec<(String, String)>,
    file: Option<Bytes>,
    multipart: bool,
}

impl Form {
    fn read(headers: &HeaderMap, body: &Bytes) -> Option<Self> {
        let content_type = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let parts = multipart::parse(content_type, body)?;
        let mut form = Self {
            fields: Vec::new(),
            file: None,
            multipart: true,
        };
        for part in parts {
            if part.name == "media" {
                form.file = Some(part.data);
            } else if part.file_name.is_none() {
                form.fields
                    .push((part.name, String::from_utf8_lossy(&part.data).into_owned()));
            }
        }
        Some(form)
    }

    fn field(&self, name: &str) -> Option<&str> {
        query_param(&self.fields, name)
    }
}

fn media_key(category: &str, id: &str) -> String {
    // X's media keys: 3_ photos, 16_ animated GIFs, 7_ videos (13_ amplify videos).
    let prefix = match category {
        "tweet_gif" => "16",
        "tweet_video" => "7",
        "amplify_video" => "13",
        _ => "3",
    };
    format!("{prefix}_{id}")
}

fn forbidden_without_scope(caller: &ApiCaller) -> Option<Response> {
    (!caller.grant.has_scope("media.write"))
        .then(|| problem(StatusCode::FORBIDDEN, "Forbidden", None))
}

/// `POST /2/media/upload/initialize` (JSON).
pub(super) async fn initialize(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = forbidden_without_scope(&caller) {
        return refusal;
    }
    let json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let Some(request) = json
        .then(|| serde_json::from_slice::<Value>(&body).ok())
        .flatten()
        .filter(Value::is_object)
    else {
        return invalid_request("The body must be a JSON object (Content-Type: application/json).");
    };
    let text = |name: &str| request.get(name).and_then(Value::as_str).map(str::to_owned);
    let fields = [
        ("media_type", text("media_type")),
        (
            "total_bytes",
            request
                .get("total_bytes")
                .and_then(Value::as_u64)
                .map(|n| n.to_string()),
        ),
        ("media_category", text("media_category")),
    ]
    .into_iter()
    .filter_map(|(name, value)| Some((name.to_owned(), value?)))
    .collect();
    init(
        &sim,
        &caller,
        super::oauth::USER_ID,
        &Form {
            fields,
            file: None,
            multipart: false,
        },
    )
}

/// `POST /2/media/upload/{id}/append` (multipart: `segment_index`, `media`).
pub(super) async fn append_segment(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = forbidden_without_scope(&caller) {
        return refusal;
    }
    let Some(form) = Form::read(&headers, &body).filter(|form| form.multipart) else {
        return invalid_request(
            "The body must be multipart/form-data with segment_index and media.",
        );
    };
    append(&sim, super::oauth::USER_ID, &id, &form)
}

/// `POST /2/media/upload/{id}/finalize`.
pub(super) async fn finalize_upload(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
) -> Response {
    if let Some(refusal) = forbidden_without_scope(&caller) {
        return refusal;
    }
    finalize(&sim, super::oauth::USER_ID, &id)
}

/// `POST /2/media/upload`: the simple upload of one image or GIF (multipart: `media`,
/// `media_category`, `media_type`); the retired `command` form is refused.
pub(super) async fn simple_upload(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(refusal) = forbidden_without_scope(&caller) {
        return refusal;
    }
    let Some(form) = Form::read(&headers, &body).filter(|form| form.multipart) else {
        return invalid_request("The body must be multipart/form-data.");
    };
    if form.field("command").is_some() {
        return invalid_request(
            "INIT, APPEND and FINALIZE use /2/media/upload/initialize, /{id}/append and /{id}/finalize.",
        );
    }
    let Some(file) = &form.file else {
        return invalid_request("The media part (field name media) is required.");
    };
    let media_type = form.field("media_type").unwrap_or("image/png").to_owned();
    let category = form
        .field("media_category")
        .unwrap_or_else(|| default_category(&media_type))
        .to_owned();
    if !matches!(category.as_str(), "tweet_image" | "tweet_gif") {
        return invalid_request("Video must use the chunked upload.");
    }
    let fields = vec![
        ("media_type".to_owned(), media_type),
        ("total_bytes".to_owned(), file.len().to_string()),
        ("media_category".to_owned(), category),
    ];
    let user = super::oauth::USER_ID;
    let form = Form {
        fields,
        file: None,
        multipart: true,
    };
    let id = match start(&sim, &caller, user, &form) {
        Ok((id, _)) => id,
        Err(refusal) => return *refusal,
    };
    let segment = Form {
        fields: vec![("segment_index".to_owned(), "0".to_owned())],
        file: Some(file.clone()),
        multipart: true,
    };
    let appended = append(&sim, user, &id, &segment);
    if !appended.status().is_success() {
        return appended;
    }
    finalize(&sim, user, &id)
}

fn init(sim: &Simulator, caller: &ApiCaller, user: &str, form: &Form) -> Response {
    match start(sim, caller, user, form) {
        Ok((id, category)) => exchange::json(
            StatusCode::OK,
            json!({ "data": {
                "id": id, "media_key": media_key(&category, &id), "expires_after_secs": 1_295_999,
            } }),
        ),
        Err(refusal) => *refusal,
    }
}

/// Starts an upload session: its id and category.
fn start(
    sim: &Simulator,
    caller: &ApiCaller,
    user: &str,
    form: &Form,
) -> Result<(String, String), Box<Response>> {
    let refuse = |message: &str| Err(Box::new(invalid_request(message)));
    let Some(media_type) = form.field("media_type") else {
        return refuse("media_type is required.");
    };
    let Some(total) = form
        .field("total_bytes")
        .and_then(|v| v.parse::<u64>().ok())
    else {
        return refuse("total_bytes must be a number of bytes.");
    };
    let category = form
        .field("media_category")
        .unwrap_or_else(|| default_category(media_type));
    let Some((types, max)) = category_rule(category) else {
        return refuse(&format!("media_category {category} is not supported."));
    };
    if !types.contains(&media_type) {
        return refuse(&format!(
            "media_type {media_type} does not match media_category {category}."
        ));
    }
    if total == 0 || total > max {
        return refuse(&format!(
            "total_bytes must be between 1 and {max} for {category}."
        ));
    }
    let id = format!("18{}", digits(17));
    sim.store_draft(
        SLUG,
        PublishedItem {
            kind: "media".to_owned(),
            id: id.clone(),
            target: user.to_owned(),
            fields: json!({
                "client": caller.grant.client_id,
                "media_type": media_type,
                "media_category": category,
                "total_bytes": total,
                "received": 0,
                "segments": [],
                "state": "initialized",
            }),
        },
    );
    Ok((id, category.to_owned()))
}

/// The caller's own upload by `media_id`.
fn own_upload(
    sim: &Simulator,
    user: &str,
    id: Option<&str>,
) -> Result<PublishedItem, Box<Response>> {
    let id = id.ok_or_else(|| Box::new(invalid_request("media_id is required.")))?;
    sim.draft(SLUG, id)
        .filter(|item| item.kind == "media" && item.target == user)
        .ok_or_else(|| {
            Box::new(invalid_request(&format!(
                "media_id {id} is not a valid upload."
            )))
        })
}

fn append(sim: &Simulator, user: &str, id: &str, form: &Form) -> Response {
    let mut item = match own_upload(sim, user, Some(id)) {
        Ok(item) => item,
        Err(refusal) => return *refusal,
    };
    let Some(segment) = form
        .field("segment_index")
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| *n <= 999)
    else {
        return invalid_request("segment_index must be a number from 0 to 999.");
    };
    let Some(chunk) = &form.file else {
        return invalid_request("The media part (field name media) is required.");
    };
    if item.fields["state"] != "initialized" {
        return invalid_request("This upload is already finalized.");
    }
    if chunk.is_empty() || chunk.len() > MAX_CHUNK {
        return invalid_request("A segment must hold between 1 byte and 5 MB.");
    }
    let received = item.fields["received"].as_u64().unwrap_or(0) + chunk.len() as u64;
    if received > item.fields["total_bytes"].as_u64().unwrap_or(0) {
        return invalid_request("The segments exceed total_bytes.");
    }
    item.fields["received"] = json!(received);
    if let Some(segments) = item.fields["segments"].as_array_mut() {
        segments.push(json!(segment));
    }
    sim.store_draft(SLUG, item);
    StatusCode::NO_CONTENT.into_response()
}

fn finalize(sim: &Simulator, user: &str, id: &str) -> Response {
    let mut item = match own_upload(sim, user, Some(id)) {
        Ok(item) => item,
        Err(refusal) => return *refusal,
    };
    if item.fields["state"] != "initialized" {
        return invalid_request("This upload is already finalized.");
    }
    let total = item.fields["total_bytes"].as_u64().unwrap_or(0);
    if item.fields["received"].as_u64() != Some(total) {
        return invalid_request("File size does not match total_bytes.");
    }
    let category = item.fields["media_category"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let video = category.ends_with("video");
    let expires = sim.now().timestamp() + EXPIRES_AFTER_SECS;
    item.fields["state"] = json!(if video { "pending" } else { "succeeded" });
    item.fields["expires_at"] = json!(expires);
    let id = item.id.clone();
    sim.store_draft(SLUG, item);
    let mut data = json!({
        "id": id, "media_key": media_key(&category, &id), "size": total,
        "expires_after_secs": EXPIRES_AFTER_SECS,
    });
    if video {
        data["processing_info"] = json!({ "state": "pending", "check_after_secs": 1 });
    }
    exchange::json(StatusCode::OK, json!({ "data": data }))
}

/// `GET /2/media/upload?command=STATUS&media_id=`: a pending video has finished processing by
/// the time it is asked about.
pub(super) async fn status(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    RawQuery(query): RawQuery,
) -> Response {
    if let Some(refusal) = forbidden_without_scope(&caller) {
        return refusal;
    }
    let pairs = query_pairs(query.as_deref());
    if query_param(&pairs, "command") != Some("STATUS") {
        return invalid_request("command must be STATUS.");
    }
    let mut item = match own_upload(&sim, super::oauth::USER_ID, query_param(&pairs, "media_id")) {
        Ok(item) => item,
        Err(refusal) => return *refusal,
    };
    if item.fields["state"] == "pending" {
        item.fields["state"] = json!("succeeded");
    }
    let state = item.fields["state"].clone();
    let category = item.fields["media_category"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let id = item.id.clone();
    sim.store_draft(SLUG, item);
    exchange::json(
        StatusCode::OK,
        json!({ "data": {
            "id": id, "media_key": media_key(&category, &id),
            "processing_info": { "state": state, "progress_percent": 100 },
        } }),
    )
}

/// Why a post's `media_ids` are refused, if they are: each an upload of this user, finalized,
/// processed and unexpired; at most four images, or one GIF or video alone
/// (<https://docs.x.com/x-api/media/quickstart/best-practices>).
pub(super) fn check_attachable(
    sim: &Simulator,
    user: &str,
    ids: &[Value],
    now: DateTime<Utc>,
) -> Result<(), Box<Response>> {
    let mut categories = Vec::new();
    for id in ids {
        let usable = id
            .as_str()
            .and_then(|id| sim.draft(SLUG, id))
            .filter(|item| item.kind == "media" && item.target == user)
            .filter(|item| item.fields["state"] == "succeeded")
            .filter(|item| {
                item.fields["expires_at"]
                    .as_i64()
                    .is_some_and(|at| at > now.timestamp())
            });
        match usable {
            Some(item) => categories.push(item.fields["media_category"].clone()),
            None => return Err(Box::new(invalid_request("Your media IDs are invalid."))),
        }
    }
    let images = categories.iter().all(|c| c == "tweet_image");
    if (images && categories.len() > 4) || (!images && categories.len() > 1) {
        return Err(Box::new(invalid_request(
            "A post carries up to 4 images, or 1 GIF or video alone.",
        )));
    }
    Ok(())
}

fn digits(count: usize) -> String {
    random_string(count * 2)
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .take(count)
        .collect()
}
