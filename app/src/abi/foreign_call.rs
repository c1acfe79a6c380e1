//! A host services table seen from Rust: [`ForeignCall`] implements [`Call`]
//! (and [`ForeignHost`] implements [`Host`]) by calling through an
//! [`RcHostTable`]. A library app's shims use it to give the author the same
//! `App` trait the built-ins use; the host uses it to serve the app on behalf
//! of a library worker class.

use std::io;
use std::time::Duration;

use super::errno::from_errno;
use super::types::{
    RcCallCtx, RcConnectionInfo, RcField, RcHostTable, RcRequest, RcStr, RcUpstream, RcWorkerInfo,
    RC_OK,
};
use crate::{Call, Header, Host, LogLevel, RequestHead, Upstream, Version, WorkerInfo};

fn check(status: i32) -> io::Result<()> {
    if status == RC_OK {
        Ok(())
    } else {
        Err(from_errno(status))
    }
}

/// Copy the borrowed fields into owned header fields.
///
/// # Safety
/// `fields` points to `len` valid fields (or is null with `len` 0).
unsafe fn headers_of(fields: *const RcField, len: usize) -> Vec<Header> {
    if fields.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: the caller promises `len` valid fields.
    let fields = unsafe { std::slice::from_raw_parts(fields, len) };
    fields
        .iter()
        .map(|field| {
            // SAFETY: each field borrows memory valid during this call.
            let (name, value) = unsafe { (field.name.as_bytes(), field.value.as_bytes()) };
            Header {
                name: String::from_utf8_lossy(name).into_owned(),
                value: value.to_vec(),
            }
        })
        .collect()
}

/// Copy a borrowed request into a [`RequestHead`] and the peer address.
///
/// # Safety
/// `request` points to a valid `RcRequest` whose slices are readable.
pub unsafe fn request_head(request: &RcRequest) -> (RequestHead, String) {
    // SAFETY: the caller promises the request's slices are valid.
    let (method, target, peer) = unsafe {
        (
            request.method.as_bytes(),
            request.target.as_bytes(),
            request.peer.as_bytes(),
        )
    };
    let head = RequestHead {
        method: String::from_utf8_lossy(method).into_owned(),
        target: String::from_utf8_lossy(target).into_owned(),
        version: if request.version == 10 {
            Version::Http10
        } else {
            Version::Http11
        },
        // SAFETY: the host lends `headers_len` fields for the request, read
        // and copied here.
        headers: unsafe { headers_of(request.headers, request.headers_len) },
    };
    (head, String::from_utf8_lossy(peer).into_owned())
}

/// The host services behind a table and a context, as a [`Host`].
#[derive(Debug)]
pub struct ForeignHost {
    table: *const RcHostTable,
    ctx: *mut RcCallCtx,
}

// SAFETY: the table is immutable; the context is only used during the call
// that lent it, on the thread that runs it (a `&dyn Host` cannot escape
// the `&mut dyn Call` it is borrowed from).
unsafe impl Send for ForeignHost {}
// SAFETY: shared references to it only reach the host's table during the
// call that lent the context, on the thread that runs it.
unsafe impl Sync for ForeignHost {}

impl ForeignHost {
    /// Wrap a table and a context.
    ///
    /// # Safety
    /// Both stay valid for as long as this value is used.
    pub unsafe fn new(table: *const RcHostTable, ctx: *mut RcCallCtx) -> Self {
        ForeignHost { table, ctx }
    }

    fn table(&self) -> &RcHostTable {
        // SAFETY: `new`'s contract.
        unsafe { &*self.table }
    }

    /// The request's connection facts, when the host's table has the
    /// entry (a table from a library built before it was added has not)
    /// and the context holds a request.
    fn connection_info(&self) -> Option<ForeignConnection> {
        if !RcHostTable::has_connection_info(self.table().struct_size) {
            return None;
        }
        let mut raw = RcConnectionInfo::empty();
        // SAFETY: the host fills at most `raw.struct_size` bytes of the out
        // slot and borrows the views to us for the request; we copy them.
        let status = unsafe { (self.table().connection_info)(self.ctx, &mut raw) };
        if status != RC_OK {
            return None;
        }
        // SAFETY: the views `connection_info` filled are borrowed for the
        // request; each is copied into a `String` at once.
        let text = |view: RcStr| String::from_utf8_lossy(unsafe { view.as_bytes() });
        let pieces = [
            text(raw.url_scheme),
            text(raw.client_addr),
            text(raw.server_addr),
            text(raw.forwarded_host),
            text(raw.proxy_protocol),
            text(raw.proxy_addr),
        ];
        let mut all = String::with_capacity(pieces.iter().map(|piece| piece.len()).sum());
        let mut ends = [0; 6];
        for (piece, end) in pieces.iter().zip(&mut ends) {
            all.push_str(piece);
            *end = all.len();
        }
        Some(ForeignConnection { all, ends })
    }

