//! Pre-initialisation with Wizer: run a module's initialisation once at startup and turn the
//! resulting memory into a new module, so each request starts from an initialised state.
//!
//! The JS engine uses it to parse, compile and evaluate a worker's script once instead of on
//! every request (toolchain notes §2.4: 28 ms → 0.3 ms per request for a 546 KB worker).
//!
//! [`Snapshotter`] instruments and compiles the module once; [`Snapshotter::snapshot`] then
//! takes one snapshot per worker. Snapshots are taken with exactly the guest preopens, in the same order,
//! that requests will get: wasi-libc records its preopen table in memory, so a snapshot taken
//! with other mounts would look for files in the wrong place.
//!
//! Ruby uses the same mechanism with a different initialisation ([`Snapshotter::snapshot_ruby`],
//! `ruby_snapshot.rs`): the interpreter's own `_initialize`, `ruby-init` and
//! `ruby-init-loadpath` run once, and requests only evaluate the worker's script.

use std::sync::Arc;

use bytes::Bytes;
use wasmtime::{Instance, Linker, Module, Store};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wizer::{ModuleContext, WasmtimeWizer, Wizer};

use crate::engine::Engine;
use crate::host::CoreHost;
use crate::program::Preopen;
use crate::wasi::{RequestWasi, WasiSpec};

/// Largest stderr kept from an initialisation, for its error message.
const INIT_STDERR: usize = 64 << 10;

/// A module instrumented for snapshots, compiled once. It borrows the original module's
/// bytes (`'static` for the embedded JS engine, a local buffer for an installed interpreter).
pub struct Snapshotter<'a> {
    engine: Engine,
    wizer: Wizer,
    cx: ModuleContext<'a>,
    instrumented: Module,
}

/// How a snapshot's initialisation runs: the one difference between the JS engine and Ruby.
enum Init<'s> {
    /// Call the module's exported `wizer-initialize`.
    WizerInitialize,
    /// The ruby.wasm reactor: `_initialize`, `ruby-init(args)`, `ruby-init-loadpath`, then
    /// evaluate the preload code.
    Ruby(&'s crate::ruby::Exports, &'s str),
}

/// Why a snapshot could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PreinitError {
    /// The module's initialisation failed; `stderr` is what it printed (e.g. a syntax error).
    #[error("{}", if stderr.trim().is_empty() { reason.clone() } else { stderr.trim().to_string() })]
    Init {
        /// The trap or exit status.
        reason: String,
        /// What the guest wrote to stderr.
        stderr: String,
    },
    /// Instrumenting, instantiating or snapshotting failed.
    #[error("{0:#}")]
    Host(anyhow::Error),
}

/// A snapshotter of a module embedded in the binary (the JS engine), kept for the process.
pub type Preinit = Snapshotter<'static>;

impl<'a> Snapshotter<'a> {
    /// Prepares `wasm` for snapshots: it must export `wizer-initialize` (for
    /// [`Self::snapshot`]) or be the ruby.wasm reactor (for [`Self::snapshot_ruby`]).
    pub fn new(engine: &Engine, wasm: &'a [u8]) -> anyhow::Result<Self> {
        let wizer = Wizer::new();
        let (cx, instrumented) = wizer.instrument(wasm)?;
        let instrumented = engine.module(&instrumented)?;
        Ok(Self {
            engine: engine.clone(),
            wizer,
            cx,
            instrumented,
        })
    }

    /// Runs `wizer-initialize` with this argv, environment and mounts, and returns the
    /// initialised module. What the module printed on stderr while it loaded (a worker's
    /// top-level `console.log`) is logged as the worker `name`'s, as at run time.
    pub async fn snapshot(
        &self,
        name: &str,
        args: &[String],
        env: &[(String, String)],
        preopens: &[Preopen],
    ) -> Result<Vec<u8>, PreinitError> {
        let (module, stderr) = self
            .snapshot_with(args, env, preopens, Init::WizerInitialize)
            .await?;
        for line in String::from_utf8_lossy(&stderr).lines() {
            tracing::info!(target: "wws::worker", worker = %name, "{}", line.trim_end_matches('\r'));
        }
        Ok(module)
    }

