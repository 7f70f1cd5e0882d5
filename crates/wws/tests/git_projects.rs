//! A git repository URL as the project (spec §1.5): a real repository, served over git's
//! "dumb" HTTP protocol (plain files) on 127.0.0.1, cloned by wws with the `git` command.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;
use std::process::Command;

use wws_test_support::repo_server::RepoServer;
use wws_test_support::{Wws, wws_command};

/// Runs `git ARGS` in `dir` with a fixed identity and no user configuration.
fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=wws", "-c", "user.email=wws@localhost"])
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A repository with `site/index.js` answering `v1` at tag `v1`, then `v2` on `main`, and a
/// branch `other` answering `other`; published as `<served>/app.git`.
fn published_repository(served: &Path) {
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let answer = |text: &str| {
        std::fs::create_dir_all(w.join("site")).unwrap();
        std::fs::write(
            w.join("site/index.js"),
            format!("addEventListener('fetch', (e) => e.respondWith(new Response('{text}')));"),
        )
        .unwrap();
    };
    git(w, &["init", "--quiet", "--initial-branch=main"]);
    answer("v1");
    git(w, &["add", "."]);
    git(w, &["commit", "--quiet", "-m", "v1"]);
    git(w, &["tag", "v1"]);
    git(w, &["checkout", "--quiet", "-b", "other"]);
    answer("other");
    git(w, &["commit", "--quiet", "-am", "other"]);
    git(w, &["checkout", "--quiet", "main"]);
    answer("v2");
    git(w, &["commit", "--quiet", "-am", "v2"]);
    let bare = served.join("app.git");
    git(
        served,
        &[
            "clone",
            "--quiet",
            "--bare",
            &w.to_string_lossy(),
            "app.git",
        ],
    );
    // What a dumb-HTTP client needs to find the refs.
    git(&bare, &["update-server-info"]);
}

