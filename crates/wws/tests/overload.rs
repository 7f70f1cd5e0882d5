//! Overload and the instance slots (review findings F4, F5, F14, F15, F16): a flood gets 503
//! with `Retry-After` instead of queueing forever, components wait for slots instead of failing,
//! idle reuse-mode instances give their slots up, reuse frames cannot answer the wrong request,
//! `max_requests` holds when a replacement dies, and crashing instances never leak a slot.
//! Each server runs with a tiny pool (`WWS_INSTANCE_SLOTS`) so the limits are reached at once.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;
use std::time::{Duration, Instant};

use wws_test_support::Wws;
use wws_test_support::fixtures::{Project, module_cache_dir, runtime_repository};
use wws_test_support::repo_server::{RepoServer, install_runtime};
use wws_test_support::wws::client;

fn serve(project: &Path, slots: u32, queue_ms: u64) -> Wws {
    Wws::builder(project)
        .args(["--cache-dir"])
        .args([module_cache_dir()])
        .env("WWS_INSTANCE_SLOTS", &slots.to_string())
        .env("WWS_QUEUE_TIMEOUT_MS", &queue_ms.to_string())
        .start()
}

/// Waits until the server has printed `needle` at least `n` times.
fn wait_for_count(wws: &Wws, needle: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while wws.output().matches(needle).count() < n {
        assert!(
            Instant::now() < deadline,
            "never printed {needle:?} {n} times:\n{}",
            wws.output()
        );
        std::thread::park_timeout(Duration::from_millis(5));
    }
}

/// A project with the Python runtime installed from our repository, served over 127.0.0.1.
fn python_project() -> Project {
    let repo = RepoServer::serve(runtime_repository());
    let p = Project::new();
    install_runtime(p.path(), &repo, "python", "3.12.0");
    p
}

#[test]
fn f4_a_flood_beyond_the_slots_gets_503_with_retry_after_and_one_log_line() {
    let p = Project::new();
    p.wasm("sleep.wasm", "sleep");
    p.wasm("hello.wasm", "hello");
    let wws = serve(p.path(), 2, 300);

    // Two slow requests take both slots...
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let url = wws.url("/sleep?ms=4000");
            std::thread::spawn(move || {
                let resp = client().get(url).send().unwrap();
                (resp.status().as_u16(), resp.text().unwrap())
            })
        })
        .collect();
    wait_for_count(&wws, "sleeping 4000 ms", 2);

    // ...so a burst of others waits the queue timeout and is refused, not queued forever.
    let refused: Vec<_> = (0..4)
        .map(|_| {
            let url = wws.url("/hello");
            std::thread::spawn(move || {
                let started = Instant::now();
                let resp = client().get(url).send().unwrap();
                let retry = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap().to_string());
                (resp.status().as_u16(), retry, started.elapsed())
            })
        })
        .collect();
    for r in refused {
        let (status, retry, took) = r.join().unwrap();
        assert_eq!(status, 503, "{}", wws.output());
        assert_eq!(retry.as_deref(), Some("1"));
        assert!(
            took >= Duration::from_millis(280),
            "refused too early: {took:?}"
        );
        assert!(took < Duration::from_secs(3), "waited too long: {took:?}");
    }
    for s in sleepers {
        assert_eq!(s.join().unwrap(), (200, "slept".to_string()));
    }

    // The slow requests gave their slots back: everything is served again.
    for _ in 0..5 {
        assert_eq!(wws.get_text("/hello", 200), "Hello from wws");
    }
    // The log says why once for the whole burst, not once per refused request.
    let out = wws.output();
    assert_eq!(out.matches("overloaded").count(), 1, "{out}");
    assert!(out.contains("WWS_INSTANCE_SLOTS"), "{out}");
}

