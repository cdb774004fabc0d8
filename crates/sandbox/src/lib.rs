//! Strict offline simulators of the five platforms' OAuth 2.0 protocols (Meta, TikTok, Google,
//! Pinterest, X) and of the parts of their APIs the service's clients use.
//!
//! This crate owns the simulated authorization servers: a sandbox consent screen per platform, the
//! token, revocation and user-info endpoints, the codes, grants and tokens they hand out, and the
//! controls and observations the integration tests use (faults, token lifetimes, revoked grants,
//! recorded token requests). It also owns the simulated resource APIs (identity, asset listings,
//! one publishing call per platform) that accept only the access tokens the simulated
//! authorization servers issued, with the controls and observations of those calls (throttling,
//! forced token failures, recorded API requests, published items). Each platform's rules follow
//! `/work/shared/providers.md` and `/work/shared/platform-apis.md`; every rejection carries the real
//! platform's status code and error body shape, so a client that passes against the simulator has
//! handled the platform's quirks rather than a forgiving stand-in.
//!
//! It does not own the service's OAuth client (that lives in the core) nor decide where it is mounted:
//! [`router`] returns routes under `/sandbox/{platform}/...` that the service merges in development and
//! the tests serve alone on their own port.
//!
//! It is a crate of its own so that the production build leaves it out: the service depends on it
//! through its default-on `sandbox` feature (re-exported as `growth_engine::sandbox`), and the
//! production image is built with `--no-default-features`. It depends on nothing of the service but
//! the shared clock crate (`growth-engine-clock`), so tests drive its time with the same
//! `ManualClock` as the service's.
//!
//! Layout: [`spec`](self) describes each platform as data, `consent` renders and answers the shared
//! consent screen, `exchange` holds what the token endpoints share (client authentication, PKCE, code
//! redemption, faults), and one file per platform holds that platform's OAuth rules. `api` serves
//! the platforms' resource APIs under `/sandbox/{platform}/api/...` ([`api_base`]): a shared gate
//! and bearer check, then one file per platform (`api/meta.rs`, ...) following
//! `/work/shared/platform-apis.md`.

mod api;
mod consent;
mod exchange;
mod google;
mod memory;
mod meta;
mod pinterest;
mod spec;
mod tiktok;
mod twitter;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use axum::Router;
use chrono::{DateTime, Duration, Utc};
use rand::distributions::{Alphanumeric, DistString};

use growth_engine_clock::{SharedClock, SystemClock};
use spec::Platform;

pub use api::{api_base, ApiRateLimit, ApiRequestRecord, PublishedItem};

/// The platforms the sandbox simulates, by the key used in its paths.
pub const PLATFORMS: [&str; 5] = ["meta", "tiktok", "google", "pinterest", "twitter"];

/// A registered OAuth client at a simulated platform.
#[derive(Clone)]
pub struct SimClient {
    /// The platform key, one of [`PLATFORMS`].
    pub platform: String,
    /// The client identifier (TikTok calls it `client_key`).
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// The redirect URIs registered for the client; an authorization request must use one of them
    /// byte for byte.
    pub redirect_uris: Vec<String>,
}

// The secret is never printed, so a test failure or a log line cannot leak it.
impl fmt::Debug for SimClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimClient")
            .field("platform", &self.platform)
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

/// One call to a simulated token endpoint, as the tests observe it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequestRecord {
    /// The `grant_type` parameter, or `""` when the request had none.
    pub grant_type: String,
    /// Whether the simulator answered with a usable success (a fault is never ok).
    pub ok: bool,
    /// The HTTP status of the answer.
    pub status: u16,
}

/// A failure injected into a platform's token endpoint (see [`Simulator::set_fault`]).
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status and an error body in the platform's shape.
    Status(u16),
    /// Answer 200 with a body that is not JSON (`<html>not json`).
    Garbage,
    /// Wait this long, then answer normally.
    Delay(StdDuration),
    /// Answer 429 with a `Retry-After` header.
    RateLimited {
        /// The value of the `Retry-After` header.
        retry_after_seconds: u64,
    },
}

