//! Pinterest: the definition and asset discovery (boards, ad accounts). No OAuth quirk: Basic
//! authentication, comma scopes and the missing user-token revocation are all data. Sources:
//! `shared/providers.md` §4, `shared/platform-apis.md` §4. Publishing a Pin is `publish`'s.

mod publish;

use crate::platforms::budget::{self, AppUsage};
use secrecy::SecretString;
use serde_json::{json, Value};

use async_trait::async_trait;

use crate::platforms::assets::{Asset, AssetKind, AssetSet, AssetToken};
use crate::platforms::definition::{BuiltInPlatform, Endpoints, EventDefinition, Mark, Protocol};
use crate::platforms::discovery;
use crate::platforms::error::PlatformError;
use crate::platforms::platform::PublishContext;
use crate::platforms::platform::{
    AccountMapping, ClientAuth, ConsentMode, ErrorShape, Pkce, Platform, PlatformHttp,
    PlatformSpec, ReconnectRule, Renewal, Revocation, TokenMethod,
};
use crate::platforms::publish::{PostDraft, PublishFailure, Sent};

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
    behaviour: &Pinterest,
    api_base: "https://api.pinterest.com/v5/",
    api_settings: &[],
    fixed_api_headers: &[],
    asset_kinds: &[BOARD, AD_ACCOUNT],
    foreign_vars: &[],
    events: EventDefinition::NONE,
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

/// A Pinterest board.
const BOARD: AssetKind = AssetKind {
    key: "pinterest_board",
    label: "Default board",
    selectable: true,
    token: AssetToken::Connection,
};

/// A Pinterest ad account.
const AD_ACCOUNT: AssetKind = AssetKind {
    key: "pinterest_ad_account",
    label: "Default ad account",
    selectable: true,
    token: AssetToken::Connection,
};

/// Pinterest's behaviour: its dead-token code, boards and ad accounts as assets.
#[derive(Debug)]
pub(super) struct Pinterest;

#[async_trait]
impl Platform for Pinterest {
    /// 401 with `code` 2 (not 3 or 29, missing scopes / permission) [P1].
    fn is_dead_token(&self, status: u16, body: &[u8]) -> bool {
        status == 401 && serde_json::from_slice::<Value>(body).is_ok_and(|b| b["code"] == 2)
    }

    async fn discover_assets(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Result<AssetSet, PlatformError> {
        discover_assets(http, spec, access_token).await
    }

    /// `x-ratelimit-limit` and `x-ratelimit-remaining`, as Pinterest's answers carry them (the
    /// stored docs do not name them: unverified, so an answer without them reports nothing).
    fn app_usage(&self, headers: &http::HeaderMap) -> AppUsage {
        budget::from_remaining(headers, "x-ratelimit-limit", "x-ratelimit-remaining")
    }

    fn publish_kinds(&self) -> &'static [&'static str] {
        publish::KINDS
    }

    fn check_draft(&self, kind: &str, draft: &PostDraft) -> Result<(), PublishFailure> {
        publish::check_draft(kind, draft)
    }

    async fn send_post(&self, context: &PublishContext<'_>) -> Result<Sent, PublishFailure> {
        publish::send_post(context).await
    }
}

/// The most pages of one listing followed (`bookmark`), so that a listing cannot run for ever.
const MAX_PAGES: usize = 10;

/// Reads a Pinterest listing (`items`), following `bookmark` until it is null.
async fn listing(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
    edge: &str,
) -> Result<Vec<Value>, PlatformError> {
    let mut all = Vec::new();
    let mut bookmark: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut query = vec![("page_size", "100")];
        if let Some(bookmark) = bookmark.as_deref() {
            query.push(("bookmark", bookmark));
        }
        let url = discovery::api_url(spec, edge)?;
        let body = client.get_api(spec, url, access_token, &query).await?;
        all.extend(discovery::items(&body, "items").cloned());
        bookmark = discovery::text(&body, "bookmark");
        if bookmark.is_none() {
            break;
        }
    }
    Ok(all)
}

/// Pinterest's assets: the boards (`GET /v5/boards`) and the ad accounts (`GET /v5/ad_accounts`).
/// <https://developers.pinterest.com/docs/api/v5/boards-list>,
/// <https://developers.pinterest.com/docs/api/v5/ad_accounts-list>
async fn discover_assets(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<AssetSet, PlatformError> {
    let mut set = AssetSet::default();
    for board in listing(client, spec, access_token, "boards").await? {
        if let Some(id) = discovery::text(&board, "id") {
            set.assets.push(Asset {
                kind: BOARD,
                id,
                name: discovery::text(&board, "name"),
                details: json!({ "privacy": board.get("privacy") }),
            });
        }
    }
    for account in listing(client, spec, access_token, "ad_accounts").await? {
        if let Some(id) = discovery::text(&account, "id") {
            set.assets.push(Asset {
                kind: AD_ACCOUNT,
                id,
                name: discovery::text(&account, "name"),
                details: json!({
                    "country": account.get("country"),
                    "currency": account.get("currency"),
                }),
            });
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_scope_401_is_not_a_dead_token() {
        assert!(!Pinterest.is_dead_token(401, br#"{"code":3,"message":"scopes"}"#));
        assert!(Pinterest.is_dead_token(401, br#"{"code":2,"message":"auth"}"#));
        assert!(!Pinterest.is_dead_token(403, br#"{"code":2,"message":"auth"}"#));
    }
}
