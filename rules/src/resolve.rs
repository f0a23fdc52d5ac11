//! One meaning, two executions: a leaf is resolved here (relative dates and windows to literal
//! bounds, operators to column tests) and both the evaluator and the SQL compiler execute the
//! result, so they cannot drift apart.

use chrono::{DateTime, Datelike, Days, Duration, NaiveDate, Utc};

use proto::condition::{
    BehaviourLeaf, CountOp, CountPredicate, CountValue, DistinctLeaf, DistinctOf, Literal, Operand,
    PropertyOp, PropertyPredicate, ValueType, Window,
};

use crate::facts::{
    content_tag_metric, event_metric, format_date, format_datetime, parse_date, parse_datetime,
    whole_seconds, Encoded, FactValue, VType,
};

/// The column a test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Col {
    S,
    N,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

/// A literal bound, in column form.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Scalar {
    S(String),
    N(f64),
}

/// Which end of the folded string a pattern is anchored to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LikeKind {
    Contains,
    StartsWith,
    EndsWith,
}

/// A test of one stored value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    Cmp(Col, Cmp, Scalar),
    Between(Col, Scalar, Scalar),
    In(Col, Vec<Scalar>),
    /// On `s_fold`, with the lower-cased needle.
    Like(LikeKind, String),
    /// A bound that cannot be computed (a relative date outside years 0000–9999).
    Never,
}

/// A resolved property predicate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PropertyPlan {
    /// Some value of `key` stored as `vtype` passes `test` (none does, when `negated`).
    Typed {
        key: String,
        vtype: VType,
        test: Test,
        negated: bool,
    },
    /// `key` has a value of any type (has none, when `negated`).
    Exists { key: String, negated: bool },
}

