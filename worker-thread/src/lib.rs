//! The `gthread` worker class: a thread pool, with idle keep-alive connections parked in a poller so they hold no thread.
