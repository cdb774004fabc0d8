//! Prometheus metrics: flows, refreshes, token-endpoint latency, connections by status, the Redis
//! circuit breaker, webhook dead letters, lost audit events, API key lookups, the proxy's calls and the platforms'
//! rate-limit headers, in one registry per application (so that tests running several applications
//! in one process do not mix their counts). Served as text by `GET /metrics`.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// `platform`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PlatformLabel {
    /// Platform slug.
    pub platform: String,
}

/// `platform`, `reason`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct FailureLabels {
    /// Platform slug.
    pub platform: String,
    /// Stable reason code.
    pub reason: String,
}

/// `platform`, `outcome`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct OutcomeLabels {
    /// Platform slug.
    pub platform: String,
    /// `success`, `transient_failure`, `expired`, `revoked`, `error`, `unknown_key` (sealed with a
    /// key this replica lacks), `recovery_record` (renewed but kept for a later write).
    pub outcome: String,
}

/// `tool` and `outcome` (`success` or the error's code) of an MCP tool call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ToolCallLabels {
    /// The tool's name (one of the fixed set, or `unknown`).
    pub tool: String,
    /// `success`, or the stable error code the agent got.
    pub outcome: String,
}

/// `tool` of an MCP tool call.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ToolLabel {
    /// The tool's name.
    pub tool: String,
}

/// The MCP endpoint's tool calls: counts by outcome, and latencies.
struct ToolMetrics {
    calls: Family<ToolCallLabels, Counter>,
    seconds: Family<ToolLabel, Histogram, fn() -> Histogram>,
}

impl ToolMetrics {
    fn register(registry: &mut Registry) -> Self {
        let calls = registered(
            registry,
            "mcp_tool_calls",
            "MCP tool calls, by tool and outcome (success or the error code)",
        );
        let seconds = Family::<ToolLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        registry.register(
            "mcp_tool_call_seconds",
            "Time to answer an MCP tool call, by tool",
            seconds.clone(),
        );
        Self { calls, seconds }
    }
}

/// `platform` and `outcome` of a post.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PostLabels {
    /// Platform slug.
    pub platform: String,
    /// `scheduled`, `pending_approval`, `approved`, `rejected`, `cancelled`, `published`,
    /// `failed`, `unknown`.
    pub outcome: String,
}

/// `platform`, `kind`, `outcome` of a platform event.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PlatformEventLabels {
    /// Platform slug.
    pub platform: String,
    /// `removal`, `data_deletion`, `permissions`, `content`, `other` (a bounded set: the
    /// platform's own event names are not a label).
    pub kind: String,
    /// `stored`, `duplicate`, `rejected_signature`, `rejected_stale`, `rejected_malformed`,
    /// `processed`, `unmatched`, `retried`.
    pub outcome: String,
}

/// `task`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct TaskLabel {
    /// The background task's name.
    pub task: String,
}

/// `platform`, `grant_type`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CallLabels {
    /// Platform slug.
    pub platform: String,
    /// `authorization_code`, `refresh_token`, `fb_exchange_token`.
    pub grant_type: String,
}

/// `platform`, `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StatusLabels {
    /// Platform slug.
    pub platform: String,
    /// Connection status.
    pub status: String,
}

/// `state`: the state a circuit breaker moved to.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct CircuitLabel {
    /// `open` (Redis unreachable) or `closed` (Redis answers again).
    pub state: String,
}

/// `platform`, `status_class` (`2xx`, ..., or `error` when no answer came).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct ProxyLabels {
    /// Platform slug.
    pub platform: String,
    /// Status class.
    pub status_class: String,
}

/// The proxy's metrics: calls, latency, retries, cut answers and the platforms' rate-limit
/// headers.
struct ProxyMetrics {
    requests: Family<ProxyLabels, Counter>,
    seconds: Family<PlatformLabel, Histogram, fn() -> Histogram>,
    retries: Family<FailureLabels, Counter>,
    cut: Family<PlatformLabel, Counter>,
    remaining: Family<PlatformLabel, Gauge>,
    usage: Family<PlatformLabel, Gauge>,
    throttled: Family<FailureLabels, Counter>,
    malformed_usage: Family<PlatformLabel, Counter>,
}

