//! The security perimeter around every route: security headers (Content-Security-Policy with the
//! embedding origins, HSTS in production), CORS for `ALLOWED_ORIGINS` only, per-client rate limits
//! on the flow's entry points (in tables of bounded size, keyed only on authenticated callers and
//! validated ids), and the per-request timeout.
//!
//! It does not authenticate anyone (extractors do; the rate limiter only asks [`ApiKeys`] before
//! counting a store) nor log requests (the trace layer does). Connection-level limits (the
//! header-read timeout) are the server's, in [`super::serve`].

use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{
    CONTENT_SECURITY_POLICY, REFERRER_POLICY, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderName, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::StateStore;
use governor::{Quota, RateLimiter};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;
use super::extract::{ApiKeys, ClientAddress, KeyVerdict};
use crate::config::Settings;
use crate::domain::StoreId;

/// The perimeter's settings.
#[derive(Debug, Clone)]
pub struct Perimeter {
    /// Send HSTS.
    pub production: bool,
    /// `ALLOWED_ORIGINS`, serialised origins.
    pub allowed_origins: Vec<String>,
    /// `RATE_LIMIT_PER_MINUTE`.
    pub rate_limit_per_minute: u32,
    /// `TRUST_PROXY`.
    pub trust_proxy: bool,
    /// `HTTP_REQUEST_TIMEOUT_SECONDS`: the longest a request may take.
    pub request_timeout: Duration,
}

impl Perimeter {
    /// From settings.
    pub fn from_settings(settings: &Settings) -> Self {
        Self {
            production: settings.is_production(),
            allowed_origins: settings.allowed_origins.clone(),
            rate_limit_per_minute: settings.rate_limit_per_minute,
            trust_proxy: settings.trust_proxy,
            request_timeout: settings.request_timeout,
        }
    }

    /// The page's policy: scripts, styles and fetches from our origin only, no inline code, images
    /// also from https (platform account pictures), and framing only by ourselves and the
    /// embedding origins.
    pub(crate) fn content_security_policy(&self) -> String {
        self.policy("style-src 'self'")
    }

    /// The sandbox consent pages' policy: the same, except that their inline `<style>` is allowed.
    /// The sandbox exists in development only.
    pub(crate) fn sandbox_content_security_policy(&self) -> String {
        self.policy("style-src 'unsafe-inline'")
    }

    fn policy(&self, style: &str) -> String {
        let mut ancestors = String::from("'self'");
        for origin in &self.allowed_origins {
            ancestors.push(' ');
            ancestors.push_str(origin);
        }
        format!(
            "default-src 'none'; script-src 'self'; {style}; img-src 'self' https: data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
        )
    }

    /// CORS for `ALLOWED_ORIGINS`; `None` (no CORS headers at all) when none are configured. The API
    /// authenticates with a bearer key, never cookies, so credentials stay off.
    pub(crate) fn cors(&self) -> Option<CorsLayer> {
        let origins: Vec<HeaderValue> = self
            .allowed_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        if origins.is_empty() {
            return None;
        }
        Some(
            CorsLayer::new()
                .allow_origin(AllowOrigin::list(origins))
                .allow_methods([Method::GET, Method::POST, Method::DELETE])
                .allow_headers([
                    axum::http::header::AUTHORIZATION,
                    axum::http::header::CONTENT_TYPE,
                    HeaderName::from_static("x-csrf-token"),
                ])
                .allow_credentials(false),
        )
    }
}

/// The headers every response carries, computed once.
#[derive(Debug, Clone)]
pub(crate) struct SecurityHeaders {
    csp: HeaderValue,
    sandbox_csp: HeaderValue,
    hsts: Option<HeaderValue>,
}

impl SecurityHeaders {
    /// From the perimeter's settings.
    pub fn new(perimeter: &Perimeter) -> Self {
        // Origins were validated as URLs by the settings, so these are valid header values; an
        // invalid one falls back to the strictest policy rather than failing.
        let strict = "default-src 'none'; frame-ancestors 'none'";
        let value = |policy: String| {
            HeaderValue::from_str(&policy).unwrap_or_else(|_| HeaderValue::from_static(strict))
        };
        Self {
            csp: value(perimeter.content_security_policy()),
            sandbox_csp: value(perimeter.sandbox_content_security_policy()),
            hsts: perimeter
                .production
                .then(|| HeaderValue::from_static("max-age=31536000; includeSubDomains")),
        }
    }
}

/// Adds the Content-Security-Policy (the sandbox's for `/sandbox/*`), `Referrer-Policy:
/// no-referrer` (our URLs carry store ids), `X-Content-Type-Options: nosniff` and, in production,
/// HSTS.
pub(crate) async fn security_headers(
    State(headers): State<SecurityHeaders>,
    request: Request,
    next: Next,
) -> Response {
    let sandbox = request.uri().path().starts_with("/sandbox/");
    let mut response = next.run(request).await;
    let out = response.headers_mut();
    let csp = if sandbox {
        &headers.sandbox_csp
    } else {
        &headers.csp
    };
    out.insert(CONTENT_SECURITY_POLICY, csp.clone());
    out.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    out.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Some(hsts) = &headers.hsts {
        out.insert(STRICT_TRANSPORT_SECURITY, hsts.clone());
    }
    response
}

/// A table of per-key rate-limit states with a hard cap on its size.
///
/// Governor's keyed limiter never forgets a key by itself, so a table keyed on anything a client
/// chooses grows without bound. This one cannot:
/// - every [`SWEEP_EVERY`], the next request drops the keys whose allowance has fully come back
///   (`retain_recent`: such a key's state is the same as a fresh one's, so nothing is lost) and
///   gives the memory back (`shrink_to_fit`);
/// - a key that is not in the table is only added below the cap. At the cap, one sweep runs (at
///   most once per [`FULL_SWEEP_EVERY`], so a flood cannot make every request walk the table) and
///   if the table is still full the new key is refused with a 429, while keys already in it carry
///   on. A flood therefore costs new clients at most the time their predecessors' allowances take
///   to come back (one interval of the quota per request they made), and never memory.
///
/// Evicting instead (dropping the oldest, or everything) was rejected: it gives every client a
/// fresh allowance whenever the table is flooded, which is exactly when the limit matters.
///
/// Concurrent requests can overshoot the cap by at most the number of requests in flight, since
/// the check and the insert are not one step.
struct BoundedLimiter<K: Hash + Eq + Clone> {
    limiter: RateLimiter<K, SharedTable<K>, DefaultClock>,
    table: Arc<DashMapStateStore<K>>,
    capacity: usize,
    /// Milliseconds since `epoch` of the last sweep.
    last_sweep: AtomicU64,
    epoch: Instant,
}

/// How often the table is swept of keys whose allowance came back.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// How often a full table may be swept to make room for a new key.
const FULL_SWEEP_EVERY: Duration = Duration::from_secs(1);
/// What a refused new key is told to wait.
const FULL_RETRY_AFTER_SECONDS: u64 = 1;

impl<K: Hash + Eq + Clone> BoundedLimiter<K> {
    fn new(quota: Quota, capacity: usize) -> Self {
        let table = Arc::new(DashMapStateStore::<K>::default());
        Self {
            limiter: RateLimiter::new(quota, SharedTable(table.clone()), DefaultClock::default()),
            table,
            capacity,
            last_sweep: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// `Err(seconds to wait)` when the key is over its limit, or new while the table is full.
    fn check(&self, key: &K) -> Result<(), u64> {
        self.sweep_if_older_than(SWEEP_EVERY);
        if !self.table.contains_key(key) && self.table.len() >= self.capacity {
            if self.sweep_if_older_than(FULL_SWEEP_EVERY) {
                tracing::debug!(len = self.table.len(), "swept a full rate-limit table");
            }
            if self.table.len() >= self.capacity {
                return Err(FULL_RETRY_AFTER_SECONDS);
            }
        }
        self.limiter.check_key(key).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            wait.as_secs() + u64::from(wait.subsec_nanos() > 0)
        })
    }

    /// Sweeps when the last sweep is older than `age`; only one caller wins the race. Whether it
    /// swept.
    fn sweep_if_older_than(&self, age: Duration) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.last_sweep.load(Ordering::Relaxed);
        let due = now.saturating_sub(last) >= u64::try_from(age.as_millis()).unwrap_or(u64::MAX);
        if !due
            || self
                .last_sweep
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_err()
        {
            return false;
        }
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
        true
    }

    fn len(&self) -> usize {
        self.table.len()
    }
}

