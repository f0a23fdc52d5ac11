//! Writing facts rows in the encoding the evaluator reads: a whole profile at once (backfill,
//! tests), deleting one, and the per-event bucket upsert.

use chrono::{DateTime, NaiveDate, Utc};
use sea_query::{
    DeleteStatement, Expr, InsertStatement, OnConflict, Query, SimpleExpr, UpdateStatement,
};

use super::{FactsCol, FactsTable, C, T};
use crate::facts::ProfileFacts;
use crate::score::{score_model, ScoreFold};

/// Rows per `INSERT` (well below SQLite's and MySQL's placeholder limits).
const ROWS_PER_INSERT: usize = 200;

/// Collects rows of one table into chunked multi-row inserts.
struct Rows {
    table: FactsTable,
    cols: Vec<FactsCol>,
    rows: Vec<Vec<SimpleExpr>>,
}

impl Rows {
    fn new(table: FactsTable, cols: &[FactsCol]) -> Self {
        Rows {
            table,
            cols: cols.to_vec(),
            rows: Vec::new(),
        }
    }

    fn push(&mut self, row: Vec<SimpleExpr>) {
        self.rows.push(row);
    }

    fn into_statements(self, out: &mut Vec<InsertStatement>) {
        for chunk in self.rows.chunks(ROWS_PER_INSERT) {
            let mut q = Query::insert();
            q.into_table(self.table).columns(self.cols.iter().copied());
            for row in chunk {
                // Every row is built above with exactly one value per column.
                q.values_panic(row.iter().cloned());
            }
            out.push(q.to_owned());
        }
    }
}

fn s(v: impl Into<String>) -> SimpleExpr {
    Expr::val(v.into()).into()
}

