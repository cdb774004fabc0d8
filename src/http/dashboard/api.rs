//! The page's JSON calls: the store's platform cards (with the selects of their assets), starting a
//! connection, disconnecting, choosing a default asset (each recorded in the audit trail as the
//! page's user), and the store's recent activity. The store is always the session's.

use std::collections::HashMap;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::session::{DashboardSession, DashboardWriter};
use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::domain::{Connection, ConnectionStatus};
use crate::http::asset_routes::{parse_kind, ApiJson};
use crate::http::error::ApiError;
use crate::http::extract::{ApiPath, ApiQuery};
use crate::http::oauth::{consent_detail, disconnect_response, GrantQuery};
use crate::http::views::SelectionRequest;
use crate::lifecycle::health::Health;
use crate::lifecycle::{Assets, Connections, Grants};
use crate::oauth::flow::FlowOrigin;
use crate::oauth::{Flow, OAuthError};
use crate::platforms::builtin::asset_kinds;
use crate::platforms::PlatformSpec;
use crate::store::StoredAsset;

/// What a card shows, decided here so the page only renders it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CardState {
    /// A usable connection.
    Connected,
    /// The grant ran out: reconnect.
    Expired,
    /// Revoked or failing: reconnect.
    NeedsAttention,
    /// No connection yet: connect.
    NotConnected,
    /// The platform has no credentials here: nothing to do.
    NotConfigured,
}

impl CardState {
    fn of(spec: &PlatformSpec, connection: Option<&Connection>) -> Self {
        match connection.map(|c| c.status) {
            Some(ConnectionStatus::Connected) => Self::Connected,
            Some(ConnectionStatus::Expired) => Self::Expired,
            Some(ConnectionStatus::Revoked | ConnectionStatus::Error) => Self::NeedsAttention,
            // A flow that never finished leaves nothing usable; offer to connect.
            Some(ConnectionStatus::Pending) | None if spec.is_configured() => Self::NotConnected,
            Some(ConnectionStatus::Pending) | None => Self::NotConfigured,
        }
    }
}

/// One platform's card.
#[derive(Debug, Serialize)]
pub struct PlatformCard {
    /// Slug.
    pub platform: String,
    /// Display name.
    pub name: String,
    /// Whether flows can run.
    pub configured: bool,
    /// Served by the built-in sandbox (development).
    pub sandbox: bool,
    /// What the card shows.
    pub state: CardState,
    /// The stored status, when there is a connection.
    pub status: Option<ConnectionStatus>,
    /// The account's display name.
    pub account_name: Option<String>,
    /// The account's id at the platform.
    pub account_id: Option<String>,
    /// The account's picture URL.
    pub account_picture: Option<String>,
    /// When it was connected.
    pub connected_at: Option<DateTime<Utc>>,
    /// When the access token expires (renewed automatically while the grant lasts).
    pub expires_at: Option<DateTime<Utc>>,
    /// Scopes asked for but not granted.
    pub missing_scopes: Vec<String>,
    /// The last error, a short safe text.
    pub last_error: Option<String>,
    /// The connection's health (the API's `health`), when there is a connection.
    pub health: Option<Health>,
    /// A select per kind of asset the merchant chooses a default of (pages, Instagram accounts,
    /// ad accounts...), when connected.
    pub selections: Vec<SelectionGroup>,
}

/// The assets of one kind, for the card's select.
#[derive(Debug, Serialize)]
pub struct SelectionGroup {
    /// The kind (`facebook_page`, ...).
    pub kind: &'static str,
    /// The select's visible label.
    pub label: &'static str,
    /// The choices.
    pub options: Vec<SelectionOption>,
}

/// One choice of a select.
#[derive(Debug, Serialize)]
pub struct SelectionOption {
    /// The asset's id.
    pub id: String,
    /// Its name (the id when it has none).
    pub name: String,
    /// Whether it is the default now.
    pub selected: bool,
}

/// The selects of one connection's assets, in the kinds' order.
fn selections(connection: &Connection, assets: &[StoredAsset]) -> Vec<SelectionGroup> {
    // The kinds a merchant picks a default of: an identity (a creator, a user) is not a choice.
    asset_kinds()
        .into_iter()
        .filter(|kind| kind.selectable)
        .filter_map(|kind| {
            let options: Vec<SelectionOption> = assets
                .iter()
                .filter(|a| a.connection_id == connection.id && a.kind == kind.as_str())
                .map(|a| SelectionOption {
                    id: a.id.clone(),
                    name: a.name.clone().unwrap_or_else(|| a.id.clone()),
                    selected: a.selected,
                })
                .collect();
            (!options.is_empty()).then_some(SelectionGroup {
                kind: kind.as_str(),
                label: kind.label(),
                options,
            })
        })
        .collect()
}

