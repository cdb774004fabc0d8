//! Meta's publishing calls as the sandbox serves them (platform-apis.md §1 "Publishing", M19,
//! M20): a Page's `feed` and `photos` with that Page's own token and `pages_manage_posts`;
//! Instagram's two steps, containers (`/{ig-user-id}/media`: an image, a reel, carousel items and
//! the carousel) with real status transitions, then `/{ig-user-id}/media_publish`; the 50 posts
//! per moving 24 h (`/{ig-user-id}/content_publishing_limit`); permalinks.
//!
//! Meta fetches ("cURLs") the media a container or photo names: an image is fetched while the
//! call waits (an unreadable one is refused at once), a video in the background, its container
//! `IN_PROGRESS` meanwhile and for [`VIDEO_PROCESSING_SECONDS`] of the sandbox clock after
//! creation, then `FINISHED` (or `ERROR` when it could not be fetched). Containers expire after
//! 24 h (M20).

use chrono::{DateTime, Duration, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use axum::http::StatusCode;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::oauth::{graph_error, SLUG};
use crate::exchange;
use crate::media;
use crate::state::{random_string, ApiCaller, PublishedItem, Simulator};

/// How long a video container stays `IN_PROGRESS` on the sandbox clock after it was fetched.
pub(crate) const VIDEO_PROCESSING_SECONDS: i64 = 5;

/// Instagram's publishing limit: posts per moving 24 h (M20; a carousel counts once).
const PUBLISHING_LIMIT: usize = 50;

/// A container's lifetime (M20).
const CONTAINER_HOURS: i64 = 24;

/// The permissions Instagram publishing needs (M20).
const IG_PUBLISH_SCOPES: [&str; 3] = [
    "instagram_basic",
    "instagram_content_publish",
    "pages_read_engagement",
];

fn record_key(container: &str) -> String {
    format!("container:{container}")
}

fn media_key(media: &str) -> String {
    format!("media:{media}")
}

/// A permission error (M4): code 10 or 200, HTTP 403 (M24).
fn missing_permission(code: u32, message: &str) -> Response {
    graph_error(StatusCode::FORBIDDEN, code, None, message)
}

fn bad_param(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, 100, None, message)
}

/// Graph's answer for an id that is not one of the caller's objects.
pub(super) fn unknown_object(method: &str, id: &str) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        Some(33),
        &format!("Unsupported {method} request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."),
    )
}

/// `media_publish` of a container that cannot be published (unknown, another account's, not
/// `FINISHED`, already published): Graph's 9007 / 2207027.
fn not_available(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, 9007, Some(2_207_027), message)
}

/// An image Meta could not fetch: 9004 / 2207052 ("The media could not be fetched from this
/// URI").
fn unfetchable(detail: &str) -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        9004,
        Some(2_207_052),
        &format!("Media download has failed.: {detail}"),
    )
}

fn text<'a>(params: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .and_then(Value::as_str)
        .filter(|v| !v.is_empty())
}

/// A Graph-style numeric object id.
pub(super) fn numeric_id() -> String {
    let digits: String = random_string(40)
        .bytes()
        .map(|b| char::from(b'0' + b % 10))
        .take(17)
        .collect();
    format!("1{digits}")
}

/// The Page an Instagram account of the caller's grant is linked to.
pub(super) fn ig_owner(sim: &Simulator, caller: &ApiCaller, ig_user_id: &str) -> Option<String> {
    sim.object_tokens(caller.grant.grant_id)
        .into_iter()
        .find(|page| page.linked.is_some_and(|(id, _)| id == ig_user_id))
        .map(|page| page.id.to_owned())
}

