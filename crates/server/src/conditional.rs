//! Validators and byte ranges for static files (RFC 9110 §13–14), as the original's
//! actix-files served them: `ETag` and `Last-Modified` on every file, `304 Not Modified` for a
//! cache that already has it, and `206 Partial Content` for one `Range` (a video seeking).
//! Several ranges in one request get the whole file, which the RFC allows.

use std::time::SystemTime;

use http::{HeaderMap, HeaderValue, Response, StatusCode, header};
use http_body_util::Full;

use crate::respond::Body;
use crate::static_files::StaticFile;

/// The response for `file` (status 200) given the request's conditional and range headers.
pub fn respond(request: &HeaderMap, file: StaticFile) -> Response<Body> {
    // `If-Match` / `If-Unmodified-Since`: the client's copy is not this one (an edit based
    // on an old version) — 412, nothing sent.
    let precondition_failed = match request.get(header::IF_MATCH) {
        Some(tags) => !matches_strongly(tags, &file.etag),
        None => request
            .get(header::IF_UNMODIFIED_SINCE)
            .zip(file.modified)
            .is_some_and(|(since, modified)| !not_newer(modified, since)),
    };
    if precondition_failed {
        let mut resp = Response::new(Full::new(bytes::Bytes::new()));
        *resp.status_mut() = StatusCode::PRECONDITION_FAILED;
        resp.headers_mut().insert(header::ETAG, file.etag);
        return resp;
    }
    let not_modified = match request.get(header::IF_NONE_MATCH) {
        Some(tags) => matches_any(tags, &file.etag),
        None => request
            .get(header::IF_MODIFIED_SINCE)
            .zip(file.modified)
            .is_some_and(|(since, modified)| not_newer(modified, since)),
    };
    let len = file.body.len() as u64;
    let (status, body, range) = if not_modified {
        (StatusCode::NOT_MODIFIED, bytes::Bytes::new(), None)
    } else {
        match requested_range(request, &file, len) {
            Some(Ok((start, end))) => (
                StatusCode::PARTIAL_CONTENT,
                file.body.slice(start as usize..=end as usize),
                Some(format!("bytes {start}-{end}/{len}")),
            ),
            Some(Err(())) => (
                StatusCode::RANGE_NOT_SATISFIABLE,
                bytes::Bytes::new(),
                Some(format!("bytes */{len}")),
            ),
            None => (StatusCode::OK, file.body.clone(), None),
        }
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, file.content_type);
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(header::ETAG, file.etag);
    if let Some(value) = file.last_modified {
        headers.insert(header::LAST_MODIFIED, value);
    }
    if let Some(value) = range.and_then(|r| HeaderValue::from_str(&r).ok()) {
        headers.insert(header::CONTENT_RANGE, value);
    }
    resp
}

/// The one byte range asked for (inclusive), `Err` when it lies outside the file, `None` to
/// send the whole file: no `Range`, a malformed one, several ranges, or an `If-Range` that no
/// longer matches.
fn requested_range(
    request: &HeaderMap,
    file: &StaticFile,
    len: u64,
) -> Option<Result<(u64, u64), ()>> {
    let range = request.get(header::RANGE)?.to_str().ok()?;
    if let Some(if_range) = request.get(header::IF_RANGE) {
        let same = if_range == file.etag
            || file
                .modified
                .is_some_and(|modified| if_range_date_matches(modified, if_range));
        if !same {
            return None;
        }
    }
    let Ok(parsed) = http_range_header::parse_range_header(range) else {
        // `bytes=-0` asks for no bytes at all: unsatisfiable, not malformed (the parser
        // refuses it).
        let suffix = range.trim().strip_prefix("bytes=-");
        return suffix
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b == b'0'))
            .then_some(Err(()));
    };
    let [range] = parsed.ranges.as_slice() else {
        return None;
    };
    satisfiable(range, len)
}

/// The inclusive byte range `range` selects in `len` bytes (RFC 9110 §14.1.2): a first byte
/// past the end is unsatisfiable; a suffix longer than the file is the whole file; an empty
/// file satisfies no range; `bytes=5-2` is invalid, so ignored (`None`: the whole file).
fn satisfiable(
    range: &http_range_header::SyntacticallyCorrectRange,
    len: u64,
) -> Option<Result<(u64, u64), ()>> {
    use http_range_header::{EndPosition, StartPosition};
    if let (StartPosition::Index(start), EndPosition::Index(end)) = (&range.start, &range.end)
        && end < start
    {
        return None;
    }
    let Some(last) = len.checked_sub(1) else {
        return Some(Err(()));
    };
    let start = match range.start {
        StartPosition::Index(start) if start <= last => start,
        StartPosition::FromLast(suffix) if suffix > 0 => len - suffix.min(len),
        _ => return Some(Err(())),
    };
    let end = match range.end {
        EndPosition::Index(end) => end.min(last),
        EndPosition::LastByte => last,
    };
    Some(Ok((start, end)))
}

/// Whether an `If-Match` list names `etag` (strong comparison: a weak tag never matches;
/// `*` matches any file).
fn matches_strongly(tags: &HeaderValue, etag: &HeaderValue) -> bool {
    let (Ok(tags), Ok(etag)) = (tags.to_str(), etag.to_str()) else {
        return false;
    };
    tags.split(',')
        .map(str::trim)
        .any(|t| t == "*" || (!t.starts_with("W/") && !etag.starts_with("W/") && t == etag))
}

