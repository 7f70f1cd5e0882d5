//! Where the project comes from: a local folder, or a git repository URL as the original
//! accepted (`wws https://host/org/repo.git --git-folder examples/app`, spec §1.5). A repository
//! is cloned with the `git` command into `<temp dir>/wws-git-<sha256 of the URL and the ref>`
//! (two servers of different refs never share a checkout), reused and fetched again on the
//! next start, and the ref asked for is checked out; the project is that checkout or the
//! `--git-folder` inside it. A clone appears only complete (it is made beside and renamed), and
//! the project, and its `public/`, must stay inside the checkout: a symlink in a repository
//! cannot publish a folder of the host.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, bail};

use wws_worker::config::Folder;

use crate::cli::GitArgs;

/// True when `location` names a git repository rather than a folder: an `http(s)://` URL
/// ending in `.git`, as in the original.
pub fn is_git_url(location: &str) -> bool {
    (location.starts_with("https://") || location.starts_with("http://"))
        && location.trim_end_matches('/').ends_with(".git")
}

/// The project to serve.
pub struct Project {
    /// The project folder.
    pub folder: PathBuf,
    /// For a git URL: the repository, whose workers may mount only its own folders.
    pub repository: Option<Repository>,
}

/// A checkout of a git repository, content wws did not get from its user's disk.
pub struct Repository {
    pub url: String,
    /// The checkout's canonical path.
    pub checkout: PathBuf,
}

impl Repository {
    /// Refuses a worker's `[[folders]]` entry that mounts a host folder outside the
    /// repository: whoever can push to it could otherwise publish any folder of the host.
    pub fn check_folders(&self, toml: &Path, folders: &[Folder]) -> anyhow::Result<()> {
        for (i, folder) in folders.iter().enumerate() {
            let real = folder
                .from
                .canonicalize()
                .unwrap_or_else(|_| folder.from.clone());
            if !real.starts_with(&self.checkout) {
                bail!(
                    "{}: `folders[{i}].from` = {} is outside the repository {}: a project served from a git URL may mount only its own folders; to mount host folders, clone it and serve the local folder",
                    toml.display(),
                    folder.from.display(),
                    self.url
                );
            }
        }
        Ok(())
    }
}

/// The project for `location`: the folder itself, or the checkout of the git repository it
/// names. Errors say what to do (install git, pick a ref, fix the URL).
pub fn resolve(location: &Path, git: &GitArgs) -> anyhow::Result<Project> {
    let text = location.to_string_lossy();
    if is_git_url(&text) {
        let (folder, checkout) = checkout(&text, git)?;
        let repository = Repository {
            url: text.into_owned(),
            checkout,
        };
        return Ok(Project {
            folder,
            repository: Some(repository),
        });
    }
    if text.starts_with("https://") || text.starts_with("http://") {
        bail!(
            "{text} is a URL but not a git repository: wws serves a local folder, or a git repository whose URL ends in .git"
        );
    }
    if git.any() {
        tracing::warn!(
            "--git-commit, --git-tag, --git-branch and --git-folder apply to git repository URLs; {} is a folder, so they are ignored",
            location.display()
        );
    }
    Ok(Project {
        folder: location.to_path_buf(),
        repository: None,
    })
}

