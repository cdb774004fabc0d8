//! Domain types shared by every layer: identifiers, connection status, the connection record and the
//! secret token set. Parsed once at the edge, trusted everywhere else.
//!
//! # Identifiers
//! Every identifier a client sends is checked before anything is keyed on it (a rate-limit table,
//! a cache entry, a query):
//! - `store_id` and `user_id` ([`StoreId`], [`UserId`]): 1 to [`ID_MAX_LEN`] (128) characters,
//!   each an ASCII letter or digit or one of `.` `_` `:` `@` `-` (`^[A-Za-z0-9._:@-]{1,128}$`);
//! - `platform` ([`PlatformId`]): 1 to [`PLATFORM_MAX_LEN`] (32) ASCII letters, digits or `_`,
//!   lower-cased (`^[a-z0-9_]{1,32}$` after lower-casing).
//!
//! Anything else is refused with [`InvalidId`], which names the field; the edge answers it with a
//! 400 (after the API key was checked: an unauthenticated request gets its 401 first).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field} must be 1 to {max} characters of {allowed}")]
pub struct InvalidId {
    /// The name of the field that was refused.
    pub field: &'static str,
    /// The maximum length.
    pub max: usize,
    /// The characters allowed, in words.
    pub allowed: &'static str,
}

const ID_CHARACTERS: &str = "letters, digits, '-', '_', '.', ':' or '@'";
const PLATFORM_CHARACTERS: &str = "letters, digits or '_'";

/// The longest `store_id` or `user_id`, in characters (all ASCII, so also in bytes).
pub(crate) const ID_MAX_LEN: usize = 128;
/// The longest platform slug.
pub(crate) const PLATFORM_MAX_LEN: usize = 32;

fn valid_id_chars(value: &str, max: usize) -> bool {
    !value.is_empty()
        && value.len() <= max
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':' | '@'))
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses and validates the identifier.
            pub fn parse(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                if valid_id_chars(&value, $max) {
                    Ok(Self(value))
                } else {
                    Err(InvalidId { field: $field, max: $max, allowed: ID_CHARACTERS })
                }
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::parse(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_newtype!(
    /// The merchant's store, as the commerce platform names it: 1 to [`ID_MAX_LEN`] characters of
    /// `[A-Za-z0-9._:@-]`.
    StoreId, "store_id", ID_MAX_LEN
);
id_newtype!(
    /// The user (merchant staff member) who started a flow: 1 to [`ID_MAX_LEN`] characters of
    /// `[A-Za-z0-9._:@-]`.
    UserId, "user_id", ID_MAX_LEN
);

/// A platform's slug: one of the five built-in platforms (`meta`, `tiktok`, `google`, `pinterest`,
/// `twitter`) or a generic provider configured by the operator.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlatformId(String);

impl PlatformId {
    /// Parses a slug: 1 to 32 lower-case letters, digits or '_' (lower-cased first).
    pub fn parse(value: &str) -> Result<Self, InvalidId> {
        let invalid = InvalidId {
            field: "platform",
            max: PLATFORM_MAX_LEN,
            allowed: PLATFORM_CHARACTERS,
        };
        // The length first, so that a long slug is refused before it is copied.
        if value.len() > PLATFORM_MAX_LEN {
            return Err(invalid);
        }
        let value = value.to_ascii_lowercase();
        if !value.is_empty()
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            Ok(Self(value))
        } else {
            Err(invalid)
        }
    }

    /// The slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The slug upper-cased, as used in setting names (`META`, `TWITTER`).
    pub fn env_prefix(&self) -> String {
        self.0.to_ascii_uppercase()
    }
}

impl TryFrom<String> for PlatformId {
    type Error = InvalidId;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<PlatformId> for String {
    fn from(value: PlatformId) -> Self {
        value.0
    }
}

impl fmt::Display for PlatformId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The life of a connection, as the plan's `PlatformConnection.status` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionStatus {
    /// A flow was started and has not finished.
    Pending,
    /// Tokens are held and usable.
    Connected,
    /// The platform's grant ran out (or could not be renewed); the merchant must reconnect.
    Expired,
    /// The merchant or the platform withdrew the grant.
    Revoked,
    /// Something failed that needs attention.
    Error,
}

impl ConnectionStatus {
    /// The stored, upper-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Connected => "CONNECTED",
            Self::Expired => "EXPIRED",
            Self::Revoked => "REVOKED",
            Self::Error => "ERROR",
        }
    }
}

