//! A built-in platform's definition, as its module under `builtin/` writes it: the table line's
//! type and its parts. The catalog turns a definition and the operator's settings into a
//! [`PlatformSpec`](super::platform::PlatformSpec).

use super::assets::AssetKind;
use super::platform::{
    AccountMapping, ClientAuth, ConsentMode, ErrorShape, Pkce, Platform, ReconnectRule, Renewal,
    Revocation, TokenMethod,
};

/// One line of the table of built-in platforms.
#[derive(Debug)]
pub struct BuiltInPlatform {
    /// The slug used in paths and settings.
    pub slug: &'static str,
    /// The prefix of its override variables (`<PREFIX>_TOKEN_URL`, `<PREFIX>_SCOPES`, ...).
    pub env_prefix: &'static str,
    /// The variable holding the client id (`META_APP_ID`, `TIKTOK_CLIENT_KEY`, ...).
    pub client_id_var: &'static str,
    /// The variable holding the client secret.
    pub client_secret_var: &'static str,
    /// The name shown to merchants.
    pub display_name: &'static str,
    /// The page's lettered mark.
    pub mark: Mark,
    /// The real OAuth endpoints (settings may override each).
    pub endpoints: Endpoints,
    /// The scopes requested by default (`<PREFIX>_SCOPES` overrides them).
    pub scopes: &'static [&'static str],
    /// How a grant is renewed.
    pub renewal: Renewal,
    /// Until when a grant lasts without the merchant (health's `reconnect_by`), with its source.
    pub reconnect: ReconnectRule,
    /// What the platform does beyond this data, stage by stage.
    pub behaviour: &'static dyn Platform,
    /// The base URL of the platform's API, version pinned, for calls made with its tokens
    /// (`shared/platform-apis.md`, "At a glance").
    pub api_base: &'static str,
    /// Headers every call to the API carries, each from a setting.
    pub api_settings: &'static [ApiHeaderSetting],
    /// Headers every call to the API carries with a fixed value (a protocol version); the caller
    /// may replace them through the proxy.
    pub fixed_api_headers: &'static [(&'static str, &'static str)],
    /// The kinds of asset its discovery finds, in the order views list them.
    pub asset_kinds: &'static [AssetKind],
    /// Variables under its prefix that its own client libraries read, not us (never reported as
    /// typos).
    pub foreign_vars: &'static [&'static str],
    /// The defaults of its inbound events' settings.
    pub events: EventDefinition,
    /// Whether the built-in sandbox simulates it (and stands in when it has no credentials).
    pub simulated: bool,
    /// How it speaks OAuth, beyond endpoints and scopes.
    pub protocol: Protocol,
}

/// The defaults of a platform's inbound-event settings (`<PREFIX>_EVENT_KEYS_URL`,
/// `<PREFIX>_WEBHOOK_FIELDS` override them).
#[derive(Debug, Clone, Copy)]
pub struct EventDefinition {
    /// Where the keys that sign its events are published (a discovery document).
    pub keys_url: Option<&'static str>,
    /// The path under the sandbox's base where the sandbox publishes them.
    pub sandbox_keys_path: Option<&'static str>,
    /// What a selected asset's subscription asks for, comma-separated.
    pub subscribe_fields: &'static str,
}

impl EventDefinition {
    /// No keys to fetch, no asset subscriptions.
    pub const NONE: Self = Self {
        keys_url: None,
        sandbox_keys_path: None,
        subscribe_fields: "",
    };
}

/// A header of a platform's API calls and the setting that holds its value.
#[derive(Debug, Clone, Copy)]
pub struct ApiHeaderSetting {
    /// The variable (`<PREFIX>_...`); a secret one is also read from `<VAR>_FILE`.
    pub var: &'static str,
    /// The header.
    pub header: &'static str,
    /// Whether the value is a secret (kept out of logs and the settings dump, never the caller's).
    pub secret: bool,
    /// The value when the variable is unset (`None`: no header).
    pub default: Option<&'static str>,
    /// Checks and normalises the setting's text; the error is the settings error's message.
    pub parse: fn(&str) -> Result<String, &'static str>,
}

/// A setting's text as it is.
pub fn as_written(text: &str) -> Result<String, &'static str> {
    Ok(text.to_owned())
}

/// The lettered mark the connections page shows on a platform's card.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    /// The letter.
    pub letter: &'static str,
    /// The CSS class that colours it (`mark--<slug>`).
    pub class: &'static str,
}

/// A built-in platform's OAuth endpoints.
#[derive(Debug, Clone, Copy)]
pub struct Endpoints {
    /// Authorization endpoint.
    pub authorize: &'static str,
    /// Token endpoint.
    pub token: &'static str,
    /// Revocation endpoint, if the platform has one.
    pub revoke: Option<&'static str>,
    /// User-info endpoint.
    pub userinfo: Option<&'static str>,
}

/// How a built-in platform speaks OAuth: the parts of its spec settings never change.
#[derive(Debug, Clone)]
pub struct Protocol {
    /// How scopes are joined in the authorization request.
    pub scope_separator: &'static str,
    /// The name of the client-id parameter.
    pub client_id_param: &'static str,
    /// Token endpoint client authentication.
    pub client_auth: ClientAuth,
    /// Token endpoint method.
    pub token_method: TokenMethod,
    /// PKCE.
    pub pkce: Pkce,
    /// Further fixed authorization parameters.
    pub authorize_params: &'static [(&'static str, &'static str)],
    /// How "Grant missing permissions" asks again (incremental where the platform supports it).
    pub missing_consent: ConsentMode,
    /// Whether a refresh invalidates the previous refresh token.
    pub refresh_rotates: bool,
    /// How to revoke.
    pub revocation: Revocation,
    /// Error body shape.
    pub errors: ErrorShape,
    /// Where the account's fields are.
    pub account: AccountMapping,
}
