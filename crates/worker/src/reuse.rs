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
//!   for traps the instance;
//! - may write *call frames* (`H<length>\n<json>`) while it handles a request: an outbound
//!   HTTP request, performed by `outbound.rs` under the worker's policy on a task of its own,
//!   whose answer is queued on the guest's stdin as a plain frame. This is how interpreters
//!   that cannot import host functions make outbound requests (runtimes/README.md).
//!
//! A request checks an instance out of the pool (never two requests in one instance at once),
//! waits until the guest blocks reading stdin with nothing pending (so whatever it wrote for
//! earlier requests is out), writes one frame, waits for one response frame, and returns the
//! instance. A response frame counts only once the guest has read the whole request frame; a
//! frame written while no request waits, or before the request was read, breaks the framing
//! and the instance is discarded: request N's output can never answer request N+1. Its CPU budget is
//! counted from the moment its frame is written, so the limit is per request, not per instance
//! life. An instance is replaced (in the background, the replacement booting while idle) after
//! `max_requests` requests, after any failure (trap, exit, malformed frame, memory or CPU limit),
//! or when the request holding it is dropped; a broken instance never goes back to the pool. A
//! request whose frame a reused instance never read (it died between requests) is retried once
//! on a fresh instance.
//!
//! Recycling never makes a request wait for an interpreter to start: an instance that reached
//! `max_requests` keeps serving (as "retiring") while its replacement boots, unless another
//! instance is ready; once the replacement has booted or died, the retiring instance goes.
//! Requests prefer instances that have booted over ones still booting.
//!
//! # Instance slots
//!
//! Every live instance holds one of the engine's instance slots (`slots.rs`) for its whole
//! life, also while idle. A request waits at most the queue timeout for one of the pool's
//! instances, and a booting instance at most as long for a slot; after that the request gets
//! [`RunError::Busy`]. While anything waits for a slot, idle instances are evicted and
//! instances given back are not kept, so reuse-mode workers never starve the others. A
//! dropped instance closes its stdin and gets no more CPU, so its slot comes back within a
//! tick whatever state the guest was in.
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
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Poll, Waker};

use bytes::{Bytes, BytesMut};
use tokio::sync::{Semaphore, oneshot};
use wasmtime::{InstancePre, Store, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdinStream};
use wasmtime_wasi::p2::{InputStream, Pollable, StreamError, StreamResult};

use crate::engine::{EPOCH_TICK, Engine};
use crate::error::RunError;
use crate::host::{CoreHost, LogPipe};
use crate::ruby;
use crate::sink::{Sink, SinkStream};
use crate::slots::{Evict, Queue};
use crate::wasi::{RequestWasi, WasiSpec};

/// The environment variable that asks a wrapper (and the host) for reuse mode.
pub const REUSE_ENV: &str = "WWS_REUSE";

/// Optional environment variable with the number of requests one instance may serve.
pub const MAX_REQUESTS_ENV: &str = "WWS_REUSE_MAX_REQUESTS";

/// Requests one instance serves before it is replaced, unless the runtime says otherwise.
pub const DEFAULT_MAX_REQUESTS: u64 = 1000;

/// Call frames after which an instance is replaced like one that served `max_requests`: the
/// interpreters' stdin reading fails with "out of memory" after about 16,000 reads (CPython
/// 3.12 around 8,000 fetches, Ruby 3.4 around 15,000), well above this.
const MAX_CALLS: u64 = 2000;

/// Largest call frame accepted beyond the output limit: a request body, base64-encoded.
const MAX_CALL_EXTRA: usize = 64 << 20;

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
    pub wasi: Arc<WasiSpec>,
    /// Outbound HTTP the worker may make through call frames.
    pub http: Option<crate::outbound::Policy>,
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
    instances: usize,
    idle: Mutex<Vec<Live>>,
}

impl Pool {
    /// A pool of up to `instances` live instances; starts one now when inside a tokio runtime.
    /// Its idle instances give up their slots when other instances wait for one (`slots.rs`).
    pub(crate) fn new(template: Template, max_requests: u64, instances: usize) -> Self {
        let instances = instances.max(1);
        let inner = Arc::new(PoolInner {
            template: Arc::new(template),
            max_requests,
            permits: Semaphore::new(instances),
            instances,
            idle: Mutex::new(Vec::with_capacity(instances)),
        });
        let evictor: Weak<PoolInner> = Arc::downgrade(&inner);
        inner.template.engine.slots().register(evictor);
        if tokio::runtime::Handle::try_current().is_ok() {
            let live = Live::start(&inner);
            inner.idle().push(live);
        }
        Self { inner }
    }