/// Governor's DashMap state store behind an `Arc`, so that [`BoundedLimiter`] can ask whether a
/// key is present (governor's limiter does not expose its store).
struct SharedTable<K: Hash + Eq + Clone>(Arc<DashMapStateStore<K>>);

impl<K: Hash + Eq + Clone> StateStore for SharedTable<K> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl<K: Hash + Eq + Clone> ShrinkableKeyedStateStore<K> for SharedTable<K> {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(self.0.as_ref(), drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(self.0.as_ref());
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// How many keys each rate-limit table holds at most: about 1 MB for addresses, 3 MB for stores.
pub(crate) const TRACKED_CLIENTS: usize = 10_000;

/// Per-client limits on the routes that start or finish flows.
///
/// Two tables, so that one kind of traffic cannot crowd out the other:
/// - the API's connect, called server to server by the platform's dashboard for every merchant, is
///   counted per store (keying it by address would make all merchants share one allowance). Only
///   a caller that presented a valid API key, with a valid `store_id`, is counted: anyone else is
///   answered 401 or 400 by the handler without touching the table, so a stranger can neither
///   grow it nor spend a real store's allowance;
/// - the browser's routes are counted per client address (an IPv6 client per /64, the block one
///   subscriber usually holds, so that one host cannot take 2^64 entries).
///
/// The limiter lives in this process, so each replica limits on its own: N replicas let a client
/// through at most N times the rate. That is acceptable because its purpose is to protect the
/// replica (every flow costs state writes and platform calls) and to blunt floods; a limit shared
/// by all replicas would need a round trip to Redis on every request.
#[derive(Clone)]
pub struct FlowRateLimit {
    stores: Arc<BoundedLimiter<StoreId>>,
    addresses: Arc<BoundedLimiter<IpAddr>>,
    api_keys: ApiKeys,
    trust_proxy: bool,
}

impl std::fmt::Debug for FlowRateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowRateLimit")
            .field("stores", &self.stores.len())
            .field("addresses", &self.addresses.len())
            .field("trust_proxy", &self.trust_proxy)
            .finish_non_exhaustive()
    }
}

