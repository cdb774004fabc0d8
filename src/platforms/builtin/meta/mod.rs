//! Meta (Facebook and Instagram): the definition and its quirks, long-lived token exchange, the
//! merchant's pages and permissions, the token's data-access expiry (`debug_token`), and asset
//! discovery (Pages, Instagram accounts, ad accounts) and publishing (`publish`: Instagram and
//! Page posts). Sources: `shared/providers.md` §1, `shared/platform-apis.md` §1.

mod events;
mod publish;

use crate::platforms::budget::AppUsage;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::platforms::assets::{Asset, AssetKind, AssetSet, AssetToken};
use crate::platforms::definition::{BuiltInPlatform, Endpoints, EventDefinition, Mark, Protocol};
use crate::platforms::discovery;
use crate::platforms::error::PlatformError;
use crate::platforms::events::{EventKeys, EventRejection, InboundRequest, Receipt};
use crate::platforms::platform::PublishContext;
use crate::platforms::platform::{
    AccountExtras, AccountMapping, ClientAuth, ConsentMode, ErrorShape, Pkce, Platform,
    PlatformHttp, PlatformSpec, ReconnectRule, Renewal, Revocation, TokenGrant, TokenMethod,
};
use crate::platforms::publish::{Confirmation, PostDraft, Prepared, PublishFailure, Sent};

/// A Graph API URL, with the version pinned in one place (providers.md: "pin the Graph version in
/// both URLs").
macro_rules! graph {
    ($host:literal, $path:literal) => {
        concat!("https://", $host, "/v25.0", $path)
    };
}

// providers.md §1: GET token endpoint, params not Basic, Graph errors, no refresh token, long-lived
// exchange, pages via /me/accounts.
pub(super) const PLATFORM: BuiltInPlatform = BuiltInPlatform {
    slug: "meta",
    env_prefix: "META",
    client_id_var: "META_APP_ID",
    client_secret_var: "META_APP_SECRET",
    display_name: "Meta (Facebook & Instagram)",
    mark: Mark {
        letter: "M",
        class: "mark--meta",
    },
    endpoints: Endpoints {
        authorize: graph!("www.facebook.com", "/dialog/oauth"),
        token: graph!("graph.facebook.com", "/oauth/access_token"),
        revoke: Some(graph!("graph.facebook.com", "/me/permissions")),
        userinfo: Some(graph!("graph.facebook.com", "/me")),
    },
    scopes: &[
        "pages_show_list",
        "pages_read_engagement",
        "pages_manage_posts",
        // [M32]: subscribing a selected page to the app's webhooks (`subscribed_apps`).
        "pages_manage_metadata",
        "read_insights",
        "instagram_basic",
        "instagram_content_publish",
        "instagram_manage_insights",
        "ads_management",
        "ads_read",
        "business_management",
    ],
    renewal: Renewal::ExchangeLiveToken,
    // providers.md §1: no refresh token; the long-lived user token "generally lasts about 60 days"
    // [M2], re-exchanging it to restart the clock "is not stated by Meta" (Nango does it [M10]),
    // and `debug_token` reports `data_access_expires_at` [M6]. So: the token's expiry once an
    // exchange no longer extends it, bounded by a recorded data-access expiry.
    reconnect: ReconnectRule::ExchangedTokenExpiry,
    behaviour: &Meta,
    api_base: graph!("graph.facebook.com", "/"),
    api_settings: &[],
    fixed_api_headers: &[],
    asset_kinds: &[FACEBOOK_PAGE, INSTAGRAM_ACCOUNT, AD_ACCOUNT],
    foreign_vars: &[],
    // platform-events.md §1c [M32]: a selected page is subscribed to its feed.
    events: EventDefinition {
        keys_url: None,
        sandbox_keys_path: None,
        subscribe_fields: "feed",
    },
    simulated: true,
    protocol: Protocol {
        scope_separator: ",",
        client_id_param: "client_id",
        client_auth: ClientAuth::RequestBody,
        token_method: TokenMethod::GetQuery,
        // PKCE exists only in Meta's OIDC variant, "still in testing" (providers.md M11).
        pkce: Pkce::None,
        authorize_params: &[("response_type", "code")],
        // platform-apis.md §1 "Incremental authorization": declined permissions are asked again
        // only with auth_type=rerequest [M22]; /me/permissions then lists all granted.
        missing_consent: ConsentMode::Incremental {
            params: &[("auth_type", "rerequest")],
        },
        refresh_rotates: false,
        // `DELETE /me/permissions` with the user token removes the app's every permission.
        revocation: Revocation::DeleteWithAccessToken,
        errors: ErrorShape::ErrorObject,
        account: AccountMapping {
            query: &[("fields", "id,name,picture")],
            wrapper: &[],
            id: &[&["id"]],
            name: &[&["name"]],
            picture: &[&["picture", "data", "url"]],
        },
    },
};

