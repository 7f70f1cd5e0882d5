//! The request JSON of the wws protocol, parsed in Rust and handed to JS as ready-made values.
//!
//! QuickJS' JSON.parse plus the JS loops that turn the parsed object into a Request cost more
//! than the rest of a small request; serde does the parsing and the header list arrives in the
//! exact shape `Headers` keeps internally (`[[name, value], ...]`).

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rquickjs::{Array, Ctx, IntoJs, Result, TypedArray, Value, qjs};
use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// The request envelope as the host sends it; every field is optional. Objects are read
/// straight into pair lists, in their order: no hash map (whose keys need a random seed from
/// the host and SipHash) and no untagged enum (which buffers every value to try each shape).
#[derive(Deserialize)]
pub struct Incoming<'a> {
    #[serde(borrow, default)]
    url: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    method: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    headers: Pairs<'a, HeaderValues>,
    #[serde(borrow, default)]
    body: Option<Cow<'a, str>>,
    #[serde(default)]
    base64: Option<bool>,
    #[serde(borrow, default)]
    kv: Pairs<'a, Text>,
    #[serde(borrow, default)]
    params: Pairs<'a, Text>,
}

/// A JSON object (or null) as `(key, value)` pairs; `V` says how a value is read and may
/// yield none (a null) or several (a repeated header).
pub struct Pairs<'a, V>(
    Vec<(Cow<'a, str>, Cow<'a, str>)>,
    std::marker::PhantomData<V>,
);

impl<V> Default for Pairs<'_, V> {
    fn default() -> Self {
        Self(Vec::new(), std::marker::PhantomData)
    }
}

/// How one object value becomes the pairs' values.
trait ValueShape {
    /// Reads one value, pushing `(key, value)` for each value it holds.
    fn read<'de, A: MapAccess<'de>>(
        map: &mut A,
        key: Cow<'de, str>,
        out: &mut Vec<(Cow<'de, str>, Cow<'de, str>)>,
    ) -> std::result::Result<(), A::Error>;
}

/// A header's value: one string, or a list of them for a repeated header.
pub struct HeaderValues;

/// A `kv` or `params` value: a string; any other JSON value becomes its JSON text, nulls are
/// left out.
pub struct Text;

impl<'de: 'a, 'a, V: ValueShape> Deserialize<'de> for Pairs<'a, V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct Object<V>(std::marker::PhantomData<V>);
        impl<'de, V: ValueShape> Visitor<'de> for Object<V> {
            type Value = Vec<(Cow<'de, str>, Cow<'de, str>)>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of strings")
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(Vec::new())
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some(Str(key)) = map.next_key()? {
                    V::read(&mut map, key, &mut out)?;
                }
                Ok(out)
            }
        }
        let pairs = deserializer.deserialize_any(Object::<V>(std::marker::PhantomData))?;
        Ok(Self(pairs, std::marker::PhantomData))
    }
}

impl ValueShape for HeaderValues {
    fn read<'de, A: MapAccess<'de>>(
        map: &mut A,
        key: Cow<'de, str>,
        out: &mut Vec<(Cow<'de, str>, Cow<'de, str>)>,
    ) -> std::result::Result<(), A::Error> {
        match map.next_value::<StrOrList<'de>>()? {
            StrOrList::One(value) => out.push((key, value)),
            StrOrList::Many(values) => out.extend(values.into_iter().map(|v| (key.clone(), v))),
            StrOrList::Null => {}
        }
        Ok(())
    }
}

impl ValueShape for Text {
    fn read<'de, A: MapAccess<'de>>(
        map: &mut A,
        key: Cow<'de, str>,
        out: &mut Vec<(Cow<'de, str>, Cow<'de, str>)>,
    ) -> std::result::Result<(), A::Error> {
        if let Some(value) = map.next_value::<JsonText<'de>>()?.0 {
            out.push((key, value));
        }
        Ok(())
    }
}

/// A string, borrowed from the JSON when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(Cow::Owned(v))
            }
        }
        deserializer.deserialize_str(V).map(Str)
    }
}

enum StrOrList<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
    Null,
}

