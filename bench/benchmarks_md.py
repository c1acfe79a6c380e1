#!/usr/bin/env python3
"""BENCHMARKS.md from the JSON reports of bench/benchmarks.sh (stdlib only).

The document is made from the data and nothing else, so it never drifts
from it. The reports are `runicorn bench --output json` (the `Report` of
benchmark/src/report.rs); the directory holds, for a workload W:

  W.json                  runicorn bench --workload W (every worker class)
  peer-W-LABEL.json       runicorn bench --url ... --label LABEL (a peer)
  wsgi-W-CLASS.json       runicorn bench wsgi_hello:... -k CLASS (the WSGI app)
  environment.json        the machine, the versions, the command (benchmarks.sh)

A file with `runs: []` and one failure stands for a server that could not
be measured. Commands:

  benchmarks_md.py render DIR [--link-base REL]   the markdown, on stdout
  benchmarks_md.py merge DIR W GROUP              one report of a comparison
                                                  table's rows (for --plot)
  benchmarks_md.py request-path FILE              the path the first run asked
"""

import argparse
import glob
import json
import os
import sys

CLASSES = ["sync", "gthread", "green", "async"]
WORKLOADS = ["hello", "io", "cpu", "mixed", "upload", "stream"]
# The workloads whose requests wait: Little's law bounds their throughput.
IO_BOUND = ["io", "mixed"]

DESCRIPTIONS = {
    "hello": "`builtin:hello`: 200 `Hello, World!`, the cost of the server itself.",
    "io": "`builtin:sleep`: a wait in the class's own way (a thread's sleep, a "
    "coroutine's, a task's), the I/O-bound request.",
    "cpu": "`builtin:cpu`: rounds of a hash loop, the CPU-bound request.",
    "mixed": "`builtin:mixed`: a wait (a database call), then rounds of CPU "
    "(rendering): the realistic web request.",
    "upload": "`builtin:upload`: a request body read to its end, the upload.",
    "stream": "`builtin:stream`: a chunked response written 1 KiB at a time.",
}

# The comparison tables: (workload, group) -> (title, reference, rows).
# A row is (label, source): source "builtin" (W.json, class LABEL's last
# word), "peer" (peer-W-LABEL.json) or "wsgi" (wsgi-W-CLASS.json).
NATIVE_PEERS = ["nginx", "hyper", "may_minihttp"]
PY_PEERS = ["gunicorn-sync", "gunicorn-gthread", "gunicorn-gevent", "uvicorn"]


def groups(workload):
    """The tables of one workload: [(group, title, reference, [(label, kind)])]."""
    builtin = [("runicorn " + c, "builtin") for c in CLASSES]
    if workload == "hello":
        return [
            ("native", "runicorn's classes and the native servers", "nginx",
             builtin + [(p, "peer") for p in NATIVE_PEERS]),
            ("python", "the same WSGI app (`wsgi_hello:hello`) under runicorn and Gunicorn, and uvicorn's ASGI twin",
             "gunicorn-sync",
             [(p, "peer") for p in PY_PEERS] + [("runicorn-wsgi " + c, "wsgi") for c in CLASSES]),
        ]
    if workload == "io":
        return [
            ("native", "runicorn's classes", "runicorn sync", builtin),
            ("python", "a WSGI app sleeping as long (`wsgi_hello:sleep`, `time.sleep`) under runicorn and Gunicorn, "
             "and uvicorn's ASGI twin (`asyncio.sleep`)", "gunicorn-sync",
             [(p, "peer") for p in PY_PEERS] + [("runicorn-wsgi " + c, "wsgi") for c in CLASSES]),
        ]
    return [("native", "runicorn's classes", "runicorn sync", builtin)]


def load(path):
    with open(path) as f:
        return json.load(f)


def reports(directory, workload):
    """label -> report dict, for every row source of `workload` that exists."""
    found = {}
    path = os.path.join(directory, workload + ".json")
    if os.path.exists(path):
        found["builtin"] = load(path)
    for path in sorted(glob.glob(os.path.join(directory, "peer-%s-*.json" % workload))):
        label = os.path.basename(path)[len("peer-%s-" % workload):-len(".json")]
        found["peer " + label] = load(path)
    for path in sorted(glob.glob(os.path.join(directory, "wsgi-%s-*.json" % workload))):
        label = os.path.basename(path)[len("wsgi-%s-" % workload):-len(".json")]
        found["wsgi " + label] = load(path)
    return found