/// Whether an `If-None-Match` list names `etag` (weak comparison, `*` matches any).
fn matches_any(tags: &HeaderValue, etag: &HeaderValue) -> bool {
    let (Ok(tags), Ok(etag)) = (tags.to_str(), etag.to_str()) else {
        return false;
    };
    let bare = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    tags.split(',')
        .any(|t| t.trim() == "*" || bare(t) == bare(etag))
}

/// `modified` is not after the `If-Modified-Since` date (HTTP dates have whole seconds).
fn not_newer(modified: SystemTime, since: &HeaderValue) -> bool {
    let Some(since) = since
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
    else {
        return false;
    };
    whole_seconds(modified) <= since
}

/// An `If-Range` date matches only when it is exactly the file's modification time.
fn if_range_date_matches(modified: SystemTime, if_range: &HeaderValue) -> bool {
    if_range
        .to_str()
        .ok()
        .and_then(|s| httpdate::parse_http_date(s).ok())
        .is_some_and(|date| date == whole_seconds(modified))
}

fn whole_seconds(time: SystemTime) -> SystemTime {
    let secs = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file() -> StaticFile {
        let modified = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        StaticFile {
            body: bytes::Bytes::from_static(b"0123456789"),
            content_type: HeaderValue::from_static("text/plain; charset=utf-8"),
            etag: HeaderValue::from_static("\"a-1\""),
            modified: Some(modified),
            last_modified: Some(HeaderValue::from_str(&httpdate::fmt_http_date(modified)).unwrap()),
        }
    }

    fn answer(headers: &[(header::HeaderName, &str)]) -> Response<Body> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(name, HeaderValue::from_str(value).unwrap());
        }
        respond(&map, file())
    }

    #[test]
    fn an_empty_file_satisfies_no_range() {
        let mut empty = file();
        empty.body = bytes::Bytes::new();
        for range in ["bytes=0-", "bytes=0-0", "bytes=-5"] {
            let mut map = HeaderMap::new();
            map.insert(header::RANGE, HeaderValue::from_static(range));
            let resp = respond(&map, empty.clone());
            assert_eq!(resp.status(), StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(resp.headers()[header::CONTENT_RANGE], "bytes */0");
        }
    }

    #[test]
    fn validators_give_304_and_ranges_give_206_or_416() {
        let full = answer(&[]);
        assert_eq!(full.status(), StatusCode::OK);
        assert_eq!(full.headers()[header::ETAG], "\"a-1\"");
        assert_eq!(
            full.headers()[header::LAST_MODIFIED],
            "Tue, 14 Nov 2023 22:13:20 GMT"
        );
        assert_eq!(full.headers()[header::ACCEPT_RANGES], "bytes");

        for (name, value) in [
            (header::IF_NONE_MATCH, "\"x\", W/\"a-1\""),
            (header::IF_NONE_MATCH, "*"),
            (header::IF_MODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:20 GMT"),
        ] {
            assert_eq!(answer(&[(name, value)]).status(), StatusCode::NOT_MODIFIED);
        }
        for (name, value) in [
            (header::IF_NONE_MATCH, "\"other\""),
            (header::IF_MODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:19 GMT"),
        ] {
            assert_eq!(answer(&[(name, value)]).status(), StatusCode::OK);
        }

        let part = answer(&[(header::RANGE, "bytes=2-4")]);
        assert_eq!(part.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(part.headers()[header::CONTENT_RANGE], "bytes 2-4/10");
        let tail = answer(&[(header::RANGE, "bytes=-3")]);
        assert_eq!(tail.headers()[header::CONTENT_RANGE], "bytes 7-9/10");
        let suffix_longer = answer(&[(header::RANGE, "bytes=-30")]);
        assert_eq!(
            suffix_longer.headers()[header::CONTENT_RANGE],
            "bytes 0-9/10"
        );
        let outside = answer(&[(header::RANGE, "bytes=20-30")]);
        assert_eq!(outside.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(outside.headers()[header::CONTENT_RANGE], "bytes */10");
        // Several ranges, a malformed one, or a stale If-Range: the whole file.
        for headers in [
            vec![(header::RANGE, "bytes=0-1, 4-5")],
            vec![(header::RANGE, "items=0-1")],
            vec![(header::RANGE, "bytes=0-1"), (header::IF_RANGE, "\"old\"")],
        ] {
            assert_eq!(answer(&headers).status(), StatusCode::OK);
        }
        let current = answer(&[(header::RANGE, "bytes=0-1"), (header::IF_RANGE, "\"a-1\"")]);
        assert_eq!(current.status(), StatusCode::PARTIAL_CONTENT);
        // An invalid range is ignored; a zero-length suffix is unsatisfiable.
        assert_eq!(
            answer(&[(header::RANGE, "bytes=5-2")]).status(),
            StatusCode::OK
        );
        assert_eq!(
            answer(&[(header::RANGE, "bytes=-0")]).status(),
            StatusCode::RANGE_NOT_SATISFIABLE
        );
    }

    #[test]
    fn preconditions_of_an_edit_fail_with_412() {
        for (name, value) in [
            (header::IF_MATCH, "\"other\""),
            (header::IF_MATCH, "W/\"a-1\""),
            (header::IF_UNMODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:19 GMT"),
        ] {
            assert_eq!(
                answer(&[(name, value)]).status(),
                StatusCode::PRECONDITION_FAILED
            );
        }
        for (name, value) in [
            (header::IF_MATCH, "\"x\", \"a-1\""),
            (header::IF_MATCH, "*"),
            (header::IF_UNMODIFIED_SINCE, "Tue, 14 Nov 2023 22:13:20 GMT"),
        ] {
            assert_eq!(answer(&[(name, value)]).status(), StatusCode::OK);
        }
    }
}
