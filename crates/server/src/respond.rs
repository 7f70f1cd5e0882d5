//! Building responses: plain errors, static files, and a worker's JSON output.

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::static_files::StaticFile;

/// The response body type of the whole server: bodies are fully buffered.
pub type Body = Full<Bytes>;

/// The original's body for a failed worker, kept so clients that match on it still work.
pub const WORKER_ERROR_BODY: &str = "<p>There was an error running this function</p>";

/// A small text or HTML response.
pub fn simple(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// The answer for a worker that failed.
pub fn worker_error(status: StatusCode) -> Response<Body> {
    simple(status, "text/html; charset=utf-8", WORKER_ERROR_BODY)
}

/// A static file with status `status` (the custom 404 page; found files go through
/// `conditional`).
pub fn file(status: StatusCode, file: StaticFile) -> Response<Body> {
    let mut resp = Response::new(Full::new(file.body));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, file.content_type);
    resp
}

/// Headers about the connection or the body's framing, which only the server may set.
const FRAMING_HEADERS: [&str; 7] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
];

/// Turns a parsed worker output into a response. Headers that are not valid HTTP (bad name,
/// control characters in the value) are dropped with a warning naming the worker instead of
/// failing the whole response.
pub fn from_worker(
    worker: &str,
    mut out: wws_worker::protocol::WorkerResponse,
) -> Result<Response<Body>, wws_worker::protocol::OutputError> {
    let body = out.take_body()?;
    // 1xx are interim responses, not answers: hyper cannot send one as the final response
    // (100 came out as an empty 500, 101 as a switch of protocol that lost the body).
    let status = match StatusCode::from_u16(out.status) {
        Ok(status) if !status.is_informational() => status,
        _ => {
            tracing::warn!(
                worker,
                "returned invalid status {}; answering 200 as the original did",
                out.status
            );
            StatusCode::OK
        }
    };
    let body_len = body.len();
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    // A code without a standard reason (299, 599) goes out with an empty one, not hyper's
    // placeholder `<none>`.
    if status.canonical_reason().is_none() {
        resp.extensions_mut()
            .insert(hyper::ext::ReasonPhrase::from_static(b""));
    }
    let headers = resp.headers_mut();
    for (name, values) in &out.headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            tracing::warn!(worker, "dropped response header with invalid name {name:?}");
            continue;
        };
        // The server frames the body itself: a worker's Content-Length (e.g. counted in
        // characters, not bytes) or connection-level header would corrupt the connection.
        // A response proxied from `fetch` carries the upstream's: expected, so only a
        // Content-Length that disagrees with the body is worth a warning.
        if FRAMING_HEADERS.contains(&name.as_str()) {
            let wrong_length = name == header::CONTENT_LENGTH
                && values
                    .iter()
                    .any(|v| v.trim().parse::<usize>() != Ok(body_len));
            if wrong_length {
                tracing::warn!(
                    worker,
                    "dropped response header {name}: {values:?} is not the body's {body_len} bytes, and wws sets it itself"
                );
            } else {
                tracing::debug!(worker, "dropped response header {name}: wws sets it itself");
            }
            continue;
        }
        for value in values.iter() {
            match HeaderValue::from_str(value) {
                Ok(v) => {
                    headers.append(name.clone(), v);
                }
                Err(_) => tracing::warn!(worker, "dropped header {name}: invalid value {value:?}"),
            }
        }
    }
    if !headers.contains_key(header::CONTENT_TYPE) {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html"));
    }
    Ok(resp)
}