/// The endpoints of one platform's simulator under some base URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxEndpoints {
    /// The consent screen (authorization endpoint).
    pub authorize: String,
    /// The token endpoint.
    pub token: String,
    /// The revocation endpoint.
    pub revoke: String,
    /// The endpoint that describes the authorizing account.
    pub userinfo: String,
}

/// The endpoints of `platform`'s simulator under `base` (e.g. `http://127.0.0.1:8003`, no trailing
/// slash); `None` for a platform the sandbox does not simulate.
pub fn endpoints(base: &str, platform: &str) -> Option<SandboxEndpoints> {
    let spec = Platform::parse(platform)?.spec();
    let base = base.trim_end_matches('/');
    Some(SandboxEndpoints {
        authorize: format!("{base}{}", spec.authorize_path),
        token: format!("{base}{}", spec.token_path),
        revoke: format!("{base}{}", spec.revoke_path),
        userinfo: format!("{base}{}", spec.userinfo_path),
    })
}

/// Every simulator route (all under `/sandbox/{platform}/...`), state applied, ready to be merged
/// into another router or served alone.
pub fn router(sim: Simulator) -> Router {
    Router::new()
        .merge(consent::routes())
        .merge(meta::routes())
        .merge(tiktok::routes())
        .merge(google::routes())
        .merge(pinterest::routes())
        .merge(twitter::routes())
        .merge(api::routes(sim.clone()))
        .with_state(sim)
}

/// A shared, cheap-clone handle to the simulators' state.
#[derive(Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

struct Shared {
    clients: Vec<SimClient>,
    clock: SharedClock,
    state: Mutex<State>,
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let client_ids: Vec<(&str, &str)> = self
            .shared
            .clients
            .iter()
            .map(|c| (c.platform.as_str(), c.client_id.as_str()))
            .collect();
        f.debug_struct("Simulator")
            .field("clients", &client_ids)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// A simulator with these registered clients, reading the system clock.
    pub fn new(clients: Vec<SimClient>) -> Self {
        Self::with_clock(clients, Arc::new(SystemClock))
    }

    /// A simulator reading time from `clock`, so tests can expire codes and tokens without sleeping.
    pub fn with_clock(clients: Vec<SimClient>, clock: SharedClock) -> Self {
        Self {
            shared: Arc::new(Shared {
                clients,
                clock,
                state: Mutex::new(State::default()),
            }),
        }
    }

    /// The built-in sandbox client for `platform`: client id `sandbox-{platform}-client`, secret
    /// `sandbox-{platform}-secret`, redirect URI `{api_url}/api/v1/oauth/callback/{platform}`.
    pub fn sandbox_client(platform: &str, api_url: &str) -> SimClient {
        SimClient {
            platform: platform.to_owned(),
            client_id: format!("sandbox-{platform}-client"),
            client_secret: format!("sandbox-{platform}-secret"),
            redirect_uris: vec![format!(
                "{}/api/v1/oauth/callback/{platform}",
                api_url.trim_end_matches('/')
            )],
        }
    }

    /// Every call to `platform`'s token endpoint so far, in order.
    pub fn token_requests(&self, platform: &str) -> Vec<TokenRequestRecord> {
        self.observe(platform, |p| p.token_requests.clone())
    }

    /// The raw token values `platform`'s revocation endpoint has revoked, in order.
    pub fn revocations(&self, platform: &str) -> Vec<String> {
        self.observe(platform, |p| p.revocations.clone())
    }

    /// Every access token `platform` has issued, in order.
    pub fn issued_access_tokens(&self, platform: &str) -> Vec<String> {
        self.observe(platform, |p| p.issued_access_tokens.clone())
    }

    /// Every refresh token `platform` has issued, in order.
    pub fn issued_refresh_tokens(&self, platform: &str) -> Vec<String> {
        self.observe(platform, |p| p.issued_refresh_tokens.clone())
    }

    /// Makes `platform`'s token endpoint fail as described (or stop failing with `None`).
    pub fn set_fault(&self, platform: &str, fault: Option<Fault>) {
        self.control(platform, |p| p.fault = fault);
    }

