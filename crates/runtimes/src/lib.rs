//! How a worker file runs. A file's extension picks its runtime:
//! - `.wasm`: the module itself ([`native`]);
//! - any extension an installed language runtime claims: that runtime's interpreter with the
//!   worker's source wrapped and mounted at `/src`.
//!
//! The result is a [`Program`](wws_worker::Program) the worker crate prepares; nothing here
//! touches HTTP.

mod native;

use std::path::Path;

use wws_worker::Program;
use wws_worker::config::WorkerConfig;

/// The runtimes available to one project.
#[derive(Debug, Default)]
pub struct Runtimes {}

impl Runtimes {
    /// Runtimes for the project at `root`.
    pub fn new() -> Self {
        Self {}
    }

    /// File extensions (without dot) that are workers.
    pub fn extensions(&self) -> Vec<String> {
        vec!["wasm".to_string()]
    }

    /// Builds the program for the worker file `rel` (relative to `root`) with its config.
    pub fn program(
        &self,
        root: &Path,
        rel: &Path,
        config: &WorkerConfig,
    ) -> anyhow::Result<Program> {
        let file = root.join(rel);
        match rel.extension().and_then(|e| e.to_str()) {
            Some("wasm") => native::program(&file, rel, config),
            _ => anyhow::bail!("no runtime handles {}", rel.display()),
        }
    }
}

/// The worker's folders as WASI preopens.
pub(crate) fn folder_preopens(config: &WorkerConfig) -> Vec<wws_worker::Preopen> {
    config
        .folders
        .iter()
        .map(|f| wws_worker::Preopen {
            host: f.from.clone(),
            guest: f.to.clone(),
            writable: !f.readonly,
        })
        .collect()
}

/// Display name of a worker: its path relative to the project, with `/` separators.
pub fn display_name(rel: &Path) -> String {
    rel.to_string_lossy().replace('\\', "/")
}
