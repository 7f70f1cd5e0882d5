//! Real Python and Ruby workers: our runtime repository (built from interpreters fetched from
//! the package registries, checksums pinned) served over HTTP on 127.0.0.1, installed with
//! `wws runtimes install`, and served by `wws`.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;

use wws_test_support::fixtures::{Project, module_cache_dir, runtime_repository};
use wws_test_support::repo_server::RepoServer;
use wws_test_support::wws::client;
use wws_test_support::{Wws, wws_command};

fn runtimes(project: &Path, repo: &RepoServer, args: &[&str]) -> (bool, String) {
    let out = wws_command()
        .arg(project)
        .arg("runtimes")
        .args(args)
        .args([
            "--repo-url",
            &repo.url("/index.toml"),
            "--repo-name",
            "wws-test",
        ])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn install(project: &Path, repo: &RepoServer, name: &str, version: &str) {
    wws_test_support::repo_server::install_runtime(project, repo, name, version);
}

fn serve(project: &Path) -> Wws {
    Wws::builder(project)
        .args(["--cache-dir"])
        .args([module_cache_dir()])
        .start()
}

const PY_WORKERS: &[(&str, &str)] = &[
    (
        "index.py",
        "def worker(req):\n    return Response(\"Hello from python\")\n",
    ),
    (
        "user/[id].py",
        "def worker(req):\n    return Response(\"user \" + req.params[\"id\"])\n",
    ),
    (
        "vars.py",
        "import os\ndef worker(req):\n    return Response(os.environ.get(\"GREETING\", \"?\") + \"|\" + os.environ.get(\"PYTHONDONTWRITEBYTECODE\", \"?\"))\n",
    ),
    (
        "counter.py",
        "def worker(req):\n    count = int(Cache.get(\"count\") or 0) + 1\n    Cache.set(\"count\", count)\n    print(\"python counter\", count)\n    return Response(str(count))\n",
    ),
    (
        "mount.py",
        "def worker(req):\n    return Response(open(\"/data/hello.txt\").read())\n",
    ),
    (
        "binary.py",
        "def worker(req):\n    return Response(bytes(range(256)))\n",
    ),
    (
        "fail.py",
        "def worker(req):\n    raise ValueError(\"python boom\")\n",
    ),
];

const RB_WORKERS: &[(&str, &str)] = &[
    (
        "rb/index.rb",
        "def worker(req)\n  Response.ok(\"Hello from ruby\")\nend\n",
    ),
    (
        "rb/user/[id].rb",
        "def worker(req)\n  Response.ok(\"ruby user #{req.params['id']}\")\nend\n",
    ),
    (
        "rb/vars.rb",
        "def worker(req)\n  Response.ok(ENV.fetch('GREETING', '?'))\nend\n",
    ),
    (
        "rb/counter.rb",
        "def worker(req)\n  count = Cache.get('count').to_i + 1\n  Cache.set('count', count)\n  Response.ok(count.to_s)\nend\n",
    ),
    (
        "rb/mount.rb",
        "def worker(req)\n  Response.ok(File.read('/data/hello.txt'))\nend\n",
    ),
    (
        "rb/binary.rb",
        "def worker(req)\n  Response.ok((0..255).to_a.pack('C*'))\nend\n",
    ),
    ("rb/fail.rb", "def worker(req)\n  raise 'ruby boom'\nend\n"),
];

fn project() -> Project {
    let p = Project::new();
    for (file, src) in PY_WORKERS.iter().chain(RB_WORKERS) {
        p.file(file, src);
    }
    p.file("_data/hello.txt", "mounted text");
    for name in ["vars", "rb/vars"] {
        p.file(
            &format!("{name}.toml"),
            "version = \"1\"\n[vars]\nGREETING = \"hi there\"\n",
        );
    }
    for name in ["counter", "rb/counter"] {
        p.file(
            &format!("{name}.toml"),
            "version = \"1\"\n[data.kv]\nnamespace = \"count\"\n",
        );
    }
    p.file(
        "mount.toml",
        "version = \"1\"\n[[folders]]\nfrom = \"./_data\"\nto = \"/data\"\n",
    );
    p.file(
        "rb/mount.toml",
        "version = \"1\"\n[[folders]]\nfrom = \"../_data\"\nto = \"/data\"\n",
    );
    p
}

#[test]
fn python_and_ruby_from_a_repository_over_http() {
    let repo = RepoServer::serve(runtime_repository());
    let p = project();

    let (ok, list) = runtimes(p.path(), &repo, &["list"]);
    assert!(ok, "{list}");
    assert!(
        list.contains("python") && list.contains("3.12.0") && list.contains("ruby"),
        "{list}"
    );
    install(p.path(), &repo, "python", "latest");
    install(p.path(), &repo, "ruby", "3.4");
    let wws_toml = std::fs::read_to_string(p.path().join(".wws.toml")).unwrap();
    assert!(
        wws_toml.contains("3.12.0") && wws_toml.contains("3.4.1"),
        "{wws_toml}"
    );

    let wws = serve(p.path());
    assert_eq!(wws.get_text("/", 200), "Hello from python");
    assert_eq!(wws.get_text("/rb", 200), "Hello from ruby");
    assert_eq!(wws.get_text("/user/42", 200), "user 42");
    assert_eq!(wws.get_text("/rb/user/7", 200), "ruby user 7");
    // Worker vars, and the runtime's `envs` (which the original ignored).
    assert_eq!(wws.get_text("/vars", 200), "hi there|1");
    assert_eq!(wws.get_text("/rb/vars", 200), "hi there");
    // One namespace shared by a Python and a Ruby worker.
    assert_eq!(wws.get_text("/counter", 200), "1");
    assert_eq!(wws.get_text("/rb/counter", 200), "2");
    assert_eq!(wws.get_text("/counter", 200), "3");
    assert_eq!(wws.get_text("/mount", 200), "mounted text");
    assert_eq!(wws.get_text("/rb/mount", 200), "mounted text");
    for path in ["/binary", "/rb/binary"] {
        let body = wws.get(path).bytes().unwrap();
        assert_eq!(body.to_vec(), (0..=255u8).collect::<Vec<_>>(), "{path}");
    }
    for path in ["/fail", "/rb/fail"] {
        assert_eq!(wws.get(path).status(), 500, "{path}");
    }
    wws.wait_for_output("python boom");
    wws.wait_for_output("ruby boom");
    // print() in a worker goes to the log with the worker's name, never into the response.
    assert!(
        wws.output()
            .lines()
            .any(|l| l.contains("counter.py") && l.contains("python counter 1"))
    );
    let resp = client().post(wws.url("/user/1")).body("x").send().unwrap();
    assert_eq!(resp.status(), 200);
}

#[test]
fn a_fresh_checkout_with_only_wws_toml_installs_on_start() {
    let repo = RepoServer::serve(runtime_repository());
    let first = project();
    install(first.path(), &repo, "python", "3.12.0");

    // What a git clone of the project holds: sources and .wws.toml, no .wws/.
    let fresh = Project::new();
    fresh.file("index.py", PY_WORKERS[0].1);
    fresh.file(
        ".wws.toml",
        std::fs::read(first.path().join(".wws.toml")).unwrap(),
    );
    let wws = serve(fresh.path());
    assert_eq!(wws.get_text("/", 200), "Hello from python");
    assert!(
        fresh
            .path()
            .join(".wws/runtimes/wws-test/python/3.12.0")
            .is_dir()
    );
}

#[test]
fn uninstall_and_check() {
    let repo = RepoServer::serve(runtime_repository());
    let p = project();
    install(p.path(), &repo, "python", "3.12.0");
    install(p.path(), &repo, "ruby", "3.3.3");
    let (ok, out) = runtimes(p.path(), &repo, &["check"]);
    assert!(ok, "{out}");
    // Serving generates the worker folders of both runtimes.
    drop(serve(p.path()));
    let generated = |ext: &str| p.path().join(".wws/workers").join(ext).is_dir();
    assert!(generated("py") && generated("rb"));
    let (ok, out) = runtimes(p.path(), &repo, &["uninstall", "ruby", "3.3.3"]);
    assert!(ok, "{out}");
    assert!(!p.path().join(".wws/runtimes/wws-test/ruby/3.3.3").exists());
    // Its generated folders go with it (the original left them); Python's stay.
    assert!(!generated("rb") && generated("py"));
    assert!(
        p.path()
            .join(".wws/runtimes/wws-test/python/3.12.0")
            .is_dir()
    );
    let wws_toml = std::fs::read_to_string(p.path().join(".wws.toml")).unwrap();
    assert!(
        !wws_toml.contains("3.3.3") && wws_toml.contains("3.12.0"),
        "{wws_toml}"
    );
    // Ruby files are no longer workers; Python ones still are.
    let wws = serve(p.path());
    assert_eq!(wws.get_text("/", 200), "Hello from python");
    wws.get_text("/rb", 404);
}

#[test]
fn a_runtime_that_cannot_be_installed_is_skipped_with_a_warning_or_stops_the_start_with_i() {
    let repo = RepoServer::serve(runtime_repository());
    let first = project();
    install(first.path(), &repo, "python", "3.12.0");
    let fresh = Project::new();
    fresh.file("index.py", PY_WORKERS[0].1);
    fresh.file(
        "hello.js",
        "addEventListener('fetch', (e) => e.respondWith(new Response('Hello from js')));",
    );
    fresh.file(
        ".wws.toml",
        std::fs::read(first.path().join(".wws.toml")).unwrap(),
    );
    repo.fail("/files/python/3.12.0/python.wasm", 404);
    let nothing_installed = || {
        // Not even an empty `<repo>/<name>` folder is left behind.
        assert!(!fresh.path().join(".wws/runtimes/wws-test").exists());
    };

    // With -i the start stops, naming the file and the status.
    let out = wws_command()
        .arg(fresh.path())
        .args(["--port", "0", "-i"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("error installing the missing runtimes")
            && text.contains("python.wasm")
            && text.contains("404"),
        "{text}"
    );
    nothing_installed();

    // Without it, wws serves what it can and says what it left out and why.
    let wws = serve(fresh.path());
    assert_eq!(wws.get_text("/hello", 200), "Hello from js");
    wws.get_text("/", 404);
    let out = wws.output();
    assert!(
        out.contains("not served") && out.contains("python.wasm") && out.contains("404"),
        "{out}"
    );
    nothing_installed();
    drop(wws);

    // Once the repository answers again, the next start installs it.
    repo.clear("/files/python/3.12.0/python.wasm");
    let wws = serve(fresh.path());
    assert_eq!(wws.get_text("/", 200), "Hello from python");
}
