//! The wws JSON protocol: [`Input`] arrives on stdin, [`Output`] leaves on stdout.
//!
//! Input: `{"url", "method", "headers": {name: value}, "body", "base64", "kv", "params"}`;
//! `base64: true` means `body` is the standard base64 of a body that is not UTF-8.
//! Output: `{"data", "base64", "status", "headers": {name: value | [values]}, "kv"}`; `kv` is
//! omitted when the worker leaves its namespace untouched.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderName, HeaderValue, Method, Request, Response};
use serde::{Deserialize, Serialize};

use crate::{Cache, Content, Params};

/// One header in the protocol: a single value, or several values of the same name.
///
/// wws joins repeated request headers with `", "`, so requests carry single values; responses
/// use the list form for headers such as several `Set-Cookie`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum HeaderValues {
    /// The common case: one value.
    One(String),
    /// Several values of one header name, in order.
    Many(Vec<String>),
}

impl HeaderValues {
    /// The values in order, whatever the form.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let (one, many) = match self {
            HeaderValues::One(value) => (Some(value.as_str()), &[][..]),
            HeaderValues::Many(values) => (None, values.as_slice()),
        };
        one.into_iter().chain(many.iter().map(String::as_str))
    }
}

// Hand-written instead of `#[serde(untagged)]`, which buffers every value before trying each
// form: this runs for every header of every request.
impl<'de> Deserialize<'de> for HeaderValues {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = HeaderValues;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a header value string or a list of strings")
            }
            fn visit_str<E: serde::de::Error>(self, value: &str) -> Result<HeaderValues, E> {
                Ok(HeaderValues::One(value.to_owned()))
            }
            fn visit_string<E: serde::de::Error>(self, value: String) -> Result<HeaderValues, E> {
                Ok(HeaderValues::One(value))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<HeaderValues, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element()? {
                    values.push(value);
                }
                Ok(HeaderValues::Many(values))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// The request as wws sends it on stdin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    /// Full request URL, `scheme://host/path?query`.
    pub url: String,
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Request headers with lowercase names.
    #[serde(default)]
    pub headers: HashMap<String, HeaderValues>,
    /// The body: text, or base64 when [`Input::base64`] is set.
    #[serde(default)]
    pub body: String,
    /// True when the body was not UTF-8 and `body` holds its standard base64.
    #[serde(default)]
    pub base64: bool,
    /// Snapshot of the worker's key/value namespace (`{}` when it has none).
    #[serde(default)]
    pub kv: Cache,
    /// Dynamic route parameters.
    #[serde(default)]
    pub params: Params,
}

impl Input {
    /// Reads and parses the whole input (the original kit took `Stdin`; any reader works).
    pub fn new(reader: impl Read) -> Result<Self> {
        let mut reader = reader;
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .context("cannot read the request from stdin")?;
        Self::from_slice(&bytes)
    }

    /// Parses the input JSON.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes).context("the request JSON on stdin is not valid wws input")
    }

    /// The request with a `String` body, leaving `self` intact (as the original kit did).
    ///
    /// A binary body is converted lossily; use [`Input::take_request`] with `Vec<u8>` to get its
    /// exact bytes.
    pub fn to_http_request(&self) -> Request<String> {
        let mut copy = Input {
            url: self.url.clone(),
            method: self.method.clone(),
            headers: self.headers.clone(),
            body: self.body.clone(),
            base64: self.base64,
            ..Input::default()
        };
        copy.take_request().unwrap_or_else(|err| {
            eprintln!("wws-sdk: {err:#}");
            Request::new(String::new())
        })
    }

    /// Moves URL, method, headers and body out into an `http::Request` with body type `B`.
    ///
    /// Fails when the URL or method is not valid HTTP or the base64 body does not decode.
    /// Headers that are not valid HTTP are skipped with a line on stderr.
    pub fn take_request<B: RequestBody>(&mut self) -> Result<Request<B>> {
        let body = std::mem::take(&mut self.body);
        let body = if self.base64 {
            B::from_bytes(
                STANDARD
                    .decode(body)
                    .context("the request body is not valid base64")?,
            )
        } else {
            B::from_text(body)
        };
        let mut request = Request::new(body);
        *request.method_mut() = Method::from_bytes(self.method.as_bytes())
            .with_context(|| format!("invalid request method {:?}", self.method))?;
        *request.uri_mut() = self
            .url
            .parse()
            .with_context(|| format!("invalid request URL {:?}", self.url))?;
        let headers = request.headers_mut();
        for (name, values) in std::mem::take(&mut self.headers) {
            let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                eprintln!("wws-sdk: skipping request header with invalid name {name:?}");
                continue;
            };
            for value in values.iter() {
                match HeaderValue::from_str(value) {
                    Ok(value) => {
                        headers.append(header.clone(), value);
                    }
                    Err(_) => eprintln!("wws-sdk: skipping invalid value of request header {name}"),
                }
            }
        }
        Ok(request)
    }

    /// A copy of the key/value snapshot (original kit API).
    pub fn cache_data(&self) -> Cache {
        self.kv.clone()
    }

    /// The route parameters (original kit API).
    pub fn params(&self) -> &Params {
        &self.params
    }
}

