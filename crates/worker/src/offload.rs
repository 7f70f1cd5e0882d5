//! Long runs leave a per-core serving thread. On such a thread (a single-threaded runtime,
//! see `wws_server`'s `cores`), a guest that computes for long only yields at each epoch tick,
//! and every other connection of that thread waits a tick per turn. So a run that yields,
//! at an epoch tick or to wait for anything, moves to the engine's own work-stealing runtime
//! for the rest, where the other threads keep serving; short runs (nearly all) never yield.
//! Measured with 50 ms requests on one connection and hello requests on 32 others: the hello
//! p99 was 4.6 ms on the work-stealing runtime, 49.7 ms per core without this, 16.7 ms moving
//! after a whole tick, and 8.9 ms moving at the first yield (throughput 35k, 39k, 44k, 43k),
//! all with 10 ms ticks (`EPOCH_TICK`, in `ticker.rs`, is 2 ms now).

use std::future::Future;
use std::task::Poll;

use crate::engine::Engine;
use crate::error::RunError;

/// Runs `run` on the calling runtime until it first yields, then on the engine's runtime. On
/// the engine's runtime itself, it just runs.
pub(crate) async fn run_here_while_short<T, F>(engine: Engine, run: F) -> Result<T, RunError>
where
    F: Future<Output = Result<T, RunError>> + Send + 'static,
    T: Send + 'static,
{
    let background = match (engine.background(), tokio::runtime::Handle::try_current()) {
        (Some(background), Ok(here)) if background.id() != here.id() => background.clone(),
        _ => return run.await,
    };
    let mut run = Box::pin(run);
    // One poll here: a run that does not end in it has yielded.
    if let Poll::Ready(output) = std::future::poll_fn(|cx| Poll::Ready(run.as_mut().poll(cx))).await
    {
        return output;
    }
    match background.spawn(run).await {
        Ok(output) => output,
        Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
        Err(err) => Err(RunError::Trap(anyhow::anyhow!(
            "the run was stopped with the server: {err}"
        ))),
    }
}
