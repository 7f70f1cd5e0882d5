//! The primitives the JavaScript polyfills need from the host, as one `host` object.
//!
//! Only what JS cannot do (or does slowly) lives here: WASI random and clocks, UTF-8 and
//! base64 conversions of whole buffers, and writing to stderr. Everything else is JS in
//! `src/js/`. Per-request state (the clock origin, `Math.random`'s seed) is reset by
//! [`begin_request`], because the engine's memory is snapshotted after initialisation.

use std::cell::{Cell, RefCell};
use std::io::Write;
use std::time::Instant;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use rquickjs::{Array, Ctx, Exception, Function, Object, Result, TypedArray, Value};

thread_local! {
    /// Start of the current request (or of initialisation): the zero of `performance.now()`.
    static ORIGIN: Cell<Option<Instant>> = const { Cell::new(None) };
    /// The output JSON of the current request (see `output_json`).
    static OUTPUT: RefCell<Option<String>> = const { RefCell::new(None) };
    /// xorshift128+ state behind `Math.random`; (0, 0) until seeded in this request.
    static RANDOM: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// The forgiving base64 of `atob`: padding optional, non-zero trailing bits allowed.
const FORGIVING: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true),
);

/// Resets the per-request state: the clock origin and the `Math.random` seed (from WASI random).
pub fn begin_request() {
    ORIGIN.with(|o| o.set(Some(Instant::now())));
    OUTPUT.with(|o| o.borrow_mut().take());
    // Seeded on first use: most requests never call Math.random (a WASI call saved).
    RANDOM.with(|r| r.set((0, 0)));
}

/// xorshift128+ state seeded from WASI random (a fixed seed if that fails).
fn seed() -> (u64, u64) {
    let mut seed = [0u8; 16];
    if getrandom::fill(&mut seed).is_err() {
        return (0x9e37_79b9_7f4a_7c15, 0xbf58_476d_1ce4_e5b9);
    }
    let a = u64::from_le_bytes(seed[..8].try_into().unwrap_or_default());
    let b = u64::from_le_bytes(seed[8..].try_into().unwrap_or_default());
    // xorshift128+ must not start from all zeros.
    (a | 1, b)
}

/// Builds the `host` object handed to the polyfills.
pub fn object<'js>(ctx: &Ctx<'js>) -> Result<Object<'js>> {
    let host = Object::new(ctx.clone())?;
    host.set("writeErr", Function::new(ctx.clone(), write_err)?)?;
    host.set("now", Function::new(ctx.clone(), now)?)?;
    host.set(
        "mathRandom",
        Function::new(ctx.clone(), math_random)?.with_name("random")?,
    )?;
    host.set("randomBytes", Function::new(ctx.clone(), random_bytes)?)?;
    host.set("utf8Encode", Function::new(ctx.clone(), utf8_encode)?)?;
    host.set("utf8Decode", Function::new(ctx.clone(), utf8_decode)?)?;
    host.set("b64Encode", Function::new(ctx.clone(), b64_encode)?)?;
    host.set("btoa", Function::new(ctx.clone(), btoa)?)?;
    host.set("atob", Function::new(ctx.clone(), atob)?)?;
    host.set("outputJson", Function::new(ctx.clone(), output_json)?)?;
    host.set("respondEarly", Function::new(ctx.clone(), respond_early)?)?;
    host.set("digest", Function::new(ctx.clone(), digest)?)?;
    host.set("hmac", Function::new(ctx.clone(), hmac)?)?;
    host.set(
        "importKey",
        Function::new(ctx.clone(), crate::subtle::import_key)?,
    )?;
    host.set(
        "signWith",
        Function::new(ctx.clone(), crate::subtle::sign_with)?,
    )?;
    host.set(
        "verifyWith",
        Function::new(ctx.clone(), crate::subtle::verify_with)?,
    )?;
    host.set(
        "aesGcm",
        Function::new(ctx.clone(), crate::subtle::aes_gcm)?,
    )?;
    host.set("pbkdf2", Function::new(ctx.clone(), crate::subtle::pbkdf2)?)?;
    host.set("hkdf", Function::new(ctx.clone(), crate::subtle::hkdf)?)?;
    host.set("httpStart", Function::new(ctx.clone(), crate::http::start)?)?;
    Ok(host)
}

