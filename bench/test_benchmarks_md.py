"""bench/benchmarks_md.py against hand-made reports shaped as
benchmark/src/report.rs's `Report` (`--output json`).

    python3 -m unittest discover -s bench -p 'test_benchmarks_md.py'
"""

import json
import os
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import benchmarks_md  # noqa: E402

CONNS = [1, 16]


def run(workload, cls, conns, rps, p99=900, errors=None, little=None, request="GET /"):
    return {
        "workload": workload, "app": "builtin:" + workload, "request": request, "class": cls,
        "connections": conns, "rate": None, "requests": int(rps * 2), "duration_s": 2.0, "rps": rps,
        "latency": {"mean": 500.0, "p50": 400, "p90": 700, "p99": p99, "p999": 1200, "max": 2000},
        "statuses": {"200": int(rps * 2)}, "errors": errors or {}, "server_cpu_s": 0.5,
        "cpu_per_request_us": 12.5, "client_cpu_s": 0.4, "worker_rss_kib": [4096],
        "master_rss_kib": 2048, "little_limit_rps": little, "interrupted": False,
    }


def report(runs, failures=(), recommendations=()):
    return {
        "format": 1, "runicorn": "runicorn 0.1.0", "started": "2026-12-07T20:00:00Z",
        "machine": {"cpus": 2, "cpu_model": "Test CPU", "memory_kib": 8 * 1048576, "kernel": "Linux 6.1"},
        "settings": {"workers": 1, "threads": 8, "worker_connections": 1000, "mode": "closed",
                     "keep_alive": True, "duration_s": 2.0, "warmup_s": 1.0, "transport": "tcp",
                     "server_cpus": [0], "client_cpus": [1], "client_threads": 1, "server_args": []},
        "runs": list(runs), "failures": list(failures), "interrupted": False,
        "recommendations": list(recommendations),
    }


def write(directory, name, value):
    with open(os.path.join(directory, name), "w") as f:
        json.dump(value, f)


def fixture(directory):
    classes = {"sync": 1000.0, "gthread": 4000.0, "green": 5000.0, "async": 4500.0}
    write(directory, "hello.json", report(
        [run("hello", c, n, rps * (1 + n / 16), little=99.0) for c, rps in classes.items() for n in CONNS],
        recommendations=[{"workload": "hello", "class": "green", "workers": 2, "threads": 1,
                          "worker_connections": 1000, "command": "runicorn -k green -w 2 APP",
                          "why": "CPU-bound at 12 µs per request."}]))
    for label, rps in [("nginx", 10000.0), ("hyper", 8000.0)]:
        write(directory, "peer-hello-%s.json" % label,
              report([run("url", label, n, rps * (1 + n / 16)) for n in CONNS]))
    write(directory, "peer-hello-may_minihttp.json", {"runs": [], "failures": [
        {"workload": "hello", "class": "may_minihttp", "reason": "did not serve /"}]})
    write(directory, "peer-hello-gunicorn-sync.json",
          report([run("url", "gunicorn-sync", n, 500.0) for n in CONNS]))
    write(directory, "peer-hello-uvicorn.json", report([
        run("url", "uvicorn", 1, 700.0),
        run("url", "uvicorn", 16, 900.0, errors={"timeout": 3, "status_5xx": 1})]))
    for c in ["sync", "gthread"]:
        write(directory, "wsgi-hello-%s.json" % c,
              report([run("app", c, n, 1500.0, request="GET /") for n in CONNS]))
    write(directory, "io.json", report(
        [run("io", c, n, 9.5 * n, little=10.0 * n, request="GET /?ms=100")
         for c in classes if c != "async" for n in CONNS],
        failures=[{"workload": "io", "class": "async", "reason": "the app failed to load"}]))
    write(directory, "hello.svg", "<svg/>")
    write(directory, "environment.json", {
        "date": "2026-12-07 20:00 UTC", "cpu_model": "Test CPU", "cpus": 2, "memory_kib": 8 * 1048576,
        "kernel": "Linux 6.1", "rustc": "rustc 1.95.0", "python": "3.11.7", "runicorn": "runicorn 0.1.0",
        "commit": "abc1234", "versions": {"nginx": "1.22.1", "gunicorn": "23.0.0"},
        "load_at_start": "0.1 0.2 0.3", "command": "bench/setup.sh && bench/benchmarks.sh",
        "duration_s": 2.0, "warmup_s": 1.0, "connections": CONNS, "threads": 8,
        "trial": "a smoke run on a busy machine"})


