//! LinkedIn, the sixth built-in platform, end to end against its sandbox simulator: the grant's
//! fixed lifetime (a partner's refresh token keeps the first grant's year; without one, the 60-day
//! access token is the end), discovery of the pages and ad accounts, the API's version headers, and
//! revocation on disconnect (`shared/linkedin.md`).

use chrono::{DateTime, Duration, Utc};
use growth_engine::clock::{Clock, ManualClock};
use growth_engine::sandbox::Simulator;
use serde_json::Value;

use crate::helpers::{spawn_app_with, TestApp, TestAppOptions, API_KEY};

/// The service with LinkedIn served by a standalone simulator on the test's clock, so that the
/// platform's lifetimes and the service's move together.
async fn spawn(clock: &ManualClock) -> TestApp {
    spawn_app_with(TestAppOptions {
        simulated: vec!["linkedin"],
        clock: Some(clock.clone()),
        simulator_follows_clock: true,
        ..Default::default()
    })
    .await
}

fn sandbox_of(app: &TestApp) -> &Simulator {
    &app.simulator
}

async fn connect(app: &TestApp, store: &str) {
    let result = app.run_flow("linkedin", store, true).await;
    assert_eq!(result["connection"], "success", "{result:?}");
}

async fn connection(app: &TestApp, store: &str) -> Value {
    let all = app.connections(store).await;
    all["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == "linkedin")
        .cloned()
        .unwrap_or_else(|| panic!("no linkedin connection in {all}"))
}

fn time(value: &Value) -> DateTime<Utc> {
    value
        .as_str()
        .unwrap_or_else(|| panic!("a time: {value}"))
        .parse()
        .unwrap()
}

async fn proxy(app: &TestApp, store: &str, path: &str, version: Option<&str>) -> reqwest::Response {
    let mut request = app
        .api
        .get(app.url(&format!("/api/v1/proxy/linkedin/{path}")))
        .bearer_auth(API_KEY)
        .header("Growth-Engine-Store", store);
    if let Some(version) = version {
        request = request.header("LinkedIn-Version", version);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn a_partners_grant_lasts_the_first_grants_year_however_often_it_refreshes() {
    let clock = ManualClock::new(Utc::now());
    let app = spawn(&clock).await;
    connect(&app, "li-partner").await;
    let first = connection(&app, "li-partner").await;
    let reconnect_by = time(&first["health"]["reconnect_by"]);
    let connected = clock.now();
    assert!(
        (reconnect_by - (connected + Duration::days(365)))
            .num_seconds()
            .abs()
            < 60,
        "the refresh token's year: {first}"
    );

    // Two months on, a refresh renews the access token but not the grant's end.
    clock.advance(Duration::days(59));
    let refreshed = app
        .post("/api/v1/oauth/refresh/linkedin?store_id=li-partner")
        .await;
    assert_eq!(refreshed.status(), 200);
    let refreshed: Value = refreshed.json().await.unwrap();
    let after = connection(&app, "li-partner").await;
    assert!(
        (time(&after["health"]["reconnect_by"]) - reconnect_by)
            .num_seconds()
            .abs()
            < 60,
        "a refresh does not move the end: {after}"
    );
    assert!(
        time(&refreshed["expires_at"]) <= time(&after["health"]["reconnect_by"]),
        "the new access token never outlives the grant: {refreshed}"
    );
    let grants: Vec<String> = sandbox_of(&app)
        .token_requests("linkedin")
        .into_iter()
        .map(|r| r.grant_type)
        .collect();
    assert_eq!(grants, ["authorization_code", "refresh_token"]);
    app.stop().await;
}

#[tokio::test]
async fn without_a_refresh_token_the_grant_ends_with_its_60_day_access_token() {
    let clock = ManualClock::new(Utc::now());
    let app = spawn(&clock).await;
    sandbox_of(&app).set_linkedin_partner_mode(false);
    connect(&app, "li-self-serve").await;
    let card = connection(&app, "li-self-serve").await;
    let reconnect_by = time(&card["health"]["reconnect_by"]);
    assert!(
        (reconnect_by - (clock.now() + Duration::days(60)))
            .num_seconds()
            .abs()
            < 60,
        "the access token's 60 days: {card}"
    );
    assert_eq!(card["status"], "CONNECTED", "{card}");

    // Inside the warning window the connection says so, and still hands out its valid token.
    clock.advance(Duration::days(55));
    let card = connection(&app, "li-self-serve").await;
    assert_eq!(card["health"]["state"], "expiring", "{card}");
    let token = app
        .get("/api/v1/oauth/token/linkedin?store_id=li-self-serve")
        .await;
    assert_eq!(token.status(), 200);
    assert!(
        sandbox_of(&app)
            .token_requests("linkedin")
            .iter()
            .all(|r| r.grant_type == "authorization_code"),
        "nothing to refresh with, so no refresh was tried"
    );

    // Past its end the merchant must reconnect.
    clock.advance(Duration::days(6));
    let token = app
        .get("/api/v1/oauth/token/linkedin?store_id=li-self-serve")
        .await;
    assert_eq!(token.status(), 409, "{:?}", token.text().await);
    app.stop().await;
}

#[tokio::test]
async fn discovery_finds_the_members_pages_and_ad_accounts() {
    let clock = ManualClock::new(Utc::now());
    let app = spawn(&clock).await;
    connect(&app, "li-assets").await;
    let card = connection(&app, "li-assets").await;
    let kinds = |kind: &str| -> Vec<Value> {
        card["assets"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["kind"] == kind)
            .cloned()
            .collect()
    };
    let pages = kinds("linkedin_organization");
    assert_eq!(pages.len(), 2, "{card}");
    assert!(
        pages
            .iter()
            .all(|p| p["name"].as_str().is_some_and(|n| !n.is_empty())),
        "each page has its localized name: {pages:?}"
    );
    let accounts = kinds("linkedin_ad_account");
    assert_eq!(accounts.len(), 1, "{card}");
    app.stop().await;
}

#[tokio::test]
async fn the_proxy_sends_the_pinned_version_and_the_protocol_header_unless_the_caller_pins_another()
{
    let clock = ManualClock::new(Utc::now());
    let app = spawn(&clock).await;
    connect(&app, "li-proxy").await;
    // The simulator refuses a `/rest/` call without both headers: a 200 is their proof.
    let answer = proxy(&app, "li-proxy", "organizationAcls?q=roleAssignee", None).await;
    assert_eq!(answer.status(), 200, "{:?}", answer.text().await);
    // A caller's own version wins; a sunset one is LinkedIn's 426, passed back as it came.
    let sunset = proxy(
        &app,
        "li-proxy",
        "organizationAcls?q=roleAssignee",
        Some("202001"),
    )
    .await;
    assert_eq!(sunset.status(), 426);
    let body: Value = sunset.json().await.unwrap();
    assert_eq!(body["code"], "NONEXISTENT_VERSION", "{body}");
    app.stop().await;
}

#[tokio::test]
async fn disconnecting_revokes_the_token_at_linkedin() {
    let clock = ManualClock::new(Utc::now());
    let app = spawn(&clock).await;
    connect(&app, "li-revoke").await;
    let issued = sandbox_of(&app).issued_access_tokens("linkedin");
    let response = app
        .delete("/api/v1/oauth/disconnect/linkedin?store_id=li-revoke&user_id=u")
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["revocation"], "revoked", "{body}");
    let revoked = sandbox_of(&app).revocations("linkedin");
    assert_eq!(
        revoked.last(),
        issued.last(),
        "the access token was revoked"
    );
    app.stop().await;
}
