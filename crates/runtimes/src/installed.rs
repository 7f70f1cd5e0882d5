//! Workers of installed language runtimes (Python, Ruby, …), as the original ran them
//! (spec §3.6): the runtime's wrapper with `{source}` replaced by the worker's source is written
//! to `.wws/workers/<ext>/<hash>/index.<ext>` with the polyfill beside it, that folder is
//! mounted read-only at `/src`, argv is the runtime's `args`, and the environment is the
//! runtime's `envs` (the original ignored them) followed by the worker's own vars.
//!
//! Ruby workers (`entrypoint = "ruby-wasm-reactor"`) that get a fresh instance per request
//! (`[runtime] reuse = false`) run from a pre-initialised snapshot of the interpreter taken with
//! the worker's argv, env and mounts (`wws_worker::ruby_snapshot`): about 8 ms per request
//! instead of 45. In reuse mode (the default) an instance boots once per `max_requests`, so a
//! snapshot would save little and cost a 30 s compile of a 32 MB module on the first start
//! of every distinct worker configuration; it is not taken. If a snapshot cannot be taken, the
//! plain interpreter runs and boots per instance.
//!
//! The generated folder is named after the SHA-256 of its contents and written to a temporary
//! folder first, then renamed: identical workers share it, and a crash never leaves a half
//! written one that a later start would trust.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wws_repository::InstalledRuntime;
use wws_worker::config::WorkerConfig;
use wws_worker::{Code, Engine, Entrypoint, MAX_REQUESTS_ENV, Preopen, Program, REUSE_ENV};

/// An installed runtime with its interpreter compiled once for all its workers.
pub(crate) struct Installed {
    pub runtime: InstalledRuntime,
    entrypoint: Entrypoint,
    module: std::sync::OnceLock<wws_worker::wasmtime::Module>,
    /// Held while `module` is compiled, so it is compiled once.
    compiling: std::sync::Mutex<()>,
    sha256: std::sync::OnceLock<String>,
}

impl Installed {
    pub fn new(runtime: InstalledRuntime) -> anyhow::Result<Self> {
        let meta = &runtime.runtime;
        let entrypoint = Entrypoint::from_metadata(meta.entrypoint.as_deref())
            .with_context(|| format!("runtime {} {} in .wws.toml", meta.name, meta.version))?;
        Ok(Self {
            runtime,
            entrypoint,
            module: std::sync::OnceLock::new(),
            compiling: std::sync::Mutex::new(()),
            sha256: std::sync::OnceLock::new(),
        })
    }

    /// Extensions this runtime claims.
    pub fn extensions(&self) -> &[String] {
        &self.runtime.runtime.extensions
    }

    fn interpreter(&self) -> anyhow::Result<Vec<u8>> {
        let meta = &self.runtime.runtime;
        let path = self.runtime.file(&meta.binary);
        std::fs::read(&path).with_context(|| {
            format!(
                "cannot read the {} {} interpreter at {}; reinstall it with `wws runtimes install`",
                meta.name,
                meta.version,
                path.display()
            )
        })
    }

    /// SHA-256 of the interpreter, read once per process (it names its snapshots).
    fn interpreter_sha256(&self) -> anyhow::Result<&str> {
        if let Some(h) = self.sha256.get() {
            return Ok(h);
        }
        let h = hex::encode(Sha256::digest(self.interpreter()?));
        Ok(self.sha256.get_or_init(|| h))
    }

    /// The Ruby interpreter pre-initialised for these argv, env and mounts.
    fn ruby_snapshot(
        &self,
        engine: &Engine,
        args: &[String],
        env: &[(String, String)],
        preopens: &[Preopen],
    ) -> anyhow::Result<Code> {
        let sha = self.interpreter_sha256()?;
        wws_worker::ruby_snapshot::snapshot(engine, sha, || self.interpreter(), args, env, preopens)
    }

    fn module(&self, engine: &Engine) -> anyhow::Result<wws_worker::wasmtime::Module> {
        if let Some(m) = self.module.get() {
            return Ok(m.clone());
        }
        // Workers are prepared on several threads: one compiles, the others wait for it.
        let _first = self
            .compiling
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(m) = self.module.get() {
            return Ok(m.clone());
        }
        let meta = &self.runtime.runtime;
        let bytes = self.interpreter()?;
        let module = engine.module(&bytes).with_context(|| {
            format!(
                "cannot compile the {} {} interpreter",
                meta.name, meta.version
            )
        })?;
        Ok(self.module.get_or_init(|| module).clone())
    }

