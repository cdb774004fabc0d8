//! Faults around a refresh, against real processes (PostgreSQL, Redis, the service, the platform
//! simulators): a caller hanging up mid-refresh, SIGTERM mid-refresh, PostgreSQL cut while a rotated
//! token set is written, and a key rollout across two services with different key sets.
//!
//! After each fault: the connection made before it is still CONNECTED with a token the simulator
//! accepts, no refresh token was presented twice (a rotated refresh token presented again fails at
//! the simulator, so every refresh call must have succeeded), and the service recovered on its own.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use growth_engine::app::{AppOptions, Application};
use growth_engine::clock::ManualClock;
use growth_engine::domain::{ConnectionStatus, PlatformId, StoreId};
use growth_engine::sandbox::{self, Fault, SimClient, Simulator};
use growth_engine::vault::Key;
use secrecy::ExposeSecret;
use sqlx::Connection as _;
use tokio::net::TcpListener;

use crate::helpers::{
    credentials, env_prefix, fresh_database, fresh_redis, settings_from, spawn_app_with,
    test_redis_url, wait_until, Browser, TestApp, TestAppOptions, API_KEY,
};
use crate::proxy::CuttableProxy;

pub(crate) async fn connect(app: &TestApp, platform: &str, store: &str) {
    let result = app.run_flow(platform, store, true).await;
    assert_eq!(result["connection"], "success", "{platform}: {result:?}");
}

pub(crate) fn refresh_calls(sim: &Simulator, platform: &str) -> Vec<sandbox::TokenRequestRecord> {
    sim.token_requests(platform)
        .into_iter()
        .filter(|r| r.grant_type == "refresh_token")
        .collect()
}

/// The simulator's user-info endpoint answers 200 to `token`.
pub(crate) async fn simulator_accepts(sim_address: &str, platform: &str, token: &str) -> bool {
    let endpoints = sandbox::endpoints(sim_address, platform).unwrap();
    let mut url = url::Url::parse(&endpoints.userinfo).unwrap();
    if platform == "tiktok" {
        url.query_pairs_mut().append_pair("fields", "open_id");
    }
    reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        == 200
}

pub(crate) async fn row(
    app_services: &growth_engine::app::Services,
    store: &str,
    platform: &str,
) -> growth_engine::domain::Connection {
    app_services
        .store
        .get_connection(
            &StoreId::parse(store).unwrap(),
            &PlatformId::parse(platform).unwrap(),
        )
        .await
        .unwrap()
        .unwrap()
}

