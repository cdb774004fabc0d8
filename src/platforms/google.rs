//! Google (Google Ads): the definition and asset discovery (the customers the user can access).
//! No OAuth quirk: offline access and consent are plain authorization parameters. Sources:
//! `shared/providers.md` §3, `shared/platform-apis.md` §3.

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
use super::{ApiSecretHeader, BuiltInPlatform, ConsentMode, Endpoints, Mark, Protocol};

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
    // providers.md §3: refresh tokens do not expire by time, except `refresh_token_expires_in`
    // "only for time-based access" [G1, G4] and "Testing" consent screens (7 days) [G2], which the
    // token response then reports; they also die "unused 6 months" [G2], which the refresher's
    // regular use prevents. So `reconnect_by` only when Google reported a lifetime.
    reconnect: ReconnectRule::RefreshTokenExpiry,
    hooks: &[Hook::GoogleAdsCustomers],
    // platform-apis.md §3: v26 is "the latest active version" in the late-2026 docs.
    api_base: "https://googleads.googleapis.com/v26/",
    proxy_auth: super::ProxyAuth::GoogleAds,
    dead_token: super::DeadToken::Status401,
    // platform-apis.md G8: Google now ignores it, Nango still sends it (R3); sent when set.
    api_secret_header: Some(ApiSecretHeader {
        var: "GOOGLE_ADS_DEVELOPER_TOKEN",
        header: "developer-token",
    }),
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
        // providers.md §3 / platform-apis.md "Incremental authorization": include_granted_scopes
        // asks for the new scopes only, and the token response's `scope` lists all granted.
        missing_consent: ConsentMode::Incremental {
            params: &[("include_granted_scopes", "true")],
        },
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

/// Google Ads' assets: the customers the user reaches directly
/// (`customers:listAccessibleCustomers`, answered as resource names `customers/<id>`). Names need
/// a query per customer (and a developer token), so none are read here: the id is the name.
/// <https://developers.google.com/google-ads/api/rest/reference/rest/v26/customers/listAccessibleCustomers>
pub(super) async fn discover_assets(
    client: &PlatformClient,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<AssetSet, OAuthError> {
    // "./": without it, `customers:` would parse as a URL scheme.
    let url = assets::api_url(spec, "./customers:listAccessibleCustomers")?;
    let body = client.get_api(spec, url, access_token, &[]).await?;
    let assets = assets::items(&body, "resourceNames")
        .filter_map(Value::as_str)
        .filter_map(|name| {
            let id = name.strip_prefix("customers/")?;
            Some(Asset {
                kind: AssetKind::GoogleAdsCustomer,
                id: id.to_owned(),
                name: Some(id.to_owned()),
                details: json!({ "resource_name": name }),
            })
        })
        .collect();
    Ok(AssetSet {
        assets,
        ..AssetSet::default()
    })
}
