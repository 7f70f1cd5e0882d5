//! The engine state: a QuickJS runtime and context with the polyfills and the worker loaded,
//! and the event loop that serves one request with it.

use rquickjs::{
    Context, Ctx, Function, Object, Persistent, Promise, Runtime, Value, promise::PromiseState, qjs,
};

use crate::request::Incoming;
use crate::{host, polyfills, worker};

/// Where the host mounts the worker's generated folder, read-only.
const SOURCE_PATH: &str = "/src/index.js";

/// Env var with the worker's name for messages (e.g. `api/[id].js`); not a worker var.
const WORKER_FILE_VAR: &str = "WWS_WORKER_FILE";

/// Env var naming a path (e.g. `/`) the engine requests once while the worker loads, so that
/// what the worker builds on its first request is in the snapshot. Opt-in: the worker's
/// module state after that request is what every request starts from.
const WARM_UP_VAR: &str = "WWS_WARM_UP";

/// Env vars with this prefix are for the engine, not the worker's `[vars]`.
const RESERVED_PREFIX: &str = "WWS_";

/// QuickJS' own stack limit, below the 1 MiB wasm shadow stack (`-zstack-size` in build.rs):
/// past it, a `RangeError` (quickjs-ng ignores the limit on WASI; `patches/` keeps it). About
/// 270 bytes per JS call: some 2,900 nested calls. wws' native wasm stack (12 MiB) is deep
/// enough for the limit to be reached first.
const MAX_STACK: usize = 768 << 10;

/// How much a request may allocate before QuickJS' first cycle collection (freeing by
/// reference counting goes on regardless). The instance is thrown away after the request.
const REQUEST_HEAP: usize = 16 << 20;

unsafe extern "C" {
    /// Added to QuickJS by `patches/quickjs-immortal-snapshot-objects.patch`.
    fn JS_MakeLiveObjectsImmortal(rt: *mut qjs::JSRuntime);
    /// Added to QuickJS by `patches/quickjs-arena-bypass.patch`.
    fn JS_SetArenaBypass(rt: *mut qjs::JSRuntime, bypass: i32);
    /// Added to QuickJS by `patches/quickjs-arena-bypass.patch`.
    fn JS_SetMallocFunctions(rt: *mut qjs::JSRuntime, mf: *const qjs::JSMallocFunctions);
}

thread_local! {
    /// The runtime serving the request, for the arena to reach when it fills up.
    static RUNTIME: std::cell::Cell<*mut qjs::JSRuntime> = const { std::cell::Cell::new(std::ptr::null_mut()) };
}

/// In reuse mode, how much may be allocated past the loaded heap before the first collection.
const REUSE_GC_HEADROOM: usize = 2 << 20;

/// A loaded engine, ready to serve requests (kept in a thread-local between the
/// `wizer-initialize` export and `_start`, and captured by the snapshot).
pub struct Engine {
    /// Keeps the runtime alive (the context borrows it); reuse mode tunes its collector.
    runtime: Runtime,
    context: Context,
    /// The polyfills' `internal` object (`handle`, `nextTimer`, `runTimer`, `formatError`).
    internal: Persistent<Object<'static>>,
    /// `internal.handle`, looked up once.
    handle: Persistent<Function<'static>>,
    worker_file: String,
    /// Reuse mode (`WWS_REUSE=1`), read once while loading: one instance serves many requests.
    pub reuse: bool,
}

