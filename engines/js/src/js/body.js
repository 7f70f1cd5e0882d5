// body.js: Blob, File, FormData, small Readable/Writable/Transform streams (no backpressure),
// and the body logic that Request and Response share (what a body may be, how it is read).

let blobBytes;

class Blob {
  #bytes;
  #type;

  constructor(parts = [], options = {}) {
    if (parts === null || typeof parts !== "object" || typeof parts[Symbol.iterator] !== "function") {
      throw new TypeError("Blob: the parts must be an iterable (an array of strings, buffers or blobs)");
    }
    const chunks = [];
    for (const part of parts) {
      if (part instanceof Blob) chunks.push(part.#bytes);
      else {
        const view = viewOf(part);
        chunks.push(view ? view.slice() : utf8Encode(String(part)));
      }
    }
    this.#bytes = chunks.length === 1 ? chunks[0] : concatBytes(chunks);
    const type = options && options.type !== undefined ? String(options.type) : "";
    this.#type = /^[\x20-\x7e]*$/.test(type) ? type.toLowerCase() : "";
  }

  static {
    blobBytes = (blob) => blob.#bytes;
  }

  get size() {
    return this.#bytes.byteLength;
  }

  get type() {
    return this.#type;
  }

  slice(start = 0, end = this.size, contentType = "") {
    const size = this.size;
    const from = start < 0 ? Math.max(size + start, 0) : Math.min(start, size);
    const to = end < 0 ? Math.max(size + end, 0) : Math.min(end, size);
    return new Blob([this.#bytes.subarray(from, Math.max(from, to))], { type: contentType });
  }

  async text() {
    return utf8Decode(this.#bytes, false);
  }

  async arrayBuffer() {
    return copyToArrayBuffer(this.#bytes);
  }

  async bytes() {
    return this.#bytes.slice();
  }

  stream() {
    return streamOfBytes(this.#bytes);
  }
}
tag(Blob, "Blob");

class File extends Blob {
  #name;
  #lastModified;

  constructor(bits, name, options = {}) {
    if (arguments.length < 2) throw new TypeError("File: 2 arguments required (bits and name)");
    super(bits, options);
    this.#name = String(name);
    this.#lastModified = options && options.lastModified !== undefined ? Number(options.lastModified) : Date.now();
  }

  get name() {
    return this.#name;
  }

  get lastModified() {
    return this.#lastModified;
  }
}
tag(File, "File");

// ---- FormData --------------------------------------------------------------------------

function formEntry(name, value, filename) {
  name = String(name);
  if (value instanceof Blob) {
    if (!(value instanceof File) || filename !== undefined) {
      value = new File([value], filename !== undefined ? String(filename) : value instanceof File ? value.name : "blob", { type: value.type });
    }
    return [name, value];
  }
  return [name, String(value)];
}

let formDataList;

class FormData {
  #list = [];

  constructor(form) {
    if (form !== undefined) throw new TypeError("FormData: building from an HTML form is not supported here");
  }

  static {
    formDataList = (fd) => fd.#list;
  }

  append(name, value, filename) {
    this.#list.push(formEntry(name, value, filename));
  }

  delete(name) {
    name = String(name);
    this.#list = pairsWithout(this.#list, (pair) => pair[0] === name);
  }

  get(name) {
    const index = pairIndex(this.#list, String(name));
    return index < 0 ? null : this.#list[index][1];
  }

  getAll(name) {
    return pairValues(this.#list, String(name));
  }

  has(name) {
    return pairIndex(this.#list, String(name)) >= 0;
  }

  set(name, value, filename) {
    this.#list = pairsSet(this.#list, formEntry(name, value, filename));
  }

  forEach(callback, thisArg) {
    for (const [k, v] of this.#list) callback.call(thisArg, v, k, this);
  }

  *entries() {
    for (const [k, v] of this.#list) yield [k, v];
  }

  *keys() {
    for (const [k] of this.#list) yield k;
  }

  *values() {
    for (const [, v] of this.#list) yield v;
  }

  [Symbol.iterator]() {
    return this.entries();
  }
}
tag(FormData, "FormData");

function escapeFormName(name) {
  return name.replace(/\r/g, "%0D").replace(/\n/g, "%0A").replace(/"/g, "%22");
}

function encodeMultipart(formData) {
  const boundary = "----wwsFormBoundary" + Array.from(host.randomBytes(12), (b) => b.toString(16).padStart(2, "0")).join("");
  const chunks = [];
  for (const [name, value] of formDataList(formData)) {
    let head = "--" + boundary + '\r\nContent-Disposition: form-data; name="' + escapeFormName(name) + '"';
    if (value instanceof File) {
      head += '; filename="' + escapeFormName(value.name) + '"\r\nContent-Type: ' + (value.type || "application/octet-stream");
      chunks.push(utf8Encode(head + "\r\n\r\n"), blobBytes(value), utf8Encode("\r\n"));
    } else {
      chunks.push(utf8Encode(head + "\r\n\r\n" + value.replace(/\r(?!\n)|(?<!\r)\n/g, "\r\n") + "\r\n"));
    }
  }
  chunks.push(utf8Encode("--" + boundary + "--\r\n"));
  return { bytes: concatBytes(chunks), type: "multipart/form-data; boundary=" + boundary };
}

function bytesToLatin1(bytes) {
  let out = "";
  for (let i = 0; i < bytes.length; i += 8192) out += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192));
  return out;
}

function latin1ToBytes(string) {
  const out = new Uint8Array(string.length);
  for (let i = 0; i < string.length; i++) out[i] = string.charCodeAt(i);
  return out;
}

function headerParam(value, name) {
  const re = new RegExp("(?:^|;)\\s*" + name + '\\s*=\\s*(?:"((?:[^"\\\\]|\\\\.)*)"|([^;]*))', "i");
  const m = re.exec(value);
  if (!m) return null;
  return m[1] !== undefined ? m[1].replace(/\\(.)/g, "$1") : m[2].trim();
}

function decodeMultipart(bytes, contentType) {
  const boundary = headerParam(contentType, "boundary");
  if (!boundary) throw new TypeError("formData(): the multipart/form-data body has no boundary in its Content-Type");
  const text = bytesToLatin1(bytes);
  const delimiter = "--" + boundary;
  const form = new FormData();
  const parts = text.split(delimiter);
  if (parts.length < 2) throw new TypeError("formData(): the multipart/form-data body does not contain its boundary");
  for (let i = 1; i < parts.length; i++) {
    let part = parts[i];
    if (part.startsWith("--")) break;
    part = part.replace(/^\r\n/, "").replace(/\r\n$/, "");
    const split = part.indexOf("\r\n\r\n");
    if (split < 0) continue;
    const head = utf8Decode(latin1ToBytes(part.slice(0, split)), false);
    const content = part.slice(split + 4);
    let disposition = "";
    let type = "";
    for (const line of head.split("\r\n")) {
      const colon = line.indexOf(":");
      if (colon < 0) continue;
      const key = line.slice(0, colon).trim().toLowerCase();
      if (key === "content-disposition") disposition = line.slice(colon + 1);
      else if (key === "content-type") type = line.slice(colon + 1).trim();
    }
    const name = headerParam(disposition, "name");
    if (name === null) continue;
    const filename = headerParam(disposition, "filename");
    if (filename !== null) form.append(name, new File([latin1ToBytes(content)], filename, { type }));
    else form.append(name, utf8Decode(latin1ToBytes(content), false));
  }
  return form;
}

// ---- ReadableStream (default reader only) ----------------------------------------------

let streamInternals;

class ReadableStreamDefaultController {
  #stream;

  constructor(key, stream) {
    if (key !== streamKey) throw new TypeError("ReadableStreamDefaultController: illegal constructor");
    this.#stream = stream;
  }

  get desiredSize() {
    return streamInternals(this.#stream).desiredSize();
  }

  enqueue(chunk) {
    streamInternals(this.#stream).enqueue(chunk);
  }

  close() {
    streamInternals(this.#stream).close();
  }

  error(reason) {
    streamInternals(this.#stream).error(reason);
  }
}
tag(ReadableStreamDefaultController, "ReadableStreamDefaultController");

const streamKey = Symbol("stream");

class ReadableStream {
  #queue = [];
  #state = "readable";
  #storedError;
  #reads = [];
  #reader = null;
  #source;
  #controller;
  #started = false;
  #pulling = false;
  #pullAgain = false;
  #highWaterMark;
  #disturbed = false;

  constructor(source = {}, strategy = {}) {
    this.#source = source || {};
    this.#highWaterMark = strategy && strategy.highWaterMark !== undefined ? Number(strategy.highWaterMark) : 1;
    this.#controller = new ReadableStreamDefaultController(streamKey, this);
    let started;
    try {
      started = typeof this.#source.start === "function" ? this.#source.start(this.#controller) : undefined;
    } catch (e) {
      this.#error(e);
      return;
    }
    Promise.resolve(started).then(
      () => {
        this.#started = true;
        this.#pull();
      },
      (e) => this.#error(e),
    );
  }

  static {
    streamInternals = (stream) => ({
      desiredSize: () => (stream.#state === "errored" ? null : stream.#state === "closed" ? 0 : stream.#highWaterMark - stream.#queue.length),
      enqueue: (chunk) => stream.#enqueue(chunk),
      close: () => stream.#close(),
      error: (e) => stream.#error(e),
      read: () => stream.#read(),
      cancel: (reason) => stream.#cancel(reason),
      setReader: (reader) => {
        stream.#reader = reader;
      },
      disturbed: () => stream.#disturbed,
    });
  }

  #enqueue(chunk) {
    if (this.#state !== "readable") throw new TypeError("ReadableStream: cannot enqueue into a closed or errored stream");
    const read = this.#reads.shift();
    if (read) read.resolve({ value: chunk, done: false });
    else this.#queue.push(chunk);
    this.#pull();
  }

  #close() {
    if (this.#state !== "readable") return;
    this.#state = "closed";
    if (this.#queue.length === 0) {
      for (const read of this.#reads.splice(0)) read.resolve({ value: undefined, done: true });
    }
  }

  #error(e) {
    if (this.#state !== "readable") return;
    this.#state = "errored";
    this.#storedError = e;
    this.#queue = [];
    for (const read of this.#reads.splice(0)) read.reject(e);
  }

  #pull() {
    if (!this.#started || this.#state !== "readable" || typeof this.#source.pull !== "function") return;
    if (this.#reads.length === 0 && this.#queue.length >= this.#highWaterMark) return;
    if (this.#pulling) {
      this.#pullAgain = true;
      return;
    }
    this.#pulling = true;
    let pulled;
    try {
      pulled = this.#source.pull(this.#controller);
    } catch (e) {
      this.#error(e);
      return;
    }
    Promise.resolve(pulled).then(
      () => {
        this.#pulling = false;
        if (this.#pullAgain) {
          this.#pullAgain = false;
          this.#pull();
        }
      },
      (e) => this.#error(e),
    );
  }

  #read() {
    this.#disturbed = true;
    if (this.#queue.length) {
      const value = this.#queue.shift();
      if (this.#state === "closed" && this.#queue.length === 0) {
        for (const read of this.#reads.splice(0)) read.resolve({ value: undefined, done: true });
      }
      this.#pull();
      return Promise.resolve({ value, done: false });
    }
    if (this.#state === "closed") return Promise.resolve({ value: undefined, done: true });
    if (this.#state === "errored") return Promise.reject(this.#storedError);
    return new Promise((resolve, reject) => {
      this.#reads.push({ resolve, reject });
      this.#pull();
    });
  }

  #cancel(reason) {
    this.#disturbed = true;
    if (this.#state === "closed") return Promise.resolve();
    if (this.#state === "errored") return Promise.reject(this.#storedError);
    this.#close();
    this.#queue = [];
    for (const read of this.#reads.splice(0)) read.resolve({ value: undefined, done: true });
    try {
      return Promise.resolve(typeof this.#source.cancel === "function" ? this.#source.cancel(reason) : undefined).then(() => undefined);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  get locked() {
    return this.#reader !== null;
  }

  getReader(options) {
    if (options && options.mode === "byob") throw new TypeError("ReadableStream: BYOB readers are not supported");
    if (this.#reader) throw new TypeError("ReadableStream: the stream is already locked to a reader");
    return new ReadableStreamDefaultReader(this);
  }

  cancel(reason) {
    if (this.#reader) return Promise.reject(new TypeError("ReadableStream: cannot cancel a locked stream"));
    return this.#cancel(reason);
  }

  tee() {
    const reader = this.getReader();
    let controllerA;
    let controllerB;
    const pump = () =>
      reader.read().then(({ value, done }) => {
        if (done) {
          controllerA.close();
          controllerB.close();
        } else {
          controllerA.enqueue(value);
          controllerB.enqueue(value);
        }
      });
    const a = new ReadableStream({ start: (c) => (controllerA = c), pull: pump });
    const b = new ReadableStream({ start: (c) => (controllerB = c), pull: pump });
    return [a, b];
  }

  async pipeTo(destination) {
    const reader = this.getReader();
    const writer = destination.getWriter();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      await writer.write(value);
    }
    await writer.close();
  }

  pipeThrough(transform) {
    this.pipeTo(transform.writable).catch(() => {});
    return transform.readable;
  }

  async *values(options) {
    const reader = this.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        yield value;
      }
    } finally {
      if (!(options && options.preventCancel)) reader.cancel().catch(() => {});
      reader.releaseLock();
    }
  }

  [Symbol.asyncIterator](options) {
    return this.values(options);
  }

  static from(iterable) {
    const iterator = iterable[Symbol.asyncIterator] ? iterable[Symbol.asyncIterator]() : iterable[Symbol.iterator]();
    return new ReadableStream({
      async pull(controller) {
        const { value, done } = await iterator.next();
        if (done) controller.close();
        else controller.enqueue(value);
      },
    });
  }
}
tag(ReadableStream, "ReadableStream");

class ReadableStreamDefaultReader {
  #stream;

  constructor(stream) {
    if (!(stream instanceof ReadableStream)) throw new TypeError("ReadableStreamDefaultReader: the argument must be a ReadableStream");
    if (stream.locked) throw new TypeError("ReadableStreamDefaultReader: the stream is already locked");
    this.#stream = stream;
    streamInternals(stream).setReader(this);
  }

  read() {
    if (!this.#stream) return Promise.reject(new TypeError("ReadableStreamDefaultReader: the reader was released"));
    return streamInternals(this.#stream).read();
  }

  cancel(reason) {
    if (!this.#stream) return Promise.reject(new TypeError("ReadableStreamDefaultReader: the reader was released"));
    return streamInternals(this.#stream).cancel(reason);
  }

  releaseLock() {
    if (this.#stream) streamInternals(this.#stream).setReader(null);
    this.#stream = null;
  }

  get closed() {
    return Promise.resolve(undefined);
  }
}
tag(ReadableStreamDefaultReader, "ReadableStreamDefaultReader");

// ---- WritableStream, TransformStream (no backpressure: writes queue up) ----------------

class WritableStreamDefaultController {
  #stream;

  constructor(key, stream) {
    if (key !== streamKey) throw new TypeError("WritableStreamDefaultController: illegal constructor");
    this.#stream = stream;
  }

  error(reason) {
    writableError(this.#stream, reason);
  }

  get signal() {
    return writableSignal(this.#stream);
  }
}
tag(WritableStreamDefaultController, "WritableStreamDefaultController");

let writableError;
let writableSignal;
let writableOps;

class WritableStream {
  #sink;
  #controller;
  #state = "writable";
  #storedError;
  #writer = null;
  #chain;
  #abort = new AbortController();

  constructor(sink = {}) {
    this.#sink = sink || {};
    this.#controller = new WritableStreamDefaultController(streamKey, this);
    this.#chain = new Promise((resolve) => resolve(typeof this.#sink.start === "function" ? this.#sink.start(this.#controller) : undefined));
    this.#chain.catch((e) => this.#fail(e));
  }

  static {
    writableError = (stream, reason) => stream.#fail(reason);
    writableSignal = (stream) => stream.#abort.signal;
    writableOps = (stream) => ({
      write: (chunk) => stream.#write(chunk),
      close: () => stream.#close(),
      abort: (reason) => stream.#abortStream(reason),
      setWriter: (writer) => {
        stream.#writer = writer;
      },
      state: () => stream.#state,
    });
  }

  #fail(reason) {
    if (this.#state === "errored") return;
    this.#state = "errored";
    this.#storedError = reason;
  }

  #enqueue(step) {
    const next = this.#chain.then(() => {
      if (this.#state === "errored") throw this.#storedError;
      return step();
    });
    this.#chain = next.catch((e) => this.#fail(e));
    return next.then(() => undefined);
  }

  #write(chunk) {
    if (this.#state !== "writable") return Promise.reject(this.#state === "errored" ? this.#storedError : new TypeError("WritableStream: the stream is closed"));
    return this.#enqueue(() => (typeof this.#sink.write === "function" ? this.#sink.write(chunk, this.#controller) : undefined));
  }

  #close() {
    if (this.#state !== "writable") return Promise.reject(new TypeError("WritableStream: the stream is already closed or errored"));
    this.#state = "closing";
    return this.#enqueue(() => (typeof this.#sink.close === "function" ? this.#sink.close() : undefined)).then(() => {
      this.#state = "closed";
    });
  }

  #abortStream(reason) {
    this.#abort.abort(reason);
    this.#fail(reason);
    return Promise.resolve(typeof this.#sink.abort === "function" ? this.#sink.abort(reason) : undefined).then(() => undefined);
  }

  get locked() {
    return this.#writer !== null;
  }

  getWriter() {
    if (this.#writer) throw new TypeError("WritableStream: the stream is already locked to a writer");
    return new WritableStreamDefaultWriter(this);
  }

  close() {
    if (this.#writer) return Promise.reject(new TypeError("WritableStream: cannot close a locked stream"));
    return this.#close();
  }

  abort(reason) {
    if (this.#writer) return Promise.reject(new TypeError("WritableStream: cannot abort a locked stream"));
    return this.#abortStream(reason);
  }
}
tag(WritableStream, "WritableStream");

class WritableStreamDefaultWriter {
  #stream;

  constructor(stream) {
    if (!(stream instanceof WritableStream)) throw new TypeError("WritableStreamDefaultWriter: the argument must be a WritableStream");
    if (stream.locked) throw new TypeError("WritableStreamDefaultWriter: the stream is already locked");
    this.#stream = stream;
    writableOps(stream).setWriter(this);
  }

  #ops(method) {
    if (!this.#stream) throw new TypeError(`WritableStreamDefaultWriter.${method}: the writer was released`);
    return writableOps(this.#stream);
  }

  get ready() {
    return Promise.resolve(undefined);
  }

  get closed() {
    return Promise.resolve(undefined);
  }

  get desiredSize() {
    return 1;
  }

  write(chunk) {
    try {
      return this.#ops("write").write(chunk);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  close() {
    try {
      return this.#ops("close").close();
    } catch (e) {
      return Promise.reject(e);
    }
  }

  abort(reason) {
    try {
      return this.#ops("abort").abort(reason);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  releaseLock() {
    if (this.#stream) writableOps(this.#stream).setWriter(null);
    this.#stream = null;
  }
}
tag(WritableStreamDefaultWriter, "WritableStreamDefaultWriter");

class TransformStream {
  #readable;
  #writable;

  constructor(transformer = {}) {
    transformer = transformer || {};
    let readableController;
    this.#readable = new ReadableStream({
      start: (c) => {
        readableController = c;
      },
      cancel: (reason) => (typeof transformer.cancel === "function" ? transformer.cancel(reason) : undefined),
    });
    const controller = {
      enqueue: (chunk) => readableController.enqueue(chunk),
      error: (reason) => readableController.error(reason),
      terminate: () => readableController.close(),
      get desiredSize() {
        return readableController.desiredSize;
      },
    };
    const started = typeof transformer.start === "function" ? transformer.start(controller) : undefined;
    this.#writable = new WritableStream({
      start: () => started,
      write: (chunk) => (typeof transformer.transform === "function" ? transformer.transform(chunk, controller) : controller.enqueue(chunk)),
      close: () =>
        Promise.resolve(typeof transformer.flush === "function" ? transformer.flush(controller) : undefined).then(() => {
          try {
            readableController.close();
          } catch {
            // already closed by terminate()
          }
        }),
      abort: (reason) => readableController.error(reason),
    });
  }

  get readable() {
    return this.#readable;
  }

  get writable() {
    return this.#writable;
  }
}
tag(TransformStream, "TransformStream");

class TextEncoderStream extends TransformStream {
  constructor() {
    const encoder = new TextEncoder();
    super({
      transform: (chunk, controller) => {
        const bytes = encoder.encode(chunk);
        if (bytes.length) controller.enqueue(bytes);
      },
    });
  }

  get encoding() {
    return "utf-8";
  }
}
tag(TextEncoderStream, "TextEncoderStream");

class TextDecoderStream extends TransformStream {
  #decoder;

  constructor(label = "utf-8", options = {}) {
    const decoder = new TextDecoder(label, options);
    super({
      transform: (chunk, controller) => {
        const text = decoder.decode(chunk, { stream: true });
        if (text) controller.enqueue(text);
      },
      flush: (controller) => {
        const text = decoder.decode();
        if (text) controller.enqueue(text);
      },
    });
    this.#decoder = decoder;
  }

  get encoding() {
    return this.#decoder.encoding;
  }

  get fatal() {
    return this.#decoder.fatal;
  }

  get ignoreBOM() {
    return this.#decoder.ignoreBOM;
  }
}
tag(TextDecoderStream, "TextDecoderStream");

// A stream that yields `bytes` as one chunk, then closes.
function streamOfBytes(bytes) {
  return new ReadableStream({
    start(controller) {
      if (bytes.byteLength) controller.enqueue(bytes.slice());
      controller.close();
    },
  });
}

// Reads a whole stream into one Uint8Array (string chunks are UTF-8 encoded).
async function readAllBytes(stream) {
  const reader = stream.getReader();
  const chunks = [];
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    if (typeof value === "string") chunks.push(utf8Encode(value));
    else {
      const view = viewOf(value);
      if (!view) throw new TypeError("ReadableStream: a body stream chunk must be a Uint8Array (or an ArrayBuffer view)");
      chunks.push(view);
    }
  }
  reader.releaseLock();
  return concatBytes(chunks);
}

// ---- bodies shared by Request and Response ---------------------------------------------

// What a body init becomes: `source` is null, a string, a Uint8Array or a ReadableStream;
// `type` is the Content-Type it implies (null for none).
// The type a string body implies.
const TEXT_PLAIN = "text/plain;charset=UTF-8";

function extractBody(init) {
  if (init === null || init === undefined) return { source: null, type: null };
  if (typeof init === "string") return { source: init, type: TEXT_PLAIN };
  if (init instanceof ReadableStream) return { source: init, type: null };
  if (init instanceof URLSearchParams) return { source: init.toString(), type: "application/x-www-form-urlencoded;charset=UTF-8" };
  if (init instanceof FormData) {
    const { bytes, type } = encodeMultipart(init);
    return { source: bytes, type };
  }
  if (init instanceof Blob) return { source: blobBytes(init), type: init.type || null };
  const view = viewOf(init);
  if (view) return { source: view.slice(), type: null };
  return { source: String(init), type: TEXT_PLAIN };
}

// `object` (the Promise of `text()`, or the `body` stream) also reads as `text` wherever a
// string is expected: `JSON.parse(request.text())`, `${request.body}`, `Cache.set(k, request.body)`.
// The original's `text()` returned the string itself and its `body` was one; workers written
// for it keep working, and `await request.text()` is unchanged.
function readingAsText(object, text) {
  const asText = { value: () => text, configurable: true };
  Object.defineProperties(object, { toString: asText, valueOf: asText, [Symbol.toPrimitive]: asText });
  return object;
}

// Common state and readers of a Request or Response body. Only `source` is set per instance;
// `used`, `stream` and `readsAsText` start from the prototype's defaults (below) and become
// the instance's own once set: every Request and Response has a BodyState, and in QuickJS each
// property defined at construction costs about as much as a function call.
class BodyState {
  constructor(source) {
    this.source = source;
  }

  // The body as a ReadableStream (created on first use), or null when there is none.
  getStream() {
    if (this.source === null) return null;
    if (this.source instanceof ReadableStream) return this.source;
    if (!this.stream) {
      const source = this.source;
      this.stream = streamOfBytes(typeof source === "string" ? utf8Encode(source) : source);
      if (this.readsAsText !== null) readingAsText(this.stream, this.readsAsText);
      this.source = this.stream;
    }
    return this.stream;
  }

  isUsed() {
    const source = this.source;
    return this.used || (typeof source === "object" && source instanceof ReadableStream && streamInternals(source).disturbed());
  }

  #take(method) {
    if (this.isUsed()) return Promise.reject(new TypeError(`${method}: the body has already been read`));
    if (this.source instanceof ReadableStream && this.source.locked) return Promise.reject(new TypeError(`${method}: the body stream is locked`));
    this.used = true;
    return null;
  }

  text() {
    // The original's text() could be called again and again: so can this one, for the
    // incoming request's text body.
    if (this.readsAsText !== null) {
      this.used = true;
      return readingAsText(Promise.resolve(this.readsAsText), this.readsAsText);
    }
    return this.#take("text()") || (typeof this.source === "string" ? Promise.resolve(this.source) : this.#bytes().then((b) => utf8Decode(b, false)));
  }

  bytes() {
    return this.#take("bytes()") || this.#bytes().then((b) => (b === this.source ? b.slice() : b));
  }

  arrayBuffer() {
    return this.#take("arrayBuffer()") || this.#bytes().then((b) => copyToArrayBuffer(b));
  }

  json() {
    // After the incoming text body was read with text(), as the original allowed.
    if (this.readsAsText !== null && this.used) {
      const text = this.readsAsText;
      return new Promise((resolve) => resolve(JSON.parse(text)));
    }
    return this.#take("json()") || this.#text().then((t) => JSON.parse(t));
  }

  blob(type) {
    return this.#take("blob()") || this.#bytes().then((b) => new Blob([b], { type: type || "" }));
  }

  formData(contentType) {
    const taken = this.#take("formData()");
    if (taken) return taken;
    const type = (contentType || "").toLowerCase();
    if (type.startsWith("application/x-www-form-urlencoded")) {
      return this.#text().then((t) => {
        const form = new FormData();
        for (const [k, v] of new URLSearchParams(t)) form.append(k, v);
        return form;
      });
    }
    if (type.startsWith("multipart/form-data")) return this.#bytes().then((b) => decodeMultipart(b, contentType));
    return Promise.reject(new TypeError(`formData(): the Content-Type ${JSON.stringify(contentType || "")} is neither application/x-www-form-urlencoded nor multipart/form-data`));
  }

  #text() {
    return typeof this.source === "string" ? Promise.resolve(this.source) : this.#bytes().then((b) => utf8Decode(b, false));
  }

  #bytes() {
    const source = this.source;
    if (source === null) return Promise.resolve(new Uint8Array(0));
    if (typeof source === "string") return Promise.resolve(utf8Encode(source));
    if (source instanceof ReadableStream) return readAllBytes(source);
    return Promise.resolve(source);
  }

  // A copy for clone(): a stream body is teed, other sources are immutable and shared.
  clone() {
    if (this.isUsed()) throw new TypeError("clone(): the body has already been read");
    if (this.source instanceof ReadableStream) {
      const [a, b] = this.source.tee();
      this.source = a;
      return new BodyState(b);
    }
    return new BodyState(this.source);
  }
}
BodyState.prototype.used = false;
BodyState.prototype.stream = null;
// The incoming request's text body, read as the original read it: see `readingAsText`.
BodyState.prototype.readsAsText = null;

defineGlobal("Blob", Blob);
defineGlobal("File", File);
defineGlobal("FormData", FormData);
defineGlobal("ReadableStream", ReadableStream);
defineGlobal("ReadableStreamDefaultReader", ReadableStreamDefaultReader);
defineGlobal("ReadableStreamDefaultController", ReadableStreamDefaultController);
defineGlobal("WritableStream", WritableStream);
defineGlobal("WritableStreamDefaultWriter", WritableStreamDefaultWriter);
defineGlobal("WritableStreamDefaultController", WritableStreamDefaultController);
defineGlobal("TransformStream", TransformStream);
defineGlobal("TextEncoderStream", TextEncoderStream);
defineGlobal("TextDecoderStream", TextDecoderStream);
