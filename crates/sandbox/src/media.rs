//! Fetching a medium the way a platform does when it is handed a URL (Meta "cURLs" the media a
//! container names, M20; TikTok pulls a `PULL_FROM_URL` video): a bounded GET (time, size,
//! redirects), reporting only whether the medium could be read and its media type.
//!
//! It owns no platform rule: each platform module decides what a failure means for its object.

use std::sync::OnceLock;
use std::time::Duration;

/// The longest a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(20);

/// The largest medium read (Instagram's own video cap is 1 GB; the sandbox stops earlier).
const MAX_BYTES: usize = 300 * 1024 * 1024;

/// What a fetch found.
#[derive(Clone, Debug)]
pub(crate) struct Fetched {
    /// The `Content-Type` the server named.
    pub(crate) content_type: String,
}

impl Fetched {
    /// Whether the server named it a medium of this top-level type (`image`, `video`).
    pub(crate) fn is(&self, top_level: &str) -> bool {
        self.content_type
            .split('/')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(top_level))
    }
}

fn client() -> Option<&'static reqwest::Client> {
    static CLIENT: OnceLock<Option<reqwest::Client>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(FETCH_TIMEOUT)
                .redirect(reqwest::redirect::Policy::limited(3))
                .build()
                .ok()
        })
        .as_ref()
}

/// Fetches `url` (http or https only), reading at most [`MAX_BYTES`]; `Err` says why not, in
/// words fit for a platform's error message.
pub(crate) async fn fetch(url: &str) -> Result<Fetched, String> {
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err("the media URL is not an http(s) URL".to_owned());
    }
    let client = client().ok_or_else(|| "no HTTP client".to_owned())?;
    let mut response = client
        .get(url)
        .send()
        .await
        .map_err(|_| "the media could not be fetched from this URI".to_owned())?;
    if !response.status().is_success() {
        return Err(format!(
            "the media URI answered HTTP {}",
            response.status().as_u16()
        ));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let mut size = 0;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                size += chunk.len();
                if size > MAX_BYTES {
                    return Err("the media is too large".to_owned());
                }
            }
            Ok(None) => break,
            Err(_) => return Err("the media could not be read to its end".to_owned()),
        }
    }
    if size == 0 {
        return Err("the media URI answered no bytes".to_owned());
    }
    Ok(Fetched { content_type })
}
