//! Workers written for `wasm-workers-rs` run unchanged on `wws-sdk` imported under that name.

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

fn run(exe: &str, input: &str) -> Value {
    let mut child = Command::new(exe)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("worker starts");
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes())
        .expect("stdin written");
    let out = child.wait_with_output().expect("worker finishes");
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).expect("one JSON object on stdout")
}

#[test]
fn legacy_handler_attribute_and_cache_module_work() {
    let out = run(
        env!("CARGO_BIN_EXE_legacy_handler"),
        r#"{"url":"http://h/x","method":"GET","headers":{"user-agent":"curl/8"},"body":"","kv":{"seen":"2"},"params":{}}"#,
    );
    assert_eq!(out["data"], "GET http://h/x agent=curl/8 seen=2");
    assert_eq!(out["headers"]["x-generated-by"], "wasm-workers-server");
    assert_eq!(out["kv"]["seen"], "3");
}

#[test]
fn params_come_before_cache_and_vec_bodies_are_base64() {
    let out = run(
        env!("CARGO_BIN_EXE_params_content"),
        r#"{"url":"http://h/u/7","method":"GET","headers":{},"body":"","kv":{},"params":{"id":"7"}}"#,
    );
    assert_eq!(out["status"], 201);
    assert_eq!(
        (out["data"].as_str(), out["base64"].as_bool()),
        (Some("aWQ9Nw=="), Some(true))
    );
    assert_eq!(out["kv"]["last"], "7");
}