/// Waits until the `n`th refresh's result is stored (the row carries the newest issued token).
async fn wait_until_refreshed(app: &TestApp, platform: &str, n: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let stored = row(&app.services, "hang-up", platform).await;
        let issued = app.simulator.issued_access_tokens(platform);
        let current = app.services.core.open(&stored).unwrap();
        if refresh_calls(&app.simulator, platform).len() == n
            && issued.last().map(String::as_str) == Some(current.access_token.expose_secret())
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{platform}: refresh {n} was never stored"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `platform`'s simulator holds one token call ([`Fault::Hold`]).
async fn at_the_platform(sim: &Simulator, platform: &str) {
    wait_until(
        "the refresh reaches the platform",
        Duration::from_secs(10),
        async || sim.held_token_calls(platform) == 1,
    )
    .await;
}

#[tokio::test]
async fn a_caller_hanging_up_mid_refresh_changes_nothing_on_each_rotating_platform() {
    for platform in ["tiktok", "pinterest", "twitter"] {
        let clock = ManualClock::new(chrono::Utc::now());
        let app = spawn_app_with(TestAppOptions {
            clock: Some(clock.clone()),
            ..Default::default()
        })
        .await;
        app.simulator.set_access_token_ttl(platform, 3600);
        connect(&app, platform, "hang-up").await;
        // Inside the refresh window: the next read refreshes first.
        clock.advance(chrono::Duration::seconds(3600 - 60));
        // Each caller goes away while the platform holds its refresh call.
        app.simulator.set_fault(platform, Some(Fault::Hold));
        // First the handler itself goes away (its future is dropped, as when a server cancels it).
        let spec = app
            .services
            .core
            .catalog()
            .get(&PlatformId::parse(platform).unwrap())
            .unwrap()
            .clone();
        let store_id = StoreId::parse("hang-up").unwrap();
        let tokens = app.services.tokens.clone();
        let caller = tokio::spawn(async move {
            let _ = tokens.access_token(&spec, &store_id, false).await;
        });
        at_the_platform(&app.simulator, platform).await;
        caller.abort();
        assert!(
            caller.await.unwrap_err().is_cancelled(),
            "{platform}: the caller was dropped mid-refresh"
        );
        app.simulator.set_fault(platform, None);
        wait_until_refreshed(&app, platform, 1).await;
        // Then an HTTP caller that hangs up.
        clock.advance(chrono::Duration::seconds(3600 - 60));
        app.simulator.set_fault(platform, Some(Fault::Hold));
        let request = app
            .api
            .get(app.url(&format!("/api/v1/oauth/token/{platform}?store_id=hang-up")))
            .bearer_auth(API_KEY);
        let caller = tokio::spawn(async move {
            let _ = request.send().await;
        });
        at_the_platform(&app.simulator, platform).await;
        caller.abort();
        assert!(
            caller.await.unwrap_err().is_cancelled(),
            "{platform}: the caller hung up"
        );
        app.simulator.set_fault(platform, None);
        wait_until_refreshed(&app, platform, 2).await;
        let response = app
            .get(&format!("/api/v1/oauth/token/{platform}?store_id=hang-up"))
            .await;
        assert_eq!(response.status(), 200, "{platform}");
        let body: serde_json::Value = response.json().await.unwrap();
        let issued = app.simulator.issued_access_tokens(platform);
        assert_eq!(
            body["access_token"],
            issued.last().unwrap().as_str(),
            "{platform}"
        );
        assert!(
            simulator_accepts(&app.simulator_address, platform, issued.last().unwrap()).await,
            "{platform}: the stored token works"
        );
        let calls = refresh_calls(&app.simulator, platform);
        assert_eq!(calls.len(), 2, "{platform}: one refresh per hang-up");
        assert!(calls.iter().all(|c| c.ok), "{platform}: {calls:?}");
        let stored = row(&app.services, "hang-up", platform).await;
        assert_eq!(stored.status, ConnectionStatus::Connected);
        let tokens = app.services.core.open(&stored).unwrap();
        assert_eq!(
            tokens.refresh_token.unwrap().expose_secret(),
            app.simulator
                .issued_refresh_tokens(platform)
                .last()
                .unwrap()
                .as_str(),
            "{platform}: the rotated refresh token is the stored one"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn postgres_cut_while_a_rotated_token_is_written_keeps_it_as_a_recovery_record() {
    let db = fresh_database().await;
    let pg = url::Url::parse(&db.url).unwrap();
    let proxy = CuttableProxy::start(format!(
        "{}:{}",
        pg.host_str().unwrap(),
        pg.port().unwrap_or(5432)
    ))
    .await;
    let mut proxied = pg.clone();
    proxied.set_port(Some(proxy.port)).unwrap();
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("DATABASE_URL", proxied.to_string())],
        ..Default::default()
    })
    .await;
    connect(&app, "tiktok", "cut").await;
    let before = row(&app.services, "cut", "tiktok").await;
    app.simulator.set_fault("tiktok", Some(Fault::Hold));
    let refresh = {
        let api = app.api.clone();
        let url = app.url("/api/v1/oauth/refresh/tiktok?store_id=cut");
        tokio::spawn(async move { api.post(url).bearer_auth(API_KEY).send().await })
    };
    // The platform has the call (it rotates as it answers) when the database goes away.
    at_the_platform(&app.simulator, "tiktok").await;
    proxy.cut();
    app.simulator.set_fault("tiktok", None);
    let response = refresh.await.unwrap().unwrap();
    assert_eq!(response.status(), 200, "the renewed token is handed out");
    let body: serde_json::Value = response.json().await.unwrap();
    let rotated = app.simulator.issued_refresh_tokens("tiktok");
    assert_eq!(
        body["access_token"],
        app.simulator
            .issued_access_tokens("tiktok")
            .last()
            .unwrap()
            .as_str()
    );
    // The renewed set is in Redis as a recovery record, sealed (no plaintext token).
    let recovery_key = format!(
        "{}recovery:{}",
        app.redis_prefix.as_ref().unwrap(),
        before.id
    );
    let client = redis::Client::open(test_redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let record: Option<String> = redis::cmd("GET")
        .arg(&recovery_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let record = record.expect("a recovery record in Redis");
    assert!(!record.contains(rotated.last().unwrap().as_str()));

    app.simulator.set_fault("tiktok", None);
    proxy.restore();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let stored = loop {
        if let Ok(Some(row)) = app
            .services
            .store
            .get_connection(&before.store_id, &before.platform)
            .await
        {
            if row.version > before.version {
                break row;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "never written");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(stored.status, ConnectionStatus::Connected);
    let tokens = app.services.core.open(&stored).unwrap();
    assert_eq!(
        tokens.refresh_token.unwrap().expose_secret(),
        rotated.last().unwrap().as_str(),
        "the rotated refresh token was written"
    );
    let left: Option<String> = redis::cmd("GET")
        .arg(&recovery_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(left.is_none(), "the record is gone once written");
    // The next refresh presents the rotated token, and the platform accepts it.
    let again = app.post("/api/v1/oauth/refresh/tiktok?store_id=cut").await;
    assert_eq!(again.status(), 200);
    let calls = refresh_calls(&app.simulator, "tiktok");
    assert_eq!(calls.len(), 2);
    assert!(
        calls.iter().all(|c| c.ok),
        "no refresh token presented twice: {calls:?}"
    );
    let token: serde_json::Value = again.json().await.unwrap();
    assert!(
        simulator_accepts(
            &app.simulator_address,
            "tiktok",
            token["access_token"].as_str().unwrap()
        )
        .await
    );
    app.stop().await;
    db.drop_database().await;
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The service binary started by a SIGTERM test, and what it runs on.
pub(crate) struct Binary {
    pub(crate) child: std::process::Child,
    /// Its base URL.
    pub(crate) address: String,
    pub(crate) db: crate::helpers::TestDatabase,
    pub(crate) key: Key,
    /// X's simulator, served by this process.
    pub(crate) simulator: Simulator,
    pub(crate) sim_address: String,
    /// Its Redis keyspace.
    pub(crate) prefix: String,
}

/// Starts the service binary (`serve`) on a fresh database, Redis keyspace and key, with X's
/// endpoints (OAuth and API) at a simulator in this process, no refresher, `extra` settings on
/// top, and its output in `target/tmp/faults/{log}.log`; returns once `/health` answers 200.
pub(crate) async fn start_binary_with(log: &str, extra: &[(&str, String)]) -> Binary {
    let db = fresh_database().await;
    let (_, prefix) = fresh_redis().await;
    let key = Key::generate();
    let port = free_port();
    let address = format!("http://127.0.0.1:{port}");
    let (client_id, client_secret) = credentials("twitter");
    let simulator = Simulator::new(vec![SimClient {
        platform: "twitter".into(),
        client_id: client_id.clone(),
        client_secret: client_secret.clone(),
        redirect_uris: vec![format!("{address}/api/v1/oauth/callback/twitter")],
    }]);
    let sim_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sim_address = format!(
        "http://127.0.0.1:{}",
        sim_listener.local_addr().unwrap().port()
    );
    let router = sandbox::router(simulator.clone());
    tokio::spawn(async move {
        let _ = axum::serve(sim_listener, router).await;
    });
    let child = spawn_service(log, port, &db.url, &prefix, &key, &sim_address, extra).await;
    Binary {
        child,
        address,
        db,
        key,
        simulator,
        sim_address,
        prefix,
    }
}

/// Starts another replica of `first`'s service (its database, Redis keyspace, key and simulator)
/// on a port of its own, with `extra` settings, logging to `{log}.log`.
pub(crate) async fn start_sibling_binary(
    log: &str,
    first: &Binary,
    extra: &[(&str, String)],
) -> ChildGuard {
    start_sibling_replica(log, first, extra).await.0
}

/// [`start_sibling_binary`], and the sibling's base URL.
pub(crate) async fn start_sibling_replica(
    log: &str,
    first: &Binary,
    extra: &[(&str, String)],
) -> (ChildGuard, String) {
    let port = free_port();
    let child = spawn_service(
        log,
        port,
        &first.db.url,
        &first.prefix,
        &first.key,
        &first.sim_address,
        extra,
    )
    .await;
    (ChildGuard(child), format!("http://127.0.0.1:{port}"))
}

/// A child process killed when dropped.
pub(crate) struct ChildGuard(pub(crate) std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Spawns `serve` on `port` and waits until `/health` answers 200. X's endpoints point at the
/// simulator at `sim_address`; the callback at this process's own address.
async fn spawn_service(
    log: &str,
    port: u16,
    db_url: &str,
    prefix: &str,
    key: &Key,
    sim_address: &str,
    extra: &[(&str, String)],
) -> std::process::Child {
    let address = format!("http://127.0.0.1:{port}");
    let (client_id, client_secret) = credentials("twitter");
    let endpoints = sandbox::endpoints(sim_address, "twitter").unwrap();
    let api = sandbox::api_base(sim_address, "twitter").unwrap();
    let log_dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("faults");
    std::fs::create_dir_all(&log_dir).unwrap();
    let log = std::fs::File::create(log_dir.join(format!("{log}.log"))).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_growth-engine"))
        .arg("serve")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("PORT", port.to_string())
        .env("HOST", "127.0.0.1")
        .env("API_URL", &address)
        .env("DATABASE_URL", db_url)
        .env("REDIS_URL", test_redis_url())
        .env("REDIS_KEY_PREFIX", prefix)
        .env("TOKEN_ENCRYPTION_KEY", key.to_base64())
        .env("API_KEYS", API_KEY)
        .env("SANDBOX", "false")
        .env("REFRESHER_ENABLED", "false")
        .env("TWITTER_CLIENT_ID", &client_id)
        .env("TWITTER_CLIENT_SECRET", &client_secret)
        .env("TWITTER_AUTHORIZE_URL", &endpoints.authorize)
        .env("TWITTER_TOKEN_URL", &endpoints.token)
        .env("TWITTER_REVOKE_URL", &endpoints.revoke)
        .env("TWITTER_USERINFO_URL", &endpoints.userinfo)
        .env("TWITTER_API_URL", api)
        // Debug: the log is scanned for secrets at the end (`assert_log_clean`).
        .env("RUST_LOG", "debug,hyper=info,h2=info,rustls=info,sqlx=info")
        .envs(extra.iter().map(|(name, value)| (name, value)))
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start the service");
    wait_until(
        "the service becomes healthy",
        Duration::from_secs(30),
        async || matches!(reqwest::get(format!("{address}/health")).await, Ok(r) if r.status() == 200),
    )
    .await;
    child
}

/// The spawned service's log (`{log}.log`, written at debug level) holds none of its secrets,
/// raw, URL-encoded or base64-encoded: the API key, the encryption key, X's client secret (alone
/// and as HTTP Basic credentials), and every token, code verifier and code the simulator handed
/// out or received.
pub(crate) fn assert_log_clean(log: &str, key: &Key, simulator: &Simulator) {
    use base64::Engine;
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("faults")
        .join(format!("{log}.log"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("DEBUG"), "the service logged at debug level");
    let (client_id, client_secret) = credentials("twitter");
    let mut secrets = vec![
        API_KEY.to_owned(),
        key.to_base64(),
        client_secret.clone(),
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{client_secret}")),
    ];
    secrets.extend(simulator.issued_access_tokens("twitter"));
    secrets.extend(simulator.issued_refresh_tokens("twitter"));
    secrets.extend(simulator.code_verifiers("twitter"));
    assert!(secrets.len() > 5, "the simulator issued tokens");
    for secret in &secrets {
        let encoded: String = url::form_urlencoded::byte_serialize(secret.as_bytes()).collect();
        let b64 = base64::engine::general_purpose::STANDARD.encode(secret);
        for form in [secret.as_str(), &encoded, &b64] {
            assert!(
                !text.contains(form),
                "a secret is in {}: {}",
                path.display(),
                text.lines()
                    .find(|l| l.contains(form))
                    .unwrap_or_default()
                    .replace(form, "[THE SECRET]")
            );
        }
    }
}

/// Connects `platform` for `store` through the service at `address`, as a merchant would: the
/// API's connect URL, then consent in a browser.
pub(crate) async fn connect_through(address: &str, platform: &str, store: &str) {
    let start: serde_json::Value = reqwest::Client::new()
        .get(format!(
            "{address}/api/v1/oauth/connect/{platform}?user_id=u&store_id={store}"
        ))
        .bearer_auth(API_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let result = Browser::new()
        .complete_flow(start["authorization_url"].as_str().unwrap(), true)
        .await;
    assert_eq!(result["connection"], "success", "{platform}: {result:?}");
}

#[tokio::test]
async fn sigterm_mid_refresh_exits_only_after_the_rotated_tokens_are_stored() {
    let Binary {
        mut child,
        address,
        db,
        key,
        simulator,
        sim_address,
        ..
    } = start_binary_with("sigterm", &[]).await;
    connect_through(&address, "twitter", "sigterm").await;

    // Slower than the old 5 s background grace, within the platform timeout (10 s); the caller
    // gives up long before, so only the service's own drain can keep the refresh alive.
    simulator.set_fault("twitter", Some(Fault::Delay(Duration::from_millis(6000))));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(800))
        .build()
        .unwrap();
    let gave_up = impatient
        .post(format!(
            "{address}/api/v1/oauth/refresh/twitter?store_id=sigterm"
        ))
        .bearer_auth(API_KEY)
        .send()
        .await;
    assert!(gave_up.is_err(), "the caller timed out");
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let signalled = std::time::Instant::now();
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    let drained_for = signalled.elapsed();
    assert!(exit.success(), "clean exit: {exit:?}");
    assert!(
        drained_for > Duration::from_secs(4),
        "the process waited for the platform's answer ({drained_for:?})"
    );
    let calls = refresh_calls(&simulator, "twitter");
    assert_eq!(calls.len(), 1);
    assert!(calls[0].ok);

    // What the platform issued is in the database.
    let services = growth_engine::app::Services::build(
        settings_from(&[
            ("DATABASE_URL", db.url.clone()),
            ("TOKEN_ENCRYPTION_KEY", key.to_base64()),
        ]),
        Arc::new(growth_engine::clock::SystemClock),
    )
    .await
    .unwrap();
    let stored = row(&services, "sigterm", "twitter").await;
    assert_eq!(stored.status, ConnectionStatus::Connected);
    let tokens = services.core.open(&stored).unwrap();
    assert_eq!(
        tokens.refresh_token.unwrap().expose_secret(),
        simulator
            .issued_refresh_tokens("twitter")
            .last()
            .unwrap()
            .as_str()
    );
    assert_eq!(
        tokens.access_token.expose_secret(),
        simulator
            .issued_access_tokens("twitter")
            .last()
            .unwrap()
            .as_str()
    );
    assert!(simulator_accepts(&sim_address, "twitter", tokens.access_token.expose_secret()).await);
    assert_log_clean("sigterm", &key, &simulator);
    db.drop_database().await;
}

/// Settings of a second service on `app`'s database, Redis keyspace and simulator, with its own keys.
fn sibling_settings(
    app: &TestApp,
    database_url: &str,
    platforms: &[&str],
    current: &Key,
    old: Option<&Key>,
) -> growth_engine::config::Settings {
    let mut vars: Vec<(&str, String)> = vec![
        ("API_URL", app.address.clone()),
        ("API_KEYS", API_KEY.into()),
        ("DATABASE_URL", database_url.to_owned()),
        ("REDIS_URL", test_redis_url()),
        ("REDIS_KEY_PREFIX", app.redis_prefix.clone().unwrap()),
        ("TOKEN_ENCRYPTION_KEY", current.to_base64()),
        ("SANDBOX", "true".into()),
    ];
    if let Some(old) = old {
        vars.push(("TOKEN_ENCRYPTION_OLD_KEYS", old.to_base64()));
    }
    for platform in platforms {
        let (id, secret) = credentials(platform);
        let prefix = env_prefix(platform);
        let (id_var, secret_var) = match *platform {
            "tiktok" => ("TIKTOK_CLIENT_KEY", "TIKTOK_CLIENT_SECRET"),
            "pinterest" => ("PINTEREST_APP_ID", "PINTEREST_APP_SECRET"),
            _ => ("TWITTER_CLIENT_ID", "TWITTER_CLIENT_SECRET"),
        };
        vars.push((id_var, id));
        vars.push((secret_var, secret));
        let endpoints = sandbox::endpoints(&app.simulator_address, platform).unwrap();
        for (suffix, url) in [
            ("AUTHORIZE_URL", endpoints.authorize),
            ("TOKEN_URL", endpoints.token),
            ("REVOKE_URL", endpoints.revoke),
            ("USERINFO_URL", endpoints.userinfo),
        ] {
            let name: &'static str = Box::leak(format!("{prefix}_{suffix}").into_boxed_str());
            vars.push((name, url));
        }
    }
    settings_from(&vars)
}

/// Starts an application from `settings` with its refresher on `clock`; returns its address and
/// the sender that stops it.
async fn start_sibling(
    settings: growth_engine::config::Settings,
    clock: &ManualClock,
) -> (
    String,
    growth_engine::app::Services,
    tokio::sync::oneshot::Sender<()>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let app = Application::build_with(
        settings,
        listener,
        AppOptions {
            clock: Arc::new(clock.clone()),
            refresher: true,
            refresher_interval: Some(Duration::from_millis(200)),
            webhook_interval: Duration::from_millis(200),
            inbox_interval: Duration::from_millis(100),
        },
    )
    .await
    .unwrap();
    let services = app.services().clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = app
            .run_until(async move {
                let _ = rx.await;
            })
            .await;
    });
    (address, services, tx)
}

#[tokio::test]
async fn a_key_rollout_across_two_services_never_parks_a_connection() {
    let platforms = ["tiktok", "pinterest", "twitter"];
    let old = Key::generate();
    let new = Key::generate();
    let clock = ManualClock::new(chrono::Utc::now());
    // B already seals with the new key (and reads the old); A only knows the old one.
    let b = spawn_app_with(TestAppOptions {
        simulated: platforms.to_vec(),
        extra_env: vec![
            ("TOKEN_ENCRYPTION_KEY", new.to_base64()),
            ("TOKEN_ENCRYPTION_OLD_KEYS", old.to_base64()),
        ],
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    for platform in platforms {
        b.simulator.set_access_token_ttl(platform, 3600);
        connect(&b, platform, "rollout").await;
    }
    let (a_address, a, stop_a) = start_sibling(
        sibling_settings(
            &b,
            &b.database.as_ref().unwrap().url,
            &platforms,
            &old,
            None,
        ),
        &clock,
    )
    .await;
    // Every row is due for A's refresher, and its token inside the refresh window.
    clock.advance(chrono::Duration::seconds(3600 - 60));
    wait_until(
        "A's refresher tried every row and named the key it lacks",
        Duration::from_secs(15),
        async || {
            let rows = futures::future::join_all(platforms.iter().map(|p| row(&a, "rollout", p)));
            rows.await.iter().all(|r| {
                r.last_error
                    .as_deref()
                    .is_some_and(|e| e.contains(new.id()))
            })
        },
    )
    .await;
    let api = reqwest::Client::new();
    for platform in platforms {
        let response = api
            .get(format!(
                "{a_address}/api/v1/oauth/token/{platform}?store_id=rollout"
            ))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 503, "{platform}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "key_unavailable", "{body}");
        let stored = row(&a, "rollout", platform).await;
        assert_eq!(
            stored.status,
            ConnectionStatus::Connected,
            "{platform}: never ERROR"
        );
        assert!(
            stored
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains(new.id()),
            "{platform}: the log names the key: {stored:?}"
        );
    }
    assert!(a.metrics.render().contains("outcome=\"unknown_key\""));
    assert!(platforms
        .iter()
        .all(|p| refresh_calls(&b.simulator, p).is_empty()));

    // An older release parked one as ERROR for the same reason: it is healed once the key is known.
    let mut conn = sqlx::PgConnection::connect(&b.database.as_ref().unwrap().url)
        .await
        .unwrap();
    sqlx::query("update platform_connections set status = 'ERROR', last_error = $1 where platform = 'twitter'")
        .bind("the stored tokens are unreadable (sealed with a key that is no longer configured?)")
        .execute(&mut conn)
        .await
        .unwrap();

    // rotate-keys on A's settings goes past the rows it cannot open and counts them.
    let output = Command::new(env!("CARGO_BIN_EXE_growth-engine"))
        .arg("rotate-keys")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &b.database.as_ref().unwrap().url)
        .env("TOKEN_ENCRYPTION_KEY", old.to_base64())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("re-encrypted 0 connection(s)"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "unreadable: 3 connection(s) sealed with key {}",
            new.id()
        )),
        "{stdout}"
    );

    // check-config on A's settings names the key id A cannot open.
    let output = Command::new(env!("CARGO_BIN_EXE_growth-engine"))
        .arg("check-config")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &b.database.as_ref().unwrap().url)
        .env("TOKEN_ENCRYPTION_KEY", old.to_base64())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!("key {} sealed 3 connection(s)", new.id())),
        "{stdout}"
    );
    assert!(!stdout.contains(&old.to_base64()) && !stdout.contains(&new.to_base64()));

    // Phase one of the rollout reaches A: the new key as an old key.
    let _ = stop_a.send(());
    let (a2_address, a2, stop_a2) = start_sibling(
        sibling_settings(
            &b,
            &b.database.as_ref().unwrap().url,
            &platforms,
            &old,
            Some(&new),
        ),
        &clock,
    )
    .await;
    // Past A's back-off (at most 15 minutes for an unknown key).
    clock.advance(chrono::Duration::minutes(16));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let rows: Vec<_> =
            futures::future::join_all(platforms.iter().map(|p| row(&a2, "rollout", p))).await;
        if rows
            .iter()
            .all(|r| r.status == ConnectionStatus::Connected && r.last_refreshed_at.is_some())
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not renewed: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for platform in platforms {
        let response = api
            .get(format!(
                "{a2_address}/api/v1/oauth/token/{platform}?store_id=rollout"
            ))
            .bearer_auth(API_KEY)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{platform}");
        let body: serde_json::Value = response.json().await.unwrap();
        let token = body["access_token"].as_str().unwrap();
        assert!(
            simulator_accepts(&b.simulator_address, platform, token).await,
            "{platform}"
        );
        let calls = refresh_calls(&b.simulator, platform);
        assert!(
            !calls.is_empty() && calls.iter().all(|c| c.ok),
            "{platform}: {calls:?}"
        );
    }

    // rotate-keys with both keys: A's rows (sealed with the old key by A2) are re-sealed.
    let output = Command::new(env!("CARGO_BIN_EXE_growth-engine"))
        .arg("rotate-keys")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &b.database.as_ref().unwrap().url)
        .env("TOKEN_ENCRYPTION_KEY", new.to_base64())
        .env("TOKEN_ENCRYPTION_OLD_KEYS", old.to_base64())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("re-encrypted 3 connection(s)"), "{stdout}");
    assert!(!stdout.contains("unreadable"), "{stdout}");
    let _ = stop_a2.send(());
    b.stop().await;
}

#[tokio::test]
async fn a_recovery_record_left_by_a_stopped_replica_is_applied_by_another_before_it_refreshes() {
    let db = fresh_database().await;
    let pg = url::Url::parse(&db.url).unwrap();
    let proxy = CuttableProxy::start(format!(
        "{}:{}",
        pg.host_str().unwrap(),
        pg.port().unwrap_or(5432)
    ))
    .await;
    let mut proxied = pg.clone();
    proxied.set_port(Some(proxy.port)).unwrap();
    let key = Key::generate();
    let mut a = spawn_app_with(TestAppOptions {
        extra_env: vec![
            ("DATABASE_URL", proxied.to_string()),
            ("TOKEN_ENCRYPTION_KEY", key.to_base64()),
        ],
        ..Default::default()
    })
    .await;
    connect(&a, "twitter", "handover").await;
    a.simulator.set_fault("twitter", Some(Fault::Hold));
    let refresh = {
        let api = a.api.clone();
        let url = a.url("/api/v1/oauth/refresh/twitter?store_id=handover");
        tokio::spawn(async move { api.post(url).bearer_auth(API_KEY).send().await })
    };
    at_the_platform(&a.simulator, "twitter").await;
    proxy.cut();
    a.simulator.set_fault("twitter", None);
    assert_eq!(refresh.await.unwrap().unwrap().status(), 200);
    // Replica A stops while PostgreSQL is still unreachable: only Redis holds the rotated set.
    let b_settings = sibling_settings(&a, proxied.as_str(), &["twitter"], &key, None);
    let simulator = a.simulator.clone();
    let sim_address = a.simulator_address.clone();
    let unused = a.database.take();
    // A's drain tries its last write while PostgreSQL is still cut; then A is gone.
    a.stop_and_wait().await;
    proxy.restore();
    // A's lease (60 s, held since its write failed) runs out: stand in for the wait by ending it
    // now, as the database's clock would.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let leased: u64 = sqlx::query(
        "update platform_connections set refresh_lease_until = now() - interval '1 second' \
         where refresh_lease_owner is not null",
    )
    .execute(&mut conn)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(leased, 1, "A's failed write left its lease behind");

    let b = growth_engine::app::Services::build(
        b_settings,
        Arc::new(growth_engine::clock::SystemClock),
    )
    .await
    .unwrap();
    let platform = PlatformId::parse("twitter").unwrap();
    let spec = b.core.catalog().get(&platform).unwrap().clone();
    let issued = b
        .tokens
        .access_token(&spec, &StoreId::parse("handover").unwrap(), true)
        .await
        .unwrap();
    let calls = refresh_calls(&simulator, "twitter");
    assert_eq!(calls.len(), 2, "A's refresh, then B's");
    assert!(
        calls.iter().all(|c| c.ok),
        "B presented the rotated refresh token, not the stale one: {calls:?}"
    );
    assert_eq!(
        issued.access_token.expose_secret(),
        simulator
            .issued_access_tokens("twitter")
            .last()
            .unwrap()
            .as_str()
    );
    assert!(simulator_accepts(&sim_address, "twitter", issued.access_token.expose_secret()).await);
    let stored = row(&b, "handover", "twitter").await;
    assert_eq!(stored.status, ConnectionStatus::Connected);
    assert_eq!(
        b.core
            .open(&stored)
            .unwrap()
            .refresh_token
            .unwrap()
            .expose_secret(),
        simulator
            .issued_refresh_tokens("twitter")
            .last()
            .unwrap()
            .as_str()
    );
    if let Some(unused) = unused {
        unused.drop_database().await;
    }
    db.drop_database().await;
}