    /// Initialises the ruby.wasm interpreter with this argv, environment and mounts, evaluates
    /// `preload` (libraries every worker loads), and returns the initialised module, which no
    /// longer exports `_initialize`.
    pub async fn snapshot_ruby(
        &self,
        args: &[String],
        env: &[(String, String)],
        preopens: &[Preopen],
        preload: &str,
    ) -> Result<Vec<u8>, PreinitError> {
        let exports = crate::ruby::Exports::find(&self.instrumented).ok_or_else(|| {
            PreinitError::Host(anyhow::anyhow!(
                "the module does not export ruby-init, ruby-init-loadpath and rb-eval-string-protect"
            ))
        })?;
        self.snapshot_with(args, env, preopens, Init::Ruby(&exports, preload))
            .await
            .map(|(module, _)| module)
    }

    async fn snapshot_with(
        &self,
        args: &[String],
        env: &[(String, String)],
        preopens: &[Preopen],
        how: Init<'_>,
    ) -> Result<(Vec<u8>, Bytes), PreinitError> {
        let host_err = |e: wasmtime::Error| PreinitError::Host(anyhow::Error::from(e));
        // Workers are prepared on every core at once: each snapshot takes its turn for a slot
        // of the pool like a request does, held until the instance is gone.
        let _slot = self
            .engine
            .slots()
            .acquire_patiently()
            .await
            .map_err(|e| PreinitError::Host(e.into()))?;
        let stderr = MemoryOutputPipe::new(INIT_STDERR);
        let spec = Arc::new(WasiSpec::new("snapshot".into(), args, env, preopens));
        let mut builder = spec.builder().map_err(PreinitError::Host)?;
        builder
            .stdin(MemoryInputPipe::new(Bytes::new()))
            .stderr(stderr.clone());
        // No outbound HTTP while a snapshot is taken: its answer would be frozen into it.
        let mut data = CoreHost::new(
            RequestWasi::with_context(spec, builder.build_p1()),
            self.engine.limits(),
            None,
        );
        data.http_loading = true;
        let mut store = crate::worker::new_store(&self.engine, data);
        let mut linker = Linker::<CoreHost>::new(self.engine.wasmtime());
        crate::wasi::add_to_linker(&mut linker, |h| &mut h.wasi).map_err(host_err)?;
        crate::outbound::add_to_linker(&mut linker).map_err(PreinitError::Host)?;
        crate::early::add_to_linker(&mut linker).map_err(host_err)?;
        if let Init::Ruby(..) = how {
            // As at run time (`Worker::link_module`): the JS-interop imports link as traps.
            crate::ruby::add_to_linker(&mut linker).map_err(host_err)?;
            linker
                .define_unknown_imports_as_traps(&self.instrumented)
                .map_err(host_err)?;
        }
        let instance = linker
            .instantiate_async(&mut store, &self.instrumented)
            .await
            .map_err(host_err)?;
        if let Err(err) = self.initialize(&mut store, &instance, how, args).await {
            let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
            return Err(PreinitError::Init {
                reason: format!("{err:#}"),
                stderr,
            });
        }
        let module = self
            .wizer
            .snapshot(
                &self.cx,
                &mut WasmtimeWizer {
                    store: &mut store,
                    instance,
                },
            )
            .await
            .map_err(host_err)?;
        Ok((module, stderr.contents()))
    }

    async fn initialize(
        &self,
        store: &mut Store<CoreHost>,
        instance: &Instance,
        how: Init<'_>,
        args: &[String],
    ) -> wasmtime::Result<()> {
        match how {
            Init::WizerInitialize => {
                let init =
                    instance.get_typed_func::<(), ()>(&mut *store, self.wizer.get_init_func())?;
                init.call_async(&mut *store, ()).await
            }
            Init::Ruby(exports, preload) => {
                crate::ruby::init(store, instance, exports, args).await?;
                crate::ruby::eval(store, instance, exports, preload).await
            }
        }
    }
}
