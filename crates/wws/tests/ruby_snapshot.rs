//! Ruby workers run from a pre-initialised snapshot of the interpreter
//! (`crates/worker/src/ruby_snapshot.rs`): fresh-instance mode answers correctly request after
//! request, sees its worker vars (taken into the snapshot), logs `puts` output, and a second
//! start reuses the snapshot stored in the module cache.
//!
//! Each test gives its worker a var unique to its project, so its snapshot is new even though
//! the module cache is shared between test runs (which keeps compiled modules warm).

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};

use wws_test_support::Wws;
use wws_test_support::fixtures::{Project, module_cache_dir, runtime_repository};
use wws_test_support::repo_server::RepoServer;

const TOOK: &str = "pre-initialised Ruby in ";

fn install_ruby(project: &Path) {
    let repo = RepoServer::serve(runtime_repository());
    wws_test_support::repo_server::install_runtime(project, &repo, "ruby", "3.4");
}

fn serve(project: &Path) -> Wws {
    Wws::builder(project)
        .args(["--cache-dir"])
        .args([module_cache_dir()])
        .start()
}

/// A value unique to this project (its temporary folder's name).
fn unique(p: &Project) -> String {
    p.path().file_name().unwrap().to_string_lossy().into_owned()
}

/// The cache files of the snapshots this server took, from its log.
fn snapshots_taken(wws: &Wws) -> Vec<PathBuf> {
    wws.output()
        .lines()
        .filter(|l| l.contains(TOOK))
        .filter_map(|l| l.rsplit("cached as ").next())
        .map(|name| module_cache_dir().join(name.trim_end_matches(')')))
        .collect()
}

#[test]
fn fresh_ruby_workers_start_from_a_cached_snapshot() {
    let p = Project::new();
    install_ruby(p.path());
    let greeting = format!("snap {}", unique(&p));
    p.file(
        "count.rb",
        "$hits = ($hits || 0) + 1\ndef worker(req)\n  puts \"snapshot log #{req.url}\"\n  Response.ok(\"#{ENV.fetch('GREETING', '?')} #{$hits} #{req.url}\")\nend\n",
    );
    p.file(
        "count.toml",
        format!("version = \"1\"\n[vars]\nGREETING = \"{greeting}\"\n[runtime]\nreuse = false\n"),
    );
    p.file(
        "plain.rb",
        "def worker(req)\n  Response.ok(ENV.fetch('GREETING', 'no greeting'))\nend\n",
    );
    p.file("plain.toml", "version = \"1\"\n[runtime]\nreuse = false\n");

    let wws = serve(p.path());
    for i in 0..20 {
        // A fresh instance per request: top-level state never carries over.
        let path = format!("/count?i={i}");
        let body = wws.get_text(&path, 200);
        assert_eq!(body, format!("{greeting} 1 {}", wws.url(&path)));
    }
    wws.wait_for_output(&format!("snapshot log {}", wws.url("/count?i=19")));
    // Vars are per worker: a worker without GREETING does not see another worker's.
    assert_eq!(wws.get_text("/plain", 200), "no greeting");
    let taken = snapshots_taken(&wws);
    assert!(!taken.is_empty(), "no snapshot taken:\n{}", wws.output());
    for blob in &taken {
        assert!(blob.is_file(), "{} missing", blob.display());
    }
    drop(wws);

    // The second start finds the snapshots in the cache and takes none.
    let wws = serve(p.path());
    let body = wws.get_text("/count", 200);
    assert_eq!(body, format!("{greeting} 1 {}", wws.url("/count")));
    assert_eq!(wws.get_text("/plain", 200), "no greeting");
    assert!(
        snapshots_taken(&wws).is_empty(),
        "second start took a snapshot:\n{}",
        wws.output()
    );
}

#[test]
fn changing_a_worker_var_takes_a_new_snapshot() {
    let p = Project::new();
    install_ruby(p.path());
    p.file(
        "hi.rb",
        "def worker(req)\n  Response.ok(ENV.fetch('GREETING', '?'))\nend\n",
    );
    let one = format!("one {}", unique(&p));
    let two = format!("two {}", unique(&p));
    let toml = |greeting: &str| {
        format!("version = \"1\"\n[vars]\nGREETING = \"{greeting}\"\n[runtime]\nreuse = false\n")
    };
    p.file("hi.toml", toml(&one));
    let wws = serve(p.path());
    assert_eq!(wws.get_text("/hi", 200), one);
    assert_eq!(snapshots_taken(&wws).len(), 1, "{}", wws.output());
    drop(wws);
    p.file("hi.toml", toml(&two));
    let wws = serve(p.path());
    assert_eq!(wws.get_text("/hi", 200), two);
    assert_eq!(snapshots_taken(&wws).len(), 1, "{}", wws.output());
}

#[test]
fn reuse_mode_workers_take_no_snapshot() {
    let p = Project::new();
    install_ruby(p.path());
    p.file("hi.rb", "def worker(req)\n  Response.ok('reused')\nend\n");
    let wws = serve(p.path());
    assert_eq!(wws.get_text("/hi", 200), "reused");
    assert!(snapshots_taken(&wws).is_empty(), "{}", wws.output());
}
