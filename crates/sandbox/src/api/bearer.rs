//! Judging a presented access token against what the simulated authorization servers issued:
//! where the token is read from, and whether it is live, unknown, expired or revoked.
//!
//! It owns no error bodies: each platform words a [`Denial`] in its own shape.

use axum::http::HeaderMap;

use super::ApiCaller;
use crate::exchange::bearer_token;
use crate::meta::query_param;
use crate::spec::Platform;
use crate::Simulator;

/// Why a token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    /// No token in the request.
    Missing,
    /// A token the platform never issued (or issued for another platform).
    Invalid,
    /// A token past its lifetime.
    Expired,
    /// A token revoked, or whose grant the user removed.
    Revoked,
}

/// The token a request presents: `Authorization: Bearer` everywhere (T6, G7, P10, X12); Meta also
/// takes an `access_token` query parameter, which its SDK uses (M18) and which wins when both are
/// sent.
pub(crate) fn presented_token(
    platform: Platform,
    headers: &HeaderMap,
    query: &[(String, String)],
) -> Option<String> {
    let from_query = (platform == Platform::Meta)
        .then(|| query_param(query, "access_token"))
        .flatten()
        .filter(|token| !token.is_empty())
        .map(str::to_owned);
    from_query.or_else(|| bearer_token(headers))
}

impl Simulator {
    /// The caller behind an access token of `platform` (a user token, or for Meta a Page token),
    /// or why it is refused.
    pub(crate) fn inspect_api_token(
        &self,
        platform: Platform,
        token: &str,
    ) -> Result<ApiCaller, Denial> {
        let now = self.now();
        let state = self.lock();
        if let Some(entry) = state.access_tokens.get(token) {
            let grant = state
                .grants
                .get(&entry.grant_id)
                .filter(|grant| grant.platform == platform)
                .ok_or(Denial::Invalid)?;
            if entry.revoked || !grant.alive {
                return Err(Denial::Revoked);
            }
            if entry.expires_at <= now {
                return Err(Denial::Expired);
            }
            return Ok(ApiCaller {
                grant: grant.view(entry.grant_id),
                page: None,
            });
        }
        if platform != Platform::Meta {
            return Err(Denial::Invalid);
        }
        // M2: a Page token derived from a long-lived user token has no expiry; it dies with the
        // user's grant.
        for (grant_id, grant) in &state.grants {
            let page = grant
                .meta_pages
                .iter()
                .find(|page| page.access_token() == token);
            if let Some(page) = page {
                if !grant.alive {
                    return Err(Denial::Revoked);
                }
                return Ok(ApiCaller {
                    grant: grant.view(*grant_id),
                    page: Some(page.clone()),
                });
            }
        }
        Err(Denial::Invalid)
    }
}
