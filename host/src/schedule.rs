//! When a source runs by itself under `roster serve`: an interval (`"30m"`) or a five-field
//! cron expression (`"0 2 * * *"`) read in an IANA time zone.

use anyhow::{anyhow, bail, Result};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::time::Duration;

#[derive(Debug, Clone)]
pub enum Schedule {
    /// Every so long, counted from the server's start and then from each tick.
    Interval(Duration),
    Cron {
        cron: Box<croner::Cron>,
        text: String,
        tz: Tz,
    },
}

impl Schedule {
    /// `schedule` and `timezone` as written in a source's table; errors name the key.
    pub fn parse(schedule: &str, timezone: Option<&str>) -> Result<Schedule> {
        let tz = match timezone {
            Some(name) => name.parse::<Tz>().map_err(|_| {
                anyhow!("timezone: unknown time zone {name:?} (use an IANA name like \"Europe/Prague\")")
            })?,
            None => local_zone(),
        };
        let text = schedule.trim();
        if text.split_whitespace().count() == 5 {
            let cron = croner::parser::CronParser::builder()
                .seconds(croner::parser::Seconds::Disallowed)
                .build()
                .parse(text)
                .map_err(|e| anyhow!("schedule: invalid cron expression {text:?}: {e}"))?;
            return Ok(Schedule::Cron {
                cron: Box::new(cron),
                text: text.to_string(),
                tz,
            });
        }
        if timezone.is_some() {
            bail!("timezone: only a cron schedule has a time zone; {text:?} is an interval");
        }
        let every = crate::config::parse_duration(text).map_err(|_| {
            anyhow!("schedule: {text:?} is neither an interval (\"30m\", \"24h\") nor a five-field cron expression (\"0 2 * * *\")")
        })?;
        if every < Duration::from_secs(1) {
            bail!("schedule: an interval of at least 1s, got {text:?}");
        }
        Ok(Schedule::Interval(every))
    }

    /// The first tick strictly after `after`.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Interval(d) => Some(after + chrono::Duration::from_std(*d).ok()?),
            Schedule::Cron { cron, tz, .. } => cron
                .find_next_occurrence(&after.with_timezone(tz), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
        }
    }

    /// As configured, for the API and the console.
    pub fn describe(&self) -> String {
        match self {
            Schedule::Interval(d) => format!("every {}", humantime(*d)),
            Schedule::Cron { text, tz, .. } => format!("{text} ({tz})"),
        }
    }
}

fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86400 == 0 => format!("{}d", s / 86400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The machine's zone (TZ, else the system's), UTC when it has none we know.
fn local_zone() -> Tz {
    let name = std::env::var("TZ")
        .ok()
        .map(|t| t.trim_start_matches(':').to_string())
        .filter(|t| !t.is_empty())
        .or_else(|| iana_time_zone::get_timezone().ok());
    name.and_then(|n| n.parse().ok()).unwrap_or(Tz::UTC)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn intervals_and_cron_with_zones() {
        let t = Utc.with_ymd_and_hms(2026, 3, 28, 23, 30, 0).unwrap();
        let every = Schedule::parse("30m", None).unwrap();
        assert_eq!(
            every.next_after(t).unwrap(),
            t + chrono::Duration::minutes(30)
        );
        // 02:00 in Prague (UTC+1 before the March change) is 01:00 UTC.
        let nightly = Schedule::parse("0 2 * * *", Some("Europe/Prague")).unwrap();
        assert_eq!(
            nightly.next_after(t).unwrap(),
            Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap()
        );
        assert_eq!(nightly.describe(), "0 2 * * * (Europe/Prague)");
    }

    #[test]
    fn errors_name_the_key() {
        let e = Schedule::parse("0 25 * * *", Some("UTC")).unwrap_err();
        assert!(e.to_string().starts_with("schedule:"), "{e}");
        let e = Schedule::parse("0 2 * * *", Some("Mars/Olympus")).unwrap_err();
        assert!(e.to_string().starts_with("timezone:"), "{e}");
        let e = Schedule::parse("often", None).unwrap_err();
        assert!(e.to_string().starts_with("schedule:"), "{e}");
        let e = Schedule::parse("1h", Some("UTC")).unwrap_err();
        assert!(e.to_string().starts_with("timezone:"), "{e}");
    }
}
