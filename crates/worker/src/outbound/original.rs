//! The original's outbound HTTP import, so `.wasm` workers built with its kits (Rust
//! `bindings::send_http_request`, Go `SendHttpRequest`) fetch unchanged (spec §3.7).
//!
//! The import is `http.send-http-request` in wit-bindgen's canonical ABI of 2022 (the Rust kit
//! pins wit-bindgen `cb871cfa`; the Go kit's bindings follow the same layout):
//! `func(request: http-request) -> expected<http-response, http-request-error>` flattened to
//! eleven `i32`s — `body` (is-some, ptr, len), `headers` (ptr, len), `method`, `params`
//! (ptr, len), `uri` (ptr, len) — and a pointer to a 28-byte return area. Each header is a
//! 16-byte (name ptr, name len, value ptr, value len). The answer's lists are allocated with
//! the guest's `canonical_abi_realloc` (`cabi_realloc` in later kits) and become the
//! guest's. `params` are not sent (the kits always pass none; neither did the original).

use wasmtime::{Caller, ExternType, Linker, Memory, Module, ValType};

use super::LOADING;
use super::perform::{Outcome, Request, fail, perform};
use crate::canonical::{self, Realloc};
use crate::host::CoreHost;

const MODULE: &str = "http";
const NAME: &str = "send-http-request";
/// Number of `i32` parameters, the return area's pointer included.
const PARAMS: usize = 11;
/// The kits' method enum, in order.
const METHODS: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"];
/// The kits' `http-error` enum, in order.
const ERRORS: [&str; 7] = [
    "invalid-request",
    "invalid-request-body",
    "invalid-response-body",
    "not-allowed",
    "internal-error",
    "timeout",
    "redirect-loop",
];

type Params = (i32, i32, i32, i32, i32, i32, i32, i32, i32, i32, i32);

/// Links `http.send-http-request` when `module` imports it with the kits' signature, and
/// says so; any other import of that name is left to trap, as unknown imports do.
pub(crate) fn link_original(
    linker: &mut Linker<CoreHost>,
    module: &Module,
) -> wasmtime::Result<bool> {
    let Some(import) = module
        .imports()
        .find(|i| i.module() == MODULE && i.name() == NAME)
    else {
        return Ok(false);
    };
    let ExternType::Func(ty) = import.ty() else {
        return Ok(false);
    };
    let kits = ty.params().len() == PARAMS
        && ty.params().all(|p| matches!(p, ValType::I32))
        && ty.results().len() == 0;
    if !kits {
        return Ok(false);
    }
    linker.func_wrap_async(
        MODULE,
        NAME,
        |caller: Caller<'_, CoreHost>, params: Params| Box::new(send(caller, params)),
    )?;
    Ok(true)
}

/// Reads the request, performs it, and writes the answer into the return area.
async fn send(mut caller: Caller<'_, CoreHost>, params: Params) -> wasmtime::Result<()> {
    let (
        body_some,
        body_ptr,
        body_len,
        headers_ptr,
        headers_len,
        method,
        _,
        _,
        uri_ptr,
        uri_len,
        ret,
    ) = params;
    let memory = canonical::memory(&mut caller, "http.send-http-request")?;
    let realloc: Realloc = ["canonical_abi_realloc", "cabi_realloc"]
        .iter()
        .find_map(|name| caller.get_export(name)?.into_func()?.typed(&caller).ok())
        .ok_or_else(|| {
            wasmtime::Error::msg(
                "http.send-http-request: the module exports neither canonical_abi_realloc nor cabi_realloc to receive the answer in",
            )
        })?;
    let request = {
        let data = memory.data(&caller);
        let body = (body_some != 0)
            .then(|| bytes(data, body_ptr, body_len).map(<[u8]>::to_vec))
            .transpose()?;
        let headers = read_headers(data, headers_ptr, headers_len)?;
        let uri = text(data, uri_ptr, uri_len)?;
        let method = usize::try_from(method).ok().and_then(|m| METHODS.get(m));
        match (method, uri, headers) {
            _ if caller.data().http_loading => Err(fail("not-allowed", LOADING)),
            (None, ..) => Err(fail(
                "invalid-request",
                format!("unknown method {method:?}"),
            )),
            (_, Err(e), _) | (_, _, Err(e)) => Err(fail("invalid-request", e)),
            (Some(method), Ok(url), Ok(headers)) => Ok(Request {
                method: (*method).to_owned(),
                url,
                headers,
                body,
                redirect: None,
            }),
        }
    };
    let outcome = match request {
        Ok(request) => {
            let (policy, limit) = (caller.data().http.clone(), caller.data().http_limit);
            perform(policy.as_deref(), request, limit).await
        }
        Err(refusal) => refusal,
    };
    let area = answer(&mut caller, &memory, &realloc, outcome).await?;
    memory
        .write(&mut caller, ret as u32 as usize, &area)
        .map_err(|_| {
            wasmtime::Error::msg("http.send-http-request: the return area is outside memory")
        })
}

