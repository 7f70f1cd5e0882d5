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

/// CPU time (user + system, in clock ticks) the process has used so far.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

#[test]
fn f13_a_cancelled_reuse_request_stops_its_guest() {
    use wws_test_support::fixtures::runtime_repository;
    use wws_test_support::repo_server::RepoServer;
    let repo = RepoServer::serve(runtime_repository());
    let p = Project::new();
    wws_test_support::repo_server::install_runtime(p.path(), &repo, "python", "3.12.0");
    p.file(
        "work.py",
        "def worker(req):\n    if 'spin=1' in req.url:\n        while True:\n            pass\n    return Response('idle')\n",
    );
    let wws = serve(&p, &[]);
    assert_eq!(wws.get_text("/work", 200), "idle");
    // The client gives up long before the 30 s CPU limit.
    let quick = reqwest::blocking::Client::builder()
        .timeout(std::time::Duration::from_millis(300))
        .build()
        .unwrap();
    assert!(quick.get(wws.url("/work?spin=1")).send().is_err());
    // Within a few seconds the server must be idle again: no guest left spinning.
    let pid = wws.pid();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let before = cpu_ticks(pid);
        std::thread::park_timeout(std::time::Duration::from_millis(500));
        let used = cpu_ticks(pid) - before;
        // A spinning guest uses all of the half second (about 50 ticks at 100 Hz).
        if used < 10 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a guest kept running after its client left"
        );
    }
    assert_eq!(wws.get_text("/work", 200), "idle");
}
