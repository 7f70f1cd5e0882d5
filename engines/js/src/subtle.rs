//! `crypto.subtle` beyond digests and HMAC (`host.rs`): asymmetric signatures: RSASSA-PKCS1-v1_5, RSA-PSS and ECDSA (P-256,
//! P-384), what verifying and issuing JWTs (RS256, PS256, ES256, ES384) needs. `crypto.js`
//! keeps a key as DER (SPKI for a public key, PKCS#8 for a private one) and calls:
//!
//! - `host.importKey(kind, curve, format, data)`: `kind` `RSA` or `EC`, `format` `spki`,
//!   `pkcs8`, `raw` (an EC public point) or `jwk` (the JWK's JSON); returns
//!   `[type, der, modulusBits]` (`type` `public` or `private`);
//! - `host.signWith(scheme, hash, der, data, saltLength)` and
//!   `host.verifyWith(scheme, hash, der, signature, data, saltLength)`, `scheme` one of
//!   `RSASSA-PKCS1-v1_5`, `RSA-PSS`, `ECDSA:P-256`, `ECDSA:P-384`. ECDSA signatures are `r || s`
//!   as WebCrypto has them (not DER).
//!
//! Also AES-GCM (`host.aesGcm`) and the key derivations PBKDF2 and HKDF (`host.pbkdf2`,
//! `host.hkdf`), for encrypted cookies and session tokens.
//!
//! Failures throw a plain `Error` whose message crypto.js wraps in the right `DOMException`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rquickjs::{Array, Ctx, Exception, Result, TypedArray, Value};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use rsa::traits::PublicKeyParts as _;
use rsa::{BigUint, Pkcs1v15Sign, Pss, RsaPrivateKey, RsaPublicKey};
use serde::Deserialize;

use crate::host::{Hash, bytes_of};

/// The JWK members an RSA or EC key may have.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<String>,
    p: Option<String>,
    q: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

type Imported = (String, Vec<u8>, usize);

fn fail(ctx: &Ctx<'_>, message: impl std::fmt::Display) -> rquickjs::Error {
    Exception::throw_message(ctx, &message.to_string())
}

/// `host.importKey`.
pub fn import_key<'js>(
    ctx: Ctx<'js>,
    kind: String,
    curve: String,
    format: String,
    data: TypedArray<'js, u8>,
) -> Result<Array<'js>> {
    // SAFETY: no JavaScript runs while the slice is alive (see `bytes_of`).
    let data = unsafe { bytes_of(&data) }.to_vec();
    let imported = match kind.as_str() {
        "RSA" => import_rsa(&format, &data),
        "EC" => match curve.as_str() {
            "P-256" => p256::import(&format, &data),
            "P-384" => p384::import(&format, &data),
            other => Err(format!(
                "the curve {other:?} is not supported (P-256, P-384)"
            )),
        },
        other => Err(format!("unknown key kind {other}")),
    };
    let (kind, der, bits) = imported.map_err(|message| fail(&ctx, message))?;
    let out = Array::new(ctx.clone())?;
    out.set(0, kind)?;
    out.set(1, TypedArray::new(ctx, der)?)?;
    out.set(2, bits)?;
    Ok(out)
}

fn jwk(data: &[u8], kty: &str) -> std::result::Result<Jwk, String> {
    let jwk: Jwk = serde_json::from_slice(data).map_err(|e| format!("not a JWK: {e}"))?;
    if jwk.kty != kty {
        return Err(format!("the JWK's kty is {:?}, not {kty:?}", jwk.kty));
    }
    Ok(jwk)
}

fn b64u(field: &Option<String>, name: &str) -> std::result::Result<Vec<u8>, String> {
    let text = field
        .as_deref()
        .ok_or_else(|| format!("the JWK has no {name}"))?;
    URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .map_err(|_| format!("the JWK's {name} is not base64url"))
}

