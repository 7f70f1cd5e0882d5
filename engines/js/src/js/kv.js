// kv.js: the worker's key/value namespace, two ways over the same per-request snapshot.
//
// - `Cache.get(key)` / `Cache.set(key, value)`: the original wws API (synchronous). Values are
//   stored as strings: `Cache.set("counter", count + 1)` stores "2"; objects are stored as JSON.
//   `Cache.delete(key)` is an addition.
// - `env.KV`: a Cloudflare-KV-style binding with async get/put/delete/list/getWithMetadata.
//
// The host sends the namespace as `kv` in the request and receives it back, whole, as `kv`
// in the output (keys the worker deleted as null); it writes back only the keys that changed.

let kvState = Object.create(null);
// Keys of the request's snapshot that the worker deleted: sent back as null (removed).
let kvDeleted = new Set();
// Whether this request was told that KV.put's options are ignored.
let kvOptionsWarned = false;
// The namespace is empty and nothing could have changed it since it was set: a request with
// an empty namespace then neither builds a new one nor lists it for the output.
let kvEmptyAndUntouched = false;
const NO_KV_PAIRS = Object.freeze([]);

function kvDelete(key) {
  if (Object.prototype.hasOwnProperty.call(kvState, key)) {
    delete kvState[key];
    kvDeleted.add(key);
  }
}

function kvSet(key, value) {
  kvEmptyAndUntouched = false;
  kvState[key] = value;
  kvDeleted.delete(key);
}

// The namespace for the output as [key, value] pairs: every key with its value, deleted
// ones with null.
function kvForOutput() {
  if (kvEmptyAndUntouched) return NO_KV_PAIRS;
  const out = [];
  if (kvDeleted.size) for (const key of kvDeleted) out.push([key, null]);
  for (const key in kvState) out.push([key, kvState[key]]);
  return out;
}

// Values are text (the protocol's, and the original's): bytes are stored as their UTF-8 text,
// and bytes that are not UTF-8 are refused rather than altered.
function kvText(bytes, method) {
  try {
    return utf8Decode(bytes, true);
  } catch {
    throw new TypeError(`${method}: the value's bytes are not UTF-8 text, and key/value values are text in wws: encode binary data first (for example as base64 with btoa)`);
  }
}

function kvString(value, method) {
  if (typeof value === "string") return value;
  if (value !== null && typeof value === "object") {
    const view = viewOf(value);
    if (view) return kvText(view, method);
    // The incoming request's body or text() (see `readingAsText`): its text, as the original stored it.
    if (Object.hasOwn(value, Symbol.toPrimitive)) return String(value);
    const json = JSON.stringify(value);
    return json === undefined ? String(value) : json;
  }
  return String(value);
}

const Cache = {
  get(key) {
    key = String(key);
    return Object.prototype.hasOwnProperty.call(kvState, key) ? kvState[key] : undefined;
  },
  set(key, value) {
    kvSet(String(key), kvString(value, "Cache.set"));
  },
  delete(key) {
    kvDelete(String(key));
  },
  get state() {
    // The worker may change the object itself.
    kvEmptyAndUntouched = false;
    return kvState;
  },
};
Object.defineProperty(Cache, Symbol.toStringTag, { value: "Cache" });
defineGlobal("Cache", Cache);

function kvRead(value, type) {
  if (value === null) return null;
  switch (type) {
    case undefined:
    case "text":
      return value;
    case "json":
      return JSON.parse(value);
    case "arrayBuffer":
      return copyToArrayBuffer(utf8Encode(value));
    case "stream":
      return streamOfBytes(utf8Encode(value));
    default:
      throw new TypeError(`KV.get: unknown type ${JSON.stringify(type)} (use "text", "json", "arrayBuffer" or "stream")`);
  }
}

// Runs `fn` and returns its result as a promise, so that errors become rejections.
function asPromise(fn) {
  return new Promise((resolve) => resolve(fn()));
}

const KV = {
  get(key, options) {
    return asPromise(() => {
      const type = typeof options === "string" ? options : options && options.type;
      key = String(key);
      const value = Object.prototype.hasOwnProperty.call(kvState, key) ? kvState[key] : null;
      return kvRead(value, type);
    });
  },
  getWithMetadata(key, options) {
    return this.get(key, options).then((value) => ({ value, metadata: null }));
  },
  put(key, value, options) {
    return asPromise(() => {
      if (options && !kvOptionsWarned && ["expiration", "expirationTtl", "metadata"].some((name) => options[name] !== undefined)) {
        kvOptionsWarned = true;
        host.writeErr("[warn] KV.put: expiration, expirationTtl and metadata are not supported by wws; the value is stored without them");
      }
      if (value instanceof ReadableStream) return readAllBytes(value).then((b) => kvSet(String(key), kvText(b, "KV.put")));
      kvSet(String(key), kvString(value, "KV.put"));
      return undefined;
    });
  },
  delete(key) {
    return asPromise(() => {
      kvDelete(String(key));
    });
  },
  list(options = {}) {
    return asPromise(() => {
      const prefix = options && options.prefix !== undefined && options.prefix !== null ? String(options.prefix) : "";
      const limit = options && options.limit !== undefined ? Math.max(1, Math.min(1000, Number(options.limit) || 1000)) : 1000;
      const start = options && options.cursor ? Number(options.cursor) || 0 : 0;
      const names = Object.keys(kvState)
        .filter((k) => k.startsWith(prefix))
        .sort();
      const page = names.slice(start, start + limit).map((name) => ({ name }));
      const complete = start + limit >= names.length;
      return complete ? { keys: page, list_complete: true, cacheStatus: null } : { keys: page, list_complete: false, cursor: String(start + limit), cacheStatus: null };
    });
  },
};
Object.defineProperty(KV, Symbol.toStringTag, { value: "KVNamespace" });

// The request's namespace, as [[key, value], ...] (see src/request.rs).
function setKvPairs(pairs) {
  if (kvOptionsWarned) kvOptionsWarned = false;
  if (pairs.length === 0 && kvEmptyAndUntouched) return;
  kvState = Object.create(null);
  if (kvDeleted.size !== 0) kvDeleted = new Set();
  for (let i = 0; i < pairs.length; i++) kvState[pairs[i][0]] = pairs[i][1];
  kvEmptyAndUntouched = pairs.length === 0;
}
