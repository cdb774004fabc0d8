//! The page's Posts section: the store's recent posts (scheduled, waiting for approval,
//! published with links, failed with the reason in words), the merchant's Approve and Reject,
//! and the store's approval switch. The store is always the session's; every answer is
//! recorded in the audit trail as the page's user.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::api::no_store;
use super::session::{DashboardSession, DashboardWriter};
use crate::audit::Actor;
use crate::http::asset_routes::ApiJson;
use crate::http::error::ApiError;
use crate::http::extract::ApiPath;
use crate::publish::{ApprovalDecision, PostError, PostView, Posts};
use crate::store::PostQuery;

/// How many posts the section shows.
const RECENT_POSTS: i64 = 50;

/// The section's data.
#[derive(Debug, Serialize)]
pub struct PostsSection {
    /// Whether the store's posts wait for the merchant's approval.
    pub require_approval: bool,
    /// The newest posts first.
    pub posts: Vec<PostView>,
}

/// The store's recent posts and its approval policy.
pub async fn posts(
    session: DashboardSession,
    State(posts): State<Posts>,
) -> Result<Response, ApiError> {
    let require_approval = posts.requires_approval(&session.store_id).await?;
    let rows = posts
        .list(&PostQuery {
            store_id: &session.store_id,
            status: None,
            platform: None,
            after: None,
            limit: RECENT_POSTS,
        })
        .await?;
    Ok(no_store(Json(PostsSection {
        require_approval,
        posts: rows.iter().map(PostView::of).collect(),
    })))
}

/// The approval switch.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyRequest {
    /// Whether posts wait for approval.
    pub require_approval: bool,
}

/// Sets whether the store's posts wait for approval.
pub async fn set_policy(
    writer: DashboardWriter,
    State(posts): State<Posts>,
    ApiJson(request): ApiJson<PolicyRequest>,
) -> Result<Response, ApiError> {
    let session = writer.0;
    posts
        .set_requires_approval(
            &page_user(&session),
            &session.store_id,
            request.require_approval,
        )
        .await?;
    Ok(no_store(Json(serde_json::json!({
        "require_approval": request.require_approval
    }))))
}

/// Approves a post waiting for approval.
pub async fn approve(
    writer: DashboardWriter,
    State(posts): State<Posts>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    decide(writer.0, posts, id, ApprovalDecision::Approve).await
}

/// Rejects a post waiting for approval.
pub async fn reject(
    writer: DashboardWriter,
    State(posts): State<Posts>,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    decide(writer.0, posts, id, ApprovalDecision::Reject).await
}

async fn decide(
    session: DashboardSession,
    posts: Posts,
    id: Uuid,
    decision: ApprovalDecision,
) -> Result<Response, ApiError> {
    // Another store's post is not found: the session's store is the only one it may touch.
    let post = posts.get(id).await?;
    if post.store_id != session.store_id.as_str() {
        return Err(PostError::NotFound.into());
    }
    let decided = posts
        .decide(&page_user(&session), id, decision, None)
        .await?;
    Ok(no_store(Json(PostView::of(&decided))))
}

fn page_user(session: &DashboardSession) -> Actor {
    Actor::PageUser(session.user_id.to_string())
}