#[test]
fn a_git_url_is_cloned_and_the_ref_asked_for_is_served() {
    let served = tempfile::tempdir().unwrap();
    published_repository(served.path());
    let server = RepoServer::serve(served.path());
    let url = server.url("app.git");
    // Clones go to the temporary folder: this test's own.
    let temp = tempfile::tempdir().unwrap();
    let start = |args: &[&str]| {
        Wws::builder(&url)
            .args(args)
            .env("TMPDIR", temp.path().to_str().unwrap())
            .start()
    };

    let wws = start(&["--git-folder", "site"]);
    assert_eq!(wws.get_text("/", 200), "v2");
    drop(wws);
    // The clone is reused and the other refs are checked out from it.
    let wws = start(&["--git-folder", "site", "--git-tag", "v1"]);
    assert_eq!(wws.get_text("/", 200), "v1");
    drop(wws);
    let wws = start(&["--git-folder", "site", "--git-branch", "other"]);
    assert_eq!(wws.get_text("/", 200), "other");
    drop(wws);
    // One checkout per ref (two servers of different refs never share one), each reused.
    let wws = start(&["--git-folder", "site"]);
    assert_eq!(wws.get_text("/", 200), "v2");
    drop(wws);
    let clones: Vec<_> = std::fs::read_dir(temp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(clones.len(), 3, "{clones:?}");
    assert!(clones.iter().all(|c| !c.contains("partial")), "{clones:?}");

    // A ref or folder that does not exist is an error naming it.
    for (args, needle) in [
        (["--git-tag", "v9"], "v9"),
        (["--git-folder", "nope"], "nope"),
    ] {
        let mut all = vec![url.as_str(), "--port", "0"];
        all.extend(args);
        let err = stderr_of_failing(&all, temp.path());
        assert!(err.contains(needle) && err.contains(&url), "{err}");
    }
}

/// Runs `wws ARGS` with clones going to `temp`, expects it to fail, and returns its stderr.
fn stderr_of_failing(args: &[&str], temp: &Path) -> String {
    let out = wws_command()
        .args(args)
        .env("TMPDIR", temp)
        .output()
        .unwrap();
    assert!(!out.status.success(), "wws {args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn urls_that_are_not_repositories_and_runtimes_on_a_url_are_clear_errors() {
    let temp = tempfile::tempdir().unwrap();
    let err = stderr_of_failing(&["https://127.0.0.1:9/site", "--port", "0"], temp.path());
    assert!(err.contains("not a git repository"), "{err}");
    let err = stderr_of_failing(
        &["https://127.0.0.1:9/app.git", "runtimes", "check"],
        temp.path(),
    );
    assert!(
        err.contains("only manage runtimes in local projects"),
        "{err}"
    );
}

#[test]
fn a_repository_cannot_publish_a_host_folder_through_a_symlink() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "host secret").unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    git(w, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::write(
        w.join("index.js"),
        "addEventListener('fetch', (e) => e.respondWith(new Response('hi')));",
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.path(), w.join("public")).unwrap();
    let served = tempfile::tempdir().unwrap();
    let server = RepoServer::serve(served.path());
    let url = server.url(&commit_and_publish(w, served.path(), "evil.git"));
    let temp = tempfile::tempdir().unwrap();
    let err = stderr_of_failing(&[&url, "--port", "0"], temp.path());
    assert!(
        err.contains("public") && err.contains("outside the repository"),
        "{err}"
    );
}

#[test]
fn a_repository_may_mount_its_own_folders_but_no_host_folder() {
    let outside = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    git(w, &["init", "--quiet", "--initial-branch=main"]);
    std::fs::create_dir_all(w.join("site")).unwrap();
    std::fs::create_dir_all(w.join("data")).unwrap();
    std::fs::write(w.join("data/file.txt"), "data").unwrap();
    let worker = "addEventListener('fetch', (e) => e.respondWith(new Response('hi')));";
    std::fs::write(w.join("site/index.js"), worker).unwrap();
    // A folder of the repository itself, beside the project folder: allowed.
    std::fs::write(
        w.join("site/index.toml"),
        "name = \"index\"\nversion = \"1\"\n[[folders]]\nfrom = \"../data\"\nto = \"/data\"\n",
    )
    .unwrap();
    std::fs::write(w.join("site/host.js"), worker).unwrap();
    let host_folder = format!(
        "name = \"host\"\nversion = \"1\"\n[[folders]]\nfrom = {:?}\nto = \"/host\"\n",
        outside.path().to_str().unwrap()
    );
    std::fs::write(w.join("site/host.toml"), host_folder).unwrap();
    let served = tempfile::tempdir().unwrap();
    let server = RepoServer::serve(served.path());
    let url = server.url(&commit_and_publish(w, served.path(), "mounts.git"));
    let temp = tempfile::tempdir().unwrap();
    let err = stderr_of_failing(&[&url, "--git-folder", "site", "--port", "0"], temp.path());
    assert!(
        err.contains("host.toml")
            && err.contains("folders[0].from")
            && err.contains("outside the repository"),
        "{err}"
    );
    // Without the worker that mounts a host folder, the repository is served; a file left in
    // the reused clone that the commit does not have is not.
    git(w, &["rm", "--quiet", "site/host.js", "site/host.toml"]);
    commit_and_publish(w, served.path(), "mounts.git");
    let clone = std::fs::read_dir(temp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join(".git").is_dir())
        .unwrap();
    std::fs::write(clone.join("site/planted.js"), worker).unwrap();
    let wws = Wws::builder(&url)
        .args(["--git-folder", "site"])
        .env("TMPDIR", temp.path().to_str().unwrap())
        .start();
    assert_eq!(wws.get_text("/", 200), "hi");
    assert_eq!(wws.get("/planted").status().as_u16(), 404);
}

/// Commits everything in the work tree `w` and publishes it as `<served>/<name>` for git's
/// dumb HTTP protocol (replacing an earlier publication); returns `name`.
fn commit_and_publish(w: &Path, served: &Path, name: &str) -> String {
    git(w, &["add", "."]);
    git(w, &["commit", "--quiet", "--allow-empty", "-m", "publish"]);
    let _ = std::fs::remove_dir_all(served.join(name));
    git(
        served,
        &["clone", "--quiet", "--bare", &w.to_string_lossy(), name],
    );
    git(&served.join(name), &["update-server-info"]);
    name.to_owned()
}
