//! Serving threads, one per CPU. Each runs a single-threaded tokio runtime, pinned to its CPU
//! where the system allows it, and serves the connections whose packets arrive on that CPU.
//!
//! Why: on a work-stealing runtime a connection's task runs wherever a worker is free, so the
//! kernel's network work for a request (on one CPU) and the worker run (on another) keep
//! waking each other across CPUs. Every such wakeup is an inter-processor interrupt, and in a
//! virtual machine each one is a costly exit to the hypervisor. Keeping a connection on the
//! CPU its packets arrive at (`SO_INCOMING_CPU`) makes those wakeups local. Measured on a
//! 2-vCPU VM with `wrk -c32` on the same machine: the raw Rust hello served 45-50k requests/s
//! on the work-stealing runtime and 72-75k here; the JS hello 14.0-14.8k and 17.3-17.8k.
//!
//! Each thread sends what its connections wrote in one batch when it runs out of work
//! (`outbox.rs`).
//!
//! The trade-off: a connection stays on its thread (until its client moves to another CPU,
//! see [`Follow`]), and the other connections of a thread wait while it runs a guest. A run that yields (past an epoch tick, or waiting for anything)
//! moves to the work-stealing runtime for the rest (`wws_worker`'s `offload.rs`), so a long
//! guest holds its thread for one tick at most; a new connection goes to the least busy thread
//! when its own CPU's thread has far more connections than that one.
//! Without a CPU limit guests do not yield, so then, with a reuse-mode worker (whose live
//! instances run on the work-stealing runtime) and with `WWS_PER_CORE=0`, every connection
//! is served on the shared work-stealing runtime instead (`wws` decides, see its serve command).

use std::future::Future;
use std::io;
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::outbox::{self, Held, MAX_HELD};

/// Environment variable that turns per-core serving off (`0`) or on (`1`, the default).
const PER_CORE_ENV: &str = "WWS_PER_CORE";

/// Environment variable that turns batched sends (`outbox.rs`) off (`0`) or on (`1`, the
/// default) for per-core serving.
const BATCH_SENDS_ENV: &str = "WWS_BATCH_SENDS";

/// How many times a connection waits for data (about twice per request) between two checks of
/// the CPU its packets arrive at: often enough to follow a client that moved within a few
/// requests, rare enough that the check (one `getsockopt`) costs nothing measurable.
const CHECK_EVERY: u32 = 8;

/// How connections are served.
#[derive(Clone, Copy, Debug)]
pub struct Serving {
    /// On one thread per CPU (this module), or on the work-stealing runtime.
    pub per_core: bool,
    /// Per core, what a thread's connections write is sent in batches (`outbox.rs`).
    pub batch_sends: bool,
}

impl Serving {
    /// From [`PER_CORE_ENV`] and [`BATCH_SENDS_ENV`], both on by default; a value other than
    /// `0` or `1` is an error naming the variable.
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            per_core: switch(PER_CORE_ENV)?,
            batch_sends: switch(BATCH_SENDS_ENV)?,
        })
    }
}

/// An on/off environment variable: on when unset.
fn switch(name: &str) -> anyhow::Result<bool> {
    match std::env::var(name).as_deref().map(str::trim) {
        Err(_) | Ok("1") => Ok(true),
        Ok("0") => Ok(false),
        Ok(other) => anyhow::bail!("{name}={other:?} must be 0 (off) or 1 (on)"),
    }
}

/// The serving threads.
pub(crate) struct Cores {
    lanes: Arc<[Lane]>,
    threads: Vec<Thread>,
}

/// What connections need of a serving thread: where to run, and how busy it is.
struct Lane {
    handle: Handle,
    /// The CPU whose connections it takes: it is pinned there, unless the system refused
    /// (logged at debug level).
    cpu: Option<usize>,
    /// Connections it is serving.
    open: AtomicUsize,
}

