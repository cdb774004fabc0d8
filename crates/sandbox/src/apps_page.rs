//! The sandbox's "Apps and websites" page, one per platform at `/sandbox/{platform}/apps` (as
//! Facebook's Settings › Apps and Websites): the simulated accounts that granted the app, each
//! with its id and granted scopes, a Remove button and, where the platform offers it, "Remove and
//! request data deletion"; and the last deliveries of the platform's notices.
//!
//! It owns removing the app ([`Simulator::remove_app`]): the account's grants end at once and the
//! platform's notices go out. The notices' formats, account ids and the data deletion request are
//! each platform's, reached through the table; this module names no platform.

use std::time::Duration;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::header::{CACHE_CONTROL, LOCATION};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;

use crate::consent::html;
use crate::outbox::EventDelivery;
use crate::params::QueryParams;
use crate::platform::Platform;
use crate::platforms::{find, TABLE};
use crate::state::Simulator;

/// How long the data deletion button waits for the app's answer before showing the page: the
/// deliveries' own timeout and a little more.
const DELETION_ANSWER_WAIT: Duration = Duration::from_secs(12);

/// How many of the platform's last deliveries the page shows.
const SHOWN_DELIVERIES: usize = 10;

impl Simulator {
    /// The account `account` of `platform` (the id the platform's user info answers: Meta's
    /// app-scoped `/me` id, TikTok's `open_id`, Google's `sub`, X's user id, LinkedIn's `sub`...)
    /// removes the app in the platform's settings: every live grant it gave any of the platform's
    /// clients ends at once (its tokens then fail as the platform fails them) and the platform's
    /// notices are sent (none for a platform that has none). Returns whether the account had
    /// granted the app (nothing is sent otherwise).
    pub fn remove_app(&self, platform: &str, account: &str) -> bool {
        let Some(platform) = find(platform) else {
            return false;
        };
        let key = platform.spec.key;
        let removed: Vec<_> = self
            .live_grants(key)
            .into_iter()
            .filter(|grant| platform.rules.account_id(grant.account) == account)
            .collect();
        if removed.is_empty() {
            return false;
        }
        self.end_grants(key, &removed);
        for notice in platform.rules.removal_notices(self, account, &removed) {
            self.send_notice(key, notice);
        }
        true
    }
}

/// Every platform's page and its buttons.
pub(crate) fn routes() -> Router<Simulator> {
    TABLE
        .iter()
        .copied()
        .fold(Router::new(), |router, platform| {
            let key = platform.spec.key;
            let router = router
                .route(
                    &format!("/sandbox/{key}/apps"),
                    get(
                        move |State(sim): State<Simulator>, RawQuery(query): RawQuery| async move {
                            page(&sim, platform, query.as_deref())
                        },
                    ),
                )
                .route(
                    &format!("/sandbox/{key}/apps/remove"),
                    post(
                        move |State(sim): State<Simulator>, body: Bytes| async move {
                            remove(&sim, platform, &body)
                        },
                    ),
                );
            if !platform.rules.offers_data_deletion() {
                return router;
            }
            router.route(
                &format!("/sandbox/{key}/apps/delete-data"),
                post(
                    move |State(sim): State<Simulator>, body: Bytes| async move {
                        delete_data(&sim, platform, &body).await
                    },
                ),
            )
        })
}

/// One account on the page.
struct AccountRow {
    id: String,
    name: String,
    scopes: String,
}

/// One delivery on the page.
struct DeliveryRow {
    receiver: String,
    attempt: u32,
    outcome: String,
}

