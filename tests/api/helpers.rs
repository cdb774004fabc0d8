//! Test helpers: real PostgreSQL and Redis (a fresh database and key prefix per test), the service
//! spawned on port 0, the platform simulators on their own port, and a cookie-keeping "browser".

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use growth_engine::app::{AppOptions, Application};
use growth_engine::clock::{ManualClock, SharedClock, SystemClock};
use growth_engine::config::Settings;
use growth_engine::platforms::BuiltInPlatform;
use growth_engine::redis_conn::RedisHandle;
use growth_engine::sandbox::{self, SimClient, Simulator};
use sqlx::Connection as _;
use tokio::net::TcpListener;
use url::Url;

pub const API_KEY: &str = "test-api-key-0123456789abcdef";

const PG_HINT: &str = "PostgreSQL must run for the tests. Start it with: \
    pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start \
    (or set TEST_DATABASE_URL)";
const REDIS_HINT: &str = "Redis must run for the tests. Start it with: \
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no \
    (or set TEST_REDIS_URL)";

pub fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

pub fn test_redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// hex HMAC-SHA256 of `message` keyed with `key`, computed by Python's standard library: a
/// signature or proof checked against it is checked against code that is not ours.
pub fn python_hmac_sha256_hex(key: &[u8], message: &[u8]) -> String {
    use std::io::Write;
    let script = "import hmac, hashlib, sys\n\
                  key, message = sys.stdin.read().split()\n\
                  print(hmac.new(bytes.fromhex(key), bytes.fromhex(message), hashlib.sha256).hexdigest())";
    let mut child = std::process::Command::new("python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect(
            "python3 computes the independent HMAC vectors: install it (apt-get install python3)",
        );
    let input = format!("{} {}", hex::encode(key), hex::encode(message));
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("python3's stdin");
    let output = child.wait_with_output().expect("python3 ran");
    assert!(output.status.success(), "python3 failed: {output:?}");
    String::from_utf8(output.stdout)
        .expect("hex")
        .trim()
        .to_owned()
}

/// The `host:port` a service URL (`redis://`, `postgres://`) points at, its scheme's default port
/// when it names none.
pub fn host_port(url: &str) -> String {
    let url = Url::parse(url).expect("a service URL");
    let default = if url.scheme().starts_with("redis") {
        6379
    } else {
        5432
    };
    format!(
        "{}:{}",
        url.host_str().expect("a host"),
        url.port().unwrap_or(default)
    )
}

