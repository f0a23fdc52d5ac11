//! The in-memory evaluator: does one profile's [`Facts`] match an [`Expanded`] condition now?
//! Used for real-time membership on every event; the SQL compiler selects exactly the profiles
//! for which this returns true.

use chrono::{DateTime, NaiveDate, Utc};

use proto::condition::{BehaviourLeaf, Condition, DistinctLeaf, TagLeaf, TagOp, WechatLeaf};

use crate::expand::Expanded;
use crate::facts::{FactValue, Facts, RelationKind};
use crate::resolve::{
    behaviour_source, distinct_source, property_plan, window_days, CountCmp, DistinctSource, Source,
};

/// When a condition is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvalCtx {
    /// The instant `{"days_ago": N}` datetimes are relative to.
    pub now: DateTime<Utc>,
    /// `now`'s calendar day in the tenant's time zone (computed by the caller): relative dates and
    /// `last` windows are relative to it.
    pub today: NaiveDate,
}

/// Does the profile with `facts` match `condition`?
pub fn evaluate(condition: &Expanded, facts: &dyn Facts, ctx: &EvalCtx) -> bool {
    node(condition.root(), facts, ctx)
}

fn node(c: &Condition, facts: &dyn Facts, ctx: &EvalCtx) -> bool {
    match c {
        Condition::And { children } => children.iter().all(|c| node(c, facts, ctx)),
        Condition::Or { children } => children.iter().any(|c| node(c, facts, ctx)),
        Condition::Not { child } => !node(child, facts, ctx),
        Condition::Property(p) => {
            let plan = property_plan(p, ctx.now, ctx.today);
            plan.matches(facts.property(plan.key()))
        }
        Condition::Source(s) => {
            let plan = property_plan(&s.to_property(), ctx.now, ctx.today);
            plan.matches(facts.property(plan.key()))
        }
        Condition::Behaviour(b) => {
            CountCmp::of(&b.count).matches(behaviour_count(b, facts, ctx.now, ctx.today))
        }
        Condition::Distinct(d) => {
            CountCmp::of(&d.count).matches(distinct_count(d, facts, ctx.today))
        }
        Condition::Tag(t) => tag(t, facts),
        Condition::Wechat(w) => wechat(w, facts),
        // An `Expanded` holds no references; an unresolved one matches nothing.
        Condition::Rule { .. } => false,
    }
}

/// The count a behaviour leaf compares, on `today`.
pub(crate) fn behaviour_count(
    b: &BehaviourLeaf,
    facts: &dyn Facts,
    now: DateTime<Utc>,
    today: NaiveDate,
) -> i64 {
    let days = window_days(&b.window, today);
    let in_window = |d: NaiveDate| days.is_none_or(|(from, to)| from <= d && d <= to);
    match behaviour_source(b, now, today) {
        Source::Metric(metric) => facts
            .daily_counts(&metric)
            .into_iter()
            .filter(|(d, _)| in_window(*d))
            .map(|(_, n)| n)
            .fold(0i64, i64::saturating_add),
        Source::Raw {
            kind,
            content_tag,
            filters,
        } => {
            let count = facts
                .events()
                .iter()
                .filter(|e| in_window(e.day))
                .filter(|e| kind.as_ref().is_none_or(|k| &e.kind == k))
                .filter(|e| content_tag.as_ref().is_none_or(|t| e.has_content_tag(t)))
                .filter(|e| {
                    filters
                        .iter()
                        .all(|f| f.matches(e.props.get(f.key()).map(Vec::as_slice).unwrap_or(&[])))
                })
                .count();
            i64::try_from(count).unwrap_or(i64::MAX)
        }
    }
}

/// How many different things a distinct leaf counts, on `today`: metrics of its prefix with an
/// event in the window, or string values of its property among the window's raw events.
pub(crate) fn distinct_count(d: &DistinctLeaf, facts: &dyn Facts, today: NaiveDate) -> i64 {
    let days = window_days(&d.window, today);
    let in_window = |d: NaiveDate| days.is_none_or(|(from, to)| from <= d && d <= to);
    let n = match distinct_source(d) {
        DistinctSource::Metrics(prefix) => facts
            .metrics()
            .into_iter()
            .filter(|m| m.starts_with(&prefix))
            .filter(|m| {
                facts
                    .daily_counts(m)
                    .iter()
                    .any(|(day, n)| *n > 0 && in_window(*day))
            })
            .count(),
        DistinctSource::Values { kind, key } => facts
            .events()
            .iter()
            .filter(|e| in_window(e.day))
            .filter(|e| kind.as_ref().is_none_or(|k| &e.kind == k))
            .flat_map(|e| e.props.get(&key).into_iter().flatten())
            .filter_map(|v| match v {
                FactValue::Str(s) => Some(s.as_str()),
                _ => None,
            })
            .collect::<std::collections::BTreeSet<&str>>()
            .len(),
    };
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn tag(t: &TagLeaf, facts: &dyn Facts) -> bool {
    let mut tags = t.tags.iter();
    match t.op {
        TagOp::Has | TagOp::HasAny => tags.any(|id| facts.has_tag(id)),
        TagOp::HasAll => !t.tags.is_empty() && tags.all(|id| facts.has_tag(id)),
        TagOp::HasNone => !tags.any(|id| facts.has_tag(id)),
    }
}

/// The relationship a WeChat leaf asks about: kind, namespace, reference.
pub(crate) fn wechat_relation(w: &WechatLeaf) -> (RelationKind, Option<&str>, Option<&str>) {
    match w {
        WechatLeaf::OaSubscribed { app_id } => (RelationKind::Oa, app_id.as_deref(), None),
        WechatLeaf::WecomFollowed { corp_id, user_id } => {
            (RelationKind::Follow, corp_id.as_deref(), user_id.as_deref())
        }
        WechatLeaf::InGroupChat { corp_id, chat_id } => {
            (RelationKind::Group, corp_id.as_deref(), chat_id.as_deref())
        }
    }
}

fn wechat(w: &WechatLeaf, facts: &dyn Facts) -> bool {
    let (kind, ns, reference) = wechat_relation(w);
    facts.has_relation(kind, ns, reference)
}