/// Writes one log record (already formatted by console.js) to stderr.
fn write_err(text: String) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes());
    let _ = err.write_all(b"\n");
}

/// Milliseconds since the request started, from the WASI monotonic clock.
fn now() -> f64 {
    let origin = ORIGIN.with(|o| match o.get() {
        Some(origin) => origin,
        None => {
            let origin = Instant::now();
            o.set(Some(origin));
            origin
        }
    });
    origin.elapsed().as_secs_f64() * 1000.0
}

fn math_random() -> f64 {
    RANDOM.with(|r| {
        let state = r.get();
        let (mut s1, s0) = if state == (0, 0) { seed() } else { state };
        s1 ^= s1 << 23;
        s1 ^= s1 >> 17;
        s1 ^= s0;
        s1 ^= s0 >> 26;
        r.set((s0, s1));
        (s0.wrapping_add(s1) >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn random_bytes<'js>(ctx: Ctx<'js>, length: usize) -> Result<TypedArray<'js, u8>> {
    let mut bytes = vec![0u8; length];
    getrandom::fill(&mut bytes)
        .map_err(|e| Exception::throw_internal(&ctx, &format!("WASI random_get failed: {e}")))?;
    TypedArray::new(ctx, bytes)
}

fn utf8_encode<'js>(ctx: Ctx<'js>, text: String) -> Result<TypedArray<'js, u8>> {
    TypedArray::new(ctx, text.into_bytes())
}

fn utf8_decode(ctx: Ctx<'_>, bytes: TypedArray<'_, u8>, fatal: bool) -> Result<String> {
    // SAFETY: no JavaScript runs while the slice is alive (see `bytes_of`).
    let bytes = unsafe { bytes_of(&bytes) };
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.to_owned()),
        Err(_) if fatal => Err(Exception::throw_type(&ctx, "the data is not valid UTF-8")),
        Err(_) => Ok(String::from_utf8_lossy(bytes).into_owned()),
    }
}

fn b64_encode(bytes: TypedArray<'_, u8>) -> String {
    // SAFETY: no JavaScript runs while the slice is alive (see `bytes_of`).
    STANDARD.encode(unsafe { bytes_of(&bytes) })
}

/// The bytes of a Uint8Array (empty when its buffer is detached).
///
/// # Safety
/// The slice aliases JS-owned memory: no JavaScript may run while it is alive. The callers
/// only convert it to a Rust value before returning to JS.
pub(crate) unsafe fn bytes_of<'a>(array: &'a TypedArray<'_, u8>) -> &'a [u8] {
    // SAFETY: forwarded to the caller, see above.
    unsafe { array.as_bytes() }.unwrap_or_default()
}

/// `btoa`: Latin-1 string to base64, or null when a character is above U+00FF.
fn btoa(text: String) -> Option<String> {
    let bytes: Option<Vec<u8>> = text
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect();
    bytes.map(|b| STANDARD.encode(b))
}

