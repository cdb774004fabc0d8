//! Publishing through the posts API against the strict sandbox: a post goes out once with the
//! platform's id and URL, idempotently under concurrent retries, at its time, after the
//! merchant's approval where the store asks for it; bad posts get clear errors; cancelled and
//! rejected posts never reach the platform.

use std::time::Duration;

use serde_json::{json, Value};

use crate::faults_refresh::connect;
use crate::helpers::{spawn_app_with, wait_until, TestApp, TestAppOptions, API_KEY};

pub(crate) async fn create_post(
    app: &TestApp,
    key: &str,
    body: &Value,
) -> (reqwest::StatusCode, Value) {
    let response = app
        .api
        .post(app.url("/api/v1/posts"))
        .bearer_auth(API_KEY)
        .header("Idempotency-Key", key)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

pub(crate) async fn get_post(app: &TestApp, id: &str) -> Value {
    let response = app.get(&format!("/api/v1/posts/{id}")).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Waits until the post leaves the statuses it passes through on its way out.
pub(crate) async fn settled(app: &TestApp, id: &str) -> Value {
    let mut last = Value::Null;
    wait_until("the post settles", Duration::from_secs(30), async || {
        last = get_post(app, id).await;
        !matches!(
            last["status"].as_str(),
            Some("scheduled" | "publishing" | "pending_approval")
        )
    })
    .await;
    last
}

async fn outbox(app: &TestApp, event_type: &str) -> Vec<Value> {
    let db = app.database.as_ref().expect("postgres");
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&db.url)
        .await
        .unwrap();
    sqlx::query_scalar::<_, sqlx::types::Json<Value>>(
        "select payload from webhook_outbox where event_type = $1 order by created_at",
    )
    .bind(event_type)
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|json| json.0)
    .collect()
}

fn tweet(store: &str, text: &str) -> Value {
    json!({ "store_id": store, "platform": "twitter", "text": text })
}

#[tokio::test]
async fn a_post_goes_out_once_with_the_platforms_id_and_url_and_is_told_to_the_services() {
    let app = spawn_app_with(TestAppOptions::default()).await;
    connect(&app, "twitter", "shop-1").await;
    let (status, created) =
        create_post(&app, "first", &tweet("shop-1", "Hello from the agent")).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["account"]["kind"], "x_user");
    let id = created["id"].as_str().unwrap().to_owned();

    let post = settled(&app, &id).await;
    assert_eq!(post["status"], "published", "{post}");
    let platform_id = post["platform_post"]["id"]
        .as_str()
        .expect("the tweet's id");
    assert!(
        post["platform_post"]["url"]
            .as_str()
            .is_some_and(|url| url.ends_with(&format!("/status/{platform_id}"))),
        "{post}"
    );
    let published = app.simulator.published("twitter");
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].id, platform_id);

    let events = outbox(&app, "post.published").await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["post"]["id"], id.as_str());
    assert_eq!(events[0]["post"]["platform_post"]["id"], platform_id);

    // The audit trail has the creation and the outcome, with no text of the post.
    app.services.audit.flush(Duration::from_secs(5)).await;
    let audit = app
        .get("/api/v1/audit?store_id=shop-1")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let operations: Vec<&str> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["operation"].as_str())
        .collect();
    assert!(operations.contains(&"post.create"), "{operations:?}");
    assert!(operations.contains(&"post.publish"), "{operations:?}");
    assert!(!audit.to_string().contains("Hello from the agent"));
}

#[tokio::test]
async fn the_same_idempotency_key_gives_the_same_post_under_concurrent_retries() {
    let app = spawn_app_with(TestAppOptions::default()).await;
    connect(&app, "twitter", "shop-1").await;
    let body = tweet("shop-1", "Only once, however often it is asked");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (client, url, body) = (app.api.clone(), app.url("/api/v1/posts"), body.clone());
        tasks.spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(API_KEY)
                .header("Idempotency-Key", "retry-me")
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        });
    }
    let attempts = tasks.join_all().await;
    let created = attempts.iter().filter(|(s, _)| *s == 201).count();
    assert_eq!(created, 1, "{attempts:?}");
    assert!(attempts.iter().all(|(s, _)| *s == 201 || *s == 200));
    let ids: std::collections::HashSet<&str> = attempts
        .iter()
        .map(|(_, post)| post["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "one post for one key");

    // The same key with another body is another post: refused.
    let (status, error) = create_post(&app, "retry-me", &tweet("shop-1", "Something else")).await;
    assert_eq!(status, 409);
    assert_eq!(error["error"]["code"], "idempotency_key_reused");

    let id = ids.into_iter().next().unwrap().to_owned();
    assert_eq!(settled(&app, &id).await["status"], "published");
    // A retry after publication returns the published post, and nothing is sent again.
    let (status, again) = create_post(&app, "retry-me", &body).await;
    assert_eq!(status, 200);
    assert_eq!(again["status"], "published");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.simulator.published("twitter").len(), 1);
}

