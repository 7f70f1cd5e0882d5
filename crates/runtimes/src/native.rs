//! `.wasm` workers: the file is the module (a WASI command, reactor or preview2 component).

use std::path::Path;

use anyhow::Context as _;
use wws_worker::config::WorkerConfig;
use wws_worker::{Code, Entrypoint, Program};

/// The program for a `.wasm` worker at `file`.
pub fn program(file: &Path, rel: &Path, config: &WorkerConfig) -> anyhow::Result<Program> {
    let module = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let name = crate::display_name(rel);
    if config.reuse == Some(true) {
        tracing::warn!(
            "{name}: `reuse = true` under `[runtime]` is for JavaScript and interpreted workers; a .wasm worker gets a fresh instance per request, which costs microseconds"
        );
    }
    Ok(Program {
        args: vec![name.clone()],
        name,
        code: Code::Bytes(module.into()),
        entrypoint: Entrypoint::Auto,
        env: config.vars.clone(),
        preopens: crate::folder_preopens(config),
        reuse: None,
        ruby_script: None,
        scattered_writes: false,
        http: config.http_requests.clone().map(std::sync::Arc::new),
    })
}
