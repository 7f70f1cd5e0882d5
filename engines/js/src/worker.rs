//! Loading the worker's source: told apart as a script or an ES module by parsing, then
//! evaluated once.
//!
//! The source is first compiled (not run) as a classic script. If that parses, it is a
//! service-worker-style script and it runs. If not, it is compiled as a module (an
//! `export default { fetch }` worker, or a bundle such as a Hono app); when that parses too,
//! the module is evaluated (top-level `await` included, timers run) and its namespace handed to the
//! polyfills. When both fail, the error of the mode that got further into the file is
//! reported, which is the one the author meant. Nothing is guessed from the text.

use std::ffi::CString;

use rquickjs::{Ctx, Exception, Function, Module, Object, Value, promise::PromiseState, qjs};

/// Compiles and runs the worker; on failure returns the thrown JS value.
pub fn evaluate<'js>(
    ctx: &Ctx<'js>,
    internal: &Object<'js>,
    source: &str,
    file: &str,
) -> Result<(), Value<'js>> {
    let script_error = match compile_script(ctx, source, file) {
        Ok(compiled) => {
            run_compiled(ctx, &compiled).map_err(|e| caught(ctx, e))?;
            return Ok(());
        }
        Err(e) => caught(ctx, e),
    };
    let module = match Module::declare(ctx.clone(), file, source) {
        Ok(module) => module,
        Err(e) => {
            let module_error = caught(ctx, e);
            let later = internal
                .get::<_, Function>("laterError")
                .and_then(|f| f.call::<_, Value>((script_error.clone(), module_error)));
            return Err(later.unwrap_or(script_error));
        }
    };
    let (module, promise) = module.eval().map_err(|e| caught(ctx, e))?;
    loop {
        match promise.state() {
            PromiseState::Resolved => break,
            PromiseState::Rejected => {
                let error = promise.result::<Value>().map_or_else(
                    || Value::new_undefined(ctx.clone()),
                    |r| r.unwrap_or_else(|e| caught(ctx, e)),
                );
                return Err(error);
            }
            PromiseState::Pending => {
                if ctx.execute_pending_job() {
                    continue;
                }
                // No job left: a top-level `await` may be waiting for a timer.
                if !run_next_event(ctx, internal).map_err(|e| caught(ctx, e))? {
                    return Err(message(
                        ctx,
                        "the module's top-level await never settled: no job or timer is left to settle it",
                    ));
                }
            }
        }
    }
    let namespace = module.namespace().map_err(|e| caught(ctx, e))?;
    internal
        .get::<_, Function>("setModule")
        .and_then(|f| f.call::<_, ()>((namespace,)))
        .map_err(|e| caught(ctx, e))
}

/// Waits for what comes next, a finished fetch or the polyfills' next timer, and handles it;
/// false when nothing is left to wait for.
pub fn run_next_event(ctx: &Ctx<'_>, internal: &Object<'_>) -> rquickjs::Result<bool> {
    let wait: f64 = internal.get::<_, Function>("nextTimer")?.call(())?;
    let mut waited = false;
    if crate::http::pending() {
        // A fetch may finish before the timer is due; no timer: wait for a fetch only.
        let timeout = if wait < 0.0 { -1 } else { wait.ceil() as i64 };
        if crate::http::wait(ctx, timeout)? {
            return Ok(true);
        }
        // Still pending: the wait timed out, so the timer is due now.
        waited = crate::http::pending();
    }
    if wait < 0.0 {
        return Ok(false);
    }
    if wait > 0.0 && !waited {
        // Delays are at most 2^31 - 1 ms (timers.js), so this never saturates in practice.
        let wait = std::time::Duration::try_from_secs_f64(wait / 1000.0)
            .unwrap_or(std::time::Duration::MAX);
        std::thread::sleep(wait);
    }
    internal.get::<_, Function>("runTimer")?.call::<_, ()>(())?;
    Ok(true)
}

/// The JS value behind an rquickjs error: the pending exception, or a new Error that carries
/// the Rust error's message.
pub fn caught<'js>(ctx: &Ctx<'js>, error: rquickjs::Error) -> Value<'js> {
    if error.is_exception() {
        return ctx.catch();
    }
    message(ctx, &error.to_string())
}

/// A new JS `Error` with `text` as its message.
pub fn message<'js>(ctx: &Ctx<'js>, text: &str) -> Value<'js> {
    Exception::from_message(ctx.clone(), text)
        .map_or_else(|_| Value::new_undefined(ctx.clone()), |e| e.into_value())
}

/// Compiles `source` as a classic (global) script without running it.
fn compile_script<'js>(ctx: &Ctx<'js>, source: &str, file: &str) -> rquickjs::Result<Value<'js>> {
    let code = CString::new(source)?;
    let name = CString::new(file)?;
    let flags = (qjs::JS_EVAL_TYPE_GLOBAL | qjs::JS_EVAL_FLAG_COMPILE_ONLY) as i32;
    // SAFETY: the context pointer is live for 'js; `code` and `name` are NUL-terminated and
    // outlive the call, and `source.len()` is the length of `code` without its NUL, as JS_Eval
    // requires. JS_Eval returns a new owned value (or the exception marker).
    let raw = unsafe {
        qjs::JS_Eval(
            ctx.as_raw().as_ptr(),
            code.as_ptr(),
            source.len() as _,
            name.as_ptr(),
            flags,
        )
    };
    // SAFETY: `raw` is owned and belongs to this context's runtime; Value takes the reference.
    let value = unsafe { Value::from_raw(ctx.clone(), raw) };
    if value.is_exception() {
        Err(rquickjs::Error::Exception)
    } else {
        Ok(value)
    }
}

/// Runs a script compiled by [`compile_script`].
fn run_compiled<'js>(ctx: &Ctx<'js>, compiled: &Value<'js>) -> rquickjs::Result<()> {
    let context = ctx.as_raw().as_ptr();
    // SAFETY: JS_EvalFunction consumes one reference to the compiled function, so it gets a new
    // one (JS_DupValue) and `compiled` keeps its own. The result is a new owned value.
    let raw =
        unsafe { qjs::JS_EvalFunction(context, qjs::JS_DupValue(context, compiled.as_raw())) };
    // SAFETY: `raw` is owned and belongs to this context's runtime.
    let result = unsafe { Value::from_raw(ctx.clone(), raw) };
    if result.is_exception() {
        Err(rquickjs::Error::Exception)
    } else {
        Ok(())
    }
}
