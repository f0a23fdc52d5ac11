//! What a condition is evaluated against: typed fact values and their column encoding (shared by
//! the in-memory evaluator and the facts tables, so both compare exactly the same bytes and
//! numbers), the [`Facts`] interface, and [`ProfileFacts`], one profile's facts in memory.
//!
//! Conventions tagging-svc follows when it writes facts:
//! - a property value is classified by [`FactValue::from_json`] and stored as [`FactValue::encode`]
//!   says; a JSON array stores one row per element (`ord` = position);
//! - an event counts once per metric it feeds ([`EventFact::metrics`]): `e:<kind>` always, and
//!   `c:<tag>` once for each distinct content tag, in the bucket of its tenant-local day;
//! - the content tags of an event are its multi-valued property [`CONTENT_TAGS_KEY`], stored as
//!   strings (`vtype` `s`) whatever they look like;
//! - rolling counters are [`RollingCounts::from_buckets`] of the daily buckets as of one day.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use serde_json::Value;

use crate::score::{ScoreFold, SCORE_PREFIX};

/// Longest stored string, in characters: longer strings are cut to this many characters (the
/// evaluator sees the cut value too, so real-time and bulk results agree).
pub const STORED_STRING_CHARS: usize = 255;

/// The event property that holds the tags of the content an event happened on.
pub const CONTENT_TAGS_KEY: &str = "content.tags";

/// The metric counting every event of `kind`: `e:<kind>`.
pub fn event_metric(kind: &str) -> String {
    format!("e:{kind}")
}

/// The metric counting every event on content tagged `tag`: `c:<tag>`.
pub fn content_tag_metric(tag: &str) -> String {
    format!("c:{tag}")
}

/// One typed value of a property.
#[derive(Debug, Clone, PartialEq)]
pub enum FactValue {
    Str(String),
    Num(f64),
    Bool(bool),
    Date(NaiveDate),
    /// Whole seconds, UTC.
    DateTime(DateTime<Utc>),
}

/// The stored type code of a value (`vtype` column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum VType {
    Str,
    Num,
    Bool,
    Date,
    DateTime,
}

impl VType {
    /// The one-letter column value: `s`, `n`, `b`, `d`, `t`.
    pub fn code(self) -> &'static str {
        match self {
            VType::Str => "s",
            VType::Num => "n",
            VType::Bool => "b",
            VType::Date => "d",
            VType::DateTime => "t",
        }
    }

    /// The stored type of values a predicate of `value_type` compares with.
    pub fn of(value_type: proto::condition::ValueType) -> VType {
        use proto::condition::ValueType as T;
        match value_type {
            T::String => VType::Str,
            T::Number => VType::Num,
            T::Bool => VType::Bool,
            T::Date => VType::Date,
            T::Datetime => VType::DateTime,
        }
    }
}

/// How a value is stored in `facts_property` / `facts_event_prop`.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoded {
    pub vtype: VType,
    /// Strings (cut to [`STORED_STRING_CHARS`]), dates `YYYY-MM-DD`, datetimes
    /// `YYYY-MM-DDTHH:MM:SSZ` (UTC; byte order = time order).
    pub s: Option<String>,
    /// Strings only: `s` lower-cased with Rust's `str::to_lowercase`.
    pub s_fold: Option<String>,
    /// Numbers; bools as 0 / 1. Non-finite numbers are stored as NULL (they match nothing).
    pub n: Option<f64>,
}

impl FactValue {
    /// Classifies one JSON value: `YYYY-MM-DD` strings are dates, RFC 3339 strings are datetimes
    /// (normalised to UTC, whole seconds, years 0000–9999), other strings are strings; numbers,
    /// bools as such; null, arrays and objects have no single value.
    pub fn from_json(v: &Value) -> Option<FactValue> {
        match v {
            Value::String(s) => Some(FactValue::from_text(s)),
            Value::Number(n) => n.as_f64().filter(|f| f.is_finite()).map(FactValue::Num),
            Value::Bool(b) => Some(FactValue::Bool(*b)),
            Value::Null | Value::Array(_) | Value::Object(_) => None,
        }
    }

