//! Regressions from the code review of the first session: each test is named after the
//! finding it guards.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use wws_test_support::fixtures::{Project, module_cache_dir};
use wws_test_support::wws::client;
use wws_test_support::{Wws, assert_start_fails};

fn serve(p: &Project, args: &[&str]) -> Wws {
    Wws::builder(p.path())
        .args(["--cache-dir"])
        .args([module_cache_dir()])
        .args(args)
        .start()
}

#[test]
fn f1_a_worker_content_length_cannot_break_framing() {
    let p = Project::new();
    // "héllo" is 5 characters but 6 bytes: a worker counting characters lies about the length.
    p.file(
        "len.js",
        "addEventListener('fetch', e => e.respondWith(new Response('h\\u00e9llo', { headers: { 'content-length': '5', 'connection': 'close', 'x-kept': 'yes' } })));\n",
    );
    let wws = serve(&p, &[]);
    let c = client();
    for _ in 0..3 {
        // Same keep-alive connection: a wrong length would corrupt the next response.
        let resp = c.get(wws.url("/len")).send().unwrap();
        assert_eq!(resp.headers()["content-length"], "6");
        assert_eq!(resp.headers()["x-kept"], "yes");
        assert_eq!(resp.text().unwrap(), "héllo");
    }
}

#[test]
fn f2_a_malformed_host_cannot_change_the_path_workers_see() {
    let p = Project::new();
    p.file(
        "admin.js",
        "addEventListener('fetch', e => e.respondWith(new Response(new URL(e.request.url).pathname)));\n",
    );
    let wws = serve(&p, &[]);
    for host in ["x/public#", "evil@x", "a b"] {
        let resp = client()
            .get(wws.url("/admin"))
            .header("Host", host)
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200, "Host {host:?}");
        assert_eq!(resp.text().unwrap(), "/admin", "Host {host:?}");
    }
}

#[test]
fn f7_a_misspelt_folder_key_stops_the_start() {
    let p = Project::new();
    p.file(
        "w.js",
        "addEventListener('fetch', e => e.respondWith(new Response('x')));\n",
    );
    p.dir("_data");
    p.file(
        "w.toml",
        "version = \"1\"\n[[folders]]\nfrom = \"./_data\"\nto = \"/data\"\nread_only = true\n",
    );
    assert_start_fails(p.path(), &["w.toml", "folders[0].read_only"]);
}

#[test]
fn f9_responses_vary_on_origin_even_when_it_is_refused() {
    let p = Project::new();
    p.file(
        "w.js",
        "addEventListener('fetch', e => e.respondWith(new Response('x')));\n",
    );
    let wws = serve(&p, &["--cors", "https://a.test"]);
    let resp = client()
        .get(wws.url("/w"))
        .header("Origin", "https://evil.test")
        .send()
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert_eq!(resp.headers()["vary"], "Origin");
}
