//! Guest fixtures are built from source (`tests/fixtures/rust`, one binary per worker) the first
//! time a test asks for one, and test projects are assembled in fresh temporary folders.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::workspace_root;

/// Folder where guest fixtures are built: beside the host build, never inside the source tree.
fn fixtures_target_dir() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    base.join("guest-fixtures")
}

/// Builds the guest crate at `manifest` for `target` into the shared fixture target dir.
fn build_guests(manifest: &str, target: &str) -> PathBuf {
    let dir = fixtures_target_dir();
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--target", target, "--manifest-path"])
        .arg(workspace_root().join(manifest))
        .arg("--target-dir")
        .arg(&dir)
        // Small shadow stack and 2 MiB of initial memory: cheap per-request resets, and a
        // request never grows memory (see sdk/rust/README.md).
        .env(
            "RUSTFLAGS",
            "-C link-arg=-zstack-size=65536 -C link-arg=--initial-memory=2097152",
        )
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .status()
        .expect("cargo must be runnable to build guest fixtures");
    assert!(status.success(), "building {manifest} for {target} failed");
    dir.join(target).join("release")
}

/// Builds every Rust guest fixture once per test process (cargo itself serialises concurrent
/// test binaries on the target dir lock) and returns the folder holding the `.wasm` files.
pub fn rust_fixtures_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_guests("tests/fixtures/rust/Cargo.toml", "wasm32-wasip1"))
}

/// Same for the WASI preview2 component fixtures (`tests/fixtures/rust-p2`).
pub fn rust_p2_fixtures_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| build_guests("tests/fixtures/rust-p2/Cargo.toml", "wasm32-wasip2"))
}

/// Path of the compiled Rust fixture `name` (a bin of `tests/fixtures/rust`).
pub fn rust_wasm(name: &str) -> PathBuf {
    let path = rust_fixtures_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "no fixture {name}: add src/bin/{name}.rs to tests/fixtures/rust"
    );
    path
}

/// A project folder under construction, deleted when dropped.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    /// An empty project in a fresh temporary folder.
    pub fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("wws-test-")
                .tempdir()
                .unwrap(),
        }
    }

    /// Project root.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Write a file (parents created) and return `self` for chaining.
    pub fn file(&self, rel: &str, contents: impl AsRef<[u8]>) -> &Self {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        self
    }

    /// Copy the Rust fixture `fixture` to `rel` (e.g. `api/[id].wasm`).
    pub fn wasm(&self, rel: &str, fixture: &str) -> &Self {
        let bytes = std::fs::read(rust_wasm(fixture)).unwrap();
        self.file(rel, bytes)
    }

    /// Copy the preview2 component fixture `fixture` to `rel`.
    pub fn component(&self, rel: &str, fixture: &str) -> &Self {
        let path = rust_p2_fixtures_dir().join(format!("{fixture}.wasm"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        self.file(rel, bytes)
    }

    /// Create an empty folder.
    pub fn dir(&self, rel: &str) -> &Self {
        std::fs::create_dir_all(self.dir.path().join(rel)).unwrap();
        self
    }
}

/// A compiled-module cache shared by every test (`wws --cache-dir`), so interpreters such as
/// CPython and Ruby are compiled once per machine, not once per test project.
pub fn module_cache_dir() -> PathBuf {
    fixtures_target_dir().with_file_name("wws-module-cache")
}

/// Our runtime repository (`runtimes/build-repository.sh`: real CPython and Ruby from the
/// package registries, checked against pinned hashes), built once and shared by all tests.
pub fn runtime_repository() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let out = fixtures_target_dir().with_file_name("runtime-repository");
        // Test binaries run in parallel: one builds, the others wait on the lock.
        std::fs::create_dir_all(out.parent().unwrap()).unwrap();
        let lock = std::fs::File::create(out.with_extension("lock")).unwrap();
        lock.lock().unwrap();
        // Always rerun: the builder is idempotent and works from its download cache, and a
        // repository built from older polyfills must never be tested by mistake.
        let status = Command::new(workspace_root().join("runtimes/build-repository.sh"))
            .arg(&out)
            .status()
            .expect("runtimes/build-repository.sh must be runnable");
        assert!(status.success(), "building the runtime repository failed");
        out
    })
}
