//! Generated worker folders (`.wws/workers/<kind>/<hash>/`): what a runtime mounts at `/src`.
//!
//! A folder is named after the SHA-256 of its contents and written to a temporary folder first,
//! then renamed: identical workers share it, and a crash never leaves a half-written one that a
//! later start would trust. A read-only project (a checkout mounted read-only in a container)
//! gets them in the user's cache instead (`$XDG_CACHE_HOME/wws/workers/<kind>` or
//! `~/.cache/wws/workers/<kind>`), never in a shared temporary folder another user could
//! prepare.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use sha2::{Digest, Sha256};

/// `<project>/.wws/workers/<kind>`: the generated folders of one kind of worker.
pub(crate) fn kind_dir(project: &Path, kind: &str) -> PathBuf {
    project.join(".wws").join("workers").join(kind)
}

/// Removes the generated folders of the runtime workers named after `ext` (the first extension
/// of a runtime just uninstalled; the original left them behind). `js` belongs to the embedded
/// engine and an extension that is not a plain name is refused; a missing folder is fine.
pub fn remove_generated(project: &Path, ext: &str) -> anyhow::Result<()> {
    if ext == "js" || ext.is_empty() || ext.contains(['/', '\\', '.', '\0']) {
        return Ok(());
    }
    let dir = kind_dir(project, ext);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(anyhow::Error::new(e).context(format!("cannot remove {}", dir.display())))
        }
        _ => Ok(()),
    }
}

/// Writes `files` into `<project>/.wws/workers/<kind>/<content hash>/` (or the user's cache
/// when the project is read-only) unless it exists, and returns that folder.
pub(crate) fn write(
    project: &Path,
    kind: &str,
    files: &[(String, Vec<u8>)],
) -> anyhow::Result<PathBuf> {
    let dir = kind_dir(project, kind);
    let err = match write_in(&dir, files) {
        Err(err) if is_read_only(&err) => err,
        done => return done,
    };
    let Some(cache) = user_cache() else {
        return Err(err.context(
            "the project folder is read-only and neither XDG_CACHE_HOME nor HOME is set: make the project writable or set one of them",
        ));
    };
    let fallback = cache.join("wws").join("workers").join(kind);
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        tracing::info!(
            "{} is read-only: generated worker files go to {}",
            project.display(),
            fallback.display()
        );
    });
    write_in(&fallback, files)
}

/// Whether `err` comes from a folder that cannot be written.
fn is_read_only(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| {
            matches!(
                e.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
            )
        })
}

/// `$XDG_CACHE_HOME`, else `~/.cache`.
fn user_cache() -> Option<PathBuf> {
    let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(absolute)
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(absolute)
                .map(|h| h.join(".cache"))
        })
}

fn write_in(dir: &Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<PathBuf> {
    let mut hasher = Sha256::new();
    for (name, bytes) in files {
        hasher.update((name.len() as u64).to_le_bytes());
        hasher.update(name.as_bytes());
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    }
    let target = dir.join(hex::encode(&hasher.finalize()[..16]));
    if target.is_dir() {
        return Ok(target);
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempdir_in(dir)
        .with_context(|| format!("cannot create a folder in {}", dir.display()))?;
    for (name, bytes) in files {
        std::fs::write(tmp.path().join(name), bytes)
            .with_context(|| format!("cannot write {}", tmp.path().join(name).display()))?;
    }
    match std::fs::rename(tmp.path(), &target) {
        Ok(()) => {
            // The folder now lives at `target`; nothing left to clean.
            let _ = tmp.keep();
            Ok(target)
        }
        // Another wws process wrote the same content first.
        Err(_) if target.is_dir() => Ok(target),
        Err(err) => Err(err).with_context(|| format!("cannot create {}", target.display())),
    }
}
