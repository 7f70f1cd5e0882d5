//! Reuse mode: one live instance serves many requests, for interpreters whose start costs tens
//! of milliseconds (CPython, Ruby) and that cannot be snapshotted.
//!
//! # How it works
//!
//! A worker whose program environment holds `WWS_REUSE=1` (set by the runtimes crate when the
//! runtime's index entry declares `reuse` and the worker's TOML does not say
//! `[runtime] reuse = false`) gets a [`Pool`] of live instances instead of a fresh instance per
//! request. Each live instance:
//! - is owned by its own tokio task, which holds the `Store` and runs the guest's entry (`_start`
//!   for a WASI command, `load "/src/index.rb"` for the Ruby reactor) for the instance's whole
//!   life: the runtime's wrapper loops over requests (runtimes/README.md, "Reuse mode");
//! - reads its stdin from a [`FrameStdin`] fed by the host: a read with nothing pending *waits*
//!   for the next request instead of reporting end of input; closing it ends the guest's loop;
//! - writes to a [`FrameStdout`] that parses `<decimal length>\n<json>` frames as they arrive and
//!   hands each complete one to the request waiting for it. A frame longer than
//!   [`Limits::max_output_bytes`](crate::Limits), a malformed header or a frame nobody asked
//!   for traps the instance.
//!
//! A request checks an instance out of the pool (never two requests in one instance at once),
//! writes one frame, waits for one response frame, and returns the instance. Its CPU budget is
//! counted from the moment its frame is written, so the limit is per request, not per instance
//! life. An instance is replaced (in the background, the replacement booting while idle) after
//! `max_requests` requests, after any failure (trap, exit, malformed frame, memory or CPU limit),
//! or when the request holding it is dropped; a broken instance never goes back to the pool. A
//! request whose frame a reused instance never read (it died between requests) is retried once
//! on a fresh instance.
//!
//! Recycling never makes a request wait for an interpreter to start: an instance that reached
//! `max_requests` keeps serving (as "retiring") until its replacement has booted, unless another
//! instance is ready; requests prefer instances that have booted over ones still booting.
//!
//! The pool grows on demand up to its size (default: the number of CPU cores, at least 2) and
//! one instance is started when the worker is prepared, so the first request is warm.
//!
//! # Isolation trade-off
//!
//! Everything the interpreter keeps in memory survives between the requests one instance
//! serves: module globals, class attributes, Ruby globals and monkey-patches, caches, the random
//! seed, files written to the instance's own filesystem. Per request are: the request itself
//! (url, headers, body, params), the key/value snapshot (`Cache` is reset from each request's
//! frame) and the CPU budget. Instances belong to one worker, so a request never sees another
//! worker's state, but it may see what an earlier request of the same worker left behind. A
//! worker that must not share anything between requests sets `[runtime] reuse = false` in its
//! TOML and gets a fresh instance per request.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use bytes::{Bytes, BytesMut};
use tokio::sync::{Semaphore, oneshot};
use wasmtime::{InstancePre, Store, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdinStream, StdoutStream};
use wasmtime_wasi::p2::{InputStream, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::engine::{EPOCH_TICK, Engine};
use crate::error::RunError;
use crate::host::{self, CoreHost, CpuBudget, LogPipe};
use crate::program::Preopen;
use crate::ruby;

/// The environment variable that asks a wrapper (and the host) for reuse mode.
pub const REUSE_ENV: &str = "WWS_REUSE";

/// Optional environment variable with the number of requests one instance may serve.
pub const MAX_REQUESTS_ENV: &str = "WWS_REUSE_MAX_REQUESTS";

/// Requests one instance serves before it is replaced, unless the runtime says otherwise.
pub const DEFAULT_MAX_REQUESTS: u64 = 1000;

/// Longest frame header accepted (`u64::MAX` has 20 digits).
const MAX_HEADER: usize = 20;

/// How the guest's entry is called for the life of the instance.
pub(crate) enum Driver {
    /// A WASI command: `_start`.
    Command,
    /// The ruby.wasm reactor: init, then the script (whose `load` lasts the whole loop).
    Ruby {
        script: Arc<str>,
        exports: ruby::Exports,
    },
}

/// Everything needed to start a live instance of one worker.
pub(crate) struct Template {
    pub name: Arc<str>,
    pub engine: Engine,
    pub pre: InstancePre<CoreHost>,
    pub driver: Driver,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub preopens: Vec<Preopen>,
}

/// The default number of live instances per worker: one per CPU core, at least 2.
pub(crate) fn default_instances() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .max(2)
}

