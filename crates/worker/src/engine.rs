//! The one wasmtime engine of the process, configured for cheap per-request instances.
//!
//! Decisions (measured in `notes/per-request-cost.md`, DESIGN §3):
//! - the **pooling allocator** with memories, tables and fiber stacks kept resident between
//!   requests and reset with `PAGEMAP_SCAN` where the kernel has it (Linux ≥ 6.7); without
//!   this every request pays page faults and `madvise`, and throughput falls 3×;
//! - **epoch interruption** from one ticker thread for the CPU-time limit; guests yield to tokio
//!   at every tick, so a busy worker never stalls the reactor;
//! - a dense memory image up to 128 MiB so large snapshots (Ruby, JS) instantiate copy-on-write.
//!
//! If the host cannot reserve the pool's address space, the engine falls back to on-demand
//! allocation and logs a warning: slower, but it serves. The memory settings can be overridden
//! to measure them against their alternatives (`tuning.rs`).

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use wasmtime::{Config, Enabled, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::cache::{IncrementalCache, ModuleCache, compatibility_hash};
use crate::limits::Limits;
use crate::slots::{MAX_CORE_INSTANCES_PER_COMPONENT, SlotConfig, Slots};
use crate::ticker;
use crate::tuning::Tuning;

pub use crate::ticker::EPOCH_TICK;

/// Native stack a guest may use.
const MAX_WASM_STACK: usize = 12 << 20;

/// Shared engine state: the wasmtime engine, the limits, and the instance slots (`slots.rs`).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    engine: wasmtime::Engine,
    limits: Limits,
    slots: Slots,
    cache: Option<ModuleCache>,
    pooling: bool,
    compiler: Compiler,
    /// The runtime the engine was built on (the server's work-stealing one), for long-lived
    /// tasks such as live reuse instances: on a per-core serving thread, their boots and
    /// runs would hold up that thread's connections.
    background: Option<tokio::runtime::Handle>,
}

/// Compiles for the engine on a second wasmtime engine with the same settings, dropped once
/// the workers are prepared ([`Engine::release_compiler`]). Cranelift keeps its compile
/// contexts, with register-allocation arenas sized for the largest function it has seen, as
/// long as their engine lives: 400 MiB after compiling ruby.wasm, held for nothing while the
/// server runs.
struct Compiler {
    config: Config,
    engine: Mutex<Option<wasmtime::Engine>>,
}

impl Engine {
    /// Builds the engine and starts the epoch ticker thread. `cache_dir` (usually
    /// `.wws/cache`) keeps compiled modules between starts; `None` compiles every time. The
    /// instance slots come from the environment ([`SlotConfig::from_env`]).
    pub fn new(limits: Limits, cache_dir: Option<&Path>) -> anyhow::Result<Self> {
        Self::with_slots(limits, cache_dir, SlotConfig::from_env()?)
    }

    /// [`Engine::new`] with explicit instance slots: how many instances may be alive at once
    /// and how long a request waits for one.
    pub fn with_slots(
        limits: Limits,
        cache_dir: Option<&Path>,
        slots: SlotConfig,
    ) -> anyhow::Result<Self> {
        let tuning = Tuning::from_env()?;
        let config = |pooling| config(&limits, &tuning, slots.slots, pooling, cache_dir);
        let (engine, pooling) = match wasmtime::Engine::new(&config(true)) {
            Ok(engine) => (engine, true),
            Err(err) => {
                tracing::warn!(
                    "pooling allocator unavailable ({err:#}); falling back to on-demand instances, which are slower"
                );
                let engine = wasmtime::Engine::new(&config(false))
                    .map_err(anyhow::Error::from)
                    .context("could not create the WebAssembly engine")?;
                (engine, false)
            }
        };
        if pooling {
            tracing::debug!(
                pagemap_scan = PoolingAllocationConfig::is_pagemap_scan_available(),
                "pooling allocator ready"
            );
        }
        let cache = cache_dir.map(|dir| ModuleCache::new(dir, &engine));
        let compiler = Compiler {
            // Instances are never made on it: no pool to reserve.
            config: config(false),
            engine: Mutex::new(None),
        };
        let slots = Slots::new(slots);
        if limits.timeout.is_some() {
            ticker::start(&engine, slots.ticker(), slots.idle_probe());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                engine,
                limits,
                slots,
                cache,
                pooling,
                compiler,
                background: tokio::runtime::Handle::try_current().ok(),
            }),
        })
    }

    /// The runtime the engine was built on (see `background`), if it was built on one.
    pub(crate) fn background(&self) -> Option<&tokio::runtime::Handle> {
        self.inner.background.as_ref()
    }

    /// Spawns a long-lived task on the runtime the engine was built on (see `background`),
    /// or on the current one when it was built outside a runtime.
    pub(crate) fn spawn_background<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match &self.inner.background {
            Some(handle) => handle.spawn(task),
            None => tokio::spawn(task),
        }
    }

    /// The wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.engine
    }

    /// Limits applied to every run.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Whether the pooling allocator is in use (false after the fallback).
    pub fn is_pooling(&self) -> bool {
        self.inner.pooling
    }

    /// The compiled-module cache, if enabled.
    pub fn cache(&self) -> Option<&ModuleCache> {
        self.inner.cache.as_ref()
    }

    pub(crate) fn slots(&self) -> &Slots {
        &self.inner.slots
    }

    /// Compiles (or loads from the cache) a core module.
    pub fn module(&self, bytes: &[u8]) -> anyhow::Result<wasmtime::Module> {
        match &self.inner.cache {
            Some(cache) => cache.module(self, bytes),
            None => {
                let artifact = self.precompile_module(bytes)?;
                #[allow(unsafe_code, reason = "the artifact was just compiled for this engine")]
                // SAFETY: produced by `precompile_module` a moment ago, by an engine whose
                // compatibility hash equals this one's (`compiler`).
                Ok(unsafe { wasmtime::Module::deserialize(&self.inner.engine, artifact) }?)
            }
        }
    }

    /// Compiles `bytes` to an artifact this engine can deserialize.
    pub(crate) fn precompile_module(&self, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
        Ok(self.compiler().precompile_module(bytes)?)
    }

    /// Compiles `bytes` to a component artifact this engine can deserialize.
    pub(crate) fn precompile_component(&self, bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
        Ok(self.compiler().precompile_component(bytes)?)
    }

    /// Frees what compiling kept (see [`Compiler`]); a later compile builds the compiler again.
    /// Called once every worker is prepared.
    pub fn release_compiler(&self) {
        let released = self
            .inner
            .compiler
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        drop(released);
    }

    /// The engine that compiles: the second engine while it lives, built on first use; this
    /// one if the second cannot be built or would make artifacts this one cannot load.
    fn compiler(&self) -> wasmtime::Engine {
        let mut slot = self
            .inner
            .compiler
            .engine
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(engine) = &*slot {
            return engine.clone();
        }
        let engine = match wasmtime::Engine::new(&self.inner.compiler.config) {
            Ok(compiler)
                if compatibility_hash(&compiler) == compatibility_hash(&self.inner.engine) =>
            {
                compiler
            }
            Ok(_) => {
                tracing::debug!(
                    "a separate compiler engine would not match; compiling on the main one"
                );
                self.inner.engine.clone()
            }
            Err(err) => {
                tracing::debug!("no separate compiler engine ({err:#}); compiling on the main one");
                self.inner.engine.clone()
            }
        };
        *slot = Some(engine.clone());
        engine
    }

    /// Compiles (or loads from the cache) a component.
    pub fn component(&self, bytes: &[u8]) -> anyhow::Result<wasmtime::component::Component> {
        match &self.inner.cache {
            Some(cache) => cache.component(self, bytes),
            None => Ok(wasmtime::component::Component::new(
                &self.inner.engine,
                bytes,
            )?),
        }
    }
}

