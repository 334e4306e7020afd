//! Small helpers shared by the commands: time, sizes, paths as bytes.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `name` with its indefinite article: "an archive object", "a directory".
pub fn a(name: &str) -> String {
    match name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        true => format!("an {name}"),
        false => format!("a {name}"),
    }
}

/// The next line of `r` into `line` (its `\n` and a `\r` before it removed), reading at most
/// `max` bytes of it: input that never ends a line (`/dev/zero`, `yes`) costs `max` bytes, not
/// all memory. `Ok(false)` at the end of the input; an error when the line is longer than `max`.
pub fn read_line_capped(
    r: &mut impl std::io::BufRead,
    max: usize,
    line: &mut Vec<u8>,
) -> std::io::Result<bool> {
    use std::io::{BufRead, Read};
    line.clear();
    // Room for the longest line and its `\r\n`, and one byte more to tell it is too long.
    r.by_ref().take(max as u64 + 3).read_until(b'\n', line)?;
    if line.is_empty() {
        return Ok(false);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    if line.len() > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("a line longer than {max} bytes"),
        ));
    }
    Ok(true)
}

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// A path's bytes.
pub fn path_bytes(p: &Path) -> &[u8] {
    p.as_os_str().as_bytes()
}

/// A path from bytes.
pub fn bytes_path(b: &[u8]) -> &Path {
    Path::new(OsStr::from_bytes(b))
}

/// Bytes shown as text, with invalid UTF-8 escaped.
pub fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A path for one line of output: control characters (a newline in a name, say) escaped as
/// `\n`, `\u{1b}`, so that a name cannot forge further lines of a report; anything else as
/// it is (bytes that are not UTF-8 replaced).
pub fn one_line(p: &std::path::Path) -> String {
    let s = p.to_string_lossy();
    if !s.chars().any(char::is_control) {
        return s.into_owned();
    }
    s.chars()
        .map(|c| match c {
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Replaces `path` whole with `text`: written to a new temporary file beside it (a random
/// name, created exclusively, so nothing planted there is followed) and renamed over it, so a
/// reader never sees half of it. Used for the metrics files a collector reads.
pub fn replace_whole(path: &std::path::Path, text: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".ore-metrics-")
        .tempfile_in(dir)?;
    tmp.write_all(text)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// A Prometheus label value with `\`, `"` and newlines escaped, as the text format wants
/// (the metrics of `ore --metrics-file` and `ore-admin ARCHIVE metrics`).
pub fn label_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Holds an exclusive lock on `path` (made if missing) while the returned file lives: for
/// runs that read, change and write back one file (the metrics file several runs share).
pub fn lock_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .custom_flags_nofollow()
        .open(path)?;
    // SAFETY: flock on a descriptor this function owns; it blocks until the lock is had.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(f)
}

/// `O_NOFOLLOW` for an `OpenOptions`: a symlink planted at the name is an error.
trait NoFollow {
    fn custom_flags_nofollow(&mut self) -> &mut Self;
}

impl NoFollow for std::fs::OpenOptions {
    fn custom_flags_nofollow(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOFOLLOW)
    }
}

/// A byte count for people: `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// Parses a size like `100`, `10k`, `1.5M`, `2G`, `1T` (binary units).
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let unit = s[i..].to_ascii_lowercase();
            let m: u64 = match unit.trim_end_matches("ib").trim_end_matches('b') {
                "" => 1,
                "k" => 1 << 10,
                "m" => 1 << 20,
                "g" => 1 << 30,
                "t" => 1 << 40,
                _ => return None,
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v >= 0.0).then_some((v * mult as f64) as u64)
}

/// Parses an age like `30s`, `15m`, `12h`, `7d`, `2w`, `1y` or `1h 30m` into seconds (by
/// `humantime`: a month `M` is 30.44 days, a year 365.25).
pub fn parse_duration(s: &str) -> Option<i64> {
    let d = humantime::parse_duration(s.trim()).ok()?;
    i64::try_from(d.as_secs()).ok()
}

/// The UTC calendar date of `ns` (since the epoch): (year, month, day).
pub fn utc_date(ns: i64) -> (i64, u32, u32) {
    let d = utc(ns).date();
    (i64::from(d.year()), d.month() as u32, d.day() as u32)
}

/// `ns` as a civil time in UTC. Every i64 of nanoseconds (1677 to 2262) is within jiff's range.
fn utc(ns: i64) -> jiff::civil::DateTime {
    jiff::Timestamp::from_nanosecond(i128::from(ns))
        .unwrap_or(jiff::Timestamp::MAX)
        .to_zoned(jiff::tz::TimeZone::UTC)
        .datetime()
}

/// A time in nanoseconds as `2026-11-21 23:45:01` (UTC).
pub fn format_time(ns: i64) -> String {
    utc(ns).strftime("%Y-%m-%d %H:%M:%S").to_string()
}

/// Parses `YYYY-MM-DD`, `YYYY-MM-DD HH:MM[:SS]` or with a `T` separator (UTC, an optional
/// trailing `Z`) to nanoseconds; `jiff` checks the calendar (no 31 February). A date alone
/// means the end of that day.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_suffix('Z').unwrap_or(s);
    let (date, time) = match s.find(['T', ' ']) {
        Some(i) => (&s[..i], Some(&s[i + 1..])),
        None => (s, None),
    };
    // Nanoseconds since 1970 fit in an i64 from 1677 to 2262; a date outside that range is
    // before or after every snapshot, so it is held at the nearest end. Years of more than
    // four digits are past what jiff's calendar holds: after every snapshot.
    let year = date.split('-').next()?;
    if year.len() > 4 && year.bytes().all(|b| b.is_ascii_digit()) {
        return Some(i64::MAX);
    }
    let day: jiff::civil::Date = date.parse().ok()?;
    let at = match time {
        None => day.at(23, 59, 59, 999_999_999),
        Some(t) => {
            // `HH:MM` or `HH:MM:SS`, nothing else (jiff would also take `HH` alone).
            let parts = t.split(':').count();
            if !(2..=3).contains(&parts) || t.contains(['.', ',']) {
                return None;
            }
            day.to_datetime(t.parse().ok()?)
        }
    };
    let ns = at
        .to_zoned(jiff::tz::TimeZone::UTC)
        .ok()?
        .timestamp()
        .as_nanosecond();
    Some(i64::try_from(ns).unwrap_or(if ns < 0 { i64::MIN } else { i64::MAX }))
}

