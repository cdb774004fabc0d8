//! Pinterest's rules: HTTP Basic required at the token endpoint, a new refresh token (with its
//! expiry) on every refresh, a flat `/v5/user_account`, no revocation of user tokens, and
//! `{"code","message"}` errors.
//!
//! Sources: https://developers.pinterest.com/docs/getting-started/set-up-authentication-and-authorization/,
//! pinterest/api-description `v5/openapi.json`

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use chrono::Duration;
use serde_json::json;

use crate::exchange::{self, bearer_token, check_basic, reject, TokenCall};
use crate::platform::{unknown_scopes, Rejection};
use crate::spec::{ConsentMemory, PkceRule, PlatformSpec, ScopeSeparator, TEN_MINUTES};
use crate::state::{
    no_object_tokens, ClientCheck, CodeRedemption, CodeRejection, RefreshLookup, Simulator,
};

/// The platform's key.
pub(super) const SLUG: &str = "pinterest";

/// The simulated user's id (the same for every simulated account).
pub(super) const USER_ID: &str = "sbx-pin-1";

/// Pinterest API v5. https://developers.pinterest.com/docs/getting-started/set-up-authentication-and-authorization/
pub(super) static SPEC: PlatformSpec = PlatformSpec {
    key: SLUG,
    display_name: "Pinterest",
    authorize_path: "/sandbox/pinterest/oauth/",
    token_path: "/sandbox/pinterest/v5/oauth/token",
    revoke_path: "/sandbox/pinterest/v5/oauth/token/revoke",
    userinfo_path: "/sandbox/pinterest/v5/user_account",
    token_accepts_get: false,
    // P1: `https://api.pinterest.com/v5`.
    api_root: "v5",
    client_param: "client_id",
    scope_separator: ScopeSeparator::Comma,
    scope_required: true,
    response_type_optional: false,
    pkce: PkceRule::Ignored,
    state_max_len: None,
    callback_reports_scopes: false,
    consent_memory: ConsentMemory::Forgotten,
    api_token_in_params: false,
    code_lifetime_seconds: TEN_MINUTES,
    code_prefix: "sbxpin",
    access_prefix: "pina_",
    refresh_prefix: "pinr_",
    account_name: "Sandbox Merchant (@sandboxmerchant)",
    denial_error: "access_denied",
    denial_reason: None,
    denial_description: "The user denied the request.",
};

const ACCESS_SECONDS: i64 = 2_592_000;
const REFRESH_SECONDS: i64 = 5_184_000;

/// Revocation and the user account; the token route is the shared one.
pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/sandbox/pinterest/v5/oauth/token/revoke", post(revoke))
        .route("/sandbox/pinterest/v5/user_account", get(user_account))
}

/// A Pinterest error: `{"code": <int>, "message": "..."}`.
pub(super) fn error(status: StatusCode, code: u32, message: &str) -> Response {
    exchange::json(status, json!({ "code": code, "message": message }))
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, 1, message)
}

fn authentication_failed() -> Response {
    error(StatusCode::UNAUTHORIZED, 2, "Authentication failed.")
}

pub(super) fn fault_body(status: StatusCode) -> Response {
    if status == StatusCode::TOO_MANY_REQUESTS {
        error(status, 8, "Rate limit exceeded. Please try again later.")
    } else {
        error(
            status,
            3,
            "Something went wrong on our end. Sorry about that.",
        )
    }
}

/// Pinterest authenticates the app only by HTTP Basic; credentials in the body do not count.
fn authenticate_client(sim: &Simulator, call: &TokenCall) -> Result<String, Box<Response>> {
    let Some(basic) = &call.basic else {
        return reject(authentication_failed());
    };
    match check_basic(sim, SLUG, basic) {
        ClientCheck::Valid => Ok(basic.client_id.clone()),
        ClientCheck::UnknownClient | ClientCheck::WrongSecret => reject(authentication_failed()),
    }
}

pub(super) fn answer_token(sim: &Simulator, call: &TokenCall) -> Response {
    let client_id = match authenticate_client(sim, call) {
        Ok(client_id) => client_id,
        Err(response) => return *response,
    };
    if !call.form_encoded {
        return bad_request("The request body must be application/x-www-form-urlencoded.");
    }
    match call.body("grant_type") {
        Some("authorization_code") => redeem(sim, &client_id, call),
        Some("refresh_token") => refresh(sim, &client_id, call),
        None => bad_request("Missing request body parameter: grant_type"),
        Some(_) => bad_request("Invalid grant_type."),
    }
}

