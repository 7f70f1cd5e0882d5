//! `.js` workers on the JavaScript engine embedded in `wws` (`engines/js`, QuickJS compiled to
//! WebAssembly): nothing to install.
//!
//! At startup each worker's source is copied to `.wws/workers/js/<hash>/index.js` and the
//! engine is pre-initialised with it (Wizer): polyfills loaded, the worker's vars defined, its
//! script parsed, compiled and evaluated, its handler registered. The snapshot is cached by
//! the hash of the engine, the source, the vars and the mounts, so the next start reuses it,
//! and each request only instantiates the snapshot and runs the handler. A syntax error or a
//! top-level exception stops the start with the file, line and message.
//!
//! With `[runtime] reuse = true` in its TOML, a worker instead runs in reuse mode
//! (`wws_worker::reuse`): a few live instances, each started from the snapshot, serve many
//! requests, so module state (a cache, a connection setup) survives between them, as on
//! platforms that keep isolates warm.

use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

use anyhow::Context as _;
use sha2::{Digest, Sha256};
use wws_worker::config::WorkerConfig;
use wws_worker::wizer::{Preinit, PreinitError};
use wws_worker::{Code, DEFAULT_MAX_REQUESTS, Engine, Entrypoint, Preopen, Program, REUSE_ENV};

/// The engine, built by `scripts/build-js-engine.sh` and checked by CI against its source.
pub(crate) static ENGINE_WASM: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../engines/js/dist/wws-js-engine.wasm"
));

/// The JS runtime of one process: the engine instrumented for snapshots, made on first use.
#[derive(Default)]
pub(crate) struct JavaScript {
    preinit: OnceLock<Preinit>,
    /// Held while `preinit` is made, so it is made once.
    init: Mutex<()>,
    engine_hash: OnceLock<String>,
}

impl JavaScript {
    fn preinit(&self, engine: &Engine) -> anyhow::Result<&Preinit> {
        if let Some(p) = self.preinit.get() {
            return Ok(p);
        }
        // Workers are prepared on several threads: the first one instruments and compiles the
        // engine, the others wait for it rather than doing the same work.
        let _first = self.init.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = self.preinit.get() {
            return Ok(p);
        }
        let started = std::time::Instant::now();
        let p =
            Preinit::new(engine, ENGINE_WASM).context("cannot prepare the JavaScript engine")?;
        tracing::info!(
            "prepared the JavaScript engine for snapshots in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        Ok(self.preinit.get_or_init(|| p))
    }

    fn engine_hash(&self) -> &str {
        self.engine_hash
            .get_or_init(|| hex::encode(Sha256::digest(ENGINE_WASM)))
    }

    /// The program for the `.js` worker at `root/rel`: its pre-initialised snapshot.
    pub async fn program(
        &self,
        engine: &Engine,
        root: &Path,
        rel: &Path,
        config: &WorkerConfig,
    ) -> anyhow::Result<Program> {
        let file = root.join(rel);
        let name = crate::display_name(rel);
        let source =
            std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
        if let Err(e) = std::str::from_utf8(&source) {
            anyhow::bail!(
                "{} is not UTF-8 text (invalid byte at offset {}); save it as UTF-8",
                file.display(),
                e.valid_up_to()
            );
        }
        let src = crate::generated::write(root, "js", &[("index.js".to_string(), source)])?;
        let mut env = config.vars.clone();
        // The engine serves frames with it set: only the host may decide that.
        if env.iter().any(|(k, _)| k == REUSE_ENV) {
            tracing::warn!(
                "{name}: the var {REUSE_ENV} is ignored; to serve many requests per instance set `reuse = true` under `[runtime]` in its TOML"
            );
            env.retain(|(k, _)| k != REUSE_ENV);
        }
        env.push(("WWS_WORKER_FILE".to_string(), name.clone()));
        // Opt-in: the original gave every request a fresh instance, and so does wws by default.
        let reuse = (config.reuse == Some(true)).then_some(DEFAULT_MAX_REQUESTS);
        if reuse.is_some() {
            env.push((REUSE_ENV.to_string(), "1".to_string()));
        }
        let mut preopens = vec![Preopen {
            host: src.clone(),
            guest: "/src".into(),
            writable: false,
        }];
        preopens.extend(crate::folder_preopens(config));
        let args = vec!["index.js".to_string()];

        let key = self.snapshot_key(&src, &env, &preopens);
        let cache = engine.cache();
        let code = match cache.and_then(|c| c.module_by_key(engine.wasmtime(), &key)) {
            Some(module) => Code::Module(module),
            None => {
                let started = std::time::Instant::now();
                let snapshot = self
                    .preinit(engine)?
                    .snapshot(&name, &args, &env, &preopens)
                    .await
                    .map_err(|err| match err {
                        PreinitError::Init { .. } => anyhow::anyhow!("cannot load {name}: {err}"),
                        PreinitError::Host(e) => e.context(format!("cannot pre-initialise {name}")),
                    })?;
                let snapshotted = started.elapsed();
                let code = match cache {
                    Some(c) => Code::Module(c.store_module_by_key(engine, &key, &snapshot)?),
                    None => Code::Bytes(snapshot.into()),
                };
                tracing::info!(
                    "pre-initialised {name} in {:.2} s (snapshot {:.2} s, compile {:.2} s)",
                    started.elapsed().as_secs_f64(),
                    snapshotted.as_secs_f64(),
                    (started.elapsed() - snapshotted).as_secs_f64()
                );
                code
            }
        };
        Ok(Program {
            name,
            code,
            entrypoint: Entrypoint::Command,
            args,
            env,
            preopens,
            reuse,
            ruby_script: None,
            scattered_writes: true,
            http: config.http_requests.clone().map(std::sync::Arc::new),
        })
    }

    /// Everything the snapshot depends on: engine, source folder (named by its content hash),
    /// vars, and the guest mount points in order.
    fn snapshot_key(&self, src: &Path, env: &[(String, String)], preopens: &[Preopen]) -> String {
        let mut h = Sha256::new();
        h.update(self.engine_hash());
        h.update(
            src.file_name()
                .map(|n| n.as_encoded_bytes())
                .unwrap_or_default(),
        );
        for (k, v) in env {
            h.update((k.len() as u64).to_le_bytes());
            h.update(k);
            h.update((v.len() as u64).to_le_bytes());
            h.update(v);
        }
        for p in preopens {
            h.update(p.guest.as_bytes());
            h.update([0, u8::from(p.writable)]);
        }
        format!("js-{}", hex::encode(&h.finalize()[..16]))
    }
}
