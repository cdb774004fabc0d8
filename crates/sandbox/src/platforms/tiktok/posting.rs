//! TikTok's Content Posting API as the sandbox serves it (platform-apis.md §2a "Publishing", T18,
//! T19): the direct-post `post/publish/video/init/` (scope `video.publish`), the inbox (draft)
//! `post/publish/inbox/video/init/` (scope `video.upload`), photos `post/publish/content/init/`
//! (`DIRECT_POST` or `MEDIA_UPLOAD`), the chunked `FILE_UPLOAD` to the `upload_url` init answers
//! (served by the sandbox itself under `/sandbox/tiktok/upload/`, without a token), and
//! `post/publish/status/fetch/` with its transitions.
//!
//! Rules enforced: the chunk rules of the media transfer guide (chunks of 5 to 64 MB, the whole
//! file as one chunk below 5 MB, `total_chunk_count` = `video_size` / `chunk_size` rounded down
//! so the last chunk takes the remainder up to 128 MB, at most 1000 chunks, uploaded in order with
//! `Content-Range: bytes {first}-{last}/{total}` and a video media type); `PULL_FROM_URL` only
//! from a domain verified in the developer portal (T23; [`Simulator::verify_tiktok_domain`]),
//! else `url_ownership_unverified`; the per-token rate limits (T18, T19: init 6/min,
//! creator_info 20/min, status fetch 30/min) as 429 `rate_limit_exceeded`; an unaudited client's
//! direct posts refused (T20; [`Simulator::set_tiktok_unaudited`]).
//!
//! A file upload's post is out once its last chunk lands; a pulled one once the sandbox fetched
//! it. Either stays `PROCESSING_UPLOAD` / `PROCESSING_DOWNLOAD` for [`PROCESSING_SECONDS`] of the
//! sandbox clock, then becomes `PUBLISH_COMPLETE` (direct) or `SEND_TO_USER_INBOX` (inbox,
//! `MEDIA_UPLOAD`); a pull that cannot be fetched is `FAILED`.

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, RawQuery, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{post, put};
use axum::{Extension, Router};
use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Value};

use super::oauth::{api_error, OPEN_ID, SLUG, SPEC};
use crate::exchange::{self, bearer_token};
use crate::media;
use crate::params::{query_pairs, query_param};
use crate::state::{random_string, ApiCaller, ApiFaultKind, PublishedItem, Simulator};

/// How long a post stays in processing after its media arrived, on the sandbox clock.
pub(crate) const PROCESSING_SECONDS: i64 = 3;

const MB: u64 = 1024 * 1024;
/// The smallest chunk (and below which the whole file is one chunk).
const MIN_CHUNK: u64 = 5 * MB;
/// The largest chunk.
const MAX_CHUNK: u64 = 64 * MB;
/// The largest last chunk (it takes the remainder).
const MAX_LAST_CHUNK: u64 = 128 * MB;
/// The most chunks.
const MAX_CHUNKS: u64 = 1000;

/// The creator's username (the OAuth side's `username`).
const USERNAME: &str = "sandboxmerchant";

/// The privacy levels the simulated creator may post with (T18).
pub(super) const PRIVACY_LEVELS: [&str; 4] = [
    "PUBLIC_TO_EVERYONE",
    "MUTUAL_FOLLOW_FRIENDS",
    "FOLLOWER_OF_CREATOR",
    "SELF_ONLY",
];

/// The switch key of a verified domain.
fn domain_key(host: &str) -> String {
    format!("domain:{}", host.to_ascii_lowercase())
}

fn publish_key(publish_id: &str) -> String {
    format!("publish:{publish_id}")
}

fn upload_key(upload_id: &str) -> String {
    format!("upload:{upload_id}")
}

/// The switch of an unaudited client (see [`Simulator::set_tiktok_unaudited`]).
const UNAUDITED: &str = "unaudited_client";

