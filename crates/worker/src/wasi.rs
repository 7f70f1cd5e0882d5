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

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use rand::Rng as _;
use wasmtime::{Caller, Extern, Linker, Memory};
use wasmtime_wasi::p1::{WasiP1Ctx, wasi_snapshot_preview1 as p1};
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{InputStream, StreamError, StreamResult};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::host::LogPipe;
use crate::program::Preopen;
use crate::sink::{Sink, SinkStream};

const MODULE: &str = "wasi_snapshot_preview1";

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
        if put(memory, buf, &self.bytes).is_none() {
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
            if put(memory, at, &pointer.to_le_bytes()).is_none() {
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

/// Links preview1 into `linker`: wasmtime-wasi's implementation, with the calls this module
/// answers itself shadowing it. `project` finds the [`RequestWasi`] in the store data.
pub(crate) fn add_to_linker<T: Send + 'static>(
    linker: &mut Linker<T>,
    project: fn(&mut T) -> &mut RequestWasi,
) -> wasmtime::Result<()> {
    wasmtime_wasi::p1::add_to_linker_async(linker, move |t| project(t).full())?;
    linker.allow_shadowing(true);
    // argv and the environment, laid out once per worker.
    let lists: [(&str, &str, StringsOf); 2] = [
        ("args_sizes_get", "args_get", |spec| &spec.args),
        ("environ_sizes_get", "environ_get", |spec| &spec.env),
    ];
    for (sizes_name, get_name, strings) in lists {
        linker.func_wrap(
            MODULE,
            sizes_name,
            move |mut caller: Caller<'_, T>, count: i32, size: i32| {
                let sizes = strings(&project(caller.data_mut()).spec).sizes();
                write_sizes(&mut caller, project, sizes, count, size)
            },
        )?;
        linker.func_wrap(
            MODULE,
            get_name,
            move |mut caller: Caller<'_, T>, list: i32, buf: i32| {
                with_memory(&mut caller, project, |memory, wasi| {
                    strings(&wasi.spec).copy_to(memory, list as u32, buf as u32)
                })
            },
        )?;
    }
    linker.func_wrap(
        MODULE,
        "clock_time_get",
        move |mut caller: Caller<'_, T>, id: i32, _precision: i64, out: i32| {
            let started = project(caller.data_mut()).started;
            let now = clock(id).map(|clock| match clock {
                Clock::Realtime => SystemTime::now()
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
                Clock::Monotonic => u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX),
            });
            write_u64(&mut caller, project, now, out)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "clock_res_get",
        move |mut caller: Caller<'_, T>, id: i32, out: i32| {
            // Both clocks count nanoseconds.
            write_u64(&mut caller, project, clock(id).map(|_| 1), out)
        },
    )?;
    linker.func_wrap(
        MODULE,
        "random_get",
        move |mut caller: Caller<'_, T>, buf: i32, len: i32| {
            with_memory(&mut caller, project, |memory, _| {
                match range(memory, buf as u32, len as u32) {
                    Some(bytes) => {
                        // A cryptographically secure generator, reseeded from the OS.
                        rand::rng().fill_bytes(bytes);
                        errno::SUCCESS
                    }
                    None => errno::FAULT,
                }
            })
        },
    )?;
    linker.func_wrap(MODULE, "sched_yield", |_: Caller<'_, T>| Ok(errno::SUCCESS))?;
    linker.func_wrap(
        MODULE,
        "proc_exit",
        |_: Caller<'_, T>, status: i32| -> wasmtime::Result<()> {
            // As wasmtime-wasi: WASI exit codes are 0..126.
            match u32::try_from(status) {
                Ok(code) if code < 126 => Err(I32Exit(status).into()),
                _ => Err(wasmtime::Error::msg(
                    "exit with invalid exit status outside of [0..126)",
                )),
            }
        },
    )?;
    for call in [FdCall::Read, FdCall::Write] {
        linker.func_wrap_async(
            MODULE,
            call.name(),
            move |mut caller: Caller<'_, T>, (fd, iovs, len, out): (i32, i32, i32, i32)| {
                Box::new(async move {
                    let args = IoArgs {
                        fd,
                        iovs: iovs as u32,
                        count: len as u32,
                        out: out as u32,
                    };
                    if let Some(result) =
                        with_stdio(&mut caller, project, |memory, stdio| match call {
                            FdCall::Read => read_stdin(memory, stdio, args),
                            FdCall::Write => write_stdio(memory, stdio, args),
                        })
                    {
                        return result;
                    }
                    let (mut memory, wasi) = guest_memory(&mut caller, project)?;
                    match call {
                        FdCall::Read => {
                            p1::fd_read(wasi.full(), &mut memory, fd, iovs, len, out).await
                        }
                        FdCall::Write => {
                            p1::fd_write(wasi.full(), &mut memory, fd, iovs, len, out).await
                        }
                    }
                })
            },
        )?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// The clocks of preview1 that are provided (wasmtime-wasi has no process or thread clocks).
