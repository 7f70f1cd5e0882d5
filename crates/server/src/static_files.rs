//! Files from the project's root `public/` folder (spec §7.2–7.3).
//!
//! A request path maps to a file only through plain path segments: `..`, `.`, empty segments
//! after decoding, backslashes, NUL and hidden names (starting with `.`) are refused, and the
//! resolved file must still be inside `public/` after symlinks are followed. Folders serve their
//! `index.html`. `public/404.html`, when present, is the body of every 404 — with status 404
//! (the original may have answered 200).

use std::path::{Path, PathBuf};

use bytes::Bytes;
use percent_encoding::percent_decode_str;

/// A file ready to send.
pub struct StaticFile {
    /// Its contents.
    pub body: Bytes,
    /// `Content-Type`, from the extension.
    pub content_type: String,
}

/// The `public/` folder of a project.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    root: PathBuf,
}

impl StaticFiles {
    /// Serves `dir` if it is a folder; `None` otherwise.
    pub fn new(dir: &Path) -> Option<Self> {
        let root = dir.canonicalize().ok()?;
        root.is_dir().then_some(Self { root })
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
        (file.starts_with(&self.root) && file.is_file()).then_some(file)
    }

    /// Reads the file for `path`, if any.
    pub async fn get(&self, path: &str) -> Option<StaticFile> {
        let file = self.resolve(path)?;
        read(&file).await
    }

    /// The custom 404 page, if the project has one.
    pub async fn not_found_page(&self) -> Option<StaticFile> {
        read(&self.root.join("404.html")).await
    }
}

async fn read(file: &Path) -> Option<StaticFile> {
    let body = tokio::fs::read(file).await.ok()?;
    let content_type = mime_guess::from_path(file).first_or_octet_stream();
    let content_type = match content_type.type_() {
        mime_guess::mime::TEXT => format!("{content_type}; charset=utf-8"),
        _ if content_type.subtype() == "javascript" => format!("{content_type}; charset=utf-8"),
        _ => content_type.to_string(),
    };
    Some(StaticFile {
        body: Bytes::from(body),
        content_type,
    })
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
        let files = StaticFiles::new(&public).unwrap();
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
}
