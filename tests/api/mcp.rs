//! The MCP endpoint with real clients from the registries: the official Python SDK's client (in
//! both its modern and handshake modes) and the TypeScript SDK's client connect with a bearer
//! key, list the tools, read a store's connections and accounts, and publish a post in the
//! sandbox. Bad input, a key without a scope, a store outside a bound key, a bad host or origin:
//! each a clear protocol or tool error, never a 500. Every tool call is in the audit trail and
//! the metrics, without the post's text.

use std::time::Duration;

use serde_json::{json, Value};

use crate::faults_refresh::connect;
use crate::helpers::{spawn_app_with, wait_until, TestApp, TestAppOptions, API_KEY};
use crate::keys_audit::create_bound_key;

const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/mcp-clients");

/// The Python SDK's client: `mode` is `auto` (the 2026-07-28 revision, discovered) or `legacy`
/// (the `initialize` handshake).
pub(crate) async fn python_client(app: &TestApp, key: &str, mode: &str, steps: Value) -> Value {
    let python = std::env::var("MCP_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/mcp-venv/bin/python").to_owned()
    });
    run_client(
        tokio::process::Command::new(&python)
            .arg(format!("{CLIENTS}/python_client.py"))
            .arg(app.url("/mcp"))
            .arg(key)
            .arg(mode)
            .arg(steps.to_string()),
        &format!("the MCP Python SDK must be installed for {python}: python3 -m venv target/mcp-venv && target/mcp-venv/bin/pip install -r tests/mcp-clients/requirements.txt (scripts/test does), or set MCP_PYTHON"),
    )
    .await
}

/// The TypeScript SDK's client.
pub(crate) async fn node_client(app: &TestApp, key: &str, steps: Value) -> Value {
    assert!(
        std::path::Path::new(CLIENTS)
            .join("node_modules/@modelcontextprotocol/sdk")
            .exists(),
        "the TypeScript MCP SDK is not installed: run `npm ci --prefix tests/mcp-clients` (scripts/test does)"
    );
    run_client(
        tokio::process::Command::new("node")
            .arg(format!("{CLIENTS}/node_client.mjs"))
            .arg(app.url("/mcp"))
            .arg(key)
            .arg(steps.to_string()),
        "node must be installed to run the TypeScript MCP client",
    )
    .await
}

async fn run_client(command: &mut tokio::process::Command, install: &str) -> Value {
    let output = tokio::time::timeout(Duration::from_secs(60), command.kill_on_drop(true).output())
        .await
        .expect("the MCP client finished within 60 s")
        .unwrap_or_else(|e| panic!("{install}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the MCP client failed ({}): {stderr}\n{install}",
        output.status
    );
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("the client printed no JSON ({e}): {stdout}\n{stderr}"))
}

/// A tool call's result: its structured content, or (for an error) the JSON error of its text.
pub(crate) fn tool_result(step: &Value) -> (bool, Value) {
    assert!(
        step.get("protocol_error").is_none(),
        "a protocol error: {step}"
    );
    let is_error = step["is_error"].as_bool().expect("a tool result");
    let value = if is_error {
        serde_json::from_str(step["text"].as_str().unwrap()).unwrap()
    } else {
        assert_eq!(
            serde_json::from_str::<Value>(step["text"].as_str().unwrap()).unwrap(),
            step["structured"],
            "the text block is the structured content, serialized"
        );
        step["structured"].clone()
    };
    (is_error, value)
}

fn call(tool: &str, args: Value) -> Value {
    json!({ "tool": tool, "args": args })
}

/// Calls `get_post` with the Python client until the post leaves the statuses it passes through.
pub(crate) async fn settled_by_tool(app: &TestApp, key: &str, id: &str) -> Value {
    let mut last = Value::Null;
    wait_until("the post settles", Duration::from_secs(60), async || {
        let answer = python_client(
            app,
            key,
            "auto",
            json!([call("get_post", json!({"post_id": id}))]),
        )
        .await;
        let (is_error, post) = tool_result(&answer["steps"][0]);
        assert!(!is_error, "{post}");
        last = post;
        !matches!(
            last["status"].as_str(),
            Some("scheduled" | "publishing" | "pending_approval")
        )
    })
    .await;
    last
}

