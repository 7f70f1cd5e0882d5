//! `.wws.toml`: the runtimes a project uses, with their full metadata and repository, so that a
//! fresh checkout can install exactly the same files (spec §6.4). A file that cannot be read or
//! parsed is an error naming it; it is never ignored and never overwritten. Saving is atomic:
//! a temporary file in the project folder, then a rename.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::metadata::Runtime;

/// File name of the project configuration.
pub const FILE_NAME: &str = ".wws.toml";
/// Prefix of the temporary file a save writes before renaming it over `.wws.toml`.
pub(crate) const TEMP_PREFIX: &str = ".wws.toml.";
/// Suffix of that temporary file.
pub(crate) const TEMP_SUFFIX: &str = ".tmp";

/// The content of `.wws.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProjectConfig {
    /// Format version; 1 today.
    #[serde(default = "one")]
    pub version: u32,
    /// Repositories runtimes were installed from, each with its runtimes.
    #[serde(default)]
    pub repositories: Vec<RepositoryEntry>,
    /// Keys wws does not know, kept as they are when the file is saved.
    #[serde(flatten)]
    pub extra: toml::Table,
}

/// One `[[repositories]]` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepositoryEntry {
    /// Local label: the folder under `.wws/runtimes/`.
    pub name: String,
    /// Where the index was fetched from (informational: runtimes keep their own file URLs).
    pub url: String,
    /// Installed runtimes, full metadata as in the index.
    #[serde(default)]
    pub runtimes: Vec<Runtime>,
    /// Keys wws does not know (a mirror URL, say), kept as they are.
    #[serde(flatten)]
    pub extra: toml::Table,
}

fn one() -> u32 {
    1
}

impl Default for ProjectConfig {
    fn default() -> Self {
        Self {
            version: 1,
            repositories: Vec::new(),
            extra: toml::Table::new(),
        }
    }
}

impl ProjectConfig {
    /// Path of `.wws.toml` in `project`.
    pub fn path(project: &Path) -> PathBuf {
        project.join(FILE_NAME)
    }