impl ProxyMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            seconds: Family::new_with_constructor(latency_histogram),
            retries: Family::default(),
            cut: Family::default(),
            remaining: Family::default(),
            usage: Family::default(),
            throttled: Family::default(),
            malformed_usage: Family::default(),
        };
        registry.register(
            "proxy_fair_share_throttled",
            "Proxied calls we refused with quota_exceeded, by platform and reason (fair_share, store_ceiling)",
            metrics.throttled.clone(),
        );
        registry.register(
            "proxy_usage_headers_malformed",
            "Platform answers whose usage headers could not be read (ignored)",
            metrics.malformed_usage.clone(),
        );
        registry.register(
            "proxy_requests",
            "Proxied platform API calls by status class",
            metrics.requests.clone(),
        );
        registry.register(
            "proxy_request_seconds",
            "Time from a proxied call to the platform's status line",
            metrics.seconds.clone(),
        );
        registry.register(
            "proxy_retries",
            "Proxied calls sent a second time, by reason",
            metrics.retries.clone(),
        );
        registry.register(
            "proxy_responses_cut",
            "Platform answers cut at PROXY_MAX_RESPONSE_BYTES",
            metrics.cut.clone(),
        );
        registry.register(
            "proxy_rate_limit_remaining",
            "Calls left in the platform's window, from its last answer's rate-limit headers",
            metrics.remaining.clone(),
        );
        registry.register(
            "proxy_rate_limit_usage_percent",
            "The highest usage percentage the platform's last answer reported in its usage headers",
            metrics.usage.clone(),
        );
        metrics
    }
}

/// Who called and what was recorded: the API keys' database lookups (and those refused to a
/// client over its allowance), and the audit events lost.
struct AccessMetrics {
    key_lookups: Counter,
    key_lookups_throttled: Counter,
    audit_dropped: Counter,
    audit_write_failures: Counter,
}

impl AccessMetrics {
    fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            key_lookups: Counter::default(),
            key_lookups_throttled: Counter::default(),
            audit_dropped: Counter::default(),
            audit_write_failures: Counter::default(),
        };
        registry.register(
            "api_key_lookups",
            "API keys looked up in the database (neither in API_KEYS nor cached)",
            metrics.key_lookups.clone(),
        );
        registry.register(
            "api_key_lookups_throttled",
            "API key lookups refused because the client had used up its allowance of failed ones",
            metrics.key_lookups_throttled.clone(),
        );
        registry.register(
            "audit_dropped",
            "Audit events dropped because the writer's queue was full",
            metrics.audit_dropped.clone(),
        );
        registry.register(
            "audit_write_failures",
            "Audit events lost because the database refused the write",
            metrics.audit_write_failures.clone(),
        );
        metrics
    }
}

