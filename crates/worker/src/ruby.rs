//! The driver for Ruby's official WASI build (npm `@ruby/*-wasm-wasi`, `ruby+stdlib.wasm`).
//!
//! That module is not a WASI command: it is a reactor with wit-bindgen-style exports and a
//! JS-interop import table (toolchain notes §3.3). The host:
//! 1. links WASI plus the three `canonical_abi` resource functions (a handle table in the
//!    store); every other import traps — plain Ruby never calls the JS ones;
//! 2. calls `_initialize`, `ruby-init(args)` and `ruby-init-loadpath()` — skipped when the
//!    module is a pre-initialised snapshot, which no longer exports `_initialize`;
//! 3. evaluates the worker script with `rb-eval-string-protect`, and on an exception prints
//!    `$!.full_message` to stderr and fails the run;
//! 4. always flushes `$stdout`/`$stderr`, which Ruby would otherwise keep buffered.

use wasmtime::{Instance, Linker, Memory, Module, Store, TypedFunc, bail, format_err};

use crate::canonical::{self, Realloc};
use crate::host::CoreHost;

/// The module's export names. wit-bindgen of that era names exports by their whole signature
/// (`ruby-init: func(args: list<string>) -> ()`), so they are found by the part before `:`.
#[derive(Debug, Clone)]
pub(crate) struct Exports {
    init: String,
    loadpath: String,
    eval: String,
}

impl Exports {
    /// Finds the driver's exports, or `None` when `module` is not the ruby.wasm reactor.
    pub(crate) fn find(module: &Module) -> Option<Self> {
        let find = |prefix: &str| {
            module
                .exports()
                .map(|e| e.name())
                .find(|n| {
                    *n == prefix || n.strip_prefix(prefix).is_some_and(|r| r.starts_with(':'))
                })
                .map(str::to_owned)
        };
        Some(Self {
            init: find("ruby-init")?,
            loadpath: find("ruby-init-loadpath")?,
            eval: find("rb-eval-string-protect")?,
        })
    }
}

/// Whether `module` looks like the ruby.wasm reactor.
pub(crate) fn is_ruby_reactor(module: &Module) -> bool {
    Exports::find(module).is_some()
}

/// Links the `canonical_abi` resource functions the module imports.
pub(crate) fn add_to_linker(linker: &mut Linker<CoreHost>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "canonical_abi",
        "resource_new_rb-abi-value",
        |mut caller: wasmtime::Caller<'_, CoreHost>, ptr: i32| -> i32 {
            let handles = &mut caller.data_mut().ruby_handles;
            handles.push(ptr);
            i32::try_from(handles.len()).unwrap_or(i32::MAX)
        },
    )?;
    linker.func_wrap(
        "canonical_abi",
        "resource_get_rb-abi-value",
        |caller: wasmtime::Caller<'_, CoreHost>, handle: i32| -> wasmtime::Result<i32> {
            let index = usize::try_from(handle).ok().and_then(|h| h.checked_sub(1));
            index
                .and_then(|i| caller.data().ruby_handles.get(i).copied())
                .ok_or_else(|| wasmtime::format_err!("ruby.wasm asked for an unknown value handle"))
        },
    )?;
    linker.func_wrap("canonical_abi", "resource_drop_js-abi-value", |_: i32| {})?;
    Ok(())
}

/// Initialises the interpreter (unless snapshotted) and evaluates `script`.
pub(crate) async fn run(
    store: &mut Store<CoreHost>,
    instance: &Instance,
    exports: &Exports,
    args: &[String],
    script: &str,
) -> wasmtime::Result<()> {
    let guest = Guest::find(store, instance, exports)?;

    if instance
        .get_typed_func::<(), ()>(&mut *store, "_initialize")
        .is_ok()
    {
        init(store, instance, exports, args).await?;
    }

    let state = guest.eval(store, script).await?;
    if state != 0 {
        let _ = guest
            .eval(store, "$stderr.puts $!.full_message(highlight: false)")
            .await;
    }
    let _ = guest.eval(store, "STDOUT.flush; STDERR.flush").await?;
    if state != 0 {
        bail!("the Ruby worker raised an exception (state {state}); see its stderr");
    }
    Ok(())
}

