//! JavaScript workers over HTTP. Every case of `tests/fixtures/js/cases.json` (the engine's own
//! expectations, one per behaviour) is replayed against the real binary: each fixture worker is
//! served as a catch-all so every case path reaches it, with its vars in a worker TOML.
//! Load failures must stop the start with the file and message; handler failures must answer
//! 500 and log the message with the worker's name.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::OnceLock;

use base64::Engine as _;
use serde_json::Value;
use wws_test_support::fixtures::{Project, module_cache_dir};
use wws_test_support::wws::client;
use wws_test_support::{Wws, workspace_root};

fn cases() -> Vec<Value> {
    let path = workspace_root().join("tests/fixtures/js/cases.json");
    let all: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    all["cases"].as_array().unwrap().clone()
}

/// Builds the bundled Hono app (npm packages at test time) once.
fn hono_bundle() -> &'static std::path::Path {
    static BUILT: OnceLock<std::path::PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = workspace_root().join("tests/fixtures/js/hono-app");
        let status = Command::new(dir.join("build.sh")).status().unwrap();
        assert!(status.success(), "building the Hono fixture app failed");
        dir.join("dist/[...app].js")
    })
}

fn worker_source(worker: &str) -> Vec<u8> {
    if worker.starts_with("hono-app/") {
        return std::fs::read(hono_bundle()).unwrap();
    }
    std::fs::read(workspace_root().join("tests/fixtures/js").join(worker)).unwrap()
}

fn project_for(worker: &str, env: &BTreeMap<String, String>) -> Project {
    let p = Project::new();
    p.file("[...path].js", worker_source(worker));
    let mut toml = String::from("version = \"1\"\n[data.kv]\nnamespace = \"js\"\n[vars]\n");
    for (k, v) in env {
        toml.push_str(&format!(
            "{} = {}\n",
            serde_json::to_string(k).unwrap(),
            serde_json::to_string(v).unwrap()
        ));
    }
    p.file("[...path].toml", toml);
    p
}

fn start(p: &Project) -> Result<Wws, String> {
    Wws::builder(p.path())
        .args(["--cache-dir"])
        .args([module_cache_dir()])
        .try_start()
        .map_err(|(_, out)| out)
}

/// Replaces the engine tests' host with the server's real one.
fn localize(v: &Value, base: &str) -> Value {
    serde_json::from_str(
        &serde_json::to_string(v)
            .unwrap()
            .replace("http://localhost:8080", base),
    )
    .unwrap()
}