/// A serving thread itself.
struct Thread {
    /// Dropping it lets the thread's runtime stop.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// A connection's future, moved whole from one serving thread to another.
type Connection = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Where a connection's future should run next: [`STAY`], or the lane its socket moved to.
type Hop = Arc<AtomicUsize>;
const STAY: usize = usize::MAX;

impl Cores {
    /// One thread per CPU this process may use, or `None` on a single CPU. With
    /// `batch_sends`, each sends its connections' writes in batches.
    pub(crate) fn for_this_machine(batch_sends: bool) -> anyhow::Result<Option<Self>> {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        if count < 2 {
            return Ok(None);
        }
        let cpus = allowed_cpus();
        // Pin only when the threads take every CPU the process may use: under a CPU quota
        // smaller than that set, pinned threads could not move to the idle ones.
        let pin = cpus.len() == count;
        // No runtime shuts down before every thread has stopped polling: a connection that
        // moved may still wait on a timer of the thread it came from.
        let stopped = Arc::new(std::sync::Barrier::new(count));
        let (lanes, threads): (Vec<_>, Vec<_>) = (0..count)
            .map(|i| start(i, pin.then(|| cpus[i]), batch_sends, stopped.clone()))
            .collect::<anyhow::Result<Vec<_>>>()?
            .into_iter()
            .unzip();
        tracing::debug!(
            threads = count,
            pinned = pin,
            "serving connections on one thread per CPU"
        );
        Ok(Some(Self {
            lanes: lanes.into(),
            threads,
        }))
    }

    /// Serves `stream` on the thread of the CPU its packets arrive at, or on the least busy
    /// thread when that one is far busier or unknown. `serve` runs on the chosen thread; the
    /// connection moves to another thread later when its packets start arriving elsewhere
    /// (see [`Follow`]).
    pub(crate) fn spawn<F>(&self, stream: std::net::TcpStream, serve: impl FnOnce(Follow) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let incoming = incoming_cpu(&stream);
        let at = pick(&self.lanes, incoming);
        tracing::trace!(?incoming, serving = ?self.lanes[at].cpu, "new connection");
        let registered = {
            // Registered with the reactor of the thread that serves it.
            let _on = self.lanes[at].handle.enter();
            tokio::net::TcpStream::from_std(stream)
        };
        let stream = match registered {
            Ok(stream) => stream,
            Err(err) => return tracing::warn!("cannot serve a connection: {err}"),
        };
        self.lanes[at].open.fetch_add(1, Relaxed);
        let hop = Hop::new(AtomicUsize::new(STAY));
        let follow = Follow {
            held: Held::new(stream.as_raw_fd()),
            stream,
            lanes: self.lanes.clone(),
            at,
            waits: 0,
            hop: hop.clone(),
        };
        run_on(self.lanes.clone(), at, Box::pin(serve(follow)), hop);
    }
}

/// Runs `connection` on lane `at` until it ends, or until its socket moved to another lane,
/// where it then goes on.
fn run_on(lanes: Arc<[Lane]>, at: usize, mut connection: Connection, hop: Hop) {
    let handle = lanes[at].handle.clone();
    drop(handle.spawn(async move {
        let moved = std::future::poll_fn(|cx| match connection.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => match hop.load(Relaxed) {
                STAY => Poll::Pending,
                to => {
                    hop.store(STAY, Relaxed);
                    Poll::Ready(Some(to))
                }
            },
        })
        .await;
        if let Some(to) = moved {
            tracing::trace!(to = ?lanes[to].cpu, "connection moved to its CPU's thread");
            // Polled there at once, so everything it waits for registers its new waker. Tokio
            // timers it armed stay with the thread that made them (they still wake it here).
            run_on(lanes, to, connection, hop);
        }
    }));
}

/// The thread for a new connection that arrived at `cpu`.
fn pick(lanes: &[Lane], cpu: Option<usize>) -> usize {
    choose(&open_counts(lanes), local_lane(lanes, cpu))
}

/// How many connections each lane serves.
fn open_counts(lanes: &[Lane]) -> Vec<usize> {
    lanes.iter().map(|l| l.open.load(Relaxed)).collect()
}