impl Simulator {
    /// Makes the app an unaudited TikTok client (T20): its direct posts to the (public) sandbox
    /// creator are refused with `unaudited_client_can_only_post_to_private_accounts`; inbox
    /// uploads still work.
    pub fn set_tiktok_unaudited(&self, unaudited: bool) {
        self.set_switch(SLUG, UNAUDITED, unaudited);
    }

    /// Verifies `host` (and its subdomains) for TikTok's `PULL_FROM_URL`, as a developer does in
    /// the portal (T23): until then a pull from it is refused with `url_ownership_unverified`.
    pub fn verify_tiktok_domain(&self, host: &str) {
        self.set_record(SLUG, &domain_key(host), json!(true));
    }
}

pub(super) fn routes() -> Router<Simulator> {
    let at = |rest: &str| SPEC.api_path(rest);
    Router::new()
        .route(&at("post/publish/video/init/"), post(video_init))
        .route(&at("post/publish/inbox/video/init/"), post(inbox_init))
        .route(&at("post/publish/content/init/"), post(content_init))
        .route(&at("post/publish/status/fetch/"), post(status_fetch))
        // Outside `/api/`: the gate passes it through; the upload URL is its own credential.
        .route(
            UPLOAD_PATH,
            put(upload).layer(DefaultBodyLimit::max(
                usize::try_from(MAX_LAST_CHUNK + MB).unwrap_or(usize::MAX),
            )),
        )
}

const UPLOAD_PATH: &str = "/sandbox/tiktok/upload/video/";

/// T6: a scope not granted is a **401**, which a refresh cannot fix.
pub(super) fn scope_not_authorized(scope: &str) -> Response {
    api_error(
        StatusCode::UNAUTHORIZED,
        "scope_not_authorized",
        &format!(
            "The user did not authorize the scope required for completing this request: {scope}."
        ),
    )
}

pub(super) fn invalid_params(message: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, "invalid_params", message)
}

/// T17: HTTP 429 `rate_limit_exceeded`; TikTok documents no rate-limit headers.
pub(super) fn throttled() -> Response {
    api_error(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limit_exceeded",
        "API rate limit exceeded, please retry later.",
    )
}

pub(super) fn ok(data: Value) -> Response {
    exchange::json(
        StatusCode::OK,
        json!({
            "data": data,
            "error": { "code": "ok", "message": "", "log_id": exchange::trace_id() },
        }),
    )
}

/// Counts a call against a per-token limit (T18, T19); `Some(429)` when the minute is full.
pub(super) fn per_token_limit(
    sim: &Simulator,
    headers: &HeaderMap,
    name: &'static str,
    per_minute: usize,
) -> Option<Response> {
    let token = bearer_token(headers).unwrap_or_default();
    (!sim.within_window(SLUG, &token, name, per_minute, Duration::minutes(1))).then(throttled)
}

/// The JSON body of a posting call (TikTok wants `application/json; charset=UTF-8`).
fn json_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, Box<Response>> {
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return exchange::reject(invalid_params(
            "Content-Type must be application/json; charset=UTF-8.",
        ));
    }
    serde_json::from_slice::<Value>(body)
        .map_err(|_| Box::new(invalid_params("The request body is not valid JSON.")))
}

/// Whether `url`'s host is a verified domain or under one.
fn verified(sim: &Simulator, url: &str) -> bool {
    let Some(host) = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    else {
        return false;
    };
    let mut candidate = host.as_str();
    loop {
        if sim.record(SLUG, &domain_key(candidate)).is_some() {
            return true;
        }
        match candidate.split_once('.') {
            Some((_, parent)) if parent.contains('.') => candidate = parent,
            _ => return false,
        }
    }
}

/// T20: an unaudited client posts only to private accounts (the sandbox creator is public).
fn unaudited() -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        "unaudited_client_can_only_post_to_private_accounts",
        "Unaudited clients can only post to private accounts.",
    )
}

