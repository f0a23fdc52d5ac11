//! The leaderboard of a dimension, exact at the instant of the request: the threshold
//! algorithm over the descending score indexes, with a scan for what they cannot order.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Cond, Expr, Order, Query, SelectStatement};
use sea_orm::{DbErr, FromQueryResult};
use serde::Serialize;

use crate::domain::compiled::{Compiled, Model};
use crate::store::browse::{score_key, Filter};
use crate::store::migrations::{Leads as L, ProfileScores as P, ScoreEras};
use crate::store::scores::StoredFold;
use crate::store::{fetch, scores, Scorer};

/// Filters and page of the leaderboard.
#[derive(Debug, Clone, Default)]
pub struct Board {
    /// Which leads compete.
    pub filter: Filter,
    /// Rows after this [`BoardRow::key`].
    pub after: Option<(i64, String)>,
    pub limit: u64,
}

/// One row of the leaderboard.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BoardRow {
    pub profile_id: String,
    pub score: f64,
    pub stage: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A fold with its lead's stage and owner, as the board's reads select them.
#[derive(FromQueryResult)]
struct Ranked {
    profile_id: String,
    #[sea_orm(nested)]
    fold: StoredFold,
    norm: f64,
    stage: String,
    owner_user_id: Option<String>,
}

/// Millionths of a point: the leaderboard ranks scores at this resolution, so that the order of
/// two leads does not hang on the last bits of a float.
const RANK_SCALE: f64 = 1e6;

/// A score as the leaderboard ranks it: in millionths of a point.
pub fn rank(score: f64) -> i64 {
    (score * RANK_SCALE).round() as i64
}

impl BoardRow {
    /// The row's place on the board, which is ordered by rank (descending), then profile id:
    /// `(rank of its score, profile id)`.
    pub fn key(&self) -> (i64, String) {
        (rank(self.score), self.profile_id.clone())
    }

    fn after(&self, (r, id): &(i64, String)) -> bool {
        let mine = rank(self.score);
        mine < *r || (mine == *r && self.profile_id.as_str() > id.as_str())
    }
}

