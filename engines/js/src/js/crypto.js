// crypto.js: crypto.getRandomValues, crypto.randomUUID (WASI random) and the part of
// crypto.subtle that web frameworks use: digest (SHA-1/256/384/512) and HMAC keys
// (importKey "raw"/"jwk", generateKey, sign, verify, exportKey). The hashing runs in Rust.
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

function notSupported(method, name) {
  return Promise.reject(new DOMException(`crypto.subtle.${method}: ${name ? name + " is" : "this operation is"} not supported by the wws JavaScript engine (supported: digest, and HMAC importKey/generateKey/sign/verify/exportKey)`, "NotSupportedError"));
}

const HASH_BLOCK = { "SHA-1": 64, "SHA-256": 64, "SHA-384": 128, "SHA-512": 128 };
let keyBytes;

class CryptoKey {
  #bytes;
  #algorithm;
  #extractable;
  #usages;

  constructor(key, bytes, algorithm, extractable, usages) {
    if (key !== cryptoKeyKey) throw new TypeError("CryptoKey: illegal constructor");
    this.#bytes = bytes;
    this.#algorithm = algorithm;
    this.#extractable = extractable;
    this.#usages = usages;
  }

  static {
    keyBytes = (key) => key.#bytes;
  }

  get type() {
    return "secret";
  }

  get extractable() {
    return this.#extractable;
  }

  get algorithm() {
    return { ...this.#algorithm, hash: { ...this.#algorithm.hash } };
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
      if (format === "raw") return copyToArrayBuffer(keyBytes(key));
      if (format === "jwk") return { kty: "oct", k: bytesToBase64url(keyBytes(key)), alg: "HS" + key.algorithm.hash.name.slice(4), ext: true, key_ops: key.usages };
      return notSupported("exportKey", `the key format ${JSON.stringify(format)}`);
    });
  },
  sign(algorithm, key, data) {
    return asPromise(() => {
      if (algorithmName(algorithm).toUpperCase() !== "HMAC") return notSupported("sign", algorithmName(algorithm));
      checkHmacKey(key, "sign", "sign");
      return copyToArrayBuffer(host.hmac(key.algorithm.hash.name, keyBytes(key), bufferSourceBytes(data, "the data")));
    });
  },
  verify(algorithm, key, signature, data) {
    return asPromise(() => {
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
  encrypt: () => notSupported("encrypt"),
  decrypt: () => notSupported("decrypt"),
  deriveBits: () => notSupported("deriveBits"),
  deriveKey: () => notSupported("deriveKey"),
  wrapKey: () => notSupported("wrapKey"),
  unwrapKey: () => notSupported("unwrapKey"),
};
Object.defineProperty(subtle, Symbol.toStringTag, { value: "SubtleCrypto" });

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
