//! Calls into a guest the way wit-bindgen's canonical ABI does: the host asks the guest's
//! `realloc` export for memory, then writes into it. The guest owns what it receives.

use wasmtime::{AsContextMut, Caller, Memory, TypedFunc};

use crate::host::CoreHost;

/// A guest's `realloc(old_ptr, old_len, align, new_len) -> ptr`.
pub(crate) type Realloc = TypedFunc<(i32, i32, i32, i32), i32>;

/// Allocates `len` bytes aligned to `align` in the guest (at least one byte: a zero-sized
/// allocation is not something every guest allocator accepts).
pub(crate) async fn alloc(
    mut store: impl AsContextMut<Data = CoreHost>,
    realloc: &Realloc,
    align: i32,
    len: usize,
) -> wasmtime::Result<i32> {
    let len = i32::try_from(len.max(1))
        .map_err(|_| wasmtime::Error::msg("an allocation of more than 2 GiB in the guest"))?;
    realloc
        .call_async(store.as_context_mut(), (0, 0, align, len))
        .await
}

/// Copies `bytes` into a fresh guest allocation aligned to `align`; returns its address.
pub(crate) async fn write_new(
    mut store: impl AsContextMut<Data = CoreHost>,
    memory: &Memory,
    realloc: &Realloc,
    align: i32,
    bytes: &[u8],
) -> wasmtime::Result<i32> {
    let ptr = alloc(store.as_context_mut(), realloc, align, bytes.len()).await?;
    memory.write(store, ptr as usize, bytes)?;
    Ok(ptr)
}

/// The calling guest's exported memory; `call` names the host call in the error.
pub(crate) fn memory(caller: &mut Caller<'_, CoreHost>, call: &str) -> wasmtime::Result<Memory> {
    caller
        .get_export("memory")
        .and_then(wasmtime::Extern::into_memory)
        .ok_or_else(|| wasmtime::Error::msg(format!("{call}: the module exports no memory")))
}
