//! Runs one worker in a loop without HTTP, to profile the per-request path of the host alone:
//! `cargo run --release -p wws-worker --example run_loop -- WORKER.wasm [RUNS] [TASKS]`.
//! Prints the mean wall time per run; run it under `perf record` or `valgrind --tool=callgrind`.
//! `SCATTERED_WRITES=1` runs it as a JS snapshot is run (`Program::scattered_writes`);
//! `TIMEOUT_MS=0` turns the CPU-time limit off, as `wws --timeout-ms 0` does.

use std::time::Instant;

use bytes::Bytes;
use wws_worker::{Code, Engine, Entrypoint, Limits, Program, Worker};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: run_loop WORKER.wasm [RUNS] [TASKS]"))?;
    let runs: usize = args
        .next()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(100_000);
    let tasks: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(1);
    let bytes = std::fs::read(&path)?;
    let mut limits = Limits::default();
    if let Some(ms) = std::env::var("TIMEOUT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        limits.timeout = (ms > 0).then(|| std::time::Duration::from_millis(ms));
    }
    let engine = Engine::new(limits, None)?;
    let program = Program {
        name: path.clone(),
        code: Code::Bytes(bytes.into()),
        entrypoint: Entrypoint::Auto,
        args: vec![path.clone()],
        env: Vec::new(),
        preopens: Vec::new(),
        reuse: None,
        ruby_script: None,
        scattered_writes: std::env::var_os("SCATTERED_WRITES").is_some(),
        http: None,
    };
    let worker = std::sync::Arc::new(Worker::prepare(&engine, program)?);
    let input = Bytes::from_static(br#"{"url":"/","method":"GET","headers":{"host":"localhost"},"body":"","kv":{},"params":{}}"#);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(tasks.max(1))
        .enable_all()
        .build()?;
    rt.block_on(async {
        for _ in 0..1000 {
            worker
                .run(input.clone())
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let start = Instant::now();
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let worker = worker.clone();
            let input = input.clone();
            handles.push(tokio::spawn(async move {
                for _ in 0..runs / tasks {
                    let _ = worker.run(input.clone()).await;
                }
            }));
        }
        for h in handles {
            h.await?;
        }
        let elapsed = start.elapsed();
        println!(
            "{runs} runs in {elapsed:?}: {:.2} µs per run",
            elapsed.as_secs_f64() * 1e6 / runs as f64
        );
        anyhow::Ok(())
    })
}
