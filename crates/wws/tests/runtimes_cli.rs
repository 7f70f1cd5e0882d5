//! End-to-end tests of `wws runtimes …` against the real binary and a repository served from
//! 127.0.0.1 (or read from disk). The runtime is a fake (`fakelang`): these tests are about
//! repositories, downloads, `.wws.toml` and failure safety, not about running interpreters.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use wws_repository::download::sha256_hex;
use wws_test_support::repo_server::RepoServer;
use wws_test_support::wws_command;

const WAIT: Duration = Duration::from_secs(60);
const BINARY_SIZE: usize = 300 * 1024;

/// A repository folder: `index.toml` plus the files it lists (relative URLs).
struct FakeRepo {
    dir: tempfile::TempDir,
    entries: Vec<String>,
}

/// Options of one index entry.
struct Entry<'a> {
    name: &'a str,
    version: &'a str,
    tags: &'a [&'a str],
    status: &'a str,
    extension: &'a str,
}

impl Default for Entry<'_> {
    fn default() -> Self {
        Self {
            name: "fakelang",
            version: "1.0.0",
            tags: &[],
            status: "active",
            extension: "fl",
        }
    }
}

impl FakeRepo {
    /// fakelang 1.0.0 (tags 1, 1.0), 2.0.0 (latest, 2), 0.9.0 (yanked), otherlang 1.0.0.
    fn new() -> Self {
        let mut repo = Self::empty();
        repo.add(Entry {
            tags: &["1", "1.0"],
            ..Entry::default()
        });
        repo.add(Entry {
            version: "2.0.0",
            tags: &["latest", "2"],
            ..Entry::default()
        });
        repo.add(Entry {
            version: "0.9.0",
            status: "yanked",
            ..Entry::default()
        });
        repo.add(Entry {
            name: "otherlang",
            extension: "ol",
            ..Entry::default()
        });
        repo.write_index();
        repo
    }

    fn empty() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("wws-repo-")
                .tempdir()
                .unwrap(),
            entries: Vec::new(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn index_path(&self) -> PathBuf {
        self.path().join("index.toml")
    }

    /// Writes the files of one runtime and appends its index entry with real checksums.
    fn add(&mut self, e: Entry<'_>) {
        let folder = format!("files/{}/{}", e.name, e.version);
        let seed = format!("{}-{}|", e.name, e.version);
        let binary: Vec<u8> = seed.bytes().cycle().take(BINARY_SIZE).collect();
        let poly = format!("# polyfill of {} {}\n", e.name, e.version);
        let wrapper = format!("{{source}}\n# wrapper of {} {}\n", e.name, e.version);
        let file = |name: &str, data: &[u8]| {
            let rel = format!("{folder}/{name}");
            std::fs::create_dir_all(self.path().join(&folder)).unwrap();
            std::fs::write(self.path().join(&rel), data).unwrap();
            format!(
                "{{ url = \"{rel}\", filename = \"{name}\", checksum = {{ type = \"sha256\", value = \"{}\" }} }}",
                sha256_hex(data)
            )
        };
        let tags: Vec<String> = e.tags.iter().map(|t| format!("\"{t}\"")).collect();
        let entry = format!(
            "[[runtimes]]\nname = \"{}\"\nversion = \"{}\"\ntags = [{}]\nstatus = \"{}\"\nargs = [\"--\", \"/src/index.{}\"]\nextensions = [\"{}\"]\nenvs = {{ FAKE_HOME = \"/src\" }}\nbinary = {}\npolyfill = {}\nwrapper = {}\n",
            e.name,
            e.version,
            tags.join(", "),
            e.status,
            e.extension,
            e.extension,
            file(&format!("{}.wasm", e.name), &binary),
            file(&format!("poly.{}", e.extension), poly.as_bytes()),
            file("wrapper.txt", wrapper.as_bytes()),
        );
        self.entries.push(entry);
    }

    fn write_index(&self) {
        let text = format!("version = 1\n\n{}", self.entries.join("\n"));
        std::fs::write(self.index_path(), text).unwrap();
    }

    /// Relative path (as served) of a runtime's binary.
    fn binary_rel(name: &str, version: &str) -> String {
        format!("files/{name}/{version}/{name}.wasm")
    }
}

/// The repository of [`FakeRepo::new`] served on 127.0.0.1, its index URL and an empty project.
fn served_repo() -> (FakeRepo, RepoServer, String, tempfile::TempDir) {
    let repo = FakeRepo::new();
    let server = RepoServer::serve(repo.path());
    let url = server.url("index.toml");
    (repo, server, url, project())
}

/// A fresh, empty project folder.
fn project() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("wws-project-")
        .tempdir()
        .unwrap()
}

