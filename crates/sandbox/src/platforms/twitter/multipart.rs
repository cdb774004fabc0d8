//! Reading a `multipart/form-data` body (RFC 7578) as X's media upload receives it: text fields
//! and file parts by name. Only what the upload needs: no nested multiparts, no transfer
//! encodings beyond the raw bytes the docs ask for.

use axum::body::Bytes;

/// One part of a form.
pub(super) struct Part {
    /// The field's name (`Content-Disposition: form-data; name="..."`).
    pub(super) name: String,
    /// The file name, for a file part.
    pub(super) file_name: Option<String>,
    /// The part's bytes.
    pub(super) data: Bytes,
}

/// The parts of `body`, whose `Content-Type` is `content_type`; `None` when it is not a
/// well-formed `multipart/form-data` body.
pub(super) fn parse(content_type: &str, body: &Bytes) -> Option<Vec<Part>> {
    let (kind, params) = content_type.split_once(';')?;
    if !kind.trim().eq_ignore_ascii_case("multipart/form-data") {
        return None;
    }
    let boundary = params.split(';').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        (name.trim().eq_ignore_ascii_case("boundary")).then(|| value.trim().trim_matches('"'))
    })?;
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut rest = body.slice(find(body, delimiter.as_bytes(), 0)? + delimiter.len()..);
    loop {
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        if !rest.starts_with(b"\r\n") {
            return None;
        }
        rest = rest.slice(2..);
        let head_end = find(&rest, b"\r\n\r\n", 0)?;
        let head = std::str::from_utf8(&rest[..head_end]).ok()?;
        let next = find(&rest, format!("\r\n{delimiter}").as_bytes(), head_end)?;
        let data = rest.slice(head_end + 4..next);
        let disposition = head.split("\r\n").find(|line| {
            line.to_ascii_lowercase()
                .starts_with("content-disposition:")
        })?;
        let param = |wanted: &str| {
            disposition.split(';').find_map(|param| {
                let (name, value) = param.split_once('=')?;
                (name.trim() == wanted).then(|| value.trim().trim_matches('"').to_owned())
            })
        };
        parts.push(Part {
            name: param("name")?,
            file_name: param("filename"),
            data,
        });
        rest = rest.slice(next + 2 + delimiter.len()..);
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|at| at + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_gives_its_fields_and_its_file() {
        let body = Bytes::from_static(
            b"--xx\r\nContent-Disposition: form-data; name=\"command\"\r\n\r\nAPPEND\r\n--xx\r\nContent-Disposition: form-data; name=\"media\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n\x89PNG\r\n--xx--\r\n",
        );
        let parts = parse("multipart/form-data; boundary=xx", &body).unwrap_or_default();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].name, "command");
        assert_eq!(&parts[0].data[..], b"APPEND");
        assert_eq!(parts[1].file_name.as_deref(), Some("a.png"));
        assert_eq!(&parts[1].data[..], b"\x89PNG");
        assert!(parse("application/json", &body).is_none());
    }
}
