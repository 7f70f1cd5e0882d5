//! Per-request store data: the WASI state (`wasi/`), the memory limiter, the CPU budget, and
//! the pipe that logs stderr.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::StreamResult;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::limits::Limits;
use crate::sink::Sink;
use crate::wasi::RequestWasi;

/// CPU time left for this request, in epoch ticks.
#[derive(Debug, Default)]
pub(crate) struct CpuBudget {
    pub ticks_left: u64,
    pub exhausted: bool,
}

/// Store data for core modules (WASI preview1).
pub(crate) struct CoreHost {
    pub wasi: RequestWasi,
    pub limits: StoreLimits,
    pub cpu: CpuBudget,
    /// Handle table of the Ruby reactor's `canonical_abi` resources.
    pub ruby_handles: Vec<i32>,
    /// Outbound HTTP this worker may make (`outbound.rs`); `None`: none.
    pub http: Option<crate::outbound::Policy>,
    /// Largest outbound response body accepted, in bytes.
    pub http_limit: usize,
    /// The last outbound answer, until the guest reads it.
    pub http_answer: Vec<u8>,
    /// Set while a snapshot is taken: outbound HTTP is refused, saying why.
    pub http_loading: bool,
    /// Requests started with `wws_http.start`, answered in the order they finish; dropping
    /// the store aborts those still in flight.
    pub http_inflight: tokio::task::JoinSet<(u32, Vec<u8>)>,
    /// Answers known as soon as their request started (refusals while loading), before those
    /// of `http_inflight`.
    pub http_ready: Vec<(u32, Vec<u8>)>,
    /// Id of the next started request.
    pub http_next_id: u32,
    /// Set when the run may answer before it ends (`early.rs`).
    pub early: Option<crate::early::EarlyAnswer>,
}

impl CoreHost {
    /// Store data for one run: `wasi`, the engine's limits, and outbound HTTP as `http` allows.
    pub(crate) fn new(
        wasi: RequestWasi,
        limits: &crate::Limits,
        http: Option<crate::outbound::Policy>,
    ) -> Self {
        Self {
            wasi,
            limits: store_limits(limits),
            cpu: CpuBudget::default(),
            ruby_handles: Vec::new(),
            http,
            http_limit: limits.max_output_bytes,
            http_answer: Vec::new(),
            http_loading: false,
            http_inflight: tokio::task::JoinSet::new(),
            http_ready: Vec::new(),
            http_next_id: 0,
            early: None,
        }
    }
}

/// Store data for preview2 components.
pub(crate) struct ComponentHost {
    pub ctx: WasiCtx,
    pub table: ResourceTable,
    pub limits: StoreLimits,
    pub cpu: CpuBudget,
}

impl WasiView for ComponentHost {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// Common access for the limiter and the CPU budget, whatever the store type.
pub(crate) trait HostState: Send + 'static {
    fn limits(&mut self) -> &mut StoreLimits;
    fn cpu(&mut self) -> &mut CpuBudget;
}

impl HostState for CoreHost {
    fn limits(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }
    fn cpu(&mut self) -> &mut CpuBudget {
        &mut self.cpu
    }
}

impl HostState for ComponentHost {
    fn limits(&mut self) -> &mut StoreLimits {
        &mut self.limits
    }
    fn cpu(&mut self) -> &mut CpuBudget {
        &mut self.cpu
    }
}

/// The memory limiter of one store.
pub(crate) fn store_limits(limits: &Limits) -> StoreLimits {
    StoreLimitsBuilder::new()
        .memory_size(limits.max_memory_bytes)
        .trap_on_grow_failure(true)
        .build()
}

/// Worker stderr, logged live one line at a time and tagged with the worker's name. At most
/// `cap` bytes per run reach the log as they are written; past that, only the last
/// [`TAIL`] bytes are kept and logged when the run ends, because that is where a failing
/// worker reports why (a JavaScript exception after a large `console.log`).
#[derive(Clone)]
pub(crate) struct LogPipe {
    worker: Arc<str>,
    cap: usize,
    state: Arc<Mutex<LogState>>,
}

#[derive(Default)]
struct LogState {
    line: Vec<u8>,
    logged: usize,
    /// Bytes past the cap that are not in `tail`.
    dropped: usize,
    /// The last lines past the cap, at most [`TAIL`] bytes.
    tail: VecDeque<Vec<u8>>,
    tail_bytes: usize,
    /// Whether the last line logged was an error (its stack lines follow).
    in_error: bool,
}

