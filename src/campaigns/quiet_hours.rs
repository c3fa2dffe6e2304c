//! Quiet hours: when a promotional message to a number may go, in the recipient's local time.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, FixedOffset, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::config::{parse_hhmm, QuietHours};
use crate::phone::Phone;

/// The rule for `to`: the one whose key is the longest prefix of its digits (`1` for the
/// country, `1212` for one area code in it), with that key.
pub fn rule_for<'a>(rules: &'a BTreeMap<String, QuietHours>, to: &Phone) -> Option<(&'a str, &'a QuietHours)> {
    rules
        .iter()
        .filter(|(key, _)| to.digits().starts_with(key.as_str()))
        .max_by_key(|(key, _)| key.len())
        .map(|(key, rule)| (key.as_str(), rule))
}

/// `None` when a message may go at `now`; else the first instant after the window ends.
pub fn held_until(now: DateTime<Utc>, rule: &QuietHours) -> Option<DateTime<Utc>> {
    let (start, end) = (parse_hhmm(&rule.start)?, parse_hhmm(&rule.end)?);
    match (&rule.time_zone, rule.utc_offset_minutes) {
        (Some(zone), _) => held_in(now, start, end, &zone.parse::<Tz>().ok()?),
        (None, Some(minutes)) => held_in(now, start, end, &FixedOffset::east_opt(minutes * 60)?),
        (None, None) => None,
    }
}

/// The window from minute `start` to minute `end` of the day (spanning midnight when `end` is
/// earlier), on the wall clock of `zone`.
fn held_in<Z: TimeZone>(now: DateTime<Utc>, start: u32, end: u32, zone: &Z) -> Option<DateTime<Utc>> {
    let local = now.with_timezone(zone);
    let minute = local.hour() * 60 + local.minute();
    let inside = if start <= end {
        (start..end).contains(&minute)
    } else {
        minute >= start || minute < end
    };
    if !inside || start == end {
        return None;
    }
    // The window ends at `end` today, or tomorrow when that is already past.
    let mut date = local.date_naive();
    if minute >= end {
        date = date.succ_opt()?;
    }
    let end_of_window = date.and_time(NaiveTime::from_hms_opt(end / 60, end % 60, 0)?);
    // A wall time the clocks skip (spring forward) ends the window when they skip it; one they
    // pass twice (fall back) ends it the first time it is still ahead.
    (0..=24 * 60)
        .find_map(|late| {
            let wall = zone.from_local_datetime(&(end_of_window + Duration::minutes(late)));
            [wall.clone().earliest(), wall.latest()].into_iter().flatten().find(|t| *t > now)
        })
        .map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(start: &str, end: &str, zone: Option<&str>, offset: Option<i32>) -> QuietHours {
        QuietHours {
            start: start.into(),
            end: end.into(),
            time_zone: zone.map(str::to_string),
            utc_offset_minutes: offset,
        }
    }

    fn ist() -> QuietHours {
        rule("21:00", "09:00", None, Some(330))
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
        let named = rule("21:00", "09:00", Some("Asia/Kolkata"), None);
        for (now, want) in cases {
            assert_eq!(held_until(utc(now), &named), want.map(utc), "at {now}, Asia/Kolkata");
        }
    }

    #[test]
    fn a_window_within_one_day_holds_only_inside_it() {
        let rule = rule("12:00", "14:00", None, Some(0));
        assert_eq!(held_until(utc("2026-01-10T11:59:00Z"), &rule), None);
        assert_eq!(held_until(utc("2026-01-10T13:15:00Z"), &rule), Some(utc("2026-01-10T14:00:00Z")));
        assert_eq!(held_until(utc("2026-01-10T14:00:00Z"), &rule), None);
    }

    #[test]
    fn a_named_zone_follows_daylight_saving_time() {
        // 21:00 to 08:00 in New York: EST (UTC-5) in winter, EDT (UTC-4) in summer.
        let ny = rule("21:00", "08:00", Some("America/New_York"), None);
        let cases = [
            ("2026-01-15T01:59:00Z", None),                         // 20:59 EST
            ("2026-01-15T02:00:00Z", Some("2026-01-15T13:00:00Z")), // 21:00 EST
            ("2026-07-15T00:59:00Z", None),                         // 20:59 EDT
            ("2026-07-15T01:00:00Z", Some("2026-07-15T12:00:00Z")), // 21:00 EDT
            ("2026-07-15T12:00:00Z", None),                         // 08:00 EDT, a fixed -300 would hold it
            // The night the clocks spring forward (8 March 2026, 02:00 EST to 03:00 EDT): it
            // starts on EST and ends on EDT.
            ("2026-03-08T02:00:00Z", Some("2026-03-08T12:00:00Z")),
            // The night they fall back (1 November 2026, 02:00 EDT to 01:00 EST).
            ("2026-11-01T01:00:00Z", Some("2026-11-01T13:00:00Z")),
        ];
        for (now, want) in cases {
            assert_eq!(held_until(utc(now), &ny), want.map(utc), "at {now}");
        }
    }

    #[test]
    fn a_window_ending_on_a_skipped_or_repeated_wall_time_ends_when_the_clock_passes_it() {
        // 02:30 does not exist in New York on 8 March 2026: the window ends when the clocks
        // jump from 02:00 EST to 03:00 EDT (07:00 UTC).
        let skipped = rule("22:00", "02:30", Some("America/New_York"), None);
        assert_eq!(held_until(utc("2026-03-08T05:00:00Z"), &skipped), Some(utc("2026-03-08T07:00:00Z")));
        // 01:30 happens twice on 1 November 2026: the window ends the first time (EDT, 05:30
        // UTC); once the clocks are back at 01:00 (EST) the wall clock is inside it again, until
        // the second 01:30 (06:30 UTC).
        let repeated = rule("22:00", "01:30", Some("America/New_York"), None);
        assert_eq!(
            held_until(utc("2026-11-01T04:00:00Z"), &repeated),
            Some(utc("2026-11-01T05:30:00Z"))
        );
        assert_eq!(held_until(utc("2026-11-01T05:45:00Z"), &repeated), None);
        assert_eq!(
            held_until(utc("2026-11-01T06:00:00Z"), &repeated),
            Some(utc("2026-11-01T06:30:00Z"))
        );
    }

    #[test]
    fn the_longest_key_that_prefixes_the_number_is_its_rule() {
        let rules = BTreeMap::from([
            ("1".to_string(), rule("21:00", "08:00", Some("America/New_York"), None)),
            ("1808".to_string(), rule("21:00", "08:00", Some("Pacific/Honolulu"), None)),
            ("91".to_string(), ist()),
        ]);
        let key = |raw: &str| rule_for(&rules, &Phone::parse(raw, "91").unwrap()).map(|(k, _)| k);
        assert_eq!(key("+12125550123"), Some("1"));
        assert_eq!(key("+18085550123"), Some("1808"));
        assert_eq!(key("+919876543210"), Some("91"));
        assert_eq!(key("+447700900123"), None);
    }
}
