//! Reuse mode (issue 5): Python and Ruby workers served by live instances that answer many
//! requests each, from our real runtime repository. Every answer must be the request's own,
//! failures and CPU-limit kills must not leak into the next request, and `[runtime] reuse =
//! false` must bring back a fresh instance per request.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;

use wws_test_support::Wws;
use wws_test_support::fixtures::{Project, module_cache_dir, runtime_repository};
use wws_test_support::repo_server::RepoServer;
use wws_test_support::wws::client;

fn install(project: &Path, repo: &RepoServer, name: &str, version: &str) {
    wws_test_support::repo_server::install_runtime(project, repo, name, version);
}

fn serve(project: &Path) -> Wws {
    Wws::builder(project)
        .args(["--cache-dir"])
        .args([module_cache_dir()])
        .args(["--timeout-ms", "1000"])
        .start()
}

/// Workers of one language, keyed by the name the checks use.
struct Lang {
    ext: &'static str,
    runtime: (&'static str, &'static str),
    /// Echoes `?v=` of the URL, the route param and the body: `v|id|body`.
    echo: &'static str,
    /// Counts in a module global: how many requests this instance served.
    global: &'static str,
    /// `?fail=1` raises (after touching `Cache`), `?loop=1` spins forever, otherwise answers
    /// `ok` followed by what `Cache` holds under `scratch`.
    trouble: &'static str,
    /// The KV counter of the original's examples.
    counter: &'static str,
    /// The worker's vars.
    vars: &'static str,
}

const PYTHON: Lang = Lang {
    ext: "py",
    runtime: ("python", "3.12.0"),
    echo: "def worker(req):\n    v = req.url.split(\"v=\")[-1] if \"v=\" in req.url else \"\"\n    return Response(v + \"|\" + req.params.get(\"id\", \"\") + \"|\" + req.body)\n",
    global: "served = 0\ndef worker(req):\n    global served\n    served += 1\n    return Response(str(served))\n",
    trouble: "def worker(req):\n    if \"fail=1\" in req.url:\n        Cache.set(\"scratch\", \"leak\")\n        raise ValueError(\"python trouble\")\n    if \"loop=1\" in req.url:\n        while True:\n            pass\n    return Response(\"ok \" + str(Cache.get(\"scratch\")))\n",
    counter: "def worker(req):\n    count = int(Cache.get(\"count\") or 0) + 1\n    Cache.set(\"count\", count)\n    return Response(str(count))\n",
    vars: "import os\ndef worker(req):\n    return Response(os.environ.get(\"GREETING\", \"?\") + \"|\" + os.environ.get(\"WWS_REUSE\", \"-\"))\n",
};

const RUBY: Lang = Lang {
    ext: "rb",
    runtime: ("ruby", "3.4"),
    echo: "def worker(req)\n  v = req.url.include?('v=') ? req.url.split('v=').last : ''\n  Response.ok(\"#{v}|#{req.params['id']}|#{req.body}\")\nend\n",
    global: "$served = 0\ndef worker(req)\n  $served += 1\n  Response.ok($served.to_s)\nend\n",
    trouble: "def worker(req)\n  if req.url.include?('fail=1')\n    Cache.set('scratch', 'leak')\n    raise 'ruby trouble'\n  end\n  loop {} if req.url.include?('loop=1')\n  Response.ok(\"ok #{Cache.get('scratch').inspect}\")\nend\n",
    counter: "def worker(req)\n  count = Cache.get('count').to_i + 1\n  Cache.set('count', count)\n  Response.ok(count.to_s)\nend\n",
    vars: "def worker(req)\n  Response.ok(\"#{ENV.fetch('GREETING', '?')}|#{ENV.fetch('WWS_REUSE', '-')}\")\nend\n",
};

fn project(lang: &Lang) -> Project {
    let p = Project::new();
    let ext = lang.ext;
    p.file(&format!("echo/[id].{ext}"), lang.echo);
    p.file(&format!("global.{ext}"), lang.global);
    p.file(&format!("fresh.{ext}"), lang.global);
    p.file("fresh.toml", "version = \"1\"\n[runtime]\nreuse = false\n");
    p.file(&format!("trouble.{ext}"), lang.trouble);
    p.file(
        "trouble.toml",
        "version = \"1\"\n[data.kv]\nnamespace = \"trouble\"\n",
    );
    p.file(&format!("counter.{ext}"), lang.counter);
    p.file(
        "counter.toml",
        "version = \"1\"\n[data.kv]\nnamespace = \"count\"\n",
    );
    p.file(&format!("vars.{ext}"), lang.vars);
    p.file(
        "vars.toml",
        "version = \"1\"\n[vars]\nGREETING = \"hi there\"\n",
    );
    p
}

