//! Redis Sentinel against real processes: a primary, a replica and three sentinels of the test's own
//! (`redis-server` and `redis-server --sentinel`, on free loopback ports, behind passwords). The
//! service finds the primary through the sentinels; the test SIGKILLs the primary under load (token
//! reads and flows in a loop, plus flows parked mid-way before the kill) and checks what a failover
//! may and may not do:
//!
//! - every token read answers 200 (from PostgreSQL while Redis is away);
//! - a flow in flight either finishes or fails with `state_store_unavailable` (a 503, or the
//!   dashboard's `reason=state_store_unavailable`): never a 500, never another error; a flow parked
//!   before the kill and resumed after the recovery finishes (its state was on the replica);
//! - new flows work again within [`RECOVERY_BOUND`] of the promotion (the sentinels naming the
//!   replica), and every flow started after the first success works;
//! - the connection rows in PostgreSQL are exactly as before, plus one per finished flow;
//! - afterwards the service writes to the promoted replica.
//!
//! Run with `--nocapture` to see the measured figures.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sqlx::Connection as _;

use crate::helpers::{
    location, query_of, spawn_app_with, Browser, TestApp, TestAppOptions, API_KEY,
};

const REDIS_SERVER_HINT: &str = "the Sentinel test starts its own primary, replica and three \
    sentinels with redis-server: install it (apt-get install redis-server) or put it on PATH";

const MASTER: &str = "growth-primary";
const MASTER_PASSWORD: &str = "primary-password-7f3a0c";
const SENTINEL_PASSWORD: &str = "sentinel-password-91c2e4";

/// How soon after the promotion a new flow must work again.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
/// The longest the whole failover may take before the test gives up.
const FAILOVER_DEADLINE: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `redis-server` process; killed when dropped.
struct Process {
    child: Option<Child>,
}

impl Process {
    fn spawn(args: &[String]) -> Self {
        let child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{REDIS_SERVER_HINT}: {e}"));
        Self { child: Some(child) }
    }

    /// SIGSTOP: the process stays, its connections hang (SIGKILL still ends it when dropped).
    fn freeze(&self) {
        let pid = self.child.as_ref().expect("running").id();
        let status = Command::new("kill")
            .arg("-STOP")
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -STOP {pid}");
    }

