//! Runs WebAssembly workers: one shared wasmtime [`Engine`](engine::Engine) per process, a
//! pre-linked [`Worker`] per file prepared at startup, and a fresh `Store` plus instance for
//! every request, bounded by [`Limits`]. Interpreters whose wrapper can loop over requests
//! (`Program::reuse`) are served by a pool of live instances instead (`reuse.rs`).
//!
//! This crate knows nothing of sockets or routes: it turns request bytes into response bytes.
//! The JSON envelope workers speak on stdin/stdout lives in [`protocol`]; the per-worker
//! `<name>.toml` in [`config`].

pub mod cache;
mod canonical;
pub mod config;
mod dirty_pages;
mod early;
pub mod engine;
mod error;
mod host;
mod limits;
mod offload;
mod outbound;
mod program;
pub mod protocol;
mod release;
mod reuse;
mod ruby;
pub mod ruby_snapshot;
mod sink;
pub mod slots;
mod ticker;
pub mod tuning;
mod wasi;
pub mod wizer;
mod worker;

pub use engine::Engine;
pub use error::RunError;
pub use limits::Limits;
pub use program::{Code, Entrypoint, Preopen, Program};
pub use reuse::{DEFAULT_MAX_REQUESTS, MAX_REQUESTS_ENV, REUSE_ENV};
pub use worker::{Answer, Rest, RunOutput, Worker};

/// Re-exported so other crates (snapshots, drivers) use exactly the same wasmtime.
pub use wasmtime;
pub use wasmtime_wasi;
