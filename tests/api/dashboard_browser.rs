//! The connections page in headless Chromium (driven over WebDriver by chromedriver): open a link,
//! connect all five platforms through the built-in sandbox's consent screens, decline one, disconnect
//! after confirming, and save screenshots under `target/screenshots/`.
//!
//! Needs `chromium` and `chromedriver` (`apt-get install chromium chromium-driver`; `.ci/run` installs
//! them); `$CHROMIUM` and `$CHROMEDRIVER` override the paths. Missing, the test fails, never skips.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;

use crate::dashboard::link;
use crate::helpers::{spawn_app_with, TestAppOptions};

const INSTALL: &str = "apt-get install chromium chromium-driver";
const PLATFORMS: [(&str, &str); 5] = [
    ("meta", "Meta (Facebook & Instagram)"),
    ("tiktok", "TikTok"),
    ("google", "Google Ads"),
    ("pinterest", "Pinterest"),
    ("twitter", "X (Twitter)"),
];

/// A chromedriver on a free port, killed when dropped, and a fresh Chromium profile.
struct Driver {
    _process: tokio::process::Child,
    _profile: tempfile::TempDir,
    client: Client,
}

fn executable(variable: &str, default: &str) -> String {
    let path = std::env::var(variable).unwrap_or_else(|_| default.to_owned());
    assert!(
        std::path::Path::new(&path).exists(),
        "{path} is missing: the browser tests need Chromium and chromedriver ({INSTALL}), or set ${variable}"
    );
    path
}

async fn start_browser() -> Driver {
    // Two rustls crypto providers are linked into the tests (see Cargo.toml): choose one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let chromedriver = executable("CHROMEDRIVER", "/usr/bin/chromedriver");
    let chromium = executable("CHROMIUM", "/usr/bin/chromium");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let process = tokio::process::Command::new(&chromedriver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {chromedriver} ({INSTALL}): {e}"));
    let webdriver = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if reqwest::get(format!("{webdriver}/status")).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let profile = tempfile::tempdir().unwrap();
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-quic", "--no-first-run",
                "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                format!("--user-data-dir={}", profile.path().display()),
            ],
        }),
    );
    let client = ClientBuilder::rustls()
        .unwrap()
        .capabilities(capabilities)
        .connect(&webdriver)
        .await
        .unwrap_or_else(|e| {
            panic!("chromedriver at {webdriver} did not start Chromium ({INSTALL}): {e}")
        });
    Driver {
        _process: process,
        _profile: profile,
        client,
    }
}

async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    client
        .wait()
        .at_most(Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("waiting for {css}: {e}"))
}

/// Presses the card's Connect, approves on the sandbox's consent screen, and waits until the card
/// says connected.
async fn connect_on_page(client: &Client, platform: &str) {
    let card = format!("#card-{platform}");
    wait_for(client, &format!("{card} button[data-action=\"connect\"]"))
        .await
        .click()
        .await
        .unwrap();
    wait_for(client, "#approve").await.click().await.unwrap();
    wait_for(client, &format!("{card}[data-state=\"connected\"]")).await;
}

async fn text(client: &Client, css: &str) -> String {
    wait_for(client, css).await.text().await.unwrap()
}

async fn script(client: &Client, code: &str) -> serde_json::Value {
    client.execute(code, vec![]).await.unwrap()
}