class Render(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        fixture(self.dir.name)
        self.md = benchmarks_md.render(self.dir.name, "bench/results/benchmarks")

    def tearDown(self):
        self.dir.cleanup()

    def line(self, start):
        found = [line for line in self.md.splitlines() if line.startswith(start)]
        self.assertTrue(found, "no line starts with %r in:\n%s" % (start, self.md))
        return found[0]

    def test_ratios_are_to_the_named_reference_at_the_same_connections(self):
        # hello, native: nginx is the reference (10,625 at 1, 20,000 at 16).
        self.assertIn("| runicorn green | 5,312 (0.50×) | 10,000 (0.50×) |", self.md)
        self.assertIn("| **nginx** | 10,625 (1.00×) | 20,000 (1.00×) |", self.md)
        # hello, Python: Gunicorn sync.
        self.assertIn("| runicorn-wsgi gthread | 1,500 (3.00×) | 1,500 (3.00×) |", self.md)

    def test_failures_errors_and_missing_rows_are_said(self):
        self.assertIn("| may_minihttp | failed | failed |", self.md)
        self.assertIn("may_minihttp did not run: did not serve /", self.md)
        self.assertIn("900 (1.80×) ⚠", self.md)
        self.assertIn("uvicorn at 16 connections: 4 errors (status_5xx 1, timeout 3) of 1,800 responses", self.md)
        self.assertIn("runicorn async did not run: the app failed to load", self.md)
        # Not measured at all (no file): no row.
        self.assertNotIn("gunicorn-gevent", self.md)

    def test_the_machine_the_command_the_trial_and_the_charts(self):
        self.assertIn("**Trial run, not the published figures:** a smoke run on a busy machine", self.md)
        self.assertIn("    bench/setup.sh && bench/benchmarks.sh", self.md)
        self.assertIn("Test CPU, 2 CPUs, 8.0 GiB memory; kernel Linux 6.1", self.line("- machine:"))
        self.assertEqual("- peers: nginx 1.22.1, gunicorn 23.0.0", self.line("- peers:"))
        self.assertIn("![hello: throughput and p99 against connections](bench/results/benchmarks/hello.svg)",
                      self.md)
        self.assertNotIn("io.svg", self.md)

    def test_littles_law_share_and_the_recommendation(self):
        self.assertIn("| **runicorn sync** | 95% of 10.0 | 95% of 160 |", self.md)
        self.assertIn("| runicorn async | failed | failed |", self.md)
        # Not for a hello: its requests do not wait.
        self.assertNotIn("of 99.0", self.md)
        self.assertEqual(self.md.count("Share of the Little's-law limit"), 1)
        self.assertIn("`runicorn -k green -w 2 APP`. CPU-bound at 12 µs per request.", self.md)
        self.assertIn("Requests: `GET /?ms=100`.", self.md)

    def test_the_load_generators_overhead_when_measured(self):
        self.assertNotIn("## The load generator's own overhead", self.md)
        table = ("| generator (1 thread, CPU 1) | req/s (median of 3) | CPU µs/request (median) |\n"
                 "|---|---|---|\n| wrk | 124055 | 7.76 |\n| runicorn-bench | 139805 | 6.59 |\n")
        with open(os.path.join(self.dir.name, "loadgen.md"), "w") as f:
            f.write(table)
        md = benchmarks_md.render(self.dir.name, "bench/results/benchmarks")
        self.assertIn("## The load generator's own overhead", md)
        self.assertIn("| runicorn-bench | 139805 | 6.59 |", md)

    def test_at_a_glance_picks_runicorns_best_row(self):
        self.assertIn("| hello | runicorn green | 10,000 | 0.90 | 12.5 | 0.50× nginx |", self.md)
        self.assertIn("| hello (Python) | runicorn-wsgi sync | 1,500 |", self.md)
        self.assertIn("| runicorn sync | 2.0 | 4.0 | 16 |", self.md)


class Commands(unittest.TestCase):
    def test_merge_relabels_every_row_for_one_chart(self):
        with tempfile.TemporaryDirectory() as directory:
            fixture(directory)
            merged = benchmarks_md.merge(directory, "hello", "native")
            labels = sorted({r["class"] for r in merged["runs"]})
            self.assertEqual(labels, ["hyper", "nginx", "runicorn async", "runicorn green",
                                      "runicorn gthread", "runicorn sync"])
            self.assertEqual({r["workload"] for r in merged["runs"]}, {"hello (native)"})
            self.assertEqual([f["class"] for f in merged["failures"]], ["may_minihttp"])
            self.assertEqual(merged["format"], 1)

    def test_request_path_and_the_command_line(self):
        with tempfile.TemporaryDirectory() as directory:
            fixture(directory)
            out = subprocess.run([sys.executable, os.path.join(HERE, "benchmarks_md.py"), "request-path",
                                  os.path.join(directory, "io.json")], capture_output=True, text=True,
                                 check=True).stdout
            self.assertEqual(out, "/?ms=100\n")
            md = subprocess.run([sys.executable, os.path.join(HERE, "benchmarks_md.py"), "render", directory,
                                 "--link-base", "x"], capture_output=True, text=True, check=True).stdout
            self.assertTrue(md.startswith("# runicorn benchmarks\n"))


if __name__ == "__main__":
    unittest.main()
