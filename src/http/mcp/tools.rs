//! The tools: their fixed definitions (name, description, input and output JSON Schemas,
//! annotations), the scope each needs, and how a call's arguments become the REST call the tool
//! stands for. Descriptions are constants: nothing a merchant or a platform wrote reaches them.
//!
//! Input schemas come from the argument types (`schemars`); a tool answering a REST route's body
//! has that route's response schema from the OpenAPI document as its output schema, so the two
//! cannot drift apart.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, Method};
use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use url::Url;
use utoipa::OpenApi;

use super::rest::{RestCall, ToolFailure};
use crate::access::Operation;

/// What a tool's answer is turned into before the agent sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// The route's body as it is.
    AsIs,
    /// The connections' accounts, flattened (`list_accounts`), of one platform when given.
    Accounts,
    /// A platform's answer: its status and body, credentials redacted (`platform_get`).
    PlatformAnswer,
}

/// A tool call ready to send: the REST call, and what the audit row names.
#[derive(Debug)]
pub(super) struct ToolRequest {
    pub call: RestCall,
    pub shape: Shape,
    pub store: Option<String>,
    pub platform: Option<String>,
}

/// One tool: its definition and the scope it needs (the scope of the route it stands for).
#[derive(Debug, Clone)]
pub(super) struct ToolSpec {
    pub definition: Tool,
    pub operation: Operation,
}

/// `list_connections`' arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct StoreArgs {
    /// The merchant's store id (letters, digits and `_.:@-`, 1 to 128 characters).
    pub store_id: String,
}

/// `list_accounts`' arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AccountsArgs {
    /// The merchant's store id.
    pub store_id: String,
    /// Only this platform's accounts (a slug, as `list_connections` shows it).
    #[serde(default)]
    pub platform: Option<String>,
}

/// One medium of a post.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct MediaArg {
    /// Where the medium is (http or https); the platform or the service fetches it.
    pub url: String,
    /// `image` or `video`.
    pub kind: MediaKindArg,
}

/// What a medium is.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub(super) enum MediaKindArg {
    Image,
    Video,
}

/// `create_post`'s arguments: the posts API's body, and an optional idempotency key.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreatePostArgs {
    /// The merchant's store id.
    pub store_id: String,
    /// The platform's slug, as `list_connections` shows it.
    pub platform: String,
    /// The account to post as (an id from `list_accounts`); default: the connection's selected
    /// account of a kind the platform publishes to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The text (caption, message, commentary).
    #[serde(default)]
    pub text: String,
    /// The media, in order.
    #[serde(default)]
    pub media: Vec<MediaArg>,
    /// A link the post carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Platform options (a privacy level, a title, ...), as the posts API documents them.
    #[serde(default)]
    pub options: Map<String, Value>,
    /// When to publish (RFC 3339); now when absent or past.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub publish_at: Option<String>,
    /// Makes retries safe: the same key and arguments give the same post. Default: derived from
    /// the arguments, so an identical call is the same post; pass a new key to post the same
    /// content again.
    #[serde(default, skip_serializing)]
    pub idempotency_key: Option<String>,
}

/// `get_post`'s and `cancel_post`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PostArgs {
    /// The post's id, as `create_post` or `list_posts` gave it.
    #[schemars(extend("format" = "uuid"))]
    pub post_id: String,
}

/// `list_posts`' arguments.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ListPostsArgs {
    /// The merchant's store id.
    pub store_id: String,
    /// Only posts in this status (`scheduled`, `pending_approval`, `publishing`, `published`,
    /// `failed`, `cancelled`, `unknown`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Only posts to this platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// At most this many (1 to 100, default 50).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `platform_get`'s arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PlatformGetArgs {
    /// The merchant's store id.
    pub store_id: String,
    /// The platform's slug, as `list_connections` shows it.
    pub platform: String,
    /// The path under the platform's API base, without a query (e.g. `me` or `v2/user/info/`).
    pub path: String,
    /// Query parameters.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// An account id (a page) whose own token the call uses.
    #[serde(default)]
    pub account: Option<String>,
}