/// Inserts of every facts row of `profiles` (in the column encoding of [`crate::FactValue`]),
/// with rolling counters as of `rolling_as_of` when given. For a backfill or a test; a profile
/// already present must be deleted first ([`delete_profile_statements`]).
pub fn insert_statements(
    tenant_id: &str,
    profiles: &[ProfileFacts],
    version: i64,
    updated_at: DateTime<Utc>,
    rolling_as_of: Option<NaiveDate>,
) -> Vec<InsertStatement> {
    let mut profile = Rows::new(
        T::FactsProfile,
        &[
            C::TenantId,
            C::ProfileId,
            C::Version,
            C::UpdatedAt,
            C::TagCount,
            C::ContentDay,
            C::Kinds7,
            C::Kinds30,
            C::Kinds90,
            C::KindsTotal,
        ],
    );
    let value_cols = [C::Pkey, C::Ord, C::Vtype, C::S, C::SFold, C::N];
    let mut property = Rows::new(
        T::FactsProperty,
        &[&[C::TenantId, C::ProfileId][..], &value_cols].concat(),
    );
    let mut tag = Rows::new(T::FactsTag, &[C::TenantId, C::ProfileId, C::TagId]);
    let mut relation = Rows::new(
        T::FactsRelation,
        &[C::TenantId, C::ProfileId, C::Kind, C::Ns, C::Ref],
    );
    let mut daily = Rows::new(
        T::FactsBehaviourDaily,
        &[C::TenantId, C::ProfileId, C::Metric, C::Day, C::Cnt],
    );
    let mut rolling = Rows::new(
        T::FactsBehaviourRolling,
        &[
            C::TenantId,
            C::ProfileId,
            C::Metric,
            C::Last7,
            C::Last30,
            C::Last90,
            C::Total,
        ],
    );
    let mut event = Rows::new(T::FactsEvent, &EVENT_COLS);
    let mut event_prop = Rows::new(
        T::FactsEventProp,
        &[&[C::TenantId, C::EventId][..], &value_cols].concat(),
    );
    let mut score = Rows::new(T::FactsScore, &SCORE_COLS);
    let values = |key: &str, values: &[crate::FactValue]| -> Vec<Vec<SimpleExpr>> {
        crate::FactValue::stored_distinct(values)
            .into_iter()
            .enumerate()
            .map(|(ord, v)| {
                let e = v.encode();
                vec![
                    s(key),
                    Expr::val(i32::try_from(ord).unwrap_or(i32::MAX)).into(),
                    s(e.vtype.code()),
                    Expr::val(e.s).into(),
                    Expr::val(e.s_fold).into(),
                    Expr::val(e.n).into(),
                ]
            })
            .collect()
    };
    for p in profiles {
        let id = || s(p.profile_id.as_str());
        let content_day = p
            .daily
            .iter()
            .filter(|(m, _)| m.starts_with(CONTENT_PREFIX))
            .flat_map(|(_, days)| days.iter().filter(|(_, n)| **n > 0).map(|(d, _)| *d))
            .max();
        // Event kinds with events in each rolling window (none without rolling rows).
        let mut kinds = [0i32; 4];
        if let Some(as_of) = rolling_as_of {
            for (metric, r) in p.rolling(as_of) {
                if metric.starts_with(EVENT_PREFIX) {
                    for (k, n) in kinds.iter_mut().zip([r.last7, r.last30, r.last90, r.total]) {
                        *k += i32::from(n > 0);
                    }
                }
            }
        }
        profile.push(
            [
                vec![
                    s(tenant_id),
                    id(),
                    Expr::val(version).into(),
                    Expr::val(updated_at).into(),
                    Expr::val(i32::try_from(p.tags.len()).unwrap_or(i32::MAX)).into(),
                    Expr::val(content_day).into(),
                ],
                kinds.iter().map(|k| Expr::val(*k).into()).collect(),
            ]
            .concat(),
        );
        for (key, vs) in &p.properties {
            // A score's property is its fold's value at one instant: the fold is stored.
            if score_model(key).is_some_and(|m| p.scores.contains_key(m)) {
                continue;
            }
            for row in values(key, vs) {
                property.push([vec![s(tenant_id), id()], row].concat());
            }
        }
        for t in &p.tags {
            tag.push(vec![s(tenant_id), id(), s(t.as_str())]);
        }
        for r in &p.relations {
            relation.push(vec![
                s(tenant_id),
                id(),
                s(r.kind.as_str()),
                s(r.ns.as_str()),
                s(r.reference.as_str()),
            ]);
        }
        for (metric, buckets) in &p.daily {
            for (day, cnt) in buckets {
                daily.push(vec![
                    s(tenant_id),
                    id(),
                    s(metric.as_str()),
                    Expr::val(*day).into(),
                    Expr::val(*cnt).into(),
                ]);
            }
        }
        if let Some(as_of) = rolling_as_of {
            for (metric, r) in p.rolling(as_of) {
                rolling.push(vec![
                    s(tenant_id),
                    id(),
                    s(metric),
                    Expr::val(r.last7).into(),
                    Expr::val(r.last30).into(),
                    Expr::val(r.last90).into(),
                    Expr::val(r.total).into(),
                ]);
            }
        }
        for (model, fold) in &p.scores {
            score.push(score_row(tenant_id, &p.profile_id, model, fold));
        }
        for e in &p.events {
            event.push(vec![
                s(tenant_id),
                s(e.event_id.as_str()),
                id(),
                s(e.kind.as_str()),
                Expr::val(e.day).into(),
                Expr::val(e.hour.map(i16::from)).into(),
            ]);
            for (key, vs) in &e.props {
                for row in values(key, vs) {
                    event_prop.push([vec![s(tenant_id), s(e.event_id.as_str())], row].concat());
                }
            }
        }
    }
    let mut out = Vec::new();
    for rows in [
        profile, property, tag, relation, daily, rolling, event, event_prop, score,
    ] {
        rows.into_statements(&mut out);
    }
    let mut holders: std::collections::BTreeMap<&str, i64> = Default::default();
    for p in profiles {
        for t in &p.tags {
            *holders.entry(t.as_str()).or_default() += 1;
        }
    }
    let held: Vec<(&str, i64)> = holders.into_iter().collect();
    out.extend(log_tag_holders(tenant_id, &held));
    out
}

