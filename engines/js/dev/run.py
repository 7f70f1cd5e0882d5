#!/usr/bin/env python3
"""Drive the wws JS engine the way the host does, for development and measurements.

Needs the `wasmtime` package from PyPI (`pip install wasmtime`); nothing here is used by wws.

    run.py WORKER.js [--request JSON|@FILE] [--env NAME=VALUE]... [--name api/[id].js]
           [--engine PATH] [--mode cold|init] [--repeat N]

It mounts a temporary folder holding WORKER.js as /src/index.js (as the host does), sets
WWS_WORKER_FILE and the vars, and then, per repetition, instantiates the engine and:
- mode `cold` (default): calls `_start` alone (the engine loads the worker itself);
- mode `init`: calls `wizer-initialize`, then `_start` in the same instance, which is what a
  wasmtime-wizer snapshot replays (initialise once, serve from the initialised memory).
It prints the worker's stdout (the output JSON), its stderr, the exit code, and the time of
each phase (the minimum over the repetitions when --repeat is given).
"""

import argparse
import os
import shutil
import sys
import tempfile
import time

import wasmtime

import wws_http

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_ENGINE = os.path.join(HERE, "..", "dist", "wws-js-engine.wasm")
DEFAULT_REQUEST = '{"url":"http://localhost:8080/","method":"GET","headers":{"host":"localhost:8080"},"body":"","kv":{},"params":{}}'


def run_once(engine, module, src_dir, name, env, request, mode):
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    wws_http.define(linker)
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.env = [("WWS_WORKER_FILE", name)] + env
    wasi.preopen_dir(src_dir, "/src", False)
    with tempfile.NamedTemporaryFile("wb", delete=False) as f:
        f.write(request.encode())
        stdin_path = f.name
    wasi.stdin_file = stdin_path
    out, err = bytearray(), bytearray()
    wasi.stdout_custom = lambda b: out.extend(b)
    wasi.stderr_custom = lambda b: err.extend(b)
    store.set_wasi(wasi)
    times = {}
    code = 0
    t0 = time.perf_counter()
    instance = linker.instantiate(store, module)
    times["instantiate"] = time.perf_counter() - t0
    exports = instance.exports(store)
    try:
        if mode == "init":
            t0 = time.perf_counter()
            exports["wizer-initialize"](store)
            times["init"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        exports["_start"](store)
        times["start"] = time.perf_counter() - t0
    except wasmtime.ExitTrap as e:
        times["start"] = time.perf_counter() - t0
        code = e.code
    except wasmtime.Trap as e:
        code = "trap"
        err.extend(str(e).encode())
    finally:
        os.unlink(stdin_path)
    return bytes(out), bytes(err), code, times


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("worker")
    parser.add_argument("--request", default=DEFAULT_REQUEST, help="the request JSON, or @FILE to read it from FILE")
    parser.add_argument("--env", action="append", default=[])
    parser.add_argument("--name", default="index.js")
    parser.add_argument("--engine", default=DEFAULT_ENGINE)
    parser.add_argument("--mode", choices=["cold", "init"], default="cold")
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()

    config = wasmtime.Config()
    config.cache = True
    engine = wasmtime.Engine(config)
    t0 = time.perf_counter()
    module = wasmtime.Module.from_file(engine, args.engine)
    compile_time = time.perf_counter() - t0
    env = [tuple(e.split("=", 1)) for e in args.env]
    if args.request.startswith("@"):
        with open(args.request[1:]) as f:
            args.request = f.read()
    src_dir = tempfile.mkdtemp(prefix="wws-js-src-")
    try:
        shutil.copy(args.worker, os.path.join(src_dir, "index.js"))
        best = {}
        for _ in range(args.repeat):
            out, err, code, times = run_once(engine, module, src_dir, args.name, env, args.request, args.mode)
            for k, v in times.items():
                best[k] = min(best.get(k, v), v)
    finally:
        shutil.rmtree(src_dir)
    sys.stdout.write(out.decode(errors="replace") + "\n")
    if err:
        sys.stdout.write("--- stderr ---\n" + err.decode(errors="replace") + ("" if err.endswith(b"\n") else "\n"))
    timing = ", ".join(f"{k} {v * 1000:.2f} ms" for k, v in best.items())
    sys.stdout.write(f"--- exit {code}; compile {compile_time * 1000:.0f} ms; {timing}\n")


if __name__ == "__main__":
    main()
