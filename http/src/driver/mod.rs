//! The one blocking driver: a [`connection::Connection`] moves bytes between
//! a [`transport::Transport`] (`Read + Write` with timeouts) and the
//! protocol, and hands each request to the app as an [`exchange::Exchange`]
//! inside the worker's [`bookkeeping`]. This is the only code in `http`
//! that does I/O or reads the clock.

pub(crate) mod bookkeeping;
pub(crate) mod connection;
pub(crate) mod exchange;
pub(crate) mod transport;
