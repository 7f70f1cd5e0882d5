//! The wws JavaScript engine: QuickJS (rquickjs) as a WASI command that serves one request.
//!
//! Contract with the host (crates/runtimes drives it exactly this way):
//! - The worker's source is `/src/index.js` (the worker's folder, preopened read-only). Its
//!   name for messages is `WWS_WORKER_FILE` (default `index.js`). Every other env var not
//!   starting with `WWS_` is one of the worker's `[vars]`.
//! - The export `wizer-initialize` loads everything that does not depend on a request (runtime,
//!   polyfills, vars, the worker's source compiled and evaluated once) so the host can snapshot
//!   the memory with wasmtime-wizer. `_start` loads the same way when no snapshot was taken.
//! - `_start` reads the request JSON from stdin, runs the handler to completion (promises,
//!   timers, `waitUntil`), prints exactly one output JSON on stdout and returns.
//! - Failures print `<file>:<line>:<col>: <ErrorName>: <message>` and the stack to stderr and
//!   exit with code 1: a worker that does not load (in either export), or a handler that throws.
//!   `console.*` writes to stderr; nothing else is written to stdout.

mod engine;
mod host;
mod http;
mod polyfills;
mod request;
mod subtle;
mod worker;

use std::cell::RefCell;
use std::io::{Read, Write};

use engine::Engine;

thread_local! {
    /// The loaded engine: set by `wizer-initialize` (and then part of the snapshot) or by the
    /// first `_start`.
    static ENGINE: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// Pre-initialisation entry point for wasmtime-wizer: loads the engine and the worker.
#[unsafe(export_name = "wizer-initialize")]
pub extern "C" fn wizer_initialize() {
    ENGINE.with(|slot| {
        let mut slot = slot.borrow_mut();
        if slot.is_none() {
            *slot = Some(load_or_exit());
        }
    });
}

fn main() {
    ENGINE.with(|slot| {
        let mut slot = slot.borrow_mut();
        let engine = slot.get_or_insert_with(load_or_exit);
        let mut input = String::new();
        if let Err(e) = std::io::stdin().read_to_string(&mut input) {
            exit_with(&format!(
                "{}: cannot read the request JSON from stdin: {e}",
                worker_name()
            ));
        }
        match engine.serve(&input) {
            Ok(output) => {
                let mut out = std::io::stdout().lock();
                if out
                    .write_all(output.as_bytes())
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    exit_with(&format!(
                        "{}: cannot write the response to stdout",
                        worker_name()
                    ));
                }
            }
            Err(report) => exit_with(&report),
        }
    });
}

fn load_or_exit() -> Engine {
    Engine::load().unwrap_or_else(|report| exit_with(&report))
}

fn worker_name() -> String {
    std::env::var("WWS_WORKER_FILE").unwrap_or_else(|_| "index.js".to_owned())
}

/// Prints the report to stderr and exits with code 1 (the host answers 500 and logs it).
fn exit_with(report: &str) -> ! {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(report.as_bytes());
    let _ = err.write_all(b"\n");
    let _ = err.flush();
    std::process::exit(1)
}