/// Boots the interpreter: `_initialize`, `ruby-init(args)`, `ruby-init-loadpath()`. Run per
/// instance, or once by the snapshotter (`wizer.rs`), whose snapshot then skips it.
pub(crate) async fn init(
    store: &mut Store<CoreHost>,
    instance: &Instance,
    exports: &Exports,
    args: &[String],
) -> wasmtime::Result<()> {
    let guest = Guest::find(store, instance, exports)?;
    let init: TypedFunc<(), ()> = instance.get_typed_func(&mut *store, "_initialize")?;
    init.call_async(&mut *store, ()).await?;
    let ruby_init: TypedFunc<(i32, i32), ()> =
        instance.get_typed_func(&mut *store, &exports.init)?;
    let mut pairs = Vec::with_capacity(args.len() * 8);
    for arg in args {
        let ptr = write_str(store, &guest.memory, &guest.realloc, arg, true).await?;
        pairs.extend_from_slice(&ptr.to_le_bytes());
        pairs.extend_from_slice(&(arg.len() as u32).to_le_bytes());
    }
    let list = canonical::write_new(&mut *store, &guest.memory, &guest.realloc, 4, &pairs).await?;
    ruby_init
        .call_async(&mut *store, (list, args.len() as i32))
        .await?;
    let loadpath: TypedFunc<(), ()> = instance.get_typed_func(&mut *store, &exports.loadpath)?;
    loadpath.call_async(&mut *store, ()).await
}

/// Evaluates `code` after [`init`] (e.g. `require 'json'` for a snapshot); an exception fails
/// with Ruby's own message.
pub(crate) async fn eval(
    store: &mut Store<CoreHost>,
    instance: &Instance,
    exports: &Exports,
    code: &str,
) -> wasmtime::Result<()> {
    let guest = Guest::find(store, instance, exports)?;
    let state = guest.eval(store, code).await?;
    if state != 0 {
        let _ = guest
            .eval(
                store,
                "$stderr.puts $!.full_message(highlight: false); STDERR.flush",
            )
            .await;
        bail!("Ruby raised an exception (state {state}) evaluating {code:?}; see its stderr");
    }
    Ok(())
}

/// The exports every driver step needs, looked up once per call.
struct Guest {
    memory: Memory,
    realloc: Realloc,
    eval: TypedFunc<(i32, i32), i32>,
}

impl Guest {
    fn find(
        store: &mut Store<CoreHost>,
        instance: &Instance,
        exports: &Exports,
    ) -> wasmtime::Result<Self> {
        let memory = instance
            .get_memory(&mut *store, "memory")
            .ok_or_else(|| format_err!("ruby.wasm exports no memory"))?;
        let realloc = instance.get_typed_func(&mut *store, "cabi_realloc")?;
        let eval = instance.get_typed_func(&mut *store, &exports.eval)?;
        Ok(Self {
            memory,
            realloc,
            eval,
        })
    }

    /// Evaluates `code`; returns Ruby's state (non-zero: an exception is in `$!`).
    async fn eval(&self, store: &mut Store<CoreHost>, code: &str) -> wasmtime::Result<i32> {
        let ptr = write_str(store, &self.memory, &self.realloc, code, false).await?;
        let ret = self
            .eval
            .call_async(&mut *store, (ptr, code.len() as i32))
            .await?;
        // The result is a pointer to `(handle: u32, state: i32)`.
        let mut state = [0u8; 4];
        self.memory.read(&*store, ret as usize + 4, &mut state)?;
        Ok(i32::from_le_bytes(state))
    }
}

/// Copies `s` into guest memory (NUL-terminated when `nul`: `ruby-init` reads C strings).
async fn write_str(
    store: &mut Store<CoreHost>,
    memory: &Memory,
    realloc: &Realloc,
    s: &str,
    nul: bool,
) -> wasmtime::Result<i32> {
    if !nul {
        return canonical::write_new(store, memory, realloc, 1, s.as_bytes()).await;
    }
    let mut bytes = Vec::with_capacity(s.len() + 1);
    bytes.extend_from_slice(s.as_bytes());
    bytes.push(0);
    canonical::write_new(store, memory, realloc, 1, &bytes).await
}
