//! The platform layer, at the bottom of the core: the table of built-in platforms, the catalog
//! resolved from it and the operator's settings, the HTTP client that speaks to platforms, their
//! quirks, the discovery of the merchant's assets (`assets`, hooks in each platform module), and
//! the core's error type.
//!
//! The table ([`BUILT_IN`]) is the one list of built-in platforms: settings, the catalog, the page's
//! cards, the OpenAPI document and the tests all derive theirs from it. Each platform is one module
//! (`meta.rs`, `tiktok.rs`, ...) holding its definition, with its sources in `shared/providers.md`,
//! and the bodies of its quirk hooks. Adding a platform is adding a module and a table line (and a
//! [`quirks::Hook`] variant for a genuine quirk).
//!
//! This layer knows nothing of flows, connections, HTTP routing or SQL: the flow (`oauth`) and the
//! lifecycle sit above it, side by side.

pub mod api;
pub mod assets;
pub mod catalog;
pub mod client;
pub mod error;
pub mod quirks;
pub mod settings;

mod google;
mod meta;
mod pinterest;
mod tiktok;
mod twitter;

use std::collections::BTreeMap;

use secrecy::SecretString;

pub use assets::{Asset, AssetKind, AssetSet};
pub use catalog::{
    AccountMapping, Catalog, ClientAuth, ConsentMode, ConsentRequest, ErrorShape, Pkce,
    PlatformSpec, ReconnectRule, Renewal, Revocation, TokenMethod,
};
pub use client::{AccountInfo, PlatformClient, RevocationOutcome, TokenGrant};
pub use error::OAuthError;

use crate::domain::{PlatformId, StoreId, UserId};
pub use api::{DeadToken, ProxyAuth};
use quirks::Hook;

/// One line of the table of built-in platforms.
#[derive(Debug)]
pub struct BuiltInPlatform {
    /// The slug used in paths and settings.
    pub slug: &'static str,
    /// The prefix of its override variables (`<PREFIX>_TOKEN_URL`, `<PREFIX>_SCOPES`, ...).
    pub env_prefix: &'static str,
    /// The variable holding the client id (`META_APP_ID`, `TIKTOK_CLIENT_KEY`, ...).
    pub client_id_var: &'static str,
    /// The variable holding the client secret.
    pub client_secret_var: &'static str,
    /// The name shown to merchants.
    pub display_name: &'static str,
    /// The page's lettered mark.
    pub mark: Mark,
    /// The real OAuth endpoints (settings may override each).
    pub endpoints: Endpoints,
    /// The scopes requested by default (`<PREFIX>_SCOPES` overrides them).
    pub scopes: &'static [&'static str],
    /// How a grant is renewed.
    pub renewal: Renewal,
    /// Until when a grant lasts without the merchant (health's `reconnect_by`), with its source.
    pub reconnect: ReconnectRule,
    /// The platform's genuine quirks, applied in order at their stage.
    pub hooks: &'static [Hook],
    /// The base URL of the platform's API, version pinned, for calls made with its tokens
    /// (`shared/platform-apis.md`, "At a glance").
    pub api_base: &'static str,
    /// How the authenticated proxy injects the token into calls to `api_base`.
    pub proxy_auth: ProxyAuth,
    /// How the API says the token is dead (what a forced refresh can fix).
    pub dead_token: DeadToken,
    /// A secret header every call to the API carries, from a setting (Google Ads'
    /// `developer-token` from `GOOGLE_ADS_DEVELOPER_TOKEN`).
    pub api_secret_header: Option<ApiSecretHeader>,
    /// Whether the built-in sandbox simulates it (and stands in when it has no credentials).
    pub simulated: bool,
    /// How it speaks OAuth, beyond endpoints and scopes.
    pub protocol: Protocol,
}

/// A secret header of a platform's API calls and the setting that holds its value.
#[derive(Debug, Clone, Copy)]
pub struct ApiSecretHeader {
    /// The variable (`GOOGLE_ADS_DEVELOPER_TOKEN`); a secret, also read from `<VAR>_FILE`.
    pub var: &'static str,
    /// The header (`developer-token`).
    pub header: &'static str,
}

