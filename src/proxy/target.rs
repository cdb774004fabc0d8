//! The target URL of a proxied call: the platform's API base plus the caller's path, refused
//! whenever the path could leave the base (dot segments, encoded separators, userinfo, an absolute
//! URL, a host change). No request is made to a URL this module did not accept.

use url::Url;

use super::error::ProxyError;

/// Query parameters the caller may not set: the proxy owns the credentials it sends.
const OWNED_QUERY_PARAMS: [&str; 2] = ["access_token", "appsecret_proof"];

/// Whether a query pair (`name=value`, still percent-encoded) sets a parameter the proxy owns.
///
/// The name is compared decoded, as the platform will read it (`access%5Ftoken` is
/// `access_token` to any server that decodes queries: RFC 3986 §2.1, and the form encoding's `+` for
/// a space), and without regard to ASCII case, so that no spelling of an owned name passes.
fn sets_owned_param(pair: &str) -> bool {
    let raw = pair.split('=').next().unwrap_or_default();
    let decoded: String = url::form_urlencoded::parse(raw.as_bytes())
        .next()
        .map(|(name, _)| name.into_owned())
        .unwrap_or_default();
    OWNED_QUERY_PARAMS
        .iter()
        .any(|owned| decoded.eq_ignore_ascii_case(owned))
}

/// Builds `base` + `path` (as sent, still percent-encoded) + the caller's query, minus
/// credential parameters.
pub fn build(base: &Url, path: &str, query: Option<&str>) -> Result<Url, ProxyError> {
    check_path(path)?;
    let base_path = base.path();
    let joined = if base_path.ends_with('/') {
        format!("{base_path}{path}")
    } else {
        format!("{base_path}/{path}")
    };
    let mut target = base.clone();
    // Concatenated and set as a path, never `Url::join`: a first segment such as Google's
    // `customers:listAccessibleCustomers` would otherwise read as a URL scheme.
    target.set_path(&joined);
    target.set_query(None);
    target.set_fragment(None);
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| !sets_owned_param(pair))
            .collect();
        if !kept.is_empty() {
            target.set_query(Some(&kept.join("&")));
        }
    }
    // Belt and braces: whatever the checks above missed, the result must stay under the base.
    let same_origin = target.scheme() == base.scheme()
        && target.host_str() == base.host_str()
        && target.port_or_known_default() == base.port_or_known_default()
        && target.username().is_empty()
        && target.password().is_none();
    if !same_origin || !target.path().starts_with(base_path) {
        return Err(ProxyError::InvalidPath(
            "the path leaves the platform's API",
        ));
    }
    Ok(target)
}

/// Refuses what could escape the base or be read differently by the platform than by us.
fn check_path(path: &str) -> Result<(), ProxyError> {
    if path.is_empty() {
        return Err(ProxyError::InvalidPath("the path is empty"));
    }
    let starts_with = |prefix: &str| {
        path.get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    if starts_with("http:") || starts_with("https:") || path.contains("://") {
        return Err(ProxyError::InvalidPath("an absolute URL is not a path"));
    }
    if path.contains('\\') || path.contains('@') {
        return Err(ProxyError::InvalidPath(
            "backslashes and '@' are not allowed in the path",
        ));
    }
    if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
        return Err(ProxyError::InvalidPath("control characters in the path"));
    }
    check_escapes(path)?;
    // A trailing `/` is part of some platforms' paths (TikTok's `/v2/user/info/`).
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    for segment in trimmed.split('/') {
        match segment {
            // `a//b`, a leading `/`: a scheme-relative URL in the making.
            "" => {
                return Err(ProxyError::InvalidPath(
                    "empty path segments are not allowed",
                ))
            }
            "." | ".." => return Err(ProxyError::InvalidPath("dot segments are not allowed")),
            _ => {}
        }
    }
    Ok(())
}

/// Percent-escapes of separators, dots, `@`, `%` itself or control bytes are refused: decoded by a
/// server or a later hop, they would change the path's meaning (`%2e%2e`, `%2f`, `%5c`, `%252e`).
fn check_escapes(path: &str) -> Result<(), ProxyError> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let decoded = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                .ok_or(ProxyError::InvalidPath("a malformed percent-escape"))?;
            if matches!(decoded, b'.' | b'/' | b'\\' | b'@' | b'%' | b':') || decoded < 0x20 {
                return Err(ProxyError::InvalidPath(
                    "encoded separators, dots and '%' are not allowed in the path",
                ));
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Url {
        Url::parse("https://graph.facebook.com/v25.0/").expect("url")
    }

    #[test]
    fn a_plain_path_and_query_land_under_the_base() {
        let url = build(
            &base(),
            "me/accounts",
            Some("fields=id,name&access_token=x"),
        )
        .expect("accepted");
        assert_eq!(
            url.as_str(),
            "https://graph.facebook.com/v25.0/me/accounts?fields=id,name"
        );
        let google = Url::parse("https://googleads.googleapis.com/v26/").expect("url");
        let url = build(&google, "customers:listAccessibleCustomers", None).expect("accepted");
        assert_eq!(url.host_str(), Some("googleads.googleapis.com"));
        assert_eq!(url.path(), "/v26/customers:listAccessibleCustomers");
    }

    #[test]
    fn every_escape_is_refused() {
        for path in [
            "../v1/x",
            "me/../../x",
            "%2e%2e/x",
            "%2E%2E/x",
            "me%2f..%2fx",
            "/evil.example/x",
            "me//evil.example",
            "@evil.example",
            "me@evil.example",
            "http://evil.example/",
            "https:evil.example",
            "me\\..\\x",
            "me/%5c",
            "%252e%252e/x",
            "./me",
            "me/%0d%0aHost:x",
            "",
        ] {
            assert!(build(&base(), path, None).is_err(), "{path:?} was accepted");
        }
    }

    #[test]
    fn credential_parameters_are_dropped_however_their_names_are_encoded() {
        let url = build(
            &base(),
            "me",
            Some(
                "access%5Ftoken=a&%61ppsecret_proof=b&ACCESS_TOKEN=c&access%5ftoken&\
                 appsecret%5Fproof=d&fields=id&access_token_hint=e",
            ),
        )
        .expect("accepted");
        assert_eq!(url.query(), Some("fields=id&access_token_hint=e"));
    }

    #[test]
    fn a_trailing_slash_is_kept() {
        let tiktok = Url::parse("https://open.tiktokapis.com/v2/").expect("url");
        let url = build(&tiktok, "user/info/", Some("fields=open_id")).expect("accepted");
        assert_eq!(url.path(), "/v2/user/info/");
    }
}