fn import_rsa(format: &str, data: &[u8]) -> std::result::Result<Imported, String> {
    let public = |key: RsaPublicKey| -> std::result::Result<Imported, String> {
        let der = key.to_public_key_der().map_err(|e| e.to_string())?;
        Ok(("public".into(), der.as_bytes().to_vec(), key.n().bits()))
    };
    let private = |key: RsaPrivateKey| -> std::result::Result<Imported, String> {
        key.validate()
            .map_err(|e| format!("invalid RSA private key: {e}"))?;
        let bits = key.n().bits();
        let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
        Ok(("private".into(), der.as_bytes().to_vec(), bits))
    };
    match format {
        "spki" => public(RsaPublicKey::from_public_key_der(data).map_err(|e| e.to_string())?),
        "pkcs8" => private(RsaPrivateKey::from_pkcs8_der(data).map_err(|e| e.to_string())?),
        "jwk" => {
            let jwk = jwk(data, "RSA")?;
            let int = |field: &Option<String>, name| {
                Ok::<_, String>(BigUint::from_bytes_be(&b64u(field, name)?))
            };
            let (n, e) = (int(&jwk.n, "n")?, int(&jwk.e, "e")?);
            if jwk.d.is_none() {
                return public(RsaPublicKey::new(n, e).map_err(|e| e.to_string())?);
            }
            let primes = vec![int(&jwk.p, "p")?, int(&jwk.q, "q")?];
            private(
                RsaPrivateKey::from_components(n, e, int(&jwk.d, "d")?, primes)
                    .map_err(|e| e.to_string())?,
            )
        }
        other => Err(format!(
            "an RSA key cannot be imported from {other:?} (spki, pkcs8, jwk)"
        )),
    }
}

/// Import, sign and verify for one curve: `p256` and `p384` are the same code.
macro_rules! curve {
    ($curve:ident, $name:literal) => {
        pub(crate) mod $curve {
            use ::$curve::ecdsa::signature::hazmat::{PrehashSigner as _, PrehashVerifier as _};
            use ::$curve::ecdsa::{Signature, SigningKey, VerifyingKey};
            use ::$curve::pkcs8::{
                DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey,
            };
            use ::$curve::{PublicKey, SecretKey};

            use super::{Imported, b64u, jwk};

            fn public(key: PublicKey) -> Result<Imported, String> {
                let der = key.to_public_key_der().map_err(|e| e.to_string())?;
                Ok(("public".into(), der.as_bytes().to_vec(), 0))
            }

            fn private(key: SecretKey) -> Result<Imported, String> {
                let der = key.to_pkcs8_der().map_err(|e| e.to_string())?;
                Ok(("private".into(), der.as_bytes().to_vec(), 0))
            }

            pub(crate) fn import(format: &str, data: &[u8]) -> Result<Imported, String> {
                match format {
                    "spki" => {
                        public(PublicKey::from_public_key_der(data).map_err(|e| e.to_string())?)
                    }
                    "raw" => public(PublicKey::from_sec1_bytes(data).map_err(|e| e.to_string())?),
                    "pkcs8" => private(SecretKey::from_pkcs8_der(data).map_err(|e| e.to_string())?),
                    "jwk" => {
                        let jwk = jwk(data, "EC")?;
                        if jwk.crv.as_deref() != Some($name) {
                            return Err(format!("the JWK's crv is {:?}, not {:?}", jwk.crv, $name));
                        }
                        if jwk.d.is_some() {
                            let d = b64u(&jwk.d, "d")?;
                            return private(SecretKey::from_slice(&d).map_err(|e| e.to_string())?);
                        }
                        let mut point = vec![4];
                        point.extend(b64u(&jwk.x, "x")?);
                        point.extend(b64u(&jwk.y, "y")?);
                        let key = PublicKey::from_sec1_bytes(&point).map_err(|_| {
                            "the JWK's x and y are not a point of the curve".to_owned()
                        })?;
                        public(key)
                    }
                    other => Err(format!(
                        "an EC key cannot be imported from {other:?} (spki, pkcs8, raw, jwk)"
                    )),
                }
            }

            pub(crate) fn sign(der: &[u8], digest: &[u8]) -> Result<Vec<u8>, String> {
                let key = SecretKey::from_pkcs8_der(der).map_err(|e| e.to_string())?;
                let signature: Signature = SigningKey::from(key)
                    .sign_prehash(digest)
                    .map_err(|e| e.to_string())?;
                Ok(signature.to_bytes().to_vec())
            }

            pub(crate) fn verify(
                der: &[u8],
                digest: &[u8],
                signature: &[u8],
            ) -> Result<bool, String> {
                let key = PublicKey::from_public_key_der(der).map_err(|e| e.to_string())?;
                let Ok(signature) = Signature::from_slice(signature) else {
                    return Ok(false);
                };
                Ok(VerifyingKey::from(&key)
                    .verify_prehash(digest, &signature)
                    .is_ok())
            }
        }
    };
}

