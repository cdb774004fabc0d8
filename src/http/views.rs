//! The API's JSON shapes. Nothing here holds a token except [`TokenResponse`], the one answer whose
//! purpose is to hand a token to an authenticated backend service.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use crate::domain::{Connection, ConnectionStatus, StoreId, UserId};
use crate::lifecycle::health::Health;
use crate::platforms::{PlatformSpec, Revocation, BUILT_IN};
use crate::store::StoredAsset;

/// The built-in platforms, as the OpenAPI document names them (operators may add generic providers,
/// which the paths accept too). The enum is the table's slugs ([`crate::platforms::BUILT_IN`]).
#[derive(Debug)]
pub struct BuiltInPlatform;

impl PartialSchema for BuiltInPlatform {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "The built-in platforms, as the OpenAPI document names them (operators may add \
                 generic providers, which the paths accept too).",
            ))
            .enum_values(Some(BUILT_IN.iter().map(|platform| platform.slug)))
            .into()
    }
}

impl ToSchema for BuiltInPlatform {}

/// `?user_id=..&store_id=..`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StoreUserQuery {
    /// The merchant's user id.
    #[param(value_type = String, pattern = r"^[A-Za-z0-9_.:@-]{1,128}$")]
    pub user_id: UserId,
    /// The merchant's store id.
    #[param(value_type = String, pattern = r"^[A-Za-z0-9_.:@-]{1,128}$")]
    pub store_id: StoreId,
}

/// `?store_id=..`
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StoreQuery {
    /// The merchant's store id.
    #[param(value_type = String, pattern = r"^[A-Za-z0-9_.:@-]{1,128}$")]
    pub store_id: StoreId,
}

/// Where the merchant's browser should go.
#[derive(Serialize, ToSchema)]
pub struct AuthorizationUrl {
    /// Open this URL in the merchant's browser (redirects and cookies on); it leads to the
    /// platform's consent screen.
    pub authorization_url: String,
}

/// One connection, without tokens.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionView {
    /// Platform slug.
    pub platform: String,
    /// Status.
    pub status: ConnectionStatus,
    /// The platform's account id.
    pub account_id: Option<String>,
    /// The account's display name.
    pub account_name: Option<String>,
    /// The account's picture URL.
    pub account_picture: Option<String>,
    /// The user who connected it.
    pub user_id: String,
    /// When it was connected.
    pub connected_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When the access token expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the grant can no longer be renewed without the merchant.
    pub refresh_expires_at: Option<DateTime<Utc>>,
    /// When it was last refreshed.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// Scopes asked for but not granted.
    pub missing_scopes: Vec<String>,
    /// The last error, as a short text.
    pub last_error: Option<String>,
    /// Platform details (Meta pages, Instagram business accounts).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// The merchant's assets on the platform (pages, Instagram accounts, ad accounts, boards...),
    /// each marked `selected` when it is the default of its kind. Never a token.
    pub assets: Vec<AssetView>,
    /// The connection's health: `healthy`, `refresh_failing`, `expiring`, `missing_scopes` or
    /// `dead`, since when, until when it lasts without the merchant (`reconnect_by`, where the
    /// platform's rules say), the last liveness check and the last error.
    pub health: Health,
}

/// One asset of a connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct AssetView {
    /// `facebook_page`, `instagram_account`, `ad_account`, `google_ads_customer`,
    /// `tiktok_creator`, `pinterest_board`, `pinterest_ad_account` or `x_user`.
    pub kind: String,
    /// The platform's id of it (pass it as `account=` to the token endpoint).
    pub id: String,
    /// Its display name.
    pub name: Option<String>,
    /// Whether it is the connection's default of its kind.
    pub selected: bool,
}

impl From<&StoredAsset> for AssetView {
    fn from(asset: &StoredAsset) -> Self {
        Self {
            kind: asset.kind.clone(),
            id: asset.id.clone(),
            name: asset.name.clone(),
            selected: asset.selected,
        }
    }
}

impl ConnectionView {
    /// The view with the connection's health (`Connections::health`) and assets, picked from a
    /// store's (`assets` may hold other connections' too).
    pub(crate) fn with_assets(
        connection: &Connection,
        assets: &[StoredAsset],
        health: Health,
    ) -> Self {
        let mut view = Self::of(connection, health);
        view.assets = assets
            .iter()
            .filter(|asset| asset.connection_id == connection.id)
            .map(AssetView::from)
            .collect();
        view
    }
}

