//! The command line: help, version, flags from `WWS_*` variables, errors and graceful shutdown.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::time::Instant;

use wws_test_support::fixtures::Project;
use wws_test_support::wws::client;
use wws_test_support::{Wws, wws_command};

#[test]
fn help_and_version() {
    let out = wws_command().arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--host",
        "--port",
        "--prefix",
        "--ignore",
        "--cors",
        "--install-runtimes",
        "--git-folder",
        "--enable-panel",
        "runtimes",
    ] {
        assert!(help.contains(flag), "help lacks {flag}: {help}");
    }
    let out = wws_command().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("wws "));
}

#[test]
fn startup_report_and_port_from_environment() {
    let p = Project::new();
    p.wasm("index.wasm", "hello");
    // WWS_PORT=0 instead of --port: the builder passes --port 0 too, so check the variable
    // on its own with a raw command whose output we read until the ready line.
    let wws = Wws::start(p.path());
    let out = wws.output();
    for line in [
        "⚙️  Preparing the project from:",
        "⏳ Loading workers from 1 routes...",
        "✅ Workers loaded in",
        "=> ./index.wasm",
        "🚀 Start serving requests at http://127.0.0.1:",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }
    assert!(
        !out.contains("127.0.0.1:0"),
        "the real port must be printed:\n{out}"
    );
}

#[test]
fn flags_from_environment_variables() {
    let p = Project::new();
    p.wasm("index.wasm", "hello");
    let mut cmd = wws_command();
    cmd.arg(p.path())
        .env("WWS_PORT", "0")
        .env("WWS_PREFIX", "/env");
    let wws = wws_test_support::WwsBuilder::from_command(cmd).start();
    assert_eq!(wws.get_text("/env", 200), "Hello from wws");
    wws.get_text("/", 404);
}

#[test]
fn missing_project_folder_is_a_clear_error() {
    wws_test_support::assert_start_fails(
        "/definitely/not/here",
        &["/definitely/not/here", "does not exist"],
    );
}

#[test]
fn busy_port_is_a_clear_error() {
    let p = Project::new();
    p.wasm("index.wasm", "hello");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = wws_command()
        .arg(p.path())
        .args(["--port", &port])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&port) && err.contains("--port"), "{err}");
}

#[test]
fn sigterm_lets_in_flight_requests_finish() {
    let p = Project::new();
    p.wasm("sleep.wasm", "sleep");
    let wws = Wws::start(p.path());
    let url = wws.url("/sleep?ms=1500");
    let started = Instant::now();
    let in_flight = std::thread::spawn(move || {
        let resp = client().get(url).send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    });
    // Wait until the request is being served: the worker logs to stderr when it starts.
    wws.wait_for_output("sleeping");
    let status = wws.terminate();
    let (code, body) = in_flight.join().unwrap();
    assert_eq!((code, body.as_str()), (200, "slept"));
    assert!(status.success(), "exit status {status:?}");
    assert!(started.elapsed().as_millis() >= 1500);
}

/// `--host` takes a name, `--ignore` a glob with braces (not split on commas), boolean
/// variables the usual spellings, and a `.wws.toml` that does not parse is warned about and
/// left out, as the original did, instead of stopping the start.
#[test]
fn host_names_brace_globs_boolean_variables_and_a_broken_project_file() {
    let p = Project::new();
    p.wasm("index.wasm", "hello");
    p.wasm("target/skip.wasm", "hello");
    p.wasm("lib/skip.wasm", "hello");
    p.file(".wws.toml", "version = [");
    let mut cmd = wws_command();
    cmd.arg(p.path())
        .args([
            "--port",
            "0",
            "--host",
            "localhost",
            "--ignore",
            "{target,lib}/**",
        ])
        .env("WWS_ENABLE_PANEL", "0")
        .env("WWS_INSTALL_RUNTIMES", "");
    let wws = wws_test_support::WwsBuilder::from_command(cmd).start();
    assert!(
        wws.url("/").starts_with("http://localhost:"),
        "{}",
        wws.url("/")
    );
    assert_eq!(wws.get_text("/", 200), "Hello from wws");
    wws.get_text("/target/skip", 404);
    wws.get_text("/lib/skip", 404);
    let out = wws.output();
    assert!(
        out.contains(".wws.toml is not a valid project file"),
        "{out}"
    );
    assert!(!out.contains("admin panel"), "{out}");
    assert_eq!(
        std::fs::read_to_string(p.path().join(".wws.toml")).unwrap(),
        "version = ["
    );
}