    /// Sets the lifetime of the access tokens `platform` issues from now on (for Meta, both the
    /// short-lived and the long-lived ones).
    pub fn set_access_token_ttl(&self, platform: &str, ttl_seconds: i64) {
        self.control(platform, |p| p.access_ttl_override = Some(ttl_seconds));
    }

    /// Simulates the user removing the app: every access and refresh token of `platform` stops
    /// working.
    pub fn revoke_all_grants(&self, platform: &str) {
        let Some(platform) = Platform::parse(platform) else {
            return;
        };
        let mut state = self.lock();
        for grant in state.grants.values_mut() {
            if grant.platform == platform {
                grant.alive = false;
            }
        }
        if platform == Platform::Google {
            state.google_consented_clients.clear();
        }
        // The user removed the app: nothing granted before carries over to a new consent.
        state.remembered.retain(|(p, _, _), _| *p != platform);
    }

    /// Makes Meta's `debug_token` answer HTTP 503 with Graph's code 2 (`true`), or work again
    /// (`false`); the token endpoint and the Graph API are unaffected.
    pub fn set_meta_debug_token_unavailable(&self, unavailable: bool) {
        self.control("meta", |p| p.debug_token_unavailable = unavailable);
    }

    /// How many `debug_token` calls Meta has answered, failed ones included.
    pub fn meta_debug_token_calls(&self) -> usize {
        self.observe("meta", |p| p.debug_token_calls)
    }

    /// Counts a `debug_token` call and says whether it should fail.
    pub(crate) fn debug_token_call(&self) -> bool {
        let mut state = self.lock();
        let meta = state.platforms.entry(Platform::Meta).or_default();
        meta.debug_token_calls += 1;
        meta.debug_token_unavailable
    }

    /// Makes approval on `platform`'s consent screen grant exactly these scopes, whatever was checked
    /// (`None` restores the checkboxes' say).
    pub fn set_granted_scopes_override(&self, platform: &str, scopes: Option<Vec<String>>) {
        self.control(platform, |p| p.granted_scopes_override = scopes);
    }

    fn observe<T: Default>(&self, platform: &str, read: impl FnOnce(&PlatformState) -> T) -> T {
        let Some(platform) = Platform::parse(platform) else {
            return T::default();
        };
        let state = self.lock();
        state.platforms.get(&platform).map(read).unwrap_or_default()
    }

