//! The analytics dimensions over time, without I/O: `new_profiles` (profiles first seen on each
//! tenant-local day of a period) and `activity_hours` (events by hour of the day and day of the
//! week, in the tenant's time zone, for heat maps) — their periods' checks and the rows the store
//! reads shaped into buckets.
//!
//! - `new_profiles`: one bucket per day from `from` to `to` (zero days included), keyed
//!   `"YYYY-MM-DD"`, `share` of the population; `with_value` the profiles first seen in the
//!   period, `missing` the rest of the population (first seen before or after it, or never
//!   known: profiles the projection held before it kept first sightings).
//! - `activity_hours`: 168 buckets, Monday 00:00 first and Sunday 23:00 last, keyed
//!   `{"weekday": 1..=7 (Monday = 1), "hour": 0..=23}`; `count` is events and `share` their part
//!   of the period's events (`events`); no `with_value` / `missing` (the buckets count events,
//!   not profiles).

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde_json::json;

use super::analytics::{bucket, share, Bucket, DimensionError, Distribution};

/// Days a `new_profiles` period covers when `from` is not given (today and the 29 before).
pub const DEFAULT_DAYS: u32 = 30;
/// Most days of a `new_profiles` period.
pub const MAX_DAYS: u32 = 366;

/// The days `from ..= to` of a `new_profiles` dimension at `dimensions[i]`: `to` defaults to
/// `today`, `from` to [`DEFAULT_DAYS`] days ending at `to`; at most [`MAX_DAYS`] days.
pub fn period(
    i: usize,
    from: Option<&str>,
    to: Option<&str>,
    today: NaiveDate,
) -> Result<(NaiveDate, NaiveDate), DimensionError> {
    let err = |f: &str, m: String| DimensionError {
        field: format!("dimensions[{i}].{f}"),
        message: m,
    };
    let day = |f: &str, v: Option<&str>| {
        v.map(|s| {
            NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .ok()
                .filter(|d| d.format("%Y-%m-%d").to_string() == s)
                .ok_or_else(|| err(f, "must be a date like 2026-11-03".into()))
        })
        .transpose()
    };
    let to = day("to", to)?.unwrap_or(today);
    let from = match day("from", from)? {
        Some(f) => f,
        None => to
            .checked_sub_days(chrono::Days::new(u64::from(DEFAULT_DAYS - 1)))
            .ok_or_else(|| err("to", "is too early".into()))?,
    };
    if from > to {
        return Err(err("from", "must not be after `to`".into()));
    }
    if (to - from).num_days() >= i64::from(MAX_DAYS) {
        return Err(err(
            "from",
            format!("at most {MAX_DAYS} days before `to` (inclusive)"),
        ));
    }
    Ok((from, to))
}

/// The `new_profiles` distribution of `from ..= to` from the profiles first seen per day
/// (`counts`; days outside the period ignored) in a population of `total`.
pub fn new_profiles(
    from: NaiveDate,
    to: NaiveDate,
    counts: &BTreeMap<NaiveDate, u64>,
    total: u64,
) -> Distribution {
    let buckets: Vec<Bucket> = from
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|d| {
            let n = counts.get(&d).copied().unwrap_or(0);
            bucket(json!(d.format("%Y-%m-%d").to_string()), n, total)
        })
        .collect();
    let with: u64 = buckets.iter().map(|b| b.count).sum();
    Distribution {
        kind: "new_profiles",
        key: None,
        buckets,
        with_value: Some(with),
        missing: Some(total.saturating_sub(with)),
        events: None,
    }
}

/// The `activity_hours` distribution of events of `kind` (`None`: every event) from
/// `(day, hour, events)` rows (hours outside 0–23 ignored).
pub fn activity_hours(kind: Option<&str>, rows: &[(NaiveDate, u8, u64)]) -> Distribution {
    let mut grid = [[0u64; 24]; 7];
    for (day, hour, n) in rows {
        let w = day.weekday().num_days_from_monday() as usize;
        if let Some(cell) = grid[w].get_mut(usize::from(*hour)) {
            *cell += n;
        }
    }
    let events: u64 = grid.iter().flatten().sum();
    let buckets = grid
        .iter()
        .enumerate()
        .flat_map(|(w, hours)| {
            hours.iter().enumerate().map(move |(h, n)| Bucket {
                key: json!({"weekday": w + 1, "hour": h}),
                label: None,
                group_id: None,
                count: *n,
                of: None,
                share: share(*n, events),
            })
        })
        .collect();
    Distribution {
        kind: "activity_hours",
        key: kind.map(str::to_string),
        buckets,
        with_value: None,
        missing: None,
        events: Some(events),
    }
}