/// A Facebook Page; its page token acts for it.
const FACEBOOK_PAGE: AssetKind = AssetKind {
    key: "facebook_page",
    label: "Default Facebook Page",
    selectable: true,
    token: AssetToken::OwnPage,
};

/// An Instagram business account linked to a Page; the Page's token acts for it.
const INSTAGRAM_ACCOUNT: AssetKind = AssetKind {
    key: "instagram_account",
    label: "Default Instagram account",
    selectable: true,
    token: AssetToken::LinkedPage("page_id"),
};

/// A Meta ad account (`act_<n>`).
const AD_ACCOUNT: AssetKind = AssetKind {
    key: "ad_account",
    label: "Default ad account",
    selectable: true,
    token: AssetToken::Connection,
};

/// Meta's behaviour: the long-lived exchange (at connect and as its renewal), pages and
/// permissions, the data-access expiry, Graph's dead-token codes, `appsecret_proof`, discovery.
#[derive(Debug)]
pub(super) struct Meta;

#[async_trait]
impl Platform for Meta {
    async fn after_code_exchange(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        grant: TokenGrant,
        now: DateTime<Utc>,
    ) -> Result<TokenGrant, PlatformError> {
        long_lived_exchange(http, spec, grant, now).await
    }

    async fn after_account(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Result<AccountExtras, PlatformError> {
        let mut extras = pages_and_permissions(http, spec, access_token).await?;
        record_data_access_expiry(http, spec, access_token, &mut extras.metadata).await;
        Ok(extras)
    }

    async fn exchange_live_token(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        access_token: &SecretString,
        now: DateTime<Utc>,
    ) -> Result<TokenGrant, PlatformError> {
        exchange(http, spec, access_token, now).await
    }

    async fn after_renewal(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        access_token: &SecretString,
        metadata: &mut Value,
    ) {
        record_data_access_expiry(http, spec, access_token, metadata).await;
    }

    /// 400/401 with `error.code` 190, except subcodes that need the user on facebook.com (459,
    /// 464) or a re-derived Page token (492) [M4].
    /// The platform limit of user and app tokens is counted for the app (M16): `X-App-Usage`,
    /// JSON with `call_count`, `total_cputime` and `total_time` in percent; the highest counts.
    /// (`X-Business-Use-Case-Usage` is per business, not the app's.)
    fn app_usage(&self, headers: &http::HeaderMap) -> AppUsage {
        let Some(value) = headers.get("x-app-usage") else {
            return AppUsage::Unreported;
        };
        let Ok(usage) = serde_json::from_slice::<Value>(value.as_bytes()) else {
            return AppUsage::Malformed;
        };
        ["call_count", "total_cputime", "total_time"]
            .iter()
            .filter_map(|field| usage.get(*field).and_then(Value::as_f64))
            .reduce(f64::max)
            .map_or(AppUsage::Malformed, |percent| {
                AppUsage::Spent(percent / 100.0)
            })
    }

    fn is_dead_token(&self, status: u16, body: &[u8]) -> bool {
        if status != 400 && status != 401 {
            return false;
        }
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            return false;
        };
        let error = &body["error"];
        error["code"].as_i64() == Some(190)
            && !error["error_subcode"]
                .as_i64()
                .is_some_and(|s| USER_ACTION_SUBCODES.contains(&s))
    }

    async fn discover_assets(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Result<AssetSet, PlatformError> {
        discover_assets(http, spec, access_token).await
    }

    fn event_receivers(&self) -> &'static [(&'static str, &'static str)] {
        events::RECEIVERS
    }

    async fn receive_events(
        &self,
        spec: &PlatformSpec,
        _keys: &dyn EventKeys,
        request: &InboundRequest<'_>,
    ) -> Result<Receipt, EventRejection> {
        events::receive(spec, request)
    }

    /// A selected page is subscribed to the app's page webhooks with its own token [M32].
    async fn subscribe_asset(
        &self,
        http: &dyn PlatformHttp,
        spec: &PlatformSpec,
        kind: &str,
        asset_id: &str,
        asset_token: &SecretString,
        subscribe: bool,
    ) -> Result<bool, PlatformError> {
        if kind != FACEBOOK_PAGE.key || spec.events.subscribe_fields.is_empty() {
            return Ok(false);
        }
        events::subscribe_page(http, spec, asset_id, asset_token, subscribe).await?;
        Ok(true)
    }

