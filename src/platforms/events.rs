//! Inbound platform events, as the platform layer sees them: a request to one of a platform's
//! receivers ([`InboundRequest`]), what verifying it gives ([`Receipt`]: an answer to a challenge,
//! or [`Notice`]s), why a request is refused ([`EventRejection`]), the settings that verify them
//! ([`EventSettings`]), and the shared checks every scheme is made of (HMAC-SHA256 compared in
//! constant time, timestamps).
//!
//! Each platform's scheme (which header, which key, which payload) lives in its own module under
//! `builtin/`, as [`Platform::receive_events`](super::Platform::receive_events); storing, acting on
//! and answering notices belongs to `crate::inbox`. Nothing here trusts a byte of a request before
//! its signature is checked.

use std::fmt;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

/// HMAC-SHA256.
type HmacSha256 = Hmac<Sha256>;

/// What a platform's receiver got: the method, the receiver's name (the last path segment), the
/// query, the headers and the raw body (signatures are over the bytes as sent).
#[derive(Debug)]
pub struct InboundRequest<'a> {
    /// `GET` (a challenge) or `POST` (a delivery).
    pub method: &'a http::Method,
    /// `deauthorize`, `data-deletion`, `webhooks`, `risc`, ...
    pub receiver: &'a str,
    /// The decoded query pairs.
    pub query: &'a [(String, String)],
    /// The request's headers.
    pub headers: &'a http::HeaderMap,
    /// The raw body.
    pub body: &'a [u8],
    /// When it arrived.
    pub now: DateTime<Utc>,
}

impl InboundRequest<'_> {
    /// A query parameter.
    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body parsed as JSON (only once its signature is checked).
    pub fn json(&self) -> Result<Value, EventRejection> {
        serde_json::from_slice(self.body)
            .map_err(|_| EventRejection::Malformed("the body is not JSON"))
    }
}

/// What verifying a request gave.
#[derive(Debug)]
pub enum Receipt {
    /// A challenge answered (Meta's `hub.challenge`, X's CRC, LinkedIn's `challengeCode`): the
    /// body to send with 200 and its content type. Nothing is stored.
    Challenge {
        /// `text/plain` or `application/json`.
        content_type: &'static str,
        /// The answer.
        body: String,
    },
    /// Verified notices (possibly none: a batch of unknown fields), to store before answering.
    Notices(Vec<Notice>),
}

/// What a notice asks of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeKind {
    /// The person removed the app, or the platform revoked every token of the account.
    Removal,
    /// The person asked for their data to be deleted.
    DataDeletion,
    /// Permissions granted or revoked (Meta's `permissions` topic).
    Permissions,
    /// Something happened to content (a post published, a comment): forwarded to the services.
    Content,
    /// Known to be harmless or not acted on (a verification token, a session event): stored and
    /// counted only.
    Other,
}

impl NoticeKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Removal => "removal",
            Self::DataDeletion => "data_deletion",
            Self::Permissions => "permissions",
            Self::Content => "content",
            Self::Other => "other",
        }
    }

    /// The kind a stored name stands for (`Other` for one this build does not know).
    pub fn parse(text: &str) -> Self {
        match text {
            "removal" => Self::Removal,
            "data_deletion" => Self::DataDeletion,
            "permissions" => Self::Permissions,
            "content" => Self::Content,
            _ => Self::Other,
        }
    }
}

/// Which of our records a notice's account id is matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeAccount {
    /// The connected account (`account_id` of a connection: Meta's app-scoped user id, TikTok's
    /// `open_id`, Google's `sub`, X's user id).
    User(String),
    /// An asset of a connection (a Facebook page, an Instagram account).
    Asset(String),
}

/// One verified notice.
#[derive(Debug, Clone)]
pub struct Notice {
    /// What it asks of the service.
    pub kind: NoticeKind,
    /// The platform's name for it (`authorization.removed`, `feed`, `tokens-revoked`, ...).
    pub event_type: String,
    /// The account it concerns, when it names one.
    pub account: Option<NoticeAccount>,
    /// The platform's own id of the event, when it gives one (`jti`, `event_uuid`); else the
    /// receiver uses a digest of the notice.
    pub platform_id: Option<String>,
    /// When it happened, as the platform says.
    pub occurred_at: Option<DateTime<Utc>>,
    /// What the platform sent about it.
    pub payload: Value,
}

impl Notice {
    /// The dedupe key: the platform's own id, else a digest of the notice's type, account and
    /// payload (a redelivery carries the same bytes, so the same digest).
    pub fn dedupe_key(&self) -> String {
        if let Some(id) = &self.platform_id {
            return format!("id:{id}");
        }
        let account = match &self.account {
            Some(NoticeAccount::User(id)) => format!("user:{id}"),
            Some(NoticeAccount::Asset(id)) => format!("asset:{id}"),
            None => String::new(),
        };
        let digest = Sha256::new()
            .chain_update(self.event_type.as_bytes())
            .chain_update([0])
            .chain_update(account.as_bytes())
            .chain_update([0])
            .chain_update(self.payload.to_string().as_bytes())
            .finalize();
        format!("sha256:{}", hex::encode(digest))
    }
}

