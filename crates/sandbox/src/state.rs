//! The simulators' shared state and the handle to it ([`Simulator`]): registered clients, pending
//! consent screens, codes, grants, access and refresh tokens, and per platform the test controls
//! and observations (faults, token lifetimes, recorded calls, switches, the API's log), and the
//! platforms' outgoing notices (the `outbox`, which `events` sends).
//!
//! It owns the protocol bookkeeping every platform shares (code redemption with RFC 6749 and
//! RFC 7636 checks, token minting and lookup, revocation) and knows platforms only by key and by
//! their [`PlatformSpec`]; it names none. It does not answer HTTP: the platform modules word every
//! outcome in their platform's shape.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration as StdDuration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::outbox::Outbox;
use crate::spec::{AuthorizeOptions, PlatformSpec};
use growth_engine_clock::{SharedClock, SystemClock};

/// A registered OAuth client at a simulated platform.
#[derive(Clone)]
pub struct SimClient {
    /// The platform key (one of the sandbox's `PLATFORMS`).
    pub platform: String,
    /// The client identifier (some platforms call it otherwise, e.g. `client_key`).
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

/// The switch of the strict readings (see [`Simulator::strict`]).
pub(crate) const STRICT: &str = "strict";

/// The switch of a platform's "require a token proof" (see [`Simulator::require_token_proofs`]).
pub(crate) const REQUIRES_TOKEN_PROOF: &str = "requires_token_proof";

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
    /// Process the call by the platform's rules (a code is redeemed, a refresh mints new tokens
    /// and, where the platform rotates, retires the presented refresh token), then lose the
    /// answer: the connection closes before a byte of it is sent, as when a network drops the
    /// response or a proxy resets the connection after the platform acted. The call is recorded
    /// with the status the platform gave it, never as ok.
    LoseAnswer,
    /// Hold each call, unanswered, until the fault is changed: a held call then goes on under the
    /// new fault (answered normally once it is cleared). Tests use it to act while a call is known
    /// to be at the platform; [`Simulator::held_token_calls`] says how many are waiting.
    Hold,
}

/// Makes a platform's API throttle every call (see [`Simulator::set_api_rate_limited`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiRateLimit {
    /// When access comes back, in seconds, reported in whatever header or body field the
    /// platform uses for it (rounded as the platform rounds); platforms that document no hint
    /// send none.
    pub retry_after_seconds: u64,
}

/// A budget of API calls the platform counts for the whole app, shared by every merchant (token)
/// connected through it, over a sliding window (as Meta's platform limit rolls over an hour): past
/// it every call is throttled, whoever makes it (see [`Simulator::set_app_budget`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppBudget {
    /// Calls allowed in any window.
    pub calls: u64,
    /// The window, in seconds.
    pub window_seconds: u64,
}

/// Where an app budget stands after a call (what the platform's usage headers report).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppBudgetUsage {
    /// The budget.
    pub budget: AppBudget,
    /// Calls counted in the window, this one included.
    pub used: u64,
    /// When the oldest counted call leaves the window (Unix seconds).
    pub reset: i64,
}

/// One call to a simulated API, as the tests observe it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiRequestRecord {
    /// The HTTP method.
    pub method: String,
    /// The path, without the query (which may carry a token).
    pub path: String,
    /// The access token presented (bearer header, or a token parameter where the platform reads
    /// one).
    pub token: Option<String>,
    /// The HTTP status of the answer.
    pub status: u16,
}

// The token is a credential: a failing assertion or a log line prints only whether there was one.
impl fmt::Debug for ApiRequestRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiRequestRecord")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("token", &self.token.as_ref().map(|_| "[redacted]"))
            .field("status", &self.status)
            .finish()
    }
}

/// Something a publishing call created (a post, a pin, a video...).
#[derive(Clone, Debug, PartialEq)]
pub struct PublishedItem {
    /// What was published, as the platform's module names the kind (e.g. a post on a page).
    pub kind: String,
    /// The id the platform answered with.
    pub id: String,
    /// Where it was published: the page, account, board or user it belongs to.
    pub target: String,
    /// The fields the client sent (caption, message, text, media source...).
    pub fields: serde_json::Value,
}

/// A token a platform hands out, with the user's grant, for one object the user manages (a Page):
/// it carries the grant's rights on that object and dies with the grant.
#[derive(Clone)]
pub(crate) struct ObjectToken {
    pub(crate) id: &'static str,
    pub(crate) name: &'static str,
    pub(crate) category: &'static str,
    pub(crate) access_token: String,
    /// An account linked to the object: its id and username.
    pub(crate) linked: Option<(&'static str, &'static str)>,
}

/// Why a presented API token was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Denial {
    /// No token in the request.
    Missing,
    /// A token the platform never issued (or issued for another platform).
    Invalid,
    /// A token past its lifetime.
    Expired,
    /// A token revoked, or whose grant the user removed.
    Revoked,
}

/// A caller the API gate let through: the grant behind the token and, for an object token, the
/// object.
#[derive(Clone)]
pub(crate) struct ApiCaller {
    pub(crate) grant: GrantView,
    pub(crate) object: Option<ObjectToken>,
}

