//! The OAuth endpoints: parse the request, check the caller's scope for the operation
//! (`Caller::require`) and its store (`ApiCaller::allow_store`), call the flow, the connect workflow or the lifecycle, record the API
//! caller's outcome in the audit trail, shape the answer. What becomes of a callback's grant
//! (park or record) is the connect workflow's ([`crate::connect`]).

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use secrecy::{ExposeSecret, SecretString};
use std::collections::HashMap;

use super::error::{ApiError, ErrorBody};
use super::extract::{ApiCaller, ApiPath, ApiQuery};
use super::state::{AppState, WebSettings};
use super::views::*;
use crate::access::Operation;
use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::connect::{Completed, ConnectWorkflow};
use crate::domain::StoreId;
use crate::lifecycle::{Assets, Connections, Grants, IssuedToken, Tokens};
use crate::oauth::flow::{cookie_name_for_state, CallbackParams, FlowOrigin};
use crate::oauth::{Flow, OAuthError};
use crate::platforms::error::PlatformError;
use crate::platforms::{PlatformSpec, RevocationOutcome};

/// The OAuth routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/oauth/platforms", get(platforms))
        .route("/api/v1/oauth/connect/{platform}", get(connect))
        .route("/api/v1/oauth/authorize", get(authorize))
        .route("/api/v1/oauth/callback/{platform}", get(callback))
        .route("/api/v1/oauth/disconnect/{platform}", delete(disconnect))
        .route("/api/v1/oauth/connections/{store_id}", get(connections))
        .route("/api/v1/oauth/token/{platform}", get(token))
        .route("/api/v1/oauth/refresh/{platform}", post(refresh))
}

/// Maps an unknown platform to a 404 that lists the known ones.
fn platform_error(flow: &Flow, error: impl Into<OAuthError>) -> ApiError {
    let error: OAuthError = error.into();
    let unknown = matches!(
        error,
        OAuthError::Platform(PlatformError::UnknownPlatform(_))
    );
    let api_error = ApiError::from(error);
    if unknown {
        api_error.with_details(serde_json::json!({ "platforms": flow.catalog().slugs() }))
    } else {
        api_error
    }
}

/// The platform a path names, configured or not; a 404 listing the platforms otherwise.
fn known_platform<'a>(flow: &'a Flow, slug: &str) -> Result<&'a PlatformSpec, ApiError> {
    flow.catalog()
        .require(slug)
        .map_err(|error| platform_error(flow, error))
}

/// Lists the platforms and whether each is configured. Any valid key may: it is the catalog, not a
/// merchant's data.
#[utoipa::path(get, path = "/api/v1/oauth/platforms", tag = "oauth",
    security(("api_key" = [])),
    responses(
        (status = 200, body = PlatformsResponse),
        (status = 401, body = ErrorBody),
    ))]
pub async fn platforms(State(flow): State<Flow>, _caller: ApiCaller) -> Json<PlatformsResponse> {
    Json(PlatformsResponse {
        platforms: flow.catalog().all().map(PlatformView::from).collect(),
    })
}

/// Starts an authorization flow and returns the URL the merchant's browser should open.
#[utoipa::path(get, path = "/api/v1/oauth/connect/{platform}", tag = "oauth",
    security(("api_key" = [])),
    params(("platform" = BuiltInPlatform, Path, description = "a built-in platform or a generic provider"), StoreUserQuery, GrantQuery),
    responses(
        (status = 200, body = AuthorizationUrl),
        (status = 400, body = ErrorBody, description = "missing or malformed parameters"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "store_not_allowed: the key is limited to other stores; missing_scope: the key lacks `connect[:platform]`"),
        (status = 404, body = ErrorBody, description = "unknown platform; details list the platforms"),
        (status = 409, body = ErrorBody, description = "platform not configured"),
        (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(platform = %platform))]