fn check_case(wws: &Wws, case: &Value) -> Result<(), String> {
    let name = case["name"].as_str().unwrap();
    let req = &case["request"];
    let expect = localize(&case["expect"], wws.url("").trim_end_matches('/'));
    let path = req["path"].as_str().unwrap_or("/");
    let method =
        reqwest::Method::from_bytes(req["method"].as_str().unwrap_or("GET").as_bytes()).unwrap();
    let mut builder = client().request(method, wws.url(path));
    if let Some(headers) = req["headers"].as_object() {
        for (k, v) in headers {
            builder = builder.header(k, v.as_str().unwrap());
        }
    }
    if let Some(body) = req["body"].as_str() {
        let bytes = if req["base64"].as_bool() == Some(true) {
            base64::engine::general_purpose::STANDARD
                .decode(body)
                .unwrap()
        } else {
            body.as_bytes().to_vec()
        };
        builder = builder.body(bytes);
    }
    let resp = builder.send().map_err(|e| format!("{name}: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().unwrap().to_vec();
    let text = String::from_utf8_lossy(&body).into_owned();
    let fail = |what: String| Err(format!("{name}: {what}\n  status {status}, body {text:?}"));

    if expect["exit"].as_i64() == Some(1) {
        if status != 500 {
            return fail("a failing handler must answer 500".into());
        }
    } else if status != expect["status"].as_u64().unwrap_or(200) as u16 {
        return fail(format!("status: want {}", expect["status"]));
    }
    if let Some(want) = expect["body"].as_str()
        && text != want
    {
        return fail(format!("body: want {want:?}"));
    }
    if let Some(want) = expect["base64"].as_str() {
        let want = base64::engine::general_purpose::STANDARD
            .decode(want)
            .unwrap();
        if body != want {
            return fail(format!("binary body: want {want:?}"));
        }
    }
    if !expect["json"].is_null() {
        let got: Value = serde_json::from_slice(&body)
            .map_err(|e| format!("{name}: body is not JSON ({e}): {text}"))?;
        if got != expect["json"] {
            return fail(format!("json: want {}", expect["json"]));
        }
    }
    if let Some(want) = expect["headers"].as_object() {
        for (k, v) in want {
            let got: Vec<&str> = headers
                .get_all(k.as_str())
                .iter()
                .map(|v| v.to_str().unwrap_or("?"))
                .collect();
            let want: Vec<&str> = match v {
                Value::Array(items) => items.iter().map(|i| i.as_str().unwrap()).collect(),
                other => vec![other.as_str().unwrap()],
            };
            if got != want {
                return fail(format!("header {k}: want {want:?}, got {got:?}"));
            }
        }
    }
    if let Some(lines) = expect["stderr"].as_array() {
        // The server logs each stderr line as its own event, prefixed with the worker's name.
        for line in lines.iter().flat_map(|l| l.as_str().unwrap().lines()) {
            if !wws.output_within(line.trim(), std::time::Duration::from_secs(10)) {
                return fail(format!("log line {:?} never appeared", line.trim()));
            }
        }
    }
    Ok(())
}

#[test]
fn every_engine_case_over_http() {
    let mut by_worker: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for case in cases() {
        // Cases that seed the namespace or route params from outside are engine-level; the KV
        // and params tests below drive them through real requests instead. So are cases with
        // a request URL of their own: over HTTP the host sends the URL the client asked for.
        let request = &case["request"];
        if !request["kv"].is_null() || !request["params"].is_null() || !request["url"].is_null() {
            continue;
        }
        by_worker
            .entry(case["worker"].as_str().unwrap().to_string())
            .or_default()
            .push(case);
    }
    let mut failures = Vec::new();
    let mut checked = 0;
    for (worker, cases) in &by_worker {
        let mut env = BTreeMap::new();
        for case in cases {
            if let Some(vars) = case["env"].as_object() {
                for (k, v) in vars {
                    env.insert(k.clone(), v.as_str().unwrap().to_string());
                }
            }
        }
        let p = project_for(worker, &env);
        match start(&p) {
            Ok(wws) => {
                for case in cases {
                    checked += 1;
                    if let Err(e) = check_case(&wws, case) {
                        failures.push(format!("{e}\n--- wws output ---\n{}", wws.output()));
                    }
                }
            }
            Err(out) => {
                // Only a worker that cannot load may stop the start, and the error must say why.
                for case in cases {
                    checked += 1;
                    let expect = &case["expect"];
                    let all_in = expect["stderr"]
                        .as_array()
                        .map(|ls| ls.iter().all(|l| out.contains(l.as_str().unwrap())))
                        .unwrap_or(false);
                    if expect["exit"].as_i64() != Some(1) || !all_in {
                        failures.push(format!(
                            "{}: the server did not start:\n{out}",
                            case["name"]
                        ));
                    }
                }
            }
        }
    }
    assert!(checked > 40, "only {checked} cases ran");
    assert!(
        failures.is_empty(),
        "{} of {checked} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn syntax_error_stops_the_start_with_file_line_and_message() {
    let p = Project::new();
    p.file(
        "api/broken.js",
        "addEventListener('fetch', (e) => {\n  e.respondWith(new Response('x')\n});\n",
    );
    wws_test_support::assert_start_fails(p.path(), &["api/broken.js:", "SyntaxError"]);
}

#[test]
fn a_worker_that_is_not_utf8_stops_the_start_naming_it() {
    let p = Project::new();
    p.file(
        "latin1.js",
        b"// caf\xe9\naddEventListener('fetch', () => {});\n",
    );
    wws_test_support::assert_start_fails(p.path(), &["latin1.js", "not UTF-8", "offset 6"]);
}

#[test]
fn kv_counter_params_and_vars_through_real_requests() {
    let p = Project::new();
    p.file("counter.js", worker_source("kv.js"));
    p.file(
        "counter.toml",
        "version = \"1\"\n[data.kv]\nnamespace = \"c\"\n",
    );
    p.file("users/[id].js", worker_source("params-plain.js"));
    p.file("vars.js", worker_source("env-sw.js"));
    p.file(
        "vars.toml",
        "version = \"1\"\n[vars]\nMESSAGE = \"$WWS_TEST_JS_MESSAGE\"\n",
    );
    let wws = Wws::builder(p.path())
        .args(["--cache-dir"])
        .args([module_cache_dir()])
        .env("WWS_TEST_JS_MESSAGE", "from the host")
        .start();
    for i in 1..=3 {
        assert_eq!(wws.get_text("/counter", 200), i.to_string());
    }
    let put: Value =
        serde_json::from_str(&wws.get_text("/counter?op=put&key=k1&value=v1", 200)).unwrap();
    assert_eq!(put["now"], "v1");
    let got: Value = serde_json::from_str(&wws.get_text("/counter?op=get&key=k1", 200)).unwrap();
    assert_eq!(got["value"], "v1");
    wws.get_text("/counter?op=delete&key=k1", 200);
    let got: Value = serde_json::from_str(&wws.get_text("/counter?op=get&key=k1", 200)).unwrap();
    assert_eq!(got["missing"], true);
    let params: Value = serde_json::from_str(&wws.get_text("/users/7", 200)).unwrap();
    assert_eq!(params["id"], "7");
    assert_eq!(wws.get_text("/vars", 200), "from the host");
}

#[test]
fn an_infinite_loop_in_js_is_stopped() {
    let p = Project::new();
    p.file(
        "spin.js",
        "addEventListener('fetch', (e) => { for (;;) {} });\n",
    );
    p.file(
        "ok.js",
        "addEventListener('fetch', (e) => e.respondWith(new Response('ok')));\n",
    );
    let wws = Wws::builder(p.path())
        .args(["--timeout-ms", "1000", "--cache-dir"])
        .args([module_cache_dir()])
        .start();
    assert_eq!(wws.get("/spin").status(), 504);
    assert_eq!(wws.get_text("/ok", 200), "ok");
}

/// Unbounded recursion and deeply nested input fail the request (500), never the server:
/// QuickJS' own stack limit or wasmtime's native stack limit stops them before the engine's
/// shadow stack runs into its heap. Moderate depths still work.
#[test]
fn deep_recursion_and_nesting_fail_the_request_not_the_server() {
    let p = Project::new();
    p.file(
        "recurse.js",
        r#"
function depth(n, max) { return n === max ? n : depth(n + 1, max); }
addEventListener("fetch", (e) => {
  const max = Number(new URL(e.request.url).searchParams.get("max"));
  e.respondWith(new Response(String(depth(0, max))));
});
"#,
    );
    p.file(
        "nested.js",
        "addEventListener('fetch', (e) => e.respondWith(e.request.text().then((t) => new Response(String(JSON.parse(t).length)))));\n",
    );
    p.file(
        "ok.js",
        "addEventListener('fetch', (e) => e.respondWith(new Response('ok')));\n",
    );
    let wws = Wws::builder(p.path())
        .args(["--cache-dir"])
        .args([module_cache_dir()])
        .start();
    assert_eq!(wws.get_text("/recurse?max=200", 200), "200");
    assert_eq!(wws.get("/recurse?max=100000000").status(), 500);
    let post = |body: String| client().post(wws.url("/nested")).body(body).send().unwrap();
    let resp = post(format!("{}{}", "[".repeat(100), "]".repeat(100)));
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "1");
    let deep = "[".repeat(1_000_000) + &"]".repeat(1_000_000);
    assert_eq!(post(deep).status(), 500);
    assert_eq!(wws.get_text("/ok", 200), "ok");
}

/// Every request starts from the worker's snapshot, whatever the requests before it wrote:
/// a global counter and a heap written all over answer the same on every request, one after
/// another and from several connections at once. The pooled memory is restored page by page
/// (`dirty_pages.rs` joins the pages a request wrote so wasmtime keeps them resident), and a
/// page restored wrongly would show here as a count above 1 or a changed checksum.
#[test]
fn every_request_starts_from_the_snapshot() {
    let p = Project::new();
    p.file(
        "index.js",
        r#"
let count = 0;
const heap = [];
for (let i = 0; i < 2000; i++) heap.push({ i, text: "item " + i });
addEventListener("fetch", (e) => {
  count += 1;
  let sum = 0;
  // Touch objects all over the heap: reference counts and new properties.
  for (const item of heap) { item.seen = (item.seen || 0) + 1; sum += item.i + item.seen; }
  heap.push({ i: -1, text: "x".repeat(10000) });
  e.respondWith(new Response(`${count} ${sum} ${heap.length}`));
});
"#,
    );
    let wws = Wws::start(p.path());
    let expected = format!("1 {} 2001", (0..2000).sum::<u32>() + 2000);
    for _ in 0..20 {
        assert_eq!(wws.get_text("/", 200), expected);
    }
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..25 {
                    assert_eq!(wws.get_text("/", 200), expected);
                }
            });
        }
    });
}

