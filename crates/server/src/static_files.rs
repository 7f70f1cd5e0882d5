//! Files from the project's root `public/` folder (spec §7.2–7.3).
//!
//! A request path maps to a file only through plain path segments: `..`, `.`, empty segments
//! after decoding, backslashes, NUL and hidden names (starting with `.`) are refused, and the
//! resolved file must still be inside the project after symlinks are followed: a symlink in
//! `public/` may point elsewhere in the project (`public/build -> ../dist`), not out of it. Folders serve their
//! `index.html`. `public/404.html`, when present, is the body of every 404 — with status 404
//! (the original may have answered 200).
//!
//! Files are read from disk, as the original does, but the files served are kept in memory:
//! a request for a known path costs one `stat` to check the file's size and modification time
//! are unchanged, instead of resolving the path, handing the read to a blocking thread and
//! waking back up (a quarter of native speed for a small file; this way it is close to native).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use bytes::Bytes;
use http::HeaderValue;
use percent_encoding::percent_decode_str;

/// Largest file kept in memory.
const CACHE_FILE_MAX: u64 = 1 << 20;
/// Most bytes kept in memory over all files; files past it are read on every request.
const CACHE_TOTAL_MAX: usize = 64 << 20;

/// A file ready to send.
#[derive(Clone)]
pub struct StaticFile {
    /// Its contents.
    pub body: Bytes,
    /// `Content-Type`, from the extension.
    pub content_type: HeaderValue,
    /// Strong validator: changes whenever the file's size, modification time or inode does.
    pub etag: HeaderValue,
    /// Modification time, compared with `If-Modified-Since`.
    pub modified: Option<SystemTime>,
    /// `Last-Modified`: the modification time as an HTTP date, formatted once.
    pub last_modified: Option<HeaderValue>,
}

/// The `public/` folder of a project.
#[derive(Clone)]
pub struct StaticFiles {
    root: PathBuf,
    /// Where a resolved file must be (the project folder, symlinks followed).
    within: PathBuf,
    cache: Arc<RwLock<Cache>>,
}

impl std::fmt::Debug for StaticFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaticFiles")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Files already served, by request path.
#[derive(Default)]
struct Cache {
    files: HashMap<String, Cached>,
    bytes: usize,
}

/// A file as it was read, and what says whether it still is.
struct Cached {
    file: PathBuf,
    version: Version,
    served: StaticFile,
}

