//! The epoch ticker: one thread for the whole process advances the wasmtime epoch every
//! [`EPOCH_TICK`]; running stores count the ticks they run through (the CPU-time limit) and
//! yield at each one.
//!
//! Ticks only matter while a guest runs, and every instance holds an instance slot
//! (`slots.rs`) for as long as it lives. So once every slot has been free for [`IDLE_AFTER`],
//! the ticker parks, and the next instance to take a slot wakes it ([`Ticker::wake`]): an idle
//! server no longer wakes a CPU 500 times a second. A reuse-mode worker's live instances hold
//! their slots between requests, so a project with one keeps ticking.

use std::sync::atomic::{AtomicBool, Ordering, fence};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::Duration;

/// How often the epoch advances. The CPU-time limit is counted in these ticks, and a running
/// guest yields at each one: a long run on a per-core serving thread moves to the
/// work-stealing runtime at its first tick (`offload.rs`), so the tick is how long it can hold
/// up that thread's other connections. Measured, hello p99 beside 50 ms requests: 8.8 ms with
/// 10 ms ticks, 5.3 ms with 2 ms ones, and no throughput difference on the hellos.
pub const EPOCH_TICK: Duration = Duration::from_millis(2);

/// How long every slot stays free before the ticker parks.
const IDLE_AFTER: Duration = Duration::from_millis(100);

/// What the slots share with the ticker thread: whether it is parked, and how to wake it.
#[derive(Default)]
pub(crate) struct Ticker {
    parked: AtomicBool,
    /// Set when the slots are gone: the thread ends.
    stopped: AtomicBool,
    thread: OnceLock<Thread>,
}

impl Ticker {
    /// Called once an instance has taken its slot: wakes the ticker if it parked.
    pub(crate) fn wake(&self) {
        // Pairs with the fence in `run`: either the ticker sees the slot taken, or this sees
        // it parked.
        fence(Ordering::SeqCst);
        if self.parked.load(Ordering::Acquire)
            && let Some(thread) = self.thread.get()
        {
            thread.unpark();
        }
    }

    /// Ends the ticker thread (the slots, and so their engine, are gone).
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }
}

/// Starts the ticker thread of `engine`; `idle` says whether every instance slot is free. The
/// thread ends once the engine is gone or [`Ticker::stop`] is called.
pub(crate) fn start(
    engine: &wasmtime::Engine,
    ticker: Arc<Ticker>,
    idle: impl Fn() -> bool + Send + 'static,
) {
    let engine = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("wws-epoch".into())
        .spawn(move || {
            let _ = ticker.thread.set(std::thread::current());
            run(engine, &ticker, idle);
        });
    if let Err(err) = spawned {
        // Without the ticker, limits are not enforced; that must not go unnoticed.
        tracing::error!("could not start the epoch ticker thread, CPU limits are off: {err}");
    }
}

fn run(engine: wasmtime::EngineWeak, ticker: &Ticker, idle: impl Fn() -> bool) {
    let idle_ticks = IDLE_AFTER.as_millis() / EPOCH_TICK.as_millis();
    let mut idle_for = 0;
    while let Some(strong) = engine.upgrade() {
        if ticker.stopped.load(Ordering::SeqCst) {
            break;
        }
        strong.increment_epoch();
        drop(strong);
        if idle_for >= idle_ticks {
            ticker.parked.store(true, Ordering::Release);
            fence(Ordering::SeqCst);
            if idle() {
                tracing::trace!("epoch ticker parked: no instance is alive");
                std::thread::park();
            }
            ticker.parked.store(false, Ordering::Relaxed);
            // Tick for a while again even when the instance that woke it is already gone:
            // under light, steady load that keeps the ticker awake, and requests from waking
            // it (a syscall each).
            idle_for = 0;
        }
        std::thread::sleep(EPOCH_TICK);
        idle_for = if idle() { idle_for + 1 } else { 0 };
    }
}
