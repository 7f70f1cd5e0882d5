//! The later kit API: `#[worker(cache, params)]` (attribute order reversed on purpose),
//! `Content`, `io::{Input, Output}` in scope.

use std::collections::HashMap;

use anyhow::Result;
#[allow(unused_imports)] // imported by ported workers; must keep resolving
use wasm_workers_rs::io::{Input, Output};
use wasm_workers_rs::{
    http::{self, Request, Response},
    worker, Cache, Content,
};

#[worker(cache, params)]
fn reply(
    _req: Request<String>,
    params: &HashMap<String, String>,
    cache: &mut Cache,
) -> Result<Response<Content>> {
    let id = params.get("id").cloned().unwrap_or_default();
    cache.insert("last".to_string(), id.clone());
    let body: Content = vec![b'i', b'd', b'=']
        .into_iter()
        .chain(id.into_bytes())
        .collect::<Vec<u8>>()
        .into();
    Ok(http::Response::builder().status(201).body(body)?)
}
