//! TikTok's webhook events to the app [T25, T26]: one JSON envelope (`client_key`, `event`,
//! `create_time`, `user_openid`, and `content`, a JSON object serialised as a string) signed in
//! the `TikTok-Signature` header, posted to `tiktok/webhooks`; among them `authorization.removed`
//! when the user removes the app, whose token is already revoked then [T25].
//!
//! Signed with the client secret of the first TikTok client registered; without one nothing is
//! sent.

use serde_json::{json, Value};

use super::oauth::SLUG;
use crate::events::{hmac_sha256, ordered_json};
use crate::outbox::Notice;
use crate::state::Simulator;

const WEBHOOKS: &str = "webhooks";

/// `authorization.removed`'s reason when "the user disconnects from the TikTok app" [T25].
const USER_DISCONNECTED: u8 = 1;

/// An event for `open_id` [T25], signed [T26]: `TikTok-Signature: t={unix seconds},s={lower-case
/// hex HMAC-SHA256 keyed with the client secret over "{t}." and the raw body}` (hex is what the
/// documented example shows).
fn event(sim: &Simulator, open_id: &str, event: &str, content: &Value) -> Option<Notice> {
    let client = sim.first_client(SLUG)?;
    let now = sim.now().timestamp();
    let body = ordered_json(&[
        ("client_key", json!(client.client_id)),
        ("event", json!(event)),
        ("create_time", json!(now)),
        ("user_openid", json!(open_id)),
        ("content", json!(content.to_string())),
    ]);
    let signed = format!("{now}.{body}");
    let signature = hex::encode(hmac_sha256(
        client.client_secret.as_bytes(),
        signed.as_bytes(),
    ));
    Some(Notice {
        receiver: WEBHOOKS,
        content_type: "application/json",
        body,
        headers: vec![(
            "TikTok-Signature".to_owned(),
            format!("t={now},s={signature}"),
        )],
    })
}

/// `authorization.removed` for `open_id`, reason 1 (the user disconnected) [T25].
pub(super) fn removal(sim: &Simulator, open_id: &str) -> Option<Notice> {
    event(
        sim,
        open_id,
        "authorization.removed",
        &json!({ "reason": USER_DISCONNECTED }),
    )
}

impl Simulator {
    /// Posts a TikTok webhook event for the user `account_open_id` to `tiktok/webhooks`, signed
    /// [T25, T26]: e.g. `post.publish.complete` with `{"publish_id": .., "publish_type":
    /// "DIRECT_POST"}` [T27]. `content` is sent serialised as a string, as TikTok does.
    pub fn send_tiktok_event(&self, account_open_id: &str, event_name: &str, content: Value) {
        if let Some(notice) = event(self, account_open_id, event_name, &content) {
            self.send_notice(SLUG, notice);
        }
    }
}
