//! One writer at a time per project. Every command that changes `.wws/runtimes/` or `.wws.toml`
//! holds an exclusive OS file lock on `.wws/lock` (std's `File::lock`: `flock` on Unix,
//! `LockFileEx` on Windows). The OS releases it when the process dies, even by `kill -9`, so a
//! crashed install never blocks the next one. Under the lock, leftovers of killed runs
//! (temporary runtime folders, temporary `.wws.toml` files) are removed.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::project_config::{TEMP_PREFIX, TEMP_SUFFIX};
use crate::report::Reporter;

/// Prefix of the temporary folders an install downloads into, inside
/// `.wws/runtimes/<repo>/<name>/`.
pub(crate) const STAGING_PREFIX: &str = ".tmp-";

/// Held while a project is being changed; unlocked on drop.
#[derive(Debug)]
pub struct ProjectLock {
    _file: File,
}

impl ProjectLock {
    /// Waits for the lock of `project` (saying so when another wws holds it), then removes
    /// what killed runs left behind.
    pub fn acquire(project: &Path, reporter: &dyn Reporter) -> anyhow::Result<Self> {
        let wws_dir = project.join(".wws");
        std::fs::create_dir_all(&wws_dir)
            .with_context(|| format!("cannot create {}", wws_dir.display()))?;
        let path = wws_dir.join("lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the lock file {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                reporter.line("⏳ Another wws is changing the runtimes of this project; waiting for it to finish...");
                file.lock()
                    .with_context(|| format!("cannot lock {}", path.display()))?;
            }
            Err(TryLockError::Error(e)) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot lock {}", path.display()))
                );
            }
        }
        clean_leftovers(project);
        Ok(Self { _file: file })
    }
}

/// Removes staging folders under `.wws/runtimes/*/*/` and temporary `.wws.toml.*.tmp` files.
/// Best effort: what cannot be removed now is tried again next time.
fn clean_leftovers(project: &Path) {
    for entry in children(&project.join(".wws/runtimes"))
        .into_iter()
        .flat_map(|repo| children(&repo))
        .flat_map(|name| children(&name))
    {
        if file_name_starts_with(&entry, STAGING_PREFIX) && entry.is_dir() {
            let _ = std::fs::remove_dir_all(&entry);
        }
    }
    for entry in children(project) {
        let name = entry
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.starts_with(TEMP_PREFIX) && name.ends_with(TEMP_SUFFIX) && entry.is_file() {
            let _ = std::fs::remove_file(&entry);
        }
    }
}

fn children(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

fn file_name_starts_with(path: &Path, prefix: &str) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Recorder;

    #[test]
    fn leftovers_of_killed_runs_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let staging = dir.path().join(".wws/runtimes/r/fakelang/.tmp-1.0-abc");
        let kept = dir.path().join(".wws/runtimes/r/fakelang/1.0");
        std::fs::create_dir_all(&staging).unwrap();
        std::fs::create_dir_all(&kept).unwrap();
        std::fs::write(staging.join("bin.wasm"), b"partial").unwrap();
        std::fs::write(dir.path().join(".wws.toml.x1y2.tmp"), b"half").unwrap();
        std::fs::write(dir.path().join(".wws.toml"), b"version = 1").unwrap();
        let _lock = ProjectLock::acquire(dir.path(), &Recorder::default()).unwrap();
        assert!(!staging.exists());
        assert!(kept.exists());
        assert!(!dir.path().join(".wws.toml.x1y2.tmp").exists());
        assert!(dir.path().join(".wws.toml").exists());
    }
}