    /// SIGKILL: no goodbye to its clients, its replica or the sentinels.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A primary, its replica and three sentinels watching them, all on loopback; every process is
/// killed when this is dropped (the processes are declared before the directory, so they go first).
struct SentinelSet {
    primary: Process,
    _replica: Process,
    sentinels: Vec<Process>,
    primary_port: u16,
    replica_port: u16,
    sentinel_ports: Vec<u16>,
    dir: tempfile::TempDir,
}

fn server_args(port: u16, dir: &Path, name: &str) -> Vec<String> {
    let data = dir.join(name);
    std::fs::create_dir_all(&data).unwrap();
    [
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        data.to_str().unwrap(),
        "--logfile",
        dir.join(format!("{name}.log")).to_str().unwrap(),
        "--requirepass",
        MASTER_PASSWORD,
        // The primary becomes a replica if it ever comes back: it must authenticate too.
        "--masterauth",
        MASTER_PASSWORD,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}

fn sentinel_conf(port: u16, primary_port: u16, dir: &Path, n: usize) -> String {
    format!(
        "port {port}\n\
         bind 127.0.0.1\n\
         dir {dir}\n\
         logfile {dir}/sentinel-{n}.log\n\
         requirepass {SENTINEL_PASSWORD}\n\
         sentinel sentinel-pass {SENTINEL_PASSWORD}\n\
         sentinel monitor {MASTER} 127.0.0.1 {primary_port} 2\n\
         sentinel auth-pass {MASTER} {MASTER_PASSWORD}\n\
         sentinel down-after-milliseconds {MASTER} 1000\n\
         sentinel failover-timeout {MASTER} 5000\n\
         sentinel parallel-syncs {MASTER} 1\n",
        dir = dir.display()
    )
}

fn server_url(port: u16) -> String {
    format!("redis://:{MASTER_PASSWORD}@127.0.0.1:{port}")
}

fn sentinel_url(port: u16) -> String {
    format!("redis://:{SENTINEL_PASSWORD}@127.0.0.1:{port}")
}

/// One command on a fresh connection, bounded by a second.
async fn query<T: redis::FromRedisValue>(url: &str, command: &redis::Cmd) -> Option<T> {
    let attempt = async {
        let client = redis::Client::open(url).ok()?;
        let mut conn = client.get_multiplexed_async_connection().await.ok()?;
        command.query_async::<T>(&mut conn).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(1), attempt)
        .await
        .ok()
        .flatten()
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `within`.
async fn wait_for<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < within, "{what} (after {within:?})");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl SentinelSet {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let primary_port = free_port();
        let replica_port = free_port();
        let primary = Process::spawn(&server_args(primary_port, dir.path(), "primary"));
        let mut replica_args = server_args(replica_port, dir.path(), "replica");
        replica_args.extend([
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary_port.to_string(),
        ]);
        let replica = Process::spawn(&replica_args);
        wait_for(
            "the primary answers PING",
            Duration::from_secs(10),
            || async {
                query::<String>(&server_url(primary_port), &redis::cmd("PING"))
                    .await
                    .is_some()
            },
        )
        .await;
        wait_for(
            "the replica is in sync with the primary",
            Duration::from_secs(15),
            || async {
                query::<String>(
                    &server_url(replica_port),
                    redis::cmd("INFO").arg("replication"),
                )
                .await
                .is_some_and(|info| info.contains("master_link_status:up"))
            },
        )
        .await;
        let mut sentinels = Vec::new();
        let mut sentinel_ports = Vec::new();
        for n in 0..3 {
            let port = free_port();
            let conf = dir.path().join(format!("sentinel-{n}.conf"));
            std::fs::write(&conf, sentinel_conf(port, primary_port, dir.path(), n)).unwrap();
            sentinels.push(Process::spawn(&[
                conf.to_str().unwrap().to_owned(),
                "--sentinel".into(),
            ]));
            sentinel_ports.push(port);
        }
        // A failover needs a quorum of sentinels that know each other (they meet through the
        // primary's hello channel) and know the replica.
        for &port in &sentinel_ports {
            wait_for(
                "each sentinel knows the replica and the two other sentinels",
                Duration::from_secs(30),
                || async move {
                    query::<HashMap<String, String>>(
                        &sentinel_url(port),
                        redis::cmd("SENTINEL").arg("MASTER").arg(MASTER),
                    )
                    .await
                    .is_some_and(|info| {
                        let n = |key: &str| info.get(key).and_then(|v| v.parse::<u32>().ok());
                        n("num-slaves") >= Some(1) && n("num-other-sentinels") >= Some(2)
                    })
                },
            )
            .await;
        }
        Self {
            primary,
            _replica: replica,
            sentinels,
            primary_port,
            replica_port,
            sentinel_ports,
            dir,
        }
    }

    /// The primary's port as the last sentinel names it now (the test may freeze the first).
    async fn named_primary(&self) -> Option<u16> {
        let (_, port): (String, u16) = query(
            &sentinel_url(self.sentinel_ports[2]),
            redis::cmd("SENTINEL")
                .arg("GET-MASTER-ADDR-BY-NAME")
                .arg(MASTER),
        )
        .await?;
        Some(port)
    }
}

/// `master` or `slave`, as the server at `port` says (`ROLE`).
async fn role_of(port: u16) -> Option<String> {
    let role: Vec<redis::Value> = query(&server_url(port), &redis::cmd("ROLE")).await?;
    match role.first() {
        Some(redis::Value::BulkString(bytes)) => String::from_utf8(bytes.clone()).ok(),
        Some(redis::Value::SimpleString(text)) => Some(text.clone()),
        _ => None,
    }
}

/// How a flow (or one step of it) ended.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    Finished,
    /// 503 `state_store_unavailable`, or the dashboard with that reason.
    Unavailable,
    /// Anything else: always a failure of the test.
    Other(String),
}

