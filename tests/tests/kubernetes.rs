//! Issue 14, item 8: the stop a Kubernetes pod sees, simulated against a
//! running server under load.
//!
//! Two pods, each a runicorn, behind a service: new connections go to the
//! endpoints listed at that moment (round robin, as kube-proxy), and a
//! kept-alive connection stays with its pod until the pod closes it (as
//! conntrack, or an ingress's upstream keep-alive, keep it). Pod A is
//! stopped as the kubelet and the control plane stop it:
//!
//! 1. t = 0: the pod is terminating (its readiness no longer counts); the
//!    endpoints controller removes it from the service, which reaches the
//!    routing only after a delay;
//! 2. the preStop hook sleeps, then the kubelet sends SIGTERM to the
//!    container's main process (runicorn's master);
//! 3. at `terminationGracePeriodSeconds` after t = 0 (the preStop sleep
//!    counts), SIGKILL to whatever is left.
//!
//! With the preStop sleep longer than the endpoint delay and the grace
//! period longer than the sleep plus `--graceful-timeout`, no request
//! fails and none is retried, under every worker class; the master exits 0
//! by itself, long before SIGKILL. Without the sleep, the connections the
//! service still sends to the pod after SIGTERM are refused: the reason
//! for the sleep (docs/operations.md, "Kubernetes").

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::killpg;
use nix::unistd::Pid;
use runicorn_tests::client::Addr;
use runicorn_tests::{deadline, Class, Conn, LoadReport, Reuse, Server, Signal};

/// The endpoints of the service, as the routing sees them.
struct Service {
    endpoints: Mutex<Vec<Addr>>,
    next: AtomicUsize,
}

impl Service {
    /// The endpoint a new connection goes to.
    fn pick(&self) -> Addr {
        let endpoints = self.endpoints.lock().expect("endpoints lock");
        let at = self.next.fetch_add(1, Ordering::Relaxed) % endpoints.len();
        endpoints[at].clone()
    }

    fn remove(&self, addr: &Addr) {
        self.endpoints
            .lock()
            .expect("endpoints lock")
            .retain(|each| each != addr);
    }
}

/// Clients of the service: `kept` threads on kept-alive connections and
/// `fresh` threads on a new connection per request, each request a short
/// sleep of the app (`builtin:sleep`); one kept-alive thread sends a
/// 1-second request every time, so requests are in flight at SIGTERM.
struct Clients {
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<LoadReport>>,
    handles: Vec<JoinHandle<()>>,
}

impl Clients {
    fn start(service: &Arc<Service>, kept: usize, fresh: usize) -> Clients {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(LoadReport::default()));
        let handles = (0..kept + fresh)
            .map(|index| {
                let (stop, report, service) = (stop.clone(), report.clone(), service.clone());
                let keep_alive = index < kept;
                let path = if index == 0 { "/?ms=1000" } else { "/?ms=20" };
                thread::spawn(move || {
                    let mut conn: Option<Conn> = None;
                    while !stop.load(Ordering::Relaxed) {
                        let (outcome, retried) = request(&service, &mut conn, path);
                        if !keep_alive || !outcome.as_ref().is_ok_and(|response| !response.closes())
                        {
                            conn = None;
                        }
                        let mut report = report.lock().expect("report lock");
                        report.retried += usize::from(retried);
                        report.record(&outcome);
                    }
                })
            })
            .collect();
        Clients {
            stop,
            report,
            handles,
        }
    }

    fn ok(&self) -> usize {
        self.report.lock().expect("report lock").ok
    }

    /// Waits until `count` more requests succeeded.
    fn progress(&self, count: usize) {
        let from = self.ok();
        assert!(
            runicorn_tests::wait_until(deadline(30.0), || self.ok() >= from + count),
            "no progress: {:?}",
            self.report.lock().expect("report lock")
        );
    }

    fn stop(mut self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        for handle in self.handles.drain(..) {
            handle.join().expect("client thread");
        }
        self.report.lock().expect("report lock").clone()
    }
}

/// One request: on the kept connection if there is one (a request that
/// gets nothing back on it is sent again on a new connection, and
/// counted as retried), else on a new connection to the endpoint the
/// service picks.
fn request(
    service: &Service,
    conn: &mut Option<Conn>,
    path: &str,
) -> (io::Result<runicorn_tests::Response>, bool) {
    let mut retried = false;
    if let Some(open) = conn.as_mut() {
        match open.get_reused(path) {
            Reuse::Answered(outcome) => return (outcome, false),
            Reuse::Unanswered(_) => retried = true,
        }
    }
    let outcome = Conn::connect(&service.pick()).and_then(|mut fresh| {
        let response = fresh.get(path);
        *conn = Some(fresh);
        response
    });
    (outcome, retried)
}

/// The numbers of one simulated stop, in seconds.
struct Stop {
    /// From termination to the service no longer routing new connections
    /// to the pod.
    endpoint_delay: f64,
    /// The preStop hook's sleep.
    pre_stop: f64,
    /// runicorn's `--graceful-timeout`.
    graceful_timeout: u64,
    /// `terminationGracePeriodSeconds`.
    grace_period: f64,
}

