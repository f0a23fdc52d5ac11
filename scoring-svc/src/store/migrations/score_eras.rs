//! Score models get eras (a model's scores are kept per era).

use super::*;

/// Adds `profile_scores.norm_era`: leaderboard keys relative to the start of their era, so they
/// never overflow however long a model runs. Rows written before it are of era 0 (keys relative
/// to the model's start, as they were).
pub struct ScoreKeyEras;

impl MigrationName for ScoreKeyEras {
    fn name(&self) -> &str {
        "m20261204_000001_score_key_eras"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ScoreKeyEras {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ProfileScores::Table)
                .add_column(big(ScoreEras::NormEra))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(ProfileScores::Table)
                .drop_column(ScoreEras::NormEra)
                .to_owned(),
        )
        .await
    }
}
