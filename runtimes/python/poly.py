"""wws Python polyfill: the worker API (Request, Response, Cache) and the stdio protocol.

The wrapper imports this module before the worker's source (`from poly import *`) and calls
`main(worker)` after it. The API is the one of the original Wasm Workers Server, so workers
written for it run unchanged; see runtimes/README.md for the user documentation.

Protocol: one request JSON object on stdin, one response JSON object on stdout. While this
module is loaded, `sys.stdout` points at stderr, so `print()` in a worker goes to the server log
and can never corrupt the response; the response is written to the real stdout at the end.
With `WWS_REUSE=1` the module serves a sequence of length-prefixed requests instead (one
instance, many requests; framing in runtimes/README.md).
"""

import sys, os, binascii

# The response channel. Nothing else may write to it.
_channel = sys.stdout.buffer
sys.stdout = sys.stderr


class _LazyModule:
    """Stands for a module and imports it on first use.

    The original polyfill did `import sys, json, base64`, so workers written for it may use
    `json` and `base64` through `from poly import *` without importing them. Importing `json`
    eagerly costs about half of the interpreter's start in WASI (it pulls in `re`), so these
    names are bound to proxies that import the real module only when a worker touches them.
    """

    def __init__(self, name):
        self.__dict__["_name"] = name

    def __getattr__(self, attr):
        return getattr(__import__(self._name), attr)

    def __repr__(self):
        return f"<lazy module {self._name!r}>"


json = _LazyModule("json")
base64 = _LazyModule("base64")

try:
    # The C accelerator behind the `json` module, used directly so that a request that does
    # not use `json` itself never imports it (see _LazyModule).
    import _json

    class _DecoderSettings:
        strict = True
        object_hook = None
        object_pairs_hook = None
        parse_float = float
        parse_int = int
        parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__

    def _default(value):
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

    _scan = _json.make_scanner(_DecoderSettings())
    _encode = _json.make_encoder({}, _default, _json.encode_basestring_ascii, None, ":", ",", False, False, True)

    def _loads(data):
        text = data.decode("utf-8")
        start = len(text) - len(text.lstrip(" \t\n\r"))
        try:
            value, end = _scan(text, start)
        except StopIteration as err:
            raise ValueError(f"request is not JSON (at character {err.value})") from None
        if text[end:].strip(" \t\n\r"):
            raise ValueError(f"request has extra data after the JSON value (at character {end})")
        return value

    def _dumps(value):
        return "".join(_encode(value, 0)).encode("ascii")

except ImportError:

    def _loads(data):
        return json.loads(data)

    def _dumps(value):
        return json.dumps(value, separators=(",", ":")).encode("ascii")


class Cache:
    """The worker's key/value namespace: a snapshot in, the new state out. Keys and values are strings."""

    store = {}

    @classmethod
    def init(cls, kv):
        cls.store = dict(kv or {})

    @classmethod
    def dump(cls):
        return cls.store

    @classmethod
    def get(cls, key):
        return cls.store.get(str(key))

    @classmethod
    def set(cls, key, value):
        cls.store[str(key)] = str(value)

    @classmethod
    def delete(cls, key):
        cls.store.pop(str(key), None)


class Request:
    """The incoming HTTP request.

    `body` is a `str`, or `bytes` when the request body was not valid UTF-8. `headers` maps
    lower-case names to values; `params` holds the dynamic route segments (`[id]` -> `params["id"]`).
    """

    def __init__(self, input):
        self.method = input.get("method", "GET")
        self.url = input.get("url", "")
        self.headers = input.get("headers") or {}
        self.params = input.get("params") or {}
        body = input.get("body") or ""
        if input.get("base64"):
            body = binascii.a2b_base64(body)
        self.body = body


class Response:
    """What a worker returns: `Response(body, status_code=200, headers={})`.

    `body` may be `str`, `bytes` (sent as is), a `dict` or `list` (sent as JSON), or None.
    A header value may be a list to send the header several times (e.g. `Set-Cookie`).
    The attributes `body`, `status_code` and `headers` can also be changed after creation.
    """

    def __init__(self, body="", status_code=200, headers=None):
        self.body = body
        self.status_code = status_code
        self.headers = dict(headers) if headers else {}

    def to_dict(self):
        """The response as the output object of the wws protocol, without `kv`."""
        headers = {}
        for name, value in self.headers.items():
            if isinstance(value, (list, tuple)):
                headers[str(name)] = [str(v) for v in value]
            else:
                headers[str(name)] = str(value)

        body = self.body
        encoded = False
        if body is None:
            body = ""
        elif isinstance(body, (bytes, bytearray, memoryview)):
            body = binascii.b2a_base64(body, newline=False).decode("ascii")
            encoded = True
        elif isinstance(body, (dict, list)):
            body = json.dumps(body)
            if not any(name.lower() == "content-type" for name in headers):
                headers["content-type"] = "application/json"
        elif not isinstance(body, str):
            body = str(body)

        return {"data": body, "base64": encoded, "status": int(self.status_code), "headers": headers}

    def to_json(self):
        """The complete output object as JSON text (kept from the original polyfill)."""
        out = self.to_dict()
        out["kv"] = Cache.dump()
        return json.dumps(out)


