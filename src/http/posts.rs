//! The posts endpoints: create (idempotent), read, list, cancel, and the approval page the
//! `post.approval_requested` link opens. Parse, check the key's scope, call
//! [`Posts`](crate::publish::Posts), shape the answer; the rules live in `publish`.

use axum::extract::{Form, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::asset_routes::ApiJson;
use super::error::{ApiError, ErrorBody};
use super::extract::{ApiCaller, ApiPath, ApiQuery};
use super::state::AppState;
use crate::access::Operation;
use crate::audit::{Actor, AuditLog};
use crate::domain::StoreId;
use crate::publish::{ApprovalDecision, CreatePost, PostStatus, PostView, Posts};
use crate::store::{PostQuery, PostRow};

/// The posts routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/posts", get(list).post(create))
        .route("/api/v1/posts/{id}", get(read).delete(cancel))
        .route(
            "/api/v1/posts/{id}/approval",
            get(approval_page).post(approval_answer),
        )
}

/// Creates a post: it goes out at `publish_at` (now when absent), after the merchant's approval
/// where the store requires it. The same `Idempotency-Key` with the same body answers the same
/// post (200 instead of 201); with another body, 409.
#[utoipa::path(post, path = "/api/v1/posts", tag = "posts", security(("api_key" = [])),
    params(("Idempotency-Key" = String, Header, description = "1 to 255 visible ASCII characters, unique per store and post")),
    request_body = CreatePost,
    responses(
        (status = 201, body = PostView, description = "created"),
        (status = 200, body = PostView, description = "the post this key created before"),
        (status = 400, body = ErrorBody, description = "invalid_post, missing_idempotency_key"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "store_not_allowed: the key is limited to other stores; missing_scope: the key lacks `posts:write` (a narrowed key: on the body's platform)"),
        (status = 404, body = ErrorBody, description = "unknown platform or no connection"),
        (status = 409, body = ErrorBody, description = "idempotency_key_reused, no_account, or the merchant must reconnect"),
        (status = 422, body = ErrorBody, description = "the platform would refuse the post: not_supported, invalid_post, media_rejected, ..."),
        (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn create(
    State(posts): State<Posts>,
    State(audit): State<AuditLog>,
    caller: ApiCaller,
    headers: HeaderMap,
    body: Result<ApiJson<CreatePost>, ApiError>,
) -> Result<Response, ApiError> {
    // The platform is in the body: a key with no posts:write at all is refused before it is read.
    caller.require_some(Operation::PostsWrite)?;
    let ApiJson(request) = body?;
    caller.require(Operation::PostsWrite, Some(&request.platform))?;
    // An invalid store_id cannot be one of a bound key's stores; `create` answers it with a 400.
    if let Ok(store_id) = StoreId::parse(request.store_id.as_str()) {
        caller.allow_store(&audit, "post.create", None, &store_id)?;
    }
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let (row, created) = posts
        .create(&Actor::ApiKey(caller.name.clone()), key, &request)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(PostView::of(&row))).into_response())
}