#[derive(Template)]
#[template(
    ext = "html",
    source = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sandbox apps and websites: {{ display_name }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0; background: #f4f4f5; color: #18181b; }
.banner { background: #fde047; color: #422006; padding: 0.75rem 1rem; font-weight: 600; border-bottom: 2px solid #a16207; }
main { max-width: 48rem; margin: 2rem auto; background: #fff; padding: 1.5rem; border-radius: 0.5rem; border: 1px solid #d4d4d8; }
.message { background: #ecfccb; border: 1px solid #65a30d; padding: 0.5rem 0.75rem; border-radius: 0.375rem; }
.account { border: 1px solid #d4d4d8; border-radius: 0.375rem; padding: 0.75rem; margin: 0.75rem 0; }
.actions { display: flex; gap: 0.75rem; margin-top: 0.5rem; }
button { font-size: 1rem; padding: 0.4rem 1rem; border-radius: 0.375rem; border: 1px solid #b91c1c; background: #fff; color: #b91c1c; cursor: pointer; }
code { word-break: break-all; }
table { border-collapse: collapse; width: 100%; }
td, th { text-align: left; padding: 0.25rem 0.5rem; border-bottom: 1px solid #e4e4e7; }
</style>
</head>
<body>
<div class="banner" role="note">Sandbox — simulated {{ display_name }} settings: apps and websites. No real account is involved.</div>
<main>
<h1>Apps and websites</h1>
{% if let Some(message) = message %}<p class="message" role="status">{{ message }}{% if let Some(link) = link %} Status: <a href="{{ link }}">{{ link }}</a>{% endif %}</p>{% endif %}
<p>The accounts below have granted the app access to their {{ display_name }} account.</p>
{% for account in accounts %}<div class="account">
<strong>{{ account.name }}</strong> — account id <code>{{ account.id }}</code>
<div>Granted: <code>{{ account.scopes }}</code></div>
<div class="actions">
<form method="post" action="/sandbox/{{ platform_key }}/apps/remove"><input type="hidden" name="account" value="{{ account.id }}"><button type="submit">Remove</button></form>
{% if data_deletion %}<form method="post" action="/sandbox/{{ platform_key }}/apps/delete-data"><input type="hidden" name="account" value="{{ account.id }}"><button type="submit">Remove and request data deletion</button></form>{% endif %}
</div>
</div>
{% endfor %}{% if accounts.is_empty() %}<p>No account has granted the app.</p>{% endif %}
<h2>Notices sent to the app</h2>
{% if deliveries.is_empty() %}<p>None yet.</p>{% else %}<table>
<tr><th>Receiver</th><th>Attempt</th><th>Answer</th></tr>
{% for delivery in deliveries %}<tr><td><code>{{ delivery.receiver }}</code></td><td>{{ delivery.attempt }}</td><td>{{ delivery.outcome }}</td></tr>
{% endfor %}</table>{% endif %}
</main>
</body>
</html>
"#
)]
struct AppsPage<'a> {
    platform_key: &'a str,
    display_name: &'a str,
    message: Option<&'a str>,
    link: Option<&'a str>,
    accounts: Vec<AccountRow>,
    data_deletion: bool,
    deliveries: Vec<DeliveryRow>,
}

/// The accounts with a live grant, in the order they first granted, each with every scope its
/// grants carry.
fn granted_accounts(sim: &Simulator, platform: Platform) -> Vec<AccountRow> {
    let mut rows: Vec<(AccountRow, Vec<String>)> = Vec::new();
    for grant in sim.live_grants(platform.spec.key) {
        let id = platform.rules.account_id(grant.account);
        let position = rows.iter().position(|(row, _)| row.id == id);
        let scopes = match position {
            Some(at) => &mut rows[at].1,
            None => {
                let name = if grant.account == 0 {
                    platform.spec.account_name.to_owned()
                } else {
                    format!("Other Merchant {}", grant.account)
                };
                let row = AccountRow {
                    id,
                    name,
                    scopes: String::new(),
                };
                rows.push((row, Vec::new()));
                let last = rows.len() - 1;
                &mut rows[last].1
            }
        };
        for scope in grant.scopes {
            if !scopes.contains(&scope) {
                scopes.push(scope);
            }
        }
    }
    rows.into_iter()
        .map(|(mut row, scopes)| {
            row.scopes = scopes.join(" ");
            row
        })
        .collect()
}

/// How a delivery went, in words.
fn outcome(delivery: &EventDelivery) -> String {
    match (delivery.attempt, delivery.status) {
        (0, _) => "not sent: no event receiver is set".to_owned(),
        (_, Some(status)) => format!("HTTP {status}"),
        (_, None) => "no answer (transport error)".to_owned(),
    }
}

/// `GET /sandbox/{platform}/apps`, with the message of the last action if any.
fn page(sim: &Simulator, platform: Platform, query: Option<&str>) -> Response {
    let params = QueryParams::parse(query);
    // Only a web link is shown as one: the status URL comes from the app's answer.
    let link = params
        .get("link")
        .filter(|link| link.starts_with("https://") || link.starts_with("http://"));
    let deliveries = sim.event_deliveries(platform.spec.key);
    let deliveries = deliveries
        .iter()
        .rev()
        .take(SHOWN_DELIVERIES)
        .map(|delivery| DeliveryRow {
            receiver: delivery.receiver.clone(),
            attempt: delivery.attempt,
            outcome: outcome(delivery),
        })
        .collect();
    let page = AppsPage {
        platform_key: platform.spec.key,
        display_name: platform.spec.display_name,
        message: params.get("message"),
        link,
        accounts: granted_accounts(sim, platform),
        data_deletion: platform.rules.offers_data_deletion(),
        deliveries,
    };
    html(StatusCode::OK, page.render())
}

/// The `account` field of a posted form.
fn account_field(body: &Bytes) -> Option<String> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
        .ok()?
        .into_iter()
        .find(|(name, value)| name == "account" && !value.is_empty())
        .map(|(_, value)| value)
}

/// A 303 back to the page with a message (and a status link).
fn back(platform: Platform, message: &str, link: Option<&str>) -> Response {
    let mut query = vec![("message", message)];
    if let Some(link) = link {
        query.push(("link", link));
    }
    let query = serde_urlencoded::to_string(query).unwrap_or_default();
    let location = format!("/sandbox/{}/apps?{query}", platform.spec.key);
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, location.as_str()), (CACHE_CONTROL, "no-store")],
    )
        .into_response()
}

