//! Breakdowns of a population over the facts tables, for analytics: how many profiles have each
//! value of a property, fall in each band of a number (a property, or a lead score valued at
//! `now` exactly as conditions value it), hold each tag, had events on content of each tag in
//! a window, or were first seen on each day; and how many events happened in each hour of each
//! day. The population is the tenant's profiles, or those a compiled condition selects
//! (`within`). The profile statements count distinct profiles, so a profile with several values
//! counts once under each.

use chrono::NaiveDate;
use sea_query::{Alias, Expr, Func, Order, Query, SelectStatement, SimpleExpr};

use proto::condition::Window;

use super::counts::{metrics_of, rolling_col, rolling_for};
use super::{score_value, CompileCtx};
use crate::facts::{content_tag_metric, VType};
use crate::resolve::window_days;
use crate::schema::{FactsCol as C, FactsTable as T};
use crate::score::score_model;

/// The column every breakdown names its count.
pub const COUNT: &str = "cnt";

fn cnt() -> Alias {
    Alias::new(COUNT)
}

/// `SELECT … FROM t WHERE tenant = ? [AND profile_id IN (within)]`.
fn of(ctx: &CompileCtx, t: T, within: Option<&SelectStatement>) -> SelectStatement {
    let mut q = Query::select();
    q.from(t)
        .and_where(Expr::col((t, C::TenantId)).eq(ctx.tenant_id.as_str()));
    if let Some(w) = within {
        q.and_where(Expr::col((t, C::ProfileId)).in_subquery(w.clone()));
    }
    q
}

fn distinct_profiles(t: T) -> SimpleExpr {
    Expr::col((t, C::ProfileId)).count_distinct()
}

/// How many profiles the population has.
pub fn population(ctx: &CompileCtx, within: Option<&SelectStatement>) -> SelectStatement {
    match within {
        Some(w) => super::count_statement(w),
        None => of(ctx, T::FactsProfile, None)
            .expr_as(Expr::col((T::FactsProfile, C::ProfileId)).count(), cnt())
            .to_owned(),
    }
}

/// `(vtype, s, n, cnt)`: profiles per string or bool value of `key`, the `limit` most frequent.
pub fn property_values(
    ctx: &CompileCtx,
    key: &str,
    within: Option<&SelectStatement>,
    limit: u64,
) -> SelectStatement {
    let t = T::FactsProperty;
    of(ctx, t, within)
        .columns([(t, C::Vtype), (t, C::S), (t, C::N)])
        .expr_as(distinct_profiles(t), cnt())
        .and_where(Expr::col((t, C::Pkey)).eq(key))
        .and_where(Expr::col((t, C::Vtype)).is_in([VType::Str.code(), VType::Bool.code()]))
        .group_by_columns([(t, C::Vtype), (t, C::S), (t, C::N)])
        .order_by_expr(Expr::col(cnt()).into(), Order::Desc)
        .limit(limit)
        .to_owned()
}

/// `cnt`: profiles with any value of `key` of `vtypes` (any type when empty); for a score key,
/// with a score of that model.
pub fn with_value(
    ctx: &CompileCtx,
    key: &str,
    vtypes: &[VType],
    within: Option<&SelectStatement>,
) -> SelectStatement {
    if let Some(model) = score_model(key) {
        let t = T::FactsScore;
        return of(ctx, t, within)
            .expr_as(distinct_profiles(t), cnt())
            .and_where(Expr::col((t, C::Pkey)).eq(model))
            .to_owned();
    }
    let t = T::FactsProperty;
    let mut q = of(ctx, t, within);
    q.expr_as(distinct_profiles(t), cnt())
        .and_where(Expr::col((t, C::Pkey)).eq(key));
    if !vtypes.is_empty() {
        q.and_where(Expr::col((t, C::Vtype)).is_in(vtypes.iter().map(|v| v.code())));
    }
    q
}

/// `(band, cnt)`: profiles per band of the number `key` between increasing `bounds` (band 0 is
/// `< bounds[0]`, band i is `[bounds[i-1], bounds[i])`, the last `≥` the last bound). A score
/// key is valued at `ctx.now`.
pub fn bands(
    ctx: &CompileCtx,
    key: &str,
    bounds: &[f64],
    within: Option<&SelectStatement>,
) -> SelectStatement {
    let (t, value, mut q) = match score_model(key) {
        Some(model) => {
            let t = T::FactsScore;
            let mut q = of(ctx, t, within);
            q.and_where(Expr::col((t, C::Pkey)).eq(model));
            (t, score_value(ctx.now), q)
        }
        None => {
            let t = T::FactsProperty;
            let mut q = of(ctx, t, within);
            q.and_where(Expr::col((t, C::Pkey)).eq(key))
                .and_where(Expr::col((t, C::Vtype)).eq(VType::Num.code()));
            (t, Expr::col((t, C::N)).into(), q)
        }
    };
    let mut case = sea_query::CaseStatement::new();
    for (i, b) in bounds.iter().enumerate() {
        case = case.case(Expr::expr(value.clone()).lt(*b), Expr::val(i as i64));
    }
    let band: SimpleExpr = case.finally(Expr::val(bounds.len() as i64)).into();
    q.expr_as(band, Alias::new("band"))
        .expr_as(distinct_profiles(t), cnt())
        .group_by_col(Alias::new("band"))
        .to_owned()
}

