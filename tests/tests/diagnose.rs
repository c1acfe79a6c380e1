//! Diagnoses and limits, under every worker class where a request is
//! involved (`runicorn_tests::class_matrix!`): a worker past
//! `--max-worker-memory` retires gracefully and is replaced, with no
//! request lost; a worker killed by a signal the master did not send is
//! named with its last RSS next to the cgroup's OOM counter; a request
//! past `--timeout` is named on every class, and `WORKER TIMEOUT` says
//! what to do.

use runicorn_tests::{deadline, get, python, wait_until, Class, Signal};

runicorn_tests::class_matrix![
    memory_recycles_the_worker,
    a_foreign_kill_names_the_last_rss,
    a_request_past_the_timeout_is_named,
];

/// The megabytes `Worker (pid: N) uses 70 MiB, ...` names.
fn mib_named(line: &str) -> u64 {
    let after = line.split(" uses ").nth(1).expect("the line names the RSS");
    let number = after.split(' ').next().unwrap();
    assert!(
        after[number.len()..].starts_with(" MiB"),
        "an RSS in MiB: {line}"
    );
    number.parse().expect("a whole number of MiB")
}

/// One worker of `examples/python/leak.py`, which keeps 16 MiB per request
/// and answers 1.5 s later, under `--max-worker-memory 96`: within a few
/// requests the master sees it past its threshold (86.4-96 MiB) while a
/// request is in flight, logs its RSS, and retires it; that request and
/// every other one is answered 200, and a new worker serves the next.
fn memory_recycles_the_worker(class: Class) {
    let server = python::start(
        class,
        &[
            "-w",
            "1",
            "--max-worker-memory",
            "96",
            "--graceful-timeout",
            "20",
        ],
        "leak:app",
    );
    let first = server.wait_workers(1, 20.0)[0];
    let retired = format!("Worker (pid: {first}) uses ");
    let mut answers = Vec::new();
    for _ in 0..20 {
        let response = get(server.addr(), "/?mb=16&ms=1500")
            .unwrap_or_else(|err| panic!("request failed: {err}\n{}", server.log()));
        assert_eq!(response.status, 200, "{}", server.log());
        answers.push(response.text());
        if server.log_count(&retired) > 0 {
            break;
        }
    }
    let line = server.expect_log(&retired, 10.0);
    assert!(
        line.contains("over --max-worker-memory 96 MiB") && line.contains("retiring it gracefully"),
        "{line}"
    );
    let named = mib_named(&line);
    assert!(
        (86..=400).contains(&named),
        "past its threshold, and not wildly: {line}"
    );
    // Every answer so far came from the first worker, each one holding more.
    let held: Vec<u64> = answers
        .iter()
        .map(|text| {
            let (pid, mib) = text.trim().split_once(' ').expect("PID HELD_MIB");
            assert_eq!(pid, first.to_string(), "{}", server.log());
            mib.parse().unwrap()
        })
        .collect();
    assert!(held.windows(2).all(|pair| pair[1] > pair[0]), "{held:?}");
    assert!(
        wait_until(deadline(30.0), || {
            let now = server.worker_pids();
            now.len() == 1 && now[0] != first
        }),
        "the retired worker was not replaced:\n{}",
        server.log()
    );
    let next = get(server.addr(), "/?mb=1").unwrap();
    assert_eq!(next.status, 200);
    assert_ne!(
        next.text().split(' ').next().unwrap(),
        first.to_string(),
        "served by the new worker"
    );
    assert!(
        !server.log().contains("SIGKILL"),
        "retired gracefully, not killed:\n{}",
        server.log()
    );
}

/// SIGKILL from outside (as the OOM killer sends it): the master's line
/// says it did not send it, and names the worker's last RSS as the master
/// sampled it, next to what the cgroup's OOM counter says.
fn a_foreign_kill_names_the_last_rss(class: Class) {
    let server = class.start(&["-w", "1"], "builtin:hello");
    let victim = server.wait_workers(1, 20.0)[0];
    assert_eq!(get(server.addr(), "/").unwrap().status, 200);
    // The master samples every second, and nothing outside it shows the
    // sample: let two samples pass.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    runicorn_tests::proc::signal(victim, Signal::SIGKILL);
    let line = server.expect_log(&format!("Worker (pid:{victim}) was sent SIGKILL!"), 15.0);
    assert!(line.contains("The master did not send it"), "{line}");
    let rss = line
        .split("its last RSS was ")
        .nth(1)
        .unwrap_or_else(|| panic!("no last RSS: {line}"));
    let (number, unit) = {
        let mut words = rss.split([' ', ';']);
        (words.next().unwrap(), words.next().unwrap())
    };
    let mib: f64 = number.parse().unwrap_or_else(|_| panic!("{line}"));
    let mib = match unit {
        "MiB" => mib,
        "GiB" => mib * 1024.0,
        "KiB" => mib / 1024.0,
        _ => panic!("unit {unit}: {line}"),
    };
    assert!(
        (0.5..4096.0).contains(&mib),
        "a plausible RSS for a hello worker: {line}"
    );
    assert!(
        line.contains("oom_kill") || line.contains("OOM killer"),
        "{line}"
    );
    assert!(
        wait_until(deadline(15.0), || {
            let now = server.worker_pids();
            now.len() == 1 && now[0] != victim
        }),
        "{}",
        server.log()
    );
}

