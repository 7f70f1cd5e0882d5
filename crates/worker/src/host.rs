//! Per-request store data: the WASI context, the memory limiter, the CPU budget, and the pipes
//! that capture stdout and stderr.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use wasmtime::component::ResourceTable;
use wasmtime::{StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::limits::Limits;
use crate::program::Preopen;

/// CPU time left for this request, in epoch ticks.
#[derive(Debug, Default)]
pub(crate) struct CpuBudget {
    pub ticks_left: u64,
    pub exhausted: bool,
}

/// Store data for core modules (WASI preview1).
pub(crate) struct CoreHost {
    pub wasi: WasiP1Ctx,
    pub limits: StoreLimits,
    pub cpu: CpuBudget,
    /// Handle table of the Ruby reactor's `canonical_abi` resources.
    pub ruby_handles: Vec<i32>,
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

/// The capture side of one run: stdout (bounded; overflowing fails the run) and stderr
/// (bounded; overflow is cut silently, it is only for the log).
pub(crate) struct Pipes {
    pub stdout: MemoryOutputPipe,
    pub stderr: LogPipe,
}

/// Builds the WASI context of one request.
pub(crate) fn wasi_builder(
    worker: &Arc<str>,
    limits: &Limits,
    stdin: Bytes,
    args: &[String],
    env: &[(String, String)],
    preopens: &[Preopen],
) -> anyhow::Result<(WasiCtxBuilder, Pipes)> {
    let pipes = Pipes {
        // One byte over the limit: a run that fills it printed too much, even if the guest
        // ignored the failed write and exited cleanly.
        stdout: MemoryOutputPipe::new(limits.max_output_bytes.saturating_add(1)),
        stderr: LogPipe::new(worker.clone(), limits.max_stderr_bytes),
    };
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdin(MemoryInputPipe::new(stdin))
        .stdout(pipes.stdout.clone())
        .stderr(pipes.stderr.clone())
        .args(args)
        .envs(env);
    add_preopens(&mut builder, preopens)?;
    Ok((builder, pipes))
}

/// Mounts `preopens` in order (the order matters to snapshots: wasi-libc records the table).
pub(crate) fn add_preopens(
    builder: &mut WasiCtxBuilder,
    preopens: &[Preopen],
) -> anyhow::Result<()> {
    for p in preopens {
        let perms = if p.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        builder
            .preopened_dir(&p.host, &p.guest, perms)
            .map_err(|err| {
                anyhow::anyhow!("cannot mount {} at {}: {err}", p.host.display(), p.guest)
            })?;
    }
    Ok(())
}

/// The memory limiter of one store.
pub(crate) fn store_limits(limits: &Limits) -> StoreLimits {
    StoreLimitsBuilder::new()
        .memory_size(limits.max_memory_bytes)
        .trap_on_grow_failure(true)
        .build()
}

/// Worker stderr, logged live one line at a time and tagged with the worker's name. At most
/// `cap` bytes per run reach the log; the rest is dropped without failing the guest.
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
    truncated: bool,
}

/// Longest line kept before it is logged anyway.
const MAX_LINE: usize = 8 << 10;

impl LogPipe {
    pub(crate) fn new(worker: Arc<str>, cap: usize) -> Self {
        Self {
            worker,
            cap,
            state: Arc::default(),
        }
    }

    fn push(&self, mut bytes: &[u8]) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        while !bytes.is_empty() {
            let (chunk, rest, newline) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            st.line.extend_from_slice(chunk);
            if newline || st.line.len() >= MAX_LINE {
                self.emit(&mut st);
            }
            bytes = rest;
        }
    }

    fn emit(&self, st: &mut LogState) {
        let line = std::mem::take(&mut st.line);
        if st.logged >= self.cap {
            if !st.truncated {
                st.truncated = true;
                tracing::warn!(target: "wws::worker", worker = %self.worker, "stderr limit of {} bytes reached; further output dropped", self.cap);
            }
            return;
        }
        st.logged += line.len() + 1;
        tracing::info!(target: "wws::worker", worker = %self.worker, "{}", String::from_utf8_lossy(&line).trim_end_matches('\r'));
    }

    /// Starts a new request's allowance of `cap` bytes (reuse mode: one pipe, many requests).
    pub(crate) fn reset(&self) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        st.logged = 0;
        st.truncated = false;
    }

    /// Logs a last line that had no newline.
    pub fn finish(&self) {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !st.line.is_empty() {
            self.emit(&mut st);
        }
    }
}

impl IsTerminal for LogPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for LogPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LogPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LogPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        self.push(buf);
        std::task::Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}