#[tokio::test]
async fn bad_posts_get_a_stable_code_and_a_message() {
    let app = spawn_app_with(TestAppOptions::default()).await;
    connect(&app, "twitter", "shop-1").await;
    connect(&app, "google", "shop-1").await;

    let expect = |status: u16, code: &'static str| {
        move |(got, body): (reqwest::StatusCode, Value)| {
            assert_eq!(got.as_u16(), status, "{code}: {body}");
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()));
        }
    };
    // No key.
    let response = app
        .api
        .post(app.url("/api/v1/posts"))
        .bearer_auth(API_KEY)
        .json(&tweet("shop-1", "x"))
        .send()
        .await
        .unwrap();
    let status = response.status();
    expect(400, "missing_idempotency_key")((status, response.json().await.unwrap()));
    expect(404, "unknown_platform")(
        create_post(
            &app,
            "a",
            &json!({"store_id": "shop-1", "platform": "myspace", "text": "x"}),
        )
        .await,
    );
    expect(404, "connection_not_found")(create_post(&app, "b", &tweet("shop-2", "x")).await);
    expect(422, "not_supported")(
        create_post(
            &app,
            "c",
            &json!({"store_id": "shop-1", "platform": "google", "text": "x"}),
        )
        .await,
    );
    expect(400, "invalid_post")(
        create_post(
            &app,
            "d",
            &json!({"store_id": "shop-1", "platform": "twitter", "text": "x",
                    "media": [{"url": "ftp://example.com/a.png", "kind": "image"}]}),
        )
        .await,
    );
    expect(400, "invalid_post")(
        create_post(
            &app,
            "e",
            &json!({"store_id": "shop-1", "platform": "twitter", "text": " "}),
        )
        .await,
    );
    expect(422, "invalid_json")(
        create_post(
            &app,
            "f",
            &json!({"store_id": "shop-1", "platform": "twitter", "text": "x", "colour": "red"}),
        )
        .await,
    );
    expect(400, "invalid_post")(
        create_post(
            &app,
            "g",
            &json!({"store_id": "shop-1", "platform": "twitter", "text": "x", "account": "someone-else"}),
        )
        .await,
    );
    let response = app.get("/api/v1/posts/not-a-uuid").await;
    assert_eq!(response.status(), 400);
    let response = app
        .get("/api/v1/posts/0190e4a8-8d6a-7000-8000-000000000000")
        .await;
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "post_not_found");
    let response = app
        .get("/api/v1/posts?store_id=shop-1&status=sideways")
        .await;
    assert_eq!(response.status(), 400);
    let response = app.get("/api/v1/posts?store_id=shop-1&cursor=%%%").await;
    assert_eq!(response.status(), 400);
    assert!(app.simulator.published("twitter").is_empty());
}