impl FromStr for ConnectionStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "PENDING" => Ok(Self::Pending),
            "CONNECTED" => Ok(Self::Connected),
            "EXPIRED" => Ok(Self::Expired),
            "REVOKED" => Ok(Self::Revoked),
            "ERROR" => Ok(Self::Error),
            other => Err(format!("unknown connection status {other:?}")),
        }
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The secrets a platform granted, as held in memory. Sealed by the vault before storage; never
/// printed (`Debug` redacts every secret).
#[derive(Clone)]
pub struct TokenSet {
    /// The bearer token the platform's API accepts.
    pub access_token: SecretString,
    /// The token that renews the access token, where the platform issues one.
    pub refresh_token: Option<SecretString>,
    /// The token type the platform named (normally `Bearer`).
    pub token_type: String,
    /// When the access token stops working, if the platform said.
    pub expires_at: Option<DateTime<Utc>>,
    /// When the platform issued the access token (its lifetime is `expires_at - issued_at`).
    pub issued_at: Option<DateTime<Utc>>,
    /// When the refresh token stops working, if the platform said.
    pub refresh_expires_at: Option<DateTime<Utc>>,
    /// The scopes the platform granted.
    pub scopes: Vec<String>,
    /// Further secrets tied to the grant, by name (Meta's page tokens: `page:{page_id}`).
    pub extra: BTreeMap<String, SecretString>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("token_type", &self.token_type)
            .field("expires_at", &self.expires_at)
            .field("issued_at", &self.issued_at)
            .field("refresh_expires_at", &self.refresh_expires_at)
            .field("scopes", &self.scopes)
            .field("extra", &self.extra.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The plaintext wire form of a [`TokenSet`], only ever fed to the vault.
#[derive(Serialize, Deserialize)]
struct TokenSetPlain {
    #[serde(rename = "a")]
    access_token: String,
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(rename = "t")]
    token_type: String,
    #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
    issued_at: Option<DateTime<Utc>>,
    #[serde(rename = "re", default, skip_serializing_if = "Option::is_none")]
    refresh_expires_at: Option<DateTime<Utc>>,
    #[serde(rename = "s", default)]
    scopes: Vec<String>,
    #[serde(rename = "x", default, skip_serializing_if = "BTreeMap::is_empty")]
    extra: BTreeMap<String, String>,
}

impl TokenSet {
    /// Serialises the set for sealing. The bytes are secret: hand them straight to the vault.
    pub fn to_plaintext(&self) -> Vec<u8> {
        let plain = TokenSetPlain {
            access_token: self.access_token.expose_secret().to_owned(),
            refresh_token: self
                .refresh_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            token_type: self.token_type.clone(),
            expires_at: self.expires_at,
            issued_at: self.issued_at,
            refresh_expires_at: self.refresh_expires_at,
            scopes: self.scopes.clone(),
            extra: self
                .extra
                .iter()
                .map(|(k, v)| (k.clone(), v.expose_secret().to_owned()))
                .collect(),
        };
        // Serialising plain strings, dates and maps of strings cannot fail.
        serde_json::to_vec(&plain).unwrap_or_default()
    }

