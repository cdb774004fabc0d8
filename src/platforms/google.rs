//! Google (Google Ads): the definition. No quirk hook: offline access and consent are plain
//! authorization parameters. Sources: `shared/providers.md` §3.

use super::catalog::{
    AccountMapping, ClientAuth, ErrorShape, Pkce, Renewal, Revocation, TokenMethod,
};
use super::{BuiltInPlatform, Endpoints, Mark, Protocol};

// providers.md §3: offline access and consent, or there is no refresh token.
pub(super) const PLATFORM: BuiltInPlatform = BuiltInPlatform {
    slug: "google",
    env_prefix: "GOOGLE",
    client_id_var: "GOOGLE_CLIENT_ID",
    client_secret_var: "GOOGLE_CLIENT_SECRET",
    display_name: "Google Ads",
    mark: Mark {
        letter: "G",
        class: "mark--google",
    },
    endpoints: Endpoints {
        authorize: "https://accounts.google.com/o/oauth2/v2/auth",
        token: "https://oauth2.googleapis.com/token",
        revoke: Some("https://oauth2.googleapis.com/revoke"),
        userinfo: Some("https://openidconnect.googleapis.com/v1/userinfo"),
    },
    scopes: &[
        "openid",
        "email",
        "profile",
        "https://www.googleapis.com/auth/adwords",
    ],
    renewal: Renewal::RefreshToken,
    hooks: &[],
    // platform-apis.md §3: v26 is "the latest active version" in the late-2026 docs.
    api_base: "https://googleads.googleapis.com/v26/",
    proxy_auth: super::ProxyAuth::GoogleAds,
    dead_token: super::DeadToken::Status401,
    simulated: true,
    protocol: Protocol {
        scope_separator: " ",
        client_id_param: "client_id",
        client_auth: ClientAuth::RequestBody,
        token_method: TokenMethod::PostForm,
        pkce: Pkce::S256,
        authorize_params: &[
            ("response_type", "code"),
            ("access_type", "offline"),
            ("prompt", "consent"),
            ("include_granted_scopes", "true"),
        ],
        refresh_rotates: false,
        revocation: Revocation::Form {
            authenticate: false,
            hint: false,
        },
        errors: ErrorShape::Rfc6749,
        account: AccountMapping {
            query: &[],
            wrapper: &[],
            id: &[&["sub"]],
            name: &[&["name"], &["email"]],
            picture: &[&["picture"]],
        },
    },
};