/// The lane of `cpu`, if a thread is pinned there.
fn local_lane(lanes: &[Lane], cpu: Option<usize>) -> Option<usize> {
    cpu.and_then(|cpu| lanes.iter().position(|l| l.cpu == Some(cpu)))
}

/// The thread for a new connection, given the connections each thread serves and the thread
/// of the CPU the connection arrived at: that one, unless it serves more than twice (and a
/// few more than) the least busy thread, which is taken then.
fn choose(open: &[usize], local: Option<usize>) -> usize {
    let least = (0..open.len()).min_by_key(|&i| open[i]).unwrap_or(0);
    match local {
        Some(i) if open[i] <= 2 * open[least] + 4 => i,
        _ => least,
    }
}

/// Whether a connection served by thread `at` moves to `local`, the thread of the CPU its
/// packets now arrive at: by the same rule as a new connection, counting it as new.
fn moves(open: &[usize], at: usize, local: usize) -> bool {
    let mut open = open.to_vec();
    open[at] = open[at].saturating_sub(1);
    local != at && choose(&open, Some(local)) == local
}

/// A connection's socket, registered with the reactor of the thread serving it.
///
/// Clients move between CPUs (and a new connection's first packets can arrive on a CPU its
/// client leaves soon after), so where a connection's packets arrive is checked again while
/// it waits for a request. When they arrive at another thread's CPU, the socket re-registers
/// with that thread's reactor and the connection's future moves there: once misplaced, every
/// request would otherwise wake a thread across CPUs (measured: the raw Rust hello served
/// 46-55k requests/s with a third of its connections misplaced, 62-84k without).
pub(crate) struct Follow {
    stream: tokio::net::TcpStream,
    lanes: Arc<[Lane]>,
    /// The lane serving it (counted in that lane's `open`).
    at: usize,
    /// Reads that found nothing to read (the connection waits for a request).
    waits: u32,
    hop: Hop,
    /// What it wrote that its thread has not sent yet (see `outbox.rs`).
    held: Arc<Held>,
}

impl Follow {
    /// Called while the connection waits for data: every [`CHECK_EVERY`] waits, moves to the
    /// thread of the CPU its packets arrive at, when that is another one.
    fn waiting(&mut self) {
        self.waits = self.waits.wrapping_add(1);
        if !self.waits.is_multiple_of(CHECK_EVERY) {
            return;
        }
        let Some(local) = local_lane(&self.lanes, incoming_cpu(&self.stream)) else {
            return;
        };
        if !moves(&open_counts(&self.lanes), self.at, local) {
            return;
        }
        // The move itself is logged where the connection's future lands (`run_on`).
        if let Err(err) = self.register_on(local) {
            tracing::debug!("a connection cannot move to its CPU's thread: {err}");
        }
    }

    /// Re-registers the socket with lane `to`'s reactor and tells the connection to move.
    fn register_on(&mut self, to: usize) -> io::Result<()> {
        let socket = std::net::TcpStream::from(self.stream.as_fd().try_clone_to_owned()?);
        let stream = {
            let _on = self.lanes[to].handle.enter();
            tokio::net::TcpStream::from_std(socket)?
        };
        // The old registration (and its copy of the descriptor) goes with the old stream.
        self.held.lock().fd = stream.as_raw_fd();
        self.stream = stream;
        self.lanes[self.at].open.fetch_sub(1, Relaxed);
        self.lanes[to].open.fetch_add(1, Relaxed);
        self.at = to;
        self.hop.store(to, Relaxed);
        Ok(())
    }
}

impl Follow {
    /// Sends what is held on this connection itself, waiting for the socket when it is full.
    fn poll_send_held(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut held = self.held.lock();
        if let Some(err) = held.error.take() {
            return Poll::Ready(Err(err));
        }
        while !held.bytes.is_empty() {
            let sent = std::task::ready!(Pin::new(&mut self.stream).poll_write(cx, &held.bytes))?;
            if sent == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            held.bytes.drain(..sent);
        }
        held.blocked = false;
        Poll::Ready(Ok(()))
    }

