//! Batched sends: what a serving thread's connections write is held, and sent for all of them
//! in one `io_uring_enter` once the thread has nothing else to run.
//!
//! Why: a response written with its own `writev` wakes the client, and when the client runs on
//! the same CPU the kernel switches to it as soon as that system call returns: one
//! involuntary context switch per request. In a virtual machine a switch is costly (on this
//! 2-vCPU VM, `finish_task_switch` alone was 25 % of the server's CPU under `wrk -c32`).
//! Sending a whole round of responses in one system call wakes the client once per round: it
//! then reads every response at once and sends the next round of requests. Measured with
//! `wrk -c32`, raw Rust hello: 0.94 involuntary switches per request before, 0.06 after, and
//! 105-109k requests/s before, 127-134k after (p99 555 us before, 370 us after).
//!
//! A connection's writes of up to [`MAX_HELD`] bytes are held in its [`Held`] and queued in
//! its thread's [`Outbox`]; larger ones go straight to the socket, after what is held. The
//! serving thread sends the queue before it parks (tokio's `on_thread_park`), or earlier when
//! [`MAX_QUEUED`] connections are waiting or the first has waited [`MAX_HOLD`], so a busy
//! thread never holds a response for long. Sends never block (`MSG_DONTWAIT`): what a full
//! socket did not take stays held, and the connection sends it itself, waiting for the socket
//! like any write. A connection hyper drops while bytes are held (to hyper they were flushed)
//! hands them to a task that finishes sending them (`Follow::finish_later` in `cores.rs`).
//! Where io_uring or its send operation is not available (a kernel before 5.6, a seccomp
//! filter), or after the ring failed, every write goes straight to its socket.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Waker;
use std::time::{Duration, Instant};

use io_uring::{IoUring, opcode, types};

/// Writes larger than this are not held: they go to the socket at once (after the bytes held
/// before them), so a large body is not copied.
pub(crate) const MAX_HELD: usize = 64 * 1024;

/// Connections with held bytes at which the thread sends them at once, without waiting until
/// it has nothing else to run: bounds how long a busy thread holds a response.
const MAX_QUEUED: usize = 32;

/// How long a busy thread may hold queued bytes before it sends them anyway: a thread that
/// always has another task ready (a client pipelining requests, say) would otherwise not park.
const MAX_HOLD: Duration = Duration::from_micros(500);

/// Submission queue size: sends in one system call.
const RING_SIZE: u32 = 128;

/// The bytes a connection wrote that its thread has not sent yet.
#[derive(Debug)]
pub(crate) struct Held(Mutex<HeldState>);

#[derive(Debug)]
pub(crate) struct HeldState {
    /// The socket, while the connection owns it.
    pub(crate) fd: RawFd,
    /// Bytes written and not sent yet, in order.
    pub(crate) bytes: Vec<u8>,
    /// In its thread's outbox queue.
    queued: bool,
    /// A send found the socket full: the connection sends the rest itself.
    pub(crate) blocked: bool,
    /// A send failed: returned by the connection's next read or write.
    pub(crate) error: Option<io::Error>,
    /// The task of the connection's last write, woken when it has to send itself.
    pub(crate) waker: Option<Waker>,
}

