//! Verified downloads. Every fetch checks the HTTP status; files stream into the destination
//! (always inside a temporary folder under `.wws/`) while they are hashed, and the SHA-256 is
//! compared before the caller may use them. `file://` URLs and paths are read the same way.
//!
//! The HTTP client is reqwest (rustls) on a private current-thread tokio runtime, so the API is
//! blocking and works whether or not the caller runs inside tokio (see [`crate::blocking`]).
//! It sends `User-Agent: wws/<version>`, gives up on a connection after 30 s and on a silent
//! server after 60 s, honours `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY` but never sends loopback
//! traffic to a proxy.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};

use crate::location::Location;
use crate::report::Reporter;

/// Largest index accepted, so a hostile server cannot fill memory.
const MAX_INDEX_BYTES: usize = 16 << 20;
/// Largest runtime file accepted (interpreters are tens of MiB), so a hostile or broken server
/// cannot fill the disk before the checksum fails.
const MAX_FILE_BYTES: u64 = 1 << 30;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
const READ_TIMEOUT: Duration = Duration::from_secs(60);

/// Fetches indexes and runtime files.
pub struct Downloader {
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Downloader {
    /// A downloader with wws's HTTP settings. Must not be created or dropped inside an async
    /// context: the public entry points of this crate take care of that.
    pub fn new() -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the download runtime")?;
        let client = client_builder()?
            .build()
            .context("cannot create the HTTP client")?;
        Ok(Self { runtime, client })
    }

    /// The whole content at `location` (used for the index).
    pub fn fetch_bytes(&self, location: &Location) -> anyhow::Result<Vec<u8>> {
        match location {
            Location::File(path) => {
                let len = std::fs::metadata(path)
                    .with_context(|| format!("cannot read the repository index {}", path.display()))?
                    .len();
                if len > MAX_INDEX_BYTES as u64 {
                    bail!("{} is larger than {MAX_INDEX_BYTES} bytes; it is not a repository index", path.display());
                }
                std::fs::read(path).with_context(|| format!("cannot read the repository index {}", path.display()))
            }
            Location::Http(url) => self.runtime.block_on(async {
                let mut response = self.get(url).await?;
                let mut body = Vec::new();
                while let Some(chunk) = response
                    .chunk()
                    .await
                    .with_context(|| format!("the download of {url} was interrupted"))?
                {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_INDEX_BYTES {
                        bail!("{url} is larger than {MAX_INDEX_BYTES} bytes; it is not a repository index");
                    }
                }
                Ok(body)
            }),
        }
    }