    fn control(&self, platform: &str, change: impl FnOnce(&mut PlatformState)) {
        if let Some(platform) = Platform::parse(platform) {
            change(self.lock().platforms.entry(platform).or_default());
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the maps consistent (every change is a single
        // insert or flag flip), so a poisoned lock is still safe to use.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.shared.clock.now()
    }

    pub(crate) fn client(&self, platform: Platform, client_id: &str) -> Option<&SimClient> {
        self.shared
            .clients
            .iter()
            .find(|c| c.platform == platform.key() && c.client_id == client_id)
    }

    pub(crate) fn fault(&self, platform: Platform) -> Option<Fault> {
        self.lock()
            .platforms
            .get(&platform)
            .and_then(|p| p.fault.clone())
    }

    pub(crate) fn record_token_request(&self, platform: Platform, record: TokenRequestRecord) {
        self.lock()
            .platforms
            .entry(platform)
            .or_default()
            .token_requests
            .push(record);
    }

    pub(crate) fn record_revocation(&self, platform: Platform, token: &str) {
        self.lock()
            .platforms
            .entry(platform)
            .or_default()
            .revocations
            .push(token.to_owned());
    }

    pub(crate) fn granted_scopes_override(&self, platform: Platform) -> Option<Vec<String>> {
        self.lock()
            .platforms
            .get(&platform)
            .and_then(|p| p.granted_scopes_override.clone())
    }

    /// The access-token lifetime for `platform`: the test override, else `default_seconds`.
    pub(crate) fn access_ttl(&self, platform: Platform, default_seconds: i64) -> i64 {
        self.lock()
            .platforms
            .get(&platform)
            .and_then(|p| p.access_ttl_override)
            .unwrap_or(default_seconds)
    }

    /// Keeps an authorization request server-side until the consent form comes back; returns its
    /// single-use id.
    pub(crate) fn store_pending(&self, request: PendingAuthorization) -> String {
        let request_id = random_string(32);
        let now = self.now();
        let mut state = self.lock();
        // Abandoned consent screens would otherwise pile up in a long-running dev server.
        state.pending.retain(|_, pending| pending.expires_at > now);
        state.pending.insert(request_id.clone(), request);
        request_id
    }

    /// Takes (and so consumes) a pending authorization request.
    pub(crate) fn take_pending(&self, request_id: &str) -> Option<PendingAuthorization> {
        let now = self.now();
        let pending = self.lock().pending.remove(request_id)?;
        (pending.expires_at > now).then_some(pending)
    }

    /// Issues an authorization code for an approved request.
    pub(crate) fn issue_code(&self, approved: ApprovedAuthorization) -> String {
        let spec = approved.platform.spec();
        let code = format!("{}{}", spec.code_prefix, random_string(40));
        let now = self.now();
        let issued = IssuedCode {
            expires_at: now + Duration::seconds(spec.code_lifetime_seconds),
            approved,
            used: false,
            grant: None,
        };
        let mut state = self.lock();
        // Used codes are kept until they expire so that a replay is recognised as one.
        state.codes.retain(|_, code| code.expires_at > now);
        state.codes.insert(code.clone(), issued);
        code
    }

    /// Whether `client_id` has consented to Google before (so a new consent does not mint another
    /// refresh token), and remembers that it now has.
    pub(crate) fn google_first_consent(&self, client_id: &str) -> bool {
        self.lock()
            .google_consented_clients
            .insert(client_id.to_owned())
    }

    pub(crate) fn forget_google_consent(&self, client_id: &str) {
        let mut state = self.lock();
        state.google_consented_clients.remove(client_id);
        state
            .remembered
            .retain(|(p, c, _), _| !(*p == Platform::Google && c == client_id));
    }

    /// Redeems an authorization code: checks it is known, unused, unexpired, issued to `client_id`
    /// for the same `redirect_uri` and (when `check_pkce`) that the verifier matches; on success
    /// starts a grant and returns it.
    pub(crate) fn redeem_code(
        &self,
        platform: Platform,
        redemption: &CodeRedemption<'_>,
    ) -> Result<RedeemedCode, CodeRejection> {
        let now = self.now();
        let mut state = self.lock();
        let Some(code) = state.codes.get(redemption.code) else {
            return Err(CodeRejection::Unknown);
        };
        if code.approved.platform != platform {
            return Err(CodeRejection::Unknown);
        }
        if code.used {
            // RFC 6749 §4.1.2: a replayed code SHOULD revoke the tokens issued from it.
            if let Some(grant) = code.grant {
                if let Some(grant) = state.grants.get_mut(&grant) {
                    grant.alive = false;
                }
            }
            return Err(CodeRejection::Reused);
        }
        if code.expires_at <= now {
            return Err(CodeRejection::Expired);
        }
        if code.approved.client_id != redemption.client_id {
            return Err(CodeRejection::WrongClient);
        }
        match redemption.redirect_uri {
            None => return Err(CodeRejection::RedirectMissing),
            Some(uri) if uri != code.approved.redirect_uri => {
                return Err(CodeRejection::RedirectMismatch)
            }
            Some(_) => {}
        }
        if redemption.check_pkce {
            exchange::check_pkce(code.approved.pkce.as_ref(), redemption.code_verifier)?;
        }
        let approved = code.approved.clone();
        let grant_id = state.start_grant(&approved, now);
        if let Some(code) = state.codes.get_mut(redemption.code) {
            code.used = true;
            code.grant = Some(grant_id);
        }
        Ok(RedeemedCode { grant_id, approved })
    }

    /// Mints an access token for a live grant, valid for `ttl_seconds`.
    pub(crate) fn issue_access_token(&self, grant_id: u64, ttl_seconds: i64) -> String {
        let expires_at = self.now() + Duration::seconds(ttl_seconds);
        let mut state = self.lock();
        let Some(platform) = state.grants.get(&grant_id).map(|g| g.platform) else {
            return String::new();
        };
        let token = format!("{}{}", platform.spec().access_prefix, random_string(48));
        state.access_tokens.insert(
            token.clone(),
            AccessTokenEntry {
                grant_id,
                expires_at,
                revoked: false,
            },
        );
        state
            .platforms
            .entry(platform)
            .or_default()
            .issued_access_tokens
            .push(token.clone());
        token
    }

    /// Mints a refresh token for a live grant; `ttl_seconds` of `None` never expires.
    pub(crate) fn issue_refresh_token(&self, grant_id: u64, ttl_seconds: Option<i64>) -> String {
        let expires_at = ttl_seconds.map(|ttl| self.now() + Duration::seconds(ttl));
        let mut state = self.lock();
        let Some(platform) = state.grants.get(&grant_id).map(|g| g.platform) else {
            return String::new();
        };
        let token = format!("{}{}", platform.spec().refresh_prefix, random_string(48));
        state.refresh_tokens.insert(
            token.clone(),
            RefreshTokenEntry {
                grant_id,
                expires_at,
                status: RefreshStatus::Active,
            },
        );
        state
            .platforms
            .entry(platform)
            .or_default()
            .issued_refresh_tokens
            .push(token.clone());
        token
    }

    /// The grant behind a usable access token of `platform`: known, unexpired, not revoked, grant
    /// alive.
    pub(crate) fn authenticate(&self, platform: Platform, token: &str) -> Option<GrantView> {
        let now = self.now();
        let state = self.lock();
        let entry = state.access_tokens.get(token)?;
        let grant = state.grants.get(&entry.grant_id)?;
        let usable =
            !entry.revoked && entry.expires_at > now && grant.alive && grant.platform == platform;
        usable.then(|| grant.view(entry.grant_id))
    }

    /// What `platform` knows of an access token it issued, whatever its state (Meta's
    /// `debug_token` reports expired and revoked tokens too); `None` for a token it never issued.
    pub(crate) fn inspect_access_token(
        &self,
        platform: Platform,
        token: &str,
    ) -> Option<TokenInspection> {
        let now = self.now();
        let state = self.lock();
        let entry = state.access_tokens.get(token)?;
        let grant = state.grants.get(&entry.grant_id)?;
        if grant.platform != platform {
            return None;
        }
        let status = if entry.revoked || !grant.alive {
            TokenStatus::Revoked
        } else if entry.expires_at <= now {
            TokenStatus::Expired
        } else {
            TokenStatus::Valid
        };
        Some(TokenInspection {
            grant: grant.view(entry.grant_id),
            granted_at: grant.granted_at,
            expires_at: entry.expires_at,
            status,
        })
    }

    /// Looks up a refresh token of `platform` held by `client_id`, whatever its status.
    pub(crate) fn refresh_token_state(
        &self,
        platform: Platform,
        client_id: &str,
        token: &str,
    ) -> RefreshLookup {
        let now = self.now();
        let state = self.lock();
        let Some(entry) = state.refresh_tokens.get(token) else {
            return RefreshLookup::Unknown;
        };
        let Some(grant) = state.grants.get(&entry.grant_id) else {
            return RefreshLookup::Unknown;
        };
        if grant.platform != platform || grant.client_id != client_id {
            return RefreshLookup::Unknown;
        }
        if !grant.alive || entry.expires_at.is_some_and(|at| at <= now) {
            return RefreshLookup::Dead;
        }
        match entry.status {
            RefreshStatus::Active => RefreshLookup::Active(grant.view(entry.grant_id)),
            RefreshStatus::Rotated => RefreshLookup::Rotated(entry.grant_id),
            RefreshStatus::Revoked => RefreshLookup::Dead,
        }
    }

    /// Marks a refresh token as replaced by a newer one.
    pub(crate) fn retire_refresh_token(&self, token: &str) {
        if let Some(entry) = self.lock().refresh_tokens.get_mut(token) {
            entry.status = RefreshStatus::Rotated;
        }
    }

    /// Kills a whole grant: every access and refresh token issued under it stops working.
    pub(crate) fn kill_grant(&self, grant_id: u64) {
        if let Some(grant) = self.lock().grants.get_mut(&grant_id) {
            grant.alive = false;
        }
    }

    /// Finds the live grant behind a token of `platform` (access or refresh, not expired).
    pub(crate) fn live_grant_of_token(&self, platform: Platform, token: &str) -> Option<GrantView> {
        if let Some(grant) = self.authenticate(platform, token) {
            return Some(grant);
        }
        let now = self.now();
        let state = self.lock();
        let entry = state.refresh_tokens.get(token)?;
        let grant = state.grants.get(&entry.grant_id)?;
        let usable = entry.status == RefreshStatus::Active
            && entry.expires_at.is_none_or(|at| at > now)
            && grant.alive
            && grant.platform == platform;
        usable.then(|| grant.view(entry.grant_id))
    }

    /// Revokes one token of `platform` (access or refresh) held by `client_id` without touching
    /// the rest of its grant; returns whether it was usable before.
    pub(crate) fn revoke_single_token(
        &self,
        platform: Platform,
        client_id: &str,
        token: &str,
    ) -> bool {
        if self
            .live_grant_of_token(platform, token)
            .is_none_or(|grant| grant.client_id != client_id)
        {
            return false;
        }
        let mut state = self.lock();
        if let Some(entry) = state.access_tokens.get_mut(token) {
            entry.revoked = true;
        }
        if let Some(entry) = state.refresh_tokens.get_mut(token) {
            entry.status = RefreshStatus::Revoked;
        }
        true
    }

    /// The Meta pages shared with a grant (each with its own page token).
    pub(crate) fn meta_pages(&self, grant_id: u64) -> Vec<meta::PageGrant> {
        self.lock()
            .grants
            .get(&grant_id)
            .map(|g| g.meta_pages.clone())
            .unwrap_or_default()
    }
}

/// A random alphanumeric string (from the thread-local CSPRNG).
pub(crate) fn random_string(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

/// An authorization request that passed validation, waiting for the consent form.
#[derive(Clone, Debug)]
pub(crate) struct PendingAuthorization {
    pub(crate) platform: Platform,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: Option<String>,
    pub(crate) requested_scopes: Vec<String>,
    pub(crate) pkce: Option<PkceChallenge>,
    pub(crate) google_offline: bool,
    pub(crate) google_prompt_consent: bool,
    /// Google's `include_granted_scopes=true`: the grant carries every scope granted before.
    pub(crate) include_granted_scopes: bool,
    /// The scopes the consent screen shows: the requested ones, less those Meta will not ask
    /// again (declined before, without `auth_type=rerequest`).
    pub(crate) shown_scopes: Vec<String>,
    /// The simulated account signed in on the consent screen.
    pub(crate) account: u32,
    pub(crate) expires_at: DateTime<Utc>,
}

/// What the user approved on the consent screen; bound to the code.
#[derive(Clone, Debug)]
pub(crate) struct ApprovedAuthorization {
    pub(crate) platform: Platform,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) requested_scopes: Vec<String>,
    pub(crate) granted_scopes: Vec<String>,
    pub(crate) pkce: Option<PkceChallenge>,
    pub(crate) google_offline: bool,
    pub(crate) google_prompt_consent: bool,
    pub(crate) account: u32,
}

/// A PKCE challenge as sent to the authorization endpoint (RFC 7636 §4.3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct PkceChallenge {
    pub(crate) challenge: String,
    pub(crate) method: PkceMethod,
}

/// The PKCE transformation (RFC 7636 §4.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PkceMethod {
    Plain,
    S256,
}