/// A worker's live instances.
pub(crate) struct Pool {
    inner: Arc<PoolInner>,
}

struct PoolInner {
    /// Shared with the instances' tasks (which must not hold the pool: its idle list holds them).
    template: Arc<Template>,
    max_requests: u64,
    /// One permit per instance the pool may hold: the requests served at once.
    permits: Semaphore,
    idle: Mutex<Vec<Live>>,
}

impl Pool {
    /// A pool of up to `instances` live instances; starts one now when inside a tokio runtime.
    pub(crate) fn new(template: Template, max_requests: u64, instances: usize) -> Self {
        let inner = Arc::new(PoolInner {
            template: Arc::new(template),
            max_requests,
            permits: Semaphore::new(instances.max(1)),
            idle: Mutex::new(Vec::with_capacity(instances)),
        });
        if tokio::runtime::Handle::try_current().is_ok() {
            let live = Live::start(&inner);
            inner.idle().push(live);
        }
        Self { inner }
    }

    /// Serves one request (`input` is the request JSON) in a live instance; returns the
    /// response JSON.
    pub(crate) async fn run(&self, input: Bytes) -> Result<Bytes, RunError> {
        let Ok(_permit) = self.inner.permits.acquire().await else {
            return Err(RunError::Busy);
        };
        let mut retried = false;
        loop {
            let live = self.inner.checkout();
            let live = live.unwrap_or_else(|| Live::start(&self.inner));
            let mut out = Checkout {
                pool: &self.inner,
                live: Some(live),
            };
            let Some(live) = out.live.as_mut() else {
                unreachable!("just set")
            };
            match live.request(input.clone(), &self.inner.template).await {
                Ok(frame) => {
                    out.give_back();
                    return Ok(frame);
                }
                // The instance died between requests without reading this one: nothing of this
                // request ran, so it may go to a fresh instance once.
                Err(Failed { unread: true, .. }) if live.served > 0 && !retried => {
                    retried = true;
                }
                Err(failed) => return Err(failed.error),
            }
            // `out` drops here: the instance is discarded and replaced.
        }
    }
}

impl PoolInner {
    fn idle(&self) -> MutexGuard<'_, Vec<Live>> {
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the best idle instance: one that has booted and is not retiring, else one that has
    /// booted, else one still booting. Instances that ended while idle are dropped.
    fn checkout(&self) -> Option<Live> {
        let mut idle = self.idle();
        idle.retain(|live| !live.ended.load(Ordering::Acquire));
        let pick = idle
            .iter()
            .rposition(|l| l.stdin.booted() && !l.retiring)
            .or_else(|| idle.iter().rposition(|l| l.stdin.booted()))
            .or_else(|| idle.len().checked_sub(1))?;
        Some(idle.remove(pick))
    }

    /// Whether an idle instance other than a retiring one is ready to serve.
    fn has_ready(&self) -> bool {
        self.idle()
            .iter()
            .any(|l| l.stdin.booted() && !l.retiring && !l.ended.load(Ordering::Acquire))
    }
}

/// An instance checked out by one request. Unless given back healthy, dropping it discards
/// the instance (closing its stdin ends the guest) and starts a replacement.
struct Checkout<'a> {
    pool: &'a Arc<PoolInner>,
    live: Option<Live>,
}

impl Checkout<'_> {
    /// Returns a healthy instance. One that has served `max_requests` is replaced; while its
    /// replacement boots it keeps serving (as `retiring`) unless another instance is ready, so
    /// recycling never makes a request wait for an interpreter to start.
    fn give_back(&mut self) {
        let Some(mut live) = self.live.take() else {
            return;
        };
        live.served += 1;
        if live.served < self.pool.max_requests {
            self.pool.idle().push(live);
            return;
        }
        let ready = self.pool.has_ready();
        if !live.retiring {
            self.replace();
        }
        if ready {
            drop(live);
        } else {
            live.retiring = true;
            self.pool.idle().push(live);
        }
    }

    fn replace(&self) {
        if tokio::runtime::Handle::try_current().is_ok() {
            let fresh = Live::start(self.pool);
            self.pool.idle().push(fresh);
        }
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            // The request was cancelled (client gone) or failed: the guest must not keep
            // computing on a detached task, so it gets no more CPU and stops at the next tick.
            live.budget.stop();
            drop(live);
            self.replace();
        }
    }
}