/// One account of a connection (`list_accounts`).
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct AccountItem {
    /// The platform's slug.
    pub platform: String,
    /// The connection's status (`CONNECTED`, `PENDING`, `EXPIRED`, `REVOKED`, `ERROR`).
    pub connection_status: String,
    /// The account's kind (a page, a business account, an ad account, a board, ...).
    pub kind: String,
    /// The platform's id of it: pass it as `account` to `create_post` or `platform_get`.
    pub id: String,
    /// Its display name.
    pub name: Option<String>,
    /// Whether it is the connection's default of its kind.
    pub selected: bool,
}

/// `list_accounts`' answer.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct AccountList {
    /// The store.
    pub store_id: String,
    /// Its connections' accounts.
    pub accounts: Vec<AccountItem>,
}

/// `platform_get`'s answer.
#[derive(Debug, Serialize, JsonSchema)]
pub(super) struct PlatformAnswer {
    /// The platform's HTTP status.
    pub status: u16,
    /// The platform's body (JSON, or text), with every credential replaced by `[redacted]`.
    pub body: Value,
}

/// The tools, in the order `tools/list` shows them.
pub(super) fn catalogue() -> Vec<ToolSpec> {
    let rest = RestSchemas::load();
    let read = |title: &str| {
        ToolAnnotations::with_title(title)
            .read_only(true)
            .open_world(false)
    };
    vec![
        spec(
            Tool::new(
                "list_connections",
                LIST_CONNECTIONS,
                input_schema::<StoreArgs>(),
            )
            .with_raw_output_schema(rest.schema("ConnectionsResponse")),
            read("List connections"),
            Operation::ConnectionsRead,
        ),
        spec(
            Tool::new(
                "list_accounts",
                LIST_ACCOUNTS,
                input_schema::<AccountsArgs>(),
            )
            .with_raw_output_schema(schema_object::<AccountList>()),
            read("List accounts"),
            Operation::ConnectionsRead,
        ),
        spec(
            Tool::new("create_post", CREATE_POST, input_schema::<CreatePostArgs>())
                .with_raw_output_schema(rest.schema("PostView")),
            // Not destructive (it adds a post), idempotent (same arguments, same post), and it
            // reaches the outside world.
            ToolAnnotations::with_title("Create a post")
                .read_only(false)
                .destructive(false)
                .idempotent(true)
                .open_world(true),
            Operation::PostsWrite,
        ),
        spec(
            Tool::new("get_post", GET_POST, input_schema::<PostArgs>())
                .with_raw_output_schema(rest.schema("PostView")),
            read("Get a post"),
            Operation::PostsRead,
        ),
        spec(
            Tool::new("list_posts", LIST_POSTS, input_schema::<ListPostsArgs>())
                .with_raw_output_schema(rest.schema("PostPage")),
            read("List posts"),
            Operation::PostsRead,
        ),
        spec(
            Tool::new("cancel_post", CANCEL_POST, input_schema::<PostArgs>())
                .with_raw_output_schema(rest.schema("PostView")),
            ToolAnnotations::with_title("Cancel a post")
                .read_only(false)
                .destructive(true)
                .idempotent(true)
                .open_world(false),
            Operation::PostsWrite,
        ),
        spec(
            Tool::new(
                "platform_get",
                PLATFORM_GET,
                input_schema::<PlatformGetArgs>(),
            )
            .with_raw_output_schema(schema_object::<PlatformAnswer>()),
            ToolAnnotations::with_title("Read from a platform's API")
                .read_only(true)
                .open_world(true),
            Operation::Proxy,
        ),
    ]
}

fn spec(definition: Tool, annotations: ToolAnnotations, operation: Operation) -> ToolSpec {
    let title = annotations.title.clone();
    let mut definition = definition.with_annotations(annotations);
    definition.title = title;
    ToolSpec {
        definition,
        operation,
    }
}