#[test]
fn top_level_logs_show_at_start_and_random_values_frozen_there_are_pointed_out() {
    let p = Project::new();
    p.file(
        "frozen.js",
        "console.log('loading frozen'); const id = crypto.randomUUID();\n\
         addEventListener('fetch', (e) => e.respondWith(new Response(id)));",
    );
    p.file(
        "fresh.js",
        "addEventListener('fetch', (e) => e.respondWith(new Response(crypto.randomUUID())));",
    );
    // Math.random is seeded per request (on first use), also when loading used it.
    p.file(
        "math.js",
        "const atLoad = Math.random();\n\
         addEventListener('fetch', (e) => e.respondWith(new Response(String([atLoad, Math.random(), Math.random()]))));",
    );
    let wws = Wws::start(p.path());
    // The same value for every request: computed once, while loading.
    assert_eq!(wws.get_text("/frozen", 200), wws.get_text("/frozen", 200));
    assert_ne!(wws.get_text("/fresh", 200), wws.get_text("/fresh", 200));
    let answers: Vec<Vec<String>> = (0..3)
        .map(|_| {
            wws.get_text("/math", 200)
                .split(',')
                .map(String::from)
                .collect()
        })
        .collect();
    assert!(answers.iter().all(|a| a[0] == answers[0][0]), "{answers:?}");
    let drawn: std::collections::BTreeSet<&String> = answers.iter().flat_map(|a| &a[1..]).collect();
    assert_eq!(
        drawn.len(),
        6,
        "Math.random repeated across requests: {answers:?}"
    );
    let out = wws.output();
    let logged = |needle: &str| {
        out.lines()
            .any(|l| l.contains("frozen.js") && l.contains(needle))
    };
    assert!(logged("loading frozen"), "{out}");
    assert!(logged("called crypto.randomUUID() while loading"), "{out}");
    assert!(!out.contains("fresh.js called"), "{out}");
}