/// A project its user cannot write (a checkout mounted read-only in a container) is served:
/// generated worker files go to the user's cache. Needs root, to run wws as `nobody`.
#[cfg(unix)]
#[test]
fn a_read_only_project_is_served() {
    use std::os::unix::fs::PermissionsExt;
    if std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout != b"0\n")
        .unwrap_or(true)
    {
        panic!("this test runs wws as `nobody` with setpriv, which needs root");
    }
    let p = Project::new();
    p.file(
        "index.js",
        r#"addEventListener("fetch", (e) => e.respondWith(new Response("read-only")));"#,
    );
    let bin = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let wws = bin.path().join("wws");
    std::fs::copy(wws_test_support::wws::wws_bin(), &wws).unwrap();
    for dir in [bin.path(), home.path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    }
    std::fs::set_permissions(p.path(), std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "env"])
        .arg(format!("HOME={}", home.path().display()))
        .arg(&wws)
        .arg(p.path())
        .args(["--port", "0"]);
    let server = wws_test_support::WwsBuilder::from_command(cmd).start();
    assert_eq!(server.get_text("/", 200), "read-only");
    assert!(
        server.output().contains("is read-only"),
        "{}",
        server.output()
    );
    assert!(!p.path().join(".wws").exists());
}

/// `--metrics` serves Prometheus metrics on a listener of its own: requests by what answered
/// them and their status, durations, and worker failures by reason.
#[test]
fn metrics_count_requests_by_route_and_failures_by_reason() {
    let p = Project::new();
    p.wasm("index.wasm", "hello");
    p.wasm("trap.wasm", "trap");
    p.file("public/a.txt", "a");
    let wws = Wws::builder(p.path())
        .args(["--metrics", "127.0.0.1:0"])
        .start();
    let out = wws.output();
    let metrics_url = out
        .split("Metrics at ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no metrics address in:\n{out}"))
        .to_owned();
    assert!(!metrics_url.starts_with(&wws.url("")), "{metrics_url}");
    wws.get_text("/", 200);
    wws.get_text("/", 200);
    assert_eq!(wws.get("/trap").status(), 500);
    wws.get_text("/a.txt", 200);
    assert_eq!(wws.get("/nothing/here").status(), 404);
    let text = client().get(&metrics_url).send().unwrap().text().unwrap();
    for line in [
        "wws_requests_total{route=\"/\",status=\"200\"} 2",
        "wws_requests_total{route=\"/trap\",status=\"500\"} 1",
        "wws_requests_total{route=\"public/\",status=\"200\"} 1",
        "wws_requests_total{route=\"none\",status=\"404\"} 1",
        "wws_request_duration_seconds_count{route=\"/\"} 2",
        "wws_worker_failures_total{worker=\"trap.wasm\",reason=\"trap\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in:\n{text}");
    }
}

/// A shutdown waits for work that goes on after its response (`waitUntil`): the fetch it
/// makes still goes out before wws exits.
#[test]
fn sigterm_waits_for_wait_until_work() {
    let files = tempfile::tempdir().unwrap();
    let upstream = wws_test_support::repo_server::RepoServer::serve(files.path());
    let p = Project::new();
    p.file(
        "index.js",
        r#"export default { async fetch(request, env, ctx) {
  const q = new URL(request.url).searchParams;
  ctx.waitUntil(fetch(q.get("wait")).then(() => fetch(q.get("then"))));
  return new Response("answered");
} };"#,
    );
    p.file(
        "index.toml",
        "version = \"1\"\n[features.http_requests]\nallowed_hosts = [\"127.0.0.1\"]\nallow_http = true\n",
    );
    let wws = Wws::start(p.path());
    let barrier = upstream.url("barrier?n=2");
    let then = upstream.url("echo");
    let query = format!(
        "/?wait={}&then={}",
        barrier.replace('?', "%3F").replace('=', "%3D"),
        then
    );
    assert_eq!(wws.get_text(&query, 200), "answered");
    assert!(upstream.wait_for_request("barrier", std::time::Duration::from_secs(20)));
    std::process::Command::new("kill")
        .args(["-TERM", &wws.pid().to_string()])
        .status()
        .unwrap();
    wws.wait_for_output("still running after their response");
    assert_eq!(
        client().get(&barrier).send().unwrap().text().unwrap(),
        "open"
    );
    assert!(upstream.wait_for_request("echo", std::time::Duration::from_secs(20)));
    assert!(wws.terminate().success());
}
