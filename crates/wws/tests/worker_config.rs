//! `<name>.toml`: vars with `$HOST_VAR`, mounted folders (read, write, read-only), and
//! malformed files that stop the start with the file, key and problem.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use wws_test_support::Wws;
use wws_test_support::fixtures::Project;
use wws_test_support::wws::client;

#[test]
fn vars_with_host_substitution() {
    let p = Project::new();
    p.wasm("vars.wasm", "vars");
    p.file(
        "vars.toml",
        "name = \"vars\"\nversion = \"1\"\n[vars]\nGREETING = \"hi\"\nTOKEN = \"$WWS_TEST_SECRET\"\nWWS_REUSE = \"1\"\n",
    );
    let wws = Wws::builder(p.path())
        .env("WWS_TEST_SECRET_UNUSED", "x")
        .env("WWS_TEST_SECRET", "s3cr3t")
        .start();
    let vars: serde_json::Value = serde_json::from_str(&wws.get_text("/vars", 200)).unwrap();
    assert_eq!(vars["GREETING"], "hi");
    assert_eq!(vars["TOKEN"], "s3cr3t");
    // Only the host decides reuse mode: a worker var of that name is just a var.
    assert_eq!(vars["WWS_REUSE"], "1");
    // The host environment is not passed through otherwise.
    assert!(
        vars.get("PATH").is_none() && vars.get("WWS_TEST_SECRET").is_none(),
        "{vars}"
    );
}

#[test]
fn folders_read_write_and_readonly() {
    let p = Project::new();
    p.wasm("rw.wasm", "folders");
    p.wasm("ro.wasm", "folders");
    p.file("_data/hello.txt", "from the host");
    p.file(
        "rw.toml",
        "version = \"1\"\n[[folders]]\nfrom = \"./_data\"\nto = \"/data\"\n",
    );
    p.file(
        "ro.toml",
        "version = \"1\"\n[[folders]]\nfrom = \"./_data\"\nto = \"/data\"\nreadonly = true\n",
    );
    let wws = Wws::start(p.path());
    assert_eq!(
        wws.get_text("/rw?read=/data/hello.txt", 200),
        "from the host"
    );
    assert_eq!(
        wws.get_text("/ro?read=/data/hello.txt", 200),
        "from the host"
    );

    let resp = client()
        .post(wws.url("/rw?write=/data/new.txt"))
        .body("written by the worker")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", resp.text().unwrap());
    assert_eq!(
        std::fs::read_to_string(p.path().join("_data/new.txt")).unwrap(),
        "written by the worker"
    );

    let resp = client()
        .post(wws.url("/ro?write=/data/nope.txt"))
        .body("x")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert!(!p.path().join("_data/nope.txt").exists());
    // Nothing outside the mount is reachable.
    assert_eq!(wws.get("/rw?read=/data/../../rw.toml").status(), 500);
}

/// stdin and stdout stay one stream each when a request's first file access hands WASI over
/// from wws's own standard-stream calls to wasmtime-wasi's context halfway through the run.
#[test]
fn stdio_stays_consistent_across_the_first_file_access() {
    let p = Project::new();
    p.wasm("mixed.wasm", "stdio_then_file");
    p.file("_data/note.txt", "noted");
    p.file(
        "mixed.toml",
        "version = \"1\"\n[[folders]]\nfrom = \"./_data\"\nto = \"/data\"\n",
    );
    let wws = Wws::start(p.path());
    let body = "a request body long enough to be read in two parts";
    for _ in 0..3 {
        let resp = client().post(wws.url("/mixed")).body(body).send().unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().unwrap(), format!("{body}|noted"));
    }
}

fn start_fails_with(p: &Project, needles: &[&str]) {
    wws_test_support::assert_start_fails(p.path(), needles);
}

#[test]
fn malformed_config_stops_the_start() {
    let p = Project::new();
    p.wasm("api.wasm", "hello");
    p.file("api.toml", "version = \"1\"\n[vars]\nCOUNT = 3\n");
    start_fails_with(&p, &["api.toml", "vars"]);

    p.file("api.toml", "version = \"1\"\n[data.kv]\nnamespace = 7\n");
    start_fails_with(&p, &["api.toml", "namespace"]);

    p.file(
        "api.toml",
        "version = \"1\"\n[[folders]]\nfrom = \"./missing\"\nto = \"/m\"\n",
    );
    start_fails_with(&p, &["api.toml", "folders[0].from", "missing"]);

    p.file("api.toml", "this is = not toml [");
    start_fails_with(&p, &["api.toml"]);
}

#[test]
fn original_http_feature_config_is_accepted() {
    let p = Project::new();
    p.wasm("api.wasm", "hello");
    p.file(
        "api.toml",
        "name = \"api\"\nversion = \"1\"\n[features]\n[features.http_requests]\nallowed_hosts = [\"example.com\"]\nallowed_methods = [\"GET\", \"post\"]\nallow_http = true\n",
    );
    let wws = Wws::start(p.path());
    assert_eq!(wws.get_text("/api", 200), "Hello from wws");
}

/// A worker config named after no worker is pointed out (its worker would run without its
/// vars, key/value store or fetch permission); one next to a worker of a runtime that is not
/// installed, or a TOML that is no worker config (Cargo.toml), is not. A wrong type names the
/// shape expected, not an internal type.
#[test]
fn a_config_named_after_no_worker_is_pointed_out() {
    let p = Project::new();
    p.wasm("index.wasm", "hello");
    p.file("indx.toml", "version = \"1\"\n[vars]\nA = \"1\"\n");
    p.file("app.py", "print()");
    p.file("app.toml", "version = \"1\"\n[vars]\nA = \"1\"\n");
    p.file("Cargo.toml", "[package]\nname = \"x\"\n");
    let wws = Wws::start(p.path());
    let out = wws.output();
    assert!(
        out.contains("indx.toml looks like a worker config, but no worker indx.*"),
        "{out}"
    );
    assert!(
        !out.contains("app.toml looks") && !out.contains("Cargo.toml looks"),
        "{out}"
    );
    drop(wws);
    p.file("index.toml", "version = \"1\"\n[data]\nkv = \"counter\"\n");
    wws_test_support::assert_start_fails(p.path(), &["index.toml", "`[data.kv]` with `namespace"]);
}

/// `[runtime] reuse = true` where it cannot apply (a `.wasm` worker) is pointed out, and a JS
/// worker's var named `WWS_REUSE` cannot switch its engine to reuse framing behind the host's
/// back: the worker keeps answering plain requests.
#[test]
fn reuse_settings_that_cannot_apply_are_pointed_out() {
    let p = Project::new();
    p.wasm("native.wasm", "hello");
    p.file("native.toml", "version = \"1\"\n[runtime]\nreuse = true\n");
    p.file(
        "script.js",
        "addEventListener('fetch', (e) => e.respondWith(new Response('plain')));\n",
    );
    p.file(
        "script.toml",
        "version = \"1\"\n[vars]\nWWS_REUSE = \"1\"\n",
    );
    let wws = Wws::start(p.path());
    let out = wws.output();
    assert!(
        out.contains("native.wasm: `reuse = true` under `[runtime]` is for JavaScript"),
        "{out}"
    );
    assert!(
        out.contains("script.js: the var WWS_REUSE is ignored"),
        "{out}"
    );
    assert_eq!(wws.get("/native").status(), 200);
    assert_eq!(wws.get_text("/script", 200), "plain");
}
