//! The canonical text forms of dates and times in the WIT `value` (see wit/types.wit), shared by
//! every backend so a flow sees one format whichever database it reads.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, Timelike, Utc};

/// `YYYY-MM-DD`.
pub fn format_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// `HH:MM:SS` plus only the fractional digits that are not zero (`12:00:00.5`).
pub fn format_time(t: NaiveTime) -> String {
    let mut out = t.format("%H:%M:%S").to_string();
    let nanos = t.nanosecond() % 1_000_000_000;
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out
}

/// `YYYY-MM-DDTHH:MM:SS[.fraction]`.
pub fn format_timestamp(ts: NaiveDateTime) -> String {
    format!("{}T{}", format_date(ts.date()), format_time(ts.time()))
}

/// RFC 3339 in UTC: `YYYY-MM-DDTHH:MM:SS[.fraction]Z`.
pub fn format_timestamp_tz(ts: DateTime<Utc>) -> String {
    format!("{}Z", format_timestamp(ts.naive_utc()))
}

pub fn parse_date(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

pub fn parse_time(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(s, "%H:%M"))
        .ok()
}

/// Accepts `T` or a space between date and time (SQLite's `CURRENT_TIMESTAMP` uses a space),
/// and a bare date as midnight.
pub fn parse_timestamp(s: &str) -> Option<NaiveDateTime> {
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(ts) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(ts);
        }
    }
    parse_date(s).map(|d| d.and_time(NaiveTime::MIN))
}

/// An instant with an explicit offset: RFC 3339, or PostgreSQL's text form (`+00`, `+0530`).
pub fn parse_timestamp_tz(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(ts) = DateTime::parse_from_rfc3339(s) {
        return Some(ts.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(ts) = DateTime::<FixedOffset>::parse_from_str(s, fmt) {
            return Some(ts.with_timezone(&Utc));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_round_trip() {
        for s in [
            "2024-02-29T13:45:10.123456",
            "1999-12-31T23:59:59",
            "0001-01-01T00:00:00",
        ] {
            assert_eq!(format_timestamp(parse_timestamp(s).unwrap()), s);
        }
        for s in ["00:00:00", "23:59:59.5", "12:30:00.000001"] {
            assert_eq!(format_time(parse_time(s).unwrap()), s);
        }
        let tz = "2024-06-01T10:00:00.25Z";
        assert_eq!(format_timestamp_tz(parse_timestamp_tz(tz).unwrap()), tz);
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let ts = parse_timestamp_tz("2024-06-01 12:00:00+02").unwrap();
        assert_eq!(format_timestamp_tz(ts), "2024-06-01T10:00:00Z");
        let ts = parse_timestamp_tz("2024-06-01T05:30:00+05:30").unwrap();
        assert_eq!(format_timestamp_tz(ts), "2024-06-01T00:00:00Z");
    }

    #[test]
    fn sqlite_current_timestamp_form_parses() {
        let ts = parse_timestamp("2026-11-21 14:03:44").unwrap();
        assert_eq!(format_timestamp(ts), "2026-11-21T14:03:44");
        assert!(parse_timestamp("yesterday").is_none());
    }
}
