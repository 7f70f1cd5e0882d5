//! WASI preview1 for one request, with the calls every request makes answered directly.
//!
//! wasmtime-wasi implements preview1 on top of preview2 resources. Building its context seeds
//! a random generator, sets up clocks and a resource table and opens every mounted folder (a
//! path lookup per folder per request), and each call goes through a descriptor lookup and a
//! stream object. A request to a typical worker only reads stdin, writes stdout and stderr, and
//! asks for its arguments, its environment, the time and random bytes; a JavaScript snapshot
//! never touches its mounted `/src` again. Those calls are answered here, from memory.
//! wasmtime-wasi's context is built on the first call of any other kind (a file, a poll, a
//! descriptor query) and from then on serves every descriptor, over the same standard streams,
//! so the guest sees one consistent WASI whichever path a call takes.
//!
//! Instances that must use wasmtime-wasi from the start (reuse mode's framed stdin, snapshots
//! being taken) are built [`RequestWasi::with_context`]; only the stateless calls (arguments,
//! environment, clocks, randomness, exit) are then answered here.

mod calls;
mod memory;

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use wasmtime::Memory;
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

use crate::host::LogPipe;
use crate::program::Preopen;
use crate::sink::{OutputBuffer, SinkStream};

pub(crate) use calls::add_to_linker;

/// preview1 errno values used here (`wasi_snapshot_preview1.witx`).
mod errno {
    pub const SUCCESS: i32 = 0;
    pub const BADF: i32 = 8;
    pub const FAULT: i32 = 21;
    pub const INVAL: i32 = 28;
}

/// What a worker's WASI looks like, the same for all its requests: argv, environment, mounts.
/// The argument and environment strings are laid out once, the way `args_get` and
/// `environ_get` copy them into the guest.
#[derive(Debug)]
pub(crate) struct WasiSpec {
    worker: Arc<str>,
    args: Strings,
    env: Strings,
    env_pairs: Vec<(String, String)>,
    arg_list: Vec<String>,
    preopens: Vec<Preopen>,
}

/// NUL-terminated strings back to back, and where each starts.
#[derive(Debug)]
struct Strings {
    bytes: Vec<u8>,
    starts: Vec<u32>,
}

impl Strings {
    fn new<'a>(items: impl Iterator<Item = [&'a str; 3]>) -> Self {
        let mut bytes = Vec::new();
        let mut starts = Vec::new();
        for parts in items {
            starts.push(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
            for part in parts {
                bytes.extend_from_slice(part.as_bytes());
            }
            bytes.push(0);
        }
        Self { bytes, starts }
    }

    /// `*_sizes_get`: how many strings, and how many bytes they take.
    fn sizes(&self) -> (u32, u32) {
        let count = u32::try_from(self.starts.len()).unwrap_or(u32::MAX);
        (count, u32::try_from(self.bytes.len()).unwrap_or(u32::MAX))
    }

    /// `*_get`: the strings at `buf` and a pointer to each at `list`.
    fn copy_to(&self, memory: &mut [u8], list: u32, buf: u32) -> i32 {
        if memory::put(memory, buf, &self.bytes).is_none() {
            return errno::FAULT;
        }
        for (i, start) in self.starts.iter().enumerate() {
            let Some(at) = u32::try_from(i)
                .ok()
                .and_then(|i| i.checked_mul(4))
                .and_then(|offset| list.checked_add(offset))
            else {
                return errno::FAULT;
            };
            let pointer = buf.wrapping_add(*start);
            if memory::put(memory, at, &pointer.to_le_bytes()).is_none() {
                return errno::FAULT;
            }
        }
        errno::SUCCESS
    }
}

impl WasiSpec {
    /// The WASI of `worker`: `args` (argv\[0\] first), `env` in order, `preopens` in order.
    pub(crate) fn new(
        worker: Arc<str>,
        args: &[String],
        env: &[(String, String)],
        preopens: &[Preopen],
    ) -> Self {
        Self {
            worker,
            args: Strings::new(args.iter().map(|a| [a.as_str(), "", ""])),
            env: Strings::new(env.iter().map(|(k, v)| [k.as_str(), "=", v.as_str()])),
            env_pairs: env.to_vec(),
            arg_list: args.to_vec(),
            preopens: preopens.to_vec(),
        }
    }

    /// argv, argv\[0\] first.
    pub(crate) fn args(&self) -> &[String] {
        &self.arg_list
    }

