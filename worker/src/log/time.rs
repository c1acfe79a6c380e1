//! The local clock of every log line: the time zone is read once, in the
//! master before it forks (single-threaded), and inherited, so every line of
//! every process, the error log's and the access log's, shows local time
//! with the real UTC offset (`+0530` under `TZ=Asia/Kolkata`), DST included.
//!
//! `jiff` reads `TZ` (a zone name, a TZif path or a POSIX rule) and
//! `/etc/localtime` itself, without libc's `localtime_r` (whose `TZ`
//! handling is not safe beside threads) and without `unsafe`.

use std::fmt;
use std::sync::OnceLock;
use std::time::SystemTime;

use jiff::civil::DateTime;
use jiff::tz::{Offset, TimeZone};
use jiff::Timestamp;

/// The process's time zone, read once (see [`load_local_zone`]).
static LOCAL_ZONE: OnceLock<TimeZone> = OnceLock::new();

/// Reads the local time zone (`TZ`, else `/etc/localtime`; UTC when
/// neither names a zone this machine has) unless already read. The master
/// calls it once at start, before any fork, so workers inherit the zone
/// and never read a file for it; a zone is a table of transitions, so the
/// offset stays right across a DST change without reading it again.
pub fn load_local_zone() -> &'static TimeZone {
    LOCAL_ZONE.get_or_init(|| TimeZone::try_system().unwrap_or(TimeZone::UTC))
}

/// A moment in the local time zone, with its UTC offset, formatted the
/// ways the logs need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalTime {
    /// The wall-clock date and time.
    pub datetime: DateTime,
    /// The offset from UTC in force at that moment.
    pub offset: Offset,
}

/// `time` in the local time zone (a lookup in the inherited zone's table,
/// no system call and no file read).
pub fn local_time(time: SystemTime) -> LocalTime {
    let timestamp = Timestamp::try_from(time).unwrap_or(Timestamp::UNIX_EPOCH);
    let offset = load_local_zone().to_offset(timestamp);
    LocalTime {
        datetime: offset.to_datetime(timestamp),
        offset,
    }
}

/// The offset as `+HHMM` (`colon`: `+HH:MM`).
struct ShowOffset(Offset, bool);

impl fmt::Display for ShowOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.seconds();
        let sign = if seconds < 0 { '-' } else { '+' };
        let minutes = seconds.unsigned_abs() / 60;
        let colon = if self.1 { ":" } else { "" };
        write!(f, "{sign}{:02}{colon}{:02}", minutes / 60, minutes % 60)
    }
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl LocalTime {
    /// Gunicorn's error log time, `%Y-%m-%d %H:%M:%S %z`:
    /// `2026-11-25 20:30:00 +0530`.
    pub fn gunicorn(&self) -> String {
        let dt = self.datetime;
        format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} {}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            ShowOffset(self.offset, false)
        )
    }

    /// RFC 3339 with milliseconds, for JSON lines:
    /// `2026-11-25T20:30:00.123+05:30`.
    pub fn rfc3339(&self) -> String {
        let dt = self.datetime;
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}{}",
            dt.year(),
            dt.month(),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond(),
            ShowOffset(self.offset, true)
        )
    }

    /// Gunicorn's access log `%(t)s` without its brackets,
    /// `%d/%b/%Y:%H:%M:%S %z`: `25/Nov/2026:20:30:00 +0530`.
    pub fn access(&self) -> String {
        let dt = self.datetime;
        let month = MONTHS[(dt.month() as usize).clamp(1, 12) - 1];
        format!(
            "{:02}/{month}/{:04}:{:02}:{:02}:{:02} {}",
            dt.day(),
            dt.year(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            ShowOffset(self.offset, false)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(zone: &str, secs: u64, millis: u64) -> LocalTime {
        let zone = TimeZone::get(zone).expect("the zone database (tzdata, installed by .ci/run)");
        let time = UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(millis);
        let timestamp = Timestamp::try_from(time).expect("a timestamp");
        let offset = zone.to_offset(timestamp);
        LocalTime {
            datetime: offset.to_datetime(timestamp),
            offset,
        }
    }

    #[test]
    fn formats_carry_the_real_offset() {
        let kolkata = at("Asia/Kolkata", 1_795_618_800, 42);
        assert_eq!(kolkata.gunicorn(), "2026-11-25 20:30:00 +0530");
        assert_eq!(kolkata.rfc3339(), "2026-11-25T20:30:00.042+05:30");
        assert_eq!(kolkata.access(), "25/Nov/2026:20:30:00 +0530");
        let utc = LocalTime {
            datetime: Offset::UTC.to_datetime(Timestamp::UNIX_EPOCH),
            offset: Offset::UTC,
        };
        assert_eq!(utc.gunicorn(), "1970-01-01 00:00:00 +0000");
        assert_eq!(utc.rfc3339(), "1970-01-01T00:00:00.000+00:00");
    }

    #[test]
    fn negative_offsets_keep_their_minutes() {
        let offset = Offset::from_seconds(-(3 * 3600 + 1800)).expect("an offset");
        assert_eq!(ShowOffset(offset, false).to_string(), "-0330");
        assert_eq!(ShowOffset(offset, true).to_string(), "-03:30");
    }
}
