//! The count leaves: how often a profile did something in a window (`behaviour`) and how many
//! different things it did (`distinct`), from the rolling counters when they are fresh, the daily
//! buckets otherwise, or the raw events when a leaf filters on their properties. A count that 0
//! satisfies also matches profiles with no rows: those compile to the complement of the failing
//! count.

use sea_query::{Asterisk, Expr, SelectStatement, SimpleExpr};

use proto::condition::{BehaviourLeaf, DistinctLeaf, Window};

use super::{Compiler, Part, Set};
use crate::facts::{VType, CONTENT_TAGS_KEY};
use crate::resolve::{
    behaviour_source, distinct_source, window_days, Cmp, Col, CountCmp, DistinctSource,
    PropertyPlan, Scalar, Source, Test,
};
use crate::schema::{FactsCol as C, FactsTable as T};

impl Compiler<'_> {
    /// A distinct count: metrics of a prefix with events in the window (the rolling counters
    /// when fresh, else the daily buckets), or distinct string values of an event property
    /// among the window's raw events.
    pub(super) fn distinct(&self, d: &DistinctLeaf) -> Set {
        let cmp = CountCmp::of(&d.count);
        let (zero, cmp) = if cmp.matches(0) {
            (true, cmp.negate())
        } else {
            (false, cmp)
        };
        let days = window_days(&d.window, self.ctx.today);
        let fresh = self.ctx.rolling_as_of == Some(self.ctx.today);
        let q = match distinct_source(d) {
            DistinctSource::Metrics(prefix) => match rolling_for(&d.window).filter(|_| fresh) {
                // Event kinds: the count each profile row keeps of its rolling rows.
                Some(r) if prefix == crate::facts::event_metric("") => {
                    let t = T::FactsProfile;
                    let col = match r {
                        Rolling::Last7 => C::Kinds7,
                        Rolling::Last30 => C::Kinds30,
                        Rolling::Last90 => C::Kinds90,
                        Rolling::Total => C::KindsTotal,
                    };
                    let mut q = self.base(t);
                    q.and_where(count_expr(Expr::col((t, col)).into(), cmp));
                    q
                }
                Some(r) => {
                    let t = T::FactsBehaviourRolling;
                    let mut q = self.base(t);
                    metrics_of(&mut q, t, &prefix);
                    q.and_where(Expr::col((t, rolling_col(r))).gt(0))
                        .group_by_col((t, C::ProfileId))
                        .and_having(count_expr(Expr::col(Asterisk).count(), cmp));
                    q
                }
                None => {
                    let t = T::FactsBehaviourDaily;
                    let mut q = self.base(t);
                    metrics_of(&mut q, t, &prefix);
                    q.and_where(Expr::col((t, C::Cnt)).gt(0));
                    if let Some((from, to)) = days {
                        q.and_where(Expr::col((t, C::Day)).between(from, to));
                    }
                    q.group_by_col((t, C::ProfileId))
                        .and_having(count_expr(Expr::col((t, C::Metric)).count_distinct(), cmp));
                    q
                }
            },
            DistinctSource::Values { kind, key } => {
                let (e, p) = (T::FactsEvent, T::FactsEventProp);
                let mut q = self.base(e);
                q.inner_join(
                    p,
                    Expr::col((p, C::TenantId))
                        .equals((e, C::TenantId))
                        .and(Expr::col((p, C::EventId)).equals((e, C::EventId))),
                )
                .and_where(Expr::col((p, C::Pkey)).eq(key))
                .and_where(Expr::col((p, C::Vtype)).eq(VType::Str.code()));
                if let Some(kind) = kind {
                    q.and_where(Expr::col((e, C::Kind)).eq(kind));
                }
                if let Some((from, to)) = days {
                    q.and_where(Expr::col((e, C::Day)).between(from, to));
                }
                q.group_by_col((e, C::ProfileId))
                    .and_having(count_expr(Expr::col((p, C::S)).count_distinct(), cmp));
                q
            }
        };
        Set::of(Part::leaf(q).unique().rank(3), zero)
    }

    pub(super) fn behaviour(&self, b: &BehaviourLeaf) -> Set {
        let cmp = CountCmp::of(&b.count);
        // A predicate that 0 satisfies also matches profiles with no events at all: select those
        // whose count fails it and take them from the universe.
        let (zero, cmp) = if cmp.matches(0) {
            (true, cmp.negate())
        } else {
            (false, cmp)
        };
        let days = window_days(&b.window, self.ctx.today);
        let fresh = self.ctx.rolling_as_of == Some(self.ctx.today);
        let q = match behaviour_source(b, self.ctx.now, self.ctx.today) {
            Source::Metric(metric) => match rolling_for(&b.window).filter(|_| fresh) {
                Some(r) => {
                    let t = T::FactsBehaviourRolling;
                    let col = rolling_col(r);
                    self.base(t)
                        .and_where(Expr::col((t, C::Metric)).eq(metric))
                        .and_where(count_expr(Expr::col((t, col)).into(), cmp))
                        .to_owned()
                }
                None => {
                    let t = T::FactsBehaviourDaily;
                    let mut q = self.base(t);
                    q.and_where(Expr::col((t, C::Metric)).eq(metric));
                    if let Some((from, to)) = days {
                        q.and_where(Expr::col((t, C::Day)).between(from, to));
                    }
                    q.group_by_col((t, C::ProfileId))
                        .and_having(count_expr(Expr::col((t, C::Cnt)).sum(), cmp));
                    q
                }
            },
            Source::Raw {
                kind,
                content_tag,
                filters,
            } => {
                let t = T::FactsEvent;
                let mut q = self.base(t);
                if let Some(kind) = kind {
                    q.and_where(Expr::col((t, C::Kind)).eq(kind));
                }
                if let Some((from, to)) = days {
                    q.and_where(Expr::col((t, C::Day)).between(from, to));
                }
                if let Some(tag) = content_tag {
                    let has_tag = PropertyPlan::Typed {
                        key: CONTENT_TAGS_KEY.to_string(),
                        vtype: VType::Str,
                        test: Test::Cmp(Col::S, Cmp::Eq, Scalar::S(tag)),
                        negated: false,
                    };
                    q.and_where(self.event_filter(&has_tag));
                }
                for f in &filters {
                    q.and_where(self.event_filter(f));
                }
                q.group_by_col((t, C::ProfileId))
                    .and_having(count_expr(Expr::col(Asterisk).count(), cmp));
                q
            }
        };
        // One row per profile: the rolling key (tenant, profile, metric), or GROUP BY profile.
        Set::of(Part::leaf(q).unique().rank(3), zero)
    }
}