/// An Instagram account's publishing checks: one of the grant's accounts (and, with a Page
/// token, that Page's own linked account) and the three permissions (M20).
fn ig_permission_check(sim: &Simulator, caller: &ApiCaller, ig_user_id: &str) -> Option<Response> {
    let Some(page) = ig_owner(sim, caller, ig_user_id) else {
        return Some(unknown_object("post", ig_user_id));
    };
    if caller
        .object
        .as_ref()
        .is_some_and(|object| object.id != page)
    {
        return Some(unknown_object("post", ig_user_id));
    }
    let missing = IG_PUBLISH_SCOPES
        .iter()
        .find(|scope| !caller.grant.has_scope(scope))?;
    Some(missing_permission(
        10,
        &format!("(#10) Application does not have permission for this action: requires {missing}"),
    ))
}

/// The public URL of a published item: Instagram's `/p/{shortcode}/` (a stable code derived from
/// the media id), Facebook's `/{post-id}`.
pub(super) fn item_url(item: &PublishedItem) -> Option<String> {
    match item.kind.as_str() {
        "instagram_media" => Some(permalink(&item.id)),
        "facebook_post" | "facebook_photo" => Some(format!("https://www.facebook.com/{}", item.id)),
        _ => None,
    }
}

fn permalink(media_id: &str) -> String {
    let digest = Sha256::digest(media_id.as_bytes());
    let code = URL_SAFE_NO_PAD.encode(&digest[..8]);
    format!("https://www.instagram.com/p/{code}/")
}

// ---- Facebook Page ------------------------------------------------------------------------

/// The Page checks (M19): only that Page's own token, with `pages_manage_posts` and
/// `pages_read_engagement`.
fn page_check(sim: &Simulator, caller: &ApiCaller, page_id: &str) -> Option<Response> {
    let own_page = caller
        .object
        .as_ref()
        .is_some_and(|page| page.id == page_id);
    let grant = &caller.grant;
    if own_page && grant.has_scope("pages_manage_posts") && grant.has_scope("pages_read_engagement")
    {
        return None;
    }
    if caller.object.is_none()
        && !sim
            .object_tokens(grant.grant_id)
            .iter()
            .any(|p| p.id == page_id)
    {
        return Some(unknown_object("post", page_id));
    }
    Some(missing_permission(200, "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts as an admin with sufficient administrative permission"))
}

/// `POST /{page-id}/feed` (M19): `message` or `link` is required. Answers `{"id":"{page}_{post}"}`
/// (M25).
pub(super) fn page_post(
    sim: &Simulator,
    caller: &ApiCaller,
    page_id: &str,
    params: Map<String, Value>,
) -> Response {
    if let Some(refusal) = page_check(sim, caller, page_id) {
        return refusal;
    }
    if text(&params, "message").is_none() && text(&params, "link").is_none() {
        return bad_param("(#100) Missing message or attachment");
    }
    let id = format!("{page_id}_{}", numeric_id());
    sim.publish(
        SLUG,
        PublishedItem {
            kind: "facebook_post".to_owned(),
            id: id.clone(),
            target: page_id.to_owned(),
            fields: Value::Object(params),
        },
    );
    exchange::json(StatusCode::OK, json!({ "id": id }))
}

/// `POST /{page-id}/photos` with `url` (fetched by Meta) and an optional `caption`: answers the
/// photo's id and its feed post's `post_id`.
pub(super) async fn page_photo(
    sim: &Simulator,
    caller: &ApiCaller,
    page_id: &str,
    params: Map<String, Value>,
) -> Response {
    if let Some(refusal) = page_check(sim, caller, page_id) {
        return refusal;
    }
    let Some(url) = text(&params, "url") else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            324,
            None,
            "(#324) Requires upload file",
        );
    };
    let fetched = media::fetch(url).await.and_then(|f| {
        f.is("image")
            .then_some(())
            .ok_or_else(|| "not an image".to_owned())
    });
    if let Err(detail) = fetched {
        return graph_error(
            StatusCode::BAD_REQUEST,
            324,
            None,
            &format!("(#324) Missing or invalid image file: {detail}"),
        );
    }
    let photo_id = numeric_id();
    let post_id = format!("{page_id}_{photo_id}");
    sim.publish(
        SLUG,
        PublishedItem {
            kind: "facebook_photo".to_owned(),
            id: post_id.clone(),
            target: page_id.to_owned(),
            fields: Value::Object(params),
        },
    );
    exchange::json(
        StatusCode::OK,
        json!({ "id": photo_id, "post_id": post_id }),
    )
}

