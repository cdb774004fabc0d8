//! X (Twitter): the definition and its quirk, `offline.access` kept whatever the scope override,
//! and asset discovery (the user). Sources: `shared/providers.md` §5, `shared/platform-apis.md` §5.

use secrecy::SecretString;
use serde_json::json;

use async_trait::async_trait;

use crate::platforms::assets::{Asset, AssetKind, AssetSet, AssetToken};
use crate::platforms::definition::{BuiltInPlatform, Endpoints, Mark, Protocol};
use crate::platforms::discovery;
use crate::platforms::error::PlatformError;
use crate::platforms::platform::{
    AccountMapping, ClientAuth, ConsentMode, ErrorShape, Pkce, Platform, PlatformHttp,
    PlatformSpec, ReconnectRule, Renewal, Revocation, TokenMethod,
};

/// The scope without which X issues no refresh token.
const OFFLINE_ACCESS: &str = "offline.access";

// providers.md §5: PKCE mandatory, Basic, offline.access for a refresh token, rotation.
pub(super) const PLATFORM: BuiltInPlatform = BuiltInPlatform {
    slug: "twitter",
    env_prefix: "TWITTER",
    client_id_var: "TWITTER_CLIENT_ID",
    client_secret_var: "TWITTER_CLIENT_SECRET",
    display_name: "X (Twitter)",
    mark: Mark {
        letter: "X",
        class: "mark--twitter",
    },
    endpoints: Endpoints {
        authorize: "https://x.com/i/oauth2/authorize",
        token: "https://api.x.com/2/oauth2/token",
        revoke: Some("https://api.x.com/2/oauth2/revoke"),
        userinfo: Some("https://api.x.com/2/users/me"),
    },
    scopes: &[
        "tweet.read",
        "tweet.write",
        "users.read",
        "media.write",
        OFFLINE_ACCESS,
    ],
    renewal: Renewal::RefreshToken,
    // providers.md §5: refresh tokens rotate ("always save the newest one" [X3]) and need
    // `offline.access` [X2]; no source gives a lifetime or an idle limit, and the token response
    // carries none, so X has a `reconnect_by` only if it ever reports one.
    reconnect: ReconnectRule::RefreshTokenExpiry,
    behaviour: &Twitter,
    api_base: "https://api.x.com/2/",
    api_settings: &[],
    fixed_api_headers: &[],
    asset_kinds: &[USER],
    foreign_vars: &[],
    simulated: true,
    protocol: Protocol {
        scope_separator: " ",
        client_id_param: "client_id",
        client_auth: ClientAuth::Basic,
        token_method: TokenMethod::PostForm,
        pkce: Pkce::S256,
        authorize_params: &[("response_type", "code")],
        // platform-apis.md §5: no incremental authorization documented, and no parameter that forces
        // the consent screen: all scopes again.
        missing_consent: ConsentMode::Full { params: &[] },
        refresh_rotates: true,
        revocation: Revocation::Form {
            authenticate: true,
            hint: true,
        },
        errors: ErrorShape::Rfc6749,
        account: AccountMapping {
            query: &[("user.fields", "profile_image_url")],
            wrapper: &["data"],
            id: &[&["id"]],
            name: &[&["name"], &["username"]],
            picture: &[&["profile_image_url"]],
        },
    },
};

/// The X user: an identity, not a choice.
const USER: AssetKind = AssetKind {
    key: "x_user",
    label: "X user",
    selectable: false,
    token: AssetToken::Connection,
};

/// X's behaviour: `offline.access` kept, the user as its asset.
#[derive(Debug)]
pub(super) struct Twitter;

#[async_trait]
impl Platform for Twitter {
    /// X issues no refresh token without `offline.access` (providers.md X2): an override of
    /// `TWITTER_SCOPES` must not silently lose it.
    fn adjust_scopes(&self, scopes: &mut Vec<String>) {
        if !scopes.iter().any(|s| s == OFFLINE_ACCESS) {
            scopes.push(OFFLINE_ACCESS.into());
        }
    }

    async fn discover_assets(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Result<AssetSet, PlatformError> {
        discover_assets(http, spec, access_token).await
    }
}

/// X's asset: the user (`GET /2/users/me`).
/// <https://docs.x.com/x-api/users/user-lookup-me>
async fn discover_assets(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<AssetSet, PlatformError> {
    let url = discovery::api_url(spec, "users/me")?;
    let body = client.get_api(spec, url, access_token, &[]).await?;
    let data = body.get("data").cloned().unwrap_or_default();
    let Some(id) = discovery::text(&data, "id") else {
        return Err(PlatformError::BadResponse {
            platform: spec.id.clone(),
            detail: "users/me without data.id".into(),
        });
    };
    Ok(AssetSet {
        assets: vec![Asset {
            kind: USER,
            id,
            name: discovery::text(&data, "name"),
            details: json!({ "username": data.get("username") }),
        }],
        ..AssetSet::default()
    })
}
