//! Outbound HTTP from JavaScript, Rust, Python and Ruby workers, within `[features.http_requests]`: real
//! requests to an upstream on 127.0.0.1, and every kind of refusal with a message that says
//! which setting to change.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use wws_test_support::Wws;
use wws_test_support::fixtures::Project;
use wws_test_support::repo_server::RepoServer;

/// Fetches `?to=URL` with `?method=` and `?body=`, and answers what came back, or the error.
const WORKER: &str = r#"
addEventListener("fetch", (event) => event.respondWith((async () => {
  const q = new URL(event.request.url).searchParams;
  const method = q.get("method") || "GET";
  const init = { method, headers: { "x-test": "from-wws" } };
  if (q.has("auth")) init.headers.authorization = "Bearer secret";
  if (q.has("host")) init.headers.host = "evil.example";
  if (q.has("redirect")) init.redirect = q.get("redirect");
  if (q.has("body")) init.body = q.get("body");
  try {
    const r = await fetch(q.get("to"), init);
    return new Response(`${r.status} ${r.redirected} ${await r.text()}`);
  } catch (error) {
    return new Response(`${error.name}: ${error.message}`, { status: 502 });
  }
})()));
"#;

fn project(grant: Option<&str>) -> Project {
    let p = Project::new();
    p.file("index.js", WORKER);
    if let Some(grant) = grant {
        p.file(
            "index.toml",
            format!("name = \"index\"\nversion = \"1\"\n[features.http_requests]\n{grant}\n"),
        );
    }
    p
}

fn fetch_through(wws: &Wws, to: &str, extra: &str) -> (u16, String) {
    let resp = wws.get(&format!("/?to={}{extra}", urlencode(to)));
    let status = resp.status().as_u16();
    (status, resp.text().unwrap())
}

/// POSTs `body` to the Rust worker at `/fetch`, which passes it on to `to`; 200 expected.
fn post_through(wws: &Wws, to: &str, body: &'static str) -> String {
    let resp = wws_test_support::wws::client()
        .post(wws.url(&format!("/fetch?to={to}&method=POST")))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.text().unwrap()
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn allowed_requests_go_out_and_come_back() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("data.txt"), "upstream data").unwrap();
    let upstream = RepoServer::serve(files.path());
    let p = project(Some(
        "allowed_hosts = [\"127.0.0.1\"]\nallow_http = true\nallowed_methods = [\"GET\", \"POST\"]",
    ));
    let wws = Wws::start(p.path());

    let (status, text) = fetch_through(&wws, &upstream.url("data.txt"), "");
    assert_eq!((status, text.as_str()), (200, "200 false upstream data"));
    let (status, text) = fetch_through(&wws, &upstream.url("echo"), "&method=POST&body=hello");
    assert_eq!(
        (status, text.as_str()),
        (200, "200 false POST from-wws hello")
    );
    let (_, text) = fetch_through(&wws, &upstream.url("missing.txt"), "");
    assert!(text.starts_with("404 false"), "{text}");
    // A redirect within the allowed hosts is followed.
    upstream.redirect("old.txt", &upstream.url("data.txt"));
    let (_, text) = fetch_through(&wws, &upstream.url("old.txt"), "");
    assert_eq!(text, "200 true upstream data");
}

#[test]
fn a_fetched_response_can_be_returned_as_it_is() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("data.txt"), "upstream data").unwrap();
    let upstream = RepoServer::serve(files.path());
    let p = project(Some("allowed_hosts = [\"127.0.0.1\"]\nallow_http = true"));
    p.file(
        "index.js",
        "addEventListener('fetch', (e) => e.respondWith(fetch(new URL(e.request.url).searchParams.get('to'))));",
    );
    // A Content-Length that does not match the body is the worker's mistake: said once.
    p.file(
        "wrong.js",
        "addEventListener('fetch', (e) => e.respondWith(new Response('12345', { headers: { 'content-length': '9' } })));",
    );
    let wws = Wws::start(p.path());
    let resp = wws.get(&format!("/?to={}", urlencode(&upstream.url("data.txt"))));
    assert_eq!(resp.headers()["content-length"], "13");
    assert_eq!(resp.text().unwrap(), "upstream data");
    // The upstream's own Content-Length matches: dropped without a warning.
    assert!(
        !wws.output().contains("dropped response header"),
        "{}",
        wws.output()
    );
    assert_eq!(wws.get_text("/wrong", 200), "12345");
    wws.wait_for_output("is not the body's 5 bytes");
}

