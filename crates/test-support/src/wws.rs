//! Start `wws` as a child process and wait until it serves.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a start may take before the test fails: generous, because the first start of a
/// test run compiles modules with Cranelift on a shared 2-core machine.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// Path of the `wws` binary built by cargo for this test run.
pub fn wws_bin() -> PathBuf {
    if let Some(p) = option_env!("CARGO_BIN_EXE_wws") {
        return PathBuf::from(p);
    }
    // Fall back to the binary next to the test executable (target/<profile>/wws).
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    dir.join("wws")
}

/// A `Command` for the wws binary with a clean, predictable environment.
pub fn wws_command() -> Command {
    let mut cmd = Command::new(wws_bin());
    for (k, _) in std::env::vars() {
        if k.starts_with("WWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("RUST_LOG", "info");
    cmd
}

/// Starts `wws PROJECT --port 0`, expects it to exit with an error, and checks that its
/// stderr names every needle (a file, a key, a reason). Returns the stderr.
pub fn assert_start_fails(project: impl AsRef<std::ffi::OsStr>, needles: &[&str]) -> String {
    let out = wws_command()
        .arg(project)
        .args(["--port", "0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "start should fail:\n{stderr}");
    for n in needles {
        assert!(stderr.contains(n), "missing {n:?} in:\n{stderr}");
    }
    stderr
}

/// Options for starting a server.
pub struct WwsBuilder {
    cmd: Command,
}

impl WwsBuilder {
    /// Start from a prepared command (e.g. one that sets `WWS_PORT` instead of `--port`).
    pub fn from_command(cmd: Command) -> Self {
        Self { cmd }
    }

    /// Add command-line arguments after the project path.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        self.cmd.args(args);
        self
    }

    /// Set an environment variable for the server process.
    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.cmd.env(k, v);
        self
    }

    /// Start the server and wait for `Start serving requests at http://...`.
    pub fn start(self) -> Wws {
        self.try_start()
            .unwrap_or_else(|(msg, out)| panic!("{msg}\n--- wws output ---\n{out}"))
    }

    /// Start the server; on failure return the reason and everything it printed.
    pub fn try_start(mut self) -> Result<Wws, (String, String)> {
        self.cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .stdin(Stdio::null());
        let mut child = self
            .cmd
            .spawn()
            .map_err(|e| (format!("spawn wws: {e}"), String::new()))?;
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<Option<String>>();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        spawn_reader(stdout, log.clone(), Some(tx.clone()));
        spawn_reader(stderr, log.clone(), None);
        drop(tx);
        let deadline = std::time::Instant::now() + START_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(Some(line)) => {
                    if let Some(url) = line.split("Start serving requests at ").nth(1) {
                        let base = url.trim().to_string();
                        return Ok(Wws {
                            child: Some(child),
                            base,
                            log,
                        });
                    }
                }
                Ok(None) | Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    // Give the reader threads the rest of the output.
                    let out = wait_log(&log);
                    return Err((format!("wws did not start (status {status:?})"), out));
                }
            }
        }
    }
}

fn wait_log(log: &Arc<Mutex<String>>) -> String {
    // Readers finish once the pipes close; the child is dead here so that is immediate.
    for _ in 0..50 {
        if Arc::strong_count(log) == 1 {
            break;
        }
        std::thread::yield_now();
        std::thread::park_timeout(Duration::from_millis(10));
    }
    log.lock().unwrap().clone()
}

fn spawn_reader(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<String>>,
    tx: Option<mpsc::Sender<Option<String>>>,
) {
    std::thread::spawn(move || {
        let reader = BufReader::new(pipe);
        for line in reader.lines() {
            let Ok(line) = line else { break };
            log.lock().unwrap().push_str(&line);
            log.lock().unwrap().push('\n');
            if let Some(tx) = &tx {
                let _ = tx.send(Some(line));
            }
        }
        if let Some(tx) = &tx {
            let _ = tx.send(None);
        }
    });
}

/// A running `wws` server, killed when dropped.
pub struct Wws {
    child: Option<Child>,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Wws {
    /// Prepare to serve `project` on 127.0.0.1 and a free port.
    pub fn builder(project: impl AsRef<Path>) -> WwsBuilder {
        let mut cmd = wws_command();
        cmd.arg(project.as_ref()).args(["--port", "0"]);
        WwsBuilder { cmd }
    }

    /// Serve `project` with default flags.
    pub fn start(project: impl AsRef<Path>) -> Wws {
        Self::builder(project).start()
    }

    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Everything the server printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// GET a path and return the response.
    pub fn get(&self, path: &str) -> reqwest::blocking::Response {
        client()
            .get(self.url(path))
            .send()
            .unwrap_or_else(|e| panic!("GET {path}: {e}\n{}", self.output()))
    }

    /// GET a path, expect a status, return the body text.
    pub fn get_text(&self, path: &str, status: u16) -> String {
        let resp = self.get(path);
        let got = resp.status().as_u16();
        let body = resp.text().unwrap();
        assert_eq!(
            got,
            status,
            "GET {path}: body {body:?}\n--- wws output ---\n{}",
            self.output()
        );
        body
    }

    /// Waits until the server has printed `needle` (e.g. a worker's log line).
    pub fn wait_for_output(&self, needle: &str) {
        assert!(
            self.output_within(needle, START_TIMEOUT),
            "never printed {needle:?}:\n{}",
            self.output()
        );
    }

    /// Whether the server prints `needle` within `timeout`.
    pub fn output_within(&self, needle: &str, timeout: Duration) -> bool {
        self.output_until(|output| output.contains(needle), timeout)
    }

    /// Waits until the server has printed `needle` at least `count` times.
    pub fn wait_for_count(&self, needle: &str, count: usize) {
        assert!(
            self.output_until(
                |output| output.matches(needle).count() >= count,
                START_TIMEOUT
            ),
            "never printed {needle:?} {count} times:\n{}",
            self.output()
        );
    }

    /// Whether the server's output satisfies `done` within `timeout`.
    fn output_until(&self, done: impl Fn(&str) -> bool, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while !done(&self.output()) {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::park_timeout(Duration::from_millis(5));
        }
        true
    }

    /// Process id of the server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        child.wait().unwrap()
    }
}

impl Drop for Wws {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- wws output ---\n{}", self.output());
        }
    }
}

/// A blocking HTTP client that never uses a proxy and does not follow redirects.
pub fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap()
}
