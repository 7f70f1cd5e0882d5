//! The wws JSON envelope (spec §3.2–3.4): the request a worker reads on stdin and the response
//! it prints on stdout. Compatible with the original, with its defects fixed:
//! - a request body that is not UTF-8 is sent base64-encoded with `"base64": true` (the original
//!   sent `""`); workers that ignore the flag still get text, not nothing;
//! - repeated request headers are joined with `, ` (`; ` for `cookie`), as HTTP folds them;
//! - in the response, `kv` may be omitted (namespace untouched), a header value may be a list
//!   (several `Set-Cookie`), `status` defaults to 200 and `headers` to none; a `kv` value may be
//!   a number or boolean (stored as its JSON text) or `null` (the key is removed).

use std::borrow::Cow;
use std::collections::HashMap;

use base64::Engine as _;
use serde::ser::SerializeMap as _;
use serde::{Deserialize, Serialize, Serializer};

/// The request envelope, borrowed from the HTTP request to avoid copies.
#[derive(Debug, Serialize)]
pub struct WorkerRequest<'a> {
    /// Full URL: `scheme://host/path?query`.
    pub url: &'a str,
    /// HTTP method, e.g. `GET`.
    pub method: &'a str,
    /// Header names lowercase; repeated headers folded (`, `, or `; ` for `cookie`).
    #[serde(serialize_with = "folded")]
    pub headers: &'a http::HeaderMap,
    /// The body as text, or base64 when `base64` is true.
    pub body: Cow<'a, str>,
    /// Set when the body was not UTF-8 and is base64 text.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub base64: bool,
    /// Snapshot of the worker's key/value namespace (`{}` without one).
    pub kv: &'a HashMap<String, String>,
    /// Route parameters, e.g. `{"id": "1"}`.
    #[serde(serialize_with = "as_map")]
    pub params: &'a [(String, String)],
}

fn as_map<S: Serializer>(pairs: &&[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(pairs.iter().map(|(k, v)| (k, v)))
}

impl<'a> WorkerRequest<'a> {
    /// Builds the envelope; the body is sent as text when it is UTF-8, else as base64.
    pub fn new(
        url: &'a str,
        method: &'a str,
        headers: &'a http::HeaderMap,
        body: &'a [u8],
        kv: &'a HashMap<String, String>,
        params: &'a [(String, String)],
    ) -> Self {
        let (body, base64) = match std::str::from_utf8(body) {
            Ok(text) => (Cow::Borrowed(text), false),
            Err(_) => (
                Cow::Owned(base64::engine::general_purpose::STANDARD.encode(body)),
                true,
            ),
        };
        Self {
            url,
            method,
            headers,
            body,
            base64,
            kv,
            params,
        }
    }

    /// Serializes the envelope for the worker's stdin.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings and maps into a Vec cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Writes the request headers as one string per name (lowercase, as `http` keeps them), since
/// the worker protocol has one value per header: repeated headers are joined with `, ` (`; `
/// for `cookie`), as HTTP folds them. Values that are not UTF-8 are decoded lossily. Written
/// straight from the header map: no copy of a header that occurs once.
fn folded<S: Serializer>(headers: &&http::HeaderMap, s: S) -> Result<S::Ok, S::Error> {
    let mut map = s.serialize_map(Some(headers.keys_len()))?;
    for name in headers.keys() {
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else { continue };
        let first = String::from_utf8_lossy(first.as_bytes());
        let Some(second) = values.next() else {
            map.serialize_entry(name.as_str(), &first)?;
            continue;
        };
        let sep = if name == http::header::COOKIE {
            "; "
        } else {
            ", "
        };
        let mut value = first.into_owned();
        for v in std::iter::once(second).chain(values) {
            value.push_str(sep);
            value.push_str(&String::from_utf8_lossy(v.as_bytes()));
        }
        map.serialize_entry(name.as_str(), &value)?;
    }
    map.end()
}

/// The response envelope a worker prints.
#[derive(Debug, Deserialize)]
pub struct WorkerResponse {
    /// Body: text, or base64 when `base64` is true.
    pub data: String,
    /// Whether `data` is base64.
    #[serde(default)]
    pub base64: bool,
    /// HTTP status (200 when absent).
    #[serde(default = "default_status")]
    pub status: u16,
    /// Headers; a list value means several headers of that name.
    #[serde(default)]
    pub headers: HashMap<String, HeaderValues>,
    /// The namespace after the run; `None` leaves it untouched.
    #[serde(default)]
    pub kv: Option<HashMap<String, KvValue>>,
}

fn default_status() -> u16 {
    200
}

/// One header value or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum HeaderValues {
    /// `"name": "value"`
    One(String),
    /// `"name": ["v1", "v2"]`
    Many(Vec<String>),
}

impl HeaderValues {
    /// The values, in order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        let slice: &[String] = match self {
            Self::One(v) => std::slice::from_ref(v),
            Self::Many(v) => v,
        };
        slice.iter().map(String::as_str)
    }
}

