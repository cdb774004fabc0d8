//! Judging a presented API access token against what the simulated authorization servers issued:
//! where the token is read from, and whether it is live, unknown, expired or revoked.
//!
//! It owns no error bodies: each platform words a [`Denial`] in its own shape.

use axum::body::{to_bytes, Body};
use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;

use crate::exchange::bearer_token;
use crate::params::query_param;
use crate::spec::PlatformSpec;
use crate::state::{ApiCaller, Denial, Simulator};

/// The token a request presents: `Authorization: Bearer` everywhere (T6, G7, P10, X12); a platform
/// whose API also reads an `access_token` parameter (M18) takes it from there first.
pub(crate) fn presented_token(
    spec: &PlatformSpec,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Option<String> {
    let from_params = spec
        .api_token_in_params
        .then(|| query_param(params, "access_token"))
        .flatten()
        .filter(|token| !token.is_empty())
        .map(str::to_owned);
    from_params.or_else(|| bearer_token(headers))
}

/// The largest form body the gate reads for a token parameter.
const FORM_LIMIT: usize = 1 << 20;

/// The parameters of a form-encoded request body, with the request rebuilt around the same bytes:
/// a platform that reads `access_token` (and proofs) from a POST's form as from its query (M18)
/// needs the gate to see them there too. `Err` when the body cannot be read.
pub(crate) async fn form_params(request: Request) -> Result<(Request, Vec<(String, String)>), ()> {
    let is_form = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return Ok((request, Vec::new()));
    }
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, FORM_LIMIT).await.map_err(|_| ())?;
    let form = serde_urlencoded::from_bytes(&bytes).unwrap_or_default();
    Ok((Request::from_parts(parts, Body::from(bytes)), form))
}

impl Simulator {
    /// The caller behind an access token of `platform` (a user token, or an object token handed
    /// out with a grant), or why it is refused.
    pub(crate) fn inspect_api_token(
        &self,
        platform: &str,
        token: &str,
    ) -> Result<ApiCaller, Denial> {
        let now = self.now();
        let state = self.lock();
        if let Some(entry) = state.access_tokens.get(token) {
            let grant = state
                .grants
                .get(&entry.grant_id)
                .filter(|grant| grant.spec.key == platform)
                .ok_or(Denial::Invalid)?;
            if entry.revoked || !grant.alive {
                return Err(Denial::Revoked);
            }
            if entry.expires_at <= now {
                return Err(Denial::Expired);
            }
            return Ok(ApiCaller {
                grant: grant.view(entry.grant_id),
                object: None,
            });
        }
        // M2: an object (Page) token derived from a long-lived user token has no expiry; it dies
        // with the user's grant.
        for (grant_id, grant) in &state.grants {
            if grant.spec.key != platform {
                continue;
            }
            let object = grant
                .object_tokens
                .iter()
                .find(|object| object.access_token == token);
            if let Some(object) = object {
                if !grant.alive {
                    return Err(Denial::Revoked);
                }
                return Ok(ApiCaller {
                    grant: grant.view(*grant_id),
                    object: Some(object.clone()),
                });
            }
        }
        Err(Denial::Invalid)
    }
}
