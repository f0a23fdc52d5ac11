//! Personas (用户画像 personas), without I/O: a persona is a saved segment with the traits its
//! members are expected to share ("likes case studies", "Hangzhou", "SQL"), each a bucket (or a
//! few) of an analytics dimension. What this module decides:
//!
//! - the dimensions a report reads: every trait's, and a default set (stage, city, province,
//!   gender, first-touch channel, tags, content-tag interest and activity by hour × weekday in
//!   30 days);
//! - the comparison of the segment with the whole tenant on each: per bucket the segment's and
//!   the tenant's count and share, the lift (segment share ÷ tenant share) and the TGI (target
//!   group index, lift × 100, as Chinese marketing reports it);
//! - the strongest distinguishing traits: the buckets with the highest lift among those at least
//!   `min_count` members hold;
//! - each expected trait with its shares, lift and whether it holds (the segment over-indexes:
//!   lift above 1);
//! - a campaign validation: the response (a behaviour within `days` days from a date) of the
//!   segment and of the rest of the tenant, each with its counts and 95 % Wilson interval, the
//!   lift over the rest with a two-proportion z score, and the expected rate against the
//!   segment's interval.

use chrono::{Duration, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::analytics::{Dimension, Distribution, MAX_LIMIT};
use proto::condition::Window;

/// Most traits of a persona, values of a trait, and the strongest traits a report lists.
pub const MAX_TRAITS: usize = 20;
pub const MAX_VALUES: usize = 50;
pub const STRONGEST: usize = 10;
/// Least members a bucket needs to count as a distinguishing trait, unless asked otherwise.
pub const DEFAULT_MIN_COUNT: u64 = 5;
/// The normal quantile of a two-sided 95 % interval.
const Z95: f64 = 1.959_963_984_540_054;

/// An expected trait: the bucket(s) of a dimension the persona's members should over-index on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trait {
    /// What to call it in a report ("weekday mornings").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub dimension: Dimension,
    /// Bucket keys as the dimension answers them (`"Hangzhou"`, `"sql"`, a tag id, a band
    /// `{from, to}`); a profile in any of them has the trait.
    pub values: Vec<Value>,
}

/// A trait's problem: the field and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraitError {
    pub field: String,
    pub message: String,
}

/// Checks `traits` (errors name `traits[i]…`).
pub fn check_traits(traits: &[Trait]) -> Result<(), TraitError> {
    if traits.len() > MAX_TRAITS {
        return Err(TraitError {
            field: "traits".into(),
            message: format!("at most {MAX_TRAITS} traits"),
        });
    }
    for (i, t) in traits.iter().enumerate() {
        if let Err(e) = t.dimension.check(i) {
            return Err(TraitError {
                field: e.field.replacen("dimensions[", "traits[", 1).replacen(
                    "].",
                    "].dimension.",
                    1,
                ),
                message: e.message,
            });
        }
        if t.values.is_empty() || t.values.len() > MAX_VALUES {
            return Err(TraitError {
                field: format!("traits[{i}].values"),
                message: format!("1..={MAX_VALUES} bucket keys"),
            });
        }
        if t.label.as_ref().is_some_and(|l| l.chars().count() > 128) {
            return Err(TraitError {
                field: format!("traits[{i}].label"),
                message: "at most 128 characters".into(),
            });
        }
    }
    Ok(())
}

/// `d` as a report reads it: property and content-tag dimensions with their most buckets, so a
/// segment's bucket is rarely missing from the tenant's list.
fn widened(d: &Dimension) -> Dimension {
    match d.clone() {
        Dimension::Property { key, .. } => Dimension::Property {
            key,
            limit: Some(MAX_LIMIT),
        },
        Dimension::ContentTags { window, .. } => Dimension::ContentTags {
            window,
            limit: Some(MAX_LIMIT),
        },
        other => other,
    }
}

/// The dimensions of a report on a persona with `traits`: the defaults, then each trait's not
/// among them; traits point into the list with [`position`].
pub fn report_dimensions(traits: &[Trait]) -> Vec<Dimension> {
    let property = |key: &str| Dimension::Property {
        key: key.into(),
        limit: None,
    };
    let mut dims: Vec<Dimension> = [
        Dimension::Stage {},
        property("contact.city"),
        property("contact.province"),
        property("contact.gender"),
        property("source.first.level1"),
        Dimension::Tags { group_id: None },
        Dimension::ContentTags {
            window: Window::Last { days: 30 },
            limit: None,
        },
        Dimension::ActivityHours {
            event: None,
            window: Window::Last { days: 30 },
        },
    ]
    .iter()
    .map(widened)
    .collect();
    for t in traits {
        let d = widened(&t.dimension);
        if !dims.contains(&d) {
            dims.push(d);
        }
    }
    dims
}

