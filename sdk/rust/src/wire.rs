//! The per-request fast path of the protocol used by `#[worker]`: the input is parsed borrowing
//! from the stdin buffer, headers go straight into an `http::HeaderMap`, and the output is
//! serialized straight from the handler's `http::Response`.
//!
//! [`crate::io::Input`] and [`crate::io::Output`] describe the same JSON as owned values (and
//! keep the original kit's API); this module only avoids their intermediate maps and copies,
//! because it runs once per request in every SDK worker.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use anyhow::{Context as _, Result};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, Uri};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::io::RequestBody;
use crate::scan::Scanner;
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
    /// Parses the input JSON: with the fast scanner when the input has the shape wws writes,
    /// else with serde_json (which also produces the error messages).
    pub fn parse(bytes: &[u8]) -> Result<Envelope<'_>> {
        match Self::scan(bytes) {
            Some(envelope) => Ok(envelope),
            None => serde_json::from_slice(bytes)
                .context("the request JSON on stdin is not valid wws input"),
        }
    }

    /// The envelope read by [`Scanner`], or `None` for anything it does not handle (unknown or
    /// duplicate fields, `null`, numbers, bad syntax, missing `url` or `method`).
    fn scan(bytes: &[u8]) -> Option<Envelope<'_>> {
        let mut scanner = Scanner::new(bytes);
        let (mut url, mut method, mut body, mut base64) = (None, None, None, None);
        let (mut headers, mut kv, mut params) = (None, None, None);
        scanner.eat(b'{')?;
        let mut first = true;
        while let Some(key) = scanner.next_key(first) {
            first = false;
            let seen = match key.ok()?.as_ref() {
                "url" => url.replace(scanner.string()?).is_some(),
                "method" => method.replace(scanner.string()?).is_some(),
                "body" => body.replace(scanner.string()?).is_some(),
                "base64" => base64.replace(scanner.boolean()?).is_some(),
                "headers" => headers.replace(scan_headers(&mut scanner)?).is_some(),
                "kv" => kv.replace(scan_map(&mut scanner)?).is_some(),
                "params" => params.replace(scan_map(&mut scanner)?).is_some(),
                _ => return None,
            };
            if seen {
                return None;
            }
        }
        if !scanner.at_end() {
            return None;
        }
        Some(Envelope {
            url: url?,
            method: method?,
            headers: headers.unwrap_or_default(),
            body: body.unwrap_or_default(),
            base64: base64.unwrap_or_default(),
            kv: kv.unwrap_or_default(),
            params: params.unwrap_or_default(),
        })
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
        *request.uri_mut() = self
            .url
            .parse::<Uri>()
            .with_context(|| format!("invalid request URL {:?}", self.url))?;
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
                    append_header(&mut map, &name, values.0.iter().map(Cow::as_ref));
                }
                Ok(RequestHeaders(map))
            }
        }
        deserializer.deserialize_map(HeadersVisitor)
    }
}

/// Adds one request header with its values; names or values that are not valid HTTP are
/// skipped with a line on stderr (the host only forwards what hyper accepted, so this is rare).
fn append_header<'v>(map: &mut HeaderMap, name: &str, values: impl Iterator<Item = &'v str>) {
    let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
        eprintln!("wws-sdk: skipping request header with invalid name {name:?}");
        return;
    };
    for value in values {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                map.append(header.clone(), value);
            }
            Err(_) => eprintln!("wws-sdk: skipping invalid value of request header {name}"),
        }
    }
}

/// `"headers": {"name": "value" | ["v1", ..]}` read by the scanner.
fn scan_headers(scanner: &mut Scanner<'_>) -> Option<RequestHeaders> {
    let mut map = HeaderMap::with_capacity(8);
    scanner.eat(b'{')?;
    let mut first = true;
    while let Some(name) = scanner.next_key(first) {
        first = false;
        let name = name.ok()?;
        if scanner.peek()? == b'[' {
            scanner.eat(b'[')?;
            let mut values = Vec::new();
            let mut first_value = true;
            while let Some(value) = scanner.next_string(first_value) {
                first_value = false;
                values.push(value.ok()?);
            }
            append_header(&mut map, &name, values.iter().map(Cow::as_ref));
        } else {
            let value = scanner.string()?;
            append_header(&mut map, &name, std::iter::once(value.as_ref()));
        }
    }
    Some(RequestHeaders(map))
}

