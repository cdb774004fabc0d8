//! Fair shares of the budgets every merchant of an app shares (Meta's platform limit, X's and
//! Pinterest's rate limits, Google's and TikTok's documented quotas): when a budget is nearly
//! spent, a store using more than its share of the recent calls gets our own 429
//! `quota_exceeded` before the platform throttles the app for everyone; stores within their
//! share carry on. An operator's per-store ceiling per platform applies at any usage.
//!
//! The view is shared across replicas through a [`ShareLedger`] (Redis; in process for the
//! embedded default): each replica counts its calls locally and, every [`SYNC_EVERY`], adds them
//! to the ledger's per-minute tally of calls by store and reads back the tally, the latest usage a
//! platform reported and the calls counted against a documented quota. A call is decided on the
//! local view, with no I/O: the work on the proxy's hot path is a lock and two map lookups.
//! Without a ledger answer (Redis down) there is no view, and every call passes: the platform's
//! own 429s still come back.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;

use crate::metrics::Metrics;
use crate::platforms::budget::{AppUsage, CountedBudget};
use crate::redis_conn::{RedisHandle, RedisUnavailable};

/// How often each replica exchanges its counts with the ledger.
pub const SYNC_EVERY: Duration = Duration::from_millis(250);

/// The tally's window: a store's share is its calls over the last minute (the current window and
/// the previous one, weighted by how much of it is still within the last minute).
pub const SHARE_WINDOW_SECONDS: u64 = 60;

/// Below this many calls in the window a store is never over its share (the first calls of a
/// quiet minute are not a pattern).
const MIN_CALLS: f64 = 5.0;

/// `FAIR_SHARE_*` and `STORE_CALL_CEILINGS`.
#[derive(Debug, Clone, PartialEq)]
pub struct FairShareSettings {
    /// `FAIR_SHARE_ENABLED` (default true).
    pub enabled: bool,
    /// `FAIR_SHARE_THRESHOLD_PERCENT` (default 80), as a share: above it, stores over their fair
    /// share are throttled.
    pub threshold: f64,
    /// `STORE_CALL_CEILINGS` (`meta=600,twitter=60`): calls a store may make per minute, by
    /// platform, whatever the usage.
    pub ceilings: BTreeMap<String, u64>,
}

impl Default for FairShareSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            threshold: 0.8,
            ceilings: BTreeMap::new(),
        }
    }
}

/// Why a call was refused, and when to try again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    /// `fair_share` or `store_ceiling`.
    pub reason: &'static str,
    /// Seconds until the tally's window turns.
    pub retry_after: u64,
}

impl From<Throttle> for super::error::ProxyError {
    fn from(throttle: Throttle) -> Self {
        Self::QuotaExceeded {
            reason: throttle.reason,
            retry_after: throttle.retry_after,
        }
    }
}

/// What one replica sends the ledger for one platform.
#[derive(Debug, Default, Clone)]
pub struct Contribution {
    /// Calls by store since the last exchange, in the current window.
    pub calls: HashMap<String, u64>,
    /// The latest usage an answer reported (0 to 1).
    pub reported: Option<f64>,
    /// Calls counted against a documented quota, and that quota.
    pub counted: Option<(u64, CountedBudget)>,
}

/// What the ledger holds for one platform after an exchange.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tally {
    /// Calls by store in the current window, every replica's.
    pub current: HashMap<String, u64>,
    /// The same for the previous window.
    pub previous: HashMap<String, u64>,
    /// The latest usage any replica reported within the window.
    pub reported: Option<f64>,
    /// Calls counted in the documented quota's current window.
    pub counted: Option<u64>,
}

/// Where the replicas' counts meet.
#[async_trait]
pub trait ShareLedger: Send + Sync + 'static {
    /// Adds `contribution` to `platform`'s tally for `window` (an index of
    /// [`SHARE_WINDOW_SECONDS`]-long windows) and reads the tally back.
    async fn exchange(
        &self,
        platform: &str,
        window: u64,
        now: u64,
        contribution: Contribution,
    ) -> Result<Tally, RedisUnavailable>;
}

/// The fair-share view of one process; a cheap-clone handle.
#[derive(Clone)]
pub struct FairShares(Arc<Inner>);

struct Inner {
    settings: FairShareSettings,
    ledger: Arc<dyn ShareLedger>,
    metrics: Metrics,
    state: Mutex<State>,
}

impl std::fmt::Debug for FairShares {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FairShares")
            .field("settings", &self.0.settings)
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    platforms: HashMap<String, PlatformShare>,
    /// Whether the last exchange with the ledger worked: without it there is no view.
    view_ok: bool,
}

