//! The API `wws serve` uses: `installed_runtimes` and `install_missing`, over HTTP from a
//! repository served on 127.0.0.1, called from inside and outside a tokio runtime.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")]

use std::path::Path;

use wws_repository::download::sha256_hex;
use wws_repository::{Recorder, RepositoryRef};
use wws_test_support::repo_server::RepoServer;

/// A repository with `fakelang 1.0.0` (binary + wrapper) and `otherlang 2.0.0` (binary only).
fn repository(dir: &Path) {
    let mut index = String::from("version = 1\n");
    for (name, version, ext, wrapper) in [
        ("fakelang", "1.0.0", "fl", true),
        ("otherlang", "2.0.0", "ol", false),
    ] {
        let bin = format!("{name} {version} module");
        std::fs::write(dir.join(format!("{name}.wasm")), &bin).unwrap();
        index.push_str(&format!(
            "[[runtimes]]\nname = \"{name}\"\nversion = \"{version}\"\nstatus = \"active\"\nextensions = [\"{ext}\"]\nargs = []\nentrypoint = \"wasi-command\"\nreuse = {{ max_requests = 1000 }}\nbinary = {{ url = \"{name}.wasm\", filename = \"{name}.wasm\", checksum = {{ type = \"sha256\", value = \"{}\" }} }}\n",
            sha256_hex(bin.as_bytes())
        ));
        if wrapper {
            std::fs::write(dir.join("wrapper.txt"), "{source}").unwrap();
            index.push_str(&format!(
                "wrapper = {{ url = \"wrapper.txt\", filename = \"wrapper.txt\", checksum = {{ type = \"sha256\", value = \"{}\" }} }}\n",
                sha256_hex(b"{source}")
            ));
        }
    }
    std::fs::write(dir.join("index.toml"), index).unwrap();
}

#[test]
fn install_missing_restores_what_wws_toml_lists_even_inside_tokio() {
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    let server = RepoServer::serve(repo.path());
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    let source = RepositoryRef::new("local", &server.url("index.toml")).unwrap();
    let quiet = Recorder::default();
    wws_repository::install(p, &source, "fakelang", "1.0.0", false, &quiet).unwrap();
    wws_repository::install(p, &source, "otherlang", "2.0.0", false, &quiet).unwrap();

    let installed = wws_repository::installed_runtimes(p).unwrap();
    let names: Vec<&str> = installed.iter().map(|r| r.runtime.name.as_str()).collect();
    assert_eq!(names, ["fakelang", "otherlang"]);
    let fake = &installed[0];
    assert_eq!(fake.repository, "local");
    assert_eq!(fake.dir, p.join(".wws/runtimes/local/fakelang/1.0.0"));
    assert_eq!(
        std::fs::read_to_string(fake.file(fake.runtime.wrapper.as_ref().unwrap())).unwrap(),
        "{source}"
    );
    assert_eq!(fake.runtime.entrypoint.as_deref(), Some("wasi-command"));
    let reuse = fake.runtime.reuse.as_ref().unwrap();
    assert_eq!(
        reuse.get("max_requests").and_then(|v| v.as_integer()),
        Some(1000)
    );

    // A fresh checkout with only `.wws.toml`: nothing is installed until install_missing.
    let fresh = tempfile::tempdir().unwrap();
    std::fs::copy(p.join(".wws.toml"), fresh.path().join(".wws.toml")).unwrap();
    assert!(
        wws_repository::installed_runtimes(fresh.path())
            .unwrap()
            .is_empty()
    );
    let log = Recorder::default();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let restored = runtime
        .block_on(async { wws_repository::install_missing_with(fresh.path(), &log) })
        .unwrap();
    assert_eq!(restored.len(), 2);
    assert!(restored.iter().all(|r| r.file(&r.runtime.binary).is_file()));
    let lines = log.lines();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("Installing: local - otherlang / 2.0.0")),
        "{lines:?}"
    );

    // Nothing missing: nothing printed, nothing downloaded.
    let before = server.requests().len();
    let log = Recorder::default();
    assert_eq!(
        wws_repository::install_missing_with(fresh.path(), &log)
            .unwrap()
            .len(),
        2
    );
    assert!(log.lines().is_empty(), "{:?}", log.lines());
    assert_eq!(server.requests().len(), before);
}

#[test]
fn install_missing_fails_clearly_and_keeps_the_project_clean() {
    let repo = tempfile::tempdir().unwrap();
    repository(repo.path());
    let server = RepoServer::serve(repo.path());
    let project = tempfile::tempdir().unwrap();
    let p = project.path();
    let source = RepositoryRef::new("local", &server.url("index.toml")).unwrap();
    wws_repository::install(p, &source, "fakelang", "1.0.0", false, &Recorder::default()).unwrap();
    wws_repository::install(
        p,
        &source,
        "otherlang",
        "2.0.0",
        false,
        &Recorder::default(),
    )
    .unwrap();
    let fresh = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(p.join(".wws.toml")).unwrap();
    std::fs::write(fresh.path().join(".wws.toml"), &config).unwrap();
    server.fail("wrapper.txt", 404);
    let err = wws_repository::install_missing_with(fresh.path(), &Recorder::default()).unwrap_err();
    let msg = format!("{err:#}");
    assert!(
        msg.contains(&server.url("wrapper.txt"))
            && msg.contains("404")
            && msg.contains("local - fakelang / 1.0.0")
            && msg.contains(".wws.toml"),
        "{msg}"
    );
    // No folder for it, not even an empty `<repo>/<name>` one; the other one is installed.
    assert!(!fresh.path().join(".wws/runtimes/local/fakelang").exists());
    assert!(!msg.contains("otherlang"), "{msg}");
    let installed = wws_repository::installed_runtimes(fresh.path()).unwrap();
    assert_eq!(installed.len(), 1);
    assert_eq!(installed[0].runtime.name, "otherlang");
    assert_eq!(
        std::fs::read_to_string(fresh.path().join(".wws.toml")).unwrap(),
        config
    );
}

#[test]
fn no_project_file_means_no_runtimes_and_no_wws_folder() {
    let project = tempfile::tempdir().unwrap();
    assert!(
        wws_repository::install_missing(project.path())
            .unwrap()
            .is_empty()
    );
    assert!(!project.path().join(".wws").exists());
}