    /// Serves one request (`input` is the request JSON) in a live instance; returns the
    /// response JSON. Waits at most the queue timeout for a free instance.
    pub(crate) async fn run(&self, input: Bytes) -> Result<Bytes, RunError> {
        let slots = self.inner.template.engine.slots();
        let acquire = self.inner.permits.acquire();
        let _permit = match tokio::time::timeout(slots.config().queue_timeout, acquire).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_closed)) => return Err(RunError::Busy),
            Err(_elapsed) => {
                slots.refused(Queue::Worker {
                    name: &self.inner.template.name,
                    instances: self.inner.instances,
                });
                return Err(RunError::Busy);
            }
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
                Err(Failed {
                    unread: true,
                    error,
                }) if live.served > 0 && !retried => {
                    let name = &self.inner.template.name;
                    tracing::warn!(worker = %name, "a live instance of worker {name} ended between requests ({error}); the request goes to a fresh instance");
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
    /// booted, else one still booting. Instances that ended while idle are dropped, and so are
    /// retiring ones whose replacement has booted or died (`max_requests` is a promise).
    fn checkout(&self) -> Option<Live> {
        let mut idle = self.idle();
        let dropped: Vec<Live> = extract(&mut idle, |live| !live.usable());
        let pick = idle
            .iter()
            .rposition(|l| l.stdin.booted() && !l.retiring)
            .or_else(|| idle.iter().rposition(|l| l.stdin.booted()))
            .or_else(|| idle.len().checked_sub(1));
        let live = pick.map(|i| idle.remove(i));
        drop(idle);
        drop(dropped);
        live
    }

    /// Whether an idle instance other than a retiring one is ready to serve.
    fn has_ready(&self) -> bool {
        self.idle()
            .iter()
            .any(|l| l.stdin.booted() && !l.retiring && !l.state.ended.load(Ordering::Acquire))
    }
}

impl Evict for PoolInner {
    /// Ends one idle instance that holds a slot: a retiring one first, then one that has
    /// booted, then one still booting.
    fn evict_one(&self) -> bool {
        let mut idle = self.idle();
        let holds = |l: &Live| {
            l.state.has_slot.load(Ordering::Acquire) && !l.state.ended.load(Ordering::Acquire)
        };
        let pick = idle
            .iter()
            .position(|l| holds(l) && l.retiring)
            .or_else(|| idle.iter().position(|l| holds(l) && l.stdin.booted()))
            .or_else(|| idle.iter().position(holds));
        let Some(i) = pick else {
            return false;
        };
        let live = idle.remove(i);
        drop(idle);
        tracing::debug!(worker = %self.template.name, "idle instance evicted: another worker waits for an instance slot");
        drop(live);
        true
    }
}

/// Removes the items `pred` selects, keeping the order of the rest.
fn extract<T>(items: &mut Vec<T>, pred: impl Fn(&T) -> bool) -> Vec<T> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < items.len() {
        if pred(&items[i]) {
            out.push(items.remove(i));
        } else {
            i += 1;
        }
    }
    out
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
    /// recycling never makes a request wait for an interpreter to start. When the replacement
    /// has booted or died, the retiring instance goes. While another instance waits for a
    /// slot, nothing is kept idle: the instance goes, and its slot with it.
    fn give_back(&mut self) {
        let Some(mut live) = self.live.take() else {
            return;
        };
        live.served += 1;
        if self.pool.template.engine.slots().contended() {
            return;
        }
        if live.served < self.pool.max_requests && live.stdin.calls() < MAX_CALLS {
            self.pool.idle().push(live);
            return;
        }
        if !live.retiring {
            live.retiring = true;
            live.successor = self.replace();
        }
        if live.usable() && !self.pool.has_ready() {
            self.pool.idle().push(live);
        }
    }

    /// Starts a replacement in the pool; returns what the retiring instance watches of it.
    fn replace(&self) -> Option<Successor> {
        if tokio::runtime::Handle::try_current().is_err() {
            return None;
        }
        let fresh = Live::start(self.pool);
        let successor = Successor {
            state: fresh.state.clone(),
            stdin: fresh.stdin.clone(),
        };
        self.pool.idle().push(fresh);
        Some(successor)
    }
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        if let Some(live) = self.live.take() {
            // The request was cancelled (client gone) or failed. Dropping the instance stops its
            // guest at the next tick (it must not keep computing on a detached task).
            drop(live);
            if !self.pool.template.engine.slots().contended() {
                self.replace();
            }
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
    /// It has served `max_requests`; it serves on only while `successor` boots.
    retiring: bool,
    successor: Option<Successor>,
    /// Set by the instance's task.
    state: Arc<LiveState>,
}

