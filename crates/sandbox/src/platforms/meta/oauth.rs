//! Meta's rules: the Graph API token endpoint (code exchange and `fb_exchange_token`, no refresh
//! token), `/me`, `/me/accounts` (Pages with their own tokens), `/me/permissions`, `debug_token`
//! (with the app access token only) and Graph-shaped errors.
//!
//! Sources: https://developers.facebook.com/documentation/facebook-login/guides/advanced/manual-flow,
//! https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived,
//! https://developers.facebook.com/docs/facebook-login/guides/access-tokens/debugging,
//! https://developers.facebook.com/docs/graph-api/guides/error-handling

use axum::extract::{RawQuery, State};
use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};

use crate::exchange::{self, bearer_token, reject, TokenCall};
use crate::params::QueryParams;
use crate::params::{query_pairs, query_param};
use crate::platform::{unknown_scopes, Refusal, Rejection};
use crate::spec::{
    AuthorizeOptions, ConsentMemory, PkceRule, PlatformSpec, ScopeSeparator, TEN_MINUTES,
};
use crate::state::{
    random_string, ClientCheck, CodeRedemption, CodeRejection, GrantView, ObjectToken, Simulator,
    TokenInspection, TokenStatus,
};

/// The platform's key.
pub(super) const SLUG: &str = "meta";

/// Meta (Facebook Login for Business). https://developers.facebook.com/documentation/facebook-login/guides/advanced/manual-flow
pub(super) static SPEC: PlatformSpec = PlatformSpec {
    key: SLUG,
    display_name: "Meta (Facebook)",
    authorize_path: "/sandbox/meta/v25.0/dialog/oauth",
    token_path: "/sandbox/meta/v25.0/oauth/access_token",
    revoke_path: "/sandbox/meta/v25.0/me/permissions",
    userinfo_path: "/sandbox/meta/v25.0/me",
    // The Graph token endpoint reads its parameters from the query (GET) or the form (POST).
    token_accepts_get: true,
    // M15: "always specify the version"; the sandbox pins the EN docs' v25.0.
    api_root: "v25.0",
    client_param: "client_id",
    // "a comma or space separated list of Permissions"
    scope_separator: ScopeSeparator::CommaOrSpace,
    scope_required: false,
    // Meta defaults `response_type` to `code`.
    response_type_optional: true,
    pkce: PkceRule::Ignored,
    state_max_len: None,
    callback_reports_scopes: false,
    // A user token carries every permission granted to the app; a declined one is not asked again
    // without auth_type=rerequest (platform-apis.md §1 [M22]).
    consent_memory: ConsentMemory::Always,
    // M18: Graph takes the token as an `access_token` parameter too, which its SDK uses.
    api_token_in_params: true,
    code_lifetime_seconds: TEN_MINUTES,
    code_prefix: "AQ",
    access_prefix: "EAAS",
    refresh_prefix: "",
    account_name: "Sandbox Merchant",
    denial_error: "access_denied",
    denial_reason: Some("user_denied"),
    denial_description: "Permissions error",
};

/// Short-lived user tokens last "hours"; the sandbox uses two.
const SHORT_LIVED_SECONDS: i64 = 7200;
/// The `expires_in` Meta documents for a long-lived token.
const LONG_LIVED_SECONDS: i64 = 5_183_944;

const USER_ID: &str = "1000000001";
const USER_NAME: &str = "Sandbox Merchant";
const USER_PICTURE: &str = "https://sandbox.example/meta/sandbox-merchant.png";
const USER_EMAIL: &str = "merchant@sandbox.example";
/// The app's name as `debug_token` reports it (`application`).
pub(super) const APP_NAME: &str = "Sandbox App";
/// Meta's data-access window: 90 days, counted from the user's last activity with the app
/// (platform-apis.md §1, [M21]); the sandbox counts from the consent.
const DATA_ACCESS_DAYS: i64 = 90;