/// A request body type a handler may ask for: `String`, `Vec<u8>` or `bytes::Bytes`.
///
/// `String` keeps the original kit's signature; a body that is not UTF-8 reaches it with
/// invalid sequences replaced by U+FFFD. The byte types receive the exact bytes.
pub trait RequestBody: Sized {
    /// Body that arrived as JSON text.
    fn from_text(text: String) -> Self;
    /// Body that arrived base64-encoded (not UTF-8).
    fn from_bytes(bytes: Vec<u8>) -> Self;
}

impl RequestBody for String {
    fn from_text(text: String) -> Self {
        text
    }
    fn from_bytes(bytes: Vec<u8>) -> Self {
        match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        }
    }
}

impl RequestBody for Vec<u8> {
    fn from_text(text: String) -> Self {
        text.into_bytes()
    }
    fn from_bytes(bytes: Vec<u8>) -> Self {
        bytes
    }
}

impl RequestBody for bytes::Bytes {
    fn from_text(text: String) -> Self {
        text.into()
    }
    fn from_bytes(bytes: Vec<u8>) -> Self {
        bytes.into()
    }
}

/// The response as wws reads it from stdout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// Body text, or standard base64 when [`Output::base64`] is set.
    pub data: String,
    /// Response headers; a list value sends the header once per element.
    pub headers: BTreeMap<String, HeaderValues>,
    /// HTTP status code.
    pub status: u16,
    /// The namespace after the request; `None` leaves it untouched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kv: Option<Cache>,
    /// True when `data` is base64.
    #[serde(default)]
    pub base64: bool,
}

/// Body of the 500 answer written when the input or the handler fails (the original's text).
pub const HANDLER_ERROR: &str = "There was an error running the handler";

