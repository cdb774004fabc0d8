//! Meta's inbound events (`shared/platform-events.md` §1): the deauthorize and data deletion
//! callbacks (`signed_request`), and Graph webhooks (the `hub.challenge` handshake, then POSTs
//! signed with `X-Hub-Signature-256`), with the page subscription a selected page needs.

use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use subtle::ConstantTimeEq;

use crate::platforms::discovery;
use crate::platforms::error::PlatformError;
use crate::platforms::events::{
    hmac_matches, unix_time, EventRejection, InboundRequest, Notice, NoticeAccount, NoticeKind,
    Receipt,
};
use crate::platforms::platform::{PlatformHttp, PlatformSpec};

/// The receivers, with what each receives.
pub(super) const RECEIVERS: &[(&str, &str)] = &[
    (
        "deauthorize",
        "Deauthorize Callback URL: a person removed the app",
    ),
    (
        "data-deletion",
        "Data Deletion Request URL: a person asked for their data to be deleted",
    ),
    (
        "webhooks",
        "Webhooks callback (permissions, page feed, Instagram comments and mentions)",
    ),
];

/// Reads a request to one of Meta's receivers.
pub(super) fn receive(
    spec: &PlatformSpec,
    request: &InboundRequest<'_>,
) -> Result<Receipt, EventRejection> {
    let secret = spec
        .event_signing_key()
        .ok_or(EventRejection::NotConfigured("META_APP_SECRET"))?;
    let post = request.method == http::Method::POST;
    match (request.receiver, post) {
        ("deauthorize", true) => signed_request_notice(secret, request, NoticeKind::Removal),
        ("data-deletion", true) => signed_request_notice(secret, request, NoticeKind::DataDeletion),
        ("webhooks", false) => handshake(spec, request),
        ("webhooks", true) => webhook_notices(secret, request),
        ("deauthorize" | "data-deletion", false) => Err(EventRejection::MethodNotAllowed),
        _ => Err(EventRejection::NoSuchReceiver),
    }
}

/// [M28, M29]: `signed_request` = base64url(HMAC-SHA256(app secret, payload)) "." payload, where
/// the MAC is over the still-encoded payload, checked before the payload is decoded; then
/// `algorithm` must be `HMAC-SHA256`. `user_id` is the app-scoped user id.
fn signed_request_notice(
    secret: &SecretString,
    request: &InboundRequest<'_>,
    kind: NoticeKind,
) -> Result<Receipt, EventRejection> {
    let form: Vec<(String, String)> = serde_urlencoded::from_bytes(request.body)
        .map_err(|_| EventRejection::Malformed("the body is not a form"))?;
    let signed = form
        .iter()
        .find(|(name, _)| name == "signed_request")
        .map(|(_, value)| value.as_str())
        .ok_or(EventRejection::BadSignature("no signed_request"))?;
    let payload = verify_signed_request(secret, signed)?;
    if payload["algorithm"].as_str() != Some("HMAC-SHA256") {
        return Err(EventRejection::Malformed(
            "the signed request's algorithm is not HMAC-SHA256",
        ));
    }
    let user_id = discovery::text(&payload, "user_id").ok_or(EventRejection::Malformed(
        "the signed request names no user_id",
    ))?;
    let issued_at = payload["issued_at"].as_i64();
    let event_type = match kind {
        NoticeKind::DataDeletion => "data_deletion_request",
        _ => "deauthorize",
    };
    Ok(Receipt::Notices(vec![Notice {
        kind,
        event_type: event_type.into(),
        account: Some(NoticeAccount::User(user_id.clone())),
        platform_id: None,
        occurred_at: issued_at.and_then(unix_time),
        payload: json!({ "user_id": user_id, "issued_at": issued_at }),
    }]))
}

