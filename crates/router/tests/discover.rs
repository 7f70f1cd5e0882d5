//! Discovery against real folders: the original's test table (spec §2.1) and our additions
//! (symlinks, `.git`, folder pruning, errors).

use std::fs;
use std::path::{Path, PathBuf};

use tempfile::TempDir;
use wws_router::{RouterError, discover};

/// The original's `crates/router/tests/data/files` tree (empty files).
const SPEC_FILES: [&str; 16] = [
    "examples.js",
    "index.js",
    "public.js",
    "_index.js",
    "_home.ext",
    "home.ext",
    "_internal/index.js",
    "examples/public.js",
    "examples/home.ext",
    "examples/_index/index.js",
    "examples/_index/home.ext",
    "examples/index/index.js",
    "examples/index/home.ext",
    "examples/index/public/index.js",
    "public/index.js",
    "public/home.ext",
];

fn tree(files: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for file in files {
        let path = dir.path().join(file);
        fs::create_dir_all(path.parent().expect("file has a parent")).expect("create folder");
        fs::write(&path, b"").expect("write file");
    }
    dir
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn found(root: &Path, extensions: &[&str], ignore: &[&str]) -> Vec<String> {
    discover(root, &strings(extensions), &strings(ignore))
        .expect("discover")
        .iter()
        .map(|path| path.to_string_lossy().replace('\\', "/"))
        .collect()
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut paths: Vec<PathBuf> = list.iter().map(PathBuf::from).collect();
    paths.sort();
    paths
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn spec_default_extensions() {
    let dir = tree(&SPEC_FILES);
    assert_eq!(
        found(dir.path(), &["js", "wasm"], &[]),
        sorted(&[
            "examples.js",
            "index.js",
            "public.js",
            "examples/public.js",
            "examples/index/index.js",
        ])
    );
}

#[test]
fn spec_sub_folder_as_root() {
    let dir = tree(&SPEC_FILES);
    assert_eq!(
        found(&dir.path().join("examples"), &["js", "wasm"], &[]),
        sorted(&["public.js", "index/index.js"])
    );
}

#[test]
fn spec_extra_extension() {
    let dir = tree(&SPEC_FILES);
    assert_eq!(
        found(dir.path(), &["js", "wasm", "ext"], &[]),
        sorted(&[
            "examples.js",
            "index.js",
            "public.js",
            "examples/public.js",
            "examples/index/index.js",
            "home.ext",
            "examples/home.ext",
            "examples/index/home.ext",
        ])
    );
}

#[test]
fn spec_ignore_examples() {
    let dir = tree(&SPEC_FILES);
    assert_eq!(
        found(dir.path(), &["js", "wasm"], &["**/examples/**"]),
        sorted(&["examples.js", "index.js", "public.js"])
    );
}

#[test]
fn spec_two_extensions_two_ignores() {
    let dir = tree(&SPEC_FILES);
    assert_eq!(
        found(
            dir.path(),
            &["js", "wasm", "ext", "none"],
            &["**/index/**", "*/*pub*"]
        ),
        sorted(&[
            "examples.js",
            "home.ext",
            "index.js",
            "public.js",
            "examples/home.ext",
        ])
    );
}

#[test]
fn extensions_may_have_a_dot_and_only_the_last_counts() {
    let dir = tree(&["a.py", "b.js.txt", "c.txt.js", "d.toml", "handler.toml"]);
    assert_eq!(
        found(dir.path(), &[".py", "js"], &[]),
        sorted(&["a.py", "c.txt.js"])
    );
}

#[test]
fn git_and_wws_are_skipped_other_hidden_folders_are_not() {
    let dir = tree(&[
        ".git/hooks/x.js",
        ".wws/runtimes/r/wrapper.js",
        ".well-known/x.js",
        "node_modules/pkg/index.js",
        "a/.wws/x.js",
    ]);
    assert_eq!(
        found(dir.path(), &["js"], &[]),
        sorted(&[".well-known/x.js", "node_modules/pkg/index.js"])
    );
}

#[test]
fn a_matching_folder_is_not_walked() {
    let dir = tree(&["target/debug/x.js", "deep/target/y.js", "keep.js"]);
    assert_eq!(
        found(dir.path(), &["js"], &["target"]),
        sorted(&["deep/target/y.js", "keep.js"])
    );
    assert_eq!(
        found(dir.path(), &["js"], &["**/target"]),
        sorted(&["keep.js"])
    );
    assert_eq!(
        found(dir.path(), &["js"], &["target/**"]),
        sorted(&["deep/target/y.js", "keep.js"])
    );
}

/// A folder covered by an ignore glob is pruned before it is read, so an unreadable one never
/// stops the start; unignored, it is a `Walk` error naming it (checked only when the tests do
/// not run as root, which reads anything).
#[cfg(unix)]
#[test]
fn ignored_unreadable_folder_is_not_read() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tree(&["locked/x.js", "ok.js"]);
    let locked = dir.path().join("locked");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).expect("chmod");
    let readable_anyway = fs::read_dir(&locked).is_ok(); // root ignores permissions
    let ignored = found(dir.path(), &["js"], &["locked/**"]);
    let unignored = discover(dir.path(), &strings(&["js"]), &[]);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).expect("chmod back");
    assert_eq!(ignored, sorted(&["ok.js"]));
    if !readable_anyway {
        match unignored {
            Err(error @ RouterError::Walk { .. }) => {
                assert!(error.to_string().contains("locked"), "{error}");
            }
            other => panic!("expected a Walk error, got {other:?}"),
        }
    }
}