/// A failed request and whether the instance had read any of it.
struct Failed {
    error: RunError,
    unread: bool,
}

/// The host's side of one live instance.
struct Live {
    stdin: FrameStdin,
    stdout: FrameStdout,
    stderr: LogPipe,
    budget: Arc<Budget>,
    exit: Exit,
    served: u64,
    /// It has served `max_requests`; its replacement is booting.
    retiring: bool,
    /// Set by the instance's task when the guest has ended.
    ended: Arc<AtomicBool>,
}

enum Exit {
    Running(oneshot::Receiver<Result<(), RunError>>),
    Ended,
}

impl Live {
    /// Starts an instance in its own task. It boots while the handle waits in the pool.
    fn start(pool: &Arc<PoolInner>) -> Self {
        let t = &pool.template;
        let limits = t.engine.limits();
        let (tx, rx) = oneshot::channel();
        let live = Self {
            stdin: FrameStdin::default(),
            stdout: FrameStdout::new(limits.max_output_bytes),
            stderr: LogPipe::new(t.name.clone(), limits.max_stderr_bytes),
            budget: Arc::new(Budget::new(ticks_for(&t.engine))),
            exit: Exit::Running(rx),
            served: 0,
            retiring: false,
            ended: Arc::new(AtomicBool::new(false)),
        };
        let task = Instance {
            template: pool.template.clone(),
            stdin: live.stdin.clone(),
            stdout: live.stdout.clone(),
            stderr: live.stderr.clone(),
            budget: live.budget.clone(),
        };
        let ended = live.ended.clone();
        tokio::spawn(async move {
            let result = task.run().await;
            ended.store(true, Ordering::Release);
            let _ = tx.send(result);
        });
        live
    }

    /// Sends one request frame and waits for its response frame or the instance's end.
    async fn request(&mut self, input: Bytes, t: &Template) -> Result<Bytes, Failed> {
        let rx = match &mut self.exit {
            Exit::Running(rx) => rx,
            Exit::Ended => {
                return Err(Failed {
                    error: ended(),
                    unread: true,
                });
            }
        };
        let (tx, mut frame) = oneshot::channel();
        self.stdout.expect(tx);
        self.stderr.reset();
        self.budget.reset(ticks_for(&t.engine));
        let start = self.stdin.push_frame(input);
        let result = tokio::select! {
            biased;
            answer = &mut frame => match answer {
                Ok(bytes) => return Ok(bytes),
                // The stream was dropped: the instance is ending; its result says why.
                Err(_) => rx.await.unwrap_or_else(|_| Err(ended())),
            },
            result = &mut *rx => result.unwrap_or_else(|_| Err(ended())),
        };
        self.exit = Exit::Ended;
        // A frame completed just before the instance ended still answers this request.
        if let Ok(bytes) = frame.try_recv() {
            return Ok(bytes);
        }
        let unread = self.stdin.consumed() <= start;
        Err(Failed {
            error: result.err().unwrap_or_else(ended),
            unread,
        })
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // End of stdin ends the guest's loop; its task then drops the store.
        self.stdin.close();
    }
}

fn ended() -> RunError {
    RunError::Trap(anyhow::anyhow!(
        "the worker's instance ended without answering the request (its wrapper must loop over framed requests while WWS_REUSE=1)"
    ))
}

fn ticks_for(engine: &Engine) -> u64 {
    (engine.limits().timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
}

/// CPU time left for the request in flight, in epoch ticks; shared between the request (which
/// resets it) and the epoch callback of the instance's store.
struct Budget {
    ticks_left: AtomicU64,
    exhausted: AtomicBool,
}

impl Budget {
    fn new(ticks: u64) -> Self {
        Self {
            ticks_left: AtomicU64::new(ticks),
            exhausted: AtomicBool::new(false),
        }
    }

    fn reset(&self, ticks: u64) {
        self.ticks_left.store(ticks, Ordering::Relaxed);
    }

    /// Takes every remaining tick: the guest stops at its next epoch check.
    fn stop(&self) {
        self.ticks_left.store(0, Ordering::Relaxed);
    }

    /// Called at every epoch tick the guest runs through: spend one tick, or stop the guest.
    /// One atomic update, so a `reset` for the next request is never overwritten.
    fn tick(&self) -> UpdateDeadline {
        match self
            .ticks_left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(1)
            }) {
            Ok(_) => UpdateDeadline::Yield(1),
            Err(_) => {
                self.exhausted.store(true, Ordering::Relaxed);
                UpdateDeadline::Interrupt
            }
        }
    }
}

