//! X's notices to the app: X Activity API (XAA) events posted to `twitter/webhooks` in XAA's
//! envelope `{"data": {event_uuid, filter, event_type, tag, payload}}` [X16], signed in
//! `x-twitter-webhooks-signature` [X14] (`oauth.revoke` when a user removes the app [X16]), and
//! the CRC check X sends to a webhook before and while using it [X14].
//!
//! X signs with the app's consumer secret [X14]; the sandbox's apps have only OAuth 2.0
//! credentials, so the client secret of the first X client registered stands for it. Without a
//! client nothing is sent.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::SecondsFormat;
use serde_json::{json, Value};

use super::oauth::SLUG;
use crate::events::{hmac_sha256, ordered_json, uuid_v4, ANSWER_TIMEOUT};
use crate::outbox::Notice;
use crate::state::{random_string, Simulator};

const WEBHOOKS: &str = "webhooks";

/// The simulated app's numeric id, XAA's `payload.app_id` (an X app has one besides its OAuth 2.0
/// client id).
const APP_ID: &str = "29000000001";

/// The event a user's removal of the app fires [X16].
const OAUTH_REVOKE: &str = "oauth.revoke";

/// `sha256=` and the base64 (standard, padded) HMAC-SHA256 of `message` keyed with the consumer
/// secret: the webhook signature and the CRC answer alike [X14].
fn x_signature(secret: &str, message: &str) -> String {
    format!(
        "sha256={}",
        STANDARD.encode(hmac_sha256(secret.as_bytes(), message.as_bytes()))
    )
}

/// An XAA event for `user_id` [X16]: `oauth.revoke` has no filter, the others filter on the
/// user.
fn xaa_event(sim: &Simulator, event_type: &str, user_id: &str, payload: Value) -> Option<Notice> {
    let secret = sim.first_client(SLUG)?.client_secret.clone();
    let filter = if event_type == OAUTH_REVOKE {
        json!({})
    } else {
        json!({ "user_id": user_id })
    };
    let data = ordered_json(&[
        ("event_uuid", json!(uuid_v4())),
        ("filter", filter),
        ("event_type", json!(event_type)),
        ("tag", json!("")),
        ("payload", payload),
    ]);
    let body = format!("{{\"data\":{data}}}");
    let signature = x_signature(&secret, &body);
    Some(Notice {
        receiver: WEBHOOKS,
        content_type: "application/json",
        body,
        headers: vec![("x-twitter-webhooks-signature".to_owned(), signature)],
    })
}

/// `oauth.revoke` for `user_id` [X16]: payload `{date_time, user_id, app_id}`.
pub(super) fn removal(sim: &Simulator, user_id: &str) -> Option<Notice> {
    let payload = json!({
        "date_time": sim.now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "user_id": user_id,
        "app_id": APP_ID,
    });
    xaa_event(sim, OAUTH_REVOKE, user_id, payload)
}

impl Simulator {
    /// Posts an XAA event (`event_type`, e.g. `oauth.revoke`) for the X user `user_id` to
    /// `twitter/webhooks` in XAA's envelope, signed [X14, X16]; `payload` is the envelope's
    /// `payload` as sent.
    pub fn send_x_event(&self, event_type: &str, user_id: &str, payload: Value) {
        if let Some(notice) = xaa_event(self, event_type, user_id, payload) {
            self.send_notice(SLUG, notice);
        }
    }

    /// Sends X's CRC check to `twitter/webhooks` [X14]: `GET ?crc_token={random}`. `Ok(true)`
    /// when the receiver answered 200 with JSON `{"response_token": "sha256=" + base64(HMAC-SHA256
    /// (consumer secret, crc_token))}`; `Err` when no receiver is set or it could not be reached
    /// within 10 seconds.
    pub async fn check_x_crc(&self) -> Result<bool, String> {
        let secret = self
            .first_client(SLUG)
            .map(|client| client.client_secret.clone())
            .ok_or_else(|| "no X client is registered".to_owned())?;
        let token = random_string(43);
        let answer = self
            .challenge(SLUG, WEBHOOKS, &[("crc_token", &token)], ANSWER_TIMEOUT)
            .await?;
        let expected = x_signature(&secret, &token);
        Ok(answer
            .json_200()
            .is_some_and(|body| body["response_token"] == expected.as_str()))
    }
}