/// This machine's host name.
pub fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates within it or
    // truncates, and we stop at the first NUL either way.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "unknown".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

/// Serialises a key as its 64 hex digits (JSON output: keys are for people and scripts).
pub fn ser_key<S: serde::Serializer>(k: &protocol::Key, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&k.to_hex())
}

/// Serialises an optional key as hex digits or null.
pub fn ser_opt_key<S: serde::Serializer>(
    k: &Option<protocol::Key>,
    s: S,
) -> Result<S::Ok, S::Error> {
    match k {
        Some(k) => s.serialize_str(&k.to_hex()),
        None => s.serialize_none(),
    }
}

/// Path bytes `dir/name`, with one slash between them whether `dir` ends with one or not.
pub fn join_path(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut v = dir.to_vec();
    if v.last() != Some(&b'/') {
        v.push(b'/');
    }
    v.extend_from_slice(name);
    v
}

/// Makes the C allocator hand buffers of 1 MiB and more straight back to the system when they
/// are freed, instead of keeping them in its arenas. glibc's default raises that threshold to
/// the largest buffer freed (up to 32 MiB), after which a snapshot's read windows and queued
/// data — allocated by one thread, freed by another — stay resident in per-thread arenas:
/// a snapshot of /usr/share into SeaweedFS peaked at 90–99 MB resident with a 44 MB heap, and
/// at 73 MB with this threshold fixed (51–52 MB against 59 MB into a local archive), in the
/// same time. Other allocators measured worse for the frontend: jemalloc 104–109 MB, mimalloc
/// 92–96 MB. Call it first thing in `main`, before any thread starts. A restore's buffers do
/// not pile up like this (31 MB resident either way), so it keeps glibc's default.
pub fn return_large_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a setting of glibc's allocator; called before any other
    // thread exists, so no allocation races with it. Its failure leaves the default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// `ns` (since the epoch) as the time on this machine's clock, with its offset from UTC
/// (`2026-12-05 23:40:12 +09:00`; the zone from `TZ`, else the system's), or in UTC with
/// `utc`. `jiff` knows the zones' rules (summer time included): a zone database is built in,
/// for machines without `/usr/share/zoneinfo`.
pub fn format_zoned(ns: i64, utc: bool) -> String {
    zoned(ns, utc, "%Y-%m-%d %H:%M:%S %:z")
}

/// [`format_zoned`] as RFC 3339 (`2026-12-05T23:40:12+09:00`), for JSON.
pub fn rfc3339_zoned(ns: i64, utc: bool) -> String {
    zoned(ns, utc, "%Y-%m-%dT%H:%M:%S%:z")
}