/// The simulated account's two Pages, each with a fresh page token.
pub(super) fn new_page_grants() -> Vec<ObjectToken> {
    vec![
        ObjectToken {
            id: "2000000001",
            name: "Sandbox Merchant Shop",
            category: "Shopping & retail",
            access_token: format!("EAAP{}", random_string(48)),
            linked: Some(("17841400000000001", "sandboxmerchant")),
        },
        ObjectToken {
            id: "2000000002",
            name: "Sandbox Merchant Outlet",
            category: "Clothing store",
            access_token: format!("EAAP{}", random_string(48)),
            linked: None,
        },
    ]
}

/// Identity, Pages, permissions (and their removal) and `debug_token`; the token route is the
/// shared one.
pub(super) fn routes() -> Router<Simulator> {
    Router::new()
        .route("/sandbox/meta/v25.0/me", get(me))
        .route("/sandbox/meta/v25.0/me/accounts", get(accounts))
        .route(
            "/sandbox/meta/v25.0/me/permissions",
            get(permissions).delete(revoke),
        )
        .route("/sandbox/meta/v25.0/debug_token", get(debug_token))
}

/// A Graph API error: `{"error":{"message","type":"OAuthException","code","error_subcode","fbtrace_id"}}`.
pub(super) fn graph_error(
    status: StatusCode,
    code: u32,
    subcode: Option<u32>,
    message: &str,
) -> Response {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": exchange::trace_id(),
    });
    if let (Some(subcode), Some(object)) = (subcode, error.as_object_mut()) {
        object.insert("error_subcode".to_owned(), json!(subcode));
    }
    exchange::json(status, json!({ "error": error }))
}

fn bad_param(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, 100, None, message)
}

fn bad_client(message: &str) -> Response {
    graph_error(StatusCode::BAD_REQUEST, 101, None, message)
}

/// Code 190 for an unknown, expired or revoked token. Graph answers these with HTTP 400 and a
/// `WWW-Authenticate` header rather than 401.
fn invalid_token() -> Response {
    let mut response = graph_error(
        StatusCode::BAD_REQUEST,
        190,
        Some(463),
        "Error validating access token: the session has expired, was revoked or the token is invalid.",
    );
    response.headers_mut().insert(
        WWW_AUTHENTICATE,
        HeaderValue::from_static("OAuth \"Facebook Platform\" \"invalid_token\""),
    );
    response
}

pub(super) fn fault_body(status: StatusCode) -> Response {
    if status == StatusCode::TOO_MANY_REQUESTS {
        graph_error(status, 4, None, "(#4) Application request limit reached")
    } else {
        graph_error(
            status,
            2,
            None,
            "An unexpected error has occurred. Please retry your request later.",
        )
    }
}

pub(super) fn answer_token(sim: &Simulator, call: &TokenCall) -> Response {
    // The Graph token endpoint reads its parameters from the query (GET) or the form (POST);
    // HTTP Basic is never consulted, so a client relying on it fails as it would at Meta.
    let param = |name: &str| call.body_or_query(name);
    let Some(client_id) = param("client_id") else {
        return bad_client("Missing client_id parameter.");
    };
    let Some(client_secret) = param("client_secret") else {
        return bad_client("Missing client_secret parameter.");
    };
    match sim.check_client(SLUG, client_id, client_secret) {
        ClientCheck::Valid => {}
        ClientCheck::UnknownClient => {
            return bad_client("Error validating application. Invalid application ID.")
        }
        ClientCheck::WrongSecret => return bad_client("Error validating client secret."),
    }
    match param("grant_type") {
        Some("fb_exchange_token") => {
            exchange_for_long_lived(sim, client_id, param("fb_exchange_token"))
        }
        None | Some("authorization_code") => redeem(sim, client_id, call),
        Some(_) => bad_param("Unsupported grant_type."),
    }
}

