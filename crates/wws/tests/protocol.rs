//! The stdin/stdout JSON protocol with real guest workers: request fields, binary bodies,
//! multi-value headers, optional `kv`, and broken workers that must not take the server down.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use wws_test_support::Wws;
use wws_test_support::fixtures::Project;
use wws_test_support::wws::client;

fn project() -> Project {
    let p = Project::new();
    for (file, fixture) in [
        ("hello.wasm", "hello"),
        ("echo.wasm", "echo"),
        ("binary.wasm", "binary"),
        ("cookies.wasm", "cookies"),
        ("status.wasm", "status"),
        ("no_kv.wasm", "no_kv"),
        ("bad_header.wasm", "bad_header"),
        ("garbage.wasm", "garbage"),
        ("stray.wasm", "stray"),
        ("trap.wasm", "trap"),
        ("exit_nonzero.wasm", "exit_nonzero"),
        ("stderr_log.wasm", "stderr_log"),
        ("reactor.wasm", "reactor"),
    ] {
        p.wasm(file, fixture);
    }
    p
}

#[test]
fn hello_worker_answers_with_its_headers() {
    let p = project();
    let wws = Wws::start(p.path());
    let resp = wws.get("/hello");
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-fixture"], "hello");
    assert_eq!(resp.text().unwrap(), "Hello from wws");
}

#[test]
fn the_worker_sees_method_url_headers_and_body() {
    let p = project();
    let wws = Wws::start(p.path());
    let resp = client()
        .post(wws.url("/echo?x=1"))
        .header("X-Custom", "café")
        .header("X-Multi", "a")
        .header("X-Multi", "b")
        .body("hello body")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got: serde_json::Value = serde_json::from_str(&resp.text().unwrap()).unwrap();
    assert_eq!(got["method"], "POST");
    assert!(got["url"].as_str().unwrap().ends_with("/echo?x=1"), "{got}");
    assert!(
        got["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:"),
        "{got}"
    );
    assert_eq!(got["headers"]["x-custom"], "café");
    assert_eq!(got["headers"]["x-multi"], "a, b");
    assert_eq!(got["body"], "hello body");
}

#[test]
fn binary_bodies_round_trip() {
    let p = project();
    let wws = Wws::start(p.path());
    let bytes: Vec<u8> = (0..=255u8).rev().collect();
    let resp = client()
        .post(wws.url("/echo?raw=1"))
        .body(bytes.clone())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().unwrap().to_vec(), bytes);

    let resp = wws.get("/binary");
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    assert_eq!(
        resp.bytes().unwrap().to_vec(),
        (0..=255u8).collect::<Vec<_>>()
    );
}

#[test]
fn several_set_cookie_headers() {
    let p = project();
    let wws = Wws::start(p.path());
    let resp = wws.get("/cookies");
    let cookies: Vec<_> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    assert_eq!(cookies.len(), 2, "{cookies:?}");
}

#[test]
fn status_kv_optional_and_odd_headers() {
    let p = project();
    let wws = Wws::start(p.path());
    assert_eq!(wws.get("/status?code=418").status(), 418);
    assert_eq!(wws.get("/status?code=201").status(), 201);
    // A code without a standard reason phrase gets an empty one, not a placeholder.
    let addr = wws.url("").trim_start_matches("http://").to_owned();
    let mut raw = std::net::TcpStream::connect(addr).unwrap();
    std::io::Write::write_all(
        &mut raw,
        b"GET /status?code=299 HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(raw), &mut line).unwrap();
    assert_eq!(line, "HTTP/1.1 299 \r\n");
    // Not a final status (1xx are interim, 42 and 1000 none at all): 200 with the body, as the
    // original answered, and a warning naming the worker.
    for code in [42, 100, 101, 199, 1000] {
        let resp = wws.get(&format!("/status?code={code}"));
        assert_eq!(resp.status(), 200, "{code}");
        assert_eq!(resp.text().unwrap(), format!("status {code}"));
        wws.wait_for_output(&format!("returned invalid status {code}"));
    }
    assert_eq!(wws.get("/no_kv").status(), 200);
    // A control character in a header value drops that header, not the response; UTF-8 passes.
    let resp = wws.get("/bad_header");
    assert_eq!(resp.status(), 200);
    let non_ascii: Vec<_> = resp
        .headers()
        .values()
        .filter(|v| v.as_bytes() == "café".as_bytes())
        .collect();
    assert_eq!(non_ascii.len(), 1, "{:?}", resp.headers());
}

#[test]
fn broken_workers_answer_500_and_the_server_keeps_serving() {
    let p = project();
    let wws = Wws::start(p.path());
    for path in ["/garbage", "/stray", "/trap", "/exit_nonzero"] {
        let resp = wws.get(path);
        assert_eq!(resp.status(), 500, "{path}");
        assert_eq!(
            resp.text().unwrap(),
            "<p>There was an error running this function</p>"
        );
        assert_eq!(
            wws.get_text("/hello", 200),
            "Hello from wws",
            "after {path}"
        );
    }
    wws.wait_for_output("exited with code 3");
    let out = wws.output();
    let logged =
        |worker: &str, what: &str| out.lines().any(|l| l.contains(worker) && l.contains(what));
    assert!(logged("garbage.wasm", "not a wws JSON response"), "{out}");
    assert!(logged("stray.wasm", "not a wws JSON response"), "{out}");
    assert!(logged("exit_nonzero.wasm", "exited with code 3"), "{out}");
}

#[test]
fn worker_stderr_is_logged_with_its_name() {
    let p = project();
    let wws = Wws::start(p.path());
    wws.get_text("/stderr_log", 200);
    wws.wait_for_output("hello from stderr");
    let out = wws.output();
    let line = out
        .lines()
        .find(|l| l.contains("stderr_log.wasm") && l.contains("hello from stderr"));
    assert!(line.is_some(), "{out}");
}

#[test]
fn reactor_modules_run_their_initialize() {
    let p = project();
    let wws = Wws::start(p.path());
    let body = wws.get_text("/reactor", 200);
    assert!(!body.is_empty());
}

#[test]
fn preview2_command_components_run() {
    let p = project();
    p.component("component.wasm", "component_hello");
    let wws = Wws::start(p.path());
    assert_eq!(wws.get_text("/component", 200), "Hello from a component");
    assert_eq!(wws.get_text("/hello", 200), "Hello from wws");
}

#[test]
fn debug_logs_give_one_line_per_request_without_colour_codes_and_info_logs_none() {
    let p = project();
    let wws = Wws::builder(p.path())
        .env("RUST_LOG", "info,wws_server=debug")
        .start();
    assert_eq!(wws.get("/status?code=418").status(), 418);
    wws.get_text("/missing", 404);
    wws.wait_for_output("path=\"/missing\"");
    let out = wws.output();
    let logged = |path: &str, status: &str| {
        out.lines()
            .any(|l| l.contains("request") && l.contains(path) && l.contains(status))
    };
    assert!(logged("/status", "status=418"), "{out}");
    assert!(logged("/missing", "status=404"), "{out}");
    // Not a terminal: no escape codes in the log.
    assert!(!out.contains('\u{1b}'), "{out}");

    let quiet = Wws::start(p.path());
    assert_eq!(quiet.get("/status?code=418").status(), 418);
    assert!(!quiet.output().contains("status=418"), "{}", quiet.output());
}
