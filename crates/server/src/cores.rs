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
//! The trade-off: a connection stays on its thread, and the other connections of a thread
//! wait while it runs a guest. A run that yields (past an epoch tick, or waiting for anything)
//! moves to the work-stealing runtime for the rest (`wws_worker`'s `offload.rs`), so a long
//! guest holds its thread for one tick at most; a new connection goes to the least busy thread
//! when its own CPU's thread has far more connections than that one.
//! Without a CPU limit guests do not yield, so then, with a reuse-mode worker (whose live
//! instances run on the work-stealing runtime) and with `WWS_PER_CORE=0`, every connection
//! is served on the shared work-stealing runtime instead (`wws` decides, see its serve command).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Environment variable that turns per-core serving off (`0`) or on (`1`, the default).
const PER_CORE_ENV: &str = "WWS_PER_CORE";

/// Whether [`PER_CORE_ENV`] leaves per-core serving on (the default); a value other than `0`
/// or `1` is an error naming the variable.
pub fn per_core_enabled() -> anyhow::Result<bool> {
    match std::env::var(PER_CORE_ENV).as_deref().map(str::trim) {
        Err(_) | Ok("1") => Ok(true),
        Ok("0") => Ok(false),
        Ok(other) => anyhow::bail!("{PER_CORE_ENV}={other:?} must be 0 (off) or 1 (on)"),
    }
}

/// The serving threads.
pub(crate) struct Cores {
    cores: Vec<Core>,
}

/// One serving thread.
struct Core {
    handle: Handle,
    /// The CPU whose connections it takes: it is pinned there, unless the system refused
    /// (logged at debug level).
    cpu: Option<usize>,
    /// Connections it is serving.
    open: Arc<AtomicUsize>,
    /// Dropping it lets the thread's runtime stop.
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Cores {
    /// One thread per CPU this process may use, or `None` on a single CPU.
    pub(crate) fn for_this_machine() -> anyhow::Result<Option<Self>> {
        let count = std::thread::available_parallelism().map_or(1, |n| n.get());
        if count < 2 {
            return Ok(None);
        }
        let cpus = allowed_cpus();
        // Pin only when the threads take every CPU the process may use: under a CPU quota
        // smaller than that set, pinned threads could not move to the idle ones.
        let pin = cpus.len() == count;
        let cores = (0..count)
            .map(|i| Core::start(i, pin.then(|| cpus[i])))
            .collect::<anyhow::Result<Vec<_>>>()?;
        tracing::debug!(
            threads = count,
            pinned = pin,
            "serving connections on one thread per CPU"
        );
        Ok(Some(Self { cores }))
    }

    /// Serves `stream` on the thread of the CPU its packets arrive at, or on the least busy
    /// thread when that one is far busier or unknown. `serve` runs on the chosen thread.
    pub(crate) fn spawn<F>(
        &self,
        stream: std::net::TcpStream,
        serve: impl FnOnce(tokio::net::TcpStream) -> F + Send + 'static,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        let incoming = incoming_cpu(&stream);
        let core = self.pick(incoming);
        tracing::trace!(?incoming, serving = ?core.cpu, "new connection");
        let open = ConnectionCount::enter(&core.open);
        core.handle.spawn(async move {
            let _open = open;
            match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => serve(stream).await,
                Err(err) => tracing::warn!("cannot serve a connection: {err}"),
            }
        });
    }

    fn pick(&self, cpu: Option<usize>) -> &Core {
        let open: Vec<usize> = self.cores.iter().map(|c| c.open.load(Relaxed)).collect();
        let local = cpu.and_then(|cpu| self.cores.iter().position(|c| c.cpu == Some(cpu)));
        &self.cores[choose(&open, local)]
    }
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

impl Drop for Cores {
    /// Stops every thread's runtime (tasks still running are dropped) and waits for them.
    fn drop(&mut self) {
        for core in &mut self.cores {
            drop(core.stop.take());
        }
        for core in &mut self.cores {
            if let Some(thread) = core.thread.take() {
                let _ = thread.join();
            }
        }
    }
}

impl Core {
    fn start(index: usize, cpu: Option<usize>) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| anyhow::anyhow!("cannot start a serving thread's runtime: {err}"))?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name(format!("wws-core-{index}"))
            .spawn(move || {
                let cpu = cpu.filter(|&cpu| pin_current_thread(cpu));
                if cpu.is_none() {
                    tracing::debug!("serving thread {index} is not pinned to a CPU");
                }
                runtime.block_on(async {
                    let _ = stopped.await;
                });
                runtime.shutdown_background();
            })
            .map_err(|err| anyhow::anyhow!("cannot start a serving thread: {err}"))?;
        Ok(Self {
            handle,
            cpu,
            open: Arc::default(),
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

/// Counts a connection for as long as its task lives.
struct ConnectionCount(Arc<AtomicUsize>);

impl ConnectionCount {
    fn enter(open: &Arc<AtomicUsize>) -> Self {
        open.fetch_add(1, Relaxed);
        Self(open.clone())
    }
}

impl Drop for ConnectionCount {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
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
fn incoming_cpu(stream: &std::net::TcpStream) -> Option<usize> {
    rustix::net::sockopt::socket_incoming_cpu(stream)
        .ok()
        .and_then(|cpu| usize::try_from(cpu).ok())
}

#[cfg(not(target_os = "linux"))]
fn incoming_cpu(_stream: &std::net::TcpStream) -> Option<usize> {
    None
}

#[cfg(test)]
mod tests {
    use super::choose;

    #[test]
    fn a_connection_stays_on_its_cpu_unless_that_thread_is_far_busier() {
        assert_eq!(choose(&[10, 8], Some(0)), 0);
        assert_eq!(choose(&[10, 8], Some(1)), 1);
        assert_eq!(choose(&[20, 8], Some(0)), 0);
        assert_eq!(choose(&[21, 8], Some(0)), 1, "far busier: the least busy");
    }

    #[test]
    fn an_unknown_cpu_goes_to_the_least_busy_thread() {
        assert_eq!(choose(&[3, 1, 2], None), 1);
        assert_eq!(choose(&[0, 0], None), 0);
    }
}