/// A value in the output `kv` map.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum KvValue {
    /// A string, stored as is.
    Text(String),
    /// A number or boolean, stored as its JSON text (JS `Cache.set("c", 1)` works).
    Scalar(serde_json::Value),
}

impl KvValue {
    /// The stored string, or `None` for `null` (remove the key). Objects and arrays are stored as
    /// their JSON text.
    pub fn into_string(self) -> Option<String> {
        match self {
            Self::Text(s) => Some(s),
            Self::Scalar(serde_json::Value::Null) => None,
            Self::Scalar(v) => Some(v.to_string()),
        }
    }
}

/// Why the output could not be used.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// Not the JSON envelope (stray prints, garbage, missing `data`).
    #[error(
        "printed output that is not a wws JSON response ({source}); output starts with {preview:?}"
    )]
    NotJson {
        /// The parse error.
        source: serde_json::Error,
        /// The first bytes, for the log.
        preview: String,
    },
    /// `base64: true` with `data` that is not base64.
    #[error("returned `base64: true` but `data` is not valid base64: {0}")]
    BadBase64(base64::DecodeError),
}

impl WorkerResponse {
    /// Parses a worker's stdout.
    pub fn parse(stdout: &[u8]) -> Result<Self, OutputError> {
        serde_json::from_slice(stdout).map_err(|source| OutputError::NotJson {
            source,
            preview: String::from_utf8_lossy(&stdout[..stdout.len().min(120)]).into_owned(),
        })
    }

    /// The body bytes, decoding base64 when flagged.
    pub fn take_body(&mut self) -> Result<Vec<u8>, OutputError> {
        let data = std::mem::take(&mut self.data);
        if self.base64 {
            base64::engine::general_purpose::STANDARD
                .decode(data.trim())
                .map_err(OutputError::BadBase64)
        } else {
            Ok(data.into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_body_goes_as_base64() {
        let kv = HashMap::new();
        let headers = http::HeaderMap::new();
        let req = WorkerRequest::new("http://x/", "POST", &headers, &[0xff, 0x00], &kv, &[]);
        let json: serde_json::Value = serde_json::from_slice(&req.to_bytes()).unwrap();
        assert_eq!(json["body"], "/wA=");
        assert_eq!(json["base64"], true);
    }

    #[test]
    fn text_body_has_no_flag_and_original_field_order() {
        let kv = HashMap::new();
        let mut headers = http::HeaderMap::new();
        headers.insert("a", http::HeaderValue::from_static("1"));
        let params = vec![("id".to_string(), "7".to_string())];
        let req = WorkerRequest::new("http://x/", "GET", &headers, b"hi", &kv, &params);
        let text = String::from_utf8(req.to_bytes()).unwrap();
        assert_eq!(
            text,
            r#"{"url":"http://x/","method":"GET","headers":{"a":"1"},"body":"hi","kv":{},"params":{"id":"7"}}"#
        );
    }

    #[test]
    fn repeated_headers_are_folded() {
        let kv = HashMap::new();
        let mut headers = http::HeaderMap::new();
        for (name, value) in [
            ("accept", "a/b"),
            ("cookie", "x=1"),
            ("accept", "c/d"),
            ("cookie", "y=2"),
        ] {
            headers.append(name, http::HeaderValue::from_static(value));
        }
        headers.append("x-bin", http::HeaderValue::from_bytes(b"\xffok").unwrap());
        let req = WorkerRequest::new("http://x/", "GET", &headers, b"", &kv, &[]);
        let json: serde_json::Value = serde_json::from_slice(&req.to_bytes()).unwrap();
        assert_eq!(json["headers"]["accept"], "a/b, c/d");
        assert_eq!(json["headers"]["cookie"], "x=1; y=2");
        assert_eq!(json["headers"]["x-bin"], "\u{fffd}ok");
    }

    #[test]
    fn output_of_the_original_parses() {
        let out = WorkerResponse::parse(
            br#"{"data":"hi","headers":{"x":"1"},"status":201,"kv":{"a":"b"},"base64":false}"#,
        )
        .unwrap();
        assert_eq!(out.status, 201);
        assert!(out.kv.is_some());
    }

    #[test]
    fn lenient_output_fields() {
        let mut out = WorkerResponse::parse(
            br#"{"data":"aGk=","base64":true,"headers":{"set-cookie":["a=1","b=2"]},"kv":{"n":1,"gone":null}}"#,
        )
        .unwrap();
        assert_eq!(out.take_body().unwrap(), b"hi");
        assert_eq!(out.status, 200);
        assert_eq!(out.headers["set-cookie"].iter().count(), 2);
        let kv = out.kv.unwrap();
        assert_eq!(
            kv.into_values()
                .filter_map(|v| v.into_string())
                .collect::<Vec<_>>(),
            ["1"]
        );
    }

    #[test]
    fn garbage_is_an_error_with_a_preview() {
        let err = WorkerResponse::parse(b"debug line\n{\"data\":\"x\"}").unwrap_err();
        assert!(err.to_string().contains("debug line"), "{err}");
    }
}