    /// Holds a small write for the thread's next batched send, after what is held already;
    /// `None` when the write must go to the socket itself.
    fn poll_hold(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<Option<io::Result<usize>>> {
        let len: usize = bufs.iter().map(|b| b.len()).sum();
        if len > MAX_HELD || !outbox::available() {
            // Too large to copy (or nowhere to hold it): what is held goes first.
            return self.poll_send_held(cx).map(|sent| sent.err().map(Err));
        }
        let must_send = {
            let held = self.held.lock();
            held.must_send() || held.bytes.len() + len > MAX_HELD
        };
        if must_send {
            std::task::ready!(self.poll_send_held(cx))?;
        }
        let held = &self.held;
        let mut state = held.lock();
        for buf in bufs {
            state.bytes.extend_from_slice(buf);
        }
        if !state
            .waker
            .as_ref()
            .is_some_and(|w| w.will_wake(cx.waker()))
        {
            state.waker = Some(cx.waker().clone());
        }
        outbox::queue(held, &mut state);
        drop(state);
        outbox::send_if_due();
        Poll::Ready(Some(Ok(len)))
    }
}

impl Drop for Follow {
    fn drop(&mut self) {
        self.lanes[self.at].open.fetch_sub(1, Relaxed);
        let bytes = std::mem::take(&mut self.held.lock().bytes);
        if !bytes.is_empty() {
            self.finish_later(bytes);
        }
    }
}

/// How long a connection hyper dropped may take to accept the bytes it still held.
const FINISH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Follow {
    /// Hyper dropped the connection without a shutdown (a header-read timeout, an error, a
    /// cancelled task) while bytes it wrote were held: to hyper that response was flushed, so
    /// a task of its own sends the rest, for at most [`FINISH_TIMEOUT`], on a copy of the
    /// socket's descriptor, and then closes it.
    fn finish_later(&self, bytes: Vec<u8>) {
        let stream = Handle::try_current()
            .map_err(io::Error::other)
            .and_then(|handle| {
                let socket = std::net::TcpStream::from(self.stream.as_fd().try_clone_to_owned()?);
                let _on = handle.enter();
                Ok((handle.clone(), tokio::net::TcpStream::from_std(socket)?))
            });
        let (handle, mut stream) = match stream {
            Ok(stream) => stream,
            Err(err) => {
                return tracing::debug!("a dropped connection's last bytes are lost: {err}");
            }
        };
        drop(handle.spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            let sent = tokio::time::timeout(FINISH_TIMEOUT, stream.write_all(&bytes)).await;
            if !matches!(sent, Ok(Ok(()))) {
                tracing::debug!("a dropped connection's client did not take its last bytes");
            }
        }));
    }
}

impl AsyncRead for Follow {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        outbox::send_if_due();
        let must_send = {
            let mut held = this.held.lock();
            if !held.settled() && !held.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                // A connection that moved to another thread (a new task) while its bytes wait
                // in the old thread's queue is woken here if that send finds the socket full.
                held.waker = Some(cx.waker().clone());
            }
            held.must_send()
        };
        if must_send {
            // A batched send found the socket full: the rest goes before anything else.
            if let Poll::Ready(Err(err)) = this.poll_send_held(cx) {
                return Poll::Ready(Err(err));
            }
        }
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if polled.is_pending() {
            this.waiting();
        }
        polled
    }
}

