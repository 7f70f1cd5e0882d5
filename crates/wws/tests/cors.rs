//! `--cors`: one or several origins, preflight, and worker-set headers left alone.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use wws_test_support::Wws;
use wws_test_support::fixtures::Project;
use wws_test_support::wws::client;

#[test]
fn several_origins_and_preflight() {
    let p = Project::new();
    p.wasm("hello.wasm", "hello");
    let wws = Wws::builder(p.path())
        .args(["--cors", "https://a.test", "--cors", "https://b.test"])
        .start();
    let resp = client()
        .get(wws.url("/hello"))
        .header("Origin", "https://b.test")
        .send()
        .unwrap();
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://b.test"
    );
    assert!(resp.headers()["vary"].to_str().unwrap().contains("Origin"));
    let resp = client()
        .get(wws.url("/hello"))
        .header("Origin", "https://evil.test")
        .send()
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());

    let resp = client()
        .request(reqwest::Method::OPTIONS, wws.url("/hello"))
        .header("Origin", "https://a.test")
        .header("Access-Control-Request-Method", "PUT")
        .header("Access-Control-Request-Headers", "content-type, x-token")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(
        resp.headers()["access-control-allow-origin"],
        "https://a.test"
    );
    assert!(
        resp.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("PUT")
    );
    assert_eq!(
        resp.headers()["access-control-allow-headers"],
        "content-type, x-token"
    );
}

#[test]
fn wildcard_from_the_environment() {
    let p = Project::new();
    p.wasm("hello.wasm", "hello");
    let wws = Wws::builder(p.path()).env("WWS_CORS", "*").start();
    let resp = client()
        .get(wws.url("/hello"))
        .header("Origin", "https://x.test")
        .send()
        .unwrap();
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
}
