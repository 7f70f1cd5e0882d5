//! Pre-initialisation with Wizer: run a module's initialisation once at startup and turn the
//! resulting memory into a new module, so each request starts from an initialised state.
//!
//! The JS engine uses it to parse, compile and evaluate a worker's script once instead of on
//! every request (toolchain notes §2.4: 28 ms → 0.3 ms per request for a 546 KB worker).
//!
//! [`Preinit`] instruments and compiles the module once; [`Preinit::snapshot`] then takes one
//! snapshot per worker. Snapshots are taken with exactly the guest preopens, in the same order,
//! that requests will get: wasi-libc records its preopen table in memory, so a snapshot taken
//! with other mounts would look for files in the wrong place.

use bytes::Bytes;
use wasmtime::{Linker, Module};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wizer::{ModuleContext, WasmtimeWizer, Wizer};

use crate::engine::Engine;
use crate::host::{self, CoreHost, CpuBudget};
use crate::program::Preopen;

/// Largest stderr kept from an initialisation, for its error message.
const INIT_STDERR: usize = 64 << 10;

/// A module instrumented for snapshots, compiled once.
pub struct Preinit {
    engine: Engine,
    wizer: Wizer,
    cx: ModuleContext<'static>,
    instrumented: Module,
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

impl Preinit {
    /// Prepares `wasm` (which must export `wizer-initialize`) for snapshots.
    pub fn new(engine: &Engine, wasm: &'static [u8]) -> anyhow::Result<Self> {
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
    /// initialised module.
    pub async fn snapshot(
        &self,
        args: &[String],
        env: &[(String, String)],
        preopens: &[Preopen],
    ) -> Result<Vec<u8>, PreinitError> {
        let host_err = |e: wasmtime::Error| PreinitError::Host(anyhow::Error::from(e));
        let stderr = MemoryOutputPipe::new(INIT_STDERR);
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdin(MemoryInputPipe::new(Bytes::new()))
            .stderr(stderr.clone())
            .args(args)
            .envs(env);
        host::add_preopens(&mut builder, preopens).map_err(PreinitError::Host)?;
        let data = CoreHost {
            wasi: builder.build_p1(),
            limits: host::store_limits(self.engine.limits()),
            cpu: CpuBudget::default(),
            ruby_handles: Vec::new(),
        };
        let mut store = crate::worker::new_store(&self.engine, data);
        let mut linker = Linker::<CoreHost>::new(self.engine.wasmtime());
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |h| &mut h.wasi).map_err(host_err)?;
        let instance = linker
            .instantiate_async(&mut store, &self.instrumented)
            .await
            .map_err(host_err)?;
        let init = instance
            .get_typed_func::<(), ()>(&mut store, self.wizer.get_init_func())
            .map_err(host_err)?;
        if let Err(err) = init.call_async(&mut store, ()).await {
            let stderr = String::from_utf8_lossy(&stderr.contents()).into_owned();
            return Err(PreinitError::Init {
                reason: format!("{err:#}"),
                stderr,
            });
        }
        self.wizer
            .snapshot(
                &self.cx,
                &mut WasmtimeWizer {
                    store: &mut store,
                    instance,
                },
            )
            .await
            .map_err(host_err)
    }
}
