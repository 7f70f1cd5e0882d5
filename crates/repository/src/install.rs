//! Installing and removing runtimes in a project.
//!
//! Architecture invariant: a runtime folder `.wws/runtimes/<repo>/<name>/<version>/` only ever
//! appears complete and verified. Files are downloaded into a staging folder beside it
//! (`.tmp-<version>-*`), each hashed while it streams; the folder is renamed into place only
//! when every checksum matched, and `.wws.toml` is rewritten atomically after that. A failure
//! removes the staging folder; a killed run leaves it for the next run to clean (see
//! [`crate::lock`]). Every change happens under the project lock.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use crate::download::Downloader;
use crate::index::Index;
use crate::location::Location;
use crate::lock::{ProjectLock, STAGING_PREFIX};
use crate::metadata::{Runtime, RuntimeStatus, check_path_component};
use crate::project_config::ProjectConfig;
use crate::report::Reporter;

/// The repository a command works with: its local name and the location of its index.
#[derive(Debug, Clone)]
pub struct RepositoryRef {
    /// Local label (folder under `.wws/runtimes/`, entry in `.wws.toml`).
    pub name: String,
    /// Location of `index.toml`.
    pub location: Location,
}

impl RepositoryRef {
    /// Checks the name and parses the URL or path.
    pub fn new(name: &str, url: &str) -> anyhow::Result<Self> {
        check_path_component("repository name", name).context(
            "the repository name becomes a folder under .wws/runtimes; choose another --repo-name",
        )?;
        let location =
            Location::parse(url).with_context(|| format!("invalid repository URL {url:?}"))?;
        Ok(Self {
            name: name.into(),
            location,
        })
    }
}

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallOutcome {
    /// Downloaded, verified and recorded; the runtime folder.
    Installed(PathBuf),
    /// It was already installed and listed in `.wws.toml`; nothing changed.
    AlreadyInstalled(PathBuf),
}

/// Folder of an installed runtime: `<project>/.wws/runtimes/<repo>/<name>/<version>`.
pub fn runtime_dir(project: &Path, repo: &str, runtime: &Runtime) -> PathBuf {
    project
        .join(".wws/runtimes")
        .join(repo)
        .join(&runtime.name)
        .join(&runtime.version)
}

/// Written into a runtime folder as it is placed: the checksum of each file as `.wws.toml`
/// pins it, in `sha256sum` format (`sha256sum -c` checks the folder by hand). A start compares
/// it with `.wws.toml` without hashing, so a runtime whose pin changed (a `git pull`) installs
/// again.
pub const CHECKSUMS_FILE: &str = ".wws-checksums";

/// The content of [`CHECKSUMS_FILE`] for `runtime`.
fn checksums_text(runtime: &Runtime) -> String {
    runtime
        .files()
        .iter()
        .map(|(_, f)| format!("{}  {}\n", f.checksum.sha256_hex(), f.filename))
        .collect()
}

/// How closely a runtime folder is compared with `.wws.toml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verify {
    /// Every file exists and the folder was installed for the checksums `.wws.toml` pins
    /// (what every start does: no file is read but the small checksum list).
    Pins,
    /// [`Verify::Pins`], and every file's content hashes to its pin (`check`, `install`).
    Contents,
}

/// True when every file of `runtime` is in its folder, installed for the checksums
/// `.wws.toml` records (contents were verified when the folder was placed).
pub fn is_present(project: &Path, repo: &str, runtime: &Runtime) -> bool {
    verify(project, repo, runtime, Verify::Pins)
}

/// [`is_present`], as closely as `how` says.
pub fn verify(project: &Path, repo: &str, runtime: &Runtime, how: Verify) -> bool {
    if runtime.validate().is_err() || check_path_component("repository", repo).is_err() {
        return false;
    }
    let dir = runtime_dir(project, repo, runtime);
    if !runtime
        .files()
        .iter()
        .all(|(_, f)| dir.join(&f.filename).is_file())
    {
        return false;
    }
    let expected = checksums_text(runtime);
    let pinned = match std::fs::read_to_string(dir.join(CHECKSUMS_FILE)) {
        Ok(text) => text == expected,
        // Installed by the original wws or an older wws: hash it once, then remember.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let same = contents_match(&dir, runtime);
            if same {
                // Best effort: a read-only checkout hashes again next time.
                let _ = std::fs::write(dir.join(CHECKSUMS_FILE), &expected);
            }
            return same;
        }
        Err(_) => false,
    };
    pinned && (how == Verify::Pins || contents_match(&dir, runtime))
}

