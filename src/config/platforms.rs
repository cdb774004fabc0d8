//! The platforms: credentials and endpoint overrides of the built-in ones (from the table in
//! `crate::platforms`), the operator's generic OAuth 2.0 providers, the sandbox, and the limits on
//! every platform call and the proxy's limits and Google Ads headers.
//!
//! Every endpoint URL here is one the service sends client secrets, codes or tokens to, or sends
//! the browser to: in production each must be https.

use std::collections::BTreeMap;
use std::time::Duration;

use super::error::ConfigError;
use super::vars::Vars;
use crate::domain::PlatformId;
use crate::platforms::settings::ApiHeader;
use crate::platforms::settings::{
    ClientCredentials, EventOverrides, GenericProviderSettings, PlatformSettings,
};
use crate::platforms::{BuiltInPlatform, BUILT_IN};
use crate::proxy::shares::FairShareSettings;
use crate::proxy::ProxySettings;
use secrecy::{ExposeSecret, SecretString};

/// Prefixes of variables that are ours whatever the platforms: a variable starting with one that
/// no reader asked for is reported as a probable typo.
const OWN_PREFIXES: [&str; 14] = [
    "GROWTH_",
    "REFRESHER_",
    "LIVENESS_",
    "EXPIRY_WARNING_",
    "REFRESH_FAILING_",
    "WEBHOOK_",
    "DASHBOARD_",
    "TOKEN_ENCRYPTION_",
    "TOKEN_REFRESH_",
    "SHUTDOWN_",
    "RATE_LIMIT_",
    "PLATFORM_",
    "PROXY_",
    "REDIS_SENTINEL",
];

/// `HTTP_TIMEOUT_SECONDS` (default 10, 1 to 20): the limit on every call to a platform.
pub(super) fn timeout(vars: &Vars<'_>) -> Result<Duration, ConfigError> {
    // A refresh holds its lease for 60 s: the platform call and the write of its result must fit
    // well inside, or a second replica could refresh with an already-rotated token.
    vars.seconds_in("HTTP_TIMEOUT_SECONDS", 10, 1..=20)
}

/// `PLATFORM_MAX_RESPONSE_BYTES` (default 1 MiB, 1024 to 64 MiB): the largest platform answer read.
pub(super) fn max_response_bytes(vars: &Vars<'_>) -> Result<usize, ConfigError> {
    vars.number_in("PLATFORM_MAX_RESPONSE_BYTES", 1_048_576, 1024..=67_108_864)
}

/// The proxy: `PROXY_MAX_BODY_BYTES` (default 10 MiB, 1 KiB to 1 GiB) and
/// `PROXY_MAX_RESPONSE_BYTES` (default 50 MiB, 1 KiB to 4 GiB). The platforms' API headers (a
/// developer token, a default account, a pinned version) are read with each platform's settings.
pub(super) fn proxy(vars: &Vars<'_>) -> Result<ProxySettings, ConfigError> {
    Ok(ProxySettings {
        max_body_bytes: vars.number_in("PROXY_MAX_BODY_BYTES", 10 << 20, 1024..=1 << 30)?,
        max_response_bytes: vars.number_in("PROXY_MAX_RESPONSE_BYTES", 50 << 20, 1024..=4 << 30)?,
        fair_share: fair_share(vars)?,
    })
}

/// `FAIR_SHARE_ENABLED`, `FAIR_SHARE_THRESHOLD_PERCENT` and `STORE_CALL_CEILINGS`
/// (`platform=calls per minute`, comma-separated, for built-in platforms).
fn fair_share(vars: &Vars<'_>) -> Result<FairShareSettings, ConfigError> {
    let percent: u32 = vars.number_in("FAIR_SHARE_THRESHOLD_PERCENT", 80, 1..=100)?;
    let mut ceilings = BTreeMap::new();
    for item in vars.list("STORE_CALL_CEILINGS") {
        let invalid = || {
            ConfigError::new(
                "STORE_CALL_CEILINGS",
                "expected a platform's slug=calls per minute, comma-separated (e.g. <slug>=600)",
            )
        };
        let (platform, calls) = item.split_once('=').ok_or_else(invalid)?;
        let platform = platform.trim().to_ascii_lowercase();
        if !BUILT_IN.iter().any(|p| p.slug == platform) {
            return Err(ConfigError::new(
                "STORE_CALL_CEILINGS",
                format!("{platform:?} is not a built-in platform"),
            ));
        }
        let calls: u64 = calls
            .trim()
            .parse()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(invalid)?;
        ceilings.insert(platform, calls);
    }
    Ok(FairShareSettings {
        enabled: vars.bool("FAIR_SHARE_ENABLED", true)?,
        threshold: f64::from(percent) / 100.0,
        ceilings,
    })
}

