//! `runicorn bench --from FILE.json`: a saved report shown again, through
//! the real binary, as a user scripts it: the table, CSV and JSON on
//! stdout, `--plot` SVG and PNG files, and `--compare` against a baseline
//! flagging a regression with exit 1. The reports are written here by
//! hand, so no load is generated and no figure depends on the machine.

use std::fs;
use std::path::Path;
use std::process::Command;

use runicorn_tests::command::{run_bounded, Finished};
use runicorn_tests::runicorn_bin;
use serde_json::{json, Value};

/// One run of the report: `rps` over 10 s, the latency around `p50_us`.
fn run(class: &str, connections: u32, rps: f64, p50_us: u64, p99_us: u64) -> Value {
    let requests = (rps * 10.0).round() as u64;
    json!({
        "workload": "io",
        "app": "builtin:sleep",
        "request": "GET /?ms=20",
        "class": class,
        "connections": connections,
        "rate": null,
        "requests": requests,
        "duration_s": 10.0,
        "rps": rps,
        "latency": {"mean": p50_us as f64, "p50": p50_us, "p90": p99_us, "p99": p99_us, "p999": p99_us * 2, "max": p99_us * 3},
        "statuses": {"200": requests},
        "errors": {},
        "server_cpu_s": requests as f64 * 0.002,
        "cpu_per_request_us": 2000.0,
        "client_cpu_s": 1.0,
        "worker_rss_kib": [10240, 10240],
        "master_rss_kib": 8192,
        "little_limit_rps": null,
        "interrupted": false
    })
}

/// A report of sync and gthread at 1 and 16 connections on `io`: 20 ms
/// waits, 2 ms of CPU per request.
fn report() -> Value {
    json!({
        "format": 1,
        "runicorn": "runicorn 0.1.0",
        "started": "2026-12-07T20:00:00Z",
        "machine": {"cpus": 2, "cpu_model": "Test CPU", "memory_kib": 4194304, "kernel": "Linux 6.1.0"},
        "settings": {
            "workers": 2, "threads": 8, "worker_connections": 1000, "mode": "closed", "keep_alive": true,
            "duration_s": 10.0, "warmup_s": 2.0, "transport": "tcp", "server_cpus": [], "client_cpus": [],
            "client_threads": 1, "server_args": []
        },
        "runs": [
            run("sync", 1, 49.0, 20_300, 20_800),
            run("gthread", 1, 48.5, 20_400, 21_300),
            run("sync", 16, 98.0, 20_300, 163_000),
            run("gthread", 16, 776.0, 20_400, 21_300),
        ],
        "failures": [],
        "interrupted": false,
        "recommendations": []
    })
}

fn write_json(path: &Path, value: &Value) {
    fs::write(path, serde_json::to_string_pretty(value).unwrap()).unwrap();
}

/// `runicorn bench ARGS` in `dir`, bounded.
fn bench(dir: &Path, args: &[&str]) -> Finished {
    run_bounded(
        "runicorn bench",
        Command::new(runicorn_bin())
            .arg("bench")
            .args(args)
            .current_dir(dir),
        60.0,
    )
}

#[test]
fn from_a_report_as_table_csv_and_json() {
    let dir = tempfile::tempdir().unwrap();
    write_json(&dir.path().join("base.json"), &report());

    let table = bench(dir.path(), &["--from", "base.json"]);
    assert!(table.status.success(), "{table:?}");
    let text = &table.output;
    assert!(text.contains("== io: builtin:sleep  GET /?ms=20"), "{text}");
    let row = text
        .lines()
        .find(|line| line.split_whitespace().take(2).eq(["gthread", "16"]))
        .unwrap_or_else(|| panic!("no gthread row at 16 connections:\n{text}"));
    assert_eq!(
        row.split_whitespace().take(6).collect::<Vec<_>>(),
        ["gthread", "16", "776", "20.4ms", "21.3ms", "21.3ms"],
        "{text}"
    );
    // W = 20.3 ms, c = 2 ms: IO-bound, W / c = 10.15: 11 threads per worker,
    // a worker per CPU.
    assert!(
        text.contains("recommendation for io: gthread, 2 workers, 11 threads"),
        "{text}"
    );
    assert!(
        text.contains("runicorn -k gthread -w 2 --threads 11 builtin:sleep"),
        "{text}"
    );
    for line in text.lines() {
        assert!(
            line.chars().count() <= 100,
            "wider than 100 columns: {line:?}"
        );
    }

    let csv = bench(dir.path(), &["--from", "base.json", "--output", "csv"]);
    assert!(csv.status.success(), "{csv:?}");
    let lines: Vec<&str> = csv.output.lines().collect();
    assert_eq!(lines.len(), 5, "a header and 4 runs:\n{}", csv.output);
    assert!(
        lines[0].starts_with("workload,app,request,class,connections,rate,requests,"),
        "{}",
        lines[0]
    );
    assert!(
        lines[4].starts_with("io,builtin:sleep,GET /?ms=20,gthread,16,,7760,10,776,"),
        "{}",
        lines[4]
    );

    let json = bench(dir.path(), &["--from", "base.json", "--output", "json"]);
    assert!(json.status.success(), "{json:?}");
    let mut shown: Value = serde_json::from_str(&json.output)
        .unwrap_or_else(|err| panic!("stdout is not one JSON document ({err}):\n{}", json.output));
    // The runs are the file's; recommendations may have been made.
    shown["recommendations"] = json!([]);
    assert_eq!(shown, report());
}

