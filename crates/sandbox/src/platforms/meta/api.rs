//! Meta's Graph API as the sandbox serves it under `/sandbox/meta/api/v25.0/`: `/me`,
//! `/me/accounts` (Pages with their Page tokens and linked Instagram accounts), `/me/adaccounts`,
//! `/{page-id}`, `/{container-id}` and `/{media-id}` reads, the publishing calls (answered by
//! `super::publishing`: a Page's `feed` and `photos`, Instagram's containers, `media_publish` and
//! `content_publishing_limit`) and a Page's webhook subscriptions (`/{page-id}/subscribed_apps`,
//! answered by `super::subscriptions`).
//!
//! It owns Graph's token errors (HTTP 400, code 190 with subcodes, `WWW-Authenticate`; M4, M23),
//! permission errors (codes 10 and 200; M4, M24), throttling (codes 4 and 80001 with usage
//! headers; M16) and `appsecret_proof` checking (M17, M18). `/me` and `/me/accounts` reuse the
//! handlers of the OAuth side (`super::oauth`).

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CONTENT_TYPE, WWW_AUTHENTICATE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Extension, Router};
use hmac::{Hmac, Mac};
use serde_json::{json, Map, Value};
use sha2::Sha256;

use super::oauth::{accounts, graph_error, me, SLUG, SPEC};
use super::publishing::{self, unknown_object};
use super::subscriptions;
use crate::exchange::{self, reject};
use crate::params::{query_pairs, query_param};
use crate::platform::ApiCall;
use crate::state::{ApiCaller, ApiRateLimit, AppBudgetUsage, Denial, Simulator};

pub(super) fn routes() -> Router<Simulator> {
    let at = |rest: &str| SPEC.api_path(rest);
    Router::new()
        .route(&at("me"), get(me_or_page))
        .route(&at("me/accounts"), get(accounts))
        .route(&at("me/adaccounts"), get(ad_accounts))
        .route(&at("{node}"), get(node))
        .route(
            &at("{node}/{edge}"),
            post(publish).get(read_edge).delete(delete_edge),
        )
}

/// A token error: code 190 with the subcode that says why (M4's table), HTTP 400 and the
/// `WWW-Authenticate` header Graph adds (M23). A request without any token gets code 2500.
pub(super) fn denied(denial: Denial) -> Response {
    let (subcode, message) = match denial {
        Denial::Missing => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                2500,
                None,
                "An active access token must be used to query information about the current user.",
            )
        }
        Denial::Invalid => (467, "Invalid OAuth access token - Cannot parse access token"),
        Denial::Expired => (
            463,
            "Error validating access token: Session has expired. The current time is later than the expiry time.",
        ),
        Denial::Revoked => (
            458,
            "Error validating access token: The user has not authorized application.",
        ),
    };
    let mut response = graph_error(StatusCode::BAD_REQUEST, 190, Some(subcode), message);
    let header = format!("OAuth \"Facebook Platform\" \"invalid_token\" \"{message}\"");
    if let Ok(value) = HeaderValue::from_str(&header) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// A permission error (M4): code 10 for a missing read permission, 200 for publishing and ads.
/// 3rd-party reports put these at HTTP 403 (M24).
fn missing_permission(code: u32, message: &str) -> Response {
    graph_error(StatusCode::FORBIDDEN, code, None, message)
}

/// Throttling (M16): a user token hits the app's Platform limit (code 4, `X-App-Usage` at 100);
/// a Page token hits the Pages Business Use Case limit (code 80001, `X-Business-Use-Case-Usage`).
/// Code 4 was observed as HTTP 403 (M23); clients must key on `error.code`.
pub(super) fn throttled(caller: &ApiCaller, limit: ApiRateLimit) -> Response {
    let mut response = match &caller.object {
        None => graph_error(
            StatusCode::FORBIDDEN,
            4,
            None,
            "(#4) Application request limit reached",
        ),
        Some(_) => graph_error(
            StatusCode::FORBIDDEN,
            80001,
            None,
            "(#80001) There have been too many calls to this Page account. Wait a bit and try again.",
        ),
    };
    usage_headers(caller, response.headers_mut(), Some(limit));
    response
}

/// The usage headers (M16), JSON in a header: `X-App-Usage` for user tokens,
/// `X-Business-Use-Case-Usage` keyed by the Page for Page tokens. `limit` set means "at 100%".
pub(super) fn usage_headers(
    caller: &ApiCaller,
    headers: &mut HeaderMap,
    limit: Option<ApiRateLimit>,
) {
    let percent = if limit.is_some() { 100 } else { 1 };
    let (name, value) = match &caller.object {
        None => (
            "x-app-usage",
            json!({ "call_count": percent, "total_cputime": percent, "total_time": percent }),
        ),
        Some(page) => {
            let minutes = limit.map_or(0, |l| l.retry_after_seconds.div_ceil(60));
            let usage = json!([{
                "type": "pages",
                "call_count": percent,
                "total_cputime": percent,
                "total_time": percent,
                "estimated_time_to_regain_access": minutes,
                "ads_api_access_tier": "development_access",
            }]);
            let mut by_business = Map::new();
            by_business.insert(page.id.to_owned(), usage);
            ("x-business-use-case-usage", Value::Object(by_business))
        }
    };
    if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
        headers.insert(name, value);
    }
}

