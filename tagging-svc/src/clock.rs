//! Time as the service sees it: the system clock in production, a clock a test moves by hand
//! (window exits, midnight rolls) — and the tenant-local day and midnight derived from it.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};

pub use platform::clock::{Clock, ManualClock, SharedClock, SystemClock};

/// The start (in UTC) of `day` at UTC offset `offset_minutes`.
pub fn local_midnight(day: NaiveDate, offset_minutes: i32) -> DateTime<Utc> {
    let tz = FixedOffset::east_opt(offset_minutes * 60)
        .unwrap_or(FixedOffset::east_opt(0).expect("UTC"));
    match tz.from_local_datetime(&day.and_hms_opt(0, 0, 0).expect("midnight")) {
        chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
        // A fixed offset has no gaps or folds.
        _ => day.and_hms_opt(0, 0, 0).expect("midnight").and_utc(),
    }
}

/// When a result that may change on `day` must be looked at again: that day's local midnight
/// (a few seconds after), or — when the change may come later today — shortly from now.
pub fn due_at(
    day: NaiveDate,
    today: NaiveDate,
    now: DateTime<Utc>,
    offset_minutes: i32,
) -> DateTime<Utc> {
    if day <= today {
        now + Duration::minutes(10)
    } else {
        local_midnight(day, offset_minutes) + Duration::seconds(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnights_and_due_times() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        assert_eq!(
            local_midnight(d, 480).to_rfc3339(),
            "2026-03-30T16:00:00+00:00"
        );
        let now: DateTime<Utc> = "2026-03-30T10:00:00Z".parse().unwrap();
        let today = facts::local_day(now, 480);
        assert_eq!(
            due_at(d, today, now, 480).to_rfc3339(),
            "2026-03-30T16:00:01+00:00"
        );
        assert_eq!(due_at(today, today, now, 480), now + Duration::minutes(10));
        let c = ManualClock::new(now);
        c.advance(Duration::hours(7));
        assert_eq!(c.now(), now + Duration::hours(7));
    }
}
