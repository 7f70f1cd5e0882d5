//! Why a worker run failed. The server maps each case to a status code and a log line.

/// A failed run. Every variant is the worker's fault or a limit, never a reason to stop serving.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The run used more CPU time than [`Limits::timeout`](crate::Limits).
    #[error("exceeded its CPU time limit of {0:?}")]
    Timeout(std::time::Duration),
    /// The request took longer than [`Limits::wall_timeout`](crate::Limits), waiting included.
    #[error(
        "took longer than its wall-clock time limit of {0:?} (waiting for a timer, a fetch or an instance included)"
    )]
    WallTimeout(std::time::Duration),
    /// The instance tried to grow its memory past the limit.
    #[error("exceeded its memory limit of {} MiB", .0 >> 20)]
    MemoryLimit(usize),
    /// The worker printed more than [`Limits::max_output_bytes`](crate::Limits).
    #[error("printed more than the output limit of {0} bytes")]
    OutputTooLarge(usize),
    /// The guest's call stack ran out: runaway or very deep recursion.
    #[error("ran out of call stack (runaway or very deep recursion)")]
    StackOverflow,
    /// The worker called `exit` with a non-zero code.
    #[error("exited with code {0}")]
    Exit(i32),
    /// A trap or host error while instantiating or running.
    #[error("failed: {0:#}")]
    Trap(anyhow::Error),
    /// Every instance slot (or every live instance of a reuse-mode worker) stayed busy for the
    /// queue timeout (`slots.rs`); the caller may retry later. Logged once per interval by the
    /// worker crate, not per request.
    #[error("no free instance slot within the queue timeout (too many concurrent requests)")]
    Busy,
}

impl RunError {
    /// A short name of the variant, for metrics and log fields.
    pub fn kind(&self) -> &'static str {
        match self {
            RunError::Timeout(_) => "cpu_timeout",
            RunError::WallTimeout(_) => "wall_timeout",
            RunError::MemoryLimit(_) => "memory_limit",
            RunError::OutputTooLarge(_) => "output_too_large",
            RunError::StackOverflow => "stack_overflow",
            RunError::Exit(_) => "exit",
            RunError::Trap(_) => "trap",
            RunError::Busy => "busy",
        }
    }
}