/// `X-App-Usage` with the app budget's share spent, in percent (M16), the same figure in each
/// of its three fields.
pub(super) fn app_usage_header(headers: &mut HeaderMap, usage: &AppBudgetUsage) {
    let percent = (usage.used * 100)
        .checked_div(usage.budget.calls)
        .unwrap_or(100);
    let value = json!({ "call_count": percent, "total_cputime": percent, "total_time": percent });
    if let Ok(value) = HeaderValue::from_str(&value.to_string()) {
        headers.insert("x-app-usage", value);
    }
}

/// Checks `appsecret_proof` (M17, M18): hex HMAC-SHA256 of the token keyed by the app secret,
/// per token (a Page token has its own proof). A wrong proof is refused; a missing one only when
/// the app requires it.
pub(super) fn check_appsecret_proof(
    sim: &Simulator,
    call: &ApiCall<'_>,
    caller: &ApiCaller,
) -> Result<(), Box<Response>> {
    let (token, query) = (call.token, call.params);
    let refuse = |message: &str| {
        reject(exchange::json(
            StatusCode::BAD_REQUEST,
            json!({ "error": {
                "message": message,
                "type": "GraphMethodException",
                "code": 100,
                "fbtrace_id": exchange::trace_id(),
            } }),
        ))
    };
    let Some(proof) = query_param(query, "appsecret_proof") else {
        if sim.switch(SLUG, REQUIRES_APPSECRET_PROOF) {
            return refuse("API calls from the server require an appsecret_proof argument");
        }
        return Ok(());
    };
    let secret = sim
        .client(SLUG, &caller.grant.client_id)
        .map(|client| client.client_secret.clone())
        .unwrap_or_default();
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return refuse("Invalid appsecret_proof provided in the API argument");
    };
    mac.update(token.as_bytes());
    let valid = hex::decode(proof).is_ok_and(|proof| mac.verify_slice(&proof).is_ok());
    if valid {
        Ok(())
    } else {
        refuse("Invalid appsecret_proof provided in the API argument")
    }
}

/// The `fields` parameter applied to an object: the requested fields it has, else `defaults`.
fn select(object: &Value, fields: Option<&str>, defaults: &[&str]) -> Value {
    let wanted: Vec<&str> = match fields {
        Some(fields) => fields.split(',').map(str::trim).collect(),
        None => defaults.to_vec(),
    };
    let mut out = Map::new();
    for field in wanted.into_iter().chain(["id"]) {
        if let Some(value) = object.get(field) {
            out.insert(field.to_owned(), value.clone());
        }
    }
    Value::Object(out)
}

/// `GET /me`: the user (the OAuth side's handler) or, for a Page token, the Page itself.
async fn me_or_page(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(page) = &caller.object else {
        return me(State(sim), headers, RawQuery(query)).await;
    };
    let pairs = query_pairs(query.as_deref());
    let object = json!({ "id": page.id, "name": page.name });
    exchange::json(
        StatusCode::OK,
        select(&object, query_param(&pairs, "fields"), &["name"]),
    )
}

/// `GET /me/adaccounts` (M24): needs `ads_read` or `ads_management`, answered with code 200.
async fn ad_accounts(
    Extension(caller): Extension<ApiCaller>,
    RawQuery(query): RawQuery,
) -> Response {
    let grant = &caller.grant;
    if !(grant.has_scope("ads_read") || grant.has_scope("ads_management")) {
        return missing_permission(
            200,
            "(#200) Requires either ads_management or ads_read permission",
        );
    }
    let pairs = query_pairs(query.as_deref());
    let account = json!({
        "id": "act_3000000001",
        "account_id": "3000000001",
        "name": "Sandbox Merchant Ads",
        "account_status": 1,
        "currency": "EUR",
    });
    let fields = query_param(&pairs, "fields");
    exchange::json(
        StatusCode::OK,
        json!({
            "data": [select(&account, fields, &["account_id"])],
            "paging": { "cursors": { "before": "QVFIUsbxBEFORE", "after": "QVFIUsbxAFTER" } },
        }),
    )
}