/// Restricts `q` to the metrics of `t` starting with `prefix` (`c:`, `e:`): from the prefix up
/// to the byte string after every one of it (its last byte, `:`, raised by one).
pub(super) fn metrics_of(q: &mut SelectStatement, t: T, prefix: &str) {
    let mut end = prefix.to_string();
    end.pop();
    end.push(';');
    q.and_where(Expr::col((t, C::Metric)).gte(prefix))
        .and_where(Expr::col((t, C::Metric)).lt(end));
}

/// `e` compared as `cmp` says.
fn count_expr(e: SimpleExpr, cmp: CountCmp) -> SimpleExpr {
    let e = || Expr::expr(e.clone());
    match cmp {
        CountCmp::Eq(v) => e().eq(v),
        CountCmp::Ne(v) => e().ne(v),
        CountCmp::Lt(v) => e().lt(v),
        CountCmp::Lte(v) => e().lte(v),
        CountCmp::Gt(v) => e().gt(v),
        CountCmp::Gte(v) => e().gte(v),
        CountCmp::Between(lo, hi) => e().between(lo, hi),
        CountCmp::NotBetween(lo, hi) => e().lt(lo).or(e().gt(hi)),
    }
}

/// The rolling counter that equals a window's count when the counters are fresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rolling {
    Last7,
    Last30,
    Last90,
    Total,
}

pub(super) fn rolling_col(r: Rolling) -> C {
    match r {
        Rolling::Last7 => C::Last7,
        Rolling::Last30 => C::Last30,
        Rolling::Last90 => C::Last90,
        Rolling::Total => C::Total,
    }
}

pub(super) fn rolling_for(w: &Window) -> Option<Rolling> {
    match *w {
        Window::Last { days: 7 } => Some(Rolling::Last7),
        Window::Last { days: 30 } => Some(Rolling::Last30),
        Window::Last { days: 90 } => Some(Rolling::Last90),
        Window::AllTime => Some(Rolling::Total),
        _ => None,
    }
}
