//! LinkedIn publishing as the sandbox serves it: the Images API (`POST /rest/images?action=
//! initializeUpload`, the PUT of the bytes to the `uploadUrl` it hands out, `GET /rest/images/
//! {urn}`) and the Posts API (`POST /rest/posts`), after the `/rest/` header checks of `api`.
//!
//! Rules (facts of `/work/shared/linkedin.md`): posting as an organization needs
//! `w_organization_social` and a role of ADMINISTRATOR or DIRECT_SPONSORED_CONTENT_POSTER on it
//! (facts 35, 46), as the member needs `w_member_social` (fact 35); a post is `author`,
//! `commentary`, `visibility`, `distribution`, `lifecycleState: PUBLISHED`, optional
//! `content.media{id, altText}` (fact 45) and answers 201 with the post's URN in `x-restli-id`
//! and no body (fact 47); an image is initialized for an owner, its bytes PUT to the upload URL,
//! and it is PROCESSING, then AVAILABLE (facts 49, 50: the sandbox makes it AVAILABLE on the
//! first look after the upload); a post may carry only an AVAILABLE image of its author. The
//! commentary's reserved characters must be escaped: an unescaped one silently cuts the rendered
//! post while the API still answers 201 (fact 48): the sandbox records the text as it would be
//! rendered, so a client that forgets shows a truncated post on the feed page.
//!
//! The upload URL lives on the sandbox itself, under `/sandbox/linkedin/api/dms-uploads/`, with
//! the origin the request came to (its `Host`).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CONTENT_TYPE, HOST};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Router};
use serde_json::{json, Value};

use super::api::{error, member, ORGANIZATIONS};
use super::oauth::{SLUG, SPEC};
use crate::exchange;
use crate::params::{query_pairs, query_param};
use crate::state::{random_string, ApiCaller, PublishedItem, Simulator};

/// Where the upload URLs point, under the platform's API prefix but outside `/rest/` (an upload
/// URL takes the token and none of the version headers).
const UPLOAD_PATH: &str = "/sandbox/linkedin/api/dms-uploads";

/// The roles that may post as an organization (fact 46).
const POSTING_ROLES: [&str; 2] = ["ADMINISTRATOR", "DIRECT_SPONSORED_CONTENT_POSTER"];

/// The longest commentary LinkedIn takes (its share-box limit of 3,000 characters; the stored
/// docs give none, so this is the sandbox's reading).
const MAX_COMMENTARY: usize = 3000;

pub(super) fn routes() -> Router<Simulator> {
    let at = |rest: &str| SPEC.api_path(rest);
    Router::new()
        .route(&at("images"), post(initialize_upload))
        .route(&at("images/{urn}"), get(image))
        .route(&at("posts"), post(create_post))
        .route(&format!("{UPLOAD_PATH}/{{id}}"), put(upload))
}

/// The member's role on an organization by URN, if any (the seeded member administers every
/// seeded organization, as `organizationAcls` says).
fn role_on(urn: &str) -> Option<&'static str> {
    let id = urn
        .strip_prefix("urn:li:organization:")?
        .parse::<u64>()
        .ok()?;
    ORGANIZATIONS
        .iter()
        .any(|(known, _, _)| *known == id)
        .then_some("ADMINISTRATOR")
}

/// Whether the caller may act as `author`: its own person URN with `w_member_social`, or an
/// organization it holds a posting role on with `w_organization_social` (facts 35, 46). The
/// refusal is a 403 naming the author.
fn may_act_as(caller: &ApiCaller, author: &str, action: &str) -> Result<(), Box<Response>> {
    let (sub, _) = member(caller.grant.account);
    let allowed = if author == format!("urn:li:person:{sub}") {
        caller.grant.has_scope("w_member_social")
    } else {
        caller.grant.has_scope("w_organization_social")
            && role_on(author).is_some_and(|role| POSTING_ROLES.contains(&role))
    };
    if allowed {
        return Ok(());
    }
    exchange::reject(exchange::json(
        StatusCode::FORBIDDEN,
        json!({
            "status": 403,
            "serviceErrorCode": 100,
            "code": "ACCESS_DENIED",
            "message": format!("Not enough permissions to access: {action} for author {author}"),
        }),
    ))
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "ILLEGAL_ARGUMENT", message)
}