fn unverified(url: &str) -> Response {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    api_error(
        StatusCode::FORBIDDEN,
        "url_ownership_unverified",
        &format!("The domain or URL prefix of {host} has not been verified for this app: verify it in the developer portal or use FILE_UPLOAD."),
    )
}

/// The post's options as validated: privacy from the creator's options, a title within 2200
/// characters.
fn check_post_info(request: &Value, needs_privacy: bool) -> Result<(), Box<Response>> {
    let privacy = request
        .pointer("/post_info/privacy_level")
        .and_then(Value::as_str);
    match privacy {
        None if needs_privacy => {
            return exchange::reject(invalid_params("post_info.privacy_level is required."))
        }
        Some(level) if !PRIVACY_LEVELS.contains(&level) => {
            return exchange::reject(invalid_params(&format!(
                "post_info.privacy_level {level} is not one of the creator's privacy_level_options."
            )))
        }
        _ => {}
    }
    for (field, max) in [("title", 2200), ("description", 4000)] {
        let long = request
            .pointer(&format!("/post_info/{field}"))
            .and_then(Value::as_str)
            .is_some_and(|t| t.chars().count() > max);
        if long {
            return exchange::reject(invalid_params(&format!(
                "post_info.{field} is longer than {max} characters."
            )));
        }
    }
    Ok(())
}

/// A validated video source.
enum Source {
    Upload {
        video_size: u64,
        chunk_size: u64,
        total_chunk_count: u64,
    },
    Pull(String),
}

/// Validates `source_info` by the media transfer guide's chunk rules (T19).
fn video_source(sim: &Simulator, request: &Value) -> Result<Source, Box<Response>> {
    let source = request.get("source_info");
    let field = |name: &str| source.and_then(|s| s.get(name));
    match field("source").and_then(Value::as_str) {
        Some("FILE_UPLOAD") => {
            let mut numbers = [0u64; 3];
            for (slot, name) in
                numbers
                    .iter_mut()
                    .zip(["video_size", "chunk_size", "total_chunk_count"])
            {
                match field(name).and_then(Value::as_u64) {
                    Some(n) if n > 0 => *slot = n,
                    _ => {
                        return exchange::reject(invalid_params(&format!(
                            "source_info.{name} must be a positive integer for FILE_UPLOAD."
                        )))
                    }
                }
            }
            let [video_size, chunk_size, total_chunk_count] = numbers;
            check_chunks(video_size, chunk_size, total_chunk_count)
                .map_err(|message| Box::new(invalid_params(&message)))?;
            Ok(Source::Upload {
                video_size,
                chunk_size,
                total_chunk_count,
            })
        }
        Some("PULL_FROM_URL") => match field("video_url").and_then(Value::as_str) {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                if verified(sim, url) {
                    Ok(Source::Pull(url.to_owned()))
                } else {
                    exchange::reject(unverified(url))
                }
            }
            _ => exchange::reject(invalid_params(
                "source_info.video_url is required for PULL_FROM_URL.",
            )),
        },
        _ => exchange::reject(invalid_params(
            "source_info.source must be FILE_UPLOAD or PULL_FROM_URL.",
        )),
    }
}

/// The chunk rules (T19, media transfer guide).
fn check_chunks(video_size: u64, chunk_size: u64, count: u64) -> Result<(), String> {
    if video_size < MIN_CHUNK {
        if chunk_size != video_size || count != 1 {
            return Err(
                "A video smaller than 5 MB must be uploaded whole: chunk_size = video_size and total_chunk_count = 1."
                    .to_owned(),
            );
        }
        return Ok(());
    }
    if !(MIN_CHUNK..=MAX_CHUNK).contains(&chunk_size) || chunk_size > video_size {
        return Err(
            "chunk_size must be between 5 MB and 64 MB, and at most video_size.".to_owned(),
        );
    }
    if count != video_size / chunk_size {
        return Err(
            "total_chunk_count must be video_size divided by chunk_size, rounded down.".to_owned(),
        );
    }
    if count > MAX_CHUNKS {
        return Err("A video can be uploaded in at most 1000 chunks.".to_owned());
    }
    if video_size - chunk_size * (count - 1) > MAX_LAST_CHUNK {
        return Err("The last chunk would be larger than 128 MB.".to_owned());
    }
    Ok(())
}