impl<'de: 'a, 'a> Deserialize<'de> for StrOrList<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = StrOrList<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a header value: a string or a list of strings")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(StrOrList::One(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(StrOrList::One(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(StrOrList::One(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(StrOrList::Null)
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                let mut values = Vec::with_capacity(seq.size_hint().unwrap_or(2));
                while let Some(Str(value)) = seq.next_element()? {
                    values.push(value);
                }
                Ok(StrOrList::Many(values))
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// A string as it is, null as nothing, any other value as its JSON text.
struct JsonText<'a>(Option<Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for JsonText<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        struct V;
        fn json<E>(value: serde_json::Value) -> std::result::Result<JsonText<'static>, E> {
            Ok(JsonText(Some(Cow::Owned(value.to_string()))))
        }
        impl<'de> Visitor<'de> for V {
            type Value = JsonText<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> std::result::Result<Self::Value, E> {
                Ok(JsonText(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Self::Value, E> {
                Ok(JsonText(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Self::Value, E> {
                Ok(JsonText(Some(Cow::Owned(v))))
            }
            fn visit_unit<E>(self) -> std::result::Result<Self::Value, E> {
                Ok(JsonText(None))
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Self::Value, E> {
                json(v.into())
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Self::Value, E> {
                json(v.into())
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Self::Value, E> {
                json(v.into())
            }
            fn visit_f64<E>(self, v: f64) -> std::result::Result<Self::Value, E> {
                json(v.into())
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                seq: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                json(serde_json::Value::deserialize(
                    de::value::SeqAccessDeserializer::new(seq),
                )?)
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                map: A,
            ) -> std::result::Result<Self::Value, A::Error> {
                json(serde_json::Value::deserialize(
                    de::value::MapAccessDeserializer::new(map),
                )?)
            }
        }
        deserializer.deserialize_any(V)
    }
}

/// The arguments of `internal.handle(url, method, headers, body, kv, params, relative)`.
/// `kv` and `params` are undefined when empty (most requests: no array to make), `relative`
/// is true when the URL has no scheme and the polyfills must resolve it.
pub struct Args<'js> {
    pub url: Value<'js>,
    pub method: Value<'js>,
    pub headers: Array<'js>,
    pub body: Value<'js>,
    pub kv: Value<'js>,
    pub params: Value<'js>,
    pub relative: bool,
}

impl<'a> Incoming<'a> {
    /// Parses the request JSON; the error says what is wrong with it.
    pub fn parse(json: &'a str) -> std::result::Result<Self, String> {
        serde_json::from_str(json)
            .map_err(|e| format!("the request on stdin is not valid wws request JSON: {e}"))
    }

    /// Builds the JS values; a base64 body is decoded here.
    pub fn into_args<'js>(self, ctx: &Ctx<'js>) -> Result<std::result::Result<Args<'js>, String>> {
        let url = self.url.as_deref().unwrap_or("/");
        let relative = !has_scheme(url);
        let url = url.into_js(ctx)?;
        let method = self
            .method
            .as_deref()
            .filter(|m| !m.is_empty())
            .unwrap_or("GET")
            .into_js(ctx)?;
        let headers = self.headers.0.into_iter().map(|(name, value)| {
            let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
                Cow::Owned(name.to_ascii_lowercase())
            } else {
                name
            };
            (name, value)
        });
        let headers = pairs(ctx, headers)?;
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
            kv: pairs_or_undefined(ctx, self.kv.0)?,
            params: pairs_or_undefined(ctx, self.params.0)?,
            relative,
        }))
    }
}

/// Whether `url` starts with a scheme (`^[A-Za-z][A-Za-z0-9+.-]*:`).
fn has_scheme(url: &str) -> bool {
    let bytes = url.as_bytes();
    let Some(colon) = bytes.iter().position(|&b| b == b':') else {
        return false;
    };
    bytes[0].is_ascii_alphabetic()
        && bytes[1..colon]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
}

/// [`pairs`], or undefined for none.
fn pairs_or_undefined<'js>(
    ctx: &Ctx<'js>,
    list: Vec<(Cow<'_, str>, Cow<'_, str>)>,
) -> Result<Value<'js>> {
    if list.is_empty() {
        return Ok(Value::new_undefined(ctx.clone()));
    }
    Ok(pairs(ctx, list)?.into_value())
}

/// `[[key, value], ...]` for JS.
fn pairs<'js, 'a>(
    ctx: &Ctx<'js>,
    list: impl IntoIterator<Item = (Cow<'a, str>, Cow<'a, str>)>,
) -> Result<Array<'js>> {
    let mut out = Vec::new();
    for (key, value) in list {
        let pair = [key.into_js(ctx)?, value.into_js(ctx)?];
        out.push(array_of(ctx, pair)?.into_value());
    }
    array_of(ctx, out)
}

/// A JS array of `values`, made in one step (QuickJS' `JS_NewArrayFrom`): no property set per
/// element and no regrowth, as `Array::set` would do.
fn array_of<'js>(
    ctx: &Ctx<'js>,
    values: impl IntoIterator<Item = Value<'js>>,
) -> Result<Array<'js>> {
    // Each value's reference goes to the array: `as_raw` without the drop that would release it.
    let raw: Vec<qjs::JSValue> = values
        .into_iter()
        .map(|value| {
            let raw = value.as_raw();
            std::mem::forget(value);
            raw
        })
        .collect();
    let len =
        i32::try_from(raw.len()).map_err(|_| rquickjs::Error::new_from_js("list", "array"))?;
    // SAFETY: the context is live; JS_NewArrayFrom takes over one reference to each of `len`
    // values at `raw` (released above), and frees them itself when it fails.
    let array = unsafe { qjs::JS_NewArrayFrom(ctx.as_raw().as_ptr(), len, raw.as_ptr()) };
    // SAFETY: an owned value of this context's runtime.
    let value = unsafe { Value::from_raw(ctx.clone(), array) };
    if value.is_exception() {
        return Err(rquickjs::Error::Exception);
    }
    value
        .into_array()
        .ok_or_else(|| rquickjs::Error::new_from_js("value", "array"))
}
