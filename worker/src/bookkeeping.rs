//! [`ConnBookkeeping`]: the [`Shared`] bookkeeping of one connection's
//! requests, as the blocking driver (`http::Connection`, under sync,
//! gthread and green) calls it at each request's boundaries.

use runicorn_app::blocking::log_invalid_request;
use runicorn_http::{Bookkeeping, ConnState, ParseError, RequestDone};

use crate::shared::Shared;
use crate::shared::Started;

/// One connection's requests, kept by the worker.
#[derive(Debug)]
pub struct ConnBookkeeping<'s> {
    shared: &'s Shared,
    in_flight: Option<Started>,
    answered: u64,
}

impl<'s> ConnBookkeeping<'s> {
    /// The bookkeeping of one connection's requests.
    pub fn new(shared: &'s Shared) -> Self {
        ConnBookkeeping {
            shared,
            in_flight: None,
            answered: 0,
        }
    }

    /// Requests answered on this connection so far.
    pub fn answered(&self) -> u64 {
        self.answered
    }
}

impl Bookkeeping for ConnBookkeeping<'_> {
    fn should_close(&mut self) -> bool {
        self.shared.closing()
    }

    fn request_started(&mut self, state: &mut ConnState, peer: &str) {
        self.in_flight = Some(self.shared.start_request(state, peer));
    }

    fn request_finished(&mut self, done: &RequestDone<'_>) {
        if let Some(started) = self.in_flight.take() {
            self.shared.end_request(started, done);
        }
        self.answered += 1;
    }

    fn bad_request(&mut self, peer: &str, err: &ParseError) {
        log_invalid_request(peer, err);
    }
}
