#!/usr/bin/env python3
"""Regenerates tests/fixtures/js/README.md (the table of fixture cases) from cases.json.

    python3 engines/js/dev/fixtures_readme.py
"""

import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.abspath(os.path.join(HERE, "..", "..", "..", "tests", "fixtures", "js"))

INTRO = """# JavaScript fixture workers

Workers written for the tests of the embedded JS engine (`engines/js`), one file per behaviour
group. Most answer a JSON object of named results, so a test can assert one behaviour per key.
**`cases.json` is the machine-readable list of every case** (worker, request, vars, expected
status / headers / body / JSON subset / kv / log lines, or exit 1 for workers that must fail);
`engines/js/dev/check.py` runs all of them against the engine directly, and the e2e tests drive
the same workers over HTTP. The table below is generated from it by
`engines/js/dev/fixtures_readme.py`.

- Paths are relative to the worker's route; `params` is what the router passes for `[id].js`
  (serve `params.js` and `params-plain.js` as `[id].js`), `kv` is the namespace before the
  request, `vars` the worker's `[vars]`.
- Workers whose case expects exit 1 must make the host answer 500 (syntax error, throw at top
  level and no handler already fail at start / snapshot time), and the log line starts with
  `<file>:<line>:<col>: <ErrorName>: <message>`.
- `hono-app/` is a Hono + zod + lodash-es app built into one ES module of about 870 KB:
  `hono-app/build.sh` (npm ci with the lock file, then esbuild) writes `hono-app/dist/[...app].js`;
  serve it as a catch-all `[...app].js`. `node_modules/` and `dist/` are not committed.

| worker | request | expected |
| --- | --- | --- |
"""


def cell(text):
    return text.replace("|", "\\|")


def row(case):
    r = case.get("request", {})
    req = [f"{r.get('method', 'GET')} {r.get('path', '/')}"]
    if r.get("headers"):
        req.append("headers " + ", ".join(f"{k}: {v}" for k, v in r["headers"].items()))
    if r.get("body"):
        body = json.dumps(r["body"][:40]) + ("…" if len(r["body"]) > 40 else "")
        req.append("body " + body + (" (base64)" if r.get("base64") else ""))
    for key in ("kv", "params"):
        if r.get(key):
            req.append(f"{key} " + json.dumps(r[key], ensure_ascii=False))
    if case.get("env"):
        req.append("vars " + json.dumps(case["env"]))
    e = case["expect"]
    exp = []
    if e.get("exit"):
        exp.append("fails (exit 1, the host answers 500); log contains " + "; ".join(json.dumps(s) for s in e.get("stderr", [])))
    else:
        if "status" in e:
            exp.append(f"status {e['status']}")
        if "body" in e:
            exp.append("body " + json.dumps(e["body"], ensure_ascii=False))
        if "base64" in e:
            exp.append("binary body (base64 " + e["base64"][:24] + ("…" if len(e["base64"]) > 24 else "") + ")")
        if "json" in e:
            keys = list(e["json"].keys())
            exp.append("JSON with " + ", ".join(keys[:6]) + ("…" if len(keys) > 6 else ""))
        if e.get("headers"):
            exp.append("headers " + ", ".join(f"{k}: {json.dumps(v)}" for k, v in e["headers"].items()))
        if "kv" in e:
            exp.append("kv " + json.dumps(e["kv"]))
        if e.get("stderr"):
            exp.append(("log contains " + "; ".join(json.dumps(s) for s in e["stderr"]))[:160])
    return f"| `{case['worker']}` | {cell('<br>'.join(req))} | {cell('; '.join(exp))} |"


def main():
    with open(os.path.join(FIXTURES, "cases.json")) as f:
        cases = json.load(f)["cases"]
    with open(os.path.join(FIXTURES, "README.md"), "w") as f:
        f.write(INTRO + "\n".join(row(c) for c in cases) + "\n")


if __name__ == "__main__":
    main()
