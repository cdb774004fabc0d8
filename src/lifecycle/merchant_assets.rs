//! The merchant's assets on each platform, kept with the connection: discovery (right after a
//! connect and on demand), the selection of a default per kind, and the token for an account
//! (`account=<asset id>` on the token endpoint, `Growth-Engine-Account` at the proxy).
//!
//! It owns the rules around assets: discovery uses a valid token (refreshed first when due, through
//! [`Tokens::access_token`]); a failed discovery never undoes a connect; Meta's page tokens
//! go to the sealed token set (`page:{id}`) and never to the asset rows. It does not own the
//! platform calls (the discovery hooks in `platforms`), the refresh (`refresh.rs`), nor the page
//! token's hand-out from the sealed set (`tokens.rs`).
//!
//! Decision, the token for a Meta account: with `account=<page id>` (or the id of the Instagram
//! account linked to a page) the answer is that page's token, the one Meta requires for page and
//! Instagram calls. Without `account`, the answer stays the user token, as before assets existed
//! (consumers written then keep working), and describes the selected account beside it.

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};

use super::issued::IssuedToken;
use super::shared::Core;
use super::tokens::Tokens;
use crate::domain::{Connection, StoreId};
use crate::error::OAuthError;
use crate::platforms::builtin::asset_kinds;
use crate::platforms::{AssetKind, PlatformClient, PlatformSpec};
use crate::store::{NewAsset, StoreError, StoredAsset};

/// How many times writing new page tokens is retried when a refresh changed the row meanwhile.
const SEAL_ATTEMPTS: usize = 3;

/// The account a token answer is for (or, without `account`, the selected one).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AccountRef {
    /// `facebook_page`, `instagram_account`, ...
    pub kind: String,
    /// The platform's id of it.
    pub id: String,
    /// Its display name.
    pub name: Option<String>,
}

impl From<&StoredAsset> for AccountRef {
    fn from(asset: &StoredAsset) -> Self {
        Self {
            kind: asset.kind.clone(),
            id: asset.id.clone(),
            name: asset.name.clone(),
        }
    }
}

/// A token for an account: the page's token for a Meta page or its Instagram account, else the
/// connection's token; with the account it is for.
#[derive(Debug, Clone)]
pub struct AccountToken {
    /// The token.
    pub token: IssuedToken,
    /// The account asked for, or the selected one when none was asked for.
    pub account: Option<AccountRef>,
}

/// The merchant's assets: discovery, the selection, the token for an account. A cheap clone.
#[derive(Debug, Clone)]
pub struct Assets {
    core: Core,
    tokens: Tokens,
    client: PlatformClient,
}

impl Assets {
    /// Discovers through `client` with tokens from `tokens`.
    pub fn new(tokens: Tokens, client: PlatformClient) -> Self {
        Self {
            core: tokens.core().clone(),
            tokens,
            client,
        }
    }

    /// Discovers the connection's assets now, with a valid token, and stores them (keeping the
    /// selection of those still there). Returns the connection's assets.
    pub(crate) async fn refresh_assets(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
    ) -> Result<Vec<StoredAsset>, OAuthError> {
        let issued = self.tokens.access_token(spec, store_id, false).await?;
        let found = (spec.behaviour)
            .discover_assets(&self.client, spec, &issued.access_token)
            .await?;
        let connection = self.keep_secrets(spec, store_id, found.secrets).await?;
        let assets: Vec<NewAsset> = found
            .assets
            .into_iter()
            .map(|asset| NewAsset {
                kind: asset.kind.as_str().to_owned(),
                id: asset.id,
                name: asset.name,
                details: asset.details,
            })
            .collect();
        let replaced = self
            .core
            .store()
            .replace_assets(connection.id, &assets, self.core.clock().now())
            .await;
        self.core.changed(store_id).await;
        replaced?;
        self.connection_assets(&connection).await
    }

    async fn connection_assets(
        &self,
        connection: &Connection,
    ) -> Result<Vec<StoredAsset>, OAuthError> {
        let mut all = self.core.store().list_assets(&connection.store_id).await?;
        all.retain(|asset| asset.connection_id == connection.id);
        Ok(all)
    }

    /// Makes `(kind, id)` the connection's default of its kind. [`OAuthError::NotFound`] without a
    /// connection, [`OAuthError::AssetNotFound`] when it has no such asset.
    pub async fn select_asset(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
        kind: AssetKind,
        id: &str,
    ) -> Result<Connection, OAuthError> {
        let connection = self
            .core
            .store()
            .get_connection(store_id, &spec.id)
            .await?
            .ok_or(OAuthError::NotFound)?;
        // Only a platform whose selected assets subscribe to its webhooks needs the one before.
        let subscribes = !spec.events.subscribe_fields.is_empty();
        let before: Option<String> = if subscribes {
            self.core
                .store()
                .list_assets(store_id)
                .await?
                .into_iter()
                .find(|a| a.connection_id == connection.id && a.kind == kind.as_str() && a.selected)
                .map(|a| a.id)
        } else {
            None
        };
        let selected = self
            .core
            .store()
            .select_asset(connection.id, kind.as_str(), id)
            .await;
        self.core.changed(store_id).await;
        if !selected? {
            return Err(OAuthError::AssetNotFound);
        }
        if subscribes && before.as_deref() != Some(id) {
            if let Some(old) = &before {
                self.subscribe(spec, store_id, kind, old, false).await;
            }
            self.subscribe(spec, store_id, kind, id, true).await;
        }
        Ok(connection)
    }

