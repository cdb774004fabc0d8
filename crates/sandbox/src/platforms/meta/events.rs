//! Meta's notices to the app: the Deauthorize callback and the Data Deletion Request callback,
//! both a form POST of a `signed_request` [M26, M28, M29]; Graph webhooks signed with
//! `X-Hub-Signature-256` [M31], the `permissions` topic among them [M30]; and the verification
//! request Meta sends to a webhook endpoint before using it [M31].
//!
//! Receivers (under the app's event base): `meta/deauthorize`, `meta/data-deletion`,
//! `meta/webhooks`. Every notice is signed with the app secret of the first Meta client
//! registered; without one nothing is sent.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use super::oauth::{account_identity, SLUG};
use crate::events::{hmac_sha256, ordered_json, ANSWER_TIMEOUT};
use crate::outbox::Notice;
use crate::state::{GrantView, Simulator};

const DEAUTHORIZE: &str = "deauthorize";
const DATA_DELETION: &str = "data-deletion";
const WEBHOOKS: &str = "webhooks";

/// A data deletion request's `expires`: the official decoded example has `issued_at` + 3600
/// [M29].
const DELETION_VALID_SECONDS: i64 = 3600;

/// The app secret that signs Meta's notices.
fn app_secret(sim: &Simulator) -> Option<String> {
    sim.first_client(SLUG)
        .map(|client| client.client_secret.clone())
}

/// A `signed_request` [M28]: base64url (no padding) of HMAC-SHA256 keyed with the app secret over
/// the still-encoded payload, a `.`, then the payload, base64url (no padding) of the JSON.
fn signed_request(secret: &str, payload: &str) -> String {
    let payload = URL_SAFE_NO_PAD.encode(payload);
    let signature = URL_SAFE_NO_PAD.encode(hmac_sha256(secret.as_bytes(), payload.as_bytes()));
    format!("{signature}.{payload}")
}

/// A form POST of `signed_request` to `receiver`. The field name is documented for the deletion
/// callback [M29]; for the deauthorize callback it is the 3rd-party reading [M38].
fn signed_request_notice(receiver: &'static str, secret: &str, payload: &str) -> Notice {
    let form = [("signed_request", signed_request(secret, payload))];
    Notice {
        receiver,
        content_type: "application/x-www-form-urlencoded",
        body: serde_urlencoded::to_string(form).unwrap_or_default(),
        headers: Vec::new(),
    }
}

/// The Deauthorize callback for `asid` (the app-scoped user id, a string [M29]): `algorithm`,
/// `issued_at`, `user_id`, no `expires`, nothing else (no token, permission or Page [M26, M38]).
pub(super) fn deauthorize(sim: &Simulator, asid: &str) -> Option<Notice> {
    let secret = app_secret(sim)?;
    let payload = ordered_json(&[
        ("algorithm", json!("HMAC-SHA256")),
        ("issued_at", json!(sim.now().timestamp())),
        ("user_id", json!(asid)),
    ]);
    Some(signed_request_notice(DEAUTHORIZE, &secret, &payload))
}

/// The Data Deletion Request callback for `asid`, in the order of the official example
/// (`algorithm`, `expires`, `issued_at`, `user_id`) [M29].
fn data_deletion(sim: &Simulator, asid: &str) -> Option<Notice> {
    let secret = app_secret(sim)?;
    let issued_at = sim.now().timestamp();
    let payload = ordered_json(&[
        ("algorithm", json!("HMAC-SHA256")),
        ("expires", json!(issued_at + DELETION_VALID_SECONDS)),
        ("issued_at", json!(issued_at)),
        ("user_id", json!(asid)),
    ]);
    Some(signed_request_notice(DATA_DELETION, &secret, &payload))
}

/// A Graph webhook: JSON `{"object","entry"}` with `X-Hub-Signature-256: sha256=` and the
/// lower-case hex HMAC-SHA256 of the raw body keyed with the app secret [M31].
fn webhook(sim: &Simulator, object: &str, entries: Value) -> Option<Notice> {
    let secret = app_secret(sim)?;
    let body = ordered_json(&[("object", json!(object)), ("entry", entries)]);
    let signature = hex::encode(hmac_sha256(secret.as_bytes(), body.as_bytes()));
    Some(Notice {
        receiver: WEBHOOKS,
        content_type: "application/json",
        body,
        headers: vec![(
            "X-Hub-Signature-256".to_owned(),
            format!("sha256={signature}"),
        )],
    })
}

