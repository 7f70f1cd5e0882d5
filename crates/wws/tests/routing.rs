//! Routing over HTTP: the spec's router table, params, index files, prefix, collisions.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use wws_test_support::Wws;
use wws_test_support::fixtures::Project;

fn params_project() -> Project {
    let p = Project::new();
    for file in [
        "[id].wasm",
        "[id]/fixed.wasm",
        "[id]/sub.wasm",
        "fixed.wasm",
        "sub/[...all].wasm",
        "sub/[id].wasm",
        "sub/sub/[...all].wasm",
        "index.wasm",
        "docs/index.wasm",
    ] {
        p.wasm(file, "params");
    }
    p
}

fn params_of(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("params body {body:?}: {e}"))
}

#[test]
fn spec_router_table_over_http() {
    let p = params_project();
    let wws = Wws::start(p.path());
    // (request, expected params) — which route answered shows in the params it got.
    let cases = [
        ("/any", serde_json::json!({"id": "any"})),
        ("/fixed", serde_json::json!({})),
        ("/any/fixed", serde_json::json!({"id": "any"})),
        ("/any/sub", serde_json::json!({"id": "any"})),
        ("/sub/any", serde_json::json!({"id": "any"})),
        (
            "/sub/any/catch/all/routes",
            serde_json::json!({"all": "any/catch/all/routes"}),
        ),
        (
            "/sub/sub/any/catch/all/routes",
            serde_json::json!({"all": "any/catch/all/routes"}),
        ),
        ("/", serde_json::json!({})),
        ("/docs", serde_json::json!({})),
        ("/docs/", serde_json::json!({})),
    ];
    for (path, want) in cases {
        let body = wws.get_text(path, 200);
        assert_eq!(params_of(&body), want, "GET {path}");
    }
    wws.get_text("/donot/exist/at/all", 404);
    // The startup report lists routes with their files.
    let out = wws.output();
    assert!(
        out.contains("/sub/[...all]") && out.contains("=> ./sub/[...all].wasm"),
        "{out}"
    );
}

#[test]
fn percent_encoded_params_are_decoded() {
    let p = params_project();
    let wws = Wws::start(p.path());
    let body = wws.get_text("/caf%C3%A9", 200);
    assert_eq!(params_of(&body), serde_json::json!({"id": "café"}));
}

#[test]
fn prefix_applies_to_workers_including_the_root_index() {
    let p = params_project();
    p.file("public/style.css", "body{}");
    let wws = Wws::builder(p.path()).args(["--prefix", "app/"]).start();
    wws.get_text("/app", 200);
    wws.get_text("/app/", 200);
    assert_eq!(
        params_of(&wws.get_text("/app/x", 200)),
        serde_json::json!({"id": "x"})
    );
    assert_eq!(wws.get_text("/app/style.css", 200), "body{}");
    wws.get_text("/x", 404);
    wws.get_text("/style.css", 404);
}

#[test]
fn two_files_on_one_route_stop_the_start_naming_both() {
    let p = Project::new();
    p.wasm("about.wasm", "hello");
    p.wasm("about/index.wasm", "hello");
    wws_test_support::assert_start_fails(p.path(), &["about.wasm", "about/index.wasm"]);
}

#[test]
fn ignored_and_underscore_files_are_not_routes() {
    let p = Project::new();
    p.wasm("index.wasm", "hello");
    p.wasm("_lib/helper.wasm", "hello");
    p.wasm("target/debug/thing.wasm", "hello");
    p.wasm("public/not-a-worker.wasm", "hello");
    let wws = Wws::builder(p.path())
        .args(["--ignore", "target/**"])
        .start();
    wws.get_text("/", 200);
    wws.get_text("/_lib/helper", 404);
    wws.get_text("/target/debug/thing", 404);
    // public/ files are static, never workers.
    let resp = wws.get("/not-a-worker.wasm");
    assert_eq!(resp.status(), 200);
    assert!(resp.bytes().unwrap().starts_with(b"\0asm"));
}

/// The status line wws answers a raw request with.
fn status_line(wws: &Wws, request: &str) -> String {
    use std::io::BufRead;
    let mut line = String::new();
    std::io::BufReader::new(raw_stream(wws, request.as_bytes()))
        .read_line(&mut line)
        .unwrap();
    line.trim_end().to_owned()
}

/// A connection to wws on which `request` was sent.
fn raw_stream(wws: &Wws, request: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let addr = wws.url("").trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    stream.write_all(request).unwrap();
    stream
}

/// Only a path names a route: `OPTIONS *` is answered by the server, CONNECT is refused, a
/// target without its `/` is a bad request, and a body declared larger than the limit is
/// refused before it is sent.
#[test]
fn request_targets_that_are_not_paths_and_oversized_declared_bodies() {
    let p = params_project();
    let wws = Wws::start(p.path());
    let ask = |request: &str| status_line(&wws, request);
    assert_eq!(
        ask("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n"),
        "HTTP/1.1 204 No Content"
    );
    assert_eq!(
        ask("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n"),
        "HTTP/1.1 405 Method Not Allowed"
    );
    assert_eq!(
        ask("GET fixed HTTP/1.1\r\nHost: x\r\n\r\n"),
        "HTTP/1.1 400 Bad Request"
    );
    assert_eq!(
        ask("GET http://x/fixed HTTP/1.1\r\nHost: x\r\n\r\n"),
        "HTTP/1.1 200 OK"
    );
    assert_eq!(
        ask("POST /fixed HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\nabc"),
        "HTTP/1.1 413 Payload Too Large"
    );
}

/// A request target with raw UTF-8 (`/café?q=été`) reaches the worker percent-encoded, as a
/// URL parser gives it.
#[test]
fn raw_utf8_in_a_request_target_is_percent_encoded_for_workers() {
    use std::io::Read;
    let p = Project::new();
    p.file(
        "[...all].js",
        "addEventListener('fetch', (e) => e.respondWith(new Response(`${e.request.url} ${e.request.url === new URL(e.request.url).href}`)));",
    );
    let wws = Wws::start(p.path());
    let mut stream = raw_stream(
        &wws,
        "GET /café?q=été HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".as_bytes(),
    );
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.ends_with("\r\n\r\nhttp://x/caf%C3%A9?q=%C3%A9t%C3%A9 true"),
        "{response}"
    );
}