/// `(tag_id, cnt)`: holders of each tag (of `tags` only, when given).
pub fn tag_holders(
    ctx: &CompileCtx,
    tags: Option<&[String]>,
    within: Option<&SelectStatement>,
) -> SelectStatement {
    let t = T::FactsTag;
    tagged(ctx, tags, within)
        .column((t, C::TagId))
        .group_by_col((t, C::TagId))
        .to_owned()
}

/// `cnt`: profiles holding any tag (of `tags` only, when given).
pub fn tagged(
    ctx: &CompileCtx,
    tags: Option<&[String]>,
    within: Option<&SelectStatement>,
) -> SelectStatement {
    let t = T::FactsTag;
    let mut q = of(ctx, t, within);
    q.expr_as(distinct_profiles(t), cnt());
    if let Some(tags) = tags {
        q.and_where(Expr::col((t, C::TagId)).is_in(tags.iter().map(String::as_str)));
    }
    q
}

/// `(metric, cnt)`: profiles with events on content of each tag in `window` (the rolling
/// counters when fresh, else the daily buckets), the `limit` most frequent; with `limit` 0,
/// `cnt` alone: profiles with any.
pub fn content_tag_interest(
    ctx: &CompileCtx,
    window: &Window,
    within: Option<&SelectStatement>,
    limit: u64,
) -> SelectStatement {
    let fresh = ctx.rolling_as_of == Some(ctx.today);
    let (t, mut q) = match rolling_for(window).filter(|_| fresh) {
        Some(r) => {
            let t = T::FactsBehaviourRolling;
            let mut q = of(ctx, t, within);
            q.and_where(Expr::col((t, rolling_col(r))).gt(0));
            (t, q)
        }
        None => {
            let t = T::FactsBehaviourDaily;
            let mut q = of(ctx, t, within);
            q.and_where(Expr::col((t, C::Cnt)).gt(0));
            if let Some((from, to)) = window_days(window, ctx.today) {
                q.and_where(Expr::col((t, C::Day)).between(from, to));
            }
            (t, q)
        }
    };
    metrics_of(&mut q, t, &content_tag_metric(""));
    q.expr_as(distinct_profiles(t), cnt());
    if limit > 0 {
        q.column((t, C::Metric))
            .group_by_col((t, C::Metric))
            .order_by_expr(Expr::col(cnt()).into(), Order::Desc)
            .limit(limit);
    }
    q
}

/// `(day, cnt)`: profiles first seen on each tenant-local day from `from` to `to` (days with
/// none have no row).
pub fn first_seen_days(
    ctx: &CompileCtx,
    from: NaiveDate,
    to: NaiveDate,
    within: Option<&SelectStatement>,
) -> SelectStatement {
    let t = T::FactsFirstSeen;
    of(ctx, t, within)
        .column((t, C::Day))
        .expr_as(Expr::col((t, C::ProfileId)).count(), cnt())
        .and_where(Expr::col((t, C::MergedInto)).eq(""))
        .and_where(Expr::col((t, C::Day)).between(from, to))
        .group_by_col((t, C::Day))
        .to_owned()
}

/// `(day, hour, cnt)`: events of `kind` ([`crate::schema::EVERY_EVENT`] for all) in each
/// tenant-local hour of each day of `window` (hours with none have no row): the tenant's
/// counters, or its profiles' when `within` is given.
pub fn activity_hours(
    ctx: &CompileCtx,
    kind: &str,
    window: &Window,
    within: Option<&SelectStatement>,
) -> SelectStatement {
    let t = match within {
        Some(_) => T::FactsActivity,
        None => T::FactsActivityTenant,
    };
    let mut q = of(ctx, t, within);
    q.columns([(t, C::Day), (t, C::Hour)])
        .expr_as(
            Func::cast_as(Expr::col((t, C::Cnt)).sum(), Alias::new("SIGNED")),
            cnt(),
        )
        .and_where(Expr::col((t, C::Kind)).eq(kind));
    if let Some((from, to)) = window_days(window, ctx.today) {
        q.and_where(Expr::col((t, C::Day)).between(from, to));
    }
    q.group_by_columns([(t, C::Day), (t, C::Hour)]);
    q
}