/// What an init call starts.
struct Start<'a> {
    caller: &'a ApiCaller,
    headers: &'a HeaderMap,
    /// `tiktok_video`, `tiktok_photo`.
    kind: &'static str,
    /// Published directly, or sent to the creator's inbox.
    direct: bool,
    request: Value,
}

/// Starts a post: its record and, for a file upload, the upload URL on this sandbox.
fn start(sim: &Simulator, start: Start<'_>, source: Source) -> Response {
    let prefix = if matches!(source, Source::Upload { .. }) {
        "file"
    } else {
        "url"
    };
    let publish_id = format!("v_pub_{prefix}~v2-1.{}", random_string(19));
    let mut record = json!({
        "grant": start.caller.grant.grant_id,
        "kind": start.kind,
        "direct": start.direct,
        "created_at": sim.now().to_rfc3339(),
        "request": start.request,
    });
    let mut data = json!({ "publish_id": publish_id });
    match source {
        Source::Upload {
            video_size,
            chunk_size,
            total_chunk_count,
        } => {
            let upload_id = random_string(24);
            record["upload"] = json!({
                "video_size": video_size,
                "chunk_size": chunk_size,
                "total_chunk_count": total_chunk_count,
                "received": 0,
                "next_offset": 0,
            });
            record["status"] = json!("PROCESSING_UPLOAD");
            sim.set_record(SLUG, &upload_key(&upload_id), json!(publish_id));
            data["upload_url"] = json!(format!(
                "{}{UPLOAD_PATH}?upload_id={upload_id}&upload_token={}",
                origin(start.headers),
                random_string(16)
            ));
            sim.set_record(SLUG, &publish_key(&publish_id), record);
        }
        Source::Pull(url) => {
            record["status"] = json!("PROCESSING_DOWNLOAD");
            sim.set_record(SLUG, &publish_key(&publish_id), record);
            pull_in_background(sim.clone(), publish_id.clone(), vec![url]);
        }
    }
    ok(data)
}

/// The sandbox's own origin as the caller reached it (the `Host` header; `https` behind a proxy
/// that says so).
fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https")
        .unwrap_or("http");
    format!("{scheme}://{host}")
}

/// Fetches a pulled post's media without holding up the init call; the post is out once they
/// arrived, `FAILED` if they cannot be fetched.
fn pull_in_background(sim: Simulator, publish_id: String, urls: Vec<String>) {
    tokio::spawn(async move {
        let mut failure = None;
        for url in &urls {
            if let Err(detail) = media::fetch(url).await {
                failure = Some(detail);
                break;
            }
        }
        match failure {
            None => media_arrived(&sim, &publish_id),
            Some(_) => {
                let reason = if urls.len() > 1 || publish_id.starts_with("p_") {
                    "picture_pull_failed"
                } else {
                    "video_pull_failed"
                };
                sim.update_record(SLUG, &publish_key(&publish_id), |record| {
                    if let Some(record) = record {
                        record["status"] = json!("FAILED");
                        record["fail_reason"] = json!(reason);
                    }
                });
            }
        }
    });
}

