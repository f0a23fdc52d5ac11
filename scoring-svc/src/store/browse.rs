//! The customer browse: a tenant's live leads (every profile the service has heard of) page by
//! page, sorted by last activity, creation, stage or a model's score, filtered by stage, owner,
//! tags, first-touch channel, a score range and a condition of the rule language compiled onto
//! the facts projection. It reads; it never writes.
//!
//! Each sort is a keyset over an index of `leads` (DESIGN.md §8: no offsets), so the first page
//! and the thousandth cost the same. The score sort is the leaderboard's (exact at the instant of
//! the request, decay applied); the stage sort walks the machine's stages in order, each by last
//! activity.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use proto::scoring::Owner;
use rules::schema::{FactsCol, FactsTable};
use sea_orm::sea_query::{Alias, Cond, Expr, Order, Query, SelectStatement, SimpleExpr};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};
use serde::{Deserialize, Serialize};

use super::leads::{self, Lead};
use super::migrations::{Leads as L, ProfileScores as P, ScoreEras};
use super::queries::{self, Board};
use super::scores::{self, ModelFold};
use super::{fetch, Scorer};
use crate::domain::compiled::{Compiled, Model};

/// The property holding the first touch's channel (`source=` filters on it).
pub const SOURCE_KEY: &str = "source.first.channel";

/// Properties shown with each customer.
const SHOWN: [&str; 3] = ["contact.name", "contact.nickname", "contact.avatar"];

/// How a page is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    /// Last activity (customers never active last when descending).
    LastActive,
    /// When the service first heard of the customer.
    Created,
    /// The machine's stages in order (most advanced first when descending), each by last
    /// activity, most recent first.
    Stage,
    /// A model's score now (index into the compiled models), highest first; customers without
    /// a score in it follow, by profile id.
    Score(usize),
}

/// A score range in one model; either bound may be open. A customer without a score in the
/// model scores 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreRange {
    pub model: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// What a customer must have to be listed; every given part must hold.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub stage: Option<String>,
    /// The owning rep's WeCom userid.
    pub owner: Option<String>,
    /// The owning rep's corp (a userid is unique within a corp only).
    pub owner_corp: Option<String>,
    /// Every one of these tags.
    pub tags: Vec<String>,
    /// First-touch channel ([`SOURCE_KEY`]).
    pub source: Option<String>,
    pub score: Option<ScoreRange>,
    /// A compiled condition (`rules::sql::compile`): the profile ids that match.
    pub condition: Option<SelectStatement>,
}

/// Where a page starts: after the customer with this key (its shape depends on the sort).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Key {
    /// Stage position (stage sort) or score rank (score sort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<i64>,
    /// The time the page is ordered by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub t: Option<DateTime<Utc>>,
    pub id: String,
}

/// One page to read.
#[derive(Debug, Clone)]
pub struct Browse {
    pub sort: Sort,
    /// Descending (the default); the score sort is always descending.
    pub desc: bool,
    pub filter: Filter,
    pub after: Option<Key>,
    /// Rows to read (one more than the page, to learn whether another follows).
    pub limit: u64,
}

/// One customer of a page.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Customer {
    pub profile_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    pub stage: String,
    pub stage_entered_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<Owner>,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_activity_at: Option<DateTime<Utc>>,
    /// Every active model's score now, by model key.
    pub scores: HashMap<String, f64>,
    /// This row's place in the list (the cursor of the page that ends on it).
    #[serde(skip)]
    pub key: Key,
}

/// The score of model `m` as the leaderboard orders it, over `profile_scores` aliased `s`.
pub(crate) fn score_key(s: &Alias, m: &Model, now: DateTime<Utc>) -> SimpleExpr {
    let era = m.decay.era(m.epoch, now);
    let era_col = || Expr::col((s.clone(), ScoreEras::NormEra));
    let carry = Expr::case(era_col().eq(era), m.decay.era_carry(m.epoch, era, now))
        .case(
            era_col().eq(era - 1),
            m.decay.era_carry(m.epoch, era - 1, now),
        )
        .case(
            era_col().eq(era + 1),
            m.decay.era_carry(m.epoch, era + 1, now),
        )
        .finally(0.0f64);
    Expr::col((s.clone(), P::Held)).add(Expr::col((s.clone(), P::Norm)).mul(carry))
}