#[test]
fn f5_components_under_concurrency_wait_for_slots_instead_of_failing() {
    let p = Project::new();
    p.component("component.wasm", "component_hello");
    // Two slots: a component with several core instances and memories must wait for room
    // instead of running the pooling allocator out of core instances.
    let wws = serve(p.path(), 2, 60_000);
    std::thread::scope(|s| {
        for t in 0..8 {
            let wws = &wws;
            s.spawn(move || {
                let http = client();
                for i in 0..15 {
                    let resp = http.get(wws.url("/component")).send().unwrap();
                    assert_eq!(resp.status(), 200, "thread {t} request {i}");
                    assert_eq!(resp.text().unwrap(), "Hello from a component");
                }
            });
        }
    });
    let out = wws.output();
    assert!(!out.contains("concurrent limit"), "{out}");
}

#[test]
fn one_slot_serves_request_after_request_from_every_thread() {
    let p = Project::new();
    p.wasm("hello.wasm", "hello").file(
        "index.js",
        "addEventListener('fetch', e => e.respondWith(new Response('js')));",
    );
    // A finished run keeps its slot until its thread's next request or an idle moment frees
    // it (`release.rs`): with one slot, a request on the other thread must not wait for that
    // beyond the short queue timeout.
    let wws = serve(p.path(), 1, 2_000);
    std::thread::scope(|s| {
        for t in 0..4 {
            let wws = &wws;
            s.spawn(move || {
                let http = client();
                for i in 0..25 {
                    let (path, body) = if (t + i) % 2 == 0 {
                        ("/", "js")
                    } else {
                        ("/hello", "Hello from wws")
                    };
                    let resp = http.get(wws.url(path)).send().unwrap();
                    assert_eq!(resp.status(), 200, "thread {t} request {i} to {path}");
                    assert_eq!(resp.text().unwrap(), body, "thread {t} request {i}");
                }
            });
        }
    });
    let out = wws.output();
    assert!(!out.contains("overloaded"), "{out}");
}

/// Python workers for the reuse tests: a counter in a module global, and `?crash=1` ends the
/// interpreter (an uncaught exception in reuse mode exits the instance).
const COUNTER_PY: &str = "served = 0\ndef worker(req):\n    global served\n    if \"crash=1\" in req.url:\n        raise RuntimeError(\"crash on request\")\n    served += 1\n    return Response(str(served))\n";

#[test]
fn f14_idle_reuse_instances_do_not_starve_fresh_workers_and_crashes_leak_no_slot() {
    let p = python_project();
    p.file("a.py", COUNTER_PY);
    p.file("b.py", COUNTER_PY);
    p.wasm("hello.wasm", "hello");
    // Two slots, and each reuse-mode worker keeps one live instance: idle, they hold them all.
    let wws = serve(p.path(), 2, 20_000);
    wws.get_text("/a", 200);
    wws.get_text("/b", 200);
    // A fresh-instance worker still gets a slot (an idle instance is evicted for it), and the
    // evicted worker boots a new instance on its next request.
    for _ in 0..3 {
        assert_eq!(wws.get_text("/hello", 200), "Hello from wws");
        wws.get_text("/a", 200);
        wws.get_text("/b", 200);
    }

    // Under concurrency the pools grow only as far as the slots allow; nobody fails.
    std::thread::scope(|s| {
        for (t, path) in ["/a", "/b", "/hello"].into_iter().enumerate() {
            let wws = &wws;
            s.spawn(move || {
                let http = client();
                for i in 0..8 {
                    let resp = http.get(wws.url(path)).send().unwrap();
                    assert_eq!(resp.status(), 200, "thread {t} {path} request {i}");
                }
            });
        }
    });

    // Instances that crash again and again give their slots back: still served afterwards.
    for _ in 0..12 {
        assert_eq!(wws.get("/a?crash=1").status(), 500);
    }
    for _ in 0..3 {
        wws.get_text("/a", 200);
        wws.get_text("/b", 200);
        assert_eq!(wws.get_text("/hello", 200), "Hello from wws");
    }
    let out = wws.output();
    assert!(!out.contains("concurrent limit"), "{out}");
    assert!(!out.contains("overloaded"), "{out}");
}

