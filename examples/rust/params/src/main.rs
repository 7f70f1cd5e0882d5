//! `api/[id].wasm` of the example app: a tiny read-only JSON API over a fixed list of users,
//! showing dynamic route parameters.

use std::collections::HashMap;

use serde_json::json;
use wws_sdk::http::{Request, Response, StatusCode};
use wws_sdk::{Content, worker};

const USERS: [(&str, &str); 3] = [("1", "Ada"), ("2", "Grace"), ("3", "Linus")];

#[worker(params)]
fn handler(
    req: Request<String>,
    params: &HashMap<String, String>,
) -> wws_sdk::anyhow::Result<Response<Content>> {
    let id = params.get("id").map(String::as_str).unwrap_or_default();
    let (status, body) = match USERS.iter().find(|(user_id, _)| *user_id == id) {
        Some((id, name)) => (
            StatusCode::OK,
            json!({"id": id, "name": name, "method": req.method().as_str()}),
        ),
        None => (
            StatusCode::NOT_FOUND,
            json!({"error": format!("no user with id {id:?}"), "ids": USERS.map(|(id, _)| id)}),
        ),
    };
    Ok(Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(body.to_string().into())?)
}
