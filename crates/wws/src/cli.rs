//! Command-line flags. Every serve flag also reads a `WWS_*` environment variable, so a
//! container or a process manager can configure wws without a wrapper script; a flag given on
//! the command line wins over the variable.

use std::path::PathBuf;

use clap::builder::FalseyValueParser;
use clap::{ArgAction, Args, Parser, Subcommand};

/// The default runtime repository: the original project's public index, kept for compatibility.
pub const DEFAULT_REPO_URL: &str = "https://workers.wasmlabs.dev/repository/v1/index.toml";
/// The local label of the default repository (folder under `.wws/runtimes/`).
pub const DEFAULT_REPO_NAME: &str = "wasmlabs";

/// A WebAssembly framework to develop and run serverless applications anywhere.
#[derive(Debug, Parser)]
#[command(name = "wws", version, about, long_about = None)]
pub struct Cli {
    /// Project folder whose files become HTTP routes, or a git repository URL ending in `.git`.
    #[arg(default_value = ".", env = "WWS_PATH")]
    pub path: PathBuf,

    #[command(flatten)]
    pub serve: ServeArgs,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags of the default (serve) command.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind: an IP address (`0.0.0.0`, `::1`, `[::1]`) or a host name (`localhost`).
    #[arg(long, default_value = "127.0.0.1", env = "WWS_HOST")]
    pub host: String,

    /// Port to bind; `0` picks a free port and prints the one it got.
    #[arg(short, long, default_value_t = 8080, env = "WWS_PORT")]
    pub port: u16,

    /// Path prepended to every route and to the static files (`app` serves `/app/...`).
    #[arg(long, default_value = "", env = "WWS_PREFIX")]
    pub prefix: String,

    /// Glob of files that are not workers, e.g. `--ignore "target/**"`. Repeat the flag for
    /// several, or use braces: `--ignore "{target,lib}/**"` (`WWS_IGNORE` holds one glob).
    #[arg(long, env = "WWS_IGNORE")]
    pub ignore: Vec<String>,

    /// Origin allowed to call the workers from a browser (repeatable); `*` allows any.
    #[arg(long, env = "WWS_CORS", value_delimiter = ',')]
    pub cors: Vec<String>,

    /// Stop when a runtime that `.wws.toml` lists cannot be installed. wws installs missing
    /// runtimes by itself either way; without this flag, the files of one that fails are not
    /// served.
    #[arg(short = 'i', long, env = "WWS_INSTALL_RUNTIMES", action = ArgAction::SetTrue,
          value_parser = FalseyValueParser::new())]
    pub install_runtimes: bool,

    /// Folder for compiled modules, so later starts skip compiling (default: `.wws/cache` in
    /// the project). Several projects may share one.
    #[arg(long, env = "WWS_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Serve Prometheus metrics at `http://ADDR/metrics` on a listener of their own, e.g.
    /// `127.0.0.1:9464` (port `0` picks a free one): requests by route and status, their
    /// duration, and worker failures by reason.
    #[arg(long, value_name = "ADDR", env = "WWS_METRICS")]
    pub metrics: Option<String>,

    /// Accepted for compatibility: the original's admin panel is not part of wws (a warning
    /// says so).
    #[arg(long, env = "WWS_ENABLE_PANEL", action = ArgAction::SetTrue,
          value_parser = FalseyValueParser::new())]
    pub enable_panel: bool,

    #[command(flatten)]
    pub git: GitArgs,

    #[command(flatten)]
    pub limits: LimitArgs,
}

/// Which part of a git repository to serve, when the project is a repository URL ending in
/// `.git`. Without a ref, the remote's default branch.
#[derive(Debug, Args, Clone, Default)]
pub struct GitArgs {
    /// Check out this commit (wins over --git-tag and --git-branch).
    #[arg(long, env = "WWS_GIT_COMMIT")]
    pub git_commit: Option<String>,

    /// Check out this tag (wins over --git-branch).
    #[arg(long, env = "WWS_GIT_TAG")]
    pub git_tag: Option<String>,

    /// Check out this branch.
    #[arg(long, env = "WWS_GIT_BRANCH")]
    pub git_branch: Option<String>,

