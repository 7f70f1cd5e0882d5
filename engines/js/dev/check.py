#!/usr/bin/env python3
"""Runs every case of tests/fixtures/js/cases.json against the engine and reports mismatches.

    check.py [--engine PATH] [--mode cold|init] [CASE_NAME_SUBSTRING...]

Needs the `wasmtime` package from PyPI. Each case names a fixture worker, the request the
host would send (as the engine protocol's JSON) and what must come out: the status, a subset
of the headers, the body (exact text, a subset of its JSON, or base64), a subset of `kv`,
or, for workers that must fail, exit code 1 and the text stderr must contain.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile

import wasmtime

import wws_http

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
FIXTURES = os.path.join(REPO, "tests", "fixtures", "js")
DEFAULT_ENGINE = os.path.join(HERE, "..", "dist", "wws-js-engine.wasm")


def subset(want, got, path="$"):
    """Yields the differences between `want` and the part of `got` it describes."""
    if isinstance(want, dict):
        if not isinstance(got, dict):
            yield f"{path}: expected an object, got {json.dumps(got)}"
            return
        for k, v in want.items():
            if k not in got:
                yield f"{path}.{k}: missing"
            else:
                yield from subset(v, got[k], f"{path}.{k}")
    elif want != got:
        yield f"{path}: expected {json.dumps(want, ensure_ascii=False)}, got {json.dumps(got, ensure_ascii=False)}"


def request_json(case):
    r = case.get("request", {})
    req = {
        "url": r.get("url", "http://localhost:8080" + r.get("path", "/")),
        "method": r.get("method", "GET"),
        "headers": {"host": "localhost:8080", **r.get("headers", {})},
        "body": r.get("body", ""),
        "kv": r.get("kv", {}),
        "params": r.get("params", {}),
    }
    if r.get("base64"):
        req["base64"] = True
    return json.dumps(req)


def run(engine, module, case, mode):
    src = tempfile.mkdtemp(prefix="wws-js-check-")
    shutil.copy(os.path.join(FIXTURES, case["worker"]), os.path.join(src, "index.js"))
    stdin = os.path.join(src, ".stdin")
    with open(stdin, "w") as f:
        f.write(request_json(case))
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    wws_http.define(linker)
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.env = [("WWS_WORKER_FILE", case.get("file", case["worker"]))] + list(case.get("env", {}).items())
    wasi.preopen_dir(src, "/src", False)
    wasi.stdin_file = stdin
    out, err = bytearray(), bytearray()
    wasi.stdout_custom = lambda b: out.extend(b)
    wasi.stderr_custom = lambda b: err.extend(b)
    store.set_wasi(wasi)
    code = 0
    try:
        exports = linker.instantiate(store, module).exports(store)
        if mode == "init":
            exports["wizer-initialize"](store)
        exports["_start"](store)
    except wasmtime.ExitTrap as e:
        code = e.code
    except wasmtime.Trap as e:
        code = "trap"
        err.extend(str(e).encode())
    finally:
        shutil.rmtree(src)
    return bytes(out), err.decode(errors="replace"), code


def check(case, out, err, code):
    expect = case["expect"]
    problems = []
    if expect.get("exit", 0) != code:
        problems.append(f"exit code {code}, expected {expect.get('exit', 0)}")
    for text in expect.get("stderr", []):
        if text not in err:
            problems.append(f"stderr lacks {text!r}")
    if expect.get("exit", 0) != 0:
        file = case.get("file", case["worker"])
        if not err.startswith(file + ":"):
            problems.append(f"the error report should start with {file + ':'!r}")
        if out:
            problems.append(f"stdout should be empty, got {out[:200]!r}")
        return problems
    try:
        output = json.loads(out)
    except ValueError:
        return problems + [f"stdout is not JSON: {out[:300]!r}"]
    if set(output) - {"data", "base64", "status", "headers", "kv"}:
        problems.append(f"unexpected output fields {sorted(set(output))}")
    if "status" in expect and output.get("status") != expect["status"]:
        problems.append(f"status {output.get('status')}, expected {expect['status']}")
    problems += list(subset(expect.get("headers", {}), output.get("headers", {}), "headers"))
    for name in expect.get("absent_headers", []):
        if name in output.get("headers", {}):
            problems.append(f"header {name} should be absent")
    if "kv" in expect:
        problems += list(subset(expect["kv"], output.get("kv", {}), "kv"))
    if "base64" in expect:
        if not output.get("base64"):
            problems.append("base64 flag not set")
        elif output.get("data") != expect["base64"]:
            problems.append(f"data {output.get('data')!r}, expected base64 {expect['base64']!r}")
    elif output.get("base64"):
        problems.append("base64 flag set for a text body")
    if "body" in expect and output.get("data") != expect["body"]:
        problems.append(f"body {output.get('data')!r}, expected {expect['body']!r}")
    if "json" in expect:
        try:
            got = json.loads(output.get("data", ""))
            problems += list(subset(expect["json"], got, "json"))
            if not problems and got != expect["json"]:
                problems.append(f"json has more than expected: {json.dumps(got, ensure_ascii=False)[:300]}")
        except ValueError:
            problems.append(f"body is not JSON: {output.get('data')!r}")
    return problems


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", default=DEFAULT_ENGINE)
    parser.add_argument("--mode", choices=["cold", "init"], default="cold")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("only", nargs="*")
    args = parser.parse_args()
    with open(os.path.join(FIXTURES, "cases.json")) as f:
        cases = json.load(f)["cases"]
    config = wasmtime.Config()
    config.cache = True
    engine = wasmtime.Engine(config)
    module = wasmtime.Module.from_file(engine, args.engine)
    failed = 0
    ran = 0
    for case in cases:
        if args.only and not any(s in case["name"] for s in args.only):
            continue
        if not os.path.exists(os.path.join(FIXTURES, case["worker"])):
            print(f"skip {case['name']} (run tests/fixtures/js/{case.get('build', '?')} first)")
            continue
        ran += 1
        out, err, code = run(engine, module, case, args.mode)
        problems = check(case, out, err, code)
        status = "ok  " if not problems else "FAIL"
        print(f"{status} {case['name']}")
        if problems:
            failed += 1
            for p in problems:
                print(f"       {p}")
        if problems or args.verbose:
            print("       stdout: " + out.decode(errors="replace")[:2000])
            if err:
                print("       stderr: " + err.replace("\n", "\n               ")[:3000])
    print(f"{ran - failed}/{ran} cases passed ({args.mode} mode)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
