//! A prepared worker: compiled and linked once at startup; every request gets a fresh store
//! and instance from the `InstancePre`, so nothing leaks between requests.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use anyhow::Context as _;
use bytes::Bytes;
use wasmtime::component::Linker as ComponentLinker;
use wasmtime::{Instance, InstancePre, Linker, Memory, ModuleExport, Store, UpdateDeadline};
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{I32Exit, ResourceTable};

use crate::dirty_pages;
use crate::engine::{EPOCH_TICK, Engine};
use crate::error::RunError;
use crate::host::{self, ComponentHost, CoreHost, CpuBudget, HostState};
use crate::offload;
use crate::program::{Code, Entrypoint, Program};
use crate::release;
use crate::reuse;
use crate::ruby;
use crate::sink::{OutputBuffer, OutputLimit, SinkStream};
use crate::wasi::{self, RequestWasi, WasiSpec};

/// What one run produced: the worker's stdout, or why the run failed. Its stderr has already
/// gone to the log, line by line, as it was written.
pub type RunOutput = Result<Bytes, RunError>;

/// The part of a run left after the worker answered early: resolves to what it wrote on
/// stdout afterwards (its trailer). Poll it to completion, on a task of its own.
pub type Rest = Pin<Box<dyn Future<Output = RunOutput> + Send>>;

/// What a run answered ([`Worker::serve`]).
pub struct Answer {
    /// The worker's output: its whole stdout, or the output it handed over early.
    pub stdout: Bytes,
    /// Set when the worker answered before its run ended (JavaScript `waitUntil` work).
    pub rest: Option<Rest>,
}

/// A worker ready to serve requests.
pub struct Worker {
    name: Arc<str>,
    engine: Engine,
    kind: Kind,
    /// argv, environment and mounts, laid out once for every request.
    wasi: Arc<WasiSpec>,
    /// Set for programs with [`Program::scattered_writes`].
    coalescer: Option<Arc<dirty_pages::Coalescer>>,
    /// Live instances serving request after request (reuse mode), when the program asks for it.
    pool: Option<reuse::Pool>,
    /// Outbound HTTP it may make.
    http: Option<crate::outbound::Policy>,
    /// Whether the module can answer before its run ends (it imports `wws_io`, `early.rs`).
    answers_early: bool,
}

enum Kind {
    Command(Core),
    Reactor(Core),
    Ruby(Core, Arc<str>, ruby::Exports),
    Component(CommandPre<ComponentHost>),
}

/// A core module linked once, with the exports every request uses looked up once (by index,
/// not by name per request).
struct Core {
    pre: InstancePre<CoreHost>,
    memory: Option<ModuleExport>,
    /// `_start` of a command, `_initialize` of a reactor.
    entry: Option<ModuleExport>,
}

impl Core {
    fn new(pre: InstancePre<CoreHost>, entry: &str) -> Self {
        let module = pre.module();
        Self {
            memory: module.get_export_index("memory"),
            entry: module.get_export_index(entry),
            pre,
        }
    }

    fn memory(&self, store: &mut Store<CoreHost>, instance: &Instance) -> Option<Memory> {
        let export = self.memory.as_ref()?;
        instance.get_module_export(store, export)?.into_memory()
    }

