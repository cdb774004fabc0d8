//! Grants parked until the merchant confirms: a reconnect from the page that signed in to a
//! different account than the stored connection's is not recorded at the callback. Its grant waits
//! here, sealed in the flow-state store (Redis or in process, like flow states: single use, 10
//! minutes), under a random id the page receives in its redirect. The page shows "You signed in
//! as X. This replaces Y." and either confirms (the grant is taken and recorded) or keeps the old
//! account (the grant is taken and revoked at the platform where it can be).
//!
//! The record carries the store and user of the flow, so only the same page session can read or
//! act on it.
//!
//! A grant nobody settles (the merchant closed the tab) must not stay live at the platform: the
//! offer ends after 10 minutes, but the record is kept [`REAP_GRACE`] longer on the flow-state
//! store's due index, and [`Flow::reap_next_parked`] (run every minute by the app, on every
//! replica) takes each unsettled grant once its offer has ended (30 s later, [`REAP_SLACK`]) and
//! revokes it like "Keep". A grant that could not be parked is revoked at once.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::flow::{Flow, FLOW_TTL_MINUTES};
use crate::domain::{PlatformId, StoreId, TokenSet, UserId};
use crate::error::OAuthError;
use crate::platforms::{AccountInfo, Grant, GrantDetails, RevocationOutcome, TokenGrant};

const PARKED: &str = "parked-grant";

/// How long past its offer an unsettled grant is kept for the reaper: if no replica reaps within
/// this (all down for an hour), the record expires and the grant is left to the platform's own
/// expiry.
pub const REAP_GRACE: Duration = Duration::hours(1);

/// How long past the offer's end a grant waits for the reaper: a confirm that passed its check in
/// the offer's last moment (or on a replica whose clock is a little behind) still finds it.
const REAP_SLACK: Duration = Duration::seconds(30);

/// What the page shows about a parked grant: names only, nothing secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Replacement {
    /// The platform.
    pub platform: PlatformId,
    /// The store of the flow.
    pub store_id: StoreId,
    /// The user of the flow.
    pub user_id: UserId,
    /// The account signed in to now.
    pub new_account_name: Option<String>,
    /// Its id at the platform.
    pub new_account_id: Option<String>,
    /// The account it would replace.
    pub old_account_name: Option<String>,
    /// Its id at the platform.
    pub old_account_id: Option<String>,
}

/// A parked grant as stored (sealed whole by the flow-state store).
#[derive(Serialize, Deserialize)]
struct ParkedGrant {
    replacement: Replacement,
    /// When the merchant can no longer confirm (`None` in records parked before the reaper
    /// existed, which expired with their offer).
    #[serde(default)]
    offer_ends_at: Option<DateTime<Utc>>,
    /// [`TokenSet::to_plaintext`], as text.
    tokens: String,
    scopes_reported: bool,
    account_hint: Option<String>,
    account_picture: Option<String>,
    metadata: serde_json::Value,
    granted_scopes: Option<Vec<String>>,
    extra_secrets: BTreeMap<String, String>,
}

impl ParkedGrant {
    fn from_grant(grant: Grant, replacement: Replacement, offer_ends_at: DateTime<Utc>) -> Self {
        Self {
            replacement,
            offer_ends_at: Some(offer_ends_at),
            tokens: String::from_utf8(grant.tokens.tokens.to_plaintext()).unwrap_or_default(),
            scopes_reported: grant.tokens.scopes_reported,
            account_hint: grant.tokens.account_hint,
            account_picture: grant.account.picture,
            metadata: grant.details.metadata,
            granted_scopes: grant.details.granted_scopes,
            extra_secrets: grant
                .extra_secrets
                .into_iter()
                .map(|(k, v)| (k, v.expose_secret().to_owned()))
                .collect(),
        }
    }

    fn into_grant(self) -> Result<(Grant, Replacement), OAuthError> {
        let tokens = TokenSet::from_plaintext(self.tokens.as_bytes())
            .map_err(|_| OAuthError::StateInvalid)?;
        let r = self.replacement;
        let grant = Grant {
            platform: r.platform.clone(),
            store_id: r.store_id.clone(),
            user_id: r.user_id.clone(),
            tokens: TokenGrant {
                tokens,
                scopes_reported: self.scopes_reported,
                account_hint: self.account_hint,
            },
            account: AccountInfo {
                id: r.new_account_id.clone(),
                name: r.new_account_name.clone(),
                picture: self.account_picture,
            },
            details: GrantDetails {
                metadata: self.metadata,
                granted_scopes: self.granted_scopes,
            },
            extra_secrets: self
                .extra_secrets
                .into_iter()
                .map(|(k, v)| (k, SecretString::from(v)))
                .collect(),
        };
        Ok((grant, r))
    }
}

