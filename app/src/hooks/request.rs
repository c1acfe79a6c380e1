//! `pre_request` and `post_request` for every worker class at once: the
//! loaded app is wrapped so that each request fires the hooks around the
//! app's own `call`, with the request head and the response status (500 when
//! the app failed before responding). Worker classes need no code for them.
//! A failing hook is logged and the request goes on, as in Gunicorn.

use std::sync::{Arc, OnceLock};

use super::{HookEvent, HookName, Hooks, WorkerInfoView};
use crate::watched::Watched;
use crate::{
    App, AppError, Application, AsyncApp, AsyncCall, BoxFuture, Call, Host, LogLevel, RequestHead,
    WorkerInfo,
};

/// Wrap `app` so that the configured `pre_request`/`post_request` hooks run
/// around each request; returns `app` unchanged when neither is configured.
pub fn with_request_hooks(app: Application, hooks: Arc<Hooks>) -> Application {
    if !hooks.has(HookName::PreRequest) && !hooks.has(HookName::PostRequest) {
        return app;
    }
    let age = Arc::new(OnceLock::new());
    let sync: Arc<dyn App> = Arc::new(HookedApp {
        inner: app.sync,
        hooks: hooks.clone(),
        age: age.clone(),
    });
    let asynch = app
        .asynch
        .map(|inner| Arc::new(HookedAsyncApp { inner, hooks, age }) as Arc<dyn AsyncApp>);
    Application {
        name: app.name,
        sync,
        asynch,
    }
}

fn event(hook: HookName, head: &RequestHead, age: &OnceLock<u64>, status: u16) -> HookEvent {
    let mut event = HookEvent::new(hook);
    event.worker = Some(WorkerInfoView {
        pid: std::process::id(),
        age: age.get().copied().unwrap_or(0),
        exit_status: None,
    });
    event.request = Some(head.clone());
    event.status = status;
    event
}

fn status_after(result: &Result<(), AppError>, started: Option<u16>) -> u16 {
    match (started, result) {
        (Some(status), _) => status,
        (None, Err(_)) => 500,
        // Returning without a response is a 500 too (see `App::call`).
        (None, Ok(())) => 500,
    }
}

struct HookedApp {
    inner: Arc<dyn App>,
    hooks: Arc<Hooks>,
    age: Arc<OnceLock<u64>>,
}

impl HookedApp {
    fn fire(&self, host: &dyn Host, event: &HookEvent) {
        if let Err(err) = self.hooks.fire(event) {
            host.log(
                LogLevel::Error,
                &format!("exception in {} hook: {}", event.hook, err.message),
            );
        }
    }
}

impl App for HookedApp {
    fn call(&self, call: &mut dyn Call) -> Result<(), AppError> {
        let head = call.head().clone();
        self.fire(
            call.host(),
            &event(HookName::PreRequest, &head, &self.age, 0),
        );
        let mut watched = Watched::new(call);
        let result = self.inner.call(&mut watched);
        let status = status_after(&result, watched.status);
        self.fire(
            watched.host(),
            &event(HookName::PostRequest, &head, &self.age, status),
        );
        result
    }

    fn init_worker(&self, info: &WorkerInfo) -> Result<(), AppError> {
        let _ = self.age.set(info.age);
        self.inner.init_worker(info)
    }

    fn shutdown_worker(&self) {
        self.inner.shutdown_worker();
    }

    // A Python app wrapped for its hooks still blocks its thread: the green
    // class must still run it on its pool.
    fn blocks_thread(&self) -> bool {
        self.inner.blocks_thread()
    }
}

struct HookedAsyncApp {
    inner: Arc<dyn AsyncApp>,
    hooks: Arc<Hooks>,
    age: Arc<OnceLock<u64>>,
}

impl HookedAsyncApp {
    fn fire(&self, event: &HookEvent) {
        if let Err(err) = self.hooks.fire(event) {
            // An async call has no host logger; stderr is the error log's
            // fallback in every worker.
            eprintln!("[ERROR] exception in {} hook: {}", event.hook, err.message);
        }
    }
}

impl AsyncApp for HookedAsyncApp {
    fn call<'a>(&'a self, call: &'a mut dyn AsyncCall) -> BoxFuture<'a, Result<(), AppError>> {
        Box::pin(async move {
            let head = call.head().clone();
            self.fire(&event(HookName::PreRequest, &head, &self.age, 0));
            let mut watched = Watched::new(call);
            let result = self.inner.call(&mut watched).await;
            let status = status_after(&result, watched.status);
            self.fire(&event(HookName::PostRequest, &head, &self.age, status));
            result
        })
    }
}