    /// `appsecret_proof`, required by apps with "Require App Secret" [M17, M18].
    fn token_proof(
        &self,
        spec: &PlatformSpec,
        access_token: &SecretString,
    ) -> Option<(&'static str, SecretString)> {
        let secret = &spec.credentials.as_ref()?.client_secret;
        Some(("appsecret_proof", appsecret_proof(secret, access_token)))
    }

    /// Instagram accounts and Facebook Pages (`publish`).
    fn publish_kinds(&self) -> &'static [&'static str] {
        publish::KINDS
    }

    fn check_draft(&self, kind: &str, draft: &PostDraft) -> Result<(), PublishFailure> {
        publish::check_draft(kind, draft)
    }

    async fn prepare_post(&self, context: &PublishContext<'_>) -> Result<Prepared, PublishFailure> {
        publish::prepare(context).await
    }

    async fn send_post(&self, context: &PublishContext<'_>) -> Result<Sent, PublishFailure> {
        publish::send(context).await
    }

    async fn confirm_post(
        &self,
        context: &PublishContext<'_>,
    ) -> Result<Confirmation, PublishFailure> {
        publish::confirm(context).await
    }
}

/// Graph subcodes under code 190 that a new token cannot fix [M4].
const USER_ACTION_SUBCODES: [i64; 3] = [459, 464, 492];

/// hex HMAC-SHA256(key = app secret, message = access token) [M17].
fn appsecret_proof(secret: &SecretString, token: &SecretString) -> SecretString {
    // HMAC takes keys of any length: the error branch cannot happen.
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return SecretString::from(String::new());
    };
    mac.update(token.expose_secret().as_bytes());
    SecretString::from(hex::encode(mac.finalize().into_bytes()))
}

/// Exchanges a still-valid token for a long-lived one (`fb_exchange_token`), at the code exchange
/// and at each renewal.
/// <https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived>
async fn exchange(
    http: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
    now: DateTime<Utc>,
) -> Result<TokenGrant, PlatformError> {
    let params = vec![
        ("grant_type", "fb_exchange_token".to_owned()),
        ("fb_exchange_token", access_token.expose_secret().to_owned()),
    ];
    http.token_grant(spec, params, now).await
}

/// Meta has no refresh token: right after the code exchange, the short-lived token is exchanged for a
/// long-lived one (about 60 days) whose real expiry is recorded. Meta's docs: "an expired token cannot
/// be exchanged", so this must happen while the short-lived token is fresh.
/// <https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived>
async fn long_lived_exchange(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    grant: TokenGrant,
    now: DateTime<Utc>,
) -> Result<TokenGrant, PlatformError> {
    let long = exchange(client, spec, &grant.tokens.access_token, now).await?;
    Ok(TokenGrant {
        tokens: crate::domain::TokenSet {
            // The long-lived token's expiry is also the last moment it can be renewed.
            refresh_expires_at: long.tokens.expires_at,
            ..long.tokens
        },
        scopes_reported: false,
        account_hint: grant.account_hint,
    })
}