impl Held {
    pub(crate) fn new(fd: RawFd) -> Arc<Self> {
        Arc::new(Self(Mutex::new(HeldState {
            fd,
            bytes: Vec::new(),
            queued: false,
            blocked: false,
            error: None,
            waker: None,
        })))
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, HeldState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl HeldState {
    /// Whether the connection must send what it holds itself before anything else.
    pub(crate) fn must_send(&self) -> bool {
        self.blocked || self.error.is_some()
    }

    /// Nothing held, and not in any thread's queue.
    pub(crate) fn settled(&self) -> bool {
        self.bytes.is_empty() && !self.queued
    }
}

/// A serving thread's queue of connections with held bytes, and its ring.
struct Outbox {
    ring: IoUring,
    queue: Vec<Arc<Held>>,
}

thread_local! {
    static OUTBOX: RefCell<Option<Outbox>> = const { RefCell::new(None) };
}

/// Gives the calling thread an outbox; false when io_uring, or its send operation (Linux 5.6),
/// is not available here.
pub(crate) fn install() -> bool {
    match ring() {
        Ok(ring) => {
            OUTBOX.set(Some(Outbox {
                ring,
                queue: Vec::new(),
            }));
            tracing::debug!("responses are sent in batches, with io_uring");
            true
        }
        Err(err) => {
            tracing::debug!("io_uring is not available ({err}): responses are written one by one");
            false
        }
    }
}

/// A ring whose kernel supports `IORING_OP_SEND`.
fn ring() -> io::Result<IoUring> {
    let ring = IoUring::builder()
        .setup_single_issuer()
        .setup_coop_taskrun()
        .build(RING_SIZE)
        .or_else(|_| IoUring::new(RING_SIZE))?;
    let mut probe = io_uring::Probe::new();
    ring.submitter().register_probe(&mut probe)?;
    if !probe.is_supported(opcode::Send::CODE) {
        return Err(io::Error::other("the kernel has no io_uring send"));
    }
    Ok(ring)
}

/// Whether writes on this thread may be held (it has an outbox).
pub(crate) fn available() -> bool {
    OUTBOX.with_borrow(Option::is_some)
}

/// Queues a connection that now holds bytes; sends the queue when it is long. Without an
/// outbox on this thread, the connection is marked to send its bytes itself.
pub(crate) fn queue(held: &Arc<Held>, state: &mut HeldState) {
    if state.queued {
        return;
    }
    let queued = OUTBOX.with_borrow_mut(|outbox| {
        outbox.as_mut().map(|outbox| {
            outbox.queue.push(held.clone());
            outbox.queue.len()
        })
    });
    let Some(queued) = queued else {
        state.blocked = true;
        return;
    };
    state.queued = true;
    if queued == 1 {
        SINCE.set(Some(Instant::now()));
    }
    if queued >= MAX_QUEUED {
        // Sent after the caller's lock on `held` is released: see `send_if_due`.
        FULL.set(true);
    }
}

thread_local! {
    /// The queue is long: the next write or park sends it.
    static FULL: Cell<bool> = const { Cell::new(false) };
    /// When the first connection of the queue was queued.
    static SINCE: Cell<Option<Instant>> = const { Cell::new(None) };
}

/// Sends the queue when it is long or has waited [`MAX_HOLD`]; called by connections (with no
/// [`Held`] locked) when they read or write.
pub(crate) fn send_if_due() {
    let due = FULL.replace(false) || SINCE.get().is_some_and(|since| since.elapsed() >= MAX_HOLD);
    if due {
        flush();
    }
}

/// A buffer with more room than this is freed once it is empty, so that idle connections do
/// not each keep the room their largest response needed.
const KEEP_CAPACITY: usize = 16 * 1024;

/// Sends every queued connection's held bytes, in one system call per [`RING_SIZE`]
/// connections. Called by the serving thread before it parks.
pub(crate) fn flush() {
    FULL.set(false);
    SINCE.set(None);
    let queue = OUTBOX.with_borrow_mut(|outbox| match outbox {
        Some(outbox) if !outbox.queue.is_empty() => Some(std::mem::take(&mut outbox.queue)),
        _ => None,
    });
    let Some(mut queue) = queue else { return };
    // Woken once no connection is locked.
    let mut wake = Vec::new();
    for batch in queue.chunks(RING_SIZE as usize) {
        let mut states: Vec<_> = batch.iter().map(|held| held.lock()).collect();
        let sent = OUTBOX.with_borrow_mut(|slot| {
            let outbox = slot.as_mut()?;
            let sent = send(&mut outbox.ring, &mut states);
            if let Err(err) = &sent {
                // None of this batch's sends reached the kernel (see `send`): dropping the
                // ring drops them. The thread writes each response on its own from now on.
                tracing::warn!(
                    "batched sends failed ({err}): this serving thread writes each response on its own from now on"
                );
                *slot = None;
            }
            Some(sent.is_ok())
        });
        let full = states.iter().filter(|state| state.blocked).count();
        tracing::trace!(
            connections = states.len(),
            full,
            "sent what connections held in one system call"
        );
        for state in &mut states {
            state.queued = false;
            if sent != Some(true) && !state.bytes.is_empty() {
                state.blocked = true;
            }
            if state.must_send()
                && let Some(waker) = &state.waker
            {
                wake.push(waker.clone());
            }
            if state.bytes.is_empty() && state.bytes.capacity() > KEEP_CAPACITY {
                state.bytes = Vec::new();
            }
        }
    }
    wake.into_iter().for_each(Waker::wake);
    // Keep the queue's allocation for the next round.
    queue.clear();
    OUTBOX.with_borrow_mut(|outbox| {
        if let Some(outbox) = outbox
            && outbox.queue.is_empty()
        {
            outbox.queue = queue;
        }
    });
}

/// Submits one non-blocking send per state with bytes and records what each one sent. They
/// complete at once (`MSG_DONTWAIT`: a full socket answers `EAGAIN`), so all are reaped before
/// this returns. An error means the kernel saw none of the sends; the ring must then be
/// dropped. A send the kernel may still be reading (which `MSG_DONTWAIT` rules out) would fail
/// its connection, its buffer leaked rather than freed under the kernel.
fn send(ring: &mut IoUring, states: &mut [MutexGuard<'_, HeldState>]) -> io::Result<()> {
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
    // Indices into `states`, in submission order.
    let mut pushed = Vec::with_capacity(states.len());
    for (i, state) in states.iter_mut().enumerate() {
        if state.bytes.is_empty() {
            continue;
        }
        let len = u32::try_from(state.bytes.len()).unwrap_or(u32::MAX);
        let entry = opcode::Send::new(types::Fd(state.fd), state.bytes.as_ptr(), len)
            .flags(flags)
            .build()
            .user_data(i as u64);
        #[allow(
            unsafe_code,
            reason = "the buffer stays alive and unchanged until its completion is reaped below"
        )]
        // SAFETY: `state.bytes` is locked by the guard in `states`, which outlives this
        // function, and every entry the kernel takes is reaped before it returns, or its
        // buffer is leaked (below).
        let room = unsafe { ring.submission().push(&entry) };
        match room {
            Ok(()) => pushed.push(i),
            // A full queue (never, with at most RING_SIZE entries per call): it sends itself.
            Err(_) => state.blocked = true,
        }
    }
    let mut done = vec![false; states.len()];
    let mut reaped = 0;
    let mut failures = 0;
    while reaped < pushed.len() {
        if let Err(err) = ring.submit_and_wait(pushed.len() - reaped) {
            let retry = matches!(
                err.raw_os_error(),
                Some(libc::EINTR | libc::EAGAIN | libc::EBUSY)
            );
            failures += 1;
            if !retry || failures > 100 {
                reaped += reap(ring, states, &mut done);
                let unseen = ring.submission().len();
                if reaped + unseen < pushed.len() {
                    abandon(states, &pushed[..pushed.len() - unseen], &done, &err);
                }
                return Err(err);
            }
        }
        reaped += reap(ring, states, &mut done);
    }
    Ok(())
}

/// Records the completions that arrived; returns how many.
fn reap(ring: &mut IoUring, states: &mut [MutexGuard<'_, HeldState>], done: &mut [bool]) -> usize {
    let mut reaped = 0;
    for completion in ring.completion() {
        reaped += 1;
        let Some(i) = usize::try_from(completion.user_data())
            .ok()
            .filter(|&i| i < states.len())
        else {
            continue;
        };
        done[i] = true;
        record(&mut states[i], completion.result());
    }
    reaped
}

/// Fails the connections whose sends the kernel took and never completed: how much of their
/// bytes went out is unknown, so their streams cannot go on. Their buffers are leaked, since
/// the kernel may still read them.
fn abandon(
    states: &mut [MutexGuard<'_, HeldState>],
    taken: &[usize],
    done: &[bool],
    err: &io::Error,
) {
    for &i in taken.iter().filter(|&&i| !done[i]) {
        std::mem::forget(std::mem::take(&mut states[i].bytes));
        states[i].error = Some(io::Error::new(
            err.kind(),
            format!("a batched send did not complete: {err}"),
        ));
    }
}

/// Applies a send's result: the bytes it sent leave the state; a full socket or a partial
/// send leaves the rest for the connection to send; an error is kept for it to return. A
/// send the ring cannot do (`EINVAL`, `EOPNOTSUPP`) is left for the connection, whose own
/// write reports any real error.
fn record(state: &mut HeldState, result: i32) {
    match usize::try_from(result) {
        Ok(sent) => {
            state.bytes.drain(..sent.min(state.bytes.len()));
            state.blocked = !state.bytes.is_empty();
        }
        Err(_) if matches!(-result, libc::EAGAIN | libc::EINVAL | libc::EOPNOTSUPP) => {
            state.blocked = true;
        }
        Err(_) => {
            state.error = Some(io::Error::from_raw_os_error(-result));
            state.bytes.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;
    use std::os::fd::AsRawFd as _;

    use super::*;

    /// The byte at `offset` of everything [`fill_until_blocked`] writes.
    fn pattern(offset: usize) -> u8 {
        ((offset % MAX_HELD) % 251) as u8
    }

    /// Holds and sends [`MAX_HELD`] bytes at a time until a batched send finds the socket full;
    /// returns how many bytes were held in all.
    fn fill_until_blocked(held: &Arc<Held>) -> usize {
        let chunk: Vec<u8> = (0..MAX_HELD).map(pattern).collect();
        let mut written = 0;
        while !held.lock().blocked {
            assert!(written < 1 << 30, "the socket never filled");
            let mut state = held.lock();
            state.bytes.extend_from_slice(&chunk);
            queue(held, &mut state);
            drop(state);
            written += chunk.len();
            flush();
        }
        written
    }

    #[test]
    fn a_full_socket_leaves_the_rest_held_and_a_reset_one_is_an_error() {
        if !install() {
            eprintln!("skipped: io_uring is not available here");
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let held = Held::new(server.as_raw_fd());

        // The client reads nothing: the batched sends fill the socket, and what the last
        // one could not send stays held, in order, for the connection to send.
        let written = fill_until_blocked(&held);
        let left = held.lock().bytes.clone();
        assert!(!left.is_empty());
        let sent = written - left.len();
        let mut received = vec![0; sent];
        client.read_exact(&mut received).unwrap();
        assert!(received.iter().enumerate().all(|(i, &b)| b == pattern(i)));
        assert!(
            left.iter()
                .enumerate()
                .all(|(i, &b)| b == pattern(sent + i))
        );

        // The client goes away with bytes unread (a reset): a later send fails, and the
        // error is kept for the connection to return.
        drop(client);
        held.lock().blocked = false;
        let mut tries = 0;
        while held.lock().error.is_none() {
            tries += 1;
            assert!(tries < 1000, "sending to a reset socket never failed");
            let mut state = held.lock();
            state.blocked = false;
            state.bytes.extend_from_slice(b"after the reset");
            queue(&held, &mut state);
            drop(state);
            flush();
        }
        let state = held.lock();
        assert!(state.bytes.is_empty() && !state.queued);
        let err = state.error.as_ref().and_then(io::Error::raw_os_error);
        assert!(
            matches!(err, Some(libc::ECONNRESET | libc::EPIPE)),
            "{err:?}"
        );
    }

    #[test]
    fn a_send_records_what_was_sent_and_what_is_left() {
        let held = Held::new(-1);
        let mut state = held.lock();
        state.bytes.extend_from_slice(b"hello world");
        record(&mut state, 6);
        assert_eq!(state.bytes, b"world");
        assert!(
            state.blocked,
            "a partial send leaves the rest to the connection"
        );
        record(&mut state, -libc::EAGAIN);
        assert!(state.blocked);
        record(&mut state, 5);
        assert!(state.bytes.is_empty() && !state.blocked);
        // A send the ring cannot do is left to the connection, not taken for its error.
        state.bytes.extend_from_slice(b"x");
        record(&mut state, -libc::EINVAL);
        assert!(state.blocked && state.error.is_none() && state.bytes == b"x");
        state.bytes.clear();
        state.bytes.extend_from_slice(b"x");
        record(&mut state, -libc::EPIPE);
        assert!(state.bytes.is_empty());
        assert_eq!(
            state.error.as_ref().and_then(io::Error::raw_os_error),
            Some(libc::EPIPE)
        );
    }
}
