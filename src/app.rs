//! Builds the application from settings: storage, keys, state store, cache, platform client, the
//! flow, lifecycle and connect services (each constructed once, here), the router and the
//! background tasks. Tests build it the same way on port 0.

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::access::ApiKeyRegistry;
use crate::audit::AuditLog;
use crate::clock::{SharedClock, SystemClock};
use crate::config::{DatabaseSettings, KeySettings, Settings};
use crate::connect::{ConnectWorkflow, Replacements};
use crate::http::dashboard::DashboardAuth;
use crate::http::extract::ApiKeys;
use crate::http::perimeter::Perimeter;
use crate::http::{AppParts, AppState, HealthProbe, WebSettings};
use crate::inbox::{Inbox, InboxWorker, KeyCache, Parts as InboxParts};
use crate::lifecycle::liveness::{self, Liveness, LivenessParts};
use crate::lifecycle::refresher::Refresher;
use crate::lifecycle::supervise::{every, supervise};
use crate::lifecycle::webhooks::WebhookDeliverer;
use crate::lifecycle::{
    Assets, Connections, Core, CoreParts, Grants, ListingCache, Refresh, RefreshParts, TokenCache,
    Tokens,
};
use crate::links::DashboardLinks;
use crate::metrics::Metrics;
use crate::oauth::Flow;
use crate::platforms::{Catalog, PlatformClient};
use crate::publish::{MediaFetcher, PostScheduler, Posts, PostsParts};
use crate::redis_conn::RedisHandle;
#[cfg(feature = "sandbox")]
use crate::sandbox::Simulator;
use crate::state::FlowStates;
use crate::store::{Bounded, PgStore, SqliteStore, Store, StoreError};
use crate::vault::{Key, Keyring};

/// Why the application could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// The development key file could not be read or written.
    #[error("development key file {path}: {problem}")]
    KeyFile {
        /// The file.
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// Storage could not be opened.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// Redis settings were unusable.
    #[error("redis: {0}")]
    Redis(#[from] crate::redis_conn::RedisUnavailable),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    HttpClient(#[from] reqwest::Error),
    /// The proxy's TLS settings could not be built.
    #[error("proxy TLS: {0}")]
    ProxyTls(#[from] rustls::Error),
    /// The listener could not bind.
    #[error("cannot listen: {0}")]
    Listen(#[from] std::io::Error),
}

/// Knobs tests turn.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// The clock.
    pub clock: SharedClock,
    /// Run the background refresher.
    pub refresher: bool,
    /// How often the refresher looks for due connections (default: the setting).
    pub refresher_interval: Option<Duration>,
    /// How often the webhook deliverer looks for due events.
    pub webhook_interval: Duration,
    /// How often the platform-event worker looks for notices stored by other replicas (its own
    /// replica's wake it at once).
    pub inbox_interval: Duration,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            clock: Arc::new(SystemClock),
            refresher: true,
            refresher_interval: None,
            webhook_interval: Duration::from_secs(2),
            inbox_interval: Duration::from_millis(250),
        }
    }
}