#[test]
fn what_the_worker_toml_does_not_allow_is_refused_naming_the_setting() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("data.txt"), "upstream data").unwrap();
    let upstream = RepoServer::serve(files.path());
    let data = upstream.url("data.txt");
    let other_host = data.replace("127.0.0.1", "localhost");

    let strict = Wws::start(project(Some("allowed_hosts = [\"127.0.0.1\"]")).path());
    let (status, text) = fetch_through(&strict, &data, "");
    assert_eq!(status, 502);
    assert!(
        text.contains("allow_http") && text.contains("TypeError"),
        "{text}"
    );

    let open =
        Wws::start(project(Some("allowed_hosts = [\"127.0.0.1\"]\nallow_http = true")).path());
    let (_, text) = fetch_through(&open, &other_host, "");
    assert!(
        text.contains("'localhost' is not allowed") && text.contains("allowed_hosts"),
        "{text}"
    );
    let (_, text) = fetch_through(&open, &upstream.url("echo"), "&method=OPTIONS");
    assert!(
        text.contains("'OPTIONS'") && text.contains("allowed_methods"),
        "{text}"
    );
    // A redirect to a host the worker may not call is refused, not followed.
    upstream.redirect("away.txt", &other_host);
    let before = upstream.requests().len();
    let (_, text) = fetch_through(&open, &upstream.url("away.txt"), "");
    assert!(text.contains("'localhost' is not allowed"), "{text}");
    assert_eq!(
        upstream.requests().len(),
        before + 1,
        "{:?}",
        upstream.requests()
    );

    // Credentials in the URL: a TypeError, as the Fetch standard says.
    let with_credentials = data.replace("http://", "http://user:secret@");
    let (status, text) = fetch_through(&open, &with_credentials, "");
    assert_eq!(status, 502);
    assert!(
        text.contains("TypeError") && text.contains("Authorization header"),
        "{text}"
    );

    // An entry with a port can never match: said at load.
    let port = Wws::start(project(Some("allowed_hosts = [\"127.0.0.1:8080\"]")).path());
    port.wait_for_output("\"127.0.0.1:8080\", which no request can match");

    // No `[features.http_requests]`: nothing goes out.
    let none = Wws::start(project(None).path());
    let before = upstream.requests().len();
    let (status, text) = fetch_through(&none, &data, "");
    assert_eq!(status, 502);
    assert!(text.contains("[features.http_requests]"), "{text}");
    assert_eq!(upstream.requests().len(), before);
}

#[test]
fn rust_workers_send_requests_with_the_sdk() {
    let files = tempfile::tempdir().unwrap();
    let upstream = RepoServer::serve(files.path());
    let p = Project::new();
    p.wasm("fetch.wasm", "fetch_upstream");
    p.file(
        "fetch.toml",
        "name = \"fetch\"\nversion = \"1\"\n[features.http_requests]\nallowed_hosts = [\"127.0.0.1\"]\nallow_http = true\n",
    );
    let wws = Wws::start(p.path());
    let echo = urlencode(&upstream.url("echo"));
    let text = post_through(&wws, &echo, "from the worker");
    assert_eq!(text, "200 POST from-rust from the worker");
    let resp = wws.get(&format!("/fetch?to={echo}&method=OPTIONS"));
    assert_eq!(resp.status(), 502);
    let text = resp.text().unwrap();
    assert!(
        text.starts_with("NotAllowed") && text.contains("allowed_methods"),
        "{text}"
    );
}

/// A `.wasm` built with the original's Rust kit imports `http.send-http-request` (wit-bindgen's
/// 2022 canonical ABI) instead of wws' own calls: it works unchanged, under the same policy.
#[test]
fn workers_built_with_the_original_kit_send_requests_through_its_import() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("data.txt"), "upstream data").unwrap();
    let upstream = RepoServer::serve(files.path());
    let p = Project::new();
    p.wasm("fetch.wasm", "original_fetch");
    p.file(
        "fetch.toml",
        "name = \"fetch\"\nversion = \"1\"\n[features.http_requests]\nallowed_hosts = [\"127.0.0.1\"]\nallow_http = true\nallowed_methods = [\"GET\", \"POST\"]\n",
    );
    p.wasm("denied.wasm", "original_fetch");
    let wws = Wws::start(p.path());
    assert!(
        !wws.output().contains("imports not provided by wws"),
        "{}",
        wws.output()
    );
    let data = urlencode(&upstream.url("data.txt"));
    assert_eq!(
        wws.get_text(&format!("/fetch?to={data}"), 200),
        "200 content-length=13 upstream data"
    );
    let echo = urlencode(&upstream.url("echo"));
    let text = post_through(&wws, &echo, "from the worker");
    assert!(
        text.starts_with("200 content-length=")
            && text.ends_with(" POST from-original-kit from the worker"),
        "{text}"
    );
    // Refusals come back as the kit's error codes: 3 is `not-allowed`, 0 `invalid-request`.
    let refused = |path: &str| {
        let resp = wws.get(path);
        assert_eq!(resp.status(), 502);
        resp.text().unwrap()
    };
    let text = refused(&format!("/fetch?to={echo}&method=OPTIONS"));
    assert!(
        text.starts_with("3 ") && text.contains("allowed_methods"),
        "{text}"
    );
    let text = refused(&format!("/denied?to={data}"));
    assert!(
        text.starts_with("3 ") && text.contains("[features.http_requests]"),
        "{text}"
    );
    let text = refused(&format!("/fetch?to={data}&method=BOGUS"));
    assert!(text.starts_with("0 unknown method"), "{text}");
    assert_eq!(upstream.requests().len(), 2);
}

