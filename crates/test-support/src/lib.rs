//! Helpers shared by the end-to-end tests: every test starts the real `wws` binary on port 0,
//! reads the bound address from its startup line and talks HTTP to it over 127.0.0.1.
//! Nothing here sleeps to synchronise; it waits for the line that says the server is ready.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers fail the test loudly on purpose"
)]
#![allow(missing_docs, reason = "test-only crate")]

pub mod fixtures;
pub mod http1;
pub mod repo_server;
pub mod wws;

pub use wws::{Wws, WwsBuilder, assert_start_fails, wws_command};

/// Root of the source tree (the folder holding the workspace `Cargo.toml`).
pub fn workspace_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}