pub async fn connect(
    State(flow): State<Flow>,
    State(audit): State<AuditLog>,
    caller: ApiCaller,
    ApiPath(platform): ApiPath<String>,
    State(connections): State<Connections>,
    ApiQuery(query): ApiQuery<StoreUserQuery>,
    ApiQuery(grant): ApiQuery<GrantQuery>,
) -> Result<Json<AuthorizationUrl>, ApiError> {
    let spec = flow
        .platform(&platform)
        .map_err(|e| platform_error(&flow, e))?;
    caller.require(Operation::Connect, Some(spec.id.as_str()))?;
    caller.allow_store(&audit, "connect", Some(spec.id.as_str()), &query.store_id)?;
    let url = async {
        let missing = grant
            .missing_scopes(&connections, spec, &query.store_id)
            .await?;
        let detail = consent_detail(&missing);
        let url = flow
            .begin(
                &spec.id.clone(),
                &query.store_id,
                &query.user_id,
                FlowOrigin::Api,
                missing,
            )
            .await?;
        Ok::<_, OAuthError>((url, detail))
    }
    .await
    .map_err(ApiError::from);
    let detail = url.as_ref().map_or("", |(_, detail)| *detail);
    let event = AuditEvent::new(Actor::ApiKey(caller.name.clone()), "connect", "started")
        .with_detail(format!("for user {}{detail}", query.user_id));
    record_api(&audit, event, &query.store_id, spec.id.as_str(), &url);
    Ok(Json(AuthorizationUrl {
        authorization_url: url?.0.to_string(),
    }))
}

/// `?grant=missing`: what a connect asks for.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GrantQuery {
    /// `missing` asks only for the permissions the store's connection lacks (its
    /// `missing_scopes`) where the platform supports incremental consent (Google
    /// `include_granted_scopes=true`, Meta `auth_type=rerequest`), and for every scope with a
    /// forced consent screen elsewhere. The granted scopes are then those granted so far.
    /// Without a connection it is a plain connect.
    pub grant: Option<GrantMode>,
}

/// The values of `grant`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrantMode {
    /// Only the missing permissions.
    Missing,
}

impl GrantQuery {
    /// The scopes to ask for: `None` for a full consent, else the connection's missing scopes.
    pub(crate) async fn missing_scopes(
        &self,
        connections: &Connections,
        spec: &PlatformSpec,
        store_id: &StoreId,
    ) -> Result<Option<Vec<String>>, OAuthError> {
        if self.grant != Some(GrantMode::Missing) {
            return Ok(None);
        }
        Ok(connections
            .list(store_id)
            .await?
            .into_iter()
            .find(|c| c.platform == spec.id)
            .map(|c| c.missing_scopes))
    }
}

/// The audit detail of a flow started for the missing permissions.
pub(crate) fn consent_detail(missing: &Option<Vec<String>>) -> &'static str {
    if missing.is_some() {
        ", missing permissions only"
    } else {
        ""
    }
}

/// Records an API call in the audit trail: the event as built on success, else `failure` with the
/// error's stable code as the detail.
fn record_api<T>(
    audit: &AuditLog,
    event: AuditEvent,
    store_id: &StoreId,
    platform: &str,
    result: &Result<T, ApiError>,
) {
    let event = match result {
        Ok(_) => event,
        Err(error) => event.failed(error.code()),
    };
    audit.record(event.with_store(store_id).with_platform(platform));
}

/// `?ticket=..`
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TicketQuery {
    /// The single-use ticket from `authorization_url`.
    pub ticket: Option<String>,
}

/// The first hop in the merchant's browser: binds the flow to this browser with an HttpOnly cookie,
/// then sends it to the platform's consent screen.
#[utoipa::path(get, path = "/api/v1/oauth/authorize", tag = "browser",
    params(TicketQuery),
    responses(
        (status = 303, description = "to the platform's consent screen, or to the dashboard with an error"),
    ))]
pub async fn authorize(
    State(flow): State<Flow>,
    State(web): State<WebSettings>,
    jar: CookieJar,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    first_hop(
        &flow,
        &web,
        jar,
        query.get("ticket").map(String::as_str),
        None,
    )
    .await
}

