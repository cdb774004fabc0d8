//! Judging a presented access token against what the simulated authorization servers issued:
//! where the token is read from, and whether it is live, unknown, expired or revoked.
//!
//! It owns no error bodies: each platform words a [`Denial`] in its own shape.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::ApiCaller;
use crate::exchange::bearer_token;
use crate::exchange::reject;
use crate::meta::{graph_error, query_param};
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

/// The largest Graph form body the sandbox reads.
const FORM_LIMIT: usize = 1 << 20;

/// The parameters of a form-encoded Graph request body, with the request rebuilt around the same
/// bytes: Graph reads `access_token` and `appsecret_proof` from a POST's form as from its query
/// (M18), so the gate must see them there too.
pub(crate) async fn meta_form_params(
    request: Request,
) -> Result<(Request, Vec<(String, String)>), Box<Response>> {
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((request, Vec::new()));
    }
    let (parts, body) = request.into_parts();
    let Ok(bytes) = to_bytes(body, FORM_LIMIT).await else {
        return reject(graph_error(
            StatusCode::BAD_REQUEST,
            100,
            None,
            "(#100) The request body could not be read.",
        ));
    };
    let form = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    Ok((Request::from_parts(parts, Body::from(bytes)), form))
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