impl Engine {
    /// Creates the runtime, evaluates the polyfills, the worker's vars and its source, and
    /// checks that it registered a handler. The error is the report for stderr:
    /// `<file>:<line>:<col>: <ErrorName>: <message>` and the stack.
    pub fn load() -> Result<Engine, String> {
        let worker_file = std::env::var(WORKER_FILE_VAR).unwrap_or_else(|_| "index.js".to_owned());
        let source = std::fs::read_to_string(SOURCE_PATH).map_err(|e| {
            format!("{worker_file}:1:1: Error: cannot read the worker source {SOURCE_PATH}: {e} (the host must mount the worker's folder at /src)")
        })?;
        host::begin_request();
        let runtime = Runtime::new().map_err(|e| {
            format!("{worker_file}:1:1: Error: cannot create the JavaScript runtime: {e}")
        })?;
        runtime.set_max_stack_size(MAX_STACK);
        let context = Context::full(&runtime).map_err(|e| {
            format!("{worker_file}:1:1: Error: cannot create the JavaScript context: {e}")
        })?;
        context.with(|ctx| {
            // SAFETY: the runtime is live and idle; the arena's functions take the blocks the
            // default allocator handed out so far (they pass them on to malloc, as it does).
            unsafe {
                JS_SetMallocFunctions(
                    qjs::JS_GetRuntime(ctx.as_raw().as_ptr()),
                    &crate::arena::QUICKJS,
                )
            }
        });
        let internal = context.with(|ctx| load_in(&ctx, &source, &worker_file))?;
        // A request starts from the snapshot every time: a cycle collection it triggers is
        // paid by every request. Let each one allocate REQUEST_HEAP before the first one.
        let loaded = usize::try_from(runtime.memory_usage().malloc_size).unwrap_or(0);
        runtime.set_gc_threshold(loaded.saturating_add(REQUEST_HEAP));
        track_rejections(&runtime, &context, &internal).map_err(|e| {
            format!("{worker_file}:1:1: Error: cannot set up the promise rejection tracker: {e}")
        })?;
        let handle = context
            .with(|ctx| {
                let handle: Function = internal.clone().restore(&ctx)?.get("handle")?;
                rquickjs::Result::Ok(Persistent::save(&ctx, handle))
            })
            .map_err(|e| {
                format!("{worker_file}:1:1: Error: the polyfills have no handle(): {e}")
            })?;
        let fresh = std::env::var_os(crate::REUSE_VAR).is_none_or(|v| v != "1");
        if fresh {
            // A fresh instance serves one request from the snapshot and is thrown away:
            // what is alive now never needs freeing, and not counting references to it
            // spares every request the copy of the pages it lies on (~25 fewer of ~100).
            context.with(|ctx| {
                // SAFETY: the runtime is live and idle (no job or GC runs during the call).
                unsafe { JS_MakeLiveObjectsImmortal(qjs::JS_GetRuntime(ctx.as_raw().as_ptr())) }
            });
            // Last, so that nothing loading allocated lies past it.
            crate::arena::reserve();
        }
        let engine = Engine {
            runtime,
            context,
            internal,
            handle,
            worker_file,
            reuse: !fresh,
        };
        if fresh {
            engine.prepare_spares()?;
        }
        Ok(engine)
    }

    /// Builds what every request builds first (the polyfills' `prepareSpares`) as the first
    /// blocks of the request arena: the request that fills them in writes the page its own
    /// blocks begin on anyway, where spares among the snapshot's objects would each add a page
    /// for the host to copy back.
    fn prepare_spares(&self) -> Result<(), String> {
        self.begin_fresh();
        let made = self.context.with(|ctx| {
            let internal = self.internal.clone().restore(&ctx).map_err(|e| {
                format!(
                    "{}:1:1: Error: the polyfills are gone: {e}",
                    self.worker_file
                )
            })?;
            call(&internal, "prepareSpares", ()).map_err(|e| {
                format_value(
                    &ctx,
                    Some(&internal),
                    worker::caught(&ctx, e),
                    &self.worker_file,
                )
            })
        });
        crate::arena::pause();
        // SAFETY: the runtime is live and idle.
        RUNTIME.with(|r| unsafe { JS_SetArenaBypass(r.get(), 0) });
        made
    }

    /// Prepares a snapshot-fresh engine to serve many requests (reuse mode): garbage then has
    /// to be collected as it would be in a long-lived runtime, starting a little above what
    /// loading left (QuickJS raises the threshold after each collection).
    pub fn serve_many(&mut self) {
        let loaded = usize::try_from(self.runtime.memory_usage().malloc_size).unwrap_or(0);
        self.runtime
            .set_gc_threshold(loaded.saturating_add(REUSE_GC_HEADROOM));
    }

    /// Begins the one request of a fresh instance: from now on, what it allocates is laid out
    /// in the request arena (see `arena`), QuickJS' blocks included.
    pub fn begin_fresh(&self) {
        // SAFETY: the context pointer is live.
        let runtime = self
            .context
            .with(|ctx| unsafe { qjs::JS_GetRuntime(ctx.as_raw().as_ptr()) });
        RUNTIME.with(|r| r.set(runtime));
        let began = crate::arena::begin(|| {
            // The request arena is full: QuickJS' own arenas serve small blocks again.
            // SAFETY: the runtime of this request, which is live; called from inside an
            // allocation, where QuickJS reads the flag only for the next one.
            RUNTIME.with(|r| unsafe { JS_SetArenaBypass(r.get(), 0) });
        });
        if began {
            // SAFETY: the runtime is live and idle.
            unsafe { JS_SetArenaBypass(runtime, 1) };
        }
    }

    /// Ends a request in reuse mode: fetches it left in flight are forgotten (their answers
    /// are dropped, never handed to a later request). Timers are dropped when the next
    /// request begins.
    pub fn end_request(&self) {
        crate::http::forget_pending();
    }