// ---- Instagram containers -----------------------------------------------------------------

/// A container's status now (M20): `PUBLISHED`, `EXPIRED` after 24 h, `ERROR` when its media
/// could not be fetched (or, for a carousel, a child's), `IN_PROGRESS` while fetching or
/// processing a video, else `FINISHED`.
fn status_of(sim: &Simulator, record: &Value, now: DateTime<Utc>) -> &'static str {
    if record["published"].as_bool() == Some(true) {
        return "PUBLISHED";
    }
    let created = record["created_at"]
        .as_str()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now);
    if now >= created + Duration::hours(CONTAINER_HOURS) {
        return "EXPIRED";
    }
    if record["media_type"] == "CAROUSEL" {
        let children: Vec<&'static str> = record["children"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|child| {
                sim.record(SLUG, &record_key(child))
                    .map_or("ERROR", |child| status_of(sim, &child, now))
            })
            .collect();
        return if children.iter().any(|s| matches!(*s, "ERROR" | "EXPIRED")) {
            "ERROR"
        } else if children.contains(&"IN_PROGRESS") {
            "IN_PROGRESS"
        } else {
            "FINISHED"
        };
    }
    match record["fetch"].as_str() {
        Some("failed") => "ERROR",
        Some("pending") => "IN_PROGRESS",
        _ => {
            let video = matches!(record["media_type"].as_str(), Some("REELS" | "VIDEO"));
            let fetched = record["fetched_at"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map_or(created, |t| t.with_timezone(&Utc));
            let ready = fetched.max(created) + Duration::seconds(VIDEO_PROCESSING_SECONDS);
            if video && now < ready {
                "IN_PROGRESS"
            } else {
                "FINISHED"
            }
        }
    }
}

/// `GET /{container-id}` for one of the caller's containers (`status_code`, `status`), or `None`
/// when `id` is not one.
pub(super) fn container_node(sim: &Simulator, caller: &ApiCaller, id: &str) -> Option<Value> {
    let record = sim.record(SLUG, &record_key(id))?;
    let owner = record["owner"].as_str()?;
    ig_owner(sim, caller, owner)?;
    let status = status_of(sim, &record, sim.now());
    let words = match status {
        "ERROR" => format!(
            "Error: {}",
            record["error"]
                .as_str()
                .unwrap_or("Media upload has failed.")
        ),
        "EXPIRED" => "Expired: the container was not published within 24 hours.".to_owned(),
        "IN_PROGRESS" => "In Progress: Media is still being processed.".to_owned(),
        "PUBLISHED" => "Published: Media has been published.".to_owned(),
        _ => "Finished: Media has been uploaded and it is ready to be published.".to_owned(),
    };
    Some(json!({ "id": id, "status_code": status, "status": words }))
}

/// `GET /{media-id}` of a published Instagram medium (`permalink`, `media_type`, `caption`) or a
/// Facebook post (`permalink_url`), or `None`.
pub(super) fn published_node(sim: &Simulator, caller: &ApiCaller, id: &str) -> Option<Value> {
    let item = sim.published(SLUG).into_iter().find(|item| item.id == id)?;
    match item.kind.as_str() {
        "instagram_media" => {
            ig_owner(sim, caller, &item.target)?;
            let record = sim.record(SLUG, &media_key(id)).unwrap_or(Value::Null);
            Some(json!({
                "id": id,
                "permalink": permalink(id),
                "media_type": record["media_type"],
                "caption": item.fields.get("caption"),
            }))
        }
        _ => {
            let pages = sim.object_tokens(caller.grant.grant_id);
            pages.iter().find(|page| page.id == item.target)?;
            Some(json!({
                "id": id,
                "permalink_url": format!("https://www.facebook.com/{id}"),
                "message": item.fields.get("message").or(item.fields.get("caption")),
            }))
        }
    }
}