fn zoned(ns: i64, utc: bool, format: &str) -> String {
    let zone = if utc {
        jiff::tz::TimeZone::UTC
    } else {
        jiff::tz::TimeZone::system()
    };
    match jiff::Timestamp::from_nanosecond(i128::from(ns)) {
        Ok(t) => t.to_zoned(zone).strftime(format).to_string(),
        Err(_) => format_time(ns),
    }
}

/// Writes `bytes` to `path` whole or not at all (a temporary file, synced, then renamed), the
/// file private to this user (0600) and its directory created private (0700): how the small
/// files beside the file cache are written. `sync`: on disk before the rename (for a copy that
/// is a safety net, not only a saving).
pub fn write_private(path: &Path, bytes: &[u8], sync: bool) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let name = path.file_name().map_or_else(
        || std::ffi::OsString::from("file"),
        std::ffi::OsStr::to_os_string,
    );
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(&name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = dir.join(tmp_name);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| {
            f.write_all(bytes)?;
            if sync {
                f.sync_all()?;
            }
            Ok(())
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_lines_end_at_newlines_and_refuse_what_is_too_long() {
        let mut input: &[u8] = b"one\r\ntwo\n\nthree";
        let mut line = Vec::new();
        let mut got = Vec::new();
        while read_line_capped(&mut input, 5, &mut line).unwrap() {
            got.push(String::from_utf8(line.clone()).unwrap());
        }
        assert_eq!(got, ["one", "two", "", "three"]);
        let mut long: &[u8] = b"123456\nnext\n";
        assert!(read_line_capped(&mut long, 5, &mut line).is_err());
        let mut exact: &[u8] = b"12345\r\n";
        assert!(read_line_capped(&mut exact, 5, &mut line).unwrap());
        assert_eq!(line, b"12345");
    }

    #[test]
    fn dates_round_trip() {
        for (ns, date) in [
            (0, (1970, 1, 1)),
            (-1, (1969, 12, 31)),
            (1_795_300_000_000_000_000, (2026, 11, 21)),
            (i64::MAX, (2262, 4, 11)),
            (i64::MIN, (1677, 9, 21)),
        ] {
            assert_eq!(utc_date(ns), date, "{ns}");
        }
        assert_eq!(format_time(0), "1970-01-01 00:00:00");
        let t = parse_time("2026-11-21T10:20:30Z").unwrap();
        assert_eq!(format_time(t), "2026-11-21 10:20:30");
        assert_eq!(
            format_time(parse_time("2026-11-21").unwrap()),
            "2026-11-21 23:59:59"
        );
        assert!(parse_time("2026-13-01").is_none());
        assert_eq!(
            parse_time("2026-11-21 10:20"),
            parse_time("2026-11-21T10:20:00")
        );
        for bad in [
            "2026-11-21T10",
            "2026-11-21T10:20:30.5",
            "2026-11",
            "yesterday",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }

    /// Regression: `2026-02-31` was taken as 3 March (days were only checked to be at most 31).
    #[test]
    fn a_day_the_month_does_not_have_is_no_date() {
        assert_eq!(parse_time("2026-02-31"), None);
        assert_eq!(parse_time("2026-04-31T00:00"), None);
        assert_eq!(parse_time("2025-02-29"), None);
        assert!(parse_time("2024-02-29").is_some());
    }

    /// Regression: `TAG@2999-01-01` overflowed the nanosecond count (a panic in a debug build,
    /// a time in 1830 in a release build, so no snapshot was old enough).
    #[test]
    fn dates_beyond_what_nanoseconds_hold_are_held_at_the_ends() {
        assert_eq!(parse_time("2999-01-01"), Some(i64::MAX));
        assert_eq!(parse_time("99999999999-01-01"), Some(i64::MAX));
        assert_eq!(parse_time("1000-01-01T00:00"), Some(i64::MIN));
        assert!(parse_time("2262-01-01").is_some_and(|t| t > 0 && t < i64::MAX));
    }

    #[test]
    fn sizes_and_durations() {
        assert_eq!(parse_size("10k"), Some(10240));
        assert_eq!(parse_size("1.5M"), Some(1572864));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("7"), Some(7));
        assert_eq!(parse_size("x"), None);
        assert_eq!(parse_duration("7d"), Some(7 * 86400));
        assert_eq!(parse_duration("2w"), Some(14 * 86400));
        assert_eq!(parse_duration("1h 30m"), Some(5400));
        assert_eq!(parse_duration("0s"), Some(0));
        assert_eq!(parse_duration("d"), None);
        assert_eq!(parse_duration("7"), None);
    }
}