/// Where `t`'s dimension is in `dims`.
pub fn position(dims: &[Dimension], t: &Trait) -> Option<usize> {
    let d = widened(&t.dimension);
    dims.iter().position(|x| *x == d)
}

/// One side of a comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Side {
    pub count: u64,
    pub share: f64,
}

/// A bucket of the segment beside the tenant's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ComparedBucket {
    pub key: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub segment: Side,
    /// `None` when the tenant's list did not reach this bucket (only for very long tails).
    pub tenant: Option<Side>,
    /// Segment share ÷ tenant share (`None` without a tenant share).
    pub lift: Option<f64>,
    /// Lift × 100, rounded.
    pub tgi: Option<u32>,
}

/// One dimension of a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Compared {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub buckets: Vec<ComparedBucket>,
}

fn lift_of(seg: f64, ten: Option<f64>) -> Option<f64> {
    ten.filter(|t| *t > 0.0).map(|t| seg / t)
}

fn tgi(lift: Option<f64>) -> Option<u32> {
    lift.map(|l| (l * 100.0).round().clamp(0.0, u32::MAX as f64) as u32)
}

/// The segment's distribution beside the tenant's: the segment's buckets in its order, then
/// the tenant's buckets the segment has none of (count 0, lift 0).
pub fn compare(seg: &Distribution, ten: &Distribution) -> Compared {
    let tenant_of = |k: &Value| ten.buckets.iter().find(|b| b.key == *k);
    let mut buckets: Vec<ComparedBucket> = seg
        .buckets
        .iter()
        .map(|b| {
            let t = tenant_of(&b.key).map(|t| Side {
                count: t.count,
                share: t.share,
            });
            let lift = lift_of(b.share, t.map(|t| t.share));
            ComparedBucket {
                key: b.key.clone(),
                label: b.label.clone(),
                segment: Side {
                    count: b.count,
                    share: b.share,
                },
                tenant: t,
                lift,
                tgi: tgi(lift),
            }
        })
        .collect();
    for t in &ten.buckets {
        if !seg.buckets.iter().any(|b| b.key == t.key) {
            let lift = lift_of(0.0, Some(t.share));
            buckets.push(ComparedBucket {
                key: t.key.clone(),
                label: t.label.clone(),
                segment: Side {
                    count: 0,
                    share: 0.0,
                },
                tenant: Some(Side {
                    count: t.count,
                    share: t.share,
                }),
                lift,
                tgi: tgi(lift),
            });
        }
    }
    Compared {
        kind: seg.kind,
        key: seg.key.clone(),
        buckets,
    }
}

/// A distinguishing trait of the segment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Distinguishing {
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub value: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub segment_share: f64,
    pub tenant_share: f64,
    pub lift: f64,
    pub tgi: u32,
}

/// The [`STRONGEST`] buckets by lift (then by segment share) among those at least `min_count`
/// members hold and the segment over-indexes on.
pub fn strongest(compared: &[Compared], min_count: u64) -> Vec<Distinguishing> {
    let mut all: Vec<Distinguishing> = compared
        .iter()
        .flat_map(|c| {
            c.buckets.iter().filter_map(move |b| {
                let (lift, tenant) = (b.lift?, b.tenant?);
                (b.segment.count >= min_count && lift > 1.0).then(|| Distinguishing {
                    kind: c.kind,
                    key: c.key.clone(),
                    value: b.key.clone(),
                    label: b.label.clone(),
                    segment_share: b.segment.share,
                    tenant_share: tenant.share,
                    lift,
                    tgi: b.tgi.unwrap_or(0),
                })
            })
        })
        .collect();
    all.sort_by(|a, b| {
        b.lift
            .total_cmp(&a.lift)
            .then(b.segment_share.total_cmp(&a.segment_share))
    });
    all.truncate(STRONGEST);
    all
}

/// An expected trait as the report found it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectedTrait {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub values: Vec<Value>,
    /// Members in the trait's buckets (a member in two counts twice for a multi-valued
    /// property), and their share of the segment; for `activity_hours` ("weekday mornings"),
    /// events in the trait's hours and their share of the segment's events.
    pub segment_count: u64,
    pub segment_share: f64,
    pub tenant_count: u64,
    pub tenant_share: f64,
    pub lift: Option<f64>,
    pub tgi: Option<u32>,
    /// The segment over-indexes on the trait (lift above 1).
    pub holds: bool,
}

