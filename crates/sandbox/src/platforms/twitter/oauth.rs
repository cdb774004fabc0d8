//! X's rules: HTTP Basic for the (confidential) client, mandatory PKCE, 30-second codes, a refresh
//! token only with `offline.access`, rotating refresh tokens whose reuse kills the whole token
//! family, `/2/users/me` wrapped in `data`, and problem-JSON API errors.
//!
//! Sources: https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code,
//! https://docs.x.com/fundamentals/authentication/oauth-2-0/user-access-token,
//! PLhery/node-twitter-api-v2#496 (family revocation on reuse, third-party report)

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map, Value};

use crate::exchange::{self, bearer_token, check_basic, reject, TokenCall};
use crate::platform::{unknown_scopes, Rejection};
use crate::spec::{ConsentMemory, PkceRule, PlatformSpec, ScopeSeparator};
use crate::state::{
    no_object_tokens, ClientCheck, CodeRedemption, CodeRejection, RefreshLookup, Simulator,
};

/// The platform's key.
pub(super) const SLUG: &str = "twitter";

/// The simulated user's id (the same for every simulated account).
pub(super) const USER_ID: &str = "1000000000000000001";

/// X OAuth 2.0 with PKCE. https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code
pub(super) static SPEC: PlatformSpec = PlatformSpec {
    key: SLUG,
    display_name: "X (Twitter)",
    authorize_path: "/sandbox/twitter/i/oauth2/authorize",
    token_path: "/sandbox/twitter/2/oauth2/token",
    revoke_path: "/sandbox/twitter/2/oauth2/revoke",
    userinfo_path: "/sandbox/twitter/2/users/me",
    token_accepts_get: false,
    // X11: `https://api.x.com/2/`.
    api_root: "2",
    client_param: "client_id",
    scope_separator: ScopeSeparator::Space,
    scope_required: true,
    response_type_optional: false,
    // "PKCE is mandatory": only the authorization code with PKCE and refresh grants exist.
    pkce: PkceRule::Required,
    state_max_len: Some(500),
    callback_reports_scopes: false,
    consent_memory: ConsentMemory::Forgotten,
    api_token_in_params: false,
    // "The code expires after 30 seconds."
    code_lifetime_seconds: 30,
    code_prefix: "sbxX",
    access_prefix: "sbxXat",
    refresh_prefix: "sbxXrt",
    account_name: "Sandbox Merchant (@sandboxmerchant)",
    denial_error: "access_denied",
    denial_reason: None,
    denial_description: "The user denied the request.",
};

const ACCESS_SECONDS: i64 = 7200;

/// Revocation and `/2/users/me`; the token route is the shared one.
pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/sandbox/twitter/2/oauth2/revoke", post(revoke))
        .route("/sandbox/twitter/2/users/me", get(users_me))
}

/// A token-endpoint error: `{"error","error_description"}`.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    exchange::json(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn missing_authorization() -> Response {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "unauthorized_client",
        "Missing valid authorization header",
    )
}

