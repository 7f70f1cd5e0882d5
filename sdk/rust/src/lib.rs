//! `wws-sdk`: write [wws](https://github.com/) workers in Rust.
//!
//! A worker is a WASI command: wws writes the request as one JSON object on stdin and reads the
//! response as one JSON object from stdout. This crate hides that protocol behind an ordinary
//! function from an [`http::Request`] to an [`http::Response`], marked with [`worker`]:
//!
//! ```no_run
//! use wws_sdk::http::{Request, Response};
//! use wws_sdk::{Content, worker};
//!
//! #[worker]
//! fn handler(req: Request<String>) -> anyhow::Result<Response<Content>> {
//!     Ok(Response::builder()
//!         .header("content-type", "text/plain")
//!         .body(format!("Hello from {}", req.uri()).into())?)
//! }
//! ```
//!
//! It is source compatible with the original Wasm Workers Server kit (`wasm-workers-rs`): the
//! same `worker` attribute forms, `Cache`, `Content`, `io::{Input, Output}` and a re-exported
//! `http` (version 1 here, 0.2 there; the request/response API workers use is the same).
//!
//! Outbound HTTP: [`bindings::send_http_request`], within the worker's
//! `[features.http_requests]`.
//!
//! What is new: binary request bodies (`Request<Vec<u8>>` or `Request<bytes::Bytes>`),
//! binary responses without manual base64 ([`Content::Bytes`]), several values for one response
//! header, and a failed handler no longer wipes the worker's key/value namespace.

// Lets the `#[worker]` expansion name `::wws_sdk` even when used inside this crate.
extern crate self as wws_sdk;

pub mod bindings;
pub mod cache;
mod content;
pub mod io;
mod run;
mod scan;
mod wire;

pub use cache::{Cache, Params};
pub use content::Content;
pub use io::RequestBody;
pub use wws_sdk_macro::worker;

/// The name early versions of the original kit gave the attribute (`#[handler]`).
pub use wws_sdk_macro::worker as handler;

/// The `http` crate (version 1) whose `Request` and `Response` handlers take and return.
pub use http;

/// `anyhow`, re-exported so `anyhow::Result` handlers need no extra dependency.
pub use anyhow;

/// `bytes`, re-exported for `Request<bytes::Bytes>` handlers.
pub use bytes;

/// Items used by the code `#[worker]` generates; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::run::{run, serve};
}

/// Compiles and runs the Rust examples of `README.md` as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