fn redeem(sim: &Simulator, client_id: &str, call: &TokenCall) -> Response {
    let Some(code) = call.body_or_query("code") else {
        return bad_param("Missing code parameter.");
    };
    let redemption = CodeRedemption {
        code,
        client_id,
        redirect_uri: call.body_or_query("redirect_uri"),
        code_verifier: None,
        check_pkce: false,
        object_tokens: new_page_grants,
    };
    match sim.redeem_code(SLUG, &redemption) {
        Ok(redeemed) => {
            let ttl = sim.access_ttl(SLUG, SHORT_LIVED_SECONDS);
            let access_token = sim.issue_access_token(redeemed.grant_id, ttl);
            exchange::json(
                StatusCode::OK,
                json!({ "access_token": access_token, "token_type": "bearer", "expires_in": ttl }),
            )
        }
        Err(rejection) => code_rejection(rejection),
    }
}

fn code_rejection(rejection: CodeRejection) -> Response {
    let status = StatusCode::BAD_REQUEST;
    match rejection {
        CodeRejection::Reused => graph_error(
            status,
            100,
            Some(36009),
            "This authorization code has been used.",
        ),
        CodeRejection::Expired => graph_error(
            status,
            100,
            Some(36007),
            "This authorization code has expired.",
        ),
        CodeRejection::RedirectMissing => bad_param("Missing redirect_uri parameter."),
        CodeRejection::RedirectMismatch => graph_error(
            status,
            100,
            Some(36008),
            "Error validating verification code. Please make sure your redirect_uri is identical to the one you used in the OAuth dialog request",
        ),
        CodeRejection::Unknown
        | CodeRejection::WrongClient
        | CodeRejection::VerifierMissing
        | CodeRejection::VerifierMismatch
        | CodeRejection::VerifierUnexpected => bad_param("Invalid verification code format."),
    }
}

/// `grant_type=fb_exchange_token`: a valid user token becomes a new long-lived one; an expired
/// token cannot be exchanged ("the user must log in again").
fn exchange_for_long_lived(sim: &Simulator, client_id: &str, token: Option<&str>) -> Response {
    let Some(token) = token else {
        return bad_param("Missing fb_exchange_token parameter.");
    };
    let Some(grant) = sim.authenticate(SLUG, token) else {
        return invalid_token();
    };
    if grant.client_id != client_id {
        return invalid_token();
    }
    let ttl = sim.access_ttl(SLUG, LONG_LIVED_SECONDS);
    let access_token = sim.issue_access_token(grant.grant_id, ttl);
    exchange::json(
        StatusCode::OK,
        json!({ "access_token": access_token, "token_type": "bearer", "expires_in": ttl }),
    )
}

/// Graph accepts the user token as an `access_token` parameter or a bearer header.
fn caller(
    sim: &Simulator,
    headers: &HeaderMap,
    pairs: &[(String, String)],
) -> Result<(String, GrantView), Box<Response>> {
    let Some(token) = query_param(pairs, "access_token")
        .map(str::to_owned)
        .or_else(|| bearer_token(headers))
    else {
        return reject(graph_error(
            StatusCode::BAD_REQUEST,
            2500,
            None,
            "An active access token must be used to query information about the current user.",
        ));
    };
    match sim.authenticate(SLUG, &token) {
        Some(grant) => Ok((token, grant)),
        None => reject(invalid_token()),
    }
}

pub(super) async fn me(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let grant = match caller(&sim, &headers, &pairs) {
        Ok((_, grant)) => grant,
        Err(response) => return *response,
    };
    let fields = query_param(&pairs, "fields").unwrap_or("id,name");
    let (user_id, user_name) = account_identity(grant.account);
    let mut user = Map::new();
    for field in fields.split(',').map(str::trim).filter(|f| !f.is_empty()) {
        let value = match field {
            "id" => json!(user_id),
            "name" => json!(user_name),
            "first_name" => json!("Sandbox"),
            "last_name" => json!("Merchant"),
            "picture" => json!({ "data": {
                "height": 50, "is_silhouette": false, "url": USER_PICTURE, "width": 50
            } }),
            // Graph silently omits fields whose permission was not granted.
            "email" if grant.has_scope("email") => json!(USER_EMAIL),
            "email" => continue,
            other => {
                return bad_param(&format!(
                    "(#100) Tried accessing nonexisting field ({other}) on node type (User)"
                ))
            }
        };
        user.insert(field.to_owned(), value);
    }
    user.entry("id").or_insert(json!(user_id));
    exchange::json(StatusCode::OK, Value::Object(user))
}

