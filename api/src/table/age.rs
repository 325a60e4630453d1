//! AGE: how kubectl says how old something is.
//!
//! `kubectl get` never prints timestamps; it prints `45s`, `3m20s`, `5h`,
//! `2d3h`, `400d`. The rule (apimachinery's `util/duration.HumanDuration`)
//! keeps two units while the smaller one still matters and drops it once
//! it does not: seconds are shown up to 2 minutes, `m+s` up to 10 minutes,
//! minutes up to 3 hours, `h+m` up to 8 hours, hours up to 2 days, `d+h` up
//! to 8 days, days up to 2 years, `y+d` up to 8 years, then years.

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

/// Formats an elapsed time like kubectl's AGE column.
///
/// Clocks of different machines disagree a little, so an object created
/// "up to a second in the future" is `0s`; anything further ahead is
/// `<invalid>`.
pub fn format_age(d: Duration) -> String {
    // Each unit truncates toward zero, like Go's int(d.Seconds()).
    let seconds = d.num_seconds();
    if seconds < -1 {
        return "<invalid>".to_string();
    }
    if seconds < 0 {
        return "0s".to_string();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = d.num_minutes();
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = d.num_hours();
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            dy => format!("{years}y{dy}d"),
        };
    }
    format!("{years}y")
}

/// The AGE of an object: time since its `metadata.creationTimestamp`,
/// `<unknown>` when it has none.
pub fn age_of(obj: &Value, now: DateTime<Utc>) -> String {
    since(super::timestamp(obj, "/metadata/creationTimestamp"), now)
}

/// Time since a moment, `<unknown>` for an unset one (upstream's
/// `translateTimestampSince`, used for every "how long ago" cell).
pub(super) fn since(moment: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match moment {
        Some(moment) => format_age(now - moment),
        None => "<unknown>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ms(millis: i64) -> Duration {
        Duration::milliseconds(millis)
    }

    const SECOND: i64 = 1000;
    const MINUTE: i64 = 60 * SECOND;
    const HOUR: i64 = 60 * MINUTE;
    const DAY: i64 = 24 * HOUR;
    const YEAR: i64 = 365 * DAY;

    #[test]
    fn formats_like_apimachinery_human_duration() {
        let cases = [
            (SECOND, "1s"),
            (45 * SECOND, "45s"),
            (70 * SECOND, "70s"),
            (190 * SECOND, "3m10s"),
            (200 * SECOND, "3m20s"),
            (5 * MINUTE, "5m"),
            (70 * MINUTE, "70m"),
            (47 * HOUR, "47h"),
            (49 * HOUR, "2d1h"),
            (2 * DAY + 3 * HOUR, "2d3h"),
            (8 * DAY + 2 * HOUR, "8d"),
            (367 * DAY, "367d"),
            (400 * DAY, "400d"),
            (2 * YEAR + 25 * HOUR, "2y1d"),
            (3 * YEAR + 12 * DAY, "3y12d"),
            (8 * YEAR + 2 * HOUR, "8y"),
        ];
        for (millis, want) in cases {
            assert_eq!(format_age(ms(millis)), want, "{millis}ms");
        }
    }

    #[test]
    fn switches_units_exactly_at_upstream_boundaries() {
        let cases = [
            (-2 * SECOND, "<invalid>"),
            (-2 * SECOND + 1, "0s"),
            (0, "0s"),
            (SECOND - 1, "0s"),
            (2 * MINUTE - 1, "119s"),
            (2 * MINUTE, "2m"),
            (2 * MINUTE + SECOND, "2m1s"),
            (10 * MINUTE - 1, "9m59s"),
            (10 * MINUTE, "10m"),
            (10 * MINUTE + SECOND, "10m"),
            (3 * HOUR - 1, "179m"),
            (3 * HOUR, "3h"),
            (3 * HOUR + MINUTE, "3h1m"),
            (8 * HOUR - 1, "7h59m"),
            (8 * HOUR, "8h"),
            (8 * HOUR + 59 * MINUTE, "8h"),
            (2 * DAY - 1, "47h"),
            (2 * DAY, "2d"),
            (2 * DAY + HOUR, "2d1h"),
            (8 * DAY - 1, "7d23h"),
            (8 * DAY, "8d"),
            (8 * DAY + 23 * HOUR, "8d"),
            (2 * YEAR - 1, "729d"),
            (2 * YEAR, "2y"),
            (2 * YEAR + 23 * HOUR + 59 * MINUTE, "2y"),
            (2 * YEAR + DAY - 1, "2y"),
            (2 * YEAR + DAY, "2y1d"),
            (3 * YEAR, "3y"),
            (7 * YEAR, "7y"),
            (8 * YEAR - 1, "7y364d"),
            (8 * YEAR, "8y"),
            (8 * YEAR + 364 * DAY, "8y"),
            (9 * YEAR, "9y"),
        ];
        for (millis, want) in cases {
            assert_eq!(format_age(ms(millis)), want, "{millis}ms");
        }
    }

    #[test]
    fn age_comes_from_the_creation_timestamp() {
        let now: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap();
        let obj = json!({"metadata": {"name": "x", "creationTimestamp": "2026-11-25T09:56:40Z"}});
        assert_eq!(age_of(&obj, now), "3m20s");
        assert_eq!(
            age_of(&json!({"metadata": {"name": "x"}}), now),
            "<unknown>"
        );
        assert_eq!(age_of(&json!({}), now), "<unknown>");
    }
}
