//! Calendar dates for `secret_expires`, and today's date from the wall clock.

/// A civil date (proleptic Gregorian), as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Date(pub i64);

impl Date {
    /// `YYYY-MM-DD`; a TOML date-time's date part is accepted too.
    pub fn parse(s: &str) -> Option<Date> {
        let s = s.get(..10)?;
        let shape = s.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
        if !shape {
            return None;
        }
        let y: i64 = s[..4].parse().ok()?;
        let m: u32 = s[5..7].parse().ok()?;
        let d: u32 = s[8..10].parse().ok()?;
        if !(1..=12).contains(&m) || d < 1 || d > days_in_month(y, m) {
            return None;
        }
        Some(Date(days_from_civil(y, m, d)))
    }

    pub fn today() -> Date {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Date(secs.div_euclid(86_400))
    }
}

impl std::fmt::Display for Date {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (y, m, d) = civil_from_days(self.0);
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's algorithms.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The warning for a client secret that expires within 7 days (or has expired), if any.
pub fn expiry_notice(expires: Date, today: Date) -> Option<String> {
    let left = expires.0 - today.0;
    match left {
        8.. => None,
        1..=7 => Some(format!(
            "the client secret expires on {expires} (in {left} day{}): create a new one in \
             Entra ID and update client_secret and secret_expires",
            if left == 1 { "" } else { "s" }
        )),
        0 => Some(format!(
            "the client secret expires today ({expires}): create a new one in Entra ID and \
             update client_secret and secret_expires"
        )),
        _ => Some(format!(
            "the client secret expired on {expires}: create a new one in Entra ID and update \
             client_secret and secret_expires"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for s in ["1970-01-01", "2000-02-29", "2026-11-22", "2100-12-31"] {
            assert_eq!(Date::parse(s).unwrap().to_string(), s);
        }
        assert_eq!(Date::parse("1970-01-02"), Some(Date(1)));
        assert_eq!(
            Date::parse("2026-12-01T00:00:00Z").unwrap().to_string(),
            "2026-12-01"
        );
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-1-1",
            "tomorrow",
            "2026-1-011",
        ] {
            assert_eq!(Date::parse(bad), None, "{bad}");
        }
        assert!(Date::today() > Date::parse("2024-01-01").unwrap());
    }

    #[test]
    fn the_warning_starts_seven_days_before() {
        let exp = Date::parse("2026-12-10").unwrap();
        let on = |s| expiry_notice(exp, Date::parse(s).unwrap());
        assert_eq!(on("2026-12-02"), None);
        assert!(on("2026-12-03").unwrap().contains("in 7 days"));
        assert!(on("2026-12-09").unwrap().contains("in 1 day)"));
        assert!(on("2026-12-10").unwrap().contains("today"));
        assert!(on("2026-12-11").unwrap().contains("expired on 2026-12-10"));
    }
}
