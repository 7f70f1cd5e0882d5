//! Instance slots: how many guest instances may be alive at once, how long a request waits for
//! one, and who gives one up when others wait.
//!
//! The pooling allocator reserves a fixed number of memories, tables and stacks at startup
//! (`engine.rs`); an instantiation past them fails. So every instance first takes permits from
//! one semaphore sized like the pool and keeps them for as long as its store lives:
//! - a core module (fresh request or reuse-mode instance) takes 1 permit;
//! - a component takes one per memory or table it defines, whichever is more
//!   ([`component_cost`]); its core instances are covered by a pool sized at
//!   [`MAX_CORE_INSTANCES_PER_COMPONENT`] per slot, so permits never promise more than the pool
//!   holds (a component that needs more is refused when it is loaded).
//!
//! # Bounded wait
//!
//! A request that finds every slot taken waits at most [`SlotConfig::queue_timeout`]
//! (default [`DEFAULT_QUEUE_TIMEOUT`]) and then fails with [`RunError::Busy`], which the server
//! answers with 503 and `Retry-After`: a flood never queues forever, and the log says why once
//! per [`REFUSAL_LOG_INTERVAL`], with the count, not once per refused request.
//!
//! # Idle reuse-mode instances
//!
//! A live reuse-mode instance (`reuse.rs`) holds its slot between requests. It must not starve
//! other workers: while anyone waits for a slot, idle instances are evicted (the waiter asks for
//! it, and an instance given back while someone waits is retired instead of kept idle). The
//! evicted worker boots a new instance on its next request.
//!
//! # Settings
//!
//! [`SlotConfig::from_env`] reads `WWS_INSTANCE_SLOTS` (default [`DEFAULT_SLOTS`]) and
//! `WWS_QUEUE_TIMEOUT_MS` (default 5000). Each slot reserves address space for one memory of
//! the memory limit, so more slots cost virtual memory, not RAM.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, TryAcquireError};

use crate::error::RunError;
use crate::ticker::Ticker;

/// Environment variable with the number of instance slots (the most guest instances alive at
/// once, across all workers).
pub const SLOTS_ENV: &str = "WWS_INSTANCE_SLOTS";

/// Environment variable with how long, in milliseconds, a request waits for a slot before it
/// gets a 503.
pub const QUEUE_TIMEOUT_ENV: &str = "WWS_QUEUE_TIMEOUT_MS";

/// Instance slots unless [`SLOTS_ENV`] says otherwise.
pub const DEFAULT_SLOTS: u32 = 1000;

/// How long a request waits for a slot unless [`QUEUE_TIMEOUT_ENV`] says otherwise: long
/// enough to ride out a burst, short enough that a client hears back while it still cares.
pub const DEFAULT_QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// Core instances one component may create. Wasmtime refuses a component with more when it is
/// loaded; the pool holds this many per slot, so a component never fails for lack of them.
pub const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 32;

/// At most one log line about refused requests per this interval.
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How many instances may be alive at once and how long a request waits for one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotConfig {
    /// Guest instances alive at once, over all workers (default [`DEFAULT_SLOTS`], at least 1).
    pub slots: u32,
    /// Longest wait for a slot before the request fails with [`RunError::Busy`].
    pub queue_timeout: Duration,
}

impl Default for SlotConfig {
    fn default() -> Self {
        Self {
            slots: DEFAULT_SLOTS,
            queue_timeout: DEFAULT_QUEUE_TIMEOUT,
        }
    }
}

impl SlotConfig {
    /// The defaults, overridden by [`SLOTS_ENV`] and [`QUEUE_TIMEOUT_ENV`]. A value that is not
    /// a number is an error naming the variable, not a silent default.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    fn from_lookup(get: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut config = Self::default();
        if let Some(v) = get(SLOTS_ENV) {
            let slots: u32 = v.trim().parse().with_context(|| {
                format!(
                    "{SLOTS_ENV}={v:?} is not a number of instance slots; use e.g. {DEFAULT_SLOTS}"
                )
            })?;
            if slots == 0 {
                anyhow::bail!("{SLOTS_ENV}=0 would refuse every request; use at least 1");
            }
            config.slots = slots;
        }
        if let Some(v) = get(QUEUE_TIMEOUT_ENV) {
            let ms: u64 = v.trim().parse().with_context(|| {
                format!("{QUEUE_TIMEOUT_ENV}={v:?} is not a number of milliseconds; use e.g. 5000")
            })?;
            config.queue_timeout = Duration::from_millis(ms);
        }
        Ok(config)
    }
}

/// Something that holds slots while doing no work and can give one up: a reuse-mode pool's
/// idle instances.
pub(crate) trait Evict: Send + Sync {
    /// Ends one idle instance so its slot comes free; false when there was none.
    fn evict_one(&self) -> bool;
}

