//! Growth Engine's integration tests: one binary, real PostgreSQL and Redis, the service spawned on
//! port 0, the platforms simulated by `growth_engine::sandbox`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod assets;
mod chaos;
mod config;
mod dashboard;
mod dashboard_browser;
mod error_paths;
mod fair_shares;
mod faults_infra;
mod faults_lost_answer;
mod faults_partition;
mod faults_posts;
mod faults_refresh;
mod flow_faults;
mod flows;
mod health;
mod health_states;
mod keys_audit;
// Shared by every suite; not every suite uses every helper.
#[allow(dead_code)]
mod helpers;
mod lifecycle;
mod linkedin;
mod listing;
mod mcp;
mod oidc;
mod perimeter_junk;
mod platform_events;
mod posts;
mod proxy;
mod proxy_gateway;
mod reconnect;
mod replicas;
mod sentinel;
mod state;
mod store;
mod strict;
mod upgrade;
mod vault;