/// `PUT .../selection`: the asset to make the default of its kind.
#[derive(Debug, Deserialize, ToSchema)]
pub struct SelectionRequest {
    /// The asset's kind (`facebook_page`, ...).
    pub kind: String,
    /// The asset's id.
    pub id: String,
}

/// `?store_id=..&account=..` for the token endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// The merchant's store id.
    #[param(value_type = String, pattern = r"^[A-Za-z0-9_.:@-]{1,128}$")]
    pub store_id: StoreId,
    /// An asset id of the connection (`GET /connections/{store_id}` lists them). For a Meta page,
    /// or the Instagram account linked to one, the answer is that page's token; without it, the
    /// connection's token and the selected account.
    pub account: Option<String>,
}

/// The account a token is for.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AccountView {
    /// The asset's kind.
    pub kind: String,
    /// The asset's id.
    pub id: String,
    /// Its display name.
    pub name: Option<String>,
}

impl ConnectionView {
    fn of(c: &Connection, health: Health) -> Self {
        Self {
            platform: c.platform.to_string(),
            status: c.status,
            account_id: c.account_id.clone(),
            account_name: c.account_name.clone(),
            account_picture: c.account_picture.clone(),
            user_id: c.user_id.to_string(),
            connected_at: c.created_at,
            updated_at: c.updated_at,
            expires_at: c.access_token_expires_at,
            refresh_expires_at: c.refresh_token_expires_at,
            last_refreshed_at: c.last_refreshed_at,
            scopes: c.granted_scopes.clone(),
            missing_scopes: c.missing_scopes.clone(),
            last_error: c.last_error.clone(),
            metadata: c.metadata.clone(),
            assets: Vec::new(),
            health,
        }
    }
}

/// A store's connections.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionsResponse {
    /// The store.
    pub store_id: String,
    /// Its connections.
    pub connections: Vec<ConnectionView>,
}

/// A platform this service can connect.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformView {
    /// Slug used in paths.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Whether flows can run.
    pub configured: bool,
    /// Served by the built-in sandbox (development only).
    pub sandbox: bool,
    /// Declared by the operator as a generic OAuth 2.0 provider.
    pub generic: bool,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// Whether revocation at the platform is possible.
    pub supports_revocation: bool,
}

impl From<&PlatformSpec> for PlatformView {
    fn from(spec: &PlatformSpec) -> Self {
        Self {
            id: spec.id.to_string(),
            name: spec.display_name.clone(),
            configured: spec.is_configured(),
            sandbox: spec.sandboxed,
            generic: spec.generic,
            scopes: spec.scopes.clone(),
            supports_revocation: spec.revoke_url.is_some()
                && !matches!(spec.revocation, Revocation::Unsupported(_)),
        }
    }
}

/// The platforms.
#[derive(Debug, Serialize, ToSchema)]
pub struct PlatformsResponse {
    /// Every platform.
    pub platforms: Vec<PlatformView>,
}

/// What disconnecting did.
#[derive(Debug, Serialize, ToSchema)]
pub struct DisconnectResponse {
    /// The connection is gone.
    pub success: bool,
    /// The platform.
    pub platform: String,
    /// The store.
    pub store_id: String,
    /// `revoked`, `not_supported` or `failed`.
    pub revocation: String,
    /// Whether the platform confirmed revocation.
    pub revoked_at_platform: bool,
    /// Each token revocation attempted: `{"token": "refresh_token", "revoked": false}`, ...
    #[schema(value_type = Vec<Object>)]
    pub revocation_tokens: serde_json::Value,
    /// A sentence for the merchant.
    pub message: String,
}

/// A valid access token.
#[derive(Serialize, ToSchema)]
pub(crate) struct TokenResponse {
    /// The access token.
    pub access_token: String,
    /// Its type.
    pub token_type: String,
    /// When it expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The platform's account id.
    pub account_id: Option<String>,
    /// The account (asset) the token is for: the one asked with `account=`, or else the selected
    /// one, when the connection has assets.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<AccountView>,
}

/// The health report.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct HealthResponse {
    /// `healthy`, `degraded` (Redis down, tokens still served) or `unhealthy` (database down).
    pub status: String,
    /// `growth-engine`.
    pub service: String,
    /// The version.
    pub version: String,
    /// `development` or `production`.
    pub environment: String,
    /// Each dependency's state.
    #[schema(value_type = Object)]
    pub checks: serde_json::Value,
}

crate::domain::redacted_debug!(AuthorizationUrl, TokenResponse);
