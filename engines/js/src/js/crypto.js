// crypto.js: crypto.getRandomValues, crypto.randomUUID (WASI random) and the part of
// crypto.subtle that web frameworks and JWT libraries use: digest (SHA-1/256/384/512), HMAC
// keys (importKey "raw"/"jwk", generateKey, sign, verify, exportKey), RSASSA-PKCS1-v1_5,
// RSA-PSS and ECDSA (P-256, P-384) keys imported from "spki"/"pkcs8"/"jwk" (and "raw" EC
// public keys) to sign and verify, AES-GCM keys to encrypt and decrypt, and PBKDF2 and HKDF
// to derive bits and keys (src/subtle.rs). The hashing, signing and ciphers run in Rust.
// Other algorithms reject with NotSupportedError.

const INTEGER_ARRAYS = [Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array, BigInt64Array, BigUint64Array];

// Random values drawn at the top level are frozen into the snapshot: every request, and every
// start until the file changes, sees the same ones. Said once, when it happens.
let warnedFrozenRandom = false;

function randomAtTopLevel(what) {
  if (!workerLoading || warnedFrozenRandom) return;
  warnedFrozenRandom = true;
  host.writeErr(
    `[warn] ${workerFile} called ${what} while loading: the value is computed once, when wws prepares the worker, ` +
      "and every request (and every start until the file changes) gets the same one; call it inside the fetch handler for a fresh value",
  );
}

function getRandomValues(array) {
  randomAtTopLevel("crypto.getRandomValues()");
  if (!INTEGER_ARRAYS.some((T) => array instanceof T)) {
    throw new DOMException("crypto.getRandomValues: the argument must be an integer typed array", "TypeMismatchError");
  }
  if (array.byteLength > 65536) {
    throw new DOMException(`crypto.getRandomValues: ${array.byteLength} bytes requested, the limit is 65536`, "QuotaExceededError");
  }
  viewOf(array).set(host.randomBytes(array.byteLength));
  return array;
}

function randomUUID() {
  randomAtTopLevel("crypto.randomUUID()");
  const b = host.randomBytes(16);
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
}

function algorithmName(algorithm) {
  const name = typeof algorithm === "string" ? algorithm : algorithm && algorithm.name;
  if (typeof name !== "string") throw new TypeError("crypto.subtle: the algorithm must be a name or an object with a name");
  return name;
}

function hashName(hash) {
  return algorithmName(hash).toUpperCase();
}

function bufferSourceBytes(data, what) {
  const view = viewOf(data);
  if (!view) throw new TypeError(`crypto.subtle: ${what} must be an ArrayBuffer, a typed array or a DataView`);
  return view;
}

function unsupported(method, name) {
  return new DOMException(`crypto.subtle.${method}: ${name ? name + " is" : "this operation is"} not supported by the wws JavaScript engine (supported: digest; HMAC; RSASSA-PKCS1-v1_5, RSA-PSS and ECDSA P-256/P-384 signatures; AES-GCM; PBKDF2 and HKDF)`, "NotSupportedError");
}

function notSupported(method, name) {
  return Promise.reject(unsupported(method, name));
}

// Signature algorithms with asymmetric keys, by their upper-case names: the kind of key
// (src/subtle.rs) and the WebCrypto name.
const ASYMMETRIC = { "RSASSA-PKCS1-V1_5": ["RSA", "RSASSA-PKCS1-v1_5"], "RSA-PSS": ["RSA", "RSA-PSS"], ECDSA: ["EC", "ECDSA"] };

const HASH_BLOCK = { "SHA-1": 64, "SHA-256": 64, "SHA-384": 128, "SHA-512": 128 };
let keyBytes;

class CryptoKey {
  #bytes;
  #algorithm;
  #extractable;
  #usages;
  #type;

  // `bytes`: an HMAC key's secret, or an asymmetric key's DER (SPKI or PKCS#8).
  constructor(key, bytes, algorithm, extractable, usages, type = "secret") {
    if (key !== cryptoKeyKey) throw new TypeError("CryptoKey: illegal constructor");
    this.#bytes = bytes;
    this.#algorithm = algorithm;
    this.#extractable = extractable;
    this.#usages = usages;
    this.#type = type;
  }