/// Clones or updates `url`, checks out the ref `git` asks for (commit > tag > branch >
/// the remote's default branch) and returns the project folder inside the checkout and the
/// checkout's canonical path.
fn checkout(url: &str, git: &GitArgs) -> anyhow::Result<(PathBuf, PathBuf)> {
    let (what, rev) = if let Some(commit) = &git.git_commit {
        ("commit", commit.clone())
    } else if let Some(tag) = &git.git_tag {
        ("tag", format!("refs/tags/{tag}"))
    } else if let Some(branch) = &git.git_branch {
        ("branch", format!("refs/remotes/origin/{branch}"))
    } else {
        ("default branch", "refs/remotes/origin/HEAD".to_string())
    };
    let key = format!("{url}\n{rev}");
    let digest = wws_repository::download::sha256_hex(key.as_bytes());
    let dir = std::env::temp_dir().join(format!("wws-git-{digest}"));
    if dir.join(".git").is_dir() {
        let fetch = ["fetch", "--quiet", "--tags", "--force", "--prune", "origin"];
        run_git(Some(&dir), &fetch)
            .with_context(|| format!("cannot update the clone of {url} in {}", dir.display()))?;
        // The remote's default branch may have changed.
        let _ = run_git(Some(&dir), &["remote", "set-head", "origin", "--auto"]);
    } else {
        clone(url, &dir)?;
    }
    let exists = format!("{rev}^{{commit}}");
    if run_git(Some(&dir), &["rev-parse", "--verify", "--quiet", &exists]).is_err() {
        bail!(
            "{url} has no {what} {}; check the name (--git-commit, --git-tag or --git-branch pick another)",
            rev.rsplit('/').next().unwrap_or(&rev)
        );
    }
    run_git(
        Some(&dir),
        &["checkout", "--quiet", "--force", "--detach", &rev],
    )
    .with_context(|| format!("cannot check out the {what} {rev:?} of {url}"))?;
    // Serve the commit and nothing else: files left in the reused clone (by an earlier
    // version, or planted there) go, except wws' own `.wws` folder.
    run_git(Some(&dir), &["clean", "-ffdxq", "-e", "/.wws/"])
        .with_context(|| format!("cannot clean the clone of {url} in {}", dir.display()))?;
    let project = match &git.git_folder {
        Some(folder) => {
            let folder = Path::new(folder);
            if folder.is_absolute()
                || folder
                    .components()
                    .any(|c| matches!(c, std::path::Component::ParentDir))
            {
                bail!(
                    "--git-folder {} must be a folder inside the repository",
                    folder.display()
                );
            }
            dir.join(folder)
        }
        None => dir.clone(),
    };
    if !project.is_dir() {
        bail!(
            "{url} has no folder {}; check --git-folder",
            git.git_folder.as_deref().unwrap_or(".")
        );
    }
    // A symlink in the repository must not make a folder of the host the project or its
    // public files.
    let checkout = dir.canonicalize()?;
    for inside in [project.clone(), project.join("public")] {
        if let Ok(real) = inside.canonicalize()
            && !real.starts_with(&checkout)
        {
            bail!(
                "{url}: {} leads outside the repository (a symlink to {}); wws does not serve it",
                inside.strip_prefix(&dir).unwrap_or(&inside).display(),
                real.display()
            );
        }
    }
    Ok((project, checkout))
}

/// Clones `url` into `dir`: beside it first, then renamed, so an interrupted clone never
/// leaves a `dir` that later starts would trust.
fn clone(url: &str, dir: &Path) -> anyhow::Result<()> {
    let partial = dir.with_extension(format!("partial-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&partial);
    if dir.exists() {
        std::fs::remove_dir_all(dir)
            .with_context(|| format!("cannot remove the broken clone {}", dir.display()))?;
    }
    let target = partial.to_string_lossy();
    let cloned = run_git(None, &["clone", "--quiet", "--no-checkout", url, &target])
        .with_context(|| format!("cannot clone {url}; check the URL and your access to it"))
        .and_then(|()| {
            std::fs::rename(&partial, dir)
                .with_context(|| format!("cannot move the clone into {}", dir.display()))
        });
    if cloned.is_err() {
        let _ = std::fs::remove_dir_all(&partial);
    }
    cloned
}

/// Runs `git ARGS` (in `dir`), failing with git's own message.
fn run_git(dir: Option<&Path>, args: &[&str]) -> anyhow::Result<()> {
    let mut cmd = Command::new("git");
    if let Some(dir) = dir {
        cmd.arg("-C").arg(dir);
    }
    // Never stop to ask for a password: a private repository fails with git's message.
    cmd.args(args).env("GIT_TERMINAL_PROMPT", "0");
    let out = match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "serving a git repository needs the `git` command, which is not installed; install git, or clone the repository yourself and give wws its folder"
        ),
        Err(e) => return Err(anyhow::Error::new(e).context("cannot run git")),
    };
    if !out.status.success() {
        bail!(
            "git {} failed: {}",
            args.first().copied().unwrap_or_default(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_urls_ending_in_dot_git_are_repositories() {
        assert!(is_git_url("https://example.com/org/app.git"));
        assert!(is_git_url("http://127.0.0.1:8000/app.git/"));
        assert!(!is_git_url("https://example.com/org/app"));
        assert!(!is_git_url("git@example.com:org/app.git"));
        assert!(!is_git_url("./app.git"));
    }
}
