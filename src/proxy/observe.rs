//! What the proxy records about each call: the metrics, a debug event, the audit detail, and the
//! platforms' rate-limit headers read into gauges. Never a body, a header value other than the
//! rate-limit figures, or a token.
//!
//! The record of a call (store, platform, method, path without query values, status, latency) is
//! its audit row, written by the edge with [`audit_detail`]; the `tracing` event (target
//! `growth_engine::audit`) is at debug level, since a log line per call cost the proxy about 5% of
//! its CPU and said nothing the row does not.

use http::header::HeaderMap;
use serde_json::Value;

use crate::metrics::Metrics;

/// One proxied call, as recorded. No `Debug`: it holds the raw query, whose values may be
/// personal data or a caller's mistaken token.
pub struct CallRecord<'a> {
    /// The store.
    pub store: &'a str,
    /// The platform.
    pub platform: &'a str,
    /// The method.
    pub method: &'a str,
    /// The path under the API base, as sent.
    pub path: &'a str,
    /// The query string, as sent (only its parameter names are recorded).
    pub query: Option<&'a str>,
    /// The platform's status, or `None` when it never answered.
    pub status: Option<u16>,
    /// Milliseconds until the status line (the body streams afterwards).
    pub latency_ms: f64,
}

/// Counts the call and emits the debug event (whose fields, the redacted path among them, are only
/// computed when debug events are on).
pub fn record(metrics: &Metrics, call: &CallRecord<'_>) {
    tracing::debug!(
        target: "growth_engine::audit",
        store = call.store,
        platform = call.platform,
        method = call.method,
        path = %redacted_path(call.path, call.query),
        status = call.status,
        latency_ms = call.latency_ms,
        "proxied call"
    );
    metrics.proxy_call(call.platform, call.status, call.latency_ms / 1000.0);
}

/// The audit row's detail of a call: `GET me?fields 200 12ms` (`-` for a status never received).
pub fn audit_detail(method: &str, path: &str, status: Option<u16>, latency_ms: f64) -> String {
    let status = status.map_or_else(|| "-".to_owned(), |s| s.to_string());
    format!("{method} {path} {status} {}ms", latency_ms.round())
}

/// `path?query` with every query value dropped: names say what was asked, values may be personal
/// data (or, mistakenly sent by a caller, a token).
pub(crate) fn redacted_path(path: &str, query: Option<&str>) -> String {
    match query.filter(|q| !q.is_empty()) {
        None => path.to_owned(),
        Some(query) => {
            let names: Vec<&str> = query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| match pair.split_once('=') {
                    // Only a `name=` part keeps its name, and only a name-shaped one: a bare part
                    // (`?<token>`) or an odd name may itself be the value.
                    Some((name, _)) if is_name_shaped(name) => name,
                    _ => "…",
                })
                .collect();
            format!("{path}?{}", names.join("&"))
        }
    }
}

fn is_name_shaped(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'[' | b']'))
}

/// Feeds the platform's rate-limit headers into the gauges: X `x-rate-limit-remaining` [X10],
/// Pinterest/TikTok-style `x-ratelimit-remaining`, and Meta's JSON usage headers `X-App-Usage`,
/// `X-Business-Use-Case-Usage`, `X-Ad-Account-Usage` (percentages) [M16].
pub(crate) fn rate_limits(metrics: &Metrics, platform: &str, headers: &HeaderMap) {
    let number = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<i64>().ok())
    };
    let remaining = number("x-rate-limit-remaining").or_else(|| number("x-ratelimit-remaining"));
    let usage = [
        "x-app-usage",
        "x-business-use-case-usage",
        "x-ad-account-usage",
    ]
    .iter()
    .filter_map(|name| headers.get(*name))
    .filter_map(|v| serde_json::from_slice::<Value>(v.as_bytes()).ok())
    .filter_map(|v| highest_percent(&v))
    .max();
    if remaining.is_some() || usage.is_some() {
        metrics.proxy_rate_limit(platform, remaining, usage);
    }
}

/// The highest usage percentage anywhere in a Meta usage header.
fn highest_percent(value: &Value) -> Option<i64> {
    const FIELDS: [&str; 4] = [
        "call_count",
        "total_cputime",
        "total_time",
        "acc_id_util_pct",
    ];
    match value {
        Value::Object(map) => map
            .iter()
            .filter_map(|(key, v)| {
                if FIELDS.contains(&key.as_str()) {
                    v.as_f64().map(|f| f.round() as i64)
                } else {
                    highest_percent(v)
                }
            })
            .max(),
        Value::Array(items) => items.iter().filter_map(highest_percent).max(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::HeaderValue;

    #[test]
    fn query_values_never_reach_the_record() {
        assert_eq!(
            redacted_path("me", Some("fields=id,name&access_token=secret")),
            "me?fields&access_token"
        );
        assert_eq!(redacted_path("me", None), "me");
        assert_eq!(
            redacted_path("me", Some("EAAB0secret&fields=id&a%20b=1")),
            "me?…&fields&…"
        );
    }

    #[test]
    fn metas_usage_headers_and_xs_remaining_become_gauges() {
        let metrics = Metrics::new();
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-business-use-case-usage",
            HeaderValue::from_static(
                r#"{"1":[{"type":"pages","call_count":12,"total_cputime":40,"total_time":7}]}"#,
            ),
        );
        headers.insert("x-rate-limit-remaining", HeaderValue::from_static("73"));
        rate_limits(&metrics, "meta", &headers);
        let text = metrics.render();
        assert!(
            text.contains("proxy_rate_limit_usage_percent{platform=\"meta\"} 40"),
            "{text}"
        );
        assert!(
            text.contains("proxy_rate_limit_remaining{platform=\"meta\"} 73"),
            "{text}"
        );
    }
}