/// What the instance's task reports to its handle.
#[derive(Default)]
struct LiveState {
    /// The guest has ended (its slot is free or about to be).
    ended: AtomicBool,
    /// The task holds an instance slot.
    has_slot: AtomicBool,
}

/// The replacement a retiring instance waits for.
struct Successor {
    state: Arc<LiveState>,
    stdin: FrameStdin,
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
        let stdin = FrameStdin::default();
        let live = Self {
            stdout: FrameStdout::new(
                limits.max_output_bytes,
                stdin.clone(),
                Calls {
                    policy: t.http.clone(),
                    limit: limits.max_output_bytes,
                },
            ),
            stdin,
            stderr: LogPipe::new(t.name.clone(), limits.max_stderr_bytes),
            budget: Arc::new(Budget::new(ticks_for(&t.engine))),
            exit: Exit::Running(rx),
            served: 0,
            retiring: false,
            successor: None,
            state: Arc::default(),
        };
        let task = Instance {
            template: pool.template.clone(),
            stdin: live.stdin.clone(),
            stdout: live.stdout.clone(),
            stderr: live.stderr.clone(),
            budget: live.budget.clone(),
            state: live.state.clone(),
        };
        let state = live.state.clone();
        let stdin = live.stdin.clone();
        let name = t.name.clone();
        t.engine.spawn_background(async move {
            let result = task.run().await;
            state.ended.store(true, Ordering::Release);
            // A request that waited for this boot logs its own error; a replacement booting
            // in the background has nobody else to say so.
            if let Err(err) = &result
                && !stdin.booted()
                && !matches!(err, RunError::Busy)
            {
                tracing::warn!(worker = %name, "a new instance of worker {name} failed while booting: {err}");
            }
            let _ = tx.send(result);
        });
        live
    }

    /// Whether the instance may serve another request: it has not ended, and if it is
    /// retiring, its replacement is still booting.
    fn usable(&self) -> bool {
        if self.state.ended.load(Ordering::Acquire) {
            return false;
        }
        if !self.retiring {
            return true;
        }
        self.successor
            .as_ref()
            .is_some_and(|s| !s.state.ended.load(Ordering::Acquire) && !s.stdin.booted())
    }

    /// Sends one request frame and waits for its response frame or the instance's end.
    ///
    /// The frame goes in only once the guest blocks reading its next request, so everything it
    /// wrote for earlier requests has been written, and an answer counts only once the guest
    /// has read the whole request: a late or extra answer to an earlier request can never be
    /// taken for this one's (it breaks the framing and the instance is discarded).
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
        let result = tokio::select! {
            biased;
            () = self.stdin.reading() => None,
            result = &mut *rx => Some(result.unwrap_or_else(|_| Err(ended()))),
        };
        if let Some(result) = result {
            self.exit = Exit::Ended;
            return Err(Failed {
                error: result.err().unwrap_or_else(ended),
                unread: true,
            });
        }
        let (tx, mut frame) = oneshot::channel();
        self.stderr.reset();
        self.budget.reset(ticks_for(&t.engine));
        // The answer's waiter is in place before the guest can see the request.
        let end = self.stdin.pushed() + frame_len(input.len());
        self.stdout.expect(tx, end);
        let start = self.stdin.push_frame(input);
        let rx = match &mut self.exit {
            Exit::Running(rx) => rx,
            Exit::Ended => unreachable!("checked above"),
        };
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
        // The guest may have read past `end`: the answers to its call frames.
        Err(Failed {
            error: result.err().unwrap_or_else(ended),
            unread: self.stdin.consumed() <= start,
        })
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // End of stdin ends the guest's loop; its task then drops the store and frees the
        // slot. A guest still computing gets no more CPU and stops at its next tick.
        self.stdin.close();
        self.budget.stop();
    }
}