    /// Requests per instance when this worker runs in reuse mode: the runtime declares `reuse`
    /// in its index entry (`max_requests`, default 1000) and the worker's TOML does not say
    /// `[runtime] reuse = false`.
    fn reuse(&self, config: &WorkerConfig) -> Option<u64> {
        let Some(reuse) = self.runtime.runtime.reuse.as_ref() else {
            if config.reuse == Some(true) {
                tracing::warn!(
                    "`reuse = true` under `[runtime]` is ignored: the runtime {} {} does not declare `reuse` in its repository's index, so its wrapper serves one request per instance",
                    self.runtime.runtime.name,
                    self.runtime.runtime.version
                );
            }
            return None;
        };
        if config.reuse == Some(false) {
            return None;
        }
        let max = reuse
            .get("max_requests")
            .and_then(|v| v.as_integer())
            .and_then(|n| u64::try_from(n).ok())
            .filter(|n| *n > 0)
            .unwrap_or(wws_worker::DEFAULT_MAX_REQUESTS);
        Some(max)
    }

    /// The program for the worker at `root/rel`.
    pub fn program(
        &self,
        engine: &Engine,
        root: &Path,
        rel: &Path,
        config: &WorkerConfig,
    ) -> anyhow::Result<Program> {
        let meta = &self.runtime.runtime;
        let file = root.join(rel);
        let source = std::fs::read_to_string(&file).with_context(|| {
            format!(
                "cannot read {} (workers must be UTF-8 text)",
                file.display()
            )
        })?;
        let ext = meta.extensions.first().map(String::as_str).unwrap_or("src");
        let index = format!("index.{ext}");
        let mut files: Vec<(String, Vec<u8>)> = Vec::with_capacity(2);
        let generated = match &meta.wrapper {
            Some(wrapper) => {
                let path = self.runtime.file(wrapper);
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read the wrapper {}", path.display()))?;
                text.replace("{source}", &source)
            }
            None => source,
        };
        files.push((index.clone(), generated.into_bytes()));
        if let Some(polyfill) = &meta.polyfill {
            let path = self.runtime.file(polyfill);
            let bytes = std::fs::read(&path)
                .with_context(|| format!("cannot read the polyfill {}", path.display()))?;
            files.push((polyfill.filename.clone(), bytes));
        }
        let src = crate::generated::write(root, ext, &files)?;

        let mut env: Vec<(String, String)> = meta
            .envs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        env.extend(config.vars.iter().cloned());
        // Reuse mode is the host's decision, never a worker var: the wrapper and the host must
        // agree on whether stdin carries one request or a stream of frames.
        env.retain(|(k, _)| k != REUSE_ENV && k != MAX_REQUESTS_ENV);
        let reuse = self.reuse(config);
        if let Some(max_requests) = reuse {
            env.push((REUSE_ENV.to_string(), "1".to_string()));
            env.push((MAX_REQUESTS_ENV.to_string(), max_requests.to_string()));
        }
        let mut preopens = vec![Preopen {
            host: src,
            guest: "/src".into(),
            writable: false,
        }];
        preopens.extend(crate::folder_preopens(config));
        let name = crate::display_name(rel);
        let snapshot = match self.entrypoint {
            Entrypoint::RubyReactor if reuse.is_none() => {
                match self.ruby_snapshot(engine, &meta.args, &env, &preopens) {
                    Ok(code) => Some(code),
                    Err(err) => {
                        tracing::warn!(
                            worker = %name,
                            "cannot pre-initialise {} {}, each instance boots it instead: {err:#}",
                            meta.name,
                            meta.version
                        );
                        None
                    }
                }
            }
            _ => None,
        };
        let code = match snapshot {
            Some(code) => code,
            None => Code::Module(self.module(engine)?),
        };
        Ok(Program {
            name,
            code,
            entrypoint: self.entrypoint,
            args: meta.args.clone(),
            env,
            preopens,
            reuse,
            ruby_script: Some(format!("load \"/src/{index}\"")),
            scattered_writes: false,
            // The interpreters as shipped import no `wws_http`: their polyfills reach it with
            // call frames over the reuse channel (`wws_worker::reuse`).
            http: config.http_requests.clone().map(std::sync::Arc::new),
        })
    }
}

/// Shared handle so `Runtimes` can hand out programs from several threads later.
pub(crate) type SharedInstalled = Arc<Installed>;
