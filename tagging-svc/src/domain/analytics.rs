//! What an analytics request asks for and how its answer is shaped, without I/O: the dimensions
//! a population (the tenant, or the profiles matching a condition) is broken down by, their
//! checks (errors name the field), and the counts the store reads turned into chart-ready
//! buckets with their share of the population.
//!
//! Dimensions:
//! - `property`: profiles per value of a string or bool property (`contact.city`,
//!   `contact.gender`, `source.first.level2`, `lead.stage` …), the most frequent first;
//! - `stage`: `property` on `lead.stage`;
//! - `bands`: profiles per band of a number — a property (`contact.age`) or a lead score
//!   (`score.engagement`, valued now) — between the given bounds;
//! - `tags`: every tag's holders and share (tag coverage), optionally of one group;
//! - `content_tags`: profiles with events on content of each tag in a window (interest);
//! - `new_profiles`, `activity_hours`, `stage_conversion`: over time, see
//!   [`super::analytics_time`].
//!
//! A profile with several values of a property counts once under each; `with_value` counts it
//! once.

use chrono::NaiveDate;
use proto::condition::Window;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most dimensions per request.
pub const MAX_DIMENSIONS: usize = 20;
/// Most buckets a `property` or `content_tags` dimension answers.
pub const MAX_LIMIT: u32 = 200;
/// Buckets answered when `limit` is not given.
pub const DEFAULT_LIMIT: u32 = 20;
/// Most bounds of a `bands` dimension.
pub const MAX_BOUNDS: usize = 50;

/// One breakdown asked for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Dimension {
    Property {
        key: String,
        #[serde(default)]
        limit: Option<u32>,
    },
    Stage {},
    Bands {
        key: String,
        /// Increasing; bands are `< b0`, `[b0, b1)`, …, `≥ bn`.
        bounds: Vec<f64>,
    },
    Tags {
        #[serde(default)]
        group_id: Option<String>,
    },
    ContentTags {
        #[serde(default)]
        window: Window,
        #[serde(default)]
        limit: Option<u32>,
    },
    /// Profiles first seen per tenant-local day, `from ..= to` (`YYYY-MM-DD`; the last 30
    /// days by default).
    NewProfiles {
        #[serde(default)]
        from: Option<String>,
        #[serde(default)]
        to: Option<String>,
    },
    /// Events (of `event` only, when given) by hour of the week in `window`.
    ActivityHours {
        #[serde(default)]
        event: Option<String>,
        #[serde(default)]
        window: Window,
    },
    /// Profiles that entered each stage on days `from ..= to` (the last 30 days by default) and,
    /// of them, those that went on to enter each other stage by the end of `to`.
    StageConversion {
        #[serde(default)]
        from: Option<String>,
        #[serde(default)]
        to: Option<String>,
    },
}

/// A dimension's problem: the field under `dimensions[i]` and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DimensionError {
    pub field: String,
    pub message: String,
}

/// Checks a window at `dimensions[i].window`.
fn check_window(i: usize, window: &Window) -> Result<(), DimensionError> {
    let err = |f: &str, m: &str| DimensionError {
        field: format!("dimensions[{i}].{f}"),
        message: m.into(),
    };
    match window {
        Window::Last { days } if !rules::LAST_DAYS.contains(days) => {
            Err(err("window.days", "must be 1..=365"))
        }
        Window::Range { from, to } if from > to => {
            Err(err("window", "`from` must not be after `to`"))
        }
        _ => Ok(()),
    }
}

impl Dimension {
    /// Checks the dimension at `dimensions[i]` as far as the tenant's day does not matter: of a
    /// `new_profiles` period whose `to` is left to default, only the formats (see
    /// [`Self::check_on`]).
    pub fn check(&self, i: usize) -> Result<(), DimensionError> {
        self.check_at(i, None)
    }

    /// Checks the dimension at `dimensions[i]` on the tenant's day `today`.
    pub fn check_on(&self, i: usize, today: NaiveDate) -> Result<(), DimensionError> {
        self.check_at(i, Some(today))
    }