/// The parameters of a code exchange that the simulator checks against the code.
pub(crate) struct CodeRedemption<'a> {
    pub(crate) code: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) redirect_uri: Option<&'a str>,
    pub(crate) code_verifier: Option<&'a str>,
    pub(crate) check_pkce: bool,
}

/// Why a code exchange was refused; each platform words it in its own shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CodeRejection {
    Unknown,
    Reused,
    Expired,
    WrongClient,
    RedirectMissing,
    RedirectMismatch,
    VerifierMissing,
    VerifierMismatch,
    VerifierUnexpected,
}

/// A successfully redeemed code: the new grant and what was approved.
pub(crate) struct RedeemedCode {
    pub(crate) grant_id: u64,
    pub(crate) approved: ApprovedAuthorization,
}

/// A read-only view of a grant.
#[derive(Clone, Debug)]
pub(crate) struct GrantView {
    pub(crate) grant_id: u64,
    pub(crate) client_id: String,
    pub(crate) requested_scopes: Vec<String>,
    pub(crate) scopes: Vec<String>,
    /// The simulated account that consented (0 the default merchant).
    pub(crate) account: u32,
}

impl GrantView {
    pub(crate) fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// An access token as its platform sees it ([`Simulator::inspect_access_token`]).
pub(crate) struct TokenInspection {
    pub(crate) grant: GrantView,
    pub(crate) granted_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) status: TokenStatus,
}

