//! What to run for a worker: the module, how to enter it, and the WASI capabilities it gets.

use std::path::PathBuf;

/// How the host drives a module. A closed set: every way of calling a module lives here, not
/// in special cases elsewhere (DESIGN §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entrypoint {
    /// Decide from the module itself: a core module with `_start` is a command, one with only
    /// `_initialize` a reactor, a component a preview2 command, a ruby.wasm build a Ruby reactor.
    Auto,
    /// WASI preview1 command: call `_start`.
    Command,
    /// WASI preview1 reactor: the work happens in `_initialize` (how the original's Zig kit builds).
    Reactor,
    /// WASI preview2 command component: call `wasi:cli/run`.
    Component,
    /// The npm `@ruby/*-wasm-wasi` build: a reactor driven through its `ruby-init` /
    /// `rb-eval-string-protect` exports (toolchain notes §3.3).
    RubyReactor,
}

impl Entrypoint {
    /// Parses the optional `entrypoint` field of runtime metadata.
    pub fn from_metadata(value: Option<&str>) -> anyhow::Result<Self> {
        Ok(match value {
            None | Some("auto") => Self::Auto,
            Some("wasi-command") => Self::Command,
            Some("wasi-reactor") => Self::Reactor,
            Some("wasi-component") => Self::Component,
            Some("ruby-wasm-reactor") => Self::RubyReactor,
            Some(other) => anyhow::bail!(
                "unknown entrypoint `{other}`: expected one of wasi-command, wasi-reactor, wasi-component, ruby-wasm-reactor"
            ),
        })
    }
}

/// A host folder the worker sees at `guest`.
#[derive(Debug, Clone)]
pub struct Preopen {
    /// Folder on the host.
    pub host: PathBuf,
    /// Path inside the guest, e.g. `/src` or `/data`.
    pub guest: String,
    /// Whether the guest may create, write and delete files there.
    pub writable: bool,
}

/// The code of a worker: raw bytes to compile, or a module already compiled (an interpreter
/// shared by every worker of its runtime is compiled once, not once per worker).
#[derive(Clone)]
pub enum Code {
    /// A core module or a component, compiled (or loaded from the cache) when prepared.
    Bytes(std::sync::Arc<[u8]>),
    /// A compiled core module.
    Module(wasmtime::Module),
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Bytes(b) => write!(f, "Code::Bytes({} bytes)", b.len()),
            Self::Module(_) => f.write_str("Code::Module"),
        }
    }
}

/// Everything needed to prepare a [`Worker`](crate::Worker).
#[derive(Debug, Clone)]
pub struct Program {
    /// Name used in logs: the worker's file relative to the project, e.g. `api/[id].wasm`.
    pub name: String,
    /// The module to run.
    pub code: Code,
    /// How to call it.
    pub entrypoint: Entrypoint,
    /// argv, including argv\[0\].
    pub args: Vec<String>,
    /// Environment variables, in order (later ones win).
    pub env: Vec<(String, String)>,
    /// Mounted folders.
    pub preopens: Vec<Preopen>,
    /// Reuse mode: serve many requests from one live instance, recycled after this many
    /// (`crates/worker/src/reuse.rs`). `None`: a fresh instance per request. The host decides
    /// this, never the worker's environment; the guest is told through `WWS_REUSE=1`.
    pub reuse: Option<u64>,
    /// Script the Ruby driver evaluates (`load "/src/index.rb"`); unused by other entrypoints.
    pub ruby_script: Option<String>,
    /// For a snapshot whose requests write pages all over its memory image (the JS engine:
    /// QuickJS reference counts): after each run the gaps between dirty pages are narrowed
    /// until wasmtime's reset keeps them all resident, so no request page-faults them in again
    /// (`dirty_pages.rs`). Costs one page-map read per request; `false` for everything else.
    pub scattered_writes: bool,
    /// Outbound HTTP the worker may make (`[features.http_requests]`); `None`: none.
    pub http: Option<crate::outbound::Policy>,
}