/// A post's media are all at TikTok: it is out (published, or in the creator's inbox) and
/// finishes processing [`PROCESSING_SECONDS`] later.
fn media_arrived(sim: &Simulator, publish_id: &str) {
    let now = sim.now();
    let post_id: String = random_string(40)
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .take(18)
        .collect();
    let post_id = format!("7{post_id}");
    let record = sim.update_record(SLUG, &publish_key(publish_id), |record| {
        let record = record?;
        record["ready_at"] = json!((now + Duration::seconds(PROCESSING_SECONDS)).to_rfc3339());
        record["post_id"] = json!(post_id);
        Some(record.clone())
    });
    let Some(record) = record else { return };
    let direct = record["direct"] == true;
    let mut fields = record["request"].clone();
    if let Some(map) = fields.as_object_mut() {
        map.insert("publish_id".to_owned(), json!(publish_id));
    }
    let kind = record["kind"].as_str().unwrap_or("tiktok_video");
    sim.publish(
        SLUG,
        PublishedItem {
            kind: if direct {
                kind.to_owned()
            } else {
                format!("{kind}_inbox_draft")
            },
            id: post_id,
            target: OPEN_ID.to_owned(),
            fields,
        },
    );
}

/// The public URL of a published post (`https://www.tiktok.com/@{username}/video/{id}`); a draft
/// in the inbox has none.
pub(super) fn item_url(item: &PublishedItem) -> Option<String> {
    match item.kind.as_str() {
        "tiktok_video" => Some(format!(
            "https://www.tiktok.com/@{USERNAME}/video/{}",
            item.id
        )),
        "tiktok_photo" => Some(format!(
            "https://www.tiktok.com/@{USERNAME}/photo/{}",
            item.id
        )),
        _ => None,
    }
}

/// `POST /v2/post/publish/video/init/` (T19): scope `video.publish`, `post_info` (a
/// `privacy_level` from creator_info) and `source_info`. Answers `publish_id`, plus `upload_url`
/// for `FILE_UPLOAD`.
async fn video_init(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !caller.grant.has_scope("video.publish") {
        return scope_not_authorized("video.publish");
    }
    if let Some(throttled) = per_token_limit(&sim, &headers, "init", 6) {
        return throttled;
    }
    if sim.switch(SLUG, UNAUDITED) {
        return unaudited();
    }
    let checked = json_body(&headers, &body).and_then(|request| {
        check_post_info(&request, true)?;
        let source = video_source(&sim, &request)?;
        Ok((request, source))
    });
    match checked {
        Ok((request, source)) => start(
            &sim,
            Start {
                caller: &caller,
                headers: &headers,
                kind: "tiktok_video",
                direct: true,
                request,
            },
            source,
        ),
        Err(response) => *response,
    }
}

/// `POST /v2/post/publish/inbox/video/init/` (T19): scope `video.upload`, `source_info` only;
/// the video lands in the creator's inbox, where they finish the post in the app.
async fn inbox_init(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !caller.grant.has_scope("video.upload") {
        return scope_not_authorized("video.upload");
    }
    if let Some(throttled) = per_token_limit(&sim, &headers, "init", 6) {
        return throttled;
    }
    let checked = json_body(&headers, &body).and_then(|request| {
        if request.get("post_info").is_some() {
            return exchange::reject(invalid_params(
                "post_info is not accepted by the inbox upload: the creator writes it in the app.",
            ));
        }
        let source = video_source(&sim, &request)?;
        Ok((request, source))
    });
    match checked {
        Ok((request, source)) => start(
            &sim,
            Start {
                caller: &caller,
                headers: &headers,
                kind: "tiktok_video",
                direct: false,
                request,
            },
            source,
        ),
        Err(response) => *response,
    }
}