/// The services behind the edge, also used by the CLI's maintenance commands.
#[derive(Debug, Clone)]
pub struct Services {
    /// The settings they were built from.
    pub settings: Arc<Settings>,
    /// Storage.
    pub store: Arc<dyn Store>,
    /// Keys.
    pub keyring: Arc<Keyring>,
    /// Redis, when configured.
    pub redis: Option<RedisHandle>,
    /// The core the lifecycle services share (the catalog, the clock, the vault binding).
    pub core: Core,
    /// Refreshes under the lease; drained on shutdown.
    pub refresh: Refresh,
    /// Hands out valid tokens.
    pub tokens: Tokens,
    /// A store's connections and their health, as the edge shows them.
    pub connections: Connections,
    /// Records, disconnects and re-seals connections.
    pub grants: Grants,
    /// The merchant's assets.
    pub assets: Assets,
    /// The liveness probe and health sweep (tests run a pass with `run_once`).
    pub liveness: Liveness,
    /// The flow service.
    pub flow: Flow,
    /// What becomes of a finished flow's grant (park or record).
    pub connect: ConnectWorkflow,
    /// The merchant's answers to parked grants, and their reaper.
    pub replacements: Replacements,
    /// The built-in sandbox, when enabled (builds with the `sandbox` feature only).
    #[cfg(feature = "sandbox")]
    pub sandbox: Option<Simulator>,
    /// Metrics.
    pub metrics: Metrics,
    /// The webhook deliverer, when `WEBHOOK_URL` is set.
    pub webhooks: Option<WebhookDeliverer>,
    /// Dashboard links and sessions (the CLI's `dashboard-link` and tests mint links with it).
    pub dashboard: DashboardLinks,
    /// The audit trail.
    pub audit: AuditLog,
    /// The platforms' notices: received, stored, processed.
    pub inbox: Inbox,
    /// Posts: created, approved, published by the scheduler.
    pub posts: Posts,
    /// The clock every service reads.
    pub clock: SharedClock,
}

/// The publishing service, on the lifecycle's core and assets.
fn posts_for(
    settings: &Settings,
    core: &Core,
    assets: &Assets,
    client: &PlatformClient,
    audit: &AuditLog,
    metrics: &Metrics,
) -> Result<Posts, StartupError> {
    Ok(Posts::new(PostsParts {
        core: core.clone(),
        assets: assets.clone(),
        client: client.clone(),
        media: MediaFetcher::new(&settings.posts)?,
        audit: audit.clone(),
        metrics: metrics.clone(),
        settings: settings.posts.clone(),
        api_url: settings.api_url.clone(),
        wake: tokio::sync::Notify::new(),
    }))
}

/// Opens the store the settings name.
pub(crate) async fn connect_store(
    database: &DatabaseSettings,
    statement_timeout: Duration,
) -> Result<Arc<dyn Store>, StoreError> {
    use secrecy::ExposeSecret;
    Ok(match database {
        // Behind a network: a call whose answer never comes is given up (see `store/bounded.rs`).
        DatabaseSettings::Postgres(url) => Arc::new(Bounded::new(
            PgStore::connect_with(url.expose_secret(), statement_timeout).await?,
            PgStore::call_limit(statement_timeout),
        )),
        DatabaseSettings::Sqlite(url) => Arc::new(SqliteStore::connect(url).await?),
    })
}

/// The catalog the settings describe: the built-in platforms with their settings, the sandbox
/// standing in for unconfigured ones when it is on, and the generic providers.
pub fn catalog(settings: &Settings) -> Catalog {
    Catalog::resolve(
        &settings.platforms,
        &settings.generic_providers,
        settings.sandbox.then_some(&settings.api_url),
    )
}

/// Reads the keyring, creating the development key file on first start.
pub(crate) fn load_keyring(keys: &KeySettings) -> Result<Keyring, StartupError> {
    match keys {
        KeySettings::Configured { current, old } => {
            Ok(Keyring::new(current.as_ref().clone(), old.clone()))
        }
        KeySettings::DevelopmentFile(path) => {
            let key_error = |problem: String| StartupError::KeyFile {
                path: path.display().to_string(),
                problem,
            };
            if path.exists() {
                let text = std::fs::read_to_string(path).map_err(|e| key_error(e.to_string()))?;
                let key = Key::parse(&text).map_err(|e| key_error(e.to_string()))?;
                tracing::warn!(path = %path.display(), key_id = key.id(), "TOKEN_ENCRYPTION_KEY is not set: using the development key file. Never use this in production.");
                return Ok(Keyring::new(key, vec![]));
            }
            let key = Key::generate();
            write_private(path, &key.to_base64()).map_err(|e| key_error(e.to_string()))?;
            tracing::warn!(path = %path.display(), key_id = key.id(), "TOKEN_ENCRYPTION_KEY is not set: CREATED a development key file. Tokens sealed with it are lost if the file is lost. Never use this in production.");
            Ok(Keyring::new(key, vec![]))
        }
    }
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())
}

