//! Fair shares of an app's budget, proven in the sandbox with two replicas of the real binary:
//! the sandbox's X counts every call of the app against one budget shared by all its stores (and
//! reports it in `x-rate-limit-*`), ten stores call through the proxy, one of them at ten times
//! the others' rate. Without fair shares the platform throttles everyone; with them the other
//! stores keep at least 99% success while the busy one gets our 429 `quota_exceeded`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use growth_engine::sandbox::AppBudget;

use crate::faults_refresh::{
    connect_through, start_binary_with, start_sibling_replica, Binary, ChildGuard,
};
use crate::helpers::API_KEY;

/// The normal stores' rate, calls per second; the busy store makes ten times as many.
const RATE: f64 = 4.0;
const STORES: usize = 10;
/// The app's budget: 50 calls a second over a sliding 5 s window. The nine normal stores need
/// 36 a second (72%): with their fair shares they fit, with the busy store's 40 more they do not.
const BUDGET: AppBudget = AppBudget {
    calls: 250,
    window_seconds: 5,
};

/// What each store got, by outcome: `ok`, `quota_exceeded` (ours), `platform` (the platform's
/// throttle or any other answer).
type Outcomes = Arc<Mutex<HashMap<String, HashMap<&'static str, u64>>>>;

async fn call(client: &reqwest::Client, address: &str, store: &str) -> &'static str {
    let response = client
        .get(format!("{address}/api/v1/proxy/twitter/users/me"))
        .bearer_auth(API_KEY)
        .header("Growth-Engine-Store", store)
        .send()
        .await
        .unwrap();
    let status = response.status();
    if status.is_success() {
        return "ok";
    }
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    if status == 429 && body["error"]["code"] == "quota_exceeded" {
        assert!(
            body["error"]["details"]["retry_after_seconds"]
                .as_u64()
                .unwrap()
                >= 1
        );
        "quota_exceeded"
    } else {
        "platform"
    }
}

