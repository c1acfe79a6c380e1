//! Gunicorn's sync worker: one connection at a time, blocking I/O, `Connection: close` on every response.