#[test]
fn a_worker_written_for_the_original_stores_the_request_body_as_it_came() {
    // The original's tic-tac-toe example: `Cache.set(room, request.body)`, with `body` a string.
    let p = Project::new();
    p.file(
        "game.js",
        "addEventListener('fetch', (event) => {\n\
           const request = event.request;\n\
           const room = new URL(request.url).searchParams.get('room');\n\
           if (request.method === 'PUT') Cache.set(room, request.body);\n\
           event.respondWith(new Response(Cache.get(room) || '{}'));\n\
         });",
    );
    p.file(
        "game.toml",
        "name = \"game\"\nversion = \"1\"\n[data.kv]\nnamespace = \"games\"\n",
    );
    let wws = Wws::start(p.path());
    let board = r#"["x","o",""]"#;
    let put = wws_test_support::wws::client()
        .put(wws.url("/game?room=abc"))
        .body(board)
        .send()
        .unwrap();
    assert_eq!(put.text().unwrap(), board);
    assert_eq!(wws.get_text("/game?room=abc", 200), board);
}

/// Counts the requests its instance served and answers `<instance> <count> <timers that
/// fired late>`; `?throw` fails, `?leave` leaves a timer behind, `?to=URL` fetches first.
const REUSE_WORKER: &str = r#"
const instance = String(Math.random()).slice(2);
let served = 0;
let late = 0;
let lastEvent = null;
let lastRequest = null;
addEventListener("fetch", (event) => event.respondWith((async () => {
  served += 1;
  // Each request gets its own event and Request, made for it (the first one's were made
  // while the snapshot was taken).
  if (event === lastEvent || event.request === lastRequest) throw new Error("an earlier request's event came back");
  if (!(event.timeStamp >= 0 && event.timeStamp <= performance.now())) throw new Error("timeStamp " + event.timeStamp);
  lastEvent = event;
  lastRequest = event.request;
  const q = new URL(event.request.url).searchParams;
  if (q.has("throw")) throw new Error("asked to fail");
  if (q.has("leave")) setTimeout(() => { late += 1; }, 1);
  const fetched = q.has("to") ? " " + (await (await fetch(q.get("to"))).text()) : "";
  return new Response(`${instance} ${served} ${late}${fetched}`);
})()));
"#;

