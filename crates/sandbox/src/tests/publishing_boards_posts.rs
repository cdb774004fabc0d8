//! Tests of the publishing APIs of Pinterest, X and LinkedIn (boards, posts, organization posts):
//! refusal with the platform's status and body (sources cited in the platforms' modules).

use axum::routing::get;
use serde_json::json;

use super::api::{at, token_with};
use super::*;

/// A request with a bearer token, extra headers and a raw body.
async fn call(
    sandbox: &Sandbox,
    method: &str,
    uri: &str,
    token: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> Reply {
    let mut builder = Request::builder()
        .method(method)
        .uri(uri)
        .header(AUTHORIZATION, format!("Bearer {token}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    sandbox
        .send(builder.body(body).expect("a valid request"))
        .await
}

async fn post_json(sandbox: &Sandbox, uri: &str, token: &str, body: Value) -> Reply {
    let headers = [(CONTENT_TYPE.as_str(), "application/json")];
    call(
        sandbox,
        "POST",
        uri,
        token,
        &headers,
        Body::from(body.to_string()),
    )
    .await
}

/// Serves an image at `/photo.png` and a page at `/page.html` on a local port: the URLs
/// Pinterest fetches.
pub(super) async fn media_server() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a port");
    let base = format!("http://{}", listener.local_addr().expect("an address"));
    let app = Router::new()
        .route(
            "/photo.png",
            get(|| async { ([(CONTENT_TYPE, "image/png")], "png-bytes") }),
        )
        .route(
            "/page.html",
            get(|| async { ([(CONTENT_TYPE, "text/html")], "<p>hi</p>") }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    base
}

const PIN_SCOPES: [&str; 4] = ["boards:read", "boards:write", "pins:read", "pins:write"];
const BOARD: &str = "900000000000000001";

#[tokio::test]
async fn pinterest_fetches_a_pins_image_and_refuses_what_is_not_one() {
    let sandbox = Sandbox::new();
    let media = media_server().await;
    let token = token_with(&sandbox, "pinterest", &PIN_SCOPES).await;
    let pin = |url: String| {
        json!({
            "board_id": BOARD, "title": "Mug", "description": "Our mug",
            "media_source": { "source_type": "image_url", "url": url },
        })
    };
    let reply = post_json(
        &sandbox,
        &at("pinterest", "pins"),
        &token,
        pin(format!("{media}/photo.png")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(sandbox.sim.published("pinterest").len(), 1);
    for unusable in [format!("{media}/page.html"), format!("{media}/nothing.png")] {
        let reply = post_json(&sandbox, &at("pinterest", "pins"), &token, pin(unusable)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
        assert!(str_field(&reply.json(), "/message").contains("could not fetch the image"));
    }
    assert_eq!(sandbox.sim.published("pinterest").len(), 1);
}

#[tokio::test]
async fn pinterest_refuses_pins_outside_its_rules() {
    let sandbox = Sandbox::new();
    let media = media_server().await;
    let token = token_with(&sandbox, "pinterest", &PIN_SCOPES).await;
    let image = json!({ "source_type": "image_url", "url": format!("{media}/photo.png") });
    let cases = [
        (
            json!({ "board_id": "123", "media_source": image }),
            StatusCode::NOT_FOUND,
        ),
        (
            json!({ "board_id": BOARD, "title": "t".repeat(101), "media_source": image }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "board_id": BOARD, "media_source": {
                "source_type": "multiple_image_urls", "items": [{ "url": format!("{media}/photo.png") }],
            } }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "board_id": BOARD, "media_source": { "source_type": "image_url" } }),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({ "board_id": BOARD, "link": "https://spam.sandbox.example/x", "media_source": image }),
            StatusCode::TOO_MANY_REQUESTS,
        ),
    ];
    for (pin, status) in cases {
        let reply = post_json(&sandbox, &at("pinterest", "pins"), &token, pin.clone()).await;
        assert_eq!(reply.status, status, "{pin}: {}", reply.body);
    }
    let weak = token_with(&sandbox, "pinterest", &["boards:read"]).await;
    let pin = json!({ "board_id": BOARD, "media_source": image });
    let reply = post_json(&sandbox, &at("pinterest", "pins"), &weak, pin).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json()["code"], 3);
    assert!(sandbox.sim.published("pinterest").is_empty());
}

const X_SCOPES: [&str; 4] = ["tweet.read", "tweet.write", "users.read", "media.write"];

fn multipart(fields: &[(&str, &str)], file: Option<&[u8]>) -> (String, Body) {
    let boundary = "sandbox-boundary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    if let Some(file) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"media\"; filename=\"blob\"\r\nContent-Type: application/octet-stream\r\n\r\n")
                .as_bytes(),
        );
        body.extend_from_slice(file);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={boundary}"),
        Body::from(body),
    )
}

/// Uploads `bytes` through the chunked flow; the media id and FINALIZE's reply.
async fn upload(
    sandbox: &Sandbox,
    token: &str,
    media_type: &str,
    category: &str,
) -> (String, Reply) {
    let bytes = b"0123456789";
    let init =
        json!({ "media_type": media_type, "total_bytes": bytes.len(), "media_category": category });
    let reply = post_json(
        sandbox,
        &at("twitter", "media/upload/initialize"),
        token,
        init,
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let id = str_field(&reply.json(), "/data/id").to_owned();
    let (content_type, body) = multipart(&[("segment_index", "0")], Some(bytes));
    let uri = at("twitter", &format!("media/upload/{id}/append"));
    let reply = call(
        sandbox,
        "POST",
        &uri,
        token,
        &[(CONTENT_TYPE.as_str(), &content_type)],
        body,
    )
    .await;
    assert!(reply.status.is_success(), "{}", reply.body);
    let uri = at("twitter", &format!("media/upload/{id}/finalize"));
    let reply = call(sandbox, "POST", &uri, token, &[], Body::empty()).await;
    (id, reply)
}

#[tokio::test]
async fn x_media_uploaded_in_chunks_can_be_posted_by_their_owner_until_they_expire() {
    let sandbox = Sandbox::new();
    let token = token_with(&sandbox, "twitter", &X_SCOPES).await;
    let (id, finalized) = upload(&sandbox, &token, "image/png", "tweet_image").await;
    assert_eq!(finalized.status, StatusCode::OK, "{}", finalized.body);
    assert_eq!(finalized.json()["data"]["expires_after_secs"], 86_400);
    let tweet = json!({ "text": "With a photo", "media": { "media_ids": [id] } });
    let reply = post_json(&sandbox, &at("twitter", "tweets"), &token, tweet).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert_eq!(header_of(&reply, "x-rate-limit-remaining"), "99");
    // An unknown id, and an expired one.
    let tweet = json!({ "text": "Bad media", "media": { "media_ids": ["123"] } });
    let reply = post_json(&sandbox, &at("twitter", "tweets"), &token, tweet).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let (late, _) = upload(&sandbox, &token, "image/png", "tweet_image").await;
    sandbox.clock.advance(Duration::seconds(86_401));
    let token = token_with(&sandbox, "twitter", &X_SCOPES).await;
    let tweet = json!({ "text": "Too late", "media": { "media_ids": [late] } });
    let reply = post_json(&sandbox, &at("twitter", "tweets"), &token, tweet).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
}

fn header_of<'a>(reply: &'a Reply, name: &str) -> &'a str {
    reply
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn x_upload_refuses_what_its_docs_rule_out() {
    let sandbox = Sandbox::new();
    let token = token_with(&sandbox, "twitter", &X_SCOPES).await;
    let init = |media_type: &str, total: u64, category: &str| json!({ "media_type": media_type, "total_bytes": total, "media_category": category });
    for body in [
        init("video/mp4", 10, "tweet_image"),
        init("image/png", 6 * 1024 * 1024, "tweet_image"),
        init("image/png", 10, "dm_sticker"),
    ] {
        let reply = post_json(
            &sandbox,
            &at("twitter", "media/upload/initialize"),
            &token,
            body.clone(),
        )
        .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{body}: {}",
            reply.body
        );
    }
    // The retired command form.
    let (content_type, body) = multipart(&[("command", "INIT"), ("media_type", "image/png")], None);
    let reply = call(
        &sandbox,
        "POST",
        &at("twitter", "media/upload"),
        &token,
        &[(CONTENT_TYPE.as_str(), &content_type)],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    // Without media.write.
    let weak = token_with(
        &sandbox,
        "twitter",
        &["tweet.read", "tweet.write", "users.read"],
    )
    .await;
    let reply = post_json(
        &sandbox,
        &at("twitter", "media/upload/initialize"),
        &weak,
        init("image/png", 10, "tweet_image"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    // An append without the `media` part, and a finalize before all bytes came.
    let reply = post_json(
        &sandbox,
        &at("twitter", "media/upload/initialize"),
        &token,
        init("image/png", 10, "tweet_image"),
    )
    .await;
    let id = str_field(&reply.json(), "/data/id").to_owned();
    let (content_type, body) = multipart(&[("segment_index", "0")], None);
    let uri = at("twitter", &format!("media/upload/{id}/append"));
    let reply = call(
        &sandbox,
        "POST",
        &uri,
        &token,
        &[(CONTENT_TYPE.as_str(), &content_type)],
        body,
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let uri = at("twitter", &format!("media/upload/{id}/finalize"));
    let reply = call(&sandbox, "POST", &uri, &token, &[], Body::empty()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
}

#[tokio::test]
async fn an_x_video_is_attachable_only_once_processed() {
    let sandbox = Sandbox::new();
    let token = token_with(&sandbox, "twitter", &X_SCOPES).await;
    let (id, finalized) = upload(&sandbox, &token, "video/mp4", "tweet_video").await;
    assert_eq!(
        finalized.json()["data"]["processing_info"]["state"],
        "pending"
    );
    let tweet = json!({ "text": "A clip", "media": { "media_ids": [id] } });
    let reply = post_json(&sandbox, &at("twitter", "tweets"), &token, tweet.clone()).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let status = at(
        "twitter",
        &format!("media/upload?command=STATUS&media_id={id}"),
    );
    let reply = call(&sandbox, "GET", &status, &token, &[], Body::empty()).await;
    assert_eq!(
        reply.json()["data"]["processing_info"]["state"],
        "succeeded"
    );
    let reply = post_json(&sandbox, &at("twitter", "tweets"), &token, tweet).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
}

#[tokio::test]
async fn x_refuses_a_duplicate_and_the_hundred_and_first_post_in_fifteen_minutes() {
    let sandbox = Sandbox::new();
    let token = token_with(&sandbox, "twitter", &X_SCOPES).await;
    let tweets = at("twitter", "tweets");
    let reply = post_json(&sandbox, &tweets, &token, json!({ "text": "same" })).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let reply = post_json(&sandbox, &tweets, &token, json!({ "text": "same" })).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(str_field(&reply.json(), "/detail").contains("duplicate content"));
    for n in 1..100 {
        let reply = post_json(
            &sandbox,
            &tweets,
            &token,
            json!({ "text": format!("n{n}") }),
        )
        .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{n}");
    }
    let reply = post_json(&sandbox, &tweets, &token, json!({ "text": "over" })).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(header_of(&reply, "x-rate-limit-remaining"), "0");
    let reset: i64 = header_of(&reply, "x-rate-limit-reset")
        .parse()
        .unwrap_or_default();
    assert_eq!(reset, sandbox.sim.now().timestamp() + 900);
    sandbox.clock.advance(Duration::seconds(901));
    let token = token_with(&sandbox, "twitter", &X_SCOPES).await;
    let reply = post_json(&sandbox, &tweets, &token, json!({ "text": "later" })).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let text = format!("{} {}", "a".repeat(250), "b".repeat(30));
    let reply = post_json(&sandbox, &tweets, &token, json!({ "text": text })).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
}

const LI_VERSION: &str = "202601";
const ORGANIZATION: &str = "urn:li:organization:2000001";

async fn linkedin(
    sandbox: &Sandbox,
    method: &str,
    uri: &str,
    token: &str,
    body: Option<Value>,
) -> Reply {
    let mut headers = vec![
        ("LinkedIn-Version", LI_VERSION),
        ("X-Restli-Protocol-Version", "2.0.0"),
    ];
    let body = match body {
        Some(body) => {
            headers.push((CONTENT_TYPE.as_str(), "application/json"));
            Body::from(body.to_string())
        }
        None => Body::empty(),
    };
    call(sandbox, method, uri, token, &headers, body).await
}

fn li_post(author: &str, commentary: &str) -> Value {
    json!({
        "author": author, "commentary": commentary, "visibility": "PUBLIC",
        "distribution": { "feedDistribution": "MAIN_FEED", "targetEntities": [], "thirdPartyDistributionChannels": [] },
        "lifecycleState": "PUBLISHED",
    })
}

#[tokio::test]
async fn a_linkedin_image_is_uploaded_processed_and_posted_by_the_organization() {
    let sandbox = Sandbox::new();
    let token = token_with(&sandbox, "linkedin", &["w_organization_social"]).await;
    let init = json!({ "initializeUploadRequest": { "owner": ORGANIZATION } });
    let reply = linkedin(
        &sandbox,
        "POST",
        &at("linkedin", "images?action=initializeUpload"),
        &token,
        Some(init),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let upload_url = str_field(&reply.json(), "/value/uploadUrl").to_owned();
    let image = str_field(&reply.json(), "/value/image").to_owned();
    let path = url::Url::parse(&upload_url)
        .expect("a URL")
        .path()
        .to_owned();
    assert!(
        path.starts_with("/sandbox/linkedin/api/dms-uploads/"),
        "{path}"
    );
    let encoded: String = url::form_urlencoded::byte_serialize(image.as_bytes()).collect();
    let look = at("linkedin", &format!("images/{encoded}"));
    let reply = linkedin(&sandbox, "GET", &look, &token, None).await;
    assert_eq!(reply.json()["status"], "WAITING_UPLOAD");
    let mut post = li_post(ORGANIZATION, "New \\(in\\) (sale)");
    post["content"] = json!({ "media": { "id": image } });
    let reply = linkedin(
        &sandbox,
        "POST",
        &at("linkedin", "posts"),
        &token,
        Some(post.clone()),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        reply.body
    );
    let reply = call(
        &sandbox,
        "PUT",
        &path,
        &token,
        &[],
        Body::from("image-bytes"),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    let reply = linkedin(&sandbox, "GET", &look, &token, None).await;
    assert_eq!(reply.json()["status"], "PROCESSING");
    let reply = linkedin(&sandbox, "GET", &look, &token, None).await;
    assert_eq!(reply.json()["status"], "AVAILABLE");
    let reply = linkedin(
        &sandbox,
        "POST",
        &at("linkedin", "posts"),
        &token,
        Some(post),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(reply.body.is_empty());
    let urn = header_of(&reply, "x-restli-id");
    assert!(urn.starts_with("urn:li:share:"), "{urn}");
    let published = sandbox.sim.published("linkedin");
    // The unescaped "(" cut the rendered post, as LinkedIn silently does.
    assert_eq!(published[0].fields["rendered_commentary"], "New (in) ");
}

#[tokio::test]
async fn linkedin_posts_need_the_scope_and_a_posting_role_on_the_author() {
    let sandbox = Sandbox::new();
    let weak = token_with(&sandbox, "linkedin", &["r_organization_admin"]).await;
    let reply = linkedin(
        &sandbox,
        "POST",
        &at("linkedin", "posts"),
        &weak,
        Some(li_post(ORGANIZATION, "hi")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let token = token_with(&sandbox, "linkedin", &["w_organization_social"]).await;
    let foreign = li_post("urn:li:organization:9999999", "hi");
    let reply = linkedin(
        &sandbox,
        "POST",
        &at("linkedin", "posts"),
        &token,
        Some(foreign),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{}", reply.body);
    let mut draft = li_post(ORGANIZATION, "hi");
    draft["lifecycleState"] = json!("DRAFT");
    let reply = linkedin(
        &sandbox,
        "POST",
        &at("linkedin", "posts"),
        &token,
        Some(draft),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.body);
    let reply = linkedin(
        &sandbox,
        "POST",
        &at("linkedin", "posts"),
        &token,
        Some(li_post(ORGANIZATION, "hi")),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.body);
    assert!(sandbox.sim.published("linkedin").len() == 1);
}
