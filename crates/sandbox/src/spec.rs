//! Each simulated platform described as data: its paths, how its authorization request is
//! validated, the shape of its codes and tokens and their lifetimes.
//!
//! The per-platform files hold only what cannot be said as data (token endpoint rules and error
//! shapes); everything the consent screen and the shared helpers need is here.

/// A simulated platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Platform {
    Meta,
    TikTok,
    Google,
    Pinterest,
    Twitter,
}

impl Platform {
    /// Parses a platform key as used in paths (`meta`, `tiktok`, `google`, `pinterest`, `twitter`).
    pub(crate) fn parse(key: &str) -> Option<Self> {
        match key {
            "meta" => Some(Self::Meta),
            "tiktok" => Some(Self::TikTok),
            "google" => Some(Self::Google),
            "pinterest" => Some(Self::Pinterest),
            "twitter" => Some(Self::Twitter),
            _ => None,
        }
    }

    /// The key used in paths.
    pub(crate) fn key(self) -> &'static str {
        self.spec().key
    }

    /// The platform's description.
    pub(crate) fn spec(self) -> &'static PlatformSpec {
        match self {
            Self::Meta => &META,
            Self::TikTok => &TIKTOK,
            Self::Google => &GOOGLE,
            Self::Pinterest => &PINTEREST,
            Self::Twitter => &TWITTER,
        }
    }
}

/// How a platform separates scopes in the authorization request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ScopeSeparator {
    Comma,
    Space,
    CommaOrSpace,
}

/// Whether a platform binds a PKCE challenge to its codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PkceRule {
    /// Not part of the web flow; any PKCE parameters are ignored.
    Ignored,
    /// Bound when sent.
    Optional,
    /// The request is refused without a challenge.
    Required,
}

/// A platform, as the consent screen and the shared helpers see it.
#[derive(Debug)]
pub(crate) struct PlatformSpec {
    pub(crate) key: &'static str,
    pub(crate) display_name: &'static str,
    pub(crate) authorize_path: &'static str,
    pub(crate) token_path: &'static str,
    pub(crate) revoke_path: &'static str,
    pub(crate) userinfo_path: &'static str,
    /// The query parameter naming the client at the authorization endpoint.
    pub(crate) client_param: &'static str,
    pub(crate) scope_separator: ScopeSeparator,
    pub(crate) scope_required: bool,
    /// Meta defaults `response_type` to `code`; the others require it.
    pub(crate) response_type_optional: bool,
    pub(crate) pkce: PkceRule,
    pub(crate) state_max_len: Option<usize>,
    /// TikTok appends the granted scopes to the callback as `scopes=a,b`.
    pub(crate) callback_reports_scopes: bool,
    pub(crate) code_lifetime_seconds: i64,
    pub(crate) code_prefix: &'static str,
    pub(crate) access_prefix: &'static str,
    pub(crate) refresh_prefix: &'static str,
    /// The name the consent screen shows for the simulated account.
    pub(crate) account_name: &'static str,
    /// Meta adds `error_reason=user_denied` when the user cancels.
    pub(crate) denial_reason: Option<&'static str>,
    pub(crate) denial_description: &'static str,
}

const TEN_MINUTES: i64 = 600;

/// Meta (Facebook Login for Business). https://developers.facebook.com/documentation/facebook-login/guides/advanced/manual-flow
static META: PlatformSpec = PlatformSpec {
    key: "meta",
    display_name: "Meta (Facebook)",
    authorize_path: "/sandbox/meta/v25.0/dialog/oauth",
    token_path: "/sandbox/meta/v25.0/oauth/access_token",
    revoke_path: "/sandbox/meta/v25.0/me/permissions",
    userinfo_path: "/sandbox/meta/v25.0/me",
    client_param: "client_id",
    // "a comma or space separated list of Permissions"
    scope_separator: ScopeSeparator::CommaOrSpace,
    scope_required: false,
    response_type_optional: true,
    pkce: PkceRule::Ignored,
    state_max_len: None,
    callback_reports_scopes: false,
    code_lifetime_seconds: TEN_MINUTES,
    code_prefix: "AQ",
    access_prefix: "EAAS",
    refresh_prefix: "",
    account_name: "Sandbox Merchant",
    denial_reason: Some("user_denied"),
    denial_description: "Permissions error",
};