/// `atob`: forgiving base64 to a Latin-1 string, or null when the input is not base64.
fn atob(text: String) -> Option<String> {
    let mut clean: Vec<u8> = text
        .bytes()
        .filter(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\x0c' | b'\r'))
        .collect();
    if clean.len().is_multiple_of(4) {
        for _ in 0..2 {
            if clean.last() == Some(&b'=') {
                clean.pop();
            }
        }
    }
    if clean.len() % 4 == 1
        || !clean
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
    {
        return None;
    }
    let bytes = FORGIVING.decode(&clean).ok()?;
    Some(bytes.into_iter().map(char::from).collect())
}

/// Serialises the output JSON of the wws protocol into [`take_output`]'s buffer
/// (JSON.stringify costs QuickJS far more, and a large body is not copied back to JS).
///
/// `body` is null, a string (sent as text) or a Uint8Array (sent base64-encoded). `headers` is
/// the Headers list `[[name, value], ...]` (names lowercase, in order); a name given several
/// values becomes an array. `kv` is `[[key, value or null], ...]`.
fn output_json(body: Value<'_>, status: i32, headers: Array<'_>, kv: Array<'_>) -> Result<()> {
    let out = output(body, status, headers, kv)?;
    OUTPUT.with(|o| *o.borrow_mut() = Some(out));
    Ok(())
}

#[link(wasm_import_module = "wws_io")]
unsafe extern "C" {
    /// Hands wws a complete output JSON before the run ends (`crates/worker/src/early.rs`);
    /// 1 when it took it, 0 when the output must come on stdout at the end as usual.
    #[link_name = "respond"]
    fn wws_io_respond(ptr: *const u8, len: usize) -> i32;
}

/// `host.respondEarly(body, status, headers, kv)`: answers the client now, while `waitUntil`
/// work goes on; false when the host wants the output at the end (then nothing was sent).
fn respond_early(body: Value<'_>, status: i32, headers: Array<'_>, kv: Array<'_>) -> Result<bool> {
    let out = output(body, status, headers, kv)?;
    // SAFETY: the host reads `len` bytes at `ptr`, which `out` keeps alive for the call.
    Ok(unsafe { wws_io_respond(out.as_ptr(), out.len()) } == 1)
}

/// The output JSON for these parts (see `output_json`).
fn output(body: Value<'_>, status: i32, headers: Array<'_>, kv: Array<'_>) -> Result<String> {
    let mut grouped: Vec<(String, Vec<String>)> = Vec::with_capacity(headers.len());
    for pair in headers.iter::<Array>() {
        let pair = pair?;
        let (name, value): (String, String) = (pair.get(0)?, pair.get(1)?);
        match grouped.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => grouped.push((name, vec![value])),
        }
    }
    let mut out = String::new();
    if let Some(text) = body.as_string() {
        let text = text.to_string()?;
        out.reserve(text.len() + 256);
        out.push_str("{\"data\":");
        push_json_string(&mut out, &text);
        out.push_str(",\"base64\":false,\"status\":");
    } else if let Ok(bytes) = body.get::<TypedArray<'_, u8>>() {
        // SAFETY: no JavaScript runs while the slice is alive (see `bytes_of`).
        let bytes = unsafe { bytes_of(&bytes) };
        out.reserve(bytes.len() / 3 * 4 + 256);
        out.push_str("{\"data\":\"");
        STANDARD.encode_string(bytes, &mut out);
        out.push_str("\",\"base64\":true,\"status\":");
    } else {
        out.push_str("{\"data\":\"\",\"base64\":false,\"status\":");
    }
    out.push_str(&status.to_string());
    out.push_str(",\"headers\":{");
    for (i, (name, values)) in grouped.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, name);
        out.push(':');
        if let [value] = values.as_slice() {
            push_json_string(&mut out, value);
        } else {
            out.push('[');
            for (j, value) in values.iter().enumerate() {
                if j > 0 {
                    out.push(',');
                }
                push_json_string(&mut out, value);
            }
            out.push(']');
        }
    }
    out.push_str("},\"kv\":{");
    for (i, pair) in kv.iter::<Array>().enumerate() {
        let pair = pair?;
        let key: String = pair.get(0)?;
        let value: Value = pair.get(1)?;
        if i > 0 {
            out.push(',');
        }
        push_json_string(&mut out, &key);
        out.push(':');
        match value.as_string() {
            Some(text) => push_json_string(&mut out, &text.to_string()?),
            None => out.push_str("null"),
        }
    }
    out.push_str("}}");
    Ok(out)
}

/// The output JSON written by the last `host.outputJson` call, if any.
pub fn take_output() -> Option<String> {
    OUTPUT.with(|o| o.borrow_mut().take())
}