/// The task side of one live instance.
struct Instance {
    template: Arc<Template>,
    stdin: FrameStdin,
    stdout: FrameStdout,
    stderr: LogPipe,
    budget: Arc<Budget>,
}

impl Instance {
    async fn run(self) -> Result<(), RunError> {
        let t = &self.template;
        let Ok(_slot) = t.engine.slots().clone().acquire_owned().await else {
            return Err(RunError::Busy);
        };
        let mut builder = WasiCtxBuilder::new();
        builder
            .stdin(self.stdin.clone())
            .stdout(self.stdout.clone())
            .stderr(self.stderr.clone())
            .args(&t.args)
            .envs(&t.env);
        for p in &t.preopens {
            let perms = if p.writable {
                FsPerms::ReadWrite
            } else {
                FsPerms::ReadOnly
            };
            if let Err(err) = builder.preopened_dir(&p.host, &p.guest, perms) {
                return Err(RunError::Trap(anyhow::anyhow!(
                    "cannot mount {} at {}: {err}",
                    p.host.display(),
                    p.guest
                )));
            }
        }
        let data = CoreHost {
            wasi: builder.build_p1(),
            limits: host::store_limits(t.engine.limits()),
            cpu: CpuBudget::default(),
            ruby_handles: Vec::new(),
        };
        let mut store = Store::new(t.engine.wasmtime(), data);
        store.limiter(|h| &mut h.limits);
        store.set_epoch_deadline(1);
        let budget = self.budget.clone();
        store.epoch_deadline_callback(move |_| Ok(budget.tick()));
        let outcome = async {
            let instance = t.pre.instantiate_async(&mut store).await?;
            match &t.driver {
                Driver::Command => {
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await
                }
                Driver::Ruby { script, exports } => {
                    ruby::run(&mut store, &instance, exports, &t.args, script).await
                }
            }
        }
        .await;
        drop(store);
        self.stderr.finish();
        self.classify(outcome)
    }

    fn classify(&self, outcome: wasmtime::Result<()>) -> Result<(), RunError> {
        let limits = self.template.engine.limits();
        if let Some(failure) = self.stdout.take_failure() {
            return Err(match failure {
                FrameError::TooLarge => RunError::OutputTooLarge(limits.max_output_bytes),
                FrameError::Protocol(msg) => RunError::Trap(anyhow::anyhow!("{msg}")),
            });
        }
        let exhausted = self.budget.exhausted.load(Ordering::Relaxed);
        crate::worker::classify(outcome, exhausted, limits)
    }
}

/// The guest's stdin in reuse mode: request frames pushed by the host; a read waits while
/// nothing is pending, and returns end of input once the host closed it.
#[derive(Clone, Default)]
struct FrameStdin {
    shared: Arc<Mutex<StdinState>>,
}

#[derive(Default)]
struct StdinState {
    chunks: VecDeque<Bytes>,
    closed: bool,
    /// Bytes written by the host so far, and bytes the guest read.
    pushed: u64,
    consumed: u64,
    /// The guest has asked for input: its interpreter has booted and waits for requests.
    asked: bool,
    wakers: Vec<Waker>,
}

impl FrameStdin {
    fn lock(&self) -> MutexGuard<'_, StdinState> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `<len>\n<payload>`; returns the stream offset where the frame starts.
    fn push_frame(&self, payload: Bytes) -> u64 {
        let header = Bytes::from(format!("{}\n", payload.len()));
        let mut st = self.lock();
        let start = st.pushed;
        st.pushed += (header.len() + payload.len()) as u64;
        st.chunks.push_back(header);
        if !payload.is_empty() {
            st.chunks.push_back(payload);
        }
        for w in st.wakers.drain(..) {
            w.wake();
        }
        start
    }

    fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        for w in st.wakers.drain(..) {
            w.wake();
        }
    }

    /// Whether the guest has booted far enough to read its first request.
    fn booted(&self) -> bool {
        let st = self.lock();
        st.asked || st.consumed > 0
    }

    fn consumed(&self) -> u64 {
        self.lock().consumed
    }

    /// Takes up to `size` bytes; `None` when nothing is pending and the stream is open.
    fn take(&self, size: usize) -> Option<Bytes> {
        let mut st = self.lock();
        let Some(front) = st.chunks.front_mut() else {
            st.asked = true;
            return st.closed.then(Bytes::new);
        };
        let out = if front.len() <= size {
            st.chunks.pop_front().unwrap_or_default()
        } else {
            front.split_to(size)
        };
        st.consumed += out.len() as u64;
        Some(out)
    }

    fn poll_ready(&self, cx: &mut std::task::Context<'_>) -> Poll<()> {
        let mut st = self.lock();
        if st.closed || !st.chunks.is_empty() {
            return Poll::Ready(());
        }
        st.asked = true;
        if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            st.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl IsTerminal for FrameStdin {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdinStream for FrameStdin {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncRead + Send + Sync> {
        Box::new(self.clone())
    }
    fn p2_stream(&self) -> Box<dyn InputStream> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl InputStream for FrameStdin {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        match self.take(size) {
            Some(bytes) if bytes.is_empty() && size > 0 => Err(StreamError::Closed),
            Some(bytes) => Ok(bytes),
            None => Ok(Bytes::new()),
        }
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for FrameStdin {
    async fn ready(&mut self) {
        std::future::poll_fn(|cx| self.poll_ready(cx)).await;
    }
}

impl tokio::io::AsyncRead for FrameStdin {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if self.poll_ready(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some(bytes) = self.take(buf.remaining()) {
            buf.put_slice(&bytes);
        }
        Poll::Ready(Ok(()))
    }
}

/// Why the guest's output broke the framing.
#[derive(Debug)]
enum FrameError {
    TooLarge,
    Protocol(String),
}

/// The guest's stdout in reuse mode: parses response frames as they are written and hands
/// each complete one to the request waiting for it.
#[derive(Clone)]
struct FrameStdout {
    shared: Arc<Mutex<StdoutState>>,
}

struct StdoutState {
    max: usize,
    header: Vec<u8>,
    /// The frame being read: its announced length and the bytes so far.
    body: Option<(usize, BytesMut)>,
    waiter: Option<oneshot::Sender<Bytes>>,
    failure: Option<FrameError>,
}

impl FrameStdout {
    fn new(max: usize) -> Self {
        Self {
            shared: Arc::new(Mutex::new(StdoutState {
                max,
                header: Vec::new(),
                body: None,
                waiter: None,
                failure: None,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StdoutState> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next complete frame goes to `tx`.
    fn expect(&self, tx: oneshot::Sender<Bytes>) {
        self.lock().waiter = Some(tx);
    }

    fn take_failure(&self) -> Option<FrameError> {
        self.lock().failure.take()
    }

    fn push(&self, mut bytes: &[u8]) -> Result<(), StreamError> {
        let mut st = self.lock();
        if st.failure.is_some() {
            return Err(StreamError::trap("the worker's output is not framed"));
        }
        let result = st.parse(&mut bytes);
        if let Err(err) = result {
            let msg = match &err {
                FrameError::TooLarge => {
                    "the worker's response frame exceeds the output limit".to_string()
                }
                FrameError::Protocol(msg) => msg.clone(),
            };
            st.failure = Some(err);
            return Err(StreamError::Trap(wasmtime::format_err!("{msg}")));
        }
        Ok(())
    }
}

impl StdoutState {
    fn parse(&mut self, bytes: &mut &[u8]) -> Result<(), FrameError> {
        while !bytes.is_empty() {
            match &mut self.body {
                None => {
                    let byte = bytes[0];
                    *bytes = &bytes[1..];
                    if byte == b'\n' {
                        let len = std::str::from_utf8(&self.header)
                            .ok()
                            .filter(|s| !s.is_empty())
                            .and_then(|s| s.parse::<usize>().ok())
                            .ok_or_else(|| {
                                FrameError::Protocol(format!(
                                    "the worker wrote {:?} on stdout where a frame length was expected (stray output?)",
                                    String::from_utf8_lossy(&self.header)
                                ))
                            })?;
                        self.header.clear();
                        if len > self.max {
                            return Err(FrameError::TooLarge);
                        }
                        // The guest announced `len`; grow as bytes arrive instead of trusting it.
                        self.body = Some((len, BytesMut::with_capacity(len.min(64 << 10))));
                    } else if byte.is_ascii_digit() && self.header.len() < MAX_HEADER {
                        self.header.push(byte);
                    } else {
                        self.header.push(byte);
                        return Err(FrameError::Protocol(format!(
                            "the worker wrote {:?} on stdout where a frame length was expected (stray output?)",
                            String::from_utf8_lossy(&self.header)
                        )));
                    }
                }
                Some((len, buf)) => {
                    let take = (*len - buf.len()).min(bytes.len());
                    buf.extend_from_slice(&bytes[..take]);
                    *bytes = &bytes[take..];
                }
            }
            if let Some((len, buf)) = &mut self.body
                && buf.len() == *len
            {
                let frame = std::mem::take(buf).freeze();
                self.body = None;
                let Some(waiter) = self.waiter.take() else {
                    return Err(FrameError::Protocol(
                        "the worker wrote a response frame while no request was pending".into(),
                    ));
                };
                // The request may have gone (client disconnected); the frame is then dropped.
                let _ = waiter.send(frame);
            }
        }
        Ok(())
    }
}

impl IsTerminal for FrameStdout {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for FrameStdout {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for FrameStdout {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes)
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for FrameStdout {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for FrameStdout {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.push(buf)
                .map(|()| buf.len())
                .map_err(|e| std::io::Error::other(e.to_string())),
        )
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(max: usize, chunks: &[&[u8]]) -> (Result<(), FrameError>, Vec<Bytes>) {
        let mut st = StdoutState {
            max,
            header: Vec::new(),
            body: None,
            waiter: None,
            failure: None,
        };
        let mut got = Vec::new();
        let mut rx = None;
        for chunk in chunks {
            if st.waiter.is_none() && st.body.is_none() && st.header.is_empty() {
                let (tx, r) = oneshot::channel();
                st.waiter = Some(tx);
                rx = Some(r);
            }
            let mut bytes = *chunk;
            if let Err(e) = st.parse(&mut bytes) {
                return (Err(e), got);
            }
            if let Some(r) = rx.as_mut()
                && let Ok(frame) = r.try_recv()
            {
                got.push(frame);
                rx = None;
            }
        }
        (Ok(()), got)
    }

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        let (res, got) = frames(100, &[b"1", b"0\n{\"a\":", b"\"hi\"}", b"2\n{}"]);
        assert!(res.is_ok());
        assert_eq!(got, vec![Bytes::from("{\"a\":\"hi\"}"), Bytes::from("{}")]);
    }

    #[test]
    fn stray_output_and_oversized_frames_are_refused() {
        let (res, _) = frames(100, &[b"hello\n"]);
        assert!(matches!(res, Err(FrameError::Protocol(_))));
        let (res, _) = frames(10, &[b"11\n"]);
        assert!(matches!(res, Err(FrameError::TooLarge)));
        let (res, _) = frames(100, &[b"\n"]);
        assert!(matches!(res, Err(FrameError::Protocol(_))));
    }

    #[test]
    fn a_frame_nobody_asked_for_is_refused() {
        let mut st = StdoutState {
            max: 100,
            header: Vec::new(),
            body: None,
            waiter: None,
            failure: None,
        };
        let mut bytes: &[u8] = b"2\n{}";
        assert!(matches!(st.parse(&mut bytes), Err(FrameError::Protocol(_))));
    }

    #[test]
    fn stdin_waits_then_ends_when_closed() {
        let stdin = FrameStdin::default();
        assert!(stdin.take(10).is_none());
        let start = stdin.push_frame(Bytes::from("{}"));
        assert_eq!(start, 0);
        assert_eq!(stdin.take(10).as_deref(), Some(&b"2\n"[..]));
        assert_eq!(stdin.take(1).as_deref(), Some(&b"{"[..]));
        assert_eq!(stdin.consumed(), 3);
        assert_eq!(stdin.take(10).as_deref(), Some(&b"}"[..]));
        assert!(stdin.take(10).is_none());
        stdin.close();
        assert_eq!(stdin.take(10).as_deref(), Some(&b""[..]));
    }
}