/// The lifecycle's services, each built once on one core.
struct LifecycleServices {
    refresh: Refresh,
    tokens: Tokens,
    connections: Connections,
    grants: Grants,
    assets: Assets,
    liveness: Liveness,
}

impl LifecycleServices {
    /// Builds them on `core`, calling platforms with `client`, each refresh counted in `metrics`
    /// and recorded in `audit`, recovery records kept in `redis` too when there is one.
    fn build(
        core: &Core,
        settings: &Settings,
        client: &PlatformClient,
        metrics: &Metrics,
        audit: &AuditLog,
        redis: Option<RedisHandle>,
    ) -> Self {
        let refresh = Refresh::new(
            core.clone(),
            RefreshParts {
                client: client.clone(),
                window: settings.refresh_window,
                recovery_in: redis,
                metrics: metrics.clone(),
                audit: Some(audit.clone()),
            },
        );
        let health = Arc::new(settings.health.clone());
        let tokens = Tokens::new(refresh.clone());
        let liveness = Liveness::new(LivenessParts {
            tokens: tokens.clone(),
            client: client.clone(),
            metrics: metrics.clone(),
            settings: health.clone(),
            concurrency: settings.refresher_concurrency,
        });
        Self {
            connections: Connections::new(core.clone(), health.clone()),
            grants: Grants::new(refresh.clone(), client.clone(), health),
            assets: Assets::new(tokens.clone(), client.clone()),
            refresh,
            tokens,
            liveness,
        }
    }
}

/// The built-in sandbox, when the settings turn it on: a simulator for each sandboxed platform.
#[cfg(feature = "sandbox")]
fn sandbox_for(settings: &Settings, catalog: &Catalog) -> Option<Simulator> {
    settings.sandbox.then(|| {
        let base = settings.api_url.as_str().trim_end_matches('/').to_owned();
        let simulator = Simulator::new(
            catalog
                .all()
                .filter(|spec| spec.sandboxed)
                .map(|spec| Simulator::sandbox_client(spec.id.as_str(), &base))
                .collect(),
        );
        simulator.require_token_proofs(settings.sandbox_require_token_proofs);
        // The sandbox's platforms send their notices (an app removed, a data deletion request)
        // to our own receivers, as the real ones do once their consoles name our URLs.
        simulator.set_event_receiver(&format!("{base}/api/v1/platform-events"));
        simulator
    })
}

/// The webhook deliverer, when `WEBHOOK_URL` and its secret are set.
fn webhooks_for(
    settings: &Settings,
    store: &Arc<dyn Store>,
    clock: &SharedClock,
    metrics: &Metrics,
) -> Result<Option<WebhookDeliverer>, StartupError> {
    let (Some(url), Some(secret)) = (&settings.webhook_url, &settings.webhook_secret) else {
        return Ok(None);
    };
    Ok(Some(
        WebhookDeliverer::new(store.clone(), url.clone(), secret.clone(), clock.clone())?
            .with_max_attempts(settings.webhook_max_attempts)
            .with_retention(settings.webhook_retention)
            .with_metrics(metrics.clone()),
    ))
}

