//! A repository index (`index.toml`, version 1): the runtimes a repository offers. After
//! parsing, every file URL is resolved against the index's location, so the rest of the crate
//! (and `.wws.toml`) only ever sees absolute URLs or paths.

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::download::Downloader;
use crate::location::Location;
use crate::metadata::{Runtime, RuntimeStatus};
use crate::report::Reporter;

/// The newest index format this wws understands.
pub const SUPPORTED_VERSION: u32 = 1;

/// A parsed index.
#[derive(Debug, Clone)]
pub struct Index {
    /// Format version the repository declared.
    pub version: u32,
    /// Offered runtimes, in the repository's order, with resolved file URLs.
    pub runtimes: Vec<Runtime>,
}

#[derive(Deserialize)]
struct RawIndex {
    version: u32,
    #[serde(default)]
    runtimes: Vec<Runtime>,
}

impl Index {
    /// Downloads and parses the index at `location`. Warns about plain `http://` and about a
    /// newer format version (wws then reads what it understands).
    pub fn fetch(
        downloader: &Downloader,
        location: &Location,
        reporter: &dyn Reporter,
    ) -> anyhow::Result<Self> {
        if location.is_insecure() {
            reporter.warn(&format!(
                "the repository {location} uses plain http://: anyone on the network path can change what is installed; prefer https://"
            ));
        }
        let bytes = downloader.fetch_bytes(location)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("the repository index {location} is not UTF-8 text"))?;
        let index = Self::parse(&text, location)?;
        if index.version > SUPPORTED_VERSION {
            reporter.warn(&format!(
                "the repository index {location} has version {}, newer than the {SUPPORTED_VERSION} this wws supports; some runtimes may not work. Update wws",
                index.version
            ));
        }
        Ok(index)
    }

    /// Parses index text read from `location` and resolves its relative URLs.
    pub fn parse(text: &str, location: &Location) -> anyhow::Result<Self> {
        let raw: RawIndex = toml::from_str(text).with_context(|| {
            format!("the repository index {location} is not a valid index.toml")
        })?;
        let mut runtimes = raw.runtimes;
        for runtime in &mut runtimes {
            for file in [
                Some(&mut runtime.binary),
                runtime.polyfill.as_mut(),
                runtime.wrapper.as_mut(),
                runtime.template.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                file.url = location
                    .join(&file.url)
                    .with_context(|| {
                        format!(
                            "in the repository index {location}, runtime {} {}",
                            runtime.name, runtime.version
                        )
                    })?
                    .to_string();
            }
        }
        Ok(Self {
            version: raw.version,
            runtimes,
        })
    }

    /// The first runtime called `name` whose version is `version_or_tag` or whose tags contain
    /// it (exact versions win over tags). The error lists what the repository offers.
    pub fn find(&self, name: &str, version_or_tag: &str) -> anyhow::Result<&Runtime> {
        let same_name: Vec<&Runtime> = self.runtimes.iter().filter(|r| r.name == name).collect();
        if let Some(rt) = same_name.iter().find(|r| r.version == version_or_tag) {
            return Ok(rt);
        }
        if let Some(rt) = same_name
            .iter()
            .find(|r| r.tags.iter().any(|t| t == version_or_tag))
        {
            return Ok(rt);
        }
        if same_name.is_empty() {
            let mut names: Vec<&str> = self.runtimes.iter().map(|r| r.name.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            let names = if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            };
            bail!("the repository has no runtime named '{name}'; it offers: {names}");
        }
        let versions: Vec<String> = same_name
            .iter()
            .map(|r| {
                let mut notes = r.tags.clone();
                if r.status == RuntimeStatus::Yanked {
                    notes.push("yanked".into());
                }
                if notes.is_empty() {
                    r.version.clone()
                } else {
                    format!("{} ({})", r.version, notes.join(", "))
                }
            })
            .collect();
        bail!(
            "the runtime with name = '{name}' and version = '{version_or_tag}' is not present in the repository; versions of '{name}': {}",
            versions.join("; ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The original's index entry as spec §6.1 shows it (values filled in).
    const ORIGINAL: &str = r#"
version = 1

[[runtimes]]
name = "python"
version = "3.11.1+20230217-1"
tags = ["latest", "3.11", "3.11.1"]
status = "active"
args = ["--", "/src/index.py"]
extensions = ["py"]
envs = { KEY = "VALUE" }
binary   = { url = "https://github.com/vmware-labs/webassembly-language-runtimes/releases/download/python%2F3.11.1%2B20230217-15dfbed/python-3.11.1.wasm", filename = "python.wasm", checksum = { type = "sha256", value = "66589b289f76bd716120f76f234e4dd663064ed5b6256c92d441d84e51d7585d" } }
polyfill = { url = "files/python/3-1/poly.py", filename = "poly.py",     checksum = { type = "sha256", value = "2027b73556ca02155f026cee751ab736985917d2f28bbcad5aac928c719e1112" } }
wrapper  = { url = "files/python/3-1/wrapper.txt", filename = "wrapper.txt", checksum = { type = "sha256", value = "cd7bb2b0e4f2ba7a3e12ef2ec72ac5e2bfd1b9e56cb9e8b4a8a1b0c2d6e0fe01" } }
template = { url = "https://x.test/template.txt", filename = "template.txt", checksum = { type = "sha256", value = "cd7bb2b0e4f2ba7a3e12ef2ec72ac5e2bfd1b9e56cb9e8b4a8a1b0c2d6e0fe02" } }

[[runtimes]]
name = "python"
version = "3.11.1+20230217"
status = "yanked"
args = ["--", "/src/index.py"]
extensions = ["py"]
binary   = { url = "https://x.test/python.wasm", filename = "python.wasm", checksum = { type = "sha256", value = "66589b289f76bd716120f76f234e4dd663064ed5b6256c92d441d84e51d7585d" } }
"#;

    fn location() -> Location {
        Location::parse("https://workers.example.test/repository/v1/index.toml").unwrap()
    }

    #[test]
    fn parses_the_original_index_format() {
        let index = Index::parse(ORIGINAL, &location()).unwrap();
        assert_eq!(index.version, 1);
        assert_eq!(index.runtimes.len(), 2);
        let py = &index.runtimes[0];
        assert_eq!(py.tags, ["latest", "3.11", "3.11.1"]);
        assert_eq!(py.envs.get("KEY").map(String::as_str), Some("VALUE"));
        assert_eq!(
            py.polyfill.as_ref().unwrap().url,
            "https://workers.example.test/repository/v1/files/python/3-1/poly.py"
        );
        assert_eq!(
            py.template.as_ref().unwrap().url,
            "https://x.test/template.txt"
        );
        assert_eq!(index.runtimes[1].status, RuntimeStatus::Yanked);
        assert!(index.runtimes[1].tags.is_empty());
    }

    #[test]
    fn find_resolves_tags_and_lists_what_exists() {
        let index = Index::parse(ORIGINAL, &location()).unwrap();
        assert_eq!(
            index.find("python", "latest").unwrap().version,
            "3.11.1+20230217-1"
        );
        assert_eq!(
            index.find("python", "3.11.1+20230217").unwrap().status,
            RuntimeStatus::Yanked
        );
        let err = index.find("python", "9").unwrap_err().to_string();
        assert!(
            err.contains("3.11.1+20230217-1 (latest, 3.11, 3.11.1)"),
            "{err}"
        );
        let err = index.find("cobol", "1").unwrap_err().to_string();
        assert!(err.contains("offers: python"), "{err}");
    }

    #[test]
    fn malformed_index_names_the_location() {
        let err = Index::parse("version = 1\n[[runtimes]]\nname = 3\n", &location()).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("repository/v1/index.toml") && msg.contains("invalid type"),
            "{msg}"
        );
    }

    #[test]
    fn missing_runtimes_key_is_an_empty_list() {
        assert!(
            Index::parse("version = 1", &location())
                .unwrap()
                .runtimes
                .is_empty()
        );
    }
}
