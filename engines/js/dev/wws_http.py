"""The engine's `wws_http` imports (wws' outbound HTTP, crates/worker/src/outbound/), as wws
answers for a worker without `[features.http_requests]`: every fetch() is refused. The dev
tools make no network requests. Also `wws_io.respond`, declined: the dev tools read the
whole output at the end (crates/worker/src/early.rs)."""

import json

import wasmtime

REFUSAL = json.dumps(
    {"error": "not-allowed", "message": "outbound HTTP is not available in the dev tools"}
).encode()


def define(linker):
    i32 = wasmtime.ValType.i32()

    def send(caller, ptr, length):
        return len(REFUSAL)

    def read(caller, ptr):
        caller["memory"].write(caller, REFUSAL, ptr)

    started = []

    def start(caller, ptr, length):
        started.append(len(started))
        return started[-1]

    def wait(caller, timeout_ms):
        if not started:
            return -1
        return (started.pop(0) << 32) | len(REFUSAL)

    linker.define_func("wws_http", "send", wasmtime.FuncType([i32, i32], [i32]), send, access_caller=True)
    linker.define_func("wws_http", "start", wasmtime.FuncType([i32, i32], [i32]), start, access_caller=True)
    linker.define_func("wws_http", "wait", wasmtime.FuncType([wasmtime.ValType.i64()], [wasmtime.ValType.i64()]), wait, access_caller=True)
    linker.define_func("wws_http", "read", wasmtime.FuncType([i32], []), read, access_caller=True)
    linker.define_func("wws_io", "respond", wasmtime.FuncType([i32, i32], [i32]), lambda ptr, length: 0)
