//! `wws runtimes list | install | uninstall | check`: manage the language runtimes of the
//! project at the top-level PATH. The work happens in `wws-repository`; this file turns flags
//! into calls, prints tables and picks the exit code.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use wws_repository::{Console, ProjectConfig, Reporter, RepositoryRef, Runtime};

use crate::cli::{RuntimesAction, RuntimesArgs};

/// Runs one `wws runtimes` action on the project at `path`.
pub fn run(path: &Path, mut args: RuntimesArgs) -> anyhow::Result<ExitCode> {
    // An empty `WWS_REPO_URL=` or `WWS_REPO_NAME=` (a compose file's blank) means the default.
    if args.repo_url.trim().is_empty() {
        args.repo_url = crate::cli::DEFAULT_REPO_URL.into();
    }
    if args.repo_name.trim().is_empty() {
        args.repo_name = crate::cli::DEFAULT_REPO_NAME.into();
    }
    if crate::project::is_git_url(&path.to_string_lossy()) {
        bail!(
            "You can only manage runtimes in local projects: clone {} and run `wws runtimes` in its folder",
            path.display()
        );
    }
    if !path.is_dir() {
        bail!(
            "the project folder {} does not exist; run `wws runtimes` inside your project or give its path first (`wws PATH runtimes ...`)",
            path.display()
        );
    }
    let reporter = Console;
    match args.action {
        RuntimesAction::List => list(path, &args.repo_url, &args.repo_name, &reporter)
            .context("There was an error listing the runtimes from the repository"),
        RuntimesAction::Install {
            name: Some(name),
            version: Some(version),
            force,
        } => {
            let repo = RepositoryRef::new(&args.repo_name, &args.repo_url)?;
            reporter.line("⚙️  Fetching data from the repository...");
            wws_repository::install(path, &repo, &name, &version, force, &reporter)
                .context("There was an error installing the runtime from the repository")?;
            Ok(ExitCode::SUCCESS)
        }
        RuntimesAction::Install {
            name: None,
            version: None,
            ..
        } => {
            reporter.line("⚙️  Checking local configuration...");
            let done = wws_repository::restore(path, wws_repository::Verify::Contents, &reporter)
                .context("There was an error installing the runtimes of .wws.toml")?;
            if done.is_empty() && !ProjectConfig::path(path).exists() {
                reporter.line("💡 There is no .wws.toml here, so nothing to install: `wws runtimes install NAME VERSION` installs a runtime and records it there");
            } else if done.is_empty() {
                reporter.line("✅ Every runtime of .wws.toml is installed");
            }
            Ok(ExitCode::SUCCESS)
        }
        RuntimesAction::Install { .. } => bail!(
            "The name and version are mandatory when installing a runtime from a repository: `wws runtimes install NAME VERSION` (a version or a tag such as `latest`), or `wws runtimes install` alone to install what .wws.toml lists"
        ),
        RuntimesAction::Uninstall { name, version } => {
            let repo = &args.repo_name;
            let label = format!("{repo} - {name} / {version}");
            let ext = ProjectConfig::load(path)
                .ok()
                .and_then(|c| c.find(repo, &name, &version).cloned())
                .and_then(|rt| rt.extensions.first().cloned());
            let removed = wws_repository::uninstall(path, repo, &name, &version, &reporter)
                .context("There was an error uninstalling the runtime")?;
            if removed {
                forget_generated_workers(path, ext.as_deref())?;
                reporter.line(&format!("🗑  Uninstalled: {label}"));
                reporter.line("✅ Done");
            } else {
                reporter.line(&format!("🗑  The runtime was not installed: {label}"));
                let config = ProjectConfig::load(path)?;
                let versions: Vec<String> = config
                    .runtimes()
                    .filter(|(r, rt)| *r == repo.as_str() && rt.name == name)
                    .map(|(_, rt)| rt.version.clone())
                    .collect();
                if versions.is_empty() {
                    reporter
                        .line("💡 Tip: `wws runtimes check` lists the runtimes of this project");
                } else {
                    reporter.line(&format!(
                        "💡 Installed versions of {name} in {repo}: {} (uninstall takes the exact version)",
                        versions.join(", ")
                    ));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RuntimesAction::Check => {
            check(path).context("There was an error checking the local runtimes")
        }
    }
}

fn list(
    project: &Path,
    url: &str,
    repo_name: &str,
    reporter: &dyn Reporter,
) -> anyhow::Result<ExitCode> {
    let repo = RepositoryRef::new(repo_name, url)?;
    // Read the project file first: a broken one is reported, not silently shown as "not installed".
    let config = ProjectConfig::load(project)?;
    reporter.line("⚙️  Fetching data from the repository...");
    let index = wws_repository::fetch_index(&repo.location, reporter)?;
    let rows: Vec<Vec<String>> = index
        .runtimes
        .iter()
        .map(|rt| {
            let installed = wws_repository::is_installed(project, &config, &repo.name, rt);
            let mut row = describe(rt);
            let mut status = if installed {
                "installed"
            } else {
                "not installed"
            }
            .to_string();
            // What the repository says of it: yanked ones need --force, deprecated ones have
            // a successor.
            if rt.status != wws_repository::RuntimeStatus::Active {
                status.push_str(&format!(", {}", rt.status));
            }
            row.push(status);
            row
        })
        .collect();
    if rows.is_empty() {
        reporter.line(&format!(
            "The repository {} offers no runtimes",
            repo.location
        ));
    } else {
        print_table(
            &["NAME", "VERSION", "TAGS", "EXTENSION", "BINARY", "STATUS"],
            &rows,
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn check(project: &Path) -> anyhow::Result<ExitCode> {
    let states = wws_repository::check(project)?;
    if states.is_empty() {
        println!(
            "No runtimes are listed in {}",
            ProjectConfig::path(project).display()
        );
        println!();
        println!(
            "💡 Tip: you can check the available language runtimes by running `wws runtimes list`"
        );
        return Ok(ExitCode::SUCCESS);
    }
    let rows: Vec<Vec<String>> = states
        .iter()
        .map(|s| {
            let mut row = vec![if s.installed { "✅" } else { "❌" }.to_string()];
            row.extend(describe(&s.runtime));
            row.push(s.repository.clone());
            row
        })
        .collect();
    print_table(
        &[
            "INSTALLED",
            "NAME",
            "VERSION",
            "TAGS",
            "EXTENSION",
            "BINARY",
            "REPOSITORY",
        ],
        &rows,
    );
    if states.iter().all(|s| s.installed) {
        return Ok(ExitCode::SUCCESS);
    }
    println!();
    println!(
        "💡 Tip: there are missing language runtimes, or files changed since they were installed. You can install them with `wws runtimes install`"
    );
    Ok(ExitCode::FAILURE)
}

/// Removes the worker folders generated for the runtime's extension, unless a runtime still
/// listed generates them too (they are written again on the next start anyway).
fn forget_generated_workers(project: &Path, ext: Option<&str>) -> anyhow::Result<()> {
    let Some(ext) = ext else {
        return Ok(());
    };
    let still_used = ProjectConfig::load(project)?
        .runtimes()
        .any(|(_, rt)| rt.extensions.first().map(String::as_str) == Some(ext));
    if still_used {
        return Ok(());
    }
    wws_runtimes::remove_generated(project, ext)
}

/// NAME VERSION TAGS EXTENSION BINARY of one runtime.
fn describe(rt: &Runtime) -> Vec<String> {
    let tags = if rt.tags.is_empty() {
        "-".to_string()
    } else {
        rt.tags.join(", ")
    };
    vec![
        rt.name.clone(),
        rt.version.clone(),
        tags,
        rt.extensions.join(", "),
        rt.binary.filename.clone(),
    ]
}

/// Terminal columns taken by `text`: the two status emoji are double width.
fn width(text: &str) -> usize {
    text.chars()
        .map(|c| if matches!(c, '✅' | '❌') { 2 } else { 1 })
        .sum()
}

/// Columns separated by two spaces, padded to the widest cell.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c}{}", " ".repeat(w.saturating_sub(width(c)))))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
