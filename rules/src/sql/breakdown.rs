//! Breakdowns of a population over the facts tables, for analytics: how many profiles have each
//! value of a property, fall in each band of a number (a property, or a lead score valued at
//! `now` exactly as conditions value it), hold each tag, had events on content of each tag in
//! a window, or were first seen on each day; and how many events happened in each hour of each
//! day. The population is the tenant's profiles, or those a compiled condition selects
//! (`within`). The profile statements count distinct profiles, so a profile with several values
//! counts once under each.

use chrono::NaiveDate;
use sea_query::extension::mysql::{IndexHintScope, MySqlSelectStatementExt};
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

/// `(value, cnt, later)`: profiles per value of `key` of type `vtype` — the text (`s`) of a
/// string, the number (`n`, 0 or 1) of a bool — the `limit` most frequent, and how many of them
/// hold it as a second or later value ([`LATER`]).
///
/// One type per statement, grouped by its own value column: for the tenant that reads the
/// value's index range (`ix_facts_property_s` / `_n`, which hold the profile id) in value
/// order, each value's rows counted as they stream by.
pub fn property_values(
    ctx: &CompileCtx,
    key: &str,
    vtype: VType,
    within: Option<&SelectStatement>,
    limit: u64,
) -> SelectStatement {
    let t = T::FactsProperty;
    let col = match vtype {
        VType::Str => C::S,
        _ => C::N,
    };
    let mut q = of(ctx, t, within);
    // A key's stored values are distinct (`FactValue::stored_distinct`): a profile is one row
    // per value.
    q.expr_as(Expr::col((t, col)), Alias::new(PROPERTY_VALUE))
        .expr_as(Expr::col((t, C::ProfileId)).count(), cnt())
        .expr_as(later_values(t), Alias::new(LATER))
        .and_where(Expr::col((t, C::Pkey)).eq(key))
        .and_where(Expr::col((t, C::Vtype)).eq(vtype.code()))
        .group_by_col((t, col))
        .order_by_expr(Expr::col(cnt()).into(), Order::Desc)
        .limit(limit);
    if within.is_none() {
        q.force_index(
            Alias::new(match vtype {
                VType::Str => "ix_facts_property_s",
                _ => "ix_facts_property_n",
            }),
            IndexHintScope::All,
        );
    }
    q
}

/// The column [`property_values`] names its value.
pub const PROPERTY_VALUE: &str = "value";

/// `cnt`: profiles with a value of `key` whose first value is of `vtypes` (any type when empty);
/// for a score key, with a score of that model.
///
/// Every writer numbers a key's values from 0 (`ord`), so a profile with values of `key` has
/// exactly one row at `ord` 0 and the count needs no DISTINCT (the `ix_facts_property_*`
/// indexes hold `ord`, as a secondary index holds the primary key). A key's values share a type
/// wherever the schema types it; an untyped custom key holding mixed types counts under its
/// first value's type.
pub fn with_value(
    ctx: &CompileCtx,
    key: &str,
    vtypes: &[VType],
    within: Option<&SelectStatement>,
) -> SelectStatement {
    if let Some(model) = score_model(key) {
        let t = T::FactsScore;
        return of(ctx, t, within)
            .expr_as(Expr::col((t, C::ProfileId)).count(), cnt())
            .and_where(Expr::col((t, C::Pkey)).eq(model))
            .to_owned();
    }
    let t = T::FactsProperty;
    let mut q = of(ctx, t, within);
    q.expr_as(Expr::col((t, C::ProfileId)).count(), cnt())
        .and_where(Expr::col((t, C::Pkey)).eq(key))
        .and_where(Expr::col((t, C::Ord)).eq(0));
    if !vtypes.is_empty() {
        q.and_where(Expr::col((t, C::Vtype)).is_in(vtypes.iter().map(|v| v.code())));
    }
    if within.is_none() {
        // The (tenant, key) range of the value index, not every row of the tenant.
        q.force_index(Alias::new("ix_facts_property_s"), IndexHintScope::All);
    }
    q
}

