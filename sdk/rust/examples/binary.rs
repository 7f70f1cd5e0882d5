//! A `Request<Vec<u8>>` handler: echoes the exact body bytes back, reversed.

use wws_sdk::http::{Request, Response};
use wws_sdk::worker;

#[worker]
fn handler(req: Request<Vec<u8>>) -> Result<Response<Vec<u8>>, wws_sdk::http::Error> {
    let mut body = req.into_body();
    body.reverse();
    Response::builder()
        .header("content-type", "application/octet-stream")
        .body(body)
}