/// `POST /{ig-user-id}/media` (M20): an image (`image_url`), a reel (`media_type=REELS` +
/// `video_url`), a carousel item (`is_carousel_item=true`, image or `media_type=VIDEO`) or a
/// carousel (`media_type=CAROUSEL` + `children`, 2 to 10 unpublished items of this account);
/// answers the container id.
pub(super) async fn ig_container(
    sim: &Simulator,
    caller: &ApiCaller,
    ig_user_id: &str,
    params: Map<String, Value>,
) -> Response {
    if let Some(refusal) = ig_permission_check(sim, caller, ig_user_id) {
        return refusal;
    }
    let carousel_item = text(&params, "is_carousel_item") == Some("true");
    let media_type = text(&params, "media_type").unwrap_or("IMAGE").to_owned();
    let now = sim.now();
    let mut record = json!({
        "owner": ig_user_id,
        "media_type": media_type,
        "is_carousel_item": carousel_item,
        "created_at": now.to_rfc3339(),
        "published": false,
        "fields": Value::Object(params.clone()),
    });
    let url = match (media_type.as_str(), carousel_item) {
        ("IMAGE", _) => Some(("image_url", false)),
        ("REELS", false) | ("VIDEO", true) => Some(("video_url", true)),
        ("CAROUSEL", false) => None,
        (other, _) => {
            return bad_param(&format!(
                "(#100) The parameter media_type has an invalid value: {other}"
            ))
        }
    };
    let id = numeric_id();
    match url {
        Some((field, video)) => {
            let Some(url) = text(&params, field).map(str::to_owned) else {
                return bad_param(&format!("(#100) The parameter {field} is required"));
            };
            if video {
                record["fetch"] = json!("pending");
                sim.set_record(SLUG, &record_key(&id), record);
                fetch_in_background(sim.clone(), id.clone(), url);
            } else {
                match media::fetch(&url).await {
                    Ok(fetched) if fetched.is("image") => {}
                    Ok(_) => return unfetchable("the URI does not serve an image"),
                    Err(detail) => return unfetchable(&detail),
                }
                record["fetch"] = json!("ok");
                sim.set_record(SLUG, &record_key(&id), record);
            }
        }
        None => {
            let children: Vec<String> = text(&params, "children")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect();
            if !(2..=10).contains(&children.len()) {
                return graph_error(
                    StatusCode::BAD_REQUEST,
                    100,
                    Some(2_207_010),
                    "(#100) The carousel must have between 2 and 10 children.",
                );
            }
            for child in &children {
                let valid = sim.record(SLUG, &record_key(child)).is_some_and(|c| {
                    c["owner"] == ig_user_id
                        && c["is_carousel_item"] == true
                        && c["published"] == false
                });
                if !valid {
                    return bad_param(&format!(
                        "(#100) The child {child} is not a carousel item container of this account."
                    ));
                }
            }
            record["children"] = json!(children);
            sim.set_record(SLUG, &record_key(&id), record);
        }
    }
    exchange::json(StatusCode::OK, json!({ "id": id }))
}

/// Fetches a video container's media without holding up the call that created it.
fn fetch_in_background(sim: Simulator, container: String, url: String) {
    tokio::spawn(async move {
        let outcome = media::fetch(&url).await.and_then(|fetched| {
            fetched
                .is("video")
                .then_some(())
                .ok_or_else(|| "the URI does not serve a video".to_owned())
        });
        let now = sim.now();
        sim.update_record(SLUG, &record_key(&container), |record| {
            let Some(record) = record else { return };
            match outcome {
                Ok(_) => {
                    record["fetch"] = json!("ok");
                    record["fetched_at"] = json!(now.to_rfc3339());
                }
                Err(detail) => {
                    record["fetch"] = json!("failed");
                    record["error"] = json!(format!("Media download has failed: {detail}"));
                }
            }
        });
    });
}

