//! LinkedIn's OAuth rules: the 3-legged authorization code flow (30-minute single-use codes, no
//! PKCE on the web flow, known scopes only, `user_cancelled_authorize` on cancel), client
//! credentials in the form body only, 60-day access tokens, a new scope set ending the earlier
//! tokens, refresh tokens for partner apps only whose 365-day life runs from the first grant and
//! never slides, revocation, introspection, and RFC 6749 errors with LinkedIn's wording.
//!
//! Facts and their sources are in `/work/shared/linkedin.md` (cited as "fact N"):
//! https://learn.microsoft.com/en-us/linkedin/shared/authentication/authorization-code-flow,
//! https://learn.microsoft.com/en-us/linkedin/shared/authentication/programmatic-refresh-tokens,
//! https://learn.microsoft.com/en-us/linkedin/shared/authentication/token-introspection

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::exchange::{self, reject, TokenCall};
use crate::platform::Refusal;
use crate::spec::{ConsentMemory, PkceRule, PlatformSpec, ScopeSeparator};
use crate::state::{
    no_object_tokens, ClientCheck, CodeRedemption, CodeRejection, RefreshLookup, Simulator,
    TokenStatus,
};

/// The platform's key.
pub(super) const SLUG: &str = "linkedin";

/// "Currently, all access tokens are issued with a 60-day lifespan" (fact 10).
const ACCESS_SECONDS: i64 = 5_184_000;
/// Refresh tokens live one year from the first grant (facts 18, 19).
const REFRESH_SECONDS: i64 = 31_536_000;
/// "The authorization code is only valid for 30 minutes" (fact 7).
const CODE_SECONDS: i64 = 1800;

/// The scopes the sandbox app may request: the self-serve products' and the Advertising and
/// Community Management APIs' (facts 32 to 34). Any other is `unauthorized_scope_error` (fact 8).
const KNOWN_SCOPES: [&str; 14] = [
    "openid",
    "profile",
    "email",
    "w_member_social",
    "r_basicprofile",
    "r_1st_connections_size",
    "r_organization_admin",
    "rw_organization_admin",
    "w_organization_social",
    "r_organization_social",
    "r_ads",
    "rw_ads",
    "r_ads_reporting",
    "r_marketing_leadgen_automation",
];

/// LinkedIn's member authorization flow, mirrored under `/sandbox/linkedin/`.
pub(super) static SPEC: PlatformSpec = PlatformSpec {
    key: SLUG,
    display_name: "LinkedIn",
    authorize_path: "/sandbox/linkedin/oauth/v2/authorization",
    token_path: "/sandbox/linkedin/oauth/v2/accessToken",
    revoke_path: "/sandbox/linkedin/oauth/v2/revoke",
    // The OpenID user info lives on the API host: `https://api.linkedin.com/v2/userinfo` (fact 31).
    userinfo_path: "/sandbox/linkedin/api/v2/userinfo",
    token_accepts_get: false,
    // The versioned API base `https://api.linkedin.com/rest/` (fact 36).
    api_root: "rest",
    client_param: "client_id",
    // Documented space-delimited; LinkedIn's JS SDK and Postman guide send commas (fact 4).
    scope_separator: ScopeSeparator::CommaOrSpace,
    scope_required: true,
    response_type_optional: false,
    // No code_challenge on the web flow; PKCE is a separate native-client endpoint (facts 15, 16).
    pkce: PkceRule::Ignored,
    state_max_len: None,
    callback_reports_scopes: false,
    consent_memory: ConsentMemory::Forgotten,
    api_token_in_params: false,
    code_lifetime_seconds: CODE_SECONDS,
    code_prefix: "AQTsbx",
    access_prefix: "AQVsbx",
    refresh_prefix: "AQXsbx",
    account_name: "Sandbox Merchant",
    // Cancel or failure: `error=user_cancelled_authorize` with a description and the state (fact 7).
    denial_error: "user_cancelled_authorize",
    denial_reason: None,
    denial_description: "The user cancelled the authorization",
};

/// The switch of an app that is not a refresh-token partner (see
/// [`Simulator::set_linkedin_partner_mode`]); off, the sandbox default, means a partner app.
const NOT_A_PARTNER: &str = "not_a_refresh_token_partner";

impl Simulator {
    /// Makes the sandbox LinkedIn app an approved refresh-token partner (`true`, the default) or a
    /// self-serve app (`false`): then no code exchange returns a refresh token and the
    /// `refresh_token` grant is refused (facts 1, 17).
    pub fn set_linkedin_partner_mode(&self, partner: bool) {
        self.set_switch(SLUG, NOT_A_PARTNER, !partner);
    }
}

/// Revocation and introspection; the token route is the shared one and the user info is an API
/// route.
pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/sandbox/linkedin/oauth/v2/revoke", post(revoke))
        .route(
            "/sandbox/linkedin/oauth/v2/introspectToken",
            post(introspect),
        )
}

