//! The MCP server: `initialize`/`server/discover` answers, the tool list a key's scopes allow, and
//! each tool call run as its REST call, recorded once in the audit trail and the metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::http::request::Parts;
use axum::Router;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock,
    Implementation, JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;

use super::rest::{self, RestAnswer, ToolFailure};
use super::tools::{self, AccountItem, AccountList, PlatformAnswer, Shape, ToolSpec};
use crate::access::Caller;
use crate::audit::{Actor, AuditEvent, AuditLog};
use crate::domain::StoreId;
use crate::http::extract::KeyVerdict;
use crate::metrics::Metrics;

/// What the server says about itself to every client.
const INSTRUCTIONS: &str = "Growth Engine holds a merchant's connections to marketing platforms. \
Every tool acts for one store (`store_id`); an API key bound to stores can only name those. \
Start with list_connections: a connection that is not CONNECTED needs the merchant to reconnect \
it, which no tool can do. Posts may wait for the merchant's approval (`pending_approval`): follow \
them with get_post. No tool returns a token.";

/// The MCP server; one per process, cloned (a reference count) for each request.
#[derive(Clone)]
pub struct AgentServer(Arc<Inner>);

struct Inner {
    api: Router,
    tools: Vec<ToolSpec>,
    audit: AuditLog,
    metrics: Metrics,
}

impl std::fmt::Debug for AgentServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentServer").finish_non_exhaustive()
    }
}

impl AgentServer {
    /// A server whose tools call `api`.
    pub fn new(api: Router, audit: AuditLog, metrics: Metrics) -> Self {
        Self(Arc::new(Inner {
            api,
            tools: tools::catalogue(),
            audit,
            metrics,
        }))
    }

    /// Runs one call of the tool `name` as its REST call, and shapes the answer.
    async fn run(&self, name: &str, arguments: JsonObject, http: &Parts) -> Outcome {
        let request = match tools::request_for(name, arguments) {
            Ok(request) => request,
            Err(failure) => return Outcome::failed(failure, None, None),
        };
        let passes_through = request.shape == Shape::PlatformAnswer;
        let answer = rest::send(&self.0.api, http, request.call, passes_through).await;
        let result = match answer {
            RestAnswer::Success(body) => shape(request.shape, body, request.platform.as_deref()),
            RestAnswer::Refused(failure) => Err(failure),
            RestAnswer::Passed { status, mut body } => {
                rest::redact_credentials(&mut body);
                let answer = serde_json::to_value(PlatformAnswer {
                    status: status.as_u16(),
                    body,
                })
                .unwrap_or_default();
                if status.is_success() {
                    Ok(answer)
                } else {
                    let mut failure = ToolFailure::new(
                        "platform_error",
                        format!("The platform answered {status}; its answer is in `details`."),
                    );
                    failure.details = Some(answer);
                    Err(failure)
                }
            }
        };
        // A post's store is in its answer when the arguments only named the post.
        let store = request.store.or_else(|| match &result {
            Ok(body) => body["store_id"].as_str().map(str::to_owned),
            Err(_) => None,
        });
        Outcome {
            result,
            store,
            platform: request.platform,
        }
    }

    /// The tool call's audit row and metrics: the tool, the key, the store, the outcome and the
    /// latency; never the arguments (a post's text and media, a path's query).
    fn record(&self, caller: &Caller, name: &str, outcome: &Outcome, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        let code = match &outcome.result {
            Ok(_) => "success",
            Err(failure) => failure.code.as_str(),
        };
        self.0.metrics.mcp_tool_call(name, code, seconds);
        let mut event = AuditEvent::new(Actor::ApiKey(caller.name.clone()), "mcp.tool", "success");
        if let Some(store) = outcome
            .store
            .as_deref()
            .and_then(|s| StoreId::parse(s).ok())
        {
            event = event.with_store(&store);
        }
        if let Some(platform) = &outcome.platform {
            event = event.with_platform(platform);
        }
        let detail = format!("{name} {:.0}ms", seconds * 1000.0);
        self.0.audit.record(match &outcome.result {
            Ok(_) => event.with_detail(detail),
            Err(failure) => event
                .failed(&failure.code)
                .with_detail(format!("{}: {detail}", failure.code)),
        });
    }
}

