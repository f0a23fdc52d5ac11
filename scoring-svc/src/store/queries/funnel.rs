//! The stage funnel of a period `[from, to)`: how many leads entered each stage, the moves
//! between stages, and — of the leads that entered a stage in the period — how many went on to
//! enter each other stage before the period ended (conversion between stages). Leads merged into
//! another are left out: the survivor carries the person and its history.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, JoinType, Query, SelectStatement};
use sea_orm::{DatabaseConnection, DbErr, FromQueryResult};
use serde::Serialize;

use crate::store::fetch;
use crate::store::leads::MERGED;
use crate::store::migrations::{LeadStageHistory as H, Leads as L};

/// Leads that entered a stage.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Entered {
    pub stage: String,
    pub leads: u64,
}

/// Moves from one stage to another (`from` absent for a new lead's first stage).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Moved {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    pub moves: u64,
}

/// Of the leads that entered `from` in the period, those that later entered `to` in it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Conversion {
    pub from: String,
    pub to: String,
    pub entered: u64,
    pub reached: u64,
    /// `reached / entered`.
    pub rate: f64,
}

/// A period's funnel.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Funnel {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub entered: Vec<Entered>,
    pub moves: Vec<Moved>,
    pub conversion: Vec<Conversion>,
}

fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// History rows `h` of the tenant's leads not merged away, entered in `[from, to)`.
fn history_in(tenant: &str, h: &Alias, from: DateTime<Utc>, to: DateTime<Utc>) -> SelectStatement {
    let l = Alias::new("l");
    Query::select()
        .from_as(H::Table, h.clone())
        .join_as(
            JoinType::InnerJoin,
            L::Table,
            l.clone(),
            Expr::col((l.clone(), L::TenantId))
                .equals((h.clone(), H::TenantId))
                .and(Expr::col((l.clone(), L::ProfileId)).equals((h.clone(), H::ProfileId))),
        )
        .and_where(Expr::col((h.clone(), H::TenantId)).eq(tenant))
        .and_where(Expr::col((h.clone(), H::EnteredAt)).gte(from))
        .and_where(Expr::col((h.clone(), H::EnteredAt)).lt(to))
        .and_where(Expr::col((l, L::Status)).ne(MERGED))
        .to_owned()
}

/// The funnel of `tenant` over `[from, to)`.
pub async fn funnel(
    db: &DatabaseConnection,
    tenant: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Funnel, DbErr> {
    let h = Alias::new("h");
    let n = Alias::new("n");

    #[derive(FromQueryResult)]
    struct StageRow {
        stage: String,
        n: i64,
    }
    let q = history_in(tenant, &h, from, to)
        .expr_as(Expr::col((h.clone(), H::ToStage)), Alias::new("stage"))
        .expr_as(
            Expr::col((h.clone(), H::ProfileId)).count_distinct(),
            n.clone(),
        )
        .group_by_col((h.clone(), H::ToStage))
        .to_owned();
    let mut entered: Vec<Entered> = fetch::<StageRow, _>(db, &q)
        .await?
        .into_iter()
        .map(|r| Entered {
            stage: r.stage,
            leads: count(r.n),
        })
        .collect();
    entered.sort_by(|a, b| b.leads.cmp(&a.leads).then_with(|| a.stage.cmp(&b.stage)));

    #[derive(FromQueryResult)]
    struct MoveRow {
        from_stage: Option<String>,
        to_stage: String,
        n: i64,
    }
    let q = history_in(tenant, &h, from, to)
        .column((h.clone(), H::FromStage))
        .column((h.clone(), H::ToStage))
        .expr_as(Expr::col((h.clone(), H::Id)).count(), n.clone())
        .group_by_col((h.clone(), H::FromStage))
        .group_by_col((h.clone(), H::ToStage))
        .to_owned();
    let mut moves: Vec<Moved> = fetch::<MoveRow, _>(db, &q)
        .await?
        .into_iter()
        .map(|r| Moved {
            from: r.from_stage,
            to: r.to_stage,
            moves: count(r.n),
        })
        .collect();
    moves.sort_by(|a, b| {
        b.moves
            .cmp(&a.moves)
            .then_with(|| (&a.from, &a.to).cmp(&(&b.from, &b.to)))
    });

    #[derive(FromQueryResult)]
    struct ReachRow {
        a: String,
        b: String,
        n: i64,
    }
    let later = Alias::new("later");
    let q = history_in(tenant, &h, from, to)
        .join_as(
            JoinType::InnerJoin,
            H::Table,
            later.clone(),
            Expr::col((later.clone(), H::TenantId))
                .equals((h.clone(), H::TenantId))
                .and(Expr::col((later.clone(), H::ProfileId)).equals((h.clone(), H::ProfileId)))
                .and(
                    Expr::col((later.clone(), H::EnteredAt))
                        .gt(Expr::col((h.clone(), H::EnteredAt))),
                )
                .and(Expr::col((later.clone(), H::EnteredAt)).lt(to))
                .and(Expr::col((later.clone(), H::ToStage)).ne(Expr::col((h.clone(), H::ToStage)))),
        )
        .expr_as(Expr::col((h.clone(), H::ToStage)), Alias::new("a"))
        .expr_as(Expr::col((later.clone(), H::ToStage)), Alias::new("b"))
        .expr_as(Expr::col((h.clone(), H::ProfileId)).count_distinct(), n)
        .group_by_col((h.clone(), H::ToStage))
        .group_by_col((later, H::ToStage))
        .to_owned();
    let mut conversion: Vec<Conversion> = fetch::<ReachRow, _>(db, &q)
        .await?
        .into_iter()
        .map(|r| {
            let base = entered
                .iter()
                .find(|e| e.stage == r.a)
                .map_or(0, |e| e.leads);
            let reached = count(r.n);
            Conversion {
                from: r.a,
                to: r.b,
                entered: base,
                reached,
                rate: if base == 0 {
                    0.0
                } else {
                    reached as f64 / base as f64
                },
            }
        })
        .collect();
    conversion.sort_by(|x, y| (&x.from, &x.to).cmp(&(&y.from, &y.to)));
    Ok(Funnel {
        from,
        to,
        entered,
        moves,
        conversion,
    })
}