fn json_body(headers: &HeaderMap, body: &Bytes) -> Option<Value> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
        .then(|| serde_json::from_slice::<Value>(body).ok())
        .flatten()
        .filter(Value::is_object)
}

/// `POST /rest/images?action=initializeUpload` (fact 49).
async fn initialize_upload(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    if query_param(&query_pairs(query.as_deref()), "action") != Some("initializeUpload") {
        return bad_request("The images resource takes action=initializeUpload.");
    }
    let Some(owner) = json_body(&headers, &body).and_then(|b| {
        b.pointer("/initializeUploadRequest/owner")
            .and_then(Value::as_str)
            .map(str::to_owned)
    }) else {
        return bad_request("initializeUploadRequest.owner is required.");
    };
    if let Err(refusal) = may_act_as(&caller, &owner, "POST /images") {
        return *refusal;
    }
    let host = headers
        .get(HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1");
    let upload = random_string(32);
    let urn = format!("urn:li:image:D4E10AQ{}", random_string(16));
    let expires_ms = (sim.now().timestamp() + 86_400) * 1000;
    sim.store_draft(
        SLUG,
        PublishedItem {
            kind: "image".to_owned(),
            id: urn.clone(),
            target: owner,
            fields: json!({ "upload": upload, "status": "WAITING_UPLOAD" }),
        },
    );
    exchange::json(
        StatusCode::OK,
        json!({ "value": {
            "uploadUrlExpiresAt": expires_ms,
            "uploadUrl": format!("http://{host}{UPLOAD_PATH}/{upload}"),
            "image": urn,
        } }),
    )
}

/// The image whose upload id is `upload`.
fn image_by_upload(sim: &Simulator, upload: &str) -> Option<PublishedItem> {
    let urn = sim.with_api(SLUG, |api| {
        api.drafts
            .values()
            .find(|item| item.kind == "image" && item.fields["upload"] == upload)
            .map(|item| item.id.clone())
    })?;
    sim.draft(SLUG, &urn)
}

/// `PUT {uploadUrl}`: the image's bytes, once, before the URL expires; 201 and no body.
async fn upload(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Some(mut item) = image_by_upload(&sim, &id) else {
        return error(StatusCode::NOT_FOUND, "NOT_FOUND", "Unknown upload.");
    };
    if let Err(refusal) = may_act_as(&caller, &item.target, "PUT upload") {
        return *refusal;
    }
    if item.fields["status"] != "WAITING_UPLOAD" {
        return bad_request("This image was uploaded already.");
    }
    if body.is_empty() {
        return bad_request("The upload is empty.");
    }
    item.fields["status"] = json!("PROCESSING");
    item.fields["bytes"] = json!(body.len());
    sim.store_draft(SLUG, item);
    StatusCode::CREATED.into_response()
}

/// `GET /rest/images/{urn}`: the image's `status`; PROCESSING once uploaded, AVAILABLE from the
/// next look on.
async fn image(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    Path(urn): Path<String>,
) -> Response {
    let Some(mut item) = sim.draft(SLUG, &urn).filter(|item| item.kind == "image") else {
        return error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            &format!("Not found: {urn}"),
        );
    };
    if let Err(refusal) = may_act_as(&caller, &item.target, "GET /images") {
        return *refusal;
    }
    if item.fields["status"] == "PROCESSING" {
        if item.fields["looked"] == true {
            item.fields["status"] = json!("AVAILABLE");
        } else {
            item.fields["looked"] = json!(true);
        }
        sim.store_draft(SLUG, item.clone());
    }
    let status = item.fields["status"].clone();
    exchange::json(
        StatusCode::OK,
        json!({
            "id": urn,
            "owner": item.target,
            "status": status,
            "downloadUrl": format!("https://media.sandbox.example/linkedin/{}", item.fields["upload"].as_str().unwrap_or_default()),
        }),
    )
}