/// A platform API for the shutdown test: `stream` answers 200 and then a chunk every 200 ms for
/// ever; `slow` answers after two seconds; anything else at once. Counts the `slow` calls.
async fn streaming_api() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use axum::body::{Body, Bytes};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let slow_calls = Arc::new(AtomicUsize::new(0));
    let counter = slow_calls.clone();
    let router = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let counter = counter.clone();
        async move {
            let path = request.uri().path().to_owned();
            if path.ends_with("/stream") {
                let chunks = futures::stream::unfold((), |()| async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Some((Ok::<_, std::io::Error>(Bytes::from(vec![b'.'; 1024])), ()))
                });
                return axum::response::Response::new(Body::from_stream(chunks));
            }
            if path.ends_with("/slow") {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            axum::response::Response::new(Body::from("{\"data\":{}}"))
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (address, slow_calls)
}

#[tokio::test]
async fn sigterm_ends_within_the_grace_though_an_answer_still_streams_and_flushes_the_audit_trail()
{
    use std::sync::atomic::Ordering;
    // The least grace the platform timeout (3 s, longer than the slow call) allows.
    const GRACE: u64 = 8;
    let (api, slow_calls) = streaming_api().await;
    let Binary {
        mut child,
        address,
        db,
        key,
        simulator,
        ..
    } = start_binary_with(
        "sigterm-grace",
        &[
            ("HTTP_TIMEOUT_SECONDS", "3".into()),
            ("SHUTDOWN_GRACE_SECONDS", GRACE.to_string()),
            ("TWITTER_API_URL", format!("{api}/2/")),
        ],
    )
    .await;
    connect_through(&address, "twitter", "grace").await;
    let api_client = reqwest::Client::new();

    let proxied = |path: &str| {
        api_client
            .get(format!("{address}/api/v1/proxy/twitter/{path}"))
            .bearer_auth(API_KEY)
            .header("Growth-Engine-Store", "grace")
            .send()
    };
    // An answer that streams for ever, held by a caller that never reads it.
    let streaming = proxied("stream").await.unwrap();
    assert_eq!(streaming.status(), 200);
    // A call in flight when the signal comes: answered two seconds later, during the shutdown.
    let in_flight = tokio::spawn(proxied("slow"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while slow_calls.load(Ordering::SeqCst) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the slow call never arrived"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let term = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(term.success());
    let signalled = std::time::Instant::now();
    let exit = tokio::task::spawn_blocking(move || {
        // Polled rather than waited on, so that a process that never ends fails the test.
        let deadline = std::time::Instant::now() + Duration::from_secs(GRACE + 15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap();
    let took = signalled.elapsed();
    let exit = exit.unwrap_or_else(|| panic!("still running {took:?} after SIGTERM"));
    assert!(exit.success(), "clean exit: {exit:?}");
    assert!(
        took < Duration::from_secs(GRACE) + Duration::from_millis(1500),
        "the shutdown took {took:?}, the grace is {GRACE} s"
    );
    let answered = in_flight.await.unwrap().unwrap();
    assert_eq!(answered.status(), 200, "the call in flight was let finish");
    drop(streaming);

    // Both calls' audit rows are stored: the slow one's was recorded during the shutdown.
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    let details: Vec<(Option<String>,)> =
        sqlx::query_as("select detail from audit where store_id = 'grace' and operation = 'proxy'")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    let details: Vec<String> = details.into_iter().filter_map(|(d,)| d).collect();
    for path in ["GET stream 200", "GET slow 200"] {
        assert!(
            details.iter().any(|d| d.starts_with(path)),
            "no audit row for {path}: {details:?}"
        );
    }
    drop(conn);
    assert_log_clean("sigterm-grace", &key, &simulator);
    db.drop_database().await;
}

/// Issue 17 item 1: a recovery record left from an earlier grant never lands on a later reconnect
/// of the same row (same id, `last_refreshed_at` null). The record is produced for real: the write
/// of a rotated token set is refused (PostgreSQL cut) and the replica stops with only Redis holding
/// it; then another replica reconnects the same store and platform and forces a refresh.
#[tokio::test]
async fn a_leftover_recovery_record_never_replaces_a_later_reconnect() {
    let db = fresh_database().await;
    let pg = url::Url::parse(&db.url).unwrap();
    let proxy = CuttableProxy::start(format!(
        "{}:{}",
        pg.host_str().unwrap(),
        pg.port().unwrap_or(5432)
    ))
    .await;
    let mut proxied = pg.clone();
    proxied.set_port(Some(proxy.port)).unwrap();
    let key = Key::generate();
    let mut a = spawn_app_with(TestAppOptions {
        extra_env: vec![
            ("DATABASE_URL", proxied.to_string()),
            ("TOKEN_ENCRYPTION_KEY", key.to_base64()),
        ],
        ..Default::default()
    })
    .await;
    connect(&a, "twitter", "regrant").await;
    let first = row(&a.services, "regrant", "twitter").await;
    a.simulator.set_fault("twitter", Some(Fault::Hold));
    let refresh = {
        let api = a.api.clone();
        let url = a.url("/api/v1/oauth/refresh/twitter?store_id=regrant");
        tokio::spawn(async move { api.post(url).bearer_auth(API_KEY).send().await })
    };
    at_the_platform(&a.simulator, "twitter").await;
    proxy.cut();
    a.simulator.set_fault("twitter", None);
    assert_eq!(refresh.await.unwrap().unwrap().status(), 200);
    let prefix = a.redis_prefix.clone().unwrap();
    let recovery_key = format!("{prefix}recovery:{}", first.id);
    let client = redis::Client::open(test_redis_url()).unwrap();
    let mut redis_conn = client.get_multiplexed_async_connection().await.unwrap();
    let record: Option<String> = redis::cmd("GET")
        .arg(&recovery_key)
        .query_async(&mut redis_conn)
        .await
        .unwrap();
    let record = record.expect("a recovery record in Redis");
    // A stops while PostgreSQL is unreachable: only Redis holds the rotated set.
    let unused = a.database.take();
    // A's drain tries its last write while PostgreSQL is still cut; then A is gone.
    a.stop_and_wait().await;
    proxy.restore();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "update platform_connections set refresh_lease_until = now() - interval '1 second' \
         where refresh_lease_owner is not null",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    // The merchant reconnects through another replica (same database, key and Redis prefix).
    let c = spawn_app_with(TestAppOptions {
        extra_env: vec![
            ("DATABASE_URL", db.url.clone()),
            ("TOKEN_ENCRYPTION_KEY", key.to_base64()),
            ("REDIS_KEY_PREFIX", prefix.clone()),
        ],
        ..Default::default()
    })
    .await;
    connect(&c, "twitter", "regrant").await;
    let regranted = row(&c.services, "regrant", "twitter").await;
    assert_eq!(regranted.id, first.id, "a reconnect keeps the row's id");
    assert!(regranted.last_refreshed_at.is_none());
    // The reconnect deleted the record; put it back, as a replica whose delete never reached
    // Redis (or one holding it in memory) would have it: it names the earlier grant, so it must
    // still never apply.
    let _: () = redis::cmd("SET")
        .arg(&recovery_key)
        .arg(&record)
        .query_async(&mut redis_conn)
        .await
        .unwrap();
    // Forced refresh: the pending record is looked at first, then the platform is called.
    let forced = c
        .post("/api/v1/oauth/refresh/twitter?store_id=regrant")
        .await;
    assert_eq!(forced.status(), 200);
    let body: serde_json::Value = forced.json().await.unwrap();
    let new_grant_tokens = c.simulator.issued_access_tokens("twitter");
    assert_eq!(
        body["access_token"],
        new_grant_tokens.last().unwrap().as_str(),
        "the token handed out is the new grant's (renewed by its own platform)"
    );
    let calls = refresh_calls(&c.simulator, "twitter");
    assert!(
        calls.iter().all(|r| r.ok),
        "the new grant's refresh token was presented: {calls:?}"
    );
    let stored = row(&c.services, "regrant", "twitter").await;
    assert_eq!(stored.status, ConnectionStatus::Connected);
    assert_eq!(
        c.services
            .core
            .open(&stored)
            .unwrap()
            .refresh_token
            .unwrap()
            .expose_secret(),
        c.simulator
            .issued_refresh_tokens("twitter")
            .last()
            .unwrap()
            .as_str()
    );
    // A second refresh still works (the old record made it EXPIRED before).
    let again = c
        .post("/api/v1/oauth/refresh/twitter?store_id=regrant")
        .await;
    assert_eq!(again.status(), 200);
    let left: Option<String> = redis::cmd("GET")
        .arg(&recovery_key)
        .query_async(&mut redis_conn)
        .await
        .unwrap();
    assert!(left.is_none(), "the earlier grant's record is dropped");
    c.stop().await;
    if let Some(unused) = unused {
        unused.drop_database().await;
    }
    db.drop_database().await;
}
