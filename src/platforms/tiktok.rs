//! TikTok (Login Kit): the definition and its quirk, errors inside a 200 envelope. Sources:
//! `shared/providers.md` §2.

use serde_json::Value;

use super::catalog::{
    AccountMapping, ClientAuth, ErrorShape, Pkce, PlatformSpec, Renewal, Revocation, TokenMethod,
};
use super::error::{scrub, OAuthError};
use super::quirks::Hook;
use super::{BuiltInPlatform, Endpoints, Mark, Protocol};

// providers.md §2: client_key, comma scopes, flat token response, data-wrapped user info.
pub(super) const PLATFORM: BuiltInPlatform = BuiltInPlatform {
    slug: "tiktok",
    env_prefix: "TIKTOK",
    client_id_var: "TIKTOK_CLIENT_KEY",
    client_secret_var: "TIKTOK_CLIENT_SECRET",
    display_name: "TikTok",
    mark: Mark {
        letter: "T",
        class: "mark--tiktok",
    },
    endpoints: Endpoints {
        authorize: "https://www.tiktok.com/v2/auth/authorize/",
        token: "https://open.tiktokapis.com/v2/oauth/token/",
        revoke: Some("https://open.tiktokapis.com/v2/oauth/revoke/"),
        userinfo: Some("https://open.tiktokapis.com/v2/user/info/"),
    },
    scopes: &[
        "user.info.basic",
        "user.info.profile",
        "user.info.stats",
        "video.list",
        "video.publish",
        "video.upload",
    ],
    renewal: Renewal::RefreshToken,
    hooks: &[Hook::TikTokEnvelopeError],
    api_base: "https://open.tiktokapis.com/v2/",
    proxy_auth: super::ProxyAuth::Bearer,
    dead_token: super::DeadToken::TikTokCode,
    simulated: true,
    protocol: Protocol {
        scope_separator: ",",
        client_id_param: "client_key",
        client_auth: ClientAuth::RequestBody,
        token_method: TokenMethod::PostForm,
        // The web flow documents no PKCE; desktop PKCE uses hex, not RFC 7636 (providers.md T1, T11).
        pkce: Pkce::None,
        authorize_params: &[("response_type", "code")],
        refresh_rotates: true,
        revocation: Revocation::Form {
            authenticate: true,
            hint: false,
        },
        errors: ErrorShape::Rfc6749,
        account: AccountMapping {
            query: &[("fields", "open_id,union_id,avatar_url,display_name")],
            wrapper: &["data", "user"],
            id: &[&["open_id"]],
            name: &[&["display_name"]],
            picture: &[&["avatar_url"]],
        },
    },
};

/// TikTok's API answers failures inside an envelope, `error.code` other than `"ok"`, sometimes with
/// HTTP 200. <https://developers.tiktok.com/doc/tiktok-api-v2-error-handling>
pub(super) fn check_envelope(spec: &PlatformSpec, body: &Value) -> Result<(), OAuthError> {
    let code = body
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str);
    match code {
        None | Some("ok") => Ok(()),
        Some(code) => Err(OAuthError::PlatformRejected {
            platform: spec.id.clone(),
            code: scrub(code),
            description: body
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(scrub)
                .unwrap_or_default(),
            permanent: code == "access_token_invalid",
            revoked: false,
        }),
    }
}
