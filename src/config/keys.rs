//! The keys: the token-encryption key (and retired ones) and the API's bearer keys. Every value
//! here is a secret: read through `<NAME>` or `<NAME>_FILE`, never echoed.

use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;

use super::error::ConfigError;
use super::sections::KeySettings;
use super::vars::Vars;
use crate::vault::Key;

/// `TOKEN_ENCRYPTION_KEY` and `TOKEN_ENCRYPTION_OLD_KEYS`; in development without a key, the key
/// file `DEV_KEY_FILE` (default `.growth-engine-dev.key`).
pub(super) fn token_keys(vars: &Vars<'_>) -> Result<KeySettings, ConfigError> {
    let current = vars.secret("TOKEN_ENCRYPTION_KEY")?;
    let old = vars.secret_list("TOKEN_ENCRYPTION_OLD_KEYS")?;
    let current = vars.required_in_production(
        "TOKEN_ENCRYPTION_KEY",
        current,
        " (generate one with `growth-engine keygen`)",
    )?;
    let Some(current) = current else {
        if !old.is_empty() {
            vars.warn(
                "TOKEN_ENCRYPTION_OLD_KEYS is ignored without TOKEN_ENCRYPTION_KEY".to_owned(),
            );
        }
        let file = vars.get("DEV_KEY_FILE").unwrap_or(".growth-engine-dev.key");
        return Ok(KeySettings::DevelopmentFile(PathBuf::from(file)));
    };
    let current = Key::parse(current.expose_secret())
        .map_err(|e| ConfigError::new("TOKEN_ENCRYPTION_KEY", e.to_string()))?;
    let old = old
        .iter()
        .enumerate()
        .map(|(i, text)| {
            Key::parse(text.expose_secret()).map_err(|e| {
                ConfigError::new(
                    "TOKEN_ENCRYPTION_OLD_KEYS",
                    format!("entry {} {}", i + 1, e),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(KeySettings::Configured {
        current: Box::new(current),
        old,
    })
}

/// The public development key: what the API accepts in development when `API_KEYS` is unset.
/// Everyone who has read the README knows it.
pub const DEV_API_KEY: &str = "dev-api-key";

/// The shortest API key production accepts, and the shortest with which a development service
/// listens beyond loopback.
pub(crate) const MIN_API_KEY_LEN: usize = 16;

/// Whether `keys` close the API to strangers: at least one key, each at least
/// [`MIN_API_KEY_LEN`] characters, none of them the public [`DEV_API_KEY`]. A key anyone can
/// guess (`x`, `dev-api-key` written into `API_KEYS`) closes nothing.
pub(super) fn close_the_api(keys: &[SecretString]) -> bool {
    !keys.is_empty()
        && keys.iter().all(|key| {
            let key = key.expose_secret();
            key.len() >= MIN_API_KEY_LEN && key != DEV_API_KEY
        })
}

/// `API_KEYS`: comma- or space-separated bearer keys; in production at least one, each at least
/// 16 characters. Empty in development means the public `dev-api-key`.
pub(super) fn api_keys(vars: &Vars<'_>) -> Result<Vec<SecretString>, ConfigError> {
    let keys = vars.secret_list("API_KEYS")?;
    if !vars.production() {
        return Ok(keys);
    }
    if keys.is_empty() {
        return Err(ConfigError::new(
            "API_KEYS",
            "needs at least one key in production",
        ));
    }
    if let Some(short) = keys
        .iter()
        .position(|k| k.expose_secret().len() < MIN_API_KEY_LEN)
    {
        return Err(ConfigError::new(
            "API_KEYS",
            format!("entry {} is shorter than 16 characters", short + 1),
        ));
    }
    Ok(keys)
}
