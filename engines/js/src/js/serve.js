// serve.js: worker registration (both styles), env vars, one request in, one output out.
//
// Service-worker style: `addEventListener("fetch", (event) => event.respondWith(r))`, where r
// is a Response or a promise of one. Module style: `export default { fetch(request, env, ctx) }`
// (any default export with a fetch method, a Hono app for instance); `env` holds the
// worker's vars and the `KV` binding, `ctx.waitUntil(promise)` keeps the worker running
// after it answered, until the promise settles. The Rust side tells the styles apart by parsing (see src/worker.rs).

let moduleHandler = null;
const fetchListeners = [];
const otherListeners = new EventTarget();
const env = {};

defineGlobal("self", globalThis);

defineGlobal("addEventListener", function addEventListener(type, listener, options) {
  if (String(type) === "fetch") {
    if (typeof listener !== "function" && !(listener && typeof listener.handleEvent === "function")) {
      throw new TypeError('addEventListener("fetch", listener): the listener must be a function');
    }
    if (!fetchListeners.includes(listener)) fetchListeners.push(listener);
  } else {
    otherListeners.addEventListener(type, listener, options);
  }
});

defineGlobal("removeEventListener", function removeEventListener(type, listener) {
  if (String(type) === "fetch") {
    const index = fetchListeners.indexOf(listener);
    if (index >= 0) fetchListeners.splice(index, 1);
  } else {
    otherListeners.removeEventListener(type, listener);
  }
});

// The FetchEvent's private state, read by dispatch() without allocating.
let fetchEventResponded;
let fetchEventResponse;
let fetchEventWaits;

// A FetchEvent's response before respondWith() is called.
const NOT_RESPONDED = Symbol("not responded");

class FetchEvent extends Event {
  #request;
  #response = NOT_RESPONDED;
  #waits;

  constructor(type, init) {
    super(type, init);
    if (!init || !(init.request instanceof Request)) throw new TypeError("FetchEvent: init.request must be a Request");
    this.#request = init.request;
    this.#waits = [];
  }

  static {
    fetchEventResponded = (event) => event.#response !== NOT_RESPONDED;
    fetchEventResponse = (event) => event.#response;
    fetchEventWaits = (event) => event.#waits;
  }

  get request() {
    return this.#request;
  }

  respondWith(response) {
    if (this.#response !== NOT_RESPONDED) throw new DOMException("FetchEvent.respondWith: the event was already responded to", "InvalidStateError");
    this.#response = response;
  }

  waitUntil(promise) {
    this.#waits.push(Promise.resolve(promise));
  }

  passThroughOnException() {}
}
tag(FetchEvent, "FetchEvent");
defineGlobal("FetchEvent", FetchEvent);

const RESERVED = new Set(
  ("break case catch class const continue debugger default delete do else enum export extends false finally for function if " +
    "import in instanceof new null return super switch this throw true try typeof var void while with yield let static " +
    "implements interface package private protected public await arguments eval undefined NaN Infinity globalThis").split(" "),
);

// The worker's [vars]: each one in `env`, and as a read-only global when its name is an
// identifier (the original defined them as global constants).
internal.setVars = function setVars(vars) {
  for (const name of Object.keys(vars)) {
    const value = String(vars[name]);
    env[name] = value;
    if (!IDENTIFIER.test(name) || RESERVED.has(name)) continue;
    try {
      Object.defineProperty(globalThis, name, { value, writable: false, enumerable: true, configurable: true });
    } catch {
      // a non-configurable global of the same name keeps its value; env still has the var
    }
  }
  env.KV = KV;
};

// Called with the namespace of a module worker once it has been evaluated.
internal.setModule = function setModule(namespace) {
  const handler = namespace.default;
  if (handler === undefined || handler === null) return;
  if (typeof handler.fetch !== "function") {
    throw new TypeError("the default export has no fetch() method: export default { async fetch(request, env, ctx) { ... } }");
  }
  moduleHandler = handler;
};

// Called after the worker was evaluated: a worker that registers no handler cannot serve.
internal.finishInit = function finishInit() {
  workerLoading = false;
  if (moduleHandler === null && fetchListeners.length === 0) {
    throw new Error(
      'the worker registers no fetch handler: use addEventListener("fetch", (event) => event.respondWith(...)) ' +
        "or export default { async fetch(request, env, ctx) { ... } }",
    );
  }
};

// The incoming Request, from the values src/request.rs made of the request JSON:
// `headers` and `params` are [[name, value], ...] lists (`params` undefined when empty),
// `body` a string, bytes or null; `relative` says the URL has no scheme.
function incomingRequest(url, method, headers, body, params, relative) {
  if (relative) url = new URL(url, "http://localhost").href;
  // A plain object (workers call params.hasOwnProperty), filled without the __proto__ setter.
  const paramsObject = {};
  if (params !== undefined) for (let i = 0; i < params.length; i++) {
    Object.defineProperty(paramsObject, params[i][0], { value: params[i][1], writable: true, enumerable: true, configurable: true });
  }
  return requestFromHost(url, method, headers, body, paramsObject);
}

function describeValue(value) {
  if (value === null) return "null";
  if (typeof value === "object") return "a " + (constructorName(value) || "Object") + " object";
  return typeof value === "string" ? "a string" : String(value);
}

// The `ctx` of a module worker's fetch(request, env, ctx). Its methods live on the prototype:
// a request builds no closures for them.
class ExecutionContext {
  #waits;
  props = {};