#[derive(Default)]
struct PlatformShare {
    /// Counted here since the last exchange.
    pending: Contribution,
    /// Every replica's recent calls by store (weighted), as of the last exchange plus ours since.
    calls: HashMap<String, f64>,
    total: f64,
    /// The budget's spent share, as of the last exchange or the latest answer here.
    usage: f64,
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl FairShares {
    /// The view, exchanged with `ledger` by a task that lives as long as the handle.
    pub fn start(
        settings: FairShareSettings,
        ledger: Arc<dyn ShareLedger>,
        metrics: Metrics,
    ) -> Self {
        let shares = Self(Arc::new(Inner {
            settings,
            ledger,
            metrics,
            state: Mutex::new(State::default()),
        }));
        let weak = Arc::downgrade(&shares.0);
        if tokio::runtime::Handle::try_current().is_ok() {
            tokio::spawn(sync_loop(weak));
        }
        shares
    }

    /// With Redis as the ledger, or (without Redis: one process) in this process.
    pub fn with_redis(
        settings: FairShareSettings,
        redis: Option<RedisHandle>,
        metrics: Metrics,
    ) -> Self {
        let ledger: Arc<dyn ShareLedger> = match redis {
            Some(redis) => Arc::new(RedisLedger(redis)),
            None => Arc::new(MemoryLedger::default()),
        };
        Self::start(settings, ledger, metrics)
    }

    /// Whether `store` may call `platform` now.
    pub fn admit(&self, platform: &str, store: &str) -> Result<(), Throttle> {
        let settings = &self.0.settings;
        let ceiling = settings.ceilings.get(platform);
        if !settings.enabled && ceiling.is_none() {
            return Ok(());
        }
        let state = self.lock();
        // No view (the ledger could not be reached): nothing to decide on, the call passes.
        let (true, Some(share)) = (state.view_ok, state.platforms.get(platform)) else {
            return Ok(());
        };
        let calls = share.calls.get(store).copied().unwrap_or(0.0);
        let retry_after = SHARE_WINDOW_SECONDS - unix_now() % SHARE_WINDOW_SECONDS;
        let throttle = |reason| {
            self.0.metrics.fair_share_throttled(platform, reason);
            Err(Throttle {
                reason,
                retry_after: retry_after.max(1),
            })
        };
        if ceiling.is_some_and(|ceiling| calls >= *ceiling as f64) {
            return throttle("store_ceiling");
        }
        if settings.enabled && share.usage >= settings.threshold {
            let active = share.calls.len().max(1) as f64;
            let fair = share.total / active;
            if share.calls.len() >= 2 && calls > fair.max(MIN_CALLS) {
                return throttle("fair_share");
            }
        }
        Ok(())
    }

    /// A call of `store` reached `platform` (and spent its budget), whose answer's headers said
    /// `usage` of it.
    pub fn spent(
        &self,
        platform: &str,
        store: &str,
        usage: AppUsage,
        counted: Option<CountedBudget>,
    ) {
        if usage == AppUsage::Malformed {
            self.0.metrics.usage_header_malformed(platform);
        }
        let mut state = self.lock();
        if !state.platforms.contains_key(platform) {
            state
                .platforms
                .insert(platform.to_owned(), PlatformShare::default());
        }
        let Some(share) = state.platforms.get_mut(platform) else {
            return;
        };
        // Looked up before inserting: a store's name is copied once a window, not once a call.
        match share.pending.calls.get_mut(store) {
            Some(n) => *n += 1,
            None => {
                share.pending.calls.insert(store.to_owned(), 1);
            }
        }
        match share.calls.get_mut(store) {
            Some(n) => *n += 1.0,
            None => {
                share.calls.insert(store.to_owned(), 1.0);
            }
        }
        share.total += 1.0;
        if let AppUsage::Spent(spent) = usage {
            share.pending.reported = Some(spent);
            share.usage = spent;
        }
        if let Some(budget) = counted {
            let (n, _) = share.pending.counted.get_or_insert((0, budget));
            *n += 1;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One exchange with the ledger for every platform seen.
    async fn sync(&self) {
        let now = unix_now();
        let window = now / SHARE_WINDOW_SECONDS;
        let drained: Vec<(String, Contribution)> = {
            let mut state = self.lock();
            state
                .platforms
                .iter_mut()
                .map(|(platform, share)| (platform.clone(), std::mem::take(&mut share.pending)))
                .collect()
        };
        let mut ok = true;
        for (platform, contribution) in drained {
            let budget = contribution.counted.map(|(_, budget)| budget);
            match self
                .0
                .ledger
                .exchange(&platform, window, now, contribution)
                .await
            {
                Ok(tally) => self.apply(&platform, &tally, budget, now),
                // Counts lost with the exchange are advisory: the platform's own limit stands.
                Err(_) => ok = false,
            }
        }
        self.lock().view_ok = ok;
    }

    /// Replaces `platform`'s view with `tally`, plus what was counted here since the exchange.
    fn apply(&self, platform: &str, tally: &Tally, budget: Option<CountedBudget>, now: u64) {
        let elapsed = (now % SHARE_WINDOW_SECONDS) as f64 / SHARE_WINDOW_SECONDS as f64;
        let mut calls: HashMap<String, f64> = HashMap::new();
        for (store, n) in &tally.current {
            *calls.entry(store.clone()).or_default() += *n as f64;
        }
        for (store, n) in &tally.previous {
            *calls.entry(store.clone()).or_default() += *n as f64 * (1.0 - elapsed);
        }
        let counted = match (tally.counted, budget) {
            (Some(n), Some(budget)) if budget.calls > 0 => n as f64 / budget.calls as f64,
            _ => 0.0,
        };
        let usage = tally.reported.unwrap_or(0.0).max(counted);
        let mut state = self.lock();
        let share = state.platforms.entry(platform.to_owned()).or_default();
        for (store, n) in &share.pending.calls {
            *calls.entry(store.clone()).or_default() += *n as f64;
        }
        share.total = calls.values().sum();
        share.calls = calls;
        share.usage = share.pending.reported.unwrap_or(usage);
    }
}

async fn sync_loop(shares: Weak<Inner>) {
    let mut ticks = tokio::time::interval(SYNC_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(inner) = shares.upgrade() else {
            return;
        };
        FairShares(inner).sync().await;
    }
}

/// The ledger in Redis: a hash per platform and window (store → calls), the latest reported
/// usage, and a counter per documented quota's window; all with an expiry.
struct RedisLedger(RedisHandle);

#[async_trait]
impl ShareLedger for RedisLedger {
    async fn exchange(
        &self,
        platform: &str,
        window: u64,
        now: u64,
        contribution: Contribution,
    ) -> Result<Tally, RedisUnavailable> {
        let current = self.0.key(&format!("shares:{platform}:{window}"));
        let previous = self
            .0
            .key(&format!("shares:{platform}:{}", window.saturating_sub(1)));
        let usage = self.0.key(&format!("shares:{platform}:usage"));
        let counted = contribution.counted.map(|(n, budget)| {
            let seconds = budget.window.as_secs().max(1);
            let key = self
                .0
                .key(&format!("shares:{platform}:quota:{}", now / seconds));
            (key, n, seconds)
        });
        let mut pipe = redis::pipe();
        for (store, n) in &contribution.calls {
            pipe.hincr(&current, store, *n).ignore();
        }
        pipe.expire(&current, (SHARE_WINDOW_SECONDS * 2) as i64)
            .ignore();
        if let Some(reported) = contribution.reported {
            pipe.set_ex(&usage, reported, SHARE_WINDOW_SECONDS).ignore();
        }
        if let Some((key, n, seconds)) = &counted {
            pipe.incr(key, *n)
                .ignore()
                .expire(key, *seconds as i64)
                .ignore();
        }
        pipe.hgetall(&current).hgetall(&previous).get(&usage);
        if let Some((key, _, _)) = &counted {
            pipe.get(key);
        }
        self.0
            .call(|mut conn| async move {
                let (current, previous, reported, counted) = if counted.is_some() {
                    pipe.query_async(&mut conn).await?
                } else {
                    let (current, previous, reported) = pipe.query_async(&mut conn).await?;
                    (current, previous, reported, None)
                };
                Ok(Tally {
                    current,
                    previous,
                    reported,
                    counted,
                })
            })
            .await
    }
}

/// The ledger of a single process (no Redis: the embedded default).
#[derive(Default)]
pub struct MemoryLedger(Mutex<HashMap<String, MemoryTally>>);

#[derive(Default)]
struct MemoryTally {
    windows: BTreeMap<u64, HashMap<String, u64>>,
    reported: Option<(f64, u64)>,
    counted: Option<(u64, u64)>,
}

#[async_trait]
impl ShareLedger for MemoryLedger {
    async fn exchange(
        &self,
        platform: &str,
        window: u64,
        now: u64,
        contribution: Contribution,
    ) -> Result<Tally, RedisUnavailable> {
        let mut ledgers = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tally = ledgers.entry(platform.to_owned()).or_default();
        tally.windows.retain(|w, _| *w + 1 >= window);
        let current = tally.windows.entry(window).or_default();
        for (store, n) in contribution.calls {
            *current.entry(store).or_default() += n;
        }
        if let Some(reported) = contribution.reported {
            tally.reported = Some((reported, now));
        }
        let mut counted = None;
        if let Some((n, budget)) = contribution.counted {
            let index = now / budget.window.as_secs().max(1);
            let spent = match tally.counted {
                Some((at, spent)) if at == index => spent + n,
                _ => n,
            };
            tally.counted = Some((index, spent));
            counted = Some(spent);
        }
        Ok(Tally {
            current: tally.windows.get(&window).cloned().unwrap_or_default(),
            previous: tally
                .windows
                .get(&window.saturating_sub(1))
                .cloned()
                .unwrap_or_default(),
            reported: tally
                .reported
                .filter(|(_, at)| at + SHARE_WINDOW_SECONDS > now)
                .map(|(usage, _)| usage),
            counted: counted.or(tally.counted.map(|(_, spent)| spent)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shares(settings: FairShareSettings) -> FairShares {
        FairShares(Arc::new(Inner {
            settings,
            ledger: Arc::new(MemoryLedger::default()),
            metrics: Metrics::new(),
            state: Mutex::new(State::default()),
        }))
    }

    async fn calls(shares: &FairShares, store: &str, n: usize, usage: f64) {
        for _ in 0..n {
            shares.spent("p", store, AppUsage::Spent(usage), None);
        }
        shares.sync().await;
    }

    #[tokio::test]
    async fn above_the_threshold_only_the_store_over_its_share_is_throttled() {
        let shares = shares(FairShareSettings::default());
        for store in ["a", "b", "c"] {
            calls(&shares, store, 10, 0.5).await;
        }
        calls(&shares, "busy", 100, 0.5).await;
        assert!(
            shares.admit("p", "busy").is_ok(),
            "below the threshold everyone passes"
        );
        calls(&shares, "a", 1, 0.85).await;
        let throttle = shares.admit("p", "busy").expect_err("over its share");
        assert_eq!(throttle.reason, "fair_share");
        assert!((1..=SHARE_WINDOW_SECONDS).contains(&throttle.retry_after));
        for store in ["a", "b", "c", "new"] {
            assert!(shares.admit("p", store).is_ok(), "{store}");
        }
    }

    #[tokio::test]
    async fn a_ceiling_applies_at_any_usage_and_no_view_means_no_throttle() {
        let mut settings = FairShareSettings::default();
        settings.ceilings.insert("p".into(), 20);
        let shares = shares(settings);
        calls(&shares, "a", 19, 0.0).await;
        assert!(shares.admit("p", "a").is_ok());
        calls(&shares, "a", 1, 0.0).await;
        assert_eq!(
            shares.admit("p", "a").expect_err("at the ceiling").reason,
            "store_ceiling"
        );
        shares.lock().view_ok = false;
        assert!(shares.admit("p", "a").is_ok(), "without a view, calls pass");
    }

    #[tokio::test]
    async fn a_malformed_usage_header_is_ignored_and_counted() {
        let shares = shares(FairShareSettings::default());
        calls(&shares, "a", 3, 0.9).await;
        shares.spent("p", "a", AppUsage::Malformed, None);
        shares.sync().await;
        assert!(
            shares.lock().platforms["p"].usage >= 0.9,
            "the last reading stands"
        );
        let text = shares.0.metrics.render();
        assert!(
            text.contains(r#"growth_engine_proxy_usage_headers_malformed_total{platform="p"} 1"#),
            "{text}"
        );
    }

    #[tokio::test]
    async fn a_counted_quota_becomes_usage() {
        let shares = shares(FairShareSettings::default());
        let budget = CountedBudget {
            calls: 100,
            window: Duration::from_secs(3600),
        };
        for (store, n) in [("a", 10), ("b", 10), ("busy", 70)] {
            for _ in 0..n {
                shares.spent("p", store, AppUsage::Unreported, Some(budget));
            }
        }
        shares.sync().await;
        assert_eq!(
            shares.admit("p", "busy").expect_err("90% spent").reason,
            "fair_share"
        );
        assert!(shares.admit("p", "a").is_ok());
    }
}