/// The account id a grant names (user info first, then what the token response said).
pub fn account_id_of(grant: &Grant) -> Option<&str> {
    grant
        .account
        .id
        .as_deref()
        .or(grant.tokens.account_hint.as_deref())
}

impl Flow {
    /// Parks a grant that would replace `old`'s account; returns the id the page confirms with.
    pub async fn park(
        &self,
        grant: Grant,
        old_account_id: Option<String>,
        old_account_name: Option<String>,
    ) -> Result<String, OAuthError> {
        let replacement = Replacement {
            platform: grant.platform.clone(),
            store_id: grant.store_id.clone(),
            user_id: grant.user_id.clone(),
            new_account_id: account_id_of(&grant).map(str::to_owned),
            new_account_name: grant.account.name.clone(),
            old_account_name,
            old_account_id,
        };
        let id = super::flow::random_secret();
        let offer = Duration::minutes(FLOW_TTL_MINUTES);
        let offer_ends_at = self.now() + offer;
        let (platform, tokens) = (grant.platform.clone(), grant.tokens.tokens.clone());
        let parked = ParkedGrant::from_grant(grant, replacement, offer_ends_at);
        // The index entry first: without it a stored grant would never be reaped.
        let stored = async {
            self.states()
                .schedule_reap(PARKED, &id, offer_ends_at + REAP_SLACK)
                .await?;
            self.states()
                .put(PARKED, &id, &parked, offer + REAP_GRACE)
                .await
        }
        .await;
        if let Err(error) = stored {
            // Nobody could ever confirm it: it must not stay live at the platform.
            self.discard_tokens(&platform, &tokens).await;
            return Err(error.into());
        }
        Ok(id)
    }

    /// What a parked grant would replace, for the page session of `store_id` and `user_id`.
    pub async fn replacement(
        &self,
        id: &str,
        store_id: &StoreId,
        user_id: &UserId,
    ) -> Result<Option<Replacement>, OAuthError> {
        let parked: Option<ParkedGrant> = self.states().peek(PARKED, id).await?;
        let now = self.now();
        Ok(parked
            // An ended offer is the reaper's.
            .filter(|p| p.offer_ends_at.is_none_or(|end| end > now))
            .map(|p| p.replacement)
            .filter(|r| &r.store_id == store_id && &r.user_id == user_id))
    }

    /// Takes a parked grant (single use) for the page session of `store_id` and `user_id`. A
    /// record of another session is left where it is.
    pub async fn take_parked(
        &self,
        id: &str,
        store_id: &StoreId,
        user_id: &UserId,
    ) -> Result<Option<(Grant, Replacement)>, OAuthError> {
        if self.replacement(id, store_id, user_id).await?.is_none() {
            return Ok(None);
        }
        let parked: Option<ParkedGrant> = self.states().take(PARKED, id).await?;
        parked.map(ParkedGrant::into_grant).transpose()
    }

    /// Takes one parked grant whose offer ended unsettled and revokes it at the platform where it
    /// can be; returns what it would have replaced and how its revocation went, or `None` when no
    /// grant is due.
    pub async fn reap_next_parked(
        &self,
    ) -> Result<Option<(Replacement, RevocationOutcome)>, OAuthError> {
        loop {
            let Some(parked) = self.states().take_next_due::<ParkedGrant>(PARKED).await? else {
                return Ok(None);
            };
            let platform = parked.replacement.platform.clone();
            match parked.into_grant() {
                Ok((grant, replacement)) => {
                    let outcome = self.discard(&grant).await;
                    return Ok(Some((replacement, outcome)));
                }
                Err(_) => {
                    tracing::warn!(%platform, "a parked grant's tokens were unreadable: dropped unrevoked");
                }
            }
        }
    }

    /// Drops a grant the merchant did not want: revokes it at the platform where it can be.
    pub async fn discard(&self, grant: &Grant) -> RevocationOutcome {
        self.discard_tokens(&grant.platform, &grant.tokens.tokens)
            .await
    }

    async fn discard_tokens(&self, platform: &PlatformId, tokens: &TokenSet) -> RevocationOutcome {
        match self.platform(platform.as_str()) {
            Ok(spec) => self.client().revoke(spec, tokens).await.outcome,
            Err(_) => RevocationOutcome::Unsupported("This platform is not configured.".into()),
        }
    }
}
