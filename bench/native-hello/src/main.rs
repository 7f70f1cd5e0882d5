//! The benchmark baseline: a native hyper hello-world as hyper's users write it: tokio's
//! multi-thread (work-stealing) runtime with one worker per CPU, hyper-util's auto builder,
//! `TCP_NODELAY`. `wws` accepts the same way but serves each connection on a thread pinned to
//! the CPU its packets arrive at (`crates/server/src/cores.rs`); this baseline keeps the
//! common setup, so the ratio `wws / native` compares against what a native server usually is.
//!
//! Binds `127.0.0.1:0` unless an address is given as the only argument, prints
//! `listening on http://ADDR` once it accepts connections, and answers `Hello from native`.

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

/// Answers every request with the fixed body.
async fn hello(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello from native",
    ))))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|e| format!("bad address {arg:?}: {e}; give HOST:PORT"))?,
        None => SocketAddr::from(([127, 0, 0, 1], 0)),
    };
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot bind {addr}: {e}"))?;
    let bound = listener.local_addr()?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "listening on http://{bound}")?;
    stdout.flush()?;
    drop(stdout);

    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(conn) => conn,
            Err(err) => {
                eprintln!("accept failed: {err}");
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let conn = builder
            .serve_connection(TokioIo::new(stream), service_fn(hello))
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
