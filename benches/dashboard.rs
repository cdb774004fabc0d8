//! The connections page's server time for listing a store's connections: `GET
//! /dashboard/api/connections` for a store with one connection per platform, on SQLite and on PostgreSQL,
//! measured over loopback with a kept-alive connection (so the figure is the service's time plus a
//! local round trip). Criterion gives the estimate; a fixed run of requests then prints p50/p99.
//!
//! `CARGO_TARGET_DIR=... cargo bench --bench dashboard` (PostgreSQL and Redis as for the tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::time::{Duration, Instant};

use criterion::Criterion;
use growth_engine::domain::{StoreId, UserId};
use growth_engine::sandbox::PLATFORMS;
use helpers::{percentile, spawn_app_with, Backend, Browser, TestApp, TestAppOptions};

const STORE: &str = "bench-store";
/// Requests in the percentile run under `cargo bench`; `cargo test --all-targets` runs benches once
/// as a smoke test, where a few suffice.
fn samples() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        2000
    } else {
        20
    }
}

/// A store with one connection per platform and a browser holding its dashboard session.
async fn prepare(backend: Backend) -> (TestApp, Browser) {
    let app = spawn_app_with(TestAppOptions {
        backend,
        extra_env: vec![("RATE_LIMIT_PER_MINUTE", "100000".into())],
        ..Default::default()
    })
    .await;
    for platform in PLATFORMS {
        let outcome = app.run_flow(platform, STORE, true).await;
        assert_eq!(outcome["connection"], "success", "{platform}");
    }
    let link = app
        .services
        .dashboard
        .mint_link(
            &StoreId::parse(STORE).unwrap(),
            &UserId::parse("bench-user").unwrap(),
            15,
        )
        .unwrap();
    let browser = Browser::new();
    assert_eq!(
        browser
            .client
            .get(link.as_str())
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
    (app, browser)
}

async fn list(app: &TestApp, browser: &Browser) -> usize {
    let response = browser
        .client
        .get(app.url("/dashboard/api/connections"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body = response.bytes().await.unwrap();
    body.len()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut criterion = Criterion::default()
        .configure_from_args()
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(5));
    let mut report = Vec::new();
    for (name, backend) in [("sqlite", Backend::Embedded), ("postgres", Backend::Shared)] {
        let (app, browser) = runtime.block_on(prepare(backend));
        let cards = runtime.block_on(async {
            let response = browser
                .client
                .get(app.url("/dashboard/api/connections"))
                .send()
                .await
                .unwrap();
            response.json::<serde_json::Value>().await.unwrap()
        });
        let connected = cards["platforms"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["state"] == "connected")
            .count();
        assert_eq!(
            connected,
            growth_engine::platforms::BUILT_IN.len(),
            "a connection per platform to list"
        );

        criterion.bench_function(&format!("dashboard_connections_{name}"), |b| {
            b.to_async(&runtime).iter(|| list(&app, &browser));
        });

        let samples = samples();
        let mut times = runtime.block_on(async {
            let mut times = Vec::with_capacity(samples);
            for _ in 0..samples {
                let started = Instant::now();
                list(&app, &browser).await;
                times.push(started.elapsed());
            }
            times
        });
        times.sort();
        report.push(format!(
            "GET /dashboard/api/connections, 5 connections, {name}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({samples} sequential requests)",
            percentile(&times, 0.50).as_secs_f64() * 1000.0,
            percentile(&times, 0.99).as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0,
        ));
        runtime.block_on(app.stop());
    }
    criterion.final_summary();
    for line in report {
        println!("{line}");
    }
}
