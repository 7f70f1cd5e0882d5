#!/usr/bin/env python3
"""Development aid: run a Python or Ruby worker the way the wws host does, without wws.

NOT used by wws or by its tests. It exists so the polyfills, wrappers and the host calling
conventions documented in runtimes/README.md can be tried with the PyPI `wasmtime` package
(`pip install wasmtime`) before and independently of the Rust host.

    drive.py REPO_DIR NAME VERSION WORKER_FILE [--request JSON] [--env K=V] [--dir HOST:GUEST]
             [--reuse N]

REPO_DIR is a folder written by runtimes/build-repository.sh. With --reuse N the same request is
sent N times to one instance in reuse mode (WWS_REUSE=1, length-prefixed frames).

Calling conventions (the `entrypoint` of the runtime metadata):
- `wasi-command` (Python): `_start` with argv = the runtime `args`, the worker folder preopened
  at /src, env = runtime `envs` then worker vars, stdin = request JSON, stdout captured.
- `ruby-wasm-reactor` (Ruby): link WASI preview1 plus the three `canonical_abi` resource
  functions, trap on every other import, call `_initialize`, `ruby-init(args)`,
  `ruby-init-loadpath`, then `rb-eval-string-protect('load "/src/index.rb"')`; a non-zero
  state is a failure (the exception is printed to stderr); finally always flush STDOUT/STDERR.
"""

import argparse
import json
import os
import shutil
import struct
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import wasmtime
from wasmtime import Config, Engine, ExitTrap, FuncType, Linker, Module, Store, ValType, WasiConfig

I32 = ValType.i32()


@dataclass
class Outcome:
    """What one run produced. `ok` is False when the guest exited non-zero, trapped or raised."""

    ok: bool
    stdout: bytes
    stderr: str
    detail: str  # exit status or failure reason
    timings: dict  # phase -> seconds


def make_engine():
    config = Config()
    config.cache = True  # compiled modules land in wasmtime's cache: Ruby takes 10-40 s to compile
    return Engine(config)