    fn check_at(&self, i: usize, today: Option<NaiveDate>) -> Result<(), DimensionError> {
        let err = |f: &str, m: String| DimensionError {
            field: format!("dimensions[{i}].{f}"),
            message: m,
        };
        let limit = |l: Option<u32>| match l {
            Some(n) if n == 0 || n > MAX_LIMIT => {
                Err(err("limit", format!("must be 1..={MAX_LIMIT}")))
            }
            _ => Ok(()),
        };
        match self {
            Dimension::Property { key, limit: l } => {
                if !rules::valid_key(key) {
                    return Err(err(
                        "key",
                        "must be a property key like contact.city".into(),
                    ));
                }
                limit(*l)
            }
            Dimension::Stage {} | Dimension::Tags { .. } => Ok(()),
            Dimension::Bands { key, bounds } => {
                if !rules::valid_key(key) {
                    return Err(err("key", "must be a property key like contact.age".into()));
                }
                if bounds.is_empty() || bounds.len() > MAX_BOUNDS {
                    return Err(err("bounds", format!("must have 1..={MAX_BOUNDS} numbers")));
                }
                if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1])
                {
                    return Err(err("bounds", "must be finite and increasing".into()));
                }
                Ok(())
            }
            Dimension::ContentTags { window, limit: l } => {
                check_window(i, window)?;
                limit(*l)
            }
            Dimension::NewProfiles { from, to } | Dimension::StageConversion { from, to } => {
                // Without the tenant's day, a missing `to` stands at `from`.
                let today = today
                    .or_else(|| from.as_deref().and_then(|f| f.parse().ok()))
                    .unwrap_or_default();
                super::analytics_time::period(i, from.as_deref(), to.as_deref(), today).map(drop)
            }
            Dimension::ActivityHours { event, window } => {
                if event.as_deref().is_some_and(|e| !rules::valid_key(e)) {
                    return Err(err(
                        "event",
                        "must be an event kind like track.page_view".into(),
                    ));
                }
                check_window(i, window)
            }
        }
    }

    /// The `kind` of its answer.
    pub fn kind(&self) -> &'static str {
        match self {
            Dimension::Property { .. } => "property",
            Dimension::Stage {} => "stage",
            Dimension::Bands { .. } => "bands",
            Dimension::Tags { .. } => "tags",
            Dimension::ContentTags { .. } => "content_tags",
            Dimension::NewProfiles { .. } => "new_profiles",
            Dimension::ActivityHours { .. } => "activity_hours",
            Dimension::StageConversion { .. } => "stage_conversion",
        }
    }

    /// The buckets a `property` / `content_tags` dimension answers.
    pub fn limit(&self) -> u32 {
        match self {
            Dimension::Property { limit, .. } | Dimension::ContentTags { limit, .. } => {
                limit.unwrap_or(DEFAULT_LIMIT)
            }
            _ => DEFAULT_LIMIT,
        }
    }
}

/// One bucket of a distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// The value (a string, a bool), the band `{from, to}`, the tag or content-tag id.
    pub key: Value,
    /// A name to show, when the key is an id (a tag's name).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    /// The tag's group (`tags`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub count: u64,
    /// What `share` is of when it is not the population: the profiles that entered the stage a
    /// `stage_conversion` bucket converts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub of: Option<u64>,
    /// `count` / the population (or / `of`).
    pub share: f64,
}

/// One dimension's answer (also kept with a saved segment's refresh: see [`derive`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    /// The dimension's kind ([`Dimension::kind`]); a kept answer gets it back from its
    /// dimension.
    #[serde(skip_deserializing)]
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub buckets: Vec<Bucket>,
    /// Profiles with any value (`property`, `stage`, `bands`), with any tag / any event on
    /// tagged content in the window, or first seen in the period (`new_profiles`); none for
    /// `activity_hours`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with_value: Option<u64>,
    /// The population minus `with_value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<u64>,
    /// The events the buckets count (`activity_hours`; shares are of them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<u64>,
}

