# Worker used by runtimes/dev/selftest.py: one behaviour per URL path.
import io
import os

print("module-level print goes to the log")

hits = 0  # module global: persists between requests in reuse mode only


def worker(req):
    global hits
    hits += 1
    path = req.url.split("?")[0].split("/", 3)[-1]

    if path == "hello":
        return Response("Hello from Python")
    if path == "params":
        return Response(f"id={req.params.get('id')} method={req.method} ua={req.headers.get('user-agent')}")
    if path == "env":
        return Response(f"{os.environ.get('MESSAGE')}|{os.environ.get('PYTHONDONTWRITEBYTECODE')}")
    if path == "counter":
        count = int(Cache.get("count") or 0) + 1
        Cache.set("count", count)
        Cache.delete("stale")
        return Response(str(count), headers={"x-hits": hits})
    if path == "folder":
        with open("/data/message.txt") as f:
            return Response(f.read())
    if path == "binary":
        return Response(bytes(range(256)), headers={"content-type": "application/octet-stream"})
    if path == "echo-binary":
        return Response(f"{type(req.body).__name__} {len(req.body)} {req.body[:4].hex()}")
    if path == "headers":
        res = Response("cookies", 201)
        res.headers = {"set-cookie": ["a=1", "b=2"], "x-one": "1"}
        return res
    if path == "json":
        return Response({"ok": True, "n": 3})
    if path == "print":
        print("this goes to the log, not the response")
        sys.stdout.write("so does this\n")
        return Response("clean")
    if path == "echo":
        return Response(f"{req.method} {len(req.body)} {req.body}", headers={"x-unicode": "héllo ✓"})
    if path == "hijack":
        sys.stdout = io.StringIO()  # the wrapper restores the redirection for the next request
        print("lost")
        return Response("hijacked")
    if path == "fail":
        raise RuntimeError("boom from the worker")
    return Response("not found", 404)