impl Filter {
    /// Adds this filter's conditions on the `leads` row aliased `l` (active leads of `tenant`).
    pub(crate) fn apply(
        &self,
        q: &mut SelectStatement,
        tenant: &str,
        l: &Alias,
        defs: &Compiled,
        now: DateTime<Utc>,
    ) {
        let lcol = |c: L| Expr::col((l.clone(), c));
        q.and_where(lcol(L::TenantId).eq(tenant))
            .and_where(lcol(L::Status).eq(leads::ACTIVE));
        if let Some(st) = &self.stage {
            q.and_where(lcol(L::Stage).eq(st.as_str()));
        }
        if let Some(o) = &self.owner {
            q.and_where(lcol(L::OwnerUserId).eq(o.as_str()));
        }
        if let Some(c) = &self.owner_corp {
            q.and_where(lcol(L::OwnerCorpId).eq(c.as_str()));
        }
        for t in &self.tags {
            let tagged = Query::select()
                .column(FactsCol::ProfileId)
                .from(FactsTable::FactsTag)
                .and_where(Expr::col(FactsCol::TenantId).eq(tenant))
                .and_where(Expr::col(FactsCol::TagId).eq(t.as_str()))
                .to_owned();
            q.and_where(lcol(L::ProfileId).in_subquery(tagged));
        }
        if let Some(src) = &self.source {
            let from = Query::select()
                .column(FactsCol::ProfileId)
                .from(FactsTable::FactsProperty)
                .and_where(Expr::col(FactsCol::TenantId).eq(tenant))
                .and_where(Expr::col(FactsCol::Pkey).eq(SOURCE_KEY))
                .and_where(Expr::col(FactsCol::S).eq(src.as_str()))
                .to_owned();
            q.and_where(lcol(L::ProfileId).in_subquery(from));
        }
        if let Some(r) = &self.score {
            let m = &defs.models[r.model];
            let s = Alias::new("fs");
            let key = || Expr::expr(score_key(&s, m, now));
            let mut scored = Query::select();
            scored
                .column((s.clone(), P::ProfileId))
                .from_as(P::Table, s.clone())
                .and_where(Expr::col((s.clone(), P::TenantId)).eq(tenant))
                .and_where(Expr::col((s.clone(), P::ModelId)).eq(m.id.as_str()));
            let zero_in = r.min.is_none_or(|v| v <= 0.0) && r.max.is_none_or(|v| v >= 0.0);
            if zero_in {
                // Unscored customers (0) are in range: exclude those scored outside it.
                let mut outside = Cond::any();
                if let Some(v) = r.min {
                    outside = outside.add(key().lt(v));
                }
                if let Some(v) = r.max {
                    outside = outside.add(key().gt(v));
                }
                if !outside.is_empty() {
                    scored.cond_where(outside);
                    q.and_where(lcol(L::ProfileId).not_in_subquery(scored));
                }
            } else {
                if let Some(v) = r.min {
                    scored.and_where(key().gte(v));
                }
                if let Some(v) = r.max {
                    scored.and_where(key().lte(v));
                }
                q.and_where(lcol(L::ProfileId).in_subquery(scored));
            }
        }
        if let Some(c) = &self.condition {
            let m = Alias::new("cm");
            let ids = Query::select()
                .column((m.clone(), FactsCol::ProfileId))
                .from_subquery(c.clone(), m)
                .to_owned();
            q.and_where(lcol(L::ProfileId).in_subquery(ids));
        }
    }
}