/// Bytes a request frame of a `len`-byte payload takes on the guest's stdin.
fn frame_len(len: usize) -> u64 {
    (len.to_string().len() + 1 + len) as u64
}

fn ended() -> RunError {
    RunError::Trap(anyhow::anyhow!(
        "the worker's instance ended without answering the request (its wrapper must loop over framed requests while WWS_REUSE=1)"
    ))
}

fn ticks_for(engine: &Engine) -> u64 {
    engine.limits().budget_ticks(EPOCH_TICK)
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
    state: Arc<LiveState>,
}

impl Instance {
    async fn run(self) -> Result<(), RunError> {
        let t = &self.template;
        // Held until the store is gone, whatever way the guest ends.
        let _slot = t.engine.slots().acquire(1).await?;
        if self.stdin.is_closed() {
            // Evicted or discarded while it waited for the slot: nobody will send it a request.
            return Ok(());
        }
        self.state.has_slot.store(true, Ordering::Release);
        let mut builder = match t.wasi.builder() {
            Ok(builder) => builder,
            Err(err) => return Err(RunError::Trap(err)),
        };
        builder
            .stdin(self.stdin.clone())
            .stdout(SinkStream(self.stdout.clone()))
            .stderr(SinkStream(self.stderr.clone()));
        // Guests that import `wws_http` (the JS engine) use it directly; interpreters use call
        // frames. Either way under the same policy.
        let data = CoreHost::new(
            RequestWasi::with_context(t.wasi.clone(), builder.build_p1()),
            t.engine.limits(),
            t.http.clone(),
        );
        let mut store = Store::new(t.engine.wasmtime(), data);
        store.limiter(|h| &mut h.limits);
        store.set_epoch_deadline(1);
        let budget = self.budget.clone();
        store.epoch_deadline_callback(move |_| Ok(budget.tick()));
        let outcome = async {
            let instance = t.pre.instantiate_async(&mut store).await?;
            let memory = instance.get_memory(&mut store, "memory");
            store.data_mut().wasi.set_memory(memory);
            match &t.driver {
                Driver::Command => {
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await
                }
                Driver::Ruby { script, exports } => {
                    ruby::run(&mut store, &instance, exports, t.wasi.args(), script).await
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
    /// The guest asked for input since the last frame and found none: it is blocked reading,
    /// so it has finished everything it had to write.
    reading: bool,
    wakers: Vec<Waker>,
    /// The host waiting for `reading`.
    host_wakers: Vec<Waker>,
    /// Call frames whose answers are not queued yet, and where the last answer queued ends.
    answers_due: usize,
    answers_end: u64,
    /// Call frames made so far (see [`MAX_CALLS`]).
    calls: u64,
}

impl FrameStdin {
    fn lock(&self) -> MutexGuard<'_, StdinState> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `<len>\n<payload>`; returns the stream offset where the frame starts.
    fn push_frame(&self, payload: Bytes) -> u64 {
        self.lock().push_frame(payload)
    }

    /// A call frame was placed: its answer will be queued with [`Self::push_answer`].
    fn call_placed(&self) {
        let mut st = self.lock();
        st.answers_due += 1;
        st.calls += 1;
    }

    /// Queues the answer to a call frame; the guest cannot see it before it counts as queued.
    fn push_answer(&self, payload: Bytes) {
        let mut st = self.lock();
        st.push_frame(payload);
        st.answers_due -= 1;
        st.answers_end = st.answers_end.max(st.pushed);
    }

    /// Call frames the guest made in its life.
    fn calls(&self) -> u64 {
        self.lock().calls
    }

    /// Whether the guest has read the answer of every call it made: only then may it answer
    /// its request, or the next request would read a stale answer as its input.
    fn answers_read(&self) -> bool {
        let st = self.lock();
        st.answers_due == 0 && st.consumed >= st.answers_end
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

    /// Bytes pushed so far: the offset where the next frame starts.
    fn pushed(&self) -> u64 {
        self.lock().pushed
    }

    fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Resolves once the guest is blocked reading with nothing pending.
    async fn reading(&self) {
        std::future::poll_fn(|cx| {
            let mut st = self.lock();
            if st.reading && st.chunks.is_empty() {
                return Poll::Ready(());
            }
            if !st.host_wakers.iter().any(|w| w.will_wake(cx.waker())) {
                st.host_wakers.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await;
    }

    /// Takes up to `size` bytes; `None` when nothing is pending and the stream is open.
    fn take(&self, size: usize) -> Option<Bytes> {
        let mut st = self.lock();
        let Some(front) = st.chunks.front_mut() else {
            st.set_reading();
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
        st.set_reading();
        if !st.wakers.iter().any(|w| w.will_wake(cx.waker())) {
            st.wakers.push(cx.waker().clone());
        }
        Poll::Pending
    }
}

impl StdinState {
    /// Queues `<len>\n<payload>`; returns the stream offset where the frame starts.
    fn push_frame(&mut self, payload: Bytes) -> u64 {
        let header = Bytes::from(format!("{}\n", payload.len()));
        let start = self.pushed;
        self.pushed += (header.len() + payload.len()) as u64;
        self.reading = false;
        self.chunks.push_back(header);
        if !payload.is_empty() {
            self.chunks.push_back(payload);
        }
        for w in self.wakers.drain(..) {
            w.wake();
        }
        start
    }

    /// The guest found nothing to read.
    fn set_reading(&mut self) {
        self.asked = true;
        if !self.reading {
            self.reading = true;
            for w in self.host_wakers.drain(..) {
                w.wake();
            }
        }
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
    /// The frame being read is a call frame (`H<len>`), not a response.
    call: bool,
    calls: Calls,
    waiter: Option<Waiter>,
    failure: Option<FrameError>,
    /// The guest's stdin: an answer counts only once the whole request has been read.
    stdin: FrameStdin,
}

/// The request waiting for the next frame, and the stdin offset the guest must have read up
/// to (the end of that request's frame) before its answer can be the request's.
struct Waiter {
    tx: oneshot::Sender<Bytes>,
    request_end: u64,
}

impl FrameStdout {
    fn new(max: usize, stdin: FrameStdin, calls: Calls) -> Self {
        Self {
            shared: Arc::new(Mutex::new(StdoutState::new(max, stdin, calls))),
        }
    }

    fn lock(&self) -> MutexGuard<'_, StdoutState> {
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next complete frame goes to `tx`, if the guest has read up to `request_end` by then.
    fn expect(&self, tx: oneshot::Sender<Bytes>, request_end: u64) {
        self.lock().waiter = Some(Waiter { tx, request_end });
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
    fn new(max: usize, stdin: FrameStdin, calls: Calls) -> Self {
        Self {
            max,
            header: Vec::new(),
            body: None,
            call: false,
            calls,
            waiter: None,
            failure: None,
            stdin,
        }
    }

    fn parse(&mut self, bytes: &mut &[u8]) -> Result<(), FrameError> {
        while !bytes.is_empty() {
            match &mut self.body {
                None => {
                    let byte = bytes[0];
                    *bytes = &bytes[1..];
                    if byte == b'\n' {
                        self.call = self.header.first() == Some(&CALL_MARK);
                        let digits = &self.header[usize::from(self.call)..];
                        let len = std::str::from_utf8(digits)
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
                        let max = if self.call {
                            self.max.saturating_add(MAX_CALL_EXTRA)
                        } else {
                            self.max
                        };
                        if len > max {
                            return Err(FrameError::TooLarge);
                        }
                        // The guest announced `len`; grow as bytes arrive instead of trusting it.
                        self.body = Some((len, BytesMut::with_capacity(len.min(64 << 10))));
                    } else if (byte.is_ascii_digit()
                        || (byte == CALL_MARK && self.header.is_empty()))
                        && self.header.len() < MAX_HEADER
                    {
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
                if self.call {
                    self.call = false;
                    self.place_call(frame)?;
                    continue;
                }
                let Some(waiter) = self.waiter.take() else {
                    return Err(FrameError::Protocol(
                        "the worker wrote a response frame while no request was pending (a late or second answer?)".into(),
                    ));
                };
                if self.stdin.consumed() < waiter.request_end {
                    return Err(FrameError::Protocol(
                        "the worker wrote a response frame before reading the whole request (an answer to an earlier request?)".into(),
                    ));
                }
                if !self.stdin.answers_read() {
                    return Err(FrameError::Protocol(
                        "the worker wrote a response frame before reading the answer to its outbound request".into(),
                    ));
                }
                // The request may have gone (client disconnected); the frame is then dropped.
                let _ = waiter.tx.send(frame);
            }
        }
        Ok(())
    }
}

impl StdoutState {
    /// A complete call frame: performed on a task of its own, its answer queued on the guest's
    /// stdin as a `<len>\n<json>` frame, which the guest reads next. Only while a request is
    /// in flight and read: a call belongs to the request that made it.
    fn place_call(&mut self, request: Bytes) -> Result<(), FrameError> {
        let in_flight = self
            .waiter
            .as_ref()
            .is_some_and(|w| self.stdin.consumed() >= w.request_end);
        if !in_flight && !self.stdin.booted() {
            // At the worker's top level, as it loads: refused, and the worker goes on.
            self.stdin.call_placed();
            self.stdin.push_answer(Bytes::from_static(
                br#"{"error":"not-available","message":"outbound HTTP is not available while the worker loads: make the request inside worker(req)"}"#,
            ));
            return Ok(());
        }
        if !in_flight {
            return Err(FrameError::Protocol(
                "the worker wrote a call frame while no request it had read was pending".into(),
            ));
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(FrameError::Protocol(
                "a call frame outside the server's runtime".into(),
            ));
        };
        let calls = self.calls.clone();
        let stdin = self.stdin.clone();
        stdin.call_placed();
        drop(runtime.spawn(async move {
            let answer =
                crate::outbound::answer(calls.policy.as_deref(), &request, calls.limit).await;
            stdin.push_answer(Bytes::from(answer));
        }));
        Ok(())
    }
}

/// What a live instance may ask the host for with call frames: outbound HTTP.
#[derive(Clone)]
struct Calls {
    policy: Option<crate::outbound::Policy>,
    /// Largest response body accepted.
    limit: usize,
}

/// First byte of a call frame's header (`H<len>\n<json>`), where a response frame has a digit.
const CALL_MARK: u8 = b'H';

impl Sink for FrameStdout {
    fn accept(&self, bytes: &[u8]) -> StreamResult<()> {
        self.push(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Frames parsed with no outbound HTTP allowed.
    fn state(max: usize, stdin: FrameStdin) -> StdoutState {
        let calls = Calls {
            policy: None,
            limit: max,
        };
        StdoutState::new(max, stdin, calls)
    }

    #[test]
    fn a_call_frame_between_requests_breaks_the_framing_and_one_while_loading_is_refused() {
        // While the worker loads (it has not asked for a request yet): a refusal to read.
        let stdin = FrameStdin::default();
        let mut st = state(100, stdin.clone());
        let mut bytes: &[u8] = b"H2\n{}";
        st.parse(&mut bytes).unwrap();
        let header = stdin.take(100).unwrap();
        let answer = stdin.take(1000).unwrap();
        assert_eq!(header, format!("{}\n", answer.len()));
        assert!(String::from_utf8_lossy(&answer).contains("not-available"));
        // Once it waits for requests, a call outside one is out of turn.
        let stdin = FrameStdin::default();
        assert!(
            stdin.take(10).is_none(),
            "nothing pending: the guest now waits"
        );
        let mut st = state(100, stdin);
        let mut bytes: &[u8] = b"H2\n{}";
        assert!(matches!(st.parse(&mut bytes), Err(FrameError::Protocol(_))));
        // `H` is a call mark only at the start of a header.
        let mut st = state(100, FrameStdin::default());
        let mut bytes: &[u8] = b"2H\n{}";
        assert!(matches!(st.parse(&mut bytes), Err(FrameError::Protocol(_))));
    }

    #[tokio::test]
    async fn a_call_is_answered_on_stdin_and_the_response_frame_still_answers_the_request() {
        let stdin = FrameStdin::default();
        let mut st = state(1000, stdin.clone());
        let payload = Bytes::from("{}");
        let end = stdin.pushed() + frame_len(payload.len());
        let (tx, mut rx) = oneshot::channel();
        st.waiter = Some(Waiter {
            tx,
            request_end: end,
        });
        stdin.push_frame(payload);
        assert_eq!(stdin.take(100).as_deref(), Some(&b"2\n"[..]));
        assert_eq!(stdin.take(100).as_deref(), Some(&b"{}"[..]));
        let call = br#"{"method":"GET","url":"https://example.com/"}"#;
        let mut bytes: &[u8] = &[format!("H{}\n", call.len()).as_bytes(), call].concat();
        st.parse(&mut bytes).unwrap();
        // No policy: the answer is a refusal that names the setting, as a plain frame.
        std::future::poll_fn(|cx| stdin.poll_ready(cx)).await;
        let header = stdin.take(100).unwrap();
        let answer = stdin.take(1000).unwrap();
        assert_eq!(header, format!("{}\n", answer.len()));
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.contains("not-allowed") && answer.contains("http_requests"),
            "{answer}"
        );
        let mut bytes: &[u8] = b"2\n{}";
        st.parse(&mut bytes).unwrap();
        assert_eq!(rx.try_recv().unwrap(), Bytes::from("{}"));
    }

    #[tokio::test]
    async fn a_response_before_the_call_was_answered_and_read_breaks_the_framing() {
        let stdin = FrameStdin::default();
        let mut st = state(1000, stdin.clone());
        let (tx, _rx) = oneshot::channel();
        st.waiter = Some(Waiter { tx, request_end: 0 });
        let call = br#"{"method":"GET","url":"https://example.com/"}"#;
        let mut bytes: &[u8] = &[format!("H{}\n", call.len()).as_bytes(), call, b"2\n{}"].concat();
        assert!(
            matches!(st.parse(&mut bytes), Err(FrameError::Protocol(m)) if m.contains("outbound"))
        );
    }

    fn frames(max: usize, chunks: &[&[u8]]) -> (Result<(), FrameError>, Vec<Bytes>) {
        let mut st = state(max, FrameStdin::default());
        let mut got = Vec::new();
        let mut rx = None;
        for chunk in chunks {
            if st.waiter.is_none() && st.body.is_none() && st.header.is_empty() {
                let (tx, r) = oneshot::channel();
                st.waiter = Some(Waiter { tx, request_end: 0 });
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
        let mut st = state(100, FrameStdin::default());
        let mut bytes: &[u8] = b"2\n{}";
        assert!(matches!(st.parse(&mut bytes), Err(FrameError::Protocol(_))));
    }

    #[test]
    fn an_answer_before_the_whole_request_was_read_is_refused() {
        let stdin = FrameStdin::default();
        let mut st = state(100, stdin.clone());
        let payload = Bytes::from("{\"n\":1}");
        let end = stdin.pushed() + frame_len(payload.len());
        let (tx, mut rx) = oneshot::channel();
        st.waiter = Some(Waiter {
            tx,
            request_end: end,
        });
        let start = stdin.push_frame(payload);
        assert_eq!(start, 0);
        // The guest read the header only, then "answered": that answer is not this request's.
        assert_eq!(stdin.take(3).as_deref(), Some(&b"7\n"[..]));
        let mut bytes: &[u8] = b"2\n{}";
        assert!(matches!(st.parse(&mut bytes), Err(FrameError::Protocol(_))));
        assert!(rx.try_recv().is_err());
        // Once it has read the whole request, its answer goes through.
        let (tx, mut rx) = oneshot::channel();
        st.waiter = Some(Waiter {
            tx,
            request_end: end,
        });
        assert_eq!(stdin.take(100).as_deref(), Some(&b"{\"n\":1}"[..]));
        assert_eq!(stdin.consumed(), end);
        let mut bytes: &[u8] = b"2\n{}";
        assert!(st.parse(&mut bytes).is_ok());
        assert_eq!(rx.try_recv().unwrap(), Bytes::from("{}"));
    }

    #[tokio::test]
    async fn reading_resolves_only_while_the_guest_waits_with_nothing_pending() {
        let stdin = FrameStdin::default();
        let ready = |stdin: &FrameStdin| poll_once(stdin.reading());
        // Booting: it has not asked yet.
        assert!(!ready(&stdin));
        assert!(stdin.take(10).is_none());
        assert!(ready(&stdin));
        stdin.push_frame(Bytes::from("{}"));
        assert!(!ready(&stdin));
        assert_eq!(stdin.take(10).as_deref(), Some(&b"2\n"[..]));
        assert_eq!(stdin.take(10).as_deref(), Some(&b"{}"[..]));
        // Read the frame but has not asked for the next one: still busy with it.
        assert!(!ready(&stdin));
        assert!(stdin.take(10).is_none());
        assert!(ready(&stdin));
    }

    /// Polls `fut` once; true when it was ready.
    fn poll_once(fut: impl std::future::Future<Output = ()>) -> bool {
        let mut fut = std::pin::pin!(fut);
        let mut cx = std::task::Context::from_waker(Waker::noop());
        fut.as_mut().poll(&mut cx).is_ready()
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
