//! A static file server on 127.0.0.1 for runtime repositories and other upstreams in tests.
//!
//! [`RepoServer::serve`] binds port 0 and serves a folder with hyper on a tokio runtime in a
//! background thread, until dropped. Knobs for failure tests: [`RepoServer::fail`] answers a
//! path with a given status, [`RepoServer::stall_after`] sends the first bytes of a file (with
//! the full `Content-Length`) and then never sends more, [`RepoServer::redirect`] answers a
//! path with a 302, and every request is logged so a test can wait for one
//! ([`RepoServer::wait_for_request`]) instead of sleeping. The path `echo` answers
//! `METHOD HEADER BODY`: the request's method, its `x-test` header (or the one `?h=` names;
//! `-` when absent) and its body. The path `barrier?n=N` answers `open` only once N requests
//! have reached it: requests that must be in flight together (or never answer).

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// A running repository server; stops when dropped.
pub struct RepoServer {
    base: String,
    state: Arc<State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct State {
    root: PathBuf,
    fail: Mutex<HashMap<String, u16>>,
    stall: Mutex<HashMap<String, usize>>,
    redirect: Mutex<HashMap<String, String>>,
    log: Mutex<Vec<String>>,
    logged: Condvar,
    /// Requests that reached `barrier` so far.
    barrier: Mutex<usize>,
    barrier_moved: tokio::sync::Notify,
}

impl RepoServer {
    /// Serves the files of `dir` at `http://127.0.0.1:<port>/<relative path>`.
    pub fn serve(dir: impl AsRef<Path>) -> Self {
        let state = Arc::new(State {
            root: dir.as_ref().to_path_buf(),
            ..State::default()
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let thread_state = state.clone();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(accept_loop(listener, thread_state, rx));
            // Dropping the runtime drops stalled connections too.
            runtime.shutdown_background();
        });
        Self {
            base,
            state,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Full URL of `path` (relative to the served folder), e.g. `url("index.toml")`.
    pub fn url(&self, path: &str) -> String {
        format!("{}/{}", self.base, path.trim_start_matches('/'))
    }

    /// Answer requests for `path` with `status` and an empty body.
    pub fn fail(&self, path: &str, status: u16) -> &Self {
        self.state
            .fail
            .lock()
            .unwrap()
            .insert(normalise(path), status);
        self
    }

    /// Send only the first `bytes` bytes of `path` (announcing its full length), then stall.
    pub fn stall_after(&self, path: &str, bytes: usize) -> &Self {
        self.state
            .stall
            .lock()
            .unwrap()
            .insert(normalise(path), bytes);
        self
    }

    /// Answer `path` with `302 Found` to `location`.
    pub fn redirect(&self, path: &str, location: &str) -> &Self {
        self.state
            .redirect
            .lock()
            .unwrap()
            .insert(normalise(path), location.to_string());
        self
    }

    /// Serve `path` normally again (undo [`fail`](Self::fail) and [`stall_after`](Self::stall_after)).
    pub fn clear(&self, path: &str) -> &Self {
        let path = normalise(path);
        self.state.fail.lock().unwrap().remove(&path);
        self.state.stall.lock().unwrap().remove(&path);
        self
    }

    /// Paths requested so far, in order (without the leading `/`).
    pub fn requests(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }

    /// Waits until `path` has been requested, up to `timeout`; true when it was.
    pub fn wait_for_request(&self, path: &str, timeout: Duration) -> bool {
        self.wait_for_requests(path, 1, timeout)
    }

    /// Waits until `path` has been requested at least `count` times in all, up to `timeout`.
    pub fn wait_for_requests(&self, path: &str, count: usize, timeout: Duration) -> bool {
        let path = normalise(path);
        let deadline = Instant::now() + timeout;
        let mut log = self.state.log.lock().unwrap();
        loop {
            if log.iter().filter(|p| **p == path).count() >= count {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            log = self.state.logged.wait_timeout(log, left).unwrap().0;
        }
    }
}

impl Drop for RepoServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn normalise(path: &str) -> String {
    path.trim_start_matches('/').to_string()
}

async fn accept_loop(
    listener: std::net::TcpListener,
    state: Arc<State>,
    mut shutdown: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let state = state.clone();
                        async move { Ok::<_, Infallible>(respond(&state, req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

async fn respond(state: &State, req: Request<Incoming>) -> Response<RepoBody> {
    let path = normalise(req.uri().path());
    {
        state.log.lock().unwrap().push(path.clone());
        state.logged.notify_all();
    }
    if path == "barrier" {
        let n: usize = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("n="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(2);
        *state.barrier.lock().unwrap() += 1;
        state.barrier_moved.notify_waiters();
        loop {
            let moved = state.barrier_moved.notified();
            tokio::pin!(moved);
            moved.as_mut().enable();
            if *state.barrier.lock().unwrap() >= n {
                break;
            }
            moved.await;
        }
        return Response::new(RepoBody::Full(Full::new(Bytes::from_static(b"open"))));
    }
    if path == "echo" {
        let method = req.method().to_string();
        let name = req
            .uri()
            .query()
            .and_then(|q| q.strip_prefix("h="))
            .unwrap_or("x-test")
            .to_string();
        let header = req
            .headers()
            .get(name.as_str())
            .and_then(|v| v.to_str().ok())
            .unwrap_or("-")
            .to_string();
        let body = http_body_util::BodyExt::collect(req.into_body())
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let text = format!("{method} {header} {}", String::from_utf8_lossy(&body));
        return Response::new(RepoBody::Full(Full::new(Bytes::from(text))));
    }
    if let Some(location) = state.redirect.lock().unwrap().get(&path) {
        return Response::builder()
            .status(StatusCode::FOUND)
            .header("location", location)
            .body(RepoBody::Full(Full::new(Bytes::new())))
            .unwrap();
    }
    if let Some(status) = state.fail.lock().unwrap().get(&path) {
        return Response::builder()
            .status(*status)
            .body(RepoBody::Full(Full::new(Bytes::new())))
            .unwrap();
    }
    let not_found = || {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(RepoBody::Full(Full::new(Bytes::from_static(b"not found"))))
            .unwrap()
    };
    if path.split('/').any(|s| s == ".." || s.is_empty()) {
        return not_found();
    }
    let Ok(data) = std::fs::read(state.root.join(&path)) else {
        return not_found();
    };
    if let Some(n) = state.stall.lock().unwrap().get(&path) {
        let first = Bytes::copy_from_slice(&data[..(*n).min(data.len())]);
        return Response::builder()
            .header("content-length", data.len())
            .body(RepoBody::Stall(Some(first)))
            .unwrap();
    }
    Response::new(RepoBody::Full(Full::new(Bytes::from(data))))
}

/// A whole body, or the first bytes of one and then nothing, forever.
enum RepoBody {
    Full(Full<Bytes>),
    Stall(Option<Bytes>),
}

impl Body for RepoBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            Self::Full(full) => Pin::new(full).poll_frame(cx),
            Self::Stall(first) => match first.take() {
                Some(bytes) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
                // Never woken: the connection stays open until the server is dropped.
                None => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(full) => full.is_end_stream(),
            Self::Stall(_) => false,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(full) => full.size_hint(),
            Self::Stall(_) => SizeHint::default(),
        }
    }
}

/// Runs `wws PROJECT runtimes install NAME VERSION` against `repo` (named `wws-test`) and fails
/// the test with wws' output when it does not succeed.
pub fn install_runtime(project: &Path, repo: &RepoServer, name: &str, version: &str) {
    let out = crate::wws_command()
        .arg(project)
        .args(["runtimes", "install", name, version])
        .args([
            "--repo-url",
            &repo.url("/index.toml"),
            "--repo-name",
            "wws-test",
        ])
        .output()
        .expect("the wws binary must be runnable");
    assert!(
        out.status.success(),
        "install {name} {version}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_fails_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("files")).unwrap();
        std::fs::write(dir.path().join("files/a.txt"), "hello").unwrap();
        let server = RepoServer::serve(dir.path());
        let client = crate::wws::client();
        assert_eq!(
            client
                .get(server.url("files/a.txt"))
                .send()
                .unwrap()
                .text()
                .unwrap(),
            "hello"
        );
        assert_eq!(
            client.get(server.url("missing")).send().unwrap().status(),
            404
        );
        server.fail("files/a.txt", 500);
        assert_eq!(
            client
                .get(server.url("files/a.txt"))
                .send()
                .unwrap()
                .status(),
            500
        );
        assert!(server.wait_for_request("missing", Duration::from_secs(1)));
        assert_eq!(server.requests(), ["files/a.txt", "missing", "files/a.txt"]);
    }
}
