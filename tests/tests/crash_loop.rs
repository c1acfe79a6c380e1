//! Issue 14, item 5: an app whose workers exit 100 ms after boot. The master
//! respawns them with a doubling back-off (one log line per step, a bounded
//! number of boots, next to no CPU), ends the back-off once a new worker
//! stays up, and TERM still stops everything at once.

use std::time::{Duration, Instant};

use runicorn_tests::examples::examples;
use runicorn_tests::proc;
use runicorn_tests::{deadline, get, wait_until, Launch, Signal, LOCAL};

/// The window the issue names: bounded restarts in the first 10 s.
const WINDOW: Duration = Duration::from_secs(10);

/// The delays (seconds) of the `respawning in N s` lines, in order.
fn backoff_steps(log: &str) -> Vec<f64> {
    log.lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once("respawning in ")?;
            rest.split('s').next()?.parse().ok()
        })
        .collect()
}

#[test]
fn workers_dying_after_boot_are_respawned_with_back_off_and_term_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let crash_file = dir.path().join("crashing");
    std::fs::write(&crash_file, b"").unwrap();
    let examples = examples().display().to_string();
    let mut server = Launch::new([
        "-w",
        "4",
        "-b",
        LOCAL,
        "--graceful-timeout",
        "30",
        "--app-path",
        &examples,
        "hello:app",
    ])
    .env("HELLO_INIT", "exit-after:100")
    .env("HELLO_CRASH_FILE", &crash_file)
    .start();
    let started = Instant::now();
    let cpu_before = proc::cpu_ticks(server.pid()).expect("master's /proc stat");
    std::thread::sleep(WINDOW.saturating_sub(started.elapsed()));
    let cpu = proc::cpu_ticks(server.pid()).expect("master's /proc stat") - cpu_before;
    let log = server.log();
    let boots = server.log_count("Booting worker");
    let deaths = server.log_count("exited with code 1.");
    let steps = backoff_steps(&log);
    eprintln!("in {WINDOW:?}: {boots} boots, {deaths} deaths, back-off steps {steps:?}, master CPU {cpu} ticks");
    // 4 at start, then one per step of 0.1, 0.2, 0.4 ... 5 s: a handful,
    // where a respawn loop without back-off boots hundreds.
    assert!((6..=14).contains(&boots), "{boots} boots in 10 s:\n{log}");
    // One line per back-off step, each death one step, the delays doubling
    // to the 5 s cap.
    assert_eq!(
        steps.len(),
        deaths,
        "one back-off line per fast death:\n{log}"
    );
    assert!(steps.len() >= 5, "{steps:?}");
    assert!(
        steps.windows(2).all(|pair| pair[1] >= pair[0]) && steps.iter().all(|delay| *delay <= 5.0),
        "{steps:?}"
    );
    assert_eq!(steps.first(), Some(&0.1), "{steps:?}");
    // The master sleeps between steps: well under a tenth of a CPU over the
    // window (a busy loop would use all 1,000 ticks).
    assert!(cpu < 100, "master used {cpu} ticks of CPU in 10 s");

    // The cause goes away: the next worker stays up, the back-off ends and
    // all four come back (not one per 5 s step).
    std::fs::remove_file(&crash_file).unwrap();
    server.expect_log("the back-off after", 20.0);
    server.wait_workers(4, 20.0);
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);

    // Into a crash loop again, then TERM in the middle of a back-off wait.
    std::fs::write(&crash_file, b"").unwrap();
    let deaths_before = server.log_count("respawning in");
    server.signal(Signal::SIGTTIN);
    server.expect_log("Handling signal: ttin", 10.0);
    assert!(
        wait_until(deadline(20.0), || server.log_count("respawning in")
            > deaths_before),
        "no back-off after TTIN:\n{}",
        server.log()
    );
    let term = Instant::now();
    server.signal(Signal::SIGTERM);
    let status = server
        .wait_exit(deadline(30.0))
        .expect("the master exits after TERM");
    let took = term.elapsed();
    assert!(
        wait_until(deadline(5.0), || server.group().is_empty()),
        "processes left: {:?}",
        server.group()
    );
    eprintln!("TERM during the back-off: master exited in {took:?}");
    assert_eq!(status.code(), Some(0), "{}", server.log());
    // --graceful-timeout is 30 s: a stop that waited on the back-off or on
    // a booting worker would take that long, not a few hundred ms.
    assert!(
        took < Duration::from_secs(5),
        "TERM took {took:?}:\n{}",
        server.log()
    );
}