fn config(
    limits: &Limits,
    tuning: &Tuning,
    slots: u32,
    pooling: bool,
    cache_dir: Option<&Path>,
) -> Config {
    let mut config = Config::new();
    if let Some(dir) = cache_dir {
        // Snapshots that share code (every JS worker's QuickJS) compile it once (cache.rs).
        // Cannot fail: the compiler is enabled.
        let _ = config.enable_incremental_compilation(Arc::new(IncrementalCache::new(dir)));
    }
    config
        .epoch_interruption(limits.timeout.is_some())
        .wasm_component_model(true)
        // Component-model async is not used; turning it off makes `Store::new` cheaper.
        .concurrency_support(false)
        .memory_guaranteed_dense_image_size(128 << 20)
        .memory_init_cow(tuning.cow)
        // 24× wasmtime's default, so that the JS engine's own limit (on its shadow stack:
        // about 2,900 nested calls, or JSON 49,000 levels deep, which takes 10 MiB here) is
        // reached first and deep recursion is a RangeError the worker can catch. Only what a
        // request uses is touched.
        .max_wasm_stack(MAX_WASM_STACK)
        .async_stack_size(MAX_WASM_STACK + (256 << 10));
    // `WWS_PERF_MAP=1` writes /tmp/perf-PID.map so `perf report` names the guests' functions.
    if std::env::var_os("WWS_PERF_MAP").is_some() {
        config.profiler(wasmtime::ProfilingStrategy::PerfMap);
    }
    if pooling {
        let mut pool = PoolingAllocationConfig::new();
        // One instance slot (`slots.rs`) covers one memory, table, stack and component
        // instance, and the core instances of the largest component allowed.
        pool.total_core_instances(slots.saturating_mul(MAX_CORE_INSTANCES_PER_COMPONENT))
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .total_memories(slots)
            .total_tables(slots)
            .total_stacks(slots)
            .total_component_instances(slots)
            .max_memory_size(limits.max_memory_bytes)
            // Interpreters (CPython, Ruby) have large function tables and instance records.
            .table_elements(100_000)
            .max_core_instance_size(4 << 20)
            .linear_memory_keep_resident(tuning.keep_resident)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(64 << 10)
            .pagemap_scan(if tuning.pagemap {
                Enabled::Auto
            } else {
                Enabled::No
            });
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"(module (func (export "answer") (result i32) i32.const 42))"#;

    fn answer(engine: &Engine, module: &wasmtime::Module) -> i32 {
        let mut store = wasmtime::Store::new(engine.wasmtime(), ());
        let instance = wasmtime::Instance::new(&mut store, module, &[]).unwrap();
        let answer = instance
            .get_typed_func::<(), i32>(&mut store, "answer")
            .unwrap();
        answer.call(&mut store, ()).unwrap()
    }

    #[test]
    fn modules_compile_on_a_separate_engine_that_can_be_released() {
        let limits = Limits {
            timeout: None,
            ..Limits::default()
        };
        let engine = Engine::new(limits, None).unwrap();
        // Same settings as the main engine, so it really is a second engine (no fallback).
        assert!(!wasmtime::Engine::same(
            &engine.compiler(),
            engine.wasmtime()
        ));
        let module = engine.module(ANSWER.as_bytes()).unwrap();
        assert_eq!(answer(&engine, &module), 42);
        engine.release_compiler();
        assert!(engine.inner.compiler.engine.lock().unwrap().is_none());
        // Compiling again after the release builds the compiler again.
        let module = engine.module(ANSWER.as_bytes()).unwrap();
        assert_eq!(answer(&engine, &module), 42);
    }
}