impl AsyncWrite for Follow {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match std::task::ready!(this.poll_hold(cx, &[io::IoSlice::new(buf)])) {
            Some(held) => Poll::Ready(held),
            None => Pin::new(&mut this.stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match std::task::ready!(this.poll_hold(cx, bufs)) {
            Some(held) => Poll::Ready(held),
            None => Pin::new(&mut this.stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    /// Held bytes count as flushed: the thread sends them before it waits for anything. Only
    /// when a batched send could not take them all does the connection wait to send the rest.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.held.lock().must_send() {
            std::task::ready!(this.poll_send_held(cx))?;
        }
        Pin::new(&mut this.stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        std::task::ready!(this.poll_send_held(cx))?;
        Pin::new(&mut this.stream).poll_shutdown(cx)
    }
}

impl Drop for Cores {
    /// Stops every thread's runtime (tasks still running are dropped) and waits for them.
    fn drop(&mut self) {
        for thread in &mut self.threads {
            drop(thread.stop.take());
        }
        for thread in &mut self.threads {
            if let Some(thread) = thread.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

/// Starts serving thread `index`, pinned to `cpu` when given and allowed. Once told to stop,
/// it shuts its runtime down after every thread passed `all_stopped`.
fn start(
    index: usize,
    cpu: Option<usize>,
    batch_sends: bool,
    all_stopped: Arc<std::sync::Barrier>,
) -> anyhow::Result<(Lane, Thread)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(outbox::flush)
        .build()
        .map_err(|err| anyhow::anyhow!("cannot start a serving thread's runtime: {err}"))?;
    let handle = runtime.handle().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name(format!("wws-core-{index}"))
        .spawn(move || {
            let cpu = cpu.filter(|&cpu| pin_current_thread(cpu));
            if batch_sends {
                outbox::install();
            } else {
                tracing::debug!(
                    "batched sends are off ({BATCH_SENDS_ENV}=0): responses are written one by one"
                );
            }
            if cpu.is_none() {
                tracing::debug!("serving thread {index} is not pinned to a CPU");
            }
            runtime.block_on(async {
                let _ = stopped.await;
            });
            all_stopped.wait();
            runtime.shutdown_background();
        })
        .map_err(|err| anyhow::anyhow!("cannot start a serving thread: {err}"))?;
    let lane = Lane {
        handle,
        cpu,
        open: AtomicUsize::new(0),
    };
    let thread = Thread {
        stop: Some(stop),
        thread: Some(thread),
    };
    Ok((lane, thread))
}

/// The CPUs this process may run on, in order.
#[cfg(target_os = "linux")]
fn allowed_cpus() -> Vec<usize> {
    match rustix::thread::sched_getaffinity(None) {
        Ok(set) => (0..rustix::thread::CpuSet::MAX_CPU)
            .filter(|&cpu| set.is_set(cpu))
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(not(target_os = "linux"))]
fn allowed_cpus() -> Vec<usize> {
    Vec::new()
}

/// Pins the calling thread to `cpu`; false when the system refuses.
#[cfg(target_os = "linux")]
fn pin_current_thread(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

#[cfg(not(target_os = "linux"))]
fn pin_current_thread(_cpu: usize) -> bool {
    false
}

/// The CPU that last handled the connection's packets.
#[cfg(target_os = "linux")]
fn incoming_cpu(stream: &impl std::os::fd::AsFd) -> Option<usize> {
    rustix::net::sockopt::socket_incoming_cpu(stream)
        .ok()
        .and_then(|cpu| usize::try_from(cpu).ok())
}

#[cfg(not(target_os = "linux"))]
fn incoming_cpu(_stream: &impl std::os::fd::AsFd) -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::{choose, moves};

    #[test]
    fn a_connection_stays_on_its_cpu_unless_that_thread_is_far_busier() {
        assert_eq!(choose(&[10, 8], Some(0)), 0);
        assert_eq!(choose(&[10, 8], Some(1)), 1);
        assert_eq!(choose(&[20, 8], Some(0)), 0);
        assert_eq!(choose(&[21, 8], Some(0)), 1, "far busier: the least busy");
    }

    #[test]
    fn a_connection_follows_its_packets_unless_that_thread_is_far_busier() {
        assert!(moves(&[5, 5], 0, 1));
        assert!(!moves(&[5, 5], 1, 1), "already there");
        assert!(moves(&[4, 9], 0, 1), "9 <= 2 * (4 - 1) + 4");
        assert!(!moves(&[3, 10], 0, 1), "far busier than what it leaves");
    }

    #[test]
    fn an_unknown_cpu_goes_to_the_least_busy_thread() {
        assert_eq!(choose(&[3, 1, 2], None), 1);
        assert_eq!(choose(&[0, 0], None), 0);
    }
}