/// `POST /v2/post/publish/content/init/` (T19): photos, `media_type: PHOTO`, `post_mode`
/// `DIRECT_POST` (scope `video.publish`, a privacy level) or `MEDIA_UPLOAD` (scope
/// `video.upload`), `source_info` `PULL_FROM_URL` with 1 to 35 `photo_images` of verified domains
/// and a `photo_cover_index` among them.
async fn content_init(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match json_body(&headers, &body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let direct = match request.get("post_mode").and_then(Value::as_str) {
        Some("DIRECT_POST") => true,
        Some("MEDIA_UPLOAD") => false,
        _ => return invalid_params("post_mode must be DIRECT_POST or MEDIA_UPLOAD."),
    };
    let scope = if direct {
        "video.publish"
    } else {
        "video.upload"
    };
    if !caller.grant.has_scope(scope) {
        return scope_not_authorized(scope);
    }
    if let Some(throttled) = per_token_limit(&sim, &headers, "init", 6) {
        return throttled;
    }
    if direct && sim.switch(SLUG, UNAUDITED) {
        return unaudited();
    }
    if request.get("media_type").and_then(Value::as_str) != Some("PHOTO") {
        return invalid_params("media_type must be PHOTO.");
    }
    if let Err(response) = check_post_info(&request, direct) {
        return *response;
    }
    if request
        .pointer("/source_info/source")
        .and_then(Value::as_str)
        != Some("PULL_FROM_URL")
    {
        return invalid_params(
            "Photos are posted from URLs only: source_info.source must be PULL_FROM_URL.",
        );
    }
    let images: Vec<String> = request
        .pointer("/source_info/photo_images")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    if !(1..=35).contains(&images.len()) {
        return invalid_params("source_info.photo_images must hold 1 to 35 image URLs.");
    }
    let cover = request
        .pointer("/source_info/photo_cover_index")
        .and_then(Value::as_u64);
    if cover.is_none_or(|i| i >= images.len() as u64) {
        return invalid_params("source_info.photo_cover_index must index photo_images.");
    }
    if let Some(url) = images.iter().find(|url| !verified(&sim, url)) {
        return unverified(url);
    }
    let publish_id = format!("p_pub_url~v2.{}", random_string(19));
    let record = json!({
        "grant": caller.grant.grant_id,
        "kind": "tiktok_photo",
        "direct": direct,
        "created_at": sim.now().to_rfc3339(),
        "request": request,
        "status": "PROCESSING_DOWNLOAD",
    });
    sim.set_record(SLUG, &publish_key(&publish_id), record);
    pull_in_background(sim.clone(), publish_id.clone(), images);
    ok(json!({ "publish_id": publish_id }))
}

/// `PUT {upload_url}`: one chunk, in order, with `Content-Range: bytes {first}-{last}/{total}` and
/// a video media type (T19). Answers 206 while chunks remain and 201 for the last one, which
/// puts the post out. Outside the API gate, it applies the API faults itself (path suffix
/// `/upload/video/`).
async fn upload(
    State(sim): State<Simulator>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    match sim.take_api_fault(SLUG, UPLOAD_PATH) {
        Some(ApiFaultKind::Status(status)) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return api_error(
                status,
                "internal_error",
                "Something went wrong. Please try again later.",
            );
        }
        Some(ApiFaultKind::LoseAnswer) => {
            upload_chunk(&sim, query.as_deref(), &headers, &body);
            return exchange::lost_answer();
        }
        None => {}
    }
    upload_chunk(&sim, query.as_deref(), &headers, &body)
}