/// The id and name of a simulated account: the default merchant, or another one
/// ([`Simulator::set_signed_in_account`]).
pub(super) fn account_identity(account: u32) -> (String, String) {
    if account == 0 {
        (USER_ID.to_owned(), USER_NAME.to_owned())
    } else {
        (
            format!("20000000{account:02}"),
            format!("Other Merchant {account}"),
        )
    }
}

pub(super) async fn accounts(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let grant = match caller(&sim, &headers, &pairs) {
        Ok((_, grant)) => grant,
        Err(response) => return *response,
    };
    // Without pages_show_list Graph lists no Pages at all.
    // Nor does it when the merchant no longer manages any (the sandbox's switch).
    let pages: Vec<Value> = if grant.has_scope("pages_show_list") && !sim.switch(SLUG, PAGES_GONE) {
        sim.object_tokens(grant.grant_id)
            .into_iter()
            .map(|page| {
                let mut value = json!({
                    "id": page.id,
                    "name": page.name,
                    "access_token": page.access_token,
                    "category": page.category,
                    "category_list": [{ "id": "2200", "name": page.category }],
                    "tasks": ["ANALYZE", "ADVERTISE", "MESSAGING", "MODERATE", "CREATE_CONTENT", "MANAGE"],
                });
                if let (Some((ig_id, ig_username)), Some(object)) =
                    (page.linked, value.as_object_mut())
                {
                    object.insert(
                        "instagram_business_account".to_owned(),
                        json!({ "id": ig_id, "username": ig_username }),
                    );
                }
                value
            })
            .collect()
    } else {
        Vec::new()
    };
    exchange::json(
        StatusCode::OK,
        json!({
            "data": pages,
            "paging": { "cursors": { "before": "QVFIUsbxBEFORE", "after": "QVFIUsbxAFTER" } },
        }),
    )
}

async fn permissions(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let grant = match caller(&sim, &headers, &pairs) {
        Ok((_, grant)) => grant,
        Err(response) => return *response,
    };
    let data: Vec<Value> = grant
        .requested_scopes
        .iter()
        .map(|scope| {
            let status = if grant.has_scope(scope) {
                "granted"
            } else {
                "declined"
            };
            json!({ "permission": scope, "status": status })
        })
        .chain(
            grant
                .scopes
                .iter()
                .filter(|scope| !grant.requested_scopes.contains(scope))
                .map(|scope| json!({ "permission": scope, "status": "granted" })),
        )
        .collect();
    exchange::json(StatusCode::OK, json!({ "data": data }))
}

/// `DELETE /me/permissions`: the app loses every permission, so every token of the grant dies.
async fn revoke(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let pairs = query_pairs(query.as_deref());
    let (token, grant) = match caller(&sim, &headers, &pairs) {
        Ok(caller) => caller,
        Err(response) => return *response,
    };
    sim.kill_grant(grant.grant_id);
    sim.forget_consent(SLUG, &grant.client_id, grant.account);
    sim.record_revocation(SLUG, &token);
    exchange::json(StatusCode::OK, json!({ "success": true }))
}