/// Every file of `runtime` in `dir` hashes to the checksum recorded for it.
fn contents_match(dir: &Path, runtime: &Runtime) -> bool {
    runtime.files().iter().all(|(_, f)| {
        crate::download::file_sha256(&dir.join(&f.filename))
            .is_ok_and(|digest| digest == f.checksum.sha256_hex())
    })
}

/// Installs `name` at `version_or_tag` from `repo` into `project` and records it in
/// `.wws.toml`. Refuses yanked runtimes unless `force`.
pub fn install(
    project: &Path,
    repo: &RepositoryRef,
    name: &str,
    version_or_tag: &str,
    force: bool,
    reporter: &dyn Reporter,
) -> anyhow::Result<InstallOutcome> {
    crate::blocking::run(|| {
        let _lock = ProjectLock::acquire(project, reporter)?;
        // Read (and validate) the project file before anything is downloaded.
        let mut config = ProjectConfig::load(project)?;
        let downloader = Downloader::new()?;
        let index = Index::fetch(&downloader, &repo.location, reporter)?;
        let runtime = index.find(name, version_or_tag)?.clone();
        runtime.validate()?;
        let dir = runtime_dir(project, &repo.name, &runtime);
        if config
            .find(&repo.name, &runtime.name, &runtime.version)
            .is_some()
            && is_present(project, &repo.name, &runtime)
        {
            reporter.line(&format!(
                "✅ The runtime {} is already installed in {}",
                runtime.label(),
                display_relative(project, &dir)
            ));
            return Ok(InstallOutcome::AlreadyInstalled(dir));
        }
        if runtime.status == RuntimeStatus::Yanked && !force {
            bail!(
                "the runtime {} is yanked by the repository {}: it should not be used any more; install another version, or pass --force to install it anyway",
                runtime.label(),
                repo.location
            );
        }
        reporter.line(&format!("🚀 Installing the runtime {}...", runtime.label()));
        place(
            project,
            &repo.name,
            &repo.location,
            &runtime,
            &downloader,
            reporter,
        )?;
        config.add_runtime(&repo.name, &repo.location.to_string(), runtime.clone());
        if let Err(e) = config.save(project) {
            // Keep disk and `.wws.toml` consistent: without its entry the folder must go.
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        warn_unused(project, &config, &repo.name, &runtime, reporter);
        reporter.line("✅ Done!");
        Ok(InstallOutcome::Installed(dir))
    })
}

/// Warns when the runtime just installed will not serve some files: it claims no extension, or
/// a runtime listed before it in `.wws.toml` claims the same one (the first one wins, as in the
/// original), e.g. an older version of it.
fn warn_unused(
    project: &Path,
    config: &ProjectConfig,
    repo: &str,
    runtime: &Runtime,
    reporter: &dyn Reporter,
) {
    if runtime.extensions.is_empty() {
        reporter.warn(&format!(
            "{} claims no file extension in its index entry: no file will run on it",
            runtime.label()
        ));
    }
    for ext in &runtime.extensions {
        let first = config
            .runtimes()
            .find(|(r, rt)| rt.extensions.contains(ext) && is_present(project, r, rt));
        if let Some((other_repo, other)) = first
            && !(other_repo == repo
                && other.name == runtime.name
                && other.version == runtime.version)
        {
            reporter.warn(&format!(
                ".{ext} files stay with {other_repo} - {}, listed before it in .wws.toml; to serve them with {}, uninstall that one: wws runtimes --repo-name {other_repo} uninstall {} {}",
                other.label(),
                runtime.label(),
                other.name,
                other.version
            ));
        }
    }
}

/// Installs every runtime `.wws.toml` lists that is missing, from the URLs and checksums stored
/// there (no index is fetched). Returns the labels it installed; prints nothing when none was
/// missing or installed for other checksums; with [`Verify::Contents`], also those whose files
/// changed on disk. One runtime that cannot be installed does not stop the others: the error,
/// returned at the end, names every one that failed.
pub fn restore(
    project: &Path,
    how: Verify,
    reporter: &dyn Reporter,
) -> anyhow::Result<Vec<String>> {
    crate::blocking::run(|| {
        if missing(&ProjectConfig::load(project)?, project, how).is_empty() {
            return Ok(Vec::new());
        }
        let _lock = ProjectLock::acquire(project, reporter)?;
        // Another process may have installed some while we waited for the lock.
        let config = ProjectConfig::load(project)?;
        let todo = missing(&config, project, how);
        if todo.is_empty() {
            return Ok(Vec::new());
        }
        let downloader = Downloader::new()?;
        let mut done = Vec::new();
        let mut failed = Vec::new();
        for (repo, runtime) in todo {
            let label = format!("{repo} - {} / {}", runtime.name, runtime.version);
            reporter.line(&format!("🚀 Installing: {label}"));
            let entry = config.repositories.iter().find(|r| r.name == repo);
            let base = match entry.map(|r| Location::parse(&r.url)) {
                Some(Ok(base)) => base,
                // A stored URL that no longer parses: the runtime's own URLs must be absolute.
                _ => Location::File(project.join(crate::project_config::FILE_NAME)),
            };
            let placed = runtime
                .validate()
                .and_then(|()| place(project, &repo, &base, &runtime, &downloader, reporter));
            match placed {
                Ok(()) => done.push(label),
                Err(err) => failed.push(format!("{label} ({err:#})")),
            }
        }
        if !failed.is_empty() {
            bail!(
                "could not install {} from the URLs and checksums {} records; fix the entry or the network, then run `wws runtimes install`",
                failed.join("; "),
                ProjectConfig::path(project).display()
            );
        }
        reporter.line("✅ Done!");
        Ok(done)
    })
}

/// Runtimes of `config` whose folder is incomplete or absent.
fn missing(config: &ProjectConfig, project: &Path, how: Verify) -> Vec<(String, Runtime)> {
    config
        .runtimes()
        .filter(|(repo, rt)| !verify(project, repo, rt, how))
        .map(|(repo, rt)| (repo.to_string(), rt.clone()))
        .collect()
}

/// Removes exactly the runtime `name` `version` of repository `repo`: its folder and its
/// `.wws.toml` entry. Returns false (and changes nothing) when it was not listed.
pub fn uninstall(
    project: &Path,
    repo: &str,
    name: &str,
    version: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<bool> {
    check_path_component("repository name", repo)?;
    check_path_component("runtime name", name)?;
    check_path_component("version", version)?;
    let _lock = ProjectLock::acquire(project, reporter)?;
    let mut config = ProjectConfig::load(project)?;
    if !config.remove_runtime(repo, name, version) {
        return Ok(false);
    }
    let parent = project.join(".wws/runtimes").join(repo).join(name);
    let dir = parent.join(version);
    // Move the folder aside first (atomic), so a failed save can put it back.
    let aside = parent.join(format!("{STAGING_PREFIX}{version}-uninstall"));
    let moved = dir.exists();
    if moved {
        std::fs::rename(&dir, &aside)
            .with_context(|| format!("cannot remove {}", dir.display()))?;
    }
    if let Err(e) = config.save(project) {
        if moved {
            let _ = std::fs::rename(&aside, &dir);
        }
        return Err(e);
    }
    if moved {
        std::fs::remove_dir_all(&aside)
            .with_context(|| format!("cannot remove {}", aside.display()))?;
    }
    // Leave no empty `<repo>/<name>` folders behind.
    let _ = std::fs::remove_dir(&parent);
    let _ = std::fs::remove_dir(project.join(".wws/runtimes").join(repo));
    Ok(true)
}

/// One runtime of `.wws.toml` and whether its files are on disk.
#[derive(Debug, Clone)]
pub struct RuntimeState {
    /// Repository name.
    pub repository: String,
    /// Metadata as recorded.
    pub runtime: Runtime,
    /// Every file is present.
    pub installed: bool,
}

/// The runtimes of `.wws.toml` with their state, in file order. Every file is hashed: a file
/// changed on disk shows as not installed.
pub fn check(project: &Path) -> anyhow::Result<Vec<RuntimeState>> {
    let config = ProjectConfig::load(project)?;
    Ok(config
        .runtimes()
        .map(|(repo, rt)| RuntimeState {
            repository: repo.to_string(),
            runtime: rt.clone(),
            installed: verify(project, repo, rt, Verify::Contents),
        })
        .collect())
}

/// Downloads every file of `runtime` into a staging folder, verifies it, and renames the folder
/// to `.wws/runtimes/<repo>/<name>/<version>`. Relative file URLs resolve against `base`.
/// The caller holds the project lock.
fn place(
    project: &Path,
    repo: &str,
    base: &Location,
    runtime: &Runtime,
    downloader: &Downloader,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    runtime.validate()?;
    check_path_component("repository name", repo)?;
    let dir = runtime_dir(project, repo, runtime);
    let parent = dir
        .parent()
        .context("a runtime folder always has a parent")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let placed = place_in(project, parent, &dir, base, runtime, downloader, reporter);
    if placed.is_err() {
        // Leave no empty `<repo>/<name>` folders behind (they hold other versions otherwise).
        let _ = std::fs::remove_dir(parent);
        let _ = parent.parent().map(std::fs::remove_dir);
    }
    placed
}

/// [`place`] once the parent folder exists.
fn place_in(
    project: &Path,
    parent: &Path,
    dir: &Path,
    base: &Location,
    runtime: &Runtime,
    downloader: &Downloader,
    reporter: &dyn Reporter,
) -> anyhow::Result<()> {
    let staging = tempfile::Builder::new()
        .prefix(&format!("{STAGING_PREFIX}{}-", runtime.version))
        .tempdir_in(parent)
        .with_context(|| format!("cannot create a temporary folder in {}", parent.display()))?;
    // Resolve every URL first, so a bad one fails before any download.
    let mut sources = Vec::new();
    for (role, file) in runtime.files() {
        let location = base
            .join(&file.url)
            .with_context(|| format!("invalid {role} URL {:?} of {}", file.url, runtime.label()))?;
        sources.push((role, file, location));
    }
    for (role, file, location) in sources {
        reporter.line(&format!(
            "⬇️  Pulling {role} {} from {location}",
            file.filename
        ));
        let dest = staging.path().join(&file.filename);
        let bytes = downloader
            .fetch_verified(&location, &dest, &file.checksum.sha256_hex(), reporter)
            .with_context(|| format!("cannot install {} ({role})", runtime.label()))?;
        reporter.line(&format!(
            "🔍 Validating checksum of {} ({bytes} bytes)... ok",
            file.filename
        ));
    }
    let checksums = staging.path().join(CHECKSUMS_FILE);
    std::fs::write(&checksums, checksums_text(runtime))
        .with_context(|| format!("cannot write {}", checksums.display()))?;
    reporter.line(&format!(
        "📦 Installing it in {}/",
        display_relative(project, dir)
    ));
    if dir.exists() {
        // An incomplete or unrecorded folder (e.g. from the original wws): replace it.
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, dir) {
        let _ = std::fs::remove_dir_all(&staged);
        return Err(anyhow::Error::new(e)
            .context(format!("cannot move the runtime into {}", dir.display())));
    }
    Ok(())
}

/// `dir` relative to `project` for messages, e.g. `.wws/runtimes/wasmlabs/python/3.12.0`.
fn display_relative(project: &Path, dir: &Path) -> String {
    dir.strip_prefix(project)
        .unwrap_or(dir)
        .display()
        .to_string()
}
