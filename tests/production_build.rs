//! The production image is built with `--no-default-features`, that is without the `sandbox`
//! feature: this test proves that such a build serves no platform simulator.
//!
//! It runs in both builds so that it means something in each: without the feature every simulator
//! path answers a JSON 404 and `SANDBOX=true` is refused at start; with it (the default build) the
//! same paths answer, and the path list is checked against the sandbox's own endpoints, so the list
//! cannot drift away from the routes it is meant to prove absent. CI runs it both ways
//! (`cargo test --test production_build` and `cargo test --no-default-features --test production_build`).
//!
//! Needs nothing outside the process: SQLite in a temporary directory and in-process state, the
//! embedded defaults.

// In tests a failed expectation is a failed test, which is exactly what these report.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;

use growth_engine::app::{AppOptions, Application};
use growth_engine::config::Settings;
use reqwest::StatusCode;
use tokio::net::TcpListener;

/// Every route the sandbox serves (authorize, token, revoke, user info and consent per platform).
const SIMULATED_PATHS: [&str; 30] = [
    "/sandbox/meta/v25.0/dialog/oauth",
    "/sandbox/meta/v25.0/oauth/access_token",
    "/sandbox/meta/v25.0/me/permissions",
    "/sandbox/meta/v25.0/me",
    "/sandbox/meta/consent",
    "/sandbox/tiktok/v2/auth/authorize/",
    "/sandbox/tiktok/v2/oauth/token/",
    "/sandbox/tiktok/v2/oauth/revoke/",
    "/sandbox/tiktok/v2/user/info/",
    "/sandbox/tiktok/consent",
    "/sandbox/google/o/oauth2/v2/auth",
    "/sandbox/google/token",
    "/sandbox/google/revoke",
    "/sandbox/google/v1/userinfo",
    "/sandbox/google/consent",
    "/sandbox/pinterest/oauth/",
    "/sandbox/pinterest/v5/oauth/token",
    "/sandbox/pinterest/v5/oauth/token/revoke",
    "/sandbox/pinterest/v5/user_account",
    "/sandbox/pinterest/consent",
    "/sandbox/twitter/i/oauth2/authorize",
    "/sandbox/twitter/2/oauth2/token",
    "/sandbox/twitter/2/oauth2/revoke",
    "/sandbox/twitter/2/users/me",
    "/sandbox/twitter/consent",
    "/sandbox/linkedin/oauth/v2/authorization",
    "/sandbox/linkedin/oauth/v2/accessToken",
    "/sandbox/linkedin/oauth/v2/revoke",
    "/sandbox/linkedin/api/v2/userinfo",
    "/sandbox/linkedin/consent",
];

/// Development settings with the embedded defaults, plus `extra`; the SQLite file lives in `dir`.
fn settings(dir: &tempfile::TempDir, extra: &[(&str, &str)]) -> Result<Settings, String> {
    let mut vars: HashMap<String, String> = HashMap::from([
        (
            "DATABASE_URL".to_owned(),
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("production-build.db").display()
            ),
        ),
        (
            "TOKEN_ENCRYPTION_KEY".to_owned(),
            growth_engine::vault::Key::generate().to_base64(),
        ),
    ]);
    for (name, value) in extra {
        vars.insert((*name).to_owned(), (*value).to_owned());
    }
    Settings::from_vars(&vars).map_err(|e| e.to_string())
}

/// Serves the application with the default settings on port 0; returns its address.
async fn spawn_default_app(dir: &tempfile::TempDir) -> (String, Settings) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let settings = settings(dir, &[("API_URL", address.as_str())]).unwrap();
    let app = Application::build_with(
        settings.clone(),
        listener,
        AppOptions {
            refresher: false,
            ..AppOptions::default()
        },
    )
    .await
    .expect("the application builds with the embedded defaults");
    tokio::spawn(app.run_until(std::future::pending()));
    (address, settings)
}

#[tokio::test]
async fn simulator_routes_exist_only_in_a_build_with_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let (address, settings) = spawn_default_app(&dir).await;
    assert_eq!(
        settings.sandbox,
        cfg!(feature = "sandbox"),
        "the development default of SANDBOX follows the build"
    );
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in SIMULATED_PATHS {
        let response = client.get(format!("{address}{path}")).send().await.unwrap();
        let status = response.status();
        if cfg!(feature = "sandbox") {
            assert_ne!(
                status,
                StatusCode::NOT_FOUND,
                "GET {path}: the sandbox build serves it"
            );
        } else {
            assert_eq!(status, StatusCode::NOT_FOUND, "GET {path}");
            let body: serde_json::Value = response
                .json()
                .await
                .unwrap_or_else(|e| panic!("GET {path}: the 404 is JSON: {e}"));
            assert_eq!(body["error"]["code"], "not_found", "GET {path}: {body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
                "GET {path}: {body}"
            );
        }
    }
}

#[cfg(feature = "sandbox")]
#[test]
fn the_path_list_is_every_route_of_the_sandbox() {
    use growth_engine::sandbox;

    let mut expected = Vec::new();
    for platform in sandbox::PLATFORMS {
        let endpoints = sandbox::endpoints("", platform).unwrap();
        expected.extend([
            endpoints.authorize,
            endpoints.token,
            endpoints.revoke,
            endpoints.userinfo,
            format!("/sandbox/{platform}/consent"),
        ]);
    }
    let mut listed: Vec<String> = SIMULATED_PATHS.iter().map(|p| (*p).to_owned()).collect();
    expected.sort();
    listed.sort();
    assert_eq!(listed, expected);
}

#[cfg(not(feature = "sandbox"))]
#[test]
fn sandbox_true_is_refused_by_a_build_without_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        settings(&dir, &[("SANDBOX", "true")]).unwrap_err(),
        "invalid setting SANDBOX: this build has no sandbox: rebuild with the `sandbox` feature"
    );
    assert!(!settings(&dir, &[("SANDBOX", "false")]).unwrap().sandbox);
}
