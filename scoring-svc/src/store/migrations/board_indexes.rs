//! Descending indexes of `profile_scores` behind the leaderboard and the score sort.

use super::*;

/// The indexes of the leaderboard's threshold reads (`queries::leaderboard`): a model's folds of
/// one era by `norm` descending then profile id, by `held` descending then profile id, and by
/// when they stop being valid (the folds a read must rebuild).
pub struct ScoreBoardIndexes;

impl MigrationName for ScoreBoardIndexes {
    fn name(&self) -> &str {
        "m20261207_000002_score_board_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ScoreBoardIndexes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        use ProfileScores as P;
        let mut by_norm = Index::create();
        by_norm
            .name("ix_profile_scores_norm")
            .table(P::Table)
            .if_not_exists()
            .col(P::TenantId)
            .col(P::ModelId)
            .col(ScoreEras::NormEra)
            .col((P::Norm, IndexOrder::Desc))
            .col(P::ProfileId);
        m.create_index(by_norm.to_owned()).await?;
        let mut by_held = Index::create();
        by_held
            .name("ix_profile_scores_held")
            .table(P::Table)
            .if_not_exists()
            .col(P::TenantId)
            .col(P::ModelId)
            .col((P::Held, IndexOrder::Desc))
            .col(P::ProfileId);
        m.create_index(by_held.to_owned()).await?;
        index(
            m,
            "ix_profile_scores_valid",
            P::Table,
            cols(&[P::TenantId, P::ModelId, P::ValidUntil]),
            false,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for name in [
            "ix_profile_scores_norm",
            "ix_profile_scores_held",
            "ix_profile_scores_valid",
        ] {
            m.drop_index(
                Index::drop()
                    .name(name)
                    .table(ProfileScores::Table)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}
