//! The crate's API is blocking. Downloads run on a private tokio runtime, which may be neither
//! started nor dropped on a thread that already runs async code; when called from such a
//! thread, the work moves to a scoped helper thread and the caller waits for it.

/// Runs `work` where a private runtime may be used, and returns its result.
pub(crate) fn run<T: Send>(work: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return work();
    }
    std::thread::scope(|scope| match scope.spawn(work).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}
