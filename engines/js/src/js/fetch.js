// fetch.js: Request, Response and fetch().
//
// Both classes follow the Fetch standard (every body reader returns a Promise, bodies are
// read once, clone() copies). Request adds wws' `params` (the route parameters, as in the
// original). fetch() sends the request through the host (wws' outbound HTTP), as far as the
// worker's `[features.http_requests]` allows.

const STATUS_TEXT = {
  100: "Continue", 101: "Switching Protocols", 102: "Processing", 103: "Early Hints",
  200: "OK", 201: "Created", 202: "Accepted", 203: "Non-Authoritative Information", 204: "No Content",
  205: "Reset Content", 206: "Partial Content", 207: "Multi-Status", 208: "Already Reported", 226: "IM Used",
  300: "Multiple Choices", 301: "Moved Permanently", 302: "Found", 303: "See Other", 304: "Not Modified",
  305: "Use Proxy", 307: "Temporary Redirect", 308: "Permanent Redirect",
  400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden", 404: "Not Found",
  405: "Method Not Allowed", 406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout",
  409: "Conflict", 410: "Gone", 411: "Length Required", 412: "Precondition Failed", 413: "Content Too Large",
  414: "URI Too Long", 415: "Unsupported Media Type", 416: "Range Not Satisfiable", 417: "Expectation Failed",
  418: "I'm a Teapot", 421: "Misdirected Request", 422: "Unprocessable Content", 423: "Locked",
  424: "Failed Dependency", 425: "Too Early", 426: "Upgrade Required", 428: "Precondition Required",
  429: "Too Many Requests", 431: "Request Header Fields Too Large", 451: "Unavailable For Legal Reasons",
  500: "Internal Server Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
  504: "Gateway Timeout", 505: "HTTP Version Not Supported", 506: "Variant Also Negotiates",
  507: "Insufficient Storage", 508: "Loop Detected", 510: "Not Extended", 511: "Network Authentication Required",
};

const METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "POST", "PUT", "PATCH"];

function normalizeMethod(method) {
  method = String(method);
  if (!TOKEN.test(method)) throw new TypeError(`Request: ${JSON.stringify(method)} is not a valid HTTP method`);
  const upper = method.toUpperCase();
  if (upper === "CONNECT" || upper === "TRACE" || upper === "TRACK") throw new TypeError(`Request: the method ${upper} is forbidden`);
  return METHODS.includes(upper) ? upper : method;
}

// The key that lets the engine build the incoming request without re-validating what the
// host already checked.
const trustedRequest = Symbol("trusted request");

let requestBody;
let requestFromHost;
// An incoming Request made while the snapshot was taken, for the first request to fill in
// (see `prepareSpares` in serve.js).
let spareRequest = null;

// The request-init settings of a request made by the engine: all defaults.
const NO_INIT = Object.freeze({});

class Request {
  #url;
  #method;
  #headers;
  #body;
  #signal;
  #params;
  // The request-init settings only a few getters read (`redirect`, `cache`, `mode`, ...).
  #init;

