//! In-process round trips through the ABI: a Rust app exported with the
//! macros, served through `DylibApp` as the host would serve a library,
//! with an in-memory `Call` standing in for a worker class.

use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::guest::FactoryArgs;
use super::host_services::{lend_call, HOST_TABLE};
use super::types::{RcErrorBuf, RcHostTable, RC_OK};
use super::worker_class::{
    LibraryWorkerClass, LoadedWorkerClass, WorkerContext, WorkerHost, WorkerParams, RC_STOP_NONE,
};
use super::DylibApp;
use crate::hooks::{
    with_request_hooks, ArbiterInfo, HookEvent, HookName, Hooks, LoadedHook, WorkerInfoView,
};
use crate::{
    App, AppError, Application, Call, Header, Host, LogLevel, RequestHead, Upstream, WorkerInfo,
};

#[derive(Default)]
struct FakeHost {
    lines: Mutex<Vec<String>>,
    slept: Mutex<Duration>,
}

struct EchoUpstream {
    pending: Vec<u8>,
}

impl Upstream for EchoUpstream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let count = self.pending.len().min(buf.len());
        buf[..count].copy_from_slice(&self.pending[..count]);
        self.pending.drain(..count);
        Ok(count)
    }
    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        self.pending.extend_from_slice(data);
        Ok(())
    }
}

impl Host for FakeHost {
    fn sleep(&self, duration: Duration) {
        *self.slept.lock().unwrap() += duration;
    }
    fn connect(&self, addr: &str) -> io::Result<Box<dyn Upstream>> {
        if addr == "refused:1" {
            return Err(io::Error::from_raw_os_error(111));
        }
        Ok(Box::new(EchoUpstream {
            pending: Vec::new(),
        }))
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.lines
            .lock()
            .unwrap()
            .push(format!("{level:?} {message}"));
    }
}

struct FakeCall {
    head: RequestHead,
    body: io::Cursor<Vec<u8>>,
    trailers: Vec<Header>,
    status: Option<u16>,
    headers: Vec<(String, Vec<u8>)>,
    out: Vec<u8>,
    host: FakeHost,
    /// `(url_scheme, client_addr, server_addr)`, else the trait's defaults.
    origin: Option<(String, String, String)>,
}

impl FakeCall {
    fn new(method: &str, target: &str, body: &[u8]) -> Self {
        let head = RequestHead {
            method: method.to_owned(),
            target: target.to_owned(),
            headers: vec![Header {
                name: "X-Test".to_owned(),
                value: b"yes".to_vec(),
            }],
            ..RequestHead::default()
        };
        FakeCall {
            head,
            body: io::Cursor::new(body.to_vec()),
            trailers: vec![Header {
                name: "X-Trailer".to_owned(),
                value: b"t".to_vec(),
            }],
            status: None,
            headers: Vec::new(),
            out: Vec::new(),
            host: FakeHost::default(),
            origin: None,
        }
    }

    /// A call behind a trusted proxy, on a known listener.
    fn forwarded(target: &str) -> Self {
        let mut call = FakeCall::new("GET", target, b"");
        call.origin = Some((
            "https".to_owned(),
            "203.0.113.7".to_owned(),
            "127.0.0.1:8000".to_owned(),
        ));
        call
    }

    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_slice())
    }
}

impl Call for FakeCall {
    fn head(&self) -> &RequestHead {
        &self.head
    }
    fn peer(&self) -> &str {
        "127.0.0.1:4242"
    }
    fn url_scheme(&self) -> &str {
        self.origin.as_ref().map_or("http", |origin| &origin.0)
    }
    fn client_addr(&self) -> &str {
        self.origin.as_ref().map_or(self.peer(), |origin| &origin.1)
    }
    fn server_addr(&self) -> &str {
        self.origin.as_ref().map_or("", |origin| &origin.2)
    }
    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.body.read(buf)
    }
    fn trailers(&self) -> &[Header] {
        &self.trailers
    }
    fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()> {
        if self.status.is_some() {
            return Err(io::Error::other("response already started"));
        }
        self.status = Some(status);
        self.headers = headers
            .iter()
            .map(|(name, value)| ((*name).to_owned(), value.to_vec()))
            .collect();
        Ok(())
    }
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.out.extend_from_slice(data);
        Ok(())
    }
    fn host(&self) -> &dyn Host {
        &self.host
    }
}

