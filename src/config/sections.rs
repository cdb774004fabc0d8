//! The typed parts of the settings that the readers build and `Settings` holds: the environment,
//! where connections are stored, where the token-encryption key comes from.

use std::fmt;
use std::path::PathBuf;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use crate::vault::Key;

/// `ENVIRONMENT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Environment {
    /// Local work: embedded defaults and the sandbox platforms are allowed.
    Development,
    /// Real merchants: PostgreSQL, Redis, a key, API keys and https are required.
    Production,
}

impl Environment {
    /// The setting's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

/// Where connections are stored.
#[derive(Clone)]
pub enum DatabaseSettings {
    /// An embedded SQLite file (the default with no `DATABASE_URL`).
    Sqlite(String),
    /// PostgreSQL; the URL may carry a password, so it is secret.
    Postgres(SecretString),
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl DatabaseSettings {
    /// A printable description with any password masked.
    pub fn describe(&self) -> String {
        match self {
            Self::Sqlite(url) => format!("sqlite ({url})"),
            Self::Postgres(url) => format!("postgres ({})", mask_url(url.expose_secret())),
        }
    }
}

/// Where the token-encryption key comes from.
#[derive(Debug, Clone)]
pub enum KeySettings {
    /// `TOKEN_ENCRYPTION_KEY` (and `TOKEN_ENCRYPTION_OLD_KEYS`).
    Configured {
        /// The key new values are sealed with.
        current: Box<Key>,
        /// Retired keys still accepted for reading.
        old: Vec<Key>,
    },
    /// Development only: a key file created on first start.
    DevelopmentFile(PathBuf),
}

/// Masks the password of a URL for printing.
pub(crate) fn mask_url(value: &str) -> String {
    match Url::parse(value) {
        Ok(mut url) => {
            if url.password().is_some() {
                let _ = url.set_password(Some("****"));
            }
            url.to_string()
        }
        Err(_) => "[unparseable URL]".into(),
    }
}