#[test]
fn f15_a_late_second_answer_never_answers_the_next_request() {
    let p = python_project();
    // Writes a complete response frame of its own straight to the channel, keeps computing,
    // then returns: the wrapper's frame comes 100 ms after an answer was already taken.
    p.file(
        "twice.py",
        "import json, os, time\ndef worker(req):\n    n = req.url.split(\"n=\")[-1]\n    early = json.dumps({\"data\": \"early-\" + n}).encode()\n    os.write(1, b\"%d\\n%s\" % (len(early), early))\n    t = time.monotonic()\n    while time.monotonic() - t < 0.1:\n        pass\n    return Response(\"late-\" + n)\n",
    );
    let wws = serve(p.path(), 8, 20_000);
    let http = client();
    let mut answered = 0;
    for n in 0..8 {
        let resp = http.get(wws.url(&format!("/twice?n={n}"))).send().unwrap();
        let status = resp.status().as_u16();
        let body = resp.text().unwrap();
        if status == 200 {
            // Its own answer (the early one), never the previous request's late one.
            assert_eq!(body, format!("early-{n}"), "{}", wws.output());
            answered += 1;
        } else {
            assert_eq!(status, 500, "{body}");
        }
    }
    assert!(
        answered >= 6,
        "only {answered} of 8 answered:\n{}",
        wws.output()
    );
    // The late frame was caught as what it is.
    wws.wait_for_output("while no request was pending");
}

#[test]
fn f16_max_requests_holds_when_the_replacement_dies_while_booting() {
    let p = python_project();
    // The first instance boots; any later one finds the marker and exits while booting.
    p.dir("_state");
    p.file(
        "w.py",
        "import os, sys\nif os.path.exists(\"/state/booted\"):\n    print(\"f16: a replacement refuses to boot\", file=sys.stderr)\n    sys.exit(1)\nopen(\"/state/booted\", \"w\").write(\"1\")\nserved = 0\ndef worker(req):\n    global served\n    served += 1\n    return Response(str(served))\n",
    );
    p.file(
        "w.toml",
        "version = \"1\"\n[[folders]]\nfrom = \"./_state\"\nto = \"/state\"\n",
    );
    // Recycle after 2 requests (our repository says 1000).
    let wws_toml = p.path().join(".wws.toml");
    let text = std::fs::read_to_string(&wws_toml).unwrap();
    assert!(text.contains("max_requests = 1000"), "{text}");
    std::fs::write(
        &wws_toml,
        text.replace("max_requests = 1000", "max_requests = 2"),
    )
    .unwrap();

    let wws = serve(p.path(), 8, 20_000);
    assert_eq!(wws.get_text("/w", 200), "1");
    assert_eq!(wws.get_text("/w", 200), "2");
    // The second answer retired the instance; its replacement dies while booting.
    wws.wait_for_output("failed while booting");
    // The retiring instance must not serve on past max_requests because of that.
    for _ in 0..4 {
        let resp = wws.get("/w");
        let status = resp.status().as_u16();
        let body = resp.text().unwrap();
        assert!(
            status != 200 || body.parse::<u64>().unwrap() <= 2,
            "served request {body} in one instance with max_requests = 2:\n{}",
            wws.output()
        );
    }
}

#[test]
fn startup_snapshots_wait_for_a_slot_instead_of_failing() {
    // Preparing workers takes instances too (JS snapshots, on every core at once): with a
    // single slot they must take turns, not fail the start.
    let p = Project::new();
    for name in ["a", "b", "c"] {
        p.file(
            &format!("{name}.js"),
            format!("addEventListener('fetch', e => e.respondWith(new Response('{name}')));"),
        );
    }
    p.wasm("hello.wasm", "hello");
    let wws = Wws::builder(p.path())
        .env("WWS_INSTANCE_SLOTS", "1")
        .start();
    for name in ["a", "b", "c"] {
        assert_eq!(wws.get_text(&format!("/{name}"), 200), name);
    }
    assert_eq!(wws.get_text("/hello", 200), "Hello from wws");
}