/// The return area for `outcome`, its lists already copied into the guest.
async fn answer(
    caller: &mut Caller<'_, CoreHost>,
    memory: &Memory,
    realloc: &Realloc,
    outcome: Outcome,
) -> wasmtime::Result<[u8; 28]> {
    let mut area = [0u8; 28];
    let mut put = |offset: usize, bytes: &[u8]| {
        area[offset..offset + bytes.len()].copy_from_slice(bytes);
    };
    match outcome {
        Outcome::Response {
            status,
            headers,
            body,
            ..
        } => {
            let body_ptr = canonical::write_new(&mut *caller, memory, realloc, 1, &body).await?;
            let mut list = Vec::with_capacity(headers.len() * 16);
            for (name, value) in &headers {
                for part in [name, value] {
                    let ptr =
                        canonical::write_new(&mut *caller, memory, realloc, 1, part.as_bytes())
                            .await?;
                    list.extend_from_slice(&ptr.to_le_bytes());
                    list.extend_from_slice(&len(part.len())?.to_le_bytes());
                }
            }
            let list_ptr = canonical::write_new(&mut *caller, memory, realloc, 4, &list).await?;
            put(4, &[1]);
            put(8, &body_ptr.to_le_bytes());
            put(12, &len(body.len())?.to_le_bytes());
            put(16, &list_ptr.to_le_bytes());
            put(20, &len(headers.len())?.to_le_bytes());
            put(24, &status.to_le_bytes());
        }
        Outcome::Failure { error, message } => {
            let code = ERRORS.iter().position(|e| *e == error).unwrap_or(4);
            let ptr =
                canonical::write_new(&mut *caller, memory, realloc, 1, message.as_bytes()).await?;
            put(0, &[1]);
            put(4, &[code as u8]);
            put(8, &ptr.to_le_bytes());
            put(12, &len(message.len())?.to_le_bytes());
        }
    }
    Ok(area)
}

fn len(n: usize) -> wasmtime::Result<i32> {
    i32::try_from(n)
        .map_err(|_| wasmtime::Error::msg("http.send-http-request: an answer over 2 GiB"))
}

/// `len` bytes at `ptr`; out of bounds traps, as the canonical ABI does.
fn bytes(data: &[u8], ptr: i32, len: i32) -> wasmtime::Result<&[u8]> {
    let start = ptr as u32 as usize;
    data.get(start..start.saturating_add(len as u32 as usize))
        .ok_or_else(|| {
            wasmtime::Error::msg("http.send-http-request: the request is outside memory")
        })
}

/// A string of the request; not UTF-8 is the request's fault, not a trap.
fn text(data: &[u8], ptr: i32, len: i32) -> wasmtime::Result<Result<String, String>> {
    Ok(String::from_utf8(bytes(data, ptr, len)?.to_vec())
        .map_err(|_| "a header or the URI is not UTF-8".to_owned()))
}

fn read_headers(
    data: &[u8],
    ptr: i32,
    count: i32,
) -> wasmtime::Result<Result<Vec<(String, String)>, String>> {
    let list = bytes(data, ptr, count.saturating_mul(16))?;
    let mut headers = Vec::with_capacity(list.len() / 16);
    for entry in list.chunks_exact(16) {
        let word =
            |i: usize| i32::from_le_bytes(entry[i * 4..i * 4 + 4].try_into().unwrap_or_default());
        let (name, value) = (text(data, word(0), word(1))?, text(data, word(2), word(3))?);
        match (name, value) {
            (Ok(name), Ok(value)) => headers.push((name, value)),
            (Err(e), _) | (_, Err(e)) => return Ok(Err(e)),
        }
    }
    Ok(Ok(headers))
}