enum Clock {
    /// Nanoseconds since the Unix epoch.
    Realtime,
    /// Nanoseconds since the store was created.
    Monotonic,
}

/// The clock a `clockid` names, or the errno for it.
fn clock(id: i32) -> Result<Clock, i32> {
    match id {
        0 => Ok(Clock::Realtime),
        1 => Ok(Clock::Monotonic),
        2 | 3 => Err(errno::BADF),
        _ => Err(errno::INVAL),
    }
}

/// Stores `value` at `at`, or answers its errno.
fn write_u64<T>(
    caller: &mut Caller<'_, T>,
    project: fn(&mut T) -> &mut RequestWasi,
    value: Result<u64, i32>,
    at: i32,
) -> wasmtime::Result<i32> {
    let value = match value {
        Ok(value) => value,
        Err(errno) => return Ok(errno),
    };
    with_memory(caller, project, |memory, _| {
        put(memory, at as u32, &value.to_le_bytes()).map_or(errno::FAULT, |()| errno::SUCCESS)
    })
}

/// Picks argv or the environment out of a [`WasiSpec`].
type StringsOf = fn(&WasiSpec) -> &Strings;

/// The descriptor calls answered here for the standard streams.
#[derive(Clone, Copy)]
enum FdCall {
    Read,
    Write,
}

impl FdCall {
    fn name(self) -> &'static str {
        match self {
            Self::Read => "fd_read",
            Self::Write => "fd_write",
        }
    }
}

/// Runs `f` on the guest's memory and this store's WASI; a module without a memory export
/// traps like wasmtime-wasi does.
fn with_memory<T, R>(
    caller: &mut Caller<'_, T>,
    project: fn(&mut T) -> &mut RequestWasi,
    f: impl FnOnce(&mut [u8], &mut RequestWasi) -> R,
) -> wasmtime::Result<R> {
    let memory = exported_memory(caller, project)?;
    let (bytes, data) = memory.data_and_store_mut(caller);
    Ok(f(bytes, project(data)))
}

/// Runs `f` with the standard streams while they are served here; `None` when the call goes
/// to wasmtime-wasi's context (it exists, or `f` declined the descriptor).
fn with_stdio<T>(
    caller: &mut Caller<'_, T>,
    project: fn(&mut T) -> &mut RequestWasi,
    f: impl FnOnce(&mut [u8], &mut Stdio) -> Option<wasmtime::Result<i32>>,
) -> Option<wasmtime::Result<i32>> {
    project(caller.data_mut()).stdio.as_ref()?;
    with_memory(caller, project, |memory, wasi| {
        wasi.stdio.as_mut().and_then(|stdio| f(memory, stdio))
    })
    .unwrap_or_else(|err| Some(Err(err)))
}

/// The instance's memory: remembered after instantiation, looked up by name before.
fn exported_memory<T>(
    caller: &mut Caller<'_, T>,
    project: fn(&mut T) -> &mut RequestWasi,
) -> wasmtime::Result<Memory> {
    if let Some(memory) = project(caller.data_mut()).memory {
        return Ok(memory);
    }
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => wasmtime::bail!("missing required memory export"),
    }
}

/// The guest's memory as wiggle wants it, for a call handed to wasmtime-wasi.
fn guest_memory<'a, T>(
    caller: &'a mut Caller<'_, T>,
    project: fn(&mut T) -> &mut RequestWasi,
) -> wasmtime::Result<(wiggle::GuestMemory<'a>, &'a mut RequestWasi)> {
    let memory = exported_memory(caller, project)?;
    let (bytes, data) = memory.data_and_store_mut(caller);
    Ok((wiggle::GuestMemory::Unshared(bytes), project(data)))
}

