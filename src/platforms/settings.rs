//! What the operator's settings say about one platform: client credentials and overrides of the
//! built-in definition. Read by `config`, applied by the catalog.

use std::fmt;

use secrecy::SecretString;
use url::Url;

use crate::domain::PlatformId;

/// A header every call to a platform's API carries, with its value from the platform's settings
/// (see `definition::ApiHeaderSetting`).
#[derive(Clone)]
pub struct ApiHeader {
    /// The header's name.
    pub name: &'static str,
    /// Its value.
    pub value: SecretString,
    /// A secret (a developer token): always ours, never the caller's, and marked sensitive. A
    /// non-secret one (a default account, a pinned version) is only a default the caller may
    /// replace through the proxy.
    pub secret: bool,
}

impl fmt::Debug for ApiHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiHeader")
            .field("name", &self.name)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

/// A platform's client credentials.
#[derive(Clone)]
pub struct ClientCredentials {
    /// The public client id (`META_APP_ID`, `TIKTOK_CLIENT_KEY`, ...).
    pub client_id: String,
    /// The client secret.
    pub client_secret: SecretString,
}

impl fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .finish()
    }
}

/// Per-platform settings: credentials and overrides of the catalog's defaults.
#[derive(Debug, Clone, Default)]
pub struct PlatformSettings {
    /// Credentials, if both halves are set.
    pub credentials: Option<ClientCredentials>,
    /// `<PLATFORM>_AUTHORIZE_URL`.
    pub authorize_url: Option<Url>,
    /// `<PLATFORM>_TOKEN_URL`.
    pub token_url: Option<Url>,
    /// `<PLATFORM>_REVOKE_URL`.
    pub revoke_url: Option<Url>,
    /// `<PLATFORM>_USERINFO_URL`.
    pub userinfo_url: Option<Url>,
    /// `<PLATFORM>_API_URL`: the API base (asset discovery, the proxy).
    pub api_url: Option<Url>,
    /// The platform's API headers that its settings set (its `api_settings`, read and checked).
    pub api_headers: Vec<ApiHeader>,
    /// `<PLATFORM>_SCOPES` (comma- or space-separated).
    pub scopes: Option<Vec<String>>,
    /// The inbound-event settings it sets.
    pub events: EventOverrides,
}

/// The inbound-event settings of a platform, as set (see `crate::platforms::events`).
#[derive(Clone, Default)]
pub struct EventOverrides {
    /// `<PLATFORM>_WEBHOOK_SECRET`.
    pub secret: Option<SecretString>,
    /// `<PLATFORM>_WEBHOOK_VERIFY_TOKEN`.
    pub verify_token: Option<SecretString>,
    /// `<PLATFORM>_EVENT_KEYS_URL`.
    pub keys_url: Option<Url>,
    /// `<PLATFORM>_WEBHOOK_FIELDS`.
    pub subscribe_fields: Option<Vec<String>>,
    /// `PLATFORM_EVENTS_MAX_AGE_SECONDS`.
    pub max_age_seconds: i64,
}

impl fmt::Debug for EventOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventOverrides")
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

/// A generic OAuth 2.0 provider declared by the operator (`OAUTH_PROVIDERS=acme` plus `ACME_*`).
#[derive(Debug, Clone)]
pub struct GenericProviderSettings {
    /// Its slug.
    pub id: PlatformId,
    /// `<NAME>_DISPLAY_NAME`, default the slug.
    pub display_name: String,
    /// Endpoints and scopes; `authorize_url` and `token_url` are required.
    pub platform: PlatformSettings,
    /// `<NAME>_CLIENT_AUTH`: `basic` (default) or `body`.
    pub client_auth_basic: bool,
    /// `<NAME>_PKCE`: `true` (default) or `false`.
    pub pkce: bool,
    /// `<NAME>_AUTHORIZE_PARAMS`: further authorization parameters, form-encoded
    /// (`prompt=consent&access_type=offline`).
    pub authorize_params: Vec<(String, String)>,
}