/// Where the dashboard redirect says the flow went.
fn dashboard_outcome(step: &str, url: &str) -> Outcome {
    let query = query_of(url);
    match (
        query.get("connection").map(String::as_str),
        query.get("reason").map(String::as_str),
    ) {
        (Some("success"), _) => Outcome::Finished,
        (Some("error"), Some("state_store_unavailable")) => Outcome::Unavailable,
        _ => Outcome::Other(format!("{step}: dashboard {query:?}")),
    }
}

/// `connect`: the authorization URL, or why not.
async fn start_flow(app: &TestApp, store: &str) -> Result<String, Outcome> {
    let response = app
        .api
        .get(app.url(&format!(
            "/api/v1/oauth/connect/google?user_id=user-1&store_id={store}"
        )))
        .bearer_auth(API_KEY)
        .send()
        .await
        .map_err(|e| Outcome::Other(format!("connect: {e}")))?;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    match status {
        200 => body["authorization_url"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| Outcome::Other(format!("connect: 200 without a URL: {body}"))),
        503 if body["error"]["code"] == "state_store_unavailable" => Err(Outcome::Unavailable),
        _ => Err(Outcome::Other(format!("connect: {status} {body}"))),
    }
}

/// The first hop and the platform's consent: the callback URL, or why not.
async fn hop_and_consent(browser: &Browser, start: &str) -> Result<String, Outcome> {
    let hop = browser
        .client
        .get(start)
        .send()
        .await
        .map_err(|e| Outcome::Other(format!("first hop: {e}")))?;
    if hop.status() != 303 {
        return Err(Outcome::Other(format!("first hop: {}", hop.status())));
    }
    let next = location(&hop);
    if next.contains("/dashboard/") {
        return Err(dashboard_outcome("first hop", &next));
    }
    Ok(browser.consent(&next, true).await)
}

/// The callback: where the flow ends.
async fn callback(browser: &Browser, url: &str) -> Outcome {
    let response = match browser.client.get(url).send().await {
        Ok(response) => response,
        Err(e) => return Outcome::Other(format!("callback: {e}")),
    };
    if response.status() != 303 {
        return Outcome::Other(format!("callback: {}", response.status()));
    }
    dashboard_outcome("callback", &location(&response))
}

/// A whole flow for `store`: (when `connect` answered, whether it started, how it ended).
async fn run_flow(app: &TestApp, store: &str) -> (Instant, Outcome, Outcome) {
    let started = start_flow(app, store).await;
    let answered = Instant::now();
    let start = match started {
        Ok(start) => start,
        Err(outcome) => return (answered, outcome.clone(), outcome),
    };
    let browser = Browser::new();
    let outcome = match hop_and_consent(&browser, &start).await {
        Ok(callback_url) => callback(&browser, &callback_url).await,
        Err(outcome) => outcome,
    };
    (answered, Outcome::Finished, outcome)
}

/// A flow stopped before the kill, to be resumed during or after the failover.
enum Parked {
    /// Started (its state is in Redis); the browser has not made the first hop yet.
    AtFirstHop { browser: Browser, start: String },
    /// Consent given; the browser has not followed the callback yet.
    AtCallback { browser: Browser, url: String },
}

impl Parked {
    async fn new(app: &TestApp, store: &str, at_callback: bool) -> Self {
        let start = start_flow(app, store).await.expect("a flow starts");
        let browser = Browser::new();
        if !at_callback {
            return Self::AtFirstHop { browser, start };
        }
        let url = hop_and_consent(&browser, &start)
            .await
            .expect("first hop and consent");
        Self::AtCallback { browser, url }
    }

    async fn resume(self) -> Outcome {
        match self {
            Self::AtFirstHop { browser, start } => match hop_and_consent(&browser, &start).await {
                Ok(url) => callback(&browser, &url).await,
                Err(outcome) => outcome,
            },
            Self::AtCallback { browser, url } => callback(&browser, &url).await,
        }
    }
}

/// What the load saw, with the time of each answer.
#[derive(Default)]
struct Observed {
    /// (answered at, status, latency, body when not 200)
    reads: Vec<(Instant, u16, Duration, String)>,
    /// (answered at, outcome of `connect`)
    starts: Vec<(Instant, Outcome)>,
    /// (store, outcome of the whole flow)
    flows: Vec<(String, Outcome)>,
}