/// The page's data.
#[derive(Debug, Serialize)]
pub(crate) struct DashboardConnections {
    /// The session's store.
    pub store_id: String,
    /// A card per platform, in catalog order.
    pub platforms: Vec<PlatformCard>,
}

/// Where the browser goes to connect.
#[derive(Serialize)]
pub(crate) struct ConnectUrl {
    /// Our first-hop URL; it leads to the platform's consent screen.
    pub url: String,
}

pub(crate) fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Builds the cards for a store's connections.
pub fn cards<'a>(
    catalog: impl Iterator<Item = &'a PlatformSpec>,
    connections: Vec<Connection>,
    assets: &[StoredAsset],
    health: impl Fn(&Connection) -> Health,
) -> Vec<PlatformCard> {
    let mut by_platform: HashMap<String, Connection> = connections
        .into_iter()
        .map(|c| (c.platform.to_string(), c))
        .collect();
    catalog
        .map(|spec| {
            let connection = by_platform.remove(spec.id.as_str());
            let state = CardState::of(spec, connection.as_ref());
            let live = connection.filter(|c| c.status != ConnectionStatus::Pending);
            let selections = match &live {
                Some(c) if state == CardState::Connected => selections(c, assets),
                _ => Vec::new(),
            };
            PlatformCard {
                platform: spec.id.to_string(),
                name: spec.display_name.clone(),
                configured: spec.is_configured(),
                sandbox: spec.sandboxed,
                state,
                status: live.as_ref().map(|c| c.status),
                account_name: live.as_ref().and_then(|c| c.account_name.clone()),
                account_id: live.as_ref().and_then(|c| c.account_id.clone()),
                account_picture: live.as_ref().and_then(|c| c.account_picture.clone()),
                connected_at: live.as_ref().map(|c| c.created_at),
                expires_at: live.as_ref().and_then(|c| c.access_token_expires_at),
                missing_scopes: live
                    .as_ref()
                    .map(|c| c.missing_scopes.clone())
                    .unwrap_or_default(),
                health: live.as_ref().map(&health),
                last_error: live.and_then(|c| c.last_error),
                selections,
            }
        })
        .collect()
}

/// `GET /dashboard/api/connections`: the session's store's cards.
#[tracing::instrument(skip_all, fields(store_id = %session.store_id))]
pub async fn connections(
    session: DashboardSession,
    State(flow): State<Flow>,
    State(connections): State<Connections>,
) -> Result<Response, ApiError> {
    let list = connections.list(&session.store_id).await?;
    let assets = connections.assets(&session.store_id).await?;
    Ok(no_store(Json(DashboardConnections {
        store_id: session.store_id.to_string(),
        platforms: cards(flow.catalog().all(), list, &assets, |c| {
            connections.health(c)
        }),
    })))
}

/// `POST /dashboard/api/connect/{platform}`: starts a flow for the session's store and user and
/// returns the first-hop URL, which the page opens.
#[tracing::instrument(skip_all, fields(%platform, store_id = %writer.0.store_id))]
pub async fn connect(
    writer: DashboardWriter,
    State(flow): State<Flow>,
    State(connections): State<Connections>,
    State(audit): State<AuditLog>,
    ApiPath(platform): ApiPath<String>,
    ApiQuery(grant): ApiQuery<GrantQuery>,
) -> Result<Response, ApiError> {
    let session = writer.0;
    let spec = flow.platform(&platform)?;
    let missing = grant
        .missing_scopes(&connections, spec, &session.store_id)
        .await?;
    let detail = consent_detail(&missing);
    let url = flow
        .begin(
            &spec.id.clone(),
            &session.store_id,
            &session.user_id,
            FlowOrigin::Dashboard,
            missing,
        )
        .await;
    let event = AuditEvent::new(
        Actor::PageUser(session.user_id.to_string()),
        "connect",
        "started",
    );
    let event = if detail.is_empty() {
        event
    } else {
        event.with_detail(detail.trim_start_matches(", "))
    };
    let event = match &url {
        Ok(_) => event,
        Err(error) => event.failed(error.reason()),
    };
    audit.record(
        event
            .with_store(&session.store_id)
            .with_platform(spec.id.as_str()),
    );
    let url = url?;
    tracing::info!(user_id = %session.user_id, "flow started from the dashboard");
    Ok(no_store(Json(ConnectUrl {
        url: url.to_string(),
    })))
}

