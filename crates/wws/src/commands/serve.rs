//! `wws [PATH]`: prepare every worker of the project and serve HTTP until SIGINT/SIGTERM.

use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use wws_router::Routes;
use wws_runtimes::Runtimes;
use wws_server::{App, AppConfig, Cors, Endpoint, StaticFiles};
use wws_worker::config::WorkerConfig;
use wws_worker::slots::SlotConfig;
use wws_worker::{Engine, Limits, Worker};

use crate::cli::ServeArgs;
use crate::project::Repository;

/// Prints a line of the startup report; a closed stdout must not stop the server.
fn say(line: impl std::fmt::Display) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Serves the project at `path`.
pub fn run(path: &Path, args: ServeArgs) -> anyhow::Result<ExitCode> {
    say(format_args!(
        "⚙️  Preparing the project from: {}",
        path.display()
    ));
    if args.enable_panel {
        tracing::warn!(
            "--enable-panel: the admin panel of the original wws is not part of wws; serving without it"
        );
    }
    let project = crate::project::resolve(path, &args.git)?;
    let path = project.folder;
    let root = path
        .canonicalize()
        .with_context(|| format!("the project folder {} does not exist", path.display()))?;
    if !root.is_dir() {
        anyhow::bail!(
            "{} is not a folder; give wws the project folder",
            path.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wws")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(serve(&root, project.repository.as_ref(), args))
}

async fn serve(
    root: &Path,
    repository: Option<&Repository>,
    args: ServeArgs,
) -> anyhow::Result<ExitCode> {
    say(format_args!("⚙️  Loading routes from: {}", root.display()));
    let serving = wws_server::Serving::from_env()?;
    let runtimes = Runtimes::new(installed_runtimes(root, args.install_runtimes)?)?;
    let files = wws_router::discover(root, &runtimes.extensions(), &args.ignore)?;
    let prefix = wws_router::normalize_prefix(&args.prefix);
    warn_orphan_configs(root, &files, &args.ignore);
    if files.is_empty() && !root.join("public").is_dir() {
        tracing::warn!(
            "{} has no workers and no public/ folder: every request will be a 404 (is it the project folder?)",
            root.display()
        );
    }
    let routes = Routes::new(files, &prefix)?;

    say(format_args!(
        "⏳ Loading workers from {} routes...",
        routes.len()
    ));
    let started = Instant::now();
    let limits = Limits {
        max_memory_bytes: usize::try_from(args.limits.max_memory_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        timeout: (args.limits.timeout_ms > 0)
            .then(|| Duration::from_millis(args.limits.timeout_ms)),
        wall_timeout: (args.limits.wall_timeout_ms > 0)
            .then(|| Duration::from_millis(args.limits.wall_timeout_ms)),
        max_output_bytes: args.limits.max_output_size,
        ..Limits::default()
    };
    let cache_dir = args
        .cache_dir
        .clone()
        .unwrap_or_else(|| root.join(".wws").join("cache"));
    let slots = SlotConfig {
        slots: args.limits.instance_slots,
        queue_timeout: Duration::from_millis(args.limits.queue_timeout_ms),
    };
    let engine = Engine::with_slots(limits.clone(), Some(&cache_dir), slots)?;
    let endpoints = prepare_workers(root, repository, &routes, &runtimes, &engine)?;
    engine.release_compiler();
    release_startup_memory();
    say(format_args!(
        "✅ Workers loaded in {:?}.",
        started.elapsed()
    ));

    let (listener, addr) = bind(&args.host, args.port)?;
    for route in routes.iter() {
        say(format_args!("    - http://{addr}{}", route.path));
        say(format_args!(
            "      => ./{}",
            wws_runtimes::display_name(&route.file)
        ));
    }
    let reuse = endpoints.iter().any(|e| e.worker.reuses_instances());
    let mut app = App::new(
        routes,
        endpoints,
        StaticFiles::new(&root.join("public"), root),
        Cors::new(args.cors),
        Arc::new(wws_kv::MemoryStore::new()),
        AppConfig {
            max_body_bytes: args.limits.max_body_size,
            prefix,
        },
    );
    if let Some(at) = &args.metrics {
        app = app.with_metrics(serve_metrics(at)?);
    }
    let app = Arc::new(app);
    let listener = tokio::net::TcpListener::from_std(listener)?;
    say(format_args!("🚀 Start serving requests at http://{addr}\n"));
    let drain = limits.timeout.unwrap_or(Duration::from_secs(30)) + Duration::from_secs(5);
    // Per-core serving needs guests that yield to other requests (at each tick of the CPU
    // limit). Reuse-mode workers run their live instances on the work-stealing runtime, and
    // every request to them would cross threads twice: measured, Python's reuse mode served
    // 28 % fewer requests at 8 connections, so such projects keep the work-stealing runtime.
    // With batched sends it is mixed: Python -4 % at 8 connections and +4 % at 32, JS reuse
    // -3 % and +17 %.
    let serving = wws_server::Serving {
        per_core: serving.per_core && limits.timeout.is_some() && !reuse,
        ..serving
    };
    wws_server::serve(listener, app, shutdown_signal(), drain, serving).await?;
    Ok(ExitCode::SUCCESS)
}

/// Names each `<name>.toml` that looks like a worker config (it has `[vars]`, `[data]`,
/// `[features]` or `[[folders]]`) but sits next to no worker of that name: its worker would
/// run without it, silently (a config is named after its worker: `index.js` → `index.toml`).
fn warn_orphan_configs(root: &Path, workers: &[std::path::PathBuf], ignore: &[String]) {
    let Ok(configs) = wws_router::discover(root, &["toml".to_owned()], ignore) else {
        return;
    };
    for config in configs {
        let stem = config.with_extension("");
        // A worker of a runtime that is not installed is not in `workers`, but it is there.
        let sibling = || {
            let dir = root.join(&config).parent()?.read_dir().ok()?;
            let name = stem.file_name()?.to_owned();
            dir.flatten().find(|e| {
                let path = e.path();
                path.file_stem() == Some(&name) && path.extension() != Some("toml".as_ref())
            })
        };
        if workers.iter().any(|w| w.with_extension("") == stem) || sibling().is_some() {
            continue;
        }
        let Ok(table) = std::fs::read_to_string(root.join(&config))
            .map_err(anyhow::Error::from)
            .and_then(|text| Ok(text.parse::<toml::Table>()?))
        else {
            continue;
        };
        if ["vars", "data", "features", "folders"]
            .iter()
            .any(|key| table.contains_key(*key))
        {
            tracing::warn!(
                "{} looks like a worker config, but no worker {}.* is next to it: a config is named after its worker (index.js → index.toml)",
                config.display(),
                stem.display()
            );
        }
    }
}

/// Starts the metrics listener on `at` (`HOST:PORT`) and says where it is.
fn serve_metrics(at: &str) -> anyhow::Result<Arc<wws_server::Metrics>> {
    let (host, port) = at
        .rsplit_once(':')
        .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
        .with_context(|| format!("--metrics {at}: give HOST:PORT, like 127.0.0.1:9464"))?;
    let (listener, shown) = bind(host, port).context("--metrics")?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let metrics = Arc::new(wws_server::Metrics::default());
    tokio::spawn(wws_server::serve_metrics(
        listener,
        metrics.clone(),
        shutdown_signal(),
    ));
    say(format_args!("📈 Metrics at http://{shown}/metrics"));
    Ok(metrics)
}

/// Listens on `host` (an IP address, `[v6]`, or a name resolved as the original did) and
/// `port`. Returns the listener and how to show its address: the name a user gave, the
/// address otherwise.
fn bind(host: &str, port: u16) -> anyhow::Result<(std::net::TcpListener, String)> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .with_context(|| {
            format!("cannot resolve --host {host}: give an IP address or a name of this machine")
        })?
        .collect();
    let mut failure = None;
    for addr in &addrs {
        match std::net::TcpListener::bind(addr) {
            Ok(listener) => {
                listener.set_nonblocking(true)?;
                let bound = listener.local_addr()?;
                let shown = if bare.parse::<std::net::IpAddr>().is_ok() {
                    bound.to_string()
                } else {
                    format!("{bare}:{}", bound.port())
                };
                return Ok((listener, shown));
            }
            Err(err) => failure = Some((*addr, err)),
        }
    }
    let Some((addr, err)) = failure else {
        anyhow::bail!("--host {host} resolves to no address");
    };
    let hint = match err.kind() {
        std::io::ErrorKind::AddrInUse => {
            "is another server using it? Pick another with --port (0 picks a free one)"
        }
        std::io::ErrorKind::PermissionDenied => {
            "ports below 1024 need privileges (root or CAP_NET_BIND_SERVICE); pick another with --port"
        }
        std::io::ErrorKind::AddrNotAvailable => {
            "the address is not one of this machine's; check --host"
        }
        _ => "check --host and --port",
    };
    Err(anyhow::Error::new(err).context(format!("cannot listen on {addr}; {hint}")))
}

/// The runtimes `.wws.toml` lists, after installing the missing ones: commit `.wws.toml` and a
/// fresh checkout just runs. One that cannot be installed (offline, a read-only checkout, a
/// repository gone) leaves its files unserved with a warning, as the original did without
/// `-i`; with `-i` (`strict`) it stops the start instead.
fn installed_runtimes(
    root: &Path,
    strict: bool,
) -> anyhow::Result<Vec<wws_repository::InstalledRuntime>> {
    let err = match wws_repository::install_missing(root) {
        Ok(installed) => return Ok(installed),
        Err(err) if strict => {
            return Err(err.context("There was an error installing the missing runtimes"));
        }
        Err(err) => err,
    };
    let console: &dyn wws_repository::Reporter = &wws_repository::Console;
    console.warn(&format!(
        "Required language runtimes are not installed, so their files are not served: {err:#}"
    ));
    console.warn("Start with -i (--install-runtimes) to stop instead of serving without them");
    // A `.wws.toml` that does not parse lists nothing that can be served (the original ignored
    // it too); it is left untouched.
    Ok(wws_repository::installed_runtimes(root).unwrap_or_default())
}

/// Compiling and snapshotting workers allocates a lot on the threads that prepare them, and
/// glibc keeps what they freed in its per-thread arenas for good: after a first start, a
/// server with one JS worker held 83 MiB of anonymous memory, 42 MiB once trimmed (a second
/// start, from the compile cache, holds 2 MiB). Give it back before serving.
fn release_startup_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[allow(
        unsafe_code,
        reason = "malloc_trim only walks glibc's own arenas, from any thread"
    )]
    // SAFETY: no arguments to get wrong; glibc locks each arena while it trims it.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Prepares the worker of every route, on one thread per core: a warm start is mostly mapping
/// and checking cached artifacts and linking, a first start mostly snapshots and compiles, and
/// both are independent per worker. Endpoints come back in route order. The first failing
/// route (in route order, among those prepared) stops the start; once one has failed, workers
/// not yet started are skipped.
///
/// Blocks the calling task; the threads drive async preparation (JS snapshots) on `tokio`'s
/// runtime through its handle.
fn prepare_workers(
    root: &Path,
    repository: Option<&Repository>,
    routes: &Routes,
    runtimes: &Runtimes,
    engine: &Engine,
) -> anyhow::Result<Vec<Endpoint>> {
    let handle = tokio::runtime::Handle::current();
    let files: Vec<&Path> = routes.iter().map(|r| r.file.as_path()).collect();
    let results: Vec<OnceLock<anyhow::Result<Endpoint>>> =
        files.iter().map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(files.len());
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..threads {
            std::thread::Builder::new()
                .name("wws-prepare".into())
                .spawn_scoped(scope, || {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(rel) = files.get(i) else { break };
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        let result = handle
                            .block_on(prepare_worker(root, repository, rel, runtimes, engine));
                        if result.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        let _ = results[i].set(result);
                    }
                })
                .context("cannot start a thread to prepare workers")?;
        }
        Ok(())
    })?;
    let mut endpoints = Vec::with_capacity(files.len());
    for (result, rel) in results.into_iter().zip(&files) {
        match result.into_inner() {
            Some(result) => endpoints.push(result?),
            // Skipped after another worker failed; that error comes later in route order.
            None if failed.load(Ordering::Relaxed) => {}
            None => anyhow::bail!("worker {} was not prepared", rel.display()),
        }
    }
    Ok(endpoints)
}

/// Reads the worker's TOML, builds its program and links it.
async fn prepare_worker(
    root: &Path,
    repository: Option<&Repository>,
    rel: &Path,
    runtimes: &Runtimes,
    engine: &Engine,
) -> anyhow::Result<Endpoint> {
    let host_env = |name: &str| std::env::var(name).ok();
    let config = WorkerConfig::load_for(&root.join(rel), host_env)?;
    if let Some(repository) = repository {
        repository.check_folders(&rel.with_extension("toml"), &config.folders)?;
    }
    let program = runtimes.program(engine, root, rel, &config).await?;
    let worker = Worker::prepare(engine, program)?;
    Ok(Endpoint {
        worker: Arc::new(worker),
        kv_namespace: config.kv_namespace,
    })
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