/// The connection rows, each as JSON text, by store.
async fn connection_rows(app: &TestApp) -> BTreeMap<String, String> {
    let url = &app.database.as_ref().unwrap().url;
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select store_id, row_to_json(c)::text from platform_connections c order by store_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    rows.into_iter().collect()
}

async fn token_read(app: &TestApp, store: &str) -> (u16, Duration, String) {
    let started = Instant::now();
    let response = app
        .api
        .get(app.url(&format!("/api/v1/oauth/token/google?store_id={store}")))
        .bearer_auth(API_KEY)
        .send()
        .await;
    match response {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            (status, started.elapsed(), body)
        }
        Err(e) => (0, started.elapsed(), e.to_string()),
    }
}

fn ms(d: Duration) -> String {
    format!("{} ms", d.as_millis())
}

/// The service, finding its Redis through `set`'s sentinels (their password from a file).
async fn spawn_app_on(set: &SentinelSet) -> TestApp {
    let password_file = set.dir.path().join("sentinel_password");
    std::fs::write(&password_file, format!("{SENTINEL_PASSWORD}\n")).unwrap();
    let sentinels = set
        .sentinel_ports
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect::<Vec<_>>()
        .join(",");
    spawn_app_with(TestAppOptions {
        extra_env: vec![
            ("REDIS_SENTINELS", sentinels),
            ("REDIS_SENTINEL_MASTER", MASTER.into()),
            (
                "REDIS_SENTINEL_PASSWORD_FILE",
                password_file.to_str().unwrap().to_owned(),
            ),
            ("REDIS_SENTINEL_MASTER_PASSWORD", MASTER_PASSWORD.into()),
            // Many flows from one address: the per-client limit is not what is measured here.
            ("RATE_LIMIT_PER_MINUTE", "100000".into()),
        ],
        ..Default::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sentinel_failover_under_load_loses_no_token_read_and_flows_resume_within_seconds() {
    failover_under_load(false).await;
}

/// The same with the first sentinel listed frozen (SIGSTOP) before the kill: the one the service
/// asked first and listened to. Two sentinels still make the quorum; the service must give the
/// frozen one up (one timeout) and find the primary and the announcement through the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failover_is_followed_with_the_first_sentinel_frozen() {
    failover_under_load(true).await;
}

async fn failover_under_load(freeze_first_sentinel: bool) {
    let set = SentinelSet::start().await;
    let app = spawn_app_on(&set).await;
    let prefix = app.redis_prefix.clone().unwrap();
    let redis = app.services.redis.clone().expect("redis configured");
    assert!(redis.through_sentinel());

    // Connections to read, written through to the cache on the primary the sentinels name.
    let stores: Vec<String> = (0..4).map(|i| format!("sentinel-store-{i}")).collect();
    for store in &stores {
        let result = app.run_flow("google", store, true).await;
        assert_eq!(result["connection"], "success", "{result:?}");
        let (status, _, body) = token_read(&app, store).await;
        assert_eq!(status, 200, "{body}");
    }
    let cached: bool = query(
        &server_url(set.primary_port),
        redis::cmd("EXISTS").arg(format!("{prefix}conn:google:{}", stores[0])),
    )
    .await
    .unwrap();
    assert!(cached, "the service uses the primary the sentinels name");

    // Flows in flight across the failover: parked mid-way now, resumed at stages below.
    let mut parked = Vec::new();
    for i in 0..8 {
        let store = format!("parked-{i}");
        parked.push((store.clone(), Parked::new(&app, &store, i % 2 == 1).await));
    }
    let before = connection_rows(&app).await;

    let app = Arc::new(app);
    let observed = Arc::new(Mutex::new(Observed::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for reader in 0..4 {
        let (app, observed, stop, stores) =
            (app.clone(), observed.clone(), stop.clone(), stores.clone());
        load.push(tokio::spawn(async move {
            let mut n = reader;
            while !stop.load(Ordering::Relaxed) {
                let (status, latency, body) = token_read(&app, &stores[n % stores.len()]).await;
                let body = if status == 200 { String::new() } else { body };
                observed
                    .lock()
                    .unwrap()
                    .reads
                    .push((Instant::now(), status, latency, body));
                n += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    let flow_counter = Arc::new(AtomicUsize::new(0));
    for _ in 0..2 {
        let (app, observed, stop, counter) = (
            app.clone(),
            observed.clone(),
            stop.clone(),
            flow_counter.clone(),
        );
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let store = format!("flow-{}", counter.fetch_add(1, Ordering::Relaxed));
                let (answered, started, ended) = run_flow(&app, &store).await;
                {
                    let mut observed = observed.lock().unwrap();
                    observed.starts.push((answered, started));
                    observed.flows.push((store, ended));
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }));
    }
    // The service's own view: when its breaker opened and closed again.
    let breaker_log = Arc::new(Mutex::new(Vec::<(Instant, bool)>::new()));
    {
        let (redis, stop, log) = (redis.clone(), stop.clone(), breaker_log.clone());
        load.push(tokio::spawn(async move {
            let mut last = true;
            while !stop.load(Ordering::Relaxed) {
                let now = redis.is_available();
                if now != last {
                    log.lock().unwrap().push((Instant::now(), now));
                    last = now;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut set = set;
    if freeze_first_sentinel {
        set.sentinels[0].freeze();
    }
    let killed_at = Instant::now();
    set.primary.kill();

    // Half the parked flows resume while the failover runs, one every 400 ms.
    let mut resumed = Vec::new();
    let mut after_recovery = Vec::new();
    for (i, (store, flow)) in parked.into_iter().enumerate() {
        if i < 4 {
            resumed.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(400 * i as u64)).await;
                (store, flow.resume().await)
            }));
        } else {
            after_recovery.push((store, flow));
        }
    }

    // The promotion, as the sentinels announce it.
    let mut promoted_at = None;
    let recovered_at = loop {
        let now = Instant::now();
        assert!(
            now - killed_at < FAILOVER_DEADLINE,
            "no recovery within {FAILOVER_DEADLINE:?} of the kill (promoted: {:?})",
            promoted_at.map(|t: Instant| t - killed_at)
        );
        if promoted_at.is_none() && set.named_primary().await == Some(set.replica_port) {
            promoted_at = Some(Instant::now());
        }
        if let Some(promoted) = promoted_at {
            let first_success = observed
                .lock()
                .unwrap()
                .starts
                .iter()
                .find(|(at, outcome)| *at > promoted && *outcome == Outcome::Finished)
                .map(|(at, _)| *at);
            if let Some(at) = first_success {
                if redis.is_available() {
                    break at;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // A second of load on the new primary, then the rest of the parked flows.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let mut in_flight = Vec::new();
    for task in resumed {
        in_flight.push(task.await.unwrap());
    }
    let mut resumed_after = Vec::new();
    for (store, flow) in after_recovery {
        resumed_after.push((store, flow.resume().await));
    }
    let promoted_at = promoted_at.unwrap();
    let observed = std::mem::take(&mut *observed.lock().unwrap());
    let breaker_log = breaker_log.lock().unwrap().clone();

    // Figures.
    let failed_reads: Vec<_> = observed
        .reads
        .iter()
        .filter(|(_, status, _, _)| *status != 200)
        .collect();
    let slowest_read = observed
        .reads
        .iter()
        .filter(|(at, ..)| *at > killed_at)
        .map(|(_, _, latency, _)| *latency)
        .max()
        .unwrap_or_default();
    let refused: Vec<Instant> = observed
        .starts
        .iter()
        .filter(|(at, outcome)| *at > killed_at && *outcome == Outcome::Unavailable)
        .map(|(at, _)| *at)
        .collect();
    let opened = breaker_log.iter().find(|(_, up)| !up).map(|(at, _)| *at);
    let closed = breaker_log
        .iter()
        .rev()
        .find(|(_, up)| *up)
        .map(|(at, _)| *at);
    let what = if freeze_first_sentinel {
        "sentinel failover (first sentinel frozen)"
    } else {
        "sentinel failover"
    };
    println!(
        "{what}: primary SIGKILLed; sentinels named the replica {} after the kill; \
         first new flow started {} after the promotion; service breaker open {} to {} after the kill",
        ms(promoted_at - killed_at),
        ms(recovered_at.saturating_duration_since(promoted_at)),
        opened.map_or("-".into(), |t| ms(t - killed_at)),
        closed.map_or("-".into(), |t| ms(t - killed_at)),
    );
    println!(
        "{what}: {} token reads, {} failed, slowest after the kill {}; {} flow starts, \
         {} refused with state_store_unavailable (from {} to {} after the kill); {} flows run",
        observed.reads.len(),
        failed_reads.len(),
        ms(slowest_read),
        observed.starts.len(),
        refused.len(),
        refused.first().map_or("-".into(), |t| ms(*t - killed_at)),
        refused.last().map_or("-".into(), |t| ms(*t - killed_at)),
        observed.flows.len(),
    );
    println!("{what}: flows in flight resumed during the failover: {in_flight:?}");
    println!("{what}: flows in flight resumed after the recovery: {resumed_after:?}");

    // Token reads never fail.
    assert!(
        failed_reads.is_empty(),
        "token reads failed during the failover: {failed_reads:?}"
    );
    // Flows finish or fail with state_store_unavailable, nothing else (no 500).
    let others: Vec<_> = observed
        .flows
        .iter()
        .chain(&in_flight)
        .chain(&resumed_after)
        .filter(|(_, outcome)| matches!(outcome, Outcome::Other(_)))
        .collect();
    assert!(others.is_empty(), "flows ended otherwise: {others:?}");
    // Flows parked before the kill and resumed on the new primary lose nothing.
    assert!(
        resumed_after
            .iter()
            .all(|(_, outcome)| *outcome == Outcome::Finished),
        "a flow in flight was lost by the failover: {resumed_after:?}"
    );
    // New flows work again within seconds of the promotion, and keep working.
    let recovery = recovered_at.saturating_duration_since(promoted_at);
    assert!(
        recovery < RECOVERY_BOUND,
        "new flows worked again {recovery:?} after the promotion"
    );
    let late_refusals: Vec<_> = observed
        .starts
        .iter()
        .filter(|(at, outcome)| *at > recovered_at && *outcome != Outcome::Finished)
        .collect();
    assert!(
        late_refusals.is_empty(),
        "flows refused after they worked again: {late_refusals:?}"
    );

    // PostgreSQL: the rows from before are untouched; the only new ones are the finished flows'.
    let after = connection_rows(&app).await;
    for (store, row) in &before {
        assert_eq!(after.get(store), Some(row), "{store}'s row changed");
    }
    let finished: BTreeSet<&String> = observed
        .flows
        .iter()
        .chain(&in_flight)
        .chain(&resumed_after)
        .filter(|(_, outcome)| *outcome == Outcome::Finished)
        .map(|(store, _)| store)
        .collect();
    let added: BTreeSet<&String> = after.keys().filter(|s| !before.contains_key(*s)).collect();
    assert_eq!(added, finished, "rows added other than the finished flows'");

    // And the service now writes to the promoted replica.
    let (status, _, body) = token_read(&app, &stores[1]).await;
    assert_eq!(status, 200, "{body}");
    let cached: bool = query(
        &server_url(set.replica_port),
        redis::cmd("EXISTS").arg(format!("{prefix}conn:google:{}", stores[1])),
    )
    .await
    .unwrap();
    assert!(cached, "the service writes to the promoted replica");

    Arc::try_unwrap(app)
        .unwrap_or_else(|_| panic!("every task is done"))
        .stop()
        .await;
}

/// A planned failover (`SENTINEL FAILOVER`, as for maintenance) keeps the old primary up and makes
/// it a replica: the service must not stay on it (its writes would answer `READONLY`), and token
/// reads never notice.
#[tokio::test]
async fn a_planned_failover_that_keeps_the_old_primary_up_is_followed_too() {
    let set = SentinelSet::start().await;
    let app = spawn_app_on(&set).await;
    let prefix = app.redis_prefix.clone().unwrap();
    let store = "planned-store";
    let result = app.run_flow("google", store, true).await;
    assert_eq!(result["connection"], "success", "{result:?}");
    let key = format!("{prefix}conn:google:{store}");

    let switched: String = query(
        &sentinel_url(set.sentinel_ports[1]),
        redis::cmd("SENTINEL").arg("FAILOVER").arg(MASTER),
    )
    .await
    .expect("a sentinel accepts the failover");
    assert_eq!(switched, "OK");
    let asked_at = Instant::now();
    // Until the old primary is demoted and a flow has worked after that: reads never fail, flows
    // finish or are refused with state_store_unavailable.
    let redis = app.services.redis.clone().unwrap();
    let mut outcomes = Vec::new();
    let (mut promoted_at, mut demoted_at, mut tripped_at) = (None, None, None);
    let mut n = 0;
    let worked_at = loop {
        assert!(
            asked_at.elapsed() < FAILOVER_DEADLINE,
            "the service did not follow the planned failover: {outcomes:?}"
        );
        let (status, _, body) = token_read(&app, store).await;
        assert_eq!(
            status, 200,
            "a token read failed during the failover: {body}"
        );
        if promoted_at.is_none() && role_of(set.replica_port).await.as_deref() == Some("master") {
            promoted_at = Some(Instant::now());
        }
        if demoted_at.is_none() && role_of(set.primary_port).await.as_deref() == Some("slave") {
            demoted_at = Some(Instant::now());
        }
        if tripped_at.is_none() && !redis.is_available() {
            tripped_at = Some(Instant::now());
        }
        n += 1;
        let (_, _, outcome) = run_flow(&app, &format!("planned-flow-{n}")).await;
        assert!(
            !matches!(outcome, Outcome::Other(_)),
            "a flow ended otherwise: {outcome:?}"
        );
        outcomes.push(outcome.clone());
        if demoted_at.is_some() && outcome == Outcome::Finished {
            break Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let after = |t: Option<Instant>| t.map_or("-".into(), |t| ms(t - asked_at));
    println!(
        "planned sentinel failover, after SENTINEL FAILOVER: replica promoted {}, service breaker \
         seen open {} (often too brief to see), old primary demoted {}, a new flow finished {}; \
         {} of {} flows refused on the way",
        after(promoted_at),
        after(tripped_at),
        after(demoted_at),
        ms(worked_at - asked_at),
        outcomes
            .iter()
            .filter(|o| **o == Outcome::Unavailable)
            .count(),
        outcomes.len(),
    );
    // The service writes to the new primary: an entry deleted there comes back with the next read.
    let new_primary = server_url(set.replica_port);
    let _: Option<i64> = query(&new_primary, redis::cmd("DEL").arg(&key)).await;
    let (status, _, body) = token_read(&app, store).await;
    assert_eq!(status, 200, "{body}");
    let cached: bool = query(&new_primary, redis::cmd("EXISTS").arg(&key))
        .await
        .unwrap();
    assert!(cached, "the service writes to the promoted replica");
    app.stop().await;
}

/// A server that is no longer the primary answers writes with `READONLY` (a demoted primary whose
/// clients Sentinel has not cut yet): the handle gives that connection up, as after a failure,
/// so the probe finds the primary again.
#[tokio::test]
async fn a_write_answered_readonly_counts_as_a_lost_primary() {
    let primary = crate::chaos::RedisServer::start().await;
    let replica = crate::chaos::RedisServer::start().await;
    let mut conn = replica.connection().await;
    let _: () = redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg(primary.port)
        .query_async(&mut conn)
        .await
        .unwrap();
    let handle =
        growth_engine::redis_conn::RedisHandle::new(&replica.url().into(), "readonly-test:")
            .unwrap();
    let written = handle
        .call(|mut conn| async move {
            redis::cmd("SET")
                .arg("readonly-test:key")
                .arg("value")
                .query_async::<()>(&mut conn)
                .await
        })
        .await;
    match written {
        Err(growth_engine::redis_conn::RedisUnavailable::Failed(error)) => {
            assert_eq!(error.code(), Some("READONLY"), "{error}");
        }
        other => panic!("a write to a replica: {other:?}"),
    }
    assert!(
        !handle.is_available(),
        "a replica is not a primary: the breaker opened"
    );
}