/// `(band, cnt, later)`: profiles per band of the number `key` between increasing `bounds`
/// (band 0 is `< bounds[0]`, band i is `[bounds[i-1], bounds[i])`, the last `≥` the last
/// bound). A score key is valued at `ctx.now`.
///
/// A profile has one score per model, and mostly one value per number property: `distinct`
/// false counts rows, and [`LATER`] says how many of a band's rows are a profile's second or
/// later value (`ord > 0`, always 0 for scores). Where a band has any, a profile may be in it
/// twice, and the caller counts again with `distinct`.
pub fn bands(
    ctx: &CompileCtx,
    key: &str,
    bounds: &[f64],
    within: Option<&SelectStatement>,
    distinct: bool,
) -> SelectStatement {
    let (t, value, later, mut q) = match score_model(key) {
        Some(model) => {
            let t = T::FactsScore;
            let mut q = of(ctx, t, within);
            q.and_where(Expr::col((t, C::Pkey)).eq(model));
            (t, score_value(ctx.now), Expr::val(0i64).into(), q)
        }
        None => {
            let t = T::FactsProperty;
            let mut q = of(ctx, t, within);
            q.and_where(Expr::col((t, C::Pkey)).eq(key))
                .and_where(Expr::col((t, C::Vtype)).eq(VType::Num.code()));
            if within.is_none() {
                q.force_index(Alias::new("ix_facts_property_n"), IndexHintScope::All);
            }
            (t, Expr::col((t, C::N)).into(), later_values(t), q)
        }
    };
    let mut case = sea_query::CaseStatement::new();
    for (i, b) in bounds.iter().enumerate() {
        case = case.case(Expr::expr(value.clone()).lt(*b), Expr::val(i as i64));
    }
    let band: SimpleExpr = case.finally(Expr::val(bounds.len() as i64)).into();
    let counted = if distinct {
        distinct_profiles(t)
    } else {
        Expr::col((t, C::ProfileId)).count()
    };
    q.expr_as(band, Alias::new("band"))
        .expr_as(counted, cnt())
        .expr_as(later, Alias::new(LATER))
        .group_by_col(Alias::new("band"))
        .to_owned()
}

/// The column of [`bands`] and [`property_values`] counting a profile's later values.
pub const LATER: &str = "later";

/// How many of the rows are a profile's second or later value of their key (`ord > 0`).
fn later_values(t: T) -> SimpleExpr {
    let later: SimpleExpr = sea_query::CaseStatement::new()
        .case(Expr::col((t, C::Ord)).gt(0), Expr::val(1i64))
        .finally(Expr::val(0i64))
        .into();
    Func::cast_as(Expr::expr(later).sum(), Alias::new("SIGNED")).into()
}

/// `(tag_id, cnt)`: holders of each tag (of `tags` only, when given); for the whole tenant,
/// the counts kept in `facts_tag_holders` plus the changes logged since their last compaction.
pub fn tag_holders(
    ctx: &CompileCtx,
    tags: Option<&[String]>,
    within: Option<&SelectStatement>,
) -> SelectStatement {
    if within.is_none() {
        let part = |t: T| {
            let mut q = of(ctx, t, None);
            q.column((t, C::TagId)).column((t, C::Cnt));
            if let Some(tags) = tags {
                q.and_where(Expr::col((t, C::TagId)).is_in(tags.iter().map(String::as_str)));
            }
            q
        };
        let both = part(T::FactsTagHolders)
            .union(sea_query::UnionType::All, part(T::FactsTagHolderLog))
            .to_owned();
        let u = Alias::new("u");
        let sum = || Func::cast_as(Expr::col((u.clone(), C::Cnt)).sum(), Alias::new("SIGNED"));
        return Query::select()
            .column((u.clone(), C::TagId))
            .expr_as(sum(), cnt())
            .from_subquery(both, u.clone())
            .group_by_col((u.clone(), C::TagId))
            .and_having(Expr::expr(sum()).gt(0))
            .to_owned();
    }
    let t = T::FactsTag;
    // (tenant, tag, profile) is the primary key: a holder is one row, counted without DISTINCT
    // along the key's own order.
    let mut q = of(ctx, t, within);
    q.column((t, C::TagId))
        .expr_as(Expr::col((t, C::ProfileId)).count(), cnt())
        .group_by_col((t, C::TagId));
    if let Some(tags) = tags {
        q.and_where(Expr::col((t, C::TagId)).is_in(tags.iter().map(String::as_str)));
    }
    q
}