/// Reads one page of `b` for `tenant`.
pub async fn browse(
    scorer: &Scorer,
    tenant: &str,
    defs: &Compiled,
    b: &Browse,
) -> Result<Vec<Customer>, DbErr> {
    let db = &scorer.db;
    let now = scorer.clock.now();
    let found: Vec<(Lead, DateTime<Utc>, Key)> = match b.sort {
        Sort::LastActive | Sort::Created => {
            let col = if b.sort == Sort::Created {
                L::CreatedAt
            } else {
                L::LastActivityAt
            };
            let after = b.after.as_ref().map(|k| (k.t, k.id.clone()));
            by_time(
                db, tenant, defs, now, &b.filter, col, b.desc, after, b.limit,
            )
            .await?
            .into_iter()
            .map(|(l, created, t)| {
                let key = Key {
                    n: None,
                    t,
                    id: l.profile.clone(),
                };
                (l, created, key)
            })
            .collect()
        }
        Sort::Stage => by_stage(db, tenant, defs, now, b).await?,
        Sort::Score(model) => by_score(scorer, tenant, defs, now, model, b).await?,
    };
    let ids: Vec<String> = found.iter().map(|(l, _, _)| l.profile.clone()).collect();
    let mut shown = shown_fields(db, tenant, &ids).await?;
    let mut scored = page_scores(db, tenant, defs, &ids, now).await?;
    Ok(found
        .into_iter()
        .map(|(l, created_at, key)| {
            let f = shown.remove(&l.profile).unwrap_or_default();
            let name = f
                .get("contact.name")
                .or_else(|| f.get("contact.nickname"))
                .cloned();
            Customer {
                scores: scored.remove(&l.profile).unwrap_or_default(),
                name,
                avatar: f.get("contact.avatar").cloned(),
                profile_id: l.profile,
                stage: l.stage,
                stage_entered_at: l.stage_entered_at,
                owner: l.owner,
                created_at,
                last_activity_at: l.last_activity_at,
                key,
            }
        })
        .collect())
}

/// The leads of `ids` with their creation time.
async fn lead_rows<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    ids: &[String],
) -> Result<HashMap<String, (Lead, DateTime<Utc>)>, DbErr> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let l = Alias::new("l");
    let mut q = leads::listing(&l);
    q.and_where(Expr::col((l.clone(), L::TenantId)).eq(tenant))
        .and_where(Expr::col((l.clone(), L::ProfileId)).is_in(ids.iter().map(String::as_str)));
    Ok(leads::listed(db, &q)
        .await?
        .into_iter()
        .map(|x| (x.0.profile.clone(), x))
        .collect())
}

/// Leads ordered by `col` (nulls last when descending, first when ascending) then profile id,
/// after `after` (the time and id of the previous page's last row): each with its creation time
/// and the value of `col`.
#[allow(clippy::too_many_arguments)]
async fn by_time<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    defs: &Compiled,
    now: DateTime<Utc>,
    filter: &Filter,
    col: L,
    desc: bool,
    after: Option<(Option<DateTime<Utc>>, String)>,
    limit: u64,
) -> Result<Vec<(Lead, DateTime<Utc>, Option<DateTime<Utc>>)>, DbErr> {
    let l = Alias::new("l");
    let c = || Expr::col((l.clone(), col));
    let id = || Expr::col((l.clone(), L::ProfileId));
    let mut q = leads::listing(&l);
    filter.apply(&mut q, tenant, &l, defs, now);
    if let Some((t, cid)) = after {
        let cid = cid.as_str();
        let cond = match (desc, t) {
            (true, Some(t)) => Cond::any()
                .add(c().lt(t))
                .add(c().eq(t).and(id().lt(cid)))
                .add(c().is_null()),
            (true, None) => Cond::all().add(c().is_null()).add(id().lt(cid)),
            (false, Some(t)) => Cond::any().add(c().gt(t)).add(c().eq(t).and(id().gt(cid))),
            (false, None) => Cond::any()
                .add(c().is_null().and(id().gt(cid)))
                .add(c().is_not_null()),
        };
        q.cond_where(cond);
    }
    let order = if desc { Order::Desc } else { Order::Asc };
    q.order_by((l.clone(), col), order.clone())
        .order_by((l.clone(), L::ProfileId), order)
        .limit(limit);
    Ok(leads::listed(db, &q)
        .await?
        .into_iter()
        .map(|(lead, created)| {
            let t = if matches!(col, L::CreatedAt) {
                Some(created)
            } else {
                lead.last_activity_at
            };
            (lead, created, t)
        })
        .collect())
}