    /// Every value of a JSON field: an array gives one value per element that has one, anything
    /// else what [`FactValue::from_json`] gives.
    pub fn from_json_multi(v: &Value) -> Vec<FactValue> {
        match v {
            Value::Array(items) => items.iter().filter_map(FactValue::from_json).collect(),
            other => FactValue::from_json(other).into_iter().collect(),
        }
    }

    /// The values of one key as they are stored: each stored value once (the first of values
    /// stored alike — equal, or long strings cut to the same text — is kept), in order. A
    /// key's rows then hold distinct values, so analytics count a value's profiles without
    /// DISTINCT (conditions only ever ask whether some value matches).
    pub fn stored_distinct(values: &[FactValue]) -> Vec<&FactValue> {
        let mut seen: Vec<Encoded> = Vec::with_capacity(values.len());
        let mut out = Vec::with_capacity(values.len());
        for v in values {
            let e = v.encode();
            if !seen.contains(&e) {
                seen.push(e);
                out.push(v);
            }
        }
        out
    }

    /// Classifies a string the way [`FactValue::from_json`] does.
    pub fn from_text(s: &str) -> FactValue {
        if let Some(d) = parse_date(s) {
            FactValue::Date(d)
        } else if let Some(t) = parse_datetime(s) {
            FactValue::DateTime(t)
        } else {
            FactValue::Str(s.to_string())
        }
    }

    /// The stored type.
    pub fn vtype(&self) -> VType {
        match self {
            FactValue::Str(_) => VType::Str,
            FactValue::Num(_) => VType::Num,
            FactValue::Bool(_) => VType::Bool,
            FactValue::Date(_) => VType::Date,
            FactValue::DateTime(_) => VType::DateTime,
        }
    }

    /// The stored columns.
    pub fn encode(&self) -> Encoded {
        let (s, s_fold, n) = match self {
            FactValue::Str(s) => {
                let cut = cut_chars(s, STORED_STRING_CHARS);
                let fold = cut.to_lowercase();
                (Some(cut.to_string()), Some(fold), None)
            }
            FactValue::Num(n) => (None, None, Some(*n).filter(|n| n.is_finite())),
            FactValue::Bool(b) => (None, None, Some(if *b { 1.0 } else { 0.0 })),
            FactValue::Date(d) => (Some(format_date(*d)), None, None),
            FactValue::DateTime(t) => (Some(format_datetime(*t)), None, None),
        };
        Encoded {
            vtype: self.vtype(),
            s,
            s_fold,
            n,
        }
    }
}

/// The first `max` characters of `s`.
pub(crate) fn cut_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A strict `YYYY-MM-DD` calendar day.
pub fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// An RFC 3339 instant, as UTC whole seconds; `None` when the UTC year is outside 0000–9999 (its
/// stored text would not sort as time).
pub fn parse_datetime(s: &str) -> Option<DateTime<Utc>> {
    let t = DateTime::parse_from_rfc3339(s).ok()?.with_timezone(&Utc);
    whole_seconds(t)
}

/// `t` without its fraction of a second, if its year is 0000–9999.
pub(crate) fn whole_seconds(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if !(0..=9999).contains(&t.year()) {
        return None;
    }
    t.with_nanosecond(0)
}

/// `YYYY-MM-DD`.
pub(crate) fn format_date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// `YYYY-MM-DDTHH:MM:SSZ`.
pub(crate) fn format_datetime(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The kind of a relationship fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RelationKind {
    /// Subscribed to an Official Account: ns = appid, ref = ``.
    Oa,
    /// Followed as an external contact: ns = corpid, ref = the rep's userid.
    Follow,
    /// Member of a customer group chat: ns = corpid, ref = chat_id.
    Group,
}

impl RelationKind {
    /// The stored `kind` column: `oa`, `follow`, `group`.
    pub fn as_str(self) -> &'static str {
        match self {
            RelationKind::Oa => "oa",
            RelationKind::Follow => "follow",
            RelationKind::Group => "group",
        }
    }
}

/// A relationship in force now.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Relation {
    pub kind: RelationKind,
    pub ns: String,
    pub reference: String,
}

