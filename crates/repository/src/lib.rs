//! Language-runtime repositories for wws: the `index.toml` format, verified downloads,
//! install / uninstall / check, and the project file `.wws.toml` (spec §6, DESIGN §6).
//!
//! Code map:
//! - [`metadata`]: one runtime's metadata (shared by `index.toml` and `.wws.toml`), path checks;
//! - [`location`]: `https://`, `http://`, `file://` or a path, and relative-URL resolution;
//! - [`index`]: parse and search a repository index;
//! - [`project_config`]: load and atomically save `.wws.toml`;
//! - [`download`]: HTTP status + streaming SHA-256 checked downloads;
//! - [`install`]: staging folder → verified → rename; uninstall; check;
//! - [`lock`]: the per-project lock and cleanup of killed runs;
//! - [`report`]: how progress reaches the user.
//!
//! Invariants: only this crate downloads; a runtime folder exists only complete and verified;
//! `.wws.toml` is replaced atomically and never overwritten when it cannot be parsed; no name
//! from an index or a project file can make a path leave its folder. The API is blocking and
//! may be called from inside or outside a tokio runtime.

#![cfg_attr(
    test,
    allow(clippy::unwrap_used, reason = "tests fail loudly on purpose")
)]

mod blocking;
pub mod download;
pub mod index;
pub mod install;
pub mod location;
pub mod lock;
pub mod metadata;
pub mod project_config;
pub mod report;

use std::path::{Path, PathBuf};

pub use index::Index;
pub use install::{
    CHECKSUMS_FILE, InstallOutcome, RepositoryRef, RuntimeState, Verify, check, install, restore,
    uninstall,
};
pub use location::Location;
pub use metadata::{Checksum, RemoteFile, Runtime, RuntimeStatus};
pub use project_config::ProjectConfig;
pub use report::{Console, Recorder, Reporter};

/// A runtime listed in `.wws.toml` whose files are all on disk: what `wws serve` uses to find
/// worker extensions and the module, polyfill and wrapper of each.
#[derive(Debug, Clone)]
pub struct InstalledRuntime {
    /// Name of the repository it came from.
    pub repository: String,
    /// Its metadata as recorded in `.wws.toml`.
    pub runtime: Runtime,
    /// `<project>/.wws/runtimes/<repo>/<name>/<version>`.
    pub dir: PathBuf,
}

impl InstalledRuntime {
    /// Path on disk of one of this runtime's files (e.g. `&self.runtime.binary`).
    pub fn file(&self, file: &RemoteFile) -> PathBuf {
        self.dir.join(&file.filename)
    }
}

/// The runtimes of `project`'s `.wws.toml` that are installed, in file order (the first one
/// claiming an extension wins). No `.wws.toml` means none; a malformed one is an error naming
/// the file.
pub fn installed_runtimes(project: &Path) -> anyhow::Result<Vec<InstalledRuntime>> {
    let config = ProjectConfig::load(project)?;
    Ok(config
        .runtimes()
        .filter(|(repo, rt)| install::is_present(project, repo, rt))
        .map(|(repo, rt)| InstalledRuntime {
            repository: repo.to_string(),
            runtime: rt.clone(),
            dir: install::runtime_dir(project, repo, rt),
        })
        .collect())
}

/// Installs every runtime `.wws.toml` lists that is missing (what `wws PATH` does before it
/// serves), printing progress to the terminal, then returns the installed runtimes. Prints
/// nothing when nothing is missing. Blocking; safe to call inside or outside tokio.
pub fn install_missing(project: &Path) -> anyhow::Result<Vec<InstalledRuntime>> {
    install_missing_with(project, &Console)
}

/// [`install_missing`] with a chosen [`Reporter`] (e.g. a [`Recorder`] to log instead of print).
pub fn install_missing_with(
    project: &Path,
    reporter: &dyn Reporter,
) -> anyhow::Result<Vec<InstalledRuntime>> {
    install::restore(project, Verify::Pins, reporter)?;
    installed_runtimes(project)
}

/// Downloads and parses the repository index at `location` (warning about plain `http://` and
/// newer index versions through `reporter`). Blocking; safe inside or outside tokio.
pub fn fetch_index(location: &Location, reporter: &dyn Reporter) -> anyhow::Result<Index> {
    blocking::run(|| Index::fetch(&download::Downloader::new()?, location, reporter))
}

/// True when `runtime` of repository `repo` is listed in `config` and all its files are on disk.
pub fn is_installed(project: &Path, config: &ProjectConfig, repo: &str, runtime: &Runtime) -> bool {
    config.find(repo, &runtime.name, &runtime.version).is_some()
        && install::is_present(project, repo, runtime)
}
