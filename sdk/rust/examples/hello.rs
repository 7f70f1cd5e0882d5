//! The smallest worker: `#[worker]` on a `Request<String>` handler.
//!
//! Build for wws with `cargo build --release --target wasm32-wasip1 --example hello`.

use wws_sdk::http::{Request, Response};
use wws_sdk::{Content, worker};

#[worker]
fn handler(req: Request<String>) -> anyhow::Result<Response<Content>> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .header("x-method", req.method().as_str())
        .body(format!("Hello {} ({} bytes)", req.uri().path(), req.body().len()).into())?)
}