    /// Subscribes (or unsubscribes) a selected asset to the app's webhooks where its platform has
    /// such subscriptions (Meta's pages), with the asset's own token. Best effort: the selection
    /// stands whatever the platform says, and a failure is logged (the merchant can select again).
    async fn subscribe(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
        kind: AssetKind,
        id: &str,
        subscribe: bool,
    ) {
        let token = match self.token_for_account(spec, store_id, Some(id)).await {
            Ok(token) => token.token.access_token,
            Err(error) => {
                tracing::warn!(platform = %spec.id, store_id = %store_id, error = %error, "no token to change the asset's webhook subscription");
                return;
            }
        };
        change_subscription(
            &self.client,
            spec,
            store_id,
            kind.as_str(),
            id,
            &token,
            subscribe,
        )
        .await;
    }

    /// A valid token for `account` (an asset id of the store's connection), or without one the
    /// connection's token and its selected account. See the module's decision for Meta.
    pub(crate) async fn token_for_account(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
        account: Option<&str>,
    ) -> Result<AccountToken, OAuthError> {
        let mut token = self.tokens.access_token(spec, store_id, false).await?;
        let Some(wanted) = account else {
            let mut assets = self.core.store().list_assets(store_id).await?;
            assets.retain(|asset| asset.platform == spec.id);
            return Ok(AccountToken {
                token,
                account: default_account(&assets),
            });
        };
        let (asset, page_token) = self.tokens.account_token(spec, store_id, wanted).await?;
        if let Some(page_token) = page_token {
            // Page tokens made from a long-lived user token carry no expiry (platform-apis.md §1).
            token.access_token = page_token;
            token.expires_at = None;
        }
        Ok(AccountToken {
            token,
            account: Some(AccountRef::from(&asset)),
        })
    }

    /// Puts the page tokens discovery found into the sealed set (replacing the old ones, all of them
    /// when it found none), unless they are the same; retried when a refresh changed the row meanwhile. Returns the row.
    async fn keep_secrets(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
        secrets: BTreeMap<String, SecretString>,
    ) -> Result<Connection, OAuthError> {
        for _ in 0..SEAL_ATTEMPTS {
            let connection = self
                .core
                .store()
                .get_connection(store_id, &spec.id)
                .await?
                .ok_or(OAuthError::NotFound)?;
            // An empty set replaces the old page tokens too: a page discovery no longer finds
            // keeps no token behind.
            let mut tokens = self.core.open(&connection)?;
            let pages_held = tokens
                .extra
                .keys()
                .filter(|k| k.starts_with("page:"))
                .count();
            let same = pages_held == secrets.len()
                && secrets.iter().all(|(name, value)| {
                    tokens
                        .extra
                        .get(name)
                        .is_some_and(|old| old.expose_secret() == value.expose_secret())
                });
            if same {
                return Ok(connection);
            }
            tokens.extra.retain(|name, _| !name.starts_with("page:"));
            tokens.extra.extend(secrets.clone());
            let updated = Connection {
                sealed_tokens: Some(self.core.seal(store_id, &spec.id, &tokens)),
                key_id: Some(self.core.keyring().current_key_id().to_owned()),
                updated_at: self.core.clock().now(),
                ..connection
            };
            let saved = self.core.store().update_connection(&updated, None).await;
            self.core.changed(store_id).await;
            match saved {
                Ok(saved) => {
                    self.core.cache().put(&saved).await;
                    return Ok(saved);
                }
                Err(StoreError::Conflict) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(OAuthError::Store(StoreError::Conflict))
    }
}

/// The selected asset a token answer describes when no account was asked for: the first selected
/// in the kinds' order (a Meta connection's page before its Instagram account).
fn default_account(assets: &[StoredAsset]) -> Option<AccountRef> {
    asset_kinds().iter().find_map(|kind| {
        assets
            .iter()
            .find(|asset| asset.selected && asset.kind == kind.as_str())
            .map(AccountRef::from)
    })
}

/// Subscribes (or unsubscribes) one asset to the app's webhooks with `token`, where its platform
/// has such subscriptions, and logs what happened. Best effort for both callers (a selection, a
/// disconnect): what the merchant asked for stands whatever the platform says.
pub(super) async fn change_subscription(
    client: &PlatformClient,
    spec: &PlatformSpec,
    store_id: &StoreId,
    kind: &str,
    id: &str,
    token: &SecretString,
    subscribe: bool,
) {
    match spec
        .behaviour
        .subscribe_asset(client, spec, kind, id, token, subscribe)
        .await
    {
        Ok(true) => {
            tracing::info!(platform = %spec.id, store_id = %store_id, kind, subscribe, "asset webhook subscription changed");
        }
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(platform = %spec.id, store_id = %store_id, kind, subscribe, error = %error, "the asset's webhook subscription failed");
        }
    }
}