/// REUSE_WORKER as a module worker: its `ctx` and Request are its own on every request.
const REUSE_MODULE: &str = r#"
const instance = String(Math.random()).slice(2);
let served = 0;
let last = null;
export default {
  async fetch(request, env, ctx) {
    served += 1;
    if (last && (last.request === request || last.ctx === ctx)) throw new Error("an earlier request's ctx came back");
    ctx.waitUntil(Promise.resolve());
    last = { request, ctx };
    return new Response(`${instance} ${served} 0 ${new URL(request.url).pathname}`);
  },
};
"#;

/// `(instance, requests it served, late timers, rest)` of one REUSE_WORKER answer.
fn reuse_answer(wws: &Wws, path: &str) -> (String, u32, u32, String) {
    let text = wws.get_text(path, 200);
    let mut parts = text.splitn(4, ' ');
    let mut next = || parts.next().unwrap_or_default().to_owned();
    let (instance, served, late, rest) = (next(), next(), next(), next());
    (
        instance,
        served.parse().unwrap(),
        late.parse().unwrap(),
        rest,
    )
}

/// `[runtime] reuse = true`: live instances serve many requests, so module state survives
/// between them; a timer a request left behind never fires in a later one, a failed request
/// costs only its instance, and fetch works. Without the setting every request starts from
/// the snapshot, as in the original.
#[test]
fn reuse_mode_is_opt_in_and_keeps_module_state_between_requests() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("data.txt"), "upstream data").unwrap();
    let upstream = wws_test_support::repo_server::RepoServer::serve(files.path());
    let p = Project::new();
    p.file("fresh.js", REUSE_WORKER);
    p.file("warm.js", REUSE_WORKER);
    p.file(
        "warm.toml",
        "version = \"1\"\n[runtime]\nreuse = true\n[features.http_requests]\nallowed_hosts = [\"127.0.0.1\"]\nallow_http = true\n",
    );
    p.file("module.js", REUSE_MODULE);
    p.file("module.toml", "version = \"1\"\n[runtime]\nreuse = true\n");
    let wws = start(&p).unwrap();

    let mut most = 0;
    for _ in 0..6 {
        let (_, served, _, path) = reuse_answer(&wws, "/module");
        assert_eq!(path, "/module");
        most = most.max(served);
    }
    assert!(most >= 2, "no module instance served two requests");

    for _ in 0..3 {
        assert_eq!(
            reuse_answer(&wws, "/fresh").1,
            1,
            "a fresh instance per request"
        );
    }
    let mut last: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..6 {
        let path = if i == 1 { "/warm?leave" } else { "/warm" };
        let (instance, served, late, _) = reuse_answer(&wws, path);
        assert_eq!(late, 0, "a timer left by an earlier request fired");
        let before = last.insert(instance, served).unwrap_or(0);
        assert!(
            served > before,
            "an instance's count went back: {served} after {before}"
        );
    }
    assert!(
        last.values().any(|&served| served >= 2),
        "no instance served two requests: {last:?}"
    );
    assert_eq!(wws.get("/warm?throw").status(), 500);
    let (_, _, _, fetched) = reuse_answer(
        &wws,
        &format!("/warm?to={}", upstream.url("data.txt").replace(':', "%3A")),
    );
    assert_eq!(fetched, "upstream data");
    assert!(
        wws.output_within("asked to fail", std::time::Duration::from_secs(10)),
        "the failure is not logged: {}",
        wws.output()
    );
}