/// `GET /{id}`: one of the caller's Pages (with `instagram_business_account`, M7) or an Instagram
/// container (its `status_code`, M20).
async fn node(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    Path(id): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let fields = query_param(&pairs, "fields");
    if let Some(container) = publishing::container_node(&sim, &caller, &id) {
        return exchange::json(StatusCode::OK, select(&container, fields, &["status_code"]));
    }
    if let Some(published) = publishing::published_node(&sim, &caller, &id) {
        return exchange::json(StatusCode::OK, select(&published, fields, &[]));
    }
    let pages = sim.object_tokens(caller.grant.grant_id);
    let Some(page) = pages.iter().find(|page| page.id == id) else {
        return unknown_object("get", &id);
    };
    let wants_instagram = fields.is_some_and(|f| f.contains("instagram_business_account"));
    if wants_instagram && !caller.grant.has_scope("instagram_basic") {
        return missing_permission(10, "(#10) To use 'Instagram Graph API', your use of this endpoint must be reviewed and approved by Facebook. Requires instagram_basic permission.");
    }
    let mut object = json!({ "id": page.id, "name": page.name });
    if let (Some((ig_id, _)), Some(map)) = (page.linked, object.as_object_mut()) {
        map.insert(
            "instagram_business_account".to_owned(),
            json!({ "id": ig_id }),
        );
    }
    exchange::json(StatusCode::OK, select(&object, fields, &["name"]))
}

/// The parameters of a Graph POST: the query, then a form or JSON body (Graph reads all three).
fn graph_params(query: Option<&str>, headers: &HeaderMap, body: &Bytes) -> Map<String, Value> {
    let mut params = Map::new();
    for (key, value) in query_pairs(query) {
        params.insert(key, Value::String(value));
    }
    let content_type = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let form: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap_or_default();
        for (key, value) in form {
            params.insert(key, Value::String(value));
        }
    } else if content_type.starts_with("application/json") {
        if let Ok(Value::Object(object)) = serde_json::from_slice(body) {
            params.extend(object);
        }
    }
    params.remove("access_token");
    params.remove("appsecret_proof");
    params
}

/// `POST /{node}/{edge}`: the publishing edges (answered by `super::publishing`) and
/// `subscribed_apps`.
async fn publish(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    Path((node, edge)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let params = graph_params(query.as_deref(), &headers, &body);
    match edge.as_str() {
        "feed" => publishing::page_post(&sim, &caller, &node, params),
        "photos" => publishing::page_photo(&sim, &caller, &node, params).await,
        "media" => publishing::ig_container(&sim, &caller, &node, params).await,
        "media_publish" => publishing::ig_publish(&sim, &caller, &node, &params),
        "subscribed_apps" => subscriptions::subscribe(&sim, &caller, &node, &params),
        _ => unknown_object("post", &node),
    }
}

/// `GET /{node}/{edge}`: a Page's `subscribed_apps`, an Instagram account's
/// `content_publishing_limit` (the other edges are routes of their own).
async fn read_edge(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    Path((node, edge)): Path<(String, String)>,
) -> Response {
    match edge.as_str() {
        "subscribed_apps" => subscriptions::list(&sim, &caller, &node),
        "content_publishing_limit" => publishing::publishing_limit(&sim, &caller, &node),
        _ => unknown_object("get", &node),
    }
}

/// `DELETE /{node}/{edge}`: a Page's `subscribed_apps`.
async fn delete_edge(
    State(sim): State<Simulator>,
    Extension(caller): Extension<ApiCaller>,
    Path((node, edge)): Path<(String, String)>,
) -> Response {
    match edge.as_str() {
        "subscribed_apps" => subscriptions::unsubscribe(&sim, &caller, &node),
        _ => unknown_object("delete", &node),
    }
}

/// The switch of an app with *Require App Secret* (see
/// [`Simulator::require_token_proofs`]).
const REQUIRES_APPSECRET_PROOF: &str = crate::state::REQUIRES_TOKEN_PROOF;

impl Simulator {
    /// Makes Meta's API refuse calls without `appsecret_proof`, as an app with *Require App
    /// Secret* does (M17).
    pub fn set_meta_requires_appsecret_proof(&self, required: bool) {
        self.set_switch(SLUG, REQUIRES_APPSECRET_PROOF, required);
    }
}

/// Graph's answer when the gate could not read a form body it needed for the token.
pub(super) fn unreadable_body() -> Response {
    graph_error(
        StatusCode::BAD_REQUEST,
        100,
        None,
        "(#100) The request body could not be read.",
    )
}

/// Graph's answer to an injected server failure: code 2, "temporary issue" (M4: 1 and 2 are
/// transient).
pub(super) fn fault_body(status: StatusCode) -> Response {
    let mut response = graph_error(
        status,
        2,
        None,
        "An unexpected error has occurred. Please retry your request later.",
    );
    *response.status_mut() = status;
    response
}
