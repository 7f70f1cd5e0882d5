// events.js: DOMException, Event, EventTarget, AbortController and AbortSignal.

const DOM_CODES = {
  IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5,
  NoModificationAllowedError: 7, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11,
  SyntaxError: 12, InvalidModificationError: 13, NamespaceError: 14, InvalidAccessError: 15,
  TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20, URLMismatchError: 21,
  QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24, DataCloneError: 25,
};

class DOMException extends Error {
  #name;

  constructor(message = "", options = "Error") {
    super(String(message));
    if (options !== null && typeof options === "object") {
      this.#name = "name" in options ? String(options.name) : "Error";
      if ("cause" in options) Object.defineProperty(this, "cause", { value: options.cause, writable: true, configurable: true });
    } else {
      this.#name = String(options);
    }
  }

  get name() {
    return this.#name;
  }

  get code() {
    return DOM_CODES[this.#name] || 0;
  }
}
for (const [name, code] of Object.entries(DOM_CODES)) {
  const constant = name.replace(/Error$/, "").replace(/([a-z])([A-Z])/g, "$1_$2").toUpperCase() + "_ERR";
  Object.defineProperty(DOMException, constant, { value: code, enumerable: true });
}
tag(DOMException, "DOMException");

// Accessors for private state that other classes of the polyfill need, set by static blocks.
let eventIsStopped;
let stampEvent;
let createSignal;
let signalAbort;

// Event's boolean state, one bit each in one field: every field costs each new event (a
// FetchEvent per request) a property definition.
const BUBBLES = 1;
const CANCELABLE = 2;
const DEFAULT_PREVENTED = 4;
const STOPPED = 8;

class Event {
  #type;
  #flags;
  #timeStamp;

  // (The default keeps Event.length at 1, as the standard has it.)
  constructor(type, init = undefined) {
    if (arguments.length === 0) throw new TypeError("Event: the type argument is required");
    this.#type = typeof type === "string" ? type : String(type);
    this.#flags = init ? (init.bubbles ? BUBBLES : 0) | (init.cancelable ? CANCELABLE : 0) : 0;
    this.#timeStamp = host.now();
  }

  get type() {
    return this.#type;
  }

  get bubbles() {
    return (this.#flags & BUBBLES) !== 0;
  }

  get cancelable() {
    return (this.#flags & CANCELABLE) !== 0;
  }

  get defaultPrevented() {
    return (this.#flags & DEFAULT_PREVENTED) !== 0;
  }

  get timeStamp() {
    return this.#timeStamp;
  }

  get isTrusted() {
    return false;
  }

  preventDefault() {
    if (this.#flags & CANCELABLE) this.#flags |= DEFAULT_PREVENTED;
  }

  stopPropagation() {}

  stopImmediatePropagation() {
    this.#flags |= STOPPED;
  }

  static {
    eventIsStopped = (event) => (event.#flags & STOPPED) !== 0;
    // For an event made ahead of time (see `prepareSpares`): created now, as far as it knows.
    stampEvent = (event) => {
      event.#timeStamp = host.now();
    };
  }
}
tag(Event, "Event");
// Set by dispatchEvent; null on the prototype until then, so that constructing an event (one
// per request) defines no properties for them.
Event.prototype.target = null;
Event.prototype.currentTarget = null;

class CustomEvent extends Event {
  #detail;

  constructor(type, init = {}) {
    super(type, init);
    this.#detail = init && init.detail !== undefined ? init.detail : null;
  }

  get detail() {
    return this.#detail;
  }
}
tag(CustomEvent, "CustomEvent");

class EventTarget {
  #listeners = new Map();

  addEventListener(type, listener, options) {
    if (listener === null || listener === undefined) return;
    const once = typeof options === "object" && options !== null && Boolean(options.once);
    const signal = typeof options === "object" && options !== null ? options.signal : undefined;
    if (signal && signal.aborted) return;
    type = String(type);
    let list = this.#listeners.get(type);
    if (!list) this.#listeners.set(type, (list = []));
    if (list.some((entry) => entry.listener === listener)) return;
    const entry = { listener, once };
    list.push(entry);
    if (signal) signal.addEventListener("abort", () => this.removeEventListener(type, listener));
  }

  removeEventListener(type, listener) {
    const list = this.#listeners.get(String(type));
    if (!list) return;
    const index = list.findIndex((entry) => entry.listener === listener);
    if (index >= 0) list.splice(index, 1);
  }

  dispatchEvent(event) {
    if (!(event instanceof Event)) throw new TypeError("dispatchEvent: the argument is not an Event");
    const list = this.#listeners.get(event.type);
    event.target = this;
    event.currentTarget = this;
    if (list) {
      for (const entry of list.slice()) {
        if (entry.once) this.removeEventListener(event.type, entry.listener);
        try {
          if (typeof entry.listener === "function") entry.listener.call(this, event);
          else if (entry.listener && typeof entry.listener.handleEvent === "function") entry.listener.handleEvent(event);
        } catch (error) {
          reportError(error);
        }
        if (eventIsStopped(event)) break;
      }
    }
    const handler = this["on" + event.type];
    if (typeof handler === "function") {
      try {
        handler.call(this, event);
      } catch (error) {
        reportError(error);
      }
    }
    event.currentTarget = null;
    return !event.defaultPrevented;
  }
}
tag(EventTarget, "EventTarget");

const signalKey = Symbol("AbortSignal");

class AbortSignal extends EventTarget {
  #aborted = false;
  #reason = undefined;
  onabort = null;

  constructor(key) {
    super();
    if (key !== signalKey) throw new TypeError("AbortSignal: use AbortController or AbortSignal.abort() to create one");
  }

  static {
    createSignal = () => new AbortSignal(signalKey);
    signalAbort = (signal, reason) => {
      if (signal.#aborted) return;
      signal.#aborted = true;
      signal.#reason = reason === undefined ? new DOMException("This operation was aborted", "AbortError") : reason;
      signal.dispatchEvent(new Event("abort"));
    };
  }

  get aborted() {
    return this.#aborted;
  }

  get reason() {
    return this.#reason;
  }

  throwIfAborted() {
    if (this.#aborted) throw this.#reason;
  }

  static abort(reason) {
    const signal = createSignal();
    signalAbort(signal, reason);
    return signal;
  }

  static timeout(ms) {
    const signal = createSignal();
    setTimeout(() => signalAbort(signal, new DOMException("The operation timed out", "TimeoutError")), ms);
    return signal;
  }

  static any(signals) {
    const signal = createSignal();
    for (const source of signals) {
      if (source.aborted) {
        signalAbort(signal, source.reason);
        return signal;
      }
    }
    for (const source of signals) source.addEventListener("abort", () => signalAbort(signal, source.reason), { once: true });
    return signal;
  }
}
tag(AbortSignal, "AbortSignal");

class AbortController {
  #signal = createSignal();

  get signal() {
    return this.#signal;
  }

  abort(reason) {
    signalAbort(this.#signal, reason);
  }
}
tag(AbortController, "AbortController");

defineGlobal("DOMException", DOMException);
defineGlobal("Event", Event);
defineGlobal("CustomEvent", CustomEvent);
defineGlobal("EventTarget", EventTarget);
defineGlobal("AbortSignal", AbortSignal);
defineGlobal("AbortController", AbortController);
