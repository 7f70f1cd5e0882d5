//! Limits: a worker in an infinite loop, one that waits forever, one that eats memory, one that
//! prints too much, and a request body over the limit each get a clear error while other
//! routes keep answering.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::time::{Duration, Instant};

use wws_test_support::Wws;
use wws_test_support::fixtures::Project;
use wws_test_support::http1;
use wws_test_support::wws::client;

fn project() -> Project {
    let p = Project::new();
    p.wasm("hello.wasm", "hello");
    p.wasm("loop.wasm", "infinite_loop");
    p.wasm("hog.wasm", "memory_hog");
    p.wasm("big.wasm", "big_output");
    p.wasm("echo.wasm", "echo");
    p.wasm("sleep.wasm", "sleep");
    p
}

/// A request cut by a limit took at least `limit` (less a margin) and clearly less than `never`.
fn assert_stopped_between(took: Duration, limit: Duration, never: Duration) {
    assert!(took >= limit, "stopped too early: {took:?}");
    assert!(took < never, "limit not enforced: {took:?}");
}

#[test]
fn infinite_loop_times_out_while_other_routes_answer() {
    let p = project();
    let wws = Wws::builder(p.path())
        .args(["--timeout-ms", "1000"])
        .start();
    let base = wws.url("/loop");
    let looping = std::thread::spawn(move || {
        let started = Instant::now();
        let resp = client().get(base).send().unwrap();
        (resp.status().as_u16(), started.elapsed())
    });
    // While the loop burns its budget, other requests are served.
    for _ in 0..20 {
        assert_eq!(wws.get_text("/hello", 200), "Hello from wws");
    }
    let (status, took) = looping.join().unwrap();
    assert_eq!(status, 504);
    assert_stopped_between(took, Duration::from_millis(900), Duration::from_secs(30));
    wws.wait_for_output("CPU time limit");
}