/// The decoded payload of a `signed_request` whose signature is right.
pub(super) fn verify_signed_request(
    secret: &SecretString,
    signed: &str,
) -> Result<Value, EventRejection> {
    let (signature, payload) = signed.split_once('.').ok_or(EventRejection::BadSignature(
        "the signed request has no signature",
    ))?;
    let signature = base64url(signature).ok_or(EventRejection::BadSignature(
        "the signature is not base64url",
    ))?;
    if !hmac_matches(secret, &[payload.as_bytes()], &signature) {
        return Err(EventRejection::BadSignature(
            "the signed request's signature does not match",
        ));
    }
    let payload =
        base64url(payload).ok_or(EventRejection::Malformed("the payload is not base64url"))?;
    serde_json::from_slice(&payload)
        .map_err(|_| EventRejection::Malformed("the payload is not JSON"))
}

/// Meta sends base64url without padding; some tools pad it: both decode.
fn base64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
}

/// [M31]: `hub.mode=subscribe`, `hub.verify_token` equal to the setting, answered with
/// `hub.challenge`.
fn handshake(spec: &PlatformSpec, request: &InboundRequest<'_>) -> Result<Receipt, EventRejection> {
    let expected = spec
        .events
        .verify_token
        .as_ref()
        .ok_or(EventRejection::NotConfigured("META_WEBHOOK_VERIFY_TOKEN"))?;
    if request.query("hub.mode") != Some("subscribe") {
        return Err(EventRejection::Malformed("hub.mode must be subscribe"));
    }
    let presented = request.query("hub.verify_token").unwrap_or_default();
    if !bool::from(
        presented
            .as_bytes()
            .ct_eq(expected.expose_secret().as_bytes()),
    ) {
        return Err(EventRejection::BadSignature(
            "hub.verify_token does not match",
        ));
    }
    let challenge = request
        .query("hub.challenge")
        .ok_or(EventRejection::Malformed("no hub.challenge"))?;
    Ok(Receipt::Challenge {
        content_type: "text/plain",
        body: challenge.to_owned(),
    })
}

/// [M31]: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>`; then one notice
/// per change of each entry (a batch holds up to 1000).
fn webhook_notices(
    secret: &SecretString,
    request: &InboundRequest<'_>,
) -> Result<Receipt, EventRejection> {
    let header = request
        .header("x-hub-signature-256")
        .ok_or(EventRejection::BadSignature("no X-Hub-Signature-256"))?;
    let signature = header
        .strip_prefix("sha256=")
        .and_then(|hex_text| hex::decode(hex_text).ok())
        .ok_or(EventRejection::BadSignature(
            "X-Hub-Signature-256 is not sha256=<hex>",
        ))?;
    if !hmac_matches(secret, &[request.body], &signature) {
        return Err(EventRejection::BadSignature(
            "X-Hub-Signature-256 does not match",
        ));
    }
    let body = request.json()?;
    let object = body["object"]
        .as_str()
        .ok_or(EventRejection::Malformed("the notification has no object"))?;
    let entries = body["entry"].as_array().ok_or(EventRejection::Malformed(
        "the notification has no entry list",
    ))?;
    let mut notices = Vec::new();
    for entry in entries {
        entry_notices(object, entry, &mut notices);
    }
    Ok(Receipt::Notices(notices))
}

/// The notices of one entry: its `changes` (with values), else its `changed_fields`, else its
/// `messaging` items.
fn entry_notices(object: &str, entry: &Value, notices: &mut Vec<Notice>) {
    let Some(id) = discovery::text(entry, "id") else {
        return;
    };
    let time = entry["time"].as_i64();
    let fields: Vec<(String, Value)> = if let Some(changes) = entry["changes"].as_array() {
        changes
            .iter()
            .filter_map(|c| Some((c["field"].as_str()?.to_owned(), c["value"].clone())))
            .collect()
    } else if let Some(fields) = entry["changed_fields"].as_array() {
        fields
            .iter()
            .filter_map(|f| Some((f.as_str()?.to_owned(), Value::Null)))
            .collect()
    } else if let Some(messages) = entry["messaging"].as_array() {
        messages
            .iter()
            .map(|m| ("messages".to_owned(), m.clone()))
            .collect()
    } else {
        Vec::new()
    };
    for (field, value) in fields {
        let (kind, account) = classify(object, &field, &value, &id);
        notices.push(Notice {
            kind,
            event_type: format!("{object}.{field}"),
            account: Some(account),
            platform_id: None,
            occurred_at: time.and_then(unix_time),
            payload: json!({ "object": object, "id": id, "time": time, "field": field, "value": value }),
        });
    }
}

