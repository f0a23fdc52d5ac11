use chrono::Duration;
use serde_json::{json, Value};

use super::support::*;
use crate::{next_expiry, ProfileFacts};

fn expiry(root: Value, p: &ProfileFacts) -> Option<chrono::NaiveDate> {
    next_expiry(&cond(root), p, &ctx())
}

fn in_days(n: i64) -> chrono::NaiveDate {
    ctx().today + Duration::days(n)
}

fn views(days_ago: &[i64]) -> ProfileFacts {
    let mut p = ProfileFacts::new("p");
    for d in days_ago {
        p.add_count("e:track.page_view", in_days(-d), 1);
    }
    p
}

fn last7(op: &str, n: u64) -> Value {
    json!({"type": "behaviour", "event": "track.page_view", "count": {"op": op, "value": n},
           "window": {"type": "last", "days": 7}})
}

#[test]
fn timeless_conditions_never_expire() {
    let p = views(&[1, 2]);
    assert_eq!(
        expiry(json!({"type": "tag", "op": "has", "tags": ["a"]}), &p),
        None
    );
    let all =
        json!({"type": "behaviour", "event": "track.page_view", "window": {"type": "all_time"}});
    assert_eq!(expiry(all, &p), None);
    let range = json!({"type": "behaviour", "event": "track.page_view",
        "window": {"type": "range", "from": "2024-06-01", "to": "2024-06-30"}});
    assert_eq!(expiry(range, &p), None);
    assert_eq!(
        expiry(last7("gte", 1), &ProfileFacts::new("p")),
        None,
        "nothing to leave"
    );
}

#[test]
fn buckets_leave_the_window() {
    // A bucket 2 days old is in the last 7 days until today + 4 and out on today + 5.
    assert_eq!(expiry(last7("gte", 1), &views(&[2])), Some(in_days(5)));
    // Two buckets: the first leaving does not change "at least once"; the second does.
    assert_eq!(expiry(last7("gte", 1), &views(&[5, 1])), Some(in_days(6)));
    // ... but it changes "at least twice".
    assert_eq!(expiry(last7("gte", 2), &views(&[5, 1])), Some(in_days(2)));
    // Did not do: true again once the bucket has left.
    assert_eq!(expiry(last7("eq", 0), &views(&[3])), Some(in_days(4)));
    // Under NOT, the same day.
    let not = json!({"type": "not", "child": last7("gte", 1)});
    assert_eq!(expiry(not, &views(&[3])), Some(in_days(4)));
}

#[test]
fn future_buckets_enter_the_window() {
    assert_eq!(expiry(last7("gte", 1), &views(&[-3])), Some(in_days(3)));
}

#[test]
fn relative_dates_slide_past_values() {
    let mut p = ProfileFacts::new("p");
    p.set_property_json(
        "signup",
        &json!(in_days(-20).format("%Y-%m-%d").to_string()),
    );
    // signup < today − 30: false now, true from the day today − 30 passes it.
    let older = prop("signup", "date", "lt", json!({"days_ago": 30}));
    assert_eq!(expiry(older, &p), Some(in_days(11)));
    let recent = prop("signup", "date", "gte", json!({"days_ago": 30}));
    assert_eq!(expiry(recent, &p), Some(in_days(11)));
    let exactly = prop("signup", "date", "eq", json!({"days_ago": 25}));
    assert_eq!(expiry(exactly, &p), Some(in_days(5)));
    let untouched = prop("other", "date", "lt", json!({"days_ago": 30}));
    assert_eq!(expiry(untouched, &p), None);
}

#[test]
fn relative_datetimes_expire_early_never_late() {
    let mut p = ProfileFacts::new("p");
    let seen = ctx().now - Duration::days(2);
    p.set_property_json("seen", &json!(seen.to_rfc3339()));
    // seen ≥ now − 10 days flips 8 days (and a second) from now: reported a day early.
    let active = prop("seen", "datetime", "gte", json!({"days_ago": 10}));
    let day = expiry(active, &p).unwrap();
    assert!(day <= in_days(8) && day >= in_days(6), "{day}");
    // Flipping within hours: today itself (re-check later today).
    let just_now = prop("seen", "datetime", "gte", json!({"days_ago": 2}));
    assert_eq!(expiry(just_now, &p), Some(in_days(0)));
}

#[test]
fn filters_with_relative_dates_count_too() {
    let mut p = ProfileFacts::new("p");
    p.push_event(
        crate::EventFact::new("e1", "track.form_submit", in_days(-1))
            .with_prop_json("due", &json!(in_days(4).format("%Y-%m-%d").to_string())),
    );
    let overdue = json!({"type": "behaviour", "event": "track.form_submit", "window": {"type": "all_time"},
        "filters": [{"key": "due", "value_type": "date", "op": "lt", "value": {"days_ago": 0}}]});
    assert_eq!(expiry(overdue, &p), Some(in_days(5)));
}

#[test]
fn decaying_scores_expire_when_they_cross_a_bound() {
    let now = ctx().now;
    let mut p = ProfileFacts::new("p");
    // 10 held + 80 halving every 10 days: 50 after 10 days.
    p.set_score(
        "engagement",
        crate::ScoreFold::new(10.0, 80.0, now, Some(10.0)),
        now,
    );
    let gte = |v: f64| {
        json!({"type": "property", "key": "score.engagement", "value_type": "number",
               "op": "gte", "value": v})
    };
    // The crossing is ten days on; re-checked the day before (two hours of zone margin).
    assert_eq!(expiry(gte(50.0), &p), Some(in_days(9)));
    // Never reached (it only falls towards 10), or already below.
    assert_eq!(expiry(gte(5.0), &p), None);
    assert_eq!(expiry(gte(95.0), &p), None);
    let between = json!({"type": "property", "key": "score.engagement",
        "value_type": "number", "op": "between", "value": [20.0, 30.0]});
    assert!(expiry(between, &p).is_some());
    // A score that does not decay never expires.
    p.set_score("engagement", crate::ScoreFold::constant(90.0, now), now);
    assert_eq!(expiry(gte(50.0), &p), None);
}