const AGENT_SCOPES: &str = "connections:read,posts:write,posts:read,proxy";

#[tokio::test]
async fn the_official_clients_list_read_and_publish_once() {
    let app = spawn_app_with(TestAppOptions::default()).await;
    connect(&app, "twitter", "shop-1").await;
    let key = create_bound_key(&app, "social-agent", AGENT_SCOPES, Some("shop-1")).await;

    // The Python SDK, on the newest revision: tools, connections, accounts, a post.
    let steps = json!([
        {"list_tools": true},
        call("list_connections", json!({"store_id": "shop-1"})),
        call("list_accounts", json!({"store_id": "shop-1", "platform": "twitter"})),
        call("create_post", json!({"store_id": "shop-1", "platform": "twitter", "text": "Hello from an MCP agent"})),
    ]);
    let answer = python_client(&app, &key, "auto", steps.clone()).await;
    assert_eq!(answer["protocol_version"], "2026-07-28", "{answer}");
    let tools = &answer["steps"][0]["tools"];
    assert_eq!(
        tools,
        &json!([
            "list_connections",
            "list_accounts",
            "create_post",
            "get_post",
            "list_posts",
            "cancel_post",
            "platform_get"
        ])
    );
    for definition in answer["steps"][0]["definitions"].as_array().unwrap() {
        assert!(definition["outputSchema"].is_object(), "{definition}");
        assert!(
            definition["annotations"]["readOnlyHint"].is_boolean(),
            "{definition}"
        );
    }
    let (_, connections) = tool_result(&answer["steps"][1]);
    assert_eq!(connections["connections"][0]["platform"], "twitter");
    assert_eq!(connections["connections"][0]["status"], "CONNECTED");
    assert!(
        connections["connections"][0]["health"]["state"].is_string(),
        "{connections}"
    );
    let (_, accounts) = tool_result(&answer["steps"][2]);
    assert_eq!(accounts["accounts"][0]["kind"], "x_user", "{accounts}");
    let (is_error, created) = tool_result(&answer["steps"][3]);
    assert!(!is_error, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let post = settled_by_tool(&app, &key, &id).await;
    assert_eq!(post["status"], "published", "{post}");
    let published = app.simulator.published("twitter");
    assert_eq!(published.len(), 1);
    assert_eq!(post["platform_post"]["id"], published[0].id.as_str());

    // The same call again (an agent retrying after a lost answer), through the handshake-era
    // client this time: the same post, not a second tweet.
    let again = python_client(&app, &key, "legacy", json!([steps[3].clone()])).await;
    assert_eq!(again["protocol_version"], "2025-11-25", "{again}");
    let (_, same) = tool_result(&again["steps"][0]);
    assert_eq!(same["id"], id.as_str());

    // The TypeScript SDK: the same tools, and a second post, published once.
    let answer = node_client(
        &app,
        &key,
        json!([
            {"list_tools": true},
            call("list_connections", json!({"store_id": "shop-1"})),
            call("create_post", json!({"store_id": "shop-1", "platform": "twitter", "text": "Hello from TypeScript"})),
        ]),
    )
    .await;
    assert_eq!(&answer["steps"][0]["tools"], tools);
    let (_, connections) = tool_result(&answer["steps"][1]);
    assert_eq!(connections["connections"][0]["platform"], "twitter");
    let (is_error, created) = tool_result(&answer["steps"][2]);
    assert!(!is_error, "{created}");
    let post = settled_by_tool(&app, &key, created["id"].as_str().unwrap()).await;
    assert_eq!(post["status"], "published", "{post}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.simulator.published("twitter").len(), 2);

    // Each call is audited with the tool, key, store and latency; never the post's text.
    app.services.audit.flush(Duration::from_secs(5)).await;
    let audit: Value = app
        .get("/api/v1/audit?store_id=shop-1&limit=200")
        .await
        .json()
        .await
        .unwrap();
    let tool_rows: Vec<&Value> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["operation"] == "mcp.tool")
        .collect();
    assert!(tool_rows.len() >= 8, "{audit}");
    assert!(
        tool_rows
            .iter()
            .all(|e| e["actor"].as_str().unwrap().contains("social-agent")),
        "{audit}"
    );
    assert!(
        tool_rows
            .iter()
            .any(|e| e["detail"].as_str().unwrap().starts_with("create_post ")),
        "{audit}"
    );
    assert!(
        !audit.to_string().contains("Hello from"),
        "no post text in the audit trail"
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(
            r#"growth_engine_mcp_tool_calls_total{tool="create_post",outcome="success"}"#
        ),
        "{metrics}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_keys_scopes_choose_its_tools_and_a_bound_key_stays_in_its_stores() {
    let app = spawn_app_with(TestAppOptions::default()).await;
    connect(&app, "twitter", "shop-1").await;
    connect(&app, "twitter", "shop-2").await;
    let reader = create_bound_key(&app, "reader", "connections:read", None).await;
    let bound = create_bound_key(&app, "bound", AGENT_SCOPES, Some("shop-1")).await;

    let answer = python_client(
        &app,
        &reader,
        "auto",
        json!([
            {"list_tools": true},
            call("create_post", json!({"store_id": "shop-1", "platform": "twitter", "text": "no"})),
        ]),
    )
    .await;
    assert_eq!(
        answer["steps"][0]["tools"],
        json!(["list_connections", "list_accounts"])
    );
    let (is_error, error) = tool_result(&answer["steps"][1]);
    assert!(is_error);
    assert_eq!(error["error"]["code"], "missing_scope", "{error}");

    let answer = python_client(
        &app,
        &bound,
        "auto",
        json!([
            call("list_connections", json!({"store_id": "shop-2"})),
            call(
                "create_post",
                json!({"store_id": "shop-2", "platform": "twitter", "text": "elsewhere"})
            ),
            call(
                "platform_get",
                json!({"store_id": "shop-2", "platform": "twitter", "path": "2/users/me"})
            ),
            call("list_connections", json!({"store_id": "shop-1"})),
        ]),
    )
    .await;
    for step in &answer["steps"].as_array().unwrap()[..3] {
        let (is_error, error) = tool_result(step);
        assert!(is_error, "{step}");
        assert_eq!(error["error"]["code"], "store_not_allowed", "{error}");
    }
    let (is_error, _) = tool_result(&answer["steps"][3]);
    assert!(!is_error);
    assert!(app.simulator.published("twitter").is_empty());
    app.stop().await;
}

#[tokio::test]
async fn bad_input_gets_a_protocol_or_tool_error_never_a_500() {
    let app = spawn_app_with(TestAppOptions::default()).await;
    connect(&app, "twitter", "shop-1").await;

    // Through the Python client: an unknown tool is a protocol error; arguments that do not
    // match the schema, a malformed id, a path with a query, a path leaving the API: tool errors.
    let answer = python_client(
        &app,
        API_KEY,
        "auto",
        json!([
            call("delete_everything", json!({})),
            call("list_posts", json!({"store_id": 42})),
            call(
                "create_post",
                json!({"store_id": "shop-1", "platform": "twitter", "text": "x", "colour": "red"})
            ),
            call("get_post", json!({"post_id": "not-a-uuid"})),
            call(
                "platform_get",
                json!({"store_id": "shop-1", "platform": "twitter", "path": "2/users/me?x=1"})
            ),
            call(
                "platform_get",
                json!({"store_id": "shop-1", "platform": "twitter", "path": "../../admin"})
            ),
            call(
                "create_post",
                json!({"store_id": "bad store!", "platform": "twitter", "text": "x"})
            ),
            call("list_connections", json!({"store_id": "shop-1"})),
        ]),
    )
    .await;
    let steps = answer["steps"].as_array().unwrap();
    assert_eq!(steps[0]["protocol_error"]["code"], -32602, "{}", steps[0]);
    let codes: Vec<String> = steps[1..7]
        .iter()
        .map(|step| {
            let (is_error, error) = tool_result(step);
            assert!(is_error, "{step}");
            assert!(error["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
            error["error"]["code"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        codes,
        [
            "invalid_arguments",
            "invalid_arguments",
            "invalid_arguments",
            "invalid_arguments",
            "invalid_proxy_path",
            "invalid_post"
        ],
        "{steps:?}"
    );
    let (is_error, _) = tool_result(&steps[7]);
    assert!(
        !is_error,
        "the connection still answers after the bad calls"
    );

    // Raw HTTP: what no client library sends.
    let post = |body: &str, key: Option<&str>| {
        let mut request = app
            .api
            .post(app.url("/mcp"))
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2025-11-25")
            .body(body.to_owned());
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        request.send()
    };
    let unauthorized = post(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#, None)
        .await
        .unwrap();
    assert_eq!(unauthorized.status(), 401);
    assert_eq!(unauthorized.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        unauthorized.json::<Value>().await.unwrap()["error"]["code"],
        "unauthorized"
    );
    let wrong_key = post(
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        Some("ge_wrong"),
    )
    .await
    .unwrap();
    assert_eq!(wrong_key.status(), 401);
    for (body, code) in [
        ("{not json", -32700),
        (r#"[1, 2]"#, -32600),
        (r#"{"jsonrpc":"2.0","id":1,"method":"no/such"}"#, -32601),
        (
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"nope"}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"arguments":{}}}"#,
            -32602,
        ),
        (
            r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"get_post","arguments":[1]}}"#,
            -32602,
        ),
        (r#""just a string""#, -32600),
    ] {
        let response = post(body, Some(API_KEY)).await.unwrap();
        let status = response.status();
        assert!(
            status.is_client_error() || status == 200,
            "{body}: {status}"
        );
        let text = response.text().await.unwrap();
        let json: Value = serde_json::from_str(text.trim_start_matches("data: ").trim())
            .unwrap_or_else(|_| panic!("{body}: {status} {text}"));
        assert_eq!(json["error"]["code"], code, "{body}: {json}");
    }
    // On the newest revision the list says it is for this caller only (it follows the key).
    let listed: Value = app
        .api
        .post(app.url("/mcp"))
        .bearer_auth(API_KEY)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/list")
        .body(
            json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {"_meta": {
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["result"]["cacheScope"], "private", "{listed}");
    assert_eq!(listed["result"]["tools"].as_array().unwrap().len(), 7);

    // The transport's own checks: a foreign Origin or Host is refused, GET has no stream.
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("host", "rebound.example"),
    ] {
        let refused = app
            .api
            .post(app.url("/mcp"))
            .bearer_auth(API_KEY)
            .header(name, value)
            .header("content-type", "application/json")
            .header("accept", "application/json, text/event-stream")
            .body(r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), 403, "{name}: {value}");
    }
    let get = app
        .api
        .get(app.url("/mcp"))
        .bearer_auth(API_KEY)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
    app.stop().await;
}

#[tokio::test]
async fn platform_get_reads_through_the_proxy_and_never_shows_a_token() {
    let app = spawn_app_with(TestAppOptions::default()).await;
    connect(&app, "meta", "shop-1").await;
    let key = create_bound_key(&app, "reader", "proxy", Some("shop-1")).await;
    let answer = python_client(
        &app,
        &key,
        "auto",
        json!([
            {"list_tools": true},
            call("platform_get", json!({"store_id": "shop-1", "platform": "meta", "path": "me/accounts", "query": {"fields": "id,name,access_token"}})),
            call("platform_get", json!({"store_id": "shop-1", "platform": "meta", "path": "no-such-node"})),
        ]),
    )
    .await;
    assert_eq!(answer["steps"][0]["tools"], json!(["platform_get"]));
    let (is_error, read) = tool_result(&answer["steps"][1]);
    assert!(!is_error, "{read}");
    assert_eq!(read["status"], 200);
    let pages = read["body"]["data"].as_array().expect("the pages");
    assert!(!pages.is_empty(), "{read}");
    assert!(
        pages.iter().all(|p| p["access_token"] == "[redacted]"),
        "{read}"
    );
    let (is_error, error) = tool_result(&answer["steps"][2]);
    assert!(is_error);
    assert_eq!(error["error"]["code"], "platform_error", "{error}");
    assert!(error["error"]["details"]["status"].as_u64().unwrap() >= 400);
    // No token of the connection anywhere in what the agent saw.
    let issued = app.simulator.issued_access_tokens("meta");
    assert!(!issued.is_empty());
    for token in issued {
        assert!(!answer.to_string().contains(token.as_str()));
    }
    app.stop().await;
}