/// The top leads of model `model` (index into `defs`) by their exact score now: at most
/// `b.limit`, after `b.after` when given. Each page is exact at its own instant, so a lead whose
/// score crosses the cursor between two requests (a new event, or decay) may show on both pages
/// or on neither.
///
/// A valid fold of the current era scores `held + norm × c` (`c` the era's carry now, the same
/// for every row), which grows with `norm` and with `held`: the page is found by the threshold
/// algorithm over two index-ordered reads, by `norm` (descending, then profile id) and by `held`,
/// in growing batches, until the page's last row scores above what any unread row can (`held`
/// of the last row read by `held` + `c × norm` of the last read by `norm`; on a tie, ids after
/// the `norm` read's last cannot come before it). The rest — folds past a decay boundary (the
/// scheduler rebuilds them as they come due) and folds of another era (around an era's turn,
/// 128 half-lives apart) — are few: read whole and scored exactly; when there are more than
/// [`EXTRA_MAX`], the page is ranked by one ordered scan instead.
pub async fn leaderboard(
    scorer: &Scorer,
    tenant: &str,
    defs: &Compiled,
    model: usize,
    b: &Board,
) -> Result<Vec<BoardRow>, DbErr> {
    let db = &scorer.db;
    let now = scorer.clock.now();
    let m = &defs.models[model];
    let s = Alias::new("s");
    let l = Alias::new("l");
    let base = |q: &mut SelectStatement| {
        q.columns([
            (s.clone(), P::ProfileId),
            (s.clone(), P::Held),
            (s.clone(), P::Decaying),
            (s.clone(), P::FoldedAt),
            (s.clone(), P::ValidUntil),
            (s.clone(), P::Norm),
        ])
        .columns([(l.clone(), L::Stage), (l.clone(), L::OwnerUserId)])
        .from_as(P::Table, s.clone())
        .join_as(
            sea_orm::sea_query::JoinType::InnerJoin,
            L::Table,
            l.clone(),
            Cond::all()
                .add(Expr::col((s.clone(), P::TenantId)).equals((l.clone(), L::TenantId)))
                .add(Expr::col((s.clone(), P::ProfileId)).equals((l.clone(), L::ProfileId))),
        )
        .and_where(Expr::col((s.clone(), P::TenantId)).eq(tenant))
        .and_where(Expr::col((s.clone(), P::ModelId)).eq(m.id.as_str()));
        b.filter.apply(q, tenant, &l, defs, now);
    };
    let era = m.decay.era(m.epoch, now);
    let carry = m.decay.era_carry(m.epoch, era, now);
    let era_col = || Expr::col((s.clone(), ScoreEras::NormEra));
    let valid = || {
        Cond::any()
            .add(Expr::col((s.clone(), P::ValidUntil)).is_null())
            .add(Expr::col((s.clone(), P::ValidUntil)).gt(now))
    };
    let mut found: HashMap<String, BoardRow> = HashMap::new();
    let mut extra = Query::select();
    base(&mut extra);
    extra
        .cond_where(
            Cond::any()
                .add(Expr::col((s.clone(), P::ValidUntil)).lte(now))
                .add(era_col().ne(era)),
        )
        .limit(EXTRA_MAX + 1);
    let extra: Vec<Ranked> = fetch(db, &extra).await?;
    if extra.len() as u64 > EXTRA_MAX {
        return scan(scorer, tenant, defs, model, b).await;
    }
    for r in &extra {
        board_row(scorer, tenant, m, now, r, &mut found).await?;
    }
    // One index-ordered read: by `col` descending then profile id, after `after`, of the current
    // era only when `era_only`.
    let sorted = |col: P, era_only: bool, after: &Option<(f64, String)>, limit: u64| {
        let mut q = Query::select();
        base(&mut q);
        q.cond_where(valid());
        if era_only {
            q.and_where(era_col().eq(era));
        }
        if let Some((v, id)) = after {
            q.cond_where(
                Cond::any().add(Expr::col((s.clone(), col)).lt(*v)).add(
                    Expr::col((s.clone(), col))
                        .eq(*v)
                        .and(Expr::col((s.clone(), P::ProfileId)).gt(id.as_str())),
                ),
            );
        }
        q.order_by((s.clone(), col), Order::Desc)
            .order_by((s.clone(), P::ProfileId), Order::Asc)
            .limit(limit);
        q
    };
    let mut batch = (b.limit + 1).max(64);
    // (column, its value in a row, current era only, where the read is): by norm in the current
    // era, by what is held among every valid row.
    let norm: fn(&Ranked) -> f64 = |r| r.norm;
    let held: fn(&Ranked) -> f64 = |r| r.fold.held;
    let mut reads = [
        (P::Norm, norm, true, None::<(f64, String)>),
        (P::Held, held, false, None),
    ];
    'reading: loop {
        for (col, value, era_only, after) in reads.iter_mut() {
            let read: Vec<Ranked> = fetch(db, &sorted(*col, *era_only, after, batch)).await?;
            for r in &read {
                board_row(scorer, tenant, m, now, r, &mut found).await?;
            }
            if let Some(r) = read.last() {
                *after = Some((value(r), r.profile_id.clone()));
            }
            if (read.len() as u64) < batch {
                // Every row that could outrank the page has been read (the rest are `extra`).
                break 'reading;
            }
        }
        let (Some((n, norm_id)), Some((h, _))) = (&reads[0].3, &reads[1].3) else {
            break;
        };
        // No unread row scores above this; one scoring it has an id after `norm_id`.
        let threshold = rank(h + carry * n);
        let mut page: Vec<&BoardRow> = found
            .values()
            .filter(|row| b.after.as_ref().is_none_or(|a| row.after(a)))
            .collect();
        if page.len() as u64 >= b.limit {
            page.sort_by(|a, b| board_order(a, b));
            let last = page[b.limit as usize - 1];
            let r = rank(last.score);
            if r > threshold || (r == threshold && last.profile_id.as_str() < norm_id.as_str()) {
                break;
            }
        }
        batch = batch.saturating_mul(2);
    }
    let mut out: Vec<BoardRow> = found
        .into_values()
        .filter(|row| b.after.as_ref().is_none_or(|a| row.after(a)))
        .collect();
    out.sort_by(board_order);
    out.truncate(b.limit as usize);
    Ok(out)
}

/// Folds outside the sorted reads that make the leaderboard fall back to [`scan`].
const EXTRA_MAX: u64 = 10_000;

/// The board's order: score (to a millionth) descending, then profile id.
fn board_order(a: &BoardRow, b: &BoardRow) -> std::cmp::Ordering {
    rank(b.score)
        .cmp(&rank(a.score))
        .then_with(|| a.profile_id.cmp(&b.profile_id))
}