/// Refuses scopes outside [`KNOWN_SCOPES`] (fact 8: "a scope not covered by a product of the app"),
/// strict or not: LinkedIn's documentation lists the refusal (fact 8), so nothing is left open.
pub(super) fn check_scopes(scopes: &[String]) -> Result<(), Refusal> {
    match scopes
        .iter()
        .find(|scope| !KNOWN_SCOPES.contains(&scope.as_str()))
    {
        Some(scope) => Err((
            "unauthorized_scope_error",
            format!("Scope \"{scope}\" is not authorized for your application"),
        )),
        None => Ok(()),
    }
}

/// An RFC 6749 §5.2 error: `{"error","error_description"}` (fact 13).
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    exchange::json(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// "A required parameter "x" is missing" (fact 13).
fn missing(name: &str) -> Response {
    invalid_request(&format!("A required parameter \"{name}\" is missing"))
}

/// A wrong client id or secret. LinkedIn's wording is not in the stored docs (unverified); the
/// status follows introspection's "401 invalid client secret" (fact 26).
fn invalid_client() -> Response {
    oauth_error(
        StatusCode::UNAUTHORIZED,
        "invalid_client",
        "Client authentication failed",
    )
}

/// The answer to an injected failure: the token endpoint's RFC 6749 shape, with the code that
/// fits the status.
pub(super) fn fault_body(status: StatusCode) -> Response {
    let error = if status == StatusCode::SERVICE_UNAVAILABLE {
        "temporarily_unavailable"
    } else {
        "server_error"
    };
    oauth_error(status, error, "The sandbox was told to fail this request.")
}

/// A form parameter, or the error naming it as missing.
fn required<'a>(call: &'a TokenCall, name: &str) -> Result<&'a str, Box<Response>> {
    match call.body(name).filter(|value| !value.is_empty()) {
        Some(value) => Ok(value),
        None => reject(missing(name)),
    }
}

/// LinkedIn reads the client's credentials from the form body only (fact 9): an
/// `Authorization: Basic` header is not consulted, so a client relying on it is told that
/// `client_id` is missing, as it would be at LinkedIn.
fn authenticate_client<'a>(sim: &Simulator, call: &'a TokenCall) -> Result<&'a str, Box<Response>> {
    let client_id = required(call, "client_id")?;
    let client_secret = required(call, "client_secret")?;
    match sim.check_client(SLUG, client_id, client_secret) {
        ClientCheck::Valid => Ok(client_id),
        ClientCheck::UnknownClient | ClientCheck::WrongSecret => reject(invalid_client()),
    }
}

pub(super) fn answer_token(sim: &Simulator, call: &TokenCall) -> Response {
    let answer = required(call, "grant_type").and_then(|grant_type| {
        let client_id = authenticate_client(sim, call)?;
        Ok(match grant_type {
            "authorization_code" => redeem(sim, client_id, call),
            "refresh_token" => refresh(sim, client_id, call),
            _ => oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "The grant_type is not supported",
            ),
        })
    });
    answer.unwrap_or_else(|refusal| *refusal)
}

fn redeem(sim: &Simulator, client_id: &str, call: &TokenCall) -> Response {
    let (code, redirect_uri) = match (required(call, "code"), required(call, "redirect_uri")) {
        (Ok(code), Ok(redirect_uri)) => (code, redirect_uri),
        (Err(refusal), _) | (_, Err(refusal)) => return *refusal,
    };
    let redemption = CodeRedemption {
        code,
        client_id,
        redirect_uri: Some(redirect_uri),
        code_verifier: None,
        check_pkce: false,
        object_tokens: no_object_tokens,
    };
    let redeemed = match sim.redeem_code(SLUG, &redemption) {
        Ok(redeemed) => redeemed,
        // A used code is gone, as an unknown one (fact 13).
        Err(CodeRejection::Unknown | CodeRejection::Reused) => {
            return invalid_request(
                "Unable to retrieve access token: authorization code not found",
            )
        }
        Err(_) => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "invalid_redirect_uri",
                "Unable to retrieve access token: appid/redirect uri/code verifier does not match authorization code. Or authorization code expired. Or external member binding exists",
            )
        }
    };
    // "If you request a different scope than the previously granted scope, all the previous
    // access tokens are invalidated" (fact 12); the same scopes again leave them working.
    sim.kill_grants_with_other_scopes(SLUG, redeemed.grant_id);
    let refresh_token =
        is_partner(sim).then(|| sim.issue_refresh_token(redeemed.grant_id, Some(REFRESH_SECONDS)));
    token_response(
        sim,
        redeemed.grant_id,
        &redeemed.approved.granted_scopes,
        refresh_token.as_deref(),
    )
}

fn is_partner(sim: &Simulator) -> bool {
    !sim.switch(SLUG, NOT_A_PARTNER)
}

