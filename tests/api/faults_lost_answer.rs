//! A refresh whose answer is lost after the platform acted (issue 22 item 4): the simulator
//! processes the call by its rules (new tokens minted and, on a rotating platform, the presented
//! refresh token retired), then closes the connection before a byte of the answer leaves
//! ([`Fault::LoseAnswer`]).
//!
//! Where the platform keeps the presented refresh token valid (Google, which does not rotate;
//! Pinterest in the lenient reading), nothing is lost: the next refresh presents the stored
//! refresh token and succeeds. Where it retires it (X, TikTok, Pinterest in the strict reading),
//! the tokens the lost answer carried are gone with it, and the service must say so honestly: the
//! stored set stays what it was (never emptied nor overwritten), the connection ends EXPIRED with
//! the platform's reason, no success is reported that the platform's answer did not bring, and a
//! reconnect recovers. Time is the service's manual clock; nothing waits on a sleep.

use chrono::Duration;
use growth_engine::clock::ManualClock;
use growth_engine::domain::{Connection, ConnectionStatus};
use growth_engine::sandbox::{Fault, TokenRequestRecord};
use secrecy::ExposeSecret;
use sqlx::Connection as _;

use crate::faults_refresh::{connect, refresh_calls, row, simulator_accepts};
use crate::helpers::{spawn_app_with, TestApp, TestAppOptions};

const STORE: &str = "lost-answer";

/// A lifetime long enough that only the manual clock ends it.
const TTL: i64 = 3600;

