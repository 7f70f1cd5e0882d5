// headers.js: Headers after the Fetch standard: case-insensitive, multi-valued, iterable.
//
// Stored as an ordered list of [lowercase name, value]. `append` keeps every value, `get`
// joins them with ", ", `getSetCookie` returns Set-Cookie values one by one, and iteration
// yields names sorted and combined (Set-Cookie values stay separate), as browsers do.

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

// Names already checked, as written -> lowercase: the regex and toLowerCase cost more than the
// rest of an append. Bounded; the common names are in the snapshot from the engine's warm-up.
const checkedNames = new Map();

function headerName(name) {
  if (typeof name !== "string") name = String(name);
  let lower = checkedNames.get(name);
  if (lower !== undefined) return lower;
  if (!TOKEN.test(name)) throw new TypeError(`Headers: ${JSON.stringify(name)} is not a valid header name`);
  lower = name.toLowerCase();
  if (checkedNames.size < 256) checkedNames.set(name, lower);
  return lower;
}

function isHTTPWhitespace(code) {
  return code === 0x20 || code === 0x09 || code === 0x0a || code === 0x0d;
}

function headerValue(value) {
  if (typeof value !== "string") value = String(value);
  let start = 0;
  let end = value.length;
  while (start < end && isHTTPWhitespace(value.charCodeAt(start))) start++;
  while (end > start && isHTTPWhitespace(value.charCodeAt(end - 1))) end--;
  if (start !== 0 || end !== value.length) value = value.slice(start, end);
  if (value.indexOf("\n") >= 0 || value.indexOf("\r") >= 0 || value.indexOf("\0") >= 0) {
    throw new TypeError(`Headers: ${JSON.stringify(value)} is not a valid header value`);
  }
  return value;
}

let headersList;
let headersSetImmutable;
let headersFromList;
let headersAppendTrusted;
let headersGetTrusted;

class Headers {
  #list = [];
  #immutable = false;

  constructor(init) {
    if (init === undefined || init === null) return;
    if (init instanceof Headers) {
      this.#list = pairsCopy(init.#list);
    } else if (typeof init === "object" || typeof init === "function") {
      if (typeof init[Symbol.iterator] === "function") {
        for (const pair of init) {
          const items = typeof pair === "string" ? [pair] : Array.from(pair);
          if (items.length !== 2) throw new TypeError("Headers: each header must be a [name, value] pair");
          this.append(items[0], items[1]);
        }
      } else if (Object.getPrototypeOf(init) === Object.prototype) {
        // A plain object literal, the common case: its own enumerable string keys, in order.
        const keys = Object.keys(init);
        for (let i = 0; i < keys.length; i++) {
          const value = init[keys[i]];
          if (Array.isArray(value)) for (const v of value) this.append(keys[i], v);
          else this.append(keys[i], value);
        }
      } else {
        for (const key of Reflect.ownKeys(init)) {
          const desc = Object.getOwnPropertyDescriptor(init, key);
          if (!desc || !desc.enumerable || typeof key === "symbol") continue;
          const value = init[key];
          // The wws host may send a repeated request header as an array of values.
          if (Array.isArray(value)) for (const v of value) this.append(key, v);
          else this.append(key, value);
        }
      }
    } else {
      throw new TypeError("Headers: the init argument must be an object, an array of pairs or a Headers");
    }
  }

  static {
    // Headers from the wws host, as [[lowercase name, value], ...]: taken as they are.
    headersFromList = (list) => {
      const headers = new Headers();
      headers.#list = list;
      return headers;
    };
    headersList = (headers) => headers.#list;
    headersAppendTrusted = (headers, name, value) => {
      headers.#list.push([name, value]);
    };
    // get() for a name the engine knows is lowercase and valid (no checks).
    headersGetTrusted = (headers, name) => {
      const list = headers.#list;
      let out = null;
      for (let i = 0; i < list.length; i++) {
        if (list[i][0] === name) out = out === null ? list[i][1] : out + ", " + list[i][1];
      }
      return out;
    };
    headersSetImmutable = (headers) => {
      headers.#immutable = true;
    };
  }

  #check() {
    if (this.#immutable) throw new TypeError("Headers: these headers are immutable");
  }

  append(name, value) {
    this.#check();
    this.#list.push([headerName(name), headerValue(value)]);
  }

  delete(name) {
    this.#check();
    name = headerName(name);
    this.#list = pairsWithout(this.#list, (pair) => pair[0] === name);
  }

  get(name) {
    name = headerName(name);
    let out = null;
    for (let i = 0; i < this.#list.length; i++) {
      if (this.#list[i][0] === name) out = out === null ? this.#list[i][1] : out + ", " + this.#list[i][1];
    }
    return out;
  }

  getSetCookie() {
    return pairValues(this.#list, "set-cookie");
  }

  has(name) {
    name = headerName(name);
    return pairIndex(this.#list, name) >= 0;
  }

  set(name, value) {
    this.#check();
    this.#list = pairsSet(this.#list, [headerName(name), headerValue(value)]);
  }

  // Sorted by name and combined, Set-Cookie values kept apart (the Fetch "sort and combine").
  #combined() {
    const names = [...new Set(this.#list.map(([k]) => k))].sort();
    const out = [];
    for (const name of names) {
      if (name === "set-cookie") for (const v of this.getSetCookie()) out.push([name, v]);
      else out.push([name, this.get(name)]);
    }
    return out;
  }

  forEach(callback, thisArg) {
    for (const [k, v] of this.#combined()) callback.call(thisArg, v, k, this);
  }

  *entries() {
    yield* this.#combined();
  }

  *keys() {
    for (const [k] of this.#combined()) yield k;
  }

  *values() {
    for (const [, v] of this.#combined()) yield v;
  }

  [Symbol.iterator]() {
    return this.entries();
  }

  [inspectSymbol]() {
    const entries = this.#combined().map(([k, v]) => inspect(k) + " => " + inspect(v));
    return "Headers {" + (entries.length ? " " + entries.join(", ") + " " : "") + "}";
  }
}
tag(Headers, "Headers");

defineGlobal("Headers", Headers);