/// The answers to `wanted` taken from answers kept for `kept` (a saved segment's breakdowns of
/// its last refresh), when each can be: the same dimension, or a `property` / `content_tags`
/// one asking for fewer buckets than were kept (its most frequent ones, `with_value`
/// unchanged). `None` when any cannot.
pub fn derive(
    kept: &[Dimension],
    answers: &[Distribution],
    wanted: &[Dimension],
) -> Option<Vec<Distribution>> {
    wanted
        .iter()
        .map(|w| {
            kept.iter().zip(answers).find_map(|(k, a)| {
                let a = &Distribution {
                    kind: k.kind(),
                    ..a.clone()
                };
                let fewer = match (k, w) {
                    _ if k == w => return Some(a.clone()),
                    (Dimension::Property { key: kk, .. }, Dimension::Property { key: wk, .. }) => {
                        kk == wk
                    }
                    (
                        Dimension::ContentTags { window: kw, .. },
                        Dimension::ContentTags { window: ww, .. },
                    ) => kw == ww,
                    _ => false,
                };
                // Buckets are kept most frequent first: the first `limit` are the answer.
                let buckets_kept = a.buckets.len() < k.limit() as usize;
                (fewer && (w.limit() <= k.limit() || buckets_kept)).then(|| {
                    let mut d = a.clone();
                    d.buckets.truncate(w.limit() as usize);
                    d
                })
            })
        })
        .collect()
}

/// `part` of `total`, 0 for an empty population.
pub fn share(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        part as f64 / total as f64
    }
}

/// A bucket of `count` in a population of `total`.
pub fn bucket(key: Value, count: u64, total: u64) -> Bucket {
    Bucket {
        key,
        label: None,
        group_id: None,
        count,
        of: None,
        share: share(count, total),
    }
}

/// The band keys of `bounds`: `{to: b0}`, `{from: b0, to: b1}`, …, `{from: bn}`.
pub fn band_keys(bounds: &[f64]) -> Vec<Value> {
    let mut keys = Vec::with_capacity(bounds.len() + 1);
    let mut from: Option<f64> = None;
    for b in bounds.iter().copied().map(Some).chain([None]) {
        let mut k = serde_json::Map::new();
        if let Some(f) = from {
            k.insert("from".into(), f.into());
        }
        if let Some(t) = b {
            k.insert("to".into(), t.into());
        }
        keys.push(Value::Object(k));
        from = b;
    }
    keys
}

