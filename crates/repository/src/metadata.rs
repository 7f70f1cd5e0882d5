//! Runtime metadata: one `[[runtimes]]` entry of an `index.toml`, stored verbatim in `.wws.toml`.
//!
//! The shape is the original wws format (spec §6.1), so existing repositories and project files
//! keep working. Two optional fields are ours and are ignored by the original: `entrypoint` (how
//! the host drives the module) and `reuse` (instance reuse). Unknown fields are ignored.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// One language runtime: an interpreter compiled to WASI plus the files that adapt it to wws.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Runtime {
    /// Runtime name, e.g. `python`; with `version` it identifies the runtime.
    pub name: String,
    /// Concrete version, free-form, e.g. `3.11.1+20230217-1`.
    pub version: String,
    /// Aliases `install` accepts in place of the version, e.g. `latest`.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Lifecycle state; `yanked` runtimes are refused for new installs unless forced.
    #[serde(default)]
    pub status: RuntimeStatus,
    /// File extensions this runtime claims (without dot; `.py` is read as `py`); the first
    /// names the generated file.
    #[serde(default, deserialize_with = "extensions_without_dot")]
    pub extensions: Vec<String>,
    /// The full WASI argv, e.g. `["--", "/src/index.py"]`.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables set for every worker of this runtime (the original ignored them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub envs: BTreeMap<String, String>,
    /// How the host drives the module: `wasi-command` (default) or `ruby-wasm-reactor`.
    /// Ours; the original ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<String>,
    /// Instance reuse settings, e.g. `reuse = { max_requests = 1000 }`. Ours; kept as parsed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reuse: Option<toml::Value>,
    /// The interpreter module.
    pub binary: RemoteFile,
    /// Library placed next to the worker source (e.g. `poly.py`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub polyfill: Option<RemoteFile>,
    /// Text whose `{source}` is replaced by the worker source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wrapper: Option<RemoteFile>,
    /// Starter file for new workers; downloaded and verified only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<RemoteFile>,
    /// Keys wws does not know (a newer index, a repository's own): kept, and copied into
    /// `.wws.toml` with the rest.
    #[serde(flatten)]
    pub extra: toml::Table,
}

/// Lifecycle state of a runtime in its repository.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum RuntimeStatus {
    /// Supported.
    #[default]
    Active,
    /// Withdrawn by the repository: not installed unless `--force`.
    Yanked,
    /// Still installable, but replaced by a newer entry.
    Deprecated,
    /// Any other value the repository wrote, kept as written so `.wws.toml` keeps it too.
    Other(String),
}

impl From<String> for RuntimeStatus {
    /// Case does not matter (`Yanked` is yanked).
    fn from(text: String) -> Self {
        match text.to_ascii_lowercase().as_str() {
            "active" => Self::Active,
            "yanked" => Self::Yanked,
            "deprecated" => Self::Deprecated,
            _ => Self::Other(text),
        }
    }
}

impl From<RuntimeStatus> for String {
    fn from(status: RuntimeStatus) -> Self {
        status.to_string()
    }
}

impl std::fmt::Display for RuntimeStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Yanked => "yanked",
            Self::Deprecated => "deprecated",
            Self::Other(text) => text,
        })
    }
}

/// A file of a runtime: where to get it, the name it gets on disk, and its checksum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteFile {
    /// Absolute URL, or a path relative to the index that listed it.
    pub url: String,
    /// Name inside the runtime folder; must be a plain file name (checked before download).
    pub filename: String,
    /// Expected digest of the content.
    pub checksum: Checksum,
}

/// Expected digest of a file: `{ type = "sha256", value = "<hex>" }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Checksum {
    /// SHA-256 as 64 hex digits (compared case-insensitively).
    Sha256 {
        /// The hex digest.
        value: String,
    },
}

impl Checksum {
    /// The expected SHA-256 digest, lower-case.
    pub fn sha256_hex(&self) -> String {
        match self {
            Self::Sha256 { value } => value.to_ascii_lowercase(),
        }
    }
}

/// Which file of a runtime, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileRole {
    /// The interpreter module.
    Binary,
    /// The polyfill.
    Polyfill,
    /// The wrapper.
    Wrapper,
    /// The template.
    Template,
}

impl std::fmt::Display for FileRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Binary => "binary",
            Self::Polyfill => "polyfill",
            Self::Wrapper => "wrapper",
            Self::Template => "template",
        })
    }
}

impl Runtime {
    /// Every file of the runtime with its role, binary first.
    pub fn files(&self) -> Vec<(FileRole, &RemoteFile)> {
        let mut files = vec![(FileRole::Binary, &self.binary)];
        let optional = [
            (FileRole::Polyfill, &self.polyfill),
            (FileRole::Wrapper, &self.wrapper),
            (FileRole::Template, &self.template),
        ];
        files.extend(
            optional
                .into_iter()
                .filter_map(|(role, f)| f.as_ref().map(|f| (role, f))),
        );
        files
    }

    /// `name version` for messages.
    pub fn label(&self) -> String {
        format!("{} {}", self.name, self.version)
    }