fn latency_histogram() -> Histogram {
    Histogram::new([
        0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

struct Inner {
    registry: Registry,
    flows_started: Family<PlatformLabel, Counter>,
    flows_completed: Family<PlatformLabel, Counter>,
    flows_failed: Family<FailureLabels, Counter>,
    refreshes: Family<OutcomeLabels, Counter>,
    liveness_probes: Family<OutcomeLabels, Counter>,
    token_endpoint: Family<CallLabels, Histogram, fn() -> Histogram>,
    connections: Family<StatusLabels, Gauge>,
    redis_circuit: Family<CircuitLabel, Counter>,
    redis_available: Gauge,
    webhook_dead_letters: Counter,
    task_panics: Family<TaskLabel, Counter>,
    access: AccessMetrics,
    proxy: ProxyMetrics,
    platform_events: Family<PlatformEventLabels, Counter>,
    posts: Family<PostLabels, Counter>,
    tools: ToolMetrics,
}

/// A family of counters, registered under `name`.
fn registered<L>(registry: &mut Registry, name: &str, help: &str) -> Family<L, Counter>
where
    L: Clone + std::hash::Hash + Eq + EncodeLabelSet + std::fmt::Debug + Send + Sync + 'static,
{
    let family = Family::<L, Counter>::default();
    registry.register(name, help, family.clone());
    family
}

/// A cheap-clone handle to the application's metrics.
#[derive(Clone)]
pub struct Metrics(Arc<Inner>);

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("growth_engine");
        let flows_started = Family::default();
        let flows_completed = Family::default();
        let flows_failed = Family::default();
        let refreshes = Family::default();
        let liveness_probes = Family::default();
        let token_endpoint =
            Family::<CallLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram,
            );
        let connections = Family::default();
        let task_panics = Family::default();
        registry.register(
            "background_task_panics",
            "Background tasks that panicked and were restarted",
            task_panics.clone(),
        );
        let proxy = ProxyMetrics::register(&mut registry);
        registry.register(
            "flows_started",
            "Authorization flows started",
            flows_started.clone(),
        );
        registry.register(
            "flows_completed",
            "Authorization flows completed",
            flows_completed.clone(),
        );
        registry.register(
            "flows_failed",
            "Authorization flows that failed, by reason",
            flows_failed.clone(),
        );
        registry.register("refreshes", "Token refreshes by outcome", refreshes.clone());
        registry.register(
            "liveness_probes",
            "Liveness checks of connections' tokens by outcome (alive, renewed, dead, still_dead, \
             refused, unavailable, skipped, interrupted)",
            liveness_probes.clone(),
        );
        registry.register(
            "token_endpoint_seconds",
            "Latency of calls to platforms' token endpoints",
            token_endpoint.clone(),
        );
        registry.register(
            "connections",
            "Connections by platform and status",
            connections.clone(),
        );
        let redis_circuit = Family::default();
        let redis_available = Gauge::default();
        let webhook_dead_letters = Counter::default();
        registry.register(
            "redis_circuit_transitions",
            "Changes of the Redis circuit breaker, by the state it moved to",
            redis_circuit.clone(),
        );
        registry.register(
            "redis_available",
            "1 while Redis answers, 0 while the circuit breaker is open",
            redis_available.clone(),
        );
        registry.register(
            "webhook_dead_letters",
            "Webhook events given up on after the maximum number of attempts",
            webhook_dead_letters.clone(),
        );
        let access = AccessMetrics::register(&mut registry);
        let platform_events = Family::default();
        registry.register(
            "platform_events",
            "Platform notices received and processed, by platform, kind and outcome",
            platform_events.clone(),
        );
        Self(Arc::new(Inner {
            tools: ToolMetrics::register(&mut registry),
            posts: registered(
                &mut registry,
                "posts",
                "Posts created, decided and settled, by platform and outcome",
            ),
            platform_events,
            registry,
            flows_started,
            flows_completed,
            flows_failed,
            refreshes,
            liveness_probes,
            token_endpoint,
            connections,
            redis_circuit,
            redis_available,
            webhook_dead_letters,
            task_panics,
            access,
            proxy,
        }))
    }

    /// A platform notice was received, refused or processed.
    pub(crate) fn platform_event(&self, platform: &str, kind: &str, outcome: &str) {
        self.0
            .platform_events
            .get_or_create(&PlatformEventLabels {
                platform: platform.into(),
                kind: kind.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// A post was created, decided or settled.
    pub(crate) fn post(&self, platform: &str, outcome: &str) {
        self.0
            .posts
            .get_or_create(&PostLabels {
                platform: platform.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// An MCP tool call ended with `outcome` (`success` or its error code) after `seconds`.
    pub(crate) fn mcp_tool_call(&self, tool: &str, outcome: &str, seconds: f64) {
        let tools = &self.0.tools;
        tools
            .calls
            .get_or_create(&ToolCallLabels {
                tool: tool.into(),
                outcome: outcome.into(),
            })
            .inc();
        tools
            .seconds
            .get_or_create(&ToolLabel { tool: tool.into() })
            .observe(seconds);
    }

    /// A flow began.
    pub(crate) fn flow_started(&self, platform: &str) {
        self.0
            .flows_started
            .get_or_create(&PlatformLabel {
                platform: platform.into(),
            })
            .inc();
    }

    /// A flow ended with a connection.
    pub(crate) fn flow_completed(&self, platform: &str) {
        self.0
            .flows_completed
            .get_or_create(&PlatformLabel {
                platform: platform.into(),
            })
            .inc();
    }

    /// A flow failed.
    pub(crate) fn flow_failed(&self, platform: &str, reason: &str) {
        self.0
            .flows_failed
            .get_or_create(&FailureLabels {
                platform: platform.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// A refresh ended.
    pub fn refresh(&self, platform: &str, outcome: &str) {
        self.0
            .refreshes
            .get_or_create(&OutcomeLabels {
                platform: platform.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// A liveness check of a connection's token ended with `outcome`.
    pub(crate) fn liveness_probe(&self, platform: &str, outcome: &str) {
        self.0
            .liveness_probes
            .get_or_create(&OutcomeLabels {
                platform: platform.into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    /// A background task panicked (and is being restarted).
    pub(crate) fn background_task_panic(&self, task: &str) {
        self.0
            .task_panics
            .get_or_create(&TaskLabel { task: task.into() })
            .inc();
    }

    /// A token-endpoint call took `seconds`.
    pub(crate) fn token_call(&self, platform: &str, grant_type: &str, seconds: f64) {
        self.0
            .token_endpoint
            .get_or_create(&CallLabels {
                platform: platform.into(),
                grant_type: grant_type.into(),
            })
            .observe(seconds);
    }

    /// Replaces the connections-by-status gauges with a fresh count.
    pub(crate) fn set_connection_counts(&self, counts: &[crate::store::StatusCount]) {
        self.0.connections.clear();
        for count in counts {
            self.0
                .connections
                .get_or_create(&StatusLabels {
                    platform: count.platform.clone(),
                    status: count.status.as_str().into(),
                })
                .set(count.count);
        }
    }

    /// The Redis circuit breaker closed (`available`) or opened.
    pub(crate) fn redis_circuit_changed(&self, available: bool) {
        let state = if available { "closed" } else { "open" };
        self.0
            .redis_circuit
            .get_or_create(&CircuitLabel {
                state: state.into(),
            })
            .inc();
        self.redis_available(available);
    }

    /// Sets the Redis availability gauge.
    pub(crate) fn redis_available(&self, available: bool) {
        self.0.redis_available.set(i64::from(available));
    }

    /// A webhook event was moved to the dead letters.
    pub(crate) fn webhook_dead_lettered(&self) {
        self.0.webhook_dead_letters.inc();
    }

    /// An audit event was dropped (queue full).
    pub(crate) fn audit_dropped(&self) {
        self.0.access.audit_dropped.inc();
    }

    /// An API key was looked up in the database.
    pub(crate) fn api_key_lookup(&self) {
        self.0.access.key_lookups.inc();
    }

    /// An API key lookup was refused: the client's allowance of failed ones was used up.
    pub(crate) fn api_key_lookup_throttled(&self) {
        self.0.access.key_lookups_throttled.inc();
    }

    /// `rows` audit events could not be written.
    pub(crate) fn audit_write_failed(&self, rows: u64) {
        self.0.access.audit_write_failures.inc_by(rows);
    }

    /// A proxied call got its answer's status line (`status` `None`: no answer) after `seconds`.
    pub(crate) fn proxy_call(&self, platform: &str, status: Option<u16>, seconds: f64) {
        let status_class = match status {
            Some(status) => format!("{}xx", status / 100),
            None => "error".into(),
        };
        let label = PlatformLabel {
            platform: platform.into(),
        };
        self.0
            .proxy
            .requests
            .get_or_create(&ProxyLabels {
                platform: platform.into(),
                status_class,
            })
            .inc();
        self.0.proxy.seconds.get_or_create(&label).observe(seconds);
    }

    /// A proxied call was sent again (`token_refreshed`, `connection_broken`).
    pub(crate) fn proxy_retry(&self, platform: &str, reason: &str) {
        self.0
            .proxy
            .retries
            .get_or_create(&FailureLabels {
                platform: platform.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// A platform answer was cut at the size limit.
    /// A proxied call was refused with `quota_exceeded` for `reason`.
    pub(crate) fn fair_share_throttled(&self, platform: &str, reason: &str) {
        self.0
            .proxy
            .throttled
            .get_or_create(&FailureLabels {
                platform: platform.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// A platform's usage header could not be read.
    pub(crate) fn usage_header_malformed(&self, platform: &str) {
        self.0
            .proxy
            .malformed_usage
            .get_or_create(&PlatformLabel {
                platform: platform.into(),
            })
            .inc();
    }

    pub(crate) fn proxy_cut(&self, platform: &str) {
        self.0
            .proxy
            .cut
            .get_or_create(&PlatformLabel {
                platform: platform.into(),
            })
            .inc();
    }

    /// The platform's rate-limit headers said: `remaining` calls left, `usage` percent used.
    pub(crate) fn proxy_rate_limit(
        &self,
        platform: &str,
        remaining: Option<i64>,
        usage: Option<i64>,
    ) {
        let label = PlatformLabel {
            platform: platform.into(),
        };
        if let Some(remaining) = remaining {
            self.0.proxy.remaining.get_or_create(&label).set(remaining);
        }
        if let Some(usage) = usage {
            self.0.proxy.usage.get_or_create(&label).set(usage);
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.0.registry);
        out
    }
}