    /// Serve this folder of the repository instead of its root.
    #[arg(long, env = "WWS_GIT_FOLDER")]
    pub git_folder: Option<String>,
}

impl GitArgs {
    /// True when any git flag was given.
    pub fn any(&self) -> bool {
        self.git_commit.is_some()
            || self.git_tag.is_some()
            || self.git_branch.is_some()
            || self.git_folder.is_some()
    }
}

/// Resource limits for every worker run. Defaults follow DESIGN §7.
#[derive(Debug, Args, Clone)]
pub struct LimitArgs {
    /// Largest accepted request body, in bytes (larger ones get 413).
    #[arg(long, default_value_t = 16 << 20, env = "WWS_MAX_BODY_SIZE")]
    pub max_body_size: usize,

    /// Largest output a worker may print, in bytes (more is a 500).
    #[arg(long, default_value_t = 16 << 20, env = "WWS_MAX_OUTPUT_SIZE")]
    pub max_output_size: usize,

    /// Linear memory one worker instance may grow to, in MiB (at least 4: the JavaScript
    /// engine starts with about 1.5).
    #[arg(long, default_value_t = 256, env = "WWS_MAX_MEMORY_MIB",
          value_parser = clap::value_parser!(u64).range(4..))]
    pub max_memory_mib: u64,

    /// CPU time a worker may spend on one request, in milliseconds (more is a 504). 0 turns
    /// the limit off: only for trusted workers, as one that never returns then holds a thread.
    #[arg(long, default_value_t = 30_000, env = "WWS_TIMEOUT_MS")]
    pub timeout_ms: u64,

    /// Wall-clock time one request may take, in milliseconds, waiting for an instance, a timer
    /// or a fetch included (more is a 504). 0 turns the limit off.
    #[arg(long, default_value_t = 60_000, env = "WWS_WALL_TIMEOUT_MS")]
    pub wall_timeout_ms: u64,

    /// Worker instances alive at once, over all workers; further requests wait for one.
    #[arg(long, default_value_t = wws_worker::slots::DEFAULT_SLOTS, env = "WWS_INSTANCE_SLOTS",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub instance_slots: u32,

    /// How long a request waits for a free instance before it gets 503 with `Retry-After`,
    /// in milliseconds (`0`: no waiting).
    #[arg(long, default_value_t = 5_000, env = "WWS_QUEUE_TIMEOUT_MS")]
    pub queue_timeout_ms: u64,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage the language runtimes of the project (Python, Ruby, ...).
    Runtimes(RuntimesArgs),
}

/// `wws runtimes ...`: the repository flags work before or after the action.
#[derive(Debug, Args)]
pub struct RuntimesArgs {
    /// URL or path of the repository index (`https://`, `http://`, `file://` or a local path).
    #[arg(long = "repo-url", alias = "repo", global = true, env = "WWS_REPO_URL",
          default_value = DEFAULT_REPO_URL)]
    pub repo_url: String,

    /// Local name of the repository: the folder under `.wws/runtimes/` and the entry in `.wws.toml`.
    #[arg(long = "repo-name", global = true, env = "WWS_REPO_NAME", default_value = DEFAULT_REPO_NAME)]
    pub repo_name: String,

    #[command(subcommand)]
    pub action: RuntimesAction,
}

/// What to do with runtimes.
#[derive(Debug, Subcommand)]
pub enum RuntimesAction {
    /// List the runtimes the repository offers.
    List,
    /// Install NAME VERSION (a version or a tag such as `latest`); with no arguments, install
    /// everything `.wws.toml` lists.
    Install {
        /// Runtime name, e.g. `python`.
        name: Option<String>,
        /// Version or tag, e.g. `3.12.0` or `latest`.
        version: Option<String>,
        /// Install even when the repository marks the runtime as yanked.
        #[arg(long)]
        force: bool,
    },
    /// Remove one installed runtime and its `.wws.toml` entry.
    Uninstall {
        /// Runtime name.
        name: String,
        /// Exact installed version.
        version: String,
    },
    /// Show which runtimes of `.wws.toml` are installed; fails when one is missing.
    Check,
}