  static {
    keyBytes = (key) => key.#bytes;
  }

  get type() {
    return this.#type;
  }

  get extractable() {
    return this.#extractable;
  }

  get algorithm() {
    const algorithm = { ...this.#algorithm };
    if (algorithm.hash) algorithm.hash = { ...algorithm.hash };
    return algorithm;
  }

  get usages() {
    return this.#usages.slice();
  }
}
tag(CryptoKey, "CryptoKey");
const cryptoKeyKey = Symbol("CryptoKey");

function hmacKey(bytes, algorithm, extractable, usages) {
  const hash = hashName(algorithm.hash);
  if (!HASH_BLOCK[hash]) throw new DOMException(`crypto.subtle: the hash ${hash} is not supported`, "NotSupportedError");
  for (const usage of usages) {
    if (usage !== "sign" && usage !== "verify") throw new SyntaxError(`crypto.subtle: an HMAC key cannot be used to ${usage}`);
  }
  return new CryptoKey(cryptoKeyKey, bytes, { name: "HMAC", hash: { name: hash }, length: bytes.length * 8 }, Boolean(extractable), Array.from(usages));
}

function checkHmacKey(key, usage, method) {
  if (!(key instanceof CryptoKey)) throw new TypeError(`crypto.subtle.${method}: the key must be a CryptoKey`);
  if (key.algorithm.name !== "HMAC") throw new DOMException(`crypto.subtle.${method}: the key is not an HMAC key`, "InvalidAccessError");
  if (!key.usages.includes(usage)) throw new DOMException(`crypto.subtle.${method}: the key's usages do not include "${usage}"`, "InvalidAccessError");
}

function base64urlToBytes(text) {
  const b64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
  const latin1 = atob(b64);
  return latin1ToBytes(latin1);
}

function bytesToBase64url(bytes) {
  return host.b64Encode(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

const subtle = {
  digest(algorithm, data) {
    return asPromise(() => copyToArrayBuffer(host.digest(algorithmName(algorithm), bufferSourceBytes(data, "the data"))));
  },
  importKey(format, keyData, algorithm, extractable, usages) {
    return asPromise(() => {
      const name = algorithmName(algorithm);
      if (ASYMMETRIC[name.toUpperCase()]) return importAsymmetric(format, keyData, algorithm, extractable, usages);
      if (SECRET[name.toUpperCase()]) return importSecret(format, keyData, algorithm, extractable, usages);
      if (name.toUpperCase() !== "HMAC") return notSupported("importKey", name);
      let bytes;
      if (format === "raw") bytes = bufferSourceBytes(keyData, "the key data").slice();
      else if (format === "jwk") {
        if (!keyData || keyData.kty !== "oct" || typeof keyData.k !== "string") throw new DataError("crypto.subtle.importKey: an HMAC JWK needs kty \"oct\" and k");
        bytes = base64urlToBytes(keyData.k);
      } else return notSupported("importKey", `the key format ${JSON.stringify(format)}`);
      return hmacKey(bytes, algorithm, extractable, usages);
    });
  },
  generateKey(algorithm, extractable, usages) {
    return asPromise(() => {
      const name = algorithmName(algorithm);
      if (name.toUpperCase() === "AES-GCM") {
        const bits = Number(algorithm.length);
        if (![128, 192, 256].includes(bits)) throw new DOMException("crypto.subtle.generateKey: an AES-GCM key is 128, 192 or 256 bits long", "OperationError");
        return secretKey(host.randomBytes(bits / 8), "AES-GCM", extractable, usages, "generateKey");
      }
      if (name.toUpperCase() !== "HMAC") return notSupported("generateKey", name);
      const hash = hashName(algorithm.hash);
      const length = algorithm.length ? Math.ceil(Number(algorithm.length) / 8) : HASH_BLOCK[hash] || 64;
      return hmacKey(host.randomBytes(length), algorithm, extractable, usages);
    });
  },
  exportKey(format, key) {
    return asPromise(() => {
      if (!(key instanceof CryptoKey)) throw new TypeError("crypto.subtle.exportKey: the key must be a CryptoKey");
      if (!key.extractable) throw new DOMException("crypto.subtle.exportKey: the key is not extractable", "InvalidAccessError");
      if (key.type !== "secret") {
        if ((format === "spki" && key.type === "public") || (format === "pkcs8" && key.type === "private")) return copyToArrayBuffer(keyBytes(key));
        return notSupported("exportKey", `exporting a ${key.type} key as ${JSON.stringify(format)}`);
      }
      if (key.algorithm.name === "AES-GCM") {
        if (format === "raw") return copyToArrayBuffer(keyBytes(key));
        if (format === "jwk") return { kty: "oct", k: bytesToBase64url(keyBytes(key)), alg: `A${key.algorithm.length}GCM`, ext: true, key_ops: key.usages };
        return notSupported("exportKey", `the key format ${JSON.stringify(format)}`);
      }
      if (format === "raw") return copyToArrayBuffer(keyBytes(key));
      if (format === "jwk") return { kty: "oct", k: bytesToBase64url(keyBytes(key)), alg: "HS" + key.algorithm.hash.name.slice(4), ext: true, key_ops: key.usages };
      return notSupported("exportKey", `the key format ${JSON.stringify(format)}`);
    });
  },
  sign(algorithm, key, data) {
    return asPromise(() => {
      if (ASYMMETRIC[algorithmName(algorithm).toUpperCase()]) {
        const [scheme, hash, salt] = signatureScheme(algorithm, key, "sign");
        try {
          return copyToArrayBuffer(host.signWith(scheme, hash, keyBytes(key), bufferSourceBytes(data, "the data"), salt));
        } catch (error) {
          throw new DOMException(`crypto.subtle.sign: ${error.message}`, "OperationError");
        }
      }
      if (algorithmName(algorithm).toUpperCase() !== "HMAC") return notSupported("sign", algorithmName(algorithm));
      checkHmacKey(key, "sign", "sign");
      return copyToArrayBuffer(host.hmac(key.algorithm.hash.name, keyBytes(key), bufferSourceBytes(data, "the data")));
    });
  },
  verify(algorithm, key, signature, data) {
    return asPromise(() => {
      if (ASYMMETRIC[algorithmName(algorithm).toUpperCase()]) {
        const [scheme, hash, salt] = signatureScheme(algorithm, key, "verify");
        const given = bufferSourceBytes(signature, "the signature");
        try {
          return host.verifyWith(scheme, hash, keyBytes(key), given, bufferSourceBytes(data, "the data"), salt);
        } catch (error) {
          throw new DOMException(`crypto.subtle.verify: ${error.message}`, "OperationError");
        }
      }
      if (algorithmName(algorithm).toUpperCase() !== "HMAC") return notSupported("verify", algorithmName(algorithm));
      checkHmacKey(key, "verify", "verify");
      const expected = host.hmac(key.algorithm.hash.name, keyBytes(key), bufferSourceBytes(data, "the data"));
      const given = bufferSourceBytes(signature, "the signature");
      if (given.length !== expected.length) return false;
      let diff = 0;
      for (let i = 0; i < expected.length; i++) diff |= expected[i] ^ given[i];
      return diff === 0;
    });
  },
  encrypt(algorithm, key, data) {
    return asPromise(() => aesGcm(true, algorithm, key, data));
  },
  decrypt(algorithm, key, data) {
    return asPromise(() => aesGcm(false, algorithm, key, data));
  },
  deriveBits(algorithm, baseKey, length) {
    return asPromise(() => copyToArrayBuffer(derive(algorithm, baseKey, length, "deriveBits")));
  },
  deriveKey(algorithm, baseKey, derivedKeyAlgorithm, extractable, usages) {
    return asPromise(() => {
      const name = algorithmName(derivedKeyAlgorithm).toUpperCase();
      let length;
      if (name === "AES-GCM") length = Number(derivedKeyAlgorithm.length);
      else if (name === "HMAC") length = derivedKeyAlgorithm.length ? Number(derivedKeyAlgorithm.length) : HASH_BLOCK[hashName(derivedKeyAlgorithm.hash)] * 8;
      else return notSupported("deriveKey", `deriving a ${algorithmName(derivedKeyAlgorithm)} key`);
      const bits = derive(algorithm, baseKey, length, "deriveKey");
      return subtle.importKey("raw", bits, derivedKeyAlgorithm, extractable, usages);
    });
  },
  wrapKey: () => notSupported("wrapKey"),
  unwrapKey: () => notSupported("unwrapKey"),
};
Object.defineProperty(subtle, Symbol.toStringTag, { value: "SubtleCrypto" });

// Secret keys other than HMAC's: their WebCrypto name and the usages they allow.
const SECRET = {
  "AES-GCM": ["AES-GCM", ["encrypt", "decrypt", "wrapKey", "unwrapKey"]],
  PBKDF2: ["PBKDF2", ["deriveBits", "deriveKey"]],
  HKDF: ["HKDF", ["deriveBits", "deriveKey"]],
};

function secretKey(bytes, name, extractable, usages, method) {
  const [, allowed] = SECRET[name];
  for (const usage of usages) {
    if (!allowed.includes(usage)) throw new SyntaxError(`crypto.subtle.${method}: a ${name} key cannot be used to ${usage}`);
  }
  const described = name === "AES-GCM" ? { name, length: bytes.length * 8 } : { name };
  return new CryptoKey(cryptoKeyKey, bytes, described, Boolean(extractable), Array.from(usages));
}

// An AES-GCM key from raw bytes or a JWK; PBKDF2 and HKDF key material from raw bytes.
function importSecret(format, keyData, algorithm, extractable, usages) {
  const [name] = SECRET[algorithmName(algorithm).toUpperCase()];
  let bytes;
  if (format === "raw") bytes = bufferSourceBytes(keyData, "the key data").slice();
  else if (format === "jwk" && name === "AES-GCM") {
    if (!keyData || keyData.kty !== "oct" || typeof keyData.k !== "string") throw new DataError('crypto.subtle.importKey: an AES JWK needs kty "oct" and k');
    bytes = base64urlToBytes(keyData.k);
  } else return notSupported("importKey", `the key format ${JSON.stringify(format)} for ${name}`);
  if (name === "AES-GCM" && ![16, 24, 32].includes(bytes.length)) throw new DataError(`crypto.subtle.importKey: an AES key is 128, 192 or 256 bits, not ${bytes.length * 8}`);
  if (name !== "AES-GCM" && extractable) throw new SyntaxError(`crypto.subtle.importKey: ${name} key material cannot be extractable`);
  return secretKey(bytes, name, extractable, usages, "importKey");
}

function checkSecretKey(key, name, usage, method) {
  if (!(key instanceof CryptoKey)) throw new TypeError(`crypto.subtle.${method}: the key must be a CryptoKey`);
  if (key.algorithm.name !== name) throw new DOMException(`crypto.subtle.${method}: the key is a ${key.algorithm.name} key, not ${name}`, "InvalidAccessError");
  if (!key.usages.includes(usage)) throw new DOMException(`crypto.subtle.${method}: the key's usages do not include "${usage}"`, "InvalidAccessError");
}

function aesGcm(encrypt, algorithm, key, data) {
  const method = encrypt ? "encrypt" : "decrypt";
  if (algorithmName(algorithm).toUpperCase() !== "AES-GCM") throw unsupported(method, algorithmName(algorithm));
  checkSecretKey(key, "AES-GCM", method, method);
  const iv = bufferSourceBytes(algorithm.iv, "the iv");
  const aad = algorithm.additionalData === undefined ? new Uint8Array(0) : bufferSourceBytes(algorithm.additionalData, "the additionalData");
  const tagLength = algorithm.tagLength === undefined ? 128 : Number(algorithm.tagLength);
  try {
    return copyToArrayBuffer(host.aesGcm(encrypt, keyBytes(key), iv, aad, tagLength, bufferSourceBytes(data, "the data")));
  } catch (error) {
    throw new DOMException(`crypto.subtle.${method}: ${error.message}`, "OperationError");
  }
}

// The bits PBKDF2 or HKDF derive from `baseKey`.
function derive(algorithm, baseKey, length, method) {
  const name = algorithmName(algorithm).toUpperCase();
  if (name !== "PBKDF2" && name !== "HKDF") throw unsupported(method, algorithmName(algorithm));
  checkSecretKey(baseKey, name, method, method);
  const bits = Number(length);
  try {
    if (name === "PBKDF2") return host.pbkdf2(hashName(algorithm.hash), keyBytes(baseKey), bufferSourceBytes(algorithm.salt, "the salt"), Number(algorithm.iterations) >>> 0, bits);
    return host.hkdf(hashName(algorithm.hash), keyBytes(baseKey), bufferSourceBytes(algorithm.salt, "the salt"), bufferSourceBytes(algorithm.info, "the info"), bits);
  } catch (error) {
    throw new DOMException(`crypto.subtle.${method}: ${error.message}`, "OperationError");
  }
}

// An RSA or ECDSA key from SPKI or PKCS#8 DER, a JWK, or (EC public keys) a raw point.
function importAsymmetric(format, keyData, algorithm, extractable, usages) {
  const [kind, name] = ASYMMETRIC[algorithmName(algorithm).toUpperCase()];
  let data;
  if (format === "jwk") {
    if (keyData === null || typeof keyData !== "object") throw new TypeError("crypto.subtle.importKey: a JWK must be an object");
    data = utf8Encode(JSON.stringify(keyData));
  } else if (format === "spki" || format === "pkcs8" || (format === "raw" && kind === "EC")) {
    data = bufferSourceBytes(keyData, "the key data");
  } else {
    return notSupported("importKey", `the key format ${JSON.stringify(format)} for ${name}`);
  }
  const curve = kind === "EC" ? String(algorithm.namedCurve) : "";
  let imported;
  try {
    imported = host.importKey(kind, curve, format, data);
  } catch (error) {
    throw new DataError(`crypto.subtle.importKey: ${error.message}`);
  }
  const [type, der, bits] = imported;
  const allowed = type === "public" ? "verify" : "sign";
  for (const usage of usages) {
    if (usage !== allowed) throw new SyntaxError(`crypto.subtle.importKey: a ${type} ${name} key cannot be used to ${usage}`);
  }
  const described =
    kind === "EC"
      ? { name, namedCurve: curve }
      : { name, hash: { name: hashName(algorithm.hash) }, modulusLength: bits, publicExponent: new Uint8Array([1, 0, 1]) };
  return new CryptoKey(cryptoKeyKey, der, described, Boolean(extractable), Array.from(usages), type);
}

// [scheme, hash, saltLength] for signing or verifying with `key` (src/subtle.rs).
function signatureScheme(algorithm, key, usage) {
  if (!(key instanceof CryptoKey)) throw new TypeError(`crypto.subtle.${usage}: the key must be a CryptoKey`);
  const [, name] = ASYMMETRIC[algorithmName(algorithm).toUpperCase()];
  if (key.algorithm.name !== name) throw new DOMException(`crypto.subtle.${usage}: the key is a ${key.algorithm.name} key, not ${name}`, "InvalidAccessError");
  if (!key.usages.includes(usage)) throw new DOMException(`crypto.subtle.${usage}: the key's usages do not include "${usage}"`, "InvalidAccessError");
  if (name === "ECDSA") return ["ECDSA:" + key.algorithm.namedCurve, hashName(algorithm.hash), 0];
  const salt = name === "RSA-PSS" ? Number(algorithm.saltLength) : 0;
  if (!Number.isInteger(salt) || salt < 0) throw new TypeError(`crypto.subtle.${usage}: RSA-PSS needs a saltLength`);
  return [name, key.algorithm.hash.name, salt];
}

class DataError extends DOMException {
  constructor(message) {
    super(message, "DataError");
  }
}

class Crypto {
  get subtle() {
    return subtle;
  }

  getRandomValues(array) {
    return getRandomValues(array);
  }

  randomUUID() {
    return randomUUID();
  }
}
tag(Crypto, "Crypto");
defineGlobal("Crypto", Crypto);
defineGlobal("CryptoKey", CryptoKey);
defineGlobal("crypto", new Crypto());