#[test]
fn credentials_do_not_follow_a_redirect_to_another_origin() {
    let files = tempfile::tempdir().unwrap();
    let upstream = RepoServer::serve(files.path());
    let p = project(Some(
        "allowed_hosts = [\"127.0.0.1\", \"localhost\"]\nallow_http = true",
    ));
    let wws = Wws::start(p.path());
    let echo = upstream.url("echo?h=authorization");
    upstream.redirect("same", &echo);
    upstream.redirect("other", &echo.replace("127.0.0.1", "localhost"));
    let (_, same) = fetch_through(&wws, &upstream.url("same"), "&auth=1");
    assert_eq!(same, "200 true GET Bearer secret ");
    let (_, other) = fetch_through(&wws, &upstream.url("other"), "&auth=1");
    assert_eq!(other, "200 true GET - ");
}

#[test]
fn redirect_modes_the_host_header_and_loading_time_are_handled() {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("data.txt"), "upstream data").unwrap();
    let upstream = RepoServer::serve(files.path());
    let p = project(Some("allowed_hosts = [\"127.0.0.1\"]\nallow_http = true"));
    // A fetch while the worker loads is refused, saying why, and the start goes on.
    p.file(
        "early.js",
        "fetch('http://127.0.0.1:9/').catch((e) => console.log('early: ' + e.message));\n\
         addEventListener('fetch', (e) => e.respondWith(new Response('ok')));",
    );
    let wws = Wws::start(p.path());
    assert!(
        wws.output()
            .contains("not available while the worker loads"),
        "{}",
        wws.output()
    );

    upstream.redirect("moved", &upstream.url("data.txt"));
    let (_, manual) = fetch_through(&wws, &upstream.url("moved"), "&redirect=manual");
    assert_eq!(manual, "302 false ");
    let (status, error) = fetch_through(&wws, &upstream.url("moved"), "&redirect=error");
    assert_eq!(status, 502);
    assert!(error.contains("redirect: \"error\""), "{error}");

    // The Host header is the URL's, whatever the worker sets.
    let echo = upstream.url("echo?h=host");
    let (_, text) = fetch_through(&wws, &echo, "&host=1");
    let authority = echo
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap();
    assert_eq!(text, format!("200 false GET {authority} "));
}

#[test]
fn fetches_overlap_and_an_aborted_one_rejects_at_once() {
    let files = tempfile::tempdir().unwrap();
    let upstream = RepoServer::serve(files.path());
    let p = Project::new();
    // Both requests must be at the upstream together before either is answered: one at a
    // time, the first would wait for the second forever.
    p.file(
        "both.js",
        "addEventListener('fetch', (e) => e.respondWith((async () => {\n\
           const to = new URL(e.request.url).searchParams.get('to');\n\
           const [a, b] = await Promise.all([fetch(to), fetch(to)]);\n\
           return new Response(`${await a.text()} ${await b.text()}`);\n\
         })()));",
    );
    // A request that cannot be answered, aborted by a timer.
    p.file(
        "abort.js",
        "addEventListener('fetch', (e) => e.respondWith((async () => {\n\
           const to = new URL(e.request.url).searchParams.get('to');\n\
           const c = new AbortController();\n\
           setTimeout(() => c.abort(), 20);\n\
           try { await fetch(to, { signal: c.signal }); return new Response('answered'); }\n\
           catch (error) { return new Response(error.name); }\n\
         })()));",
    );
    let grant = "[features.http_requests]\nallowed_hosts = [\"127.0.0.1\"]\nallow_http = true\n";
    p.file(
        "both.toml",
        format!("name = \"both\"\nversion = \"1\"\n{grant}"),
    );
    p.file(
        "abort.toml",
        format!("name = \"abort\"\nversion = \"1\"\n{grant}"),
    );
    let wws = Wws::start(p.path());
    let both = format!("/both?to={}", urlencode(&upstream.url("barrier?n=2")));
    assert_eq!(wws.get_text(&both, 200), "open open");
    let abort = format!("/abort?to={}", urlencode(&upstream.url("barrier?n=99")));
    assert_eq!(wws.get_text(&abort, 200), "AbortError");
}