/// Takes one chunk by the rules.
fn upload_chunk(
    sim: &Simulator,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let pairs = query_pairs(query);
    let publish_id = query_param(&pairs, "upload_id")
        .and_then(|id| sim.record(SLUG, &upload_key(id)))
        .and_then(|id| id.as_str().map(str::to_owned));
    let Some(publish_id) = publish_id else {
        return api_error(
            StatusCode::NOT_FOUND,
            "invalid_params",
            "The upload URL is unknown or expired.",
        );
    };
    let media_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !["video/mp4", "video/quicktime", "video/webm"].contains(&media_type) {
        return invalid_params("Content-Type must be video/mp4, video/quicktime or video/webm.");
    }
    let Some((first, last, total)) = headers
        .get("content-range")
        .and_then(|v| v.to_str().ok())
        .and_then(content_range)
    else {
        return invalid_params("Content-Range must be bytes {first}-{last}/{total}.");
    };
    let length = u64::try_from(body.len()).unwrap_or(u64::MAX);
    let outcome = sim.update_record(SLUG, &publish_key(&publish_id), |record| {
        let record = record.ok_or("The upload is unknown.")?;
        let upload = &mut record["upload"];
        let size = upload["video_size"].as_u64().unwrap_or(0);
        let chunk = upload["chunk_size"].as_u64().unwrap_or(0);
        let count = upload["total_chunk_count"].as_u64().unwrap_or(0);
        let received = upload["received"].as_u64().unwrap_or(0);
        let next = upload["next_offset"].as_u64().unwrap_or(0);
        if received >= count {
            return Err("Every chunk of this upload has already been received.");
        }
        if total != size {
            return Err("The Content-Range total is not the video_size given at init.");
        }
        if first != next {
            return Err("Chunks must be uploaded in order: this range does not start where the last one ended.");
        }
        let expected = if received + 1 == count {
            size - chunk * (count - 1)
        } else {
            chunk
        };
        if last < first || last - first + 1 != length || length != expected {
            return Err("The chunk's length does not match its Content-Range and the chunk_size given at init.");
        }
        upload["received"] = json!(received + 1);
        upload["next_offset"] = json!(last + 1);
        Ok(received + 1 == count)
    });
    match outcome {
        Ok(true) => {
            media_arrived(sim, &publish_id);
            exchange::json(StatusCode::CREATED, json!({}))
        }
        Ok(false) => exchange::json(StatusCode::PARTIAL_CONTENT, json!({})),
        Err(message) => api_error(StatusCode::RANGE_NOT_SATISFIABLE, "invalid_params", message),
    }
}

/// Reads `bytes {first}-{last}/{total}`.
fn content_range(value: &str) -> Option<(u64, u64, u64)> {
    let range = value.strip_prefix("bytes ")?;
    let (span, total) = range.split_once('/')?;
    let (first, last) = span.split_once('-')?;
    Some((first.parse().ok()?, last.parse().ok()?, total.parse().ok()?))
}

/// `POST /v2/post/publish/status/fetch/` (T19): `{"publish_id"}` of one of the grant's posts.
async fn status_fetch(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !(caller.grant.has_scope("video.publish") || caller.grant.has_scope("video.upload")) {
        return scope_not_authorized("video.publish");
    }
    if let Some(throttled) = per_token_limit(&sim, &headers, "status", 30) {
        return throttled;
    }
    let request = match json_body(&headers, &body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    let record = request
        .get("publish_id")
        .and_then(Value::as_str)
        .and_then(|id| sim.record(SLUG, &publish_key(id)))
        .filter(|record| record["grant"] == caller.grant.grant_id);
    let Some(record) = record else {
        return api_error(
            StatusCode::BAD_REQUEST,
            "invalid_publish_id",
            "The publish_id does not exist or does not belong to this user.",
        );
    };
    ok(status_of(&record, sim.now()))
}

/// A post's status now.
fn status_of(record: &Value, now: DateTime<Utc>) -> Value {
    let uploaded = record
        .pointer("/upload/next_offset")
        .cloned()
        .unwrap_or(json!(0));
    if record["status"] == "FAILED" {
        return json!({ "status": "FAILED", "fail_reason": record["fail_reason"] });
    }
    let ready_at = record["ready_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    match ready_at {
        Some(ready_at) if now >= ready_at => {
            if record["direct"] == true {
                json!({
                    "status": "PUBLISH_COMPLETE",
                    // A number in TikTok's answers (int64), under its own misspelt name.
                    "publicaly_available_post_id": [record["post_id"]
                        .as_str()
                        .and_then(|id| id.parse::<u64>().ok())],
                    "uploaded_bytes": uploaded,
                })
            } else {
                json!({ "status": "SEND_TO_USER_INBOX", "uploaded_bytes": uploaded })
            }
        }
        _ => json!({ "status": record["status"], "uploaded_bytes": uploaded }),
    }
}
