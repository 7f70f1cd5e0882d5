//! The request JSON of the wws protocol, parsed in Rust and handed to JS as ready-made values.
//!
//! QuickJS' JSON.parse plus the JS loops that turn the parsed object into a Request cost more
//! than the rest of a small request; serde does the parsing and the header list arrives in the
//! exact shape `Headers` keeps internally (`[[name, value], ...]`).

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rquickjs::{Array, Ctx, IntoJs, Result, TypedArray, Value};
use serde::Deserialize;

/// The request envelope as the host sends it; every field is optional.
#[derive(Deserialize)]
pub struct Incoming<'a> {
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    headers: Option<HashMap<Cow<'a, str>, OneOrMany<'a>>>,
    #[serde(borrow, default)]
    body: Option<Cow<'a, str>>,
    #[serde(default)]
    base64: Option<bool>,
    #[serde(borrow, default)]
    kv: Option<HashMap<Cow<'a, str>, serde_json::Value>>,
    #[serde(borrow, default)]
    params: Option<HashMap<Cow<'a, str>, serde_json::Value>>,
}

/// A header value: one string, or several for a repeated header.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

/// The arguments of `internal.handle(url, method, headers, body, kv, params)`.
pub struct Args<'js> {
    pub url: Value<'js>,
    pub method: Value<'js>,
    pub headers: Array<'js>,
    pub body: Value<'js>,
    pub kv: Array<'js>,
    pub params: Array<'js>,
}

impl<'a> Incoming<'a> {
    /// Parses the request JSON; the error says what is wrong with it.
    pub fn parse(json: &'a str) -> std::result::Result<Self, String> {
        serde_json::from_str(json)
            .map_err(|e| format!("the request on stdin is not valid wws request JSON: {e}"))
    }

    /// Builds the JS values; a base64 body is decoded here.
    pub fn into_args<'js>(self, ctx: &Ctx<'js>) -> Result<std::result::Result<Args<'js>, String>> {
        let url = self.url.as_deref().unwrap_or("/").into_js(ctx)?;
        let method = self
            .method
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or("GET")
            .into_js(ctx)?;
        let headers = Array::new(ctx.clone())?;
        let mut n = 0;
        for (name, values) in self.headers.unwrap_or_default() {
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(name.to_ascii_lowercase())
            } else {
                name
            };
            let values = match values {
                OneOrMany::One(value) => vec![value],
                OneOrMany::Many(values) => values,
            };
            for value in values {
                headers.set(n, pair(ctx, &name, value.into_js(ctx)?)?)?;
                n += 1;
            }
        }
        let body = match self.body.filter(|b| !b.is_empty()) {
            None => Value::new_null(ctx.clone()),
            Some(text) if self.base64 == Some(true) => match STANDARD.decode(text.as_bytes()) {
                Ok(bytes) => TypedArray::new(ctx.clone(), bytes)?.into_value(),
                Err(e) => return Ok(Err(format!("the request body is not valid base64: {e}"))),
            },
            Some(text) => text.into_js(ctx)?,
        };
        Ok(Ok(Args {
            url,
            method,
            headers,
            body,
            kv: pairs(ctx, self.kv)?,
            params: pairs(ctx, self.params)?,
        }))
    }
}

fn pair<'js>(ctx: &Ctx<'js>, name: &str, value: Value<'js>) -> Result<Array<'js>> {
    let pair = Array::new(ctx.clone())?;
    pair.set(0, name)?;
    pair.set(1, value)?;
    Ok(pair)
}

/// A JSON object of strings as `[[key, value], ...]`; other values become their JSON text,
/// nulls are left out.
fn pairs<'js>(
    ctx: &Ctx<'js>,
    map: Option<HashMap<Cow<'_, str>, serde_json::Value>>,
) -> Result<Array<'js>> {
    let out = Array::new(ctx.clone())?;
    let mut n = 0;
    for (key, value) in map.unwrap_or_default() {
        let value = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(text) => text,
            other => other.to_string(),
        };
        out.set(n, pair(ctx, &key, value.into_js(ctx)?)?)?;
        n += 1;
    }
    Ok(out)
}
