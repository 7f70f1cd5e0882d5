//! Where a repository index or a runtime file lives: an `http(s)://` URL, a `file://` URL or a
//! plain local path. Relative references in an index resolve against the index's own location,
//! with URL rules for HTTP and path rules for files, so a repository folder can be served over
//! HTTP or used straight from disk without rewriting its index.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use url::Url;

/// A resolved location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Fetched with HTTP(S).
    Http(Url),
    /// Read from the local file system.
    File(PathBuf),
}

impl Location {
    /// Parses what the user or an index wrote: a URL with `http`, `https` or `file` scheme, or a
    /// local path (relative paths are taken relative to the current directory).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            bail!(
                "the repository location is empty; give an https:// URL, a file:// URL or a path"
            );
        }
        if !text.contains("://") {
            // Absolute, so that resolved file URLs stored in `.wws.toml` do not depend on the
            // directory a later command runs from.
            let path = std::fs::canonicalize(text)
                .or_else(|_| std::path::absolute(text))
                .with_context(|| format!("invalid path {text:?}"))?;
            return Ok(Self::File(path));
        }
        let url = Url::parse(text).with_context(|| format!("invalid URL {text:?}"))?;
        match url.scheme() {
            "http" | "https" => Ok(Self::Http(url)),
            "file" => url
                .to_file_path()
                .map(Self::File)
                .map_err(|()| anyhow::anyhow!("file URL {text:?} does not name a local path")),
            other => bail!(
                "unsupported scheme {other:?} in {text:?}; use https://, http://, file:// or a plain path"
            ),
        }
    }

    /// Resolves `reference` (as written in an index located here) to a location: absolute URLs
    /// and absolute paths stand alone, anything else is joined to this location's folder.
    pub fn join(&self, reference: &str) -> anyhow::Result<Self> {
        let reference = reference.trim();
        if reference.contains("://") {
            let target = Self::parse(reference)?;
            if matches!((self, &target), (Self::Http(_), Self::File(_))) {
                bail!(
                    "{reference:?} is a local file, but the index {self} is remote; a remote repository may only list http(s) URLs"
                );
            }
            return Ok(target);
        }
        match self {
            Self::Http(base) => base
                .join(reference)
                .map(Self::Http)
                .with_context(|| format!("cannot resolve {reference:?} against {base}")),
            Self::File(index) => {
                let path = Path::new(reference);
                if path.is_absolute() {
                    return Ok(Self::File(path.to_path_buf()));
                }
                let folder = index.parent().unwrap_or(Path::new("."));
                Ok(Self::File(folder.join(path)))
            }
        }
    }

    /// True for plain `http://`, whose content a network attacker can change (checksums listed
    /// in the index itself then protect nothing).
    pub fn is_insecure(&self) -> bool {
        matches!(self, Self::Http(url) if url.scheme() == "http")
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http(url) => write!(f, "{url}"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_kind() {
        assert!(matches!(
            Location::parse("https://x.test/i.toml").unwrap(),
            Location::Http(_)
        ));
        assert!(
            Location::parse("http://x.test/i.toml")
                .unwrap()
                .is_insecure()
        );
        assert!(
            !Location::parse("https://x.test/i.toml")
                .unwrap()
                .is_insecure()
        );
        assert_eq!(
            Location::parse("file:///srv/repo/index.toml").unwrap(),
            Location::File("/srv/repo/index.toml".into())
        );
        assert_eq!(
            Location::parse("repo/index.toml").unwrap(),
            Location::File(std::env::current_dir().unwrap().join("repo/index.toml"))
        );
        assert!(Location::parse("ftp://x.test/i.toml").is_err());
        assert!(Location::parse("  ").is_err());
    }

    #[test]
    fn relative_references_resolve_against_the_index() {
        let http = Location::parse("https://x.test/repo/v1/index.toml").unwrap();
        assert_eq!(
            http.join("files/a.wasm").unwrap().to_string(),
            "https://x.test/repo/v1/files/a.wasm"
        );
        assert_eq!(
            http.join("../b.py").unwrap().to_string(),
            "https://x.test/repo/b.py"
        );
        assert_eq!(
            http.join("https://cdn.test/c").unwrap().to_string(),
            "https://cdn.test/c"
        );
        assert!(http.join("file:///etc/passwd").is_err());
        let file = Location::parse("/srv/repo/index.toml").unwrap();
        assert_eq!(
            file.join("files/a.wasm").unwrap(),
            Location::File("/srv/repo/files/a.wasm".into())
        );
        assert_eq!(
            file.join("/abs/x").unwrap(),
            Location::File("/abs/x".into())
        );
        assert!(matches!(
            file.join("http://h.test/x").unwrap(),
            Location::Http(_)
        ));
    }
}