/// The app on the library side of the boundary.
struct TestApp {
    greeting: String,
}

impl App for TestApp {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        match call.head().path() {
            "/echo" => {
                let mut body = Vec::new();
                let mut buf = [0u8; 3];
                loop {
                    let read = call.read_body(&mut buf)?;
                    if read == 0 {
                        break;
                    }
                    body.extend_from_slice(&buf[..read]);
                }
                let trailers = call.trailers().len().to_string();
                let method = call.head().method.clone();
                let test = call.head().header("x-test").unwrap_or_default().to_vec();
                let peer = call.peer().to_owned();
                call.start_response(
                    201,
                    &[
                        ("X-Method", method.as_bytes()),
                        ("X-Trailers", trailers.as_bytes()),
                        ("X-Seen", &test),
                        ("X-Peer", peer.as_bytes()),
                    ],
                )?;
                call.write(&body)?;
                Ok(())
            }
            "/host" => {
                call.host().sleep(Duration::from_millis(7));
                call.host().log(LogLevel::Warning, "from the app");
                let mut upstream = call.host().connect("upstream:9")?;
                upstream.write_all(b"ping")?;
                let mut buf = [0u8; 16];
                let read = upstream.read(&mut buf)?;
                let refused = call
                    .host()
                    .connect("refused:1")
                    .err()
                    .and_then(|err| err.raw_os_error());
                call.start_response(
                    200,
                    &[("X-Refused", refused.unwrap_or(0).to_string().as_bytes())],
                )?;
                call.write(&buf[..read])?;
                call.write(self.greeting.as_bytes())?;
                Ok(())
            }
            "/slow" => {
                let now = IN_SLOW.fetch_add(1, Ordering::AcqRel) + 1;
                PEAK_SLOW.fetch_max(now, Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(20));
                IN_SLOW.fetch_sub(1, Ordering::AcqRel);
                call.start_response(200, &[])?;
                Ok(())
            }
            "/origin" => {
                let scheme = call.url_scheme().to_owned();
                let client = call.client_addr().to_owned();
                let server = call.server_addr().to_owned();
                let peer = call.peer().to_owned();
                call.start_response(
                    200,
                    &[
                        ("X-Scheme", scheme.as_bytes()),
                        ("X-Client", client.as_bytes()),
                        ("X-Server", server.as_bytes()),
                        ("X-Peer", peer.as_bytes()),
                    ],
                )?;
                Ok(())
            }
            "/panic" => panic!("the handler panicked on purpose"),
            "/error" => Err(AppError::new("a plain failure")),
            "/bad-header" => {
                let refused = call.start_response(200, &[("Bad Name\n", b"x")]).is_err();
                Err(AppError::new(format!("refused={refused}")))
            }
            _ => {
                call.start_response(404, &[])?;
                Ok(())
            }
        }
    }

    fn init_worker(&self, info: &WorkerInfo) -> Result<(), AppError> {
        match info.age {
            98 => Err(AppError::new("cannot reach the database")),
            99 => panic!("init panicked on purpose"),
            _ => Ok(()),
        }
    }
}

static IN_SLOW: AtomicUsize = AtomicUsize::new(0);
static PEAK_SLOW: AtomicUsize = AtomicUsize::new(0);

crate::export_app!(
    abi_test_app,
    TestApp {
        greeting: "hello".to_owned()
    }
);

fn make_app(args: &FactoryArgs) -> Result<TestApp, String> {
    match args.get("greeting") {
        Some("fail") => Err("greeting may not be 'fail'".to_owned()),
        Some(greeting) => Ok(TestApp {
            greeting: greeting.to_owned(),
        }),
        None => Ok(TestApp {
            greeting: "default".to_owned(),
        }),
    }
}

