//! The generic OAuth 2.0 provider path, configured from settings alone, against `oidc-provider`, a
//! certified authorization server (tests/oidc-provider), started by the test.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};

use crate::helpers::{location, query_of, spawn_app_with, Browser, TestAppOptions};

const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/oidc-provider");

async fn start_provider(redirect_uri: &str) -> (Child, String) {
    assert!(
        std::path::Path::new(HARNESS).join("node_modules/oidc-provider").exists(),
        "the oidc-provider harness is not installed: run `npm ci --prefix tests/oidc-provider` (scripts/test does)"
    );
    let mut child = Command::new("node")
        .arg(format!("{HARNESS}/server.mjs"))
        .env("OIDC_PORT", "0")
        .env("OIDC_CLIENT_ID", "growth-engine-test")
        .env("OIDC_CLIENT_SECRET", "oidc-client-secret-7d3e9a")
        .env("OIDC_REDIRECT_URI", redirect_uri)
        .env("OIDC_ROTATE_REFRESH_TOKEN", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("node must be installed to run oidc-provider: {e}"));
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("oidc-provider started within 30 s")
        .unwrap()
        .expect("oidc-provider printed its address");
    let issuer = line
        .strip_prefix("oidc-provider listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .trim()
        .to_owned();
    (child, issuer)
}

#[tokio::test]
async fn a_generic_provider_from_settings_alone_works_against_oidc_provider() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let redirect_uri = format!("{app_address}/api/v1/oauth/callback/oidc");
    let (_provider, issuer) = start_provider(&redirect_uri).await;
    let app = spawn_app_with(TestAppOptions {
        listener: Some(listener),
        simulated: vec![],
        extra_env: vec![
            ("OAUTH_PROVIDERS", "oidc".into()),
            ("OIDC_DISPLAY_NAME", "OIDC Test Provider".into()),
            ("OIDC_CLIENT_ID", "growth-engine-test".into()),
            ("OIDC_CLIENT_SECRET", "oidc-client-secret-7d3e9a".into()),
            ("OIDC_AUTHORIZE_URL", format!("{issuer}/auth")),
            ("OIDC_TOKEN_URL", format!("{issuer}/token")),
            ("OIDC_USERINFO_URL", format!("{issuer}/me")),
            ("OIDC_REVOKE_URL", format!("{issuer}/token/revocation")),
            ("OIDC_SCOPES", "openid profile email offline_access".into()),
            ("OIDC_AUTHORIZE_PARAMS", "prompt=consent".into()),
        ],
        ..Default::default()
    })
    .await;

    let platforms: serde_json::Value = app
        .get("/api/v1/oauth/platforms")
        .await
        .json()
        .await
        .unwrap();
    let oidc = platforms["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "oidc")
        .unwrap()
        .clone();
    assert_eq!(oidc["generic"], true);
    assert_eq!(oidc["configured"], true);

    let browser = Browser::new();
    let start = app.connect_url("oidc", "oidc-store").await;
    let mut url = browser.first_hop(&start).await;
    assert!(url.starts_with(&format!("{issuer}/auth?")), "{url}");
    assert!(
        query_of(&url).contains_key("code_challenge"),
        "PKCE S256 is sent"
    );
    // oidc-provider's development login and consent pages (see tests/oidc-provider/README.md).
    let issuer_url = url::Url::parse(&issuer).unwrap();
    let mut steps = 0;
    while !url.starts_with(&app_address) {
        steps += 1;
        assert!(steps < 12, "the provider's interaction did not end");
        let target = issuer_url.join(&url).unwrap();
        let response = if target.path().starts_with("/interaction/") {
            let page = browser
                .client
                .get(target.clone())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            let form = if page.contains("name=\"login\"") {
                "prompt=login&login=merchant&password=anything"
            } else {
                "prompt=consent"
            };
            browser
                .client
                .post(target)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form)
                .send()
                .await
                .unwrap()
        } else {
            browser.client.get(target).send().await.unwrap()
        };
        assert_eq!(response.status(), 303, "{}", response.url());
        url = location(&response);
    }
    let result = query_of(&browser.callback(&url).await);
    assert_eq!(result["connection"], "success", "{result:?}");

    let connection = &app.connections("oidc-store").await["connections"][0];
    assert_eq!(connection["status"], "CONNECTED");
    assert_eq!(connection["account_id"], "merchant");
    assert_eq!(connection["account_name"], "OIDC Merchant");
    assert_eq!(connection["missing_scopes"], serde_json::json!([]));

    // The refresh token works, and the rotated one is kept.
    for _ in 0..2 {
        let response = app
            .post("/api/v1/oauth/refresh/oidc?store_id=oidc-store")
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let token: serde_json::Value = app
        .get("/api/v1/oauth/token/oidc?store_id=oidc-store")
        .await
        .json()
        .await
        .unwrap();
    let access_token = token["access_token"].as_str().unwrap().to_owned();
    let userinfo = reqwest::Client::new()
        .get(format!("{issuer}/me"))
        .bearer_auth(&access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        userinfo.status(),
        200,
        "the token we hand out works at the provider"
    );

    let response = app
        .delete("/api/v1/oauth/disconnect/oidc?user_id=u&store_id=oidc-store")
        .await;
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["revocation"], "revoked", "{body}");
    let after = reqwest::Client::new()
        .get(format!("{issuer}/me"))
        .bearer_auth(&access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401, "the provider revoked the token");
    app.stop().await;
}