/// The characters the "little" text format reserves (fact 48).
const RESERVED: &str = "\\|{}@[]()<>#*_~";

/// The commentary as LinkedIn renders it: escapes removed, cut at the first unescaped reserved
/// character (fact 48's silent truncation).
fn rendered(commentary: &str) -> String {
    let mut out = String::new();
    let mut chars = commentary.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some(next) if RESERVED.contains(next) => out.push(next),
                _ => break,
            }
        } else if RESERVED.contains(c) {
            break;
        } else {
            out.push(c);
        }
    }
    out
}

/// Checks a post's body (fact 45), returning its author.
fn check_post(post: &Value) -> Result<String, Box<Response>> {
    let text = |name: &str| post.get(name).and_then(Value::as_str);
    let Some(author) = text("author") else {
        return exchange::reject(bad_request("author is required."));
    };
    if !matches!(
        text("visibility"),
        Some("PUBLIC" | "CONNECTIONS" | "LOGGED_IN")
    ) {
        return exchange::reject(bad_request(
            "visibility must be PUBLIC, CONNECTIONS or LOGGED_IN.",
        ));
    }
    if text("lifecycleState") != Some("PUBLISHED") {
        return exchange::reject(bad_request("lifecycleState must be PUBLISHED."));
    }
    let feed = post
        .pointer("/distribution/feedDistribution")
        .and_then(Value::as_str);
    if !matches!(feed, Some("MAIN_FEED" | "NONE")) {
        return exchange::reject(bad_request(
            "distribution.feedDistribution must be MAIN_FEED or NONE.",
        ));
    }
    let commentary = text("commentary").unwrap_or_default();
    if commentary.chars().count() > MAX_COMMENTARY {
        return exchange::reject(error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "UNPROCESSABLE_ENTITY",
            &format!("commentary is longer than {MAX_COMMENTARY} characters."),
        ));
    }
    if commentary.is_empty() && post.get("content").is_none() {
        return exchange::reject(bad_request("A post needs commentary or content."));
    }
    Ok(author.to_owned())
}

/// `POST /rest/posts` (facts 45 to 48).
async fn create_post(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(post) = json_body(&headers, &body) else {
        return bad_request("The body must be a JSON object (Content-Type: application/json).");
    };
    let author = match check_post(&post) {
        Ok(author) => author,
        Err(refusal) => return *refusal,
    };
    if let Err(refusal) = may_act_as(&caller, &author, "POST /posts") {
        return *refusal;
    }
    if let Some(media) = post.pointer("/content/media/id") {
        let usable = media
            .as_str()
            .and_then(|urn| sim.draft(SLUG, urn))
            .is_some_and(|image| image.target == author && image.fields["status"] == "AVAILABLE");
        if !usable {
            return error(
                StatusCode::UNPROCESSABLE_ENTITY,
                "UNPROCESSABLE_ENTITY",
                &format!(
                    "content.media.id {} is not an available image of {author}.",
                    media.as_str().unwrap_or_default()
                ),
            );
        }
    }
    let urn = format!(
        "urn:li:share:7{}",
        random_string(36)
            .bytes()
            .map(|b| char::from(b'0' + b % 10))
            .take(18)
            .collect::<String>()
    );
    let mut fields = post.clone();
    fields["rendered_commentary"] = json!(rendered(
        post.get("commentary")
            .and_then(Value::as_str)
            .unwrap_or_default()
    ));
    sim.publish(
        SLUG,
        PublishedItem {
            kind: "linkedin_post".to_owned(),
            id: urn.clone(),
            target: author,
            fields,
        },
    );
    let mut response = StatusCode::CREATED.into_response();
    if let Ok(value) = HeaderValue::from_str(&urn) {
        response.headers_mut().insert("x-restli-id", value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unescaped_reserved_character_cuts_the_rendered_text() {
        assert_eq!(rendered(r"Sale \(today\) \#1"), "Sale (today) #1");
        assert_eq!(rendered("Sale (today)"), "Sale ");
        assert_eq!(rendered("plain"), "plain");
    }
}
