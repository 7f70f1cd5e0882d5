//! Pre-initialised Ruby: the ruby.wasm interpreter booted once per worker and snapshotted with
//! Wizer (`wizer.rs`), so an instance starts from a ready interpreter. Booting costs 40–140 ms
//! per instance; from the snapshot a fresh request takes a few milliseconds (toolchain notes
//! §3.5). The Ruby driver (`ruby.rs`) skips the boot when the module has no `_initialize`.
//!
//! The snapshot also has `json` and `rbconfig` loaded ([`PRELOAD`]), which our wrapper needs
//! for every worker.
//!
//! A snapshot freezes what the boot saw, so it is taken per worker with exactly what its
//! requests get, and cached under all of it:
//! - argv (`ruby-init(args)`);
//! - the environment: wasi-libc reads `environ` once, so `ENV` in a snapshot is the one it was
//!   taken with, and a worker's vars must be there at snapshot time;
//! - the guest preopen paths, in order (`/src`, then `[[folders]]`): wasi-libc records its
//!   preopen table in memory. The host folders may differ; their guest paths may not.
//!
//! Known trade-off: anything random drawn during the boot is frozen too, notably Ruby's hash
//! seed. Every instance of a worker (and every worker sharing a snapshot) hashes strings with
//! the same seed, which weakens Ruby's protection against hash flooding. The seed still
//! differs between interpreter builds and is never shown to clients.

use sha2::{Digest, Sha256};

use crate::engine::Engine;
use crate::program::{Code, Preopen};
use crate::wizer::{PreinitError, Snapshotter};

/// Libraries evaluated into every snapshot: our Ruby wrapper (`runtimes/ruby/poly.rb`) loads
/// them for every worker, and loading them per request cost most of a fresh request's time.
/// Both are idempotent `require`s, so a wrapper that loads them again is unaffected.
const PRELOAD: &str = "require 'rbconfig'; require 'json'";

/// Version of the snapshot format in cache keys: a different Wizer may snapshot differently.
const SNAPSHOT_FORMAT: &str = "wasmtime-wizer-48.0.8";

/// The cache key of a Ruby snapshot: everything the snapshot depends on.
pub fn snapshot_key(
    interpreter_sha256: &str,
    args: &[String],
    env: &[(String, String)],
    preopens: &[Preopen],
) -> String {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(SNAPSHOT_FORMAT.as_bytes());
    field(PRELOAD.as_bytes());
    field(interpreter_sha256.as_bytes());
    field(&(args.len() as u64).to_le_bytes());
    for arg in args {
        field(arg.as_bytes());
    }
    field(&(env.len() as u64).to_le_bytes());
    for (k, v) in env {
        field(k.as_bytes());
        field(v.as_bytes());
    }
    for p in preopens {
        field(p.guest.as_bytes());
        field(&[u8::from(p.writable)]);
    }
    format!("rb-{}", hex::encode(&h.finalize()[..16]))
}

/// The pre-initialised interpreter for these argv, environment and mounts, compiled: from the
/// module cache when present (mapped, nothing recompiled), otherwise booted and snapshotted now
/// (about 10 s for ruby.wasm), compiled (much of it from the function cache, since the
/// snapshot's code is the interpreter's) and stored. `interpreter` is read only on a miss.
/// Without a module cache the snapshot's bytes are returned, to be compiled by the worker.
///
/// Blocking: the boot runs on its own thread and tokio runtime, so it may be called from
/// synchronous code inside an async context.
pub fn snapshot(
    engine: &Engine,
    interpreter_sha256: &str,
    interpreter: impl FnOnce() -> anyhow::Result<Vec<u8>>,
    args: &[String],
    env: &[(String, String)],
    preopens: &[Preopen],
) -> anyhow::Result<Code> {
    let key = snapshot_key(interpreter_sha256, args, env, preopens);
    let cache = engine.cache();
    if let Some(module) = cache.and_then(|c| c.module_by_key(engine.wasmtime(), &key)) {
        return Ok(Code::Module(module));
    }
    let wasm = interpreter()?;
    let started = std::time::Instant::now();
    let bytes = std::thread::scope(|scope| {
        scope
            .spawn(|| -> anyhow::Result<Vec<u8>> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(async {
                    let preinit = Snapshotter::new(engine, &wasm)?;
                    preinit
                        .snapshot_ruby(args, env, preopens, PRELOAD)
                        .await
                        .map_err(|err| match err {
                            PreinitError::Init { .. } => {
                                anyhow::anyhow!("the Ruby interpreter failed to boot: {err}")
                            }
                            PreinitError::Host(e) => e,
                        })
                })
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the Ruby snapshot thread panicked"))?
    })?;
    let snapshotted = started.elapsed();
    let size = bytes.len();
    let (code, stored) = match cache {
        Some(c) => (
            Code::Module(c.store_module_by_key(engine, &key, &bytes)?),
            format!(", cached as {}", c.keyed_file_name(&key)),
        ),
        None => (Code::Bytes(bytes.into()), String::new()),
    };
    tracing::info!(
        "pre-initialised Ruby in {:.1} s (snapshot {:.1} s, compile {:.1} s; {size} bytes{stored})",
        started.elapsed().as_secs_f64(),
        snapshotted.as_secs_f64(),
        (started.elapsed() - snapshotted).as_secs_f64()
    );
    Ok(code)
}
