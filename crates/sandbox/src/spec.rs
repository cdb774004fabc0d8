//! A simulated platform described as data: its paths, how its authorization request is validated,
//! the shape of its codes and tokens and their lifetimes, and what its consent remembers.
//!
//! This module owns only plain data (no behaviour, no imports from the crate): each platform module
//! fills one [`PlatformSpec`], and the shared code (consent screen, code redemption, token minting,
//! the API gate) reads it. What cannot be said as data is a method of
//! `platform::SimulatedPlatform`.

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

/// What a new consent carries over from what the account granted (and declined) the client before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ConsentMemory {
    /// Nothing: the grant holds what this consent granted.
    Forgotten,
    /// Everything granted before, when the request asks for it
    /// ([`AuthorizeOptions::include_granted_scopes`]).
    OnRequest,
    /// Everything granted before, always; declined scopes are not asked again unless the request
    /// says so ([`AuthorizeOptions::ask_declined_again`]), and the grant's requested list names
    /// them so the platform can report them declined.
    Always,
}

/// The platform-specific options an authorization request may carry, read by
/// `SimulatedPlatform::authorize_options` and named for what they do.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct AuthorizeOptions {
    /// The client asked for offline access (a refresh token).
    pub(crate) offline_access: bool,
    /// The client asked to show the consent screen again, whatever was granted before.
    pub(crate) force_consent: bool,
    /// The grant should carry every scope granted before ([`ConsentMemory::OnRequest`]).
    pub(crate) include_granted_scopes: bool,
    /// Declined scopes are asked again ([`ConsentMemory::Always`]).
    pub(crate) ask_declined_again: bool,
}

/// A platform, as the consent screen and the shared helpers see it.
#[derive(Debug)]
pub(crate) struct PlatformSpec {
    /// The key used in paths and by the tests (`/sandbox/{key}/...`).
    pub(crate) key: &'static str,
    pub(crate) display_name: &'static str,
    pub(crate) authorize_path: &'static str,
    pub(crate) token_path: &'static str,
    pub(crate) revoke_path: &'static str,
    pub(crate) userinfo_path: &'static str,
    /// Whether the token endpoint also answers GET (parameters in the query).
    pub(crate) token_accepts_get: bool,
    /// The segment after `/sandbox/{key}/api/` that stands for the real API's root (its pinned
    /// version, e.g. `v25.0`).
    pub(crate) api_root: &'static str,
    /// The query parameter naming the client at the authorization endpoint.
    pub(crate) client_param: &'static str,
    pub(crate) scope_separator: ScopeSeparator,
    pub(crate) scope_required: bool,
    /// Whether a missing `response_type` means `code` (else it is required).
    pub(crate) response_type_optional: bool,
    pub(crate) pkce: PkceRule,
    pub(crate) state_max_len: Option<usize>,
    /// Whether the callback also reports the granted scopes as `scopes=a,b`.
    pub(crate) callback_reports_scopes: bool,
    pub(crate) consent_memory: ConsentMemory,
    /// Whether the API takes the access token from an `access_token` query or form parameter
    /// too (and then prefers it to the bearer header).
    pub(crate) api_token_in_params: bool,
    pub(crate) code_lifetime_seconds: i64,
    pub(crate) code_prefix: &'static str,
    pub(crate) access_prefix: &'static str,
    pub(crate) refresh_prefix: &'static str,
    /// The name the consent screen shows for the simulated account.
    pub(crate) account_name: &'static str,
    /// The `error` the callback carries when the user cancels.
    pub(crate) denial_error: &'static str,
    /// An `error_reason` added to a cancel, where the platform sends one.
    pub(crate) denial_reason: Option<&'static str>,
    pub(crate) denial_description: &'static str,
}

impl PlatformSpec {
    /// The route of `rest` (e.g. `me/accounts`) under the platform's simulated API root.
    pub(crate) fn api_path(&self, rest: &str) -> String {
        format!("/sandbox/{}/api/{}/{rest}", self.key, self.api_root)
    }
}

/// Ten minutes, the code lifetime most platforms document.
pub(crate) const TEN_MINUTES: i64 = 600;
