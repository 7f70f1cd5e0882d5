#!/usr/bin/env python3
"""Helpers for bench/run.sh: everything that is easier in Python than in bash.

Subcommands (run.sh calls them; each prints a message naming what failed):
  check URL EXPECTED            GET URL once; fail unless 200 and the body contains EXPECTED
  requests URL N                N sequential GETs on one keep-alive connection, all must be 200
  rss PID                       VmRSS of PID in KiB
  wrk-record ...                parse one wrk run (lib/report.lua output) into the results file
  note ...                      add a skip/info note to the results file
  wasm-variant IN OUT N         copy a .wasm with a custom section naming N, so every copy has
                                its own hash (and is compiled on its own, as distinct workers are)
  startup ...                   time `wws` from process start to the first 200, cold and warm
  report RESULTS                print the results as markdown tables
  record README REPORT ...      rewrite README's "Latest results" section

The results file holds one JSON object per line; `report` groups them.
"""

import argparse
import http.client
import json
import os
import platform
import re
import selectors
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

READY = re.compile(r"Start serving requests at (http://\S+)")


def fail(msg):
    print(f"bench: {msg}", file=sys.stderr)
    sys.exit(1)


def append(results, record):
    with open(results, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def get(url, timeout=30.0):
    """One GET on a fresh connection: (status, body text)."""
    u = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", u.path or "/")
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    finally:
        conn.close()


def proc_kib(path, field):
    """A `Field:   N kB` line of a /proc file, in KiB; None when the process is gone."""
    try:
        with open(path, encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def rss_kib(pid):
    return proc_kib(f"/proc/{pid}/status", "VmRSS")


def pss_kib(pid):
    """Proportional set size: pages shared by several mappings (a memory image mapped into
    many pool slots) count once in all, where VmRSS counts them once per mapping."""
    return proc_kib(f"/proc/{pid}/smaps_rollup", "Pss")


# ---------------------------------------------------------------- small commands


def cmd_check(a):
    try:
        status, body = get(a.url)
    except OSError as e:
        fail(f"GET {a.url} failed: {e}")
    if status != 200 or a.expected not in body:
        fail(f"GET {a.url} answered {status} {body[:200]!r}, expected 200 with {a.expected!r}")


def cmd_requests(a):
    u = urllib.parse.urlsplit(a.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    try:
        for i in range(a.n):
            conn.request("GET", u.path or "/")
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                fail(f"request {i + 1} of {a.n} to {a.url} answered {resp.status}")
    except OSError as e:
        fail(f"requests to {a.url} failed: {e}")
    finally:
        conn.close()


def cmd_rss(a):
    kib = rss_kib(a.pid)
    if kib is None:
        fail(f"no /proc/{a.pid}/status: the process is gone")
    print(kib)


def cmd_wrk_record(a):
    text = Path(a.out).read_text(encoding="utf-8", errors="replace")
    line = next((l for l in text.splitlines() if l.startswith("BENCH-JSON ")), None)
    if line is None:
        fail(f"wrk printed no result line for {a.label} (see {a.out}):\n{text[-2000:]}")
    r = json.loads(line[len("BENCH-JSON "):])
    secs = r["duration_us"] / 1e6
    r.update(
        kind="wrk",
        section=a.section,
        batch=a.batch,
        label=a.label,
        conns=a.conns,
        round=a.round,
        rps=r["requests"] / secs if secs > 0 else 0.0,
        rss_kib=rss_kib(a.pid) if a.pid else None,
        pss_kib=pss_kib(a.pid) if a.pid else None,
        # Server CPU (user + system, all threads) per request: less sensitive than RPS to wrk
        # competing for the same CPUs.
        cpu_us_per_req=(a.cpu_ticks * 1e6 / os.sysconf("SC_CLK_TCK") / r["requests"]
                        if a.cpu_ticks is not None and r["requests"] else None),
        errors=sum(r[k] for k in ("err_connect", "err_read", "err_write", "err_status", "err_timeout")),
    )
    append(a.results, r)
    print(f"  {a.label:<28} c={a.conns:<3} {r['rps']:>10.0f} req/s  p50 {fmt_us(r['p50_us']):>9}"
          f"  p99 {fmt_us(r['p99_us']):>9}  CPU/req {fmt_cpu([r]):>8}  errors {r['errors']}",
          file=sys.stderr)


def cmd_note(a):
    append(a.results, {"kind": "note", "section": a.section, "what": a.what, "why": a.why})


def leb128(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def cmd_wasm_variant(a):
    data = Path(a.input).read_bytes()
    if data[:4] != b"\0asm":
        fail(f"{a.input} is not a WebAssembly module")
    name = b"wws-bench-copy"
    payload = leb128(len(name)) + name + str(a.n).encode()
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    Path(a.output).write_bytes(data + b"\0" + leb128(len(payload)) + payload)


# ---------------------------------------------------------------- startup


def count_files(folder):
    return sum(len(files) for _, _, files in os.walk(folder)) if folder.is_dir() else 0


def memory_kib(pid):
    """VmRSS and RssAnon of a process, in KiB: what it holds, and what of it no file backs."""
    fields = {}
    with open(f"/proc/{pid}/status", encoding="utf-8") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "RssAnon"):
                fields[name] = int(value.split()[0])
    return fields["VmRSS"], fields["RssAnon"]


def one_start(wws, project, route, expected, log, timeout):
    """Start wws, wait for the ready line, GET route; return (ready_ms, first_ms, rss_kib,
    anon_kib), the memory read right after the first response."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WWS_")}
    with open(log, "a", encoding="utf-8") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([wws, str(project), "--port", "0"], stdout=subprocess.PIPE,
                                stderr=err, stdin=subprocess.DEVNULL, env=env)
        try:
            sel = selectors.DefaultSelector()
            sel.register(proc.stdout, selectors.EVENT_READ)
            buf, url = b"", None
            deadline = t0 + timeout
            while url is None:
                left = deadline - time.perf_counter()
                if left <= 0 or not sel.select(left):
                    fail(f"wws did not print its ready line within {timeout:.0f} s (log: {log})")
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    fail(f"wws exited before serving (status {proc.wait()}, log: {log})")
                buf += chunk
                m = READY.search(buf.decode("utf-8", "replace"))
                if m:
                    url = m.group(1)
            ready = time.perf_counter()
            status, body = get(url + route)
            first = time.perf_counter()
            if status != 200 or expected not in body:
                fail(f"first GET {url}{route} answered {status} {body[:200]!r} (log: {log})")
            return (ready - t0) * 1e3, (first - t0) * 1e3, *memory_kib(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cmd_startup(a):
    project = Path(a.project)
    cache = project / ".wws" / "cache"
    shutil.rmtree(cache, ignore_errors=True)
    ready, first, rss, anon = one_start(a.wws, project, a.route, a.expected, a.log, a.timeout)
    append(a.results, {"kind": "startup", "start": "first (empty .wws/cache)", "workers": a.workers,
                       "ready_ms": ready, "first_ms": first, "rss_kib": rss, "anon_kib": anon,
                       "cache_files": count_files(cache)})
    print(f"  first start: ready {ready:.0f} ms, first 200 after {first:.0f} ms", file=sys.stderr)
    runs = [one_start(a.wws, project, a.route, a.expected, a.log, a.timeout) for _ in range(a.warm_runs)]
    ready = statistics.median(r[0] for r in runs)
    first = statistics.median(r[1] for r in runs)
    rss = statistics.median(r[2] for r in runs)
    anon = statistics.median(r[3] for r in runs)
    append(a.results, {"kind": "startup", "start": f"second (warm cache), median of {a.warm_runs}",
                       "workers": a.workers, "ready_ms": ready, "first_ms": first,
                       "rss_kib": rss, "anon_kib": anon,
                       "cache_files": count_files(cache),
                       "all_first_ms": [round(r[1], 1) for r in runs]})
    print(f"  warm start: ready {ready:.0f} ms, first 200 after {first:.0f} ms", file=sys.stderr)


# ---------------------------------------------------------------- report


def fmt_us(us):
    return f"{us:.0f} µs" if us < 1000 else f"{us / 1000:.2f} ms"


def fmt_rps(rps):
    return f"{rps / 1000:.1f}k" if rps >= 1000 else f"{rps:.0f}"


def fmt_cpu(runs):
    """Mean server CPU per request of the runs, or ? when it could not be read."""
    xs = [r.get("cpu_us_per_req") for r in runs]
    if any(x is None for x in xs):
        return "?"
    return fmt_us(mean(xs))


def fmt_pct(pct):
    return f"{pct:.1f} %" if pct >= 1 else f"{pct:.3f} %"


def fmt_kib(kib):
    return "?" if kib is None else f"{kib / 1024:.1f} MiB"


def mean(xs):
    return sum(xs) / len(xs)


def rows_by_label(records):
    """Group wrk runs by (batch, label) in first-seen order."""
    groups = {}
    for r in records:
        groups.setdefault((r["batch"], r["label"]), []).append(r)
    return groups


def cmd_report(a):
    records = [json.loads(l) for l in Path(a.results).read_text(encoding="utf-8").splitlines() if l]
    out = []
    wrk = [r for r in records if r["kind"] == "wrk"]

    main = [r for r in wrk if r["section"] == "main"]
    if main:
        out.append("### Throughput and latency\n")
        out.append("Each batch alternates its rows run by run (native, then each scenario, twice); "
                   "ratios divide by the mean of the native runs of the same batch.\n")
        out.append("| scenario | conns | RPS (mean) | RPS per run | p50 | p99 | RPS / native | "
                   "p99 / native | server CPU / request | server RSS | server PSS | errors |")
        out.append("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        groups = rows_by_label(main)
        for (batch, label), runs in groups.items():
            native = groups.get((batch, "native hello"))
            rps = mean([r["rps"] for r in runs])
            p50 = mean([r["p50_us"] for r in runs])
            p99 = mean([r["p99_us"] for r in runs])
            ratio = p99_ratio = "—"
            if native:
                ratio = fmt_pct(100 * rps / mean([r["rps"] for r in native]))
                p99_ratio = f"{p99 / mean([r['p99_us'] for r in native]):.2f}×"
            out.append(f"| {label} | {runs[0]['conns']} | {fmt_rps(rps)} | "
                       f"{', '.join(fmt_rps(r['rps']) for r in runs)} | {fmt_us(p50)} | {fmt_us(p99)} | "
                       f"{ratio} | {p99_ratio} | {fmt_cpu(runs)} | {fmt_kib(runs[-1]['rss_kib'])} | "
                       f"{fmt_kib(runs[-1].get('pss_kib'))} | {sum(r['errors'] for r in runs)} |")
        out.append("")

    starts = [r for r in records if r["kind"] == "startup"]
    if starts:
        out.append("### Startup: process start → first response\n")
        out.append("| start | workers | → ready line | → first 200 | VmRSS then | of it anonymous "
                   "| files in .wws/cache |")
        out.append("|---|---|---:|---:|---:|---:|---:|")
        for r in starts:
            out.append(f"| {r['start']} | {r['workers']} | {r['ready_ms']:.0f} ms | "
                       f"{r['first_ms']:.0f} ms | {fmt_kib(r['rss_kib'])} | {fmt_kib(r['anon_kib'])} | "
                       f"{r['cache_files']} |")
        out.append("")

    cpu = [r for r in wrk if r["section"] == "cpu"]
    if cpu:
        out.append("### CPU-time limit\n")
        groups = rows_by_label(cpu)
        labels = [label for (_, label) in groups]
        base = mean([r["rps"] for r in groups[(cpu[0]["batch"], labels[-1])]])
        out.append(f"wws rust hello (SDK), alternating runs. Ratios are to `{labels[-1]}`.\n")
        out.append("| config | conns | RPS (mean) | RPS per run | p50 | p99 | RPS ratio | server CPU / request |")
        out.append("|---|---:|---:|---|---:|---:|---:|---:|")
        for (_, label), runs in groups.items():
            rps = mean([r["rps"] for r in runs])
            out.append(f"| {label} | {runs[0]['conns']} | {fmt_rps(rps)} | "
                       f"{', '.join(fmt_rps(r['rps']) for r in runs)} | "
                       f"{fmt_us(mean([r['p50_us'] for r in runs]))} | "
                       f"{fmt_us(mean([r['p99_us'] for r in runs]))} | {100 * rps / base:.1f} % | "
                       f"{fmt_cpu(runs)} |")
        out.append("")

    engine = [r for r in wrk if r["section"] == "engine"]
    if engine:
        out.append("### Engine and serving settings\n")
        out.append("Each setting of `crates/worker/src/tuning.rs` and `crates/server/src/cores.rs` against the default (what wws ships), "
                   "alternating runs at 32 connections. Ratios are to the default of the same worker.\n")
        out.append("| worker: setting | RPS (mean) | RPS per run | p50 | p99 | RPS / default | server CPU / request |")
        out.append("|---|---:|---|---:|---:|---:|---:|")
        groups = rows_by_label(engine)
        for (batch, label), runs in groups.items():
            default = next((r for (b, l), r in groups.items() if b == batch and l.endswith(": default")), runs)
            rps = mean([r["rps"] for r in runs])
            out.append(f"| {label} | {fmt_rps(rps)} | {', '.join(fmt_rps(r['rps']) for r in runs)} | "
                       f"{fmt_us(mean([r['p50_us'] for r in runs]))} | {fmt_us(mean([r['p99_us'] for r in runs]))} | "
                       f"{fmt_pct(100 * rps / mean([r['rps'] for r in default]))} | {fmt_cpu(runs)} |")
        out.append("")

    growth = [r for r in records if r["kind"] == "rss"]
    if growth:
        out.append("### Server RSS while serving wws rust hello (SDK)\n")
        out.append("| point | requests served | VmRSS |")
        out.append("|---|---:|---:|")
        for r in growth:
            out.append(f"| {r['point']} | {r['requests']:,} | {fmt_kib(r['rss_kib'])} |")
        warm = next((r for r in growth if r["point"].startswith("warm")), None)
        last = growth[-1]
        if warm and last is not warm and warm["rss_kib"] and last["rss_kib"]:
            d = last["rss_kib"] - warm["rss_kib"]
            out.append(f"\nGrowth under the same load, from {warm['requests']:,} to {last['requests']:,} "
                       f"requests: {d / 1024:+.1f} MiB ({100 * d / warm['rss_kib']:+.1f} %). The step before "
                       f"it is the pool warming one slot per request in flight.")
        out.append("")

    notes = [r for r in records if r["kind"] == "note"]
    if notes:
        out.append("### Notes and skipped scenarios\n")
        for r in notes:
            out.append(f"- **{r['what']}**: {r['why']}")
        out.append("")
    print("\n".join(out))


def cmd_record(a):
    readme = Path(a.readme)
    text = readme.read_text(encoding="utf-8")
    start, end = "<!-- latest-results:start -->", "<!-- latest-results:end -->"
    if start not in text or end not in text:
        fail(f"{readme} has no {start} … {end} markers; add them where the results go")
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    report = Path(a.report).read_text(encoding="utf-8").strip()
    body = "\n".join([
        start,
        f"Measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} with `{a.command}` "
        f"at commit `{a.commit}`.",
        "",
        f"Machine: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}; {a.wrk}. "
        "Other work was running on the machine at the same time, so compare rows of one table only.",
        "",
        report,
        end,
    ])
    head, rest = text.split(start, 1)
    readme.write_text(head + body + rest.split(end, 1)[1], encoding="utf-8")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("check")
    s.add_argument("url")
    s.add_argument("expected")
    s.set_defaults(func=cmd_check)

    s = sub.add_parser("requests")
    s.add_argument("url")
    s.add_argument("n", type=int)
    s.set_defaults(func=cmd_requests)

    s = sub.add_parser("rss")
    s.add_argument("pid", type=int)
    s.set_defaults(func=cmd_rss)

    s = sub.add_parser("wrk-record")
    for k in ("out", "results", "section", "batch", "label"):
        s.add_argument(f"--{k}", required=True)
    s.add_argument("--conns", type=int, required=True)
    s.add_argument("--round", type=int, default=1)
    s.add_argument("--pid", type=int, default=0)
    s.add_argument("--cpu-ticks", type=int, default=None)
    s.set_defaults(func=cmd_wrk_record)

    s = sub.add_parser("note")
    for k in ("results", "section", "what", "why"):
        s.add_argument(f"--{k}", required=True)
    s.set_defaults(func=cmd_note)

    s = sub.add_parser("rss-point")
    for k in ("results", "pid", "point", "requests"):
        s.add_argument(f"--{k}", required=True)
    s.set_defaults(func=lambda a: append(a.results, {
        "kind": "rss", "point": a.point, "requests": int(a.requests), "rss_kib": rss_kib(int(a.pid))}))

    s = sub.add_parser("wasm-variant")
    s.add_argument("input")
    s.add_argument("output")
    s.add_argument("n", type=int)
    s.set_defaults(func=cmd_wasm_variant)

    s = sub.add_parser("startup")
    for k in ("wws", "project", "route", "expected", "results", "log", "workers"):
        s.add_argument(f"--{k}", required=True)
    s.add_argument("--warm-runs", type=int, default=3)
    s.add_argument("--timeout", type=float, default=300.0)
    s.set_defaults(func=cmd_startup)

    s = sub.add_parser("report")
    s.add_argument("results")
    s.set_defaults(func=cmd_report)

    s = sub.add_parser("record")
    for k in ("readme", "report", "command", "commit", "wrk"):
        s.add_argument(f"--{k}", required=True)
    s.set_defaults(func=cmd_record)

    a = p.parse_args()
    a.func(a)


if __name__ == "__main__":
    main()
