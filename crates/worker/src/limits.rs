//! Resource limits applied to every worker run (DESIGN §7).

use std::time::Duration;

/// How much one request may take from the host. A worker that exceeds a limit fails that
/// request only; the server keeps serving.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Largest linear memory an instance may grow to (default 256 MiB). Growing past it traps.
    pub max_memory_bytes: usize,
    /// CPU time one request may spend executing wasm (default 30 s), enforced with epoch ticks.
    /// `None` (`--timeout-ms 0`) turns the limit off: the engine then compiles no epoch checks,
    /// and a worker that never returns keeps its thread busy until the server stops.
    pub timeout: Option<Duration>,
    /// Wall-clock time one request may take (default 60 s), waiting included: for an instance,
    /// a timer, a fetch. Past it the request is cancelled and its instance dropped, so a worker
    /// that awaits forever cannot hold a slot while its client waits. `None`
    /// (`--wall-timeout-ms 0`) turns it off.
    pub wall_timeout: Option<Duration>,
    /// Largest stdout a run may produce (default 16 MiB); writing more fails the run.
    pub max_output_bytes: usize,
    /// Largest stderr kept for the log per run (default 64 KiB); the rest is cut, not an error.
    pub max_stderr_bytes: usize,
}

impl Limits {
    /// The CPU-time budget of one request in epoch ticks of `tick` (at least one); unbounded
    /// without a limit.
    pub(crate) fn budget_ticks(&self, tick: Duration) -> u64 {
        match self.timeout {
            Some(limit) => u64::try_from(limit.as_millis() / tick.as_millis().max(1))
                .unwrap_or(u64::MAX)
                .max(1),
            None => u64::MAX,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory_bytes: 256 << 20,
            timeout: Some(Duration::from_secs(30)),
            wall_timeout: Some(Duration::from_secs(60)),
            max_output_bytes: 16 << 20,
            max_stderr_bytes: 64 << 10,
        }
    }
}