/// "an async worker", "a green worker".
fn article(class: Class) -> &'static str {
    if class == Class::Async {
        "an"
    } else {
        "a"
    }
}

/// The number before `unit` right after `marker` in `line`.
fn number_after(line: &str, marker: &str, unit: &str) -> f64 {
    let rest = line
        .split(marker)
        .nth(1)
        .unwrap_or_else(|| panic!("no {marker:?} in {line}"));
    let number = rest
        .split(unit)
        .next()
        .unwrap_or_else(|| panic!("no {unit:?} after {marker:?} in {line}"));
    number
        .parse()
        .unwrap_or_else(|_| panic!("{number:?} is not a number: {line}"))
}

/// A 6 s request under `-t 2`. Under sync the heartbeat stops with it:
/// the master kills the worker, its `WORKER TIMEOUT` line names the class
/// and says what to do (the slow call first, then a class that waits
/// without holding the worker), and the client gets the 500. Under the
/// other classes the request runs to its end and is answered 200, and it
/// is named twice: by the master once, as it passes the limit (the class,
/// the request line, the client, its age, and what the class does about
/// it), and by the worker as it ends (with how long it took).
fn a_request_past_the_timeout_is_named(class: Class) {
    let server = class.start(&["-w", "1", "-t", "2"], "builtin:sleep");
    let worker = server.wait_workers(1, 20.0)[0];
    let addr = server.addr().clone();
    let client = std::thread::spawn(move || get(&addr, "/?ms=6000"));
    let request = "\"GET /?ms=6000 HTTP/1.1\"";
    if class == Class::Sync {
        let line = server.expect_log("WORKER TIMEOUT", 20.0);
        assert!(line.contains(&format!("handling {request}")), "{line}");
        assert!(
            line.contains("on a sync worker: find the slow call in that request first"),
            "{line}"
        );
        assert!(
            line.contains("raise --timeout only if the request is meant to be slow")
                && line.contains("use -k gthread --threads N or -k async"),
            "{line}"
        );
        let response = client.join().unwrap().expect("the killed worker's client");
        assert_eq!(response.status, 500, "{}", server.log());
        assert_eq!(
            server.log_count("Request past --timeout"),
            0,
            "named once, by WORKER TIMEOUT:\n{}",
            server.log()
        );
        return;
    }
    let past = server.expect_log("Request past --timeout 2s", 20.0);
    let named = format!(
        "on {} {} worker (pid: {worker}): {request} from 127.0.0.1:",
        article(class),
        class.name()
    );
    assert!(past.contains(&named), "{past}");
    let age = number_after(&past, "running for ", "s;");
    assert!(
        (2.0..6.0).contains(&age),
        "named as it passed the limit: {past}"
    );
    let client_addr = past
        .split(" from ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .to_owned();
    let response = client
        .join()
        .unwrap()
        .expect("the long request is answered");
    assert_eq!(response.status, 200, "{}", server.log());
    let ended = server.expect_log("ended after", 10.0);
    let ending = format!(
        "Request {request} from {client_addr} on {} {} worker (pid: {worker}) ended after ",
        article(class),
        class.name()
    );
    assert!(ended.contains(&ending), "{ended}");
    assert!(ended.contains("past --timeout 2s"), "{ended}");
    assert!(number_after(&ended, "ended after ", "s,") >= 6.0, "{ended}");
    assert_eq!(
        server.log_count("Request past --timeout"),
        1,
        "named once as it passed the limit:\n{}",
        server.log()
    );
    match class {
        Class::Gthread => {
            let policy = "the gthread worker stops accepting and exits once the request ends";
            assert!(past.contains(policy), "{past}");
            let retire = server.expect_log("WORKER TIMEOUT", 1.0);
            assert!(retire.contains("on a gthread worker"), "{retire}");
        }
        _ => {
            let policy = format!("the {} worker only reports it", class.name());
            assert!(past.contains(&policy), "{past}");
            assert_eq!(
                server.log_count("WORKER TIMEOUT"),
                0,
                "not killed:\n{}",
                server.log()
            );
            assert_eq!(server.worker_pids(), vec![worker], "{}", server.log());
        }
    }
}
