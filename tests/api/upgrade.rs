//! What an upgrade must not break: artifacts written by an earlier build, kept in
//! `tests/fixtures/upgrade-reference.json` (made once, with the build of December 2026, from
//! throwaway keys), must read the same with this one: a sealed token set, an API key's stored hash
//! and a signed webhook. A change that makes them unreadable strands every stored connection, key
//! or receiver; it must come with a migration, not slip through.

use growth_engine::domain::{PlatformId, StoreId, TokenSet};
use growth_engine::store::{PgStore, Store};
use growth_engine::vault::{Binding, Key, Keyring};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::helpers::{fresh_database, python_hmac_sha256_hex};

fn reference() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/upgrade-reference.json"
    ))
    .expect("the reference artifacts");
    serde_json::from_str(&text).expect("JSON")
}

fn text<'a>(value: &'a Value, field: &str) -> &'a str {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {value}"))
}

#[test]
fn a_token_set_sealed_by_an_earlier_build_opens_with_its_key() {
    let sealed = &reference()["sealed_token_set"];
    let keyring = Keyring::new(Key::parse(text(sealed, "key")).expect("a key"), vec![]);
    let store_id = StoreId::parse(text(sealed, "store_id")).unwrap();
    let platform = PlatformId::parse(text(sealed, "platform")).unwrap();
    let binding = Binding::Tokens {
        store_id: &store_id,
        platform: &platform,
    };
    let plain = keyring
        .open(binding, text(sealed, "sealed"))
        .expect("this build opens what the earlier one sealed");
    let tokens = TokenSet::from_plaintext(plain.expose_secret()).expect("its format");
    assert_eq!(
        tokens.access_token.expose_secret(),
        "pina_reference_access_token"
    );
    assert_eq!(
        tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        Some("pinr_reference_refresh_token".to_owned())
    );
    assert_eq!(tokens.scopes, ["boards:read", "pins:write"]);
    assert_eq!(
        tokens.expires_at,
        Some("2026-12-07T12:00:00Z".parse().unwrap())
    );
    assert_eq!(
        tokens.refresh_expires_at,
        Some("2027-02-05T12:00:00Z".parse().unwrap())
    );
    assert_eq!(
        tokens
            .extra
            .get("page:42")
            .map(|t| t.expose_secret().to_owned()),
        Some("page-reference-token".to_owned())
    );
    // Bound to its store and platform: opened as another's, it is refused.
    let other = StoreId::parse("shop-other").unwrap();
    assert!(keyring
        .open(
            Binding::Tokens {
                store_id: &other,
                platform: &platform
            },
            text(sealed, "sealed")
        )
        .is_err());
}

#[tokio::test]
async fn an_api_key_stored_by_an_earlier_build_is_still_found_by_its_hash() {
    let key = &reference()["api_key"];
    assert_eq!(
        growth_engine::access::hash_key(text(key, "key")),
        text(key, "hash"),
        "the stored hash of a key is computed as before"
    );
    // The row as the earlier build wrote it (its columns, written by hand), read by this build.
    let db = fresh_database().await;
    let store = PgStore::connect(&db.url).await.expect("PostgreSQL");
    store.migrate().await.expect("migrations");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    sqlx::query(
        "insert into api_keys (id, name, hash, scopes, created_at) values ($1, $2, $3, $4, now())",
    )
    .bind(uuid::Uuid::new_v4())
    .bind(text(key, "name"))
    .bind(text(key, "hash"))
    .bind(text(key, "scopes"))
    .execute(&mut conn)
    .await
    .unwrap();
    let found = store
        .find_api_key(&growth_engine::access::hash_key(text(key, "key")))
        .await
        .unwrap()
        .expect("the key's row");
    assert_eq!(found.name, text(key, "name"));
    assert_eq!(found.scopes, text(key, "scopes"));
    assert!(found.revoked_at.is_none());
    drop(conn);
    db.drop_database().await;
}

#[tokio::test]
async fn a_webhook_outbox_row_of_an_earlier_build_is_delivered_signed_as_before() {
    let webhook = &reference()["webhook"];
    let body = text(webhook, "body");
    let timestamp = webhook["timestamp"].as_i64().unwrap();
    let secret = SecretString::from(text(webhook, "secret").to_owned());
    // The signing scheme receivers verify has not moved: this build, and Python's standard
    // library, sign the reference body as the earlier build did.
    assert_eq!(
        growth_engine::lifecycle::webhooks::sign(&secret, timestamp, body.as_bytes()),
        text(webhook, "signature")
    );
    assert_eq!(
        python_hmac_sha256_hex(
            secret.expose_secret().as_bytes(),
            format!("{timestamp}.{body}").as_bytes()
        ),
        text(webhook, "signature")
    );
    // An outbox row as the earlier build wrote it is claimed and read by this one.
    let db = fresh_database().await;
    let store = PgStore::connect(&db.url).await.expect("PostgreSQL");
    store.migrate().await.expect("migrations");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    let payload: Value = serde_json::from_str(body).unwrap();
    let id = uuid::Uuid::parse_str(text(&payload, "id")).unwrap();
    sqlx::query(
        "insert into webhook_outbox (id, event_type, payload, created_at, attempts, next_attempt_at) \
         values ($1, $2, $3, now() - interval '1 minute', 0, now() - interval '1 minute')",
    )
    .bind(id)
    .bind(text(&payload, "type"))
    .bind(&payload)
    .execute(&mut conn)
    .await
    .unwrap();
    let now = chrono::Utc::now();
    let claimed = store
        .claim_events(now, now + chrono::Duration::seconds(30), 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    assert_eq!(claimed[0].id, id);
    assert_eq!(claimed[0].event_type, "connection.created");
    assert_eq!(claimed[0].payload, payload);
    drop(conn);
    db.drop_database().await;
}