#[tokio::test]
async fn a_scheduled_post_waits_for_its_time_and_a_cancelled_one_never_goes_out() {
    let app = spawn_app_with(TestAppOptions::default()).await;
    connect(&app, "twitter", "shop-1").await;
    let later = chrono::Utc::now() + chrono::Duration::hours(2);
    let mut body = tweet("shop-1", "Tomorrow's news");
    body["publish_at"] = json!(later);
    let (status, created) = create_post(&app, "later", &body).await;
    assert_eq!(status, 201);
    assert_eq!(created["status"], "scheduled");
    let id = created["id"].as_str().unwrap().to_owned();

    let listed: Value = app
        .get("/api/v1/posts?store_id=shop-1&status=scheduled")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(listed["posts"][0]["id"], id.as_str());

    let response = app.delete(&format!("/api/v1/posts/{id}")).await;
    assert_eq!(response.status(), 200);
    let cancelled: Value = response.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let response = app.delete(&format!("/api/v1/posts/{id}")).await;
    assert_eq!(response.status(), 409);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["code"], "post_not_cancellable");
    assert!(app.simulator.published("twitter").is_empty());

    // Pages: newest first, with a cursor to the next page.
    for n in 0..3 {
        create_post(
            &app,
            &format!("p{n}"),
            &tweet("shop-1", &format!("post {n}")),
        )
        .await;
    }
    let first: Value = app
        .get("/api/v1/posts?store_id=shop-1&limit=2")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(first["posts"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second: Value = app
        .get(&format!(
            "/api/v1/posts?store_id=shop-1&limit=2&cursor={cursor}"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(second["posts"].as_array().unwrap().len(), 2);
    assert!(second["next_cursor"].is_null());
    assert_eq!(second["posts"][1]["id"], id.as_str(), "the oldest last");
}

async fn approval_link(app: &TestApp, id: &str) -> String {
    let events = outbox(app, "post.approval_requested").await;
    let event = events
        .iter()
        .find(|e| e["post"]["id"] == id)
        .expect("an approval request");
    assert_eq!(event["post"]["status"], "pending_approval");
    event["approval"]["url"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn with_approval_required_a_post_waits_and_its_link_decides_once() {
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("POSTS_REQUIRE_APPROVAL", "true".into())],
        ..Default::default()
    })
    .await;
    connect(&app, "twitter", "shop-1").await;
    let (status, created) = create_post(&app, "ask", &tweet("shop-1", "May I?")).await;
    assert_eq!(status, 201);
    assert_eq!(created["status"], "pending_approval");
    let id = created["id"].as_str().unwrap().to_owned();
    let link = approval_link(&app, &id).await;
    assert!(link.starts_with(&app.url(&format!("/api/v1/posts/{id}/approval?token="))));
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(
        app.simulator.published("twitter").is_empty(),
        "nothing before the answer"
    );

    // Opening the link changes nothing (a preview must not approve); pressing Approve does.
    let page = app.api.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("May I?"));
    let token = url::Url::parse(&link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned();
    let answer = |decision: &'static str| {
        app.api
            .post(app.url(&format!("/api/v1/posts/{id}/approval")))
            .form(&[("token", token.as_str()), ("decision", decision)])
            .send()
    };
    let wrong = app
        .api
        .post(app.url(&format!("/api/v1/posts/{id}/approval")))
        .form(&[("token", "forged"), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 410);
    assert_eq!(answer("approve").await.unwrap().status(), 200);
    assert_eq!(answer("reject").await.unwrap().status(), 410, "used up");
    let post = settled(&app, &id).await;
    assert_eq!(post["status"], "published");
    assert_eq!(post["approval"]["decided_by"], "page_user:approval-link");
    assert_eq!(app.simulator.published("twitter").len(), 1);

    // Rejected through its link: failed, not_approved, never sent.
    let (_, second) = create_post(&app, "ask-2", &tweet("shop-1", "And this?")).await;
    let id = second["id"].as_str().unwrap().to_owned();
    let link = approval_link(&app, &id).await;
    let token = url::Url::parse(&link)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "token")
        .unwrap()
        .1
        .into_owned();
    let rejected = app
        .api
        .post(app.url(&format!("/api/v1/posts/{id}/approval")))
        .form(&[("token", token.as_str()), ("decision", "reject")])
        .send()
        .await
        .unwrap();
    assert_eq!(rejected.status(), 200);
    let post = get_post(&app, &id).await;
    assert_eq!(post["status"], "failed");
    assert_eq!(post["error"]["code"], "not_approved");
    assert_eq!(outbox(&app, "post.failed").await.len(), 1);
    assert_eq!(app.simulator.published("twitter").len(), 1);
}

#[tokio::test]
async fn an_unanswered_approval_request_expires() {
    let clock = growth_engine::clock::ManualClock::new(chrono::Utc::now());
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("POSTS_REQUIRE_APPROVAL", "true".into())],
        clock: Some(clock.clone()),
        ..Default::default()
    })
    .await;
    connect(&app, "twitter", "shop-1").await;
    let (_, created) = create_post(&app, "ask", &tweet("shop-1", "Anyone?")).await;
    let id = created["id"].as_str().unwrap().to_owned();
    clock.advance(chrono::Duration::hours(24) + chrono::Duration::seconds(1));
    let post = settled(&app, &id).await;
    assert_eq!(post["status"], "failed");
    assert_eq!(post["error"]["code"], "not_approved");
    assert!(app.simulator.published("twitter").is_empty());
}

