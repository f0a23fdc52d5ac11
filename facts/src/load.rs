//! One profile's facts read back into a [`rules::ProfileFacts`] for in-memory evaluation.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use rules::schema::{FactsCol as C, FactsTable as T};
use rules::{
    parse_date, parse_datetime, EventFact, FactValue, ProfileFacts, RelationKind, ScoreFold,
};
use sea_orm::sea_query::{Expr, Order, Query};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use super::{opt_text, rows, text};

/// What to read of a profile. [`Default`] reads everything but raw events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadOptions {
    /// Raw events of these kinds (all kinds when empty) on or after this day, for behaviour
    /// leaves with filters; `None` reads no raw events.
    pub events_since: Option<NaiveDate>,
    pub event_kinds: BTreeSet<String>,
    /// Read properties (`None`: none; empty: all; else these keys).
    pub properties: Option<BTreeSet<String>>,
    pub tags: bool,
    pub relations: bool,
    /// Read daily buckets (`None`: none; empty: every metric; else these metrics).
    pub metrics: Option<BTreeSet<String>>,
    /// Read the lead's scores and set each `score.<model>` to its value at this instant
    /// ([`ProfileFacts::set_score`]); `None` reads none.
    pub scores_at: Option<DateTime<Utc>>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            events_since: None,
            event_kinds: BTreeSet::new(),
            properties: Some(BTreeSet::new()),
            tags: true,
            relations: true,
            metrics: Some(BTreeSet::new()),
            scores_at: None,
        }
    }
}

/// A stored value back as a [`FactValue`] (`None` for a row that decodes to nothing).
fn decode(row: &QueryResult) -> Result<Option<FactValue>, DbErr> {
    let vtype = text(row, "vtype")?;
    let s = opt_text(row, "s")?;
    let n: Option<f64> = row.try_get("", "n")?;
    Ok(match (vtype.as_str(), s, n) {
        ("s", Some(s), _) => Some(FactValue::Str(s)),
        ("n", _, Some(n)) => Some(FactValue::Num(n)),
        ("b", _, Some(n)) => Some(FactValue::Bool(n != 0.0)),
        ("d", Some(s), _) => parse_date(&s).map(FactValue::Date),
        ("t", Some(s), _) => parse_datetime(&s).map(FactValue::DateTime),
        _ => None,
    })
}

fn relation_kind(s: &str) -> Option<RelationKind> {
    [RelationKind::Oa, RelationKind::Follow, RelationKind::Group]
        .into_iter()
        .find(|k| k.as_str() == s)
}

/// The facts of `profile` (empty when it is not in the projection).
pub async fn load_profile<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    profile: &str,
    opts: &LoadOptions,
) -> Result<ProfileFacts, DbErr> {
    let mut f = ProfileFacts::new(profile);
    let of = |table: T| {
        Query::select()
            .from(table)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(C::ProfileId).eq(profile))
            .to_owned()
    };
    if let Some(keys) = &opts.properties {
        let mut props = of(T::FactsProperty)
            .columns([C::Pkey, C::Ord, C::Vtype, C::S, C::N])
            .order_by(C::Pkey, Order::Asc)
            .order_by(C::Ord, Order::Asc)
            .to_owned();
        if !keys.is_empty() {
            props.and_where(Expr::col(C::Pkey).is_in(keys.iter().cloned()));
        }
        for r in rows(conn, &props).await? {
            if let Some(v) = decode(&r)? {
                f.properties.entry(text(&r, "pkey")?).or_default().push(v);
            }
        }
    }
    if opts.tags {
        for r in rows(conn, &of(T::FactsTag).column(C::TagId).to_owned()).await? {
            f.add_tag(text(&r, "tag_id")?);
        }
    }
    if opts.relations {
        let rels = of(T::FactsRelation)
            .columns([C::Kind, C::Ns, C::Ref])
            .to_owned();
        for r in rows(conn, &rels).await? {
            if let Some(k) = relation_kind(&text(&r, "kind")?) {
                f.add_relation(k, text(&r, "ns")?, text(&r, "ref")?);
            }
        }
    }
    if let Some(metrics) = &opts.metrics {
        let mut daily = of(T::FactsBehaviourDaily)
            .columns([C::Metric, C::Day, C::Cnt])
            .to_owned();
        if !metrics.is_empty() {
            daily.and_where(Expr::col(C::Metric).is_in(metrics.iter().cloned()));
        }
        for r in rows(conn, &daily).await? {
            let cnt: i32 = r.try_get("", "cnt")?;
            f.add_count(text(&r, "metric")?, r.try_get("", "day")?, i64::from(cnt));
        }
    }
    if let Some(now) = opts.scores_at {
        let q = of(T::FactsScore)
            .columns([C::Pkey, C::N, C::Decaying, C::FoldedAt, C::Rate])
            .to_owned();
        for r in rows(conn, &q).await? {
            let fold = ScoreFold {
                held: r.try_get("", "n")?,
                decaying: r.try_get("", "decaying")?,
                at: r.try_get("", "folded_at")?,
                rate: r.try_get("", "rate")?,
            };
            f.set_score(text(&r, "pkey")?, fold, now);
        }
    }
    if let Some(since) = opts.events_since {
        let mut q = of(T::FactsEvent)
            .columns([C::EventId, C::Kind, C::Day])
            .and_where(Expr::col(C::Day).gte(since))
            .order_by(C::EventId, Order::Asc)
            .to_owned();
        if !opts.event_kinds.is_empty() {
            q.and_where(Expr::col(C::Kind).is_in(opts.event_kinds.iter().cloned()));
        }
        for r in rows(conn, &q).await? {
            let id = text(&r, "event_id")?;
            let mut ev = EventFact::new(id.clone(), text(&r, "kind")?, r.try_get("", "day")?);
            let props = Query::select()
                .columns([C::Pkey, C::Ord, C::Vtype, C::S, C::N])
                .from(T::FactsEventProp)
                .and_where(Expr::col(C::TenantId).eq(tenant))
                .and_where(Expr::col(C::EventId).eq(id))
                .order_by(C::Pkey, Order::Asc)
                .order_by(C::Ord, Order::Asc)
                .to_owned();
            for p in rows(conn, &props).await? {
                if let Some(v) = decode(&p)? {
                    ev.props.entry(text(&p, "pkey")?).or_default().push(v);
                }
            }
            f.push_event(ev);
        }
    }
    Ok(f)
}