/// Reads the permissions the merchant granted (Facebook Login lets them untick some), the pages the
/// merchant manages with their tokens, and each page's Instagram business account.
/// <https://developers.facebook.com/docs/graph-api/reference/user/permissions/>,
/// <https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived> (page tokens),
/// <https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/page>
async fn pages_and_permissions(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<AccountExtras, PlatformError> {
    let Some(me) = spec.userinfo_url.clone() else {
        return Ok(AccountExtras::default());
    };
    let child = |segment: &str| {
        let mut url = me.clone();
        let path = format!("{}/{segment}", me.path().trim_end_matches('/'));
        url.set_path(&path);
        url
    };
    let permissions = client
        .get_with_token(spec, child("permissions"), access_token, &[])
        .await?;
    let accounts = client
        .get_with_token(
            spec,
            child("accounts"),
            access_token,
            &[
                (
                    "fields",
                    "id,name,category,tasks,access_token,instagram_business_account{id,username}",
                ),
                ("limit", "100"),
            ],
        )
        .await?;
    let (metadata, page_tokens) = pages(&accounts);
    Ok(AccountExtras {
        granted_scopes: granted_permissions(&permissions),
        metadata,
        page_tokens,
    })
}

/// Meta's `debug_token` (the "Debugging" guide, providers.md [M6]): records the token's
/// data-access expiry (`data_access_expires_at`, Unix seconds) in `metadata`, the bound
/// `health::reconnect_by` puts on a Meta connection: past it the token is still valid but reads
/// no data until the merchant consents again (platform-apis.md §1, [M21]).
///
/// Best effort: a connect or a renewal does not fail for want of it. A failure is logged with a
/// safe reason and leaves `metadata` as it was (a renewal keeps the expiry recorded before).
/// <https://developers.facebook.com/docs/facebook-login/guides/access-tokens/debugging>
async fn record_data_access_expiry(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
    metadata: &mut Value,
) {
    match data_access_expiry(client, spec, access_token).await {
        Ok(expires_at) => {
            if !metadata.is_object() {
                *metadata = json!({});
            }
            if let Some(object) = metadata.as_object_mut() {
                object.insert(DATA_ACCESS_EXPIRES_AT.to_owned(), json!(expires_at));
            }
        }
        Err(reason) => {
            tracing::warn!(platform = %spec.id, reason, "Meta's debug_token gave no data-access expiry; the connection has none recorded");
        }
    }
}

/// The metadata key, as `debug_token` names it and `health::reconnect_by` reads it.
const DATA_ACCESS_EXPIRES_AT: &str = "data_access_expires_at";

/// Asks `debug_token` about `access_token` with the app access token (`{app-id}|{app-secret}`),
/// which Meta wants in the query: both tokens travel only inside the request, whose URL no log
/// line or error carries. Returns `data_access_expires_at`, or a safe reason.
async fn data_access_expiry(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<i64, &'static str> {
    let credentials = spec.credentials.as_ref().ok_or("platform_not_configured")?;
    // `debug_token` sits at the Graph root, beside `/me` (the identity URL, pinned version).
    let mut url = spec.userinfo_url.clone().ok_or("no identity URL")?;
    let parent = url
        .path()
        .trim_end_matches('/')
        .rsplit_once('/')
        .map_or(String::new(), |(parent, _)| parent.to_owned());
    url.set_path(&format!("{parent}/debug_token"));
    url.set_query(None);
    let app_token = SecretString::from(format!(
        "{}|{}",
        credentials.client_id,
        credentials.client_secret.expose_secret()
    ));
    let body = client
        .get_with_secret_query(
            spec,
            url,
            &[("input_token", access_token), ("access_token", &app_token)],
        )
        .await
        .map_err(|error| error.reason())?;
    let data = body.get("data").ok_or("an answer without data")?;
    if data.get("is_valid").and_then(Value::as_bool) != Some(true) {
        return Err("the token is not valid");
    }
    // The Debugging guide: check `app_id` is your app's before trusting the rest.
    let app_id = data.get("app_id").map(|id| match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    if app_id.as_deref() != Some(credentials.client_id.as_str()) {
        return Err("the token belongs to another app");
    }
    data.get(DATA_ACCESS_EXPIRES_AT)
        .and_then(Value::as_i64)
        .filter(|at| *at > 0)
        .ok_or("no data_access_expires_at")
}

/// The permissions with status `granted`, from `/me/permissions`.
fn granted_permissions(permissions: &Value) -> Option<Vec<String>> {
    permissions
        .get("data")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter(|p| p.get("status").and_then(Value::as_str) == Some("granted"))
                .filter_map(|p| p.get("permission").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        })
}

/// The pages and Instagram business accounts from `/me/accounts`, without their tokens, and the
/// page tokens apart, by `page:{id}`, for the sealed set only.
fn pages(accounts: &Value) -> (Value, BTreeMap<String, SecretString>) {
    let mut pages = Vec::new();
    let mut instagram = Vec::new();
    let mut page_tokens = BTreeMap::new();
    for page in accounts
        .get("data")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(id) = page.get("id").and_then(Value::as_str) else {
            continue;
        };
        if let Some(token) = page.get("access_token").and_then(Value::as_str) {
            page_tokens.insert(format!("page:{id}"), SecretString::from(token.to_owned()));
        }
        pages.push(json!({
            "id": id,
            "name": page.get("name"),
            "category": page.get("category"),
            "tasks": page.get("tasks"),
        }));
        if let Some(ig) = page.get("instagram_business_account") {
            instagram.push(json!({
                "id": ig.get("id"),
                "username": ig.get("username"),
                "page_id": id,
            }));
        }
    }
    (
        json!({ "pages": pages, "instagram_business_accounts": instagram }),
        page_tokens,
    )
}