/// `grant_type=refresh_token` (facts 19 to 23): a new access token, never outliving the refresh
/// token, which comes back unchanged with the seconds it has left (no rotation is documented).
fn refresh(sim: &Simulator, client_id: &str, call: &TokenCall) -> Response {
    let refresh_token = match required(call, "refresh_token") {
        Ok(token) => token,
        Err(refusal) => return *refusal,
    };
    if !is_partner(sim) {
        // Only approved partners may refresh (fact 17); LinkedIn's exact answer to others is not
        // in the stored docs, so the sandbox uses RFC 6749's code for a grant type the client may
        // not use.
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "The application is not allowed to use programmatic refresh tokens",
        );
    }
    match sim.refresh_token_state(SLUG, client_id, refresh_token) {
        RefreshLookup::Active(grant) => {
            token_response(sim, grant.grant_id, &grant.scopes, Some(refresh_token))
        }
        RefreshLookup::Unknown | RefreshLookup::Dead | RefreshLookup::Rotated(_) => {
            invalid_request(
                "The provided authorization grant or refresh token is invalid, expired or revoked",
            )
        }
    }
}

/// The token response (facts 10, 11, 20): `access_token`, `expires_in`, `scope` as a comma list
/// (as introspection and the JS SDK give it), and for a partner the refresh token with its
/// remaining life. The access token never outlives the refresh token (fact 19).
fn token_response(
    sim: &Simulator,
    grant_id: u64,
    scopes: &[String],
    refresh_token: Option<&str>,
) -> Response {
    let now = sim.now();
    let refresh_left = refresh_token
        .and_then(|token| sim.refresh_token_expiry(token))
        .map(|expiry| seconds_until(expiry, now));
    let ttl = sim.access_ttl(SLUG, ACCESS_SECONDS);
    let ttl = refresh_left.map_or(ttl, |left| ttl.min(left));
    let mut body = Map::new();
    body.insert(
        "access_token".to_owned(),
        json!(sim.issue_access_token(grant_id, ttl)),
    );
    body.insert("expires_in".to_owned(), json!(ttl));
    if let (Some(token), Some(left)) = (refresh_token, refresh_left) {
        body.insert("refresh_token".to_owned(), json!(token));
        body.insert("refresh_token_expires_in".to_owned(), json!(left));
    }
    body.insert(
        "scope".to_owned(),
        json!(exchange::join_scopes(scopes, ",")),
    );
    exchange::json(StatusCode::OK, Value::Object(body))
}

fn seconds_until(at: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    (at - now).num_seconds().max(0)
}

/// `POST /oauth/v2/revoke` with `client_id`, `client_secret`, `token` in the form (fact 27,
/// 3rd-party): the token stops working; an unknown token is answered the same way (RFC 7009 §2.2)
/// but not recorded as revoked.
async fn revoke(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let call = TokenCall::parse(&headers, query.as_deref(), &body);
    let client_id = match authenticate_client(&sim, &call) {
        Ok(client_id) => client_id,
        Err(refusal) => return *refusal,
    };
    let token = match required(&call, "token") {
        Ok(token) => token,
        Err(refusal) => return *refusal,
    };
    if sim.revoke_single_token(SLUG, client_id, token) {
        sim.record_revocation(SLUG, token);
    }
    StatusCode::OK.into_response()
}

/// `POST /oauth/v2/introspectToken` (facts 25, 26): `active`, `status`, `scope` (comma list),
/// `client_id`, `created_at`, `expires_at`, `authorized_at` (epoch seconds), `auth_type` `3L`.
/// An unknown token is a 400; another app's token is 200 with `active: false`. Refresh tokens are
/// not introspected (unverified at LinkedIn), so they count as unknown.
async fn introspect(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let call = TokenCall::parse(&headers, query.as_deref(), &body);
    let client_id = match required(&call, "client_id") {
        Ok(client_id) => client_id,
        Err(refusal) => return *refusal,
    };
    let client_secret = match required(&call, "client_secret") {
        Ok(secret) => secret,
        Err(refusal) => return *refusal,
    };
    match sim.check_client(SLUG, client_id, client_secret) {
        ClientCheck::Valid => {}
        ClientCheck::UnknownClient => return invalid_request("Invalid client id"),
        ClientCheck::WrongSecret => return invalid_client(),
    }
    let token = match required(&call, "token") {
        Ok(token) => token,
        Err(refusal) => return *refusal,
    };
    let Some(found) = sim.inspect_access_token(SLUG, token) else {
        return invalid_request("Invalid token");
    };
    if found.grant.client_id != client_id {
        return exchange::json(StatusCode::OK, json!({ "active": false }));
    }
    let status = match found.status {
        TokenStatus::Valid => "active",
        TokenStatus::Expired => "expired",
        TokenStatus::Revoked => "revoked",
    };
    exchange::json(
        StatusCode::OK,
        json!({
            "active": found.status == TokenStatus::Valid,
            "status": status,
            "scope": exchange::join_scopes(&found.grant.scopes, ","),
            "client_id": client_id,
            "created_at": found.issued_at.timestamp(),
            "expires_at": found.expires_at.timestamp(),
            "authorized_at": found.granted_at.timestamp(),
            "auth_type": "3L",
        }),
    )
}