def rows_of(found, label, kind):
    """(runs, failures) of one row, its runs sorted by connections."""
    if kind == "builtin":
        report = found.get("builtin", {})
        cls = label.split()[-1]
        runs = [r for r in report.get("runs", []) if r["class"] == cls]
        failures = [f for f in report.get("failures", []) if f["class"] == cls]
    elif kind == "peer":
        report = found.get("peer " + label, {})
        runs, failures = report.get("runs", []), report.get("failures", [])
    else:
        cls = label.split()[-1]
        report = found.get("wsgi " + cls, found.get("wsgi missing", {}))
        runs = [r for r in report.get("runs", []) if r["class"] == cls]
        failures = report.get("failures", [])
    return sorted(runs, key=lambda r: (r["connections"], r.get("rate") or 0)), failures


# ---- numbers -------------------------------------------------------------


def num(value):
    """A count or a rate, readable: 123,456 / 1,234 / 12.3 / 0.12."""
    if value >= 100:
        return "{:,.0f}".format(value)
    if value >= 10:
        return "%.1f" % value
    return "%.2f" % value


def ms(us):
    """Microseconds as milliseconds with sensible digits."""
    value = us / 1000.0
    if value >= 100:
        return "{:,.0f}".format(value)
    if value >= 10:
        return "%.1f" % value
    return "%.2f" % value


def ratio(value, reference):
    if not reference:
        return "?"
    r = value / reference
    return ("%.2f×" % r) if r < 10 else ("%.1f×" % r) if r < 100 else ("%.0f×" % r)


def errors_of(run):
    return sum(run.get("errors", {}).values())


def kib(value):
    """KiB as MiB."""
    return "{:,.1f}".format(value / 1024.0) if value else "-"


# ---- the document --------------------------------------------------------


def table(lines, header, rows):
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    for row in rows:
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")


def comparison(lines, found, conns, workload, title, reference, rows, notes):
    data = [(label, kind) + rows_of(found, label, kind) for label, kind in rows]
    data = [d for d in data if d[2] or d[3]]
    if not data:
        return None
    by_label = {label: {r["connections"]: r for r in runs} for label, _, runs, _ in data}
    ref_label = reference if by_label.get(reference) else data[0][0]
    ref = by_label[ref_label]
    lines.append("#### %s" % title)
    lines.append("")
    if ref_label != reference:
        lines.append("(%s was not measured: the ratios are to %s.)" % (reference, ref_label))
        lines.append("")
    header = ["server"] + ["c=%d" % c for c in conns]
    rps_rows, p99_rows, cpu_rows, mem_rows, little_rows = [], [], [], [], []
    for label, kind, runs, failures in data:
        at = by_label[label]
        name = "**%s**" % label if label == ref_label else label
        if not runs:
            reason = "; ".join(f["reason"] for f in failures) or "not measured"
            notes.append("%s did not run: %s" % (label, reason))
            rps_rows.append([name] + ["failed"] * len(conns))
            continue
        rps, p99, cpu, little = [name], [name], [name], [name]
        for c in conns:
            run = at.get(c)
            if run is None:
                for cells in (rps, p99, cpu, little):
                    cells.append("-")
                continue
            mark = ""
            if errors_of(run):
                mark = " ⚠"
                notes.append("%s at %d connections: %s errors (%s) of %s responses" % (
                    label, c, "{:,}".format(errors_of(run)),
                    ", ".join("%s %s" % (k, "{:,}".format(v)) for k, v in sorted(run["errors"].items())),
                    "{:,}".format(run["requests"])))
            base = ref.get(c)
            rel = ratio(run["rps"], base["rps"]) if base else "?"
            rps.append("%s (%s)%s" % (num(run["rps"]), rel, mark))
            p99.append(ms(run["latency"]["p99"]))
            cpu.append("%.1f" % run["cpu_per_request_us"] if run["requests"] else "-")
            limit = run.get("little_limit_rps")
            little.append("%.0f%% of %s" % (100.0 * run["rps"] / limit, num(limit)) if limit else "-")
        rps_rows.append(rps)
        p99_rows.append(p99)
        cpu_rows.append(cpu)
        if any(cell != "-" for cell in little[1:]):
            little_rows.append(little)
        last = at[max(at)]
        workers = last.get("worker_rss_kib") or []
        mem_rows.append([name, kib(last.get("master_rss_kib", 0)),
                         " / ".join(kib(w) for w in workers) or "-", str(max(at))])
        for f in failures:
            notes.append("%s: %s" % (label, f["reason"]))
    lines.append("Requests per second (× %s at the same connections):" % ref_label)
    lines.append("")
    table(lines, header, rps_rows)
    lines.append("p99 latency, ms:")
    lines.append("")
    table(lines, header, p99_rows)
    lines.append("Server CPU per request, µs (user + system time of the server's "
                 "processes over the requests answered):")
    lines.append("")
    table(lines, header, cpu_rows)
    # The limit is runicorn bench's min(connections, capacity) / W, W the
    # unloaded wall time of a request: it means something where requests
    # wait (io, mixed), not for a hello.
    if little_rows and workload in IO_BOUND:
        lines.append("Share of the Little's-law limit (the most its concurrency allows "
                     "at this wait, req/s):")
        lines.append("")
        if min(conns) > 1:
            lines.append("(Without a run at 1 connection, runicorn bench took the unloaded wall time "
                         "from %d connections, where requests already queue: these limits are too "
                         "low.)" % min(conns))
            lines.append("")
        table(lines, header, little_rows)
    lines.append("Resident memory at the end of the run with the most connections, MiB:")
    lines.append("")
    table(lines, ["server", "master", "worker(s)", "connections"], mem_rows)
    return ref_label


