//! The asset endpoints: discover a connection's assets on demand and choose the default of a kind.
//! Parse, call the lifecycle, shape the answer; the rules live in `lifecycle::merchant_assets`.

use axum::extract::{FromRequest, State};
use axum::routing::{post, put};
use axum::{Json, Router};

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiCaller, ApiPath};
use super::state::AppState;
use super::views::{ConnectionView, SelectionRequest};
use crate::access::Operation;
use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::domain::StoreId;
use crate::lifecycle::{Assets, Connections};
use crate::oauth::{Flow, OAuthError};
use crate::platforms::builtin::{asset_kind, asset_kinds};
use crate::platforms::error::PlatformError;
use crate::platforms::{AssetKind, PlatformSpec};

/// The asset routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/oauth/connections/{store_id}/{platform}/assets/refresh",
            post(refresh_assets),
        )
        .route(
            "/api/v1/oauth/connections/{store_id}/{platform}/selection",
            put(select),
        )
}

/// A JSON body whose rejection (malformed JSON, wrong content type) is our JSON error.
#[derive(FromRequest)]
#[from_request(via(Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

/// The platform a path names; a 404 listing the platforms otherwise.
pub(crate) fn find_platform<'a>(flow: &'a Flow, slug: &str) -> Result<&'a PlatformSpec, ApiError> {
    flow.catalog().find(slug).ok_or_else(|| {
        ApiError::from(OAuthError::Platform(PlatformError::UnknownPlatform(
            slug.to_owned(),
        )))
        .with_details(serde_json::json!({ "platforms": flow.catalog().slugs() }))
    })
}

/// The kind a request names; a 400 listing the kinds otherwise.
pub(crate) fn parse_kind(text: &str) -> Result<AssetKind, ApiError> {
    asset_kind(text).ok_or_else(|| {
        ApiError::bad_request("invalid_kind", "Unknown asset kind.")
            .with_details(serde_json::json!({ "kinds": asset_kinds().iter().map(|k| k.as_str()).collect::<Vec<_>>() }))
    })
}

/// The connection's view with its current assets.
async fn view(
    connections: &Connections,
    spec: &PlatformSpec,
    store_id: &StoreId,
) -> Result<Json<ConnectionView>, ApiError> {
    let listing = connections.listing(store_id).await?;
    let connection = listing
        .connections
        .iter()
        .find(|c| c.platform == spec.id)
        .ok_or(OAuthError::NotFound)?;
    let health = connections.health(connection);
    Ok(Json(ConnectionView::with_assets(
        connection,
        &listing.assets,
        health,
    )))
}

/// Discovers the connection's assets now (with a valid token, refreshed first when due) and
/// returns the connection with them; the selection of assets still there is kept.
#[utoipa::path(post, path = "/api/v1/oauth/connections/{store_id}/{platform}/assets/refresh",
    tag = "assets", security(("api_key" = [])),
    params(
        ("store_id" = String, Path, pattern = r"^[A-Za-z0-9_.:@-]{1,128}$"),
        ("platform" = super::views::BuiltInPlatform, Path),
    ),
    responses(
        (status = 200, body = ConnectionView),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "store_not_allowed: the key is limited to other stores; missing_scope: the key lacks `selection:write[:platform]`"),
        (status = 404, body = ErrorBody, description = "unknown platform or no connection"),
        (status = 409, body = ErrorBody, description = "the merchant must reconnect"),
        (status = 502, body = ErrorBody, description = "the platform failed or throttled discovery"),
        (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(%platform))]
pub(crate) async fn refresh_assets(
    State(flow): State<Flow>,
    State(assets): State<Assets>,
    State(connections): State<Connections>,
    State(audit): State<AuditLog>,
    caller: ApiCaller,
    ApiPath((store_id, platform)): ApiPath<(StoreId, String)>,
) -> Result<Json<ConnectionView>, ApiError> {
    let spec = find_platform(&flow, &platform)?;
    caller.require(Operation::SelectionWrite, Some(spec.id.as_str()))?;
    caller.allow_store(&audit, "assets_refresh", Some(spec.id.as_str()), &store_id)?;
    let result = assets
        .refresh_assets(spec, &store_id)
        .await
        .map_err(ApiError::from);
    record(
        &audit,
        &caller,
        "assets_refresh",
        &store_id,
        spec.id.as_str(),
        &result,
    );
    result?;
    view(&connections, spec, &store_id).await
}

/// Records an asset operation by the calling key in the audit trail.
fn record<T>(
    audit: &AuditLog,
    caller: &ApiCaller,
    operation: &'static str,
    store_id: &StoreId,
    platform: &str,
    result: &Result<T, ApiError>,
) {
    let event = AuditEvent::new(Actor::ApiKey(caller.name.clone()), operation, "success")
        .with_store(store_id)
        .with_platform(platform);
    audit.record(match result {
        Ok(_) => event,
        Err(error) => event.failed(error.code()),
    });
}

/// Makes an asset the connection's default of its kind (what the token endpoint and the proxy use
/// when no account is named).
#[utoipa::path(put, path = "/api/v1/oauth/connections/{store_id}/{platform}/selection",
    tag = "assets", security(("api_key" = [])),
    params(
        ("store_id" = String, Path, pattern = r"^[A-Za-z0-9_.:@-]{1,128}$"),
        ("platform" = super::views::BuiltInPlatform, Path),
    ),
    request_body = SelectionRequest,
    responses(
        (status = 200, body = ConnectionView),
        (status = 400, body = ErrorBody, description = "unknown kind or malformed body"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "store_not_allowed: the key is limited to other stores; missing_scope: the key lacks `selection:write[:platform]`"),
        (status = 404, body = ErrorBody, description = "unknown platform, no connection, or `asset_not_found`"),
        (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(%platform))]
pub async fn select(
    State(flow): State<Flow>,
    State(assets): State<Assets>,
    State(connections): State<Connections>,
    State(audit): State<AuditLog>,
    caller: ApiCaller,
    ApiPath((store_id, platform)): ApiPath<(StoreId, String)>,
    ApiJson(request): ApiJson<SelectionRequest>,
) -> Result<Json<ConnectionView>, ApiError> {
    let spec = find_platform(&flow, &platform)?;
    caller.require(Operation::SelectionWrite, Some(spec.id.as_str()))?;
    caller.allow_store(&audit, "selection", Some(spec.id.as_str()), &store_id)?;
    let kind = parse_kind(&request.kind)?;
    let result = assets
        .select_asset(spec, &store_id, kind, &request.id)
        .await
        .map_err(ApiError::from);
    record(
        &audit,
        &caller,
        "selection",
        &store_id,
        spec.id.as_str(),
        &result,
    );
    result?;
    view(&connections, spec, &store_id).await
}