/// The lettered mark the connections page shows on a platform's card.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    /// The letter.
    pub letter: &'static str,
    /// The CSS class that colours it (`mark--meta`, ...).
    pub class: &'static str,
}

/// A built-in platform's OAuth endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    /// Authorization endpoint.
    pub authorize: &'static str,
    /// Token endpoint.
    pub token: &'static str,
    /// Revocation endpoint, if the platform has one.
    pub revoke: Option<&'static str>,
    /// User-info endpoint.
    pub userinfo: Option<&'static str>,
}

/// How a built-in platform speaks OAuth: the parts of its [`PlatformSpec`] settings never change.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// How scopes are joined in the authorization request.
    pub scope_separator: &'static str,
    /// The name of the client-id parameter (`client_key` at TikTok).
    pub client_id_param: &'static str,
    /// Token endpoint client authentication.
    pub client_auth: ClientAuth,
    /// Token endpoint method.
    pub token_method: TokenMethod,
    /// PKCE.
    pub pkce: Pkce,
    /// Further fixed authorization parameters.
    pub authorize_params: &'static [(&'static str, &'static str)],
    /// How "Grant missing permissions" asks again (incremental where the platform supports it).
    pub missing_consent: ConsentMode,
    /// Whether a refresh invalidates the previous refresh token.
    pub refresh_rotates: bool,
    /// How to revoke.
    pub revocation: Revocation,
    /// Error body shape.
    pub errors: ErrorShape,
    /// Where the account's fields are.
    pub account: AccountMapping,
}

/// The built-in platforms, in display order.
pub static BUILT_IN: [&BuiltInPlatform; 5] = [
    &meta::PLATFORM,
    &tiktok::PLATFORM,
    &google::PLATFORM,
    &pinterest::PLATFORM,
    &twitter::PLATFORM,
];

/// The table line of a built-in platform, by slug.
pub fn built_in(slug: &str) -> Option<&'static BuiltInPlatform> {
    BUILT_IN.iter().copied().find(|p| p.slug == slug)
}

/// What a grant adds besides tokens and the account (found by a platform's hooks).
#[derive(Debug, Default)]
pub struct GrantDetails {
    /// Non-secret metadata (Meta pages, Instagram accounts).
    pub metadata: serde_json::Value,
    /// Scopes the platform reported granting by other means than the token response.
    pub granted_scopes: Option<Vec<String>>,
}

/// A completed authorization, ready to be recorded as the store's connection: what the flow
/// returns and the lifecycle records.
#[derive(Debug)]
pub struct Grant {
    /// The platform.
    pub platform: PlatformId,
    /// The store the merchant connected.
    pub store_id: StoreId,
    /// The merchant's user.
    pub user_id: UserId,
    /// What the token endpoint granted.
    pub tokens: TokenGrant,
    /// The connected account.
    pub account: AccountInfo,
    /// What the platform's hooks found besides.
    pub details: GrantDetails,
    /// Further secrets to seal with the tokens (Meta's page tokens, by `page:{id}`).
    pub extra_secrets: BTreeMap<String, SecretString>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TokenSet;

    #[test]
    fn a_grants_debug_output_shows_no_secret() {
        let grant = Grant {
            platform: PlatformId::parse("acme").expect("slug"),
            store_id: StoreId::parse("store").expect("id"),
            user_id: UserId::parse("user").expect("id"),
            tokens: TokenGrant {
                tokens: TokenSet {
                    access_token: "access-secret-1".to_owned().into(),
                    refresh_token: Some("refresh-secret-2".to_owned().into()),
                    token_type: "Bearer".into(),
                    expires_at: None,
                    issued_at: None,
                    refresh_expires_at: None,
                    scopes: vec![],
                    extra: BTreeMap::new(),
                },
                scopes_reported: false,
                account_hint: None,
            },
            account: AccountInfo::default(),
            details: GrantDetails::default(),
            extra_secrets: BTreeMap::from([(
                "page:1".to_owned(),
                SecretString::from("page-secret-3".to_owned()),
            )]),
        };
        let printed = format!("{grant:?}");
        for secret in ["access-secret-1", "refresh-secret-2", "page-secret-3"] {
            assert!(!printed.contains(secret), "{printed}");
        }
        assert!(printed.contains("page:1"), "{printed}");
    }
}
