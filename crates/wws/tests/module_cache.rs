//! The compiled-module cache in `.wws/cache`: a second start loads from it, and damaged or
//! foreign files in it are ignored and rebuilt, never trusted. Cranelift's per-function cache
//! (`.wws/cache/functions/`) lets JS snapshots share the engine's compiled code, under the same
//! rule. Snapshots hold worker vars, so cache files are owner-only (review finding F11).

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};

use wws_test_support::Wws;
use wws_test_support::fixtures::Project;

/// Regular files directly in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn cache_files(p: &Project) -> Vec<PathBuf> {
    files_in(&p.path().join(".wws/cache"))
}

fn function_files(p: &Project) -> Vec<PathBuf> {
    files_in(&p.path().join(".wws/cache/functions"))
}

/// Damages `f` in one of three ways: truncate, flip a byte in the middle, replace it.
fn damage(f: &Path, how: usize) -> Vec<u8> {
    let mut bytes = std::fs::read(f).unwrap();
    match how % 3 {
        0 => bytes.truncate(bytes.len() / 2),
        1 => {
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0xff;
        }
        _ => bytes = b"\x7fELF not a wws artifact".to_vec(),
    }
    std::fs::write(f, &bytes).unwrap();
    bytes
}

fn js_worker(body: &str) -> String {
    format!("addEventListener('fetch', (e) => e.respondWith(new Response('{body}')));\n")
}

/// A project with one JS worker, `a.js`, served once: its snapshot and the engine's compiled
/// functions are in the cache.
fn served_once_with_one_js_worker() -> Project {
    let p = Project::new();
    p.file("a.js", js_worker("a ok"));
    let wws = Wws::start(p.path());
    assert_eq!(wws.get_text("/a", 200), "a ok");
    p
}

#[test]
fn second_start_uses_the_cache_and_damaged_entries_are_rebuilt() {
    let p = Project::new();
    p.wasm("index.wasm", "hello");
    p.file("app.js", js_worker("js ok"));
    {
        let wws = Wws::start(p.path());
        assert_eq!(wws.get_text("/", 200), "Hello from wws");
        assert_eq!(wws.get_text("/app", 200), "js ok");
    }
    let files = cache_files(&p);
    assert!(
        files.len() >= 3,
        "expected compiled modules and a JS snapshot, got {files:?}"
    );
    assert!(
        !function_files(&p).is_empty(),
        "compiled functions were not cached"
    );

    for (i, f) in files.iter().enumerate() {
        damage(f, i);
    }
    {
        let wws = Wws::start(p.path());
        assert_eq!(wws.get_text("/", 200), "Hello from wws");
        assert_eq!(wws.get_text("/app", 200), "js ok");
        assert!(
            wws.output().contains("ignoring"),
            "damage went unnoticed:\n{}",
            wws.output()
        );
    }
    // Rebuilt: the next start finds every entry it uses intact.
    let wws = Wws::start(p.path());
    assert_eq!(wws.get_text("/app", 200), "js ok");
    assert!(!wws.output().contains("ignoring"), "{}", wws.output());
    assert!(cache_files(&p).len() >= files.len());
}

/// A cache file is native code, outside the sandbox: one this user's wws did not write for
/// that very module (shipped in a repository, or another module's artifact renamed) must be
/// compiled over, never run.
#[test]
fn a_cache_file_wws_did_not_write_for_the_module_is_not_run() {
    let p = Project::new();
    p.wasm("index.wasm", "hello");
    let other = Project::new();
    other.wasm("index.wasm", "echo");
    drop(Wws::start(p.path()));
    drop(Wws::start(other.path()));
    let mine = cache_files(&p);
    let theirs = cache_files(&other);
    assert_eq!((mine.len(), theirs.len()), (1, 1), "{mine:?} {theirs:?}");
    // The echo worker's artifact, valid and written by wws, under the hello module's name.
    std::fs::copy(&theirs[0], &mine[0]).unwrap();
    let wws = Wws::start(p.path());
    assert_eq!(wws.get_text("/", 200), "Hello from wws");
    assert!(wws.output().contains("ignoring"), "{}", wws.output());
}