/// Longest line kept before it is logged anyway (a longer one is logged in pieces).
const MAX_LINE: usize = 8 << 10;
/// The end of an overlong stderr that is logged when the run ends.
const TAIL: usize = 8 << 10;

impl LogPipe {
    pub(crate) fn new(worker: Arc<str>, cap: usize) -> Self {
        Self {
            worker,
            cap,
            state: Arc::default(),
        }
    }

    pub(crate) fn push(&self, mut bytes: &[u8]) {
        let mut st = self.lock();
        while !bytes.is_empty() {
            let room = MAX_LINE - st.line.len();
            let (chunk, rest, newline) = match bytes.iter().take(room).position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => {
                    let n = bytes.len().min(room);
                    (&bytes[..n], &bytes[n..], false)
                }
            };
            st.line.extend_from_slice(chunk);
            if newline || st.line.len() >= MAX_LINE {
                self.emit(&mut st);
            }
            bytes = rest;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn emit(&self, st: &mut LogState) {
        let line = std::mem::take(&mut st.line);
        if st.logged < self.cap {
            st.logged += line.len() + 1;
            self.log(st, &line);
            return;
        }
        if st.tail.is_empty() && st.dropped == 0 {
            tracing::warn!(target: "wws::worker", worker = %self.worker, "stderr limit of {} bytes reached; the rest is dropped but for its last lines, logged when the run ends", self.cap);
        }
        st.tail_bytes += line.len();
        st.tail.push_back(line);
        while st.tail_bytes > TAIL {
            let Some(old) = st.tail.pop_front() else {
                break;
            };
            st.tail_bytes -= old.len();
            st.dropped += old.len() + 1;
        }
    }

    fn log(&self, st: &mut LogState, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        let level = self.severity(text, st.in_error);
        st.in_error = level == tracing::Level::ERROR;
        match level {
            tracing::Level::ERROR => {
                tracing::error!(target: "wws::worker", worker = %self.worker, "{text}");
            }
            tracing::Level::WARN => {
                tracing::warn!(target: "wws::worker", worker = %self.worker, "{text}");
            }
            _ => tracing::info!(target: "wws::worker", worker = %self.worker, "{text}"),
        }
    }

    /// How loud a line of stderr is: `console.error` (`[error] …`), a Rust panic, and the JS
    /// engine's report of why the worker failed (`<worker file>:<line>:<col>: …`, then its
    /// indented stack) are errors, `console.warn` a warning, the rest information. So
    /// `RUST_LOG=warn` still shows why a worker failed.
    fn severity(&self, text: &str, after_error: bool) -> tracing::Level {
        if text.starts_with("[error]")
            || text.contains("panicked at ")
            || text
                .strip_prefix(&*self.worker)
                .is_some_and(|rest| rest.starts_with(':'))
            || (after_error && text.starts_with("    at "))
        {
            tracing::Level::ERROR
        } else if text.starts_with("[warn]") {
            tracing::Level::WARN
        } else {
            tracing::Level::INFO
        }
    }

    /// Logs what the cap held back: how much was dropped, then the last lines.
    fn flush_tail(&self, st: &mut LogState) {
        if st.tail.is_empty() {
            return;
        }
        tracing::warn!(target: "wws::worker", worker = %self.worker, "{} bytes of stderr dropped; its last {} lines follow", st.dropped, st.tail.len());
        for line in std::mem::take(&mut st.tail) {
            self.log(st, &line);
        }
        st.tail_bytes = 0;
        st.dropped = 0;
    }

    /// Starts a new request's allowance of `cap` bytes (reuse mode: one pipe, many requests).
    pub(crate) fn reset(&self) {
        let mut st = self.lock();
        self.flush_tail(&mut st);
        st.logged = 0;
    }

    /// Logs a last line that had no newline, and what the cap held back.
    pub fn finish(&self) {
        let mut st = self.lock();
        if !st.line.is_empty() {
            self.emit(&mut st);
        }
        self.flush_tail(&mut st);
    }
}

impl Sink for LogPipe {
    fn accept(&self, bytes: &[u8]) -> StreamResult<()> {
        self.push(bytes);
        Ok(())
    }
}