/// The live grants of the account whose app-scoped id is `asid`.
fn grants_of(sim: &Simulator, asid: &str) -> Vec<GrantView> {
    sim.live_grants(SLUG)
        .into_iter()
        .filter(|grant| account_identity(grant.account).0 == asid)
        .collect()
}

/// `asid` removes the app if it has not yet (its grants end, the Deauthorize callback goes out),
/// then sends the Data Deletion Request [M29]; returns the deletion's event number.
pub(super) fn request_deletion(sim: &Simulator, asid: &str) -> Option<u64> {
    let grants = grants_of(sim, asid);
    if !grants.is_empty() {
        sim.end_grants(SLUG, &grants);
        if let Some(notice) = deauthorize(sim, asid) {
            sim.send_notice(SLUG, notice);
        }
    }
    let notice = data_deletion(sim, asid)?;
    Some(sim.send_notice(SLUG, notice))
}

impl Simulator {
    /// The Meta account `account` (its app-scoped id, as `/me` answers it) asks the app to delete
    /// its data from Facebook's *Apps and Websites* settings [M29]: the app is removed first if it
    /// was not (its grants end, the Deauthorize callback is sent), then the Data Deletion Request
    /// callback is posted to `meta/data-deletion`. The app's answer (`{"url", "confirmation_code"}`)
    /// is the delivery's `response`.
    pub fn request_data_deletion(&self, account: &str) {
        request_deletion(self, account);
    }

    /// Posts a Graph webhook `{"object": object, "entry": entries}` to `meta/webhooks`, signed
    /// [M31]. `entries` is the `entry` array as sent (each with `id`, `time`, `changes`).
    pub fn send_meta_webhook(&self, object: &str, entries: Value) {
        if let Some(notice) = webhook(self, object, entries) {
            self.send_notice(SLUG, notice);
        }
    }

    /// Posts a `permissions` webhook [M30] for `account` (an app-scoped id): one entry
    /// `{"id", "time", "changes": [{"field": permission, "value": {"verb": verb}}]}`. `permission`
    /// is `connected` (verb `connected` / `disconnected`) or a permission such as
    /// `pages_show_list` (verb `granted` / `revoked`). The change is made too: a `revoked`
    /// permission leaves the account's grants (the API then refuses what needs it), a `granted`
    /// one joins them, and `disconnected` ends them (without the Deauthorize callback, which
    /// [`Simulator::remove_app`] sends).
    pub fn send_meta_permissions_change(&self, account: &str, permission: &str, verb: &str) {
        let grants = grants_of(self, account);
        match (permission, verb) {
            ("connected", "disconnected") => self.end_grants(SLUG, &grants),
            ("connected", _) => {}
            (_, "revoked" | "granted") => {
                for grant in &grants {
                    self.set_grant_scope(SLUG, grant, permission, verb == "granted");
                }
            }
            _ => {}
        }
        let entries = json!([{
            "id": account,
            "time": self.now().timestamp(),
            "changes": [{ "field": permission, "value": { "verb": verb } }],
        }]);
        self.send_meta_webhook("permissions", entries);
    }

    /// Sends Meta's webhook verification request to `meta/webhooks` [M31]: `GET
    /// ?hub.mode=subscribe&hub.verify_token={verify_token}&hub.challenge={a random integer}`.
    /// `Ok(true)` when the receiver answered 200 with exactly the challenge as its body;
    /// `Err` when no receiver is set or it could not be reached.
    pub async fn verify_meta_webhook(&self, verify_token: &str) -> Result<bool, String> {
        let challenge = (rand::random::<u32>() >> 1).max(1).to_string();
        let answer = self
            .challenge(
                SLUG,
                WEBHOOKS,
                &[
                    ("hub.mode", "subscribe"),
                    ("hub.verify_token", verify_token),
                    ("hub.challenge", &challenge),
                ],
                ANSWER_TIMEOUT,
            )
            .await?;
        Ok(answer.status == 200 && answer.body == challenge)
    }
}