/// One raw event, kept for behaviour leaves with filters or with both an event and a content tag.
#[derive(Debug, Clone, PartialEq)]
pub struct EventFact {
    /// Unique within the tenant.
    pub event_id: String,
    /// The event kind, e.g. `track.page_view`.
    pub kind: String,
    /// The tenant-local day it happened on.
    pub day: NaiveDate,
    /// The tenant-local hour (0–23) it happened in, when known (conditions never read it).
    pub hour: Option<u8>,
    /// Its properties; content tags under [`CONTENT_TAGS_KEY`].
    pub props: BTreeMap<String, Vec<FactValue>>,
}

impl EventFact {
    /// An event without properties.
    pub fn new(event_id: impl Into<String>, kind: impl Into<String>, day: NaiveDate) -> Self {
        EventFact {
            event_id: event_id.into(),
            kind: kind.into(),
            day,
            hour: None,
            props: BTreeMap::new(),
        }
    }

    /// The event with its tenant-local hour (0–23; a larger one is ignored).
    pub fn at_hour(mut self, hour: u8) -> Self {
        self.hour = (hour < 24).then_some(hour);
        self
    }

    /// Adds a content tag (stored as a string whatever it looks like).
    pub fn with_content_tag(mut self, tag: impl Into<String>) -> Self {
        self.props
            .entry(CONTENT_TAGS_KEY.to_string())
            .or_default()
            .push(FactValue::Str(tag.into()));
        self
    }

    /// Sets a property from JSON (arrays give several values).
    pub fn with_prop_json(mut self, key: impl Into<String>, v: &Value) -> Self {
        self.props.insert(key.into(), FactValue::from_json_multi(v));
        self
    }

    /// Does the event's content carry `tag`?
    pub fn has_content_tag(&self, tag: &str) -> bool {
        self.props.get(CONTENT_TAGS_KEY).is_some_and(|vs| {
            vs.iter().any(|v| {
                let e = v.encode();
                e.vtype == VType::Str && e.s.as_deref() == Some(tag)
            })
        })
    }

    /// The metrics this event adds 1 to: `e:<kind>` and `c:<tag>` per distinct content tag.
    pub fn metrics(&self) -> Vec<String> {
        let mut tags = BTreeSet::new();
        for v in self.props.get(CONTENT_TAGS_KEY).into_iter().flatten() {
            let e = v.encode();
            if let (VType::Str, Some(s)) = (e.vtype, e.s) {
                tags.insert(s);
            }
        }
        std::iter::once(event_metric(&self.kind))
            .chain(tags.iter().map(|t| content_tag_metric(t)))
            .collect()
    }
}

/// Windowed sums of one metric's daily buckets as of one day (`facts_behaviour_rolling`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RollingCounts {
    /// Days `as_of − 6 ..= as_of`.
    pub last7: i64,
    /// Days `as_of − 29 ..= as_of`.
    pub last30: i64,
    /// Days `as_of − 89 ..= as_of`.
    pub last90: i64,
    /// Every bucket, whatever its day.
    pub total: i64,
}

impl RollingCounts {
    /// The counters of `buckets` (day → count) as of `as_of`.
    pub fn from_buckets<'a>(
        buckets: impl IntoIterator<Item = (&'a NaiveDate, &'a i64)>,
        as_of: NaiveDate,
    ) -> Self {
        let mut r = RollingCounts::default();
        for (day, cnt) in buckets {
            let age = (as_of - *day).num_days();
            if (0..7).contains(&age) {
                r.last7 += cnt;
            }
            if (0..30).contains(&age) {
                r.last30 += cnt;
            }
            if (0..90).contains(&age) {
                r.last90 += cnt;
            }
            r.total += cnt;
        }
        r
    }
}