/// Size, modification time and inode: a file that changed or was replaced has a different one.
#[derive(PartialEq, Eq, Clone, Copy)]
struct Version {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Version {
    /// `"<len>-<mtime ns>-<inode>"` in hex: what a cache compares.
    fn etag(&self) -> String {
        let nanos = self
            .modified
            .and_then(|m| m.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        format!("\"{:x}-{nanos:x}-{:x}\"", self.len, self.inode)
    }

    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

impl StaticFiles {
    /// Serves `dir` if it is a folder, with files found inside `within` (the project);
    /// `None` otherwise.
    pub fn new(dir: &Path, within: &Path) -> Option<Self> {
        let root = dir.canonicalize().ok()?;
        let within = within.canonicalize().ok()?;
        root.is_dir().then_some(Self {
            root,
            within,
            cache: Arc::default(),
        })
    }

    /// The file for a request path (prefix already removed), if there is a safe one.
    pub fn resolve(&self, path: &str) -> Option<PathBuf> {
        let mut file = self.root.clone();
        for raw in path.split('/') {
            if raw.is_empty() {
                continue;
            }
            let segment = percent_decode_str(raw).decode_utf8().ok()?;
            if segment == ".."
                || segment.starts_with('.')
                || segment.contains(['\\', '\0', '/'])
                || segment.contains(':')
            {
                return None;
            }
            file.push(&*segment);
        }
        let mut file = file.canonicalize().ok()?;
        if file.is_dir() {
            file = file.join("index.html").canonicalize().ok()?;
        }
        (file.starts_with(&self.within) && file.is_file()).then_some(file)
    }

    /// Reads the file for `path`, if any.
    pub async fn get(&self, path: &str) -> Option<StaticFile> {
        if let Some(hit) = self.cached(path) {
            return Some(hit);
        }
        let file = self.resolve(path)?;
        self.read_and_remember(path, file).await
    }

    /// Reads `file` and keeps it in memory as what `key` serves.
    async fn read_and_remember(&self, key: &str, file: PathBuf) -> Option<StaticFile> {
        let (served, version) = read(&file).await?;
        self.remember(key, file, version, &served);
        Some(served)
    }

    /// The file served for `path` before, if it is still the same file.
    fn cached(&self, path: &str) -> Option<StaticFile> {
        let cache = self.cache.read().ok()?;
        let cached = cache.files.get(path)?;
        // One `stat`: it follows a symlink as `resolve` did, and fails once the file is gone.
        let now = std::fs::metadata(&cached.file).ok()?;
        (Version::of(&now) == cached.version).then(|| cached.served.clone())
    }

    fn remember(&self, path: &str, file: PathBuf, version: Version, served: &StaticFile) {
        if version.len > CACHE_FILE_MAX {
            return;
        }
        let Ok(mut cache) = self.cache.write() else {
            return;
        };
        let size = served.body.len();
        let old = cache.files.get(path).map_or(0, |c| c.served.body.len());
        if cache.bytes - old + size > CACHE_TOTAL_MAX {
            return;
        }
        cache.bytes = cache.bytes - old + size;
        cache.files.insert(
            path.to_owned(),
            Cached {
                file,
                version,
                served: served.clone(),
            },
        );
    }

    /// The custom 404 page, if the project has one.
    pub async fn not_found_page(&self) -> Option<StaticFile> {
        // Request paths start with `/` (or are empty), so this key is never one of them.
        const KEY: &str = "404 page";
        if let Some(hit) = self.cached(KEY) {
            return Some(hit);
        }
        self.read_and_remember(KEY, self.root.join("404.html"))
            .await
    }
}

/// The file and the version of it that was read.
async fn read(file: &Path) -> Option<(StaticFile, Version)> {
    let path = file.to_path_buf();
    let (body, meta) = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&path)?;
        let meta = f.metadata()?;
        let mut body = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
        std::io::Read::read_to_end(&mut f, &mut body)?;
        std::io::Result::Ok((body, meta))
    })
    .await
    .ok()?
    .ok()?;
    let content_type = mime_guess::from_path(file).first_or_octet_stream();
    let content_type = match content_type.type_() {
        mime_guess::mime::TEXT => format!("{content_type}; charset=utf-8"),
        _ if content_type.subtype() == "javascript" => format!("{content_type}; charset=utf-8"),
        _ => content_type.to_string(),
    };
    let version = Version::of(&meta);
    let served = StaticFile {
        body: Bytes::from(body),
        content_type: HeaderValue::from_str(&content_type)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
        etag: HeaderValue::from_str(&version.etag()).ok()?,
        modified: version.modified,
        last_modified: version
            .modified
            .and_then(|m| HeaderValue::from_str(&httpdate::fmt_http_date(m)).ok()),
    };
    Some((served, version))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_and_hidden_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("public");
        std::fs::create_dir_all(public.join("sub")).unwrap();
        std::fs::write(public.join("a.txt"), "a").unwrap();
        std::fs::write(public.join("sub/index.html"), "i").unwrap();
        std::fs::write(public.join(".secret"), "s").unwrap();
        std::fs::write(dir.path().join("index.js"), "worker").unwrap();
        let files = StaticFiles::new(&public, dir.path()).unwrap();
        assert!(files.resolve("/a.txt").is_some());
        assert!(files.resolve("/sub").unwrap().ends_with("sub/index.html"));
        assert!(files.resolve("/sub/").is_some());
        for bad in [
            "/../index.js",
            "/%2e%2e/index.js",
            "/sub/..%2f..%2findex.js",
            "/.secret",
            "/%C0AE%C0AE%C0AFindex.js",
            "/..\\index.js",
            "/nope",
        ] {
            assert!(files.resolve(bad).is_none(), "{bad} must not resolve");
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_may_point_within_the_project_only() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret.txt"), "s").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let public = dir.path().join("public");
        std::fs::create_dir_all(dir.path().join("dist")).unwrap();
        std::fs::create_dir_all(&public).unwrap();
        std::fs::write(dir.path().join("dist/app.css"), "css").unwrap();
        std::os::unix::fs::symlink("../dist", public.join("build")).unwrap();
        std::os::unix::fs::symlink(outside.path(), public.join("out")).unwrap();
        let files = StaticFiles::new(&public, dir.path()).unwrap();
        assert!(files.resolve("/build/app.css").is_some());
        assert!(files.resolve("/out/secret.txt").is_none());
    }
}