/// Why a request to a receiver was refused. Nothing is stored for any of these.
#[derive(Debug, thiserror::Error)]
pub enum EventRejection {
    /// The platform has no such receiver (or no receiver at all).
    #[error("no such receiver")]
    NoSuchReceiver,
    /// The method is not one this receiver answers.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A setting the receiver needs is missing (a verify token, credentials).
    #[error("the receiver is not configured: {0}")]
    NotConfigured(&'static str),
    /// The signature (or the challenge's token) is missing or wrong.
    #[error("{0}")]
    BadSignature(&'static str),
    /// The signed timestamp is outside the tolerance.
    #[error("the signature's timestamp is too old or in the future")]
    Stale,
    /// The signed body is not what the scheme promises.
    #[error("{0}")]
    Malformed(&'static str),
    /// The keys that verify the request could not be fetched: the platform should retry.
    #[error("the platform's signing keys are unavailable")]
    KeysUnavailable,
}

/// The settings a platform's receivers verify with, besides its client credentials.
#[derive(Clone, Default)]
pub struct EventSettings {
    /// The key inbound events are signed with when it is not the client secret
    /// (`<PLATFORM>_WEBHOOK_SECRET`: X's consumer secret).
    pub secret: Option<SecretString>,
    /// The token a subscription handshake must present (`<PLATFORM>_WEBHOOK_VERIFY_TOKEN`: Meta's
    /// `hub.verify_token`).
    pub verify_token: Option<SecretString>,
    /// Where the keys that sign inbound events are published (`<PLATFORM>_EVENT_KEYS_URL`:
    /// Google's RISC configuration).
    pub keys_url: Option<Url>,
    /// What an asset's subscription asks for (`<PLATFORM>_WEBHOOK_FIELDS`: Meta's page fields).
    pub subscribe_fields: Vec<String>,
    /// How old a signed timestamp may be (`PLATFORM_EVENTS_MAX_AGE_SECONDS`, default 300).
    pub max_age_seconds: i64,
}

impl fmt::Debug for EventSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSettings")
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field(
                "verify_token",
                &self.verify_token.as_ref().map(|_| "[redacted]"),
            )
            .field("keys_url", &self.keys_url)
            .field("subscribe_fields", &self.subscribe_fields)
            .field("max_age_seconds", &self.max_age_seconds)
            .finish()
    }
}

/// The public keys a platform signs its tokens with (a JWKS), fetched and cached by the caller.
#[async_trait::async_trait]
pub trait EventKeys: Send + Sync {
    /// The issuer and the key with `kid` from the configuration at `discovery` (its `jwks_uri`):
    /// `Ok(None)` when the platform publishes no such key, even after a fresh fetch.
    async fn key(
        &self,
        discovery: &Url,
        kid: &str,
    ) -> Result<Option<(String, jsonwebtoken::jwk::Jwk)>, EventRejection>;
}

/// HMAC-SHA256 of `message` with `key`.
pub fn hmac_sha256(key: &SecretString, message: &[&[u8]]) -> [u8; 32] {
    // HMAC takes keys of any length: the error branch cannot happen.
    let Ok(mut mac) = HmacSha256::new_from_slice(key.expose_secret().as_bytes()) else {
        return [0; 32];
    };
    for part in message {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Whether `signature` is HMAC-SHA256 of `message` with `key`, compared in constant time.
pub fn hmac_matches(key: &SecretString, message: &[&[u8]], signature: &[u8]) -> bool {
    let Ok(mut mac) = HmacSha256::new_from_slice(key.expose_secret().as_bytes()) else {
        return false;
    };
    for part in message {
        mac.update(part);
    }
    mac.verify_slice(signature).is_ok()
}

/// Whether a signed Unix timestamp is within `max_age` seconds of `now` (either way: a clock a
/// little ahead of ours is not an attack, one far ahead is a replay prepared in advance).
pub fn timestamp_fresh(signed: i64, now: DateTime<Utc>, max_age: i64) -> bool {
    (now.timestamp() - signed).abs() <= max_age
}

/// A Unix timestamp as a time.
pub fn unix_time(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_4231_case_2_vector() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        let key = SecretString::from("Jefe".to_owned());
        let mac = hmac_sha256(&key, &[b"what do ya ", b"want for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(hmac_matches(&key, &[b"what do ya want for nothing?"], &mac));
        let mut wrong = mac;
        wrong[31] ^= 1;
        assert!(!hmac_matches(
            &key,
            &[b"what do ya want for nothing?"],
            &wrong
        ));
    }

    #[test]
    fn a_timestamp_counts_as_fresh_within_the_tolerance_either_way() {
        let now = unix_time(1_700_000_000).unwrap();
        assert!(timestamp_fresh(1_700_000_000 - 300, now, 300));
        assert!(!timestamp_fresh(1_700_000_000 - 301, now, 300));
        assert!(!timestamp_fresh(1_700_000_000 + 301, now, 300));
    }

    #[test]
    fn a_notice_without_an_id_is_keyed_by_a_digest_of_what_it_says() {
        let notice = |payload: Value| Notice {
            kind: NoticeKind::Content,
            event_type: "feed".into(),
            account: Some(NoticeAccount::Asset("1".into())),
            platform_id: None,
            occurred_at: None,
            payload,
        };
        let a = notice(serde_json::json!({"v": 1}));
        assert_eq!(
            a.dedupe_key(),
            notice(serde_json::json!({"v": 1})).dedupe_key()
        );
        assert_ne!(
            a.dedupe_key(),
            notice(serde_json::json!({"v": 2})).dedupe_key()
        );
        let with_id = Notice {
            platform_id: Some("jti-1".into()),
            ..a
        };
        assert_eq!(with_id.dedupe_key(), "id:jti-1");
    }
}