/// The trait `t` in `c` (its dimension's comparison) of a segment of `seg_total` in a tenant of
/// `ten_total`.
pub fn expected(t: &Trait, c: &Compared, seg_total: u64, ten_total: u64) -> ExpectedTrait {
    let mut seg = 0;
    let mut ten = 0;
    for b in c.buckets.iter().filter(|b| t.values.contains(&b.key)) {
        seg += b.segment.count;
        ten += b.tenant.map_or(b.segment.count, |s| s.count);
    }
    let share = |n: u64, total: u64| {
        if total == 0 {
            0.0
        } else {
            (n as f64 / total as f64).min(1.0)
        }
    };
    let (ss, ts) = if c.kind == "activity_hours" {
        // The buckets count events: the trait's share is its hours' part of all events.
        let of = |side: fn(&ComparedBucket) -> f64| {
            c.buckets
                .iter()
                .filter(|b| t.values.contains(&b.key))
                .map(side)
                .sum::<f64>()
                .min(1.0)
        };
        (
            of(|b| b.segment.share),
            of(|b| b.tenant.map_or(0.0, |s| s.share)),
        )
    } else {
        (share(seg, seg_total), share(ten, ten_total))
    };
    let lift = lift_of(ss, Some(ts));
    ExpectedTrait {
        label: t.label.clone(),
        kind: c.kind,
        key: c.key.clone(),
        values: t.values.clone(),
        segment_count: seg,
        segment_share: ss,
        tenant_count: ten,
        tenant_share: ts,
        lift,
        tgi: tgi(lift),
        holds: lift.is_some_and(|l| l > 1.0),
    }
}

/// The response a campaign expects: a behaviour (an event kind, events on content of a tag, or
/// both) within `days` tenant-local days from `from` (the send's day).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Response {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_tag: Option<String>,
    pub from: NaiveDate,
    pub days: u32,
}

impl Response {
    /// Checks it (errors name `response.…`).
    pub fn check(&self) -> Result<(), TraitError> {
        let err = |f: &str, m: &str| TraitError {
            field: format!("response.{f}"),
            message: m.into(),
        };
        if self.event.is_none() && self.content_tag.is_none() {
            return Err(err("event", "give an event kind, a content tag or both"));
        }
        if !(1..=365).contains(&self.days) {
            return Err(err("days", "must be 1..=365"));
        }
        Ok(())
    }

    /// The condition leaf "did it at least once in the window" in the tag-rule language.
    pub fn leaf(&self) -> Value {
        let to = self.from + Duration::days(i64::from(self.days) - 1);
        let mut leaf = json!({"type": "behaviour", "count": {"op": "gte", "value": 1},
            "window": {"type": "range", "from": self.from.to_string(), "to": to.to_string()}});
        if let Some(e) = &self.event {
            leaf["event"] = json!(e);
        }
        if let Some(t) = &self.content_tag {
            leaf["content_tag"] = json!(t);
        }
        leaf
    }
}

/// How many of a group responded.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub members: u64,
    pub responders: u64,
    pub rate: f64,
    /// 95 % Wilson score interval of the rate.
    pub ci95: [f64; 2],
}

/// The rate of `responders` among `members` with its Wilson interval.
pub fn rate(members: u64, responders: u64) -> Rate {
    if members == 0 {
        return Rate {
            members,
            responders,
            rate: 0.0,
            ci95: [0.0, 1.0],
        };
    }
    let n = members as f64;
    let p = responders as f64 / n;
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / (1.0 + z2 / n);
    Rate {
        members,
        responders,
        rate: p,
        ci95: [(centre - half).max(0.0), (centre + half).min(1.0)],
    }
}

/// A campaign's response of the persona's segment against the rest of the tenant.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Validation {
    pub response: Response,
    pub segment: Rate,
    pub rest: Rate,
    pub tenant: Rate,
    /// Segment rate ÷ rest rate.
    pub lift: Option<f64>,
    /// Two-proportion z score of the segment's rate over the rest's (pooled).
    pub z: Option<f64>,
    /// The segment responded more than the rest, beyond chance at 95 % (z > 1.96).
    pub above_rest: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_rate: Option<f64>,
    /// Actual minus expected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub difference: Option<f64>,
    /// The expected rate lies within the segment's 95 % interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected_within_ci: Option<bool>,
}

/// The validation of `response` from the counts: the segment's members and responders, the
/// tenant's, and the expected rate.
pub fn validate(
    response: Response,
    (seg_members, seg_responders): (u64, u64),
    (ten_members, ten_responders): (u64, u64),
    expected_rate: Option<f64>,
) -> Validation {
    let segment = rate(seg_members, seg_responders);
    let rest = rate(
        ten_members.saturating_sub(seg_members),
        ten_responders.saturating_sub(seg_responders),
    );
    let tenant = rate(ten_members, ten_responders);
    let lift = lift_of(segment.rate, Some(rest.rate));
    let z = {
        let (n1, n2) = (segment.members as f64, rest.members as f64);
        let pool = (segment.responders + rest.responders) as f64 / (n1 + n2);
        let se = (pool * (1.0 - pool) * (1.0 / n1 + 1.0 / n2)).sqrt();
        (n1 > 0.0 && n2 > 0.0 && se > 0.0).then(|| (segment.rate - rest.rate) / se)
    };
    Validation {
        response,
        segment,
        rest,
        tenant,
        lift,
        z,
        above_rest: z.is_some_and(|z| z > Z95),
        expected_rate,
        difference: expected_rate.map(|e| segment.rate - e),
        expected_within_ci: expected_rate.map(|e| segment.ci95[0] <= e && e <= segment.ci95[1]),
    }
}