curve!(p256, "P-256");
curve!(p384, "P-384");

/// The digest of `data` with `hash`, and an RSA padding scheme for it.
fn prehash(hash: Hash, data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    match hash {
        Hash::Sha1 => sha1::Sha1::digest(data).to_vec(),
        Hash::Sha256 => sha2::Sha256::digest(data).to_vec(),
        Hash::Sha384 => sha2::Sha384::digest(data).to_vec(),
        Hash::Sha512 => sha2::Sha512::digest(data).to_vec(),
    }
}

fn pkcs1(hash: Hash) -> Pkcs1v15Sign {
    match hash {
        Hash::Sha1 => Pkcs1v15Sign::new::<sha1::Sha1>(),
        Hash::Sha256 => Pkcs1v15Sign::new::<sha2::Sha256>(),
        Hash::Sha384 => Pkcs1v15Sign::new::<sha2::Sha384>(),
        Hash::Sha512 => Pkcs1v15Sign::new::<sha2::Sha512>(),
    }
}

fn pss(hash: Hash, salt: usize) -> Pss {
    match hash {
        Hash::Sha1 => Pss::new_with_salt::<sha1::Sha1>(salt),
        Hash::Sha256 => Pss::new_with_salt::<sha2::Sha256>(salt),
        Hash::Sha384 => Pss::new_with_salt::<sha2::Sha384>(salt),
        Hash::Sha512 => Pss::new_with_salt::<sha2::Sha512>(salt),
    }
}

/// `host.signWith`.
pub fn sign_with<'js>(
    ctx: Ctx<'js>,
    scheme: String,
    hash: String,
    der: TypedArray<'js, u8>,
    data: TypedArray<'js, u8>,
    salt: usize,
) -> Result<TypedArray<'js, u8>> {
    let hash = Hash::named(&hash).ok_or_else(|| fail(&ctx, format!("unknown hash {hash}")))?;
    // SAFETY: no JavaScript runs while the slices are alive (see `bytes_of`).
    let (der, data) = unsafe { (bytes_of(&der), bytes_of(&data)) };
    let digest = prehash(hash, data);
    let signed = match scheme.as_str() {
        "RSASSA-PKCS1-v1_5" | "RSA-PSS" => RsaPrivateKey::from_pkcs8_der(der)
            .map_err(|e| e.to_string())
            .and_then(|key| {
                if scheme == "RSA-PSS" {
                    key.sign_with_rng(&mut rand_core::OsRng, pss(hash, salt), &digest)
                } else {
                    key.sign(pkcs1(hash), &digest)
                }
                .map_err(|e| e.to_string())
            }),
        "ECDSA:P-256" => p256::sign(der, &digest),
        "ECDSA:P-384" => p384::sign(der, &digest),
        other => Err(format!("unknown signature scheme {other}")),
    };
    TypedArray::new(ctx.clone(), signed.map_err(|message| fail(&ctx, message))?)
}