/// A distribution of `kind` from `(key, count)` rows, most frequent first (ties by key), with
/// `with_value` of `total`.
pub fn ranked(
    kind: &'static str,
    key: Option<String>,
    mut rows: Vec<(Value, u64)>,
    with_value: u64,
    total: u64,
) -> Distribution {
    rows.sort_by(|(ka, a), (kb, b)| b.cmp(a).then_with(|| ka.to_string().cmp(&kb.to_string())));
    Distribution {
        kind,
        key,
        buckets: rows.into_iter().map(|(k, n)| bucket(k, n, total)).collect(),
        with_value: Some(with_value),
        missing: Some(total.saturating_sub(with_value)),
        events: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dim(v: Value) -> Dimension {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn kept_answers_serve_the_same_or_fewer_buckets() {
        let cities = dim(json!({"kind": "property", "key": "contact.city", "limit": 3}));
        let stage = dim(json!({"kind": "stage"}));
        let kept = vec![cities.clone(), stage.clone()];
        let city_answer = ranked(
            "property",
            Some("contact.city".into()),
            vec![(json!("A"), 5), (json!("B"), 3), (json!("C"), 1)],
            9,
            10,
        );
        let stage_answer = ranked("stage", Some("lead.stage".into()), vec![], 0, 10);
        // As read back: the kind comes from the dimension.
        let stored: Vec<Distribution> = serde_json::from_value(
            serde_json::to_value(vec![&city_answer, &stage_answer]).unwrap(),
        )
        .unwrap();
        assert!(stored.iter().all(|d| d.kind.is_empty()));
        let two = dim(json!({"kind": "property", "key": "contact.city", "limit": 2}));
        let got = derive(&kept, &stored, &[stage.clone(), two]).unwrap();
        assert_eq!(got[0], stage_answer);
        assert_eq!(got[1].kind, "property");
        assert_eq!(got[1].buckets, city_answer.buckets[..2].to_vec());
        assert_eq!(got[1].with_value, Some(9));
        // More buckets than kept: only when every value was kept.
        let more = dim(json!({"kind": "property", "key": "contact.city", "limit": 50}));
        assert_eq!(derive(&kept, &stored, std::slice::from_ref(&more)), None);
        let all = ranked("property", None, vec![(json!("A"), 5)], 5, 10);
        assert_eq!(
            derive(&[cities], std::slice::from_ref(&all), &[more]).unwrap()[0].buckets,
            all.buckets
        );
        // A dimension not kept, or another key: nothing.
        let other = dim(json!({"kind": "property", "key": "contact.province"}));
        assert_eq!(derive(&kept, &stored, &[stage, other]), None);
    }

    #[test]
    fn dimensions_are_checked_naming_the_field() {
        let today: NaiveDate = "2026-11-30".parse().unwrap();
        let bad = |v: Value| dim(v).check_on(2, today).unwrap_err().field;
        assert_eq!(
            bad(json!({"kind": "property", "key": "City"})),
            "dimensions[2].key"
        );
        assert_eq!(
            bad(json!({"kind": "property", "key": "contact.city", "limit": 0})),
            "dimensions[2].limit"
        );
        assert_eq!(
            bad(json!({"kind": "bands", "key": "score.engagement", "bounds": [10, 5]})),
            "dimensions[2].bounds"
        );
        assert_eq!(
            bad(json!({"kind": "content_tags", "window": {"type": "last", "days": 0}})),
            "dimensions[2].window.days"
        );
        assert_eq!(
            bad(json!({"kind": "new_profiles", "from": "2026-12-01"})),
            "dimensions[2].from"
        );
        assert_eq!(
            bad(json!({"kind": "activity_hours", "event": "Page View"})),
            "dimensions[2].event"
        );
        assert_eq!(
            bad(json!({"kind": "activity_hours", "window": {"type": "last", "days": 400}})),
            "dimensions[2].window.days"
        );
        assert!(dim(json!({"kind": "stage"})).check_on(0, today).is_ok());
        assert!(dim(json!({"kind": "activity_hours"}))
            .check_on(0, today)
            .is_ok());
        assert!(dim(json!({"kind": "new_profiles"}))
            .check_on(0, today)
            .is_ok());
        // Without the day: formats and order.
        let late = dim(json!({"kind": "new_profiles", "from": "2027-01-01"}));
        assert!(late.check(0).is_ok() && late.check_on(0, today).is_err());
        let bad_day = dim(json!({"kind": "new_profiles", "to": "2026-02-30"}));
        assert_eq!(bad_day.check(1).unwrap_err().field, "dimensions[1].to");
        assert!(serde_json::from_value::<Dimension>(json!({"kind": "stage", "x": 1})).is_err());
    }

    #[test]
    fn buckets_rank_and_share() {
        let d = ranked(
            "property",
            Some("contact.city".into()),
            vec![(json!("b"), 1), (json!("a"), 3), (json!("c"), 1)],
            5,
            8,
        );
        let keys: Vec<&Value> = d.buckets.iter().map(|b| &b.key).collect();
        assert_eq!(keys, vec![&json!("a"), &json!("b"), &json!("c")]);
        assert_eq!(d.buckets[0].share, 3.0 / 8.0);
        assert_eq!((d.with_value, d.missing), (Some(5), Some(3)));
        assert_eq!(share(1, 0), 0.0);
    }

    #[test]
    fn bands_cover_the_line() {
        assert_eq!(
            band_keys(&[20.0, 60.0]),
            vec![
                json!({"to": 20.0}),
                json!({"from": 20.0, "to": 60.0}),
                json!({"from": 60.0})
            ]
        );
    }
}