/// The facts of one profile a condition can read.
pub trait Facts {
    /// Every value of `key` (any type; empty when the profile has none).
    fn property(&self, key: &str) -> &[FactValue];
    /// Does the profile carry the tag?
    fn has_tag(&self, tag_id: &str) -> bool;
    /// Is a relationship of `kind` in force, in namespace `ns` (any when `None`) with reference
    /// `reference` (any when `None`)?
    fn has_relation(&self, kind: RelationKind, ns: Option<&str>, reference: Option<&str>) -> bool;
    /// The daily buckets `(day, count)` of a metric.
    fn daily_counts(&self, metric: &str) -> Vec<(NaiveDate, i64)>;
    /// The metrics that have buckets.
    fn metrics(&self) -> Vec<&str>;
    /// The raw events.
    fn events(&self) -> &[EventFact];
    /// The fold of the score of `model` (its value now is the property `score.<model>`), for
    /// predicting when decay carries it across a bound.
    fn score(&self, _model: &str) -> Option<&ScoreFold> {
        None
    }
}

/// One profile's facts, in memory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileFacts {
    pub profile_id: String,
    pub properties: BTreeMap<String, Vec<FactValue>>,
    pub tags: BTreeSet<String>,
    pub relations: BTreeSet<Relation>,
    /// metric → day → count.
    pub daily: BTreeMap<String, BTreeMap<NaiveDate, i64>>,
    pub events: Vec<EventFact>,
    /// model key → score fold (see [`ProfileFacts::set_score`]).
    pub scores: BTreeMap<String, ScoreFold>,
}

impl ProfileFacts {
    /// A profile without facts.
    pub fn new(profile_id: impl Into<String>) -> Self {
        ProfileFacts {
            profile_id: profile_id.into(),
            ..Default::default()
        }
    }

    /// Replaces the values of `key`.
    pub fn set_property(&mut self, key: impl Into<String>, values: Vec<FactValue>) -> &mut Self {
        self.properties.insert(key.into(), values);
        self
    }

    /// Replaces the values of `key` with those of a JSON field.
    pub fn set_property_json(&mut self, key: impl Into<String>, v: &Value) -> &mut Self {
        self.set_property(key, FactValue::from_json_multi(v))
    }

    /// Sets the score of `model`: its fold, and the property `score.<model>` as its value at
    /// `now` (the instant the facts are evaluated at).
    pub fn set_score(
        &mut self,
        model: impl Into<String>,
        fold: ScoreFold,
        now: DateTime<Utc>,
    ) -> &mut Self {
        let model = model.into();
        self.set_property(
            format!("{SCORE_PREFIX}{model}"),
            vec![FactValue::Num(fold.value_at(now))],
        );
        self.scores.insert(model, fold);
        self
    }

    /// Adds a tag.
    pub fn add_tag(&mut self, tag_id: impl Into<String>) -> &mut Self {
        self.tags.insert(tag_id.into());
        self
    }

    /// Adds a relationship in force.
    pub fn add_relation(
        &mut self,
        kind: RelationKind,
        ns: impl Into<String>,
        reference: impl Into<String>,
    ) -> &mut Self {
        self.relations.insert(Relation {
            kind,
            ns: ns.into(),
            reference: reference.into(),
        });
        self
    }

    /// Adds `n` to a metric's bucket of `day`.
    pub fn add_count(&mut self, metric: impl Into<String>, day: NaiveDate, n: i64) -> &mut Self {
        *self
            .daily
            .entry(metric.into())
            .or_default()
            .entry(day)
            .or_default() += n;
        self
    }

    /// Counts an event into its metrics' buckets (without keeping it raw).
    pub fn count_event(&mut self, event: &EventFact) -> &mut Self {
        for m in event.metrics() {
            self.add_count(m, event.day, 1);
        }
        self
    }

    /// Keeps a raw event (without counting it).
    pub fn push_event(&mut self, event: EventFact) -> &mut Self {
        self.events.push(event);
        self
    }

    /// The rolling counters of every metric as of `as_of`.
    pub fn rolling(&self, as_of: NaiveDate) -> BTreeMap<String, RollingCounts> {
        self.daily
            .iter()
            .map(|(m, b)| (m.clone(), RollingCounts::from_buckets(b, as_of)))
            .collect()
    }
}

