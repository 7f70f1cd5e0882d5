//! The per-request fast path of the protocol used by `#[worker]`: the input is parsed borrowing
//! from the stdin buffer, headers go straight into an `http::HeaderMap`, and the output is
//! serialized straight from the handler's `http::Response`.
//!
//! [`crate::io::Input`] and [`crate::io::Output`] describe the same JSON as owned values (and
//! keep the original kit's API); this module only avoids their intermediate maps and copies,
//! because it runs once per request in every SDK worker.

use std::borrow::Cow;
use std::fmt;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::io::RequestBody;
use crate::{Cache, Content, Params};

/// The input JSON, borrowing its strings from the buffer when they contain no escapes.
#[derive(Deserialize)]
pub(crate) struct Envelope<'a> {
    #[serde(borrow)]
    url: Cow<'a, str>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(default)]
    headers: RequestHeaders,
    #[serde(borrow, default)]
    body: Cow<'a, str>,
    #[serde(default)]
    base64: bool,
    /// The key/value snapshot, handed to `cache` handlers.
    #[serde(default)]
    pub kv: Cache,
    /// The route parameters.
    #[serde(default)]
    pub params: Params,
}

impl Envelope<'_> {
    /// Parses the input JSON.
    pub fn parse(bytes: &[u8]) -> Result<Envelope<'_>> {
        serde_json::from_slice(bytes).context("the request JSON on stdin is not valid wws input")
    }

    /// Builds the request, leaving `kv` and `params` in place for the handler.
    pub fn take_request<B: RequestBody>(&mut self) -> Result<Request<B>> {
        let body = std::mem::take(&mut self.body);
        let body = if self.base64 {
            B::from_bytes(
                STANDARD
                    .decode(body.as_bytes())
                    .context("the request body is not valid base64")?,
            )
        } else {
            B::from_text(body.into_owned())
        };
        let mut request = Request::new(body);
        *request.method_mut() = Method::from_bytes(self.method.as_bytes())
            .with_context(|| format!("invalid request method {:?}", self.method))?;
        let url = std::mem::take(&mut self.url).into_owned();
        *request.uri_mut() = Uri::try_from(url).context("invalid request URL")?;
        *request.headers_mut() = std::mem::take(&mut self.headers.0);
        Ok(request)
    }
}

/// Request headers deserialized directly into a `HeaderMap`; names or values that are not
/// valid HTTP are skipped with a line on stderr.
#[derive(Default)]
struct RequestHeaders(HeaderMap);

impl<'de> Deserialize<'de> for RequestHeaders {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadersVisitor;
        impl<'de> Visitor<'de> for HeadersVisitor {
            type Value = RequestHeaders;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of header names to values")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut access: A,
            ) -> Result<RequestHeaders, A::Error> {
                let mut map = HeaderMap::with_capacity(access.size_hint().unwrap_or(8));
                while let Some(Str(name)) = access.next_key::<Str<'de>>()? {
                    let values: OneOrMany<'de> = access.next_value()?;
                    let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                        eprintln!("wws-sdk: skipping request header with invalid name {name:?}");
                        continue;
                    };
                    for value in values.0 {
                        match HeaderValue::from_str(&value) {
                            Ok(value) => {
                                map.append(header.clone(), value);
                            }
                            Err(_) => eprintln!(
                                "wws-sdk: skipping invalid value of request header {name}"
                            ),
                        }
                    }
                }
                Ok(RequestHeaders(map))
            }
        }
        deserializer.deserialize_map(HeadersVisitor)
    }
}

/// A JSON string, borrowed from the input when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct StrVisitor;
        impl<'de> Visitor<'de> for StrVisitor {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(value)))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(value.to_owned())))
            }
            fn visit_string<E: de::Error>(self, value: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(value)))
            }
        }
        deserializer.deserialize_str(StrVisitor)
    }
}

/// A header value: one string, or a list of strings (accepted for symmetry with the output).
struct OneOrMany<'a>(Vec<Cow<'a, str>>);

impl<'de> Deserialize<'de> for OneOrMany<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValuesVisitor;
        impl<'de> Visitor<'de> for ValuesVisitor {
            type Value = OneOrMany<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header value string or a list of strings")
            }
            fn visit_borrowed_str<E: de::Error>(
                self,
                value: &'de str,
            ) -> Result<OneOrMany<'de>, E> {
                Ok(OneOrMany(vec![Cow::Borrowed(value)]))
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<OneOrMany<'de>, E> {
                Ok(OneOrMany(vec![Cow::Owned(value.to_owned())]))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany<'de>, A::Error> {
                let mut values = Vec::new();
                while let Some(Str(value)) = seq.next_element::<Str<'de>>()? {
                    values.push(value);
                }
                Ok(OneOrMany(values))
            }
        }
        deserializer.deserialize_any(ValuesVisitor)
    }
}

/// Serializes the output JSON for `response`; `kv: None` omits the field.
pub(crate) fn output_json<C: Into<Content>>(
    response: Response<C>,
    kv: Option<&Cache>,
) -> Result<Vec<u8>> {
    let (parts, body) = response.into_parts();
    let (data, base64) = body.into().into_data();
    let wire = WireOutput {
        data: &data,
        headers: WireHeaders(&parts.headers),
        status: parts.status.as_u16(),
        kv,
        base64,
    };
    let mut json = Vec::with_capacity(data.len() + 128);
    serde_json::to_writer(&mut json, &wire).context("cannot serialize the worker output")?;
    Ok(json)
}

/// The output JSON, borrowing everything from the handler's response.
#[derive(Serialize)]
struct WireOutput<'a> {
    data: &'a str,
    headers: WireHeaders<'a>,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    kv: Option<&'a Cache>,
    base64: bool,
}

/// Response headers as `{"name": "value"}`, or `{"name": ["v1", "v2"]}` for repeated names.
/// Values that are not UTF-8 are converted lossily.
struct WireHeaders<'a>(&'a HeaderMap);

impl Serialize for WireHeaders<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.keys_len()))?;
        for name in self.0.keys() {
            let mut values = self
                .0
                .get_all(name)
                .iter()
                .map(|value| String::from_utf8_lossy(value.as_bytes()));
            let first = values.next().unwrap_or_default();
            // An empty Vec does not allocate: only repeated headers pay for the list.
            let rest: Vec<Cow<'_, str>> = values.collect();
            if rest.is_empty() {
                map.serialize_entry(name.as_str(), &first)?;
            } else {
                let all: Vec<Cow<'_, str>> = std::iter::once(first).chain(rest).collect();
                map.serialize_entry(name.as_str(), &all)?;
            }
        }
        map.end()
    }
}
