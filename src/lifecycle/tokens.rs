//! Token hand-out ([`Tokens`]): a valid access token for a store's connection, refreshed first
//! when it is about to expire (or when the caller forces it), and the tokens of a connection's
//! accounts kept in its sealed set.
//!
//! It decides whether a stored token may be handed out as it is; the refresh itself (lease,
//! platform call, write) belongs to `refresh.rs`.

use secrecy::SecretString;

use super::issued::IssuedToken;
use super::refresh::Refresh;
use super::shared::Core;
use crate::domain::{ConnectionStatus, StoreId};
use crate::error::OAuthError;
use crate::platforms::PlatformSpec;

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
        let connection = self.core.load(store_id, &spec.id).await?;
        if connection.status != ConnectionStatus::Connected {
            return Err(OAuthError::NotUsable(connection.status));
        }
        let tokens = self.core.open(&connection)?;
        if !force && self.refresh.usable(&connection, &tokens) {
            return Ok(IssuedToken::of(&connection, tokens));
        }
        self.refresh.refresh_detached(spec, connection, force).await
    }

    /// The token of one of the connection's Meta Pages, from its sealed token set
    /// (`AssetNotFound` when the set holds none for that page).
    pub(crate) async fn page_token(
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