/// An object of strings (`kv`, `params`) read by the scanner; a repeated key keeps the last
/// value, as serde_json does.
fn scan_map(scanner: &mut Scanner<'_>) -> Option<HashMap<String, String>> {
    let mut map = HashMap::new();
    scanner.eat(b'{')?;
    let mut first = true;
    while let Some(key) = scanner.next_key(first) {
        first = false;
        let key = key.ok()?.into_owned();
        map.insert(key, scanner.string()?.into_owned());
    }
    Some(map)
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// The fields of an envelope, for comparing the two parsers.
    type Fields = (String, String, HeaderMap, String, bool, Cache, Params);

    fn fields(e: Envelope<'_>) -> Fields {
        (
            e.url.into_owned(),
            e.method.into_owned(),
            e.headers.0,
            e.body.into_owned(),
            e.base64,
            e.kv,
            e.params,
        )
    }

    /// Checks the scanner against serde_json on `json`: when it accepts, serde_json must accept
    /// with the same result. Returns whether the scanner accepted.
    fn agree(json: &str) -> bool {
        let serde = serde_json::from_str::<Envelope<'_>>(json).map(fields);
        match Envelope::scan(json.as_bytes()).map(fields) {
            Some(scanned) => {
                let serde = serde.unwrap_or_else(|err| {
                    panic!("scanner accepted what serde rejects ({err}): {json}")
                });
                assert_eq!(scanned, serde, "{json}");
                true
            }
            None => false,
        }
    }

    /// A small deterministic generator (xorshift), so failures reproduce.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
        fn text(&mut self, pieces: &[&str]) -> String {
            (0..self.below(6))
                .map(|_| pieces[self.below(pieces.len())])
                .collect()
        }
    }

    const TEXT: &[&str] = &[
        "a", "Z", "0", " ", "\"", "\\", "/", "\n", "\t", "\u{1}", "é", "😀", "%20", "{", "}", ",",
        ":",
    ];
    const NAMES: &[&str] = &[
        "x",
        "-",
        "a",
        "host",
        "content-type",
        "X-Up",
        "bad name",
        "é",
    ];

    fn random_envelope(rng: &mut Rng) -> Value {
        let mut headers = serde_json::Map::new();
        for _ in 0..rng.below(5) {
            let name = rng.text(NAMES);
            let value = if rng.below(4) == 0 {
                json!([rng.text(TEXT), rng.text(TEXT)])
            } else {
                json!(rng.text(TEXT))
            };
            headers.insert(name, value);
        }
        let map = |rng: &mut Rng| -> Value {
            (0..rng.below(4))
                .map(|_| (rng.text(TEXT), json!(rng.text(TEXT))))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        let mut envelope = json!({
            "url": format!("http://127.0.0.1:8080/{}", (["", "a", "a/b?q=1", "%C3%A9"])[rng.below(4)]),
            "method": (["GET", "POST", "PUT", "OPTIONS"])[rng.below(4)],
            "headers": headers,
            "kv": map(rng),
            "params": map(rng),
        });
        let fields = envelope.as_object_mut().expect("an object");
        if rng.below(2) == 0 {
            fields.insert("body".into(), json!(rng.text(TEXT)));
        }
        if rng.below(3) == 0 {
            fields.insert("base64".into(), json!(rng.below(2) == 0));
        }
        envelope
    }

    #[test]
    fn scanner_agrees_with_serde_on_random_envelopes() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let envelope = random_envelope(&mut rng);
            assert!(
                agree(&envelope.to_string()),
                "scanner gave up on {envelope}"
            );
            assert!(agree(
                &serde_json::to_string_pretty(&envelope).expect("serializable")
            ));
        }
    }

    #[test]
    fn scanner_gives_up_or_agrees_on_odd_input() {
        for json in [
            r#"{"url":"/","method":"GET","extra":1}"#,
            r#"{"url":"/","method":"GET","body":null}"#,
            r#"{"url":"/","method":"GET","url":"/again"}"#,
            r#"{"url":"/","method":"GET","kv":{"a":"1","a":"2"}}"#,
            r#"{"url":"/","method":"GET","kv":{"n":1}}"#,
            r#"{"url":"/","method":"GET"} trailing"#,
            r#"{"url":"/","method":"GET",}"#,
            r#"{"url":"\u002f\ud83d\ude00","method":"G\u0045T","headers":{"x":"\u00e9"}}"#,
            r#"{"method":"GET"}"#,
            r#"{"url":"/","method":"GET","headers":{"x":["a",]}}"#,
            r#"{"url":"/","method":"GET","headers":{"x":[]}}"#,
            r#"{"url":"/","method":"GET","base64":"true"}"#,
            r#"  {"url":"/","method":"GET"}  "#,
            "",
            "{",
            "[]",
        ] {
            agree(json);
        }
        assert!(agree(
            r#"{"url":"\u002f\ud83d\ude00","method":"G\u0045T","headers":{"x":"\u00e9"}}"#
        ));
        assert!(agree(
            r#"{"url":"/","method":"GET","kv":{"a":"1","a":"2"}}"#
        ));
        assert!(
            !agree(r#"{"url":"/","method":"GET","url":"/again"}"#),
            "duplicate fields go to serde"
        );
    }
}