    /// Facts about this worker, from the host.
    pub fn worker_info(&self) -> WorkerInfo {
        let mut raw = RcWorkerInfo {
            pid: 0,
            age: 0,
            worker_class: RcStr::EMPTY,
        };
        // SAFETY: the host fills the out slot and borrows the class name to us.
        unsafe { (self.table().worker_info)(self.ctx, &mut raw) };
        WorkerInfo {
            pid: raw.pid,
            age: raw.age,
            // SAFETY: the name is valid during this call; we copy it.
            worker_class: String::from_utf8_lossy(unsafe { raw.worker_class.as_bytes() })
                .into_owned(),
        }
    }
}

impl Host for ForeignHost {
    fn sleep(&self, duration: Duration) {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        // SAFETY: `new`'s contract.
        unsafe { (self.table().sleep)(self.ctx, millis) };
    }

    fn connect(&self, addr: &str) -> io::Result<Box<dyn Upstream>> {
        let mut handle: *mut RcUpstream = std::ptr::null_mut();
        // SAFETY: the address is borrowed for the call; the host fills `handle`.
        check(unsafe {
            (self.table().tcp_connect)(self.ctx, RcStr::new(addr.as_bytes()), &mut handle)
        })?;
        if handle.is_null() {
            return Err(io::Error::other("host returned no upstream handle"));
        }
        Ok(Box::new(ForeignUpstream {
            table: self.table,
            handle,
        }))
    }

    fn log(&self, level: LogLevel, message: &str) {
        let level = match level {
            LogLevel::Debug => 0,
            LogLevel::Info => 1,
            LogLevel::Warning => 2,
            LogLevel::Error => 3,
        };
        // SAFETY: the message is borrowed for the call.
        unsafe { (self.table().log)(self.ctx, level, RcStr::new(message.as_bytes())) };
    }
}

/// A TCP connection opened through the host; closed (and its handle freed
/// by the host) on drop.
#[derive(Debug)]
struct ForeignUpstream {
    table: *const RcHostTable,
    handle: *mut RcUpstream,
}

// SAFETY: the handle is owned by this value alone; the host's upstreams are
// `Send` and the table is immutable.
unsafe impl Send for ForeignUpstream {}

impl Upstream for ForeignUpstream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut read = 0usize;
        // SAFETY: the handle is live until drop; the buffer is ours.
        check(unsafe {
            ((*self.table).tcp_read)(self.handle, buf.as_mut_ptr(), buf.len(), &mut read)
        })?;
        Ok(read)
    }

    fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        // SAFETY: the handle is live until drop; the data is borrowed.
        check(unsafe { ((*self.table).tcp_write)(self.handle, data.as_ptr(), data.len()) })
    }
}

impl Drop for ForeignUpstream {
    fn drop(&mut self) {
        // SAFETY: the handle came from `tcp_connect` and is given back once.
        unsafe { ((*self.table).tcp_close)(self.handle) };
    }
}

/// One request served through a host services table.
#[derive(Debug)]
pub struct ForeignCall {
    head: RequestHead,
    peer: String,
    connection: Option<ForeignConnection>,
    trailers: Vec<Header>,
    host: ForeignHost,
}

/// The connection facts a host table gave, copied into one string: the
/// URL scheme, the client's address, the server's, the forwarded host, the
/// PROXY protocol and the proxy's address.
#[derive(Debug)]
struct ForeignConnection {
    all: String,
    /// Where each of the six ends in `all`.
    ends: [usize; 6],
}

impl ForeignConnection {
    /// The `index`-th fact (in the order above).
    fn piece(&self, index: usize) -> &str {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.all[start..self.ends[index]]
    }

    /// The `index`-th fact, `None` when empty.
    fn given(&self, index: usize) -> Option<&str> {
        Some(self.piece(index)).filter(|piece| !piece.is_empty())
    }

    fn url_scheme(&self) -> &str {
        self.piece(0)
    }

    fn client_addr(&self) -> &str {
        self.piece(1)
    }

    fn server_addr(&self) -> &str {
        self.piece(2)
    }

