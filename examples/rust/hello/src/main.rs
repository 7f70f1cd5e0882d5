//! `index.wasm` of the example app: a welcome page that shows the request it received and the
//! `GREETING` variable from `index.toml`.

use wws_sdk::http::{Request, Response};
use wws_sdk::{Content, worker};

#[worker]
fn handler(req: Request<String>) -> wws_sdk::anyhow::Result<Response<Content>> {
    let greeting = std::env::var("GREETING").unwrap_or_else(|_| "Hello".to_owned());
    let agent = req
        .headers()
        .get("user-agent")
        .and_then(|value| value.to_str().ok())
        .unwrap_or("an unknown client");
    let page = format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width,initial-scale=1">
  <title>wws example app</title>
  <link rel="stylesheet" href="/index.css">
  <link rel="icon" href="/favicon.svg">
</head>
<body>
  <main>
    <h1>{greeting} from wws 👋</h1>
    <p>This page comes from <code>index.wasm</code>, a Rust worker built with <code>wws-sdk</code>.
       It was instantiated just for this request and will be thrown away after it.</p>
    <dl>
      <dt>Method</dt><dd><code>{method}</code></dd>
      <dt>URL</dt><dd><code>{uri}</code></dd>
      <dt>Client</dt><dd><code>{agent}</code></dd>
    </dl>
    <h2>More to try</h2>
    <ul>
      <li><a href="/api/1">/api/1</a>: a dynamic route (<code>api/[id].wasm</code>) answering JSON</li>
      <li><a href="/counter">/counter</a>: a counter kept in a key/value namespace</li>
      <li><a href="/about">/about</a>: a static page from <code>public/</code></li>
      <li><a href="/nowhere">/nowhere</a>: the custom <code>public/404.html</code></li>
    </ul>
  </main>
</body>
</html>
"#,
        method = escape(req.method().as_str()),
        uri = escape(&req.uri().to_string()),
        agent = escape(agent),
        greeting = escape(&greeting),
    );
    Ok(Response::builder()
        .header("content-type", "text/html; charset=utf-8")
        .body(page.into())?)
}

/// Escapes text for HTML so request data cannot inject markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