    /// Parses what [`TokenSet::to_plaintext`] produced.
    pub fn from_plaintext(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let plain: TokenSetPlain = serde_json::from_slice(bytes)?;
        Ok(Self {
            access_token: plain.access_token.into(),
            refresh_token: plain.refresh_token.map(Into::into),
            token_type: plain.token_type,
            expires_at: plain.expires_at,
            issued_at: plain.issued_at,
            refresh_expires_at: plain.refresh_expires_at,
            scopes: plain.scopes,
            extra: plain
                .extra
                .into_iter()
                .map(|(k, v)| (k, SecretString::from(v)))
                .collect(),
        })
    }
}

/// A connection between a store and a platform account, as stored. Tokens stay sealed here; only the
/// lifecycle opens them, and only when a caller needs one. (Serialisable for the Redis cache, which
/// holds it sealed tokens and all.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Connection {
    /// Row id.
    pub id: Uuid,
    /// The store the connection belongs to.
    pub store_id: StoreId,
    /// The user who connected it.
    pub user_id: UserId,
    /// The platform.
    pub platform: PlatformId,
    /// Where the connection stands.
    pub status: ConnectionStatus,
    /// The platform's id of the connected account.
    pub account_id: Option<String>,
    /// The platform's display name of the connected account.
    pub account_name: Option<String>,
    /// The account's picture, where the platform gives one.
    pub account_picture: Option<String>,
    /// The sealed [`TokenSet`]; `None` once the tokens are gone.
    pub sealed_tokens: Option<String>,
    /// The id of the key that sealed `sealed_tokens`.
    pub key_id: Option<String>,
    /// Non-secret platform details (pages, Instagram accounts, ...).
    pub metadata: serde_json::Value,
    /// Scopes the platform granted.
    pub granted_scopes: Vec<String>,
    /// Scopes asked for but not granted.
    pub missing_scopes: Vec<String>,
    /// When the access token expires.
    pub access_token_expires_at: Option<DateTime<Utc>>,
    /// When the refresh token (or Meta's long-lived token) can no longer renew the grant.
    pub refresh_token_expires_at: Option<DateTime<Utc>>,
    /// The last successful refresh.
    pub last_refreshed_at: Option<DateTime<Utc>>,
    /// When the refresher should next look at this connection.
    pub next_refresh_at: Option<DateTime<Utc>>,
    /// Consecutive refresh failures.
    pub refresh_failures: i32,
    /// The last error, as a short safe text.
    pub last_error: Option<String>,
    /// When the current run of refresh failures began (`None` while refreshes succeed).
    #[serde(default)]
    pub failing_since: Option<DateTime<Utc>>,
    /// When the connection's stored health last changed: connected, failures started or stopped,
    /// status changed.
    #[serde(default)]
    pub health_since: Option<DateTime<Utc>>,
    /// The last time the liveness probe (or the connect itself) found the token working.
    #[serde(default)]
    pub last_checked_at: Option<DateTime<Utc>>,
    /// When the liveness probe should next check the token.
    #[serde(default)]
    pub next_check_at: Option<DateTime<Utc>>,
    /// The `reconnect_by` of the last expiry warning's episode.
    #[serde(default)]
    pub expiry_warned_for: Option<DateTime<Utc>>,
    /// The smallest threshold, in days, already warned of in that episode.
    #[serde(default)]
    pub expiry_warned_days: Option<i32>,
    /// When the `connection.refresh_failing` alert of the current failure episode was sent.
    #[serde(default)]
    pub failing_alerted_at: Option<DateTime<Utc>>,
    /// Bumped on every write; optimistic concurrency and cache freshness hang on it.
    pub version: i64,
    /// When the connection was first made.
    pub created_at: DateTime<Utc>,
    /// When the row last changed.
    pub updated_at: DateTime<Utc>,
}

/// `Debug` that names the type and hides every field: for answers that carry a token, a state or a
/// single-use link.
macro_rules! redacted_debug {
    ($($ty:ty),+) => {$(
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($ty), " { [redacted] }"))
            }
        }
    )+};
}
pub(crate) use redacted_debug;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_long_and_odd_characters() {
        assert!(StoreId::parse("").is_err());
        assert!(StoreId::parse("a".repeat(129)).is_err());
        assert!(StoreId::parse("a".repeat(ID_MAX_LEN)).is_ok());
        assert!(UserId::parse("user@example.com:eu-1_a").is_ok());
        assert!(UserId::parse("é").is_err());
        assert!(PlatformId::parse(&"a".repeat(PLATFORM_MAX_LEN + 1)).is_err());
        assert!(PlatformId::parse(&"a".repeat(PLATFORM_MAX_LEN)).is_ok());
        assert!(StoreId::parse("store 1").is_err());
        assert!(StoreId::parse("store<script>").is_err());
        assert!(StoreId::parse("store_42-eu.1").is_ok());
        assert!(PlatformId::parse("Meta").is_ok_and(|p| p.as_str() == "meta"));
        assert!(PlatformId::parse("me-ta").is_err());
    }

    #[test]
    fn token_set_debug_redacts_every_secret() {
        let mut extra = BTreeMap::new();
        extra.insert("page:1".to_owned(), SecretString::from("page-secret-token"));
        let set = TokenSet {
            access_token: "access-secret".into(),
            refresh_token: Some("refresh-secret".into()),
            token_type: "Bearer".into(),
            expires_at: None,
            issued_at: None,
            refresh_expires_at: None,
            scopes: vec!["a".into()],
            extra,
        };
        let shown = format!("{set:?}");
        assert!(!shown.contains("access-secret"));
        assert!(!shown.contains("refresh-secret"));
        assert!(!shown.contains("page-secret-token"));
        let back = TokenSet::from_plaintext(&set.to_plaintext()).expect("round trip");
        assert_eq!(back.access_token.expose_secret(), "access-secret");
        assert_eq!(back.extra["page:1"].expose_secret(), "page-secret-token");
    }
}