    /// Runs the entry point (`_start` or `_initialize`, which takes and returns nothing).
    async fn call_entry(
        &self,
        store: &mut Store<CoreHost>,
        instance: &Instance,
    ) -> wasmtime::Result<()> {
        let func = self
            .entry
            .as_ref()
            .and_then(|export| instance.get_module_export(&mut *store, export))
            .and_then(wasmtime::Extern::into_func)
            .ok_or_else(|| wasmtime::Error::msg("the module has no entry point"))?;
        func.typed::<(), ()>(&*store)?.call_async(store, ()).await
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// Whether `bytes` is a component rather than a core module: both start with `\0asm`, then a
/// 16-bit version and a 16-bit layer, which is 0 for core modules and 1 for components.
pub fn is_component(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && bytes[0..4] == *b"\0asm" && bytes[6..8] == [1, 0]
}

impl Worker {
    /// Compiles (or loads from cache) and links `program`. Errors name the worker and say why
    /// it cannot run (not WebAssembly, no entry point, unsatisfiable imports).
    pub fn prepare(engine: &Engine, program: Program) -> anyhow::Result<Self> {
        let name = program.name.clone();
        let kind = Self::link(engine, &program)
            .with_context(|| format!("cannot prepare worker {name}"))?;
        let name: Arc<str> = name.into();
        let wasi = Arc::new(WasiSpec::new(
            name.clone(),
            &program.args,
            &program.env,
            &program.preopens,
        ));
        let pool = program.reuse.and_then(|max_requests| {
            let (pre, driver) = match &kind {
                Kind::Command(core) => (core.pre.clone(), reuse::Driver::Command),
                Kind::Ruby(core, script, exports) => (
                    core.pre.clone(),
                    reuse::Driver::Ruby {
                        script: script.clone(),
                        exports: exports.clone(),
                    },
                ),
                Kind::Reactor(_) | Kind::Component(_) => {
                    tracing::warn!(worker = %name, "reuse mode needs a WASI command or the Ruby reactor; serving a fresh instance per request");
                    return None;
                }
            };
            let template = reuse::Template {
                name: name.clone(),
                engine: engine.clone(),
                pre,
                driver,
                wasi: wasi.clone(),
                http: program.http.clone(),
            };
            Some(reuse::Pool::new(template, max_requests, reuse::default_instances()))
        });
        let answers_early = pool.is_none()
            && match &kind {
                Kind::Command(core) | Kind::Reactor(core) => {
                    core.pre.module().imports().any(|i| i.module() == "wws_io")
                }
                Kind::Ruby(..) | Kind::Component(_) => false,
            };
        Ok(Self {
            wasi,
            name,
            engine: engine.clone(),
            kind,
            coalescer: program.scattered_writes.then(Arc::default),
            pool,
            http: program.http.clone(),
            answers_early,
        })
    }

    fn link(engine: &Engine, program: &Program) -> anyhow::Result<Kind> {
        let module = match &program.code {
            Code::Module(module) => module.clone(),
            Code::Bytes(bytes) => {
                if !bytes.starts_with(b"\0asm") {
                    anyhow::bail!(
                        "the file is not a WebAssembly module (it does not start with \\0asm)"
                    );
                }
                if is_component(bytes) || program.entrypoint == Entrypoint::Component {
                    return Self::link_component(engine, bytes);
                }
                engine.module(bytes)?
            }
        };
        Self::link_module(engine, program, module)
    }

    fn link_component(engine: &Engine, bytes: &[u8]) -> anyhow::Result<Kind> {
        {
            let component = engine.component(bytes)?;
            let mut linker = ComponentLinker::<ComponentHost>::new(engine.wasmtime());
            wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
            let pre = linker.instantiate_pre(&component)?;
            let pre = CommandPre::new(pre)
                .map_err(anyhow::Error::from)
                .context("the component is not a WASI command (it must export wasi:cli/run)")?;
            Ok(Kind::Component(pre))
        }
    }

    fn link_module(
        engine: &Engine,
        program: &Program,
        module: wasmtime::Module,
    ) -> anyhow::Result<Kind> {
        let has = |name: &str| module.get_export_index(name).is_some();
        let entry = match program.entrypoint {
            Entrypoint::Auto if has("_start") => Entrypoint::Command,
            Entrypoint::Auto if ruby::is_ruby_reactor(&module) => Entrypoint::RubyReactor,
            Entrypoint::Auto if has("_initialize") => Entrypoint::Reactor,
            Entrypoint::Auto => anyhow::bail!(
                "the module exports neither `_start` (a WASI command) nor `_initialize` (a WASI reactor)"
            ),
            other => other,
        };
        let mut linker = Linker::<CoreHost>::new(engine.wasmtime());
        wasi::add_to_linker(&mut linker, |h| &mut h.wasi)?;
        crate::outbound::add_to_linker(&mut linker)?;
        let original_http = crate::outbound::link_original(&mut linker, &module)?;
        crate::early::add_to_linker(&mut linker)?;
        if entry == Entrypoint::RubyReactor {
            ruby::add_to_linker(&mut linker)?;
        }
        // Anything else links as a trap, so the module loads and only a call to it fails the
        // request.
        let provided = |m: &str| {
            m == "wasi_snapshot_preview1"
                || m == "wws_http"
                || m == "wws_io"
                || (m == "http" && original_http)
                || entry == Entrypoint::RubyReactor
        };
        let unknown: Vec<String> = module
            .imports()
            .filter(|i| !provided(i.module()))
            .map(|i| format!("{}::{}", i.module(), i.name()))
            .collect();
        if !unknown.is_empty() {
            tracing::warn!(
                worker = %program.name,
                "imports not provided by wws, calling them fails the request: {}",
                unknown.join(", ")
            );
        }
        linker.define_unknown_imports_as_traps(&module)?;
        let pre = linker.instantiate_pre(&module)?;
        Ok(match entry {
            Entrypoint::Command => Kind::Command(Core::new(pre, "_start")),
            Entrypoint::Reactor => Kind::Reactor(Core::new(pre, "_initialize")),
            Entrypoint::RubyReactor => {
                let script = program
                    .ruby_script
                    .clone()
                    .context("the Ruby driver needs the script to load")?;
                let exports = ruby::Exports::find(&module)
                    .context("the module does not export ruby-init, ruby-init-loadpath and rb-eval-string-protect")?;
                Kind::Ruby(Core::new(pre, "_initialize"), script.into(), exports)
            }
            Entrypoint::Auto | Entrypoint::Component => unreachable!("resolved above"),
        })
    }

    /// Whether live instances serve its requests (reuse mode).
    pub fn reuses_instances(&self) -> bool {
        self.pool.is_some()
    }

    /// The worker's name for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the worker once with `stdin` in a fresh instance, to its end.
    pub async fn run(&self, stdin: Bytes) -> RunOutput {
        self.run_with(stdin, None).await
    }

    /// Runs the worker once with `stdin` in a fresh instance, and answers as soon as the worker
    /// does: a worker that keeps running after it answered (JavaScript `waitUntil` work)
    /// leaves the rest of its run in [`Answer::rest`].
    pub async fn serve(self: &Arc<Self>, stdin: Bytes) -> Result<Answer, RunError> {
        let worker = Arc::clone(self);
        if !self.answers_early {
            let run = async move { worker.run(stdin).await };
            let stdout = offload::run_here_while_short(self.engine.clone(), run).await?;
            return Ok(Answer { stdout, rest: None });
        }
        let (to, mut early) = tokio::sync::oneshot::channel();
        let run = async move { worker.run_with(stdin, Some(to)).await };
        let mut run = Box::pin(offload::run_here_while_short(self.engine.clone(), run));
        tokio::select! {
            biased;
            Ok(stdout) = &mut early => Ok(Answer { stdout, rest: Some(run) }),
            output = &mut run => match early.try_recv() {
                // It answered early and ended in the same poll: `output` is its trailer.
                Ok(stdout) => Ok(Answer { stdout, rest: Some(Box::pin(async move { output })) }),
                Err(_) => Ok(Answer { stdout: output?, rest: None }),
            },
        }
    }

    async fn run_with(
        &self,
        stdin: Bytes,
        early: Option<tokio::sync::oneshot::Sender<Bytes>>,
    ) -> RunOutput {
        let Some(limit) = self.engine.limits().wall_timeout else {
            return self.run_unbounded(stdin, early).await;
        };
        // On expiry the run's future is dropped: wasmtime abandons the guest where it waits
        // (or at its next epoch tick), and its store and slot are freed.
        tokio::time::timeout(limit, self.run_unbounded(stdin, early))
            .await
            .unwrap_or(Err(RunError::WallTimeout(limit)))
    }

    async fn run_unbounded(
        &self,
        stdin: Bytes,
        early: Option<tokio::sync::oneshot::Sender<Bytes>>,
    ) -> RunOutput {
        if let Some(pool) = &self.pool {
            return pool.run(stdin).await;
        }
        // Held until the store is gone; a component takes one per memory or table it defines.
        let cost = match &self.kind {
            Kind::Component(pre) => crate::slots::component_cost(pre.instance_pre().component()),
            _ => 1,
        };
        release::flush();
        let slot = self.engine.slots().acquire(cost).await?;
        let limits = self.engine.limits();
        let stdout = OutputBuffer::new(limits.max_output_bytes);
        let stderr = host::LogPipe::new(self.name.clone(), limits.max_stderr_bytes);
        let result = match &self.kind {
            Kind::Component(pre) => {
                let mut builder = match self.wasi.builder() {
                    Ok(builder) => builder,
                    Err(err) => return Err(RunError::Trap(err)),
                };
                builder
                    .stdin(wasmtime_wasi::p2::pipe::MemoryInputPipe::new(stdin))
                    .stdout(SinkStream(stdout.clone()))
                    .stderr(SinkStream(stderr.clone()));
                let data = ComponentHost {
                    ctx: builder.build(),
                    table: ResourceTable::new(),
                    limits: host::store_limits(limits),
                    cpu: CpuBudget::default(),
                };
                let mut store = self.store(data);
                let outcome = async {
                    let command = pre.instantiate_async(&mut store).await?;
                    match command.wasi_cli_run().call_run(&mut store).await? {
                        Ok(()) => Ok(()),
                        Err(()) => Err(wasmtime::Error::new(I32Exit(1))),
                    }
                }
                .await;
                let result = classify(outcome, store.data().cpu.exhausted, limits);
                release::later(move || drop((store, slot)));
                result
            }
            Kind::Command(core) | Kind::Reactor(core) | Kind::Ruby(core, ..) => {
                let data = CoreHost::new(
                    RequestWasi::new(self.wasi.clone(), stdin, stdout.clone(), stderr.clone()),
                    limits,
                    self.http.clone(),
                );
                let mut store = self.store(data);
                store.data_mut().early = early.map(|to| crate::early::EarlyAnswer {
                    to,
                    limit: limits.max_output_bytes,
                });
                let mut memory = None;
                let outcome = async {
                    let instance = core.pre.instantiate_async(&mut store).await?;
                    memory = core.memory(&mut store, &instance);
                    store.data_mut().wasi.set_memory(memory);
                    match &self.kind {
                        Kind::Command(_) | Kind::Reactor(_) => {
                            core.call_entry(&mut store, &instance).await
                        }
                        Kind::Ruby(_, script, exports) => {
                            ruby::run(&mut store, &instance, exports, self.wasi.args(), script)
                                .await
                        }
                        Kind::Component(_) => unreachable!("handled above"),
                    }
                }
                .await;
                let result = classify(outcome, store.data().cpu.exhausted, limits);
                let coalescer = self.coalescer.clone();
                release::later(move || {
                    if let (Some(coalescer), Some(memory)) = (coalescer, memory) {
                        coalescer.after_run(memory.data_mut(&mut store));
                    }
                    drop((store, slot));
                });
                result
            }
        };
        stderr.finish();
        result?;
        stdout
            .take()
            .map_err(|OutputLimit(limit)| RunError::OutputTooLarge(limit))
    }

    fn store<T: HostState>(&self, data: T) -> Store<T> {
        new_store(&self.engine, data)
    }
}

/// A store with the engine's memory limiter and CPU budget: the guest yields to tokio at every
/// epoch tick and traps once its budget of ticks is spent (no epochs when the limit is off).
pub(crate) fn new_store<T: HostState>(engine: &Engine, data: T) -> Store<T> {
    let mut store = Store::new(engine.wasmtime(), data);
    store.limiter(|h| h.limits());
    if engine.limits().timeout.is_none() {
        return store;
    }
    store.data_mut().cpu().ticks_left = engine.limits().budget_ticks(EPOCH_TICK);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let cpu = ctx.data_mut().cpu();
        if cpu.ticks_left == 0 {
            cpu.exhausted = true;
            return Ok(UpdateDeadline::Interrupt);
        }
        cpu.ticks_left -= 1;
        // Let other requests run on this tokio worker before continuing.
        Ok(UpdateDeadline::Yield(1))
    });
    store
}