impl Output {
    /// Builds an output from parts (original kit API). `kv: None` now means "namespace
    /// untouched"; the original wrote an empty namespace instead.
    pub fn new(
        data: &str,
        status: u16,
        headers: Option<HashMap<String, String>>,
        kv: Option<Cache>,
        base64: bool,
    ) -> Self {
        let headers = headers
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| (name, HeaderValues::One(value)))
            .collect();
        Self {
            data: data.to_owned(),
            headers,
            status,
            kv,
            base64,
        }
    }

    /// The 500 answer for a failed input parse or handler: it carries no `kv`, so wws leaves
    /// the namespace as it was.
    pub fn handler_error() -> Self {
        Self::new(HANDLER_ERROR, 500, None, None, false)
    }

    /// Converts a handler's response; `cache` becomes `kv` (`None` leaves the namespace alone).
    /// A plain `Cache` is accepted too, as the original kit's signature took one.
    ///
    /// Header values that are not valid UTF-8 are converted lossily.
    pub fn from_response<C: Into<Content>>(
        response: Response<C>,
        cache: impl Into<Option<Cache>>,
    ) -> Self {
        let cache = cache.into();
        let (parts, body) = response.into_parts();
        let mut headers = BTreeMap::new();
        for name in parts.headers.keys() {
            let mut values: Vec<String> = parts
                .headers
                .get_all(name)
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                .collect();
            let values = if values.len() == 1 {
                HeaderValues::One(values.remove(0))
            } else {
                HeaderValues::Many(values)
            };
            headers.insert(name.as_str().to_owned(), values);
        }
        let (data, base64) = body.into().into_data();
        Self {
            data,
            headers,
            status: parts.status.as_u16(),
            kv: cache,
            base64,
        }
    }

    /// The output JSON (original kit API).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).context("cannot serialize the worker output")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(json: &str) -> Input {
        Input::from_slice(json.as_bytes()).expect("test input is valid")
    }

    #[test]
    fn parses_the_hosts_input_and_builds_the_request() {
        let mut input = input(
            r#"{"url":"http://127.0.0.1:8080/a?q=1","method":"POST","headers":{"x-a":"1, 2","host":"h"},"body":"hi","kv":{"k":"v"},"params":{"id":"7"}}"#,
        );
        let req: Request<String> = input.take_request().expect("valid request");
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri().path(), "/a");
        assert_eq!(req.uri().query(), Some("q=1"));
        assert_eq!(req.headers()["x-a"], "1, 2");
        assert_eq!(req.body(), "hi");
        assert_eq!(input.params["id"], "7");
        assert_eq!(input.kv["k"], "v");
    }

    #[test]
    fn missing_optional_fields_default() {
        let mut input = input(r#"{"url":"/x","method":"GET"}"#);
        assert!(input.kv.is_empty() && input.params.is_empty() && !input.base64);
        let req: Request<Vec<u8>> = input.take_request().expect("valid request");
        assert!(req.body().is_empty());
    }

    #[test]
    fn base64_body_reaches_byte_handlers_exactly() {
        let mut input =
            input(r#"{"url":"/","method":"PUT","headers":{},"body":"AP8K","base64":true}"#);
        let req: Request<Vec<u8>> = input.take_request().expect("valid request");
        assert_eq!(req.body(), &[0u8, 255, 10]);
    }

    #[test]
    fn base64_body_reaches_string_handlers_lossily() {
        let mut input = input(r#"{"url":"/","method":"PUT","body":"Yf9i","base64":true}"#);
        let req: Request<String> = input.take_request().expect("valid request");
        assert_eq!(req.body(), "a\u{fffd}b");
    }

    #[test]
    fn text_body_reaches_bytes_handlers() {
        let mut input = input(r#"{"url":"/","method":"POST","body":"héllo"}"#);
        let req: Request<bytes::Bytes> = input.take_request().expect("valid request");
        assert_eq!(req.body().as_ref(), "héllo".as_bytes());
    }

    #[test]
    fn bad_base64_and_bad_method_are_errors() {
        let mut bad_body = input(r#"{"url":"/","method":"GET","body":"!!","base64":true}"#);
        assert!(bad_body.take_request::<String>().is_err());
        let mut bad_method = input(r#"{"url":"/","method":"G E T"}"#);
        let err = bad_method
            .take_request::<String>()
            .expect_err("method has spaces");
        assert!(format!("{err:#}").contains("G E T"));
    }

    #[test]
    fn invalid_request_headers_are_skipped() {
        let mut input = input(
            r#"{"url":"/","method":"GET","headers":{"bad name":"x","ok":"y","ctl":"a\u0001b"}}"#,
        );
        let req: Request<String> = input.take_request().expect("valid request");
        assert_eq!(req.headers().len(), 1);
        assert_eq!(req.headers()["ok"], "y");
    }

    #[test]
    fn repeated_response_headers_become_a_list() {
        let response = Response::builder()
            .status(201)
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .header("content-type", "text/plain")
            .body("ok")
            .expect("valid response");
        let json = Output::from_response(response, None)
            .to_json()
            .expect("serializable");
        assert_eq!(
            json,
            r#"{"data":"ok","headers":{"content-type":"text/plain","set-cookie":["a=1","b=2"]},"status":201,"base64":false}"#
        );
    }

    #[test]
    fn kv_is_written_only_when_given() {
        let with = Output::from_response(
            Response::new("x"),
            Some(Cache::from([("k".into(), "v".into())])),
        );
        assert!(
            with.to_json()
                .expect("serializable")
                .contains(r#""kv":{"k":"v"}"#)
        );
        let plain = Output::from_response(Response::new("x"), Cache::new());
        assert_eq!(
            plain.kv,
            Some(Cache::new()),
            "the original kit passed the cache itself"
        );
        let without = Output::from_response(Response::new("x"), None);
        assert!(!without.to_json().expect("serializable").contains("kv"));
    }

    #[test]
    fn handler_error_leaves_the_namespace_alone() {
        let json = Output::handler_error().to_json().expect("serializable");
        assert_eq!(
            json,
            r#"{"data":"There was an error running the handler","headers":{},"status":500,"base64":false}"#
        );
    }

    #[test]
    fn output_round_trips_both_header_forms() {
        let json = r#"{"data":"","headers":{"a":"1","b":["2","3"]},"status":200,"kv":{}}"#;
        let output: Output = serde_json::from_str(json).expect("valid output");
        assert_eq!(output.headers["a"], HeaderValues::One("1".into()));
        assert_eq!(output.headers["b"].iter().collect::<Vec<_>>(), ["2", "3"]);
        assert_eq!(output.kv, Some(Cache::new()));
    }
}