/// `GET /debug_token?input_token={token}&access_token={app-id}|{app-secret}` [M6]: what Meta knows
/// of a token of this app, wrapped in `data`. Only the app access token of a registered app is
/// accepted (a missing one is code 104, a wrong or unparsable one code 190, HTTP 400); the input
/// token is described even when expired or revoked (`is_valid: false` with an `error` inside
/// `data`), and an unknown one, or another app's, is `is_valid: false` with no details.
async fn debug_token(
    State(sim): State<Simulator>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    sim.count(SLUG, DEBUG_TOKEN_CALLS);
    if sim.switch(SLUG, DEBUG_TOKEN_UNAVAILABLE) {
        return fault_body(StatusCode::SERVICE_UNAVAILABLE);
    }
    let pairs = query_pairs(query.as_deref());
    let Some(app_token) = query_param(&pairs, "access_token")
        .map(str::to_owned)
        .or_else(|| bearer_token(&headers))
    else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            104,
            None,
            "An access token is required to request this resource.",
        );
    };
    let Some((app_id, app_secret)) = app_token.split_once('|') else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            190,
            None,
            "Invalid OAuth access token - Cannot parse access token",
        );
    };
    if sim.check_client(SLUG, app_id, app_secret) != ClientCheck::Valid {
        return graph_error(
            StatusCode::BAD_REQUEST,
            190,
            None,
            "Invalid OAuth access token signature.",
        );
    }
    let Some(input) = query_param(&pairs, "input_token") else {
        return bad_param("(#100) The parameter input_token is required");
    };
    let data = match sim.inspect_access_token(SLUG, input) {
        Some(found) if found.grant.client_id == app_id => inspected(&sim, app_id, &found),
        _ => json!({
            "error": { "code": 190, "message": "Invalid OAuth access token." },
            "is_valid": false,
            "scopes": [],
        }),
    };
    exchange::json(StatusCode::OK, json!({ "data": data }))
}

/// `debug_token`'s `data` for a token of this app: times in Unix seconds, the granted scopes, and
/// for the Page permissions the Pages they cover (`granular_scopes[].target_ids`).
fn inspected(sim: &Simulator, app_id: &str, found: &TokenInspection) -> Value {
    let (user_id, _) = account_identity(found.grant.account);
    let page_ids: Vec<&str> = sim
        .object_tokens(found.grant.grant_id)
        .iter()
        .map(|page| page.id)
        .collect();
    let granular: Vec<Value> = found
        .grant
        .scopes
        .iter()
        .map(|scope| {
            if scope.starts_with("pages_") && scope != "pages_show_list" {
                json!({ "scope": scope, "target_ids": page_ids })
            } else {
                json!({ "scope": scope })
            }
        })
        .collect();
    let data_access = found.granted_at + chrono::Duration::days(DATA_ACCESS_DAYS);
    let mut data = json!({
        "app_id": app_id,
        "type": "USER",
        "application": APP_NAME,
        "data_access_expires_at": data_access.timestamp(),
        "expires_at": found.expires_at.timestamp(),
        "is_valid": found.status == TokenStatus::Valid,
        "scopes": found.grant.scopes,
        "granular_scopes": granular,
        "user_id": user_id,
    });
    let error = match found.status {
        TokenStatus::Valid => None,
        TokenStatus::Expired => Some(json!({
            "code": 190,
            "subcode": 463,
            "message": "Error validating access token: Session has expired. The current time is later than the expiry time.",
        })),
        TokenStatus::Revoked => Some(json!({
            "code": 190,
            "subcode": 458,
            "message": "Error validating access token: The user has not authorized application.",
        })),
    };
    if let (Some(error), Some(object)) = (error, data.as_object_mut()) {
        object.insert("error".to_owned(), error);
    }
    data
}

/// The switch that makes `debug_token` fail (see [`Simulator::set_meta_debug_token_unavailable`]).
const DEBUG_TOKEN_UNAVAILABLE: &str = "debug_token_unavailable";
/// The switch that makes `/me/accounts` list no Pages (see [`Simulator::set_meta_pages_gone`]).
const PAGES_GONE: &str = "pages_gone";
/// The counter of `debug_token` calls.
const DEBUG_TOKEN_CALLS: &str = "debug_token_calls";