/// What one account has granted and declined one client.
#[derive(Clone, Debug, Default)]
pub(crate) struct Remembered {
    /// Granted so far, in the order first granted.
    pub(crate) granted: Vec<String>,
    /// Declined and not granted since.
    pub(crate) declined: Vec<String>,
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
    /// Bumped on every [`Simulator::set_fault`], so that held calls look at the fault again.
    fault_changes: tokio::sync::watch::Sender<u64>,
}

/// A token call counted as held while it lives (a caller that hangs up drops it mid-wait).
struct HeldCall<'a> {
    sim: &'a Simulator,
    platform: &'a str,
}

impl<'a> HeldCall<'a> {
    fn new(sim: &'a Simulator, platform: &'a str) -> Self {
        sim.control(platform, |p| p.held_token_calls += 1);
        Self { sim, platform }
    }
}

impl Drop for HeldCall<'_> {
    fn drop(&mut self) {
        self.sim.control(self.platform, |p| p.held_token_calls -= 1);
    }
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
                fault_changes: tokio::sync::watch::Sender::new(0),
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

    /// The PKCE verifiers `platform`'s codes were redeemed with, in order.
    pub fn code_verifiers(&self, platform: &str) -> Vec<String> {
        self.observe(platform, |p| p.code_verifiers.clone())
    }

    /// Makes `platform`'s token endpoint fail as described (or stop failing with `None`).
    pub fn set_fault(&self, platform: &str, fault: Option<Fault>) {
        self.control(platform, |p| p.fault = fault);
        self.shared.fault_changes.send_modify(|n| *n += 1);
    }

    /// How many calls to `platform`'s token endpoint a [`Fault::Hold`] holds right now.
    pub fn held_token_calls(&self, platform: &str) -> usize {
        self.observe(platform, |p| p.held_token_calls)
    }

    /// Sets the lifetime of the access tokens `platform` issues from now on (where a platform
    /// issues several kinds of user token, all of them).
    pub fn set_access_token_ttl(&self, platform: &str, ttl_seconds: i64) {
        self.control(platform, |p| p.access_ttl_override = Some(ttl_seconds));
    }

    /// Simulates the user removing the app: every access and refresh token of `platform` stops
    /// working, and nothing granted before carries over to a new consent.
    pub fn revoke_all_grants(&self, platform: &str) {
        let mut state = self.lock();
        for grant in state.grants.values_mut() {
            if grant.spec.key == platform {
                grant.alive = false;
            }
        }
        state.consented_clients.retain(|(p, _)| p != platform);
        state.remembered.retain(|(p, _, _), _| p != platform);
    }

    /// Makes approval on `platform`'s consent screen grant exactly these scopes, whatever was checked
    /// (`None` restores the checkboxes' say).
    pub fn set_granted_scopes_override(&self, platform: &str, scopes: Option<Vec<String>>) {
        self.control(platform, |p| p.granted_scopes_override = scopes);
    }

    /// Makes every call to `platform`'s API answer as throttled, in the platform's shape and with
    /// its headers (or stop with `None`).
    pub fn set_api_rate_limited(&self, platform: &str, limit: Option<ApiRateLimit>) {
        self.control(platform, |p| p.api.rate_limit = limit);
    }

    /// Gives `platform`'s app a budget of API calls shared by every merchant (or none with `None`):
    /// each admitted call spends it, the platform's usage headers report it, and past it every
    /// call is throttled in the platform's shape until the window has room again.
    pub fn set_app_budget(&self, platform: &str, budget: Option<AppBudget>) {
        self.control(platform, |p| {
            p.api.app_budget = budget.map(|b| (b, VecDeque::new()));
        });
    }

    /// Spends one call of `platform`'s app budget at `now`: where the budget stands (`None`
    /// without a budget), and whether the call is over it (then it is not counted).
    pub(crate) fn spend_app_budget(
        &self,
        platform: &str,
        now: DateTime<Utc>,
    ) -> Option<(AppBudgetUsage, bool)> {
        self.with_api(platform, |api| {
            let (budget, calls) = api.app_budget.as_mut()?;
            let window =
                chrono::Duration::seconds(i64::try_from(budget.window_seconds).unwrap_or(60));
            while calls.front().is_some_and(|at| *at <= now - window) {
                calls.pop_front();
            }
            let over = calls.len() as u64 >= budget.calls;
            if !over {
                calls.push_back(now);
            }
            let oldest = calls.front().copied().unwrap_or(now);
            Some((
                AppBudgetUsage {
                    budget: *budget,
                    used: calls.len() as u64,
                    reset: (oldest + window).timestamp(),
                },
                over,
            ))
        })
    }

    /// Makes the next `count` calls to `platform`'s API answer "token invalid" (the platform's
    /// refresh-worthy error) whatever token they carry, so a client's refresh-and-retry can be
    /// tested with a token that is in fact valid.
    pub fn fail_next_api_calls_with_invalid_token(&self, platform: &str, count: u32) {
        self.control(platform, |p| p.api.forced_invalid = count);
    }

    /// The calls to `platform`'s API so far (the last 10,000), in order.
    pub fn api_requests(&self, platform: &str) -> Vec<ApiRequestRecord> {
        self.observe(platform, |p| p.api.requests.iter().cloned().collect())
    }

    /// Everything `platform`'s publishing calls have published, in order.
    pub fn published(&self, platform: &str) -> Vec<PublishedItem> {
        self.observe(platform, |p| {
            p.api
                .published
                .iter()
                .map(|(item, _)| item.clone())
                .collect()
        })
    }

    /// Makes the next `count` calls to `platform`'s API whose path ends with `path_suffix`
    /// (e.g. `/media_publish`, `/post/publish/video/init/`) be performed as usual (published,
    /// recorded) and then lose their answer: the connection closes before a byte of it is sent,
    /// as [`Fault::LoseAnswer`] does for token calls. The call is recorded with the status the
    /// platform gave it.
    pub fn lose_next_api_answers(&self, platform: &str, path_suffix: &str, count: u32) {
        self.add_api_fault(platform, path_suffix, ApiFaultKind::LoseAnswer, count);
    }

    /// Makes the next `count` calls to `platform`'s API whose path ends with `path_suffix` answer
    /// `status` (a 5xx, say) in the platform's error shape, without doing anything.
    pub fn fail_next_api_calls(&self, platform: &str, path_suffix: &str, status: u16, count: u32) {
        self.add_api_fault(platform, path_suffix, ApiFaultKind::Status(status), count);
    }

    /// Holds (or, with `hold` false, releases) every call to `platform`'s API whose path ends
    /// with `path_suffix`: a held call has arrived (its client waits) and is performed as usual
    /// once released, as a platform that answers slowly would.
    pub fn hold_api_calls(&self, platform: &str, path_suffix: &str, hold: bool) {
        self.control(platform, |p| {
            p.api.holds.retain(|held| held != path_suffix);
            if hold {
                p.api.holds.push(path_suffix.to_owned());
            }
        });
        self.shared.fault_changes.send_modify(|n| *n += 1);
    }

    /// How many calls to `platform`'s API [`Self::hold_api_calls`] holds right now.
    pub fn held_api_calls(&self, platform: &str) -> usize {
        self.observe(platform, |p| p.api.held_calls)
    }

    /// Waits while a call to `path` is held (counted as held meanwhile).
    pub(crate) async fn wait_while_held(&self, platform: &str, path: &str) {
        let mut changes = self.shared.fault_changes.subscribe();
        let mut counted = false;
        loop {
            let held = self.with_api(platform, |api| {
                api.holds
                    .iter()
                    .any(|suffix| path.ends_with(suffix.as_str()))
            });
            if !held {
                break;
            }
            if !counted {
                counted = true;
                self.with_api(platform, |api| api.held_calls += 1);
            }
            let _ = changes.changed().await;
        }
        if counted {
            self.with_api(platform, |api| api.held_calls -= 1);
        }
    }

    fn add_api_fault(&self, platform: &str, path_suffix: &str, kind: ApiFaultKind, count: u32) {
        if count == 0 {
            return;
        }
        self.control(platform, |p| {
            p.api.faults.push(ApiFault {
                path_suffix: path_suffix.to_owned(),
                kind,
                remaining: count,
            });
        });
    }

    /// Makes `platform`'s consent screens sign in as the sandbox's account `account`: 0 is the
    /// default merchant, any other number a different merchant with its own id and name (the
    /// identity endpoints that know several accounts answer them), for tests of a reconnect with
    /// another account.
    pub fn set_signed_in_account(&self, platform: &str, account: u32) {
        self.control(platform, |p| p.account = account);
    }

    pub(crate) fn signed_in_account(&self, platform: &str) -> u32 {
        self.lock().platforms.get(platform).map_or(0, |p| p.account)
    }

    /// Makes every platform that proves tokens (a proof of possession beside the token on each API
    /// call, keyed with the app secret) refuse calls without one, as an app that requires it does.
    /// Platforms that have no such proof ignore it.
    pub fn require_token_proofs(&self, required: bool) {
        self.lock()
            .every_platform
            .insert(REQUIRES_TOKEN_PROOF, required);
    }

    /// Takes the strict reading wherever a platform's documentation leaves a rule open, for the
    /// tests that must fail when the service relies on the lenient one: a replaced refresh token
    /// dies at once (where the platform says only that it sends a new one), PKCE that a platform
    /// makes optional must be sent with S256, and a consent request names only scopes the platform
    /// knows (a platform that documents refusing an unknown scope refuses it in either reading;
    /// one that leaves it open refuses it only in this one).
    pub fn strict(&self, on: bool) {
        self.lock().every_platform.insert(STRICT, on);
    }

    /// Turns one of `platform`'s named switches on or off (a platform module's test control, such
    /// as an endpoint made unavailable). Every switch starts off.
    pub(crate) fn set_switch(&self, platform: &str, switch: &'static str, on: bool) {
        self.control(platform, |p| {
            p.switches.insert(switch, on);
        });
    }

    /// Whether one of `platform`'s named switches is on: its own setting, else the one made for
    /// every platform, else off.
    pub(crate) fn switch(&self, platform: &str, switch: &str) -> bool {
        let state = self.lock();
        let own = state
            .platforms
            .get(platform)
            .and_then(|p| p.switches.get(switch).copied());
        own.or_else(|| state.every_platform.get(switch).copied())
            .unwrap_or(false)
    }

    /// Adds one to a named counter of `platform` (a platform module's observation).
    pub(crate) fn count(&self, platform: &str, counter: &'static str) {
        self.control(platform, |p| *p.counters.entry(counter).or_default() += 1);
    }

    /// A named counter of `platform`.
    pub(crate) fn counted(&self, platform: &str, counter: &str) -> usize {
        self.observe(platform, |p| p.counters.get(counter).copied().unwrap_or(0))
    }

    fn observe<T: Default>(&self, platform: &str, read: impl FnOnce(&PlatformState) -> T) -> T {
        let state = self.lock();
        state.platforms.get(platform).map(read).unwrap_or_default()
    }

    fn control(&self, platform: &str, change: impl FnOnce(&mut PlatformState)) {
        change(
            self.lock()
                .platforms
                .entry(platform.to_owned())
                .or_default(),
        );
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
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

    pub(crate) fn client(&self, platform: &str, client_id: &str) -> Option<&SimClient> {
        self.shared
            .clients
            .iter()
            .find(|c| c.platform == platform && c.client_id == client_id)
    }

    /// Checks a client id and secret registered at `platform`, comparing secrets in constant time.
    pub(crate) fn check_client(
        &self,
        platform: &str,
        client_id: &str,
        client_secret: &str,
    ) -> ClientCheck {
        match self.client(platform, client_id) {
            None => ClientCheck::UnknownClient,
            Some(client) => {
                if bool::from(
                    client
                        .client_secret
                        .as_bytes()
                        .ct_eq(client_secret.as_bytes()),
                ) {
                    ClientCheck::Valid
                } else {
                    ClientCheck::WrongSecret
                }
            }
        }
    }

    pub(crate) fn fault(&self, platform: &str) -> Option<Fault> {
        self.lock()
            .platforms
            .get(platform)
            .and_then(|p| p.fault.clone())
    }

    /// The fault a token call meets: while it is [`Fault::Hold`], waits (counted as held) for the
    /// next change, then the fault in force.
    pub(crate) async fn fault_after_hold(&self, platform: &str) -> Option<Fault> {
        // Subscribed before the first look, so that a change between the look and the wait wakes it.
        let mut changes = self.shared.fault_changes.subscribe();
        let mut held: Option<HeldCall<'_>> = None;
        loop {
            match self.fault(platform) {
                Some(Fault::Hold) => {
                    held.get_or_insert_with(|| HeldCall::new(self, platform));
                    // The sender lives as long as `self`: `changed` cannot fail here.
                    let _ = changes.changed().await;
                }
                fault => return fault,
            }
        }
    }

    pub(crate) fn record_token_request(&self, platform: &str, record: TokenRequestRecord) {
        self.control(platform, |p| p.token_requests.push(record));
    }

    pub(crate) fn record_revocation(&self, platform: &str, token: &str) {
        self.control(platform, |p| p.revocations.push(token.to_owned()));
    }

    pub(crate) fn granted_scopes_override(&self, platform: &str) -> Option<Vec<String>> {
        self.lock()
            .platforms
            .get(platform)
            .and_then(|p| p.granted_scopes_override.clone())
    }

    /// The access-token lifetime for `platform`: the test override, else `default_seconds`.
    pub(crate) fn access_ttl(&self, platform: &str, default_seconds: i64) -> i64 {
        self.lock()
            .platforms
            .get(platform)
            .and_then(|p| p.access_ttl_override)
            .unwrap_or(default_seconds)
    }

    /// Keeps an authorization request server-side until the consent form comes back; returns its
    /// single-use id.
    pub(crate) fn store_pending(&self, request: PendingAuthorization) -> String {
        let request_id = random_string(32);
        let now = self.now();
        let mut state = self.lock();
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
        let spec = approved.platform;
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

    /// Whether `client_id` consents to `platform` for the first time (so a platform that mints a
    /// refresh token only then knows), and remembers that it now has.
    pub(crate) fn first_consent(&self, platform: &str, client_id: &str) -> bool {
        self.lock()
            .consented_clients
            .insert((platform.to_owned(), client_id.to_owned()))
    }

    /// Forgets every consent of `client_id` at `platform` (the grant was revoked).
    pub(crate) fn forget_client_consent(&self, platform: &str, client_id: &str) {
        let mut state = self.lock();
        state
            .consented_clients
            .remove(&(platform.to_owned(), client_id.to_owned()));
        state
            .remembered
            .retain(|(p, c, _), _| !(p == platform && c == client_id));
    }

    /// Redeems an authorization code: checks it is known, unused, unexpired, issued to `client_id`
    /// for the same `redirect_uri` and (when `check_pkce`) that the verifier matches; on success
    /// starts a grant and returns it.
    pub(crate) fn redeem_code(
        &self,
        platform: &str,
        redemption: &CodeRedemption<'_>,
    ) -> Result<RedeemedCode, CodeRejection> {
        let now = self.now();
        let mut state = self.lock();
        let Some(code) = state.codes.get(redemption.code) else {
            return Err(CodeRejection::Unknown);
        };
        if code.approved.platform.key != platform {
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
            check_pkce(code.approved.pkce.as_ref(), redemption.code_verifier)?;
        }
        let approved = code.approved.clone();
        if let Some(verifier) = redemption.code_verifier {
            state
                .platforms
                .entry(platform.to_owned())
                .or_default()
                .code_verifiers
                .push(verifier.to_owned());
        }
        let grant_id = state.start_grant(&approved, redemption.object_tokens, now);
        if let Some(code) = state.codes.get_mut(redemption.code) {
            code.used = true;
            code.grant = Some(grant_id);
        }
        Ok(RedeemedCode { grant_id, approved })
    }

    /// Mints an access token for a live grant, valid for `ttl_seconds`.
    pub(crate) fn issue_access_token(&self, grant_id: u64, ttl_seconds: i64) -> String {
        let issued_at = self.now();
        let expires_at = issued_at + Duration::seconds(ttl_seconds);
        let mut state = self.lock();
        let Some(spec) = state.grants.get(&grant_id).map(|g| g.spec) else {
            return String::new();
        };
        let token = format!("{}{}", spec.access_prefix, random_string(48));
        state.access_tokens.insert(
            token.clone(),
            AccessTokenEntry {
                grant_id,
                issued_at,
                expires_at,
                revoked: false,
            },
        );
        state
            .platforms
            .entry(spec.key.to_owned())
            .or_default()
            .issued_access_tokens
            .push(token.clone());
        token
    }

    /// Mints a refresh token for a live grant; `ttl_seconds` of `None` never expires.
    pub(crate) fn issue_refresh_token(&self, grant_id: u64, ttl_seconds: Option<i64>) -> String {
        let expires_at = ttl_seconds.map(|ttl| self.now() + Duration::seconds(ttl));
        let mut state = self.lock();
        let Some(spec) = state.grants.get(&grant_id).map(|g| g.spec) else {
            return String::new();
        };
        let token = format!("{}{}", spec.refresh_prefix, random_string(48));
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
            .entry(spec.key.to_owned())
            .or_default()
            .issued_refresh_tokens
            .push(token.clone());
        token
    }

    /// When a refresh token stops working (`None`: never, or not a refresh token).
    pub(crate) fn refresh_token_expiry(&self, token: &str) -> Option<DateTime<Utc>> {
        self.lock()
            .refresh_tokens
            .get(token)
            .and_then(|entry| entry.expires_at)
    }

    /// The grant behind a usable access token of `platform`: known, unexpired, not revoked, grant
    /// alive.
    pub(crate) fn authenticate(&self, platform: &str, token: &str) -> Option<GrantView> {
        let now = self.now();
        let state = self.lock();
        let entry = state.access_tokens.get(token)?;
        let grant = state.grants.get(&entry.grant_id)?;
        let usable =
            !entry.revoked && entry.expires_at > now && grant.alive && grant.spec.key == platform;
        usable.then(|| grant.view(entry.grant_id))
    }

    /// What `platform` knows of an access token it issued, whatever its state (introspection
    /// endpoints report expired and revoked tokens too); `None` for a token it never issued.
    pub(crate) fn inspect_access_token(
        &self,
        platform: &str,
        token: &str,
    ) -> Option<TokenInspection> {
        let now = self.now();
        let state = self.lock();
        let entry = state.access_tokens.get(token)?;
        let grant = state.grants.get(&entry.grant_id)?;
        if grant.spec.key != platform {
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
            issued_at: entry.issued_at,
            expires_at: entry.expires_at,
            status,
        })
    }

    /// Looks up a refresh token of `platform` held by `client_id`, whatever its status.
    pub(crate) fn refresh_token_state(
        &self,
        platform: &str,
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
        if grant.spec.key != platform || grant.client_id != client_id {
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

    /// Kills every other live grant the same account gave the same client at `platform` whose
    /// scopes differ from `grant_id`'s (a platform where a new scope set ends the earlier
    /// tokens); grants with the same scopes live on.
    pub(crate) fn kill_grants_with_other_scopes(&self, platform: &str, grant_id: u64) {
        let mut state = self.lock();
        let Some((client_id, account, mut scopes)) = state
            .grants
            .get(&grant_id)
            .map(|g| (g.client_id.clone(), g.account, g.scopes.clone()))
        else {
            return;
        };
        scopes.sort();
        for (id, grant) in &mut state.grants {
            let mut theirs = grant.scopes.clone();
            theirs.sort();
            if *id != grant_id
                && grant.spec.key == platform
                && grant.client_id == client_id
                && grant.account == account
                && theirs != scopes
            {
                grant.alive = false;
            }
        }
    }

    /// Finds the live grant behind a token of `platform` (access or refresh, not expired).
    pub(crate) fn live_grant_of_token(&self, platform: &str, token: &str) -> Option<GrantView> {
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
            && grant.spec.key == platform;
        usable.then(|| grant.view(entry.grant_id))
    }

    /// Revokes one token of `platform` (access or refresh) held by `client_id` without touching
    /// the rest of its grant; returns whether it was usable before.
    pub(crate) fn revoke_single_token(&self, platform: &str, client_id: &str, token: &str) -> bool {
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

    /// The object tokens handed out with a grant.
    pub(crate) fn object_tokens(&self, grant_id: u64) -> Vec<ObjectToken> {
        self.lock()
            .grants
            .get(&grant_id)
            .map(|g| g.object_tokens.clone())
            .unwrap_or_default()
    }

    /// The first client registered at `platform`: the app whose secret signs the platform's
    /// notices.
    pub(crate) fn first_client(&self, platform: &str) -> Option<&SimClient> {
        self.shared.clients.iter().find(|c| c.platform == platform)
    }

    /// Every live grant of `platform`, oldest first.
    pub(crate) fn live_grants(&self, platform: &str) -> Vec<GrantView> {
        let state = self.lock();
        let mut grants: Vec<GrantView> = state
            .grants
            .iter()
            .filter(|(_, grant)| grant.alive && grant.spec.key == platform)
            .map(|(id, grant)| grant.view(*id))
            .collect();
        grants.sort_by_key(|grant| grant.grant_id);
        grants
    }

    /// Ends these grants of `platform` at once, as when their user removes the app: every token
    /// of them stops working, and nothing their accounts granted carries over to a new consent.
    pub(crate) fn end_grants(&self, platform: &str, grants: &[GrantView]) {
        let mut state = self.lock();
        for view in grants {
            if let Some(grant) = state.grants.get_mut(&view.grant_id) {
                grant.alive = false;
            }
            state
                .remembered
                .remove(&(platform.to_owned(), view.client_id.clone(), view.account));
            state
                .consented_clients
                .remove(&(platform.to_owned(), view.client_id.clone()));
        }
    }

    /// Adds `scope` to (`granted`) or withdraws it from a live grant of `platform`, and from what
    /// its account is remembered to have granted: a permission the user changed in the
    /// platform's settings after consenting.
    pub(crate) fn set_grant_scope(
        &self,
        platform: &str,
        grant: &GrantView,
        scope: &str,
        granted: bool,
    ) {
        let mut state = self.lock();
        if let Some(live) = state.grants.get_mut(&grant.grant_id) {
            live.scopes.retain(|s| s != scope);
            if granted {
                live.scopes.push(scope.to_owned());
            }
        }
        let key = (platform.to_owned(), grant.client_id.clone(), grant.account);
        if let Some(remembered) = state.remembered.get_mut(&key) {
            remembered.granted.retain(|s| s != scope);
            if granted {
                remembered.granted.push(scope.to_owned());
                remembered.declined.retain(|s| s != scope);
            } else if !remembered.declined.iter().any(|s| s == scope) {
                remembered.declined.push(scope.to_owned());
            }
        }
    }
}

/// A random alphanumeric string (from the thread-local CSPRNG).
pub(crate) fn random_string(len: usize) -> String {
    Alphanumeric.sample_string(&mut rand::thread_rng(), len)
}

/// The outcome of checking a client's credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ClientCheck {
    Valid,
    UnknownClient,
    WrongSecret,
}

/// Checks a PKCE verifier against the challenge bound to a code (RFC 7636 §4.6).
fn check_pkce(
    challenge: Option<&PkceChallenge>,
    verifier: Option<&str>,
) -> Result<(), CodeRejection> {
    match (challenge, verifier) {
        (None, None) => Ok(()),
        (None, Some(_)) => Err(CodeRejection::VerifierUnexpected),
        (Some(_), None) => Err(CodeRejection::VerifierMissing),
        (Some(challenge), Some(verifier)) => {
            // RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
            let well_formed = (43..=128).contains(&verifier.len())
                && verifier
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
            let derived = match challenge.method {
                PkceMethod::Plain => verifier.to_owned(),
                PkceMethod::S256 => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            };
            if well_formed && bool::from(derived.as_bytes().ct_eq(challenge.challenge.as_bytes())) {
                Ok(())
            } else {
                Err(CodeRejection::VerifierMismatch)
            }
        }
    }
}

/// An authorization request that passed validation, waiting for the consent form.
#[derive(Clone, Debug)]
pub(crate) struct PendingAuthorization {
    pub(crate) platform: &'static PlatformSpec,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) state: Option<String>,
    pub(crate) requested_scopes: Vec<String>,
    pub(crate) pkce: Option<PkceChallenge>,
    pub(crate) options: AuthorizeOptions,
    /// The scopes the consent screen shows: the requested ones, less those the platform will not
    /// ask again (declined before).
    pub(crate) shown_scopes: Vec<String>,
    /// The simulated account signed in on the consent screen.
    pub(crate) account: u32,
    pub(crate) expires_at: DateTime<Utc>,
}

/// What the user approved on the consent screen; bound to the code.
#[derive(Clone, Debug)]
pub(crate) struct ApprovedAuthorization {
    pub(crate) platform: &'static PlatformSpec,
    pub(crate) client_id: String,
    pub(crate) redirect_uri: String,
    pub(crate) requested_scopes: Vec<String>,
    pub(crate) granted_scopes: Vec<String>,
    pub(crate) pkce: Option<PkceChallenge>,
    pub(crate) options: AuthorizeOptions,
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
    /// The object tokens the new grant hands out (none for most platforms).
    pub(crate) object_tokens: fn() -> Vec<ObjectToken>,
}

/// No object tokens: the grant covers only the user.
pub(crate) fn no_object_tokens() -> Vec<ObjectToken> {
    Vec::new()
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
    pub(crate) issued_at: DateTime<Utc>,
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

/// Everything the simulators remember, behind [`Simulator::lock`]. Its fields are visible to the
/// crate so the files that extend [`Simulator`] (consent memory, the API's token check) can read
/// them under the same lock.
#[derive(Default)]
pub(crate) struct State {
    pending: HashMap<String, PendingAuthorization>,
    codes: HashMap<String, IssuedCode>,
    pub(crate) grants: HashMap<u64, Grant>,
    next_grant_id: u64,
    pub(crate) access_tokens: HashMap<String, AccessTokenEntry>,
    refresh_tokens: HashMap<String, RefreshTokenEntry>,
    pub(crate) platforms: HashMap<String, PlatformState>,
    /// The (platform, client) pairs a user consented to before.
    consented_clients: HashSet<(String, String)>,
    /// What each account has granted and declined each client before, by platform.
    pub(crate) remembered: HashMap<(String, String, u32), Remembered>,
    /// Switches set for every platform at once (a platform's own setting wins).
    every_platform: HashMap<&'static str, bool>,
    /// The notices the platforms send to the app, and their deliveries.
    pub(crate) outbox: Outbox,
}

impl State {
    fn start_grant(
        &mut self,
        approved: &ApprovedAuthorization,
        object_tokens: fn() -> Vec<ObjectToken>,
        now: DateTime<Utc>,
    ) -> u64 {
        self.next_grant_id += 1;
        let grant_id = self.next_grant_id;
        self.grants.insert(
            grant_id,
            Grant {
                spec: approved.platform,
                client_id: approved.client_id.clone(),
                requested_scopes: approved.requested_scopes.clone(),
                scopes: approved.granted_scopes.clone(),
                alive: true,
                account: approved.account,
                object_tokens: object_tokens(),
                granted_at: now,
            },
        );
        grant_id
    }
}

/// The most API calls remembered per platform: the oldest are forgotten beyond it, so that a
/// sandbox serving for days (the development default) or under a benchmark's load neither grows
/// without bound nor stalls, under its lock, to copy an ever larger log.
pub(crate) const REMEMBERED_REQUESTS: usize = 10_000;

/// The API side of one platform's simulator state.
#[derive(Default)]
pub(crate) struct ApiState {
    pub(crate) requests: VecDeque<ApiRequestRecord>,
    /// Everything published, with when (the sandbox clock), in order.
    pub(crate) published: Vec<(PublishedItem, DateTime<Utc>)>,
    pub(crate) rate_limit: Option<ApiRateLimit>,
    /// The app-wide budget, and when each call it counted was let through.
    pub(crate) app_budget: Option<(AppBudget, VecDeque<DateTime<Utc>>)>,
    pub(crate) forced_invalid: u32,
    /// Webhook subscriptions an app made for an object it manages: the fields, by object id and
    /// client id.
    pub(crate) subscriptions: std::collections::BTreeMap<(String, String), Vec<String>>,
    /// A platform module's own records of its API objects (containers, uploads, verified
    /// domains...), by a key the module chooses; the shared code never reads them.
    pub(crate) records: HashMap<String, serde_json::Value>,
    /// When each (caller, limit name) was let through lately, for per-caller sliding windows.
    pub(crate) windows: HashMap<(String, &'static str), VecDeque<DateTime<Utc>>>,
    /// Injected faults of publishing API calls, in the order they were set.
    pub(crate) faults: Vec<ApiFault>,
    /// When each counted call was made, by counter (a platform's rate window: `user:{id}`,
    /// `app:{client}`), so that a platform that counts calls answers with the real numbers.
    pub(crate) counters: HashMap<String, VecDeque<DateTime<Utc>>>,
    /// Created, not yet published items (an upload, an image waiting for its bytes), by id.
    pub(crate) drafts: HashMap<String, PublishedItem>,
    /// API paths (by suffix) whose calls are held, unanswered, until released.
    pub(crate) holds: Vec<String>,
    /// API calls held right now.
    pub(crate) held_calls: usize,
}

/// What an injected API fault does (see [`Simulator::lose_next_api_answers`] and
/// [`Simulator::fail_next_api_calls`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ApiFaultKind {
    /// Perform the call, then drop the connection without a byte of the answer.
    LoseAnswer,
    /// Answer with this status, in the platform's error shape, without performing the call.
    Status(u16),
}

/// A fault set on the next calls to API paths ending with `path_suffix`.
#[derive(Clone, Debug)]
pub(crate) struct ApiFault {
    pub(crate) path_suffix: String,
    pub(crate) kind: ApiFaultKind,
    pub(crate) remaining: u32,
}

#[derive(Default)]
pub(crate) struct PlatformState {
    token_requests: Vec<TokenRequestRecord>,
    revocations: Vec<String>,
    issued_access_tokens: Vec<String>,
    issued_refresh_tokens: Vec<String>,
    /// The PKCE verifiers codes were redeemed with (secrets a test looks for in logs).
    code_verifiers: Vec<String>,
    fault: Option<Fault>,
    /// Token calls a [`Fault::Hold`] is holding.
    held_token_calls: usize,
    access_ttl_override: Option<i64>,
    granted_scopes_override: Option<Vec<String>>,
    /// The account the consent screen signs in as (0 the default merchant).
    account: u32,
    pub(crate) api: ApiState,
    /// A platform module's test switches, by name (all off until set).
    switches: HashMap<&'static str, bool>,
    /// A platform module's counters, by name.
    counters: HashMap<&'static str, usize>,
}

struct IssuedCode {
    approved: ApprovedAuthorization,
    expires_at: DateTime<Utc>,
    used: bool,
    grant: Option<u64>,
}

pub(crate) struct Grant {
    pub(crate) spec: &'static PlatformSpec,
    client_id: String,
    requested_scopes: Vec<String>,
    scopes: Vec<String>,
    pub(crate) alive: bool,
    account: u32,
    pub(crate) object_tokens: Vec<ObjectToken>,
    /// When the user consented (data-access windows run from here).
    granted_at: DateTime<Utc>,
}

impl Grant {
    pub(crate) fn view(&self, grant_id: u64) -> GrantView {
        GrantView {
            grant_id,
            client_id: self.client_id.clone(),
            requested_scopes: self.requested_scopes.clone(),
            scopes: self.scopes.clone(),
            account: self.account,
        }
    }
}

pub(crate) struct AccessTokenEntry {
    pub(crate) grant_id: u64,
    issued_at: DateTime<Utc>,
    pub(crate) expires_at: DateTime<Utc>,
    pub(crate) revoked: bool,
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

impl Simulator {
    /// Runs `change` on `platform`'s API state.
    pub(crate) fn with_api<T>(&self, platform: &str, change: impl FnOnce(&mut ApiState) -> T) -> T {
        change(
            &mut self
                .lock()
                .platforms
                .entry(platform.to_owned())
                .or_default()
                .api,
        )
    }

    /// How many calls `counter` made since `since` (older ones are forgotten); when `count` is
    /// true and that is below `limit`, one more is counted now. Returns the number before it.
    pub(crate) fn count_call(
        &self,
        platform: &str,
        counter: &str,
        since: DateTime<Utc>,
        limit: usize,
        count: bool,
    ) -> usize {
        let now = self.now();
        self.with_api(platform, |api| {
            let calls = api.counters.entry(counter.to_owned()).or_default();
            while calls.front().is_some_and(|at| *at <= since) {
                calls.pop_front();
            }
            let made = calls.len();
            if count && made < limit {
                calls.push_back(now);
            }
            made
        })
    }

    /// The first call `counter` made since `since`, if any (when its window frees a place).
    pub(crate) fn first_call_since(
        &self,
        platform: &str,
        counter: &str,
        since: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        self.with_api(platform, |api| {
            api.counters
                .get(counter)
                .and_then(|calls| calls.iter().find(|at| **at > since).copied())
        })
    }

    /// Records a published item, at the sandbox clock's now.
    pub(crate) fn publish(&self, platform: &str, item: PublishedItem) {
        let now = self.now();
        self.with_api(platform, |api| api.published.push((item, now)));
    }

    /// Everything published on `platform`, with when.
    pub(crate) fn published_with_times(
        &self,
        platform: &str,
    ) -> Vec<(PublishedItem, DateTime<Utc>)> {
        self.with_api(platform, |api| api.published.clone())
    }

    /// Keeps a created, not yet published item (an uploaded medium, an image awaiting its bytes).
    pub(crate) fn store_draft(&self, platform: &str, item: PublishedItem) {
        self.with_api(platform, |api| {
            api.drafts.insert(item.id.clone(), item);
        });
    }

    /// A created, not yet published item.
    pub(crate) fn draft(&self, platform: &str, id: &str) -> Option<PublishedItem> {
        self.with_api(platform, |api| api.drafts.get(id).cloned())
    }

    /// A platform module's record `key`.
    pub(crate) fn record(&self, platform: &str, key: &str) -> Option<serde_json::Value> {
        self.with_api(platform, |api| api.records.get(key).cloned())
    }

    /// Stores a platform module's record `key`.
    pub(crate) fn set_record(&self, platform: &str, key: &str, value: serde_json::Value) {
        self.with_api(platform, |api| {
            api.records.insert(key.to_owned(), value);
        });
    }

    /// Changes a platform module's record `key` under the lock (so two calls cannot both act
    /// on the same state): `change` sees `None` for a record that does not exist.
    pub(crate) fn update_record<T>(
        &self,
        platform: &str,
        key: &str,
        change: impl FnOnce(Option<&mut serde_json::Value>) -> T,
    ) -> T {
        self.with_api(platform, |api| change(api.records.get_mut(key)))
    }

    /// Counts a call of `caller` against the limit `name` of `limit` calls per `window`: `false`
    /// (and nothing counted) when the window is full.
    pub(crate) fn within_window(
        &self,
        platform: &str,
        caller: &str,
        name: &'static str,
        limit: usize,
        window: Duration,
    ) -> bool {
        let now = self.now();
        self.with_api(platform, |api| {
            let times = api.windows.entry((caller.to_owned(), name)).or_default();
            while times.front().is_some_and(|t| *t <= now - window) {
                times.pop_front();
            }
            if times.len() >= limit {
                return false;
            }
            times.push_back(now);
            true
        })
    }

    /// Consumes one injected fault matching `path`, if any is set.
    pub(crate) fn take_api_fault(&self, platform: &str, path: &str) -> Option<ApiFaultKind> {
        self.with_api(platform, |api| {
            let fault = api
                .faults
                .iter_mut()
                .find(|f| f.remaining > 0 && path.ends_with(&f.path_suffix))?;
            fault.remaining -= 1;
            let kind = fault.kind;
            api.faults.retain(|f| f.remaining > 0);
            Some(kind)
        })
    }

    /// Consumes one forced "token invalid" answer, if any are left.
    pub(crate) fn take_forced_invalid(&self, platform: &str) -> bool {
        self.with_api(platform, |api| {
            let forced = api.forced_invalid > 0;
            api.forced_invalid = api.forced_invalid.saturating_sub(1);
            forced
        })
    }

    /// Records an API call, forgetting the oldest beyond [`REMEMBERED_REQUESTS`].
    pub(crate) fn record_api_request(&self, platform: &str, record: ApiRequestRecord) {
        self.with_api(platform, |api| {
            if api.requests.len() >= REMEMBERED_REQUESTS {
                api.requests.pop_front();
            }
            api.requests.push_back(record);
        });
    }
}