fn write_sizes<T>(
    caller: &mut Caller<'_, T>,
    project: fn(&mut T) -> &mut RequestWasi,
    (count, size): (u32, u32),
    count_at: i32,
    size_at: i32,
) -> wasmtime::Result<i32> {
    with_memory(caller, project, |memory, _| {
        match put(memory, count_at as u32, &count.to_le_bytes())
            .and_then(|()| put(memory, size_at as u32, &size.to_le_bytes()))
        {
            Some(()) => errno::SUCCESS,
            None => errno::FAULT,
        }
    })
}

/// The arguments of an `fd_read` or `fd_write`: descriptor, iovec array and its length, and
/// where the byte count goes.
#[derive(Clone, Copy)]
struct IoArgs {
    fd: i32,
    iovs: u32,
    count: u32,
    out: u32,
}

impl IoArgs {
    /// Stores the byte count and answers the errno.
    fn finish(self, memory: &mut [u8], total: u32) -> i32 {
        match put(memory, self.out, &total.to_le_bytes()) {
            Some(()) => errno::SUCCESS,
            None => errno::FAULT,
        }
    }
}

/// `fd_read` on stdin: fills the buffers in order until stdin is used up (0 bytes at its end).
/// Other descriptors are declined (`None`): stdout and stderr are not readable, files live in
/// wasmtime-wasi's context.
fn read_stdin(memory: &mut [u8], stdio: &mut Stdio, call: IoArgs) -> Option<wasmtime::Result<i32>> {
    match call.fd {
        0 => {}
        1 | 2 => return Some(Ok(errno::BADF)),
        _ => return None,
    }
    let Some(buffers) = Iovecs::new(memory, call.iovs, call.count) else {
        return Some(Ok(errno::FAULT));
    };
    let mut total = 0u32;
    for i in 0..buffers.count {
        let (buf, buf_len) = buffers.get(memory, i);
        if buf_len == 0 {
            continue;
        }
        let chunk = match stdin_read(&mut stdio.stdin, buf_len as usize) {
            Some(chunk) => chunk,
            None => break,
        };
        if put(memory, buf, &chunk).is_none() {
            return Some(Ok(errno::FAULT));
        }
        total += chunk.len() as u32;
        if chunk.len() < buf_len as usize {
            break;
        }
    }
    Some(Ok(call.finish(memory, total)))
}

/// Up to `n` bytes of stdin; `None` at its end.
fn stdin_read(stdin: &mut MemoryInputPipe, n: usize) -> Option<Bytes> {
    match InputStream::read(stdin, n) {
        Ok(bytes) if !bytes.is_empty() => Some(bytes),
        _ => None,
    }
}

/// `fd_write` on stdout (captured, bounded) and stderr (to the log). stdin is not writable;
/// other descriptors are declined.
fn write_stdio(
    memory: &mut [u8],
    stdio: &mut Stdio,
    call: IoArgs,
) -> Option<wasmtime::Result<i32>> {
    let fd = call.fd;
    if fd == 0 {
        return Some(Ok(errno::BADF));
    }
    if fd != 1 && fd != 2 {
        return None;
    }
    let Some(buffers) = Iovecs::new(memory, call.iovs, call.count) else {
        return Some(Ok(errno::FAULT));
    };
    let mut total = 0u32;
    for i in 0..buffers.count {
        let (buf, buf_len) = buffers.get(memory, i);
        let Some(bytes) = range(memory, buf, buf_len) else {
            return Some(Ok(errno::FAULT));
        };
        if fd == 1 {
            if let Err(err) = stdio.stdout.append(bytes) {
                return Some(Err(err.into()));
            }
        } else {
            stdio.stderr.push(bytes);
        }
        total = total.saturating_add(buf_len);
    }
    Some(Ok(call.finish(memory, total)))
}

/// The iovec array of `count` entries at `at`, checked to lie in memory: read entry by entry
/// with [`Iovecs::get`] (the calls write into the same memory, so nothing borrows it).
#[derive(Clone, Copy)]
struct Iovecs {
    at: usize,
    count: u32,
}

impl Iovecs {
    fn new(memory: &[u8], at: u32, count: u32) -> Option<Self> {
        range_ref(memory, at, count.checked_mul(8)?)?;
        Some(Self {
            at: at as usize,
            count,
        })
    }