impl Services {
    /// Builds every service from settings. Connects lazily: a database or Redis that is down makes
    /// the service unhealthy, not unable to start.
    pub async fn build(settings: Settings, clock: SharedClock) -> Result<Self, StartupError> {
        let settings = Arc::new(settings);
        let keyring = Arc::new(load_keyring(&settings.keys)?);
        let store = connect_store(&settings.database, settings.statement_timeout).await?;
        let metrics = Metrics::new();
        let redis = match (&settings.redis_url, &settings.redis_sentinel) {
            (Some(url), _) => Some(RedisHandle::new(url, &settings.redis_key_prefix)?),
            // The token cache's entries: a primary promoted by a failover may lack the last
            // writes, and a cached token must never go back to an older version.
            (None, Some(sentinel)) => Some(
                RedisHandle::sentinel(sentinel, &settings.redis_key_prefix)
                    .forget_on_failover("conn:*"),
            ),
            (None, None) => None,
        }
        .map(|redis| {
            redis
                .with_timeout(settings.redis_timeout)
                .with_metrics(metrics.clone())
        });
        let states = match &redis {
            Some(redis) => FlowStates::redis(redis.clone(), keyring.clone(), clock.clone()),
            None => FlowStates::in_process(keyring.clone(), clock.clone()),
        };
        let cache = TokenCache::new(redis.clone(), Duration::from_secs(60));
        let client = PlatformClient::new(settings.platform_timeout, metrics.clone())?
            .with_max_response_bytes(settings.platform_max_response_bytes);
        let catalog = Arc::new(catalog(&settings));
        let audit = AuditLog::start(store.clone(), clock.clone(), metrics.clone());
        let core = Core::from(CoreParts {
            store: store.clone(),
            keyring: keyring.clone(),
            cache,
            listings: ListingCache::for_deployment(redis.clone(), store.backend()),
            catalog: catalog.clone(),
            clock: clock.clone(),
        });
        let LifecycleServices {
            refresh,
            tokens,
            connections,
            grants,
            assets,
            liveness,
        } = LifecycleServices::build(&core, &settings, &client, &metrics, &audit, redis.clone());
        let dashboard = DashboardLinks::from_settings(&settings, &keyring, clock.clone());
        let flow = Flow::new(
            catalog.clone(),
            states,
            client.clone(),
            clock.clone(),
            settings.api_url.clone(),
            metrics.clone(),
        );
        let connect = ConnectWorkflow::new(
            flow.clone(),
            connections.clone(),
            grants.clone(),
            assets.clone(),
            audit.clone(),
        );
        let replacements = Replacements::new(flow.clone(), connect.clone(), audit.clone());
        #[cfg(feature = "sandbox")]
        let sandbox = sandbox_for(&settings, &catalog);
        let webhooks = webhooks_for(&settings, &store, &clock, &metrics)?;
        let inbox = Inbox::new(InboxParts {
            grants: grants.clone(),
            keys: KeyCache::new(settings.platform_timeout)?,
            metrics: metrics.clone(),
            audit: audit.clone(),
            api_url: settings.api_url.clone(),
            wake: tokio::sync::Notify::new(),
        });
        let posts = posts_for(&settings, &core, &assets, &client, &audit, &metrics)?;
        Ok(Self {
            inbox,
            posts,
            settings,
            store,
            keyring,
            redis,
            core,
            refresh,
            tokens,
            connections,
            grants,
            assets,
            liveness,
            flow,
            connect,
            replacements,
            #[cfg(feature = "sandbox")]
            sandbox,
            metrics,
            webhooks,
            dashboard,
            audit,
            clock,
        })
    }

    /// Applies migrations; when the database is down, keeps trying in the background.
    pub(crate) async fn migrate_or_retry(&self) {
        if let Err(error) = self.store.migrate().await {
            tracing::error!(error = %error, "migrations could not run; retrying in the background");
            let store = self.store.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    match store.migrate().await {
                        Ok(()) => {
                            tracing::info!("migrations applied");
                            return;
                        }
                        Err(error) => tracing::warn!(error = %error, "migrations still failing"),
                    }
                }
            });
        }
    }
}

/// What `/sandbox/...` answers in a build without the `sandbox` feature.
#[cfg(not(feature = "sandbox"))]
async fn no_sandbox() -> crate::http::error::ApiError {
    crate::http::error::ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "not_found",
        "There is no such route: this build has no sandbox.",
    )
}

/// A built application, bound to its port.
pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    services: Services,
    key_registry: ApiKeyRegistry,
    background: Vec<JoinHandle<()>>,
    options: AppOptions,
}