/// Waits (at most `within`) until `done` holds, looking again every 20 ms: for a state the test
/// needs before it goes on, instead of a sleep long enough on a good day. Fails naming `what`.
pub async fn wait_until(
    what: &str,
    within: std::time::Duration,
    mut done: impl AsyncFnMut() -> bool,
) {
    let started = tokio::time::Instant::now();
    while !done().await {
        assert!(started.elapsed() < within, "{what} within {within:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A PostgreSQL database made for one test and dropped by [`TestDatabase::drop_database`] (or, if a
/// test panicked first, by the next run's sweep).
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

static DB_COUNTER: AtomicUsize = AtomicUsize::new(0);
static SWEPT: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();

async fn admin() -> sqlx::PgConnection {
    sqlx::PgConnection::connect(&test_database_url())
        .await
        .unwrap_or_else(|e| panic!("{PG_HINT}: {e}"))
}

/// Drops databases left by test processes that are gone.
async fn sweep_stale_databases() {
    let mut conn = admin().await;
    let names: Vec<(String,)> =
        sqlx::query_as("select datname from pg_database where datname like 'ge_test_%'")
            .fetch_all(&mut conn)
            .await
            .expect("list test databases");
    for (name,) in names {
        let pid = name.split('_').nth(2).and_then(|p| p.parse::<u32>().ok());
        let alive = pid.is_some_and(|pid| std::path::Path::new(&format!("/proc/{pid}")).exists());
        if !alive {
            let _ = sqlx::query(&format!("drop database if exists \"{name}\" with (force)"))
                .execute(&mut conn)
                .await;
        }
    }
}

pub async fn fresh_database() -> TestDatabase {
    SWEPT.get_or_init(sweep_stale_databases).await;
    let name = format!(
        "ge_test_{}_{}",
        std::process::id(),
        DB_COUNTER.fetch_add(1, Ordering::SeqCst)
    );
    let mut conn = admin().await;
    sqlx::query(&format!("create database \"{name}\""))
        .execute(&mut conn)
        .await
        .expect("create test database");
    let mut url = Url::parse(&test_database_url()).expect("TEST_DATABASE_URL parses");
    url.set_path(&format!("/{name}"));
    TestDatabase {
        name,
        url: url.to_string(),
    }
}

impl TestDatabase {
    pub async fn drop_database(self) {
        let mut conn = admin().await;
        let _ = sqlx::query(&format!(
            "drop database if exists \"{}\" with (force)",
            self.name
        ))
        .execute(&mut conn)
        .await;
    }
}

/// A Redis handle with a prefix no other test uses.
pub async fn fresh_redis() -> (RedisHandle, String) {
    let prefix = format!("test:{}:", uuid::Uuid::new_v4());
    let handle = RedisHandle::new(&test_redis_url().into(), &prefix).expect("redis url");
    handle
        .ping()
        .await
        .unwrap_or_else(|e| panic!("{REDIS_HINT}: {e:?}"));
    (handle, prefix)
}

pub fn settings_from(vars: &[(&str, String)]) -> Settings {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    Settings::from_vars(&map).expect("test settings are valid")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL and Redis: the production shape.
    Shared,
    /// SQLite in a temporary file and in-process state: the embedded default.
    Embedded,
}

pub struct TestAppOptions {
    pub backend: Backend,
    /// Platforms served by a standalone simulator (with real-looking credentials); the others use
    /// the built-in sandbox.
    pub simulated: Vec<&'static str>,
    pub extra_env: Vec<(&'static str, String)>,
    pub clock: Option<ManualClock>,
    /// The standalone simulator reads `clock` too (by default it keeps real time, as a platform
    /// would while the service's clock is moved).
    pub simulator_follows_clock: bool,
    pub refresher: bool,
    /// A listener bound in advance, for tests that must know the address before the app starts.
    pub listener: Option<TcpListener>,
}

impl Default for TestAppOptions {
    fn default() -> Self {
        Self {
            backend: Backend::Shared,
            simulated: sandbox::PLATFORMS.to_vec(),
            extra_env: Vec::new(),
            clock: None,
            simulator_follows_clock: false,
            refresher: false,
            listener: None,
        }
    }
}

pub struct TestApp {
    pub address: String,
    pub api: reqwest::Client,
    pub simulator: Simulator,
    pub simulator_address: String,
    pub database: Option<TestDatabase>,
    pub redis_prefix: Option<String>,
    pub services: growth_engine::app::Services,
    pub clock: Option<ManualClock>,
    pub sqlite_dir: Option<tempfile::TempDir>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    /// The running application: it ends once its shutdown (drain, background tasks, audit flush)
    /// is over.
    running: Option<tokio::task::JoinHandle<()>>,
}

pub fn credentials(platform: &str) -> (String, String) {
    (
        format!("{platform}-test-client-id"),
        format!("{platform}-test-client-secret-5f1d2c"),
    )
}

/// The table line of a built-in platform.
fn built_in(platform: &str) -> &'static BuiltInPlatform {
    growth_engine::platforms::built_in(platform)
        .unwrap_or_else(|| panic!("{platform} is not a built-in platform"))
}

pub fn env_prefix(platform: &str) -> &'static str {
    built_in(platform).env_prefix
}

fn credential_vars(platform: &str) -> (&'static str, &'static str) {
    let platform = built_in(platform);
    (platform.client_id_var, platform.client_secret_var)
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(TestAppOptions::default()).await
}

pub async fn spawn_app_with(mut options: TestAppOptions) -> TestApp {
    let listener = match options.listener.take() {
        Some(listener) => listener,
        None => TcpListener::bind("127.0.0.1:0").await.expect("bind app"),
    };
    let address = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let sim_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind simulator");
    let simulator_address = format!(
        "http://127.0.0.1:{}",
        sim_listener.local_addr().unwrap().port()
    );

    let mut vars: Vec<(&str, String)> = vec![
        ("API_URL", address.clone()),
        ("API_KEYS", API_KEY.into()),
        (
            "TOKEN_ENCRYPTION_KEY",
            growth_engine::vault::Key::generate().to_base64(),
        ),
        ("SANDBOX", "true".into()),
    ];
    let mut clients = Vec::new();
    for platform in &options.simulated {
        let (id, secret) = credentials(platform);
        let (id_var, secret_var) = credential_vars(platform);
        vars.push((id_var, id.clone()));
        vars.push((secret_var, secret.clone()));
        let endpoints = sandbox::endpoints(&simulator_address, platform).expect("known platform");
        let prefix = env_prefix(platform);
        for (suffix, url) in [
            ("AUTHORIZE_URL", endpoints.authorize),
            ("TOKEN_URL", endpoints.token),
            ("REVOKE_URL", endpoints.revoke),
            ("USERINFO_URL", endpoints.userinfo),
            // Asset discovery (and the proxy) call the simulator's API, not the real one.
            (
                "API_URL",
                sandbox::api_base(&simulator_address, platform).expect("known platform"),
            ),
        ] {
            let name: &'static str = Box::leak(format!("{prefix}_{suffix}").into_boxed_str());
            vars.push((name, url));
        }
        clients.push(SimClient {
            platform: (*platform).to_owned(),
            client_id: id,
            client_secret: secret,
            redirect_uris: vec![format!("{address}/api/v1/oauth/callback/{platform}")],
        });
    }
    let simulator = match (&options.clock, options.simulator_follows_clock) {
        (Some(clock), true) => Simulator::with_clock(clients, Arc::new(clock.clone())),
        _ => Simulator::new(clients),
    };
    // Strict, as an app that requires token proofs: every call must carry one; and the strict
    // reading of every rule a platform leaves open.
    simulator.require_token_proofs(true);
    simulator.strict(true);
    // Its notices go to this app's receivers; a platform that signs them with published keys has
    // them served by the simulator.
    simulator.set_event_receiver(&format!("{address}/api/v1/platform-events"));
    for platform in &options.simulated {
        let Some(path) = built_in(platform).events.sandbox_keys_path else {
            continue;
        };
        let name: &'static str =
            Box::leak(format!("{}_EVENT_KEYS_URL", env_prefix(platform)).into_boxed_str());
        if !options.extra_env.iter().any(|(n, _)| *n == name) {
            vars.push((name, format!("{simulator_address}{path}")));
        }
    }
    let sim_router = sandbox::router(simulator.clone());
    tokio::spawn(async move {
        let _ = axum::serve(sim_listener, sim_router).await;
    });

    let mut database = None;
    let mut redis_prefix = None;
    let mut sqlite_dir = None;
    match options.backend {
        Backend::Shared => {
            let db = fresh_database().await;
            vars.push(("DATABASE_URL", db.url.clone()));
            database = Some(db);
            let (_, prefix) = fresh_redis().await;
            // A test that names its own sentinels brings its own Redis (and the two are exclusive).
            if !options
                .extra_env
                .iter()
                .any(|(name, _)| *name == "REDIS_SENTINELS")
            {
                vars.push(("REDIS_URL", test_redis_url()));
            }
            vars.push(("REDIS_KEY_PREFIX", prefix.clone()));
            redis_prefix = Some(prefix);
        }
        Backend::Embedded => {
            let dir = tempfile::tempdir().expect("tempdir");
            vars.push((
                "DATABASE_URL",
                format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display()),
            ));
            sqlite_dir = Some(dir);
        }
    }
    vars.extend(options.extra_env.iter().cloned());
    let settings = settings_from(&vars);
    let clock: SharedClock = match &options.clock {
        Some(clock) => Arc::new(clock.clone()),
        None => Arc::new(SystemClock),
    };
    let app = Application::build_with(
        settings,
        listener,
        AppOptions {
            clock,
            refresher: options.refresher,
            refresher_interval: Some(std::time::Duration::from_millis(200)),
            webhook_interval: std::time::Duration::from_millis(200),
            inbox_interval: std::time::Duration::from_millis(100),
        },
    )
    .await
    .expect("application builds");
    let services = app.services().clone();
    if let Some(sandbox) = &services.sandbox {
        sandbox.strict(true);
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(async move {
        let _ = app
            .run_until(async move {
                let _ = rx.await;
            })
            .await;
    });
    TestApp {
        address,
        api: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        simulator,
        simulator_address,
        database,
        redis_prefix,
        services,
        clock: options.clock,
        sqlite_dir,
        shutdown: Some(tx),
        running: Some(running),
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.api
            .get(self.url(path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .expect("request")
    }

    pub async fn delete(&self, path: &str) -> reqwest::Response {
        self.api
            .delete(self.url(path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .expect("request")
    }

    pub async fn post(&self, path: &str) -> reqwest::Response {
        self.api
            .post(self.url(path))
            .bearer_auth(API_KEY)
            .send()
            .await
            .expect("request")
    }

    pub async fn connect_url(&self, platform: &str, store: &str) -> String {
        let response = self
            .get(&format!(
                "/api/v1/oauth/connect/{platform}?user_id=user-1&store_id={store}"
            ))
            .await;
        assert_eq!(response.status(), 200, "connect {platform}");
        let body: serde_json::Value = response.json().await.unwrap();
        body["authorization_url"].as_str().unwrap().to_owned()
    }

    /// A full flow in a fresh browser: connect, first hop, consent (approve or deny), callback.
    /// Returns the dashboard redirect's query.
    pub async fn run_flow(
        &self,
        platform: &str,
        store: &str,
        approve: bool,
    ) -> HashMap<String, String> {
        let browser = Browser::new();
        let start = self.connect_url(platform, store).await;
        browser.complete_flow(&start, approve).await
    }

    pub async fn connections(&self, store: &str) -> serde_json::Value {
        let response = self
            .get(&format!("/api/v1/oauth/connections/{store}"))
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// Stops the application and waits until its shutdown is over (at most a minute), as a
    /// replica that has exited; its database is kept unless still attached.
    pub async fn stop_and_wait(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(running) = self.running.take() {
            tokio::time::timeout(std::time::Duration::from_secs(60), running)
                .await
                .expect("the application stops within a minute")
                .expect("the application's task ends cleanly");
        }
        if let Some(db) = self.database.take() {
            db.drop_database().await;
        }
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(db) = self.database.take() {
            // Give the server a moment to close its pool before the forced drop.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            db.drop_database().await;
        }
    }

    /// Every value stored in the database's connection rows and in Redis under this app's prefix,
    /// as text, for "no plaintext token anywhere" checks.
    pub async fn everything_stored(&self) -> String {
        let mut all = String::new();
        if let Some(db) = &self.database {
            let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
            let rows: Vec<(String,)> = sqlx::query_as(
                "select row_to_json(c)::text from platform_connections c \
                 union all select row_to_json(o)::text from webhook_outbox o",
            )
            .fetch_all(&mut conn)
            .await
            .unwrap();
            for (row,) in rows {
                all.push_str(&row);
                all.push('\n');
            }
        }
        if let Some(prefix) = &self.redis_prefix {
            let client = redis::Client::open(test_redis_url()).unwrap();
            let mut conn = client.get_multiplexed_async_connection().await.unwrap();
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut conn)
                .await
                .unwrap();
            for key in keys {
                // Every kind of value, each read with its own command: a token in a hash, a
                // sorted set or a list must be found as surely as one in a string.
                let kind: String = redis::cmd("TYPE")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let read = match kind.as_str() {
                    "string" => redis::cmd("GET").arg(&key).clone(),
                    "hash" => redis::cmd("HGETALL").arg(&key).clone(),
                    "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).clone(),
                    "set" => redis::cmd("SMEMBERS").arg(&key).clone(),
                    "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).clone(),
                    "stream" => redis::cmd("XRANGE").arg(&key).arg("-").arg("+").clone(),
                    // Gone since KEYS listed it.
                    "none" => continue,
                    other => panic!("a Redis value of an unscanned type {other} at {key}"),
                };
                let value: redis::Value = read.query_async(&mut conn).await.unwrap();
                all.push_str(&key);
                all.push(' ');
                all.push_str(&redis_text(&value));
                all.push('\n');
            }
        }
        all
    }
}

/// A browser: keeps cookies, follows no redirect by itself so each hop can be checked.
/// Every byte string inside a Redis value, as text, one after another.
fn redis_text(value: &redis::Value) -> String {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        redis::Value::SimpleString(text) => text.clone(),
        redis::Value::Array(items) | redis::Value::Set(items) => {
            items.iter().map(redis_text).collect::<Vec<_>>().join(" ")
        }
        redis::Value::Map(pairs) => pairs
            .iter()
            .map(|(k, v)| format!("{} {}", redis_text(k), redis_text(v)))
            .collect::<Vec<_>>()
            .join(" "),
        other => format!("{other:?}"),
    }
}

pub struct Browser {
    pub client: reqwest::Client,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

pub fn query_of(url: &str) -> HashMap<String, String> {
    Url::parse(url)
        .expect("absolute URL")
        .query_pairs()
        .into_owned()
        .collect()
}

pub fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .unwrap_or_else(|| panic!("no Location on a {} response", response.status()))
        .to_str()
        .unwrap()
        .to_owned()
}

impl Browser {
    pub fn new() -> Self {
        Self {
            client: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// Opens the first hop; returns the platform's authorization URL it redirects to.
    pub async fn first_hop(&self, start: &str) -> String {
        let hop = self.client.get(start).send().await.unwrap();
        assert_eq!(hop.status(), 303, "first hop redirects");
        location(&hop)
    }

    /// Opens the consent screen and answers it; returns the callback URL the platform redirects to.
    pub async fn consent(&self, authorize_url: &str, approve: bool) -> String {
        let page = self.client.get(authorize_url).send().await.unwrap();
        assert_eq!(page.status(), 200, "consent screen for {authorize_url}");
        let html = page.text().await.unwrap();
        let request_id = html
            .split("name=\"request_id\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("consent page has a request_id")
            .to_owned();
        let origin = Url::parse(authorize_url).unwrap();
        let action = html
            .split("<form method=\"post\" action=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("consent form action")
            .replace("&amp;", "&");
        let target = origin.join(&action).unwrap();
        let decision = if approve { "approve" } else { "deny" };
        let mut form: Vec<(String, String)> = vec![
            ("request_id".into(), request_id),
            ("decision".into(), decision.into()),
        ];
        for scope in html.split("name=\"scope\" value=\"").skip(1) {
            if let Some(value) = scope.split('"').next() {
                form.push(("scope".into(), value.replace("&amp;", "&")));
            }
        }
        let answer = self
            .client
            .post(target)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(serde_urlencoded::to_string(&form).unwrap())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 303, "consent answer redirects");
        location(&answer)
    }

    /// Follows the callback; returns the dashboard redirect's URL.
    pub async fn callback(&self, callback_url: &str) -> String {
        let response = self.client.get(callback_url).send().await.unwrap();
        assert_eq!(response.status(), 303, "callback redirects");
        location(&response)
    }

    pub async fn complete_flow(&self, start: &str, approve: bool) -> HashMap<String, String> {
        let authorize = self.first_hop(start).await;
        let callback = self.consent(&authorize, approve).await;
        let dashboard = self.callback(&callback).await;
        query_of(&dashboard)
    }
}

/// The `p` quantile (0 to 1) of `sorted` samples, for the benches' fixed runs.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index]
}
