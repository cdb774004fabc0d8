//! The sandbox's feed page, one per platform at `/sandbox/{platform}/feed`: what the platform's
//! publishing calls published, per account (the page, Instagram account, creator, board or user
//! it went to), newest first, each with its kind, text, media links, time and public URL, so a
//! person can see what an agent did.
//!
//! It reads only the recorded [`PublishedItem`](crate::PublishedItem)s ([`Simulator::published`]) and asks the
//! platform, through the table, for an item's public URL (`SimulatedPlatform::item_url`); it
//! names no platform and publishes nothing.

use std::collections::BTreeMap;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use crate::consent::html;
use crate::platform::Platform;
use crate::platforms::TABLE;
use crate::state::Simulator;

/// The fields a post's text is found in, in every platform's naming.
const TEXT_FIELDS: [&str; 6] = [
    "caption",
    "message",
    "text",
    "title",
    "description",
    "commentary",
];

/// Every platform's feed page.
pub(crate) fn routes() -> Router<Simulator> {
    TABLE
        .iter()
        .copied()
        .fold(Router::new(), |router, platform| {
            router.route(
                &format!("/sandbox/{}/feed", platform.spec.key),
                get(move |State(sim): State<Simulator>| async move { page(&sim, platform) }),
            )
        })
}

struct Entry {
    anchor: String,
    kind: String,
    id: String,
    time: String,
    text: Vec<String>,
    media: Vec<(String, String)>,
    url: Option<String>,
}

struct Account {
    target: String,
    entries: Vec<Entry>,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox feed: {{ display_name }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f4f5; color: #18181b; }
.banner { background: #fde047; color: #422006; padding: 0.75rem 1rem; font-weight: 600; border-bottom: 2px solid #a16207; }
main { max-width: 48rem; margin: 2rem auto; background: #fff; padding: 1.5rem; border-radius: 0.5rem; border: 1px solid #d4d4d8; }
article { border-top: 1px solid #e4e4e7; padding: 0.75rem 0; }
.facts { color: #52525b; font-size: 0.875rem; }
.text { white-space: pre-wrap; margin: 0.5rem 0; }
</style>
</head>
<body>
<div class="banner">Sandbox: nothing here was posted to the real {{ display_name }}.</div>
<main>
<h1>Published on {{ display_name }}</h1>
{% if accounts.is_empty() %}<p>Nothing has been published yet.</p>{% endif %}
{% for account in accounts %}
<section>
<h2>Account {{ account.target }}</h2>
{% for entry in account.entries %}
<article id="{{ entry.anchor }}">
<div class="facts">{{ entry.kind }} · {{ entry.time }} · id {{ entry.id }}{% if let Some(url) = entry.url %} · <a href="{{ url }}">{{ url }}</a>{% endif %}</div>
{% for text in entry.text %}<p class="text">{{ text }}</p>{% endfor %}
{% if !entry.media.is_empty() %}<ul>{% for (name, link) in entry.media %}<li>{{ name }}: <a href="{{ link }}" rel="noreferrer">{{ link }}</a></li>{% endfor %}</ul>{% endif %}
</article>
{% endfor %}
</section>
{% endfor %}
</main>
</body>
</html>
"#
)]
struct FeedPage<'a> {
    display_name: &'a str,
    accounts: Vec<Account>,
}

fn page(sim: &Simulator, platform: Platform) -> Response {
    let mut by_target: BTreeMap<String, Vec<Entry>> = BTreeMap::new();
    for (item, at) in sim
        .published_with_times(platform.spec.key)
        .into_iter()
        .rev()
    {
        let mut text = Vec::new();
        let mut media = Vec::new();
        collect(&item.fields, "", &mut text, &mut media);
        let entry = Entry {
            anchor: format!("item-{}", item.id),
            kind: item.kind.clone(),
            id: item.id.clone(),
            time: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            text,
            media,
            url: platform.rules.item_url(&item),
        };
        by_target
            .entry(item.target.clone())
            .or_default()
            .push(entry);
    }
    let accounts = by_target
        .into_iter()
        .map(|(target, entries)| Account { target, entries })
        .collect();
    let page = FeedPage {
        display_name: platform.spec.display_name,
        accounts,
    };
    html(StatusCode::OK, page.render())
}

/// The text fields and the links found anywhere in an item's fields (`name` is the field's path).
fn collect(value: &Value, name: &str, text: &mut Vec<String>, media: &mut Vec<(String, String)>) {
    match value {
        Value::String(s) if s.starts_with("https://") || s.starts_with("http://") => {
            media.push((name.to_owned(), s.clone()));
        }
        Value::String(s) => {
            let leaf = name.rsplit('.').next().unwrap_or(name);
            if TEXT_FIELDS.contains(&leaf) && !s.is_empty() {
                text.push(s.clone());
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                collect(item, &format!("{name}[{i}]"), text, media);
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                let path = if name.is_empty() {
                    key.clone()
                } else {
                    format!("{name}.{key}")
                };
                collect(item, &path, text, media);
            }
        }
        _ => {}
    }
}