#[test]
fn while_a_worker_loops_every_other_connection_is_served() {
    // Connections are served on one thread per CPU. A looping guest yields at each tick of its
    // CPU limit, so the connections that share its thread are answered too, not after it.
    let p = project();
    let wws = Wws::builder(p.path())
        .args(["--timeout-ms", "3000"])
        .start();
    let url = wws.url("/loop");
    let looping = std::thread::spawn(move || client().get(url).send().unwrap().status().as_u16());
    // Each thread has a client of its own: eight more connections.
    let others: Vec<_> = (0..8)
        .map(|_| {
            let url = wws.url("/hello");
            std::thread::spawn(move || {
                let c = client();
                (0..5)
                    .map(|_| c.get(&url).send().unwrap().status().as_u16())
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for other in others {
        assert_eq!(other.join().unwrap(), [200; 5]);
    }
    assert!(
        !looping.is_finished(),
        "the other connections were answered only once the loop had ended"
    );
    assert_eq!(looping.join().unwrap(), 504);
}

#[test]
fn per_core_serving_can_be_turned_off_and_a_bad_setting_is_named() {
    let p = project();
    let off = Wws::builder(p.path()).env("WWS_PER_CORE", "0").start();
    assert_eq!(off.get_text("/hello", 200), "Hello from wws");
    drop(off);
    for var in ["WWS_PER_CORE", "WWS_BATCH_SENDS"] {
        let Err((_, out)) = Wws::builder(p.path()).env(var, "yes").try_start() else {
            panic!("{var}=yes must stop the start");
        };
        assert!(
            out.contains(&format!("{var}=\"yes\" must be 0 (off) or 1 (on)")),
            "{out}"
        );
    }
}

#[test]
fn a_connection_moves_to_the_thread_of_the_cpu_its_client_moved_to() {
    // Per core, a connection is served on the thread of the CPU its packets arrive at. Over
    // loopback that is the client's CPU: a client that moves takes its connection along.
    let allowed = rustix::thread::sched_getaffinity(None).unwrap();
    let cpus: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU)
        .filter(|&cpu| allowed.is_set(cpu))
        .collect();
    let parallelism = std::thread::available_parallelism().unwrap().get();
    if cpus.len() < 2 || parallelism != cpus.len() {
        eprintln!("skipped: the serving threads are pinned only with 2+ CPUs and no CPU quota");
        return;
    }
    let p = project();
    let wws = Wws::builder(p.path())
        .env("RUST_LOG", "wws_server=trace")
        .start();
    let url = wws.url("");
    let (from, to) = (cpus[0], cpus[1]);
    let client = std::thread::spawn(move || {
        let pin = |cpu: usize| {
            let mut set = rustix::thread::CpuSet::new();
            set.set(cpu);
            rustix::thread::sched_setaffinity(None, &set).unwrap();
        };
        pin(from);
        // A lost wakeup after the move fails the test (a read timeout) instead of hanging it.
        let mut conn = http1::connect(&url);
        let mut bodies: Vec<String> = (0..10).map(|_| get_hello(&mut conn)).collect();
        pin(to);
        bodies.extend((0..40).map(|_| get_hello(&mut conn)));
        bodies
    });
    assert_eq!(client.join().unwrap(), vec!["Hello from wws"; 50]);
    wws.wait_for_output(&format!(
        "connection moved to its CPU's thread to=Some({})",
        cpus[1]
    ));
}

/// One `GET /hello` on a kept-alive connection: the body of its 200 response.
fn get_hello(conn: &mut std::net::TcpStream) -> String {
    http1::write_request(conn, "GET", "/hello", b"");
    let (head, body) = http1::read_response(conn);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    String::from_utf8(body).unwrap()
}

#[test]
fn an_idle_server_stops_ticking_and_the_cpu_limit_holds_after() {
    let p = project();
    let wws = Wws::builder(p.path())
        .args(["--timeout-ms", "500"])
        .env("RUST_LOG", "wws_worker::ticker=trace")
        .start();
    let parked = || wws.output().matches("epoch ticker parked").count();
    // Parked once after the start, then woken by the request.
    wws.wait_for_output("epoch ticker parked");
    let before = parked();
    assert_eq!(wws.get_text("/hello", 200), "Hello from wws");
    let deadline = Instant::now() + Duration::from_secs(30);
    while parked() == before {
        assert!(
            Instant::now() < deadline,
            "the ticker never parked after a request"
        );
        std::thread::park_timeout(Duration::from_millis(5));
    }
    // Ticking, the thread would wake 500 times a second: 150 times in this window.
    let before = epoch_thread_wakeups(wws.pid());
    std::thread::sleep(Duration::from_millis(300));
    let woke = epoch_thread_wakeups(wws.pid()) - before;
    assert!(woke < 10, "the idle ticker woke {woke} times in 300 ms");
    // The first instance wakes it: the loop is still stopped at its limit.
    let started = Instant::now();
    assert_eq!(wws.get("/loop").status().as_u16(), 504);
    assert_stopped_between(
        started.elapsed(),
        Duration::from_millis(400),
        Duration::from_secs(30),
    );
}

/// Times the `wws-epoch` thread of process `pid` went to sleep so far.
fn epoch_thread_wakeups(pid: u32) -> u64 {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).unwrap();
    let task = tasks
        .map(|t| t.unwrap().path())
        .find(|t| std::fs::read_to_string(t.join("comm")).is_ok_and(|c| c.trim() == "wws-epoch"))
        .expect("no wws-epoch thread");
    let status = std::fs::read_to_string(task.join("status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap()
}

#[test]
fn timeout_zero_turns_the_cpu_limit_off() {
    let p = project();
    // Busy work for longer than a 100 ms limit: a 504. The guest busy-waits on the wall
    // clock, and on a loaded machine it runs for only part of that time, so the wait is 10x
    // the limit. Without a limit, 300 ms of it is fine.
    let limited = Wws::builder(p.path()).args(["--timeout-ms", "100"]).start();
    let resp = client().get(limited.url("/sleep?ms=1000")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 504);
    drop(limited);
    let unlimited = Wws::builder(p.path()).args(["--timeout-ms", "0"]).start();
    assert_eq!(unlimited.get_text("/sleep?ms=300", 200), "slept");
    assert_eq!(unlimited.get_text("/hello", 200), "Hello from wws");
}

#[test]
fn a_request_that_waits_past_the_wall_clock_limit_gets_504_and_frees_its_slot() {
    let p = project();
    // A handler that awaits an hour-long timer: no CPU spent, so only a wall-clock limit ends it.
    p.file(
        "wait.js",
        "addEventListener('fetch', (e) => e.respondWith(new Promise((ok) => setTimeout(() => ok(new Response('late')), 3600e3))));",
    );
    // One instance slot: the next request is answered only if the waiting one gave it back.
    let wws = Wws::builder(p.path())
        .args(["--wall-timeout-ms", "300", "--instance-slots", "1"])
        .start();
    let started = Instant::now();
    let resp = client().get(wws.url("/wait")).send().unwrap();
    let took = started.elapsed();
    assert_eq!(resp.status().as_u16(), 504);
    assert_stopped_between(took, Duration::from_millis(250), Duration::from_secs(20));
    assert_eq!(wws.get_text("/hello", 200), "Hello from wws");
    wws.wait_for_output("wall-clock time limit of 300ms");
}

#[test]
fn the_wall_clock_limit_stops_a_busy_worker_too_and_zero_turns_it_off() {
    let p = project();
    // 2 s of busy work: under the CPU limit, over a 200 ms wall-clock limit.
    let limited = Wws::builder(p.path())
        .args(["--wall-timeout-ms", "200"])
        .start();
    let started = Instant::now();
    let resp = client().get(limited.url("/sleep?ms=2000")).send().unwrap();
    assert_eq!(resp.status().as_u16(), 504);
    assert!(started.elapsed() < Duration::from_millis(1900));
    assert_eq!(limited.get_text("/hello", 200), "Hello from wws");
    drop(limited);
    let unlimited = Wws::builder(p.path())
        .args(["--wall-timeout-ms", "0"])
        .start();
    assert_eq!(unlimited.get_text("/sleep?ms=300", 200), "slept");
}

#[test]
fn memory_hog_is_stopped_at_the_memory_limit() {
    let p = project();
    let wws = Wws::builder(p.path())
        .args(["--max-memory-mib", "32"])
        .start();
    assert_eq!(wws.get("/hog").status(), 500);
    wws.wait_for_output("memory limit");
    assert_eq!(wws.get_text("/hello", 200), "Hello from wws");
}

#[test]
fn output_and_body_limits() {
    let p = project();
    let wws = Wws::builder(p.path())
        .args(["--max-output-size", "10000", "--max-body-size", "1000"])
        .start();
    assert_eq!(wws.get("/big?bytes=100").status(), 200);
    assert_eq!(wws.get("/big?bytes=50000").status(), 500);
    wws.wait_for_output("output limit");
    let resp = client()
        .post(wws.url("/echo"))
        .body(vec![b'a'; 2000])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 413);
    let resp = client()
        .post(wws.url("/echo"))
        .body(vec![b'a'; 500])
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// Past the 64 KiB of stderr a run may log, the middle is dropped but the end is kept: the
/// exception a worker reports after a large `console.log` still reaches the log, and no log
/// line is longer than 8 KiB however long the worker's line.
#[test]
fn an_error_after_a_flood_of_stderr_still_reaches_the_log() {
    let p = Project::new();
    p.file(
        "index.js",
        r#"export default { async fetch() { console.log("payload", "y".repeat(200000)); console.log("z".repeat(100)); throw new Error("the real problem"); } };"#,
    );
    let wws = Wws::start(p.path());
    assert_eq!(wws.get("/").status(), 500);
    wws.wait_for_output("Error: the real problem");
    let output = wws.output();
    assert!(output.contains("bytes of stderr dropped"), "{output}");
    let longest = output.lines().map(str::len).max().unwrap_or_default();
    assert!(longest < 9 << 10, "a log line of {longest} bytes");
}

/// Deep recursion in JavaScript is a RangeError the worker can catch (a request that sends
/// JSON nested 100,000 levels deep too); in a `.wasm`, the request ends with a 500 and a log
/// line that says what happened, not a wasm backtrace. The next request is served.
#[test]
fn runaway_recursion_is_a_range_error_in_js_and_reported_as_such_in_wasm() {
    let p = Project::new();
    p.file(
        "index.js",
        r#"export default { async fetch(request) {
  const n = Number(new URL(request.url).searchParams.get("n"));
  const f = (k) => (k === 0 ? 0 : f(k - 1) + 1);
  try {
    if (request.method === "POST") return new Response(`parsed ${typeof (await request.json())}`);
    return new Response(`depth ${f(n)}`);
  } catch (e) {
    return new Response(`caught ${e.name}: ${e.message}`, { status: 400 });
  }
} };"#,
    );
    p.wasm("deep.wasm", "deep_recursion");
    let wws = Wws::start(p.path());
    assert_eq!(wws.get_text("/?n=2000", 200), "depth 2000");
    let deep = wws.get("/?n=1000000");
    assert_eq!(deep.status(), 400);
    assert_eq!(
        deep.text().unwrap(),
        "caught RangeError: Maximum call stack size exceeded"
    );
    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let resp = client().post(wws.url("/")).body(nested).send().unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().unwrap().starts_with("caught RangeError"));

    assert_eq!(wws.get("/deep").status(), 500);
    wws.wait_for_output("ran out of call stack");
    assert!(!wws.output().contains("wasm backtrace"), "{}", wws.output());
    assert_eq!(wws.get_text("/?n=10", 200), "depth 10");
}

/// With only warnings logged (`RUST_LOG=warn`), why a worker failed still reaches the log:
/// the JS engine's report and `console.error` are errors, `console.warn` a warning, and
/// `console.log` is left out.
#[test]
fn why_a_worker_failed_is_logged_as_an_error() {
    let p = Project::new();
    p.file(
        "index.js",
        r#"export default { async fetch() {
  console.log("chatter");
  console.warn("careful");
  console.error("bad input");
  throw new TypeError("the real problem");
} };"#,
    );
    let wws = Wws::builder(p.path()).env("RUST_LOG", "warn").start();
    assert_eq!(wws.get("/").status(), 500);
    wws.wait_for_output("TypeError: the real problem");
    let out = wws.output();
    assert!(
        out.contains("[warn] careful") && out.contains("[error] bad input"),
        "{out}"
    );
    assert!(!out.contains("chatter"), "{out}");
}
