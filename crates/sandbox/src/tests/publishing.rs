//! Tests of the publishing simulators' strict rules: Meta's containers (fetching, status
//! transitions, carousels, `media_publish`, the daily limit), Page photos, TikTok's chunked upload,
//! inbox and photo inits, publish statuses, verified domains and per-token limits, the faults on
//! API calls (a lost answer after acting, a 5xx without acting) and the feed page.

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use serde_json::json;

use super::api::{at, token_with};
use super::*;

/// Serves `/image.jpg`, `/video.mp4` and `/text.txt` on a random local port (a merchant's CDN, as
/// the platforms fetch it) and answers its base URL.
pub(super) async fn media_server() -> String {
    let app = Router::new()
        .route(
            "/image.jpg",
            get(|| async { ([(CONTENT_TYPE, "image/jpeg")], vec![0xFF_u8; 2048]) }),
        )
        .route(
            "/video.mp4",
            get(|| async { ([(CONTENT_TYPE, "video/mp4")], vec![7_u8; 4096]) }),
        )
        .route(
            "/text.txt",
            get(|| async { ([(CONTENT_TYPE, "text/plain")], "not media") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a local port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// Polls `check` (a few real milliseconds at a time) until it holds: for the background fetches.
async fn eventually(mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if check().await {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    panic!("never happened");
}

fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).expect("a query")
}

const META_SCOPES: [&str; 5] = [
    "pages_show_list",
    "pages_read_engagement",
    "pages_manage_posts",
    "instagram_basic",
    "instagram_content_publish",
];

/// A Meta user token, its first Page's token and id, and the linked Instagram account.
async fn meta_setup(sandbox: &Sandbox) -> (String, String, String, String) {
    let token = token_with(sandbox, "meta", &META_SCOPES).await;
    let reply = sandbox
        .api("GET", &at("meta", "me/accounts"), Some(&token), &[], None)
        .await;
    let page = reply.json()["data"][0].clone();
    (
        token,
        str_field(&page, "/access_token").to_owned(),
        str_field(&page, "/id").to_owned(),
        str_field(&page, "/instagram_business_account/id").to_owned(),
    )
}

impl Sandbox {
    async fn graph_post(&self, path: &str, token: &str, pairs: &[(&str, &str)]) -> Reply {
        let uri = format!("{}?{}", at("meta", path), query(pairs));
        self.api("POST", &uri, Some(token), &[], None).await
    }

    async fn container_status(&self, container: &str, token: &str) -> String {
        let uri = at("meta", &format!("{container}?fields=status_code"));
        let reply = self.api("GET", &uri, Some(token), &[], None).await;
        str_field(&reply.json(), "/status_code").to_owned()
    }
}

#[tokio::test]
async fn a_video_container_is_in_progress_then_finished_and_only_then_publishable() {
    let sandbox = Sandbox::new();
    let cdn = media_server().await;
    let (_, page_token, _, ig) = meta_setup(&sandbox).await;
    let video = format!("{cdn}/video.mp4");
    let created = sandbox
        .graph_post(
            &format!("{ig}/media"),
            &page_token,
            &[
                ("media_type", "REELS"),
                ("video_url", &video),
                ("caption", "Reel"),
            ],
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let container = str_field(&created.json(), "/id").to_owned();
    assert_eq!(
        sandbox.container_status(&container, &page_token).await,
        "IN_PROGRESS"
    );
    let publish = |c: &str| {
        let c = c.to_owned();
        let ig = ig.clone();
        let token = page_token.clone();
        let sandbox = &sandbox;
        async move {
            sandbox
                .graph_post(
                    &format!("{ig}/media_publish"),
                    &token,
                    &[("creation_id", &c)],
                )
                .await
        }
    };
    let early = publish(&container).await;
    assert_eq!(early.status, StatusCode::BAD_REQUEST);
    assert_eq!(early.json()["error"]["code"], 9007);
    assert_eq!(early.json()["error"]["error_subcode"], 2_207_027);

    // Fetched in the background, then processed for a few seconds of the sandbox clock.
    tokio::time::sleep(StdDuration::from_millis(200)).await;
    assert_eq!(
        sandbox.container_status(&container, &page_token).await,
        "IN_PROGRESS"
    );
    sandbox.clock.advance(Duration::seconds(6));
    assert_eq!(
        sandbox.container_status(&container, &page_token).await,
        "FINISHED"
    );
    let published = publish(&container).await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.body);
    assert_eq!(
        sandbox.container_status(&container, &page_token).await,
        "PUBLISHED"
    );
    let again = publish(&container).await;
    assert_eq!(again.json()["error"]["code"], 9007);
    assert_eq!(sandbox.sim.published("meta").len(), 1);

    // The medium has a permalink.
    let media_id = str_field(&published.json(), "/id").to_owned();
    let permalink = sandbox
        .api(
            "GET",
            &at("meta", &format!("{media_id}?fields=permalink")),
            Some(&page_token),
            &[],
            None,
        )
        .await;
    assert!(str_field(&permalink.json(), "/permalink").starts_with("https://www.instagram.com/p/"));

    // Containers expire after 24 hours.
    let image = format!("{cdn}/image.jpg");
    let other = sandbox
        .graph_post(
            &format!("{ig}/media"),
            &page_token,
            &[("image_url", &image)],
        )
        .await;
    let other = str_field(&other.json(), "/id").to_owned();
    sandbox.clock.advance(Duration::hours(24));
    assert_eq!(
        sandbox.container_status(&other, &page_token).await,
        "EXPIRED"
    );
    assert_eq!(publish(&other).await.json()["error"]["code"], 9007);
}

#[tokio::test]
async fn media_meta_cannot_fetch_is_refused_or_fails_its_container() {
    let sandbox = Sandbox::new();
    let cdn = media_server().await;
    let (_, page_token, _, ig) = meta_setup(&sandbox).await;
    for url in [format!("{cdn}/missing.jpg"), format!("{cdn}/text.txt")] {
        let image = sandbox
            .graph_post(&format!("{ig}/media"), &page_token, &[("image_url", &url)])
            .await;
        assert_eq!(image.status, StatusCode::BAD_REQUEST, "{}", image.body);
        assert_eq!(image.json()["error"]["code"], 9004);
        assert_eq!(image.json()["error"]["error_subcode"], 2_207_052);
    }
    let missing = format!("{cdn}/missing.mp4");
    let video = sandbox
        .graph_post(
            &format!("{ig}/media"),
            &page_token,
            &[("media_type", "REELS"), ("video_url", &missing)],
        )
        .await;
    assert_eq!(video.status, StatusCode::OK, "{}", video.body);
    let container = str_field(&video.json(), "/id").to_owned();
    eventually(async || sandbox.container_status(&container, &page_token).await == "ERROR").await;
}

#[tokio::test]
async fn a_carousel_needs_two_to_ten_unpublished_items_of_the_account() {
    let sandbox = Sandbox::new();
    let cdn = media_server().await;
    let (_, page_token, _, ig) = meta_setup(&sandbox).await;
    let image = format!("{cdn}/image.jpg");
    let mut items = Vec::new();
    for _ in 0..3 {
        let item = sandbox
            .graph_post(
                &format!("{ig}/media"),
                &page_token,
                &[("image_url", &image), ("is_carousel_item", "true")],
            )
            .await;
        items.push(str_field(&item.json(), "/id").to_owned());
    }
    let single = sandbox
        .graph_post(
            &format!("{ig}/media"),
            &page_token,
            &[("image_url", &image)],
        )
        .await;
    let single = str_field(&single.json(), "/id").to_owned();
    let carousel = |children: String| {
        let ig = ig.clone();
        let token = page_token.clone();
        let sandbox = &sandbox;
        async move {
            sandbox
                .graph_post(
                    &format!("{ig}/media"),
                    &token,
                    &[
                        ("media_type", "CAROUSEL"),
                        ("children", &children),
                        ("caption", "Set"),
                    ],
                )
                .await
        }
    };
    let one = carousel(items[0].clone()).await;
    assert_eq!(one.status, StatusCode::BAD_REQUEST);
    let not_an_item = carousel(format!("{},{single}", items[0])).await;
    assert_eq!(not_an_item.status, StatusCode::BAD_REQUEST);
    let eleven = carousel(vec![items[0].clone(); 11].join(",")).await;
    assert_eq!(eleven.status, StatusCode::BAD_REQUEST);

    // An item is not published on its own.
    let alone = sandbox
        .graph_post(
            &format!("{ig}/media_publish"),
            &page_token,
            &[("creation_id", &items[0])],
        )
        .await;
    assert_eq!(alone.json()["error"]["code"], 9007);

    let made = carousel(items.join(",")).await;
    assert_eq!(made.status, StatusCode::OK, "{}", made.body);
    let container = str_field(&made.json(), "/id").to_owned();
    assert_eq!(
        sandbox.container_status(&container, &page_token).await,
        "FINISHED"
    );
    let published = sandbox
        .graph_post(
            &format!("{ig}/media_publish"),
            &page_token,
            &[("creation_id", &container)],
        )
        .await;
    assert_eq!(published.status, StatusCode::OK, "{}", published.body);
    let item = &sandbox.sim.published("meta")[0];
    assert_eq!(item.fields["children"].as_array().map(Vec::len), Some(3));
    // Its items are spent: a second carousel cannot reuse them.
    assert_eq!(
        carousel(items.join(",")).await.status,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn the_fifty_first_post_in_a_moving_day_is_refused_with_code_9() {
    let sandbox = Sandbox::new();
    let cdn = media_server().await;
    let (_, page_token, _, ig) = meta_setup(&sandbox).await;
    let image = format!("{cdn}/image.jpg");
    let post = || {
        let ig = ig.clone();
        let token = page_token.clone();
        let image = image.clone();
        let sandbox = &sandbox;
        async move {
            let made = sandbox
                .graph_post(&format!("{ig}/media"), &token, &[("image_url", &image)])
                .await;
            let container = str_field(&made.json(), "/id").to_owned();
            sandbox
                .graph_post(
                    &format!("{ig}/media_publish"),
                    &token,
                    &[("creation_id", &container)],
                )
                .await
        }
    };
    for _ in 0..50 {
        assert_eq!(post().await.status, StatusCode::OK);
        sandbox.clock.advance(Duration::minutes(1));
    }
    let limit = sandbox
        .api(
            "GET",
            &at(
                "meta",
                &format!("{ig}/content_publishing_limit?fields=quota_usage,config"),
            ),
            Some(&page_token),
            &[],
            None,
        )
        .await;
    assert_eq!(limit.json()["data"][0]["quota_usage"], 50);
    assert_eq!(limit.json()["data"][0]["config"]["quota_total"], 50);
    let refused = post().await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(refused.json()["error"]["code"], 9);
    assert_eq!(refused.json()["error"]["error_subcode"], 2_207_042);
    assert_eq!(sandbox.sim.published("meta").len(), 50);
    // The window moves: the first post (made 50 minutes ago) leaves it a day after it was made,
    // and makes room for one more.
    sandbox
        .clock
        .advance(Duration::hours(23) + Duration::seconds(630));
    assert_eq!(post().await.status, StatusCode::OK);
    assert_eq!(post().await.json()["error"]["error_subcode"], 2_207_042);
}

#[tokio::test]
async fn a_page_photo_needs_the_pages_token_and_media_meta_can_fetch() {
    let sandbox = Sandbox::new();
    let cdn = media_server().await;
    let (user_token, page_token, page_id, _) = meta_setup(&sandbox).await;
    let image = format!("{cdn}/image.jpg");
    let photos = format!("{page_id}/photos");
    let as_user = sandbox
        .graph_post(&photos, &user_token, &[("url", &image)])
        .await;
    assert_eq!(as_user.status, StatusCode::FORBIDDEN);
    assert_eq!(as_user.json()["error"]["code"], 200);
    let missing = format!("{cdn}/missing.jpg");
    let unfetchable = sandbox
        .graph_post(&photos, &page_token, &[("url", &missing)])
        .await;
    assert_eq!(unfetchable.json()["error"]["code"], 324);
    let posted = sandbox
        .graph_post(
            &photos,
            &page_token,
            &[("url", &image), ("caption", "New in")],
        )
        .await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    let post_id = str_field(&posted.json(), "/post_id").to_owned();
    assert!(post_id.starts_with(&format!("{page_id}_")));
    let items = sandbox.sim.published("meta");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].kind, "facebook_photo");
}

#[tokio::test]
async fn a_lost_answer_is_published_and_a_failed_call_is_not() {
    let sandbox = Sandbox::new();
    let (_, page_token, page_id, _) = meta_setup(&sandbox).await;
    let feed = format!(
        "{}?{}",
        at("meta", &format!("{page_id}/feed")),
        query(&[("message", "Hi")])
    );
    let request = || {
        Request::builder()
            .method("POST")
            .uri(&feed)
            .header(AUTHORIZATION, format!("Bearer {page_token}"))
            .body(Body::empty())
            .expect("a request")
    };

    sandbox.sim.fail_next_api_calls("meta", "/feed", 503, 1);
    let failed = sandbox.send(request()).await;
    assert_eq!(failed.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(failed.json()["error"]["code"], 2);
    assert!(sandbox.sim.published("meta").is_empty());

    sandbox.sim.lose_next_api_answers("meta", "/feed", 1);
    let response = sandbox
        .app
        .clone()
        .oneshot(request())
        .await
        .expect("infallible");
    assert!(axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .is_err());
    assert_eq!(sandbox.sim.published("meta").len(), 1);
    let recorded = sandbox.sim.api_requests("meta");
    assert_eq!(recorded.last().map(|r| r.status), Some(200));

    // Both faults are spent.
    assert_eq!(sandbox.send(request()).await.status, StatusCode::OK);
    assert_eq!(sandbox.sim.published("meta").len(), 2);
}

#[tokio::test]
async fn the_feed_page_lists_what_was_published_with_its_public_url() {
    let sandbox = Sandbox::new();
    let (_, page_token, page_id, _) = meta_setup(&sandbox).await;
    let posted = sandbox
        .graph_post(
            &format!("{page_id}/feed"),
            &page_token,
            &[("message", "Summer <sale>")],
        )
        .await;
    let id = str_field(&posted.json(), "/id").to_owned();
    let page = sandbox.get("/sandbox/meta/feed", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.content_type().starts_with("text/html"));
    assert!(page.body.contains("Summer &lt;sale&gt;"), "{}", page.body);
    assert!(page
        .body
        .contains(&format!("https://www.facebook.com/{id}")));
    assert!(page.body.contains(&format!("Account {page_id}")));
    let empty = sandbox.get("/sandbox/tiktok/feed", None).await;
    assert!(empty.body.contains("Nothing has been published yet."));
}

// ---- TikTok ----------------------------------------------------------------------------------

const MB: u64 = 1024 * 1024;

async fn tiktok_token(sandbox: &Sandbox) -> String {
    token_with(
        sandbox,
        "tiktok",
        &["user.info.basic", "video.publish", "video.upload"],
    )
    .await
}

impl Sandbox {
    async fn tiktok_post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.api("POST", &at("tiktok", path), Some(token), &[], Some(body))
            .await
    }

    async fn tiktok_status(&self, token: &str, publish_id: &str) -> Value {
        let reply = self
            .tiktok_post(
                "post/publish/status/fetch/",
                token,
                json!({ "publish_id": publish_id }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        reply.json()["data"].clone()
    }

    async fn put_chunk(
        &self,
        upload_url: &str,
        range: &str,
        content_type: &str,
        len: u64,
    ) -> Reply {
        let path = upload_url.trim_start_matches("http://localhost");
        let request = Request::builder()
            .method("PUT")
            .uri(path)
            .header("content-range", range)
            .header(CONTENT_TYPE, content_type)
            .body(Body::from(vec![1_u8; usize::try_from(len).expect("small")]))
            .expect("a request");
        self.send(request).await
    }
}

fn upload_init(size: u64, chunk: u64, count: u64) -> Value {
    json!({
        "post_info": { "title": "Clip", "privacy_level": "SELF_ONLY" },
        "source_info": { "source": "FILE_UPLOAD", "video_size": size, "chunk_size": chunk, "total_chunk_count": count },
    })
}

#[tokio::test]
async fn an_upload_init_must_follow_the_chunk_rules() {
    let sandbox = Sandbox::new();
    let token = tiktok_token(&sandbox).await;
    let refused = [
        (4 * MB, 2 * MB, 2),
        (20 * MB, 4 * MB, 5),
        (200 * MB, 65 * MB, 3),
        (20 * MB, 10 * MB, 3),
        (6000 * MB, 5 * MB, 1200),
        (300 * MB, 64 * MB, 2),
    ];
    for (size, chunk, count) in refused {
        let reply = sandbox
            .tiktok_post(
                "post/publish/video/init/",
                &token,
                upload_init(size, chunk, count),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{size} {chunk} {count}"
        );
        assert_eq!(reply.json()["error"]["code"], "invalid_params");
        sandbox.clock.advance(Duration::seconds(11));
    }
    for (size, chunk, count) in [
        (4 * MB, 4 * MB, 1),
        (25 * MB, 10 * MB, 2),
        (64 * MB, 64 * MB, 1),
    ] {
        let reply = sandbox
            .tiktok_post(
                "post/publish/video/init/",
                &token,
                upload_init(size, chunk, count),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        sandbox.clock.advance(Duration::seconds(11));
    }
}

#[tokio::test]
async fn chunks_are_put_in_order_with_their_range_and_the_last_one_posts_the_video() {
    let sandbox = Sandbox::new();
    let token = tiktok_token(&sandbox).await;
    let size = 12 * MB;
    let reply = sandbox
        .tiktok_post(
            "post/publish/video/init/",
            &token,
            upload_init(size, 5 * MB, 2),
        )
        .await;
    let publish_id = str_field(&reply.json(), "/data/publish_id").to_owned();
    let upload = str_field(&reply.json(), "/data/upload_url").to_owned();
    let first = format!("bytes 0-{}/{size}", 5 * MB - 1);
    let last = format!("bytes {}-{}/{size}", 5 * MB, size - 1);

    let wrong_type = sandbox
        .put_chunk(&upload, &first, "image/jpeg", 5 * MB)
        .await;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    let no_range = sandbox.put_chunk(&upload, "0-10", "video/mp4", 11).await;
    assert_eq!(no_range.status, StatusCode::BAD_REQUEST);
    let out_of_order = sandbox.put_chunk(&upload, &last, "video/mp4", 7 * MB).await;
    assert_eq!(out_of_order.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let short = sandbox
        .put_chunk(&upload, &format!("bytes 0-99/{size}"), "video/mp4", 100)
        .await;
    assert_eq!(short.status, StatusCode::RANGE_NOT_SATISFIABLE);
    let wrong_total = sandbox
        .put_chunk(
            &upload,
            &format!("bytes 0-{}/{}", 5 * MB - 1, size + 1),
            "video/mp4",
            5 * MB,
        )
        .await;
    assert_eq!(wrong_total.status, StatusCode::RANGE_NOT_SATISFIABLE);

    assert_eq!(
        sandbox.tiktok_status(&token, &publish_id).await["status"],
        "PROCESSING_UPLOAD"
    );
    let put = sandbox
        .put_chunk(&upload, &first, "video/mp4", 5 * MB)
        .await;
    assert_eq!(put.status, StatusCode::PARTIAL_CONTENT, "{}", put.body);
    assert!(sandbox.sim.published("tiktok").is_empty());
    let put = sandbox.put_chunk(&upload, &last, "video/mp4", 7 * MB).await;
    assert_eq!(put.status, StatusCode::CREATED, "{}", put.body);
    let items = sandbox.sim.published("tiktok");
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].kind, "tiktok_video");
    let again = sandbox.put_chunk(&upload, &last, "video/mp4", 7 * MB).await;
    assert_eq!(again.status, StatusCode::RANGE_NOT_SATISFIABLE);

    assert_eq!(
        sandbox.tiktok_status(&token, &publish_id).await["status"],
        "PROCESSING_UPLOAD"
    );
    sandbox.clock.advance(Duration::seconds(3));
    let done = sandbox.tiktok_status(&token, &publish_id).await;
    assert_eq!(done["status"], "PUBLISH_COMPLETE");
    assert_eq!(
        done["publicaly_available_post_id"][0].to_string(),
        items[0].id
    );
    let feed = sandbox.get("/sandbox/tiktok/feed", None).await;
    assert!(feed.body.contains(&format!(
        "https://www.tiktok.com/@sandboxmerchant/video/{}",
        items[0].id
    )));
}

#[tokio::test]
async fn a_pull_needs_a_verified_domain_and_fails_when_the_video_cannot_be_fetched() {
    let sandbox = Sandbox::new();
    let cdn = media_server().await;
    let token = tiktok_token(&sandbox).await;
    let pull = |url: String| {
        json!({
            "post_info": { "title": "Pulled", "privacy_level": "SELF_ONLY" },
            "source_info": { "source": "PULL_FROM_URL", "video_url": url },
        })
    };
    let init = "post/publish/video/init/";
    let refused = sandbox
        .tiktok_post(init, &token, pull(format!("{cdn}/video.mp4")))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(refused.json()["error"]["code"], "url_ownership_unverified");

    sandbox.sim.verify_tiktok_domain("127.0.0.1");
    let pulled = sandbox
        .tiktok_post(init, &token, pull(format!("{cdn}/video.mp4")))
        .await;
    assert_eq!(pulled.status, StatusCode::OK, "{}", pulled.body);
    assert!(pulled.json()["data"].get("upload_url").is_none());
    let publish_id = str_field(&pulled.json(), "/data/publish_id").to_owned();
    eventually(async || !sandbox.sim.published("tiktok").is_empty()).await;
    assert_eq!(
        sandbox.tiktok_status(&token, &publish_id).await["status"],
        "PROCESSING_DOWNLOAD"
    );
    sandbox.clock.advance(Duration::seconds(3));
    assert_eq!(
        sandbox.tiktok_status(&token, &publish_id).await["status"],
        "PUBLISH_COMPLETE"
    );

    let missing = sandbox
        .tiktok_post(init, &token, pull(format!("{cdn}/missing.mp4")))
        .await;
    let failed_id = str_field(&missing.json(), "/data/publish_id").to_owned();
    let mut status = Value::Null;
    for _ in 0..100 {
        status = sandbox.tiktok_status(&token, &failed_id).await;
        if status["status"] == "FAILED" {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    assert_eq!(status["status"], "FAILED");
    assert_eq!(status["fail_reason"], "video_pull_failed");
}

#[tokio::test]
async fn the_inbox_needs_video_upload_and_ends_in_the_creators_inbox() {
    let sandbox = Sandbox::new();
    let publish_only = token_with(&sandbox, "tiktok", &["user.info.basic", "video.publish"]).await;
    let body = json!({ "source_info": { "source": "FILE_UPLOAD", "video_size": 100, "chunk_size": 100, "total_chunk_count": 1 } });
    let inbox = "post/publish/inbox/video/init/";
    let refused = sandbox
        .tiktok_post(inbox, &publish_only, body.clone())
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused.json()["error"]["code"], "scope_not_authorized");

    let token = tiktok_token(&sandbox).await;
    let with_post_info = sandbox
        .tiktok_post(inbox, &token, upload_init(100, 100, 1))
        .await;
    assert_eq!(with_post_info.status, StatusCode::BAD_REQUEST);
    let reply = sandbox.tiktok_post(inbox, &token, body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let publish_id = str_field(&reply.json(), "/data/publish_id").to_owned();
    let upload = str_field(&reply.json(), "/data/upload_url").to_owned();
    let put = sandbox
        .put_chunk(&upload, "bytes 0-99/100", "video/mp4", 100)
        .await;
    assert_eq!(put.status, StatusCode::CREATED);
    sandbox.clock.advance(Duration::seconds(3));
    let status = sandbox.tiktok_status(&token, &publish_id).await;
    assert_eq!(status["status"], "SEND_TO_USER_INBOX");
    assert_eq!(
        sandbox.sim.published("tiktok")[0].kind,
        "tiktok_video_inbox_draft"
    );

    // Another grant's publish id is not found.
    let other = tiktok_token(&sandbox).await;
    let reply = sandbox
        .tiktok_post(
            "post/publish/status/fetch/",
            &other,
            json!({ "publish_id": publish_id }),
        )
        .await;
    assert_eq!(reply.json()["error"]["code"], "invalid_publish_id");
}

#[tokio::test]
async fn photos_are_pulled_from_verified_domains_in_either_post_mode() {
    let sandbox = Sandbox::new();
    let cdn = media_server().await;
    sandbox.sim.verify_tiktok_domain("127.0.0.1");
    let token = tiktok_token(&sandbox).await;
    let photo = |mode: &str, images: Vec<String>, cover: u64| {
        json!({
            "media_type": "PHOTO",
            "post_mode": mode,
            "post_info": { "description": "Lookbook", "privacy_level": "SELF_ONLY" },
            "source_info": { "source": "PULL_FROM_URL", "photo_images": images, "photo_cover_index": cover },
        })
    };
    let image = format!("{cdn}/image.jpg");
    let init = "post/publish/content/init/";
    let bad = [
        photo("DIRECT_POST", vec![], 0),
        photo("DIRECT_POST", vec![image.clone()], 1),
        photo("SOMETIMES", vec![image.clone()], 0),
    ];
    for body in bad {
        let reply = sandbox.tiktok_post(init, &token, body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    }
    let foreign = sandbox
        .tiktok_post(
            init,
            &token,
            photo("DIRECT_POST", vec!["https://cdn.example/a.jpg".into()], 0),
        )
        .await;
    assert_eq!(foreign.json()["error"]["code"], "url_ownership_unverified");
    for (mode, status) in [
        ("DIRECT_POST", "PUBLISH_COMPLETE"),
        ("MEDIA_UPLOAD", "SEND_TO_USER_INBOX"),
    ] {
        let reply = sandbox
            .tiktok_post(
                init,
                &token,
                photo(mode, vec![image.clone(), image.clone()], 1),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        let publish_id = str_field(&reply.json(), "/data/publish_id").to_owned();
        let count = sandbox.sim.published("tiktok").len();
        eventually(async || sandbox.sim.published("tiktok").len() > count).await;
        sandbox.clock.advance(Duration::seconds(3));
        assert_eq!(
            sandbox.tiktok_status(&token, &publish_id).await["status"],
            status
        );
    }
}

#[tokio::test]
async fn each_posting_call_has_its_per_token_limit() {
    let sandbox = Sandbox::new();
    let token = tiktok_token(&sandbox).await;
    let other = tiktok_token(&sandbox).await;
    let init = "post/publish/video/init/";
    for _ in 0..6 {
        let reply = sandbox
            .tiktok_post(init, &token, upload_init(100, 100, 1))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let throttled = sandbox
        .tiktok_post(init, &token, upload_init(100, 100, 1))
        .await;
    assert_eq!(throttled.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(throttled.json()["error"]["code"], "rate_limit_exceeded");
    // Per token: another one is not throttled.
    let reply = sandbox
        .tiktok_post(init, &other, upload_init(100, 100, 1))
        .await;
    assert_eq!(reply.status, StatusCode::OK);

    let creator_info = "post/publish/creator_info/query/";
    for _ in 0..20 {
        let reply = sandbox.tiktok_post(creator_info, &token, json!({})).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    let reply = sandbox.tiktok_post(creator_info, &token, json!({})).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);

    let status = "post/publish/status/fetch/";
    for _ in 0..30 {
        let reply = sandbox
            .tiktok_post(
                status,
                &token,
                json!({ "publish_id": "v_pub_file~unknown" }),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    }
    let reply = sandbox
        .tiktok_post(
            status,
            &token,
            json!({ "publish_id": "v_pub_file~unknown" }),
        )
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);

    sandbox.clock.advance(Duration::seconds(61));
    let reply = sandbox
        .tiktok_post(init, &token, upload_init(100, 100, 1))
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn an_unaudited_client_cannot_post_directly_but_may_upload_to_the_inbox() {
    let sandbox = Sandbox::new();
    let token = tiktok_token(&sandbox).await;
    sandbox.sim.set_tiktok_unaudited(true);
    let direct = sandbox
        .tiktok_post("post/publish/video/init/", &token, upload_init(100, 100, 1))
        .await;
    assert_eq!(direct.status, StatusCode::FORBIDDEN);
    assert_eq!(
        direct.json()["error"]["code"],
        "unaudited_client_can_only_post_to_private_accounts"
    );
    let body = json!({ "source_info": { "source": "FILE_UPLOAD", "video_size": 100, "chunk_size": 100, "total_chunk_count": 1 } });
    let inbox = sandbox
        .tiktok_post("post/publish/inbox/video/init/", &token, body)
        .await;
    assert_eq!(inbox.status, StatusCode::OK, "{}", inbox.body);
    sandbox.sim.set_tiktok_unaudited(false);
    let direct = sandbox
        .tiktok_post("post/publish/video/init/", &token, upload_init(100, 100, 1))
        .await;
    assert_eq!(direct.status, StatusCode::OK);
}