/// Consumes a ticket, sets the browser-binding cookie and sends the browser to the consent screen;
/// or sends it to the dashboard with the error. Shared by the API's and the page's first hop.
pub async fn first_hop(
    flow: &Flow,
    web: &WebSettings,
    jar: CookieJar,
    ticket: Option<&str>,
    page_session: Option<(&StoreId, &crate::domain::UserId)>,
) -> Response {
    let Some(ticket) = ticket else {
        return web
            .error_redirect("", &OAuthError::TicketInvalid)
            .into_response();
    };
    match flow.start(ticket, page_session).await {
        Ok(start) => {
            let cookie =
                Cookie::build((start.cookie_name, start.binding.expose_secret().to_owned()))
                    .http_only(true)
                    .secure(web.secure_cookies)
                    .same_site(SameSite::Lax)
                    .path("/api/v1/oauth/callback")
                    .max_age(time::Duration::seconds(start.max_age_seconds))
                    .build();
            (
                jar.add(cookie),
                Redirect::to(start.authorization_url.as_str()),
            )
                .into_response()
        }
        Err(error) => {
            tracing::info!(reason = error.reason(), "first hop refused");
            web.error_redirect("", &error).into_response()
        }
    }
}

/// Where the platform sends the merchant back: finishes the flow and redirects to the dashboard with
/// `connection=success` or `connection=error` and a short, safe message.
#[utoipa::path(get, path = "/api/v1/oauth/callback/{platform}", tag = "browser",
    params(
        ("platform" = String, Path),
        ("code" = Option<String>, Query), ("state" = Option<String>, Query),
        ("error" = Option<String>, Query), ("error_description" = Option<String>, Query),
    ),
    responses((status = 303, description = "to DASHBOARD_URL with connection=success or connection=error")))]
#[tracing::instrument(skip_all, fields(platform = %platform))]
pub async fn callback(
    State(flow): State<Flow>,
    State(workflow): State<ConnectWorkflow>,
    State(web): State<WebSettings>,
    jar: CookieJar,
    axum::extract::Path(platform): axum::extract::Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let state = query.get("state").cloned();
    let cookie_name = state.as_deref().map(cookie_name_for_state);
    let binding = cookie_name
        .as_deref()
        .and_then(|name| jar.get(name))
        .map(|c| c.value().to_owned());
    let params = CallbackParams {
        code: query.get("code").map(|c| SecretString::from(c.clone())),
        state,
        error: query.get("error").cloned(),
    };
    let slug = flow
        .catalog()
        .find(&platform)
        .map(|s| s.id.to_string())
        .unwrap_or_default();
    let result = workflow
        .complete(&platform, params, binding.as_deref())
        .await;
    let jar = match cookie_name {
        Some(name) => jar.remove(Cookie::build(name).path("/api/v1/oauth/callback")),
        None => jar,
    };
    match result {
        Ok(Completed::Recorded(connection)) => {
            (jar, web.success_redirect(connection.platform.as_str())).into_response()
        }
        Ok(Completed::Parked { id, platform, .. }) => {
            (jar, web.confirm_redirect(platform.as_str(), &id)).into_response()
        }
        Err(error) => {
            tracing::warn!(reason = error.reason(), error = %error, "callback failed");
            (jar, web.error_redirect(&slug, &error)).into_response()
        }
    }
}

/// Revokes at the platform where possible, then deletes the connection and its tokens.
#[utoipa::path(delete, path = "/api/v1/oauth/disconnect/{platform}", tag = "oauth",
    security(("api_key" = [])),
    params(("platform" = BuiltInPlatform, Path), StoreUserQuery),
    responses(
        (status = 200, body = DisconnectResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "store_not_allowed: the key is limited to other stores; missing_scope: the key lacks `disconnect[:platform]`"),
        (status = 404, body = ErrorBody, description = "unknown platform or no connection"),
        (status = 409, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(platform = %platform))]