impl Application {
    /// Builds the application and binds `HOST:PORT`.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        let listener = TcpListener::bind((settings.host.as_str(), settings.port)).await?;
        Self::build_with(settings, listener, AppOptions::default()).await
    }

    /// Builds the application on a given listener with given options.
    pub async fn build_with(
        mut settings: Settings,
        listener: TcpListener,
        options: AppOptions,
    ) -> Result<Self, StartupError> {
        if settings.api_keys.is_empty() && !settings.is_production() {
            tracing::warn!("API_KEYS is not set: the API accepts the development key `dev-api-key`. Never use this in production.");
            settings
                .api_keys
                .push(crate::config::DEV_API_KEY.to_owned().into());
        }
        let services = Services::build(settings, options.clock.clone()).await?;
        if services.settings.auto_migrate {
            services.migrate_or_retry().await;
        }
        let secure_cookies =
            services.settings.is_production() || services.settings.api_url.scheme() == "https";
        let key_registry = ApiKeyRegistry::new(
            &services.settings.api_keys,
            services.store.clone(),
            services.clock.clone(),
        )
        .with_metrics(services.metrics.clone());
        let state = AppState::from(AppParts {
            flow: services.flow.clone(),
            connections: services.connections.clone(),
            tokens: services.tokens.clone(),
            grants: services.grants.clone(),
            assets: services.assets.clone(),
            connect: services.connect.clone(),
            replacements: services.replacements.clone(),
            api_keys: ApiKeys::with_registry(key_registry.clone()),
            health: HealthProbe {
                store: services.store.clone(),
                redis: services.redis.clone(),
                environment: services.settings.environment.as_str(),
                checks: Default::default(),
            },
            metrics: services.metrics.clone(),
            web: WebSettings {
                api_url: services.settings.api_url.clone(),
                dashboard_url: services.settings.dashboard_url.clone(),
                secure_cookies,
            },
            dashboard: DashboardAuth::new(services.dashboard.clone(), secure_cookies),
            perimeter: Perimeter::from_settings(&services.settings),
            audit: services.audit.clone(),
            inbox: services.inbox.clone(),
            posts: services.posts.clone(),
            proxy: crate::proxy::Proxy::new(
                services.tokens.clone(),
                services.settings.proxy.clone(),
                services.settings.platform_timeout,
                services.metrics.clone(),
                crate::proxy::shares::FairShares::with_redis(
                    services.settings.proxy.fair_share.clone(),
                    services.redis.clone(),
                    services.metrics.clone(),
                ),
            )?,
        });
        #[cfg(feature = "sandbox")]
        let extra = match &services.sandbox {
            Some(sim) => crate::sandbox::router(sim.clone()),
            None => axum::Router::new(),
        };
        // A build without the sandbox has no simulator routes: /sandbox/... answers a JSON 404.
        #[cfg(not(feature = "sandbox"))]
        let extra = axum::Router::new().route("/sandbox/{*path}", axum::routing::any(no_sandbox));
        let router = crate::http::router(state, extra);
        Ok(Self {
            listener,
            router,
            services,
            key_registry,
            background: Vec::new(),
            options,
        })
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The services (tests reach the sandbox and the store through it).
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Starts the background tasks, each supervised (a panic is logged, counted and the task
    /// restarted), each ending when `stop` turns true.
    fn start_background(&mut self, stop: &tokio::sync::watch::Receiver<bool>) {
        let stop_rx = stop.clone();
        let stopped = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let metrics = self.services.metrics.clone();
        if self.options.refresher && self.services.settings.refresher_enabled {
            let refresher = Refresher::new(
                self.services.refresh.clone(),
                self.services.settings.refresher_concurrency,
                self.options
                    .refresher_interval
                    .unwrap_or(self.services.settings.refresher_interval),
            );
            let rx = stop_rx.clone();
            self.background
                .push(supervise("refresher", metrics.clone(), move || {
                    refresher.clone().run(stopped(rx.clone()))
                }));
        }
        // The liveness probe and health sweep run where the refresher runs.
        if self.options.refresher && self.services.settings.refresher_enabled {
            let probe = self.services.liveness.clone();
            let tick = self
                .services
                .settings
                .health
                .check_interval
                .min(liveness::MAX_TICK);
            let rx = stop_rx.clone();
            self.background
                .push(supervise("liveness", metrics.clone(), move || {
                    probe.clone().run(tick, stopped(rx.clone()))
                }));
        }
        if let Some(webhooks) = self.services.webhooks.clone() {
            let rx = stop_rx.clone();
            let interval = self.options.webhook_interval;
            self.background
                .push(supervise("webhooks", metrics.clone(), move || {
                    let webhooks = webhooks.clone();
                    let stop = stopped(rx.clone());
                    async move { webhooks.run(interval, stop).await }
                }));
        }
        // The audit trail's retention: an hourly prune in bounded batches.
        {
            let rx = stop_rx.clone();
            let retention = chrono::Duration::from_std(self.services.settings.audit_retention)
                .unwrap_or(chrono::Duration::days(90));
            let audit = self.services.audit.clone();
            self.background
                .push(supervise("audit-pruner", metrics.clone(), move || {
                    let audit = audit.clone();
                    let stop = stopped(rx.clone());
                    async move {
                        audit
                            .run_pruner(retention, Duration::from_secs(3600), stop)
                            .await;
                    }
                }));
        }
        // Parked grants nobody answered are revoked once their offer ends: every replica reaps,
        // each grant is taken by one.
        {
            let rx = stop_rx.clone();
            let replacements = self.services.replacements.clone();
            self.background.push(supervise(
                "parked-grant-reaper",
                metrics.clone(),
                move || reap_parked_grants(replacements.clone(), stopped(rx.clone())),
            ));
        }
        // A revoked API key stops working within a second on every replica.
        {
            let rx = stop_rx.clone();
            let registry = self.key_registry.clone();
            self.background.push(supervise(
                "api-key-revocations",
                metrics.clone(),
                move || watch_key_revocations(registry.clone(), stopped(rx.clone())),
            ));
        }
        self.start_workers(&stop_rx, &metrics);
        let refresh = self.services.refresh.clone();
        let rx = stop_rx.clone();
        self.background
            .push(supervise("recovery", metrics, move || {
                write_recoveries(refresh.clone(), stopped(rx.clone()))
            }));
    }

    /// The workers every replica runs, each claiming its own share: the platforms' notices and
    /// the posts due.
    fn start_workers(&mut self, stop_rx: &tokio::sync::watch::Receiver<bool>, metrics: &Metrics) {
        let stopped = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let worker = InboxWorker::new(self.services.inbox.clone(), self.options.inbox_interval);
        self.background
            .push(supervise("platform-events", metrics.clone(), {
                let rx = stop_rx.clone();
                move || worker.clone().run(stopped(rx.clone()))
            }));
        if self.services.settings.posts.scheduler_enabled {
            let scheduler = PostScheduler::new(self.services.posts.clone());
            self.background
                .push(supervise("post-scheduler", metrics.clone(), {
                    let rx = stop_rx.clone();
                    move || scheduler.clone().run(stopped(rx.clone()))
                }));
        }
    }

    /// Serves until `shutdown` resolves, with the background tasks running alongside, each
    /// supervised (a panic is logged, counted and the task restarted).
    ///
    /// `SHUTDOWN_GRACE_SECONDS` bounds the whole shutdown, counted from the signal. At once: no new
    /// refresh lease is taken, the server stops accepting and lets its requests finish, and the
    /// refreshes in flight are awaited (so that no renewed token set is dropped), side by side.
    /// The server's connections still open [`SHUTDOWN_RESERVE`] before the end (a streaming
    /// answer, a slow reader) are then cut, and the refreshes given up; what is left of the grace
    /// goes to the background tasks' last rounds and the audit trail's flush, which the HTTP
    /// connections cannot hold up.
    pub async fn run_until(
        mut self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        self.start_background(&stop_rx);
        let grace = self.services.settings.shutdown_grace;
        // The moment shutdown begins, refreshes stop taking leases and the grace starts.
        let draining = self.services.refresh.clone();
        let (began_tx, began_rx) = tokio::sync::oneshot::channel();
        let shutdown = async move {
            shutdown.await;
            draining.stop_taking_leases();
            let _ = began_tx.send(tokio::time::Instant::now());
        };
        let timeouts = crate::http::ServerTimeouts {
            header_read: self.services.settings.header_read_timeout,
        };
        let (cut_tx, cut_rx) = tokio::sync::oneshot::channel::<()>();
        let mut server = tokio::spawn(crate::http::serve_until(
            self.listener,
            self.router,
            timeouts,
            shutdown,
            async move {
                let _ = cut_rx.await;
            },
        ));
        // Either the signal comes, or the server ended on its own (it only does on shutdown).
        let began = began_rx
            .await
            .unwrap_or_else(|_| tokio::time::Instant::now());
        let end = began + grace;
        let reserve = SHUTDOWN_RESERVE.min(grace / 3);
        let http_end = end - reserve;
        let http = async {
            let served = tokio::select! {
                served = &mut server => served,
                () = tokio::time::sleep_until(http_end) => {
                    let _ = cut_tx.send(());
                    server.await
                }
            };
            served.unwrap_or_else(|error| Err(std::io::Error::other(error)))
        };
        // Refreshes in flight finish and are stored (SHUTDOWN_GRACE_SECONDS is at least the
        // platform timeout plus 5 s), whatever the HTTP connections do.
        let refreshes = self
            .services
            .refresh
            .drain(http_end.saturating_duration_since(tokio::time::Instant::now()));
        let (result, _) = tokio::join!(http, refreshes);
        let _ = stop_tx.send(true);
        let tasks = futures::future::join_all(self.background);
        let tasks_end = end - reserve / 2;
        if tokio::time::timeout_at(tasks_end, tasks).await.is_err() {
            tracing::warn!("background tasks still running at shutdown: left behind");
        }
        // Then the audit trail's queue (the requests' and the background tasks' last events), so
        // that a graceful stop loses none of its events.
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        self.services.audit.flush(left).await;
        result
    }
}

/// The part of `SHUTDOWN_GRACE_SECONDS` kept for the last steps of a shutdown (the background
/// tasks' last rounds and the audit flush), after the HTTP connections and the refreshes in flight
/// (at most a third of the grace).
pub const SHUTDOWN_RESERVE: Duration = Duration::from_secs(2);

/// Writes pending recovery records every second until `stop`.
async fn write_recoveries(refresh: Refresh, stop: impl Future<Output = ()>) {
    let refresh = &refresh;
    every(Duration::from_secs(1), stop, move || async move {
        refresh.write_pending_recoveries().await;
    })
    .await;
}

/// Empties the API key cache whenever a key was revoked, checking every second until `stop`.
async fn watch_key_revocations(registry: ApiKeyRegistry, stop: impl Future<Output = ()>) {
    let registry = &registry;
    every(crate::access::REVOCATION_CHECK, stop, move || async move {
        if let Err(error) = registry.check_revocations().await {
            tracing::debug!(error = %error, "could not check for revoked API keys");
        }
    })
    .await;
}

/// Revokes unanswered parked grants every minute until `stop`.
async fn reap_parked_grants(replacements: Replacements, stop: impl Future<Output = ()>) {
    let replacements = &replacements;
    every(Duration::from_secs(60), stop, move || async move {
        match replacements.reap_unanswered().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(grants = n, "revoked parked grants nobody answered"),
            Err(error) => tracing::warn!(error = %error, "could not reap parked grants"),
        }
    })
    .await;
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
