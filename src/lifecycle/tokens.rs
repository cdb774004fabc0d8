//! Token hand-out ([`Tokens`]): a valid access token for a store's connection, refreshed first
//! when it is about to expire (or when the caller forces it), and the tokens of a connection's
//! accounts kept in its sealed set.
//!
//! It decides whether a stored token may be handed out as it is; the refresh itself (lease,
//! platform call, write) belongs to `refresh.rs`.

use secrecy::SecretString;

use super::issued::IssuedToken;
use super::refresh::{Force, Refresh};
use super::shared::Core;
use crate::domain::{ConnectionStatus, StoreId};
use crate::error::OAuthError;
use crate::platforms::builtin::asset_kind;
use crate::platforms::PlatformSpec;
use crate::store::StoredAsset;

/// The hand-out of valid tokens, used by the token endpoints, the proxy, asset discovery and the
/// liveness probe. A cheap clone.
#[derive(Debug, Clone)]
pub struct Tokens {
    core: Core,
    refresh: Refresh,
}

impl Tokens {
    /// Hands out tokens, refreshing through `refresh`.
    pub fn new(refresh: Refresh) -> Self {
        Self {
            core: refresh.core().clone(),
            refresh,
        }
    }

    /// The core it stands on (the catalog and the clock, for the proxy).
    pub fn core(&self) -> &Core {
        &self.core
    }

    /// A valid access token for the store's connection: refreshed first when it expires within the
    /// refresh window, or when `force` is set.
    pub async fn access_token(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
        force: bool,
    ) -> Result<IssuedToken, OAuthError> {
        self.valid_token(spec, store_id, force.into()).await
    }

    /// A valid access token after the platform's API said the token is dead: refreshed first,
    /// unless the connection was renewed within the last 30 s (then that renewal's token), so that
    /// however many calls a dead-token answer reaches, the platform sees one refresh per window.
    pub async fn access_token_after_dead_answer(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
    ) -> Result<IssuedToken, OAuthError> {
        self.valid_token(spec, store_id, Force::OncePerWindow).await
    }

    async fn valid_token(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
        force: Force,
    ) -> Result<IssuedToken, OAuthError> {
        let connection = self.core.load(store_id, &spec.id).await?;
        if connection.status != ConnectionStatus::Connected {
            return Err(OAuthError::NotUsable(connection.status));
        }
        let tokens = self.core.open(&connection)?;
        if force == Force::No && self.refresh.usable(&connection, &tokens) {
            return Ok(IssuedToken::of(&connection, tokens));
        }
        self.refresh.refresh_detached(spec, connection, force).await
    }

    /// The token for one of the connection's accounts, resolved through its asset rows (the one
    /// source of truth, shared by the token endpoint and the proxy): the asset, and the token of
    /// the page it belongs to when it is a page or a page's linked account (`None`: the account is
    /// called with the connection's own token). `AssetNotFound` when the connection has no such
    /// asset, or when its page's token is not in the sealed set.
    pub(crate) async fn account_token(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
        account: &str,
    ) -> Result<(StoredAsset, Option<SecretString>), OAuthError> {
        let asset = self
            .core
            .store()
            .list_assets(store_id)
            .await?
            .into_iter()
            .find(|asset| asset.platform == spec.id && asset.id == account)
            .ok_or(OAuthError::AssetNotFound)?;
        let page_id =
            asset_kind(&asset.kind).and_then(|kind| kind.page_of(&asset.id, &asset.details));
        let token = match page_id {
            Some(page_id) => Some(self.page_token(spec, store_id, &page_id).await?),
            None => None,
        };
        Ok((asset, token))
    }

    /// The token of one of the connection's Meta Pages, from its sealed token set
    /// (`AssetNotFound` when the set holds none for that page).
    async fn page_token(
        &self,
        spec: &PlatformSpec,
        store_id: &StoreId,
        page_id: &str,
    ) -> Result<SecretString, OAuthError> {
        let connection = self.core.load(store_id, &spec.id).await?;
        let tokens = self.core.open(&connection)?;
        tokens
            .extra
            .get(&format!("page:{page_id}"))
            .cloned()
            .ok_or(OAuthError::AssetNotFound)
    }
}