/// Runs the load for `warm_up` and then `measured`; returns the outcomes of the measured part.
async fn load(addresses: [&str; 2], warm_up: Duration, measured: Duration) -> Outcomes {
    let outcomes: Outcomes = Arc::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..STORES {
        let store = format!("fair-{n}");
        let rate = if n == 0 { RATE * 10.0 } else { RATE };
        let addresses = addresses.map(str::to_owned);
        let outcomes = outcomes.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut i = 0usize;
            while started.elapsed() < warm_up + measured {
                ticks.tick().await;
                // Alternating replicas, as a load balancer would.
                let outcome = call(&client, &addresses[i % 2], &store).await;
                i += 1;
                if started.elapsed() >= warm_up {
                    *outcomes
                        .lock()
                        .unwrap()
                        .entry(store.clone())
                        .or_default()
                        .entry(outcome)
                        .or_default() += 1;
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    outcomes
}

/// The normal stores' success rate, and the busy store's outcomes.
fn summary(outcomes: &Outcomes) -> (f64, HashMap<&'static str, u64>) {
    let outcomes = outcomes.lock().unwrap();
    let (mut ok, mut all) = (0, 0);
    for n in 1..STORES {
        let store = &outcomes[&format!("fair-{n}")];
        ok += store.get("ok").copied().unwrap_or(0);
        all += store.values().sum::<u64>();
    }
    (ok as f64 / all as f64, outcomes["fair-0"].clone())
}

/// Two replicas of the binary on one database, Redis keyspace and sandbox, killed when dropped.
struct Replicas {
    first: Binary,
    _second: ChildGuard,
    addresses: [String; 2],
}

impl Drop for Replicas {
    fn drop(&mut self) {
        let _ = self.first.child.kill();
        let _ = self.first.child.wait();
    }
}

/// Two replicas with `extra` settings on both, ten stores connected, the sandbox's app budget
/// set.
async fn replicas(log: &str, extra: &[(&str, String)]) -> Replicas {
    let first = start_binary_with(log, extra).await;
    let (second, second_address) = start_sibling_replica(&format!("{log}-2"), &first, extra).await;
    for n in 0..STORES {
        connect_through(&first.address, "twitter", &format!("fair-{n}")).await;
    }
    first.simulator.set_app_budget("twitter", Some(BUDGET));
    let addresses = [first.address.clone(), second_address];
    Replicas {
        first,
        _second: second,
        addresses,
    }
}

#[tokio::test]
async fn without_fair_shares_the_busy_store_gets_everyone_throttled() {
    let extra = [("FAIR_SHARE_ENABLED", "false".to_owned())];
    let replicas = replicas("fair-off", &extra).await;
    let [first, second] = &replicas.addresses;
    let outcomes = load(
        [first, second],
        Duration::from_secs(6),
        Duration::from_secs(8),
    )
    .await;
    let (others, busy) = summary(&outcomes);
    println!(
        "fair shares off: the normal stores' success {:.1}%, the busy store {busy:?}",
        others * 100.0
    );
    assert!(
        others < 0.9,
        "the platform throttled the normal stores too: {others}"
    );
    assert_eq!(busy.get("quota_exceeded"), None, "{busy:?}");
}

#[tokio::test]
async fn with_fair_shares_the_others_keep_99_percent_and_the_busy_store_is_throttled_by_us() {
    let replicas = replicas("fair-on", &[]).await;
    let [first, second] = &replicas.addresses;
    let outcomes = load(
        [first, second],
        Duration::from_secs(8),
        Duration::from_secs(10),
    )
    .await;
    let (others, busy) = summary(&outcomes);
    println!(
        "fair shares on: the normal stores' success {:.2}%, the busy store {busy:?}",
        others * 100.0
    );
    assert!(others >= 0.99, "the normal stores' success: {others}");
    assert!(
        busy.get("quota_exceeded").copied().unwrap_or(0) > 0,
        "{busy:?}"
    );
    // The metrics of both replicas count our throttling per platform (no store label).
    let mut throttled = 0.0;
    for address in [first, second] {
        let metrics = reqwest::Client::new()
            .get(format!("{address}/metrics"))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(!metrics.contains("fair-0"), "no store in the metrics");
        throttled += metrics
            .lines()
            .filter(|l| l.starts_with("growth_engine_proxy_fair_share_throttled_total{"))
            .filter(|l| l.contains(r#"platform="twitter""#) && l.contains(r#"reason="fair_share""#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    assert!(throttled > 0.0);
}

/// Redis down: no fair-share view, so nothing is refused by us and nothing waits on Redis; the
/// platform's own throttle still comes back. Up again, the view (here a store's ceiling) returns.
#[tokio::test]
async fn with_redis_down_calls_pass_and_the_platforms_own_429_comes_back() {
    let mut redis = crate::chaos::RedisServer::start().await;
    let app = crate::helpers::spawn_app_with(crate::helpers::TestAppOptions {
        extra_env: vec![
            ("REDIS_URL", redis.url()),
            ("STORE_CALL_CEILINGS", "twitter=5".into()),
        ],
        ..Default::default()
    })
    .await;
    crate::faults_refresh::connect(&app, "twitter", "ceiling-1").await;
    let client = reqwest::Client::new();
    let mut outcomes = Vec::new();
    for _ in 0..5 {
        outcomes.push(call(&client, &app.address, "ceiling-1").await);
    }
    assert!(outcomes.iter().all(|o| *o == "ok"), "{outcomes:?}");
    // The view is built from the ledger's answer (every 250 ms).
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        call(&client, &app.address, "ceiling-1").await,
        "quota_exceeded"
    );

    redis.kill();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    for _ in 0..5 {
        let started = Instant::now();
        assert_eq!(
            call(&client, &app.address, "ceiling-1").await,
            "ok",
            "no view: the call passes"
        );
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
    }
    // The platform's own limit still answers.
    app.simulator.set_app_budget(
        "twitter",
        Some(AppBudget {
            calls: 0,
            window_seconds: 5,
        }),
    );
    assert_eq!(call(&client, &app.address, "ceiling-1").await, "platform");
    app.simulator.set_app_budget("twitter", None);

    redis.restart().await;
    crate::helpers::wait_until(
        "the ceiling applies again",
        Duration::from_secs(10),
        async || call(&client, &app.address, "ceiling-1").await == "quota_exceeded",
    )
    .await;
    app.stop().await;
}
