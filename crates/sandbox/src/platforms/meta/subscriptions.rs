//! A Page's webhook subscriptions for the app, `/{page-id}/subscribed_apps` [M32]: `POST` with
//! `subscribed_fields` subscribes the app to those Page fields, `GET` lists the (current) app's
//! subscription, `DELETE` removes it; and the test observation of every subscription.
//!
//! Strict as Graph: only that Page's own token may call it, from a grant with
//! `pages_manage_metadata` and `pages_show_list` (messaging fields also `pages_messaging`)
//! [M32, M30]; unknown fields are refused. The routes are `api`'s, which parses the parameters.

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{json, Map, Value};

use super::oauth::{graph_error, APP_NAME, SLUG};
use crate::exchange;
use crate::state::{ApiCaller, Simulator};

/// The Page fields an app may subscribe to: the `subscribed_fields` enum of the Page reference
/// (an excerpt: the content, mention and messaging fields) [M32].
const PAGE_FIELDS: [&str; 20] = [
    "feed",
    "mention",
    "messages",
    "messaging_postbacks",
    "messaging_optins",
    "messaging_referrals",
    "message_deliveries",
    "message_reads",
    "message_echoes",
    "message_reactions",
    "ratings",
    "leadgen",
    "videos",
    "live_videos",
    "name",
    "picture",
    "category",
    "description",
    "website",
    "email",
];

/// A Graph error in the "(#100)" shape.
fn bad_param(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, 100, None, message)
}

/// What the call may do: the Page's own token [M32] with the permissions it needs [M32, M30].
/// A user token, or another Page's, is refused with code 210; a Page the caller does not manage
/// does not exist for it (code 100, subcode 33, as Graph words it).
fn check_caller(
    sim: &Simulator,
    caller: &ApiCaller,
    page_id: &str,
    method: &str,
) -> Result<(), Box<Response>> {
    let manages = sim
        .object_tokens(caller.grant.grant_id)
        .iter()
        .any(|page| page.id == page_id);
    if !manages {
        return Err(Box::new(graph_error(
            StatusCode::BAD_REQUEST,
            100,
            Some(33),
            &format!("Unsupported {method} request. Object with ID '{page_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."),
        )));
    }
    if caller.object.as_ref().is_none_or(|page| page.id != page_id) {
        return Err(Box::new(graph_error(
            StatusCode::BAD_REQUEST,
            210,
            None,
            "(#210) A page access token is required to request this resource.",
        )));
    }
    if let Some(missing) = ["pages_manage_metadata", "pages_show_list"]
        .into_iter()
        .find(|scope| !caller.grant.has_scope(scope))
    {
        // The wording is not in the stored docs; the code is Graph's permission code (M4).
        return Err(Box::new(graph_error(
            StatusCode::FORBIDDEN,
            200,
            None,
            &format!("(#200) Requires {missing} permission to manage the object"),
        )));
    }
    Ok(())
}

/// `subscribed_fields` as a comma-separated list or a JSON array of strings.
fn requested_fields(params: &Map<String, Value>) -> Vec<String> {
    match params.get("subscribed_fields") {
        Some(Value::String(list)) => list
            .split(',')
            .map(str::trim)
            .filter(|field| !field.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => Vec::new(),
    }
}

/// `POST /{page-id}/subscribed_apps`: subscribes the app to the Page's `subscribed_fields`
/// (replacing its earlier fields); answers `{"success": true}`.
pub(super) fn subscribe(
    sim: &Simulator,
    caller: &ApiCaller,
    page_id: &str,
    params: &Map<String, Value>,
) -> Response {
    if let Err(refusal) = check_caller(sim, caller, page_id, "post") {
        return *refusal;
    }
    let fields = requested_fields(params);
    if fields.is_empty() {
        return bad_param("(#100) The parameter subscribed_fields is required");
    }
    if let Some((index, field)) = fields
        .iter()
        .enumerate()
        .find(|(_, field)| !PAGE_FIELDS.contains(&field.as_str()))
    {
        return bad_param(&format!(
            "(#100) Param subscribed_fields[{index}] must be one of {{{}}} - got \"{field}\"",
            PAGE_FIELDS.join(", ")
        ));
    }
    let messaging = fields.iter().any(|f| f.starts_with("messag"));
    if messaging && !caller.grant.has_scope("pages_messaging") {
        return graph_error(
            StatusCode::FORBIDDEN,
            200,
            None,
            "(#200) To subscribe to the messages field, one of these permissions is needed: pages_messaging",
        );
    }
    let key = (page_id.to_owned(), caller.grant.client_id.clone());
    sim.with_api(SLUG, |api| api.subscriptions.insert(key, fields));
    exchange::json(StatusCode::OK, json!({ "success": true }))
}

/// `GET /{page-id}/subscribed_apps`: the app's subscription, if any.
pub(super) fn list(sim: &Simulator, caller: &ApiCaller, page_id: &str) -> Response {
    if let Err(refusal) = check_caller(sim, caller, page_id, "get") {
        return *refusal;
    }
    let client_id = caller.grant.client_id.clone();
    let key = (page_id.to_owned(), client_id.clone());
    let fields = sim.with_api(SLUG, |api| api.subscriptions.get(&key).cloned());
    let data: Vec<Value> = fields
        .map(|fields| json!({ "id": client_id, "name": APP_NAME, "subscribed_fields": fields }))
        .into_iter()
        .collect();
    exchange::json(StatusCode::OK, json!({ "data": data }))
}

/// `DELETE /{page-id}/subscribed_apps`: removes the app's subscription; `{"success": true}`.
pub(super) fn unsubscribe(sim: &Simulator, caller: &ApiCaller, page_id: &str) -> Response {
    if let Err(refusal) = check_caller(sim, caller, page_id, "delete") {
        return *refusal;
    }
    let key = (page_id.to_owned(), caller.grant.client_id.clone());
    sim.with_api(SLUG, |api| api.subscriptions.remove(&key));
    exchange::json(StatusCode::OK, json!({ "success": true }))
}

impl Simulator {
    /// Every Page's webhook subscription an app made through `/{page-id}/subscribed_apps`: the
    /// Page id and the subscribed fields, by Page id.
    pub fn meta_page_subscriptions(&self) -> Vec<(String, Vec<String>)> {
        self.with_api(SLUG, |api| {
            api.subscriptions
                .iter()
                .map(|((page, _client), fields)| (page.clone(), fields.clone()))
                .collect()
        })
    }
}
