//! Performs a guest's outbound request as its policy allows, however the guest described it
//! (`wws_http` JSON or the original's `http` import): the policy is checked before the request
//! and again on every redirect.

use std::sync::OnceLock;
use std::time::Duration;

use crate::config::HttpRequests;

/// Longest a request may take, redirects included.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// Request headers a guest may not set: the client frames the request itself.
const CONNECTION_HEADERS: [&str; 6] = [
    "host",
    "connection",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "upgrade",
];
/// Request headers dropped when a redirect leaves the origin.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// One outbound request.
pub(crate) struct Request {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Vec<u8>>,
    /// The Fetch `redirect` mode: `follow` (`None`), `manual` (the 3xx is the answer) or
    /// `error` (a redirect fails the request).
    pub redirect: Option<String>,
}

/// What became of a request.
pub(crate) enum Outcome {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        url: String,
        redirected: bool,
    },
    /// `error` is one of the original's kinds (`invalid-request`, `not-allowed`, `timeout`, ...).
    Failure {
        error: &'static str,
        message: String,
    },
}

pub(crate) fn fail(error: &'static str, message: impl Into<String>) -> Outcome {
    Outcome::Failure {
        error,
        message: message.into(),
    }
}

/// The process's client: redirects are followed by [`perform`], which checks each one.
fn client() -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(TIMEOUT)
                .user_agent(concat!("wws/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| format!("cannot create the HTTP client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Checks `url` and `method` against the policy, with the original's messages.
fn allowed(policy: &HttpRequests, url: &reqwest::Url, method: &str) -> Result<(), Outcome> {
    let host = url.host_str().unwrap_or_default();
    if !policy
        .allowed_hosts
        .iter()
        .any(|h| h.eq_ignore_ascii_case(host))
    {
        return Err(fail(
            "not-allowed",
            format!(
                "The host '{host}' is not allowed for this worker: add it to `allowed_hosts` in `[features.http_requests]` of its TOML file"
            ),
        ));
    }
    match url.scheme() {
        "https" => {}
        "http" if policy.allow_http => {}
        "http" => {
            return Err(fail(
                "not-allowed",
                "The URI must use HTTPS: set `allow_http = true` in `[features.http_requests]` to allow http://",
            ));
        }
        other => {
            return Err(fail(
                "invalid-request",
                format!("unsupported scheme {other}: only https:// (and http:// when allowed)"),
            ));
        }
    }
    if !policy.allowed_methods.iter().any(|m| m == method) {
        return Err(fail(
            "not-allowed",
            format!(
                "The method '{method}' is not allowed for this worker: add it to `allowed_methods` in `[features.http_requests]`"
            ),
        ));
    }
    Ok(())
}

/// Performs `request`, following redirects that the policy allows; `limit` bounds the body.
pub(crate) async fn perform(
    policy: Option<&HttpRequests>,
    request: Request,
    limit: usize,
) -> Outcome {
    let Some(policy) = policy else {
        return fail(
            "not-allowed",
            "outbound HTTP is not allowed for this worker: grant it with `[features.http_requests]` in its TOML file",
        );
    };
    let mut method = request.method.to_ascii_uppercase();
    // The connection's own headers are the client's to set; `host` must match the URL the
    // policy checked.
    let mut headers: Vec<(String, String)> = request
        .headers
        .into_iter()
        .filter(|(name, _)| {
            !CONNECTION_HEADERS
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
        })
        .collect();
    let mut url = match reqwest::Url::parse(&request.url) {
        Ok(mut url) => {
            url.set_fragment(None);
            url
        }
        Err(e) => {
            return fail(
                "invalid-request",
                format!("invalid URL {:?}: {e}", request.url),
            );
        }
    };
    let mut body = request.body;
    let client = match client() {
        Ok(c) => c,
        Err(message) => return fail("internal-error", message),
    };
    for hop in 0..=MAX_REDIRECTS {
        if let Err(answer) = allowed(policy, &url, &method) {
            return answer;
        }
        let Ok(http_method) = reqwest::Method::from_bytes(method.as_bytes()) else {
            return fail("invalid-request", format!("invalid method {method:?}"));
        };
        let mut builder = client.request(http_method, url.clone());
        for (name, value) in &headers {
            builder = builder.header(name, value);
        }
        match &body {
            Some(body) if !body.is_empty() => builder = builder.body(body.clone()),
            // Strict servers answer 411 to a POST without a length.
            _ if matches!(method.as_str(), "POST" | "PUT" | "PATCH") => {
                builder = builder.header(reqwest::header::CONTENT_LENGTH, "0");
            }
            _ => {}
        }
        let response = match builder.send().await {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return fail("timeout", format!("{url}: no answer within {TIMEOUT:?}"));
            }
            Err(e) => return fail("invalid-request", format!("{url}: {}", error_chain(e))),
        };
        let status = response.status();
        if status.is_redirection()
            && let Some(next) = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
        {
            match request.redirect.as_deref() {
                Some("manual") => return read_answer(response, url, hop > 0, limit).await,
                Some("error") => {
                    return fail(
                        "invalid-request",
                        format!(
                            "{url} redirects to {next}, and the request has redirect: \"error\""
                        ),
                    );
                }
                _ => {}
            }
            // 303, and 301/302 after a POST, continue as a GET without a body (as browsers
            // do), and without the headers that described that body.
            if status == reqwest::StatusCode::SEE_OTHER
                || (method == "POST" && matches!(status.as_u16(), 301 | 302))
            {
                method = "GET".into();
                body = None;
                headers.retain(|(name, _)| {
                    !["content-type", "content-encoding", "content-language"]
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(name))
                });
            }
            // Credentials stay with the origin they were meant for (as browsers and curl do).
            if next.origin() != url.origin() {
                headers.retain(|(name, _)| {
                    !CREDENTIAL_HEADERS
                        .iter()
                        .any(|h| h.eq_ignore_ascii_case(name))
                });
            }
            url = next;
            if hop == MAX_REDIRECTS {
                break;
            }
            continue;
        }
        return read_answer(response, url, hop > 0, limit).await;
    }
    fail(
        "redirect-loop",
        format!("more than {MAX_REDIRECTS} redirects"),
    )
}

async fn read_answer(
    mut response: reqwest::Response,
    url: reqwest::Url,
    redirected: bool,
    limit: usize,
) -> Outcome {
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                if body.len() + chunk.len() > limit {
                    return fail(
                        "invalid-response-body",
                        format!("{url}: the response is larger than {limit} bytes"),
                    );
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => {
                return fail(
                    "timeout",
                    format!("{url}: the body did not arrive within {TIMEOUT:?}"),
                );
            }
            Err(e) => {
                return fail(
                    "invalid-response-body",
                    format!("{url}: {}", error_chain(e)),
                );
            }
        }
    }
    Outcome::Response {
        status,
        headers,
        body,
        url: url.to_string(),
        redirected,
    }
}

/// The error and its causes on one line.
fn error_chain(err: reqwest::Error) -> String {
    format!("{:#}", anyhow::Error::new(err))
}