def best(found, label_kinds, conns):
    """The runicorn row with the most req/s at `conns`: (label, run)."""
    top = None
    for label, kind in label_kinds:
        runs, _ = rows_of(found, label, kind)
        for run in runs:
            if run["connections"] == conns and (top is None or run["rps"] > top[1]["rps"]):
                top = (label, run)
    return top


def glance(directory, env):
    """At a glance: per workload, runicorn's best class against the reference."""
    conns = env.get("connections") or [1, 16, 64, 256]
    at = 64 if 64 in conns else max(conns)
    out = []
    for workload in WORKLOADS:
        found = reports(directory, workload)
        if not found:
            continue
        for group, _title, reference, rows in groups(workload):
            ours = [(label, kind) for label, kind in rows if label.startswith("runicorn")]
            top = best(found, ours, at)
            if top is None:
                continue
            ref_runs, _ = rows_of(found, reference, dict(rows).get(reference, "peer"))
            ref = {r["connections"]: r for r in ref_runs}.get(at)
            if ref is None or top[0] == reference:
                versus = "-"
            else:
                versus = "%s %s" % (ratio(top[1]["rps"], ref["rps"]), reference)
            out.append([workload if group == "native" else workload + " (Python)", top[0],
                        num(top[1]["rps"]), ms(top[1]["latency"]["p99"]),
                        "%.1f" % top[1]["cpu_per_request_us"], versus])
    return at, out