  constructor(waits) {
    this.#waits = waits;
  }

  waitUntil(promise) {
    this.#waits.push(Promise.resolve(promise));
  }

  passThroughOnException() {}
}
tag(ExecutionContext, "ExecutionContext");

// The response a service-worker listener gave its event.
function respondedWith(event) {
  if (!fetchEventResponded(event)) throw new Error("no fetch listener called event.respondWith()");
  return fetchEventResponse(event);
}

// Runs the handler. Returns `[response, waits]` at once (an array: cheaper to build than an
// object): `response` is what the handler gave (a Response, or a promise of one), `waits` the
// promises passed to waitUntil (it may still grow). Throws what the handler threw
// synchronously.
function dispatch(request) {
  if (moduleHandler !== null) {
    // The request that took the spare Request (the first one) takes the spare ctx too.
    let context = spareContext;
    let waits = spareWaits;
    if (request !== spareRequest || context === null) {
      waits = [];
      context = new ExecutionContext(waits);
    }
    return [moduleHandler.fetch(request, env, context), waits];
  }
  // The request that took the spare Request (the first one) takes the spare event too.
  let event = spareEvent;
  if (request === spareRequest && event !== null) {
    stampEvent(event);
  } else {
    event = new FetchEvent("fetch", { request });
  }
  let pending = null;
  let response = NOT_RESPONDED;
  for (let i = 0; i < fetchListeners.length && response === NOT_RESPONDED; i++) {
    const listener = fetchListeners[i];
    const returned = typeof listener === "function" ? listener.call(globalThis, event) : listener.handleEvent(event);
    if (returned && typeof returned.then === "function") (pending ||= []).push(returned);
    response = fetchEventResponse(event);
  }
  // The standard wants respondWith() called synchronously; like the original wws, an async
  // listener may also call it after an await: its promise is waited for first.
  if (response === NOT_RESPONDED) response = pending === null ? respondedWith(event) : Promise.all(pending).then(() => respondedWith(event));
  return [response, fetchEventWaits(event)];
}

// Markup: a document, or a fragment that starts with a tag (`<h1>Title</h1>`, `<p>`).
const HTML_MARKUP = /^\s*<(?:!doctype\s+html[\s>]|[a-z][a-z0-9-]*[\s/>])/i;

// The output for a Response, `[body, status, headers]` (without `kv`): at once, or a promise
// when the body is a stream that must be read first. (An array: an object literal would make
// QuickJS build its shape again on every request, linking it into the runtime's shape table,
// a page of memory the host then copies back.)
function outputOf(response) {
  if (!(response instanceof Response)) {
    throw new TypeError(`the fetch handler must return a Response (or a promise of one), not ${describeValue(response)}`);
  }
  const source = responseSource(response);
  if (typeof source === "object" && source instanceof ReadableStream) {
    return readAllBytes(source).then((bytes) => outputWith(response, bytes, null));
  }
  return outputWith(response, source, typeof source === "string" ? source : null);
}

// `body` is null, a string or a Uint8Array (sent base64-encoded); `text` the string body.
function outputWith(response, body, text) {
  let headers = responseHeaderList(response);
  // The original wws served every response as text/html unless the worker said otherwise, and
  // its examples return HTML from `new Response(html)`. The Fetch standard makes a string
  // body text/plain (and Hono's c.text() relies on that). Both hold: a string body whose type
  // the worker left to the default goes out as text/html only when it is HTML markup (it
  // starts with <!doctype html> or a tag such as <html>, <h1>, <p>), as text/plain otherwise.
  const first = text === null ? NaN : text.charCodeAt(0);
  if ((first === 60 /* < */ || first <= 32) && responseDefaultType(response) && HTML_MARKUP.test(text)) {
    headers = headers.map((pair) => (pair[0] === "content-type" ? [pair[0], "text/html;charset=UTF-8"] : pair));
  }
  // wws serves an output without a type as text/html (the original's default); bytes of an
  // unknown type must not be, or a worker echoing a client's bytes serves their HTML.
  if (typeof body === "object" && body instanceof Uint8Array && body.byteLength !== 0 && pairIndex(headers, "content-type") < 0) {
    headers = [...headers, ["content-type", "application/octet-stream"]];
  }
  const status = response.status;
  return [body, status === 0 ? 500 : status, headers];
}

function succeed(output) {
  reportUnhandledRejections();
  // The output JSON stays on the Rust side (see host.rs): a large body is not copied back.
  host.outputJson(output[0], output[1], output[2], kvForOutput());
  return [0, ""];
}

function fail(error) {
  unhandledRejections.clear();
  return [1, internal.formatError(error)];
}

async function settleWaits(waits) {
  for (let i = 0; i < waits.length; i++) {
    try {
      await waits[i];
    } catch (error) {
      reportError(error);
    }
  }
}

// The outcome for a settled Response: at once when neither the body nor waitUntil needs
// waiting (the common case costs no promise hop), else a promise. With waitUntil work pending,
// the client gets its answer now (when wws can take it early) and the output written at the
// end is only a trailer with the final `kv`.
function complete(response, waits) {
  const output = outputOf(response);
  if (!(output instanceof Promise) && waits.length === 0) return succeed(output);
  return Promise.resolve(output).then((o) => {
    if (waits.length > 0 && host.respondEarly(o[0], o[1], o[2], kvForOutput())) {
      return settleWaits(waits).then(() => succeed(TRAILER));
    }
    return settleWaits(waits).then(() => succeed(o));
  });
}

const TRAILER = Object.freeze([null, 200, Object.freeze([])]);

// Serves one request (the request JSON's fields, see incomingRequest): [0, ""] once the
// output is with the host or [1, error report], at once when the handler answered
// synchronously, else a promise of it that never rejects.
internal.handle = function handle(url, method, headers, body, kv, params, relative) {
  beginRequest();
  let response;
  let waits;
  try {
    setKvPairs(kv === undefined ? NO_KV_PAIRS : kv);
    const dispatched = dispatch(incomingRequest(url, method, headers, body, params, relative));
    response = dispatched[0];
    waits = dispatched[1];
    if (response instanceof Response) {
      const outcome = complete(response, waits);
      return outcome instanceof Promise ? outcome.catch(fail) : outcome;
    }
  } catch (error) {
    return fail(error);
  }
  return Promise.resolve(response)
    .then((settled) => complete(settled, waits))
    .catch(fail);
};

// Runs the engine's own request path once on a synthetic request (no worker code), while
// the worker loads: the shapes, atoms and allocator state it leaves behind are part of the
// snapshot, so real requests do not pay for them. Leaves no trace in the worker's state.
internal.warmUp = function warmUp() {
  setKvPairs([]);
  // QuickJS creates a built-in method's function object on first use: `dispatch` calls the
  // listeners through Function.prototype.call (3k instructions a request otherwise).
  void Function.prototype.call;
  // Header names workers set most, checked once here (see `headerName`).
  for (const name of ["content-type", "Content-Type", "cache-control", "Cache-Control", "location", "Location", "set-cookie", "Set-Cookie", "access-control-allow-origin", "x-powered-by"]) headerName(name);
  const headers = [["host", "localhost"], ["accept", "*/*"], ["content-type", "text/plain"]];
  const request = incomingRequest("http://localhost/warm-up?a=1", "POST", headers, "x", [["id", "1"]]);
  request.headers.get("accept");
  void new URL(request.url).searchParams.get("a");
  const done = request
    .text()
    .then(() => complete(new Response("warm", { status: 200, headers: { "x-warm": "1" } }), []))
    .then(() => Promise.resolve({ response: Response.json({ warm: true }), waits: [] }))
    .then(({ response, waits }) => complete(response, waits))
    .then(() => {
      setKvPairs([]);
      unhandledRejections.clear();
    });
  return done;
};

// What every request builds before the worker's code runs, built ahead of time: the incoming
// Request (filled in by requestFromHost), the FetchEvent that carries it, or a module
// worker's `ctx`. Made last while the snapshot is taken (after any warm-up request), so that
// each fresh instance finds them unused, and its request skips constructors that cost ~40 k
// wasm instructions (each field a constructor defines is a property definition). The first
// request takes them; later ones in a reused instance build their own.
let spareEvent = null;
let spareContext = null;
let spareWaits = null;

// Taking them writes no variable (a write to another page of memory, which the host then
// copies back): the spare Request tells by its own URL whether a request filled it, and the
// request that did takes the event or ctx too.
internal.prepareSpares = function prepareSpares() {
  spareRequest = new Request(trustedRequest, null);
  if (moduleHandler !== null) {
    spareWaits = [];
    spareContext = new ExecutionContext(spareWaits);
  } else {
    spareEvent = new FetchEvent("fetch", { request: spareRequest });
  }
};

// Promises rejected with no handler attached, reported when the request ends (a handler may
// still be attached later, as in `const p = work(); ...; await p`). Fed by QuickJS' rejection
// tracker (see src/engine.rs).
const unhandledRejections = new Map();
// Whether any promise was rejected unhandled since the last report: most requests have none,
// and a plain variable is cheaper to test than the map's size.
let rejectionsSeen = false;

internal.trackRejection = function trackRejection(promise, reason, handled) {
  if (handled) {
    unhandledRejections.delete(promise);
  } else {
    unhandledRejections.set(promise, reason);
    rejectionsSeen = true;
  }
};

function reportUnhandledRejections() {
  if (!rejectionsSeen) return;
  rejectionsSeen = false;
  if (unhandledRejections.size === 0) return;
  for (const reason of unhandledRejections.values()) host.writeErr("[error] Uncaught (in promise) " + describeError(reason));
  unhandledRejections.clear();
}

// Opt-in (WWS_WARM_UP, see src/engine.rs): sends the worker one GET request for `path` while
// it loads, so that what it builds lazily on its first request (a framework's router, say)
// is part of the snapshot. Its logs are muted and its response, KV changes and timers are
// dropped. Resolves to "" or to the error report of a failed warm-up.
internal.warmUpWorker = function warmUpWorker(path) {
  consoleMuted = true;
  const url = "http://localhost" + (String(path).startsWith("/") ? path : "/" + path);
  return Promise.resolve(internal.handle(url, "GET", [["host", "localhost"]], null, [], [])).then((outcome) => {
    consoleMuted = false;
    setKvPairs([]);
    unhandledRejections.clear();
    timerQueue = [];
    return outcome[0] === 0 ? "" : outcome[1];
  });
};

// ---- error reports ---------------------------------------------------------------------

let workerFile = "index.js";

internal.setWorkerFile = function setWorkerFile(name) {
  workerFile = name;
};

function parseFrame(line) {
  const m = /^\s*at (?:.*?\()?(.+?):(\d+):(\d+)\)?\s*$/.exec(line);
  return m ? { file: m[1], line: Number(m[2]), col: Number(m[3]) } : null;
}

function errorLocation(error) {
  const stack = error !== null && typeof error === "object" && typeof error.stack === "string" ? error.stack : "";
  const frames = stack.split("\n").map(parseFrame).filter(Boolean);
  return frames.find((f) => f.file === workerFile) || { file: workerFile, line: 1, col: 1 };
}

// `<file>:<line>:<col>: <ErrorName>: <message>`, then the stack frames.
internal.formatError = function formatError(error) {
  const where = errorLocation(error);
  let name = "Error";
  let message;
  let stack = "";
  if (error instanceof Error || (error !== null && typeof error === "object" && typeof error.message === "string")) {
    name = String(error.name || "Error");
    message = String(error.message);
    stack = typeof error.stack === "string" ? cleanStack(error.stack) : "";
  } else {
    message = "Uncaught " + inspect(error, {});
  }
  return `${where.file}:${where.line}:${where.col}: ${name}: ${message}` + (stack ? "\n" + stack : "");
};

function moduleLoadError(error) {
  if (error instanceof Error && /could not load module|module not found/i.test(error.message)) {
    error.message += " (a JavaScript worker is one file: bundle its imports into it, e.g. with esbuild --bundle --format=esm)";
  }
  return error;
}

// Of two parse errors (the worker compiled as a script and as a module), the one that got
// further into the file: that is the mode the author meant.
internal.laterError = function laterError(a, b) {
  // A module that parsed but could not be linked (an import) is a module: its error it is.
  if (!(b instanceof SyntaxError)) return moduleLoadError(b);
  const x = errorLocation(a);
  const y = errorLocation(b);
  return y.line > x.line || (y.line === x.line && y.col > x.col) ? b : a;
};
