//! `fetch`'s primitive: outbound requests through the host's `wws_http` imports, several in
//! flight at once (`Promise.all` of fetches overlaps them).
//!
//! `host.httpStart(head, body)` hands a request to the host, which starts it at once, and
//! returns a promise. The event loop ([`wait`]) asks the host for the next finished request
//! when no job is left and settles its promise with the answer.

use std::cell::RefCell;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rquickjs::{Array, Ctx, Exception, Function, Object, Persistent, Promise, Result, TypedArray};

#[link(wasm_import_module = "wws_http")]
unsafe extern "C" {
    /// Starts the request described by the JSON at `ptr` (wws' `outbound.rs`); returns its id.
    #[link_name = "start"]
    fn wws_http_start(ptr: *const u8, len: usize) -> u32;
    /// Waits at most `timeout_ms` (negative: no limit) for a started request to finish:
    /// `id << 32 | answer length`, -1 when none did, -2 when none is in flight.
    #[link_name = "wait"]
    fn wws_http_wait(timeout_ms: i64) -> i64;
    /// Copies the answer `wait` announced to `ptr`.
    #[link_name = "read"]
    fn wws_http_read(ptr: *mut u8);
}

thread_local! {
    /// The `resolve` function of each request in flight, by id.
    static PENDING: RefCell<Vec<(u32, Persistent<Function<'static>>)>> = const { RefCell::new(Vec::new()) };
    /// Requests an earlier request left in flight (reuse mode): their answers are dropped.
    static FORGOTTEN: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Forgets the requests in flight: called when a request ends in reuse mode, so that a later
/// request never runs an earlier one's callbacks.
pub fn forget_pending() {
    let ids: Vec<u32> = PENDING.with(|p| p.borrow_mut().drain(..).map(|(id, _)| id).collect());
    FORGOTTEN.with(|f| f.borrow_mut().extend(ids));
}

/// The request line and headers `fetch` sends, as JSON made by fetch.js.
#[derive(serde::Deserialize)]
struct OutHead {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    #[serde(default)]
    redirect: Option<String>,
}

/// The host's answer: a response, or an error kind and message.
#[derive(serde::Deserialize)]
struct Answer {
    status: Option<u16>,
    #[serde(default)]
    headers: Vec<(String, String)>,
    body: Option<String>,
    url: Option<String>,
    #[serde(default)]
    redirected: bool,
    error: Option<String>,
    message: Option<String>,
}

/// `host.httpStart(head, body)`: `head` is `{"method", "url", "headers", "redirect"}` as JSON,
/// `body` the bytes or null. Returns a promise of `{status, headers, body, url, redirected}`
/// (body a Uint8Array) or `{error, message}`.
pub fn start<'js>(
    ctx: Ctx<'js>,
    head: String,
    body: Option<TypedArray<'js, u8>>,
) -> Result<Promise<'js>> {
    let head: OutHead = serde_json::from_str(&head)
        .map_err(|e| Exception::throw_internal(&ctx, &format!("fetch: bad request head: {e}")))?;
    // SAFETY: no JavaScript runs while the slice is alive (see `bytes_of`).
    let body = body
        .as_ref()
        .map(|b| STANDARD.encode(unsafe { crate::host::bytes_of(b) }));
    let request = serde_json::json!({
        "method": head.method,
        "url": head.url,
        "headers": head.headers,
        "body": body,
        "redirect": head.redirect,
    })
    .to_string();
    // SAFETY: the host reads `len` bytes at `ptr`, which is `request`, alive for the call.
    let id = unsafe { wws_http_start(request.as_ptr(), request.len()) };
    let (promise, resolve, _reject) = ctx.promise()?;
    let resolve = Persistent::save(&ctx, resolve);
    PENDING.with(|p| p.borrow_mut().push((id, resolve)));
    Ok(promise)
}

/// Whether a request is in flight.
pub fn pending() -> bool {
    PENDING.with(|p| !p.borrow().is_empty())
}

/// Waits at most `timeout_ms` (negative: no limit) for a request to finish and settles its
/// promise; false when none finished in time. Requests the host does not know (started in
/// another instance, before a snapshot) are forgotten: they can never finish.
pub fn wait(ctx: &Ctx<'_>, timeout_ms: i64) -> Result<bool> {
    // SAFETY: plain values in and out.
    let next = unsafe { wws_http_wait(timeout_ms) };
    if next == -2 {
        PENDING.with(|p| p.borrow_mut().clear());
        return Ok(false);
    }
    if next < 0 {
        return Ok(false);
    }
    let id = u32::try_from(next >> 32).unwrap_or(u32::MAX);
    let len = usize::try_from(next & 0xffff_ffff).unwrap_or(0);
    let mut answer = vec![0u8; len];
    // SAFETY: the host writes exactly `len` bytes, the buffer's size.
    unsafe { wws_http_read(answer.as_mut_ptr()) };
    let resolve = PENDING.with(|p| {
        let mut p = p.borrow_mut();
        let at = p.iter().position(|(i, _)| *i == id)?;
        Some(p.swap_remove(at).1)
    });
    let Some(resolve) = resolve else {
        let forgotten = FORGOTTEN.with(|f| {
            let mut f = f.borrow_mut();
            let at = f.iter().position(|&i| i == id)?;
            Some(f.swap_remove(at))
        });
        if forgotten.is_some() {
            return Ok(true);
        }
        return Err(Exception::throw_internal(
            ctx,
            &format!("fetch: the host answered request {id}, which is not in flight"),
        ));
    };
    let resolve = resolve.restore(ctx)?;
    resolve.call::<_, ()>((answer_object(ctx, &answer)?,))?;
    Ok(true)
}

/// The answer as the object fetch.js expects.
fn answer_object<'js>(ctx: &Ctx<'js>, answer: &[u8]) -> Result<Object<'js>> {
    let answer: Answer = serde_json::from_slice(answer).map_err(|e| {
        Exception::throw_internal(ctx, &format!("fetch: bad answer from the host: {e}"))
    })?;
    let out = Object::new(ctx.clone())?;
    if let Some(error) = answer.error {
        out.set("error", error)?;
        out.set("message", answer.message.unwrap_or_default())?;
        return Ok(out);
    }
    let bytes = match answer.body.map(|b| STANDARD.decode(b)) {
        Some(Ok(bytes)) => bytes,
        Some(Err(e)) => {
            return Err(Exception::throw_internal(
                ctx,
                &format!("fetch: bad body from the host: {e}"),
            ));
        }
        None => Vec::new(),
    };
    out.set("status", answer.status.unwrap_or(200))?;
    let headers = Array::new(ctx.clone())?;
    for (i, (name, value)) in answer.headers.into_iter().enumerate() {
        let pair = Array::new(ctx.clone())?;
        pair.set(0, name)?;
        pair.set(1, value)?;
        headers.set(i, pair)?;
    }
    out.set("headers", headers)?;
    out.set("body", TypedArray::new(ctx.clone(), bytes)?)?;
    out.set("url", answer.url.unwrap_or_default())?;
    out.set("redirected", answer.redirected)?;
    Ok(out)
}