/// Appends `text` as a JSON string literal (runs without escapes are copied whole).
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    let mut start = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if escape.is_empty() {
            out.push_str(&format!("\\u{byte:04x}"));
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
    out.push('"');
}

/// The SHA digests of WebCrypto, by their WebCrypto names.
#[derive(Clone, Copy)]
pub(crate) enum Hash {
    Sha1,
    Sha256,
    Sha384,
    Sha512,
}

impl Hash {
    pub(crate) fn named(name: &str) -> Option<Hash> {
        match name.to_ascii_uppercase().as_str() {
            "SHA-1" => Some(Hash::Sha1),
            "SHA-256" => Some(Hash::Sha256),
            "SHA-384" => Some(Hash::Sha384),
            "SHA-512" => Some(Hash::Sha512),
            _ => None,
        }
    }
}

fn unknown_hash(ctx: &Ctx<'_>, name: &str) -> rquickjs::Error {
    Exception::throw_dom(
        ctx,
        "NotSupportedError",
        &format!("the hash {name:?} is not supported (use SHA-1, SHA-256, SHA-384 or SHA-512)"),
    )
}

/// `crypto.subtle.digest`.
fn digest<'js>(
    ctx: Ctx<'js>,
    name: String,
    data: TypedArray<'js, u8>,
) -> Result<TypedArray<'js, u8>> {
    use sha2::Digest as _;
    let hash = Hash::named(&name).ok_or_else(|| unknown_hash(&ctx, &name))?;
    // SAFETY: no JavaScript runs while the slice is alive (see `bytes_of`).
    let data = unsafe { bytes_of(&data) };
    let out = match hash {
        Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
        Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
        Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
        Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
    };
    TypedArray::new(ctx, out)
}

/// HMAC of `data` under `key` (`crypto.subtle.sign`/`verify` with HMAC).
fn hmac<'js>(
    ctx: Ctx<'js>,
    name: String,
    key: TypedArray<'js, u8>,
    data: TypedArray<'js, u8>,
) -> Result<TypedArray<'js, u8>> {
    use hmac::{Mac, SimpleHmac};
    fn mac<D: sha2::Digest + sha2::digest::core_api::BlockSizeUser>(
        key: &[u8],
        data: &[u8],
    ) -> Vec<u8> {
        // SimpleHmac accepts keys of any length, so new_from_slice cannot fail.
        match SimpleHmac::<D>::new_from_slice(key) {
            Ok(mut m) => {
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Err(_) => Vec::new(),
        }
    }
    let hash = Hash::named(&name).ok_or_else(|| unknown_hash(&ctx, &name))?;
    // SAFETY: no JavaScript runs while the slices are alive (see `bytes_of`).
    let (key, data) = unsafe { (bytes_of(&key), bytes_of(&data)) };
    let out = match hash {
        Hash::Sha1 => mac::<sha1::Sha1>(key, data),
        Hash::Sha256 => mac::<sha2::Sha256>(key, data),
        Hash::Sha384 => mac::<sha2::Sha384>(key, data),
        Hash::Sha512 => mac::<sha2::Sha512>(key, data),
    };
    TypedArray::new(ctx, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_strings_are_escaped() {
        let mut out = String::new();
        push_json_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }

    #[test]
    fn atob_is_forgiving() {
        assert_eq!(atob("aGk=".into()).as_deref(), Some("hi"));
        assert_eq!(atob("aGk".into()).as_deref(), Some("hi"));
        assert_eq!(atob(" aG k= ".into()).as_deref(), Some("hi"));
        assert_eq!(atob("a".into()), None);
        assert_eq!(atob("a*==".into()), None);
    }

    #[test]
    fn btoa_refuses_non_latin1() {
        assert_eq!(btoa("hi".into()).as_deref(), Some("aGk="));
        assert_eq!(btoa("\u{ff}".into()).as_deref(), Some("/w=="));
        assert_eq!(btoa("\u{100}".into()), None);
    }
}
