//! Google's rules: client authentication in the body or by HTTP Basic, optional PKCE (S256),
//! a refresh token only for `access_type=offline` on first consent (or `prompt=consent`), refresh
//! responses without a new refresh token, revocation of the whole grant, and RFC 6749 errors.
//!
//! Sources: https://developers.google.com/identity/protocols/oauth2/web-server,
//! https://developers.google.com/identity/protocols/oauth2

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Map};

use crate::exchange::{self, bearer_token, check_basic, reject, TokenCall};
use crate::params::QueryParams;
use crate::platform::{unknown_scopes, Refusal, Rejection};
use crate::spec::{
    AuthorizeOptions, ConsentMemory, PkceRule, PlatformSpec, ScopeSeparator, TEN_MINUTES,
};
use crate::state::{
    no_object_tokens, ClientCheck, CodeRedemption, CodeRejection, RefreshLookup, Simulator,
};

/// The platform's key.
pub(super) const SLUG: &str = "google";

/// Google web-server flow. https://developers.google.com/identity/protocols/oauth2/web-server
pub(super) static SPEC: PlatformSpec = PlatformSpec {
    key: SLUG,
    display_name: "Google",
    authorize_path: "/sandbox/google/o/oauth2/v2/auth",
    token_path: "/sandbox/google/token",
    revoke_path: "/sandbox/google/revoke",
    userinfo_path: "/sandbox/google/v1/userinfo",
    token_accepts_get: false,
    // G9: docs crawled late 2026 call v26 "the latest active version".
    api_root: "v26",
    client_param: "client_id",
    scope_separator: ScopeSeparator::Space,
    scope_required: true,
    response_type_optional: false,
    pkce: PkceRule::Optional,
    state_max_len: None,
    callback_reports_scopes: false,
    // "include_granted_scopes=true" (providers.md §3).
    consent_memory: ConsentMemory::OnRequest,
    api_token_in_params: false,
    code_lifetime_seconds: TEN_MINUTES,
    // Real Google codes start with "4/" so a client that forgets to URL-decode the callback breaks.
    code_prefix: "4/0Asbx",
    access_prefix: "ya29.sbx",
    refresh_prefix: "1//sbx",
    account_name: "Sandbox Merchant (merchant@sandbox.example)",
    denial_error: "access_denied",
    denial_reason: None,
    denial_description: "The user denied the request.",
};

const ACCESS_SECONDS: i64 = 3599;

/// Revocation and user info; the token route is the shared one.
pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/sandbox/google/revoke", post(revoke))
        .route("/sandbox/google/v1/userinfo", get(userinfo))
}

/// An RFC 6749 §5.2 error: `{"error","error_description"}`.
fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    exchange::json(
        status,
        json!({ "error": error, "error_description": description }),
    )
}

fn invalid_request(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

fn invalid_grant(description: &str) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

fn invalid_client(description: &str) -> Response {
    oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", description)
}

pub(super) fn fault_body(status: StatusCode) -> Response {
    let error = match status {
        StatusCode::TOO_MANY_REQUESTS => "rate_limit_exceeded",
        StatusCode::SERVICE_UNAVAILABLE => "temporarily_unavailable",
        _ => "internal_failure",
    };
    oauth_error(status, error, "The sandbox was told to fail this request.")
}

/// Google takes the client's credentials from the body or from HTTP Basic; both together must name
/// the same client.
fn authenticate_client(sim: &Simulator, call: &TokenCall) -> Result<String, Box<Response>> {
    let body_id = call.body("client_id");
    if let Some(basic) = &call.basic {
        if body_id.is_some_and(|id| id != basic.client_id) {
            return reject(invalid_client(
                "The client_id in the body and in the Authorization header differ.",
            ));
        }
        return match check_basic(sim, SLUG, basic) {
            ClientCheck::Valid => Ok(basic.client_id.clone()),
            ClientCheck::UnknownClient => reject(invalid_client("The OAuth client was not found.")),
            ClientCheck::WrongSecret => reject(invalid_client("Unauthorized")),
        };
    }
    if call.has_authorization_header {
        return reject(invalid_client("Unsupported Authorization header."));
    }
    let Some(client_id) = body_id else {
        return reject(invalid_request(
            "Could not determine client ID from request.",
        ));
    };
    let Some(client_secret) = call.body("client_secret") else {
        return reject(invalid_request("client_secret is missing."));
    };
    match sim.check_client(SLUG, client_id, client_secret) {
        ClientCheck::Valid => Ok(client_id.to_owned()),
        ClientCheck::UnknownClient => reject(invalid_client("The OAuth client was not found.")),
        ClientCheck::WrongSecret => reject(invalid_client("Unauthorized")),
    }
}

pub(super) fn answer_token(sim: &Simulator, call: &TokenCall) -> Response {
    if !call.form_encoded {
        return invalid_request("The request body must be application/x-www-form-urlencoded.");
    }
    let client_id = match authenticate_client(sim, call) {
        Ok(client_id) => client_id,
        Err(response) => return *response,
    };
    match call.body("grant_type") {
        Some("authorization_code") => redeem(sim, &client_id, call),
        Some("refresh_token") => refresh(sim, &client_id, call),
        None => invalid_request("Missing required parameter: grant_type"),
        Some(other) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {other}"),
        ),
    }
}