#[test]
fn plots_as_svg_and_png() {
    let dir = tempfile::tempdir().unwrap();
    write_json(&dir.path().join("base.json"), &report());
    let finished = bench(
        dir.path(),
        &[
            "--from",
            "base.json",
            "--plot",
            "charts.svg",
            "--plot",
            "charts.png",
        ],
    );
    assert!(finished.status.success(), "{finished:?}");
    assert!(
        finished.output.contains("charts: charts.svg"),
        "{}",
        finished.output
    );
    let svg = fs::read_to_string(dir.path().join("charts.svg")).unwrap();
    assert!(svg.contains("<svg"));
    for class in ["sync", "gthread"] {
        assert!(
            svg.contains(&format!("\n{class}\n</text>")),
            "{class} not in the SVG legend"
        );
    }
    let png = fs::read(dir.path().join("charts.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(&png[12..16], b"IHDR");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(png[20..24].try_into().unwrap());
    assert_eq!((width, height), (1200, 450));

    let refused = bench(dir.path(), &["--from", "base.json", "--plot", "charts.pdf"]);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        refused
            .output
            .contains("cannot plot to charts.pdf: unknown extension, use FILE.svg or FILE.png"),
        "{}",
        refused.output
    );
    assert!(!dir.path().join("charts.pdf").exists());
}

#[test]
fn compare_flags_the_regression_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    write_json(&dir.path().join("base.json"), &report());
    let mut new = report();
    // gthread at 16 connections: half the req/s.
    new["runs"][3]["rps"] = json!(388.0);
    write_json(&dir.path().join("new.json"), &new);

    let same = bench(
        dir.path(),
        &["--from", "base.json", "--compare", "base.json"],
    );
    assert!(same.status.success(), "{same:?}");
    assert!(
        same.output.contains("0 regressions against base.json"),
        "{}",
        same.output
    );

    let worse = bench(
        dir.path(),
        &["--from", "new.json", "--compare", "base.json"],
    );
    assert_eq!(worse.status.code(), Some(1), "{worse:?}");
    let text = &worse.output;
    let flagged: Vec<&str> = text
        .lines()
        .zip(text.lines().skip(1))
        .filter(|(_, next)| next.contains("REGRESSION"))
        .map(|(line, _)| line.trim_start())
        .collect();
    assert_eq!(flagged.len(), 1, "{text}");
    assert!(
        flagged[0].starts_with("io gthread c=16  req/s 776 → 388 (-50.0%)"),
        "{text}"
    );
    assert!(text.contains("REGRESSION: req/s -50.0%"), "{text}");
    assert!(text.contains("1 regression against base.json"), "{text}");

    // A file that is not a report is named, in one line, before any output.
    fs::write(dir.path().join("notes.txt"), "name,rps\n").unwrap();
    let refused = bench(
        dir.path(),
        &["--from", "new.json", "--compare", "notes.txt"],
    );
    assert!(!refused.status.success(), "{refused:?}");
    assert_eq!(refused.output.lines().count(), 1, "{}", refused.output);
    assert!(
        refused
            .output
            .contains("notes.txt is not a runicorn bench report"),
        "{}",
        refused.output
    );
}

/// `runicorn bench ... | head`: the reader closing stdout ends the output
/// quietly with a filter's SIGPIPE status (141), not an error line.
#[test]
fn a_closed_stdout_ends_quietly() {
    let dir = tempfile::tempdir().unwrap();
    write_json(&dir.path().join("base.json"), &report());
    let mut child = Command::new(runicorn_bin())
        .args(["bench", "--from", "base.json", "--output", "csv"])
        .current_dir(dir.path())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Closed before the child (still starting) writes a byte.
    drop(child.stdout.take());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("runicorn bench did not exit in 30 s with its stdout closed");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(141), "stderr: {stderr}");
    assert!(stderr.is_empty(), "nothing said on stderr: {stderr}");
}

/// bench/benchmarks_md.py, which writes BENCHMARKS.md from these reports,
/// passes its own tests (hand-made reports; stdlib only), so the published
/// document's generator is checked by the same test command as the rest.
#[test]
fn the_benchmarks_md_generator_passes_its_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let done = run_bounded(
        "python3 -m unittest bench/test_benchmarks_md.py",
        Command::new("python3")
            .args([
                "-m",
                "unittest",
                "discover",
                "-s",
                "bench",
                "-p",
                "test_benchmarks_md.py",
            ])
            .current_dir(&root),
        120.0,
    );
    assert!(done.status.success(), "{}", done.output);
    assert!(done.output.contains("OK"), "{}", done.output);
}