/// Resolves a property predicate at `now` / `today`.
pub(crate) fn property_plan(
    p: &PropertyPredicate,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> PropertyPlan {
    let key = p.key.clone();
    let (op, negated) = match p.op {
        PropertyOp::Exists => {
            return PropertyPlan::Exists {
                key,
                negated: false,
            }
        }
        PropertyOp::Missing => return PropertyPlan::Exists { key, negated: true },
        PropertyOp::Ne => (PropertyOp::Eq, true),
        PropertyOp::NotIn => (PropertyOp::In, true),
        op => (op, false),
    };
    let vtype = VType::of(p.value_type);
    let col = match vtype {
        VType::Num | VType::Bool => Col::N,
        _ => Col::S,
    };
    let scalar = |lit: &Literal| literal_scalar(p.value_type, lit, now, today);
    let items: Vec<&Literal> = match &p.value {
        Some(Operand::One(l)) => vec![l],
        Some(Operand::List(ls)) => ls.iter().collect(),
        None => Vec::new(),
    };
    let first = items.first().and_then(|l| scalar(l));
    let cmp = |c| first.clone().map_or(Test::Never, |v| Test::Cmp(col, c, v));
    let like = |kind| match items.first() {
        Some(Literal::String(s)) => Test::Like(kind, s.to_lowercase()),
        _ => Test::Never,
    };
    let test = match op {
        PropertyOp::Eq => cmp(Cmp::Eq),
        PropertyOp::Lt => cmp(Cmp::Lt),
        PropertyOp::Lte => cmp(Cmp::Lte),
        PropertyOp::Gt => cmp(Cmp::Gt),
        PropertyOp::Gte => cmp(Cmp::Gte),
        PropertyOp::Between => match (items.first(), items.get(1)) {
            (Some(lo), Some(hi)) => match (scalar(lo), scalar(hi)) {
                (Some(lo), Some(hi)) => Test::Between(col, lo, hi),
                _ => Test::Never,
            },
            _ => Test::Never,
        },
        PropertyOp::In => Test::In(col, items.iter().filter_map(|l| scalar(l)).collect()),
        PropertyOp::Contains => like(LikeKind::Contains),
        PropertyOp::StartsWith => like(LikeKind::StartsWith),
        PropertyOp::EndsWith => like(LikeKind::EndsWith),
        PropertyOp::Ne | PropertyOp::NotIn | PropertyOp::Exists | PropertyOp::Missing => {
            Test::Never
        }
    };
    PropertyPlan::Typed {
        key,
        vtype,
        test,
        negated,
    }
}

/// A literal in the column form of `ty`; `None` when it has none (a wrong type, an unparsable
/// date, a relative bound outside years 0000–9999).
fn literal_scalar(
    ty: ValueType,
    lit: &Literal,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> Option<Scalar> {
    match (ty, lit) {
        (ValueType::String, Literal::String(s)) => {
            FactValue::Str(s.clone()).encode().s.map(Scalar::S)
        }
        (ValueType::Number, Literal::Number(n)) if n.is_finite() => Some(Scalar::N(*n)),
        (ValueType::Bool, Literal::Bool(b)) => Some(Scalar::N(if *b { 1.0 } else { 0.0 })),
        (ValueType::Date, Literal::String(s)) => parse_date(s).map(|d| Scalar::S(format_date(d))),
        (ValueType::Date, Literal::Relative(r)) => {
            relative_date(today, r.days_ago).map(|d| Scalar::S(format_date(d)))
        }
        (ValueType::Datetime, Literal::String(s)) => {
            parse_datetime(s).map(|t| Scalar::S(format_datetime(t)))
        }
        (ValueType::Datetime, Literal::Relative(r)) => {
            relative_instant(now, r.days_ago).map(|t| Scalar::S(format_datetime(t)))
        }
        _ => None,
    }
}

/// today − `days_ago` days, within years 0000–9999.
pub(crate) fn relative_date(today: NaiveDate, days_ago: i64) -> Option<NaiveDate> {
    let d = today.checked_sub_signed(Duration::try_days(days_ago)?)?;
    (0..=9999).contains(&d.year()).then_some(d)
}

/// now − `days_ago` × 86 400 s, whole seconds, within years 0000–9999.
pub(crate) fn relative_instant(now: DateTime<Utc>, days_ago: i64) -> Option<DateTime<Utc>> {
    whole_seconds(now.checked_sub_signed(Duration::try_days(days_ago)?)?)
}

impl Test {
    /// Does the stored value pass? (Its `vtype` is checked by the caller.)
    pub(crate) fn matches(&self, e: &Encoded) -> bool {
        fn cmp_s(c: Cmp, a: &str, b: &str) -> bool {
            match c {
                Cmp::Eq => a == b,
                Cmp::Lt => a < b,
                Cmp::Lte => a <= b,
                Cmp::Gt => a > b,
                Cmp::Gte => a >= b,
            }
        }
        fn cmp_n(c: Cmp, a: f64, b: f64) -> bool {
            match c {
                Cmp::Eq => a == b,
                Cmp::Lt => a < b,
                Cmp::Lte => a <= b,
                Cmp::Gt => a > b,
                Cmp::Gte => a >= b,
            }
        }
        let one = |col: Col, c: Cmp, v: &Scalar| match (col, v, &e.s, e.n) {
            (Col::S, Scalar::S(b), Some(a), _) => cmp_s(c, a, b),
            (Col::N, Scalar::N(b), _, Some(a)) => cmp_n(c, a, *b),
            _ => false,
        };
        match self {
            Test::Cmp(col, c, v) => one(*col, *c, v),
            Test::Between(col, lo, hi) => one(*col, Cmp::Gte, lo) && one(*col, Cmp::Lte, hi),
            Test::In(col, vs) => vs.iter().any(|v| one(*col, Cmp::Eq, v)),
            Test::Like(kind, needle) => e.s_fold.as_deref().is_some_and(|f| match kind {
                LikeKind::Contains => f.contains(needle.as_str()),
                LikeKind::StartsWith => f.starts_with(needle.as_str()),
                LikeKind::EndsWith => f.ends_with(needle.as_str()),
            }),
            Test::Never => false,
        }
    }
}

impl PropertyPlan {
    /// Does a profile (or event) with these values of the key match?
    pub(crate) fn matches(&self, values: &[FactValue]) -> bool {
        match self {
            PropertyPlan::Exists { negated, .. } => values.is_empty() == *negated,
            PropertyPlan::Typed {
                vtype,
                test,
                negated,
                ..
            } => {
                let any = values.iter().any(|v| {
                    let e = v.encode();
                    e.vtype == *vtype && test.matches(&e)
                });
                any != *negated
            }
        }
    }

    /// The key it reads.
    pub(crate) fn key(&self) -> &str {
        match self {
            PropertyPlan::Typed { key, .. } | PropertyPlan::Exists { key, .. } => key,
        }
    }

    /// It matches the profiles (or events) with no value passing.
    pub(crate) fn negated(&self) -> bool {
        match self {
            PropertyPlan::Typed { negated, .. } | PropertyPlan::Exists { negated, .. } => *negated,
        }
    }

    /// The type and the test a value must pass; `None` for any value.
    pub(crate) fn typed(&self) -> Option<(VType, &Test)> {
        match self {
            PropertyPlan::Typed { vtype, test, .. } => Some((*vtype, test)),
            PropertyPlan::Exists { .. } => None,
        }
    }
}

/// A resolved count predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CountCmp {
    Eq(i64),
    Ne(i64),
    Lt(i64),
    Lte(i64),
    Gt(i64),
    Gte(i64),
    Between(i64, i64),
    NotBetween(i64, i64),
}

impl CountCmp {
    pub(crate) fn of(p: &CountPredicate) -> CountCmp {
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let (lo, hi) = match p.value {
            CountValue::One(v) => (n(v), n(v)),
            CountValue::Range([lo, hi]) => (n(lo), n(hi)),
        };
        match p.op {
            CountOp::Eq => CountCmp::Eq(lo),
            CountOp::Ne => CountCmp::Ne(lo),
            CountOp::Lt => CountCmp::Lt(lo),
            CountOp::Lte => CountCmp::Lte(lo),
            CountOp::Gt => CountCmp::Gt(lo),
            CountOp::Gte => CountCmp::Gte(lo),
            CountOp::Between => CountCmp::Between(lo, hi),
        }
    }

    pub(crate) fn matches(self, c: i64) -> bool {
        match self {
            CountCmp::Eq(v) => c == v,
            CountCmp::Ne(v) => c != v,
            CountCmp::Lt(v) => c < v,
            CountCmp::Lte(v) => c <= v,
            CountCmp::Gt(v) => c > v,
            CountCmp::Gte(v) => c >= v,
            CountCmp::Between(lo, hi) => lo <= c && c <= hi,
            CountCmp::NotBetween(lo, hi) => c < lo || c > hi,
        }
    }

    /// The predicate that holds exactly where this one does not.
    pub(crate) fn negate(self) -> CountCmp {
        match self {
            CountCmp::Eq(v) => CountCmp::Ne(v),
            CountCmp::Ne(v) => CountCmp::Eq(v),
            CountCmp::Lt(v) => CountCmp::Gte(v),
            CountCmp::Lte(v) => CountCmp::Gt(v),
            CountCmp::Gt(v) => CountCmp::Lte(v),
            CountCmp::Gte(v) => CountCmp::Lt(v),
            CountCmp::Between(lo, hi) => CountCmp::NotBetween(lo, hi),
            CountCmp::NotBetween(lo, hi) => CountCmp::Between(lo, hi),
        }
    }
}

/// The earliest day the SQL backends can store (MySQL `DATE` starts at 1000-01-01).
pub(crate) fn min_day() -> NaiveDate {
    NaiveDate::from_ymd_opt(1000, 1, 1).unwrap_or(NaiveDate::MIN)
}

/// The inclusive days of a window on `today`; `None` for all time.
pub(crate) fn window_days(w: &Window, today: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
    match *w {
        Window::Last { days } => {
            let back = u64::from(days.max(1) - 1);
            let from = today.checked_sub_days(Days::new(back)).unwrap_or(min_day());
            Some((from.max(min_day()), today))
        }
        Window::Range { from, to } => Some((from, to)),
        Window::AllTime => None,
    }
}

/// Where a behaviour leaf's count comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Source {
    /// Daily buckets (or rolling counters) of one metric.
    Metric(String),
    /// Raw events of `kind` (any when `None`), on content tagged `content_tag`, passing every
    /// filter.
    Raw {
        kind: Option<String>,
        content_tag: Option<String>,
        filters: Vec<PropertyPlan>,
    },
}