fn redeem(sim: &Simulator, client_id: &str, call: &TokenCall) -> Response {
    let Some(code) = call.body("code") else {
        return invalid_request("Missing required parameter: code");
    };
    let redemption = CodeRedemption {
        code,
        client_id,
        redirect_uri: call.body("redirect_uri"),
        code_verifier: call.body("code_verifier"),
        check_pkce: true,
        object_tokens: no_object_tokens,
    };
    let redeemed = match sim.redeem_code(SLUG, &redemption) {
        Ok(redeemed) => redeemed,
        Err(rejection) => {
            return match rejection {
                CodeRejection::RedirectMissing => {
                    invalid_request("Missing required parameter: redirect_uri")
                }
                CodeRejection::RedirectMismatch => oauth_error(
                    StatusCode::BAD_REQUEST,
                    "redirect_uri_mismatch",
                    "Bad Request",
                ),
                CodeRejection::VerifierMissing => invalid_grant("Missing code verifier."),
                CodeRejection::VerifierMismatch => invalid_grant("Invalid code verifier."),
                CodeRejection::VerifierUnexpected => {
                    invalid_grant("code_verifier or verifier is not needed.")
                }
                CodeRejection::Unknown
                | CodeRejection::Reused
                | CodeRejection::Expired
                | CodeRejection::WrongClient => invalid_grant("Malformed auth code."),
            }
        }
    };
    let approved = &redeemed.approved;
    // "The refresh_token is only returned on the first authorization", unless the app asked for
    // consent again with prompt=consent; only offline access ever gets one.
    let first_consent = sim.first_consent(SLUG, client_id);
    let ttl = sim.access_ttl(SLUG, ACCESS_SECONDS);
    let mut body = json!({
        "access_token": sim.issue_access_token(redeemed.grant_id, ttl),
        "expires_in": ttl,
        "token_type": "Bearer",
        "scope": exchange::join_scopes(&approved.granted_scopes, " "),
    });
    if approved.options.offline_access && (first_consent || approved.options.force_consent) {
        let refresh_token = sim.issue_refresh_token(redeemed.grant_id, None);
        if let Some(object) = body.as_object_mut() {
            object.insert("refresh_token".to_owned(), json!(refresh_token));
        }
    }
    exchange::json(StatusCode::OK, body)
}

/// Google does not rotate refresh tokens: the response carries no `refresh_token`.
fn refresh(sim: &Simulator, client_id: &str, call: &TokenCall) -> Response {
    let Some(refresh_token) = call.body("refresh_token") else {
        return invalid_request("Missing required parameter: refresh_token");
    };
    match sim.refresh_token_state(SLUG, client_id, refresh_token) {
        RefreshLookup::Active(grant) => {
            let ttl = sim.access_ttl(SLUG, ACCESS_SECONDS);
            exchange::json(
                StatusCode::OK,
                json!({
                    "access_token": sim.issue_access_token(grant.grant_id, ttl),
                    "expires_in": ttl,
                    "token_type": "Bearer",
                    "scope": exchange::join_scopes(&grant.scopes, " "),
                }),
            )
        }
        RefreshLookup::Unknown | RefreshLookup::Dead | RefreshLookup::Rotated(_) => {
            invalid_grant("Token has been expired or revoked.")
        }
    }
}

/// The Google Account ID (`sub`) of a simulated account: the default merchant, or another one
/// ([`Simulator::set_signed_in_account`]).
pub(super) fn subject(account: u32) -> String {
    match account {
        0 => "100000000000000000001".to_owned(),
        n => format!("2000000000000000000{n:02}"),
    }
}

async fn userinfo(State(sim): State<Simulator>, headers: HeaderMap) -> Response {
    let Some(grant) = bearer_token(&headers).and_then(|t| sim.authenticate(SLUG, &t)) else {
        let mut response = oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_request",
            "Invalid Credentials",
        );
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static(
                "Bearer realm=\"https://accounts.google.com/\", error=\"invalid_token\"",
            ),
        );
        return response;
    };
    let granted = |short: &str, long: &str| grant.has_scope(short) || grant.has_scope(long);
    let mut user = Map::new();
    // Another simulated account (Simulator::set_signed_in_account) has its own subject and name.
    let given = match grant.account {
        0 => "Sandbox".to_owned(),
        n => format!("Other {n}"),
    };
    user.insert("sub".to_owned(), json!(subject(grant.account)));
    // Claims follow the granted scopes, as at Google: no profile scope, no name.
    if granted(
        "profile",
        "https://www.googleapis.com/auth/userinfo.profile",
    ) {
        user.insert("name".to_owned(), json!(format!("{given} Merchant")));
        user.insert("given_name".to_owned(), json!(given));
        user.insert("family_name".to_owned(), json!("Merchant"));
        user.insert(
            "picture".to_owned(),
            json!("https://sandbox.example/google/sandbox-merchant.png"),
        );
    }
    if granted("email", "https://www.googleapis.com/auth/userinfo.email") {
        let email = match grant.account {
            0 => "merchant@sandbox.example".to_owned(),
            n => format!("merchant{n}@sandbox.example"),
        };
        user.insert("email".to_owned(), json!(email));
        user.insert("email_verified".to_owned(), json!(true));
    }
    exchange::json(StatusCode::OK, serde_json::Value::Object(user))
}

