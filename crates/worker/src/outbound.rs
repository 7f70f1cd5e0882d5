//! Outbound HTTP for guests, as the worker's `[features.http_requests]` allows (spec §3.7).
//!
//! Host calls of module `wws_http`. `send(ptr, len) -> len` takes a request as JSON
//! (`{"method", "url", "headers": [[name, value]], "body": base64 or null}`), performs it, and
//! returns the length of the answer, which `read(ptr)` then copies into the guest's memory:
//! `{"status", "headers", "body": base64, "url", "redirected"}` or `{"error", "message"}`
//! (`error` is one of the original's kinds: `invalid-request`, `not-allowed`, `timeout`, ...).
//! So that requests overlap (JavaScript's `Promise.all` of fetches), `start(ptr, len) -> id`
//! takes the same request and returns at once, and `wait(timeout_ms) -> i64` waits for the
//! next started request to finish: its id in the high 32 bits and its answer's length in the
//! low ones, for `read`; -1 when none finished within `timeout_ms` (negative: no limit), -2
//! when none is in flight.
//! Interpreters that cannot import them send the same JSON in reuse mode's call frames
//! ([`answer`], `reuse.rs`).
//!
//! The policy is checked before the request and again on every redirect (the original let a
//! redirect go anywhere). Nothing is allowed by default; plain `http://` only with
//! `allow_http`. One client serves the whole process; a request waits without holding a
//! thread (the guest's fiber is suspended) and the CPU-time limit does not count the wait.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use wasmtime::{Caller, Linker};

use crate::config::HttpRequests;
use crate::host::CoreHost;

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
/// Why a request made while a snapshot is taken is refused.
const LOADING: &str = "outbound HTTP is not available while the worker loads (its answer would be frozen into the snapshot): call fetch inside the handler";
/// Request headers dropped when a redirect leaves the origin.
const CREDENTIAL_HEADERS: [&str; 3] = ["authorization", "cookie", "proxy-authorization"];

/// What a worker may call: its `[features.http_requests]`.
pub type Policy = Arc<HttpRequests>;

#[derive(Deserialize)]
struct OutRequest {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    #[serde(default)]
    body: Option<String>,
    /// The Fetch `redirect` mode: `follow` (default), `manual` (the 3xx is the answer) or
    /// `error` (a redirect fails the request).
    #[serde(default)]
    redirect: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
        url: String,
        redirected: bool,
    },
    Failure {
        error: &'static str,
        message: String,
    },
}

fn fail(error: &'static str, message: impl Into<String>) -> Answer {
    Answer::Failure {
        error,
        message: message.into(),
    }
}

/// Defines `wws_http.send` and `wws_http.read` (see the module documentation).
pub(crate) fn add_to_linker(linker: &mut Linker<CoreHost>) -> anyhow::Result<()> {
    linker.func_wrap_async(
        "wws_http",
        "send",
        |mut caller: Caller<'_, CoreHost>, (ptr, len): (u32, u32)| {
            Box::new(async move {
                let request = guest_bytes(&mut caller, ptr, len)?;
                let policy = caller.data().http.clone();
                let limit = caller.data().http_limit;
                let answer = if caller.data().http_loading {
                    fail("not-allowed", LOADING)
                } else {
                    perform(policy.as_deref(), &request, limit).await
                };
                let json = serde_json::to_vec(&answer)?;
                let n = u32::try_from(json.len())?;
                caller.data_mut().http_answer = json;
                Ok(n)
            })
        },
    )?;
    linker.func_wrap(
        "wws_http",
        "start",
        |mut caller: Caller<'_, CoreHost>, ptr: u32, len: u32| -> wasmtime::Result<u32> {
            let request = guest_bytes(&mut caller, ptr, len)?;
            let host = caller.data_mut();
            let id = host.http_next_id;
            host.http_next_id = id.wrapping_add(1);
            let runtime = tokio::runtime::Handle::try_current();
            match runtime {
                Ok(runtime) if !host.http_loading => {
                    let policy = host.http.clone();
                    let limit = host.http_limit;
                    host.http_inflight.spawn_on(
                        async move { (id, answer(policy.as_deref(), &request, limit).await) },
                        &runtime,
                    );
                }
                _ => {
                    let refusal = serde_json::to_vec(&fail("not-allowed", LOADING))?;
                    host.http_ready.push((id, refusal));
                }
            }
            Ok(id)
        },
    )?;
    linker.func_wrap_async(
        "wws_http",
        "wait",
        |mut caller: Caller<'_, CoreHost>, (timeout_ms,): (i64,)| {
            Box::new(async move {
                let host = caller.data_mut();
                if !host.http_ready.is_empty() {
                    let (id, json) = host.http_ready.remove(0);
                    return announce(host, id, json);
                }
                if host.http_inflight.is_empty() {
                    return Ok(-2);
                }
                let next = host.http_inflight.join_next();
                let finished = match u64::try_from(timeout_ms) {
                    Ok(ms) => tokio::time::timeout(Duration::from_millis(ms), next)
                        .await
                        .ok()
                        .flatten(),
                    Err(_) => next.await,
                };
                let Some(finished) = finished else {
                    return Ok(-1i64);
                };
                let (id, json) = finished.map_err(|e| {
                    wasmtime::Error::msg(format!("an outbound request's task failed: {e}"))
                })?;
                announce(host, id, json)
            })
        },
    )?;
    linker.func_wrap(
        "wws_http",
        "read",
        |mut caller: Caller<'_, CoreHost>, ptr: u32| -> wasmtime::Result<()> {
            let answer = std::mem::take(&mut caller.data_mut().http_answer);
            let memory = guest_memory(&mut caller)?;
            memory
                .write(&mut caller, ptr as usize, &answer)
                .map_err(|_| wasmtime::Error::msg("wws_http.read: the buffer is outside memory"))
        },
    )?;
    Ok(())
}