/// A tool call's result, with what its audit row names.
struct Outcome {
    result: Result<Value, ToolFailure>,
    store: Option<String>,
    platform: Option<String>,
}

impl Outcome {
    fn failed(failure: ToolFailure, store: Option<String>, platform: Option<String>) -> Self {
        Self {
            result: Err(failure),
            store,
            platform,
        }
    }
}

/// The agent's view of a route's body.
fn shape(shape: Shape, body: Value, platform: Option<&str>) -> Result<Value, ToolFailure> {
    match shape {
        // A platform's answer never comes here: `run` shapes it from the proxy's `Passed`.
        Shape::AsIs | Shape::PlatformAnswer => Ok(body),
        Shape::Accounts => {
            let empty = Vec::new();
            let connections = body["connections"].as_array().unwrap_or(&empty);
            let accounts = connections
                .iter()
                .filter(|c| platform.is_none_or(|p| c["platform"] == p))
                .flat_map(|connection| {
                    let assets = connection["assets"].as_array().cloned().unwrap_or_default();
                    assets.into_iter().map(move |asset| AccountItem {
                        platform: text(&connection["platform"]),
                        connection_status: text(&connection["status"]),
                        kind: text(&asset["kind"]),
                        id: text(&asset["id"]),
                        name: asset["name"].as_str().map(str::to_owned),
                        selected: asset["selected"].as_bool().unwrap_or(false),
                    })
                })
                .collect();
            let list = AccountList {
                store_id: text(&body["store_id"]),
                accounts,
            };
            Ok(serde_json::to_value(list).unwrap_or_default())
        }
    }
}

fn text(value: &Value) -> String {
    value.as_str().unwrap_or_default().to_owned()
}

/// The caller the authentication layer verified, from the HTTP request the transport passes on.
fn caller_of(context: &RequestContext<RoleServer>) -> Result<(&Parts, Caller), ErrorData> {
    let parts = context
        .extensions
        .get::<Parts>()
        .ok_or_else(|| ErrorData::internal_error("no HTTP request", None))?;
    match parts.extensions.get::<KeyVerdict>() {
        Some(KeyVerdict::Caller(caller)) => Ok((parts, caller.clone())),
        // The layer before lets no other request through.
        _ => Err(ErrorData::invalid_request("unauthorized", None)),
    }
}

impl ServerHandler for AgentServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("growth-engine", env!("CARGO_PKG_VERSION"))
                    .with_title("Growth Engine"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (_, caller) = caller_of(&context)?;
        // Only the tools the key's scopes allow (on at least one platform), in a fixed order.
        let tools: Vec<Tool> = self
            .0
            .tools
            .iter()
            .filter(|tool| caller.has_any(tool.operation))
            .map(|tool| tool.definition.clone())
            .collect();
        let mut list = ListToolsResult::with_all_items(tools).with_ttl_ms(60_000);
        // The list depends on the key: no cache may hand it to another caller.
        list.cache_scope = Some(CacheScope::Private);
        Ok(list)
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.0
            .tools
            .iter()
            .find(|tool| tool.definition.name == name)
            .map(|tool| tool.definition.clone())
    }

    async fn call_tool(
        &self,
        mut request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let started = Instant::now();
        let (http, caller) = caller_of(&context)?;
        let name = request.name.as_ref();
        let known = self.0.tools.iter().any(|tool| tool.definition.name == name);
        if !known {
            self.0.metrics.mcp_tool_call("unknown", "unknown_tool", 0.0);
            return Err(ErrorData::invalid_params(
                format!("Unknown tool: {name}. tools/list names the tools this key may call."),
                None,
            ));
        }
        let arguments = request.arguments.take().unwrap_or_default();
        let outcome = self.run(name, arguments, http).await;
        self.record(&caller, name, &outcome, started);
        Ok(match outcome.result {
            Ok(value) => CallToolResult::structured(value),
            // The error as text only: clients check structured content against the output
            // schema, error results included.
            Err(failure) => {
                CallToolResult::error(vec![ContentBlock::text(failure.to_json().to_string())])
            }
        }
        .into())
    }
}
