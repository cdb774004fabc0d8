//! Pinterest: the definition and asset discovery (boards, ad accounts). No OAuth quirk: Basic
//! authentication, comma scopes and the missing user-token revocation are all data. Sources:
//! `shared/providers.md` §4, `shared/platform-apis.md` §4.

use secrecy::SecretString;
use serde_json::{json, Value};

use super::assets::{self, Asset, AssetKind, AssetSet};
use super::catalog::{
    AccountMapping, ClientAuth, ErrorShape, Pkce, PlatformSpec, ReconnectRule, Renewal, Revocation,
    TokenMethod,
};
use super::client::PlatformClient;
use super::error::OAuthError;
use super::quirks::Hook;
use super::{BuiltInPlatform, ConsentMode, Endpoints, Mark, Protocol};

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
    // providers.md §4: continuous refresh tokens have a "60-day expiration, refreshable
    // indefinitely", and every token response carries `refresh_token_expires_in`/`_at` [P1].
    reconnect: ReconnectRule::RefreshTokenExpiry,
    hooks: &[Hook::PinterestAssets],
    api_base: "https://api.pinterest.com/v5/",
    proxy_auth: super::ProxyAuth::Bearer,
    dead_token: super::DeadToken::PinterestCode2,
    api_secret_header: None,
    simulated: true,
    protocol: Protocol {
        scope_separator: ",",
        client_id_param: "client_id",
        client_auth: ClientAuth::Basic,
        token_method: TokenMethod::PostForm,
        pkce: Pkce::None,
        authorize_params: &[("response_type", "code")],
        // platform-apis.md §4: no incremental authorization documented, and no parameter that forces
        // the consent screen: all scopes again.
        missing_consent: ConsentMode::Full { params: &[] },
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

/// The most pages of one listing followed (`bookmark`), so that a listing cannot run for ever.
const MAX_PAGES: usize = 10;

/// Reads a Pinterest listing (`items`), following `bookmark` until it is null.
async fn listing(
    client: &PlatformClient,
    spec: &PlatformSpec,
    access_token: &SecretString,
    edge: &str,
) -> Result<Vec<Value>, OAuthError> {
    let mut all = Vec::new();
    let mut bookmark: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut query = vec![("page_size", "100")];
        if let Some(bookmark) = bookmark.as_deref() {
            query.push(("bookmark", bookmark));
        }
        let url = assets::api_url(spec, edge)?;
        let body = client.get_api(spec, url, access_token, &query).await?;
        all.extend(assets::items(&body, "items").cloned());
        bookmark = assets::text(&body, "bookmark");
        if bookmark.is_none() {
            break;
        }
    }
    Ok(all)
}

/// Pinterest's assets: the boards (`GET /v5/boards`) and the ad accounts (`GET /v5/ad_accounts`).
/// <https://developers.pinterest.com/docs/api/v5/boards-list>,
/// <https://developers.pinterest.com/docs/api/v5/ad_accounts-list>
pub(super) async fn discover_assets(
    client: &PlatformClient,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<AssetSet, OAuthError> {
    let mut set = AssetSet::default();
    for board in listing(client, spec, access_token, "boards").await? {
        if let Some(id) = assets::text(&board, "id") {
            set.assets.push(Asset {
                kind: AssetKind::PinterestBoard,
                id,
                name: assets::text(&board, "name"),
                details: json!({ "privacy": board.get("privacy") }),
            });
        }
    }
    for account in listing(client, spec, access_token, "ad_accounts").await? {
        if let Some(id) = assets::text(&account, "id") {
            set.assets.push(Asset {
                kind: AssetKind::PinterestAdAccount,
                id,
                name: assets::text(&account, "name"),
                details: json!({
                    "country": account.get("country"),
                    "currency": account.get("currency"),
                }),
            });
        }
    }
    Ok(set)
}