/// Who a request counts against.
#[derive(Debug)]
enum ClientKey {
    Address(IpAddr),
    Store(StoreId),
}

impl FlowRateLimit {
    /// `per_minute` requests per client per minute, in bursts of up to `per_minute`, with tables
    /// of at most [`TRACKED_CLIENTS`] keys.
    pub fn new(perimeter: &Perimeter, api_keys: ApiKeys) -> Self {
        Self::with_capacity(perimeter, api_keys, TRACKED_CLIENTS)
    }

    /// The same with tables of at most `capacity` keys each.
    pub fn with_capacity(perimeter: &Perimeter, api_keys: ApiKeys, capacity: usize) -> Self {
        let per_minute =
            NonZeroU32::new(perimeter.rate_limit_per_minute).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_minute);
        Self {
            stores: Arc::new(BoundedLimiter::new(quota, capacity)),
            addresses: Arc::new(BoundedLimiter::new(quota, capacity)),
            api_keys,
            trust_proxy: perimeter.trust_proxy,
        }
    }

    /// How many stores and how many client addresses the tables hold now.
    pub fn len(&self) -> (usize, usize) {
        (self.stores.len(), self.addresses.len())
    }

    /// Whether both tables are empty.
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0)
    }

    /// Whether a path is limited: the API's connect, the first hop, the callback, the page's connect.
    pub(crate) fn applies_to(path: &str) -> bool {
        path.starts_with(API_CONNECT)
            || path == "/api/v1/oauth/authorize"
            || path == "/dashboard/authorize"
            || path.starts_with("/api/v1/oauth/callback/")
            || path.starts_with("/dashboard/api/connect/")
    }

    /// What the request counts against, read from the request without awaiting (a `Request` is
    /// not `Sync`, so it cannot be held across the key check).
    fn candidate(&self, request: &Request) -> Candidate {
        if request.uri().path().starts_with(API_CONNECT) {
            return Candidate::Store {
                headers: request.headers().clone(),
                query: request.uri().query().map(str::to_owned),
                address: request.extensions().get::<ClientAddress>().map(|c| c.0),
            };
        }
        Candidate::Known(self.address(request).map(ClientKey::Address))
    }

    /// What the request counts against (`None` when it is not counted), and the verdict on its key
    /// when one was reached (the handler's extractor reuses it rather than verifying again). The
    /// API's connect counts per store, but only for a caller whose key is accepted, and only once
    /// the id is valid.
    async fn client(&self, candidate: Candidate) -> (Option<ClientKey>, Option<KeyVerdict>) {
        match candidate {
            Candidate::Known(key) => (key, None),
            Candidate::Store {
                headers,
                query,
                address,
            } => {
                // A store that could not be asked counts nothing; the extractor answers for it.
                let Ok(verdict) = self.api_keys.check(&headers, address).await else {
                    return (None, None);
                };
                if !matches!(verdict, KeyVerdict::Caller(_)) {
                    return (None, Some(verdict));
                }
                let store = query.and_then(|query| {
                    url::form_urlencoded::parse(query.as_bytes())
                        .find(|(name, _)| name == "store_id")
                        .and_then(|(_, value)| StoreId::parse(value).ok())
                });
                (store.map(ClientKey::Store), Some(verdict))
            }
        }
    }

    fn address(&self, request: &Request) -> Option<IpAddr> {
        let address = if self.trust_proxy {
            // The last entry is the one our proxy appended: the address it saw. Earlier entries
            // come from the client and can be forged.
            request
                .headers()
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .filter_map(|v| v.trim().parse::<IpAddr>().ok())
                .next_back()
        } else {
            None
        };
        address
            .or_else(|| {
                request
                    .extensions()
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|info| info.0.ip())
            })
            .map(subscriber)
    }

    /// `Err(seconds to wait)` when the client is over its limit.
    fn check(&self, client: &ClientKey) -> Result<(), u64> {
        match client {
            ClientKey::Store(store) => self.stores.check(store),
            ClientKey::Address(address) => self.addresses.check(address),
        }
    }
}