    /// The `(pointer, length)` of entry `i` (< `count`).
    fn get(self, memory: &[u8], i: u32) -> (u32, u32) {
        let entry = self.at + 8 * i as usize;
        let word = |at: usize| {
            u32::from_le_bytes([memory[at], memory[at + 1], memory[at + 2], memory[at + 3]])
        };
        (word(entry), word(entry + 4))
    }
}

fn range_ref(memory: &[u8], at: u32, len: u32) -> Option<&[u8]> {
    let start = at as usize;
    memory.get(start..start.checked_add(len as usize)?)
}

fn range(memory: &mut [u8], at: u32, len: u32) -> Option<&mut [u8]> {
    let start = at as usize;
    memory.get_mut(start..start.checked_add(len as usize)?)
}

fn put(memory: &mut [u8], at: u32, bytes: &[u8]) -> Option<()> {
    range(memory, at, u32::try_from(bytes.len()).ok()?)?.copy_from_slice(bytes);
    Some(())
}

/// A request's stdout: kept in memory up to a limit. Writing past the limit fails the run
/// ([`OutputLimit`]).
#[derive(Clone)]
pub(crate) struct OutputBuffer {
    buffer: Arc<Mutex<BytesMut>>,
    limit: usize,
    /// Set when a write was refused: the guest may have ignored the error and exited cleanly.
    overflowed: Arc<AtomicBool>,
}

/// Raised when a guest writes more stdout than allowed.
#[derive(Debug, thiserror::Error)]
#[error("the worker printed more than {0} bytes")]
pub(crate) struct OutputLimit(pub usize);

impl OutputBuffer {
    /// An empty buffer that takes at most `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            buffer: Arc::default(),
            limit,
            overflowed: Arc::default(),
        }
    }

    fn append(&self, bytes: &[u8]) -> Result<(), OutputLimit> {
        let mut buffer = self.buffer.lock().unwrap_or_else(PoisonError::into_inner);
        if buffer.len().saturating_add(bytes.len()) > self.limit {
            self.overflowed.store(true, Ordering::Relaxed);
            return Err(OutputLimit(self.limit));
        }
        buffer.extend_from_slice(bytes);
        Ok(())
    }

    /// Everything written, or the limit if a write went past it.
    pub(crate) fn take(&self) -> Result<Bytes, OutputLimit> {
        if self.overflowed.load(Ordering::Relaxed) {
            return Err(OutputLimit(self.limit));
        }
        Ok(
            std::mem::take(&mut *self.buffer.lock().unwrap_or_else(PoisonError::into_inner))
                .freeze(),
        )
    }
}

impl Sink for OutputBuffer {
    fn accept(&self, bytes: &[u8]) -> StreamResult<()> {
        self.append(bytes)
            .map_err(|err| StreamError::LastOperationFailed(err.into()))
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

    #[test]
    fn pointers_outside_memory_are_faults_not_panics() {
        let args = Strings::new([["arg0", "", ""]].into_iter());
        let mut memory = vec![0u8; 16];
        assert_eq!(args.copy_to(&mut memory, 0, 14), errno::FAULT);
        assert_eq!(args.copy_to(&mut memory, 14, 0), errno::FAULT);
        assert_eq!(args.copy_to(&mut memory, u32::MAX, 0), errno::FAULT);
        assert!(Iovecs::new(&memory, 8, 2).is_none());
        assert!(Iovecs::new(&memory, 0, u32::MAX).is_none());
        memory[8] = 7;
        let two = Iovecs::new(&memory, 0, 2).map(|v| (v.count, v.get(&memory, 1)));
        assert_eq!(two, Some((2, (7, 0))));
        assert!(put(&mut memory, u32::MAX - 1, &[1, 2, 3]).is_none());
    }

    #[test]
    fn output_past_the_limit_fails_the_run_even_if_ignored() {
        let out = OutputBuffer::new(4);
        assert!(out.append(b"abc").is_ok());
        assert!(out.append(b"de").is_err());
        assert!(out.take().is_err());
        let out = OutputBuffer::new(4);
        assert!(out.append(b"abcd").is_ok());
        assert_eq!(out.take().unwrap_or_default(), "abcd");
    }
}