pub(crate) fn behaviour_source(b: &BehaviourLeaf, now: DateTime<Utc>, today: NaiveDate) -> Source {
    match (&b.event, &b.content_tag, b.filters.is_empty()) {
        (Some(kind), None, true) => Source::Metric(event_metric(kind)),
        (None, Some(tag), true) => Source::Metric(content_tag_metric(tag)),
        _ => Source::Raw {
            kind: b.event.clone(),
            content_tag: b.content_tag.clone(),
            filters: b
                .filters
                .iter()
                .map(|f| property_plan(f, now, today))
                .collect(),
        },
    }
}

/// What a distinct leaf counts.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum DistinctSource {
    /// Metrics starting with this prefix (`c:` content tags, `e:` event kinds) with events in
    /// the window.
    Metrics(String),
    /// String values of the event property `key` of raw events of `kind` (any when `None`).
    Values { kind: Option<String>, key: String },
}

pub(crate) fn distinct_source(d: &DistinctLeaf) -> DistinctSource {
    match d.of {
        DistinctOf::ContentTags => DistinctSource::Metrics(content_tag_metric("")),
        DistinctOf::EventKinds => DistinctSource::Metrics(event_metric("")),
        DistinctOf::PropertyValues => DistinctSource::Values {
            kind: d.event.clone(),
            key: d.property.clone().unwrap_or_default(),
        },
    }
}