/// The most pages of one Graph listing followed (`paging.next`), so that a platform answering
/// `next` for ever cannot keep discovery running.
const MAX_GRAPH_PAGES: usize = 10;

/// Reads a Graph listing, following `paging.next` on the API's own host (an empty page may still
/// carry `next`, platform-apis.md §1 "Discovery").
async fn graph_list(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
    edge: &str,
    fields: &str,
) -> Result<Vec<Value>, PlatformError> {
    let mut url = discovery::api_url(spec, edge)?;
    url.query_pairs_mut()
        .append_pair("fields", fields)
        .append_pair("limit", "100");
    let mut all = Vec::new();
    for _ in 0..MAX_GRAPH_PAGES {
        let body = client.get_api(spec, url, access_token, &[]).await?;
        all.extend(discovery::items(&body, "data").cloned());
        let next = body
            .pointer("/paging/next")
            .and_then(Value::as_str)
            .and_then(|next| url::Url::parse(next).ok())
            .filter(|next| {
                // Only back to the API's own origin: a link elsewhere, or to plain http, would
                // carry the bearer token there.
                spec.api_base.as_ref().is_some_and(|base| {
                    next.scheme() == base.scheme()
                        && next.host_str() == base.host_str()
                        && next.port_or_known_default() == base.port_or_known_default()
                })
            });
        match next {
            Some(next) => url = next,
            None => break,
        }
    }
    Ok(all)
}

/// Meta's assets: the Pages (`/me/accounts`, their page tokens to the sealed set only), the
/// Instagram business accounts linked to them, and the ad accounts (`/me/adaccounts`, skipped when
/// the ads permissions were not granted: Graph answers code 200 then).
/// <https://developers.facebook.com/docs/graph-api/reference/user/accounts/>,
/// <https://developers.facebook.com/docs/instagram-platform/instagram-graph-api/reference/page>,
/// <https://developers.facebook.com/docs/marketing-api/reference/user/adaccounts/>
async fn discover_assets(
    client: &dyn PlatformHttp,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<AssetSet, PlatformError> {
    let pages = graph_list(
        client,
        spec,
        access_token,
        "me/accounts",
        "id,name,category,tasks,access_token,instagram_business_account{id,username}",
    )
    .await?;
    let mut set = AssetSet::default();
    for page in &pages {
        let Some(id) = discovery::text(page, "id") else {
            continue;
        };
        if let Some(token) = discovery::text(page, "access_token") {
            set.secrets
                .insert(format!("page:{id}"), SecretString::from(token));
        }
        set.assets.push(Asset {
            kind: FACEBOOK_PAGE,
            id: id.clone(),
            name: discovery::text(page, "name"),
            details: json!({ "category": page.get("category"), "tasks": page.get("tasks") }),
        });
        if let Some(ig) = page.get("instagram_business_account") {
            if let Some(ig_id) = discovery::text(ig, "id") {
                set.assets.push(Asset {
                    kind: INSTAGRAM_ACCOUNT,
                    id: ig_id,
                    name: discovery::text(ig, "username"),
                    details: json!({ "page_id": id }),
                });
            }
        }
    }
    let fields = "id,account_id,name,account_status,currency";
    match graph_list(client, spec, access_token, "me/adaccounts", fields).await {
        Ok(accounts) => set.assets.extend(accounts.iter().filter_map(|account| {
            Some(Asset {
                kind: AD_ACCOUNT,
                id: discovery::text(account, "id")?,
                name: discovery::text(account, "name"),
                details: json!({
                    "account_status": account.get("account_status"),
                    "currency": account.get("currency"),
                }),
            })
        })),
        // A permission not granted (code 10 or 200-299, platform-apis.md §1) is the merchant's
        // choice, not a failure.
        Err(PlatformError::Rejected { code, .. })
            if code == "10" || (code.len() == 3 && code.starts_with('2')) =>
        {
            tracing::info!(%code, "Meta ad accounts not readable with this grant");
        }
        Err(error) => return Err(error),
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_190_is_a_dead_token_but_a_checkpoint_is_not() {
        let dead = br#"{"error":{"code":190,"error_subcode":463,"type":"OAuthException"}}"#;
        assert!(Meta.is_dead_token(400, dead));
        let checkpoint = br#"{"error":{"code":190,"error_subcode":459}}"#;
        assert!(!Meta.is_dead_token(400, checkpoint));
        let permission = br#"{"error":{"code":200}}"#;
        assert!(!Meta.is_dead_token(400, permission));
    }
}
