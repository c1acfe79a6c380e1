//! The `Date` header value, formatted at most once a second. The caller
//! feeds the time in ([`DateCache::update`]): this module reads no clock.

use std::io::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
const DATE_LEN: usize = 29;

/// An IMF-fixdate cached for the second it names.
#[derive(Debug, Clone)]
pub struct DateCache {
    second: u64,
    text: [u8; DATE_LEN],
}

impl Default for DateCache {
    fn default() -> Self {
        let mut cache = DateCache {
            second: u64::MAX,
            text: [b' '; DATE_LEN],
        };
        cache.update(UNIX_EPOCH);
        cache
    }
}

impl DateCache {
    /// A cache already holding `now`.
    pub fn new(now: SystemTime) -> DateCache {
        let mut cache = DateCache::default();
        cache.update(now);
        cache
    }

    /// Move to `now`; formats only when the second changed.
    pub fn update(&mut self, now: SystemTime) {
        let second = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        if second == self.second {
            return;
        }
        self.second = second;
        let date = httpdate::HttpDate::from(UNIX_EPOCH + std::time::Duration::from_secs(second));
        let mut cursor = &mut self.text[..];
        // An IMF-fixdate is always exactly 29 bytes for years 1970..=9999.
        if write!(cursor, "{date}").is_err() {
            self.text = *b"Thu, 01 Jan 1970 00:00:00 GMT";
        }
    }

    /// The formatted date, `Sun, 06 Nov 1994 08:49:37 GMT`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.text
    }

    /// The formatted date as a fixed-size array (cheap to copy).
    pub fn fixed(&self) -> &[u8; DATE_LEN] {
        &self.text
    }
}
