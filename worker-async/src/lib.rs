//! The `async` worker class: a tokio `current_thread` runtime per thread, one task per connection, sync apps on a bounded blocking pool.