/// What a simulated stop gave.
struct Outcome {
    report: LoadReport,
    /// How the pod's master ended: its exit code, `None` when the kubelet
    /// had to SIGKILL it.
    exit: Option<i32>,
    /// From SIGTERM to the master's exit (or SIGKILL).
    term_to_exit: Duration,
}

fn pod(class: Class, stop: &Stop) -> Server {
    let graceful = stop.graceful_timeout.to_string();
    let mut args = vec!["-w", "2", "--graceful-timeout", &graceful];
    if class == Class::Gthread {
        args.extend_from_slice(&["--threads", "4"]);
    }
    class.start(&args, "builtin:sleep")
}

/// Stops pod A as Kubernetes does while clients use the service.
fn simulate(class: Class, stop: &Stop) -> Outcome {
    let mut stopped = pod(class, stop);
    let other = pod(class, stop);
    stopped.wait_workers(2, 20.0);
    other.wait_workers(2, 20.0);
    let a = stopped.addr().clone();
    let service = Arc::new(Service {
        endpoints: Mutex::new(vec![a.clone(), other.addr().clone()]),
        next: AtomicUsize::new(0),
    });
    let clients = Clients::start(&service, 4, 2);
    clients.progress(100);

    // t = 0: terminating. The endpoints controller's removal reaches the
    // routing after the delay.
    let start = Instant::now();
    let controller = {
        let (service, a) = (service.clone(), a.clone());
        let delay = Duration::from_secs_f64(stop.endpoint_delay);
        thread::spawn(move || {
            thread::sleep(delay);
            service.remove(&a);
        })
    };
    // Two 3-second requests the service sent to the pod as termination
    // began: still running at SIGTERM, they must be answered.
    let in_flight: Vec<_> = (0..2)
        .map(|_| {
            let a = a.clone();
            thread::spawn(move || {
                let mut conn = Conn::connect(&a)?;
                conn.get("/?ms=3000")
            })
        })
        .collect();
    // The preStop hook: a sleep, as `lifecycle.preStop.sleep` is.
    thread::sleep(Duration::from_secs_f64(stop.pre_stop));
    let term = Instant::now();
    stopped.signal(Signal::SIGTERM);
    // The kubelet: SIGKILL at the end of the grace period, counted from
    // t = 0.
    let grace_end = runicorn_tests::Deadline(start + Duration::from_secs_f64(stop.grace_period));
    let exit = match stopped.wait_exit(grace_end) {
        Some(status) => Some(status.code().unwrap_or(-1)),
        None => {
            let _ = killpg(Pid::from_raw(stopped.pid() as i32), Signal::SIGKILL);
            None
        }
    };
    let term_to_exit = term.elapsed();
    controller.join().expect("the endpoints controller");
    let mut long = LoadReport::default();
    for handle in in_flight {
        long.record(&handle.join().expect("an in-flight client"));
    }
    // The other pod carries the service on.
    clients.progress(100);
    let mut report = clients.stop();
    report.merge(long);
    eprintln!(
        "FIGURES kubernetes {} preStop {}s endpoints {}s graceful {}s grace {}s: sent {} failed {} retried {}, {} after SIGTERM {:.2}s",
        class.name(),
        stop.pre_stop,
        stop.endpoint_delay,
        stop.graceful_timeout,
        stop.grace_period,
        report.total(),
        report.failed,
        report.retried,
        match exit {
            Some(code) => format!("master exit {code}"),
            None => "SIGKILL".to_owned(),
        },
        term_to_exit.as_secs_f64()
    );
    Outcome {
        report,
        exit,
        term_to_exit,
    }
}

/// preStop sleep above the endpoint delay, grace period above the sleep
/// plus `--graceful-timeout`: nothing fails, nothing is retried, and the
/// master exits 0 by itself.
fn stop_loses_nothing(class: Class) {
    let stop = Stop {
        endpoint_delay: 1.0,
        pre_stop: 2.0,
        graceful_timeout: 5,
        grace_period: 9.0,
    };
    let outcome = simulate(class, &stop);
    assert_eq!(outcome.exit, Some(0), "the master was killed, or failed");
    assert!(outcome.term_to_exit < Duration::from_secs(stop.graceful_timeout + 1));
    assert_eq!(
        (outcome.report.failed, outcome.report.retried),
        (0, 0),
        "{:?}",
        outcome.report
    );
}

/// Without the preStop sleep, SIGTERM comes while the service still sends
/// new connections to the pod: its listener is closed, so they are
/// refused (the clients see errors; a load balancer would retry them
/// elsewhere or answer 502). This is why the sleep is there.
#[test]
fn without_the_pre_stop_sleep_new_connections_are_refused() {
    let stop = Stop {
        endpoint_delay: 1.0,
        pre_stop: 0.0,
        graceful_timeout: 5,
        grace_period: 9.0,
    };
    let outcome = simulate(Class::Gthread, &stop);
    assert_eq!(outcome.exit, Some(0));
    assert!(outcome.report.failed > 0, "{:?}", outcome.report);
    assert!(
        outcome
            .report
            .errors
            .iter()
            .all(|error| error.contains("Connection refused")),
        "{:?}",
        outcome.report
    );
}

runicorn_tests::class_matrix![stop_loses_nothing];