const LIST_CONNECTIONS: &str = "Lists the store's connected platform accounts: each connection's status (CONNECTED, PENDING, EXPIRED, REVOKED, ERROR), its health (healthy, expiring, refresh_failing, missing_scopes, dead, and until when it lasts without the merchant), granted scopes and accounts. Never a token. A connection that is EXPIRED, REVOKED or in ERROR needs the merchant to reconnect it on the connections page.";
const LIST_ACCOUNTS: &str = "Lists the accounts the store's connections can act as (pages, business and creator accounts, ad accounts, boards, organizations...), each with its platform, kind, id and whether it is the default. Pass an id as `account` to create_post or platform_get.";
const CREATE_POST: &str = "Creates a post on one platform for the store: published at `publish_at` (now when absent). Idempotent: the same arguments (or the same `idempotency_key`) return the same post instead of posting twice. When the store requires the merchant's approval the post comes back `pending_approval`; follow it with get_post until it is `published` (with the platform's id and URL), `failed` (with a stable error code) or `cancelled`. A post the platform would refuse is refused at once with its code (not_supported, invalid_post, media_rejected...).";
const GET_POST: &str = "Reads one post: its status (scheduled, pending_approval, publishing, published, failed, cancelled, unknown), the platform's post id and URL once published, the error code and the platform's words once failed.";
const LIST_POSTS: &str = "Lists the store's posts, newest first, optionally of one status or platform; pass `next_cursor` as `cursor` for the next page.";
const CANCEL_POST: &str = "Cancels a post that has not been sent yet (scheduled, waiting for approval, or publishing before its send began). A post already sent cannot be cancelled: the answer is the error post_not_cancellable.";
const PLATFORM_GET: &str = "Reads from a platform's own API with the store's connection: a GET of `path` under the platform's API base (the path may not leave it). Answers the platform's status and body; credentials in the body are redacted. Nothing is changed at the platform.";

/// The REST call a tool's arguments stand for.
pub(super) fn request_for(name: &str, arguments: JsonObject) -> Result<ToolRequest, ToolFailure> {
    let arguments = Value::Object(arguments);
    Ok(match name {
        "list_connections" => {
            let args: StoreArgs = parse(arguments)?;
            let target = path(&["api", "v1", "oauth", "connections", &args.store_id], None);
            request(
                RestCall::get(target),
                Shape::AsIs,
                Some(args.store_id),
                None,
            )
        }
        "list_accounts" => {
            let args: AccountsArgs = parse(arguments)?;
            let target = path(&["api", "v1", "oauth", "connections", &args.store_id], None);
            request(
                RestCall::get(target),
                Shape::Accounts,
                Some(args.store_id),
                args.platform,
            )
        }
        "create_post" => create_post(parse(arguments)?)?,
        "get_post" | "cancel_post" => {
            let args: PostArgs = parse(arguments)?;
            if uuid::Uuid::parse_str(&args.post_id).is_err() {
                return Err(ToolFailure::new(
                    "invalid_arguments",
                    "post_id is a post's id (a UUID), as create_post or list_posts gave it.",
                ));
            }
            let mut call = RestCall::get(path(&["api", "v1", "posts", &args.post_id], None));
            if name == "cancel_post" {
                call.method = Method::DELETE;
            }
            request(call, Shape::AsIs, None, None)
        }
        "list_posts" => {
            let args: ListPostsArgs = parse(arguments)?;
            let query = serde_urlencoded::to_string(&args).unwrap_or_default();
            let target = path(&["api", "v1", "posts"], Some(&query));
            request(
                RestCall::get(target),
                Shape::AsIs,
                Some(args.store_id),
                args.platform,
            )
        }
        "platform_get" => platform_get(parse(arguments)?)?,
        _ => {
            return Err(ToolFailure::new(
                "unknown_tool",
                format!("No tool is named {name}."),
            ))
        }
    })
}

fn request(
    call: RestCall,
    shape: Shape,
    store: Option<String>,
    platform: Option<String>,
) -> ToolRequest {
    ToolRequest {
        call,
        shape,
        store,
        platform,
    }
}

fn create_post(args: CreatePostArgs) -> Result<ToolRequest, ToolFailure> {
    let body = serde_json::to_value(&args).unwrap_or_default();
    let key = match &args.idempotency_key {
        Some(key) => key.clone(),
        // Derived from the body: a retried call (a lost answer, a restarted agent) is the same
        // post. `serde_json`'s maps are ordered, so the same arguments give the same text.
        None => format!(
            "mcp-{}",
            &hex::encode(Sha256::digest(body.to_string()))[..40]
        ),
    };
    let key = HeaderValue::from_str(&key).map_err(|_| {
        ToolFailure::new(
            "invalid_arguments",
            "idempotency_key must be 1 to 255 visible ASCII characters.",
        )
    })?;
    let call = RestCall {
        method: Method::POST,
        target: path(&["api", "v1", "posts"], None),
        headers: vec![(HeaderName::from_static("idempotency-key"), key)],
        body: Some(body),
    };
    Ok(request(
        call,
        Shape::AsIs,
        Some(args.store_id),
        Some(args.platform),
    ))
}

