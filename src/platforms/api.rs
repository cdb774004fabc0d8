//! How a platform's API takes a connection's token and how it says the token is dead: the two
//! columns of the table the authenticated proxy (`crate::proxy`) reads. Sources are the keys of
//! `shared/platform-apis.md` ("At a glance", "Proxy breakers").
//!
//! This module only describes and classifies; sending requests is the proxy's business.

use serde_json::Value;

/// How credentials are injected into a proxied API call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyAuth {
    /// `Authorization: Bearer <access token>` (TikTok, Pinterest, X, generic providers).
    Bearer,
    /// Meta Graph: Bearer plus `appsecret_proof` = hex HMAC-SHA256(app secret, token), recomputed
    /// per token (user or Page), required by apps with "Require App Secret" [M17, M18].
    MetaGraph,
    /// Google Ads: Bearer plus `developer-token` and `login-customer-id` from settings when set
    /// [G7, G14].
    GoogleAds,
}

/// How the platform's API says "this access token is dead" (the answer a forced refresh can fix).
///
/// Status alone is not enough: Meta says it with HTTP 400, and TikTok and Pinterest answer a
/// missing scope with 401 too, which no refresh fixes ("Proxy breakers").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadToken {
    /// Meta: 400/401 with `error.code` 190, except subcodes that need the user on facebook.com
    /// (459, 464) or a re-derived Page token (492) [M4].
    GraphCode190,
    /// TikTok: 401 with `error.code` `access_token_invalid` (not `scope_not_authorized`) [T6].
    TikTokCode,
    /// Pinterest: 401 with `code` 2 (not 3 or 29, missing scopes / permission) [P1].
    PinterestCode2,
    /// Any 401 (Google `UNAUTHENTICATED` [G12], X [X5], generic providers per RFC 6750).
    Status401,
}

/// Graph subcodes under code 190 that a new token cannot fix [M4].
const GRAPH_USER_ACTION_SUBCODES: [i64; 3] = [459, 464, 492];

impl DeadToken {
    /// Whether an answer with this status and (possibly partial) body says the token is dead.
    pub(crate) fn is_dead(self, status: u16, body: &[u8]) -> bool {
        let json = || serde_json::from_slice::<Value>(body).ok();
        match self {
            Self::GraphCode190 => {
                if status != 400 && status != 401 {
                    return false;
                }
                let Some(body) = json() else { return false };
                let error = &body["error"];
                error["code"].as_i64() == Some(190)
                    && !error["error_subcode"]
                        .as_i64()
                        .is_some_and(|s| GRAPH_USER_ACTION_SUBCODES.contains(&s))
            }
            Self::TikTokCode => {
                status == 401
                    && json().is_some_and(|b| b["error"]["code"] == "access_token_invalid")
            }
            Self::PinterestCode2 => status == 401 && json().is_some_and(|b| b["code"] == 2),
            Self::Status401 => status == 401,
        }
    }
}

/// Google's wait hint for a 429 (`QuotaErrorDetails.retryDelay`, like `"30s"`), in whole seconds,
/// found anywhere in the error body: Google sends no `Retry-After` [G12].
pub(crate) fn google_retry_delay(body: &[u8]) -> Option<u64> {
    fn find(value: &Value) -> Option<u64> {
        match value {
            Value::Object(map) => map.iter().find_map(|(key, v)| {
                if key == "retryDelay" || key == "retry_delay" {
                    let text = v.as_str()?;
                    let seconds: f64 = text.strip_suffix('s')?.parse().ok()?;
                    // Rounded up: retrying early only earns another 429.
                    Some(seconds.max(0.0).ceil() as u64)
                } else {
                    find(v)
                }
            }),
            Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    find(&serde_json::from_slice(body).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_190_is_dead_but_a_checkpoint_is_not() {
        let dead = br#"{"error":{"code":190,"error_subcode":463,"type":"OAuthException"}}"#;
        assert!(DeadToken::GraphCode190.is_dead(400, dead));
        let checkpoint = br#"{"error":{"code":190,"error_subcode":459}}"#;
        assert!(!DeadToken::GraphCode190.is_dead(400, checkpoint));
        let permission = br#"{"error":{"code":200}}"#;
        assert!(!DeadToken::GraphCode190.is_dead(400, permission));
    }

    #[test]
    fn a_missing_scope_401_is_not_a_dead_token() {
        let scope = br#"{"data":{},"error":{"code":"scope_not_authorized"}}"#;
        assert!(!DeadToken::TikTokCode.is_dead(401, scope));
        let invalid = br#"{"data":{},"error":{"code":"access_token_invalid"}}"#;
        assert!(DeadToken::TikTokCode.is_dead(401, invalid));
        assert!(!DeadToken::PinterestCode2.is_dead(401, br#"{"code":3,"message":"scopes"}"#));
        assert!(DeadToken::PinterestCode2.is_dead(401, br#"{"code":2,"message":"auth"}"#));
        assert!(!DeadToken::Status401.is_dead(403, b""));
    }

    #[test]
    fn googles_retry_delay_is_found_in_the_error_details() {
        let body = br#"{"error":{"code":429,"details":[{"errors":[{"details":{"quotaErrorDetails":{"retryDelay":"29.2s"}}}]}]}}"#;
        assert_eq!(google_retry_delay(body), Some(30));
        assert_eq!(google_retry_delay(b"{}"), None);
    }
}