crate::export_factory!(abi_test_factory, make_app);

fn loaded() -> DylibApp {
    DylibApp::new(&abi_test_app)
}

#[test]
fn a_request_crosses_the_boundary_and_back() {
    let app = loaded();
    let mut call = FakeCall::new("PUT", "/echo?x=1", b"hello, body");
    app.call(&mut call).unwrap();
    assert_eq!(call.status, Some(201));
    assert_eq!(call.out, b"hello, body");
    assert_eq!(call.header("X-Method"), Some(&b"PUT"[..]));
    assert_eq!(call.header("X-Trailers"), Some(&b"1"[..]));
    assert_eq!(call.header("X-Seen"), Some(&b"yes"[..]));
    assert_eq!(call.header("X-Peer"), Some(&b"127.0.0.1:4242"[..]));
}

/// The `(X-Scheme, X-Client, X-Server, X-Peer)` an `/origin` call answered.
fn origin_seen(call: &FakeCall) -> [&[u8]; 4] {
    ["X-Scheme", "X-Client", "X-Server", "X-Peer"].map(|name| call.header(name).unwrap())
}

#[test]
fn the_connection_facts_cross_the_boundary() {
    let app = loaded();
    let mut call = FakeCall::forwarded("/origin");
    app.call(&mut call).unwrap();
    assert_eq!(
        origin_seen(&call),
        [
            &b"https"[..],
            b"203.0.113.7",
            b"127.0.0.1:8000",
            b"127.0.0.1:4242"
        ]
    );
    let mut plain = FakeCall::new("GET", "/origin", b"");
    app.call(&mut plain).unwrap();
    assert_eq!(
        origin_seen(&plain),
        [&b"http"[..], b"127.0.0.1:4242", b"", b"127.0.0.1:4242"],
        "a Call that does not know them gives the trait's defaults"
    );
}

#[test]
fn a_host_table_without_connection_info_gives_the_defaults() {
    // A library worker class built before the entry was appended hands the
    // host a shorter table: the guest must not call past its end.
    let short = RcHostTable {
        struct_size: std::mem::offset_of!(RcHostTable, connection_info),
        ..HOST_TABLE
    };
    assert!(!RcHostTable::has_connection_info(short.struct_size));
    assert!(RcHostTable::has_connection_info(HOST_TABLE.struct_size));
    let mut call = FakeCall::forwarded("/origin");
    let mut error = [0u8; 256];
    let status = lend_call(&mut call, None, |request, _table, ctx| {
        let mut buf = RcErrorBuf {
            ptr: error.as_mut_ptr(),
            cap: error.len(),
            len: 0,
        };
        let handle = abi_test_app.handle.unwrap();
        // SAFETY: the request, the table and the context are valid for
        // this call, as a host would pass them.
        unsafe { handle(abi_test_app.data, request, &short, ctx, &mut buf) }
    });
    assert_eq!(status, RC_OK);
    assert_eq!(
        origin_seen(&call),
        [&b"http"[..], b"127.0.0.1:4242", b"", b"127.0.0.1:4242"]
    );
}

#[test]
fn host_services_forward_to_the_worker_classes_host() {
    let app = loaded();
    let mut call = FakeCall::new("GET", "/host", b"");
    app.call(&mut call).unwrap();
    assert_eq!(call.out, b"pinghello");
    assert_eq!(call.header("X-Refused"), Some(&b"111"[..]));
    assert_eq!(*call.host.slept.lock().unwrap(), Duration::from_millis(7));
    assert_eq!(
        call.host.lines.lock().unwrap().as_slice(),
        ["Warning from the app"]
    );
}

#[test]
fn a_panicking_handler_is_an_error_marked_panicked() {
    let app = loaded();
    let mut call = FakeCall::new("GET", "/panic", b"");
    let err = app.call(&mut call).unwrap_err();
    assert!(err.panicked);
    assert!(
        err.message.contains("the handler panicked on purpose"),
        "{}",
        err.message
    );
    assert_eq!(call.status, None);
}