/// [M30, M28 of §1d]: the `permissions` topic speaks of the app-scoped user (`connected`
/// disconnected is a removal, a permission's `verb` a change of grant); pages, Instagram accounts
/// and ad accounts speak of assets, whose notices are content for the services.
fn classify(object: &str, field: &str, value: &Value, id: &str) -> (NoticeKind, NoticeAccount) {
    let user = || NoticeAccount::User(id.to_owned());
    match object {
        "permissions" if field == "connected" => {
            let verb = value["verb"].as_str().unwrap_or_default();
            let kind = if matches!(verb, "disconnected" | "revoked") {
                NoticeKind::Removal
            } else {
                NoticeKind::Other
            };
            (kind, user())
        }
        "permissions" => (NoticeKind::Permissions, user()),
        "user" | "application" => (NoticeKind::Other, user()),
        _ => (NoticeKind::Content, NoticeAccount::Asset(id.to_owned())),
    }
}

/// [M32]: `POST /{page-id}/subscribed_apps?subscribed_fields=...` with the page's token
/// subscribes it (only fields subscribed at both the app and the page level are delivered);
/// `DELETE` unsubscribes it. Both answer `{"success": true}`.
pub(super) async fn subscribe_page(
    http: &dyn PlatformHttp,
    spec: &PlatformSpec,
    page_id: &str,
    page_token: &SecretString,
    subscribe: bool,
) -> Result<(), PlatformError> {
    let mut url = discovery::api_url(spec, &format!("{page_id}/subscribed_apps"))?;
    let answer = if subscribe {
        url.query_pairs_mut()
            .append_pair("subscribed_fields", &spec.events.subscribe_fields.join(","));
        http.post_api(spec, url, page_token, &json!({})).await?
    } else {
        http.delete_api(spec, url, page_token).await?
    };
    if answer["success"].as_bool() != Some(true) {
        return Err(PlatformError::BadResponse {
            platform: spec.id.clone(),
            detail: "subscribed_apps did not answer success".into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of Meta's data deletion callback page [M29], signed with a known secret and
    /// checked against a value computed by Python's standard library:
    /// `base64.urlsafe_b64encode(hmac.new(b"app-secret", payload, hashlib.sha256).digest())`.
    #[test]
    fn a_signed_request_is_checked_over_the_encoded_payload() {
        let secret = SecretString::from("app-secret".to_owned());
        let payload = "eyJhbGdvcml0aG0iOiJITUFDLVNIQTI1NiIsImV4cGlyZXMiOjEyOTE4NDA0MDAsImlzc3VlZF9hdCI6MTI5MTgzNjgwMCwidXNlcl9pZCI6IjIxODQ3MSJ9";
        let signature = "jrp12ZijqTy2-9NDSsFcrvW7Yz9HUqinb-TuSFEekhs";
        let decoded = verify_signed_request(&secret, &format!("{signature}.{payload}")).unwrap();
        assert_eq!(decoded["user_id"], "218471");
        assert_eq!(decoded["algorithm"], "HMAC-SHA256");
        let wrong = SecretString::from("other".to_owned());
        assert!(matches!(
            verify_signed_request(&wrong, &format!("{signature}.{payload}")),
            Err(EventRejection::BadSignature(_))
        ));
    }
}