/// Key `n` of the customers without a score in the sorted model: they follow every scored one,
/// by profile id.
const UNSCORED: i64 = i64::MIN;

/// The score sort: the leaderboard of the model, then the customers it has no score for.
async fn by_score(
    scorer: &Scorer,
    tenant: &str,
    defs: &Compiled,
    now: DateTime<Utc>,
    model: usize,
    b: &Browse,
) -> Result<Vec<(Lead, DateTime<Utc>, Key)>, DbErr> {
    let db = &scorer.db;
    let unscored_after = match &b.after {
        Some(k) if k.n == Some(UNSCORED) => Some(k.id.clone()),
        _ => None,
    };
    let mut out = Vec::new();
    if unscored_after.is_none() {
        let board = Board {
            filter: b.filter.clone(),
            after: b
                .after
                .as_ref()
                .map(|k| (k.n.unwrap_or(i64::MAX), k.id.clone())),
            limit: b.limit,
        };
        let top = queries::leaderboard(scorer, tenant, defs, model, &board).await?;
        let ids: Vec<String> = top.iter().map(|r| r.profile_id.clone()).collect();
        let mut by_id = lead_rows(db, tenant, &ids).await?;
        out.extend(top.into_iter().filter_map(|r| {
            let (l, created) = by_id.remove(&r.profile_id)?;
            let (n, id) = r.key();
            Some((
                l,
                created,
                Key {
                    n: Some(n),
                    t: None,
                    id,
                },
            ))
        }));
    }
    if out.len() as u64 >= b.limit {
        return Ok(out);
    }
    let l = Alias::new("l");
    let mut q = leads::listing(&l);
    b.filter.apply(&mut q, tenant, &l, defs, now);
    let scored = Query::select()
        .column(P::ProfileId)
        .from(P::Table)
        .and_where(Expr::col(P::TenantId).eq(tenant))
        .and_where(Expr::col(P::ModelId).eq(defs.models[model].id.as_str()))
        .to_owned();
    q.and_where(Expr::col((l.clone(), L::ProfileId)).not_in_subquery(scored));
    if let Some(a) = &unscored_after {
        q.and_where(Expr::col((l.clone(), L::ProfileId)).gt(a.as_str()));
    }
    q.order_by((l.clone(), L::ProfileId), Order::Asc)
        .limit(b.limit - out.len() as u64);
    for (lead, created) in leads::listed(db, &q).await? {
        let key = Key {
            n: Some(UNSCORED),
            t: None,
            id: lead.profile.clone(),
        };
        out.push((lead, created, key));
    }
    Ok(out)
}

