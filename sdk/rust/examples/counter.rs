//! `#[worker(params, cache)]`: counts visits per route parameter in the key/value namespace.

use std::collections::HashMap;

use wws_sdk::http::{Request, Response};
use wws_sdk::{Cache, Content, worker};

#[worker(cache, params)]
fn handler(
    _req: Request<String>,
    params: &HashMap<String, String>,
    cache: &mut Cache,
) -> anyhow::Result<Response<Content>> {
    let key = params.get("id").map(String::as_str).unwrap_or("counter");
    let count = cache
        .get(key)
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    cache.insert(key.to_owned(), count.to_string());
    if count > 3 {
        anyhow::bail!("{key} was visited too often");
    }
    Ok(Response::builder()
        .header("set-cookie", "a=1")
        .header("set-cookie", "b=2")
        .body(count.to_string().into())?)
}
