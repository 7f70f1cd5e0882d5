//! Runs the `#[worker]` examples of this crate as real processes on the host: JSON in on
//! stdin, exactly one JSON object out on stdout, as wws drives a worker.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// `cargo test` builds the examples next to the test binaries' `deps` folder.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target profile folder");
    dir.join("examples")
        .join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

/// Runs example `name` with `input` on stdin; returns its parsed stdout and its stderr.
fn run(name: &str, input: &str) -> (Value, String) {
    let mut child = Command::new(example(name))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|err| panic!("cannot start example {name}: {err}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("example finishes");
    assert!(
        out.status.success(),
        "example {name} exited with {}",
        out.status
    );
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    let value = serde_json::from_str(&stdout)
        .unwrap_or_else(|err| panic!("stdout of {name} is not one JSON object ({err}): {stdout}"));
    (value, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn hello_answers_with_request_details_and_no_kv() {
    let (out, _) = run(
        "hello",
        r#"{"url":"http://127.0.0.1:8080/greet?x=1","method":"POST","headers":{"a":"b"},"body":"four","kv":{"k":"v"},"params":{}}"#,
    );
    assert_eq!(out["status"], 200);
    assert_eq!(out["data"], "Hello /greet (4 bytes)");
    assert_eq!(out["headers"]["x-method"], "POST");
    assert_eq!(out["base64"], false);
    assert!(
        out.get("kv").is_none(),
        "handlers without cache leave the namespace alone: {out}"
    );
}

#[test]
fn counter_gets_params_then_cache_and_emits_cookie_list() {
    let (out, _) = run(
        "counter",
        r#"{"url":"http://h/c/7","method":"GET","headers":{},"body":"","kv":{"7":"1","other":"x"},"params":{"id":"7"}}"#,
    );
    assert_eq!(out["data"], "2");
    assert_eq!(out["kv"]["7"], "2");
    assert_eq!(out["kv"]["other"], "x");
    assert_eq!(
        out["headers"]["set-cookie"],
        serde_json::json!(["a=1", "b=2"])
    );
}

#[test]
fn counter_error_answers_500_without_kv_and_logs_to_stderr() {
    let (out, stderr) = run(
        "counter",
        r#"{"url":"http://h/c/7","method":"GET","headers":{},"body":"","kv":{"7":"3"},"params":{"id":"7"}}"#,
    );
    assert_eq!(out["status"], 500);
    assert!(
        out.get("kv").is_none(),
        "a failed handler must not rewrite the namespace: {out}"
    );
    assert!(
        stderr.contains("7 was visited too often"),
        "stderr: {stderr}"
    );
}

#[test]
fn garbage_input_answers_500() {
    let (out, stderr) = run("hello", "this is not json");
    assert_eq!(out["status"], 500);
    assert!(stderr.contains("not valid wws input"), "stderr: {stderr}");
}

#[test]
fn binary_bodies_round_trip_as_base64() {
    // Bytes 0xff 0x00 0x41 base64-encoded: not UTF-8, so the host sends base64.
    let (out, _) = run(
        "binary",
        r#"{"url":"/b","method":"PUT","headers":{},"body":"/wBB","base64":true,"kv":{}}"#,
    );
    assert_eq!(out["base64"], true);
    assert_eq!(out["data"], "QQD/"); // 0x41 0x00 0xff
    assert_eq!(out["headers"]["content-type"], "application/octet-stream");
}
