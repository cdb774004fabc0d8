//! Fetching the callers' media for platforms that take bytes (TikTok's file upload, X's media
//! upload, LinkedIn's images): with the care of any outbound call. Bounded in size
//! (`MEDIA_MAX_BYTES`, checked on the announced length and again while reading) and in time
//! (`MEDIA_FETCH_TIMEOUT_SECONDS`), at most five redirects, and never from a loopback, private,
//! link-local or otherwise internal address unless `MEDIA_ALLOW_PRIVATE_ADDRESSES` is on: the
//! check runs on every address a name resolves to (a resolver of our own, so a name cannot
//! resolve to an internal address after a check) and on literal addresses, redirects included.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use async_trait::async_trait;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use url::{Host, Url};

use crate::config::PostSettings;
use crate::platforms::publish::{MediaBytes, MediaSource, PostErrorCode, PublishFailure};

/// Fetches media under the settings' limits.
#[derive(Debug, Clone)]
pub struct MediaFetcher {
    http: reqwest::Client,
    max_bytes: u64,
    allow_private: bool,
}

impl MediaFetcher {
    /// A fetcher with the settings' limits.
    pub fn new(settings: &PostSettings) -> Result<Self, reqwest::Error> {
        let allow_private = settings.media_allow_private;
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() >= 5 {
                attempt.error("more than 5 redirects")
            } else if !allow_private && literal_is_internal(attempt.url()) {
                attempt.error("a redirect to an internal address")
            } else {
                attempt.follow()
            }
        });
        let mut builder = reqwest::Client::builder()
            .timeout(settings.media_timeout)
            .connect_timeout(settings.media_timeout.min(Duration::from_secs(10)))
            .redirect(redirects)
            .user_agent(concat!("growth-engine/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(std::sync::Arc::new(PublicOnly));
        }
        Ok(Self {
            http: builder.build()?,
            max_bytes: settings.media_max_bytes,
            allow_private,
        })
    }
}

fn unavailable(url: &Url, why: impl std::fmt::Display) -> PublishFailure {
    // The host only: a media URL's query may carry the caller's signature.
    let host = url.host_str().unwrap_or("?");
    PublishFailure::permanent(
        PostErrorCode::MediaUnavailable,
        format!("the medium at {host} could not be fetched: {why}"),
    )
}

#[async_trait]
impl MediaSource for MediaFetcher {
    async fn fetch(&self, url: &Url) -> Result<MediaBytes, PublishFailure> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(unavailable(url, "not an http(s) URL"));
        }
        if !self.allow_private && literal_is_internal(url) {
            return Err(unavailable(url, "it is an internal address"));
        }
        let mut response = self.http.get(url.clone()).send().await.map_err(|error| {
            let why = if error.is_timeout() {
                "timed out".to_owned()
            } else if error.is_redirect() {
                "too many redirects, or one to an internal address".to_owned()
            } else if error.is_connect() {
                "no connection (or the name resolves only to internal addresses)".to_owned()
            } else {
                "the request failed".to_owned()
            };
            // A timeout or a failed connection may pass: the post is retried until its deadline.
            PublishFailure {
                transient: error.is_timeout() || error.is_connect(),
                ..unavailable(url, why)
            }
        })?;
        let status = response.status();
        if !status.is_success() {
            return Err(PublishFailure {
                transient: status.is_server_error() || status.as_u16() == 429,
                ..unavailable(url, format!("HTTP {}", status.as_u16()))
            });
        }
        if response
            .content_length()
            .is_some_and(|n| n > self.max_bytes)
        {
            return Err(unavailable(
                url,
                format!("it is larger than {} bytes", self.max_bytes),
            ));
        }
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/octet-stream")
            .to_owned();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|_| PublishFailure {
            transient: true,
            ..unavailable(url, "the download broke off")
        })? {
            if (bytes.len() + chunk.len()) as u64 > self.max_bytes {
                return Err(unavailable(
                    url,
                    format!("it is larger than {} bytes", self.max_bytes),
                ));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(MediaBytes {
            content_type,
            bytes: bytes.into(),
        })
    }
}

/// Resolves names to their public addresses only; a name with none fails to resolve.
struct PublicOnly;

impl Resolve for PublicOnly {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|addr| !is_internal(addr.ip()))
                .collect();
            if found.is_empty() {
                return Err("the name resolves only to internal addresses".into());
            }
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether the URL's host is a literal internal address (or `localhost`), which no resolver sees.
fn literal_is_internal(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => is_internal(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => is_internal(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        None => true,
    }
}

/// Loopback, private, shared (CGNAT), link-local, unspecified, broadcast, documentation and
/// benchmarking ranges, IPv6 unique-local and link-local, and IPv4 addresses mapped into IPv6.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal_v4(v4);
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6 == Ipv6Addr::LOCALHOST
        }
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_recognised() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "8.8.8.8", "2606:4700::1111"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn literal_hosts_are_checked_before_any_request() {
        for url in [
            "http://127.0.0.1:8003/x.jpg",
            "http://[::1]/x.jpg",
            "http://localhost/x.jpg",
            "http://metadata.localhost/x",
        ] {
            assert!(literal_is_internal(&Url::parse(url).unwrap()), "{url}");
        }
        assert!(!literal_is_internal(
            &Url::parse("https://cdn.example.com/x.jpg").unwrap()
        ));
    }
}
