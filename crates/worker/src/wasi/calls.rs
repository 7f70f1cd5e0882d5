//! The preview1 calls answered without wasmtime-wasi's context, and the hand-over of the rest.

use std::time::SystemTime;

use bytes::Bytes;
use rand::Rng as _;
use wasmtime::{AsContextMut as _, Caller, Extern, Linker, Memory};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p1::wasi_snapshot_preview1::{self as p1, WasiSnapshotPreview1 as _};
use wasmtime_wasi::p2::InputStream;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

use super::memory::{Iovecs, put, range};
use super::{RequestWasi, Stdio, Strings, WasiSpec, errno};

const MODULE: &str = "wasi_snapshot_preview1";

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
                    let fuel = caller.as_context_mut().hostcall_fuel();
                    let (mut memory, wasi) = guest_memory(&mut caller, project)?;
                    // wiggle's own wrappers refill this budget (for copying iovec arrays)
                    // before every call; called directly, it stays at what the last wrapped
                    // call left, which is nothing in an instance that starts from a snapshot.
                    wasi.full().set_hostcall_fuel(fuel);
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
