//! The one blocking driver: a [`connection::Connection`] moves bytes between
//! a [`transport::Transport`] (`Read + Write` with timeouts) and the
//! protocol, and hands each request to the app as an [`exchange::Exchange`]
//! with the worker's [`hooks`] around it. This is the only code in `http`
//! that does I/O or reads the clock.

pub(crate) mod connection;
pub(crate) mod exchange;
pub(crate) mod hooks;
pub(crate) mod transport;