pub async fn disconnect(
    State(flow): State<Flow>,
    State(grants): State<Grants>,
    State(audit): State<AuditLog>,
    caller: ApiCaller,
    ApiPath(platform): ApiPath<String>,
    ApiQuery(query): ApiQuery<StoreUserQuery>,
) -> Result<Json<DisconnectResponse>, ApiError> {
    let spec = known_platform(&flow, &platform)?;
    caller.require(Operation::Disconnect, Some(spec.id.as_str()))?;
    caller.allow_store(
        &audit,
        "disconnect",
        Some(spec.id.as_str()),
        &query.store_id,
    )?;
    let outcome = grants
        .disconnect(spec, &query.store_id)
        .await
        .map_err(ApiError::from);
    let response = outcome.map(|outcome| {
        let mut response = disconnect_response(
            &spec.display_name,
            &query.store_id,
            outcome.revocation,
            spec.id.as_str(),
        );
        response.revocation_tokens = serde_json::json!(outcome.tokens);
        response
    });
    let event = AuditEvent::new(Actor::ApiKey(caller.name.clone()), "disconnect", "success");
    let event = match &response {
        Ok(r) => event.with_detail(format!("revocation {}", r.revocation)),
        Err(_) => event,
    };
    record_api(&audit, event, &query.store_id, spec.id.as_str(), &response);
    tracing::info!(store_id = %query.store_id, user_id = %query.user_id, "disconnected");
    Ok(Json(response?))
}

/// Shapes what disconnecting did for the API and the page.
pub(crate) fn disconnect_response(
    name: &str,
    store_id: &StoreId,
    revocation: RevocationOutcome,
    platform: &str,
) -> DisconnectResponse {
    let (kind, revoked, message) = match revocation {
        RevocationOutcome::Revoked => (
            "revoked",
            true,
            format!("Disconnected. {name} confirmed that access was revoked."),
        ),
        RevocationOutcome::Unsupported(text) => ("not_supported", false, format!("Disconnected. {text}")),
        RevocationOutcome::Failed(_) => (
            "failed",
            false,
            format!(
                "Disconnected here, but {name} did not confirm the revocation. You can remove the app in your {name} settings."
            ),
        ),
    };
    DisconnectResponse {
        success: true,
        platform: platform.to_owned(),
        store_id: store_id.to_string(),
        revocation: kind.to_owned(),
        revoked_at_platform: revoked,
        revocation_tokens: serde_json::json!([]),
        message,
    }
}

/// A store's connections, without tokens.
#[utoipa::path(get, path = "/api/v1/oauth/connections/{store_id}", tag = "oauth",
    security(("api_key" = [])),
    params(("store_id" = String, Path, pattern = r"^[A-Za-z0-9_.:@-]{1,128}$")),
    responses(
        (status = 200, body = ConnectionsResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "store_not_allowed: the key is limited to other stores; missing_scope: the key lacks `connections:read`"),
        (status = 503, body = ErrorBody),
    ))]
pub async fn connections(
    State(connections): State<Connections>,
    State(audit): State<AuditLog>,
    caller: ApiCaller,
    ApiPath(store_id): ApiPath<StoreId>,
) -> Result<Json<ConnectionsResponse>, ApiError> {
    // A bare `connections:read` sees every platform; narrowed ones see their platforms only.
    let everything = caller.require(Operation::ConnectionsRead, None);
    if everything.is_err() && !caller.has_any(Operation::ConnectionsRead) {
        everything?;
    }
    caller.allow_store(&audit, "connections", None, &store_id)?;
    // One read of the store's rows (both tables, or the listing cache): shared, never copied.
    let listing = connections.listing(&store_id).await?;
    Ok(Json(ConnectionsResponse {
        store_id: store_id.to_string(),
        connections: listing
            .connections
            .iter()
            .filter(|c| {
                caller
                    .require(Operation::ConnectionsRead, Some(c.platform.as_str()))
                    .is_ok()
            })
            .map(|c| ConnectionView::with_assets(c, &listing.assets, connections.health(c)))
            .collect(),
    }))
}