fn platform_get(args: PlatformGetArgs) -> Result<ToolRequest, ToolFailure> {
    if args.path.contains(['?', '#']) || args.path.chars().any(char::is_control) {
        return Err(ToolFailure::new(
            "invalid_arguments",
            "path is a path only: put query parameters in `query`.",
        ));
    }
    let query = (!args.query.is_empty())
        .then(|| serde_urlencoded::to_string(&args.query).unwrap_or_default());
    let mut target = path(&["api", "v1", "proxy", &args.platform], None);
    target.push('/');
    target.push_str(args.path.trim_start_matches('/'));
    if let Some(query) = query {
        target.push('?');
        target.push_str(&query);
    }
    let mut headers = Vec::new();
    for (name, value) in [
        (super::super::proxy::STORE_HEADER, Some(&args.store_id)),
        (super::super::proxy::ACCOUNT_HEADER, args.account.as_ref()),
    ] {
        if let Some(value) = value {
            let value = HeaderValue::from_str(value).map_err(|_| {
                ToolFailure::new(
                    "invalid_arguments",
                    "store_id and account are visible ASCII.",
                )
            })?;
            headers.push((name, value));
        }
    }
    let call = RestCall {
        method: Method::GET,
        target,
        headers,
        body: None,
    };
    Ok(request(
        call,
        Shape::PlatformAnswer,
        Some(args.store_id),
        Some(args.platform),
    ))
}

/// `/a/b/c?query`, each segment percent-encoded: an argument cannot add a segment or a query.
fn path(segments: &[&str], query: Option<&str>) -> String {
    let mut url = Url::parse("http://in-process/").unwrap_or_else(|_| unreachable!());
    if let Ok(mut path) = url.path_segments_mut() {
        path.clear().extend(segments);
    }
    url.set_query(query.filter(|q| !q.is_empty()));
    url[url::Position::BeforePath..].to_owned()
}

/// The arguments as `T`, or `invalid_arguments` with serde's words (which name the field).
fn parse<T: serde::de::DeserializeOwned>(arguments: Value) -> Result<T, ToolFailure> {
    serde_json::from_value(arguments).map_err(|error| {
        ToolFailure::new(
            "invalid_arguments",
            format!("The arguments do not match the tool's input schema: {error}."),
        )
    })
}

/// `T`'s JSON Schema as a tool's input schema.
fn input_schema<T: JsonSchema>() -> Arc<JsonObject> {
    schema_object::<T>()
}

/// `T`'s JSON Schema, without the Rust type's name and doc at its root (the tool's own title and
/// description say it) and without `schemars`' integer formats (`uint16`), which JSON Schema
/// does not define and validators warn about.
fn schema_object<T: JsonSchema>() -> Arc<JsonObject> {
    let mut schema = serde_json::to_value(schemars::schema_for!(T)).unwrap_or_default();
    drop_integer_formats(&mut schema);
    match schema {
        Value::Object(mut object) => {
            object.remove("title");
            object.remove("description");
            Arc::new(object)
        }
        _ => Arc::new(JsonObject::new()),
    }
}

fn drop_integer_formats(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let integer_format = map
                .get("format")
                .and_then(Value::as_str)
                .is_some_and(|f| f.starts_with("int") || f.starts_with("uint"));
            if integer_format {
                map.remove("format");
            }
            map.values_mut().for_each(drop_integer_formats);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_integer_formats),
        _ => {}
    }
}

/// The OpenAPI document's component schemas, from which the tools answering a REST body take
/// their output schemas.
struct RestSchemas(Map<String, Value>);