/// `SANDBOX` (default true in development when the build has the `sandbox` feature; refused in
/// production and in builds without it).
pub(super) fn sandbox(vars: &Vars<'_>) -> Result<bool, ConfigError> {
    let sandbox = vars.bool("SANDBOX", !vars.production() && cfg!(feature = "sandbox"))?;
    if sandbox && !cfg!(feature = "sandbox") {
        return Err(ConfigError::new(
            "SANDBOX",
            "this build has no sandbox: rebuild with the `sandbox` feature",
        ));
    }
    if vars.production() && sandbox {
        return Err(ConfigError::new(
            "SANDBOX",
            "cannot be enabled in production",
        ));
    }
    Ok(sandbox)
}

/// The built-in platforms' settings, by slug.
pub(super) fn built_in(vars: &Vars<'_>) -> Result<BTreeMap<String, PlatformSettings>, ConfigError> {
    let mut platforms = BTreeMap::new();
    for platform in BUILT_IN.iter() {
        let credentials = match (
            vars.get(platform.client_id_var),
            vars.secret(platform.client_secret_var)?,
        ) {
            (Some(id), Some(secret)) => Some(ClientCredentials {
                client_id: id.to_owned(),
                client_secret: secret,
            }),
            _ => None,
        };
        let mut settings = overrides(vars, platform.env_prefix, credentials)?;
        settings.api_headers = api_headers(vars, platform)?;
        platforms.insert(platform.slug.to_owned(), settings);
    }
    Ok(platforms)
}

/// The platform's API headers its settings set: each of its `api_settings` read (a secret one
/// also from `<VAR>_FILE`) and checked; an unset one keeps the definition's default.
fn api_headers(vars: &Vars<'_>, platform: &BuiltInPlatform) -> Result<Vec<ApiHeader>, ConfigError> {
    let mut headers = Vec::new();
    for setting in platform.api_settings {
        let text = if setting.secret {
            vars.secret(setting.var)?
        } else {
            vars.get(setting.var)
                .map(|t| SecretString::from(t.to_owned()))
        };
        let Some(text) = text else { continue };
        let value = (setting.parse)(text.expose_secret())
            .map_err(|message| ConfigError::new(setting.var, message))?;
        headers.push(ApiHeader {
            name: setting.header,
            value: SecretString::from(value),
            secret: setting.secret,
        });
    }
    Ok(headers)
}

/// `OAUTH_PROVIDERS` and each one's `<NAME>_*` variables.
pub(super) fn generic_providers(
    vars: &Vars<'_>,
) -> Result<Vec<GenericProviderSettings>, ConfigError> {
    vars.list("OAUTH_PROVIDERS")
        .iter()
        .map(|name| generic_provider(vars, name))
        .collect()
}

/// The prefixes watched for unknown variables: ours and every platform's.
pub(super) fn watched_prefixes(generic: &[GenericProviderSettings]) -> Vec<String> {
    OWN_PREFIXES
        .iter()
        .map(|p| (*p).to_owned())
        .chain(BUILT_IN.iter().map(|p| format!("{}_", p.env_prefix)))
        .chain(generic.iter().map(|p| format!("{}_", p.id.env_prefix())))
        .collect()
}