/// The process's instance slots (one per [`crate::Engine`]).
pub(crate) struct Slots {
    semaphore: Arc<Semaphore>,
    config: SlotConfig,
    /// Acquisitions waiting right now; idle instances are evicted while this is not zero.
    waiting: AtomicUsize,
    evictors: Mutex<Vec<Weak<dyn Evict>>>,
    refusals: Mutex<Refusals>,
    /// Woken whenever a slot is taken: it parks while every slot is free (`ticker.rs`).
    ticker: Arc<Ticker>,
}

impl Drop for Slots {
    /// The engine is going: its ticker thread ends.
    fn drop(&mut self) {
        self.ticker.stop();
    }
}

/// Permits held by one instance; they return to the pool when the instance's store is gone.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
}

#[derive(Default)]
struct Refusals {
    last_logged: Option<Instant>,
    /// Refused since the last log line.
    unlogged: u64,
}

/// Why a request was refused, for the log line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Queue<'a> {
    /// Every instance slot of the process was taken.
    Engine,
    /// Every live instance of one reuse-mode worker was busy.
    Worker { name: &'a str, instances: usize },
}

impl Slots {
    pub(crate) fn new(config: SlotConfig) -> Self {
        Self {
            semaphore: Arc::new(Semaphore::new(config.slots as usize)),
            config,
            waiting: AtomicUsize::new(0),
            evictors: Mutex::new(Vec::new()),
            refusals: Mutex::new(Refusals::default()),
            ticker: Arc::default(),
        }
    }

    /// The epoch ticker these slots wake (`ticker.rs`).
    pub(crate) fn ticker(&self) -> Arc<Ticker> {
        self.ticker.clone()
    }

    /// Whether every slot is free, i.e. no instance is alive: what the ticker checks before it
    /// parks.
    pub(crate) fn idle_probe(&self) -> impl Fn() -> bool + Send + 'static {
        let semaphore = self.semaphore.clone();
        let all = self.config.slots as usize;
        move || semaphore.available_permits() == all
    }

    /// A slot for `permit`, once the ticker knows an instance is alive.
    fn granted(&self, permit: OwnedSemaphorePermit) -> Slot {
        self.ticker.wake();
        Slot { _permit: permit }
    }

    /// The settings these slots were made with.
    pub(crate) fn config(&self) -> &SlotConfig {
        &self.config
    }

    /// Takes `cost` permits for one instance, waiting at most the queue timeout. While it waits,
    /// idle reuse-mode instances are evicted to make room.
    pub(crate) async fn acquire(&self, cost: u32) -> Result<Slot, RunError> {
        let cost = cost.max(1);
        if cost > self.config.slots {
            return Err(RunError::Trap(anyhow::anyhow!(
                "one instance of this worker needs {cost} instance slots but there are only {}; raise {SLOTS_ENV}",
                self.config.slots
            )));
        }
        match self.semaphore.clone().try_acquire_many_owned(cost) {
            Ok(permit) => return Ok(self.granted(permit)),
            Err(TryAcquireError::Closed) => return Err(RunError::Busy),
            Err(TryAcquireError::NoPermits) => {}
        }
        let _waiting = Waiting::new(&self.waiting);
        for _ in 0..cost {
            if !self.evict_one() {
                break;
            }
        }
        let acquire = self.semaphore.clone().acquire_many_owned(cost);
        match tokio::time::timeout(self.config.queue_timeout, acquire).await {
            Ok(Ok(permit)) => Ok(self.granted(permit)),
            Ok(Err(_closed)) => Err(RunError::Busy),
            Err(_elapsed) => {
                self.refused(Queue::Engine);
                Err(RunError::Busy)
            }
        }
    }

    /// One slot for work that must not be refused, such as pre-initialising a worker at
    /// startup: waits as long as it takes (idle reuse-mode instances are evicted as for
    /// [`Self::acquire`]).
    pub(crate) async fn acquire_patiently(&self) -> Result<Slot, RunError> {
        if let Ok(permit) = self.semaphore.clone().try_acquire_owned() {
            return Ok(self.granted(permit));
        }
        let _waiting = Waiting::new(&self.waiting);
        self.evict_one();
        match self.semaphore.clone().acquire_owned().await {
            Ok(permit) => Ok(self.granted(permit)),
            Err(_closed) => Err(RunError::Busy),
        }
    }

    /// Whether some instance is waiting for a slot right now.
    pub(crate) fn contended(&self) -> bool {
        self.waiting.load(Ordering::Acquire) > 0
    }

    /// Registers idle instances that [`acquire`](Self::acquire) may evict.
    pub(crate) fn register(&self, evictor: Weak<dyn Evict>) {
        let mut list = lock(&self.evictors);
        list.retain(|e| e.strong_count() > 0);
        list.push(evictor);
    }

    fn evict_one(&self) -> bool {
        let evictors: Vec<Arc<dyn Evict>> = lock(&self.evictors)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        evictors.iter().any(|e| e.evict_one())
    }

    /// Counts a refused request and logs why, at most once per [`REFUSAL_LOG_INTERVAL`].
    pub(crate) fn refused(&self, queue: Queue<'_>) {
        let mut r = lock(&self.refusals);
        r.unlogged += 1;
        let now = Instant::now();
        if r.last_logged
            .is_some_and(|t| now.duration_since(t) < REFUSAL_LOG_INTERVAL)
        {
            return;
        }
        let count = std::mem::take(&mut r.unlogged);
        r.last_logged = Some(now);
        drop(r);
        let wait = self.config.queue_timeout;
        match queue {
            Queue::Engine => tracing::warn!(
                "overloaded: all {} instance slots stayed busy for {wait:?}, so {count} request(s) got 503 (next report in {REFUSAL_LOG_INTERVAL:?} at the earliest); raise {SLOTS_ENV} or {QUEUE_TIMEOUT_ENV}, or add servers",
                self.config.slots
            ),
            Queue::Worker { name, instances } => tracing::warn!(
                worker = name,
                "overloaded: all {instances} live instances of worker {name} stayed busy for {wait:?}, so {count} request(s) got 503 (next report in {REFUSAL_LOG_INTERVAL:?} at the earliest); raise {QUEUE_TIMEOUT_ENV} or add servers"
            ),
        }
    }
}

