#!/usr/bin/env python3
"""Development aid: check the polyfills and wrappers of a built repository with drive.py.

NOT used by wws or by its tests (the end-to-end tests run the real server). It runs
dev/workers/check.{py,rb} under every runtime of REPO_DIR/index.toml through the host calling
conventions, checks each behaviour of the user API, and prints per-request timings.

    selftest.py REPO_DIR [NAME[@VERSION] ...]
"""

import base64
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import drive

HERE = Path(__file__).resolve().parent
failures = []


def check(label, condition, detail=""):
    print(f"  {'ok  ' if condition else 'FAIL'} {label}" + (f": {detail}" if not condition and detail else ""))
    if not condition:
        failures.append(label)


def output(outcome):
    try:
        return json.loads(outcome.stdout)
    except ValueError:
        return {"unparsed stdout": outcome.stdout[:200].decode(errors="replace"), "stderr": outcome.stderr[-400:]}


def url(path):
    return f"http://127.0.0.1:8080/{path}"


def test_runtime(runtime, tmp):
    entry = runtime.entry
    ext = entry["extensions"][0]
    src = runtime.prepare((HERE / "workers" / f"check.{ext}").read_text(), Path(tmp) / "src")
    data = Path(tmp) / "data"
    data.mkdir()
    (data / "message.txt").write_text("read from a mounted folder")

    def run(path, reuse=False, stdin=None, **fields):
        req = drive.request(url=url(path), **fields)
        return runtime.run(src, stdin if stdin is not None else json.dumps(req).encode(), {"MESSAGE": "hi from vars"}, [(data, "/data")], reuse)

    o = run("hello")
    out = output(o)
    check("hello", o.ok and out.get("data", "").startswith("Hello from") and out["status"] == 200 and out["base64"] is False, out)

    out = output(run("params", params={"id": "42"}, method="POST", headers={"user-agent": "selftest"}))
    check("params, method, headers", out.get("data") == "id=42 method=POST ua=selftest", out)

    expected_dwb = entry.get("envs", {}).get("PYTHONDONTWRITEBYTECODE", "")
    out = output(run("env"))
    check("worker vars and runtime envs", out.get("data") == f"hi from vars|{expected_dwb}", out)

    kv = {"stale": "x"}
    counts = []
    for _ in range(3):
        out = output(run("counter", kv=kv))
        kv = out.get("kv", {})
        counts.append(out.get("data"))
    check("KV counter round-trip (3 requests, delete)", counts == ["1", "2", "3"] and kv == {"count": "3"}, (counts, kv))
    check("header values stringified", out.get("headers", {}).get("x-hits") == "1", out.get("headers"))

    out = output(run("folder"))
    check("mounted folder read", out.get("data") == "read from a mounted folder", out)

    out = output(run("binary"))
    body = base64.b64decode(out.get("data", "")) if out.get("base64") else b""
    check("binary response is base64", body == bytes(range(256)) and out["headers"].get("content-type") == "application/octet-stream", out)

    raw = bytes([0xFF, 0x00, 0x80, 0x41]) + b"tail"
    out = output(run("echo-binary", body=base64.b64encode(raw).decode(), base64=True, method="POST"))
    check("binary request body arrives as bytes", out.get("data") in ("bytes 8 ff008041", "ASCII-8BIT 8 ff008041"), out)

    out = output(run("headers"))
    check("multi-value headers, status 201", out.get("status") == 201 and out.get("headers") == {"set-cookie": ["a=1", "b=2"], "x-one": "1"}, out)

    out = output(run("json"))
    check("dict body sent as JSON", json.loads(out.get("data", "null")) == {"ok": True, "n": 3} and out["headers"].get("content-type") == "application/json", out)

    o = run("print")
    out = output(o)
    check("user prints go to stderr", o.ok and out.get("data") == "clean" and "this goes to the log" in o.stderr and "so does this" in o.stderr, (out, o.stderr))

    check("module-level output goes to stderr", "goes to the log" in o.stderr, o.stderr[-300:])

    text = "héllo ✓ " * 20000 + "\nsecond line\n"
    out = output(run("echo", method="PUT", body=text))
    check("large multi-line UTF-8 body (read whole stdin)", out.get("data") == f"PUT {len(text)} {text}" and out["headers"].get("x-unicode") == "héllo ✓", str(out)[:300])

    o = run("fail")
    check("exception fails the run", not o.ok and "boom from the worker" in o.stderr and o.stdout == b"", (o.detail, o.stdout[:100], o.stderr[-300:]))
    print(f"       failure seen by the host as: {o.detail}")

    if runtime.entrypoint == "ruby-wasm-reactor":
        for path in ("exit", "exit-bang"):
            o = run(path)
            print(f"       `{path}` in a worker: ok={o.ok} {o.detail}; stdout {o.stdout[:60]!r}")

    o = run("nope")
    check("unknown path gives 404 from the worker", output(o).get("status") == 404, o.stdout)

    # Reuse mode: three requests in one instance; the host carries kv from one to the next.
    payloads = []
    kv = {}
    reqs = [drive.request(url=url("counter"), kv=kv), drive.request(url=url("print")), drive.request(url=url("hello"))]
    o = run("", reuse=True, stdin=drive.frames(json.dumps(r).encode() for r in reqs))
    try:
        payloads = [json.loads(p) for p in drive.parse_frames(o.stdout)]
    except ValueError as err:
        payloads = [str(err)]
    check(
        "reuse mode: 3 requests, 3 frames",
        o.ok and len(payloads) == 3 and payloads[0].get("data") == "1" and payloads[1].get("data") == "clean" and payloads[2].get("data", "").startswith("Hello"),
        (o.detail, payloads, o.stderr[-300:]),
    )

    # Interactive: each response is read before the next request is written, as the host does.
    session = runtime.session(src, {"MESSAGE": "hi from vars"}, [(data, "/data")])
    answers = []
    kv = {}
    started = time.perf_counter()
    for _ in range(3):
        frame = session.request(json.dumps(drive.request(url=url("counter"), kv=kv)).encode())
        answer = json.loads(frame) if frame else {}
        kv = answer.get("kv", {})
        answers.append(answer.get("data"))
    first = time.perf_counter() - started
    latencies = []
    hello = json.dumps(drive.request(url=url("hello"))).encode()
    for _ in range(200):
        t = time.perf_counter()
        session.request(hello)
        latencies.append(time.perf_counter() - t)
    ok, detail, stderr = session.finish()
    check("reuse mode, interactive: 3 counter requests then EOF", ok and answers == ["1", "2", "3"], (detail, answers, stderr[-300:]))
    print(f"       interactive reuse: first 3 requests {first * 1000:.0f} ms (incl. boot); then p50 {statistics.median(latencies) * 1000:.2f} ms per request round trip")

    # Frame lengths count bytes, not characters; a replaced stdout is restored per request.
    reqs = [drive.request(url=url("echo"), body=text), drive.request(url=url("hijack")), drive.request(url=url("print")), drive.request(url=url("echo"), body="✓")]
    o = run("", reuse=True, stdin=drive.frames(json.dumps(r, ensure_ascii=False).encode() for r in reqs))
    payloads = [json.loads(p) for p in drive.parse_frames(o.stdout)] if o.ok else []
    check(
        "reuse mode: UTF-8 frames, stdout restored after a worker replaced it",
        [p.get("data") for p in payloads] == [f"GET {len(text)} {text}", "hijacked", "clean", "GET 1 ✓"] and "so does this" in o.stderr,
        (o.detail, str(payloads)[:300], o.stderr[-300:]),
    )

    # Reuse mode keeps globals; kv comes from each frame, not from the previous request.
    reqs = [drive.request(url=url("counter"), kv={"count": "10"}), drive.request(url=url("counter"), kv={"count": "20"})]
    o = run("", reuse=True, stdin=drive.frames(json.dumps(r).encode() for r in reqs))
    payloads = [json.loads(p) for p in drive.parse_frames(o.stdout)] if o.ok else []
    check(
        "reuse mode: kv reset per request, globals persist",
        [p.get("data") for p in payloads] == ["11", "21"] and [p["headers"].get("x-hits") for p in payloads] == ["1", "2"],
        (o.detail, payloads),
    )

    reqs = [drive.request(url=url("hello")), drive.request(url=url("fail")), drive.request(url=url("hello"))]
    o = run("", reuse=True, stdin=drive.frames(json.dumps(r).encode() for r in reqs))
    check("reuse mode: a failure ends the instance after the earlier frames", not o.ok and len(drive.parse_frames(o.stdout)) == 1, (o.detail, o.stdout[:200]))

    o = run("", reuse=True, stdin=b"12\n{\"url\":")
    check("reuse mode: truncated frame fails", not o.ok and "truncated" in o.stderr, (o.detail, o.stderr[-300:]))

    # Empty stdin in reuse mode: the worker is loaded, nothing is served, clean exit; a syntax
    # error fails that same check (a host can run it at startup).
    o = run("", reuse=True, stdin=b"")
    check("reuse mode, empty stdin: loads the worker and exits cleanly", o.ok and o.stdout == b"", (o.detail, o.stdout[:100], o.stderr[-300:]))
    broken = runtime.prepare("def worker(req:\n", Path(tmp) / "broken")
    o = runtime.run(broken, b"", None, (), True)
    check("reuse mode, empty stdin: a syntax error fails", not o.ok and "SyntaxError" in o.stderr, (o.detail, o.stderr[-300:]))

    # Timings.
    single = []
    for _ in range(5):
        o = run("hello")
        single.append(o.timings)
    n = 500
    hello = json.dumps(drive.request(url=url("hello"))).encode()
    ones, manys = [], []
    for _ in range(3):
        ones.append(run("", reuse=True, stdin=drive.frames([hello])).timings["run"])
        many = run("", reuse=True, stdin=drive.frames([hello] * n))
        manys.append(many.timings["run"])
    check(f"reuse mode: {n} requests", many.ok and len(drive.parse_frames(many.stdout)) == n, many.detail)

    def ms(xs):
        return f"{statistics.median(xs) * 1000:.1f} ms"

    phases = {k: ms([t[k] for t in single]) for k in single[0]}
    total = ms([sum(t.values()) for t in single])
    per_request = (statistics.median(manys) - statistics.median(ones)) / (n - 1) * 1000
    print(f"  timings: compile/load {runtime.compile_seconds * 1000:.0f} ms; fresh instance per request: {total} ({phases})")
    print(f"           reuse mode: {per_request:.2f} ms per request after the first ({n} requests in one instance)")


def main():
    repo = sys.argv[1] if len(sys.argv) > 1 else None
    if repo is None:
        sys.exit(__doc__)
    wanted = sys.argv[2:]
    engine = drive.make_engine()
    for (name, version), entry in drive.load_runtimes(engine, repo).items():
        if wanted and name not in wanted and f"{name}@{version}" not in wanted:
            continue
        started = time.perf_counter()
        print(f"{name} {version} ({entry.get('entrypoint', 'wasi-command')})")
        runtime = drive.Runtime(engine, repo, entry)
        with tempfile.TemporaryDirectory(prefix="wws-selftest-") as tmp:
            test_runtime(runtime, tmp)
        print(f"  ({time.perf_counter() - started:.1f} s)")
    if failures:
        sys.exit(f"{len(failures)} check(s) failed: {', '.join(failures)}")
    print("all checks passed")


if __name__ == "__main__":
    main()