/// Scores the fold of row `r` exactly now (rebuilt from the ledger past a decay boundary) into
/// `found`, unless it is there already.
async fn board_row(
    scorer: &Scorer,
    tenant: &str,
    m: &Model,
    now: DateTime<Utc>,
    r: &Ranked,
    found: &mut HashMap<String, BoardRow>,
) -> Result<(), DbErr> {
    let profile = &r.profile_id;
    if found.contains_key(profile) {
        return Ok(());
    }
    let score = match r.fold.fold().carried(&m.decay, now) {
        Some(f) => f.value(),
        None => scores::rebuild(&scorer.db, tenant, profile, m, now)
            .await?
            .value(),
    };
    found.insert(
        profile.clone(),
        BoardRow {
            profile_id: profile.clone(),
            score,
            stage: r.stage.clone(),
            owner: r.owner_user_id.clone(),
        },
    );
    Ok(())
}

/// The leaderboard by one scan ordered in SQL (the fallback of [`leaderboard`]).
///
/// Rows are ordered in SQL by `held + norm × carry of its era at now`, exact for every fold still
/// valid (to float rounding: the SQL bounds of a cursor leave a margin, the rows are then ranked
/// and cut here); folds past a decay boundary (few: the scheduler rebuilds them as they come
/// due) are rebuilt here and merged in.
async fn scan(
    scorer: &Scorer,
    tenant: &str,
    defs: &Compiled,
    model: usize,
    b: &Board,
) -> Result<Vec<BoardRow>, DbErr> {
    let db = &scorer.db;
    let now = scorer.clock.now();
    let m = &defs.models[model];
    let s = Alias::new("s");
    let l = Alias::new("l");
    let base = |q: &mut sea_orm::sea_query::SelectStatement| {
        q.columns([
            (s.clone(), P::ProfileId),
            (s.clone(), P::Held),
            (s.clone(), P::Decaying),
            (s.clone(), P::FoldedAt),
            (s.clone(), P::ValidUntil),
            (s.clone(), P::Norm),
        ])
        .columns([(l.clone(), L::Stage), (l.clone(), L::OwnerUserId)])
        .from_as(P::Table, s.clone())
        .join_as(
            sea_orm::sea_query::JoinType::InnerJoin,
            L::Table,
            l.clone(),
            Cond::all()
                .add(Expr::col((s.clone(), P::TenantId)).equals((l.clone(), L::TenantId)))
                .add(Expr::col((s.clone(), P::ProfileId)).equals((l.clone(), L::ProfileId))),
        )
        .and_where(Expr::col((s.clone(), P::TenantId)).eq(tenant))
        .and_where(Expr::col((s.clone(), P::ModelId)).eq(m.id.as_str()));
        b.filter.apply(q, tenant, &l, defs, now);
    };
    let key = || score_key(&s, m, now);
    let mut stale = Query::select();
    base(&mut stale);
    stale
        .and_where(Expr::col((s.clone(), P::ValidUntil)).lte(now))
        .limit(10_000);
    let stale: Vec<Ranked> = fetch(db, &stale).await?;
    // The rows after the cursor, read in growing batches until the page is full: the SQL bounds
    // let through a few rows at the cursor's edges that the ranking here then drops.
    let mut want = b.limit;
    loop {
        let mut top = Query::select();
        base(&mut top);
        if let Some((r, id)) = &b.after {
            // Rows ranked at most `r`; of those certainly ranked at least `r`, only ids above.
            let (lo, hi) = (
                (*r as f64 - 0.5) / RANK_SCALE,
                (*r as f64 + 0.5) / RANK_SCALE,
            );
            let margin = 1e-9 * hi.abs().max(lo.abs()).max(1.0);
            top.and_where(Expr::expr(key()).lt(hi + margin)).and_where(
                Expr::expr(key())
                    .lt(lo + margin)
                    .or(Expr::col((s.clone(), P::ProfileId)).gt(id.as_str())),
            );
        }
        top.order_by_expr(key(), Order::Desc)
            .order_by((s.clone(), P::ProfileId), Order::Asc)
            .limit(want);
        let top: Vec<Ranked> = fetch(db, &top).await?;
        let read = top.len() as u64;
        let mut found: HashMap<String, BoardRow> = HashMap::new();
        for r in top.iter().chain(stale.iter()) {
            board_row(scorer, tenant, m, now, r, &mut found).await?;
        }
        let mut out: Vec<BoardRow> = found
            .into_values()
            .filter(|row| b.after.as_ref().is_none_or(|a| row.after(a)))
            .collect();
        out.sort_by(|a, b| {
            rank(b.score)
                .cmp(&rank(a.score))
                .then_with(|| a.profile_id.cmp(&b.profile_id))
        });
        if out.len() as u64 >= b.limit || read < want {
            out.truncate(b.limit as usize);
            return Ok(out);
        }
        want = want.saturating_mul(2);
    }
}