    fn forwarded_host(&self) -> Option<&str> {
        self.given(3)
    }

    fn proxy_protocol(&self) -> Option<&str> {
        self.given(4)
    }

    fn proxy_addr(&self) -> Option<&str> {
        self.given(5)
    }
}

impl ForeignCall {
    /// Copy the request and wrap the table.
    ///
    /// # Safety
    /// `request` is valid for this call; `table` and `ctx` stay valid while
    /// the returned value is used.
    pub unsafe fn new(request: &RcRequest, table: *const RcHostTable, ctx: *mut RcCallCtx) -> Self {
        // SAFETY: forwarded from the caller.
        let (head, peer) = unsafe { request_head(request) };
        // SAFETY: forwarded from the caller.
        let host = unsafe { ForeignHost::new(table, ctx) };
        let connection = host.connection_info();
        ForeignCall {
            head,
            peer,
            connection,
            trailers: Vec::new(),
            host,
        }
    }

    fn table(&self) -> &RcHostTable {
        self.host.table()
    }

    fn fetch_trailers(&mut self) -> io::Result<()> {
        let mut fields: *const RcField = std::ptr::null();
        let mut len = 0usize;
        // SAFETY: the host fills both out slots with a view valid for the call.
        check(unsafe { (self.table().trailers)(self.host.ctx, &mut fields, &mut len) })?;
        // SAFETY: the host's view is valid now; we copy it.
        self.trailers = unsafe { headers_of(fields, len) };
        Ok(())
    }
}

impl Call for ForeignCall {
    fn head(&self) -> &RequestHead {
        &self.head
    }

    fn peer(&self) -> &str {
        &self.peer
    }

    fn url_scheme(&self) -> &str {
        self.connection
            .as_ref()
            .map_or("http", ForeignConnection::url_scheme)
    }

    fn client_addr(&self) -> &str {
        self.connection
            .as_ref()
            .map_or(self.peer.as_str(), ForeignConnection::client_addr)
    }

    fn server_addr(&self) -> &str {
        self.connection
            .as_ref()
            .map_or("", ForeignConnection::server_addr)
    }

    fn forwarded_host(&self) -> Option<&str> {
        self.connection
            .as_ref()
            .and_then(ForeignConnection::forwarded_host)
    }

    fn proxy_protocol(&self) -> Option<&str> {
        self.connection
            .as_ref()
            .and_then(ForeignConnection::proxy_protocol)
    }

    fn proxy_addr(&self) -> Option<&str> {
        self.connection
            .as_ref()
            .and_then(ForeignConnection::proxy_addr)
    }

    fn read_body(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut read = 0usize;
        // SAFETY: the buffer is ours; the host writes at most `len` bytes.
        check(unsafe {
            (self.table().read_body)(self.host.ctx, buf.as_mut_ptr(), buf.len(), &mut read)
        })?;
        if read == 0 && !buf.is_empty() {
            // Trailers are known once the body has been read to its end.
            self.fetch_trailers()?;
        }
        Ok(read.min(buf.len()))
    }

    fn trailers(&self) -> &[Header] {
        &self.trailers
    }

    fn start_response(&mut self, status: u16, headers: &[(&str, &[u8])]) -> io::Result<()> {
        let fields: Vec<RcField> = headers
            .iter()
            .map(|(name, value)| RcField {
                name: RcStr::new(name.as_bytes()),
                value: RcStr::new(value),
            })
            .collect();
        // SAFETY: the fields borrow `headers`, alive for this call.
        check(unsafe {
            (self.table().start_response)(self.host.ctx, status, fields.as_ptr(), fields.len())
        })
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        // SAFETY: the data is borrowed for this call.
        check(unsafe { (self.table().write)(self.host.ctx, data.as_ptr(), data.len()) })
    }

    fn flush(&mut self) -> io::Result<()> {
        // SAFETY: the context is valid for this call.
        check(unsafe { (self.table().flush)(self.host.ctx) })
    }

    fn sendfile(&mut self, file: &std::fs::File, offset: u64, count: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: the context is valid for this call; the host borrows the
        // file's descriptor only during it.
        check(unsafe { (self.table().sendfile)(self.host.ctx, file.as_raw_fd(), offset, count) })
    }

    fn host(&self) -> &dyn Host {
        &self.host
    }
}

impl ForeignCall {
    /// Facts about this worker.
    pub fn worker_info(&self) -> WorkerInfo {
        self.host.worker_info()
    }
}
