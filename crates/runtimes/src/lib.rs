//! How a worker file runs. A file's extension picks its runtime:
//! - `.wasm`: the module itself;
//! - `.js`: the JavaScript engine embedded in `wws`, pre-initialised per worker;
//! - any extension an installed language runtime claims: that runtime's interpreter with the
//!   worker's source wrapped and mounted at `/src`.
//!
//! The result is a [`Program`](wws_worker::Program) the worker crate prepares; nothing here
//! touches HTTP.

mod generated;
mod installed;
mod javascript;
mod native;

use std::path::Path;

pub use generated::remove_generated;
use installed::{Installed, SharedInstalled};
use wws_repository::InstalledRuntime;
use wws_worker::config::WorkerConfig;
use wws_worker::{Engine, Program};

/// The runtimes available to one project.
#[derive(Default)]
pub struct Runtimes {
    installed: Vec<SharedInstalled>,
    js: javascript::JavaScript,
}

impl Runtimes {
    /// Runtimes for a project with these installed language runtimes (in `.wws.toml` order:
    /// when two claim an extension, the first wins, as in the original).
    pub fn new(installed: Vec<InstalledRuntime>) -> anyhow::Result<Self> {
        let installed = installed
            .into_iter()
            .map(|rt| Installed::new(rt).map(std::sync::Arc::new))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self {
            installed,
            js: javascript::JavaScript::default(),
        })
    }

    /// File extensions (without dot) that are workers.
    pub fn extensions(&self) -> Vec<String> {
        let mut exts = vec!["wasm".to_string(), "js".to_string()];
        for rt in &self.installed {
            for ext in rt.extensions() {
                if !exts.contains(ext) {
                    exts.push(ext.clone());
                }
            }
        }
        exts
    }

    /// Builds the program for the worker file `rel` (relative to `root`) with its config.
    pub async fn program(
        &self,
        engine: &Engine,
        root: &Path,
        rel: &Path,
        config: &WorkerConfig,
    ) -> anyhow::Result<Program> {
        let file = root.join(rel);
        let ext = rel.extension().and_then(|e| e.to_str()).unwrap_or_default();
        match ext {
            "wasm" => return native::program(&file, rel, config),
            "js" => return self.js.program(engine, root, rel, config).await,
            _ => {}
        }
        match self
            .installed
            .iter()
            .find(|rt| rt.extensions().iter().any(|e| e == ext))
        {
            Some(rt) => rt.program(engine, root, rel, config),
            None => anyhow::bail!(
                "no installed runtime handles .{ext} files ({})",
                rel.display()
            ),
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