    /// Reads `.wws.toml` of `project`; a missing file is an empty configuration.
    pub fn load(project: &Path) -> anyhow::Result<Self> {
        let path = Self::path(project);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot read {}", path.display()))
                );
            }
        };
        Self::parse(&text).with_context(|| {
            format!(
                "{} is not a valid project file; fix it or remove it (it was left untouched)",
                path.display()
            )
        })
    }

    /// Parses `.wws.toml` text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        Ok(toml::from_str(text)?)
    }

    /// Writes `.wws.toml` atomically: a temporary file beside it, flushed, then renamed over it.
    /// A symlinked `.wws.toml` (shared between projects) is updated where it points, and the
    /// file keeps its permissions (a new one gets the usual `0666` less the umask), so another
    /// user who could read it still can.
    pub fn save(&self, project: &Path) -> anyhow::Result<()> {
        let path = Self::path(project);
        let path = match std::fs::canonicalize(&path) {
            Ok(target) => target,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => path,
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot read {}", path.display()))
                );
            }
        };
        let folder = path.parent().unwrap_or(project);
        let existing = std::fs::metadata(&path).ok().map(|m| m.permissions());
        let text = toml::to_string_pretty(self).context("cannot serialise the project file")?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(TEMP_PREFIX).suffix(TEMP_SUFFIX);
        #[cfg(unix)]
        {
            // `0666`: the kernel applies the umask, as for any new file (tempfile's is `0600`).
            use std::os::unix::fs::PermissionsExt as _;
            builder.permissions(std::fs::Permissions::from_mode(0o666));
        }
        let mut temp = builder
            .tempfile_in(folder)
            .with_context(|| format!("cannot create a temporary file in {}", folder.display()))?;
        if let Some(permissions) = existing {
            temp.as_file()
                .set_permissions(permissions)
                .with_context(|| {
                    format!("cannot set the permissions of {}", temp.path().display())
                })?;
        }
        temp.write_all(text.as_bytes())
            .and_then(|()| temp.as_file().sync_all())
            .with_context(|| format!("cannot write {}", temp.path().display()))?;
        temp.persist(&path).map_err(|e| {
            anyhow::Error::new(e.error).context(format!("cannot replace {}", path.display()))
        })?;
        Ok(())
    }

    /// Every runtime with the name of its repository, in file order.
    pub fn runtimes(&self) -> impl Iterator<Item = (&str, &Runtime)> {
        self.repositories
            .iter()
            .flat_map(|repo| repo.runtimes.iter().map(move |rt| (repo.name.as_str(), rt)))
    }

    /// The runtime `name` `version` of repository `repo`, if listed.
    pub fn find(&self, repo: &str, name: &str, version: &str) -> Option<&Runtime> {
        self.runtimes()
            .find(|(r, rt)| *r == repo && rt.name == name && rt.version == version)
            .map(|(_, rt)| rt)
    }

    /// Records `runtime` under repository `repo` (created with `url` when new; its URL is
    /// updated when it changed). An entry with the same name and version is replaced, never
    /// duplicated (the original appended blindly).
    pub fn add_runtime(&mut self, repo: &str, url: &str, runtime: Runtime) {
        let index = match self.repositories.iter().position(|r| r.name == repo) {
            Some(i) => i,
            None => {
                self.repositories.push(RepositoryEntry {
                    name: repo.into(),
                    url: url.into(),
                    runtimes: Vec::new(),
                    extra: toml::Table::new(),
                });
                self.repositories.len() - 1
            }
        };
        let entry = &mut self.repositories[index];
        entry.url = url.into();
        match entry
            .runtimes
            .iter_mut()
            .find(|r| r.name == runtime.name && r.version == runtime.version)
        {
            Some(existing) => *existing = runtime,
            None => entry.runtimes.push(runtime),
        }
    }

    /// Removes exactly the entry `name` `version` of repository `repo` and says whether it was
    /// there. Other versions, other names and other repositories stay (the original dropped
    /// every entry sharing the name or the version). Copies of it are removed too, also from a
    /// repeated `[[repositories]]` block of the same name (a merge leaves those).
    pub fn remove_runtime(&mut self, repo: &str, name: &str, version: &str) -> bool {
        let mut removed = false;
        for entry in self.repositories.iter_mut().filter(|r| r.name == repo) {
            let before = entry.runtimes.len();
            entry
                .runtimes
                .retain(|r| !(r.name == name && r.version == version));
            removed |= entry.runtimes.len() != before;
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `.wws.toml` as the original writes it (spec §6.4), verbatim apart from the checksums.
    const ORIGINAL: &str = r#"
version = 1

[[repositories]]
name = "wasmlabs"
url = "https://workers.wasmlabs.dev/repository/v1/index.toml"

[[repositories.runtimes]]
name = "python"
version = "3.11.1+20230217"
tags = ["latest", "3.11", "3.11.1"]
status = "active"
extensions = ["py"]
args = ["--", "/src/index.py"]

[repositories.runtimes.binary]
url = "https://github.com/vmware-labs/webassembly-language-runtimes/releases/download/python%2F3.11.1%2B20230217-15dfbed/python-3.11.1.wasm"
filename = "python.wasm"

[repositories.runtimes.binary.checksum]
type = "sha256"
value = "66589b289f76bd716120f76f234e4dd663064ed5b6256c92d441d84e51d7585d"

[repositories.runtimes.polyfill]
url = "https://workers.wasmlabs.dev/repository/v1/files/python/3/poly.py"
filename = "poly.py"

[repositories.runtimes.polyfill.checksum]
type = "sha256"
value = "2027b73556ca02155f026cee751ab736985917d2f28bbcad5aac928c719e1112"
"#;

    fn runtime(name: &str, version: &str) -> Runtime {
        let mut rt = ProjectConfig::parse(ORIGINAL).unwrap().repositories[0].runtimes[0].clone();
        rt.name = name.into();
        rt.version = version.into();
        rt
    }

    #[test]
    fn keys_wws_does_not_know_and_odd_statuses_survive_a_save() {
        let text = ORIGINAL
            .replacen("version = 1\n", "version = 1\nowner = \"team-a\"\n", 1)
            .replacen(
                "name = \"wasmlabs\"\n",
                "name = \"wasmlabs\"\nmirror = \"https://mirror.example/index.toml\"\n",
                1,
            )
            .replacen(
                "status = \"active\"",
                "status = \"Experimental\"\nlicense = \"PSF\"",
                1,
            );
        let config = ProjectConfig::parse(&text).unwrap();
        let dir = tempfile::tempdir().unwrap();
        config.save(dir.path()).unwrap();
        let saved = std::fs::read_to_string(dir.path().join(".wws.toml")).unwrap();
        for kept in [
            "owner = \"team-a\"",
            "mirror = \"https://mirror.example/index.toml\"",
            "status = \"Experimental\"",
            "license = \"PSF\"",
        ] {
            assert!(saved.contains(kept), "{kept} lost:\n{saved}");
        }
        assert_eq!(ProjectConfig::parse(&saved).unwrap(), config);
    }

    #[test]
    fn parses_the_original_project_file_and_round_trips() {
        let config = ProjectConfig::parse(ORIGINAL).unwrap();
        assert_eq!(config.repositories[0].name, "wasmlabs");
        let py = &config.repositories[0].runtimes[0];
        assert_eq!(py.polyfill.as_ref().unwrap().filename, "poly.py");
        assert!(py.wrapper.is_none());
        let again = ProjectConfig::parse(&toml::to_string_pretty(&config).unwrap()).unwrap();
        assert_eq!(again, config);
    }

    /// The original's `remove_runtime` filtered with `name != n && version != v`, dropping every
    /// `ruby` entry and every runtime with the same version (spec §6.7).
    #[test]
    fn regression_uninstall_removed_too_much() {
        let mut config = ProjectConfig::default();
        for (name, version) in [
            ("ruby", "3.2.0"),
            ("ruby", "3.3.0"),
            ("python", "3.2.0"),
            ("python", "3.12.0"),
        ] {
            config.add_runtime("wasmlabs", "u", runtime(name, version));
        }
        config.add_runtime("other", "u2", runtime("ruby", "3.2.0"));
        assert!(config.remove_runtime("wasmlabs", "ruby", "3.2.0"));
        let left: Vec<(String, String, String)> = config
            .runtimes()
            .map(|(repo, rt)| (repo.to_string(), rt.name.clone(), rt.version.clone()))
            .collect();
        let expected = [
            ("wasmlabs", "ruby", "3.3.0"),
            ("wasmlabs", "python", "3.2.0"),
            ("wasmlabs", "python", "3.12.0"),
            ("other", "ruby", "3.2.0"),
        ]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
        assert_eq!(left, expected);
        assert!(!config.remove_runtime("wasmlabs", "ruby", "3.2.0"));
    }

    #[test]
    fn adding_twice_does_not_duplicate() {
        let mut config = ProjectConfig::default();
        config.add_runtime("r", "u", runtime("ruby", "1"));
        config.add_runtime("r", "u", runtime("ruby", "1"));
        assert_eq!(config.runtimes().count(), 1);
    }

    #[test]
    fn save_is_atomic_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = ProjectConfig::default();
        config.add_runtime("r", "u", runtime("ruby", "1"));
        config.save(dir.path()).unwrap();
        assert_eq!(ProjectConfig::load(dir.path()).unwrap(), config);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, [".wws.toml"]);
    }

    #[test]
    fn remove_runtime_also_removes_copies_in_a_repeated_repository_block() {
        let mut config = ProjectConfig::default();
        config.add_runtime("r", "u", runtime("ruby", "1"));
        config.add_runtime("r", "u", runtime("python", "2"));
        let copy = config.repositories[0].clone();
        config.repositories.push(copy);
        assert!(config.remove_runtime("r", "ruby", "1"));
        assert!(config.find("r", "ruby", "1").is_none());
        assert!(config.find("r", "python", "2").is_some());
        assert!(!config.remove_runtime("r", "ruby", "1"));
    }

    #[cfg(unix)]
    #[test]
    fn save_keeps_the_permissions_and_follows_a_symlink() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let mut config = ProjectConfig::default();
        config.add_runtime("r", "u", runtime("ruby", "1"));

        // A new file is an ordinary one (0666 less the umask), never 0600.
        config.save(dir.path()).unwrap();
        assert_ne!(mode(&dir.path().join(".wws.toml")) & 0o044, 0);
        // An existing file keeps its mode.
        let path = dir.path().join(".wws.toml");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        config.add_runtime("r", "u", runtime("python", "2"));
        config.save(dir.path()).unwrap();
        assert_eq!(mode(&path), 0o640);

        // A symlinked file is updated where it points and stays a symlink.
        let shared = tempfile::tempdir().unwrap();
        let target = shared.path().join("shared.toml");
        std::fs::write(&target, "version = 1\n").unwrap();
        let project = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(&target, project.path().join(".wws.toml")).unwrap();
        config.save(project.path()).unwrap();
        assert!(
            std::fs::symlink_metadata(project.path().join(".wws.toml"))
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(ProjectConfig::load(project.path()).unwrap(), config);
        assert_eq!(std::fs::read_dir(shared.path()).unwrap().count(), 1);
    }

    #[test]
    fn malformed_file_is_an_error_naming_it_and_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".wws.toml"), "version = [").unwrap();
        let msg = format!("{:#}", ProjectConfig::load(dir.path()).unwrap_err());
        assert!(
            msg.contains(".wws.toml") && msg.contains("left untouched"),
            "{msg}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(".wws.toml")).unwrap(),
            "version = ["
        );
    }

    #[test]
    fn unreadable_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(".wws.toml")).unwrap();
        let msg = format!("{:#}", ProjectConfig::load(dir.path()).unwrap_err());
        assert!(
            msg.contains("cannot read") && msg.contains(".wws.toml"),
            "{msg}"
        );
    }

    #[test]
    fn missing_file_is_empty() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            ProjectConfig::load(dir.path()).unwrap(),
            ProjectConfig::default()
        );
    }
}
