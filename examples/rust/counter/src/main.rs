//! `counter.wasm` of the example app: counts visits in the `counter` key/value namespace
//! declared by `counter.toml`. Only the keys a request changes are written back, so
//! concurrent visits are all counted.

use wws_sdk::http::{Request, Response};
use wws_sdk::{Cache, Content, worker};

#[worker(cache)]
fn handler(_req: Request<String>, cache: &mut Cache) -> wws_sdk::anyhow::Result<Response<Content>> {
    let visits = cache
        .get("visits")
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0)
        + 1;
    cache.insert("visits".to_owned(), visits.to_string());
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width,initial-scale=1">
  <title>Counter · wws example app</title>
  <link rel="stylesheet" href="/index.css">
</head>
<body>
  <main>
    <h1>Visits: {visits}</h1>
    <p>Kept in the <code>counter</code> key/value namespace (<code>counter.toml</code>).
       Reload to count up.</p>
    <p><a href="/">Back home</a></p>
  </main>
</body>
</html>
"#
    );
    Ok(Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .header("x-visits", visits.to_string())
        .body(page.into())?)
}