    /// A wasmtime-wasi context builder with these arguments, environment and mounts. A folder
    /// that cannot be opened is an error naming it.
    pub(crate) fn builder(&self) -> anyhow::Result<WasiCtxBuilder> {
        let mut builder = WasiCtxBuilder::new();
        builder.args(&self.arg_list).envs(&self.env_pairs);
        for p in &self.preopens {
            add_preopen(&mut builder, p)?;
        }
        Ok(builder)
    }
}

/// Mounts one folder (the order of calls is the guest's descriptor order, which snapshots record).
pub(crate) fn add_preopen(builder: &mut WasiCtxBuilder, p: &Preopen) -> anyhow::Result<()> {
    let perms = if p.writable {
        FsPerms::ReadWrite
    } else {
        FsPerms::ReadOnly
    };
    builder
        .preopened_dir(&p.host, &p.guest, perms)
        .map_err(|err| {
            anyhow::anyhow!("cannot mount {} at {}: {err}", p.host.display(), p.guest)
        })?;
    Ok(())
}

/// The standard streams of one request, shared with wasmtime-wasi's context if one is built.
struct Stdio {
    stdin: MemoryInputPipe,
    stdout: OutputBuffer,
    stderr: LogPipe,
}

/// The WASI state of one store.
pub(crate) struct RequestWasi {
    spec: Arc<WasiSpec>,
    /// Set until wasmtime-wasi's context exists (and taken to build it).
    stdio: Option<Stdio>,
    full: Option<WasiP1Ctx>,
    /// The guest's exported memory, once instantiated.
    memory: Option<Memory>,
    /// Zero of the monotonic clock: the store's creation, as in wasmtime-wasi.
    started: Instant,
}

impl RequestWasi {
    /// One request's WASI: `stdin` to read, output captured in `stdout` and `stderr`.
    pub(crate) fn new(
        spec: Arc<WasiSpec>,
        stdin: Bytes,
        stdout: OutputBuffer,
        stderr: LogPipe,
    ) -> Self {
        Self {
            spec,
            stdio: Some(Stdio {
                stdin: MemoryInputPipe::new(stdin),
                stdout,
                stderr,
            }),
            full: None,
            memory: None,
            started: Instant::now(),
        }
    }

    /// WASI served by `ctx` for every descriptor (reuse mode, snapshots).
    pub(crate) fn with_context(spec: Arc<WasiSpec>, ctx: WasiP1Ctx) -> Self {
        Self {
            spec,
            stdio: None,
            full: Some(ctx),
            memory: None,
            started: Instant::now(),
        }
    }

    /// Remembers the instance's memory so calls need not look it up by name.
    pub(crate) fn set_memory(&mut self, memory: Option<Memory>) {
        self.memory = memory;
    }

    /// wasmtime-wasi's context, built over the same streams on first use. If a mounted folder
    /// can no longer be opened, the context gets no folders at all (and the log says why):
    /// leaving out only that one would renumber the others, and a snapshot's preopen table
    /// would then point one mount at another's folder.
    pub(crate) fn full(&mut self) -> &mut WasiP1Ctx {
        let stdio = self.stdio.take();
        let spec = &self.spec;
        self.full.get_or_insert_with(|| {
            let build = |with_folders: bool| {
                let mut builder = WasiCtxBuilder::new();
                builder.args(&spec.arg_list).envs(&spec.env_pairs);
                if let Some(stdio) = &stdio {
                    builder
                        .stdin(stdio.stdin.clone())
                        .stdout(SinkStream(stdio.stdout.clone()))
                        .stderr(SinkStream(stdio.stderr.clone()));
                }
                if with_folders {
                    for p in &spec.preopens {
                        add_preopen(&mut builder, p)?;
                    }
                }
                anyhow::Ok(builder)
            };
            let mut builder = match build(true) {
                Ok(builder) => builder,
                Err(err) => {
                    tracing::error!(worker = %spec.worker, "{err:#}; the worker runs without its folders");
                    // Cannot fail: nothing is opened.
                    build(false).unwrap_or_default()
                }
            };
            builder.build_p1()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_laid_out_as_wasi_libc_reads_them() {
        let env = Strings::new([["A", "=", "1"], ["BC", "=", ""]].into_iter());
        assert_eq!(env.bytes, b"A=1\0BC=\0");
        assert_eq!(env.sizes(), (2, 8));
        let mut memory = vec![0u8; 64];
        assert_eq!(env.copy_to(&mut memory, 0, 16), errno::SUCCESS);
        assert_eq!(&memory[16..24], b"A=1\0BC=\0");
        assert_eq!(memory[0..4], 16u32.to_le_bytes());
        assert_eq!(memory[4..8], 20u32.to_le_bytes());
    }
}