/// The account's posts in the last 24 h (M20).
fn published_last_day(sim: &Simulator, ig_user_id: &str) -> usize {
    let since = sim.now() - Duration::hours(24);
    sim.published_with_times(SLUG)
        .into_iter()
        .filter(|(item, at)| {
            item.kind == "instagram_media" && item.target == ig_user_id && *at > since
        })
        .count()
}

/// `GET /{ig-user-id}/content_publishing_limit` (M20): the posts of the moving 24 h.
pub(super) fn publishing_limit(sim: &Simulator, caller: &ApiCaller, ig_user_id: &str) -> Response {
    if let Some(refusal) = ig_permission_check(sim, caller, ig_user_id) {
        return refusal;
    }
    exchange::json(
        StatusCode::OK,
        json!({ "data": [{
            "quota_usage": published_last_day(sim, ig_user_id),
            "config": { "quota_total": PUBLISHING_LIMIT, "quota_duration": 86400 },
        }] }),
    )
}

/// `POST /{ig-user-id}/media_publish?creation_id=` (M20): publishes a `FINISHED` container of
/// that account, once, within the 50 posts a day; answers the media id.
pub(super) fn ig_publish(
    sim: &Simulator,
    caller: &ApiCaller,
    ig_user_id: &str,
    params: &Map<String, Value>,
) -> Response {
    if let Some(refusal) = ig_permission_check(sim, caller, ig_user_id) {
        return refusal;
    }
    let Some(creation_id) = text(params, "creation_id") else {
        return bad_param("(#100) The parameter creation_id is required");
    };
    if published_last_day(sim, ig_user_id) >= PUBLISHING_LIMIT {
        return graph_error(
            StatusCode::BAD_REQUEST,
            9,
            Some(2_207_042),
            "(#9) You have reached the maximum number of posts that is allowed for this account in 24 hours.",
        );
    }
    let now = sim.now();
    let key = record_key(creation_id);
    let Some(record) = sim
        .record(SLUG, &key)
        .filter(|record| record["owner"] == ig_user_id)
    else {
        return not_available("Media ID is not available");
    };
    if record["is_carousel_item"] == true {
        return not_available("A carousel item cannot be published on its own");
    }
    match status_of(sim, &record, now) {
        "FINISHED" => {}
        "PUBLISHED" => return not_available("The media has already been published"),
        "IN_PROGRESS" => {
            return not_available("The media is not ready for publishing, please wait for a moment")
        }
        _ => return not_available("Media ID is not available"),
    }
    // Claimed under the lock, so that two concurrent calls cannot both publish it.
    let claimed = sim.update_record(SLUG, &key, |record| match record {
        Some(record) if record["published"] == false => {
            record["published"] = json!(true);
            true
        }
        _ => false,
    });
    if !claimed {
        return not_available("The media has already been published");
    }
    let mut fields = record["fields"].clone();
    if let (Some(children), Some(map)) = (record["children"].as_array(), fields.as_object_mut()) {
        let media: Vec<Value> = children
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|child| sim.record(SLUG, &record_key(child)))
            .map(|child| child["fields"].clone())
            .collect();
        map.insert("children".to_owned(), Value::Array(media));
        for child in children.iter().filter_map(Value::as_str) {
            sim.update_record(SLUG, &record_key(child), |record| {
                if let Some(record) = record {
                    record["published"] = json!(true);
                }
            });
        }
    }
    let media_id = numeric_id();
    sim.set_record(
        SLUG,
        &media_key(&media_id),
        json!({ "container": creation_id, "media_type": record["media_type"] }),
    );
    sim.publish(
        SLUG,
        PublishedItem {
            kind: "instagram_media".to_owned(),
            id: media_id.clone(),
            target: ig_user_id.to_owned(),
            fields,
        },
    );
    exchange::json(StatusCode::OK, json!({ "id": media_id }))
}