#[cfg(test)]
mod tests {
    use super::super::analytics::ranked;
    use super::*;

    fn city(rows: Vec<(&str, u64)>, total: u64) -> Distribution {
        let with: u64 = rows.iter().map(|r| r.1).sum();
        ranked(
            "property",
            Some("contact.city".into()),
            rows.into_iter().map(|(k, n)| (json!(k), n)).collect(),
            with,
            total,
        )
    }

    #[test]
    fn lift_and_tgi_compare_the_segment_with_the_tenant() {
        let seg = city(vec![("Hangzhou", 30), ("Ningbo", 10)], 40);
        let ten = city(
            vec![("Hangzhou", 40), ("Ningbo", 40), ("Shanghai", 20)],
            100,
        );
        let c = compare(&seg, &ten);
        let hz = &c.buckets[0];
        assert_eq!(hz.segment.share, 0.75);
        assert_eq!(hz.lift, Some(0.75 / 0.4));
        assert_eq!(hz.tgi, Some(188));
        assert_eq!(c.buckets[2].key, json!("Shanghai"));
        assert_eq!((c.buckets[2].segment.count, c.buckets[2].tgi), (0, Some(0)));
        let s = strongest(std::slice::from_ref(&c), 5);
        assert_eq!(s.len(), 1, "only Hangzhou over-indexes");
        assert_eq!(s[0].value, json!("Hangzhou"));
        assert!(strongest(&[c], 31).is_empty(), "too few members");
    }

    #[test]
    fn an_expected_trait_sums_its_buckets() {
        let seg = city(vec![("Hangzhou", 30), ("Ningbo", 10)], 40);
        let ten = city(
            vec![("Hangzhou", 40), ("Ningbo", 40), ("Shanghai", 20)],
            100,
        );
        let c = compare(&seg, &ten);
        let t = Trait {
            label: Some("Zhejiang".into()),
            dimension: Dimension::Property {
                key: "contact.city".into(),
                limit: None,
            },
            values: vec![json!("Hangzhou"), json!("Ningbo")],
        };
        let e = expected(&t, &c, 40, 100);
        assert_eq!((e.segment_count, e.tenant_count), (40, 80));
        assert_eq!((e.segment_share, e.tenant_share), (1.0, 0.8));
        assert!(e.holds);
        assert_eq!(e.tgi, Some(125));
    }

    #[test]
    fn wilson_interval_and_z_score() {
        // 20 of 40 against 6 of 60.
        let from = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
        let r = Response {
            event: Some("track.form_submit".into()),
            content_tag: None,
            from,
            days: 7,
        };
        let v = validate(r, (40, 20), (100, 26), Some(0.45));
        assert_eq!(v.segment.rate, 0.5);
        assert_eq!((v.rest.members, v.rest.responders), (60, 6));
        assert!((v.rest.rate - 0.1).abs() < 1e-12);
        assert!((v.lift.unwrap() - 5.0).abs() < 1e-9);
        // Wilson 95 % for 20/40: [0.3520, 0.6480].
        assert!(
            (v.segment.ci95[0] - 0.3520).abs() < 1e-4,
            "{:?}",
            v.segment.ci95
        );
        assert!((v.segment.ci95[1] - 0.6480).abs() < 1e-4);
        assert!(v.above_rest && v.z.unwrap() > 4.0);
        assert_eq!(v.expected_within_ci, Some(true));
        assert!((v.difference.unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(rate(0, 0).ci95, [0.0, 1.0]);
        assert_eq!(
            v.response.leaf()["window"],
            json!({"type": "range", "from": "2026-11-01", "to": "2026-11-07"})
        );
    }

    #[test]
    fn traits_are_checked_naming_the_field() {
        let t = |v: Value| serde_json::from_value::<Trait>(v).unwrap();
        let bad = check_traits(&[t(json!({"dimension": {"kind": "property", "key": "City"},
            "values": ["x"]}))])
        .unwrap_err();
        assert_eq!(bad.field, "traits[0].dimension.key");
        let bad = check_traits(&[
            t(json!({"dimension": {"kind": "stage"}, "values": ["sql"]})),
            t(json!({"dimension": {"kind": "stage"}, "values": []})),
        ])
        .unwrap_err();
        assert_eq!(bad.field, "traits[1].values");
    }
}