/// Whether an issued access token still works, and if not why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TokenStatus {
    Valid,
    Expired,
    Revoked,
}

/// The state of a refresh token presented to a token endpoint.
pub(crate) enum RefreshLookup {
    Unknown,
    Dead,
    Rotated(u64),
    Active(GrantView),
}

#[derive(Default)]
struct State {
    pending: HashMap<String, PendingAuthorization>,
    codes: HashMap<String, IssuedCode>,
    grants: HashMap<u64, Grant>,
    next_grant_id: u64,
    access_tokens: HashMap<String, AccessTokenEntry>,
    refresh_tokens: HashMap<String, RefreshTokenEntry>,
    platforms: HashMap<Platform, PlatformState>,
    google_consented_clients: HashSet<String>,
    /// What each account has granted and declined each client before, by platform.
    remembered: HashMap<(Platform, String, u32), memory::Remembered>,
}

impl State {
    fn start_grant(&mut self, approved: &ApprovedAuthorization, now: DateTime<Utc>) -> u64 {
        self.next_grant_id += 1;
        let grant_id = self.next_grant_id;
        let meta_pages = if approved.platform == Platform::Meta {
            meta::new_page_grants()
        } else {
            Vec::new()
        };
        self.grants.insert(
            grant_id,
            Grant {
                platform: approved.platform,
                client_id: approved.client_id.clone(),
                requested_scopes: approved.requested_scopes.clone(),
                scopes: approved.granted_scopes.clone(),
                alive: true,
                account: approved.account,
                meta_pages,
                granted_at: now,
            },
        );
        grant_id
    }
}

