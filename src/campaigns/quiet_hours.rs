//! Quiet hours: when a promotional message to a number may go, in the recipient's local time.

use chrono::{DateTime, Duration, FixedOffset, Timelike, Utc};

use crate::config::{parse_hhmm, QuietHours};

/// `None` when a message may go at `now`; else the first instant after the window ends.
pub fn held_until(now: DateTime<Utc>, rule: &QuietHours) -> Option<DateTime<Utc>> {
    let (start, end) = (parse_hhmm(&rule.start)?, parse_hhmm(&rule.end)?);
    let offset = FixedOffset::east_opt(rule.utc_offset_minutes * 60)?;
    let local = now.with_timezone(&offset);
    let minute = local.hour() * 60 + local.minute();
    let inside = if start <= end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    };
    if !inside || start == end {
        return None;
    }
    // Minutes from now to the window's end, wrapping past midnight.
    let wait = (end + 24 * 60 - minute) % (24 * 60);
    let since_minute = Duration::seconds(i64::from(local.second())) + Duration::nanoseconds(i64::from(local.nanosecond()));
    Some(now + Duration::minutes(i64::from(wait)) - since_minute)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ist() -> QuietHours {
        QuietHours {
            start: "21:00".into(),
            end: "09:00".into(),
            utc_offset_minutes: 330,
        }
    }

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn india_holds_from_nine_at_night_to_nine_in_the_morning_ist() {
        let cases = [
            // (UTC now, held until)
            ("2026-01-10T15:29:59Z", None),                         // 20:59:59 IST: still allowed
            ("2026-01-10T15:30:00Z", Some("2026-01-11T03:30:00Z")), // 21:00 IST
            ("2026-01-10T20:00:30Z", Some("2026-01-11T03:30:00Z")), // 01:30:30 IST
            ("2026-01-11T03:29:00Z", Some("2026-01-11T03:30:00Z")), // 08:59 IST
            ("2026-01-11T03:30:00Z", None),                         // 09:00 IST
            ("2026-01-11T08:00:00Z", None),                         // 13:30 IST
        ];
        for (now, want) in cases {
            assert_eq!(held_until(utc(now), &ist()), want.map(utc), "at {now}");
        }
    }

    #[test]
    fn a_window_within_one_day_holds_only_inside_it() {
        let rule = QuietHours {
            start: "12:00".into(),
            end: "14:00".into(),
            utc_offset_minutes: 0,
        };
        assert_eq!(held_until(utc("2026-01-10T11:59:00Z"), &rule), None);
        assert_eq!(held_until(utc("2026-01-10T13:15:00Z"), &rule), Some(utc("2026-01-10T14:00:00Z")));
        assert_eq!(held_until(utc("2026-01-10T14:00:00Z"), &rule), None);
    }
}
