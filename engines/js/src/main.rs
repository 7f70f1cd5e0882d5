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
//! - With `WWS_REUSE=1` (a worker's `[runtime] reuse = true`), `_start` instead serves
//!   length-prefixed request frames until stdin ends, one output frame each, from the same
//!   loaded engine: module state survives between requests, as in reuse mode for Python.
//! - Failures print `<file>:<line>:<col>: <ErrorName>: <message>` and the stack to stderr and
//!   exit with code 1: a worker that does not load (in either export), or a handler that throws.
//!   `console.*` writes to stderr; nothing else is written to stdout.

mod arena;
mod engine;
mod host;
mod http;
mod polyfills;
mod request;
mod subtle;
mod worker;

use std::cell::RefCell;
use std::io::{BufRead, Read, Write};

use engine::Engine;

/// Fresh instances allocate from the request arena (see `arena`).
#[global_allocator]
static ALLOCATOR: arena::Rust = arena::Rust;

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
        if engine.reuse {
            return serve_frames(engine);
        }
        engine.begin_fresh();
        let mut input = String::new();
        // Through `Take`: File's own read_to_string first asks the host for the file's size
        // (fd_filestat_get), which a pipe does not have.
        if let Err(e) = (&*raw_stdio(0)).take(u64::MAX).read_to_string(&mut input) {
            exit_with(&format!(
                "{}: cannot read the request JSON from stdin: {e}",
                worker_name()
            ));
        }
        match engine.serve(&input) {
            Ok(output) => write_or_exit(output.as_bytes(), None),
            Err(report) => exit_with(&report),
        }
    });
}

/// Set by the host when one instance serves many requests (`[runtime] reuse = true`).
pub(crate) const REUSE_VAR: &str = "WWS_REUSE";

/// Reuse mode: serves `<length>\n<request JSON>` frames from stdin until it ends, answering
/// each with a `<length>\n<output JSON>` frame (runtimes/README.md, "Reuse mode"). A request
/// that fails ends the instance: the host answers 500 and starts a fresh one.
fn serve_frames(engine: &mut Engine) {
    engine.serve_many();
    let mut stdin = std::io::stdin().lock();
    let mut header = Vec::new();
    loop {
        header.clear();
        match stdin.read_until(b'\n', &mut header) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => exit_with(&format!(
                "{}: cannot read a request frame: {e}",
                worker_name()
            )),
        }
        let len = std::str::from_utf8(&header)
            .ok()
            .and_then(|h| h.strip_suffix('\n'))
            .and_then(|h| h.parse::<usize>().ok())
            .unwrap_or_else(|| {
                exit_with(&format!(
                    "{}: malformed request frame header {:?}: expected a length and a newline",
                    worker_name(),
                    String::from_utf8_lossy(&header)
                ))
            });
        let mut input = vec![0u8; len];
        if let Err(e) = stdin.read_exact(&mut input) {
            exit_with(&format!("{}: truncated request frame: {e}", worker_name()));
        }
        let input = String::from_utf8(input).unwrap_or_else(|_| {
            exit_with(&format!(
                "{}: the request frame is not UTF-8",
                worker_name()
            ))
        });
        match engine.serve(&input) {
            Ok(output) => write_or_exit(output.as_bytes(), Some(output.len())),
            Err(report) => exit_with(&report),
        }
        engine.end_request();
    }
}

/// Stdin (0) or stdout (1) without std's buffer: a fresh instance reads one request and writes
/// one output, whole, and a buffer would be one more block in the request's memory.
fn raw_stdio(fd: std::os::fd::RawFd) -> std::mem::ManuallyDrop<std::fs::File> {
    use std::os::fd::FromRawFd as _;
    // SAFETY: fds 0 and 1 are open for the whole run; ManuallyDrop never closes them, and std's
    // own handles are not used for the same stream in the same call.
    std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Writes the output, after its frame header when it has one, and flushes.
fn write_or_exit(output: &[u8], frame: Option<usize>) {
    let mut out = raw_stdio(1);
    let header = frame.map(|len| format!("{len}\n")).unwrap_or_default();
    if out
        .write_all(header.as_bytes())
        .and_then(|()| out.write_all(output))
        .and_then(|()| out.flush())
        .is_err()
    {
        exit_with(&format!(
            "{}: cannot write the response to stdout",
            worker_name()
        ));
    }
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