impl Simulator {
    /// Makes Meta's `debug_token` answer HTTP 503 with Graph's code 2 (`true`), or work again
    /// (`false`); the token endpoint and the Graph API are unaffected.
    pub fn set_meta_debug_token_unavailable(&self, unavailable: bool) {
        self.set_switch(SLUG, DEBUG_TOKEN_UNAVAILABLE, unavailable);
    }

    /// Makes `/me/accounts` list no Pages (`true`), as after the merchant lost access to them, or
    /// list them again (`false`). Their Page tokens still work at the Graph API.
    pub fn set_meta_pages_gone(&self, gone: bool) {
        self.set_switch(SLUG, PAGES_GONE, gone);
    }

    /// How many `debug_token` calls Meta has answered, failed ones included.
    pub fn meta_debug_token_calls(&self) -> usize {
        self.counted(SLUG, DEBUG_TOKEN_CALLS)
    }
}

/// `auth_type=rerequest` asks again for permissions the user declined (platform-apis.md §1
/// [M22]); Meta reads no other option.
pub(super) fn authorize_options(params: &QueryParams) -> Result<AuthorizeOptions, Refusal> {
    Ok(AuthorizeOptions {
        ask_declined_again: params.get("auth_type") == Some("rerequest"),
        ..AuthorizeOptions::default()
    })
}

/// The permissions the sandbox app may ask for: the marketing permissions Facebook Login for
/// Business supports (providers.md §1 [M3]: `pages_show_list` ... `catalog_management`), those the
/// webhooks need (platform-events.md §1c [M32]: `pages_manage_metadata`, `pages_messaging`), those
/// publishing names (platform-apis.md §1 [M19]: `pages_read_user_engagement`), and Facebook Login's
/// defaults and the other business permissions a merchant may configure with `META_SCOPES`
/// (https://developers.facebook.com/docs/permissions: `email`, `public_profile`,
/// `leads_retrieval`, `pages_read_user_content`, `instagram_manage_messages`,
/// `instagram_shopping_tag_products`).
const KNOWN_SCOPES: [&str; 24] = [
    "pages_show_list",
    "pages_read_engagement",
    "pages_manage_posts",
    "pages_manage_engagement",
    "read_insights",
    "publish_video",
    "instagram_basic",
    "instagram_content_publish",
    "instagram_manage_insights",
    "instagram_manage_comments",
    "ads_management",
    "ads_read",
    "pages_manage_ads",
    "business_management",
    "catalog_management",
    "pages_manage_metadata",
    "pages_messaging",
    "pages_read_user_engagement",
    "email",
    "public_profile",
    "leads_retrieval",
    "pages_read_user_content",
    "instagram_manage_messages",
    "instagram_shopping_tag_products",
];

/// Meta's answer to permissions it does not know, which its login dialog states itself: "Invalid
/// Scopes: x. This message is only shown to developers. Users of your app will ignore these
/// permissions if present." (the dialog's text, quoted in e.g. spring-attic/spring-social-samples#46
/// and alixandru/q2a-open-login#83; 3rd-party). Which of the two a person sees depends on their
/// role on the app, which the docs leave to the app: the strict reading is the developer's (an
/// error page, no redirect; the app hears nothing), the lenient one the user's (the dialog asks for
/// the known permissions only).
pub(super) fn check_scopes(scopes: Vec<String>, strict: bool) -> Result<Vec<String>, Rejection> {
    let unknown = unknown_scopes(&scopes, &KNOWN_SCOPES);
    if unknown.is_empty() {
        return Ok(scopes);
    }
    if strict {
        return Err(Rejection::Page(format!(
            "Invalid Scopes: {}. This message is only shown to developers. Users of your app will \
             ignore these permissions if present. Please read the documentation for valid \
             permissions at: https://developers.facebook.com/docs/facebook-login/permissions",
            unknown.join(", ")
        )));
    }
    Ok(scopes
        .into_iter()
        .filter(|scope| KNOWN_SCOPES.contains(&scope.as_str()))
        .collect())
}