/// TikTok Login Kit v2. https://developers.tiktok.com/doc/login-kit-web
static TIKTOK: PlatformSpec = PlatformSpec {
    key: "tiktok",
    display_name: "TikTok",
    authorize_path: "/sandbox/tiktok/v2/auth/authorize/",
    token_path: "/sandbox/tiktok/v2/oauth/token/",
    revoke_path: "/sandbox/tiktok/v2/oauth/revoke/",
    userinfo_path: "/sandbox/tiktok/v2/user/info/",
    // TikTok names the client `client_key`, never `client_id`.
    client_param: "client_key",
    scope_separator: ScopeSeparator::Comma,
    scope_required: true,
    response_type_optional: false,
    // The web flow has no code_challenge; PKCE is for desktop and mobile apps only.
    pkce: PkceRule::Ignored,
    state_max_len: None,
    callback_reports_scopes: true,
    code_lifetime_seconds: TEN_MINUTES,
    code_prefix: "sbx-tt-",
    access_prefix: "act.",
    refresh_prefix: "rft.",
    account_name: "Sandbox Merchant",
    denial_reason: None,
    denial_description: "The user denied the request.",
};

/// Google web-server flow. https://developers.google.com/identity/protocols/oauth2/web-server
static GOOGLE: PlatformSpec = PlatformSpec {
    key: "google",
    display_name: "Google",
    authorize_path: "/sandbox/google/o/oauth2/v2/auth",
    token_path: "/sandbox/google/token",
    revoke_path: "/sandbox/google/revoke",
    userinfo_path: "/sandbox/google/v1/userinfo",
    client_param: "client_id",
    scope_separator: ScopeSeparator::Space,
    scope_required: true,
    response_type_optional: false,
    pkce: PkceRule::Optional,
    state_max_len: None,
    callback_reports_scopes: false,
    code_lifetime_seconds: TEN_MINUTES,
    // Real Google codes start with "4/" so a client that forgets to URL-decode the callback breaks.
    code_prefix: "4/0Asbx",
    access_prefix: "ya29.sbx",
    refresh_prefix: "1//sbx",
    account_name: "Sandbox Merchant (merchant@sandbox.example)",
    denial_reason: None,
    denial_description: "The user denied the request.",
};

/// Pinterest API v5. https://developers.pinterest.com/docs/getting-started/set-up-authentication-and-authorization/
static PINTEREST: PlatformSpec = PlatformSpec {
    key: "pinterest",
    display_name: "Pinterest",
    authorize_path: "/sandbox/pinterest/oauth/",
    token_path: "/sandbox/pinterest/v5/oauth/token",
    revoke_path: "/sandbox/pinterest/v5/oauth/token/revoke",
    userinfo_path: "/sandbox/pinterest/v5/user_account",
    client_param: "client_id",
    scope_separator: ScopeSeparator::Comma,
    scope_required: true,
    response_type_optional: false,
    pkce: PkceRule::Ignored,
    state_max_len: None,
    callback_reports_scopes: false,
    code_lifetime_seconds: TEN_MINUTES,
    code_prefix: "sbxpin",
    access_prefix: "pina_",
    refresh_prefix: "pinr_",
    account_name: "Sandbox Merchant (@sandboxmerchant)",
    denial_reason: None,
    denial_description: "The user denied the request.",
};

/// X OAuth 2.0 with PKCE. https://docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code
static TWITTER: PlatformSpec = PlatformSpec {
    key: "twitter",
    display_name: "X (Twitter)",
    authorize_path: "/sandbox/twitter/i/oauth2/authorize",
    token_path: "/sandbox/twitter/2/oauth2/token",
    revoke_path: "/sandbox/twitter/2/oauth2/revoke",
    userinfo_path: "/sandbox/twitter/2/users/me",
    client_param: "client_id",
    scope_separator: ScopeSeparator::Space,
    scope_required: true,
    response_type_optional: false,
    // "PKCE is mandatory": only the authorization code with PKCE and refresh grants exist.
    pkce: PkceRule::Required,
    state_max_len: Some(500),
    callback_reports_scopes: false,
    // "The code expires after 30 seconds."
    code_lifetime_seconds: 30,
    code_prefix: "sbxX",
    access_prefix: "sbxXat",
    refresh_prefix: "sbxXrt",
    account_name: "Sandbox Merchant (@sandboxmerchant)",
    denial_reason: None,
    denial_description: "The user denied the request.",
};