/// `waitUntil` work runs after the response: the client is answered while that work still
/// waits on the upstream, and its key/value write is saved when it ends.
#[test]
fn wait_until_work_runs_after_the_response_and_its_kv_writes_are_kept() {
    let files = tempfile::tempdir().unwrap();
    let upstream = RepoServer::serve(files.path());
    let p = Project::new();
    p.file(
        "index.js",
        r#"
export default {
  async fetch(request, env, ctx) {
    const to = new URL(request.url).searchParams.get("to");
    if (!to) return new Response(`${await env.KV.get("answered")} ${await env.KV.get("after")}`);
    await env.KV.put("answered", "yes");
    ctx.waitUntil(fetch(to).then((r) => r.text()).then((text) => env.KV.put("after", text)));
    return new Response("answered");
  },
};"#,
    );
    p.file(
        "index.toml",
        "name = \"index\"\nversion = \"1\"\n[data.kv]\nnamespace = \"w\"\n[features.http_requests]\nallowed_hosts = [\"127.0.0.1\"]\nallow_http = true\n",
    );
    // Were the answer to wait for the waitUntil work, it would be a 504 after 20 s.
    let wws = Wws::builder(p.path())
        .args(["--wall-timeout-ms", "20000"])
        .start();
    // The barrier opens when a second request reaches it: the test's, after the answer.
    let barrier = upstream.url("barrier?n=2");
    assert_eq!(
        wws.get_text(&format!("/?to={}", urlencode(&barrier)), 200),
        "answered"
    );
    assert_eq!(wws.get_text("/", 200), "yes null");
    let opened = wws_test_support::wws::client()
        .get(&barrier)
        .send()
        .unwrap();
    assert_eq!(opened.text().unwrap(), "open");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let seen = wws.get_text("/", 200);
        if seen == "yes open" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the waitUntil write never landed: {seen}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        !wws.output().contains("after it answered"),
        "{}",
        wws.output()
    );
}

/// An interpreted worker that fetches the `x-to` header's URL (method `x-method`, body
/// `x-body`) and answers `status redirected content-length text`, or `kind: message` with 502.
struct Interpreted {
    runtime: &'static str,
    ext: &'static str,
    worker: &'static str,
    /// Calls fetch at its top level, catching the error, and answers the error's kind.
    top: &'static str,
}

const PYTHON: Interpreted = Interpreted {
    runtime: "python",
    ext: "py",
    worker: r##"
def worker(req):
    try:
        r = fetch(req.headers["x-to"], method=req.headers.get("x-method", "GET"),
                  headers={"x-test": "from-worker"}, body=req.headers.get("x-body"))
        return Response(f"{r.status} {'yes' if r.redirected else 'no'} {dict(r.header_list).get('content-length')} {r.text()}")
    except HttpError as e:
        return Response(f"{e.kind}: {e.message}", 502)
"##,
    top: r##"
try:
    fetch("http://127.0.0.1:1/")
    kind = "none"
except HttpError as e:
    kind = e.kind
def worker(req):
    return Response(kind)
"##,
};

const RUBY: Interpreted = Interpreted {
    runtime: "ruby",
    ext: "rb",
    worker: r##"
def worker(req)
  r = fetch(req.headers['x-to'], method: req.headers['x-method'] || 'GET',
            headers: { 'x-test' => 'from-worker' }, body: req.headers['x-body'])
  Response.ok("#{r.status} #{r.redirected ? 'yes' : 'no'} #{r.header_list.to_h['content-length']} #{r.text}")
rescue HttpError => e
  Response.new("#{e.kind}: #{e.message}", 502)
end
"##,
    top: r##"
begin
  fetch('http://127.0.0.1:1/')
  $kind = 'none'
rescue HttpError => e
  $kind = e.kind
end
def worker(req)
  Response.ok($kind)
end
"##,
};