/// An API error in problem-JSON form (RFC 7807).
pub(super) fn problem(status: StatusCode, title: &str, extra: Option<Value>) -> Response {
    let mut body = json!({
        "title": title,
        "type": "about:blank",
        "status": status.as_u16(),
        "detail": title,
    });
    if let (Some(Value::Object(extra)), Some(object)) = (extra, body.as_object_mut()) {
        object.extend(extra);
    }
    (
        status,
        [(CONTENT_TYPE, "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

pub(super) fn fault_body(status: StatusCode) -> Response {
    let title = if status == StatusCode::TOO_MANY_REQUESTS {
        "Too Many Requests"
    } else {
        "Service Unavailable"
    };
    problem(status, title, None)
}

/// X's clients here are all confidential: HTTP Basic is required; a `client_id` in the body is
/// tolerated when it names the same client (X's own SDK sends both).
fn authenticate_client(sim: &Simulator, call: &TokenCall) -> Result<String, Box<Response>> {
    let Some(basic) = &call.basic else {
        return reject(missing_authorization());
    };
    if check_basic(sim, SLUG, basic) != ClientCheck::Valid {
        return reject(missing_authorization());
    }
    if call
        .body("client_id")
        .is_some_and(|id| id != basic.client_id)
    {
        return reject(invalid_request(
            "Value passed for the client id was invalid.",
        ));
    }
    Ok(basic.client_id.clone())
}

pub(super) fn answer_token(sim: &Simulator, call: &TokenCall) -> Response {
    let client_id = match authenticate_client(sim, call) {
        Ok(client_id) => client_id,
        Err(response) => return *response,
    };
    if !call.form_encoded {
        return invalid_request("The request body must be application/x-www-form-urlencoded.");
    }
    match call.body("grant_type") {
        Some("authorization_code") => redeem(sim, &client_id, call),
        Some("refresh_token") => refresh(sim, &client_id, call),
        None => invalid_request("Missing required parameter [grant_type]."),
        Some(_) => invalid_request("Value passed for the grant type was invalid."),
    }
}

fn redeem(sim: &Simulator, client_id: &str, call: &TokenCall) -> Response {
    let Some(code) = call.body("code") else {
        return invalid_request("Missing required parameter [code].");
    };
    let redemption = CodeRedemption {
        code,
        client_id,
        redirect_uri: call.body("redirect_uri"),
        code_verifier: call.body("code_verifier"),
        check_pkce: true,
        object_tokens: no_object_tokens,
    };
    match sim.redeem_code(SLUG, &redemption) {
        Ok(redeemed) => token_response(sim, redeemed.grant_id, &redeemed.approved.granted_scopes),
        Err(rejection) => invalid_request(match rejection {
            CodeRejection::RedirectMissing => "Missing required parameter [redirect_uri].",
            CodeRejection::RedirectMismatch => {
                "Value passed for the redirect uri did not match the uri of the authorization code."
            }
            CodeRejection::VerifierMissing => "Missing required parameter [code_verifier].",
            CodeRejection::VerifierMismatch | CodeRejection::VerifierUnexpected => {
                "Value passed for the code verifier did not match the code challenge."
            }
            CodeRejection::Unknown
            | CodeRejection::Reused
            | CodeRejection::Expired
            | CodeRejection::WrongClient => "Value passed for the authorization code was invalid.",
        }),
    }
}

/// Refresh tokens rotate; presenting one that was already rotated is treated as theft and ends
/// the whole family, including the newest refresh token and its access tokens.
fn refresh(sim: &Simulator, client_id: &str, call: &TokenCall) -> Response {
    let Some(refresh_token) = call.body("refresh_token") else {
        return invalid_request("Missing required parameter [refresh_token].");
    };
    match sim.refresh_token_state(SLUG, client_id, refresh_token) {
        RefreshLookup::Active(grant) => {
            sim.retire_refresh_token(refresh_token);
            token_response(sim, grant.grant_id, &grant.scopes)
        }
        RefreshLookup::Rotated(grant_id) => {
            sim.kill_grant(grant_id);
            invalid_request("Value passed for the token was invalid.")
        }
        RefreshLookup::Unknown | RefreshLookup::Dead => {
            invalid_request("Value passed for the token was invalid.")
        }
    }
}

fn token_response(sim: &Simulator, grant_id: u64, scopes: &[String]) -> Response {
    let ttl = sim.access_ttl(SLUG, ACCESS_SECONDS);
    let mut body = json!({
        "token_type": "bearer",
        "expires_in": ttl,
        "access_token": sim.issue_access_token(grant_id, ttl),
        "scope": exchange::join_scopes(scopes, " "),
    });
    // "If this scope is not passed, we will not generate a refresh token."
    if scopes.iter().any(|s| s == "offline.access") {
        let refresh_token = sim.issue_refresh_token(grant_id, None);
        if let Some(object) = body.as_object_mut() {
            object.insert("refresh_token".to_owned(), json!(refresh_token));
        }
    }
    exchange::json(StatusCode::OK, body)
}

/// The optional `user.fields` X knows, with the sandbox account's values (`None`: known but empty).
fn user_field(field: &str) -> Option<Option<Value>> {
    let value = match field {
        "profile_image_url" => json!("https://sandbox.example/twitter/sandbox-merchant_normal.jpg"),
        "description" => json!("A simulated merchant."),
        "created_at" => json!("2020-01-01T00:00:00.000Z"),
        "protected" => json!(false),
        "verified" => json!(false),
        "url" => json!("https://sandbox.example/shop"),
        "id"
        | "name"
        | "username"
        | "location"
        | "entities"
        | "pinned_tweet_id"
        | "public_metrics"
        | "verified_type"
        | "most_recent_tweet_id" => return Some(None),
        _ => return None,
    };
    Some(Some(value))
}

pub(super) async fn users_me(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(grant) = bearer_token(&headers).and_then(|t| sim.authenticate(SLUG, &t)) else {
        return problem(StatusCode::UNAUTHORIZED, "Unauthorized", None);
    };
    // /2/users/me needs both tweet.read and users.read.
    if !(grant.has_scope("users.read") && grant.has_scope("tweet.read")) {
        return problem(StatusCode::FORBIDDEN, "Forbidden", None);
    }
    let pairs: Vec<(String, String)> = query
        .as_deref()
        .and_then(|q| serde_urlencoded::from_str(q).ok())
        .unwrap_or_default();
    let mut user = Map::new();
    user.insert("id".to_owned(), json!(USER_ID));
    user.insert("name".to_owned(), json!("Sandbox Merchant"));
    user.insert("username".to_owned(), json!("sandboxmerchant"));
    let requested = pairs
        .iter()
        .find(|(key, _)| key == "user.fields")
        .map(|(_, value)| value.as_str())
        .unwrap_or_default();
    for field in requested.split(',').filter(|f| !f.is_empty()) {
        match user_field(field) {
            Some(Some(value)) => {
                user.insert(field.to_owned(), value);
            }
            Some(None) => {}
            None => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "Invalid Request",
                    Some(json!({
                        "detail": "One or more parameters to your request was invalid.",
                        "errors": [{
                            "parameters": { "user.fields": [field] },
                            "message": format!("The `user.fields` query parameter value [{field}] is not one of the allowed values"),
                        }],
                    })),
                )
            }
        }
    }
    exchange::json(StatusCode::OK, json!({ "data": user }))
}

/// Revokes the one token presented (access or refresh); unknown tokens are answered the same way
/// (RFC 7009 §2.2) but not recorded as revoked.
async fn revoke(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let call = TokenCall::parse(&headers, query.as_deref(), &body);
    let client_id = match authenticate_client(&sim, &call) {
        Ok(client_id) => client_id,
        Err(response) => return *response,
    };
    let Some(token) = call.body("token") else {
        return invalid_request("Missing required parameter [token].");
    };
    if sim.revoke_single_token(SLUG, &client_id, token) {
        sim.record_revocation(SLUG, token);
    }
    exchange::json(StatusCode::OK, json!({ "revoked": true }))
}

/// The scopes of OAuth 2.0 user context: the authorization-code page's table (providers.md §5
/// [X2]: `tweet.read` ... `media.write`) and the Ads API's (providers.md §5 [X3]: `ads.read`,
/// `ads.write`).
const KNOWN_SCOPES: [&str; 24] = [
    "tweet.read",
    "tweet.write",
    "tweet.moderate.write",
    "users.email",
    "users.read",
    "follows.read",
    "follows.write",
    "offline.access",
    "space.read",
    "mute.read",
    "mute.write",
    "like.read",
    "like.write",
    "list.read",
    "list.write",
    "block.read",
    "block.write",
    "bookmark.read",
    "bookmark.write",
    "dm.read",
    "dm.write",
    "media.write",
    "ads.read",
    "ads.write",
];

/// X's docs do not say what its authorization page does with an unknown scope ([X2] lists the
/// scopes, and its own example URL asks for `account.follows.read`, which the list lacks), so only
/// the strict reading refuses one, as RFC 6749 §4.1.2.1 answers it and as the sandbox answers X's
/// other authorization errors: a redirect with `error=invalid_scope`.
pub(super) fn check_scopes(scopes: Vec<String>, strict: bool) -> Result<Vec<String>, Rejection> {
    let unknown = unknown_scopes(&scopes, &KNOWN_SCOPES);
    if !strict || unknown.is_empty() {
        return Ok(scopes);
    }
    Err(Rejection::Redirect((
        "invalid_scope",
        format!("Unknown scope: {} (strict sandbox).", unknown.join(", ")),
    )))
}