/// The `stage_conversion` distribution: for each stage, a bucket `{from: stage, to: null}` of
/// the profiles that `entered` it (share of the population), then one `{from, to}` per stage
/// some of them `reached` after it (share of those that entered: the conversion rate, `of`
/// them); `with_value` the profiles that entered any stage.
pub fn stage_conversion(
    entered: &[(String, u64)],
    reached: &[(String, String, u64)],
    with: u64,
    total: u64,
) -> Distribution {
    let mut stages: Vec<&(String, u64)> = entered.iter().collect();
    stages.sort_by(|a, b| a.0.cmp(&b.0));
    let mut buckets = Vec::new();
    for (stage, n) in stages {
        buckets.push(bucket(json!({"from": stage, "to": null}), *n, total));
        let mut to: Vec<&(String, String, u64)> =
            reached.iter().filter(|(a, _, _)| a == stage).collect();
        to.sort_by(|a, b| a.1.cmp(&b.1));
        for (_, b, r) in to {
            let mut c = bucket(json!({"from": stage, "to": b}), *r, *n);
            c.of = Some(*n);
            buckets.push(c);
        }
    }
    Distribution {
        kind: "stage_conversion",
        key: None,
        buckets,
        with_value: Some(with),
        missing: Some(total.saturating_sub(with)),
        events: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn periods_default_and_are_checked_naming_the_field() {
        let today = d("2026-11-30");
        assert_eq!(
            period(0, None, None, today).unwrap(),
            (d("2026-11-01"), today)
        );
        assert_eq!(
            period(0, Some("2026-11-03"), Some("2026-11-05"), today).unwrap(),
            (d("2026-11-03"), d("2026-11-05"))
        );
        assert_eq!(
            period(0, None, Some("2026-01-30"), today).unwrap().0,
            d("2026-01-01")
        );
        let field = |f: Option<&str>, t: Option<&str>| period(3, f, t, today).unwrap_err().field;
        assert_eq!(field(Some("2026-11-3"), None), "dimensions[3].from");
        assert_eq!(field(None, Some("yesterday")), "dimensions[3].to");
        assert_eq!(field(Some("2026-12-01"), None), "dimensions[3].from");
        assert_eq!(field(Some("2025-11-29"), None), "dimensions[3].from");
        // 366 days is the most.
        assert!(period(0, Some("2025-11-30"), None, today).is_ok());
    }

    #[test]
    fn every_day_has_a_bucket() {
        let counts = BTreeMap::from([(d("2026-11-03"), 2), (d("2026-12-01"), 9)]);
        let dist = new_profiles(d("2026-11-02"), d("2026-11-04"), &counts, 8);
        let got: Vec<(String, u64)> = dist
            .buckets
            .iter()
            .map(|b| (b.key.as_str().unwrap().to_string(), b.count))
            .collect();
        assert_eq!(
            got,
            vec![
                ("2026-11-02".into(), 0),
                ("2026-11-03".into(), 2),
                ("2026-11-04".into(), 0)
            ]
        );
        assert_eq!(dist.buckets[1].share, 0.25);
        assert_eq!((dist.with_value, dist.missing), (Some(2), Some(6)));
    }

    #[test]
    fn hours_fold_into_a_week() {
        // 2026-11-03 is a Tuesday, as is 2026-11-10.
        let rows = [
            (d("2026-11-03"), 1, 2),
            (d("2026-11-10"), 1, 1),
            (d("2026-11-08"), 23, 1),
            (d("2026-11-08"), 24, 5),
        ];
        let dist = activity_hours(Some("track.page_view"), &rows);
        assert_eq!(dist.buckets.len(), 168);
        assert_eq!(dist.buckets[0].key, json!({"weekday": 1, "hour": 0}));
        let tue_1 = &dist.buckets[24 + 1];
        assert_eq!(tue_1.key, json!({"weekday": 2, "hour": 1}));
        assert_eq!((tue_1.count, tue_1.share), (3, 0.75));
        assert_eq!(dist.buckets[167].key, json!({"weekday": 7, "hour": 23}));
        assert_eq!(dist.buckets[167].count, 1);
        assert_eq!(dist.events, Some(4));
        assert_eq!(dist.with_value, None);
    }
}