/// A valid access token for the store's connection, refreshed first when it is about to expire.
/// With `account=<asset id>` of a Meta page (or its Instagram account), that page's token.
#[utoipa::path(get, path = "/api/v1/oauth/token/{platform}", tag = "tokens",
    security(("api_key" = [])),
    params(("platform" = BuiltInPlatform, Path), TokenQuery),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "store_not_allowed: the key is limited to other stores; missing_scope: the key lacks `tokens:read[:platform]`"),
        (status = 404, body = ErrorBody, description = "unknown platform or no connection"),
        (status = 409, body = ErrorBody, description = "EXPIRED, REVOKED or ERROR: the merchant must reconnect"),
        (status = 502, body = ErrorBody, description = "the platform failed and the stored token has expired"),
        (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(platform = %platform))]
pub async fn token(
    State(flow): State<Flow>,
    State(assets): State<Assets>,
    State(audit): State<AuditLog>,
    caller: ApiCaller,
    ApiPath(platform): ApiPath<String>,
    ApiQuery(query): ApiQuery<TokenQuery>,
) -> Result<Response, ApiError> {
    let spec = known_platform(&flow, &platform)?;
    caller.require(Operation::TokensRead, Some(spec.id.as_str()))?;
    caller.allow_store(&audit, "token", Some(spec.id.as_str()), &query.store_id)?;
    let result = account_token(&assets, spec, &query.store_id, query.account.as_deref()).await;
    let event = AuditEvent::new(Actor::ApiKey(caller.name.clone()), "token", "success");
    record_api(&audit, event, &query.store_id, spec.id.as_str(), &result);
    result
}

/// Forces a refresh and returns the new token.
#[utoipa::path(post, path = "/api/v1/oauth/refresh/{platform}", tag = "tokens",
    security(("api_key" = [])),
    params(("platform" = BuiltInPlatform, Path), StoreQuery),
    responses(
        (status = 200, body = TokenResponse),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody, description = "store_not_allowed: the key is limited to other stores; missing_scope: the key lacks `tokens:read[:platform]`"),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody),
        (status = 502, body = ErrorBody), (status = 503, body = ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(platform = %platform))]
pub async fn refresh(
    State(flow): State<Flow>,
    State(tokens): State<Tokens>,
    State(audit): State<AuditLog>,
    caller: ApiCaller,
    ApiPath(platform): ApiPath<String>,
    ApiQuery(query): ApiQuery<StoreQuery>,
) -> Result<Response, ApiError> {
    let spec = known_platform(&flow, &platform)?;
    caller.require(Operation::TokensRead, Some(spec.id.as_str()))?;
    caller.allow_store(&audit, "refresh", Some(spec.id.as_str()), &query.store_id)?;
    let result = issue_token(&tokens, spec, &query.store_id, true).await;
    let event = AuditEvent::new(Actor::ApiKey(caller.name.clone()), "refresh", "success");
    record_api(&audit, event, &query.store_id, spec.id.as_str(), &result);
    result
}

async fn issue_token(
    tokens: &Tokens,
    spec: &PlatformSpec,
    store_id: &StoreId,
    force: bool,
) -> Result<Response, ApiError> {
    let issued = tokens.access_token(spec, store_id, force).await?;
    Ok(token_response(issued, None))
}

/// The token for one of the connection's accounts (a Meta page), or the selection's, or the user's.
async fn account_token(
    assets: &Assets,
    spec: &PlatformSpec,
    store_id: &StoreId,
    account: Option<&str>,
) -> Result<Response, ApiError> {
    let answer = assets.token_for_account(spec, store_id, account).await?;
    let account = answer.account.map(|a| AccountView {
        kind: a.kind,
        id: a.id,
        name: a.name,
    });
    Ok(token_response(answer.token, account))
}

/// A token answer, never cached by anything between us and the caller.
fn token_response(issued: IssuedToken, account: Option<AccountView>) -> Response {
    let body = TokenResponse {
        access_token: issued.access_token.expose_secret().to_owned(),
        token_type: issued.token_type,
        expires_at: issued.expires_at,
        scopes: issued.scopes,
        account_id: issued.account_id,
        account,
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    (headers, Json(body)).into_response()
}

crate::domain::redacted_debug!(TicketQuery);
