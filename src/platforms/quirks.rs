//! The named hooks for platforms' genuine deviations from plain OAuth 2.0 ([`Hook`]), and the one
//! place each stage calls them from: one dispatch function per stage. The hooks' bodies live in the
//! platform modules, next to the definitions they belong to, each citing its documentation.
//!
//! Every dispatch matches every hook, so a new hook cannot be forgotten at a stage.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde_json::Value;

use super::assets::AssetSet;
use super::catalog::PlatformSpec;
use super::client::{PlatformClient, TokenGrant};
use super::error::OAuthError;
use super::{google, meta, pinterest, tiktok, twitter};

/// A platform's genuine deviations from plain OAuth 2.0, each a named function in its platform's
/// module.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hook {
    /// Meta: exchange the short-lived token for a long-lived one right after the code exchange.
    /// <https://developers.facebook.com/docs/facebook-login/guides/access-tokens/get-long-lived>
    MetaLongLivedExchange,
    /// Meta: read granted permissions, the merchant's pages (tokens go to the sealed set) and their
    /// Instagram business accounts.
    /// <https://developers.facebook.com/docs/graph-api/reference/user/permissions/>
    MetaPagesAndPermissions,
    /// Meta: record the token's data-access expiry from `debug_token`, at connect and after each
    /// long-lived exchange (best effort: never fails either).
    /// <https://developers.facebook.com/docs/facebook-login/guides/access-tokens/debugging>
    MetaDataAccessExpiry,
    /// TikTok's user-info answers HTTP 200 with `error.code` other than `ok` on failure.
    /// <https://developers.tiktok.com/doc/tiktok-api-v2-get-user-info>
    TikTokEnvelopeError,
    /// X: `offline.access` stays in the requested scopes, or X issues no refresh token.
    /// <https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code> (providers.md X2)
    XOfflineAccess,
    /// Meta's assets: Pages (tokens to the sealed set), their Instagram accounts, ad accounts.
    /// <https://developers.facebook.com/docs/graph-api/reference/user/accounts/>
    MetaAssets,
    /// TikTok's asset: the creator and what its posting API allows.
    /// <https://developers.tiktok.com/doc/content-posting-api-reference-query-creator-info>
    TikTokCreatorInfo,
    /// Google Ads' assets: the customers the user can access.
    /// <https://developers.google.com/google-ads/api/rest/reference/rest/v26/customers/listAccessibleCustomers>
    GoogleAdsCustomers,
    /// Pinterest's assets: boards and ad accounts.
    /// <https://developers.pinterest.com/docs/api/v5/boards-list>
    PinterestAssets,
    /// X's asset: the user.
    /// <https://docs.x.com/x-api/users/user-lookup-me>
    XUser,
}

/// What hooks add to a grant after reading the account.
#[derive(Debug, Default)]
pub(crate) struct AccountExtras {
    /// Permissions the platform says were granted.
    pub granted_scopes: Option<Vec<String>>,
    /// Non-secret metadata (Meta's pages and Instagram business accounts, without their tokens).
    pub metadata: Value,
    /// Further tokens (Meta's page tokens, by `page:{id}`), for the sealed set only.
    pub page_tokens: BTreeMap<String, SecretString>,
}

/// Stage "catalog": adjusts the requested scopes once settings are applied.
pub(crate) fn adjust_scopes(spec: &mut PlatformSpec) {
    for hook in spec.hooks {
        match hook {
            Hook::XOfflineAccess => twitter::keep_offline_access(&mut spec.scopes),
            Hook::MetaLongLivedExchange
            | Hook::MetaPagesAndPermissions
            | Hook::MetaDataAccessExpiry
            | Hook::TikTokEnvelopeError => {}
            Hook::MetaAssets
            | Hook::TikTokCreatorInfo
            | Hook::GoogleAdsCustomers
            | Hook::PinterestAssets
            | Hook::XUser => {}
        }
    }
}

/// Stage "code exchanged": may replace the grant the token endpoint gave.
pub(crate) async fn after_code_exchange(
    client: &PlatformClient,
    spec: &PlatformSpec,
    mut grant: TokenGrant,
    now: DateTime<Utc>,
) -> Result<TokenGrant, OAuthError> {
    for hook in spec.hooks {
        match hook {
            Hook::MetaLongLivedExchange => {
                grant = meta::long_lived_exchange(client, spec, grant, now).await?;
            }
            Hook::MetaPagesAndPermissions
            | Hook::MetaDataAccessExpiry
            | Hook::TikTokEnvelopeError
            | Hook::XOfflineAccess => {}
            Hook::MetaAssets
            | Hook::TikTokCreatorInfo
            | Hook::GoogleAdsCustomers
            | Hook::PinterestAssets
            | Hook::XUser => {}
        }
    }
    Ok(grant)
}

