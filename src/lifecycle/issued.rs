//! What the lifecycle hands a calling service: a valid access token with what a caller needs to
//! use it (type, expiry, scopes, account). Shared by the refresh, which produces it, and the
//! hand-out, which serves it.

use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::domain::{Connection, TokenSet};

/// A valid access token, ready for a calling service.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    /// The token.
    pub access_token: SecretString,
    /// Its type (`Bearer`).
    pub token_type: String,
    /// When it expires, if known.
    pub expires_at: Option<DateTime<Utc>>,
    /// Granted scopes.
    pub scopes: Vec<String>,
    /// The platform's account id.
    pub account_id: Option<String>,
}

impl IssuedToken {
    /// The token set opened from `connection`, as handed out.
    pub(crate) fn of(connection: &Connection, tokens: TokenSet) -> Self {
        Self {
            access_token: tokens.access_token,
            token_type: tokens.token_type,
            expires_at: tokens.expires_at,
            scopes: tokens.scopes,
            account_id: connection.account_id.clone(),
        }
    }
}
