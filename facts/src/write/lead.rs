//! What scoring-svc publishes about a lead, kept for conditions: each model's score as a fold
//! (`facts_score`, read as `score.<model>`) from `lead.score_changed`, and the stage with when it
//! was entered (the properties `lead.stage`, `lead.stage_entered_at`) from `lead.stage_changed`.
//! Each keeps the newest message by its `at`, so a redelivered or reordered older one changes
//! nothing. `profile.updated` never replaces these (they are not identity's), and a merged-away
//! profile's go with the rest of its rows. Every stage entry is also kept as history
//! (`facts_stage_entry`, [`record_stage_entry`]) for stage conversion; a merged-away profile's
//! entries stay (its profile row is gone, so populations leave them out) and count again when an
//! un-merge restores it, as scoring's own history does.

use proto::scoring::{ScoreChanged, StageChanged};
use rules::schema::{score_row, FactsCol as C, FactsTable as T, SCORE_COLS};
use rules::{FactValue, ScoreFold, LEAD_STAGE_ENTERED_KEY, LEAD_STAGE_KEY};
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{ConnectionTrait, DbErr};

use super::*;
use crate::{exec, rows};

/// The fold a score change carries (a constant `new` when its publisher sent none).
pub fn fold_of(c: &ScoreChanged) -> ScoreFold {
    match c.fold {
        Some(f) => ScoreFold::new(f.held, f.decaying, c.at, f.half_life_days),
        None => ScoreFold::constant(c.new, c.at),
    }
}

/// Keeps the score `c` announces unless a newer one is held. Returns whether it was kept.
pub async fn apply_score<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    c: &ScoreChanged,
) -> Result<bool, DbErr> {
    let fold = fold_of(c);
    let of_model = |mut q: sea_orm::sea_query::SelectStatement| {
        q.from(T::FactsScore)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(C::ProfileId).eq(c.profile_id.as_str()))
            .and_where(Expr::col(C::Pkey).eq(c.model.as_str()))
            .to_owned()
    };
    let held = rows(
        conn,
        &of_model(Query::select().column(C::FoldedAt).to_owned()),
    )
    .await?;
    if let Some(r) = held.first() {
        let at: i64 = r.try_get("", "folded_at")?;
        if at > fold.at {
            return Ok(false);
        }
        let q = Query::delete()
            .from_table(T::FactsScore)
            .and_where(Expr::col(C::TenantId).eq(tenant))
            .and_where(Expr::col(C::ProfileId).eq(c.profile_id.as_str()))
            .and_where(Expr::col(C::Pkey).eq(c.model.as_str()))
            .to_owned();
        exec(conn, &q).await?;
    }
    let row = score_row(tenant, &c.profile_id, &c.model, &fold);
    insert_rows(conn, T::FactsScore, &SCORE_COLS, vec![row]).await?;
    Ok(true)
}

/// Keeps the stage `c` announces unless a later move is held. Returns whether it was kept.
pub async fn apply_stage<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    c: &StageChanged,
) -> Result<bool, DbErr> {
    let profile = c.profile_id.as_str();
    let entered = FactValue::DateTime(c.at);
    let held = Query::select()
        .columns([C::Pkey, C::Ord, C::Vtype, C::S, C::N])
        .from(T::FactsProperty)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile))
        .and_where(Expr::col(C::Pkey).eq(LEAD_STAGE_ENTERED_KEY))
        .to_owned();
    let newer = entered.encode().s;
    for r in rows(conn, &held).await? {
        let stored = crate::opt_text(&r, "s")?;
        // Datetimes are stored as RFC 3339 UTC text of whole seconds: text order is time order.
        if stored.is_some_and(|s| Some(s) > newer) {
            return Ok(false);
        }
    }
    let q = Query::delete()
        .from_table(T::FactsProperty)
        .and_where(Expr::col(C::TenantId).eq(tenant))
        .and_where(Expr::col(C::ProfileId).eq(profile))
        .and_where(Expr::col(C::Pkey).is_in([LEAD_STAGE_KEY, LEAD_STAGE_ENTERED_KEY]))
        .to_owned();
    exec(conn, &q).await?;
    let cols: Vec<C> = [C::TenantId, C::ProfileId]
        .into_iter()
        .chain(VALUE_COLS)
        .collect();
    let rows = [
        (LEAD_STAGE_KEY, FactValue::Str(c.to.clone())),
        (LEAD_STAGE_ENTERED_KEY, entered),
    ]
    .iter()
    .map(|(k, v)| [vec![s(tenant), s(profile)], value_row(k, 0, v)].concat())
    .collect();
    insert_rows(conn, T::FactsProperty, &cols, rows).await?;
    Ok(true)
}

/// Keeps the stage entry `c` announces (scoring's history entry `c.history_id`) with its
/// tenant-local day in `zone`; a redelivered one is the same row.
pub async fn record_stage_entry<Db: ConnectionTrait>(
    conn: &Db,
    tenant: &str,
    c: &StageChanged,
    zone: chrono_tz::Tz,
) -> Result<(), DbErr> {
    let mut q = Query::insert();
    q.into_table(T::FactsStageEntry)
        .columns([
            C::TenantId,
            C::HistoryId,
            C::ProfileId,
            C::Stage,
            C::EnteredAt,
            C::Day,
        ])
        .values_panic([
            s(tenant),
            Expr::val(c.history_id).into(),
            s(&c.profile_id),
            s(&c.to),
            Expr::val(c.at).into(),
            Expr::val(crate::local_day(c.at, zone)).into(),
        ])
        .on_conflict(
            sea_orm::sea_query::OnConflict::columns([C::TenantId, C::HistoryId])
                .update_column(C::HistoryId)
                .to_owned(),
        );
    exec(conn, &q).await.map(drop)
}