class HttpError(Exception):
    """An outbound request that was refused or failed. `kind` is one of `not-allowed` (the
    worker's `[features.http_requests]` does not allow it), `invalid-request` (a bad URL or
    method, or the host could not be reached), `invalid-request-body`, `invalid-response-body`
    (cut short, or larger than the output limit), `redirect-loop`, `timeout`, `not-available`
    (reuse mode is off, or the worker is still loading) or `internal-error`; `message` says why."""

    def __init__(self, kind, message):
        super().__init__(f"[{kind}] {message}")
        self.kind = kind
        self.message = message


class FetchResponse:
    """The answer to `fetch`: `status`, `headers` (lower-case names; a repeated header's values
    joined with ", "), `header_list` (every `(name, value)` as received, for `set-cookie`),
    `body` (bytes), `url` (after redirects) and `redirected`."""

    def __init__(self, answer):
        self.status = answer["status"]
        self.header_list = [(name.lower(), value) for name, value in answer.get("headers") or []]
        self.headers = {}
        for name, value in self.header_list:
            self.headers[name] = f"{self.headers[name]}, {value}" if name in self.headers else value
        self.body = binascii.a2b_base64(answer.get("body") or "")
        self.url = answer.get("url", "")
        self.redirected = bool(answer.get("redirected"))

    @property
    def ok(self):
        return 200 <= self.status < 300

    def text(self, encoding="utf-8"):
        return self.body.decode(encoding, errors="replace")

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<FetchResponse {self.status} {self.url}>"


def fetch(url, method="GET", headers=None, body=None, redirect="follow"):
    """Makes an outbound HTTP request through the host and returns a `FetchResponse`.

    `headers` is a dict, `body` a str, bytes or None, `redirect` `follow`, `manual` or `error`.
    Only hosts the worker's `[features.http_requests]` allows can be reached; a refusal or a
    failure raises `HttpError`. The request goes over the reuse protocol (a call frame on
    stdout, its answer on stdin), so it needs reuse mode, which Python workers have unless
    their TOML sets `[runtime] reuse = false`.
    """
    if os.environ.get("WWS_REUSE") != "1":
        raise HttpError("not-available", "outbound HTTP needs reuse mode: remove `reuse = false` from the worker's [runtime] table")
    if isinstance(body, str):
        body = body.encode("utf-8")
    request = {
        "method": str(method),
        "url": str(url),
        "headers": [[str(name), str(value)] for name, value in (headers or {}).items()],
        "body": None if body is None else binascii.b2a_base64(bytes(body), newline=False).decode("ascii"),
        "redirect": str(redirect),
    }
    out = _dumps(request)
    _write(b"H%d\n%s" % (len(out), out))
    answer = _read_frame(sys.stdin.buffer)
    if answer is None:
        raise HttpError("internal-error", "the host closed the worker's input before answering")
    answer = _loads(answer)
    if "error" in answer:
        raise HttpError(answer["error"], answer.get("message", ""))
    return FetchResponse(answer)


def _read_frame(stdin):
    """One `<length>\\n<payload>` frame from `stdin`, or None at the end of input."""
    header = stdin.readline()
    if not header:
        return None
    size = int(header)
    payload = stdin.read(size)
    if len(payload) != size:
        raise EOFError(f"frame truncated: {len(payload)} of {size} bytes")
    return payload


def handle(worker, input):
    """Run `worker` on one request object and return the output object (`data`, `status`, ...)."""
    Cache.init(input.get("kv"))
    sys.stdout = sys.stderr
    res = worker(Request(input))
    if isinstance(res, (str, bytes, bytearray)):
        res = Response(res)
    if not isinstance(res, Response):
        raise TypeError(f"worker(req) must return a Response, not {type(res).__name__}")
    out = res.to_dict()
    out["kv"] = Cache.dump()
    return out


def _write(data):
    _channel.write(data)
    _channel.flush()


def _fail():
    """Print the exception being handled to stderr and end the process with status 1."""
    import traceback

    traceback.print_exc()
    sys.stderr.flush()
    sys.exit(1)


def _serve_once(worker):
    try:
        out = _dumps(handle(worker, _loads(sys.stdin.buffer.read())))
    except Exception:
        _fail()
    _write(out)


def _serve_loop(worker):
    """Reuse mode: `<length>\\n<json>` frames in and out until stdin ends."""
    stdin = sys.stdin.buffer
    while True:
        try:
            payload = _read_frame(stdin)
            if payload is None:
                return
            out = _dumps(handle(worker, _loads(payload)))
        except Exception:
            _fail()
        _write(b"%d\n%s" % (len(out), out))
        sys.stderr.flush()


def main(worker):
    """Entry point called by the wrapper with the worker's `worker` function (or None)."""
    if not callable(worker):
        print("wws: the worker must define a function `worker(req)` that returns a Response", file=sys.stderr)
        sys.exit(1)
    if os.environ.get("WWS_REUSE") == "1":
        _serve_loop(worker)
    else:
        _serve_once(worker)
