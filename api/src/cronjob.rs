//! CronJob schedules: when a CronJob's Jobs are due.
//!
//! `spec.schedule` is standard cron syntax - five fields (minute, hour,
//! day of month, month, day of week) or a shorthand (`@hourly`, `@daily`,
//! `@weekly`, `@monthly`, `@yearly`) - read in `spec.timeZone` (an IANA
//! name such as `Europe/Paris`; UTC when absent). Parsing is the `croner`
//! crate's, configured as Kubernetes' parser (robfig/cron's standard one):
//! no seconds field, and day of month and day of week both restricted
//! means either. The apiserver validates with it and the controller
//! schedules with it, so what is accepted is what runs.

use chrono::{DateTime, Utc};
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// A parsed schedule in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: chrono_tz::Tz,
}

/// Why a schedule or a time zone is refused (the text of the 422).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("{0}")]
    Schedule(String),
    #[error("unknown time zone {0}")]
    TimeZone(String),
    #[error("cannot use TZ or CRON_TZ in schedule, use timeZone field instead")]
    ZoneInSchedule,
}

impl Schedule {
    /// Parses `schedule`, read in `time_zone` (UTC when `None`).
    pub fn parse(schedule: &str, time_zone: Option<&str>) -> Result<Schedule, ScheduleError> {
        if schedule.contains("TZ") {
            return Err(ScheduleError::ZoneInSchedule);
        }
        let zone = match time_zone {
            None | Some("") => chrono_tz::UTC,
            Some(name) => name
                .parse()
                .map_err(|_| ScheduleError::TimeZone(name.to_string()))?,
        };
        // The most common mistake gets robfig/cron's words, as on a real
        // cluster; croner words the rest.
        let fields: Vec<&str> = schedule.split_whitespace().collect();
        if !schedule.trim_start().starts_with('@') && fields.len() != 5 {
            return Err(ScheduleError::Schedule(format!(
                "expected exactly 5 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            )));
        }
        let parser = CronParser::builder()
            .seconds(Seconds::Disallowed)
            .year(Year::Disallowed)
            .build();
        let cron = parser
            .parse(schedule)
            .map_err(|e| ScheduleError::Schedule(e.to_string()))?;
        Ok(Schedule { cron, zone })
    }

    /// The first time strictly after `after` that the schedule names.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron
            .find_next_occurrence(&after.with_timezone(&self.zone), false)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest scheduled time in `(since, now]`, and how many there were
    /// (upstream's `mostRecentScheduleTime`; counting stops at `limit`).
    pub fn most_recent(
        &self,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
        limit: usize,
    ) -> (Option<DateTime<Utc>>, usize) {
        let mut latest = None;
        let mut count = 0;
        let mut t = since;
        while let Some(next) = self.next_after(t).filter(|n| *n <= now) {
            latest = Some(next);
            count += 1;
            if count >= limit {
                break;
            }
            t = next;
        }
        (latest, count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn five_fields_and_shorthands_name_their_times() {
        let every_5 = Schedule::parse("*/5 * * * *", None).unwrap();
        assert_eq!(
            every_5.next_after(at("2026-12-07T12:01:30Z")),
            Some(at("2026-12-07T12:05:00Z"))
        );
        let hourly = Schedule::parse("@hourly", None).unwrap();
        assert_eq!(
            hourly.next_after(at("2026-12-07T12:00:00Z")),
            Some(at("2026-12-07T13:00:00Z"))
        );
    }

    #[test]
    fn a_time_zone_moves_the_hours() {
        let nine_in_paris = Schedule::parse("0 9 * * *", Some("Europe/Paris")).unwrap();
        assert_eq!(
            nine_in_paris.next_after(at("2026-12-07T00:00:00Z")),
            Some(at("2026-12-07T08:00:00Z"))
        );
    }

    #[test]
    fn bad_schedules_and_zones_are_refused() {
        assert_eq!(
            Schedule::parse("every minute", None)
                .unwrap_err()
                .to_string(),
            "expected exactly 5 fields, found 2: [every minute]"
        );
        assert!(matches!(
            Schedule::parse("61 * * * *", None),
            Err(ScheduleError::Schedule(_))
        ));
        assert!(
            Schedule::parse("0 0 0 * * *", None).is_err(),
            "no seconds field"
        );
        assert_eq!(
            Schedule::parse("* * * * *", Some("Mars/Olympus")).unwrap_err(),
            ScheduleError::TimeZone("Mars/Olympus".into())
        );
        assert_eq!(
            Schedule::parse("TZ=UTC * * * * *", None).unwrap_err(),
            ScheduleError::ZoneInSchedule
        );
    }

    #[test]
    fn the_most_recent_missed_time_is_found() {
        let minutely = Schedule::parse("* * * * *", None).unwrap();
        assert_eq!(
            minutely.most_recent(at("2026-12-07T12:00:00Z"), at("2026-12-07T12:03:30Z"), 100),
            (Some(at("2026-12-07T12:03:00Z")), 3)
        );
        assert_eq!(
            minutely.most_recent(at("2026-12-07T12:00:00Z"), at("2026-12-07T12:00:30Z"), 100),
            (None, 0)
        );
    }
}
