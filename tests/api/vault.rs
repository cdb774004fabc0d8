//! The token vault: round trip, tampering, wrong key, moved ciphertext, and key rotation of stored rows.

use std::sync::Arc;

use growth_engine::app::Services;
use growth_engine::clock::SystemClock;
use growth_engine::domain::{PlatformId, StoreId, TokenSet};
use growth_engine::vault::{Binding, Key, Keyring, VaultError};
use secrecy::ExposeSecret;

use crate::helpers::{fresh_database, settings_from};

fn ids(store: &str, platform: &str) -> (StoreId, PlatformId) {
    (
        StoreId::parse(store).unwrap(),
        PlatformId::parse(platform).unwrap(),
    )
}

fn token_set() -> TokenSet {
    TokenSet {
        access_token: "EAAG-access-token-value".into(),
        refresh_token: Some("refresh-token-value".into()),
        token_type: "Bearer".into(),
        expires_at: Some(chrono::Utc::now()),
        issued_at: None,
        refresh_expires_at: None,
        scopes: vec!["pages_show_list".into()],
        extra: Default::default(),
    }
}

#[test]
fn a_sealed_token_set_opens_to_the_same_tokens() {
    let ring = Keyring::new(Key::generate(), vec![]);
    let (store, platform) = ids("store-1", "meta");
    let binding = Binding::Tokens {
        store_id: &store,
        platform: &platform,
    };
    let sealed = ring.seal(binding, &token_set().to_plaintext());
    assert!(!sealed.contains("access-token-value"));
    assert!(sealed.starts_with(&format!("v1.{}.", ring.current_key_id())));
    let opened =
        TokenSet::from_plaintext(ring.open(binding, &sealed).unwrap().expose_secret()).unwrap();
    assert_eq!(
        opened.access_token.expose_secret(),
        "EAAG-access-token-value"
    );
    assert_eq!(
        opened.refresh_token.unwrap().expose_secret(),
        "refresh-token-value"
    );
}

#[test]
fn a_flipped_bit_fails_to_open() {
    use base64::Engine;
    let ring = Keyring::new(Key::generate(), vec![]);
    let (store, platform) = ids("store-1", "meta");
    let binding = Binding::Tokens {
        store_id: &store,
        platform: &platform,
    };
    let sealed = ring.seal(binding, b"secret");
    let (head, data) = sealed.rsplit_once('.').unwrap();
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut bytes = engine.decode(data).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    let tampered = format!("{head}.{}", engine.encode(bytes));
    assert_eq!(
        ring.open(binding, &tampered).unwrap_err(),
        VaultError::Tampered
    );
}

#[test]
fn a_wrong_key_fails_with_a_clear_error() {
    let (store, platform) = ids("store-1", "meta");
    let binding = Binding::Tokens {
        store_id: &store,
        platform: &platform,
    };
    let sealed = Keyring::new(Key::generate(), vec![]).seal(binding, b"secret");
    let other = Keyring::new(Key::generate(), vec![]);
    let error = other.open(binding, &sealed).unwrap_err();
    assert!(matches!(error, VaultError::UnknownKey(_)));
    assert!(error.to_string().contains("TOKEN_ENCRYPTION_OLD_KEYS"));
}

#[test]
fn a_ciphertext_moved_to_another_row_fails_to_open() {
    let ring = Keyring::new(Key::generate(), vec![]);
    let (store_a, meta) = ids("store-a", "meta");
    let (store_b, google) = ids("store-b", "google");
    let sealed = ring.seal(
        Binding::Tokens {
            store_id: &store_a,
            platform: &meta,
        },
        b"secret",
    );
    assert_eq!(
        ring.open(
            Binding::Tokens {
                store_id: &store_b,
                platform: &meta
            },
            &sealed
        )
        .unwrap_err(),
        VaultError::Tampered
    );
    assert_eq!(
        ring.open(
            Binding::Tokens {
                store_id: &store_a,
                platform: &google
            },
            &sealed
        )
        .unwrap_err(),
        VaultError::Tampered
    );
}

#[test]
fn an_old_key_still_opens_what_it_sealed() {
    let old = Key::generate();
    let (store, platform) = ids("s", "tiktok");
    let binding = Binding::Tokens {
        store_id: &store,
        platform: &platform,
    };
    let sealed = Keyring::new(old.clone(), vec![]).seal(binding, b"secret");
    let rotated = Keyring::new(Key::generate(), vec![old]);
    assert_eq!(
        rotated.open(binding, &sealed).unwrap().expose_secret(),
        b"secret"
    );
    assert!(rotated.needs_reseal(&sealed));
}