#[test]
fn errors_carry_their_message_and_bad_headers_are_refused() {
    let app = loaded();
    let err = app
        .call(&mut FakeCall::new("GET", "/error", b""))
        .unwrap_err();
    assert!(!err.panicked);
    assert!(err.message.contains("a plain failure"), "{}", err.message);
    let err = app
        .call(&mut FakeCall::new("GET", "/bad-header", b""))
        .unwrap_err();
    // The fake refuses nothing, so the name reaches it; the host's own
    // drivers refuse it. Either way the app sees a result, not a crash.
    assert!(err.message.contains("refused="), "{}", err.message);
}

#[test]
fn init_worker_failures_and_panics_are_reported() {
    let app = loaded();
    let info = |age| WorkerInfo {
        pid: 1,
        worker_class: "sync".to_owned(),
        age,
    };
    app.init_worker(&info(1)).unwrap();
    let err = loaded().init_worker(&info(98)).unwrap_err();
    assert!(
        !err.panicked && err.message.contains("cannot reach the database"),
        "{}",
        err.message
    );
    let err = loaded().init_worker(&info(99)).unwrap_err();
    assert!(
        err.panicked && err.message.contains("init panicked on purpose"),
        "{}",
        err.message
    );
}

#[test]
fn factories_take_string_arguments() {
    let args = vec![("greeting".to_owned(), "bonjour".to_owned())];
    let table = crate::abi::library::call_factory(
        "t:abi_test_factory(greeting=bonjour)",
        &abi_test_factory,
        &args,
    )
    .unwrap();
    let mut call = FakeCall::new("GET", "/host", b"");
    DylibApp::new(table).call(&mut call).unwrap();
    assert_eq!(call.out, b"pingbonjour");
    let args = vec![("greeting".to_owned(), "fail".to_owned())];
    let err = crate::abi::library::call_factory("t:f(greeting=fail)", &abi_test_factory, &args)
        .unwrap_err();
    assert!(
        err.to_string().contains("greeting may not be 'fail'"),
        "{err}"
    );
    assert!(
        !matches!(err, crate::LoadError::Boot(_)),
        "a load error (exit 4): {err}"
    );
}

static HOOK_EVENTS: Mutex<Vec<HookEvent>> = Mutex::new(Vec::new());

fn record_hook(event: &HookEvent) -> Result<(), String> {
    HOOK_EVENTS.lock().unwrap().push(event.clone());
    if event.hook == HookName::OnExit {
        return Err("on_exit refuses".to_owned());
    }
    Ok(())
}

crate::export_hook!(abi_test_hook, record_hook);

#[test]
fn hooks_receive_their_views() {
    let hook = LoadedHook::from_table(HookName::ChildExit, "t:abi_test_hook", &abi_test_hook);
    let mut event = HookEvent::new(HookName::ChildExit);
    event.arbiter = Some(ArbiterInfo {
        pid: 10,
        num_workers: 3,
        worker_class: "sync".to_owned(),
        app: "x:app".to_owned(),
    });
    event.worker = Some(WorkerInfoView {
        pid: 11,
        age: 4,
        exit_status: Some(3),
    });
    event.old_value = Some(2);
    event.new_value = 3;
    hook.call(&event).unwrap();
    let mut request_event = HookEvent::new(HookName::PreRequest);
    request_event.request = Some(FakeCall::new("GET", "/r", b"").head);
    hook.call(&request_event).unwrap();
    let err = hook.call(&HookEvent::new(HookName::OnExit)).unwrap_err();
    assert!(err.message.contains("on_exit refuses"), "{}", err.message);
    let events = HOOK_EVENTS.lock().unwrap();
    assert_eq!(events[0], event);
    assert_eq!(events[1], request_event);
}

/// A worker class on the library side that serves two in-memory requests.
struct TestWorker;