#[cfg(unix)]
#[test]
fn symlinks_are_followed_only_inside_the_root() {
    use std::os::unix::fs::symlink;
    let outside = tree(&["secret.js", "lib/leak.js"]);
    let dir = tree(&["api/handler.js"]);
    let root = dir.path();
    symlink(outside.path().join("secret.js"), root.join("secret.js")).expect("link");
    symlink(outside.path().join("lib"), root.join("lib")).expect("link");
    symlink(root.join("api"), root.join("alias")).expect("link");
    symlink(root.join("api/handler.js"), root.join("h.js")).expect("link");
    symlink(root.join("missing.js"), root.join("broken.js")).expect("link");
    symlink(root, root.join("api/loop")).expect("link");
    assert_eq!(
        found(root, &["js"], &[]),
        sorted(&["alias/handler.js", "api/handler.js", "h.js"])
    );
}

#[test]
fn missing_root_is_a_walk_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope");
    match discover(&missing, &strings(&["js"]), &[]) {
        Err(error @ RouterError::Walk { .. }) => {
            assert!(error.to_string().contains("nope"), "{error}");
        }
        other => panic!("expected a Walk error, got {other:?}"),
    }
}

#[test]
fn file_root_is_a_walk_error() {
    let dir = tree(&["index.js"]);
    let file = dir.path().join("index.js");
    assert!(matches!(
        discover(&file, &strings(&["js"]), &[]),
        Err(RouterError::Walk { .. })
    ));
}

#[test]
fn invalid_glob_names_the_glob() {
    let dir = tree(&["index.js"]);
    match discover(dir.path(), &strings(&["js"]), &strings(&["a/[b"])) {
        Err(error @ RouterError::InvalidIgnore { .. }) => {
            assert!(error.to_string().contains("a/[b"), "{error}");
        }
        other => panic!("expected InvalidIgnore, got {other:?}"),
    }
}

#[test]
fn empty_project_finds_nothing() {
    let dir = tree(&[]);
    assert!(found(dir.path(), &["js", "wasm"], &[]).is_empty());
}

/// The `_` and `public` rules apply below the root, not to the root's own name.
#[test]
fn root_name_does_not_count() {
    let dir = tree(&["_project/index.js", "public/index.js", ".git/index.js"]);
    for root in ["_project", "public", ".git"] {
        assert_eq!(
            found(&dir.path().join(root), &["js"], &[]),
            sorted(&["index.js"]),
            "root {root}"
        );
    }
}