fn runtimes_cmd(project: &Path, args: &[&str]) -> Command {
    let mut cmd = wws_command();
    cmd.arg(project).arg("runtimes").args(args);
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs `wws PROJECT runtimes ARGS…` to completion.
fn run(project: &Path, args: &[&str]) -> Output {
    runtimes_cmd(project, args).output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn ok(out: Output) -> String {
    let all = text(&out);
    assert!(
        out.status.success(),
        "expected success, got {:?}\n{all}",
        out.status
    );
    all
}

#[track_caller]
fn fails(out: Output) -> String {
    let all = text(&out);
    assert!(!out.status.success(), "expected failure\n{all}");
    all
}

fn runtime_dir(project: &Path, repo: &str, name: &str, version: &str) -> PathBuf {
    project
        .join(".wws/runtimes")
        .join(repo)
        .join(name)
        .join(version)
}

fn read_config(project: &Path) -> Option<String> {
    std::fs::read_to_string(project.join(".wws.toml")).ok()
}

/// `(repository, name, version)` of every runtime of `.wws.toml`.
fn config_entries(project: &Path) -> Vec<(String, String, String)> {
    let config = wws_repository::ProjectConfig::load(project).unwrap();
    config
        .runtimes()
        .map(|(r, rt)| (r.to_string(), rt.name.clone(), rt.version.clone()))
        .collect()
}

fn entry(repo: &str, name: &str, version: &str) -> (String, String, String) {
    (repo.to_string(), name.to_string(), version.to_string())
}

/// Every path under `dir`, relative, sorted (to assert that nothing was left behind).
fn tree(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(base).unwrap().display().to_string());
            if p.is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// No runtime folder and no staging folder anywhere under `.wws/runtimes`.
#[track_caller]
fn assert_no_runtime_files(project: &Path) {
    let left: Vec<String> = tree(&project.join(".wws/runtimes"))
        .into_iter()
        .filter(|p| p.split('/').count() >= 3)
        .collect();
    assert!(left.is_empty(), "left behind under .wws/runtimes: {left:?}");
}

#[test]
fn list_shows_the_repository_with_flags_before_or_after_the_action_and_from_env() {
    let (_repo, _server, url, p) = served_repo();
    let after = ok(run(p.path(), &["list", &format!("--repo={url}")]));
    let before = ok(run(p.path(), &["--repo-url", &url, "list"]));
    let from_env = ok(runtimes_cmd(p.path(), &["list"])
        .env("WWS_REPO_URL", &url)
        .output()
        .unwrap());
    // The flag wins over the variable.
    let flag_wins = ok(runtimes_cmd(p.path(), &["list", "--repo-url", &url])
        .env("WWS_REPO_URL", "http://127.0.0.1:9/unreachable.toml")
        .output()
        .unwrap());
    for out in [&after, &before, &from_env, &flag_wins] {
        assert!(
            out.contains("NAME") && out.contains("VERSION") && out.contains("TAGS"),
            "{out}"
        );
        assert!(
            out.contains("EXTENSION") && out.contains("BINARY") && out.contains("STATUS"),
            "{out}"
        );
        let row = out
            .lines()
            .find(|l| l.starts_with("fakelang") && l.contains("2.0.0"))
            .unwrap();
        assert!(
            row.contains("latest, 2")
                && row.contains("fakelang.wasm")
                && row.contains("not installed"),
            "{row}"
        );
        assert!(out.contains("otherlang"), "{out}");
        // The repository's own status shows next to ours.
        let yanked = out
            .lines()
            .find(|l| l.starts_with("fakelang") && l.contains("0.9.0"))
            .unwrap();
        assert!(yanked.ends_with("not installed, yanked"), "{yanked}");
        // Plain http:// is allowed with a warning.
        assert!(out.contains("plain http://"), "{out}");
    }
    ok(run(
        p.path(),
        &["--repo-url", &url, "install", "fakelang", "2.0.0"],
    ));
    let out = ok(run(p.path(), &["list", "--repo-url", &url]));
    let row = out
        .lines()
        .find(|l| l.starts_with("fakelang") && l.contains("2.0.0"))
        .unwrap();
    assert!(
        row.trim_end().ends_with("installed") && !row.contains("not installed"),
        "{row}"
    );
    let row = out
        .lines()
        .find(|l| l.starts_with("fakelang") && l.contains("1.0.0"))
        .unwrap();
    assert!(row.contains("not installed"), "{row}");
}

#[test]
fn install_by_version_and_by_tag_records_the_full_metadata() {
    let (repo, server, url, p) = served_repo();
    let out = ok(run(
        p.path(),
        &[
            "install",
            "fakelang",
            "1.0.0",
            "--repo-url",
            &url,
            "--repo-name",
            "myrepo",
        ],
    ));
    for expected in [
        "Pulling",
        "Validating checksum",
        "Installing it in .wws/runtimes/myrepo/fakelang/1.0.0/",
        "Done!",
    ] {
        assert!(out.contains(expected), "missing {expected:?} in\n{out}");
    }
    let dir = runtime_dir(p.path(), "myrepo", "fakelang", "1.0.0");
    for file in ["fakelang.wasm", "poly.fl", "wrapper.txt"] {
        let served = std::fs::read(repo.path().join("files/fakelang/1.0.0").join(file)).unwrap();
        assert_eq!(std::fs::read(dir.join(file)).unwrap(), served, "{file}");
    }
    // A tag resolves to the concrete version, which is what `.wws.toml` records.
    let out = ok(run(
        p.path(),
        &[
            "install",
            "fakelang",
            "latest",
            "--repo-url",
            &url,
            "--repo-name",
            "myrepo",
        ],
    ));
    assert!(out.contains("fakelang 2.0.0"), "{out}");
    assert!(
        runtime_dir(p.path(), "myrepo", "fakelang", "2.0.0")
            .join("fakelang.wasm")
            .is_file()
    );
    assert_eq!(
        config_entries(p.path()),
        [
            entry("myrepo", "fakelang", "1.0.0"),
            entry("myrepo", "fakelang", "2.0.0")
        ]
    );
    let config = wws_repository::ProjectConfig::load(p.path()).unwrap();
    assert_eq!(config.repositories[0].url, url);
    let rt = &config.repositories[0].runtimes[1];
    assert_eq!(rt.tags, ["latest", "2"]);
    assert_eq!(rt.args, ["--", "/src/index.fl"]);
    assert_eq!(rt.envs.get("FAKE_HOME").map(String::as_str), Some("/src"));
    // File URLs are stored resolved, so a restore does not depend on the index.
    assert_eq!(
        rt.binary.url,
        server.url(&FakeRepo::binary_rel("fakelang", "2.0.0"))
    );
    let installed = wws_repository::installed_runtimes(p.path()).unwrap();
    assert_eq!(installed.len(), 2);
    assert!(installed[1].file(&installed[1].runtime.binary).is_file());
}

#[test]
fn installing_twice_is_a_no_op_that_says_so() {
    let (_repo, server, url, p) = served_repo();
    ok(run(
        p.path(),
        &["--repo-url", &url, "install", "fakelang", "1"],
    ));
    let config = read_config(p.path()).unwrap();
    let requests_before = server.requests().len();
    let out = ok(run(
        p.path(),
        &["--repo-url", &url, "install", "fakelang", "1.0.0"],
    ));
    assert!(out.contains("already installed"), "{out}");
    assert_eq!(read_config(p.path()).unwrap(), config);
    // Only the index was fetched the second time.
    assert_eq!(server.requests()[requests_before..], ["index.toml"]);
}

#[test]
fn yanked_runtimes_are_refused_unless_forced() {
    let (_repo, _server, url, p) = served_repo();
    let out = fails(run(
        p.path(),
        &["--repo-url", &url, "install", "fakelang", "0.9.0"],
    ));
    assert!(out.contains("yanked") && out.contains("--force"), "{out}");
    assert!(read_config(p.path()).is_none());
    assert_no_runtime_files(p.path());
    ok(run(
        p.path(),
        &[
            "--repo-url",
            &url,
            "install",
            "fakelang",
            "0.9.0",
            "--force",
        ],
    ));
    assert_eq!(
        config_entries(p.path()),
        [entry("wasmlabs", "fakelang", "0.9.0")]
    );
}

#[test]
fn install_without_arguments_restores_from_wws_toml_only() {
    let repo = FakeRepo::new();
    let server = RepoServer::serve(repo.path());
    let url = server.url("index.toml");
    let first = project();
    ok(run(
        first.path(),
        &["--repo-url", &url, "install", "fakelang", "latest"],
    ));
    ok(run(
        first.path(),
        &["--repo-url", &url, "install", "otherlang", "1.0.0"],
    ));
    // A fresh checkout: only `.wws.toml`.
    let fresh = project();
    std::fs::copy(
        first.path().join(".wws.toml"),
        fresh.path().join(".wws.toml"),
    )
    .unwrap();
    let check = fails(run(fresh.path(), &["check"]));
    assert!(check.contains("❌"), "{check}");
    let before = server.requests().len();
    // The repository URL given here is unreachable: it must not be needed.
    let out = ok(run(
        fresh.path(),
        &["--repo-url", "http://127.0.0.1:9/none.toml", "install"],
    ));
    assert!(
        out.contains("Installing: wasmlabs - fakelang / 2.0.0"),
        "{out}"
    );
    assert!(
        out.contains("Installing: wasmlabs - otherlang / 1.0.0"),
        "{out}"
    );
    let fetched = &server.requests()[before..];
    assert!(
        !fetched.iter().any(|r| r == "index.toml"),
        "the index was fetched: {fetched:?}"
    );
    assert_eq!(
        tree(&first.path().join(".wws/runtimes")),
        tree(&fresh.path().join(".wws/runtimes"))
    );
    assert_eq!(read_config(first.path()), read_config(fresh.path()));
    let out = ok(run(fresh.path(), &["install"]));
    assert!(
        out.contains("Every runtime of .wws.toml is installed"),
        "{out}"
    );
    // Without a .wws.toml there is nothing to install, and it says so.
    let empty = project();
    let out = ok(run(empty.path(), &["install"]));
    assert!(out.contains("no .wws.toml here"), "{out}");
    assert!(!empty.path().join(".wws.toml").exists());
}

/// The original filtered `.wws.toml` with `name != n && version != v` (spec §6.7): uninstalling
/// one runtime dropped every entry sharing its name or its version.
#[test]
fn regression_uninstall_removed_too_much() {
    let (_repo, _server, url, p) = served_repo();
    for (name, version) in [
        ("fakelang", "1.0.0"),
        ("fakelang", "2.0.0"),
        ("otherlang", "1.0.0"),
    ] {
        ok(run(
            p.path(),
            &["--repo-url", &url, "install", name, version],
        ));
    }
    let out = ok(run(p.path(), &["uninstall", "fakelang", "1.0.0"]));
    assert!(
        out.contains("Uninstalled: wasmlabs - fakelang / 1.0.0"),
        "{out}"
    );
    assert!(!runtime_dir(p.path(), "wasmlabs", "fakelang", "1.0.0").exists());
    assert!(
        runtime_dir(p.path(), "wasmlabs", "fakelang", "2.0.0")
            .join("fakelang.wasm")
            .is_file()
    );
    assert!(
        runtime_dir(p.path(), "wasmlabs", "otherlang", "1.0.0")
            .join("otherlang.wasm")
            .is_file()
    );
    assert_eq!(
        config_entries(p.path()),
        [
            entry("wasmlabs", "fakelang", "2.0.0"),
            entry("wasmlabs", "otherlang", "1.0.0")
        ]
    );
    let out = ok(run(p.path(), &["uninstall", "fakelang", "1.0.0"]));
    assert!(
        out.contains("not installed")
            && out.contains("Installed versions of fakelang in wasmlabs: 2.0.0"),
        "{out}"
    );
    // Another repository name is another runtime.
    let out = ok(run(
        p.path(),
        &["--repo-name", "elsewhere", "uninstall", "fakelang", "2.0.0"],
    ));
    assert!(
        out.contains("not installed: elsewhere - fakelang / 2.0.0"),
        "{out}"
    );
    assert!(
        runtime_dir(p.path(), "wasmlabs", "fakelang", "2.0.0")
            .join("fakelang.wasm")
            .is_file()
    );
    ok(run(p.path(), &["check"]));
}

#[test]
fn check_lists_runtimes_and_fails_when_one_is_missing() {
    let (_repo, _server, url, p) = served_repo();
    let out = ok(run(p.path(), &["check"]));
    assert!(out.contains("wws runtimes list"), "{out}");
    ok(run(
        p.path(),
        &["--repo-url", &url, "install", "fakelang", "1.0.0"],
    ));
    ok(run(
        p.path(),
        &["--repo-url", &url, "install", "otherlang", "1.0.0"],
    ));
    let out = ok(run(p.path(), &["check"]));
    assert_eq!(out.matches('✅').count(), 2, "{out}");
    std::fs::remove_file(runtime_dir(p.path(), "wasmlabs", "otherlang", "1.0.0").join("poly.ol"))
        .unwrap();
    let out = fails(run(p.path(), &["check"]));
    let row = out.lines().find(|l| l.contains("otherlang")).unwrap();
    assert!(row.starts_with("❌"), "{out}");
    assert!(out.contains("wws runtimes install"), "{out}");
    // `install` repairs it from `.wws.toml`.
    ok(run(p.path(), &["install"]));
    ok(run(p.path(), &["check"]));
}

#[test]
fn a_bad_checksum_names_the_url_and_leaves_the_project_clean() {
    let (repo, server, url, p) = served_repo();
    ok(run(
        p.path(),
        &["--repo-url", &url, "install", "otherlang", "1.0.0"],
    ));
    let config = read_config(p.path()).unwrap();
    let rel = FakeRepo::binary_rel("fakelang", "1.0.0");
    let good = std::fs::read(repo.path().join(&rel)).unwrap();
    std::fs::write(repo.path().join(&rel), b"tampered").unwrap();
    let out = fails(run(
        p.path(),
        &["--repo-url", &url, "install", "fakelang", "1.0.0"],
    ));
    assert!(
        out.contains("checksum mismatch") && out.contains(&server.url(&rel)),
        "{out}"
    );
    assert!(
        out.contains(&sha256_hex(&good)) && out.contains(&sha256_hex(b"tampered")),
        "{out}"
    );
    assert!(
        !p.path()
            .join(".wws/runtimes/wasmlabs/fakelang/1.0.0")
            .exists()
    );
    assert!(tree(&p.path().join(".wws/runtimes/wasmlabs/fakelang")).is_empty());
    assert_eq!(read_config(p.path()).unwrap(), config);
}

#[test]
fn an_http_error_names_the_url_and_status_and_leaves_the_project_clean() {
    let (_repo, server, url, p) = served_repo();
    server.fail("files/fakelang/1.0.0/poly.fl", 404);
    let out = fails(run(
        p.path(),
        &["--repo-url", &url, "install", "fakelang", "1.0.0"],
    ));
    assert!(
        out.contains("404") && out.contains(&server.url("files/fakelang/1.0.0/poly.fl")),
        "{out}"
    );
    assert!(read_config(p.path()).is_none());
    assert_no_runtime_files(p.path());
    // The index itself failing.
    server.fail("index.toml", 500);
    let out = fails(run(p.path(), &["--repo-url", &url, "list"]));
    assert!(out.contains("500") && out.contains(&url), "{out}");
}

#[test]
fn a_malformed_index_is_an_error_naming_the_url_and_the_toml_problem() {
    let repo = FakeRepo::new();
    std::fs::write(
        repo.index_path(),
        "version = 1\n[[runtimes]]\nname = \"x\"\nversion = 3\n",
    )
    .unwrap();
    let server = RepoServer::serve(repo.path());
    let url = server.url("index.toml");
    let p = project();
    for args in [vec!["list"], vec!["install", "x", "3"]] {
        let mut all = vec!["--repo-url", url.as_str()];
        all.extend(args);
        let out = fails(run(p.path(), &all));
        assert!(
            out.contains(&url) && out.contains("not a valid index.toml"),
            "{out}"
        );
        assert!(out.contains("invalid type"), "{out}");
    }
    assert!(read_config(p.path()).is_none());
    assert_no_runtime_files(p.path());
}

#[test]
fn a_newer_index_version_warns_and_continues() {
    let repo = FakeRepo::new();
    let text = std::fs::read_to_string(repo.index_path())
        .unwrap()
        .replace("version = 1\n", "version = 2\n");
    std::fs::write(repo.index_path(), text).unwrap();
    let p = project();
    let out = ok(run(
        p.path(),
        &["--repo-url", repo.index_path().to_str().unwrap(), "list"],
    ));
    assert!(
        out.contains("version 2") && out.contains("fakelang"),
        "{out}"
    );
}

#[test]
fn unknown_names_and_versions_list_what_exists() {
    let (_repo, _server, url, p) = served_repo();
    let out = fails(run(
        p.path(),
        &["--repo-url", &url, "install", "cobol", "1"],
    ));
    assert!(
        out.contains("'cobol'") && out.contains("fakelang, otherlang"),
        "{out}"
    );
    let out = fails(run(
        p.path(),
        &["--repo-url", &url, "install", "fakelang", "7.7"],
    ));
    assert!(
        out.contains("'7.7'")
            && out.contains("2.0.0 (latest, 2)")
            && out.contains("0.9.0 (yanked)"),
        "{out}"
    );
    let out = fails(run(p.path(), &["--repo-url", &url, "install", "fakelang"]));
    assert!(out.contains("name and version are mandatory"), "{out}");
    assert!(read_config(p.path()).is_none());
    assert_no_runtime_files(p.path());
}

#[test]
fn filenames_that_leave_the_runtime_folder_are_rejected_before_any_download() {
    for bad in [
        "../escape.wasm",
        "/tmp/escape.wasm",
        "sub/escape.wasm",
        "..",
        "",
    ] {
        let repo = FakeRepo::new();
        let text = std::fs::read_to_string(repo.index_path())
            .unwrap()
            .replacen(
                "filename = \"fakelang.wasm\"",
                &format!("filename = {bad:?}"),
                1,
            );
        std::fs::write(repo.index_path(), text).unwrap();
        let server = RepoServer::serve(repo.path());
        let url = server.url("index.toml");
        let p = project();
        let out = fails(run(
            p.path(),
            &["--repo-url", &url, "install", "fakelang", "1.0.0"],
        ));
        assert!(
            out.contains("binary.filename") && out.contains("not a plain file name"),
            "{bad:?}: {out}"
        );
        assert_eq!(
            server.requests(),
            ["index.toml"],
            "{bad:?}: something was downloaded"
        );
        assert!(read_config(p.path()).is_none());
        assert_no_runtime_files(p.path());
        assert!(!p.path().join(".wws/runtimes/escape.wasm").exists());
    }
}

#[test]
fn file_urls_and_plain_paths_work_as_repositories() {
    let repo = FakeRepo::new();
    let index = repo.index_path();
    let file_url = format!("file://{}", index.display());
    let p = project();
    let out = ok(run(p.path(), &["--repo-url", &file_url, "list"]));
    assert!(
        out.contains("fakelang") && !out.contains("plain http://"),
        "{out}"
    );
    ok(run(
        p.path(),
        &["--repo-url", &file_url, "install", "fakelang", "1.0.0"],
    ));
    // A relative plain path, resolved from the current directory.
    let out = ok(runtimes_cmd(
        p.path(),
        &["--repo-url", "index.toml", "install", "otherlang", "1.0.0"],
    )
    .current_dir(repo.path())
    .output()
    .unwrap());
    assert!(out.contains("Done!"), "{out}");
    assert_eq!(
        config_entries(p.path()),
        [
            entry("wasmlabs", "fakelang", "1.0.0"),
            entry("wasmlabs", "otherlang", "1.0.0")
        ]
    );
    let config = wws_repository::ProjectConfig::load(p.path()).unwrap();
    // Relative file URLs in the index were stored resolved against the index's folder.
    assert_eq!(
        Path::new(&config.repositories[0].runtimes[1].binary.url),
        repo.path().join(FakeRepo::binary_rel("otherlang", "1.0.0"))
    );
    ok(run(p.path(), &["check"]));
}

#[test]
fn a_malformed_wws_toml_is_reported_and_never_overwritten() {
    let (_repo, server, url, p) = served_repo();
    std::fs::write(
        p.path().join(".wws.toml"),
        "version = 1\n[[repositories]\nbroken",
    )
    .unwrap();
    for args in [
        vec!["install", "fakelang", "1.0.0"],
        vec!["install"],
        vec!["check"],
        vec!["list"],
        vec!["uninstall", "a", "b"],
    ] {
        let mut all = vec!["--repo-url", url.as_str()];
        all.extend(args.iter().copied());
        let out = fails(run(p.path(), &all));
        assert!(
            out.contains(".wws.toml") && out.contains("not a valid project file"),
            "{args:?}: {out}"
        );
    }
    assert_eq!(
        read_config(p.path()).unwrap(),
        "version = 1\n[[repositories]\nbroken"
    );
    assert!(
        server.requests().is_empty(),
        "downloaded with a broken .wws.toml: {:?}",
        server.requests()
    );
    assert!(wws_repository::installed_runtimes(p.path()).is_err());
}

/// Spawns `install NAME VERSION` whose output is read line by line on a thread.
fn spawn_install(
    project: &Path,
    url: &str,
    name: &str,
    version: &str,
) -> (Child, mpsc::Receiver<String>) {
    spawn(project, &["--repo-url", url, "install", name, version])
}

/// Spawns `wws PROJECT runtimes ARGS…` whose output is read line by line on a thread.
fn spawn(project: &Path, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = runtimes_cmd(project, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    for pipe in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
    }
    (child, rx)
}

/// Waits for a line containing `needle`; returns everything read until then.
#[track_caller]
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> String {
    let mut seen = String::new();
    loop {
        match rx.recv_timeout(WAIT) {
            Ok(line) => {
                seen.push_str(&line);
                seen.push('\n');
                if line.contains(needle) {
                    return seen;
                }
            }
            Err(e) => panic!("no line with {needle:?} ({e}); got:\n{seen}"),
        }
    }
}

#[test]
fn killing_an_install_mid_download_leaves_the_project_clean() {
    let (_repo, server, url, p) = served_repo();
    ok(run(
        p.path(),
        &["--repo-url", &url, "install", "otherlang", "1.0.0"],
    ));
    let config = read_config(p.path()).unwrap();
    for signal in ["-KILL", "-INT", "-TERM"] {
        let rel = FakeRepo::binary_rel("fakelang", "2.0.0");
        server.stall_after(&rel, 64 * 1024);
        let before = server.requests().iter().filter(|r| **r == rel).count();
        let (mut child, rx) = spawn_install(p.path(), &url, "fakelang", "2.0.0");
        wait_line(&rx, "Pulling binary");
        // The stalled request has reached the server: the download is in progress.
        assert!(
            server.wait_for_requests(&rel, before + 1, WAIT),
            "the binary was never requested"
        );
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        let status = child.wait().unwrap();
        assert!(!status.success(), "{signal}: {status:?}");
        assert!(
            !runtime_dir(p.path(), "wasmlabs", "fakelang", "2.0.0").exists(),
            "{signal}"
        );
        assert_eq!(read_config(p.path()).unwrap(), config, "{signal}");
        assert_eq!(
            config_entries(p.path()),
            [entry("wasmlabs", "otherlang", "1.0.0")]
        );
        server.clear(&rel);
    }
    // The next run cleans what the killed ones left and succeeds.
    ok(run(
        p.path(),
        &["--repo-url", &url, "install", "fakelang", "2.0.0"],
    ));
    let left = tree(&p.path().join(".wws/runtimes/wasmlabs/fakelang"));
    assert_eq!(
        left,
        [
            "2.0.0",
            "2.0.0/.wws-checksums",
            "2.0.0/fakelang.wasm",
            "2.0.0/poly.fl",
            "2.0.0/wrapper.txt"
        ]
    );
    assert_eq!(
        config_entries(p.path()),
        [
            entry("wasmlabs", "otherlang", "1.0.0"),
            entry("wasmlabs", "fakelang", "2.0.0")
        ]
    );
}

#[test]
fn two_concurrent_installs_record_one_entry() {
    let (_repo, _server, url, p) = served_repo();
    let mut children: Vec<Child> = (0..2)
        .map(|_| {
            runtimes_cmd(
                p.path(),
                &["--repo-url", &url, "install", "fakelang", "1.0.0"],
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children
        .drain(..)
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    let texts: Vec<String> = outputs.into_iter().map(ok).collect();
    assert_eq!(
        texts.iter().filter(|t| t.contains("Done!")).count(),
        1,
        "{texts:?}"
    );
    assert_eq!(
        texts
            .iter()
            .filter(|t| t.contains("already installed"))
            .count(),
        1,
        "{texts:?}"
    );
    assert_eq!(
        config_entries(p.path()),
        [entry("wasmlabs", "fakelang", "1.0.0")]
    );
    // One runtime folder: its three files and the checksum list.
    let files = tree(&p.path().join(".wws/runtimes"));
    assert_eq!(files.len(), 7, "{files:?}");
}

#[test]
fn a_waiting_install_takes_over_after_the_first_one_is_killed() {
    let (_repo, server, url, p) = served_repo();
    let rel = FakeRepo::binary_rel("fakelang", "1.0.0");
    server.stall_after(&rel, 1000);
    let (mut first, first_rx) = spawn_install(p.path(), &url, "fakelang", "1.0.0");
    wait_line(&first_rx, "Pulling binary");
    assert!(server.wait_for_request(&rel, WAIT));
    let (second, second_rx) = spawn_install(p.path(), &url, "fakelang", "1.0.0");
    wait_line(&second_rx, "waiting for it to finish");
    server.clear(&rel);
    first.kill().unwrap();
    first.wait().unwrap();
    let rest = wait_line(&second_rx, "Done!");
    assert!(rest.contains("Installing it in"), "{rest}");
    let out = second.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        config_entries(p.path()),
        [entry("wasmlabs", "fakelang", "1.0.0")]
    );
    let left = tree(&p.path().join(".wws/runtimes/wasmlabs/fakelang"));
    assert_eq!(
        left,
        [
            "1.0.0",
            "1.0.0/.wws-checksums",
            "1.0.0/fakelang.wasm",
            "1.0.0/poly.fl",
            "1.0.0/wrapper.txt"
        ]
    );
}

#[test]
fn killing_a_restore_mid_download_leaves_the_project_clean() {
    let repo = FakeRepo::new();
    let server = RepoServer::serve(repo.path());
    let url = server.url("index.toml");
    let first = project();
    ok(run(
        first.path(),
        &["--repo-url", &url, "install", "fakelang", "1.0.0"],
    ));
    ok(run(
        first.path(),
        &["--repo-url", &url, "install", "otherlang", "1.0.0"],
    ));
    let fresh = project();
    std::fs::copy(
        first.path().join(".wws.toml"),
        fresh.path().join(".wws.toml"),
    )
    .unwrap();
    let config = read_config(fresh.path()).unwrap();
    let rel = FakeRepo::binary_rel("otherlang", "1.0.0");
    server.stall_after(&rel, 4096);
    let before = server.requests().iter().filter(|r| **r == rel).count();
    let (mut child, rx) = spawn(fresh.path(), &["install"]);
    wait_line(&rx, "Installing: wasmlabs - otherlang");
    assert!(server.wait_for_requests(&rel, before + 1, WAIT));
    child.kill().unwrap();
    child.wait().unwrap();
    // fakelang was complete before the kill and stays; otherlang never appears.
    assert!(
        runtime_dir(fresh.path(), "wasmlabs", "fakelang", "1.0.0")
            .join("fakelang.wasm")
            .is_file()
    );
    assert!(!runtime_dir(fresh.path(), "wasmlabs", "otherlang", "1.0.0").exists());
    assert_eq!(read_config(fresh.path()).unwrap(), config);
    let out = fails(run(fresh.path(), &["check"]));
    assert!(
        out.lines()
            .any(|l| l.starts_with("❌") && l.contains("otherlang")),
        "{out}"
    );
    server.clear(&rel);
    ok(run(fresh.path(), &["install"]));
    assert_eq!(
        tree(&first.path().join(".wws/runtimes")),
        tree(&fresh.path().join(".wws/runtimes"))
    );
    assert_eq!(read_config(fresh.path()).unwrap(), config);
}

#[test]
fn a_second_version_whose_files_stay_with_the_first_says_how_to_switch() {
    let (_repo, _server, url, p) = served_repo();
    let first = ok(run(
        p.path(),
        &["install", "fakelang", "1.0.0", "--repo-url", &url],
    ));
    assert!(!first.contains("stay with"), "{first}");
    let second = ok(run(
        p.path(),
        &["install", "fakelang", "latest", "--repo-url", &url],
    ));
    assert!(
        second.contains(".fl files stay with wasmlabs - fakelang 1.0.0")
            && second.contains("wws runtimes --repo-name wasmlabs uninstall fakelang 1.0.0"),
        "{second}"
    );
    // Doing what it says serves them with the new one, and nothing warns any more.
    ok(run(p.path(), &["uninstall", "fakelang", "1.0.0"]));
    let again = ok(run(
        p.path(),
        &["install", "fakelang", "2.0.0", "--repo-url", &url],
    ));
    assert!(!again.contains("stay with"), "{again}");
}

#[test]
fn an_index_may_write_extensions_with_a_dot() {
    let mut repo = FakeRepo::empty();
    repo.add(Entry {
        extension: "dx",
        ..Entry::default()
    });
    let dotted = repo.entries[0].replace("extensions = [\"dx\"]", "extensions = [\".dx\"]");
    repo.entries[0] = dotted;
    repo.write_index();
    let server = RepoServer::serve(repo.path());
    let p = project();
    ok(run(
        p.path(),
        &[
            "install",
            "fakelang",
            "1.0.0",
            "--repo-url",
            &server.url("index.toml"),
        ],
    ));
    let config = read_config(p.path()).unwrap();
    assert!(config.contains("extensions = [\"dx\"]"), "{config}");
}

#[test]
fn check_and_install_compare_the_files_with_the_checksums_wws_toml_pins() {
    let (repo, _server, url, p) = served_repo();
    ok(run(
        p.path(),
        &["install", "fakelang", "1.0.0", "--repo-url", &url],
    ));
    let dir = runtime_dir(p.path(), "wasmlabs", "fakelang", "1.0.0");
    let binary = dir.join("fakelang.wasm");
    let original = std::fs::read(&binary).unwrap();
    ok(run(p.path(), &["check"]));

    // A file changed on disk: check says so and fails; install puts the pinned one back.
    std::fs::write(&binary, "tampered").unwrap();
    let out = fails(run(p.path(), &["check"]));
    assert!(out.contains("❌") && out.contains("changed"), "{out}");
    let out = ok(run(p.path(), &["install"]));
    assert!(
        out.contains("Installing: wasmlabs - fakelang / 1.0.0"),
        "{out}"
    );
    assert_eq!(std::fs::read(&binary).unwrap(), original);
    ok(run(p.path(), &["check"]));

    // A folder installed without the checksum list (the original wws) is hashed once.
    std::fs::remove_file(dir.join(wws_repository::CHECKSUMS_FILE)).unwrap();
    ok(run(p.path(), &["check"]));
    assert!(dir.join(wws_repository::CHECKSUMS_FILE).is_file());

    // A new pin in .wws.toml (a `git pull`): the next install fetches what it pins now.
    let config = read_config(p.path()).unwrap();
    let v2 = std::fs::read(repo.path().join(FakeRepo::binary_rel("fakelang", "2.0.0"))).unwrap();
    let repinned = config
        .replace(
            &FakeRepo::binary_rel("fakelang", "1.0.0"),
            &FakeRepo::binary_rel("fakelang", "2.0.0"),
        )
        .replace(&sha256_hex(&original), &sha256_hex(&v2));
    assert_ne!(repinned, config);
    std::fs::write(p.path().join(".wws.toml"), repinned).unwrap();
    fails(run(p.path(), &["check"]));
    ok(run(p.path(), &["install"]));
    assert_eq!(std::fs::read(&binary).unwrap(), v2);
    ok(run(p.path(), &["check"]));
}

#[test]
fn a_blank_repository_variable_means_the_default() {
    let (_repo, _server, url, p) = served_repo();
    ok(runtimes_cmd(
        p.path(),
        &["install", "fakelang", "1.0.0", "--repo-url", &url],
    )
    .env("WWS_REPO_NAME", "")
    .output()
    .unwrap());
    assert_eq!(
        config_entries(p.path()),
        [entry("wasmlabs", "fakelang", "1.0.0")]
    );
}