impl LibraryWorkerClass for TestWorker {
    fn run(&self, worker: &WorkerContext<'_>) -> i32 {
        assert_eq!(worker.listener_fds(), &[7, 8]);
        assert_eq!(worker.should_stop(), RC_STOP_NONE);
        worker.notify();
        let mut call = FakeCall::new("POST", "/echo", b"abc");
        worker.serve(&mut call).unwrap();
        assert_eq!((call.status, call.out.as_slice()), (Some(201), &b"abc"[..]));
        let mut failing = FakeCall::new("GET", "/error", b"");
        worker.serve(&mut failing).unwrap();
        assert_eq!(
            failing.status,
            Some(500),
            "the host answers 500 for an app that failed early"
        );
        let mut panicking = FakeCall::new("GET", "/panic", b"");
        let err = worker.serve(&mut panicking).unwrap_err();
        assert!(err.panicked);
        assert_eq!(panicking.status, Some(500));
        let mut forwarded = FakeCall::forwarded("/origin");
        worker.serve(&mut forwarded).unwrap();
        assert_eq!(
            origin_seen(&forwarded),
            [
                &b"https"[..],
                b"203.0.113.7",
                b"127.0.0.1:8000",
                b"127.0.0.1:4242"
            ],
            "a library worker class's calls carry the connection facts too"
        );
        worker.log(LogLevel::Info, "served four");
        42
    }
}

crate::export_worker_class!(abi_test_worker, "test-worker", || TestWorker);

#[derive(Default)]
struct FakeWorkerHost {
    beats: Mutex<u32>,
    done: Mutex<u32>,
    lines: Mutex<Vec<String>>,
    app: Option<Application>,
}

impl WorkerHost for FakeWorkerHost {
    fn notify(&self) {
        *self.beats.lock().unwrap() += 1;
    }
    fn should_stop(&self) -> u32 {
        RC_STOP_NONE
    }
    fn app(&self) -> &Application {
        self.app.as_ref().unwrap()
    }
    fn around_request(&self, request_line: &str, serve: &mut dyn FnMut()) {
        assert!(
            request_line.starts_with("GET /") || request_line.starts_with("POST /"),
            "{request_line}"
        );
        serve();
        *self.done.lock().unwrap() += 1;
    }
    fn log(&self, level: LogLevel, message: &str) {
        self.lines
            .lock()
            .unwrap()
            .push(format!("{level:?} {message}"));
    }
}

#[test]
fn a_library_worker_class_serves_the_hosts_app() {
    let class = LoadedWorkerClass::new(&abi_test_worker);
    assert_eq!(class.name(), "test-worker");
    let host = FakeWorkerHost {
        app: Some(Application {
            name: "t:app".to_owned(),
            sync: Arc::new(loaded()),
            asynch: None,
        }),
        ..FakeWorkerHost::default()
    };
    let params = WorkerParams {
        listener_fds: vec![7, 8],
        ..WorkerParams::default()
    };
    let code = class.run(&params, &host);
    assert_eq!(code, 42, "log: {:?}", host.lines.lock().unwrap());
    assert_eq!(*host.beats.lock().unwrap(), 1);
    assert_eq!(*host.done.lock().unwrap(), 4);
    assert!(host
        .lines
        .lock()
        .unwrap()
        .iter()
        .any(|line| line == "Info served four"));
}

static REQUEST_EVENTS: Mutex<Vec<(HookName, String, u16, u64)>> = Mutex::new(Vec::new());

fn record_request(event: &HookEvent) -> Result<(), String> {
    let path = event
        .request
        .as_ref()
        .map(|head| head.target.clone())
        .unwrap_or_default();
    let age = event.worker.map_or(0, |worker| worker.age);
    REQUEST_EVENTS
        .lock()
        .unwrap()
        .push((event.hook, path, event.status, age));
    Ok(())
}

crate::export_hook!(abi_test_request_hook, record_request);