    /// Serves one request: `input` is the request JSON. Returns the output JSON, or the error
    /// report for stderr when the handler threw or produced no Response.
    pub fn serve(&self, input: &str) -> Result<String, String> {
        host::begin_request();
        self.context.with(|ctx| {
            // The polyfills format the report; their object is only restored on a failure.
            let fail = |e| {
                let internal = self.internal.clone().restore(&ctx).ok();
                self.report(&ctx, internal.as_ref(), e)
            };
            let handle = self.handle.clone().restore(&ctx).map_err(fail)?;
            let incoming = Incoming::parse(input)
                .map_err(|e| format!("{}:1:1: Error: {e}", self.worker_file))?;
            let args = match incoming.into_args(&ctx).map_err(fail)? {
                Ok(args) => args,
                Err(e) => return Err(format!("{}:1:1: Error: {e}", self.worker_file)),
            };
            let call = (
                args.url,
                args.method,
                args.headers,
                args.body,
                args.kv,
                args.params,
                args.relative,
            );
            // An outcome at once when the handler answered synchronously, else a promise of it.
            let returned: Value = handle.call(call).map_err(fail)?;
            let outcome = match returned.as_promise() {
                None => {
                    // Microtasks the handler queued still run, as they would after an await.
                    while ctx.execute_pending_job() {}
                    returned
                }
                Some(promise) => self.settle(&ctx, promise.clone())?,
            };
            let outcome = outcome.into_array().ok_or_else(|| {
                format!(
                    "{}:1:1: Error: the engine's handle() returned no outcome",
                    self.worker_file
                )
            })?;
            let code: i32 = outcome.get(0).map_err(fail)?;
            let text: String = outcome.get(1).map_err(fail)?;
            if code != 0 {
                return Err(text);
            }
            host::take_output().ok_or_else(|| {
                format!(
                    "{}:1:1: Error: the engine produced no output for this request",
                    self.worker_file
                )
            })
        })
    }

    /// Runs jobs and timers until `promise` settles; its value, or the report of why not.
    fn settle<'js>(&self, ctx: &Ctx<'js>, promise: Promise<'js>) -> Result<Value<'js>, String> {
        let internal = self
            .internal
            .clone()
            .restore(ctx)
            .map_err(|e| self.report(ctx, None, e))?;
        loop {
            while ctx.execute_pending_job() {}
            if promise.state() != PromiseState::Pending {
                match promise.result() {
                    Some(Ok(outcome)) => return Ok(outcome),
                    Some(Err(e)) => return Err(self.report(ctx, Some(&internal), e)),
                    None => continue,
                }
            }
            let ran = worker::run_next_event(ctx, &internal)
                .map_err(|e| self.report(ctx, Some(&internal), e))?;
            if !ran {
                return Err(format!(
                    "{}:1:1: Error: the fetch handler never produced a response: its promise is still pending and no timer or job is left to settle it",
                    self.worker_file
                ));
            }
        }
    }

    /// Formats an rquickjs error with the polyfills' formatter when they are available.
    fn report<'js>(
        &self,
        ctx: &Ctx<'js>,
        internal: Option<&Object<'js>>,
        error: rquickjs::Error,
    ) -> String {
        format_value(ctx, internal, worker::caught(ctx, error), &self.worker_file)
    }
}

/// Hands QuickJS' notices of promises rejected without a handler to the polyfills, which
/// report the ones still unhandled when the request ends.
fn track_rejections(
    runtime: &Runtime,
    context: &Context,
    internal: &Persistent<Object<'static>>,
) -> rquickjs::Result<()> {
    let track = context.with(|ctx| {
        let internal = internal.clone().restore(&ctx)?;
        let track: Function = internal.get("trackRejection")?;
        rquickjs::Result::Ok(Persistent::save(&ctx, track))
    })?;
    runtime.set_host_promise_rejection_tracker(Some(Box::new(
        move |ctx, promise, reason, handled| {
            let Ok(track) = track.clone().restore(&ctx) else {
                return;
            };
            if track.call::<_, ()>((promise, reason, handled)).is_err() {
                let _ = ctx.catch();
            }
        },
    )));
    Ok(())
}