    /// Streams `location` into `dest` (created) while hashing, then compares with
    /// `expected_sha256` (lower-case hex). On any error `dest` may hold partial content; the
    /// caller owns the temporary folder around it.
    pub fn fetch_verified(
        &self,
        location: &Location,
        dest: &Path,
        expected_sha256: &str,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<u64> {
        let mut file =
            File::create(dest).with_context(|| format!("cannot create {}", dest.display()))?;
        let mut sink = HashingSink {
            file: &mut file,
            hasher: Sha256::new(),
            bytes: 0,
            dest,
            source: location,
        };
        let label = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match location {
            Location::File(path) => {
                let mut source =
                    File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
                let total = source.metadata().ok().map(|m| m.len());
                let progress = reporter.download(&label, total);
                let mut buf = vec![0u8; 64 * 1024];
                let result = loop {
                    match source.read(&mut buf) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            if let Err(e) = sink.write(&buf[..n]) {
                                break Err(e);
                            }
                            progress.advance(n as u64);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            break Err(anyhow::Error::new(e)
                                .context(format!("cannot read {}", path.display())));
                        }
                    }
                };
                progress.finish();
                result?;
            }
            Location::Http(url) => self.runtime.block_on(async {
                let mut response = self.get(url).await?;
                if response
                    .content_length()
                    .is_some_and(|n| n > MAX_FILE_BYTES)
                {
                    bail!(
                        "{url} is larger than {MAX_FILE_BYTES} bytes; no runtime file is that large"
                    );
                }
                let progress = reporter.download(&label, response.content_length());
                let result = async {
                    while let Some(chunk) = response
                        .chunk()
                        .await
                        .with_context(|| format!("the download of {url} was interrupted"))?
                    {
                        sink.write(&chunk)?;
                        progress.advance(chunk.len() as u64);
                    }
                    anyhow::Ok(())
                }
                .await;
                progress.finish();
                result
            })?,
        }
        let bytes = sink.bytes;
        let actual = hex::encode(sink.hasher.finalize());
        if actual != expected_sha256 {
            bail!(
                "checksum mismatch for {location}: expected sha256 {expected_sha256}, got {actual}; the file is corrupt or the repository changed, so nothing was installed"
            );
        }
        file.sync_all()
            .with_context(|| format!("cannot write {}", dest.display()))?;
        Ok(bytes)
    }

    /// Sends a GET and fails on any non-2xx status, naming the URL.
    async fn get(&self, url: &url::Url) -> anyhow::Result<reqwest::Response> {
        let response = self.client.get(url.clone()).send().await.map_err(|e| {
            anyhow::anyhow!(
                "cannot download {url}: {}; check the network and the URL",
                error_chain(&e.without_url())
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            bail!("cannot download {url}: the server answered HTTP {status}");
        }
        Ok(response)
    }
}

/// reqwest's Display hides the cause ("error sending request"); include it.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn client_builder() -> anyhow::Result<reqwest::ClientBuilder> {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("wws/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .no_proxy();
    // Proxies come only from the standard variables, and loopback is never proxied.
    let no_proxy = format!(
        "localhost,127.0.0.1,::1,{}",
        env_var(&["NO_PROXY", "no_proxy"]).unwrap_or_default()
    );
    let no_proxy = reqwest::NoProxy::from_string(&no_proxy);
    if let Some(proxy) = env_var(&["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]) {
        let proxy = reqwest::Proxy::https(&proxy)
            .with_context(|| format!("invalid HTTPS_PROXY {proxy:?}"))?;
        builder = builder.proxy(proxy.no_proxy(no_proxy.clone()));
    }
    if let Some(proxy) = env_var(&["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]) {
        let proxy = reqwest::Proxy::http(&proxy)
            .with_context(|| format!("invalid HTTP_PROXY {proxy:?}"))?;
        builder = builder.proxy(proxy.no_proxy(no_proxy));
    }
    Ok(builder)
}

fn env_var(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

/// Writes to the destination file and the hash at once.
struct HashingSink<'a> {
    file: &'a mut File,
    hasher: Sha256,
    bytes: u64,
    dest: &'a Path,
    source: &'a Location,
}

impl HashingSink<'_> {
    fn write(&mut self, data: &[u8]) -> anyhow::Result<()> {
        self.hasher.update(data);
        self.bytes += data.len() as u64;
        if self.bytes > MAX_FILE_BYTES {
            bail!(
                "{} is larger than {MAX_FILE_BYTES} bytes; no runtime file is that large, so the download was stopped",
                self.source
            );
        }
        self.file
            .write_all(data)
            .with_context(|| format!("cannot write {}", self.dest.display()))
    }
}

/// SHA-256 of `data` as lower-case hex (tests and repository builders).
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Lowercase hex SHA-256 of the file at `path`, read in blocks.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut hasher = Sha256::new();
    std::io::copy(&mut File::open(path)?, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Recorder;

    #[test]
    fn local_files_are_hashed_and_compared() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"hello").unwrap();
        let dl = Downloader::new().unwrap();
        let dest = dir.path().join("dest.bin");
        let n = dl
            .fetch_verified(
                &Location::File(src.clone()),
                &dest,
                &sha256_hex(b"hello"),
                &Recorder::default(),
            )
            .unwrap();
        assert_eq!(n, 5);
        assert_eq!(std::fs::read(&dest).unwrap(), b"hello");
        let err = dl
            .fetch_verified(
                &Location::File(src),
                &dest,
                &sha256_hex(b"other"),
                &Recorder::default(),
            )
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("checksum mismatch") && err.contains(&sha256_hex(b"hello")),
            "{err}"
        );
    }
}
