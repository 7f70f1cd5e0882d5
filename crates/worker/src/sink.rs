//! Where a guest's stdout and stderr go on the host, and the one adapter that plugs any of
//! them into wasmtime-wasi: the request's captured stdout ([`OutputBuffer`]), the stderr log
//! (`host.rs`), reuse mode's response frames (`reuse.rs`).

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError, StreamResult};

/// A host-side destination of guest output. Writes are taken whole and at once: every sink is
/// in memory, so there is nothing to wait for; a sink refuses a write with an error instead.
pub(crate) trait Sink: Clone + Send + Sync + 'static {
    /// Takes all of `bytes`, or fails the write.
    fn accept(&self, bytes: &[u8]) -> StreamResult<()>;
}

/// A [`Sink`] as wasmtime-wasi's stdout or stderr.
#[derive(Clone)]
pub(crate) struct SinkStream<S>(pub S);

impl<S: Sink> IsTerminal for SinkStream<S> {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl<S: Sink> StdoutStream for SinkStream<S> {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl<S: Sink> OutputStream for SinkStream<S> {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.0.accept(&bytes)
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 << 10)
    }
}

#[wasmtime_wasi::async_trait]
impl<S: Sink> Pollable for SinkStream<S> {
    async fn ready(&mut self) {}
}

impl<S: Sink> tokio::io::AsyncWrite for SinkStream<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Poll::Ready(
            self.0
                .accept(buf)
                .map(|()| buf.len())
                .map_err(|e| std::io::Error::other(e.to_string())),
        )
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
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

    pub(crate) fn append(&self, bytes: &[u8]) -> Result<(), OutputLimit> {
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