impl RestSchemas {
    fn load() -> Self {
        let document =
            serde_json::to_value(super::super::openapi::ApiDoc::openapi()).unwrap_or_default();
        let schemas = document["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        Self(schemas)
    }

    /// The component `name` as a standalone JSON Schema: the component at the root, the ones it
    /// refers to (transitively) under `$defs`.
    fn schema(&self, name: &str) -> Arc<JsonObject> {
        let mut defs = Map::new();
        let mut pending = vec![name.to_owned()];
        while let Some(next) = pending.pop() {
            if defs.contains_key(&next) {
                continue;
            }
            let Some(mut schema) = self.0.get(&next).cloned() else {
                continue;
            };
            rewrite_refs(&mut schema, &mut pending);
            defs.insert(next, schema);
        }
        let Some(Value::Object(mut root)) = defs.remove(name) else {
            return Arc::new(JsonObject::new());
        };
        if !defs.is_empty() {
            // The root may refer to itself too: keep it under its name as well.
            if let Some(Value::Object(_)) = self.0.get(name) {
                defs.insert(name.to_owned(), Value::Object(root.clone()));
            }
            root.insert("$defs".into(), Value::Object(defs));
        }
        root.entry("type").or_insert_with(|| json!("object"));
        Arc::new(root)
    }
}

/// Rewrites `#/components/schemas/X` to `#/$defs/X`, collecting each `X`.
fn rewrite_refs(value: &mut Value, found: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(reference)) = map.get_mut("$ref") {
                if let Some(name) = reference.strip_prefix("#/components/schemas/") {
                    found.push(name.to_owned());
                    *reference = format!("#/$defs/{name}");
                }
            }
            map.values_mut().for_each(|v| rewrite_refs(v, found));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| rewrite_refs(v, found)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_a_schema_pair_annotations_and_no_dangling_reference() {
        let tools = catalogue();
        assert_eq!(tools.len(), 7);
        for tool in &tools {
            let definition = &tool.definition;
            assert_eq!(
                definition.input_schema["type"], "object",
                "{}",
                definition.name
            );
            let output = definition.output_schema.as_ref().expect("an output schema");
            assert_eq!(output["type"], "object", "{}", definition.name);
            assert!(definition.annotations.is_some(), "{}", definition.name);
            let text = Value::Object((**output).clone()).to_string();
            assert!(
                !text.contains("#/components/"),
                "{}: {text}",
                definition.name
            );
            // Every `#/$defs/X` it refers to is there.
            for reference in text.split("\"#/$defs/").skip(1) {
                let name = reference.split('"').next().expect("a name");
                assert!(
                    output.get("$defs").and_then(|d| d.get(name)).is_some(),
                    "{}: {name}",
                    definition.name
                );
            }
        }
        let connections = &tools[0].definition.output_schema.as_ref().expect("schema");
        assert!(connections["properties"]["connections"].is_object());
    }

    #[test]
    fn arguments_cannot_add_a_path_segment_or_a_query() {
        let mut arguments = JsonObject::new();
        arguments.insert("store_id".into(), json!("../../audit?x=1"));
        let request = request_for("list_connections", arguments).expect("a request");
        assert_eq!(
            request.call.target,
            "/api/v1/oauth/connections/..%2F..%2Faudit%3Fx=1"
        );
    }

    #[test]
    fn the_derived_idempotency_key_depends_on_the_arguments_only() {
        let args = |text: &str| {
            let mut arguments = JsonObject::new();
            arguments.insert("store_id".into(), json!("shop-1"));
            arguments.insert("platform".into(), json!("x"));
            arguments.insert("text".into(), json!(text));
            request_for("create_post", arguments).expect("a request")
        };
        let key = |r: &ToolRequest| r.call.headers[0].1.clone();
        assert_eq!(key(&args("hello")), key(&args("hello")));
        assert_ne!(key(&args("hello")), key(&args("hello!")));
        let body = args("hello").call.body.expect("a body");
        assert!(body.get("idempotency_key").is_none());
    }

    #[test]
    fn unknown_fields_and_wrong_types_are_invalid_arguments() {
        let mut arguments = JsonObject::new();
        arguments.insert("store_id".into(), json!(42));
        let failure = request_for("list_posts", arguments).expect_err("refused");
        assert_eq!(failure.code, "invalid_arguments");
        let mut arguments = JsonObject::new();
        arguments.insert("post_id".into(), json!("x"));
        arguments.insert("extra".into(), json!(1));
        assert!(request_for("get_post", arguments).is_err());
    }
}
