// prelude.js: helpers shared by every polyfill file.
//
// All the polyfill files are concatenated into ONE function body (see src/polyfills.rs), so
// they share this scope and nothing here leaks to the worker unless it is defined as a global
// with `defineGlobal`. The function receives `host`, the few primitives written in Rust
// (random bytes, clocks, UTF-8 and base64 fast paths, stderr), and returns `internal`, the
// object the Rust side drives (handle a request, run timers, format errors).

// The built-ins the polyfills use, taken before any worker code runs: a worker that replaces a
// global (a Promise library, a patched JSON) cannot break the engine's own request handling.
const { Array, ArrayBuffer, Date, Error, JSON, Map, Math, Number, Object, Promise, RangeError, Reflect, RegExp, Set, String, Symbol, SyntaxError, TypeError, Uint8Array } = globalThis;

const internal = {};

// True while the worker's top level runs (before the snapshot is taken): what it computes then
// is part of the snapshot, shared by every request.
let workerLoading = true;

// Globals are defined the way Web IDL defines them: writable, configurable, not enumerable.
function defineGlobal(name, value) {
  Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}

// Gives a class the `[object Name]` tag browsers show.
function tag(cls, name) {
  Object.defineProperty(cls.prototype, Symbol.toStringTag, { value: name, configurable: true });
}

// Node's inspection hook: console.log(headers) shows the entries instead of `Headers {}`.
const inspectSymbol = Symbol.for("nodejs.util.inspect.custom");

const TypedArray = Object.getPrototypeOf(Uint8Array);

// A `BufferSource` (ArrayBuffer, typed array or DataView) as a Uint8Array view of the same
// memory, or null when `value` is not one.
function viewOf(value) {
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  if (typeof SharedArrayBuffer === "function" && value instanceof SharedArrayBuffer) return new Uint8Array(value);
  return null;
}

// A copy of the bytes of `view` in a fresh ArrayBuffer of exactly that length.
function copyToArrayBuffer(view) {
  return view.buffer.slice(view.byteOffset, view.byteOffset + view.byteLength);
}

// JS strings may hold lone surrogates; everything that leaves JS as UTF-8 goes through this.
function wellFormed(string) {
  return string.isWellFormed() ? string : string.toWellFormed();
}

function utf8Encode(string) {
  return host.utf8Encode(wellFormed(String(string)));
}

function utf8Decode(bytes, fatal) {
  return host.utf8Decode(viewOf(bytes), fatal === true);
}

// Concatenates Uint8Arrays.
function concatBytes(chunks) {
  let length = 0;
  for (const chunk of chunks) length += chunk.byteLength;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

// Lists of [name, value] pairs (Headers, URLSearchParams, FormData) are searched with plain
// loops: in QuickJS a callback such as `list.some(([k]) => k === name)` costs four times a loop
// step, most of it for destructuring the pair through the iterator protocol.

// The index of the first pair named `name`, or -1.
function pairIndex(list, name) {
  for (let i = 0; i < list.length; i++) if (list[i][0] === name) return i;
  return -1;
}

// The values of the pairs named `name`, in order.
function pairValues(list, name) {
  const out = [];
  for (let i = 0; i < list.length; i++) if (list[i][0] === name) out.push(list[i][1]);
  return out;
}

// A new list without the pairs `drop(pair)` is true for.
function pairsWithout(list, drop) {
  const out = [];
  for (let i = 0; i < list.length; i++) if (!drop(list[i])) out.push(list[i]);
  return out;
}

// `list` with `pair` in place of the first pair of its name and the others of that name gone,
// or with `pair` appended when there is none (the "set" of the standards).
function pairsSet(list, pair) {
  const index = pairIndex(list, pair[0]);
  if (index < 0) {
    list.push(pair);
    return list;
  }
  const out = [];
  for (let i = 0; i < list.length; i++) {
    if (i === index) out.push(pair);
    else if (list[i][0] !== pair[0]) out.push(list[i]);
  }
  return out;
}

// A copy of a pair list (the pairs copied too: they may be changed in place).
function pairsCopy(list) {
  const out = [];
  for (let i = 0; i < list.length; i++) out.push([list[i][0], list[i][1]]);
  return out;
}

// Reports an error nobody can catch (a throwing timer or microtask) like a browser does: on the
// log, without stopping the request.
function reportError(error) {
  host.writeErr("[error] Uncaught " + describeError(error));
}

defineGlobal("reportError", reportError);