/// Logs changes to tags' holders (`(tag, change)`, zero changes left out) in
/// `facts_tag_holder_log`: `None` when nothing changed.
pub fn log_tag_holders(tenant_id: &str, changes: &[(&str, i64)]) -> Option<InsertStatement> {
    let mut q = Query::insert();
    q.into_table(T::FactsTagHolderLog)
        .columns([C::TenantId, C::TagId, C::Cnt]);
    let mut any = false;
    for (tag, n) in changes.iter().filter(|(_, n)| *n != 0) {
        q.values_panic([s(tenant_id), s(*tag), Expr::val(*n).into()]);
        any = true;
    }
    any.then_some(q)
}

/// Logs one holder fewer for each tag the profile holds (an `INSERT … SELECT`, run before
/// [`delete_profile_statements`] removes its tag rows).
pub fn unhold_profile_tags(tenant_id: &str, profile_id: &str) -> InsertStatement {
    let held = Query::select()
        .column(C::TenantId)
        .column(C::TagId)
        .expr(Expr::val(-1i64))
        .from(T::FactsTag)
        .and_where(Expr::col(C::TenantId).eq(tenant_id))
        .and_where(Expr::col(C::ProfileId).eq(profile_id))
        .to_owned();
    Query::insert()
        .into_table(T::FactsTagHolderLog)
        .columns([C::TenantId, C::TagId, C::Cnt])
        .select_from(held)
        .expect("three columns for three")
        .to_owned()
}

/// Adds `by` to the holders of `tag` kept in `facts_tag_holders` (an upsert): how a compaction
/// folds the log's rows in.
pub fn fold_tag_holders(tenant_id: &str, tag: &str, by: i64) -> InsertStatement {
    Query::insert()
        .into_table(T::FactsTagHolders)
        .columns([C::TenantId, C::TagId, C::Cnt])
        .values_panic([s(tenant_id), s(tag), Expr::val(by).into()])
        .on_conflict(
            OnConflict::columns([C::TenantId, C::TagId])
                .value(C::Cnt, Expr::col((T::FactsTagHolders, C::Cnt)).add(by))
                .to_owned(),
        )
        .to_owned()
}

/// Counts `facts_tag_holders` again from `facts_tag` (a projection made before it was kept, or
/// loaded by other means): the deletes (of the counts and of their log), then the insert.
pub fn count_tag_holders() -> ([DeleteStatement; 2], InsertStatement) {
    let counts = Query::select()
        .column(C::TenantId)
        .column(C::TagId)
        .expr(Expr::col(C::ProfileId).count())
        .from(T::FactsTag)
        .group_by_col(C::TenantId)
        .group_by_col(C::TagId)
        .to_owned();
    (
        [
            Query::delete().from_table(T::FactsTagHolders).to_owned(),
            Query::delete().from_table(T::FactsTagHolderLog).to_owned(),
        ],
        Query::insert()
            .into_table(T::FactsTagHolders)
            .columns([C::TenantId, C::TagId, C::Cnt])
            .select_from(counts)
            .expect("three columns for three")
            .to_owned(),
    )
}

/// The columns of a `facts_event` row, in the order its writers give values.
pub const EVENT_COLS: [FactsCol; 6] = [
    C::TenantId,
    C::EventId,
    C::ProfileId,
    C::Kind,
    C::Day,
    C::Hour,
];

/// The columns of a `facts_score` row, in [`score_row`]'s order.
pub const SCORE_COLS: [FactsCol; 7] = [
    C::TenantId,
    C::ProfileId,
    C::Pkey,
    C::N,
    C::Decaying,
    C::FoldedAt,
    C::Rate,
];

/// The `facts_score` row of the score of `model` (values for [`SCORE_COLS`]).
pub fn score_row(tenant_id: &str, profile_id: &str, model: &str, f: &ScoreFold) -> Vec<SimpleExpr> {
    vec![
        s(tenant_id),
        s(profile_id),
        s(model),
        Expr::val(f.held).into(),
        Expr::val(f.decaying).into(),
        Expr::val(f.at).into(),
        Expr::val(f.rate).into(),
    ]
}