/// Evaluates the polyfills, the vars and the worker inside `ctx`.
fn load_in<'js>(
    ctx: &Ctx<'js>,
    source: &str,
    worker_file: &str,
) -> Result<Persistent<Object<'static>>, String> {
    let fail =
        |error: rquickjs::Error| format_value(ctx, None, worker::caught(ctx, error), worker_file);
    let mut options = rquickjs::context::EvalOptions::default();
    options.filename = Some(polyfills::FILE_NAME.to_owned());
    let init: Function = ctx
        .eval_with_options(polyfills::SOURCE, options)
        .map_err(fail)?;
    let host = host::object(ctx).map_err(fail)?;
    let internal: Object<'js> = init.call((host,)).map_err(fail)?;
    let vars = Object::new(ctx.clone()).map_err(fail)?;
    for (name, value) in std::env::vars_os() {
        let (Some(name), Some(value)) = (name.to_str(), value.to_str()) else {
            continue;
        };
        if !name.starts_with(RESERVED_PREFIX) {
            vars.set(name, value).map_err(fail)?;
        }
    }
    let steps = call(&internal, "setWorkerFile", (worker_file,))
        .and_then(|()| call(&internal, "setVars", (vars,)));
    steps.map_err(|e| format_value(ctx, Some(&internal), worker::caught(ctx, e), worker_file))?;
    worker::evaluate(ctx, &internal, source, worker_file)
        .map_err(|thrown| format_value(ctx, Some(&internal), thrown, worker_file))?;
    call(&internal, "finishInit", ())
        .map_err(|e| format_value(ctx, Some(&internal), worker::caught(ctx, e), worker_file))?;
    call(&internal, "warmUp", ())
        .map_err(|e| format_value(ctx, Some(&internal), worker::caught(ctx, e), worker_file))?;
    while ctx.execute_pending_job() {}
    // A fetch made while loading is refused at once (its answer would be frozen into the
    // snapshot): settle it now, so that its handlers run and nothing is left in flight.
    while crate::http::pending() && crate::http::wait(ctx, 0).unwrap_or(false) {
        while ctx.execute_pending_job() {}
    }
    if let Ok(path) = std::env::var(WARM_UP_VAR) {
        warm_up_worker(ctx, &internal, &path, worker_file);
    }
    // The warm-ups' output must not linger in the snapshot.
    host::take_output();
    // Whatever loading left unreachable should not be part of the snapshot.
    ctx.run_gc();
    Ok(Persistent::save(ctx, internal))
}

/// Runs the optional warm-up request (see `WARM_UP_VAR`); a failure is only reported.
fn warm_up_worker<'js>(ctx: &Ctx<'js>, internal: &Object<'js>, path: &str, worker_file: &str) {
    let outcome = (|| -> rquickjs::Result<Option<String>> {
        let promise: Promise = internal.get::<_, Function>("warmUpWorker")?.call((path,))?;
        loop {
            while ctx.execute_pending_job() {}
            if promise.state() != PromiseState::Pending {
                return promise.result::<String>().transpose();
            }
            if !worker::run_next_event(ctx, internal)? {
                return Ok(None);
            }
        }
    })();
    let problem = match outcome {
        Ok(Some(report)) if report.is_empty() => return,
        Ok(Some(report)) => report,
        Ok(None) => "its response never settled".to_owned(),
        Err(e) => format_value(ctx, Some(internal), worker::caught(ctx, e), worker_file),
    };
    eprintln!(
        "[warn] {worker_file}: the warm-up request GET {path} failed (the worker still loads): {problem}"
    );
}

/// Calls `internal[name](...args)`.
fn call<'js, A: rquickjs::function::IntoArgs<'js>>(
    internal: &Object<'js>,
    name: &str,
    args: A,
) -> rquickjs::Result<()> {
    internal.get::<_, Function>(name)?.call(args)
}

/// `<file>:<line>:<col>: <ErrorName>: <message>` plus the stack, for a thrown JS value.
fn format_value<'js>(
    ctx: &Ctx<'js>,
    internal: Option<&Object<'js>>,
    thrown: Value<'js>,
    worker_file: &str,
) -> String {
    if let Some(internal) = internal {
        let formatted = internal
            .get::<_, Function>("formatError")
            .and_then(|f| f.call::<_, String>((thrown.clone(),)));
        match formatted {
            Ok(text) => return text,
            Err(_) => {
                let _ = ctx.catch();
            }
        }
    }
    // Before the polyfills are up: the exception's own fields.
    let (name, message, stack) = match thrown.as_object() {
        Some(object) => (
            object
                .get::<_, String>("name")
                .unwrap_or_else(|_| "Error".to_owned()),
            object.get::<_, String>("message").unwrap_or_default(),
            object.get::<_, String>("stack").unwrap_or_default(),
        ),
        None => ("Error".to_owned(), format!("{thrown:?}"), String::new()),
    };
    let stack = stack.trim_end();
    if stack.is_empty() {
        format!("{worker_file}:1:1: {name}: {message}")
    } else {
        format!("{worker_file}:1:1: {name}: {message}\n{stack}")
    }
}