/// An app on a manual clock with `platform` connected (tokens living [`TTL`] seconds); the
/// simulator takes the strict reading unless `strict` is false.
async fn connected(platform: &str, strict: bool) -> (TestApp, ManualClock, Connection) {
    let clock = ManualClock::new(chrono::Utc::now());
    let app = spawn_app_with(TestAppOptions {
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    app.simulator.strict(strict);
    app.simulator.set_access_token_ttl(platform, TTL);
    connect(&app, platform, STORE).await;
    let before = row(&app.services, STORE, platform).await;
    (app, clock, before)
}

async fn token(app: &TestApp, platform: &str) -> (u16, serde_json::Value) {
    let response = app
        .get(&format!("/api/v1/oauth/token/{platform}?store_id={STORE}"))
        .await;
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The refresh outcomes the metrics counted for `platform`, as sorted `outcome=count` lines.
fn refresh_outcomes(app: &TestApp, platform: &str) -> Vec<String> {
    let prefix = format!("growth_engine_refreshes_total{{platform=\"{platform}\",outcome=\"");
    let mut outcomes: Vec<String> = app
        .services
        .metrics
        .render()
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|rest| rest.replacen("\"} ", "=", 1))
        .collect();
    outcomes.sort();
    outcomes
}

/// The webhook events written for the app's connections, oldest first.
async fn events(app: &TestApp) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(&app.database.as_ref().unwrap().url)
        .await
        .unwrap();
    let rows: Vec<(String,)> =
        sqlx::query_as("select event_type from webhook_outbox order by created_at, id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
    rows.into_iter().map(|(kind,)| kind).collect()
}

/// Inside the refresh window, the token endpoint's refresh meets a lost answer. The platform acted
/// (it minted a new set), the service heard nothing: it keeps the stored set, counts a transient
/// failure, and hands out the stored token, still valid for a minute. Returns the access token
/// the lost answer carried, which must never leave the service.
async fn lose_one_refresh_answer(
    app: &TestApp,
    clock: &ManualClock,
    platform: &str,
    before: &Connection,
) -> String {
    let stored = app.services.core.open(before).unwrap();
    clock.advance(Duration::seconds(TTL - 60));
    app.simulator.set_fault(platform, Some(Fault::LoseAnswer));
    let (status, body) = token(app, platform).await;
    app.simulator.set_fault(platform, None);
    assert_eq!(
        status, 200,
        "{platform}: the stored token is still valid: {body}"
    );
    assert_eq!(
        body["access_token"],
        stored.access_token.expose_secret(),
        "{platform}: the stored token, not one the service never received"
    );
    assert_eq!(
        refresh_calls(&app.simulator, platform),
        vec![TokenRequestRecord {
            grant_type: "refresh_token".into(),
            ok: false,
            status: 200,
        }],
        "{platform}: the platform renewed the tokens and the answer was lost"
    );
    let lost = app
        .simulator
        .issued_access_tokens(platform)
        .last()
        .unwrap()
        .clone();
    assert_ne!(lost, stored.access_token.expose_secret());
    let after = row(&app.services, STORE, platform).await;
    assert_eq!(after.status, ConnectionStatus::Connected, "{platform}");
    assert_eq!(after.refresh_failures, 1, "{platform}");
    assert_eq!(
        after.last_refreshed_at, None,
        "{platform}: no renewal was stored"
    );
    assert_eq!(
        after.sealed_tokens, before.sealed_tokens,
        "{platform}: the stored set is untouched"
    );
    assert_eq!(
        refresh_outcomes(app, platform),
        vec!["transient_failure=1"],
        "{platform}"
    );
    lost
}

#[tokio::test]
async fn a_lost_refresh_answer_costs_nothing_where_the_platform_keeps_the_refresh_token_valid() {
    // Google never rotates; Pinterest, in the lenient reading, leaves the replaced token valid.
    for (platform, strict) in [("google", true), ("pinterest", false)] {
        let (app, clock, before) = connected(platform, strict).await;
        let original_refresh = app
            .services
            .core
            .open(&before)
            .unwrap()
            .refresh_token
            .unwrap();
        let lost = lose_one_refresh_answer(&app, &clock, platform, &before).await;

        // Past the back-off and the stored token's expiry: the next read refreshes with the stored
        // refresh token, which the platform still honours.
        clock.advance(Duration::minutes(10));
        let (status, body) = token(&app, platform).await;
        assert_eq!(status, 200, "{platform}: {body}");
        let newest = app
            .simulator
            .issued_access_tokens(platform)
            .last()
            .unwrap()
            .clone();
        assert_eq!(body["access_token"], newest.as_str(), "{platform}");
        assert_ne!(newest, lost, "{platform}");
        assert!(
            simulator_accepts(&app.simulator_address, platform, &newest).await,
            "{platform}: the token handed out works"
        );
        let calls = refresh_calls(&app.simulator, platform);
        assert_eq!(calls.len(), 2, "{platform}: {calls:?}");
        assert!(
            calls[1].ok,
            "{platform}: the stored refresh token was honoured"
        );
        let after = row(&app.services, STORE, platform).await;
        assert_eq!(after.status, ConnectionStatus::Connected, "{platform}");
        assert_eq!(after.refresh_failures, 0, "{platform}");
        assert!(after.last_refreshed_at.is_some(), "{platform}");
        let tokens = app.services.core.open(&after).unwrap();
        let expected_refresh = match platform {
            // No rotation: the same refresh token, kept by the merge.
            "google" => original_refresh.expose_secret().to_owned(),
            _ => app
                .simulator
                .issued_refresh_tokens(platform)
                .last()
                .unwrap()
                .clone(),
        };
        assert_eq!(
            tokens.refresh_token.unwrap().expose_secret(),
            expected_refresh,
            "{platform}"
        );
        assert_eq!(
            refresh_outcomes(&app, platform),
            vec!["success=1", "transient_failure=1"],
            "{platform}"
        );
        app.stop().await;
    }
}

#[tokio::test]
async fn a_lost_refresh_answer_where_the_platform_retires_the_refresh_token_ends_expired_until_a_reconnect(
) {
    for platform in ["twitter", "tiktok", "pinterest"] {
        let (app, clock, before) = connected(platform, true).await;
        let lost = lose_one_refresh_answer(&app, &clock, platform, &before).await;

        // The next refresh presents the stored refresh token, which the platform retired when it
        // answered the lost call (X, seeing a rotated token again, also ends the whole grant).
        clock.advance(Duration::minutes(10));
        let (status, body) = token(&app, platform).await;
        assert_eq!(status, 409, "{platform}: {body}");
        assert_eq!(body["error"]["code"], "reconnect_required", "{platform}");
        assert_eq!(body["error"]["details"]["status"], "EXPIRED", "{platform}");
        let calls = refresh_calls(&app.simulator, platform);
        assert_eq!(calls.len(), 2, "{platform}: {calls:?}");
        assert_eq!(
            (calls[1].ok, calls[1].status),
            (false, 400),
            "{platform}: the platform refused the retired token"
        );
        let after = row(&app.services, STORE, platform).await;
        assert_eq!(after.status, ConnectionStatus::Expired, "{platform}");
        // The platform's own error code (Pinterest's is a number), in the same words every time.
        let code = match platform {
            "twitter" => "invalid_request",
            "tiktok" => "invalid_grant",
            _ => "1",
        };
        assert_eq!(
            after.last_error.as_deref(),
            Some(format!("{platform} rejected the request: {code}").as_str()),
            "{platform}: the platform's reason"
        );
        assert_eq!(
            after.sealed_tokens, before.sealed_tokens,
            "{platform}: the stored set is neither emptied nor overwritten"
        );
        assert_eq!(after.last_refreshed_at, None, "{platform}");
        assert_eq!(
            refresh_outcomes(&app, platform),
            vec!["expired=1", "transient_failure=1"],
            "{platform}: no success is counted"
        );
        let written = events(&app).await;
        assert!(
            written.iter().any(|e| e == "connection.expired")
                && !written.iter().any(|e| e == "connection.recovered"),
            "{platform}: {written:?}"
        );
        // A dead connection is not retried: the next read answers at once.
        let (status, _) = token(&app, platform).await;
        assert_eq!(status, 409, "{platform}");
        assert_eq!(
            refresh_calls(&app.simulator, platform).len(),
            2,
            "{platform}"
        );

        // The merchant reconnects: a new grant, and refreshes work again.
        connect(&app, platform, STORE).await;
        let (status, body) = token(&app, platform).await;
        assert_eq!(status, 200, "{platform}: {body}");
        let granted = body["access_token"].as_str().unwrap().to_owned();
        assert_ne!(granted, lost, "{platform}");
        assert!(simulator_accepts(&app.simulator_address, platform, &granted).await);
        let forced = app
            .post(&format!(
                "/api/v1/oauth/refresh/{platform}?store_id={STORE}"
            ))
            .await;
        assert_eq!(forced.status(), 200, "{platform}");
        let renewed: serde_json::Value = forced.json().await.unwrap();
        let renewed = renewed["access_token"].as_str().unwrap();
        assert_eq!(
            renewed,
            app.simulator
                .issued_access_tokens(platform)
                .last()
                .unwrap()
                .as_str(),
            "{platform}"
        );
        assert!(simulator_accepts(&app.simulator_address, platform, renewed).await);
        let calls = refresh_calls(&app.simulator, platform);
        assert!(calls[2].ok, "{platform}: {calls:?}");
        let reconnected = row(&app.services, STORE, platform).await;
        assert_eq!(
            reconnected.status,
            ConnectionStatus::Connected,
            "{platform}"
        );
        assert_eq!(reconnected.id, before.id, "{platform}: the same row");
        app.stop().await;
    }
}