def render(directory, link_base):
    env_path = os.path.join(directory, "environment.json")
    env = load(env_path) if os.path.exists(env_path) else {}
    conns = env.get("connections") or [1, 16, 64, 256]
    lines = ["# runicorn benchmarks", ""]
    lines.append("<!-- Generated by bench/benchmarks_md.py from %s/*.json: do not edit by hand. -->"
                 % link_base)
    lines.append("")
    if env.get("trial"):
        lines.append("> **Trial run, not the published figures:** %s. Points of %.0f s after %.0f s of warm-up; "
                     "regenerate on a quiet machine with the command below for figures to quote."
                     % (env["trial"], env.get("duration_s", 0), env.get("warmup_s", 0)))
        lines.append("")
    lines.append("Every worker class of runicorn across the built-in workloads of `runicorn bench`, and side by "
                 "side **in the same run** the servers people compare it with, each on the same core, driven by "
                 "the same load generator. Ratios are to a named reference at the same number of connections.")
    lines.append("")
    lines.append("Regenerate (about 40 minutes with the default 10 s points; the machine must be otherwise idle):")
    lines.append("")
    lines.append("    " + env.get("command", "bench/setup.sh && bench/benchmarks.sh"))
    lines.append("")

    lines.append("## Machine and method")
    lines.append("")
    versions = env.get("versions", {})
    mem = env.get("memory_kib", 0) / 1048576.0
    lines.append("- date: %s; runicorn %s, commit %s" % (env.get("date", "?"), env.get("runicorn", "?"),
                                                          env.get("commit", "?")))
    lines.append("- machine: %s, %s CPUs, %.1f GiB memory; kernel %s; load average %s at the start, %s at the end"
                 % (env.get("cpu_model", "?"), env.get("cpus", "?"), mem, env.get("kernel", "?"),
                    env.get("load_at_start", "?"), env.get("load_at_end", "?")))
    lines.append("- toolchains: %s; Python %s" % (env.get("rustc", "?"), env.get("python", "?")))
    if versions:
        lines.append("- peers: " + ", ".join("%s %s" % (k, v) for k, v in versions.items()))
    lines.append("- method: the server pinned to CPU 0 (`--server-cpus 0`, or `taskset -c 0` for a peer), "
                 "runicorn's load generator (one thread) pinned to CPU 1 (`--client-cpus 1`); a closed loop "
                 "at %s connections, keep-alive (a server that closes each connection, as the sync classes "
                 "do, gets a new one per request); %.0f s measured after %.0f s of warm-up per point; "
                 "one worker process everywhere, %s threads wherever there is a pool (runicorn gthread, "
                 "Gunicorn gthread, the blocking pool runicorn's green and async classes run Python on), "
                 "1,000 worker connections for green, async and gevent." % (
                     ", ".join(str(c) for c in conns), env.get("duration_s", 0), env.get("warmup_s", 0),
                     env.get("threads", 8)))
    lines.append("- CPU per request: user + system time of the server's whole process tree over the requests "
                 "answered in the window; it compares servers even where one load generator thread, not the "
                 "server, is the limit (the fastest servers here).")
    lines.append("- ⚠ marks a point with errors (listed under its table); such a figure is suspect.")
    lines.append("")

    at, summary = glance(directory, env)
    if summary:
        lines.append("## At a glance (%d connections)" % at)
        lines.append("")
        table(lines, ["workload", "best runicorn", "req/s", "p99 ms", "CPU µs/req", "vs reference"], summary)

    for workload in WORKLOADS:
        found = reports(directory, workload)
        if not found:
            continue
        lines.append("## %s" % workload)
        lines.append("")
        lines.append(DESCRIPTIONS[workload])
        lines.append("")
        requests = sorted({r["request"] for rep in found.values() for r in rep.get("runs", [])
                           if r.get("request")})
        if requests:
            lines.append("Requests: " + ", ".join("`%s`" % r for r in requests) + ".")
            lines.append("")
        # The comparison charts; the classes' own chart when the first has
        # no peers beside them (its lines are the classes' chart's).
        charts = ["%s-%s" % (workload, g) for g, _, _, _ in groups(workload)]
        if not os.path.exists(os.path.join(directory, charts[0] + ".svg")):
            charts[0] = workload
        for chart in charts:
            if os.path.exists(os.path.join(directory, chart + ".svg")):
                lines.append("![%s: throughput and p99 against connections](%s/%s.svg)" % (
                    chart, link_base, chart))
                lines.append("")
        notes = []
        for _group, title, reference, rows in groups(workload):
            comparison(lines, found, conns, workload, title, reference, rows, notes)
        if notes:
            lines.append("Notes:")
            lines.append("")
            for note in notes:
                lines.append("- " + note)
            lines.append("")
        recs = found.get("builtin", {}).get("recommendations", [])
        for rec in recs:
            lines.append("What `runicorn bench` recommends for this workload on this machine: `%s`. %s" % (
                rec["command"], rec["why"]))
            lines.append("")
    overhead = os.path.join(directory, "loadgen.md")
    if os.path.exists(overhead):
        lines.append("## The load generator's own overhead")
        lines.append("")
        lines.append("How many requests/s one thread of each load generator drives against the fastest server "
                     "here (nginx `return 200`, one worker, on CPU 0), each generator on CPU 1, taking turns "
                     "(`bench/loadgen.sh`, run by `bench/benchmarks.sh` after the points above). Where a "
                     "generator's CPU per request times its req/s nears one second per second, that generator, "
                     "not nginx, was the limit: its CPU per request is then the figure that compares them.")
        lines.append("")
        with open(overhead) as found:
            lines.extend(line.rstrip("\n") for line in found)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# ---- the other commands --------------------------------------------------


def merge(directory, workload, group):
    """One report with the rows of one comparison table, each run's class
    set to its row's label, for `runicorn bench --from FILE --plot`."""
    found = reports(directory, workload)
    table = {g: rows for g, _, _, rows in groups(workload)}.get(group)
    if table is None:
        raise SystemExit("no table %r for workload %r" % (group, workload))
    base = next((r for r in found.values() if "settings" in r), None)
    if base is None:
        raise SystemExit("no report of %r in %s" % (workload, directory))
    merged = dict(base, runs=[], failures=[], recommendations=[])
    # The chart's title: `hello (native): throughput (GET /)`.
    title = "%s (%s)" % (workload, group)
    for label, kind in table:
        runs, failures = rows_of(found, label, kind)
        for run in runs:
            merged["runs"].append(dict(run, workload=title, **{"class": label}))
        for failure in failures:
            merged["failures"].append(dict(failure, workload=title, **{"class": label}))
    return merged


def request_path(path):
    """`/?ms=100` from the first run's request `GET /?ms=100`."""
    runs = load(path).get("runs", [])
    if not runs:
        raise SystemExit("no runs in %s" % path)
    return runs[0]["request"].split(" ", 1)[1]


def main(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("render")
    p.add_argument("directory")
    p.add_argument("--link-base", default="bench/results/benchmarks",
                   help="the directory as the document links to it")
    p = sub.add_parser("merge")
    p.add_argument("directory")
    p.add_argument("workload")
    p.add_argument("group", choices=["native", "python"])
    p = sub.add_parser("request-path")
    p.add_argument("file")
    args = parser.parse_args(argv)
    if args.command == "render":
        sys.stdout.write(render(args.directory, args.link_base))
    elif args.command == "merge":
        json.dump(merge(args.directory, args.workload, args.group), sys.stdout, indent=1)
    else:
        print(request_path(args.file))


if __name__ == "__main__":
    main(sys.argv[1:])