    /// Checks everything that becomes a path or is compared later, so that no file can land
    /// outside the runtime folder and no download starts for a runtime that cannot be installed.
    pub fn validate(&self) -> anyhow::Result<()> {
        check_path_component("name", &self.name)
            .with_context(|| format!("invalid runtime entry {}", self.label()))?;
        check_path_component("version", &self.version)
            .with_context(|| format!("invalid runtime entry {}", self.label()))?;
        // The first extension names the generated folder (`.wws/workers/<ext>`) and file.
        for (i, ext) in self.extensions.iter().enumerate() {
            check_path_component(&format!("extensions[{i}]"), ext)?;
        }
        let mut seen = std::collections::BTreeSet::new();
        for (role, file) in self.files() {
            check_path_component(&format!("{role}.filename"), &file.filename)
                .with_context(|| format!("invalid runtime entry {}", self.label()))?;
            if file.filename == crate::install::CHECKSUMS_FILE {
                bail!(
                    "invalid runtime entry {}: {role}.filename {:?} is the name wws gives the checksum list of a runtime folder; rename the file",
                    self.label(),
                    file.filename
                );
            }
            if !seen.insert(file.filename.as_str()) {
                bail!(
                    "invalid runtime entry {}: two files are named {:?}; every file needs its own name",
                    self.label(),
                    file.filename
                );
            }
            let digest = file.checksum.sha256_hex();
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                bail!(
                    "invalid runtime entry {}: {role}.checksum.value {:?} is not a SHA-256 (64 hex digits)",
                    self.label(),
                    digest
                );
            }
        }
        Ok(())
    }
}

/// Extensions as an index may write them, `py` or `.py`: file names are matched without the dot.
fn extensions_without_dot<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    let extensions = <Vec<String> as serde::Deserialize>::deserialize(deserializer)?;
    Ok(extensions
        .into_iter()
        .map(|ext| ext.strip_prefix('.').map(str::to_owned).unwrap_or(ext))
        .collect())
}

/// Rejects values that would leave their folder when used as one path component: empty, `.`,
/// `..`, containing `/`, `\` or NUL, or absolute (a drive letter such as `C:` included).
pub fn check_path_component(key: &str, value: &str) -> anyhow::Result<()> {
    let bad = value.is_empty()
        || value == "."
        || value == ".."
        || value.contains(['/', '\\', '\0'])
        || value.contains(':');
    if bad {
        bail!("{key} {value:?} is not a plain file name (no `/`, `\\`, `:`, `.` or `..`)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runtime_with_filename(filename: &str) -> Runtime {
        Runtime {
            name: "fakelang".into(),
            version: "1.0.0".into(),
            tags: vec![],
            status: RuntimeStatus::Active,
            extensions: vec!["fl".into()],
            args: vec![],
            envs: BTreeMap::new(),
            entrypoint: None,
            reuse: None,
            binary: RemoteFile {
                url: "bin.wasm".into(),
                filename: filename.into(),
                checksum: Checksum::Sha256 {
                    value: "a".repeat(64),
                },
            },
            polyfill: None,
            wrapper: None,
            template: None,
            extra: toml::Table::new(),
        }
    }

    #[test]
    fn extensions_are_read_without_their_dot() {
        let entry = r#"
            name = "fakelang"
            version = "1.0.0"
            extensions = [".fl", "fx"]
            binary = { url = "b.wasm", filename = "b.wasm", checksum = { type = "sha256", value = "00" } }
        "#;
        let runtime: Runtime = toml::from_str(entry).unwrap();
        assert_eq!(runtime.extensions, ["fl", "fx"]);
    }

    #[test]
    fn filenames_that_leave_the_folder_are_rejected() {
        for bad in [
            "../x",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "",
            ".",
            "..",
            "C:evil",
            "x\0y",
        ] {
            let err = runtime_with_filename(bad).validate().unwrap_err();
            assert!(
                format!("{err:#}").contains("binary.filename"),
                "{bad:?}: {err:#}"
            );
        }
        runtime_with_filename("python.wasm").validate().unwrap();
        runtime_with_filename("..hidden-but-plain")
            .validate()
            .unwrap();
    }

    #[test]
    fn versions_that_leave_the_folder_are_rejected() {
        let mut rt = runtime_with_filename("bin.wasm");
        rt.version = "../../x".into();
        assert!(format!("{:#}", rt.validate().unwrap_err()).contains("version"));
    }

    #[test]
    fn bad_checksum_is_rejected_before_download() {
        let mut rt = runtime_with_filename("bin.wasm");
        rt.binary.checksum = Checksum::Sha256 {
            value: "abc".into(),
        };
        assert!(format!("{:#}", rt.validate().unwrap_err()).contains("SHA-256"));
    }

    #[test]
    fn unknown_status_parses() {
        #[derive(Deserialize)]
        struct S {
            status: RuntimeStatus,
        }
        let s: S = toml::from_str("status = \"experimental\"").unwrap();
        assert_eq!(s.status, RuntimeStatus::Other("experimental".into()));
        let s: S = toml::from_str("status = \"Yanked\"").unwrap();
        assert_eq!(s.status, RuntimeStatus::Yanked);
    }
}
