//! Pinterest: the definition. No quirk hook: Basic authentication, comma scopes and the missing
//! user-token revocation are all data. Sources: `shared/providers.md` §4.

use super::catalog::{
    AccountMapping, ClientAuth, ErrorShape, Pkce, Renewal, Revocation, TokenMethod,
};
use super::{BuiltInPlatform, Endpoints, Mark, Protocol};

// providers.md §4: Basic at the token endpoint, comma scopes, no user-token revocation.
pub(super) const PLATFORM: BuiltInPlatform = BuiltInPlatform {
    slug: "pinterest",
    env_prefix: "PINTEREST",
    client_id_var: "PINTEREST_APP_ID",
    client_secret_var: "PINTEREST_APP_SECRET",
    display_name: "Pinterest",
    mark: Mark {
        letter: "P",
        class: "mark--pinterest",
    },
    endpoints: Endpoints {
        authorize: "https://www.pinterest.com/oauth/",
        token: "https://api.pinterest.com/v5/oauth/token",
        revoke: None,
        userinfo: Some("https://api.pinterest.com/v5/user_account"),
    },
    scopes: &[
        "user_accounts:read",
        "boards:read",
        "boards:write",
        "pins:read",
        "pins:write",
        "ads:read",
        "ads:write",
    ],
    renewal: Renewal::RefreshToken,
    hooks: &[],
    api_base: "https://api.pinterest.com/v5/",
    proxy_auth: super::ProxyAuth::Bearer,
    dead_token: super::DeadToken::PinterestCode2,
    simulated: true,
    protocol: Protocol {
        scope_separator: ",",
        client_id_param: "client_id",
        client_auth: ClientAuth::Basic,
        token_method: TokenMethod::PostForm,
        pkce: Pkce::None,
        authorize_params: &[("response_type", "code")],
        refresh_rotates: true,
        revocation: Revocation::Unsupported(
            "Pinterest does not let apps revoke a user's token. The tokens were deleted here; \
             to withdraw access at Pinterest too, remove the app under Settings > Security and logins > Apps.",
        ),
        errors: ErrorShape::CodeMessage,
        account: AccountMapping {
            query: &[],
            wrapper: &[],
            id: &[&["id"], &["username"]],
            name: &[&["business_name"], &["username"]],
            picture: &[&["profile_image"]],
        },
    },
};
