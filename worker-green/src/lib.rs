//! The `green` worker class: one stackful coroutine per connection on the `may` runtime, started only after fork.