/// The stage sort: the machine's stages in order (reversed when descending), then any stage a
/// lead is in that the machine no longer has; within each, by last activity.
async fn by_stage<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    defs: &Compiled,
    now: DateTime<Utc>,
    b: &Browse,
) -> Result<Vec<(Lead, DateTime<Utc>, Key)>, DbErr> {
    let mut stages: Vec<String> = defs.machine.stages.iter().map(|s| s.key.clone()).collect();
    if b.desc {
        stages.reverse();
    }
    let l = Alias::new("l");
    let mut present = Query::select();
    present
        .distinct()
        .column((l.clone(), L::Stage))
        .from_as(L::Table, l.clone())
        .and_where(Expr::col((l.clone(), L::TenantId)).eq(tenant))
        .and_where(Expr::col((l.clone(), L::Status)).eq(leads::ACTIVE));
    #[derive(FromQueryResult)]
    struct Present {
        stage: String,
    }
    let mut others: Vec<String> = fetch::<Present, _>(db, &present)
        .await?
        .into_iter()
        .map(|r| r.stage)
        .filter(|s| !stages.contains(s))
        .collect();
    others.sort();
    stages.extend(others);
    let (start, mut after) = match &b.after {
        Some(k) => (k.n.unwrap_or(0).max(0) as usize, Some((k.t, k.id.clone()))),
        None => (0, None),
    };
    let mut out = Vec::new();
    for (pos, stage) in stages.iter().enumerate().skip(start) {
        if b.filter.stage.as_ref().is_some_and(|s| s != stage) {
            after = None;
            continue;
        }
        let mut f = b.filter.clone();
        f.stage = Some(stage.clone());
        let want = b.limit - out.len() as u64;
        let got = by_time(
            db,
            tenant,
            defs,
            now,
            &f,
            L::LastActivityAt,
            true,
            after.take(),
            want,
        )
        .await?;
        out.extend(got.into_iter().map(|(lead, created, t)| {
            let key = Key {
                n: Some(pos as i64),
                t,
                id: lead.profile.clone(),
            };
            (lead, created, key)
        }));
        if out.len() as u64 >= b.limit {
            break;
        }
    }
    Ok(out)
}

/// Name, nickname and avatar of `ids` from the facts projection.
async fn shown_fields<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    ids: &[String],
) -> Result<HashMap<String, HashMap<String, String>>, DbErr> {
    let mut out: HashMap<String, HashMap<String, String>> = HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    /// Bytes on MySQL/MariaDB (the facts tables' text is binary there).
    #[derive(FromQueryResult)]
    struct Shown {
        profile_id: Option<Vec<u8>>,
        pkey: Option<Vec<u8>>,
        s: Option<Vec<u8>>,
    }
    let q = Query::select()
        .columns([FactsCol::ProfileId, FactsCol::Pkey, FactsCol::S])
        .from(FactsTable::FactsProperty)
        .and_where(Expr::col(FactsCol::TenantId).eq(tenant))
        .and_where(Expr::col(FactsCol::ProfileId).is_in(ids.iter().map(String::as_str)))
        .and_where(Expr::col(FactsCol::Pkey).is_in(SHOWN))
        .and_where(Expr::col(FactsCol::Ord).eq(0))
        .to_owned();
    let text = |b: Option<Vec<u8>>| b.map(|b| String::from_utf8_lossy(&b).into_owned());
    for r in fetch::<Shown, _>(db, &q).await? {
        let (Some(p), Some(k), Some(v)) = (text(r.profile_id), text(r.pkey), text(r.s)) else {
            continue;
        };
        out.entry(p).or_default().insert(k, v);
    }
    Ok(out)
}

/// Every active model's score now for `ids`: stored folds carried to `now`, rebuilt from the
/// ledger when a decay boundary passed.
async fn page_scores<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    defs: &Compiled,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<HashMap<String, HashMap<String, f64>>, DbErr> {
    let mut out: HashMap<String, HashMap<String, f64>> = ids
        .iter()
        .map(|id| {
            let zero = defs.models.iter().map(|m| (m.key.clone(), 0.0)).collect();
            (id.clone(), zero)
        })
        .collect();
    if ids.is_empty() || defs.models.is_empty() {
        return Ok(out);
    }
    let q = Query::select()
        .columns(scores::STORED_COLS)
        .from(P::Table)
        .and_where(Expr::col(P::TenantId).eq(tenant))
        .and_where(Expr::col(P::ProfileId).is_in(ids.iter().map(String::as_str)))
        .to_owned();
    for r in fetch::<ModelFold, _>(db, &q).await? {
        let Some(m) = defs.model_by_id(&r.model_id).map(|i| &defs.models[i]) else {
            continue;
        };
        let fold = r.fold.fold();
        let profile = r.profile_id;
        let (now_fold, _) = scores::current(db, tenant, &profile, m, Some(&fold), now).await?;
        out.entry(profile)
            .or_default()
            .insert(m.key.clone(), now_fold.value());
    }
    Ok(out)
}