#[test]
fn python_workers_fetch_through_the_reuse_channel() {
    interpreted_workers_fetch(&PYTHON);
}

/// Thousands of calls: CPython's stdin reading fails after about 8,000 of them in one
/// instance, so instances are replaced after 2,000 and no request sees that.
#[test]
fn python_instances_making_thousands_of_calls_are_replaced_before_they_fail() {
    let repo = RepoServer::serve(wws_test_support::fixtures::runtime_repository());
    let p = Project::new();
    wws_test_support::repo_server::install_runtime(p.path(), &repo, "python", "latest");
    p.file(
        "index.py",
        "def worker(req):\n    n = 0\n    for _ in range(100):\n        try:\n            fetch(\"http://localhost:1/\")\n        except HttpError as e:\n            n += e.kind == \"not-allowed\"\n    return Response(str(n))\n",
    );
    p.file(
        "index.toml",
        "name = \"index\"\nversion = \"1\"\n[features.http_requests]\nallowed_hosts = [\"127.0.0.1\"]\n",
    );
    let wws = Wws::builder(p.path())
        .args(["--cache-dir"])
        .args([wws_test_support::fixtures::module_cache_dir()])
        .start();
    for _ in 0..90 {
        assert_eq!(wws.get_text("/", 200), "100");
    }
}

#[test]
fn ruby_workers_fetch_through_the_reuse_channel() {
    interpreted_workers_fetch(&RUBY);
}

fn interpreted_workers_fetch(lang: &Interpreted) {
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("data.txt"), "upstream data").unwrap();
    let upstream = RepoServer::serve(files.path());
    let repo = RepoServer::serve(wws_test_support::fixtures::runtime_repository());
    let p = Project::new();
    wws_test_support::repo_server::install_runtime(p.path(), &repo, lang.runtime, "latest");
    p.file(&format!("index.{}", lang.ext), lang.worker);
    p.file(
        "index.toml",
        "name = \"index\"\nversion = \"1\"\n[features.http_requests]\nallowed_hosts = [\"127.0.0.1\"]\nallow_http = true\nallowed_methods = [\"GET\", \"POST\"]\n",
    );
    p.file(&format!("fresh.{}", lang.ext), lang.worker);
    p.file(&format!("top.{}", lang.ext), lang.top);
    p.file(
        "fresh.toml",
        "name = \"fresh\"\nversion = \"1\"\n[runtime]\nreuse = false\n[features.http_requests]\nallowed_hosts = [\"127.0.0.1\"]\nallow_http = true\n",
    );
    let wws = Wws::builder(p.path())
        .args(["--cache-dir"])
        .args([wws_test_support::fixtures::module_cache_dir()])
        .start();
    let call = |path: &str, headers: &[(&str, &str)]| {
        let mut req = wws_test_support::wws::client().get(wws.url(path));
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let resp = req.send().unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };
    let data = upstream.url("data.txt");
    // Several requests in a row: each call's answer is read before the response goes out.
    for _ in 0..3 {
        assert_eq!(
            call("/", &[("x-to", &data)]),
            (200, "200 no 13 upstream data".to_owned())
        );
    }
    let echo = upstream.url("echo");
    let post = [
        ("x-to", echo.as_str()),
        ("x-method", "POST"),
        ("x-body", "hi"),
    ];
    assert_eq!(
        call("/", &post),
        (200, "200 no 19 POST from-worker hi".to_owned())
    );
    upstream.redirect("old.txt", &data);
    let (_, text) = call("/", &[("x-to", &upstream.url("old.txt"))]);
    assert!(text.starts_with("200 yes"), "{text}");
    // Refusals raise HttpError with the original's kinds and name the setting.
    let (status, text) = call("/", &[("x-to", &data.replace("127.0.0.1", "localhost"))]);
    assert_eq!(status, 502);
    assert!(
        text.starts_with("not-allowed:") && text.contains("allowed_hosts"),
        "{text}"
    );
    let (_, text) = call("/", &[("x-to", &echo), ("x-method", "DELETE")]);
    assert!(text.contains("allowed_methods"), "{text}");
    // At the top level of the file, while the worker loads: refused, and the worker goes on.
    assert_eq!(call("/top", &[]), (200, "not-available".to_owned()));
    // A fresh interpreter per request has no channel for the answer: it says so.
    let (status, text) = call("/fresh", &[("x-to", &data)]);
    assert_eq!(status, 502);
    assert!(
        text.starts_with("not-available:") && text.contains("reuse"),
        "{text}"
    );
}
