//! Answering before the run ends: `wws_io.respond(ptr, len) -> i32` hands the host a complete
//! output JSON while the guest keeps running (JavaScript's `waitUntil` work), so the client
//! does not wait for it. The host answers 1 when it took the output; the guest then writes
//! only a trailer on stdout (its final `kv`). 0 means the caller waits for the end (runs that
//! cannot answer early, a second call, an output past the limit): the guest then writes its
//! output at the end, as usual.

use bytes::Bytes;
use tokio::sync::oneshot;
use wasmtime::{Caller, Linker};

use crate::host::CoreHost;

/// Where an early answer goes, and the largest one taken.
pub(crate) struct EarlyAnswer {
    pub to: oneshot::Sender<Bytes>,
    pub limit: usize,
}

/// Defines `wws_io.respond`.
pub(crate) fn add_to_linker(linker: &mut Linker<CoreHost>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "wws_io",
        "respond",
        |mut caller: Caller<'_, CoreHost>, ptr: u32, len: u32| -> wasmtime::Result<i32> {
            let Some(early) = caller.data_mut().early.take() else {
                return Ok(0);
            };
            if len as usize > early.limit {
                return Ok(0);
            }
            let memory = crate::canonical::memory(&mut caller, "wws_io.respond")?;
            let mut output = vec![0; len as usize];
            memory
                .read(&caller, ptr as usize, &mut output)
                .map_err(|_| {
                    wasmtime::Error::msg("wws_io.respond: the output is outside memory")
                })?;
            // The receiver is gone only when the request was abandoned: nobody to answer.
            Ok(i32::from(early.to.send(Bytes::from(output)).is_ok()))
        },
    )?;
    Ok(())
}