/// Revoking either an access or a refresh token revokes the whole grant.
async fn revoke(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let call = TokenCall::parse(&headers, query.as_deref(), &body);
    let Some(token) = call.body_or_query("token") else {
        return invalid_request("Missing required parameter: token");
    };
    match sim.live_grant_of_token(SLUG, token) {
        Some(grant) => {
            sim.kill_grant(grant.grant_id);
            sim.forget_client_consent(SLUG, &grant.client_id);
            sim.record_revocation(SLUG, token);
            exchange::json(StatusCode::OK, json!({}))
        }
        None => oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_token",
            "Token expired or revoked",
        ),
    }
}

/// Google's own authorization options: `access_type` (offline access), `prompt` (consent again)
/// and `include_granted_scopes=true` (providers.md §3).
pub(super) fn authorize_options(params: &QueryParams) -> Result<AuthorizeOptions, Refusal> {
    let (offline_access, force_consent) =
        access_and_prompt(params.get("access_type"), params.get("prompt"))
            .map_err(|(error, description)| (error, description.to_owned()))?;
    Ok(AuthorizeOptions {
        offline_access,
        force_consent,
        include_granted_scopes: params.get("include_granted_scopes") == Some("true"),
        ask_declined_again: false,
    })
}

/// Google's `access_type` and `prompt`: returns (offline, prompt contains consent).
fn access_and_prompt(
    access_type: Option<&str>,
    prompt: Option<&str>,
) -> Result<(bool, bool), (&'static str, &'static str)> {
    let offline = match access_type {
        None | Some("online") => false,
        Some("offline") => true,
        Some(_) => {
            return Err((
                "invalid_request",
                "Invalid access_type: it must be online or offline.",
            ))
        }
    };
    let prompts: Vec<&str> = prompt
        .unwrap_or_default()
        .split(' ')
        .filter(|p| !p.is_empty())
        .collect();
    if prompts
        .iter()
        .any(|p| !matches!(*p, "none" | "consent" | "select_account"))
    {
        return Err(("invalid_request", "Invalid prompt value."));
    }
    if prompts.contains(&"none") {
        // The sandbox always needs the user's click, which prompt=none forbids.
        if prompts.len() > 1 {
            return Err((
                "invalid_request",
                "prompt=none cannot be combined with other values.",
            ));
        }
        return Err(("interaction_required", "User interaction is required."));
    }
    Ok((offline, prompts.contains(&"consent")))
}

/// The scopes the sandbox knows: OpenID Connect's short names and the long ones Google reports them
/// as (providers.md §3 [G4]: `openid profile email`), Google Ads' (providers.md §3 [G3]), and the
/// marketing APIs' a merchant may configure with `GOOGLE_SCOPES` (Merchant Center, Business
/// Profile, Analytics, YouTube; https://developers.google.com/identity/protocols/oauth2/scopes).
/// Google has many more; one the sandbox does not know is refused as an unknown one would be.
const KNOWN_SCOPES: [&str; 13] = [
    "openid",
    "email",
    "profile",
    "https://www.googleapis.com/auth/userinfo.email",
    "https://www.googleapis.com/auth/userinfo.profile",
    "https://www.googleapis.com/auth/adwords",
    "https://www.googleapis.com/auth/content",
    "https://www.googleapis.com/auth/business.manage",
    "https://www.googleapis.com/auth/analytics.readonly",
    "https://www.googleapis.com/auth/youtube",
    "https://www.googleapis.com/auth/youtube.readonly",
    "https://www.googleapis.com/auth/youtube.upload",
    "https://www.googleapis.com/auth/yt-analytics.readonly",
];

/// Google refuses an unknown scope always, strict or not, and on its own page ("Access blocked:
/// Authorization Error", "Error 400: invalid_scope", "Some requested scopes were invalid.
/// {valid=[...], invalid=[...]}"), never redirecting to the app: the refusal is not in the stored
/// docs (G1 lists other authorization-page errors) but every report agrees (markbates/goth#445,
/// taers232c/gamadv-xtd3#388, Grive/grive#7; 3rd-party).
pub(super) fn check_scopes(scopes: Vec<String>) -> Result<Vec<String>, Rejection> {
    let unknown = unknown_scopes(&scopes, &KNOWN_SCOPES);
    if unknown.is_empty() {
        return Ok(scopes);
    }
    let valid: Vec<&str> = scopes
        .iter()
        .map(String::as_str)
        .filter(|scope| KNOWN_SCOPES.contains(scope))
        .collect();
    Err(Rejection::Page(format!(
        "Access blocked: Authorization Error. Error 400: invalid_scope. Some requested scopes were \
         invalid. {{valid=[{}], invalid=[{}]}}",
        valid.join(", "),
        unknown.join(", ")
    )))
}
