// timers.js: timers, microtasks, performance, structuredClone, Math.random, navigator.
//
// Timers really wait: the Rust side sleeps (WASI poll) until the next one is due, then calls
// `internal.runTimer()` which runs ONE callback, so microtasks run between timers as in a
// browser. The handler's response is sent as soon as it is ready: timers still pending then
// (an interval, say) are dropped, like on other serverless platforms.
//
// Everything that must differ per request (the clock origin, random state) is (re)set in
// `beginRequest`, because the engine is snapshotted after initialisation.

let timerQueue = [];
let nextTimerId = 1;

function addTimer(callback, delay, args, repeat) {
  if (typeof callback !== "function") throw new TypeError("setTimeout/setInterval: the callback must be a function (strings are not evaluated)");
  // WebIDL's `long`, as browsers convert it: Infinity, NaN and values past 2^31 - 1 wrap to
  // 0 or below, which means "as soon as possible".
  delay = Number(delay) | 0;
  if (!(delay > 0)) delay = 0;
  const id = nextTimerId++;
  timerQueue.push({ id, due: host.now() + delay, delay, callback, args, repeat });
  return id;
}

function clearTimer(id) {
  id = Number(id);
  timerQueue = timerQueue.filter((t) => t.id !== id);
}

function earliestTimer() {
  let best = null;
  for (const t of timerQueue) if (best === null || t.due < best.due || (t.due === best.due && t.id < best.id)) best = t;
  return best;
}

// Milliseconds until the next timer is due (0 when one is due now), or -1 when none is left.
internal.nextTimer = function nextTimer() {
  const t = earliestTimer();
  return t === null ? -1 : Math.max(0, t.due - host.now());
};

// Runs the earliest timer if it is due.
internal.runTimer = function runTimer() {
  const t = earliestTimer();
  if (t === null || t.due > host.now()) return;
  if (t.repeat) t.due = Math.max(t.due + Math.max(t.delay, 1), host.now());
  else clearTimer(t.id);
  try {
    t.callback(...t.args);
  } catch (error) {
    reportError(error);
  }
};

defineGlobal("setTimeout", (callback, delay, ...args) => addTimer(callback, delay, args, false));
defineGlobal("setInterval", (callback, delay, ...args) => addTimer(callback, delay, args, true));
defineGlobal("clearTimeout", (id) => clearTimer(id));
defineGlobal("clearInterval", (id) => clearTimer(id));

// QuickJS runs microtasks as jobs whose exceptions would be lost: report them instead.
defineGlobal("queueMicrotask", function queueMicrotask(callback) {
  if (typeof callback !== "function") throw new TypeError("queueMicrotask: the callback must be a function");
  Promise.resolve().then(() => {
    try {
      callback();
    } catch (error) {
      reportError(error);
    }
  });
});

// ---- performance -----------------------------------------------------------------------

// The wall-clock time of performance.now()'s zero (the request's start): worked out on first
// use, since wall time minus time elapsed is the same whenever it is computed.
let timeOrigin = null;

function currentTimeOrigin() {
  if (timeOrigin === null) timeOrigin = Date.now() - host.now();
  return timeOrigin;
}

const performance = {
  now: () => host.now(),
  get timeOrigin() {
    return currentTimeOrigin();
  },
  mark: () => undefined,
  measure: () => undefined,
  toJSON: () => ({ timeOrigin: currentTimeOrigin() }),
};
defineGlobal("performance", performance);

// QuickJS seeds Math.random once per context, which a snapshot would freeze: use the host's
// generator, re-seeded from WASI random for every request.
Object.defineProperty(Math, "random", { value: host.mathRandom, writable: true, configurable: true, enumerable: false });

// ---- structuredClone -------------------------------------------------------------------

function cloneError(message) {
  return new DOMException(`structuredClone: ${message} could not be cloned`, "DataCloneError");
}

function cloneValue(value, memory) {
  if (value === null || (typeof value !== "object" && typeof value !== "function")) {
    if (typeof value === "symbol") throw cloneError("a Symbol");
    return value;
  }
  if (typeof value === "function") throw cloneError("a function");
  if (memory.has(value)) return memory.get(value);
  let out;
  if (Array.isArray(value)) {
    out = new Array(value.length);
    memory.set(value, out);
    for (const key of Object.keys(value)) out[key] = cloneValue(value[key], memory);
    return out;
  }
  if (value instanceof Date) out = new Date(value.getTime());
  else if (value instanceof RegExp) out = new RegExp(value.source, value.flags);
  else if (value instanceof Boolean || value instanceof Number || value instanceof String || value instanceof BigInt) out = Object(value.valueOf());
  else if (value instanceof ArrayBuffer) out = value.slice(0);
  else if (ArrayBuffer.isView(value)) {
    const buffer = cloneValue(value.buffer, memory);
    out = value instanceof DataView ? new DataView(buffer, value.byteOffset, value.byteLength) : new value.constructor(buffer, value.byteOffset, value.length);
  } else if (value instanceof Map) {
    out = new Map();
    memory.set(value, out);
    for (const [k, v] of value) out.set(cloneValue(k, memory), cloneValue(v, memory));
    return out;
  } else if (value instanceof Set) {
    out = new Set();
    memory.set(value, out);
    for (const v of value) out.add(cloneValue(v, memory));
    return out;
  } else if (value instanceof Error) {
    const Ctor = { EvalError, RangeError, ReferenceError, SyntaxError, TypeError, URIError }[value.name] || Error;
    out = new Ctor(value.message);
    if (typeof value.stack === "string") Object.defineProperty(out, "stack", { value: value.stack, writable: true, configurable: true });
    if ("cause" in value) out.cause = cloneValue(value.cause, memory);
  } else if (value instanceof Blob) out = value.slice(0, value.size, value.type);
  else if (value instanceof Promise || value instanceof WeakMap || value instanceof WeakSet || value instanceof WeakRef) {
    throw cloneError("a " + constructorName(value));
  } else {
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      const name = constructorName(value);
      if (["Request", "Response", "Headers", "ReadableStream", "AbortSignal", "AbortController"].includes(name)) throw cloneError("a " + name);
    }
    out = {};
    memory.set(value, out);
    for (const key of Object.keys(value)) out[key] = cloneValue(value[key], memory);
    return out;
  }
  memory.set(value, out);
  return out;
}

defineGlobal("structuredClone", function structuredClone(value, options) {
  if (arguments.length === 0) throw new TypeError("structuredClone: 1 argument required, but only 0 present");
  return cloneValue(value, new Map());
});

defineGlobal("navigator", { userAgent: "wws", hardwareConcurrency: 1, language: "en-US", languages: ["en-US"] });

// Called by `internal.handle` at the start of every request.
// (Variables are only written when they change: a write dirties the memory page the variable
// lies on, which the host then copies back after the request.)
function beginRequest() {
  if (timeOrigin !== null) timeOrigin = null;
  if (timerQueue.length !== 0) timerQueue = [];
}