/// One post.
#[utoipa::path(get, path = "/api/v1/posts/{id}", tag = "posts", security(("api_key" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = PostView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "missing_scope: the key lacks `posts:read` (on any platform)"),
        (status = 404, body = ErrorBody, description = "post_not_found (also a post of a store or platform outside the key)"),
        (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn read(
    State(posts): State<Posts>,
    caller: ApiCaller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PostView>, ApiError> {
    let row = visible(&posts, &caller, Operation::PostsRead, id).await?;
    Ok(Json(PostView::of(&row)))
}

/// Cancels a post not yet sent (scheduled, waiting for approval, or publishing before its send
/// began); 409 `post_not_cancellable` once it was sent.
#[utoipa::path(delete, path = "/api/v1/posts/{id}", tag = "posts", security(("api_key" = [])),
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = PostView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "missing_scope: the key lacks `posts:write` (on any platform)"),
        (status = 404, body = ErrorBody, description = "post_not_found (also a post of a store or platform outside the key)"),
        (status = 409, body = ErrorBody, description = "post_not_cancellable"),
        (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn cancel(
    State(posts): State<Posts>,
    caller: ApiCaller,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<PostView>, ApiError> {
    visible(&posts, &caller, Operation::PostsWrite, id).await?;
    let row = posts
        .cancel(&Actor::ApiKey(caller.name.clone()), id)
        .await
        .map_err(|error| match error {
            crate::publish::PostError::WrongState(state) => ApiError::new(
                StatusCode::CONFLICT,
                "post_not_cancellable",
                format!("The post cannot be cancelled: it is {state}."),
            ),
            other => other.into(),
        })?;
    Ok(Json(PostView::of(&row)))
}

/// The post, if the key may see its platform's posts (a post of another platform is not found,
/// rather than forbidden, so that ids reveal nothing).
async fn visible(
    posts: &Posts,
    caller: &ApiCaller,
    operation: Operation,
    id: Uuid,
) -> Result<PostRow, ApiError> {
    caller.require_some(operation)?;
    let row = posts.get(id).await?;
    // Another store's post, like another platform's, is not there for this key: a 403 would
    // confirm that the id exists.
    let store_allowed = StoreId::parse(row.store_id.as_str())
        .is_ok_and(|store_id| caller.require_store(&store_id).is_ok());
    if caller.require(operation, Some(&row.platform)).is_err() || !store_allowed {
        return Err(crate::publish::PostError::NotFound.into());
    }
    Ok(row)
}

/// The list's query.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// The store.
    store_id: String,
    /// Only posts in this status.
    #[param(value_type = Option<PostStatus>)]
    status: Option<String>,
    /// Only posts to this platform (required for a key narrowed to one platform).
    platform: Option<String>,
    /// At most this many (1 to 100, default 50).
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// A page of posts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PostPage {
    /// Newest first.
    posts: Vec<PostView>,
    /// Pass as `cursor` for the next page; absent on the last.
    next_cursor: Option<String>,
}

/// A store's posts, newest first.
#[utoipa::path(get, path = "/api/v1/posts", tag = "posts", security(("api_key" = [])),
    params(ListQuery),
    responses(
        (status = 200, body = PostPage),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "store_not_allowed: the key is limited to other stores; missing_scope: the key lacks `posts:read[:platform]`"),
        (status = 503, body = ErrorBody),
    ))]
pub(crate) async fn list(
    State(posts): State<Posts>,
    State(audit): State<AuditLog>,
    caller: ApiCaller,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<PostPage>, ApiError> {
    caller.require(Operation::PostsRead, query.platform.as_deref())?;
    if let Some(platform) = &query.platform {
        crate::domain::PlatformId::parse(platform)
            .map_err(|e| ApiError::bad_request("invalid_platform", e.to_string()))?;
    }
    let store_id = StoreId::parse(&query.store_id)
        .map_err(|e| ApiError::bad_request("invalid_store_id", e.to_string()))?;
    caller.allow_store(&audit, "post.list", None, &store_id)?;
    if let Some(status) = &query.status {
        if PostStatus::parse(status).is_none() {
            return Err(ApiError::bad_request(
                "invalid_status",
                "status must be one of scheduled, pending_approval, publishing, published, failed, cancelled, unknown.",
            ));
        }
    }
    let limit = i64::from(query.limit.unwrap_or(50));
    if !(1..=100).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            "limit must be from 1 to 100.",
        ));
    }
    let after = query.cursor.as_deref().map(read_cursor).transpose()?;
    let mut rows = posts
        .list(&PostQuery {
            store_id: &store_id,
            status: query.status.as_deref(),
            platform: query.platform.as_deref(),
            after,
            limit: limit + 1,
        })
        .await?;
    let more = rows.len() > usize::try_from(limit).unwrap_or(50);
    rows.truncate(usize::try_from(limit).unwrap_or(50));
    let next_cursor = more
        .then(|| rows.last().map(|row| write_cursor(row.created_at, row.id)))
        .flatten();
    Ok(Json(PostPage {
        posts: rows.iter().map(PostView::of).collect(),
        next_cursor,
    }))
}

fn write_cursor(at: DateTime<Utc>, id: Uuid) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("{}|{id}", at.timestamp_micros()))
}

fn read_cursor(text: &str) -> Result<(DateTime<Utc>, Uuid), ApiError> {
    let invalid =
        || ApiError::bad_request("invalid_cursor", "The cursor is not one this API gave.");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| invalid())?;
    let text = String::from_utf8(bytes).map_err(|_| invalid())?;
    let (micros, id) = text.split_once('|').ok_or_else(invalid)?;
    // Within what both databases store (years 1970 to 9999).
    let at = micros
        .parse::<i64>()
        .ok()
        .filter(|m| (0..253_402_300_800_000_000).contains(m))
        .and_then(DateTime::from_timestamp_micros)
        .ok_or_else(invalid)?;
    Ok((at, id.parse().map_err(|_| invalid())?))
}