/// Serves a merchant's media on a local port: `/image.jpg` and a `/video.mp4` of `video_bytes`.
pub(crate) async fn media_server(video_bytes: usize) -> String {
    use axum::http::header::CONTENT_TYPE;
    use axum::routing::get;
    let mut image = vec![0xFF_u8, 0xD8, 0xFF, 0xE0];
    image.extend(std::iter::repeat_n(0x11_u8, 4096));
    image.extend([0xFF, 0xD9]);
    let video: Vec<u8> = (0..video_bytes).map(|i| (i % 251) as u8).collect();
    let app = axum::Router::new()
        .route(
            "/image.jpg",
            get(move || {
                let image = image.clone();
                async move { ([(CONTENT_TYPE, "image/jpeg")], image) }
            }),
        )
        .route(
            "/video.mp4",
            get(move || {
                let video = video.clone();
                async move { ([(CONTENT_TYPE, "video/mp4")], video) }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The id of the connection's asset of `kind`.
async fn asset_id(app: &TestApp, store: &str, platform: &str, kind: &str) -> String {
    let listing = app.connections(store).await;
    let connection = listing["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["platform"] == platform)
        .unwrap_or_else(|| panic!("{platform} connected: {listing}"))
        .clone();
    connection["assets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["kind"] == kind)
        .unwrap_or_else(|| panic!("a {kind}: {connection}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Every platform's client, through the API, the scheduler and the strict sandbox: TikTok's
/// chunked upload of a video larger than one chunk, an Instagram image through its container, a
/// Facebook page post with the page's own token, a Pinterest pin to the selected board, a
/// LinkedIn organization post, an X post with an image uploaded first. Each is published once,
/// with the platform's id and a URL, and the sandbox's feed page shows it.
#[tokio::test]
async fn every_platform_publishes_through_the_api_once_with_its_id_and_url() {
    let app = spawn_app_with(TestAppOptions::default()).await;
    let media = media_server(12 * 1024 * 1024).await;
    let store = "shop-all";
    for platform in ["tiktok", "meta", "pinterest", "linkedin", "twitter"] {
        connect(&app, platform, store).await;
    }
    let page = asset_id(&app, store, "meta", "facebook_page").await;
    // The member administers several organizations and none is selected: the post names one.
    let organization = asset_id(&app, store, "linkedin", "linkedin_organization").await;
    let posts = [
        (
            "tiktok",
            json!({"store_id": store, "platform": "tiktok", "text": "A video in chunks",
                   "media": [{"url": format!("{media}/video.mp4"), "kind": "video"}],
                   "options": {"privacy_level": "SELF_ONLY"}}),
        ),
        (
            "meta",
            json!({"store_id": store, "platform": "meta", "text": "On Instagram",
                   "media": [{"url": format!("{media}/image.jpg"), "kind": "image"}]}),
        ),
        (
            "meta",
            json!({"store_id": store, "platform": "meta", "account": page,
                   "text": "On our page", "link": "https://shop.example/winter"}),
        ),
        (
            "pinterest",
            json!({"store_id": store, "platform": "pinterest", "text": "Pinned",
                   "media": [{"url": format!("{media}/image.jpg"), "kind": "image"}],
                   "options": {"title": "Winter"}}),
        ),
        (
            "linkedin",
            json!({"store_id": store, "platform": "linkedin", "account": organization,
                   "text": "News (for everyone)"}),
        ),
        (
            "twitter",
            json!({"store_id": store, "platform": "twitter", "text": "With a picture",
                   "media": [{"url": format!("{media}/image.jpg"), "kind": "image"}]}),
        ),
    ];
    let (status, error) = create_post(
        &app,
        "no-account",
        &json!({"store_id": store, "platform": "linkedin", "text": "Whose?"}),
    )
    .await;
    assert_eq!(status, 409);
    assert_eq!(error["error"]["code"], "no_account");
    let mut ids = Vec::new();
    for (n, (platform, body)) in posts.iter().enumerate() {
        let (status, created) = create_post(&app, &format!("all-{n}"), body).await;
        assert_eq!(status, 201, "{platform}: {created}");
        ids.push((*platform, created["id"].as_str().unwrap().to_owned()));
    }
    for (platform, id) in &ids {
        let post = settled(&app, id).await;
        assert_eq!(post["status"], "published", "{platform}: {post}");
        assert!(
            post["platform_post"]["url"]
                .as_str()
                .is_some_and(|url| url.starts_with("https://")),
            "{platform}: {post}"
        );
    }
    let instagram = get_post(&app, &ids[1].1).await;
    assert_eq!(instagram["account"]["kind"], "instagram_account");
    let facebook = get_post(&app, &ids[2].1).await;
    assert_eq!(facebook["account"]["kind"], "facebook_page");
    for (platform, count) in [
        ("tiktok", 1),
        ("meta", 2),
        ("pinterest", 1),
        ("linkedin", 1),
        ("twitter", 1),
    ] {
        assert_eq!(
            app.simulator.published(platform).len(),
            count,
            "{platform}: {:?}",
            app.simulator.published(platform)
        );
    }
    // What the agent published is on the sandbox's feed page, for a person to see.
    let feed = reqwest::get(format!("{}/sandbox/linkedin/feed", app.simulator_address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(feed.contains("News"), "{feed}");
}

#[tokio::test]
async fn media_from_an_internal_address_is_refused_when_private_addresses_are_off() {
    let app = spawn_app_with(TestAppOptions {
        extra_env: vec![("MEDIA_ALLOW_PRIVATE_ADDRESSES", "false".into())],
        ..Default::default()
    })
    .await;
    let media = media_server(1024).await;
    connect(&app, "twitter", "shop-1").await;
    let (status, created) = create_post(
        &app,
        "internal",
        &json!({"store_id": "shop-1", "platform": "twitter", "text": "From inside",
                "media": [{"url": format!("{media}/image.jpg"), "kind": "image"}]}),
    )
    .await;
    assert_eq!(status, 201);
    let post = settled(&app, created["id"].as_str().unwrap()).await;
    assert_eq!(post["status"], "failed", "{post}");
    assert_eq!(post["error"]["code"], "media_unavailable");
    assert!(post["error"]["message"]
        .as_str()
        .unwrap()
        .contains("internal address"));
    assert!(app.simulator.published("twitter").is_empty());
}

#[tokio::test]
async fn a_post_the_platform_throttled_is_retried_and_goes_out_once() {
    let app = spawn_app_with(TestAppOptions::default()).await;
    connect(&app, "twitter", "shop-1").await;
    // X refuses the first send with its 429: nothing was posted, so it is tried again.
    app.simulator
        .fail_next_api_calls("twitter", "/tweets", 429, 1);
    let (_, created) = create_post(&app, "throttled", &tweet("shop-1", "Patience")).await;
    let post = settled(&app, created["id"].as_str().unwrap()).await;
    assert_eq!(post["status"], "published", "{post}");
    let sends = app
        .simulator
        .api_requests("twitter")
        .into_iter()
        .filter(|r| r.path.ends_with("/tweets"))
        .map(|r| r.status)
        .collect::<Vec<_>>();
    assert_eq!(sends, vec![429, 201], "refused once, then sent once");
    assert_eq!(app.simulator.published("twitter").len(), 1);
}

/// The embedded default (SQLite, in-process state): what `cargo run` gives a newcomer publishes
/// too.
#[tokio::test]
async fn a_post_goes_out_on_the_embedded_default() {
    let app = spawn_app_with(TestAppOptions {
        backend: crate::helpers::Backend::Embedded,
        ..Default::default()
    })
    .await;
    connect(&app, "twitter", "shop-1").await;
    let (status, created) = create_post(&app, "embedded", &tweet("shop-1", "From SQLite")).await;
    assert_eq!(status, 201, "{created}");
    let post = settled(&app, created["id"].as_str().unwrap()).await;
    assert_eq!(post["status"], "published", "{post}");
    assert_eq!(app.simulator.published("twitter").len(), 1);
}