/// Stage "user info read": checks the body of the user-info response before it is mapped.
pub(crate) fn check_account_response(spec: &PlatformSpec, body: &Value) -> Result<(), OAuthError> {
    for hook in spec.hooks {
        match hook {
            Hook::TikTokEnvelopeError => tiktok::check_envelope(spec, body)?,
            Hook::MetaLongLivedExchange
            | Hook::MetaPagesAndPermissions
            | Hook::MetaDataAccessExpiry
            | Hook::XOfflineAccess => {}
            Hook::MetaAssets
            | Hook::TikTokCreatorInfo
            | Hook::GoogleAdsCustomers
            | Hook::PinterestAssets
            | Hook::XUser => {}
        }
    }
    Ok(())
}

/// Stage "account known": further calls with the new access token that add to the grant.
pub(crate) async fn after_account(
    client: &PlatformClient,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<AccountExtras, OAuthError> {
    let mut extras = AccountExtras::default();
    for hook in spec.hooks {
        match hook {
            Hook::MetaPagesAndPermissions => {
                let found = meta::pages_and_permissions(client, spec, access_token).await?;
                merge_metadata(&mut extras.metadata, found.metadata);
                extras.granted_scopes = found.granted_scopes;
                extras.page_tokens.extend(found.page_tokens);
            }
            Hook::MetaDataAccessExpiry => {
                meta::record_data_access_expiry(client, spec, access_token, &mut extras.metadata)
                    .await;
            }
            Hook::MetaLongLivedExchange | Hook::TikTokEnvelopeError | Hook::XOfflineAccess => {}
            Hook::MetaAssets
            | Hook::TikTokCreatorInfo
            | Hook::GoogleAdsCustomers
            | Hook::PinterestAssets
            | Hook::XUser => {}
        }
    }
    Ok(extras)
}

/// Stage "renewed": after a renewal the platform accepted, may update the connection's
/// non-secret metadata; never fails the renewal.
pub(crate) async fn after_renewal(
    client: &PlatformClient,
    spec: &PlatformSpec,
    access_token: &SecretString,
    metadata: &mut Value,
) {
    for hook in spec.hooks {
        match hook {
            Hook::MetaDataAccessExpiry => {
                meta::record_data_access_expiry(client, spec, access_token, metadata).await;
            }
            Hook::MetaLongLivedExchange
            | Hook::MetaPagesAndPermissions
            | Hook::TikTokEnvelopeError
            | Hook::XOfflineAccess => {}
            Hook::MetaAssets
            | Hook::TikTokCreatorInfo
            | Hook::GoogleAdsCustomers
            | Hook::PinterestAssets
            | Hook::XUser => {}
        }
    }
}

/// Adds `found`'s keys to `metadata` (an object, or nothing yet), so that hooks compose.
fn merge_metadata(metadata: &mut Value, found: Value) {
    let Value::Object(found) = found else {
        return;
    };
    match metadata {
        Value::Object(object) => object.extend(found),
        _ => *metadata = Value::Object(found),
    }
}

/// Stage "assets": discovers what the merchant's consumers act on, with a valid access token. A
/// platform without a discovery hook (a generic provider) has none.
pub(crate) async fn discover_assets(
    client: &PlatformClient,
    spec: &PlatformSpec,
    access_token: &SecretString,
) -> Result<AssetSet, OAuthError> {
    let mut set = AssetSet::default();
    for hook in spec.hooks {
        let found = match hook {
            Hook::MetaAssets => meta::discover_assets(client, spec, access_token).await?,
            Hook::TikTokCreatorInfo => tiktok::discover_assets(client, spec, access_token).await?,
            Hook::GoogleAdsCustomers => google::discover_assets(client, spec, access_token).await?,
            Hook::PinterestAssets => pinterest::discover_assets(client, spec, access_token).await?,
            Hook::XUser => twitter::discover_assets(client, spec, access_token).await?,
            Hook::MetaLongLivedExchange
            | Hook::MetaPagesAndPermissions
            | Hook::MetaDataAccessExpiry
            | Hook::TikTokEnvelopeError
            | Hook::XOfflineAccess => continue,
        };
        set.assets.extend(found.assets);
        set.secrets.extend(found.secrets);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platforms::Catalog;

    fn catalog() -> Catalog {
        Catalog::resolve(&BTreeMap::new(), &[], None)
    }

    #[test]
    fn tiktoks_error_envelope_is_refused_only_at_tiktok() {
        let catalog = catalog();
        let body = serde_json::json!({
            "data": {},
            "error": { "code": "access_token_invalid", "message": "The access token is invalid." }
        });
        let tiktok = catalog.find("tiktok").expect("built in");
        match check_account_response(tiktok, &body) {
            Err(OAuthError::PlatformRejected {
                code, permanent, ..
            }) => {
                assert_eq!(code, "access_token_invalid");
                assert!(permanent);
            }
            other => panic!("expected a rejection, got {other:?}"),
        }
        let ok = serde_json::json!({ "data": {}, "error": { "code": "ok" } });
        assert!(check_account_response(tiktok, &ok).is_ok());
        let google = catalog.find("google").expect("built in");
        assert!(check_account_response(google, &body).is_ok());
    }
}