#[test]
fn request_hooks_wrap_the_app_for_every_worker_class() {
    let hooks = Hooks::from_loaded(vec![
        LoadedHook::from_table(HookName::PreRequest, "t:pre", &abi_test_request_hook),
        LoadedHook::from_table(HookName::PostRequest, "t:post", &abi_test_request_hook),
    ]);
    let app = Application {
        name: "t:app".to_owned(),
        sync: Arc::new(loaded()),
        asynch: None,
    };
    let app = with_request_hooks(app, Arc::new(hooks));
    app.sync
        .init_worker(&WorkerInfo {
            pid: 1,
            worker_class: "sync".to_owned(),
            age: 5,
        })
        .unwrap();
    app.sync
        .call(&mut FakeCall::new("POST", "/echo", b"x"))
        .unwrap();
    let err = app
        .sync
        .call(&mut FakeCall::new("GET", "/panic", b""))
        .unwrap_err();
    assert!(err.panicked);
    let events = REQUEST_EVENTS.lock().unwrap().clone();
    assert_eq!(
        events,
        vec![
            (HookName::PreRequest, "/echo".to_owned(), 0, 5),
            (HookName::PostRequest, "/echo".to_owned(), 201, 5),
            (HookName::PreRequest, "/panic".to_owned(), 0, 5),
            (HookName::PostRequest, "/panic".to_owned(), 500, 5),
        ]
    );
    let plain = Application {
        name: "t:app".to_owned(),
        sync: Arc::new(loaded()),
        asynch: None,
    };
    let unchanged = with_request_hooks(plain.clone(), Arc::new(Hooks::default()));
    assert!(
        Arc::ptr_eq(&unchanged.sync, &plain.sync),
        "no request hooks: no wrapper"
    );
}

/// The same app declaring that it blocks its thread, as the Python plugin's
/// WSGI apps do.
static BLOCKING: OnceLock<&'static super::RcApp> = OnceLock::new();

#[test]
fn an_app_wrapped_for_its_request_hooks_still_blocks_its_thread() {
    let table = *BLOCKING.get_or_init(|| {
        let copy = super::RcApp {
            capabilities: super::types::RC_CAP_THREAD_SAFE | super::types::RC_CAP_BLOCKS_THREAD,
            ..super::guest::app_table::<AbiTestSource>(std::ptr::null())
        };
        Box::leak(Box::new(copy))
    });
    let hooks = Hooks::from_loaded(vec![LoadedHook::from_table(
        HookName::PreRequest,
        "t:pre",
        &abi_test_request_hook,
    )]);
    for (sync, blocks) in [
        (Arc::new(DylibApp::new(table)), true),
        (Arc::new(loaded()), false),
    ] {
        assert_eq!(sync.blocks_thread(), blocks);
        let app = Application {
            name: "t:app".to_owned(),
            sync,
            asynch: None,
        };
        let hooked = with_request_hooks(app, Arc::new(hooks.clone()));
        // The green class reads it to put the app on its blocking pool.
        assert_eq!(hooked.sync.blocks_thread(), blocks);
    }
}

/// The same app declared not thread-safe: its table without the capability.
static SINGLE_THREADED: OnceLock<&'static super::RcApp> = OnceLock::new();

#[test]
fn an_app_that_is_not_thread_safe_is_called_one_request_at_a_time() {
    let table = *SINGLE_THREADED.get_or_init(|| {
        let copy = super::RcApp {
            capabilities: 0,
            ..super::guest::app_table::<AbiTestSource>(std::ptr::null())
        };
        Box::leak(Box::new(copy))
    });
    let app = Arc::new(DylibApp::new(table));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let app = app.clone();
            std::thread::spawn(move || app.call(&mut FakeCall::new("GET", "/slow", b"")).unwrap())
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(PEAK_SLOW.load(Ordering::Acquire), 1);
}

struct AbiTestSource;

impl super::guest::AppSource for AbiTestSource {
    fn app(_data: *const std::ffi::c_void) -> &'static dyn App {
        static INSTANCE: OnceLock<TestApp> = OnceLock::new();
        INSTANCE.get_or_init(|| TestApp {
            greeting: "single".to_owned(),
        })
    }
}