const API_CONNECT: &str = "/api/v1/oauth/connect/";

/// The address a client is counted by: IPv4 as is (IPv4-mapped IPv6 too), IPv6 by its /64.
fn subscriber(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(
                u128::from(v6) & 0xffff_ffff_ffff_ffff_0000_0000_0000_0000,
            )),
        },
    }
}

/// What a request may count against, before its key is checked.
enum Candidate {
    /// Decided already: an address, or nothing to key on.
    Known(Option<ClientKey>),
    /// The API's connect: the store, once the key and the id pass.
    Store {
        headers: axum::http::HeaderMap,
        query: Option<String>,
        address: Option<IpAddr>,
    },
}

/// The per-request limits, one middleware: the request timeout around the rate limit.
#[derive(Debug, Clone)]
pub struct RequestLimits {
    /// The rate limit of the flow's entry points.
    pub flow: FlowRateLimit,
    /// `HTTP_REQUEST_TIMEOUT_SECONDS`.
    pub timeout: Duration,
}

/// Ends a request that takes longer than the timeout with a JSON 503 `request_timeout`, and
/// answers 429 with `Retry-After` to a client over its limit on a limited route.
///
/// tower-http's `TimeoutLayer` was not used: it answers with an empty body, and every error here
/// is JSON from the one mapping in `error.rs`. A response that has started streaming is not cut.
pub async fn limit_requests(
    State(limits): State<RequestLimits>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(address) = limits.flow.address(&request) {
        request.extensions_mut().insert(ClientAddress(address));
    }
    match tokio::time::timeout(limits.timeout, rate_limit(&limits.flow, request, next)).await {
        Ok(response) => response,
        Err(_) => ApiError::request_timeout(limits.timeout).into_response(),
    }
}