class Runtime:
    """One runtime entry of an index.toml, with its module compiled once."""

    def __init__(self, engine, repo_dir, entry):
        self.engine = engine
        self.entry = entry
        self.dir = Path(repo_dir) / "files" / entry["name"] / entry["version"]
        self.entrypoint = entry.get("entrypoint", "wasi-command")
        started = time.perf_counter()
        self.module = Module.from_file(engine, str(self.dir / entry["binary"]["filename"]))
        self.compile_seconds = time.perf_counter() - started

    def prepare(self, source, workdir):
        """The worker folder mounted at /src: wrapper with `{source}` replaced, polyfill next to it."""
        workdir = Path(workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        wrapper = (self.dir / self.entry["wrapper"]["filename"]).read_text()
        ext = self.entry["extensions"][0]
        (workdir / f"index.{ext}").write_text(wrapper.replace("{source}", source))
        polyfill = self.entry["polyfill"]["filename"]
        shutil.copyfile(self.dir / polyfill, workdir / polyfill)
        return workdir

    def run(self, src_dir, stdin, env=None, dirs=(), reuse=False):
        """Run the worker in `src_dir` once (one instance) with `stdin` as its input."""
        variables = dict(self.entry.get("envs", {}))
        variables.update(env or {})
        if reuse:
            variables["WWS_REUSE"] = "1"
        with tempfile.TemporaryDirectory(prefix="wws-drive-") as tmp:
            stdin_path = Path(tmp) / "stdin"
            stdin_path.write_bytes(stdin)
            wasi = WasiConfig()
            wasi.stdin_file = str(stdin_path)
            wasi.stdout_file = str(Path(tmp) / "stdout")
            wasi.stderr_file = str(Path(tmp) / "stderr")
            wasi.env = list(variables.items())
            wasi.preopen_dir(str(src_dir), "/src")
            for host, guest in dirs:
                wasi.preopen_dir(str(host), guest)
            if self.entrypoint == "ruby-wasm-reactor":
                ok, detail, timings = self._run_ruby(wasi)
            else:
                wasi.argv = list(self.entry["args"])
                ok, detail, timings = self._run_command(wasi)
            return Outcome(
                ok,
                (Path(tmp) / "stdout").read_bytes(),
                (Path(tmp) / "stderr").read_text(errors="replace"),
                detail,
                timings,
            )

    def session(self, src_dir, env=None, dirs=()):
        """Start one instance in reuse mode, fed through a pipe: see ReuseSession."""
        return ReuseSession(self, src_dir, env, dirs)

    def _run_command(self, wasi):
        started = time.perf_counter()
        store = Store(self.engine)
        store.set_wasi(wasi)
        linker = Linker(self.engine)
        linker.define_wasi()
        instance = linker.instantiate(store, self.module)
        instantiated = time.perf_counter()
        try:
            instance.exports(store)["_start"](store)
            ok, detail = True, "exit 0"
        except ExitTrap as exit:
            ok, detail = exit.code == 0, f"exit {exit.code}"
        except wasmtime.Trap as trap:
            ok, detail = False, f"trap: {trap.message}"
        done = time.perf_counter()
        return ok, detail, {"instantiate": instantiated - started, "run": done - instantiated}

    def _run_ruby(self, wasi):
        started = time.perf_counter()
        store = Store(self.engine)
        store.set_wasi(wasi)
        linker = Linker(self.engine)
        linker.define_wasi()
        handles = []  # rb-abi-value resources: the guest pointer behind each 1-based handle

        def resource_new(ptr):
            handles.append(ptr)
            return len(handles)

        def resource_get(handle):
            return handles[handle - 1]

        linker.define_func("canonical_abi", "resource_new_rb-abi-value", FuncType([I32], [I32]), resource_new)
        linker.define_func("canonical_abi", "resource_get_rb-abi-value", FuncType([I32], [I32]), resource_get)
        linker.define_func("canonical_abi", "resource_drop_js-abi-value", FuncType([I32], []), lambda _handle: None)
        linker.define_unknown_imports_as_traps(self.module)
        instance = linker.instantiate(store, self.module)
        # The wit-bindgen exports are named by their whole signature, e.g.
        # "ruby-init: func(args: list<string>) -> ()": index them by the part before ':'.
        items = instance.exports(store)
        exports = {}
        for name in items:
            exports.setdefault(name.split(":")[0], items[name])
        memory = exports["memory"]
        realloc = exports["cabi_realloc"]
        instantiated = time.perf_counter()

        def guest_string(text):
            # NUL-terminated: ruby-init reads argv as C strings; the length excludes the NUL.
            data = text.encode() + b"\0"
            ptr = realloc(store, 0, 0, 1, len(data))
            memory.write(store, data, ptr)
            return ptr, len(data) - 1

        def evaluate(code):
            ptr, size = guest_string(code)
            result = exports["rb-eval-string-protect"](store, ptr, size)
            _handle, state = struct.unpack("<Ii", memory.read(store, result, result + 8))
            return state

        initialised = None
        try:
            exports["_initialize"](store)
            args = [guest_string(arg) for arg in self.entry["args"]]
            array = realloc(store, 0, 0, 4, 8 * len(args))
            memory.write(store, b"".join(struct.pack("<II", p, n) for p, n in args), array)
            exports["ruby-init"](store, array, len(args))
            exports["ruby-init-loadpath"](store)
            initialised = time.perf_counter()
            state = evaluate('load "/src/index.rb"')
            if state != 0:
                evaluate("$stderr.puts $!.full_message(highlight: false)")
            ok, detail = state == 0, f"state {state}"
            evaluate("STDOUT.flush; STDERR.flush")
        except ExitTrap as exit:
            ok, detail = False, f"exit {exit.code} (proc_exit inside the reactor)"
        except wasmtime.Trap as trap:
            ok, detail = False, f"trap: {trap.message}"
        done = time.perf_counter()
        initialised = initialised or done
        return ok, detail, {"instantiate": instantiated - started, "init": initialised - instantiated, "run": done - initialised}


class ReuseSession:
    """One live instance in reuse mode, driven as the host will: write a request frame, wait for
    the response frame, then write the next. stdin is a FIFO that stays open between requests
    (so the guest blocks reading it, as on a host stream); stdout is collected as it is written.
    """

    def __init__(self, runtime, src_dir, env, dirs):
        self._tmp = tempfile.TemporaryDirectory(prefix="wws-session-")
        fifo = Path(self._tmp.name) / "stdin"
        os.mkfifo(fifo)
        # O_RDWR never blocks on a FIFO, and keeps a writer open for the guest's read end.
        self._stdin = os.open(fifo, os.O_RDWR)
        self._out = bytearray()
        self._cond = threading.Condition()
        self._done = None

        variables = dict(runtime.entry.get("envs", {}))
        variables.update(env or {})
        variables["WWS_REUSE"] = "1"
        wasi = WasiConfig()
        wasi.stdin_file = str(fifo)
        wasi.stdout_custom = self._on_stdout
        wasi.stderr_file = str(Path(self._tmp.name) / "stderr")
        wasi.env = list(variables.items())
        wasi.preopen_dir(str(src_dir), "/src")
        for host, guest in dirs:
            wasi.preopen_dir(str(host), guest)
        if runtime.entrypoint == "ruby-wasm-reactor":
            target = lambda: runtime._run_ruby(wasi)
        else:
            wasi.argv = list(runtime.entry["args"])
            target = lambda: runtime._run_command(wasi)
        self._thread = threading.Thread(target=self._main, args=(target,), daemon=True)
        self._thread.start()

    def _main(self, target):
        try:
            result = target()
        except Exception as err:  # reported through `finish`
            result = (False, f"driver error: {err}", {})
        with self._cond:
            self._done = result
            self._cond.notify_all()

    def _on_stdout(self, data):
        with self._cond:
            self._out += data
            self._cond.notify_all()

    def _frame(self):
        """A complete response frame from the collected stdout, or None."""
        header, sep, rest = bytes(self._out).partition(b"\n")
        if not sep or len(rest) < int(header):
            return None
        size = int(header)
        del self._out[: len(header) + 1 + size]
        return rest[:size]

    def request(self, payload, timeout=60):
        """Send one request payload; return the response payload, or None if the instance ended."""
        os.write(self._stdin, b"%d\n%s" % (len(payload), payload))
        with self._cond:
            while True:
                frame = self._frame()
                if frame is not None:
                    return frame
                if self._done is not None:
                    return None
                if not self._cond.wait(timeout):
                    raise TimeoutError(f"no response within {timeout} s")

    def finish(self, timeout=60):
        """Close stdin (end of requests) and wait for the instance: (ok, detail, stderr)."""
        os.close(self._stdin)
        self._thread.join(timeout)
        ok, detail, _ = self._done or (False, "still running", {})
        stderr = (Path(self._tmp.name) / "stderr").read_text(errors="replace")
        self._tmp.cleanup()
        return ok, detail, stderr


def load_runtimes(engine, repo_dir):
    """All runtimes of REPO_DIR/index.toml, keyed by (name, version); modules compiled lazily."""
    with open(Path(repo_dir) / "index.toml", "rb") as f:
        index = tomllib.load(f)
    return {(e["name"], e["version"]): e for e in index["runtimes"]}


def frames(payloads):
    """Reuse-mode input: every payload as `<length>\\n<bytes>`."""
    return b"".join(b"%d\n%s" % (len(p), p) for p in payloads)


def parse_frames(data):
    """Split reuse-mode output into its payloads; raises ValueError on a malformed stream."""
    out = []
    while data:
        header, sep, rest = data.partition(b"\n")
        if not sep:
            raise ValueError(f"unterminated frame header {header[:40]!r}")
        size = int(header)
        if len(rest) < size:
            raise ValueError(f"frame truncated: {len(rest)} of {size} bytes")
        out.append(rest[:size])
        data = rest[size:]
    return out


def request(url="http://localhost/", method="GET", body="", headers=None, params=None, kv=None, base64=False):
    """A request object as the host sends it (spec §3.2, plus `base64` for binary bodies)."""
    req = {"url": url, "method": method, "headers": headers or {}, "body": body, "kv": kv or {}, "params": params or {}}
    if base64:
        req["base64"] = True
    return req


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("repo_dir")
    parser.add_argument("name")
    parser.add_argument("version")
    parser.add_argument("worker", type=Path)
    parser.add_argument("--request", default=json.dumps(request()))
    parser.add_argument("--env", action="append", default=[], metavar="K=V")
    parser.add_argument("--dir", action="append", default=[], metavar="HOST:GUEST")
    parser.add_argument("--reuse", type=int, default=0, metavar="N")
    args = parser.parse_args()

    entries = load_runtimes(None, args.repo_dir)
    entry = entries.get((args.name, args.version))
    if entry is None:
        sys.exit(f"{args.repo_dir}/index.toml has no runtime {args.name} {args.version}")
    runtime = Runtime(make_engine(), args.repo_dir, entry)
    print(f"compile/load: {runtime.compile_seconds * 1000:.0f} ms", file=sys.stderr)
    env = dict(item.split("=", 1) for item in args.env)
    dirs = [tuple(item.split(":", 1)) for item in args.dir]
    with tempfile.TemporaryDirectory() as tmp:
        src = runtime.prepare(args.worker.read_text(), tmp)
        payload = args.request.encode()
        stdin = frames([payload] * args.reuse) if args.reuse else payload
        outcome = runtime.run(src, stdin, env, dirs, reuse=bool(args.reuse))
    sys.stderr.write(outcome.stderr)
    timings = ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in outcome.timings.items())
    print(f"{outcome.detail}; {timings}", file=sys.stderr)
    if args.reuse:
        for payload in parse_frames(outcome.stdout):
            print(payload.decode())
    else:
        print(outcome.stdout.decode(errors="replace"))
    sys.exit(0 if outcome.ok else 1)


if __name__ == "__main__":
    main()
