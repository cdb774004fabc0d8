//! What an MCP tool call adds over the REST call it stands for: `get_post` against `GET
//! /api/v1/posts/{id}` and `list_connections` against `GET /api/v1/oauth/connections/{store}`, on
//! the same service (PostgreSQL, Redis), over loopback with a kept-alive connection, interleaved
//! so that both see the same machine. MCP requests are sent as the two protocol eras' clients
//! send them: the handshake era's (2025-11-25, stateless) and the newest (2026-07-28, `_meta` and
//! the `Mcp-Method`/`Mcp-Name` headers). Criterion gives estimates; a fixed run then prints p50
//! and p99 of each and the added p50.
//!
//! `cargo bench --bench mcp` (PostgreSQL and Redis as for the tests).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/api/helpers.rs"]
#[allow(dead_code)]
mod helpers;

use std::time::{Duration, Instant};

use criterion::Criterion;
use helpers::{spawn_app_with, TestApp, TestAppOptions, API_KEY};

/// The `p` quantile of sorted samples, in milliseconds.
fn ms(sorted: &[Duration], p: f64) -> f64 {
    helpers::percentile(sorted, p).as_secs_f64() * 1000.0
}
use serde_json::{json, Value};

const STORE: &str = "bench-store";

fn samples() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        3000
    } else {
        20
    }
}

/// One kind of request: REST, or a tool call in one era.
#[derive(Clone, Copy, Debug)]
enum Via {
    Rest,
    Handshake,
    Modern,
}

async fn prepare() -> (TestApp, String) {
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("RATE_LIMIT_PER_MINUTE", "100000".into())],
        ..Default::default()
    })
    .await;
    let outcome = app.run_flow("twitter", STORE, true).await;
    assert_eq!(outcome["connection"], "success");
    let created: Value = app
        .api
        .post(app.url("/api/v1/posts"))
        .bearer_auth(API_KEY)
        .header("Idempotency-Key", "bench")
        .json(&json!({"store_id": STORE, "platform": "twitter", "text": "bench", "publish_at": "2027-06-01T00:00:00Z"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().expect("a post").to_owned();
    (app, id)
}

/// Sends one request of `tool` via `via`; returns the answer's size (checked to be a success).
async fn request(app: &TestApp, via: Via, tool: &str, args: &Value) -> usize {
    let builder = match via {
        Via::Rest => {
            let path = match tool {
                "get_post" => format!("/api/v1/posts/{}", args["post_id"].as_str().unwrap()),
                _ => format!("/api/v1/oauth/connections/{STORE}"),
            };
            app.api.get(app.url(&path))
        }
        Via::Handshake | Via::Modern => {
            let mut params = json!({"name": tool, "arguments": args});
            let mut builder = app
                .api
                .post(app.url("/mcp"))
                .header("accept", "application/json, text/event-stream");
            if let Via::Modern = via {
                params["_meta"] = json!({
                    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                    "io.modelcontextprotocol/clientCapabilities": {},
                });
                builder = builder
                    .header("mcp-protocol-version", "2026-07-28")
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", tool);
            } else {
                builder = builder.header("mcp-protocol-version", "2025-11-25");
            }
            builder
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": params}))
        }
    };
    let response = builder.bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(response.status(), 200, "{via:?} {tool}");
    let body = response.bytes().await.unwrap();
    if !matches!(via, Via::Rest) {
        let answer: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(answer["result"]["isError"], false, "{answer}");
    }
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
    let (app, id) = runtime.block_on(prepare());
    let tools = [
        ("get_post", json!({"post_id": id})),
        ("list_connections", json!({"store_id": STORE})),
    ];
    let vias = [Via::Rest, Via::Handshake, Via::Modern];
    for (tool, args) in &tools {
        for via in vias {
            criterion.bench_function(&format!("{tool}_{via:?}").to_lowercase(), |b| {
                b.to_async(&runtime).iter(|| request(&app, via, tool, args));
            });
        }
    }
    let mut report = Vec::new();
    for (tool, args) in &tools {
        let samples = samples();
        let mut times: Vec<Vec<Duration>> = vec![Vec::with_capacity(samples); vias.len()];
        runtime.block_on(async {
            // Interleaved: each round sends one of each, so a busy moment hits all three alike.
            for _ in 0..samples {
                for (i, via) in vias.iter().enumerate() {
                    let started = Instant::now();
                    request(&app, *via, tool, args).await;
                    times[i].push(started.elapsed());
                }
            }
        });
        for sample in &mut times {
            sample.sort();
        }
        let rest_p50 = ms(&times[0], 0.50);
        for (i, via) in vias.iter().enumerate() {
            let p50 = ms(&times[i], 0.50);
            report.push(format!(
                "{tool} via {via:?}: p50 {p50:.3} ms, p99 {:.3} ms, added p50 over REST {:+.3} ms ({samples} requests)",
                ms(&times[i], 0.99),
                p50 - rest_p50,
            ));
        }
    }
    runtime.block_on(app.stop());
    criterion.final_summary();
    for line in report {
        println!("{line}");
    }
}
