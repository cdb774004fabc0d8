//! Webhook events: their JSON bodies (never a token), written to the outbox in the same transaction
//! as the change they describe.

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
