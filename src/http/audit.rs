//! `GET /api/v1/audit`: a store's audit trail for backend services holding `audit:read`, newest
//! first, in pages (keyset pagination with an opaque cursor).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiCaller, ApiQuery};
use super::state::AppState;
use crate::access::Operation;
use crate::audit::{AuditLog, Cursor};
use crate::domain::StoreId;
use crate::store::AuditRow;

/// The default page size.
const DEFAULT_LIMIT: usize = 50;
/// The largest page size.
const MAX_LIMIT: usize = 200;

/// The audit route.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/audit", get(audit))
}

/// `?store_id=..&since=..&limit=..&cursor=..`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The store whose trail to read.
    #[param(value_type = String, pattern = r"^[A-Za-z0-9_.:@-]{1,128}$")]
    pub store_id: StoreId,
    /// Only entries at or after this instant (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Entries per page, 1 to 200 (default 50).
    pub limit: Option<usize>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One entry of the trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Time-ordered id.
    pub id: String,
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `api_key`, `page_user` or `system`.
    pub actor_kind: String,
    /// The key's name, the page user's id, or the system task.
    pub actor: String,
    /// The store.
    pub store_id: Option<String>,
    /// The platform.
    pub platform: Option<String>,
    /// `connect`, `disconnect`, `token`, `refresh`, ...
    pub operation: String,
    /// `success`, `started` or `failure`.
    pub outcome: String,
    /// A short detail: an error code, a revocation outcome.
    pub detail: Option<String>,
}

impl From<AuditRow> for AuditEntry {
    fn from(row: AuditRow) -> Self {
        Self {
            id: row.id.to_string(),
            at: row.at,
            actor_kind: row.actor_kind,
            actor: row.actor,
            store_id: row.store_id,
            platform: row.platform,
            operation: row.operation,
            outcome: row.outcome,
            detail: row.detail,
        }
    }
}

/// A page of the trail.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

/// A store's audit trail, newest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit",
    security(("api_key" = [])),
    params(AuditQuery),
    responses(
        (status = 200, body = AuditPage),
        (status = 400, body = ErrorBody, description = "invalid_limit, invalid_cursor or a malformed parameter"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "store_not_allowed: the key is limited to other stores; missing_scope: the key lacks `audit:read`"),
        (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(store_id = %query.store_id))]
pub async fn audit(
    State(audit): State<AuditLog>,
    caller: ApiCaller,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    caller.require(Operation::AuditRead, None)?;
    caller.allow_store(&audit, "audit", None, &query.store_id)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_limit",
            format!("limit must be between 1 and {MAX_LIMIT}."),
        ));
    }
    let cursor = query
        .cursor
        .as_deref()
        .map(|text| {
            Cursor::decode(text).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "cursor must be a next_cursor this service returned.",
                )
            })
        })
        .transpose()?;
    let since = query.since.unwrap_or(DateTime::UNIX_EPOCH);
    let page = audit
        .page(&query.store_id, since, cursor.as_ref(), limit)
        .await
        .map_err(|e| ApiError::from(crate::oauth::OAuthError::Store(e)))?;
    Ok(Json(AuditPage {
        entries: page.rows.into_iter().map(AuditEntry::from).collect(),
        next_cursor: page.next.map(|c| c.encode()),
    }))
}
