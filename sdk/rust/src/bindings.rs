//! Outbound HTTP from a worker, as the original kit offered it: [`send_http_request`].
//!
//! The request goes out through wws (its `wws_http` host calls), which checks it against the
//! worker's `[features.http_requests]` (allowed hosts, methods, plain `http://`) before it
//! leaves and again on every redirect. Outside wws (e.g. in unit tests on the host) every
//! request fails with [`HttpError::InternalError`].

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// Why a request did not produce a response (the original kit's kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpError {
    /// The URL, method or a header is invalid, or the server could not be reached.
    InvalidRequest,
    /// The request body could not be sent.
    InvalidRequestBody,
    /// The response body could not be read (or is larger than the output limit).
    InvalidResponseBody,
    /// `[features.http_requests]` does not allow it.
    NotAllowed,
    /// Something failed inside wws.
    InternalError,
    /// No answer in time.
    Timeout,
    /// Too many redirects.
    RedirectLoop,
}

/// A request that did not produce a response: the kind, and wws' explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequestError {
    /// What went wrong.
    pub error: HttpError,
    /// What wws says about it (which setting to change, the URL, the cause).
    pub message: String,
}

impl std::fmt::Display for HttpRequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.error, self.message)
    }
}

impl std::error::Error for HttpRequestError {}

/// The answer wws writes for one request.
#[derive(Deserialize)]
struct Answer {
    status: Option<u16>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    body: Option<String>,
    error: Option<String>,
    message: Option<String>,
}

/// Sends `req` and returns the response, with its whole body.
pub fn send_http_request<T: Into<Vec<u8>>>(
    req: http::Request<T>,
) -> Result<http::Response<Vec<u8>>, HttpRequestError> {
    let (parts, body) = req.into_parts();
    let body: Vec<u8> = body.into();
    let headers: Vec<(&str, &str)> = parts
        .headers
        .iter()
        .filter_map(|(n, v)| Some((n.as_str(), v.to_str().ok()?)))
        .collect();
    let request = serde_json::json!({
        "method": parts.method.as_str(),
        "url": parts.uri.to_string(),
        "headers": headers,
        "body": (!body.is_empty()).then(|| STANDARD.encode(&body)),
    })
    .to_string();
    let answer = host::send(request.as_bytes());
    let answer: Answer = serde_json::from_slice(&answer).map_err(|e| HttpRequestError {
        error: HttpError::InternalError,
        message: format!("unreadable answer from wws: {e}"),
    })?;
    if let Some(error) = answer.error {
        return Err(HttpRequestError {
            error: kind(&error),
            message: answer.message.unwrap_or_default(),
        });
    }
    let body = STANDARD
        .decode(answer.body.unwrap_or_default())
        .map_err(|e| HttpRequestError {
            error: HttpError::InvalidResponseBody,
            message: format!("the body from wws is not base64: {e}"),
        })?;
    let mut response = http::Response::builder().status(answer.status.unwrap_or(200));
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    response.body(body).map_err(|e| HttpRequestError {
        error: HttpError::InvalidResponseBody,
        message: e.to_string(),
    })
}

fn kind(error: &str) -> HttpError {
    match error {
        "invalid-request" => HttpError::InvalidRequest,
        "invalid-request-body" => HttpError::InvalidRequestBody,
        "invalid-response-body" => HttpError::InvalidResponseBody,
        "not-allowed" => HttpError::NotAllowed,
        "timeout" => HttpError::Timeout,
        "redirect-loop" => HttpError::RedirectLoop,
        _ => HttpError::InternalError,
    }
}

#[cfg(target_family = "wasm")]
#[allow(unsafe_code, reason = "the two host calls of wws' outbound HTTP")]
mod host {
    #[link(wasm_import_module = "wws_http")]
    unsafe extern "C" {
        /// Performs the request described by the JSON at `ptr`; returns the answer's length.
        #[link_name = "send"]
        fn wws_http_send(ptr: *const u8, len: usize) -> usize;
        /// Copies the answer of the last `send` to `ptr`.
        #[link_name = "read"]
        fn wws_http_read(ptr: *mut u8);
    }

    pub(super) fn send(request: &[u8]) -> Vec<u8> {
        // SAFETY: wws reads `len` bytes at `ptr` (the request, alive for the call), then
        // writes exactly the returned length into a buffer of that size.
        unsafe {
            let len = wws_http_send(request.as_ptr(), request.len());
            let mut answer = vec![0u8; len];
            wws_http_read(answer.as_mut_ptr());
            answer
        }
    }
}

#[cfg(not(target_family = "wasm"))]
mod host {
    pub(super) fn send(_request: &[u8]) -> Vec<u8> {
        br#"{"error":"internal-error","message":"outbound HTTP needs the worker to run in wws"}"#
            .to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_wws_a_request_fails_clearly() {
        let req = http::Request::get("https://example.com/").body(Vec::new()).unwrap();
        let err = send_http_request(req).unwrap_err();
        assert_eq!(err.error, HttpError::InternalError);
        assert!(err.to_string().contains("run in wws"), "{err}");
    }
}