/// `cnt`: profiles holding any tag (of `tags` only, when given); for the whole tenant, from
/// `facts_profile.tag_count`.
pub fn tagged(
    ctx: &CompileCtx,
    tags: Option<&[String]>,
    within: Option<&SelectStatement>,
) -> SelectStatement {
    if let (None, None) = (tags, within) {
        // The tenant: the profiles' own tag counts, not a DISTINCT over every tag row.
        let t = T::FactsProfile;
        return of(ctx, t, None)
            .expr_as(Expr::col((t, C::ProfileId)).count(), cnt())
            .and_where(Expr::col((t, C::TagCount)).gt(0))
            .to_owned();
    }
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
/// `cnt` alone: profiles with any (for the whole tenant and a window up to today, from
/// `facts_profile.content_day`).
pub fn content_tag_interest(
    ctx: &CompileCtx,
    window: &Window,
    within: Option<&SelectStatement>,
    limit: u64,
) -> SelectStatement {
    let grouped = limit > 0;
    if !grouped && within.is_none() {
        // The tenant's profiles with any: their latest content day, for a window up to today.
        let since = match window_days(window, ctx.today) {
            None => Some(None),
            Some((from, to)) if to == ctx.today => Some(Some(from)),
            Some(_) => None,
        };
        if let Some(since) = since {
            let t = T::FactsProfile;
            let mut q = of(ctx, t, None);
            q.expr_as(Expr::col((t, C::ProfileId)).count(), cnt());
            match since {
                Some(from) => q.and_where(Expr::col((t, C::ContentDay)).gte(from)),
                None => q.and_where(Expr::col((t, C::ContentDay)).is_not_null()),
            };
            return q;
        }
    }
    let fresh = ctx.rolling_as_of == Some(ctx.today);
    let (t, mut q, unique) = match rolling_for(window).filter(|_| fresh) {
        Some(r) => {
            let t = T::FactsBehaviourRolling;
            let col = rolling_col(r);
            let mut q = of(ctx, t, within);
            q.and_where(Expr::col((t, col)).gt(0));
            if within.is_none() {
                // (tenant, metric, window count, profile): the content metrics' range, the
                // non-zero counts read from the index alone.
                q.force_index(Alias::new(rolling_index(col)), IndexHintScope::All);
            }
            // One row per (profile, metric): per metric, a profile is one row.
            (t, q, grouped)
        }
        None => {
            let t = T::FactsBehaviourDaily;
            let mut q = of(ctx, t, within);
            q.and_where(Expr::col((t, C::Cnt)).gt(0));
            if let Some((from, to)) = window_days(window, ctx.today) {
                q.and_where(Expr::col((t, C::Day)).between(from, to));
            }
            (t, q, false)
        }
    };
    metrics_of(&mut q, t, &content_tag_metric(""));
    q.expr_as(
        if unique {
            Expr::col((t, C::ProfileId)).count()
        } else {
            distinct_profiles(t)
        },
        cnt(),
    );
    if grouped {
        q.column((t, C::Metric))
            .group_by_col((t, C::Metric))
            .order_by_expr(Expr::col(cnt()).into(), Order::Desc)
            .limit(limit);
    }
    q
}

/// The index of the rolling counters on `col` (see [`crate::schema::indexes`]).
fn rolling_index(col: C) -> &'static str {
    match col {
        C::Last7 => "ix_facts_rolling_7",
        C::Last30 => "ix_facts_rolling_30",
        C::Last90 => "ix_facts_rolling_90",
        _ => "ix_facts_rolling_total",
    }
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

/// Stage entries of the population on days `from..=to`: the tenant's live profiles (a merged-away
/// profile's entries stay, its profile row does not), or those of `within`.
fn stage_entries_in(
    ctx: &CompileCtx,
    alias: &Alias,
    from: NaiveDate,
    to: NaiveDate,
    within: Option<&SelectStatement>,
) -> SelectStatement {
    let t = T::FactsStageEntry;
    let mut q = Query::select();
    q.from_as(t, alias.clone())
        .and_where(Expr::col((alias.clone(), C::TenantId)).eq(ctx.tenant_id.as_str()))
        .and_where(Expr::col((alias.clone(), C::Day)).between(from, to));
    let population = match within {
        Some(w) => w.clone(),
        None => Query::select()
            .column(C::ProfileId)
            .from(T::FactsProfile)
            .and_where(Expr::col(C::TenantId).eq(ctx.tenant_id.as_str()))
            .to_owned(),
    };
    q.and_where(Expr::col((alias.clone(), C::ProfileId)).in_subquery(population));
    q
}

/// `(stage, cnt)`: profiles of the population that entered each stage on days `from..=to`.
pub fn stage_entered(
    ctx: &CompileCtx,
    from: NaiveDate,
    to: NaiveDate,
    within: Option<&SelectStatement>,
) -> SelectStatement {
    let e = Alias::new("e");
    stage_entries_in(ctx, &e, from, to, within)
        .expr_as(Expr::col((e.clone(), C::Stage)), Alias::new("stage"))
        .expr_as(Expr::col((e.clone(), C::ProfileId)).count_distinct(), cnt())
        .group_by_col((e, C::Stage))
        .to_owned()
}

/// `(cnt)`: profiles of the population that entered any stage on days `from..=to`.
pub fn stage_entered_any(
    ctx: &CompileCtx,
    from: NaiveDate,
    to: NaiveDate,
    within: Option<&SelectStatement>,
) -> SelectStatement {
    let e = Alias::new("e");
    stage_entries_in(ctx, &e, from, to, within)
        .expr_as(Expr::col((e, C::ProfileId)).count_distinct(), cnt())
        .to_owned()
}

/// `(stage, reached, cnt)`: of the profiles of the population that entered `stage` on days
/// `from..=to`, those that entered `reached` (another stage) after it and by the end of `to` —
/// the conversion scoring's funnel counts from its own history.
pub fn stage_reached(
    ctx: &CompileCtx,
    from: NaiveDate,
    to: NaiveDate,
    within: Option<&SelectStatement>,
) -> SelectStatement {
    let (e, l) = (Alias::new("e"), Alias::new("l"));
    stage_entries_in(ctx, &e, from, to, within)
        .join_as(
            sea_query::JoinType::InnerJoin,
            T::FactsStageEntry,
            l.clone(),
            Expr::col((l.clone(), C::TenantId))
                .equals((e.clone(), C::TenantId))
                .and(Expr::col((l.clone(), C::ProfileId)).equals((e.clone(), C::ProfileId)))
                .and(Expr::col((l.clone(), C::EnteredAt)).gt(Expr::col((e.clone(), C::EnteredAt))))
                .and(Expr::col((l.clone(), C::Day)).lte(to))
                .and(Expr::col((l.clone(), C::Stage)).ne(Expr::col((e.clone(), C::Stage)))),
        )
        .expr_as(Expr::col((e.clone(), C::Stage)), Alias::new("stage"))
        .expr_as(Expr::col((l.clone(), C::Stage)), Alias::new("reached"))
        .expr_as(Expr::col((e.clone(), C::ProfileId)).count_distinct(), cnt())
        .group_by_col((e, C::Stage))
        .group_by_col((l, C::Stage))
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
