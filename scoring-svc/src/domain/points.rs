//! How many points one event earns under a rule's caps, given what the rule already awarded the
//! profile. Caps count points (absolute values), so a negative rule is capped like a positive
//! one. An award that would pass a cap is cut to what is left — possibly 0, and the entry then
//! names the cap, so the ledger says why an event scored less than the rule's points.

use chrono::{DateTime, Utc};
use platform::clock::Tz;

use super::defs::Caps;

/// An earlier award of the same rule to the same profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prior {
    pub delta: f64,
    pub earned: DateTime<Utc>,
}

/// What an event earns.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Award {
    pub delta: f64,
    /// The cap that cut it: `once`, `per_day`, `window` or `lifetime`.
    pub capped: Option<&'static str>,
}

/// The award of `points` for an event at `earned` under `caps`; days are counted in
/// `zone`. A window cap of `d` days limits the points of any `d`-day window containing
/// the event: it counts earlier and later awards less than `d` days away (later ones exist when
/// events arrive out of order).
pub fn award(points: f64, caps: &Caps, prior: &[Prior], earned: DateTime<Utc>, zone: Tz) -> Award {
    if caps.once && prior.iter().any(|p| p.delta != 0.0) {
        return Award {
            delta: 0.0,
            capped: Some("once"),
        };
    }
    let mut limit = points.abs();
    let mut capped = None;
    let mut cut = |cap: f64, used: f64, name: &'static str| {
        let left = (cap - used).max(0.0);
        if left < limit {
            limit = left;
            capped = Some(name);
        }
    };
    if let Some(cap) = caps.per_day {
        let day = facts::local_day(earned, zone);
        let used = prior
            .iter()
            .filter(|p| facts::local_day(p.earned, zone) == day)
            .map(|p| p.delta.abs())
            .sum();
        cut(cap, used, "per_day");
    }
    if let Some(w) = caps.window {
        let span = i64::from(w.days) * 86_400;
        let used = prior
            .iter()
            .filter(|p| (p.earned - earned).num_seconds().abs() < span)
            .map(|p| p.delta.abs())
            .sum();
        cut(w.max, used, "window");
    }
    if let Some(cap) = caps.lifetime {
        let used = prior.iter().map(|p| p.delta.abs()).sum();
        cut(cap, used, "lifetime");
    }
    Award {
        delta: if limit == 0.0 {
            0.0
        } else {
            limit.copysign(points)
        },
        capped,
    }
}

/// The awards of a rule's events again, in the order they were first awarded, each under the
/// caps with the ones before it as prior — what the rule gives a profile whose events changed
/// (an un-merge took some away: caps that the other person's events used up are free again).
/// `events` are (nominal points, earned) in award order.
pub fn reallocate(caps: &Caps, events: &[(f64, DateTime<Utc>)], zone: Tz) -> Vec<Award> {
    let mut prior = Vec::with_capacity(events.len());
    events
        .iter()
        .map(|&(points, earned)| {
            let a = award(points, caps, &prior, earned, zone);
            prior.push(Prior {
                delta: a.delta,
                earned,
            });
            a
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::defs::WindowCap;
    use chrono::Duration;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn caps_cut_to_what_is_left() {
        let caps = Caps {
            per_day: Some(25.0),
            ..Default::default()
        };
        let at = t("2026-01-01T03:00:00Z"); // 11:00 in Beijing
        let mut prior = Vec::new();
        let mut got = Vec::new();
        for i in 0..4 {
            let a = award(
                10.0,
                &caps,
                &prior,
                at + Duration::minutes(i),
                chrono_tz::Asia::Shanghai,
            );
            got.push(a.delta);
            prior.push(Prior {
                delta: a.delta,
                earned: at + Duration::minutes(i),
            });
        }
        assert_eq!(got, vec![10.0, 10.0, 5.0, 0.0]);
        // 16:30 UTC is the next day in Beijing: a fresh day.
        let next = award(
            10.0,
            &caps,
            &prior,
            t("2026-01-01T16:30:00Z"),
            chrono_tz::Asia::Shanghai,
        );
        assert_eq!(next.delta, 10.0);
        let same_utc_day = award(
            10.0,
            &caps,
            &prior,
            t("2026-01-01T15:00:00Z"),
            chrono_tz::Asia::Shanghai,
        );
        assert_eq!(same_utc_day.capped, Some("per_day"));
    }

    #[test]
    fn once_window_lifetime_and_negative_points() {
        let at = t("2026-01-10T00:00:00Z");
        let once = Caps {
            once: true,
            ..Default::default()
        };
        let p = [Prior {
            delta: 5.0,
            earned: at,
        }];
        assert_eq!(
            award(5.0, &once, &p, at, chrono_tz::UTC).capped,
            Some("once")
        );
        assert_eq!(award(5.0, &once, &[], at, chrono_tz::UTC).delta, 5.0);
        let w = Caps {
            window: Some(WindowCap { days: 7, max: 12.0 }),
            ..Default::default()
        };
        let p = [Prior {
            delta: -10.0,
            earned: at - Duration::days(6),
        }];
        assert_eq!(award(-5.0, &w, &p, at, chrono_tz::UTC).delta, -2.0);
        assert_eq!(
            award(-5.0, &w, &p, at + Duration::days(1), chrono_tz::UTC).delta,
            -5.0
        );
        // A late event counts awards after it too.
        assert_eq!(
            award(-5.0, &w, &p, at - Duration::days(12), chrono_tz::UTC).delta,
            -2.0
        );
        let l = Caps {
            lifetime: Some(3.0),
            ..Default::default()
        };
        let a = award(5.0, &l, &[], at, chrono_tz::UTC);
        assert_eq!((a.delta, a.capped), (3.0, Some("lifetime")));
    }

    #[test]
    fn reallocation_frees_what_other_events_used() {
        let at = t("2026-01-10T02:00:00Z");
        let once = Caps {
            once: true,
            ..Default::default()
        };
        // Alone, the second form is the first: it earns.
        let got = reallocate(&once, &[(25.0, at)], chrono_tz::Asia::Shanghai);
        assert_eq!((got[0].delta, got[0].capped), (25.0, None));
        let window = Caps {
            window: Some(WindowCap { days: 3, max: 5.0 }),
            ..Default::default()
        };
        let events = [
            (5.0, at + Duration::days(2)),
            (5.0, at),
            (5.0, at + Duration::days(4)),
        ];
        let got: Vec<f64> = reallocate(&window, &events, chrono_tz::Asia::Shanghai)
            .iter()
            .map(|a| a.delta)
            .collect();
        assert_eq!(got, vec![5.0, 0.0, 0.0], "in award order, not by time");
    }
}
