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
//! ([`answer`], `reuse.rs`); modules built with the original's kits import its
//! `http.send-http-request` instead (`original.rs`).
//!
//! The policy is checked before the request and again on every redirect (the original let a
//! redirect go anywhere). Nothing is allowed by default; plain `http://` only with
//! `allow_http`. One client serves the whole process; a request waits without holding a
//! thread (the guest's fiber is suspended) and the CPU-time limit does not count the wait.

mod original;
mod perform;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use wasmtime::{Caller, Linker};

use crate::config::HttpRequests;
use crate::host::CoreHost;
pub(crate) use original::link_original;
use perform::{Outcome, Request, fail, perform};

/// Why a request made while a snapshot is taken is refused.
const LOADING: &str = "outbound HTTP is not available while the worker loads (its answer would be frozen into the snapshot): call fetch inside the handler";

/// What a worker may call: its `[features.http_requests]`.
pub type Policy = Arc<HttpRequests>;

/// A request as `send` and `start` take it.
#[derive(Deserialize)]
struct JsonRequest {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<(String, String)>,
    /// Base64.
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    redirect: Option<String>,
}

/// An answer as `read` gives it.
#[derive(Serialize)]
#[serde(untagged)]
enum Answer {
    Response {
        status: u16,
        headers: Vec<(String, String)>,
        /// Base64.
        body: String,
        url: String,
        redirected: bool,
    },
    Failure {
        error: &'static str,
        message: String,
    },
}

impl From<Outcome> for Answer {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Response {
                status,
                headers,
                body,
                url,
                redirected,
            } => Answer::Response {
                status,
                headers,
                body: STANDARD.encode(body),
                url,
                redirected,
            },
            Outcome::Failure { error, message } => Answer::Failure { error, message },
        }
    }
}

/// Parses the guest's JSON and performs the request.
async fn perform_json(policy: Option<&HttpRequests>, request: &[u8], limit: usize) -> Answer {
    let request: JsonRequest = match serde_json::from_slice(request) {
        Ok(r) => r,
        Err(e) => return fail("invalid-request", format!("malformed request: {e}")).into(),
    };
    let body = match request.body.map(|b| STANDARD.decode(b)) {
        None => None,
        Some(Ok(bytes)) => Some(bytes),
        Some(Err(e)) => {
            return fail(
                "invalid-request-body",
                format!("the body is not base64: {e}"),
            )
            .into();
        }
    };
    let request = Request {
        method: request.method,
        url: request.url,
        headers: request.headers,
        body,
        redirect: request.redirect,
    };
    perform(policy, request, limit).await.into()
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
                    fail("not-allowed", LOADING).into()
                } else {
                    perform_json(policy.as_deref(), &request, limit).await
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
                    let refusal = serde_json::to_vec(&Answer::from(fail("not-allowed", LOADING)))?;
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
            let memory = crate::canonical::memory(&mut caller, "wws_http")?;
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
    let answer = perform_json(policy, request, limit).await;
    serde_json::to_vec(&answer).unwrap_or_else(|e| {
        format!(r#"{{"error":"internal-error","message":"cannot encode the answer: {e}"}}"#)
            .into_bytes()
    })
}

fn guest_bytes(caller: &mut Caller<'_, CoreHost>, ptr: u32, len: u32) -> wasmtime::Result<Vec<u8>> {
    let memory = crate::canonical::memory(caller, "wws_http")?;
    let mut bytes = vec![0; len as usize];
    memory
        .read(&*caller, ptr as usize, &mut bytes)
        .map_err(|_| wasmtime::Error::msg("wws_http.send: the request is outside memory"))?;
    Ok(bytes)
}