/// Slots one instantiation of `component` takes: one per memory or table it defines, whichever
/// is more, at least one. A component that imports core modules (its needs cannot be known
/// before instantiation) takes as many as the most a component may create.
pub(crate) fn component_cost(component: &wasmtime::component::Component) -> u32 {
    match component.resources_required() {
        Some(r) => r.num_memories.max(r.num_tables).max(1),
        None => MAX_CORE_INSTANCES_PER_COMPONENT,
    }
}

/// Counts an acquisition as waiting until it is dropped (also when its future is cancelled).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Self(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(slots: u32, ms: u64) -> SlotConfig {
        SlotConfig {
            slots,
            queue_timeout: Duration::from_millis(ms),
        }
    }

    #[test]
    fn settings_come_from_the_environment_and_bad_values_name_the_variable() {
        let none = SlotConfig::from_lookup(|_| None).unwrap();
        assert_eq!(none, SlotConfig::default());
        let set = SlotConfig::from_lookup(|k| {
            Some(if k == SLOTS_ENV { " 7" } else { "250" }.to_string())
        })
        .unwrap();
        assert_eq!(set, config(7, 250));
        let err =
            SlotConfig::from_lookup(|k| (k == SLOTS_ENV).then(|| "many".to_string())).unwrap_err();
        assert!(format!("{err:#}").contains(SLOTS_ENV), "{err:#}");
        let err =
            SlotConfig::from_lookup(|k| (k == SLOTS_ENV).then(|| "0".to_string())).unwrap_err();
        assert!(format!("{err:#}").contains("at least 1"), "{err:#}");
        let err = SlotConfig::from_lookup(|k| (k == QUEUE_TIMEOUT_ENV).then(|| "-1".to_string()))
            .unwrap_err();
        assert!(format!("{err:#}").contains(QUEUE_TIMEOUT_ENV), "{err:#}");
    }

    #[tokio::test]
    async fn a_full_pool_refuses_after_the_queue_timeout_and_frees_on_drop() {
        let slots = Slots::new(config(2, 50));
        let a = slots.acquire(1).await.unwrap();
        let b = slots.acquire(1).await.unwrap();
        let started = Instant::now();
        assert!(matches!(slots.acquire(1).await, Err(RunError::Busy)));
        assert!(started.elapsed() >= Duration::from_millis(50));
        drop(a);
        let c = slots.acquire(1).await.unwrap();
        drop((b, c));
        // Costs above the pool fail at once with a reason instead of waiting forever.
        assert!(matches!(slots.acquire(3).await, Err(RunError::Trap(_))));
        let both = slots.acquire(2).await.unwrap();
        drop(both);
        assert!(!slots.contended());
    }

    #[test]
    fn a_component_costs_one_slot_per_memory_or_table_it_defines() {
        let engine = wasmtime::Engine::default();
        let cost =
            |wat: &str| component_cost(&wasmtime::component::Component::new(&engine, wat).unwrap());
        // No memory, no table: still one slot (stack, component instance).
        assert_eq!(cost("(component)"), 1);
        // One module with a memory and a table, instantiated three times: three of each.
        let three = "(component (core module $m (memory 1) (table 1 funcref))
            (core instance (instantiate $m)) (core instance (instantiate $m))
            (core instance (instantiate $m)))";
        assert_eq!(cost(three), 3);
    }

    struct Idle {
        slot: Mutex<Option<Slot>>,
    }

    impl Evict for Idle {
        fn evict_one(&self) -> bool {
            lock(&self.slot).take().is_some()
        }
    }

    #[tokio::test]
    async fn a_waiter_evicts_idle_instances() {
        let slots = Slots::new(config(1, 5_000));
        let idle: Arc<dyn Evict> = Arc::new(Idle {
            slot: Mutex::new(Some(slots.acquire(1).await.unwrap())),
        });
        slots.register(Arc::downgrade(&idle));
        let started = Instant::now();
        let got = slots.acquire(1).await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(got);
        // Nothing left to evict: the next waiter times out instead.
        let _held = slots.acquire(1).await.unwrap();
        assert!(!idle.evict_one());
    }
}