/// Answers 429 with `Retry-After` to a client over its limit on a limited route.
async fn rate_limit(limit: &FlowRateLimit, mut request: Request, next: Next) -> Response {
    if FlowRateLimit::applies_to(request.uri().path()) {
        // Without a client address (a server built without connect info) there is nothing to key
        // on; limiting everyone together would let one client lock out all others.
        let candidate = limit.candidate(&request);
        let (client, verdict) = limit.client(candidate).await;
        if let Some(verdict) = verdict {
            request.extensions_mut().insert(verdict);
        }
        if let Some(client) = client {
            if let Err(seconds) = limit.check(&client) {
                // The store id is validated and the address is an address: both are safe to log.
                tracing::warn!(?client, retry_after = seconds, "rate limit exceeded");
                return ApiError::rate_limited(seconds).into_response();
            }
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_refuses_new_keys_and_keeps_serving_known_ones() {
        let limiter =
            BoundedLimiter::new(Quota::per_minute(NonZeroU32::MIN.saturating_add(9)), 100);
        for key in 0..100u32 {
            assert_eq!(limiter.check(&key), Ok(()), "key {key}");
        }
        for key in 100..1_000u32 {
            assert_eq!(
                limiter.check(&key),
                Err(FULL_RETRY_AFTER_SECONDS),
                "key {key}"
            );
        }
        assert_eq!(limiter.len(), 100);
        assert_eq!(limiter.check(&7), Ok(()), "a known key keeps its allowance");
    }

    #[test]
    fn a_sweep_makes_room_once_allowances_have_come_back() {
        // One cell per millisecond: every allowance is whole again a few milliseconds after use.
        let per_second = NonZeroU32::new(1_000).unwrap_or(NonZeroU32::MIN);
        let limiter = BoundedLimiter::new(Quota::per_second(per_second), 10);
        for key in 0..10u32 {
            assert_eq!(limiter.check(&key), Ok(()));
        }
        // The first sweep is due FULL_SWEEP_EVERY after the table was made.
        std::thread::sleep(FULL_SWEEP_EVERY + Duration::from_millis(50));
        assert_eq!(limiter.check(&10), Ok(()), "the sweep freed the table");
        assert_eq!(limiter.len(), 1);
    }

    #[test]
    fn ipv6_clients_count_per_64_and_mapped_ipv4_as_ipv4() {
        let parse = |s: &str| {
            s.parse::<IpAddr>()
                .unwrap_or(IpAddr::V4([0, 0, 0, 0].into()))
        };
        assert_eq!(
            subscriber(parse("2001:db8:1:2:aaaa:bbbb:cccc:dddd")),
            subscriber(parse("2001:db8:1:2::1"))
        );
        assert_ne!(
            subscriber(parse("2001:db8:1:2::1")),
            subscriber(parse("2001:db8:1:3::1"))
        );
        assert_eq!(subscriber(parse("::ffff:192.0.2.7")), parse("192.0.2.7"));
        assert_eq!(subscriber(parse("192.0.2.7")), parse("192.0.2.7"));
    }
}
