//! The earliest kit API: `#[handler]`, `cache::Cache`, a `Response<String>` body.

use anyhow::Result;
use wasm_workers_rs::{
    cache::Cache,
    handler,
    http::{self, HeaderValue, Request, Response},
};

#[handler(cache)]
fn handler(req: Request<String>, cache: &mut Cache) -> Result<Response<String>> {
    let seen = cache
        .get("seen")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(0);
    cache.insert("seen".to_string(), (seen + 1).to_string());
    let fallback = HeaderValue::from_static("none");
    let agent = req
        .headers()
        .get("user-agent")
        .unwrap_or(&fallback)
        .to_str()?;
    Ok(http::Response::builder()
        .status(200)
        .header("x-generated-by", "wasm-workers-server")
        .body(format!(
            "{} {} agent={agent} seen={seen}",
            req.method(),
            req.uri()
        ))?)
}