/// Keeps a finished request's answer for `read` and returns what `wait` tells the guest.
fn announce(host: &mut CoreHost, id: u32, json: Vec<u8>) -> wasmtime::Result<i64> {
    let len = u32::try_from(json.len())?;
    host.http_answer = json;
    Ok((i64::from(id) << 32) | i64::from(len))
}

/// Performs `request` (the JSON of `send`) and returns the answer's JSON (that of `read`):
/// the same call for guests that reach the host through their stdio instead of an import
/// (reuse mode's call frames, `reuse.rs`).
pub(crate) async fn answer(policy: Option<&HttpRequests>, request: &[u8], limit: usize) -> Vec<u8> {
    let answer = perform(policy, request, limit).await;
    serde_json::to_vec(&answer).unwrap_or_else(|e| {
        format!(r#"{{"error":"internal-error","message":"cannot encode the answer: {e}"}}"#)
            .into_bytes()
    })
}

fn guest_memory(caller: &mut Caller<'_, CoreHost>) -> wasmtime::Result<wasmtime::Memory> {
    caller
        .get_export("memory")
        .and_then(wasmtime::Extern::into_memory)
        .ok_or_else(|| wasmtime::Error::msg("wws_http: the module exports no memory"))
}

fn guest_bytes(caller: &mut Caller<'_, CoreHost>, ptr: u32, len: u32) -> wasmtime::Result<Vec<u8>> {
    let memory = guest_memory(caller)?;
    let mut bytes = vec![0; len as usize];
    memory
        .read(&*caller, ptr as usize, &mut bytes)
        .map_err(|_| wasmtime::Error::msg("wws_http.send: the request is outside memory"))?;
    Ok(bytes)
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
fn allowed(policy: &HttpRequests, url: &reqwest::Url, method: &str) -> Result<(), Answer> {
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

/// Performs one request from the guest's JSON, following redirects that the policy allows.
async fn perform(policy: Option<&HttpRequests>, request: &[u8], limit: usize) -> Answer {
    let Some(policy) = policy else {
        return fail(
            "not-allowed",
            "outbound HTTP is not allowed for this worker: grant it with `[features.http_requests]` in its TOML file",
        );
    };
    let request: OutRequest = match serde_json::from_slice(request) {
        Ok(r) => r,
        Err(e) => return fail("invalid-request", format!("malformed request: {e}")),
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
    let mut body = match request.body.map(|b| STANDARD.decode(b)) {
        None => None,
        Some(Ok(bytes)) => Some(bytes),
        Some(Err(e)) => {
            return fail(
                "invalid-request-body",
                format!("the body is not base64: {e}"),
            );
        }
    };
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
) -> Answer {
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
    Answer::Response {
        status,
        headers,
        body: STANDARD.encode(body),
        url: url.to_string(),
        redirected,
    }
}

/// The error and its causes on one line.
fn error_chain(err: reqwest::Error) -> String {
    format!("{:#}", anyhow::Error::new(err))
}