fn generic_provider(vars: &Vars<'_>, name: &str) -> Result<GenericProviderSettings, ConfigError> {
    let id = PlatformId::parse(name).map_err(|_| {
        ConfigError::new(
            "OAUTH_PROVIDERS",
            format!("{name:?} is not a slug of lower-case letters, digits and '_'"),
        )
    })?;
    if BUILT_IN.iter().any(|p| p.slug == id.as_str()) {
        return Err(ConfigError::new(
            "OAUTH_PROVIDERS",
            format!("{id} is a built-in platform"),
        ));
    }
    let prefix = id.env_prefix();
    let credentials = match (
        vars.get(&format!("{prefix}_CLIENT_ID")),
        vars.secret(&format!("{prefix}_CLIENT_SECRET"))?,
    ) {
        (Some(id), Some(secret)) => ClientCredentials {
            client_id: id.to_owned(),
            client_secret: secret,
        },
        _ => {
            return Err(ConfigError::new(
                format!("{prefix}_CLIENT_ID"),
                "and its _CLIENT_SECRET are required for a generic provider",
            ))
        }
    };
    let platform = overrides(vars, &prefix, Some(credentials))?;
    for (var, value) in [
        ("AUTHORIZE_URL", &platform.authorize_url),
        ("TOKEN_URL", &platform.token_url),
    ] {
        if value.is_none() {
            return Err(ConfigError::new(
                format!("{prefix}_{var}"),
                "is required for a generic provider",
            ));
        }
    }
    Ok(GenericProviderSettings {
        display_name: vars
            .get(&format!("{prefix}_DISPLAY_NAME"))
            .unwrap_or(id.as_str())
            .to_owned(),
        client_auth_basic: client_auth_basic(vars, &prefix)?,
        pkce: vars.bool(&format!("{prefix}_PKCE"), true)?,
        authorize_params: authorize_params(vars, &prefix)?,
        id,
        platform,
    })
}

/// `<NAME>_CLIENT_AUTH`: `basic` (default) or `body`.
fn client_auth_basic(vars: &Vars<'_>, prefix: &str) -> Result<bool, ConfigError> {
    let name = format!("{prefix}_CLIENT_AUTH");
    match vars.get(&name).map(str::to_ascii_lowercase).as_deref() {
        None | Some("basic") => Ok(true),
        Some("body") => Ok(false),
        Some(_) => Err(ConfigError::new(name, "must be basic or body")),
    }
}

/// `<NAME>_AUTHORIZE_PARAMS`: form-encoded extra authorization parameters.
fn authorize_params(vars: &Vars<'_>, prefix: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let name = format!("{prefix}_AUTHORIZE_PARAMS");
    match vars.get(&name) {
        None => Ok(Vec::new()),
        Some(text) => serde_urlencoded::from_str(text).map_err(|_| {
            ConfigError::new(
                name,
                "must be form-encoded, like prompt=consent&access_type=offline",
            )
        }),
    }
}

/// `<PREFIX>_{AUTHORIZE,TOKEN,REVOKE,USERINFO,API}_URL` (https in production) and `<PREFIX>_SCOPES`.
fn overrides(
    vars: &Vars<'_>,
    prefix: &str,
    credentials: Option<ClientCredentials>,
) -> Result<PlatformSettings, ConfigError> {
    let endpoint = |suffix: &str| vars.https_url_in_production(&format!("{prefix}_{suffix}"));
    let scopes_var = format!("{prefix}_SCOPES");
    Ok(PlatformSettings {
        credentials,
        authorize_url: endpoint("AUTHORIZE_URL")?,
        token_url: endpoint("TOKEN_URL")?,
        revoke_url: endpoint("REVOKE_URL")?,
        userinfo_url: endpoint("USERINFO_URL")?,
        api_url: endpoint("API_URL")?,
        api_headers: Vec::new(),
        scopes: vars.get(&scopes_var).map(|_| vars.list(&scopes_var)),
        events: events(vars, prefix)?,
    })
}

/// What a platform's receivers of inbound events verify with: `<PREFIX>_WEBHOOK_SECRET` (the
/// key that signs them when it is not the client secret), `<PREFIX>_WEBHOOK_VERIFY_TOKEN` (a
/// subscription handshake's token), `<PREFIX>_EVENT_KEYS_URL` (where their signing keys are
/// published), `<PREFIX>_WEBHOOK_FIELDS` (what a selected asset subscribes to), and
/// `PLATFORM_EVENTS_MAX_AGE_SECONDS` (default 300, 30 to 3600: how old a signed timestamp may be).
fn events(vars: &Vars<'_>, prefix: &str) -> Result<EventOverrides, ConfigError> {
    let fields_var = format!("{prefix}_WEBHOOK_FIELDS");
    Ok(EventOverrides {
        secret: vars.secret(&format!("{prefix}_WEBHOOK_SECRET"))?,
        verify_token: vars.secret(&format!("{prefix}_WEBHOOK_VERIFY_TOKEN"))?,
        keys_url: vars.https_url_in_production(&format!("{prefix}_EVENT_KEYS_URL"))?,
        subscribe_fields: vars.get(&fields_var).map(|_| vars.list(&fields_var)),
        max_age_seconds: vars.number_in("PLATFORM_EVENTS_MAX_AGE_SECONDS", 300, 30..=3600)?,
    })
}
