//! The platforms' notices, received end to end: each request signed here by Python's standard
//! library (never by the service's code), sent to the receiver, and its effect read back from the
//! API, the audit trail and the database. Bad signatures, stale timestamps, malformed and
//! oversized bodies store nothing and change nothing; a redelivery is stored once.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{credentials, python_hmac_sha256_hex, spawn_app, TestApp};

/// Runs a Python script with arguments, returning its stdout: the independent signer.
fn python(script: &str, args: &[&str]) -> String {
    let output = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3 signs the test notices: install it (apt-get install python3)");
    assert!(output.status.success(), "python3 failed: {output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// Meta's `signed_request` for `payload`, built as Meta's PHP SDK reads it [M28]: base64url
/// (unpadded) of HMAC-SHA256 over the base64url payload, a dot, the payload.
fn meta_signed_request(secret: &str, payload: &Value) -> String {
    python(
        "import base64, hmac, hashlib, sys\n\
         p = base64.urlsafe_b64encode(sys.argv[2].encode()).rstrip(b'=')\n\
         s = base64.urlsafe_b64encode(hmac.new(sys.argv[1].encode(), p, hashlib.sha256).digest()).rstrip(b'=')\n\
         print((s + b'.' + p).decode())",
        &[secret, &payload.to_string()],
    )
}

/// base64 HMAC-SHA256, as X signs [X14].
fn python_hmac_base64(secret: &str, message: &str) -> String {
    python(
        "import base64, hmac, hashlib, sys\n\
         print(base64.b64encode(hmac.new(sys.argv[1].encode(), sys.argv[2].encode(), hashlib.sha256).digest()).decode())",
        &[secret, message],
    )
}

async fn connect(app: &TestApp, platform: &str, store: &str) -> Value {
    let result = app.run_flow(platform, store, true).await;
    assert_eq!(result["connection"], "success", "{platform}: {result:?}");
    connection(app, store, platform).await.expect("connected")
}

async fn connection(app: &TestApp, store: &str, platform: &str) -> Option<Value> {
    app.connections(store).await["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == platform)
        .cloned()
}

/// Waits until `check` holds of the store's connection on `platform` (or its absence).
async fn until(
    app: &TestApp,
    store: &str,
    platform: &str,
    check: impl Fn(Option<&Value>) -> bool,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let current = connection(app, store, platform).await;
        if check(current.as_ref()) {
            return current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the {platform} connection of {store} never changed as expected: {current:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn removed(c: Option<&Value>) -> bool {
    c.is_some_and(|c| c["status"] == "REVOKED")
}

async fn db(app: &TestApp) -> sqlx::PgConnection {
    let url = &app.database.as_ref().expect("PostgreSQL").url;
    <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap()
}

/// `(kind, outcome, account_id, payload)` of a stored notice.
type StoredRow = (String, Option<String>, Option<String>, Value);

/// `(kind, outcome, account_id, payload)` of every stored notice of `platform`.
async fn stored(app: &TestApp, platform: &str) -> Vec<StoredRow> {
    type Row = (
        String,
        Option<String>,
        Option<String>,
        sqlx::types::Json<Value>,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "select kind, outcome, account_id, payload from platform_events where platform = $1 order by received_at",
    )
    .bind(platform)
    .fetch_all(&mut db(app).await)
    .await
    .unwrap();
    rows.into_iter()
        .map(|(k, o, a, p)| (k, o, a, p.0))
        .collect()
}

async fn outbox(app: &TestApp, event_type: &str) -> Vec<Value> {
    let rows: Vec<(sqlx::types::Json<Value>,)> = sqlx::query_as(
        "select payload from webhook_outbox where event_type = $1 order by created_at, id",
    )
    .bind(event_type)
    .fetch_all(&mut db(app).await)
    .await
    .unwrap();
    rows.into_iter().map(|(p,)| p.0).collect()
}

async fn post_form(app: &TestApp, path: &str, signed: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url(path))
        .form(&[("signed_request", signed)])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn a_meta_deauthorize_callback_revokes_the_connection_at_once_and_a_redelivery_changes_nothing(
) {
    let app = spawn_app().await;
    let meta = connect(&app, "meta", "shop-deauth").await;
    let asid = meta["account_id"].as_str().unwrap().to_owned();
    let (_, secret) = credentials("meta");
    let signed = meta_signed_request(
        &secret,
        &json!({ "algorithm": "HMAC-SHA256", "issued_at": 1_765_000_000, "user_id": asid }),
    );

    let response = post_form(&app, "/api/v1/platform-events/meta/deauthorize", &signed).await;
    assert_eq!(response.status(), 200);
    let card = until(&app, "shop-deauth", "meta", removed).await.unwrap();
    assert_eq!(
        card["health"]["last_error"], "removed_at_platform",
        "{card}"
    );
    // No token is handed out any more, and the row holds none.
    let token = app
        .get("/api/v1/oauth/token/meta?store_id=shop-deauth")
        .await;
    assert_eq!(token.status(), 409, "{:?}", token.text().await);
    let sealed: (Option<String>, Option<chrono::DateTime<chrono::Utc>>) = sqlx::query_as(
        "select sealed_tokens, next_refresh_at from platform_connections where store_id = 'shop-deauth'",
    )
    .fetch_one(&mut db(&app).await)
    .await
    .unwrap();
    assert_eq!(sealed, (None, None), "tokens deleted, refreshes stopped");
    let revoked = outbox(&app, "connection.revoked").await;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["reason"], "removed_at_platform");
    // The worker records the audit row just after the write the card shows.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        assert!(app.services.audit.flush(Duration::from_secs(5)).await);
        let audit: Value = app
            .get("/api/v1/audit?store_id=shop-deauth&limit=50")
            .await
            .json()
            .await
            .unwrap();
        let found = audit["entries"].as_array().unwrap().iter().any(|e| {
            e["operation"] == "platform_removal"
                && e["actor_kind"] == "platform"
                && e["actor"] == "meta"
        });
        if found {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no platform_removal audit row: {audit}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Meta sends it again: acknowledged, stored once, nothing more happens.
    let again = post_form(&app, "/api/v1/platform-events/meta/deauthorize", &signed).await;
    assert_eq!(again.status(), 200);
    let rows = stored(&app, "meta").await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1.as_deref(), Some("processed"));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(outbox(&app, "connection.revoked").await.len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_bad_signature_a_wrong_algorithm_and_a_malformed_body_store_nothing_and_change_nothing() {
    let app = spawn_app().await;
    let meta = connect(&app, "meta", "shop-forged").await;
    let asid = meta["account_id"].as_str().unwrap().to_owned();
    let payload = json!({ "algorithm": "HMAC-SHA256", "issued_at": 1, "user_id": asid });
    let forged = meta_signed_request("not-the-app-secret", &payload);
    let response = post_form(&app, "/api/v1/platform-events/meta/deauthorize", &forged).await;
    assert_eq!(response.status(), 401);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_signature");

    let (_, secret) = credentials("meta");
    let wrong_algorithm = meta_signed_request(
        &secret,
        &json!({ "algorithm": "HMAC-SHA1", "issued_at": 1, "user_id": asid }),
    );
    let response = post_form(
        &app,
        "/api/v1/platform-events/meta/deauthorize",
        &wrong_algorithm,
    )
    .await;
    assert_eq!(response.status(), 400);

    // A webhook whose signature is right but whose body is not JSON.
    let body = "{not json";
    let signature = python_hmac_sha256_hex(secret.as_bytes(), body.as_bytes());
    let response = reqwest::Client::new()
        .post(app.url("/api/v1/platform-events/meta/webhooks"))
        .header("X-Hub-Signature-256", format!("sha256={signature}"))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_event");

    // Larger than any platform sends.
    let huge = vec![b'x'; 3 << 20];
    let response = reqwest::Client::new()
        .post(app.url("/api/v1/platform-events/tiktok/webhooks"))
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);

    let response = app.get("/api/v1/platform-events/pinterest/webhooks").await;
    assert_eq!(response.status(), 404, "Pinterest sends no notices");

    assert!(stored(&app, "meta").await.is_empty());
    let card = connection(&app, "shop-forged", "meta").await.unwrap();
    assert_eq!(card["status"], "CONNECTED");
    app.stop().await;
}

#[tokio::test]
async fn a_meta_data_deletion_request_deletes_the_account_everywhere_and_answers_its_status_page() {
    let app = spawn_app().await;
    let meta = connect(&app, "meta", "shop-delete-a").await;
    connect(&app, "meta", "shop-delete-b").await;
    let asid = meta["account_id"].as_str().unwrap().to_owned();
    let (_, secret) = credentials("meta");
    let signed = meta_signed_request(
        &secret,
        &json!({ "algorithm": "HMAC-SHA256", "expires": 1_765_003_600, "issued_at": 1_765_000_000, "user_id": asid }),
    );
    let response = post_form(&app, "/api/v1/platform-events/meta/data-deletion", &signed).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let code = answer["confirmation_code"].as_str().unwrap().to_owned();
    assert!(code.chars().all(|c| c.is_ascii_alphanumeric()) && !code.is_empty());
    let url = answer["url"].as_str().unwrap().to_owned();
    assert_eq!(
        url,
        app.url(&format!(
            "/api/v1/platform-events/meta/data-deletion/{code}"
        ))
    );

    for store in ["shop-delete-a", "shop-delete-b"] {
        until(&app, store, "meta", |c| c.is_none()).await;
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let page = loop {
        let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if page.contains("Completed") || tokio::time::Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(page.contains("Completed") && page.contains(&code), "{page}");
    assert!(page.contains("2 connections"), "{page}");
    // The notice keeps nothing personal once done; a redelivery gets the same code.
    let rows = stored(&app, "meta").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].2, None, "account id scrubbed");
    assert_eq!(rows[0].3, json!({}), "payload scrubbed");
    let again: Value = post_form(&app, "/api/v1/platform-events/meta/data-deletion", &signed)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["confirmation_code"], code.as_str());
    let left: (i64,) = sqlx::query_as(
        "select count(*) from platform_connections where platform = 'meta' and account_id = $1",
    )
    .bind(&asid)
    .fetch_one(&mut db(&app).await)
    .await
    .unwrap();
    assert_eq!(left.0, 0);
    let assets: (i64,) = sqlx::query_as("select count(*) from connection_assets")
        .fetch_one(&mut db(&app).await)
        .await
        .unwrap();
    assert_eq!(
        assets.0, 0,
        "the pages and accounts went with their connections"
    );
    let deleted = outbox(&app, "connection.deleted").await;
    assert_eq!(deleted.len(), 2);
    for event in &deleted {
        assert_eq!(event["reason"], "data_deletion_request");
        assert_eq!(event["connection"]["account_id"], Value::Null, "{event}");
        assert_eq!(event["connection"]["account_name"], Value::Null, "{event}");
    }
    let unknown = reqwest::get(app.url("/api/v1/platform-events/meta/data-deletion/NOSUCHCODE"))
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn the_meta_webhook_handshake_echoes_the_challenge_only_for_the_right_verify_token() {
    let app = spawn_app().await;
    let ok = app
        .get("/api/v1/platform-events/meta/webhooks?hub.mode=subscribe&hub.verify_token=sandbox-meta-verify-token&hub.challenge=1158201444")
        .await;
    // The tests' Meta is the standalone simulator with its own credentials: no verify token is
    // configured for it, so the handshake is refused until one is.
    assert_eq!(ok.status(), 503, "{:?}", ok.text().await);
    app.stop().await;

    let app = crate::helpers::spawn_app_with(crate::helpers::TestAppOptions {
        extra_env: vec![("META_WEBHOOK_VERIFY_TOKEN", "verify-me-42".into())],
        ..Default::default()
    })
    .await;
    let ok = app
        .get("/api/v1/platform-events/meta/webhooks?hub.mode=subscribe&hub.verify_token=verify-me-42&hub.challenge=1158201444")
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = app
        .get("/api/v1/platform-events/meta/webhooks?hub.mode=subscribe&hub.verify_token=verify-me-43&hub.challenge=1")
        .await;
    assert_eq!(wrong.status(), 401);
    app.stop().await;
}

#[tokio::test]
async fn meta_page_and_permission_webhooks_are_forwarded_or_change_the_granted_scopes() {
    let app = spawn_app().await;
    let meta = connect(&app, "meta", "shop-hooks").await;
    let asid = meta["account_id"].as_str().unwrap().to_owned();
    let page_id = meta["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == "facebook_page")
        .expect("the sandbox's pages are discovered")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, secret) = credentials("meta");
    let body = json!({
        "object": "page",
        "entry": [
            { "id": page_id, "time": 1_765_000_000, "changes": [{ "field": "feed", "value": { "item": "comment", "verb": "add", "message": "Nice!" } }] },
            { "id": "999999999", "time": 1_765_000_000, "changes": [{ "field": "feed", "value": { "item": "post" } }] }
        ]
    })
    .to_string();
    let send = |body: String| {
        let signature = python_hmac_sha256_hex(secret.as_bytes(), body.as_bytes());
        reqwest::Client::new()
            .post(app.url("/api/v1/platform-events/meta/webhooks"))
            .header("X-Hub-Signature-256", format!("sha256={signature}"))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_eq!(send(body).await.unwrap().status(), 200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let forwarded = loop {
        let events = outbox(&app, "platform.event").await;
        if !events.is_empty() || tokio::time::Instant::now() > deadline {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        forwarded.len(),
        1,
        "only the known page's entry: {forwarded:?}"
    );
    assert_eq!(forwarded[0]["store_id"], "shop-hooks");
    assert_eq!(forwarded[0]["account"], page_id.as_str());
    assert_eq!(forwarded[0]["event_type"], "page.feed");
    assert_eq!(forwarded[0]["event"]["value"]["message"], "Nice!");
    let outcomes: Vec<Option<String>> = stored(&app, "meta")
        .await
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert!(outcomes.contains(&Some("unmatched".into())), "{outcomes:?}");

    // A permission revoked at Meta leaves the granted scopes and joins the missing ones.
    let revoke = json!({
        "object": "permissions",
        "entry": [{ "id": asid, "time": 1_765_000_100, "changes": [{ "field": "pages_show_list", "value": { "verb": "revoked" } }] }]
    })
    .to_string();
    assert_eq!(send(revoke).await.unwrap().status(), 200);
    let card = until(&app, "shop-hooks", "meta", |c| {
        c.is_some_and(|c| {
            c["missing_scopes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == "pages_show_list")
        })
    })
    .await
    .unwrap();
    assert!(!card["scopes"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s == "pages_show_list"));
    assert_eq!(card["status"], "CONNECTED");
    app.stop().await;
}

#[tokio::test]
async fn tiktok_authorization_removed_is_verified_with_its_timestamp_and_revokes_the_creator() {
    let app = spawn_app().await;
    let tiktok = connect(&app, "tiktok", "shop-tt").await;
    let open_id = tiktok["account_id"].as_str().unwrap().to_owned();
    let (client_key, secret) = credentials("tiktok");
    let now = chrono::Utc::now().timestamp();
    let body = json!({
        "client_key": client_key,
        "event": "authorization.removed",
        "create_time": now,
        "user_openid": open_id,
        "content": "{\"reason\":1}",
    })
    .to_string();
    let sign = |t: i64| {
        let s = python_hmac_sha256_hex(secret.as_bytes(), format!("{t}.{body}").as_bytes());
        format!("t={t},s={s}")
    };
    let post = |signature: String| {
        reqwest::Client::new()
            .post(app.url("/api/v1/platform-events/tiktok/webhooks"))
            .header("TikTok-Signature", signature)
            .body(body.clone())
            .send()
    };
    let stale = post(sign(now - 3600)).await.unwrap();
    assert_eq!(stale.status(), 401);
    let stale: Value = stale.json().await.unwrap();
    assert_eq!(stale["error"]["code"], "stale_signature");
    let tampered = post(sign(now).replace("s=", "s=00")).await.unwrap();
    assert_eq!(tampered.status(), 401);
    assert_eq!(
        connection(&app, "shop-tt", "tiktok").await.unwrap()["status"],
        "CONNECTED"
    );

    assert_eq!(post(sign(now)).await.unwrap().status(), 200);
    until(&app, "shop-tt", "tiktok", removed).await;
    app.stop().await;
}

#[tokio::test]
async fn x_answers_its_crc_and_an_oauth_revoke_revokes_the_user() {
    let app = spawn_app().await;
    let x = connect(&app, "twitter", "shop-x").await;
    let user_id = x["account_id"].as_str().unwrap().to_owned();
    let (_, secret) = credentials("twitter");
    let crc: Value = app
        .get("/api/v1/platform-events/twitter/webhooks?crc_token=challenge-123")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        crc["response_token"],
        format!("sha256={}", python_hmac_base64(&secret, "challenge-123"))
    );
    let body = json!({ "data": {
        "event_uuid": "1946393475221405696",
        "filter": { "user_id": user_id },
        "event_type": "oauth.revoke",
        "tag": "",
        "payload": { "date_time": "2026-12-07T10:00:00Z", "user_id": user_id, "app_id": "123" }
    }})
    .to_string();
    let response = reqwest::Client::new()
        .post(app.url("/api/v1/platform-events/twitter/webhooks"))
        .header(
            "x-twitter-webhooks-signature",
            format!("sha256={}", python_hmac_base64(&secret, &body)),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    until(&app, "shop-x", "twitter", removed).await;
    app.stop().await;
}

#[tokio::test]
async fn a_notice_claimed_by_a_replica_that_died_is_processed_by_another_when_its_lease_ends() {
    use growth_engine::store::NewPlatformEvent;
    let first = spawn_app().await;
    let tiktok = connect(&first, "tiktok", "shop-crash").await;
    let open_id = tiktok["account_id"].as_str().unwrap().to_owned();
    // What a receiver stored: due in a moment (this replica's worker is woken only by what it
    // receives itself, and polls).
    let store = first.services.store.clone();
    let inserted = store
        .insert_platform_events(&[NewPlatformEvent {
            platform: growth_engine::domain::PlatformId::parse("tiktok").unwrap(),
            dedupe_key: "sha256:crash".into(),
            receiver: "webhooks".into(),
            kind: "removal".into(),
            event_type: "authorization.removed".into(),
            account_kind: Some("user".into()),
            account_id: Some(open_id),
            payload: json!({ "content": { "reason": 1 } }),
            occurred_at: None,
            received_at: chrono::Utc::now() + chrono::Duration::milliseconds(500),
        }])
        .await
        .unwrap();
    assert_eq!(inserted, vec![true]);
    // A replica claims it and dies before acting: its claim holds the row for the lease only.
    let due = chrono::Utc::now() + chrono::Duration::seconds(1);
    let claimed = store
        .claim_platform_events(due, due + chrono::Duration::seconds(1), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "the dead replica's claim");
    assert_eq!(
        connection(&first, "shop-crash", "tiktok").await.unwrap()["status"],
        "CONNECTED"
    );
    // When the lease ends, the live worker takes it up and acts.
    until(&first, "shop-crash", "tiktok", removed).await;
    let rows = stored(&first, "tiktok").await;
    assert_eq!(rows[0].1.as_deref(), Some("processed"));
    let attempts: (i32,) = sqlx::query_as("select attempts from platform_events")
        .fetch_one(&mut db(&first).await)
        .await
        .unwrap();
    assert_eq!(
        attempts.0, 2,
        "claimed by the dead replica, then by the live one"
    );
    first.stop().await;
}

/// A security event token signed by `openssl` with the key in `key_pem`: header and claims
/// base64url-encoded, the RS256 signature over `header.claims` made by `openssl dgst -sign`.
fn openssl_signed_jwt(key_pem: &std::path::Path, kid: &str, claims: &Value) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let header = json!({ "alg": "RS256", "typ": "secevent+jwt", "kid": kid });
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let dir = key_pem.parent().unwrap();
    let input = dir.join(format!("input-{kid}"));
    std::fs::write(&input, &signing_input).unwrap();
    let output = std::process::Command::new("openssl")
        .args(["dgst", "-sha256", "-sign"])
        .arg(key_pem)
        .arg(&input)
        .output()
        .expect("openssl signs the test tokens: install it (apt-get install openssl)");
    assert!(output.status.success(), "openssl failed: {output:?}");
    format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(output.stdout))
}

/// An RSA key made by `openssl genrsa`, and its public JWK (`n` from `openssl rsa -modulus`).
fn openssl_rsa_key(dir: &std::path::Path, kid: &str) -> (std::path::PathBuf, Value) {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let path = dir.join(format!("{kid}.pem"));
    let made = std::process::Command::new("openssl")
        .args(["genrsa", "-out"])
        .arg(&path)
        .arg("2048")
        .output()
        .expect("openssl genrsa");
    assert!(made.status.success(), "{made:?}");
    let modulus = std::process::Command::new("openssl")
        .args(["rsa", "-noout", "-modulus", "-in"])
        .arg(&path)
        .output()
        .expect("openssl rsa");
    let text = String::from_utf8(modulus.stdout).unwrap();
    let hex_n = text.trim().strip_prefix("Modulus=").expect("a modulus");
    let n = URL_SAFE_NO_PAD.encode(hex::decode(hex_n).unwrap());
    let jwk =
        json!({ "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": n, "e": "AQAB" });
    (path, jwk)
}

#[tokio::test]
async fn a_google_security_event_token_is_verified_against_the_published_keys_and_revokes_the_account(
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = tempfile::tempdir().unwrap();
    let (key, jwk) = openssl_rsa_key(dir.path(), "key-1");
    let (other_key, _) = openssl_rsa_key(dir.path(), "key-2");
    // Google's RISC configuration and JWKS, served here.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fetches = Arc::new(AtomicUsize::new(0));
    let counted = fetches.clone();
    let jwks = json!({ "keys": [jwk] });
    let discovery =
        json!({ "issuer": "https://accounts.google.com/", "jwks_uri": format!("{base}/certs") });
    let keys_server = axum::Router::new()
        .route(
            "/risc-configuration",
            axum::routing::get(move || async move { axum::Json(discovery) }),
        )
        .route(
            "/certs",
            axum::routing::get(move || {
                counted.fetch_add(1, Ordering::SeqCst);
                async move { axum::Json(jwks) }
            }),
        );
    tokio::spawn(async move { axum::serve(listener, keys_server).await });
    let app = crate::helpers::spawn_app_with(crate::helpers::TestAppOptions {
        extra_env: vec![(
            "GOOGLE_EVENT_KEYS_URL",
            format!("{base}/risc-configuration"),
        )],
        ..Default::default()
    })
    .await;
    let google = connect(&app, "google", "shop-risc").await;
    let sub = google["account_id"].as_str().unwrap().to_owned();
    let (client_id, _) = credentials("google");
    let claims = |aud: &str, jti: &str, event: &str| {
        json!({
            "iss": "https://accounts.google.com/",
            "aud": aud,
            "iat": 1_765_000_000,
            "jti": jti,
            "events": { format!("https://schemas.openid.net/secevent/{event}"): {
                "subject": { "subject_type": "iss-sub", "iss": "https://accounts.google.com/", "sub": sub }
            }}
        })
    };
    let post = |token: String| {
        reqwest::Client::new()
            .post(app.url("/api/v1/platform-events/google/risc"))
            .header("content-type", "application/secevent+jwt")
            .body(token)
            .send()
    };
    let wrong_audience = openssl_signed_jwt(
        &key,
        "key-1",
        &claims("someone-else", "j0", "oauth/event-type/tokens-revoked"),
    );
    assert_eq!(post(wrong_audience).await.unwrap().status(), 401);
    let wrong_key = openssl_signed_jwt(
        &other_key,
        "key-1",
        &claims(&client_id, "j1", "oauth/event-type/tokens-revoked"),
    );
    assert_eq!(post(wrong_key).await.unwrap().status(), 401);
    let unknown_kid = openssl_signed_jwt(
        &other_key,
        "key-2",
        &claims(&client_id, "j2", "oauth/event-type/tokens-revoked"),
    );
    assert_eq!(post(unknown_kid).await.unwrap().status(), 401);
    assert_eq!(
        connection(&app, "shop-risc", "google").await.unwrap()["status"],
        "CONNECTED"
    );

    let verification = openssl_signed_jwt(
        &key,
        "key-1",
        &claims(&client_id, "j3", "risc/event-type/verification"),
    );
    assert_eq!(post(verification).await.unwrap().status(), 202);
    let revoked = openssl_signed_jwt(
        &key,
        "key-1",
        &claims(&client_id, "j4", "oauth/event-type/tokens-revoked"),
    );
    assert_eq!(post(revoked.clone()).await.unwrap().status(), 202);
    until(&app, "shop-risc", "google", removed).await;
    // Google redelivers: deduplicated by `jti`.
    assert_eq!(post(revoked).await.unwrap().status(), 202);
    let rows = stored(&app, "google").await;
    assert_eq!(
        rows.len(),
        2,
        "the verification and the revocation, once each: {rows:?}"
    );
    // The key set was fetched for the first token and again for the unknown kid, no more.
    assert!(
        fetches.load(Ordering::SeqCst) <= 2,
        "{}",
        fetches.load(Ordering::SeqCst)
    );
    app.stop().await;
}

/// The `response` of the sandbox's last delivery to `receiver` of `platform`, once answered.
async fn delivered(
    app: &TestApp,
    platform: &str,
    receiver: &str,
) -> growth_engine::sandbox::EventDelivery {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let answered = app
            .simulator
            .event_deliveries(platform)
            .into_iter()
            .rev()
            .find(|d| d.receiver == receiver && d.status.is_some());
        if let Some(delivery) = answered {
            return delivery;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{platform} never delivered to {receiver}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn removing_the_app_in_the_sandbox_revokes_the_connection_on_every_platform_that_says_so() {
    let app = spawn_app().await;
    let senders = ["meta", "tiktok", "google", "twitter"];
    for platform in senders.iter().chain(&["pinterest", "linkedin"]) {
        let connection = connect(&app, platform, "shop-sbx").await;
        let account = connection["account_id"].as_str().unwrap();
        assert!(
            app.simulator.remove_app(platform, account),
            "{platform}: {account}"
        );
    }
    for platform in senders {
        until(&app, "shop-sbx", platform, removed).await;
        assert_eq!(
            delivered(
                &app,
                platform,
                match platform {
                    "meta" => "deauthorize",
                    "google" => "risc",
                    _ => "webhooks",
                }
            )
            .await
            .status
            .map(|s| s / 100),
            Some(2),
            "{platform}"
        );
    }
    // Pinterest and LinkedIn send no notice: their cards learn it on use.
    for platform in ["pinterest", "linkedin"] {
        assert!(app.simulator.event_deliveries(platform).is_empty());
        assert_eq!(
            connection(&app, "shop-sbx", platform).await.unwrap()["status"],
            "CONNECTED"
        );
    }
    // A redelivery is acknowledged and stored once.
    let before = stored(&app, "tiktok").await.len();
    app.simulator.redeliver_last_event("tiktok");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app.simulator.event_deliveries("tiktok").len() < 2 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        delivered(&app, "tiktok", "webhooks").await.status,
        Some(200)
    );
    assert_eq!(stored(&app, "tiktok").await.len(), before);
    app.stop().await;
}

#[tokio::test]
async fn the_sandboxs_data_deletion_request_gets_a_code_whose_page_says_completed() {
    let app = spawn_app().await;
    let meta = connect(&app, "meta", "shop-sbx-delete").await;
    app.simulator
        .request_data_deletion(meta["account_id"].as_str().unwrap());
    let answer: Value = serde_json::from_str(
        &delivered(&app, "meta", "data-deletion")
            .await
            .response
            .unwrap(),
    )
    .unwrap();
    let url = answer["url"].as_str().unwrap().to_owned();
    until(&app, "shop-sbx-delete", "meta", |c| c.is_none()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = reqwest::get(&url).await.unwrap().text().await.unwrap();
        if page.contains("Completed") {
            assert!(page.contains(answer["confirmation_code"].as_str().unwrap()));
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn the_sandboxs_challenges_pass_and_a_selected_page_is_subscribed_to_its_feed() {
    let app = crate::helpers::spawn_app_with(crate::helpers::TestAppOptions {
        extra_env: vec![("META_WEBHOOK_VERIFY_TOKEN", "verify-me-42".into())],
        ..Default::default()
    })
    .await;
    assert_eq!(
        app.simulator.verify_meta_webhook("verify-me-42").await,
        Ok(true)
    );
    assert_eq!(
        app.simulator.verify_meta_webhook("another").await,
        Ok(false)
    );
    assert_eq!(app.simulator.check_x_crc().await, Ok(true));
    assert_eq!(app.simulator.check_linkedin_challenge().await, Ok(true));

    let meta = connect(&app, "meta", "shop-sub").await;
    let pages: Vec<String> = meta["assets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "facebook_page")
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(pages.len() >= 2, "{meta}");
    for page in &pages {
        let response = reqwest::Client::new()
            .put(app.url("/api/v1/oauth/connections/shop-sub/meta/selection"))
            .bearer_auth(crate::helpers::API_KEY)
            .json(&json!({ "kind": "facebook_page", "id": page }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text().await);
    }
    // The last page chosen is subscribed to its feed; the one it replaced no longer is.
    let subscriptions = app.simulator.meta_page_subscriptions();
    let last = pages.last().unwrap();
    assert_eq!(
        subscriptions,
        vec![(last.clone(), vec!["feed".to_owned()])],
        "{subscriptions:?}"
    );
    // A disconnect unsubscribes it before revoking the grant.
    let disconnected = app
        .delete("/api/v1/oauth/disconnect/meta?store_id=shop-sub&user_id=u")
        .await;
    assert_eq!(disconnected.status(), 200);
    assert_eq!(app.simulator.meta_page_subscriptions(), vec![]);
    app.stop().await;
}

#[tokio::test]
async fn the_embedded_default_receives_stores_and_acts_on_notices_too() {
    let app = crate::helpers::spawn_app_with(crate::helpers::TestAppOptions {
        backend: crate::helpers::Backend::Embedded,
        ..Default::default()
    })
    .await;
    let tiktok = connect(&app, "tiktok", "shop-lite").await;
    app.simulator
        .remove_app("tiktok", tiktok["account_id"].as_str().unwrap());
    until(&app, "shop-lite", "tiktok", removed).await;
    app.simulator.redeliver_last_event("tiktok");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while app
        .simulator
        .event_deliveries("tiktok")
        .iter()
        .filter(|d| d.status == Some(200))
        .count()
        < 2
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the redelivery was not acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let metrics = app.get("/metrics").await.text().await.unwrap();
    let count = |outcome: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("growth_engine_platform_events_total{")
                    && l.contains("platform=\"tiktok\"")
                    && l.contains("kind=\"removal\"")
                    && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    assert_eq!(count("stored"), Some(1.0), "{metrics}");
    assert_eq!(count("duplicate"), Some(1.0), "{metrics}");
    assert_eq!(count("processed"), Some(1.0), "{metrics}");
    app.stop().await;
}
