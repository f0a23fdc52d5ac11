//! The folds of a profile's scores (`profile_scores`, one row per model): what a read carries
//! forward exactly, rebuilt from the ledger once a decay boundary passes.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, IntoIden, OnConflict, Query};
use sea_orm::{ConnectionTrait, DbErr, FromQueryResult};

use super::migrations::{ProfileScores as P, ScoreEras};
use super::{exec, fetch, ledger};
use crate::domain::compiled::Model;
use crate::domain::decay::Fold;

/// A stored fold's columns (`held`, `decaying`, `folded_at`, `valid_until`), nested in the row
/// of each read of folds.
#[derive(FromQueryResult)]
pub(crate) struct StoredFold {
    pub(crate) held: f64,
    decaying: f64,
    folded_at: DateTime<Utc>,
    valid_until: Option<DateTime<Utc>>,
}

impl StoredFold {
    pub(crate) fn fold(&self) -> Fold {
        Fold {
            held: self.held,
            decaying: self.decaying,
            at: self.folded_at,
            valid_until: self.valid_until,
        }
    }
}

/// A profile's fold in one model, as [`STORED_COLS`] select it.
#[derive(FromQueryResult)]
pub(crate) struct ModelFold {
    pub(crate) profile_id: String,
    pub(crate) model_id: String,
    #[sea_orm(nested)]
    pub(crate) fold: StoredFold,
}

/// The columns of a [`ModelFold`].
pub(crate) const STORED_COLS: [P; 6] = [
    P::ProfileId,
    P::ModelId,
    P::Held,
    P::Decaying,
    P::FoldedAt,
    P::ValidUntil,
];

/// The stored folds of a profile: model id → fold.
pub async fn load<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
) -> Result<HashMap<String, Fold>, DbErr> {
    let q = Query::select()
        .columns(STORED_COLS)
        .from(P::Table)
        .and_where(Expr::col(P::TenantId).eq(tenant))
        .and_where(Expr::col(P::ProfileId).eq(profile))
        .to_owned();
    Ok(fetch::<ModelFold, _>(conn, &q)
        .await?
        .into_iter()
        .map(|r| (r.model_id, r.fold.fold()))
        .collect())
}

/// The fold of one model rebuilt from the ledger at `now`.
pub async fn rebuild<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    model: &Model,
    now: DateTime<Utc>,
) -> Result<Fold, DbErr> {
    let w = ledger::worths(conn, tenant, profile, &model.id, now).await?;
    Ok(Fold::of(&model.decay, &w, now))
}

/// The exact fold at `now` from a stored one: carried when no boundary passed, else rebuilt.
/// `None` stored means the profile never scored in the model.
pub async fn current<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    model: &Model,
    stored: Option<&Fold>,
    now: DateTime<Utc>,
) -> Result<(Fold, bool), DbErr> {
    match stored {
        None => Ok((Fold::zero(now), false)),
        Some(f) => match f.carried(&model.decay, now) {
            Some(c) => Ok((c, false)),
            None => Ok((rebuild(conn, tenant, profile, model, now).await?, true)),
        },
    }
}

/// A fold's columns, in the order [`save`] writes them.
const FOLD_COLS: [P; 6] = [
    P::Held,
    P::Decaying,
    P::FoldedAt,
    P::ValidUntil,
    P::Norm,
    P::UpdatedAt,
];

/// Writes a fold.
pub async fn save<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    profile: &str,
    model: &Model,
    fold: &Fold,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    let (era, norm) = fold.norm(&model.decay, model.epoch);
    let q = Query::insert()
        .into_table(P::Table)
        .columns(
            [P::TenantId, P::ProfileId, P::ModelId]
                .into_iter()
                .chain(FOLD_COLS)
                .map(IntoIden::into_iden)
                .chain([ScoreEras::NormEra.into_iden()]),
        )
        .values_panic([
            tenant.into(),
            profile.into(),
            model.id.clone().into(),
            fold.held.into(),
            fold.decaying.into(),
            fold.at.into(),
            fold.valid_until.into(),
            norm.into(),
            now.into(),
            era.into(),
        ])
        .on_conflict(
            OnConflict::columns([P::TenantId, P::ProfileId, P::ModelId])
                .update_columns(FOLD_COLS)
                .update_column(ScoreEras::NormEra)
                .to_owned(),
        )
        .to_owned();
    exec(conn, &q).await.map(drop)
}