#[derive(Default)]
struct PlatformState {
    token_requests: Vec<TokenRequestRecord>,
    revocations: Vec<String>,
    issued_access_tokens: Vec<String>,
    issued_refresh_tokens: Vec<String>,
    fault: Option<Fault>,
    access_ttl_override: Option<i64>,
    granted_scopes_override: Option<Vec<String>>,
    /// The account the consent screen signs in as (0 the default merchant).
    account: u32,
    api: api::ApiState,
    /// Meta's `debug_token`: failing on purpose, and the calls answered.
    debug_token_unavailable: bool,
    debug_token_calls: usize,
}

struct IssuedCode {
    approved: ApprovedAuthorization,
    expires_at: DateTime<Utc>,
    used: bool,
    grant: Option<u64>,
}

struct Grant {
    platform: Platform,
    client_id: String,
    requested_scopes: Vec<String>,
    scopes: Vec<String>,
    alive: bool,
    account: u32,
    meta_pages: Vec<meta::PageGrant>,
    /// When the user consented (Meta's data-access window runs from here).
    granted_at: DateTime<Utc>,
}

impl Grant {
    fn view(&self, grant_id: u64) -> GrantView {
        GrantView {
            grant_id,
            client_id: self.client_id.clone(),
            requested_scopes: self.requested_scopes.clone(),
            scopes: self.scopes.clone(),
            account: self.account,
        }
    }
}

struct AccessTokenEntry {
    grant_id: u64,
    expires_at: DateTime<Utc>,
    revoked: bool,
}

struct RefreshTokenEntry {
    grant_id: u64,
    expires_at: Option<DateTime<Utc>>,
    status: RefreshStatus,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefreshStatus {
    Active,
    Rotated,
    Revoked,
}