/// `POST /sandbox/{platform}/apps/remove` (form `account`).
fn remove(sim: &Simulator, platform: Platform, body: &Bytes) -> Response {
    let Some(account) = account_field(body) else {
        return back(platform, "Choose an account to remove the app from.", None);
    };
    let message = if sim.remove_app(platform.spec.key, &account) {
        format!("The app was removed from account {account}.")
    } else {
        format!("Account {account} has not granted the app; nothing was removed.")
    };
    back(platform, &message, None)
}

/// `POST /sandbox/{platform}/apps/delete-data` (form `account`): removes the app and requests
/// data deletion, then waits for the app's answer to show its confirmation code and status link.
async fn delete_data(sim: &Simulator, platform: Platform, body: &Bytes) -> Response {
    let Some(account) = account_field(body) else {
        return back(platform, "Choose an account.", None);
    };
    let Some(event) = platform.rules.request_data_deletion(sim, &account) else {
        return back(
            platform,
            "The data deletion request could not be sent.",
            None,
        );
    };
    let key = platform.spec.key;
    let deadline = tokio::time::Instant::now() + DELETION_ANSWER_WAIT;
    let mut attempt = sim.first_attempt(key, event);
    while attempt.is_none() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        attempt = sim.first_attempt(key, event);
    }
    let Some(attempt) = attempt else {
        return back(
            platform,
            "The data deletion request was sent; the app has not answered yet.",
            None,
        );
    };
    let answer: Option<Value> = attempt
        .response
        .as_deref()
        .and_then(|body| serde_json::from_str(body).ok());
    let field = |name: &str| {
        answer
            .as_ref()
            .and_then(|answer| answer.get(name))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    match (attempt.status, field("confirmation_code")) {
        _ if attempt.attempt == 0 => back(
            platform,
            "The data deletion request was recorded but not sent: no event receiver is set.",
            None,
        ),
        (Some(200..=299), Some(code)) => {
            let message = format!(
                "The app was removed and asked to delete the data of account {account}. Confirmation code: {code}."
            );
            back(platform, &message, field("url").as_deref())
        }
        _ => {
            let message = format!(
                "The data deletion request for account {account} was not confirmed ({}); it is retried.",
                outcome(&attempt)
            );
            back(platform, &message, None)
        }
    }
}