fn redeem(sim: &Simulator, client_id: &str, call: &TokenCall) -> Response {
    let Some(code) = call.body("code") else {
        return bad_request("Missing request body parameter: code");
    };
    let redemption = CodeRedemption {
        code,
        client_id,
        redirect_uri: call.body("redirect_uri"),
        code_verifier: None,
        check_pkce: false,
        object_tokens: no_object_tokens,
    };
    match sim.redeem_code(SLUG, &redemption) {
        Ok(redeemed) => token_response(sim, redeemed.grant_id, &redeemed.approved.granted_scopes),
        Err(CodeRejection::RedirectMissing) => {
            bad_request("Missing request body parameter: redirect_uri")
        }
        Err(CodeRejection::RedirectMismatch) => {
            bad_request("Invalid redirect_uri: it does not match the one used to obtain the code.")
        }
        Err(_) => bad_request("Invalid authorization code."),
    }
}

/// Every refresh answers with a new refresh token; the old one stays valid until it expires
/// (providers.md P1 leaves its fate open), except in the strict reading, where it dies at once.
fn refresh(sim: &Simulator, client_id: &str, call: &TokenCall) -> Response {
    let Some(refresh_token) = call.body("refresh_token") else {
        return bad_request("Missing request body parameter: refresh_token");
    };
    match sim.refresh_token_state(SLUG, client_id, refresh_token) {
        RefreshLookup::Active(grant) => {
            if sim.switch(SLUG, crate::state::STRICT) {
                sim.retire_refresh_token(refresh_token);
            }
            token_response(sim, grant.grant_id, &grant.scopes)
        }
        RefreshLookup::Unknown | RefreshLookup::Dead | RefreshLookup::Rotated(_) => {
            bad_request("Invalid refresh token.")
        }
    }
}

fn token_response(sim: &Simulator, grant_id: u64, scopes: &[String]) -> Response {
    let ttl = sim.access_ttl(SLUG, ACCESS_SECONDS);
    let access_token = sim.issue_access_token(grant_id, ttl);
    let refresh_token = sim.issue_refresh_token(grant_id, Some(REFRESH_SECONDS));
    let refresh_expires_at = (sim.now() + Duration::seconds(REFRESH_SECONDS)).timestamp();
    exchange::json(
        StatusCode::OK,
        json!({
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": ttl,
            // Requests join scopes with commas, but the response separates them with spaces.
            "scope": exchange::join_scopes(scopes, " "),
            "response_type": "authorization_code",
            "refresh_token": refresh_token,
            "refresh_token_expires_in": REFRESH_SECONDS,
            "refresh_token_expires_at": refresh_expires_at,
        }),
    )
}

async fn user_account(State(sim): State<Simulator>, headers: HeaderMap) -> Response {
    if bearer_token(&headers)
        .and_then(|t| sim.authenticate(SLUG, &t))
        .is_none()
    {
        return authentication_failed();
    }
    exchange::json(
        StatusCode::OK,
        json!({
            "account_type": "BUSINESS",
            "id": USER_ID,
            "username": "sandboxmerchant",
            "profile_image": "https://sandbox.example/pinterest/sandbox-merchant.jpg",
            "website_url": "https://sandbox.example/shop",
            "business_name": "Sandbox Merchant",
        }),
    )
}

/// "Only tokens issued for system users are currently supported": a user token is refused, so a
/// client must not report it revoked.
async fn revoke(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let call = TokenCall::parse(&headers, query.as_deref(), &body);
    if let Err(response) = authenticate_client(&sim, &call) {
        return *response;
    }
    error(
        StatusCode::FORBIDDEN,
        29,
        "Only tokens issued for system users can be revoked.",
    )
}

/// The scopes of API v5 (providers.md §4 [P1]: the OpenAPI's `pinterest_oauth2` scheme, with the
/// `*_secret`, `billing:*`, `biz_access:*` and `user_accounts:write` ones).
const KNOWN_SCOPES: [&str; 18] = [
    "ads:read",
    "ads:write",
    "billing:read",
    "billing:write",
    "biz_access:read",
    "biz_access:write",
    "boards:read",
    "boards:read_secret",
    "boards:write",
    "boards:write_secret",
    "catalogs:read",
    "catalogs:write",
    "pins:read",
    "pins:read_secret",
    "pins:write",
    "pins:write_secret",
    "user_accounts:read",
    "user_accounts:write",
];

/// Pinterest's docs do not say what its authorization page does with an unknown scope (providers.md
/// §4 [P1, P2] list the scopes only), so only the strict reading refuses one, as RFC 6749
/// §4.1.2.1 answers it and as the sandbox answers Pinterest's other authorization errors: a
/// redirect with `error=invalid_scope`.
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