/// `host.verifyWith`: false for a signature that does not match (or is malformed).
pub fn verify_with<'js>(
    ctx: Ctx<'js>,
    scheme: String,
    hash: String,
    der: TypedArray<'js, u8>,
    signature: Value<'js>,
    data: TypedArray<'js, u8>,
    salt: usize,
) -> Result<bool> {
    let hash = Hash::named(&hash).ok_or_else(|| fail(&ctx, format!("unknown hash {hash}")))?;
    let signature: TypedArray<'js, u8> = signature.get()?;
    // SAFETY: no JavaScript runs while the slices are alive (see `bytes_of`).
    let (der, signature, data) = unsafe { (bytes_of(&der), bytes_of(&signature), bytes_of(&data)) };
    let digest = prehash(hash, data);
    let verified = match scheme.as_str() {
        "RSASSA-PKCS1-v1_5" | "RSA-PSS" => {
            let key = RsaPublicKey::from_public_key_der(der).map_err(|e| fail(&ctx, e))?;
            if scheme == "RSA-PSS" {
                key.verify(pss(hash, salt), &digest, signature).is_ok()
            } else {
                key.verify(pkcs1(hash), &digest, signature).is_ok()
            }
        }
        "ECDSA:P-256" => p256::verify(der, &digest, signature).map_err(|m| fail(&ctx, m))?,
        "ECDSA:P-384" => p384::verify(der, &digest, signature).map_err(|m| fail(&ctx, m))?,
        other => return Err(fail(&ctx, format!("unknown signature scheme {other}"))),
    };
    Ok(verified)
}

/// `host.aesGcm(encrypt, key, iv, additionalData, tagBits, data)`: AES-GCM with a 128, 192
/// or 256-bit key; the ciphertext carries the tag at its end, as WebCrypto has it.
#[allow(
    clippy::too_many_arguments,
    reason = "the WebCrypto parameters, one by one"
)]
pub fn aes_gcm<'js>(
    ctx: Ctx<'js>,
    encrypt: bool,
    key: TypedArray<'js, u8>,
    iv: TypedArray<'js, u8>,
    aad: TypedArray<'js, u8>,
    tag_bits: usize,
    data: TypedArray<'js, u8>,
) -> Result<TypedArray<'js, u8>> {
    use aes_gcm::aead::KeyInit as _;
    use aes_gcm::aead::consts::U12;
    // SAFETY: no JavaScript runs while the slices are alive (see `bytes_of`).
    let (key, iv, aad, data) = unsafe {
        (
            bytes_of(&key),
            bytes_of(&iv),
            bytes_of(&aad),
            bytes_of(&data),
        )
    };
    if tag_bits != 128 {
        return Err(fail(
            &ctx,
            format!("a tagLength of {tag_bits} is not supported (128)"),
        ));
    }
    if iv.len() != 12 {
        return Err(fail(
            &ctx,
            format!("an iv of {} bytes is not supported (12)", iv.len()),
        ));
    }
    let nonce = aes_gcm::Nonce::<U12>::from_slice(iv);
    fn run<C: aes_gcm::aead::KeyInit + aes_gcm::aead::AeadInPlace<NonceSize = U12>>(
        cipher: C,
        encrypt: bool,
        nonce: &aes_gcm::Nonce<U12>,
        aad: &[u8],
        data: &[u8],
    ) -> std::result::Result<Vec<u8>, String> {
        let mut buffer = data.to_vec();
        if encrypt {
            cipher
                .encrypt_in_place(nonce, aad, &mut buffer)
                .map_err(|_| "the data cannot be encrypted".to_owned())?;
        } else {
            cipher
                .decrypt_in_place(nonce, aad, &mut buffer)
                .map_err(|_| {
                    "the data is not authentic (wrong key, iv, additional data or tag)".to_owned()
                })?;
        }
        Ok(buffer)
    }
    let out = match key.len() {
        16 => run(
            aes_gcm::Aes128Gcm::new_from_slice(key).map_err(|e| fail(&ctx, e))?,
            encrypt,
            nonce,
            aad,
            data,
        ),
        24 => run(
            aes_gcm::AesGcm::<aes::Aes192, U12>::new_from_slice(key).map_err(|e| fail(&ctx, e))?,
            encrypt,
            nonce,
            aad,
            data,
        ),
        32 => run(
            aes_gcm::Aes256Gcm::new_from_slice(key).map_err(|e| fail(&ctx, e))?,
            encrypt,
            nonce,
            aad,
            data,
        ),
        n => Err(format!(
            "an AES key of {} bits is not supported (128, 192, 256)",
            n * 8
        )),
    };
    TypedArray::new(ctx.clone(), out.map_err(|message| fail(&ctx, message))?)
}

