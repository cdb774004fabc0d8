//! The named hooks for platforms' genuine deviations from plain OAuth 2.0 (see [`Hook`]). Each function
//! cites the platform documentation it follows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::{json, Value};

use super::catalog::{Hook, PlatformSpec};
use super::client::{PlatformClient, TokenGrant};
use super::error::OAuthError;

/// What Meta's extra calls add to a grant.
#[derive(Debug, Default)]
pub struct MetaExtras {
    /// Permissions with status `granted`.
    pub granted_scopes: Option<Vec<String>>,
    /// Pages and Instagram business accounts, without their tokens.
    pub metadata: Value,
    /// Page tokens, by `page:{id}`, for the sealed set only.
    pub page_tokens: BTreeMap<String, SecretString>,
}

/// Meta has no refresh token: right after the code exchange, the short-lived token is exchanged for a
/// long-lived one (about 60 days) whose real expiry is recorded. Meta's docs: "an expired token cannot
/// be exchanged", so this must happen while the short-lived token is fresh.
/// <https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived>
pub async fn meta_long_lived(
    client: &PlatformClient,
    spec: &PlatformSpec,
    grant: TokenGrant,
    now: DateTime<Utc>,
) -> Result<TokenGrant, OAuthError> {
    if !spec.hooks.contains(&Hook::MetaLongLivedExchange) {
        return Ok(grant);
    }
    let long = client
        .meta_exchange(spec, &grant.tokens.access_token, now)
        .await?;
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
pub async fn meta_pages_and_permissions(
    client: &PlatformClient,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<MetaExtras, OAuthError> {
    if !spec.hooks.contains(&Hook::MetaPagesAndPermissions) {
        return Ok(MetaExtras::default());
    }
    let Some(me) = spec.userinfo_url.clone() else {
        return Ok(MetaExtras::default());
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
    let granted_scopes = permissions
        .get("data")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter(|p| p.get("status").and_then(Value::as_str) == Some("granted"))
                .filter_map(|p| p.get("permission").and_then(Value::as_str))
                .map(str::to_owned)
                .collect()
        });
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
    Ok(MetaExtras {
        granted_scopes,
        metadata: json!({ "pages": pages, "instagram_business_accounts": instagram }),
        page_tokens,
    })
}

/// TikTok's API answers failures inside an envelope, `error.code` other than `"ok"`, sometimes with
/// HTTP 200. <https://developers.tiktok.com/doc/tiktok-api-v2-error-handling>
pub fn tiktok_check_envelope(spec: &PlatformSpec, body: &Value) -> Result<(), OAuthError> {
    let code = body
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str);
    match code {
        None | Some("ok") => Ok(()),
        Some(code) => Err(OAuthError::PlatformRejected {
            platform: spec.id.clone(),
            code: super::error::scrub(code),
            description: body
                .get("error")
                .and_then(|e| e.get("message"))
                .and_then(Value::as_str)
                .map(super::error::scrub)
                .unwrap_or_default(),
            permanent: code == "access_token_invalid",
            revoked: false,
        }),
    }
}