fn check(lang: &Lang) {
    let repo = RepoServer::serve(runtime_repository());
    let p = project(lang);
    install(p.path(), &repo, lang.runtime.0, lang.runtime.1);
    let wws = serve(p.path());

    // Sequential: each answer is the request's own, params and body included, and nothing of
    // an earlier request's body shows in a later one.
    for i in 0..20 {
        assert_eq!(
            wws.get_text(&format!("/echo/id{i}?v=seq{i}"), 200),
            format!("seq{i}|id{i}|")
        );
        let resp = client()
            .post(wws.url(&format!("/echo/p{i}?v=post{i}")))
            .body(format!("body {i}"))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().unwrap(), format!("post{i}|p{i}|body {i}"));
    }

    // Concurrent: 8 clients × 25 requests, never two requests in one instance at once, so
    // every answer carries its own value.
    std::thread::scope(|s| {
        for t in 0..8 {
            let wws = &wws;
            s.spawn(move || {
                let http = client();
                for i in 0..25 {
                    let v = format!("t{t}r{i}");
                    let resp = http
                        .post(wws.url(&format!("/echo/{t}?v={v}")))
                        .body(v.clone())
                        .send()
                        .unwrap();
                    assert_eq!(resp.status(), 200, "{v}");
                    assert_eq!(resp.text().unwrap(), format!("{v}|{t}|{v}"));
                }
            });
        }
    });

    // The KV counter goes back per request. (Concurrent increments of one key race by design
    // of the snapshot protocol, as in single mode; only different keys are safe.)
    for i in 1..=5 {
        assert_eq!(wws.get_text("/counter", 200), i.to_string());
    }

    // Worker vars are in the environment; so is the switch the wrapper reads.
    assert_eq!(wws.get_text("/vars", 200), "hi there|1");

    // A raising request is a 500; its half-done `Cache` changes are dropped with it, and the
    // next request is served by a healthy instance that sees none of them.
    let nil = if lang.ext == "rb" { "nil" } else { "None" };
    assert_eq!(wws.get_text("/trouble", 200), format!("ok {nil}"));
    for _ in 0..3 {
        assert_eq!(wws.get("/trouble?fail=1").status(), 500);
        assert_eq!(wws.get_text("/trouble", 200), format!("ok {nil}"));
    }
    wws.wait_for_output(&format!("{} trouble", lang.runtime.0));

    // An endless loop is stopped by the per-request CPU limit; the instance is replaced.
    let started = std::time::Instant::now();
    assert_eq!(wws.get("/trouble?loop=1").status(), 504);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(wws.get_text("/trouble", 200), format!("ok {nil}"));
    // An instance's CPU budget is per request: many requests in one instance add up to far
    // more than the 1 s limit without tripping it.
    for i in 0..30 {
        assert_eq!(
            wws.get_text(&format!("/echo/x?v=after{i}"), 200),
            format!("after{i}|x|")
        );
    }

    // Module globals persist between the requests one instance serves (the documented
    // trade-off of reuse mode)...
    let served: Vec<u64> = (0..10)
        .map(|_| wws.get_text("/global", 200).parse().unwrap())
        .collect();
    assert!(served.iter().any(|&n| n > 1), "{served:?}");
    // ...until the instance is recycled after the runtime's `max_requests` (1000 in our index).
    // A retiring instance serves on while its replacement boots, which on a loaded machine
    // can take a few hundred fast requests: wait for the recycle, not a request count.
    if lang.ext == "py" {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut previous = 0;
        let mut requests = 0;
        loop {
            let n: u64 = wws.get_text("/global", 200).parse().unwrap();
            requests += 1;
            if n < previous {
                assert!(previous >= 1000, "recycled after {previous} requests");
                break;
            }
            previous = n;
            assert!(
                std::time::Instant::now() < deadline,
                "no instance was recycled in {requests} requests (last {previous})"
            );
        }
    }
    // `[runtime] reuse = false` gives every request a fresh instance.
    for _ in 0..3 {
        assert_eq!(wws.get_text("/fresh", 200), "1");
    }
}

#[test]
fn python_reuse_mode() {
    check(&PYTHON);
}

#[test]
fn ruby_reuse_mode() {
    check(&RUBY);
}