/// Whether a trap is a guest's shadow stack (the C/Rust stack in linear memory, below its
/// data) running past address 0: the stack pointer wraps around, and the next access lands
/// past the 4 GiB a 32-bit memory can address, which no ordinary pointer bug reaches.
fn shadow_stack_overflow(chain: &str) -> bool {
    let Some((_, rest)) = chain.split_once("memory fault at wasm address 0x") else {
        return false;
    };
    let hex: String = rest.chars().take_while(char::is_ascii_hexdigit).collect();
    u64::from_str_radix(&hex, 16).is_ok_and(|address| address >= 1 << 32)
}

/// Turns the raw outcome of a run into a [`RunError`] a user can act on.
pub(crate) fn classify(
    outcome: wasmtime::Result<()>,
    cpu_exhausted: bool,
    limits: &crate::Limits,
) -> Result<(), RunError> {
    let err = match outcome {
        Ok(()) => return Ok(()),
        Err(err) => err,
    };
    if let Some(exit) = err.downcast_ref::<I32Exit>() {
        return if exit.0 == 0 {
            Ok(())
        } else {
            Err(RunError::Exit(exit.0))
        };
    }
    if cpu_exhausted {
        return Err(RunError::Timeout(limits.timeout.unwrap_or_default()));
    }
    let chain = format!("{err:#}");
    if chain.contains("forcing trap when growing memory") {
        return Err(RunError::MemoryLimit(limits.max_memory_bytes));
    }
    if err.downcast_ref::<OutputLimit>().is_some() {
        return Err(RunError::OutputTooLarge(limits.max_output_bytes));
    }
    if err.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::StackOverflow)
        || shadow_stack_overflow(&chain)
    {
        return Err(RunError::StackOverflow);
    }
    Err(RunError::Trap(anyhow::Error::from(err)))
}

#[cfg(test)]
mod tests {
    use super::shadow_stack_overflow;

    #[test]
    fn an_access_past_4_gib_is_a_shadow_stack_overflow() {
        assert!(shadow_stack_overflow(
            "error while executing: memory fault at wasm address 0x100000198 in linear memory of size 0x200000: wasm trap: out of bounds memory access"
        ));
        assert!(!shadow_stack_overflow(
            "memory fault at wasm address 0x300000 in linear memory of size 0x200000"
        ));
        assert!(!shadow_stack_overflow("wasm trap: unreachable"));
    }
}