/// Every JS snapshot holds the whole engine's code; more JS workers must find nearly all of
/// it in the function cache instead of compiling (and storing) it again.
///
/// Not all of it: Cranelift 0.135 keys a function by its IR, and a compiler context reused
/// after a trampoline still holds that trampoline's exception tables (`DataFlowGraph::clear`
/// keeps them), so a few percent of the keys depend on which function a parallel compile ran
/// before. Measured: each more worker adds 5-9 % new entries; compiling the engine again would
/// add 100 %.
#[test]
fn js_snapshots_share_compiled_functions() {
    let p = served_once_with_one_js_worker();
    let after_one = function_files(&p).len();
    assert!(after_one > 100, "only {after_one} functions cached");

    p.file("b.js", js_worker("b ok"));
    p.file("c.js", js_worker("c ok"));
    let wws = Wws::start(p.path());
    assert_eq!(wws.get_text("/a", 200), "a ok");
    assert_eq!(wws.get_text("/b", 200), "b ok");
    assert_eq!(wws.get_text("/c", 200), "c ok");
    let after_three = function_files(&p).len();
    assert!(
        after_three < after_one + after_one / 4,
        "two more JS workers added {} compiled functions to {after_one}: the engine's code was compiled again",
        after_three - after_one
    );
}

/// A damaged compiled function is a miss: Cranelift compiles it again and the entry is
/// rewritten. A flipped byte in cached machine code that were trusted would crash the worker
/// or change its answer.
#[test]
fn damaged_compiled_functions_are_recompiled_not_trusted() {
    let p = served_once_with_one_js_worker();
    let damaged: Vec<(PathBuf, Vec<u8>)> = function_files(&p)
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let bytes = damage(&f, i);
            (f, bytes)
        })
        .collect();
    assert!(!damaged.is_empty());

    // A new worker's snapshot compiles the engine's functions again, through the cache.
    p.file("b.js", js_worker("b ok"));
    {
        let wws = Wws::start(p.path());
        assert_eq!(wws.get_text("/a", 200), "a ok");
        assert_eq!(wws.get_text("/b", 200), "b ok");
        for _ in 0..20 {
            assert_eq!(wws.get_text("/b", 200), "b ok");
        }
    }
    let rewritten = damaged
        .iter()
        .filter(|(f, bytes)| std::fs::read(f).unwrap() != *bytes)
        .count();
    // The rest belong only to the instrumented engine, compiled on the first start alone.
    assert!(
        rewritten * 2 >= damaged.len(),
        "only {rewritten} of {} damaged compiled functions were rebuilt",
        damaged.len()
    );
}

/// F11: a JS snapshot holds the worker's vars, including `$HOST_VAR` values from the host's
/// environment. Whatever file holds such a value must be readable by its owner only.
#[cfg(unix)]
#[test]
fn files_holding_host_secrets_are_owner_only() {
    use std::os::unix::fs::PermissionsExt as _;

    let secret = format!("f11-secret-{}", std::process::id());
    let p = Project::new();
    p.file(
        "secret.js",
        "addEventListener('fetch', (e) => e.respondWith(new Response(TOKEN.length > 0 ? 'has token' : 'no token')));\n",
    );
    p.file("secret.toml", "[vars]\nTOKEN = \"$F11_TOKEN\"\n");
    {
        let wws = Wws::builder(p.path()).env("F11_TOKEN", &secret).start();
        assert_eq!(wws.get_text("/secret", 200), "has token");
    }

    let mut holders = Vec::new();
    let mut stack = vec![p.path().join(".wws")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if std::fs::read(&path)
                .unwrap()
                .windows(secret.len())
                .any(|w| w == secret.as_bytes())
            {
                holders.push(path);
            }
        }
    }
    // The snapshot must hold it (else this test checks nothing).
    assert!(!holders.is_empty(), "no file holds the worker's var");
    for f in &holders {
        let mode = std::fs::metadata(f).unwrap().permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "{} holds a secret with mode {mode:o}",
            f.display()
        );
    }
    let dir_mode = std::fs::metadata(p.path().join(".wws/cache"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(dir_mode & 0o077, 0, ".wws/cache has mode {dir_mode:o}");
}