async fn assert_url_is_clean(client: &Client) {
    let url = client.current_url().await.unwrap();
    assert_eq!(url.path(), "/dashboard/marketing");
    assert_eq!(url.query(), None, "the URL is cleaned: {url}");
}

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[tokio::test]
async fn a_merchant_connects_all_five_declines_one_and_disconnects_in_a_real_browser() {
    let app = spawn_app_with(TestAppOptions {
        simulated: vec![],
        ..Default::default()
    })
    .await;
    let driver = start_browser().await;
    let browser = &driver.client;
    // Tall enough for all five cards in one desktop screenshot.
    browser.set_window_size(1280, 1100).await.unwrap();

    // The link becomes a session; the token leaves the address bar.
    browser
        .goto(&link(&app, "shop-42", "owner-1"))
        .await
        .unwrap();
    wait_for(browser, "#card-meta[data-state=\"not_connected\"]").await;
    assert_url_is_clean(browser).await;
    assert!(
        !text(browser, "#empty-hint").await.is_empty(),
        "the empty-state hint"
    );
    assert_eq!(
        script(
            browser,
            "return document.getElementById('cards').getAttribute('aria-busy')"
        )
        .await,
        "false"
    );

    for (platform, name) in PLATFORMS {
        let card = format!("#card-{platform}");
        let connect = wait_for(browser, &format!("{card} button[data-action=\"connect\"]")).await;
        assert_eq!(
            connect.attr("aria-label").await.unwrap().as_deref(),
            Some(format!("Connect {name}").as_str())
        );
        connect.click().await.unwrap();
        // The sandbox's consent screen on our origin.
        wait_for(browser, "#approve").await.click().await.unwrap();
        wait_for(browser, &format!("{card}[data-state=\"connected\"]")).await;
        assert_eq!(text(browser, &format!("{card} .badge")).await, "Connected");
        let account = text(browser, &format!("{card} [data-role=\"account-name\"]")).await;
        assert!(!account.is_empty(), "{platform} shows the account name");
        let notice = text(browser, "#notice-success").await;
        assert_eq!(notice, format!("{name} is connected."));
        assert_url_is_clean(browser).await;
    }
    assert!(
        script(
            browser,
            "return document.getElementById('empty-hint').hidden"
        )
        .await
            == true,
        "no empty-state hint once connected"
    );
    // "Recent activity" lists the page user's connects (the audit trail of this store).
    wait_for(browser, "#activity .activity__item").await;
    let activity = script(
        browser,
        "return [...document.querySelectorAll('#activity .activity__item')].map(i => i.textContent)",
    )
    .await;
    assert!(
        activity.as_array().unwrap().iter().any(|line| line
            .as_str()
            .unwrap()
            .contains("Connect · Meta")
            && line.as_str().unwrap().contains("User owner-1")),
        "Recent activity shows the Meta connect: {activity}"
    );
    let labels = script(
        browser,
        "return [...document.querySelectorAll('.card button')].map(b => [b.closest('.card').dataset.name, b.getAttribute('aria-label')])",
    )
    .await;
    for pair in labels.as_array().unwrap() {
        let (name, label) = (pair[0].as_str().unwrap(), pair[1].as_str().unwrap());
        assert!(label.ends_with(name), "{label} names {name}");
    }
    std::fs::write(
        screenshots().join("dashboard-all-connected.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();

    // On a phone the cards stack in one column and nothing scrolls sideways.
    browser.set_window_size(390, 844).await.unwrap();
    // Read until the page has laid itself out for the new width (or the deadline passes).
    let one_column = json!({"columns": 1, "overflow": false});
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let layout = loop {
        let layout = script(
            browser,
            "const lefts = [...document.querySelectorAll('.card')].map(c => Math.round(c.getBoundingClientRect().left));
             return {columns: new Set(lefts).size, overflow: document.documentElement.scrollWidth > window.innerWidth};",
        )
        .await;
        if layout == one_column || tokio::time::Instant::now() > deadline {
            break layout;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(layout, one_column);
    std::fs::write(
        screenshots().join("dashboard-phone.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    browser.set_window_size(1280, 900).await.unwrap();

    // Google reports no lifetime for its refresh token: access renews, with no reconnect-by date.
    let facts = text(browser, "#card-google .facts").await;
    assert!(facts.contains("Renews automatically"), "{facts}");
    assert!(!facts.contains("Reconnect by"), "{facts}");

    // Disconnect asks first; Cancel keeps the connection and gives focus back.
    let disconnect = "#card-google button[data-action=\"disconnect\"]";
    wait_for(browser, disconnect).await.click().await.unwrap();
    wait_for(browser, "#confirm[open]").await;
    assert_eq!(
        text(browser, "#confirm-title").await,
        "Disconnect Google Ads?"
    );
    assert_eq!(
        script(browser, "return document.activeElement.id").await,
        "confirm-cancel",
        "focus moves into the dialog"
    );
    wait_for(browser, "#confirm-cancel")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(
        script(browser, "return document.getElementById('confirm').open").await,
        false
    );
    assert_eq!(
        script(
            browser,
            "return document.activeElement.getAttribute('aria-label')"
        )
        .await,
        "Disconnect Google Ads",
        "focus returns to the button"
    );
    assert_eq!(
        text(browser, "#card-google .badge").await,
        "Connected",
        "Cancel changes nothing"
    );

    wait_for(browser, disconnect).await.click().await.unwrap();
    wait_for(browser, "#confirm-disconnect")
        .await
        .click()
        .await
        .unwrap();
    wait_for(browser, "#card-google[data-state=\"not_connected\"]").await;
    wait_for(browser, "#card-google button[data-action=\"connect\"]").await;
    assert!(
        text(browser, "#notice-success")
            .await
            .starts_with("Disconnected"),
        "the disconnect's message"
    );
    let stored = app.connections("shop-42").await;
    assert_eq!(stored["connections"].as_array().unwrap().len(), 4);

    // Declining consent comes back with the error message and changes nothing.
    wait_for(browser, "#card-google button[data-action=\"connect\"]")
        .await
        .click()
        .await
        .unwrap();
    wait_for(browser, "#deny").await.click().await.unwrap();
    wait_for(browser, "#notice-error.notice--shown").await;
    let error = text(browser, "#notice-error").await;
    assert!(
        error.starts_with("Couldn't connect Google Ads: access was not granted"),
        "{error}"
    );
    assert_eq!(
        script(
            browser,
            "return document.getElementById('notice-error').getAttribute('role')"
        )
        .await,
        "alert"
    );
    wait_for(browser, "#card-google[data-state=\"not_connected\"]").await;
    assert_url_is_clean(browser).await;

    // A page without a session says where to go.
    browser.delete_all_cookies().await.unwrap();
    browser
        .goto(&app.url("/dashboard/marketing"))
        .await
        .unwrap();
    assert!(text(browser, "#denied-message")
        .await
        .contains("main dashboard"));

    driver.client.close().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_merchant_chooses_the_default_page_with_a_labelled_select_and_it_persists() {
    let app = spawn_app_with(TestAppOptions {
        simulated: vec![],
        ..Default::default()
    })
    .await;
    let driver = start_browser().await;
    let browser = &driver.client;
    browser
        .goto(&link(&app, "shop-7", "owner-1"))
        .await
        .unwrap();
    connect_on_page(browser, "meta").await;

    // A visible label names each select; two pages and no default yet: "Choose…" first.
    let select = "#select-meta-facebook_page";
    wait_for(browser, select).await;
    assert_eq!(
        text(browser, "label[for=\"select-meta-facebook_page\"]").await,
        "Default Facebook Page"
    );
    assert!(
        !text(browser, "label[for=\"select-meta-instagram_account\"]")
            .await
            .is_empty()
    );
    assert_eq!(
        script(
            browser,
            "return document.querySelector('#select-meta-facebook_page').value"
        )
        .await,
        ""
    );
    // Keyboard: focus the select, move to the outlet page, and the change is saved.
    let element = wait_for(browser, select).await;
    element.select_by_value("2000000002").await.unwrap();
    let status = "#card-meta [data-role=\"selection-status\"]";
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//*[@data-role='selection-status'][contains(., 'saved')]",
        ))
        .await
        .unwrap();
    assert_eq!(
        text(browser, status).await,
        "Default Facebook Page saved: Sandbox Merchant Outlet."
    );
    assert_eq!(
        script(
            browser,
            "const s = document.querySelector('#card-meta [data-role=\"selection-status\"]'); return [s.getAttribute('role'), s.getAttribute('aria-live')]"
        )
        .await,
        json!(["status", "polite"])
    );

    // Reloaded, the page shows the saved choice; the API agrees.
    browser.refresh().await.unwrap();
    wait_for(browser, "#card-meta[data-state=\"connected\"]").await;
    wait_for(browser, select).await;
    assert_eq!(
        script(
            browser,
            "return document.querySelector('#select-meta-facebook_page').value"
        )
        .await,
        "2000000002"
    );
    let stored = app.connections("shop-7").await;
    let assets = stored["connections"][0]["assets"]
        .as_array()
        .unwrap()
        .clone();
    assert!(assets
        .iter()
        .any(|a| a["id"] == "2000000002" && a["selected"] == true));
    std::fs::write(
        screenshots().join("dashboard-selection.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    driver.client.close().await.unwrap();
    app.stop().await;
}

/// A page on a fresh app (built-in sandbox on our origin) for `store`, connected to Meta with
/// `uncheck` declined on the consent screen.
async fn connect_meta_declining(
    browser: &Client,
    app: &crate::helpers::TestApp,
    store: &str,
    uncheck: &[&str],
) {
    browser.goto(&link(app, store, "owner-1")).await.unwrap();
    wait_for(browser, "#card-meta button[data-action=\"connect\"]")
        .await
        .click()
        .await
        .unwrap();
    wait_for(browser, "#approve").await;
    for scope in uncheck {
        script(
            browser,
            &format!("document.querySelector('input[name=\"scope\"][value=\"{scope}\"]').click()"),
        )
        .await;
    }
    wait_for(browser, "#approve").await.click().await.unwrap();
    wait_for(browser, "#card-meta[data-state=\"connected\"]").await;
}

#[tokio::test]
async fn a_merchant_grants_a_declined_permission_with_grant_missing_permissions() {
    let app = spawn_app_with(TestAppOptions {
        simulated: vec![],
        ..Default::default()
    })
    .await;
    let driver = start_browser().await;
    let browser = &driver.client;
    connect_meta_declining(browser, &app, "shop-9", &["ads_management", "ads_read"]).await;
    assert!(
        text(browser, "#card-meta [data-role=\"missing\"]")
            .await
            .contains("ads_management"),
        "the card names what is missing"
    );
    let grant = wait_for(browser, "#card-meta button[data-action=\"grant-missing\"]").await;
    assert_eq!(grant.text().await.unwrap(), "Grant missing permissions");
    assert_eq!(
        grant.attr("aria-label").await.unwrap().as_deref(),
        Some("Grant missing permissions for Meta (Facebook & Instagram)")
    );
    std::fs::write(
        screenshots().join("dashboard-missing-permissions.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    grant.click().await.unwrap();
    // Meta asks again only for what was declined (auth_type=rerequest).
    wait_for(browser, "#approve").await;
    let asked = script(
        browser,
        "return [...document.querySelectorAll('input[name=\"scope\"]')].map(i => i.value)",
    )
    .await;
    assert_eq!(asked, json!(["ads_management", "ads_read"]));
    wait_for(browser, "#approve").await.click().await.unwrap();
    wait_for(browser, "#card-meta[data-state=\"connected\"]").await;
    assert_eq!(
        text(browser, "#notice-success").await,
        "Meta (Facebook & Instagram) is connected."
    );
    assert_eq!(
        script(
            browser,
            "return document.querySelectorAll('#card-meta [data-action=\"grant-missing\"], #card-meta [data-role=\"missing\"]').length"
        )
        .await,
        0,
        "nothing is missing any more"
    );
    let stored = app.connections("shop-9").await;
    assert_eq!(stored["connections"][0]["missing_scopes"], json!([]));
    driver.client.close().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_reconnect_with_another_account_asks_before_replacing_it() {
    let app = spawn_app_with(TestAppOptions {
        simulated: vec![],
        ..Default::default()
    })
    .await;
    let driver = start_browser().await;
    let browser = &driver.client;
    connect_meta_declining(browser, &app, "shop-11", &[]).await;
    app.services
        .sandbox
        .as_ref()
        .expect("the built-in sandbox")
        .set_signed_in_account("meta", 2);
    // Disconnect is the card's only way to sign in again while healthy: go through the API's
    // reconnect instead, from the page's own call.
    let url = script(
        browser,
        "const csrf = document.querySelector('meta[name=\"csrf-token\"]').content;
         return fetch('/dashboard/api/connect/meta', {method: 'POST', credentials: 'same-origin',
           headers: {'X-CSRF-Token': csrf, Accept: 'application/json'}}).then(r => r.json()).then(b => b.url);",
    )
    .await;
    browser.goto(url.as_str().unwrap()).await.unwrap();
    wait_for(browser, "#approve").await.click().await.unwrap();

    // Nothing replaced yet: the page says who signed in and what it would replace.
    wait_for(browser, "#replace:not([hidden])").await;
    assert_eq!(
        text(browser, "#replace-text").await,
        "You signed in to Meta (Facebook & Instagram) as Other Merchant 2. This replaces Sandbox Merchant."
    );
    assert_eq!(
        text(browser, "#replace-keep").await,
        "Keep Sandbox Merchant"
    );
    assert_eq!(
        script(browser, "return document.activeElement.id").await,
        "replace-confirm"
    );
    assert_url_is_clean(browser).await;
    let stored = app.connections("shop-11").await;
    assert_eq!(stored["connections"][0]["account_name"], "Sandbox Merchant");
    std::fs::write(
        screenshots().join("dashboard-replace-account.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();

    wait_for(browser, "#replace-confirm")
        .await
        .click()
        .await
        .unwrap();
    browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//*[@id='notice-success'][contains(., 'replaced Sandbox Merchant')]",
        ))
        .await
        .unwrap();
    assert_eq!(
        text(browser, "#card-meta [data-role=\"account-name\"]").await,
        "Other Merchant 2"
    );
    assert!(script(browser, "return document.getElementById('replace').hidden").await == true);
    driver.client.close().await.unwrap();
    app.stop().await;
}

/// Needs the connection health of issue 11 (computed by the lifecycle, `health` on the page's
/// cards): a Meta token 55 days into its 60 is "expiring".
#[tokio::test]
async fn an_expiring_connection_shows_a_reconnect_by_banner_that_reconnects() {
    use chrono::Datelike;
    let clock = growth_engine::clock::ManualClock::new(chrono::Utc::now());
    let app = spawn_app_with(TestAppOptions {
        simulated: vec![],
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    let driver = start_browser().await;
    let browser = &driver.client;
    // Pinterest documents its refresh token's lifetime (60 days, `refresh_token_expires_in`), so the
    // grant has a reconnect-by date from the start; with no refresh in between, it comes close.
    browser
        .goto(&link(&app, "shop-12", "owner-1"))
        .await
        .unwrap();
    connect_on_page(browser, "pinterest").await;
    assert_eq!(
        script(
            browser,
            "return document.querySelectorAll('#banners .banner').length"
        )
        .await,
        0,
        "no banner for a fresh connection"
    );
    // The card says what the merchant acts on: access renews by itself, until a reconnect-by date;
    // never the access token's own expiry, which the service renews.
    let facts = text(browser, "#card-pinterest .facts").await;
    assert!(facts.contains("Renews automatically"), "{facts}");
    assert!(facts.contains("Reconnect by"), "{facts}");
    assert!(!facts.contains("Token expires"), "{facts}");
    clock.advance(chrono::Duration::days(55));
    // 55 days on, the page session has long ended: a fresh link opens a new one.
    browser
        .goto(&link(&app, "shop-12", "owner-1"))
        .await
        .unwrap();
    let banner = wait_for(browser, "#banners .banner[data-platform=\"pinterest\"]").await;
    assert_eq!(
        banner.attr("role").await.unwrap().as_deref(),
        Some("status")
    );
    let cards = script(
        browser,
        "return fetch('/dashboard/api/connections', {credentials: 'same-origin'}).then(r => r.json())",
    )
    .await;
    let pinterest = cards["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == "pinterest")
        .unwrap()
        .clone();
    assert_eq!(pinterest["health"]["state"], "expiring", "{pinterest}");
    let by: chrono::DateTime<chrono::Utc> = pinterest["health"]["reconnect_by"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let mut date = by.format("%-d %B").to_string();
    if by.year() != chrono::Utc::now().year() {
        date = format!("{date} {}", by.year());
    }
    assert_eq!(
        text(
            browser,
            "#banners .banner[data-platform=\"pinterest\"] .banner__text"
        )
        .await,
        format!("Reconnect Pinterest by {date}")
    );
    std::fs::write(
        screenshots().join("dashboard-expiring-banner.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    // The banner's button is a real button that starts the reconnect.
    wait_for(
        browser,
        "#banners .banner[data-platform=\"pinterest\"] button",
    )
    .await
    .click()
    .await
    .unwrap();
    wait_for(browser, "#approve").await.click().await.unwrap();
    wait_for(browser, "#card-pinterest[data-state=\"connected\"]").await;
    assert_eq!(
        script(
            browser,
            "return document.querySelectorAll('#banners .banner').length"
        )
        .await,
        0,
        "a fresh token: no banner"
    );
    driver.client.close().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn removing_the_app_on_the_sandboxs_apps_page_turns_the_card_to_removed() {
    let app = spawn_app_with(TestAppOptions {
        simulated: vec![],
        ..Default::default()
    })
    .await;
    let driver = start_browser().await;
    let browser = &driver.client;
    let dashboard = link(&app, "shop-removed", "owner-1");
    browser.goto(&dashboard).await.unwrap();
    connect_on_page(browser, "meta").await;

    // The merchant goes to the platform's "Apps and websites" and removes the app there.
    browser.goto(&app.url("/sandbox/meta/apps")).await.unwrap();
    wait_for(browser, "form[action=\"/sandbox/meta/apps/remove\"] button")
        .await
        .click()
        .await
        .unwrap();
    // Back to the connections page, with the session the link opened.
    browser
        .goto(&app.url("/dashboard/marketing"))
        .await
        .unwrap();
    // The page asks the API again when it is shown; the notice was processed within seconds.
    let removed = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//*[@id='card-meta'][contains(., 'Removed at Meta')]",
        ))
        .await;
    if removed.is_err() {
        browser.refresh().await.unwrap();
    }
    let shown = browser
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath(
            "//*[@id='card-meta'][contains(., 'Removed at Meta')]",
        ))
        .await;
    if shown.is_err() {
        panic!(
            "the card says {:?}; the API says {}",
            text(browser, "#card-meta").await,
            app.connections("shop-removed").await
        );
    }
    wait_for(browser, "#card-meta button[data-action=\"connect\"]").await;
    std::fs::write(
        screenshots().join("dashboard-removed-at-platform.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    driver.client.close().await.unwrap();
    app.stop().await;
}

/// The merchant turns approval on with the page's switch, sees a post an agent scheduled waiting
/// with its text, approves it with the button, and sees it published with a link to the post; a
/// second post is rejected and shows why it failed.
#[tokio::test]
async fn a_merchant_requires_approval_and_approves_a_post_on_the_page() {
    let app = spawn_app_with(TestAppOptions {
        simulated: vec![],
        ..Default::default()
    })
    .await;
    let driver = start_browser().await;
    let browser = &driver.client;
    browser
        .goto(&link(&app, "shop-31", "owner-1"))
        .await
        .unwrap();
    connect_on_page(browser, "twitter").await;

    // The switch is off by default; turning it on is saved for the store.
    let switch = wait_for(browser, "#require-approval").await;
    assert_eq!(
        script(
            browser,
            "return document.getElementById('require-approval').checked"
        )
        .await,
        false
    );
    switch.click().await.unwrap();
    // The connect's own success notice may still be shown: wait for the switch's.
    crate::helpers::wait_until("the switch's notice", Duration::from_secs(15), async || {
        text(browser, "#notice-success.notice--shown")
            .await
            .contains("wait for your approval")
    })
    .await;
    assert!(app
        .services
        .posts
        .requires_approval(&growth_engine::domain::StoreId::parse("shop-31").unwrap())
        .await
        .unwrap());

    let (status, created) = crate::posts::create_post(
        &app,
        "agent-1",
        &json!({"store_id": "shop-31", "platform": "twitter", "text": "Winter sale starts now"}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["status"], "pending_approval");
    let id = created["id"].as_str().unwrap().to_owned();

    browser.refresh().await.unwrap();
    let item = format!("#posts li[data-post=\"{id}\"]");
    wait_for(browser, &format!("{item} [data-role=\"state\"]")).await;
    assert_eq!(
        text(browser, &format!("{item} [data-role=\"state\"]")).await,
        "Waiting for your approval"
    );
    assert!(text(browser, &item)
        .await
        .contains("Winter sale starts now"));
    std::fs::write(
        screenshots().join("dashboard-post-waiting.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    wait_for(
        browser,
        &format!("{item} button[data-action=\"approve-post\"]"),
    )
    .await
    .click()
    .await
    .unwrap();
    let post = crate::posts::settled(&app, &id).await;
    assert_eq!(post["status"], "published", "{post}");
    assert_eq!(post["approval"]["decided_by"], "page_user:owner-1");
    browser.refresh().await.unwrap();
    let link_css = format!("{item} a.posts__link");
    let href = wait_for(browser, &link_css)
        .await
        .attr("href")
        .await
        .unwrap();
    assert_eq!(href.as_deref(), post["platform_post"]["url"].as_str());
    let sandbox = app.services.sandbox.as_ref().expect("the built-in sandbox");
    assert_eq!(sandbox.published("twitter").len(), 1);

    // A second post, rejected: it fails with the reason in words, and is never sent.
    let (_, second) = crate::posts::create_post(
        &app,
        "agent-2",
        &json!({"store_id": "shop-31", "platform": "twitter", "text": "Not this one"}),
    )
    .await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    browser.refresh().await.unwrap();
    let second_item = format!("#posts li[data-post=\"{second_id}\"]");
    wait_for(
        browser,
        &format!("{second_item} button[data-action=\"reject-post\"]"),
    )
    .await
    .click()
    .await
    .unwrap();
    wait_for(
        browser,
        &format!("{second_item}.posts__item--failed [data-role=\"reason\"]"),
    )
    .await;
    assert!(
        text(browser, &format!("{second_item} [data-role=\"reason\"]"))
            .await
            .contains("not approved")
    );
    std::fs::write(
        screenshots().join("dashboard-post-rejected.png"),
        browser.screenshot().await.unwrap(),
    )
    .unwrap();
    assert_eq!(sandbox.published("twitter").len(), 1);
    driver.client.close().await.unwrap();
    app.stop().await;
}

/// An agent's post through MCP (the official Python client) waits for the merchant: the tool
/// answers `pending_approval`, nothing reaches the platform, the merchant approves it on the page
/// in the browser, and the agent's `get_post` then sees it published.
#[tokio::test]
async fn an_agents_post_over_mcp_waits_until_the_merchant_approves_it_in_the_browser() {
    let app = spawn_app_with(TestAppOptions {
        simulated: vec![],
        extra_env: vec![("POSTS_REQUIRE_APPROVAL", "true".into())],
        ..Default::default()
    })
    .await;
    let driver = start_browser().await;
    let browser = &driver.client;
    browser
        .goto(&link(&app, "shop-32", "owner-1"))
        .await
        .unwrap();
    connect_on_page(browser, "twitter").await;

    let key = crate::keys_audit::create_bound_key(
        &app,
        "social-agent",
        "connections:read,posts:write,posts:read",
        Some("shop-32"),
    )
    .await;
    let answer = crate::mcp::python_client(
        &app,
        &key,
        "auto",
        json!([{"tool": "create_post", "args": {"store_id": "shop-32", "platform": "twitter", "text": "Made by the agent"}}]),
    )
    .await;
    let (is_error, created) = crate::mcp::tool_result(&answer["steps"][0]);
    assert!(!is_error, "{created}");
    assert_eq!(created["status"], "pending_approval");
    let id = created["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sandbox = app.services.sandbox.as_ref().expect("the built-in sandbox");
    assert!(
        sandbox.published("twitter").is_empty(),
        "nothing before the merchant's answer"
    );

    browser.refresh().await.unwrap();
    let item = format!("#posts li[data-post=\"{id}\"]");
    wait_for(browser, &format!("{item} [data-role=\"state\"]")).await;
    assert!(text(browser, &item).await.contains("Made by the agent"));
    wait_for(
        browser,
        &format!("{item} button[data-action=\"approve-post\"]"),
    )
    .await
    .click()
    .await
    .unwrap();
    let post = crate::mcp::settled_by_tool(&app, &key, &id).await;
    assert_eq!(post["status"], "published", "{post}");
    assert_eq!(post["approval"]["decided_by"], "page_user:owner-1");
    assert_eq!(sandbox.published("twitter").len(), 1);
    driver.client.close().await.unwrap();
    app.stop().await;
}