/// The approval link's query.
#[derive(Deserialize)]
pub(crate) struct ApprovalLink {
    token: String,
}

/// The approval form.
#[derive(Deserialize)]
pub(crate) struct ApprovalForm {
    token: String,
    decision: String,
}

impl std::fmt::Debug for ApprovalLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApprovalLink { token: [redacted] }")
    }
}

impl std::fmt::Debug for ApprovalForm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApprovalForm")
            .field("token", &"[redacted]")
            .field("decision", &self.decision)
            .finish()
    }
}

/// The page an approval link opens: the post, with Approve and Reject. Nothing changes until a
/// button is pressed (a link preview or a prefetch must not approve).
async fn approval_page(
    State(posts): State<Posts>,
    ApiPath(id): ApiPath<Uuid>,
    link: Result<Query<ApprovalLink>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(link)) = link else {
        return approval_result(StatusCode::BAD_REQUEST, "This approval link is incomplete.");
    };
    let row = match posts.get(id).await {
        Ok(row) if posts.link_is_open(&row, &link.token) => row,
        _ => return approval_result(StatusCode::GONE, "This approval link is not valid any more: the post was already decided, cancelled, or the request expired."),
    };
    let view = PostView::of(&row);
    let media: String = view
        .media
        .iter()
        .map(|m| {
            let url = html_escape(m.url.as_str());
            match m.kind {
                crate::platforms::publish::MediaKind::Image => {
                    format!("<img src=\"{url}\" alt=\"\">")
                }
                crate::platforms::publish::MediaKind::Video => {
                    format!("<video src=\"{url}\" controls></video>")
                }
            }
        })
        .collect();
    let token = html_escape(&link.token);
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Approve a post</title>\
         <meta name=\"referrer\" content=\"no-referrer\"></head><body>\
         <h1>Waiting for your approval</h1>\
         <p><strong>{platform}</strong> · {account}</p><p>{time}</p>\
         <blockquote id=\"post-text\">{text}</blockquote>{media}\
         <form method=\"post\"><input type=\"hidden\" name=\"token\" value=\"{token}\">\
         <button name=\"decision\" value=\"approve\" id=\"approve\">Approve</button> \
         <button name=\"decision\" value=\"reject\" id=\"reject\">Reject</button></form></body></html>",
        platform = html_escape(&view.platform),
        account = html_escape(&view.account.id),
        time = view.publish_at.format("%Y-%m-%d %H:%M UTC"),
        text = html_escape(&view.text),
    );
    let mut response = Html(body).into_response();
    no_store(&mut response);
    response
}

/// Approve or Reject pressed on the approval page: the link is used up.
async fn approval_answer(
    State(posts): State<Posts>,
    ApiPath(id): ApiPath<Uuid>,
    form: Result<Form<ApprovalForm>, axum::extract::rejection::FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return approval_result(StatusCode::BAD_REQUEST, "Choose Approve or Reject.");
    };
    let decision = match form.decision.as_str() {
        "approve" => ApprovalDecision::Approve,
        "reject" => ApprovalDecision::Reject,
        _ => return approval_result(StatusCode::BAD_REQUEST, "Choose Approve or Reject."),
    };
    let actor = Actor::PageUser("approval-link".to_owned());
    match posts.decide(&actor, id, decision, Some(&form.token)).await {
        Ok(_) if decision == ApprovalDecision::Approve => {
            approval_result(StatusCode::OK, "Approved: the post will be published.")
        }
        Ok(_) => approval_result(StatusCode::OK, "Rejected: the post will not be published."),
        Err(crate::publish::PostError::Store(_)) => approval_result(
            StatusCode::SERVICE_UNAVAILABLE,
            "The service is temporarily unavailable. Please try again shortly.",
        ),
        Err(_) => approval_result(StatusCode::GONE, "This approval link is not valid any more: the post was already decided, cancelled, or the request expired."),
    }
}

fn approval_result(status: StatusCode, message: &str) -> Response {
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Post approval</title></head>\
         <body><p id=\"result\">{}</p></body></html>",
        html_escape(message)
    );
    let mut response = (status, Html(body)).into_response();
    no_store(&mut response);
    response
}

fn no_store(response: &mut Response) {
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-store"),
    );
}

/// Escapes text for HTML.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
