//! Worker discovery (spec §2.1): walk the project for files with a worker extension, skipping
//! the folders and names that are never workers and the user's `--ignore` globs.

use std::io;
use std::path::{Path, PathBuf};

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use walkdir::{DirEntry, WalkDir};

use crate::error::RouterError;

/// Folder names never walked, at any depth: `public` holds static files, `.wws` is wws' own
/// state, `.git` is never a worker and is large. Other hidden folders and `node_modules` are
/// walked as in the original; use `--ignore` to skip them.
const SKIPPED_FOLDERS: [&str; 3] = ["public", ".wws", ".git"];

/// Find the worker files under `root`, as paths relative to it, sorted.
///
/// A worker is a file whose last extension is in `extensions` (given without the dot, e.g.
/// `["js", "wasm", "py"]`; case-sensitive). Never workers: anything inside a folder named
/// `public`, `.wws` or `.git` at any depth, and any file or folder whose name starts with `_`
/// (helper folders such as `_libs`). `ignore` globs match the path relative to the root
/// (`target/**`, `**/examples/**`, `*/*pub*`); `*` does not cross `/`, `**` does. A folder that
/// matches a glob, or whose contents a glob ending in `/**` covers, is not walked at all.
///
/// Symbolic links are followed only while they stay inside the root; links that leave it,
/// loop or are broken are skipped. Errors: the root is missing or not a folder, a glob does not
/// parse, or a folder cannot be read (name it in `ignore` to skip it).
pub fn discover(
    root: &Path,
    extensions: &[String],
    ignore: &[String],
) -> Result<Vec<PathBuf>, RouterError> {
    let walk_error = |path: &Path, source: io::Error| RouterError::Walk {
        path: path.to_path_buf(),
        source,
    };
    let metadata = std::fs::metadata(root).map_err(|source| walk_error(root, source))?;
    if !metadata.is_dir() {
        let source = io::Error::new(io::ErrorKind::NotADirectory, "not a folder");
        return Err(walk_error(root, source));
    }
    let canonical_root = root
        .canonicalize()
        .map_err(|source| walk_error(root, source))?;
    let ignore = Ignore::new(ignore)?;
    let extensions: Vec<&str> = extensions
        .iter()
        .map(|ext| ext.trim_start_matches('.'))
        .filter(|ext| !ext.is_empty())
        .collect();

    let mut files = Vec::new();
    let walk = WalkDir::new(root)
        .follow_links(true)
        .min_depth(1)
        .into_iter()
        .filter_entry(|entry| keep(entry, root, &canonical_root, &ignore));
    for entry in walk {
        let entry = match entry {
            Ok(entry) => entry,
            // Loops and broken links: a link is never worth stopping the start for.
            Err(error) if error.path().is_some_and(Path::is_symlink) => continue,
            Err(error) => {
                let path = error.path().unwrap_or(root).to_path_buf();
                let source = error
                    .into_io_error()
                    .unwrap_or_else(|| io::Error::other("file system loop"));
                return Err(walk_error(&path, source));
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let is_worker = entry
            .path()
            .extension()
            .and_then(|ext| ext.to_str())
            .is_some_and(|ext| extensions.contains(&ext));
        if is_worker && let Ok(relative) = entry.path().strip_prefix(root) {
            files.push(relative.to_path_buf());
        }
    }
    files.sort();
    Ok(files)
}

/// Whether to keep an entry (and, for a folder, walk into it).
fn keep(entry: &DirEntry, root: &Path, canonical_root: &Path, ignore: &Ignore) -> bool {
    let name = entry.file_name();
    if name.as_encoded_bytes().first() == Some(&b'_') {
        return false;
    }
    let is_dir = entry.file_type().is_dir();
    if is_dir && SKIPPED_FOLDERS.iter().any(|skipped| name == *skipped) {
        return false;
    }
    if entry.path_is_symlink() {
        let inside = entry
            .path()
            .canonicalize()
            .is_ok_and(|target| target.starts_with(canonical_root));
        if !inside {
            return false;
        }
    }
    match entry.path().strip_prefix(root) {
        Ok(relative) => !ignore.is_ignored(relative, is_dir),
        Err(_) => false,
    }
}

/// The user's `--ignore` globs, compiled once.
struct Ignore {
    /// Every glob as given: matches files, and folders (which are then not walked).
    paths: GlobSet,
    /// For each glob `X/**`, the glob `X`: a folder matching it has all its contents ignored.
    trees: GlobSet,
}

impl Ignore {
    fn new(globs: &[String]) -> Result<Ignore, RouterError> {
        let mut paths = GlobSetBuilder::new();
        let mut trees = GlobSetBuilder::new();
        for glob in globs {
            paths.add(compile(glob, glob)?);
            if let Some(tree) = glob.strip_suffix("/**").filter(|tree| !tree.is_empty()) {
                trees.add(compile(glob, tree)?);
            }
        }
        let build = |set: GlobSetBuilder| {
            set.build().map_err(|source| RouterError::InvalidIgnore {
                glob: globs.join(" "),
                source,
            })
        };
        Ok(Ignore {
            paths: build(paths)?,
            trees: build(trees)?,
        })
    }

    fn is_ignored(&self, relative: &Path, is_dir: bool) -> bool {
        self.paths.is_match(relative) || (is_dir && self.trees.is_match(relative))
    }
}

/// Compile `pattern` (derived from the user's `glob`) with `*` not crossing `/`, as the
/// original's glob library did.
fn compile(glob: &str, pattern: &str) -> Result<globset::Glob, RouterError> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|source| RouterError::InvalidIgnore {
            glob: glob.to_owned(),
            source,
        })
}