/// The metrics of content tags (`c:<tag>`, see [`crate::facts::content_tag_metric`]) sort from
/// here up to [`CONTENT_END`].
const CONTENT_PREFIX: &str = "c:";
const CONTENT_END: &str = "c;";
/// The metrics of event kinds (`e:<kind>`) sort from here up to [`EVENT_END`].
const EVENT_PREFIX: &str = "e:";
const EVENT_END: &str = "e;";

/// Which `facts_profile` rows a recount sets.
#[derive(Debug, Clone, Copy)]
pub enum Recount<'a> {
    /// These profiles of a tenant.
    Profiles(&'a str, &'a [&'a str]),
    /// A tenant's profiles with ids `after < id <= until` (a chunk of a rebuild).
    Range {
        tenant_id: &'a str,
        after: Option<&'a str>,
        until: &'a str,
    },
    /// A tenant's profiles with events of any kind on `day` (a day leaving a window).
    EventsOn(&'a str, chrono::NaiveDate),
    /// Every row (filling the columns in a projection made before they were kept).
    Everything,
}

/// Sets `facts_profile.tag_count` of the profiles `of` names to the rows of `facts_tag` they
/// have.
pub fn recount_tags(of: Recount) -> UpdateStatement {
    let held = Query::select()
        .expr(Expr::col((T::FactsTag, C::TagId)).count())
        .from(T::FactsTag)
        .and_where(Expr::col((T::FactsTag, C::TenantId)).equals((T::FactsProfile, C::TenantId)))
        .and_where(Expr::col((T::FactsTag, C::ProfileId)).equals((T::FactsProfile, C::ProfileId)))
        .to_owned();
    of_profiles(of)
        .value(
            C::TagCount,
            SimpleExpr::SubQuery(None, Box::new(held.into_sub_query_statement())),
        )
        .to_owned()
}

/// [`recount_content_day`] and [`recount_kinds`] in one statement.
pub fn recount_content_day_and_kinds(of: Recount) -> UpdateStatement {
    let mut q = recount_kinds(of);
    q.value(C::ContentDay, latest_content_day());
    q
}

/// Sets `facts_profile.content_day` of the profiles `of` names to the latest day of their
/// non-zero buckets of content metrics (null without any).
pub fn recount_content_day(of: Recount) -> UpdateStatement {
    of_profiles(of)
        .value(C::ContentDay, latest_content_day())
        .to_owned()
}

fn latest_content_day() -> SimpleExpr {
    let d = T::FactsBehaviourDaily;
    let latest = Query::select()
        .expr(Expr::col((d, C::Day)).max())
        .from(d)
        .and_where(Expr::col((d, C::TenantId)).equals((T::FactsProfile, C::TenantId)))
        .and_where(Expr::col((d, C::ProfileId)).equals((T::FactsProfile, C::ProfileId)))
        .and_where(Expr::col((d, C::Metric)).gte(CONTENT_PREFIX))
        .and_where(Expr::col((d, C::Metric)).lt(CONTENT_END))
        .and_where(Expr::col((d, C::Cnt)).gt(0))
        .to_owned();
    SimpleExpr::SubQuery(None, Box::new(latest.into_sub_query_statement()))
}

/// Sets the kind counts of the profiles `of` names ([`crate::schema::KIND_COLS`]) to their
/// `e:` rows of `facts_behaviour_rolling` with events in each window.
pub fn recount_kinds(of: Recount) -> UpdateStatement {
    let r = T::FactsBehaviourRolling;
    let mut q = of_profiles(of);
    for (col, window) in
        crate::schema::KIND_COLS
            .into_iter()
            .zip([C::Last7, C::Last30, C::Last90, C::Total])
    {
        let n = Query::select()
            .expr(Expr::col((r, C::Metric)).count())
            .from(r)
            .and_where(Expr::col((r, C::TenantId)).equals((T::FactsProfile, C::TenantId)))
            .and_where(Expr::col((r, C::ProfileId)).equals((T::FactsProfile, C::ProfileId)))
            .and_where(Expr::col((r, C::Metric)).gte(EVENT_PREFIX))
            .and_where(Expr::col((r, C::Metric)).lt(EVENT_END))
            .and_where(Expr::col((r, window)).gt(0))
            .to_owned();
        q.value(
            col,
            SimpleExpr::SubQuery(None, Box::new(n.into_sub_query_statement())),
        );
    }
    q
}

/// `UPDATE facts_profile … WHERE` the rows `of` names.
fn of_profiles(of: Recount) -> UpdateStatement {
    let mut q = Query::update();
    q.table(T::FactsProfile);
    let (p, id) = (T::FactsProfile, || {
        Expr::col((T::FactsProfile, C::ProfileId))
    });
    match of {
        Recount::Profiles(tenant_id, profiles) => {
            q.and_where(Expr::col((p, C::TenantId)).eq(tenant_id))
                .and_where(id().is_in(profiles.iter().map(|p| p.to_string())));
        }
        Recount::Range {
            tenant_id,
            after,
            until,
        } => {
            q.and_where(Expr::col((p, C::TenantId)).eq(tenant_id))
                .and_where(id().lte(until));
            if let Some(a) = after {
                q.and_where(id().gt(a));
            }
        }
        Recount::EventsOn(tenant_id, day) => {
            let d = T::FactsBehaviourDaily;
            let on = Query::select()
                .column((d, C::ProfileId))
                .from(d)
                .and_where(Expr::col((d, C::TenantId)).eq(tenant_id))
                .and_where(Expr::col((d, C::Day)).eq(day))
                .and_where(Expr::col((d, C::Metric)).gte(EVENT_PREFIX))
                .and_where(Expr::col((d, C::Metric)).lt(EVENT_END))
                .to_owned();
            q.and_where(Expr::col((p, C::TenantId)).eq(tenant_id))
                .and_where(id().in_subquery(on));
        }
        Recount::Everything => {}
    }
    q
}

/// Deletes every facts row of one profile (its raw events' properties included); of
/// `facts_first_seen` only its live row (a row it keeps for profiles merged into it stays, for
/// an un-merge).
pub fn delete_profile_statements(tenant_id: &str, profile_id: &str) -> Vec<DeleteStatement> {
    let of_profile = |t: FactsTable| {
        Query::delete()
            .from_table(t)
            .and_where(Expr::col(C::TenantId).eq(tenant_id))
            .and_where(Expr::col(C::ProfileId).eq(profile_id))
            .to_owned()
    };
    let events = Query::select()
        .column(C::EventId)
        .from(T::FactsEvent)
        .and_where(Expr::col(C::TenantId).eq(tenant_id))
        .and_where(Expr::col(C::ProfileId).eq(profile_id))
        .to_owned();
    let props = Query::delete()
        .from_table(T::FactsEventProp)
        .and_where(Expr::col(C::TenantId).eq(tenant_id))
        .and_where(Expr::col(C::EventId).in_subquery(events))
        .to_owned();
    let first_seen = Query::delete()
        .from_table(T::FactsFirstSeen)
        .and_where(Expr::col(C::TenantId).eq(tenant_id))
        .and_where(Expr::col(C::ProfileId).eq(profile_id))
        .and_where(Expr::col(C::MergedInto).eq(""))
        .to_owned();
    let mut out = vec![props, first_seen];
    out.extend(
        [
            T::FactsEvent,
            T::FactsActivity,
            T::FactsProperty,
            T::FactsTag,
            T::FactsRelation,
            T::FactsBehaviourDaily,
            T::FactsBehaviourRolling,
            T::FactsScore,
            T::FactsProfile,
        ]
        .into_iter()
        .map(of_profile),
    );
    out
}

/// Adds `by` to one daily bucket, creating it when missing (an upsert that MySQL and SQLite both
/// run). The bucket's day is the event's tenant-local day; see [`crate::EventFact::metrics`] for
/// which metrics an event feeds.
pub fn bump_daily(
    tenant_id: &str,
    profile_id: &str,
    metric: &str,
    day: NaiveDate,
    by: i32,
) -> InsertStatement {
    bump_daily_many(tenant_id, profile_id, &[metric], day, by)
}

/// [`bump_daily`] for several metrics of one profile and day in one statement (the rows all
/// change by `by`, so one conflict clause fits every row). `metrics` must not be empty.
pub fn bump_daily_many<S: AsRef<str>>(
    tenant_id: &str,
    profile_id: &str,
    metrics: &[S],
    day: NaiveDate,
    by: i32,
) -> InsertStatement {
    let rows: Vec<(&str, &str, NaiveDate)> = metrics
        .iter()
        .map(|m| (profile_id, m.as_ref(), day))
        .collect();
    bump_daily_rows(tenant_id, &rows, by)
}

/// [`bump_daily`] for several buckets (profile, metric, day) of a tenant in one statement, each
/// changing by `by`. `rows` must not be empty and must not name a bucket twice.
pub fn bump_daily_rows(
    tenant_id: &str,
    rows: &[(&str, &str, NaiveDate)],
    by: i32,
) -> InsertStatement {
    let mut q = Query::insert();
    q.into_table(T::FactsBehaviourDaily).columns([
        C::TenantId,
        C::ProfileId,
        C::Metric,
        C::Day,
        C::Cnt,
    ]);
    for (profile_id, metric, day) in rows {
        q.values_panic([
            tenant_id.into(),
            (*profile_id).into(),
            (*metric).into(),
            (*day).into(),
            by.into(),
        ]);
    }
    q.on_conflict(
        OnConflict::columns([C::TenantId, C::Metric, C::Day, C::ProfileId])
            .value(C::Cnt, Expr::col((T::FactsBehaviourDaily, C::Cnt)).add(by))
            .to_owned(),
    )
    .to_owned()
}

/// Adds `by` to activity rows (profile, kind, day, hour) of a tenant in one statement, creating
/// the missing ones. `rows` must not be empty and must not name a row twice.
pub fn bump_activity_rows(
    tenant_id: &str,
    rows: &[(&str, &str, NaiveDate, u8)],
    by: i32,
) -> InsertStatement {
    let mut q = Query::insert();
    q.into_table(T::FactsActivity).columns([
        C::TenantId,
        C::ProfileId,
        C::Kind,
        C::Day,
        C::Hour,
        C::Cnt,
    ]);
    for (profile_id, kind, day, hour) in rows {
        q.values_panic([
            tenant_id.into(),
            (*profile_id).into(),
            (*kind).into(),
            (*day).into(),
            i16::from(*hour).into(),
            by.into(),
        ]);
    }
    q.on_conflict(
        OnConflict::columns([C::TenantId, C::Kind, C::Day, C::Hour, C::ProfileId])
            .value(C::Cnt, Expr::col((T::FactsActivity, C::Cnt)).add(by))
            .to_owned(),
    )
    .to_owned()
}

/// Adds `by` to the tenant's activity rows (kind, day, hour) of one `shard` in one statement,
/// creating the missing ones. `rows` must not be empty and must not name a row twice.
pub fn bump_activity_tenant(
    tenant_id: &str,
    rows: &[(&str, NaiveDate, u8)],
    shard: u32,
    by: i64,
) -> InsertStatement {
    let shard = i16::try_from(shard).unwrap_or(0);
    let mut q = Query::insert();
    q.into_table(T::FactsActivityTenant).columns([
        C::TenantId,
        C::Kind,
        C::Day,
        C::Hour,
        C::Shard,
        C::Cnt,
    ]);
    for (kind, day, hour) in rows {
        q.values_panic([
            tenant_id.into(),
            (*kind).into(),
            (*day).into(),
            i16::from(*hour).into(),
            shard.into(),
            by.into(),
        ]);
    }
    q.on_conflict(
        OnConflict::columns([C::TenantId, C::Kind, C::Day, C::Hour, C::Shard])
            .value(C::Cnt, Expr::col((T::FactsActivityTenant, C::Cnt)).add(by))
            .to_owned(),
    )
    .to_owned()
}