impl Facts for ProfileFacts {
    fn property(&self, key: &str) -> &[FactValue] {
        self.properties.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    fn has_tag(&self, tag_id: &str) -> bool {
        self.tags.contains(tag_id)
    }

    fn has_relation(&self, kind: RelationKind, ns: Option<&str>, reference: Option<&str>) -> bool {
        self.relations.iter().any(|r| {
            r.kind == kind
                && ns.is_none_or(|ns| r.ns == ns)
                && reference.is_none_or(|x| r.reference == x)
        })
    }

    fn daily_counts(&self, metric: &str) -> Vec<(NaiveDate, i64)> {
        self.daily
            .get(metric)
            .map(|b| b.iter().map(|(d, n)| (*d, *n)).collect())
            .unwrap_or_default()
    }

    fn metrics(&self) -> Vec<&str> {
        self.daily.keys().map(String::as_str).collect()
    }

    fn events(&self) -> &[EventFact] {
        &self.events
    }

    fn score(&self, model: &str) -> Option<&ScoreFold> {
        self.scores.get(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_values_are_classified() {
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(
            FactValue::from_json(&json!("2024-02-29")),
            Some(FactValue::Date(d))
        );
        assert_eq!(
            FactValue::from_json(&json!("2024-02-30")),
            Some(FactValue::Str("2024-02-30".into()))
        );
        let t = FactValue::from_json(&json!("2024-03-01T08:00:00.75+08:00")).unwrap();
        assert_eq!(t.encode().s.as_deref(), Some("2024-03-01T00:00:00Z"));
        assert_eq!(t.vtype(), VType::DateTime);
        assert_eq!(FactValue::from_json(&json!(3)), Some(FactValue::Num(3.0)));
        assert_eq!(
            FactValue::from_json(&json!(true)),
            Some(FactValue::Bool(true))
        );
        assert_eq!(FactValue::from_json(&json!(null)), None);
        assert_eq!(FactValue::from_json(&json!({"a": 1})), None);
        assert_eq!(FactValue::from_json(&json!([1])), None);
        assert_eq!(
            FactValue::from_json_multi(&json!(["a", 1, null, [2], "2024-01-01"])),
            vec![
                FactValue::Str("a".into()),
                FactValue::Num(1.0),
                FactValue::Date(NaiveDate::from_ymd_opt(2024, 1, 1).unwrap())
            ]
        );
        // A UTC year outside 0000-9999 would not sort as text: kept as a plain string.
        assert_eq!(
            FactValue::from_json(&json!("0000-01-01T00:00:00+01:00")),
            Some(FactValue::Str("0000-01-01T00:00:00+01:00".into()))
        );
    }

    #[test]
    fn encoding_cuts_and_folds() {
        let long = "Ä".repeat(300);
        let e = FactValue::Str(long).encode();
        assert_eq!(e.s.as_ref().unwrap().chars().count(), STORED_STRING_CHARS);
        assert_eq!(e.s_fold.as_ref().unwrap(), &"ä".repeat(255));
        let e = FactValue::Bool(true).encode();
        assert_eq!((e.vtype.code(), e.n), ("b", Some(1.0)));
        let e = FactValue::Num(f64::NAN).encode();
        assert_eq!(e.n, None);
        let e = FactValue::Date(NaiveDate::from_ymd_opt(7, 1, 2).unwrap()).encode();
        assert_eq!(e.s.as_deref(), Some("0007-01-02"));
    }

    #[test]
    fn event_metrics_and_rolling() {
        let day = NaiveDate::from_ymd_opt(2024, 6, 1).unwrap();
        let ev = EventFact::new("e1", "track.page_view", day)
            .with_content_tag("case")
            .with_content_tag("case")
            .with_content_tag("2024-01-01");
        assert_eq!(
            ev.metrics(),
            vec!["e:track.page_view", "c:2024-01-01", "c:case"]
        );
        assert!(ev.has_content_tag("2024-01-01"));
        let mut p = ProfileFacts::new("p");
        p.count_event(&ev);
        p.add_count("e:track.page_view", day - chrono::Days::new(7), 2);
        p.add_count("e:track.page_view", day + chrono::Days::new(1), 5);
        let r = p.rolling(day)["e:track.page_view"];
        assert_eq!(
            r,
            RollingCounts {
                last7: 1,
                last30: 3,
                last90: 3,
                total: 8
            }
        );
    }
}
