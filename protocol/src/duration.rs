//! Reading the durations people type: `--timeout`, `ORE_TIMEOUT`, `ORE_LEASE_TTL`.
//!
//! A duration is a plain number of seconds (`300`, `0.5`, the form every version of Ore took)
//! or a duration with units (`5m`, `1h 30m`, `2days`, read by `humantime`). Every value is
//! checked against [`MAX_DURATION`] before it becomes a `Duration`: a number like `1e30` or
//! `18446744073709551615` is an error naming the setting and the limit, never a panic or a
//! deadline that overflows the clock. The checks live here, once, so every program that reads
//! one of these settings (the frontend, the backends, the proxies) refuses the same values in
//! the same words.

use crate::error::Error;
use std::time::Duration;

/// Seconds a backend may stay silent while requests wait before it is given up (unset or 0:
/// wait for ever). `ore --timeout` sets it; proxies inherit it for their inner backends, and a
/// store program started by `ore` waits this long for a busy archive ([`busy_limit`]). It lives
/// here, with the protocol, because every program of Ore reads it the same way.
pub const TIMEOUT_ENV: &str = "ORE_TIMEOUT";

/// The timeout [`TIMEOUT_ENV`] sets for connections to the archive `id` (named in the error):
/// `None` when it is unset or 0 (wait for ever).
pub fn env_timeout(id: &str) -> crate::Result<Option<Duration>> {
    let Ok(v) = std::env::var(TIMEOUT_ENV) else {
        return Ok(None);
    };
    let limit = parse_duration(TIMEOUT_ENV, &v).map_err(|message| Error::Connection {
        archive: id.to_string(),
        message,
    })?;
    Ok((!limit.is_zero()).then_some(limit))
}

/// How long to wait for an archive that another process holds (`None`: for ever). Without
/// [`TIMEOUT_ENV`] (ore-admin, scripts) not at all: a busy archive is an error at once; `ore`
/// always sets it (300 s unless told otherwise; 0 waits for ever).
pub fn busy_limit(id: &str) -> crate::Result<Option<Duration>> {
    match std::env::var_os(TIMEOUT_ENV) {
        None => Ok(Some(Duration::ZERO)),
        Some(_) => env_timeout(id),
    }
}

/// The longest duration any setting accepts: ten (Julian) years, far beyond any useful timeout
/// or lease, and far enough inside the range of a nanosecond clock that deadlines cannot
/// overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(3_155_760_000 / 10);

/// Reads `value`, the setting `name` (an option or an environment variable, named in the
/// error), as a duration of at most [`MAX_DURATION`].
pub fn parse_duration(name: &str, value: &str) -> Result<Duration, String> {
    read_duration(value).map_err(|why| format!("{name}={value:?}: {why}"))
}

/// Reads `value` as a duration of at most [`MAX_DURATION`]; the error says why it is not one
/// and what is (for callers that name the setting themselves, like the argument parser).
pub fn read_duration(value: &str) -> Result<Duration, String> {
    let v = value.trim();
    let bad = |why: &str| {
        format!(
            "{why}: give a number of seconds (like 300 or 0.5) or a duration with units (like 5m \
             or 2h) of at most {}",
            humantime::format_duration(MAX_DURATION)
        )
    };
    let d = if let Ok(secs) = v.parse::<f64>() {
        if !secs.is_finite() || secs < 0.0 {
            return Err(bad("not a duration"));
        }
        if secs > MAX_DURATION.as_secs_f64() {
            return Err(bad("too long"));
        }
        Duration::try_from_secs_f64(secs).map_err(|_| bad("not a duration"))?
    } else {
        match humantime::parse_duration(v) {
            Ok(d) => d,
            Err(humantime::DurationError::NumberOverflow) => return Err(bad("too long")),
            Err(e) => return Err(bad(&format!("not a duration ({e})"))),
        }
    };
    if d > MAX_DURATION {
        return Err(bad("too long"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_seconds_and_durations_with_units_are_read() {
        assert_eq!(parse_duration("t", "300"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("t", " 0.5 "), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("t", "0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("t", "5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("t", "1h 30m"), Ok(Duration::from_secs(5400)));
    }

    #[test]
    fn huge_negative_and_odd_values_are_errors_naming_the_setting_and_the_limit() {
        for v in [
            "1e30",
            "1e300",
            "18446744073709551615",
            "inf",
            "NaN",
            "-1",
            "99999999999999999999999h",
            "11years",
            "soon",
            "",
        ] {
            let e = parse_duration("--timeout", v).expect_err(v);
            assert!(e.starts_with("--timeout="), "{e}");
            assert!(e.ends_with("at most 10years"), "{e}");
        }
    }
}