/// Objects alive in the snapshot are immortal (engines/js/patches/): requests share their
/// shapes, change them, build strings from them and make garbage cycles around them. None
/// of that may leak into them (`p0` keeps its own keys when a new Point grows one) or free
/// them, also when the garbage is enough for QuickJS' cycle collection to run.
const SNAPSHOT_OBJECTS: &str = r#"
const base = { kind: "snapshot" };
const shared = Object.create(base);
const list = [1, 2, 3];
const text = "snap";
const cache = new Map([["k", { v: 1 }]]);
class Point { constructor(x) { this.x = x; } }
const p0 = new Point(0);
addEventListener("fetch", (event) => {
  const a = new Point(1);
  a.y = 2;
  const b = Object.create(base);
  b.extra = true;
  shared.own = (shared.own || 0) + 1;
  const s = text + "-" + "x".repeat(3);
  let built = "";
  for (let i = 0; i < 50; i++) built += String.fromCharCode(97 + (i % 26));
  cache.get("k").v += 1;
  let odd = 0;
  if (new URL(event.request.url).searchParams.has("garbage")) {
    for (let i = 0; i < 400000; i++) {
      const o = { i, base, list, p0 };
      o.self = o;
      odd += o.i & 1;
    }
  }
  event.respondWith(Response.json({
    p0: Object.keys(p0), a: Object.keys(a), b: Object.keys(b), base: Object.keys(base),
    own: shared.own, s, built: built.length, v: cache.get("k").v, list: list.length, odd,
  }));
});
"#;

#[test]
fn snapshot_objects_stay_intact_whatever_requests_do_with_them() {
    let p = Project::new();
    p.file("objects.js", SNAPSHOT_OBJECTS);
    let wws = start(&p).unwrap();
    for (path, odd) in [
        ("/objects", 0),
        ("/objects?garbage", 200_000),
        ("/objects", 0),
    ] {
        let got: Value = serde_json::from_str(&wws.get_text(path, 200)).unwrap();
        let want = serde_json::json!({
            "p0": ["x"], "a": ["x", "y"], "b": ["extra"], "base": ["kind"],
            "own": 1, "s": "snap-xxx", "built": 50, "v": 2, "list": 3, "odd": odd,
        });
        assert_eq!(got, want, "{path}");
    }
}
