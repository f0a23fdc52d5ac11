//! Leads remember the survivor's stage-history entry current at a merge.

use super::*;

/// Adds `leads.merge_history_id`: on a lead merged into another, the survivor's stage-history
/// entry current when the merge was applied, so undoing the merge can take the survivor back to
/// the stage it had then (0: not merged, or merged before this was recorded).
pub struct LeadMergeMark;

impl MigrationName for LeadMergeMark {
    fn name(&self) -> &str {
        "m20261206_000001_lead_merge_mark"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for LeadMergeMark {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Leads::Table)
                .add_column(big(Leads::MergeHistoryId))
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table(Leads::Table)
                .drop_column(Leads::MergeHistoryId)
                .to_owned(),
        )
        .await
    }
}
