//! Time as the service sees it: the system clock in production, a clock a test moves by hand
//! (window exits, midnight rolls) — and the tenant-local day and midnight derived from it.

use chrono::{DateTime, Duration, NaiveDate, Utc};

pub use platform::clock::{local_midnight, Clock, ManualClock, SharedClock, SystemClock, Tz};

/// When a result that may change on `day` must be looked at again: that day's local midnight
/// (a few seconds after), or — when the change may come later today — shortly from now.
pub fn due_at(day: NaiveDate, today: NaiveDate, now: DateTime<Utc>, zone: Tz) -> DateTime<Utc> {
    if day <= today {
        now + Duration::minutes(10)
    } else {
        local_midnight(day, zone) + Duration::seconds(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn midnights_and_due_times() {
        let d = NaiveDate::from_ymd_opt(2026, 3, 31).unwrap();
        assert_eq!(
            local_midnight(d, chrono_tz::Asia::Shanghai).to_rfc3339(),
            "2026-03-30T16:00:00+00:00"
        );
        let now: DateTime<Utc> = "2026-03-30T10:00:00Z".parse().unwrap();
        let today = facts::local_day(now, chrono_tz::Asia::Shanghai);
        assert_eq!(
            due_at(d, today, now, chrono_tz::Asia::Shanghai).to_rfc3339(),
            "2026-03-30T16:00:01+00:00"
        );
        assert_eq!(
            due_at(today, today, now, chrono_tz::Asia::Shanghai),
            now + Duration::minutes(10)
        );
        let c = ManualClock::new(now);
        c.advance(Duration::hours(7));
        assert_eq!(c.now(), now + Duration::hours(7));
    }
}
