//! Nothing here: the binaries in `src/bin` are workers written against the original kit's API
//! (`wasm_workers_rs::...`, edition 2021) and `tests/ported.rs` runs them.