/// `POST /dashboard/api/disconnect/{platform}`: revokes where possible and deletes the session's
/// store's connection.
#[tracing::instrument(skip_all, fields(%platform, store_id = %writer.0.store_id))]
pub async fn disconnect(
    writer: DashboardWriter,
    State(flow): State<Flow>,
    State(grants): State<Grants>,
    State(audit): State<AuditLog>,
    ApiPath(platform): ApiPath<String>,
) -> Result<Response, ApiError> {
    let session = writer.0;
    let spec = flow.catalog().require(&platform)?;
    let outcome = grants.disconnect(spec, &session.store_id).await;
    let response = outcome.map(|outcome| {
        disconnect_response(
            &spec.display_name,
            &session.store_id,
            outcome.revocation,
            spec.id.as_str(),
        )
    });
    let event = AuditEvent::new(
        Actor::PageUser(session.user_id.to_string()),
        "disconnect",
        "success",
    );
    let event = match &response {
        Ok(r) => event.with_detail(format!("revocation {}", r.revocation)),
        Err(error) => event.failed(error.reason()),
    };
    audit.record(
        event
            .with_store(&session.store_id)
            .with_platform(spec.id.as_str()),
    );
    let response = response?;
    tracing::info!(user_id = %session.user_id, "disconnected from the dashboard");
    Ok(no_store(Json(response)))
}

/// How many entries "Recent activity" shows.
const RECENT_ACTIVITY: usize = 20;

/// The audit operation of a proxied call.
const PROXY_OPERATION: &str = "proxy";

/// One line of "Recent activity": no store id (it is the session's) and nothing secret.
#[derive(Debug, Serialize)]
pub(crate) struct ActivityEntry {
    /// When it happened.
    pub at: DateTime<Utc>,
    /// `api_key`, `page_user` or `system`.
    pub actor_kind: String,
    /// Who: a key's name, a user id, a system task.
    pub actor: String,
    /// What.
    pub operation: String,
    /// On which platform.
    pub platform: Option<String>,
    /// How it ended.
    pub outcome: String,
    /// A short detail.
    pub detail: Option<String>,
}

/// The page's "Recent activity".
#[derive(Debug, Serialize)]
pub(crate) struct Activity {
    /// Newest first.
    pub entries: Vec<ActivityEntry>,
}

/// `GET /dashboard/api/activity`: the session's store's last entries of the audit trail.
#[tracing::instrument(skip_all, fields(store_id = %session.store_id))]
pub async fn activity(
    session: DashboardSession,
    State(audit): State<AuditLog>,
) -> Result<Response, ApiError> {
    let page = audit
        .page(
            &session.store_id,
            DateTime::UNIX_EPOCH,
            None,
            RECENT_ACTIVITY,
        )
        .await
        .map_err(OAuthError::Store)?;
    Ok(no_store(Json(Activity {
        entries: page
            .rows
            .into_iter()
            .map(|row| ActivityEntry {
                at: row.at,
                actor_kind: row.actor_kind,
                actor: row.actor,
                // A proxied call's detail holds the path its caller chose (under the platform's
                // API): text the merchant should not be shown as ours. The page says "API call to
                // <platform>" and how it ended; the path stays in the operators' audit trail.
                detail: if row.operation == PROXY_OPERATION {
                    None
                } else {
                    row.detail
                },
                operation: row.operation,
                platform: row.platform,
                outcome: row.outcome,
            })
            .collect(),
    })))
}

/// What choosing a default did.
#[derive(Debug, Serialize)]
pub(crate) struct SelectionSaved {
    /// The kind.
    pub kind: String,
    /// The asset now the default.
    pub id: String,
}

/// `POST /dashboard/api/selection/{platform}` with `{"kind", "id"}`: makes an asset of the
/// session's store's connection the default of its kind.
#[tracing::instrument(skip_all, fields(%platform, store_id = %writer.0.store_id))]
pub async fn select(
    writer: DashboardWriter,
    State(flow): State<Flow>,
    State(assets): State<Assets>,
    ApiPath(platform): ApiPath<String>,
    ApiJson(request): ApiJson<SelectionRequest>,
) -> Result<Response, ApiError> {
    let session = writer.0;
    let spec = flow.catalog().require(&platform)?;
    let kind = parse_kind(&request.kind)?;
    assets
        .select_asset(spec, &session.store_id, kind, &request.id)
        .await?;
    Ok(no_store(Json(SelectionSaved {
        kind: kind.as_str().to_owned(),
        id: request.id,
    })))
}

crate::domain::redacted_debug!(ConnectUrl);