/// `host.pbkdf2(hash, password, salt, iterations, bits)`.
pub fn pbkdf2<'js>(
    ctx: Ctx<'js>,
    hash: String,
    password: TypedArray<'js, u8>,
    salt: TypedArray<'js, u8>,
    iterations: u32,
    bits: usize,
) -> Result<TypedArray<'js, u8>> {
    let hash = Hash::named(&hash).ok_or_else(|| fail(&ctx, format!("unknown hash {hash}")))?;
    if iterations == 0 || bits == 0 || !bits.is_multiple_of(8) {
        return Err(fail(
            &ctx,
            "PBKDF2 needs iterations > 0 and a length that is a positive multiple of 8",
        ));
    }
    // SAFETY: no JavaScript runs while the slices are alive (see `bytes_of`).
    let (password, salt) = unsafe { (bytes_of(&password), bytes_of(&salt)) };
    let mut out = vec![0; bits / 8];
    match hash {
        Hash::Sha1 => pbkdf2::pbkdf2_hmac::<sha1::Sha1>(password, salt, iterations, &mut out),
        Hash::Sha256 => pbkdf2::pbkdf2_hmac::<sha2::Sha256>(password, salt, iterations, &mut out),
        Hash::Sha384 => pbkdf2::pbkdf2_hmac::<sha2::Sha384>(password, salt, iterations, &mut out),
        Hash::Sha512 => pbkdf2::pbkdf2_hmac::<sha2::Sha512>(password, salt, iterations, &mut out),
    }
    TypedArray::new(ctx, out)
}

/// `host.hkdf(hash, key, salt, info, bits)`.
pub fn hkdf<'js>(
    ctx: Ctx<'js>,
    hash: String,
    key: TypedArray<'js, u8>,
    salt: TypedArray<'js, u8>,
    info: TypedArray<'js, u8>,
    bits: usize,
) -> Result<TypedArray<'js, u8>> {
    let hash = Hash::named(&hash).ok_or_else(|| fail(&ctx, format!("unknown hash {hash}")))?;
    if bits == 0 || !bits.is_multiple_of(8) {
        return Err(fail(
            &ctx,
            "HKDF needs a length that is a positive multiple of 8",
        ));
    }
    // SAFETY: no JavaScript runs while the slices are alive (see `bytes_of`).
    let (key, salt, info) = unsafe { (bytes_of(&key), bytes_of(&salt), bytes_of(&info)) };
    let mut out = vec![0; bits / 8];
    let expanded = match hash {
        Hash::Sha1 => hkdf::Hkdf::<sha1::Sha1>::new(Some(salt), key).expand(info, &mut out),
        Hash::Sha256 => hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), key).expand(info, &mut out),
        Hash::Sha384 => hkdf::Hkdf::<sha2::Sha384>::new(Some(salt), key).expand(info, &mut out),
        Hash::Sha512 => hkdf::Hkdf::<sha2::Sha512>::new(Some(salt), key).expand(info, &mut out),
    };
    expanded.map_err(|_| {
        fail(
            &ctx,
            format!("HKDF cannot derive {bits} bits with this hash"),
        )
    })?;
    TypedArray::new(ctx, out)
}
