//! The accept loop and graceful shutdown: on the shutdown signal the listener closes, and
//! connections finish the requests they are serving before the process exits.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::either::Either;

use crate::app::App;
use crate::cores::{Cores, Follow, Serving};

/// Serves `app` on `listener` until `shutdown` resolves, then waits up to `drain` for
/// in-flight requests. With `serving.per_core`, connections are served on one thread per CPU
/// (see `cores`); only right when long guest runs yield to other requests (a CPU limit is on).
pub async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
    serving: Serving,
) -> anyhow::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // Slow clients must not hold connections forever: headers within 30 s.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    let graceful = GracefulShutdown::new();
    let cores = if serving.per_core {
        Cores::for_this_machine(serving.batch_sends)?
    } else {
        None
    };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(err) => {
                        // Out of file descriptors and the like: back off a little, keep serving.
                        tracing::warn!("accept failed: {err}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let service = service_fn(move |req| {
                    let app = app.clone();
                    async move { Ok::<_, std::convert::Infallible>(app.handle(req).await) }
                });
                let builder = builder.clone();
                let watcher = graceful.watcher();
                let serve = move |io: Either<Follow, TcpStream>| async move {
                    let conn = builder.serve_connection(TokioIo::new(io), service);
                    if let Err(err) = watcher.watch(conn.into_owned()).await {
                        tracing::debug!("connection closed: {err}");
                    }
                };
                match &cores {
                    Some(cores) => match stream.into_std() {
                        Ok(stream) => cores.spawn(stream, |follow| serve(Either::Left(follow))),
                        Err(err) => tracing::warn!("cannot serve a connection: {err}"),
                    },
                    None => drop(tokio::spawn(serve(Either::Right(stream)))),
                }
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    let deadline = tokio::time::Instant::now() + drain;
    if tokio::time::timeout_at(deadline, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some requests were still running after {drain:?}; stopping anyway");
    }
    // Work that goes on after its response (`waitUntil`) still has key/value writes to save.
    app.background.close();
    if !app.background.is_empty() {
        tracing::info!(
            "waiting for {} worker(s) still running after their response",
            app.background.len()
        );
        if tokio::time::timeout_at(deadline, app.background.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "work after a response was still running after {drain:?}; stopping anyway"
            );
        }
    }
    drop(cores);
    Ok(())
}
