//! Webhook events: their JSON bodies (never a token), written to the outbox in the same transaction
//! as the change they describe.
//!
//! Besides each change of status (`connection.created`, `.revoked`, `.expired`, `.deleted`,
//! `.refresh_failed`), the health events, each sent once per episode: `connection.expiring`
//! (`days_left`, `reconnect_by`), `connection.refresh_failing` (`failing_since`) and
//! `connection.recovered` (after a `refresh_failing` alert only).

use chrono::{DateTime, Utc};
use serde_json::json;

use crate::domain::Connection;
use crate::store::NewEvent;

/// The event of a connection's change. `reason` is a short safe text.
pub fn event(
    event_type: &str,
    connection: &Connection,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> NewEvent {
    let mut payload = json!({
        "type": event_type,
        "occurred_at": at,
        "connection": {
            "id": connection.id,
            "store_id": connection.store_id,
            "user_id": connection.user_id,
            "platform": connection.platform,
            "status": connection.status,
            "account_id": connection.account_id,
            "account_name": connection.account_name,
            "expires_at": connection.access_token_expires_at,
        },
    });
    if let Some(reason) = reason {
        payload["reason"] = json!(reason);
    }
    NewEvent {
        event_type: event_type.to_owned(),
        payload,
        at,
    }
}

/// `connection.expiring`: `days_left` days (the threshold crossed) before `reconnect_by`.
pub fn expiring(
    connection: &Connection,
    days_left: u32,
    reconnect_by: DateTime<Utc>,
    at: DateTime<Utc>,
) -> NewEvent {
    let mut event = event("connection.expiring", connection, None, at);
    event.payload["days_left"] = json!(days_left);
    event.payload["reconnect_by"] = json!(reconnect_by);
    event
}

/// `connection.refresh_failing`: renewals have failed since `failing_since`; `reason` is the last
/// error.
pub fn refresh_failing(
    connection: &Connection,
    failing_since: DateTime<Utc>,
    at: DateTime<Utc>,
) -> NewEvent {
    let mut event = event(
        "connection.refresh_failing",
        connection,
        connection.last_error.as_deref(),
        at,
    );
    event.payload["failing_since"] = json!(failing_since);
    event
}

/// `connection.recovered` when `before` (the row the successful renewal leased) had its
/// `refresh_failing` alert sent; `None` otherwise (failures that never reached the alert end
/// silently).
pub fn recovered(before: &Connection, after: &Connection, at: DateTime<Utc>) -> Option<NewEvent> {
    before.failing_alerted_at?;
    let mut event = event("connection.recovered", after, None, at);
    event.payload["failing_since"] = json!(before.failing_since);
    Some(event)
}