  constructor(input, init = {}) {
    if (input === trustedRequest) {
      // (trustedRequest, {url, method, headers, source, params}), or (trustedRequest, null)
      // for requestFromHost, which sets the fields itself.
      this.#signal = null;
      this.#init = NO_INIT;
      if (init === null) return;
      this.#url = init.url;
      this.#method = init.method;
      this.#headers = init.headers;
      this.#body = new BodyState(init.source);
      this.#params = init.params;
      return;
    }
    // (Not `arguments.length`: QuickJS would build an arguments object for every request.
    // An explicit undefined is no URL either.)
    if (input === undefined) throw new TypeError("Request: the input (a URL or a Request) is required");
    init = init || {};
    const from = input instanceof Request ? input : null;
    if (from) {
      this.#url = from.#url;
    } else {
      const url = new URL(String(input));
      // The Fetch standard: credentials belong in an Authorization header, not the URL.
      if (url.username !== "" || url.password !== "") throw new TypeError(`Request: ${url.href} includes credentials; send them in an Authorization header`);
      this.#url = url.href;
    }
    this.#method = init.method !== undefined ? normalizeMethod(init.method) : from ? from.#method : "GET";
    this.#headers = new Headers(init.headers !== undefined ? init.headers : from ? from.#ownHeaders() : undefined);
    this.#params = from ? { ...from.#params } : {};
    this.#signal = init.signal || (from ? from.#signal : createSignal());
    this.#init = {
      redirect: init.redirect !== undefined ? String(init.redirect) : from ? from.redirect : "follow",
      cache: init.cache,
      credentials: init.credentials,
      integrity: init.integrity,
      keepalive: init.keepalive,
      mode: init.mode,
      referrer: init.referrer,
      referrerPolicy: init.referrerPolicy,
    };
    let bodyInit = init.body;
    if (bodyInit === undefined && from) {
      if (from.#ownBody().isUsed()) throw new TypeError("Request: the body of the input request has already been read");
      this.#body = from.#body;
      from.#body = new BodyState(null);
      from.#body.used = true;
    } else {
      if (bodyInit !== undefined && bodyInit !== null && (this.#method === "GET" || this.#method === "HEAD")) {
        throw new TypeError(`Request: a ${this.#method} request cannot have a body`);
      }
      const { source, type } = extractBody(bodyInit);
      this.#body = new BodyState(source);
      if (type && !this.#headers.has("content-type")) this.#headers.set("content-type", type);
    }
  }

  static {
    requestBody = (request) => request.#ownBody();
    // The incoming request, from values the host already checked: no init object to read.
    // `headers` is the host's [[name, value], ...] list, made a Headers on first use; `source`
    // the body (a string, bytes or null), made a BodyState on first use.
    requestFromHost = (url, method, headers, source, params) => {
      // The spare is unused while it has no URL. (Telling so by its own field, which is
      // written anyway, spares the request a write to another page of memory.)
      let request = spareRequest;
      if (request === null || request.#url !== undefined) request = new Request(trustedRequest, null);
      request.#url = url;
      request.#method = method;
      request.#headers = headers;
      // The body's state is made on first use (see #ownBody): here, only its source.
      request.#body = source;
      request.#params = params;
      return request;
    };
  }

  get url() {
    return this.#url;
  }

  get method() {
    return this.#method;
  }

  get headers() {
    return this.#ownHeaders();
  }

  // The incoming request's body stays its source until something reads it.
  #ownBody() {
    const body = this.#body;
    if (body instanceof BodyState) return body;
    const state = new BodyState(body);
    // Workers written for the original read the body as a string (see BodyState).
    if (typeof body === "string" || body === null) state.readsAsText = body || "";
    return (this.#body = state);
  }

  // The incoming request's headers stay the host's list until something asks for them: a
  // worker that never reads them does not pay for a Headers object.
  #ownHeaders() {
    const headers = this.#headers;
    return Array.isArray(headers) ? (this.#headers = headersFromList(headers)) : headers;
  }

  // wws: the route parameters of `[id].js`-style routes, e.g. `{ id: "1" }`.
  get params() {
    return this.#params;
  }

  get signal() {
    if (this.#signal === null) this.#signal = createSignal();
    return this.#signal;
  }

  get redirect() {
    return this.#init.redirect || "follow";
  }

  get cache() {
    return this.#init.cache || "default";
  }

  get credentials() {
    return this.#init.credentials || "same-origin";
  }

  get integrity() {
    return this.#init.integrity || "";
  }

  get keepalive() {
    return Boolean(this.#init.keepalive);
  }

  get mode() {
    return this.#init.mode || "cors";
  }

  get referrer() {
    return this.#init.referrer === undefined ? "about:client" : String(this.#init.referrer);
  }

  get referrerPolicy() {
    return this.#init.referrerPolicy || "";
  }

  get destination() {
    return "";
  }

  get body() {
    return this.#ownBody().getStream();
  }

  get bodyUsed() {
    return this.#ownBody().isUsed();
  }

  text() {
    return this.#ownBody().text();
  }

  json() {
    return this.#ownBody().json();
  }

  arrayBuffer() {
    return this.#ownBody().arrayBuffer();
  }

  bytes() {
    return this.#ownBody().bytes();
  }

  blob() {
    return this.#ownBody().blob(this.#ownHeaders().get("content-type"));
  }

  formData() {
    return this.#ownBody().formData(this.#ownHeaders().get("content-type"));
  }

  clone() {
    const copy = new Request(trustedRequest, {
      url: this.#url,
      method: this.#method,
      headers: new Headers(this.#ownHeaders()),
      source: null,
      params: { ...this.#params },
    });
    copy.#body = this.#ownBody().clone();
    copy.#signal = this.#signal;
    copy.#init = this.#init;
    return copy;
  }

  [inspectSymbol]() {
    return "Request { method: " + inspect(this.#method) + ", url: " + inspect(this.#url) + ", headers: " + inspect(this.#ownHeaders()) + " }";
  }
}
tag(Request, "Request");

let responseSource;
let responseDefaultType;
let responseFromNetwork;
let responseHeaderList;

// `type`, `url` and `redirected` of a Response made by the worker (see `#origin`).
const MADE_HERE = Object.freeze({ type: "default", url: "", redirected: false });
const ERROR_ORIGIN = Object.freeze({ type: "error", url: "", redirected: false });

// The header list of a Response whose only header is the Content-Type its string body implied
// (see `#headers`); never changed, the output path copies before it changes anything.
const TEXT_PLAIN_ONLY = Object.freeze([Object.freeze(["content-type", TEXT_PLAIN])]);

// In QuickJS every field a constructor defines costs about a function call, and most
// responses are built once, returned and never looked at again: so the rarely different
// `type`/`url`/`redirected` share one field, and the Headers object is only made when something
// asks for it.
class Response {
  // Fields start with their defaults (an initialiser costs QuickJS less than declaring the
  // field and assigning it); `new Response(text)` only sets the body and its implied type.
  #status = 200;
  #statusText = "";
  // A Headers, or null while the headers are just the implied Content-Type (or none).
  #headers = null;
  #body = null;
  #origin = MADE_HERE;
  // The Content-Type the body implied, when the worker did not set one itself.
  #impliedType = null;

  constructor(body = null, init = NO_INIT) {
    if (init !== NO_INIT && init) {
      if (init.status !== undefined) {
        const status = Number(init.status);
        if (!Number.isInteger(status) || status < 200 || status > 599) {
          throw new RangeError(`Response: the status ${init.status} is not in the range 200 to 599`);
        }
        this.#status = status;
      }
      if (init.statusText !== undefined) {
        const statusText = String(init.statusText);
        if (/[^\t\x20-\x7e\x80-\xff]/.test(statusText)) throw new TypeError("Response: the statusText contains invalid characters");
        this.#statusText = statusText;
      }
      if (init.headers !== undefined) this.#headers = new Headers(init.headers);
    }
    // A string, the common case, without the object extractBody returns.
    let source = body;
    let type = TEXT_PLAIN;
    if (typeof body !== "string") {
      if (body instanceof String) source = String(body);
      else ({ source, type } = extractBody(body));
    }
    if (source !== null) {
      const status = this.#status;
      if (status === 101 || status === 103 || status === 204 || status === 205 || status === 304) {
        throw new TypeError(`Response: a response with status ${status} cannot have a body`);
      }
      // The body's state is made on first use (see #ownBody): here, only its source.
      this.#body = source;
    }
    if (type && (this.#headers === null || pairIndex(headersList(this.#headers), "content-type") < 0)) {
      if (this.#headers !== null) headersAppendTrusted(this.#headers, "content-type", type);
      this.#impliedType = type;
    }
  }

  // Most responses are returned and sent without their body being looked at: its state is
  // only made when something reads it.
  #ownBody() {
    const body = this.#body;
    return body instanceof BodyState ? body : (this.#body = new BodyState(body));
  }

  // The Headers object, made on first use from the implied Content-Type.
  #headerObject() {
    if (this.#headers === null) {
      const list = this.#impliedType === null ? [] : [["content-type", this.#impliedType]];
      this.#headers = headersFromList(list);
    }
    return this.#headers;
  }

  static {
    // The body to send: its source (null, a string, bytes or a stream). Throws when the worker
    // already read it.
    responseSource = (response) => {
      const body = response.#body;
      if (!(body instanceof BodyState)) return body;
      if (body.isUsed()) throw new TypeError("the body of the returned Response has already been read");
      return body.source;
    };
    // A response fetch() received, from the host's answer (see src/host.rs `http_send`).
    responseFromNetwork = ({ status, headers, body, url, redirected }) => {
      // `redirect: "manual"` answers the 3xx itself; 1xx and 6xx are no final answer.
      if (status < 200 || status > 599) throw new TypeError(`fetch: ${url} answered with status ${status}, which is not a final response`);
      const nullBody = status === 204 || status === 205 || status === 304;
      const response = new Response(nullBody ? null : body, { status, headers });
      response.#statusText = STATUS_TEXT[status] || "";
      response.#origin = Object.freeze({ type: "basic", url, redirected });
      response.#impliedType = null;
      headersSetImmutable(response.#headerObject());
      return response;
    };
    // True when the Content-Type is the one a plain string body implied, not one the worker
    // chose (see `outputOf` in serve.js).
    responseDefaultType = (response) =>
      response.#impliedType === TEXT_PLAIN &&
      (response.#headers === null || headersGetTrusted(response.#headers, "content-type") === response.#impliedType);
    // The [[name, value], ...] list to send: read only.
    responseHeaderList = (response) => {
      if (response.#headers !== null) return headersList(response.#headers);
      if (response.#impliedType === TEXT_PLAIN) return TEXT_PLAIN_ONLY;
      return response.#impliedType === null ? [] : [["content-type", response.#impliedType]];
    };
  }

  static json(data, init = {}) {
    const text = JSON.stringify(data);
    if (text === undefined) throw new TypeError("Response.json: the data cannot be serialised to JSON");
    const headers = new Headers(init && init.headers);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
    return new Response(text, { ...init, headers });
  }

  static redirect(url, status = 302) {
    const location = new URL(String(url)).href;
    status = Number(status);
    if (![301, 302, 303, 307, 308].includes(status)) throw new RangeError(`Response.redirect: ${status} is not a redirect status (301, 302, 303, 307 or 308)`);
    const response = new Response(null, { status, headers: { location } });
    headersSetImmutable(response.#headerObject());
    return response;
  }

  static error() {
    const response = new Response(null, { status: 200 });
    response.#status = 0;
    response.#origin = ERROR_ORIGIN;
    headersSetImmutable(response.#headerObject());
    return response;
  }

  get status() {
    return this.#status;
  }

  get statusText() {
    return this.#statusText;
  }

  get ok() {
    return this.#status >= 200 && this.#status <= 299;
  }

  get headers() {
    return this.#headerObject();
  }

  get type() {
    return this.#origin.type;
  }

  get url() {
    return this.#origin.url;
  }

  get redirected() {
    return this.#origin.redirected;
  }

  get body() {
    return this.#ownBody().getStream();
  }

  get bodyUsed() {
    return this.#ownBody().isUsed();
  }

  text() {
    return this.#ownBody().text();
  }

  json() {
    return this.#ownBody().json();
  }

  arrayBuffer() {
    return this.#ownBody().arrayBuffer();
  }

  bytes() {
    return this.#ownBody().bytes();
  }

  blob() {
    return this.#ownBody().blob(this.#headerObject().get("content-type"));
  }

  formData() {
    return this.#ownBody().formData(this.#headerObject().get("content-type"));
  }

  clone() {
    const copy = new Response(null, { status: this.#status === 0 ? 200 : this.#status, statusText: this.#statusText, headers: this.#headerObject() });
    copy.#status = this.#status;
    copy.#body = this.#ownBody().clone();
    copy.#origin = this.#origin;
    copy.#impliedType = this.#impliedType;
    return copy;
  }

  [inspectSymbol]() {
    return "Response { status: " + this.#status + ", statusText: " + inspect(this.#statusText) + ", headers: " + inspect(this.#headerObject()) + " }";
  }
}
tag(Response, "Response");

// fetch(): the request goes out through the host, within what the worker's
// `[features.http_requests]` allows (hosts, methods, plain http). A refused or failed request
// rejects with a TypeError naming the URL and the reason. Requests overlap: the host starts
// each at once and the event loop settles them as they finish (src/http.rs). Aborting the
// signal rejects at once; the host's answer is then dropped.
function fetch(input, init) {
  return new Promise((resolve, reject) => {
    let request;
    try {
      request = new Request(input, init);
    } catch (error) {
      reject(error);
      return;
    }
    const signal = request.signal;
    const abortReason = () => (signal.reason !== undefined ? signal.reason : new DOMException("fetch: the request was aborted", "AbortError"));
    if (signal.aborted) {
      reject(abortReason());
      return;
    }
    signal.addEventListener("abort", () => reject(abortReason()), { once: true });
    const send = (bytes) => {
      const head = JSON.stringify({ method: request.method, url: request.url, headers: headersList(request.headers), redirect: request.redirect });
      return host.httpStart(head, bytes).then((answer) => {
        if (answer.error !== undefined) {
          throw new TypeError(`fetch: ${request.method} ${request.url} failed (${answer.error}): ${answer.message}`);
        }
        return responseFromNetwork(answer);
      });
    };
    const sent = requestBody(request).source === null ? send(null) : request.arrayBuffer().then((buffer) => send(new Uint8Array(buffer)));
    sent.then(resolve, reject);
  });
}

defineGlobal("Request", Request);
defineGlobal("Response", Response);
defineGlobal("fetch", fetch);
