//! Times as snapshots and locks store them: RFC 3339 with the host's UTC offset, nanoseconds.

use crate::error::{Error, Result};

/// The current time as stored in snapshots and locks.
pub fn now_string() -> String {
    format_time(jiff::Zoned::now())
}

pub fn format_time(z: jiff::Zoned) -> String {
    z.strftime("%Y-%m-%dT%H:%M:%S%.9f%:z").to_string()
}

/// Parses an RFC 3339 time, keeping its UTC offset, or a civil time (`2026-01-02 03:04:05`) in
/// the local zone, into the stored form.
pub fn parse_time(t: &str) -> Result<String> {
    let bad =
        |e: &dyn std::fmt::Display| Error::Invalid(format!("time {t:?} is not RFC 3339: {e}"));
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        let tz = if t.ends_with('Z') || t.ends_with('z') {
            jiff::tz::TimeZone::UTC
        } else {
            let tail = &t[t.len().saturating_sub(6)..];
            let sign = if tail.starts_with('-') { -1 } else { 1 };
            let h: i32 = tail.get(1..3).and_then(|x| x.parse().ok()).unwrap_or(0);
            let m: i32 = tail.get(4..6).and_then(|x| x.parse().ok()).unwrap_or(0);
            let off =
                jiff::tz::Offset::from_seconds(sign * (h * 3600 + m * 60)).map_err(|e| bad(&e))?;
            jiff::tz::TimeZone::fixed(off)
        };
        return Ok(format_time(ts.to_zoned(tz)));
    }
    let dt: jiff::civil::DateTime = t.replace(' ', "T").parse().map_err(|e| bad(&e))?;
    let z = dt
        .to_zoned(jiff::tz::TimeZone::system())
        .map_err(|e| bad(&e))?;
    Ok(format_time(z))
}

/// Parses a point in time for selections (`--before`, `find --oldest`): RFC 3339
/// (`2026-11-30T12:00:00+01:00`), or a civil date or date and time in the local zone
/// (`2026-11-30`, `2026-11-30 12:00`, `2026-11-30 12:00:05`); a date alone is its midnight.
pub fn parse_instant(t: &str) -> Result<jiff::Timestamp> {
    let t = t.trim();
    if let Ok(ts) = t.parse::<jiff::Timestamp>() {
        return Ok(ts);
    }
    let bad = || {
        Error::Invalid(format!(
            "time {t:?}: use RFC 3339 (2026-11-30T12:00:00Z) or a local date and time \
             (2026-11-30, 2026-11-30 12:00)"
        ))
    };
    let civil = t.replace(' ', "T");
    let dt = match civil.parse::<jiff::civil::DateTime>() {
        Ok(dt) => dt,
        Err(_) => civil
            .parse::<jiff::civil::Date>()
            .map_err(|_| bad())?
            .to_datetime(jiff::civil::Time::midnight()),
    };
    dt.to_zoned(jiff::tz::TimeZone::system())
        .map(|z| z.timestamp())
        .map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[test]
    fn offsets_are_kept_and_civil_times_take_the_local_zone() {
        assert_eq!(
            parse_time("2026-01-02T03:04:05+05:30").unwrap(),
            "2026-01-02T03:04:05.000000000+05:30"
        );
        assert_eq!(
            parse_time("2026-01-02T03:04:05Z").unwrap(),
            "2026-01-02T03:04:05.000000000+00:00"
        );
        assert!(parse_time("2026-01-02 03:04:05")
            .unwrap()
            .starts_with("2026-01-02T03:04:05"));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn instants_take_rfc3339_or_a_local_date() {
        let utc: jiff::Timestamp = "2026-11-30T12:00:00Z".parse().unwrap();
        assert_eq!(parse_instant("2026-11-30T13:00:00+01:00").unwrap(), utc);
        let local = |s: &str| {
            jiff::civil::DateTime::from_str(s)
                .unwrap()
                .to_zoned(jiff::tz::TimeZone::system())
                .unwrap()
                .timestamp()
        };
        assert_eq!(
            parse_instant("2026-11-30").unwrap(),
            local("2026-11-30T00:00:00")
        );
        assert_eq!(
            parse_instant("2026-11-30 14:05").unwrap(),
            local("2026-11-30T14:05:00")
        );
        assert_eq!(
            parse_instant("2026-11-30 14:05:09").unwrap(),
            local("2026-11-30T14:05:09")
        );
        assert!(parse_instant("30.11.2026").is_err());
        assert!(parse_instant("").is_err());
    }
}