#[tokio::test]
async fn rotate_keys_reseals_rows_written_under_an_old_key_and_they_still_read() {
    let db = fresh_database().await;
    let old_key = Key::generate();
    let new_key = Key::generate();
    let base = |key: &Key, old: Option<&Key>| {
        let mut vars = vec![
            ("DATABASE_URL", db.url.clone()),
            ("TOKEN_ENCRYPTION_KEY", key.to_base64()),
        ];
        if let Some(old) = old {
            vars.push(("TOKEN_ENCRYPTION_OLD_KEYS", old.to_base64()));
        }
        settings_from(&vars)
    };
    let before = Services::build(base(&old_key, None), Arc::new(SystemClock))
        .await
        .unwrap();
    before.store.migrate().await.unwrap();
    let (store_id, platform) = ids("rotating-store", "google");
    let spec = before.core.catalog().get(&platform).unwrap().clone();
    let grant = growth_engine::platforms::TokenGrant {
        tokens: token_set(),
        scopes_reported: true,
        account_hint: None,
    };
    for n in 0..3 {
        let store = StoreId::parse(format!("rotating-store-{n}")).unwrap();
        before
            .grants
            .record_grant(&spec, grant_for(&spec, store, grant.clone()))
            .await
            .unwrap();
    }
    let _ = store_id;

    let after = Services::build(base(&new_key, Some(&old_key)), Arc::new(SystemClock))
        .await
        .unwrap();
    assert_eq!(
        after
            .store
            .connections_to_reseal(new_key.id(), 10)
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(after.grants.reseal_batch(100).await.unwrap(), 3);
    assert!(after
        .store
        .connections_to_reseal(new_key.id(), 10)
        .await
        .unwrap()
        .is_empty());

    // Readable with only the new key: the old one can now be retired.
    let only_new = Services::build(base(&new_key, None), Arc::new(SystemClock))
        .await
        .unwrap();
    for n in 0..3 {
        let store = StoreId::parse(format!("rotating-store-{n}")).unwrap();
        let row = only_new
            .store
            .get_connection(&store, &platform)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.key_id.as_deref(), Some(new_key.id()));
        let tokens = only_new.core.open(&row).unwrap();
        assert_eq!(
            tokens.access_token.expose_secret(),
            "EAAG-access-token-value"
        );
    }
    db.drop_database().await;
}

#[tokio::test]
async fn the_rotate_keys_command_reseals_and_reports_what_it_did() {
    let db = fresh_database().await;
    let old_key = Key::generate();
    let new_key = Key::generate();
    let services = Services::build(
        settings_from(&[
            ("DATABASE_URL", db.url.clone()),
            ("TOKEN_ENCRYPTION_KEY", old_key.to_base64()),
        ]),
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    services.store.migrate().await.unwrap();
    let platform = PlatformId::parse("tiktok").unwrap();
    let spec = services.core.catalog().get(&platform).unwrap().clone();
    let grant = growth_engine::platforms::TokenGrant {
        tokens: token_set(),
        scopes_reported: true,
        account_hint: None,
    };
    services
        .grants
        .record_grant(
            &spec,
            grant_for(&spec, StoreId::parse("cli-store").unwrap(), grant),
        )
        .await
        .unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_growth-engine"))
        .arg("rotate-keys")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DATABASE_URL", &db.url)
        .env("TOKEN_ENCRYPTION_KEY", new_key.to_base64())
        .env("TOKEN_ENCRYPTION_OLD_KEYS", old_key.to_base64())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("re-encrypted 1 connection(s)"), "{stdout}");
    assert!(!stdout.contains(&new_key.to_base64()) && !stdout.contains(&old_key.to_base64()));
    let row = services
        .store
        .get_connection(&StoreId::parse("cli-store").unwrap(), &platform)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.key_id.as_deref(), Some(new_key.id()));
    db.drop_database().await;
}

/// A grant of `tokens` for `store_id`, from user `u`, with nothing else.
fn grant_for(
    spec: &growth_engine::platforms::PlatformSpec,
    store_id: StoreId,
    tokens: growth_engine::platforms::TokenGrant,
) -> growth_engine::platforms::Grant {
    growth_engine::platforms::Grant {
        platform: spec.id.clone(),
        store_id,
        user_id: growth_engine::domain::UserId::parse("u").unwrap(),
        tokens,
        account: Default::default(),
        details: Default::default(),
        extra_secrets: Default::default(),
    }
}
