//! Indexes of `leads` behind the customer list's sorts.

use super::*;

/// The indexes of the customer browse (`store::browse`): active leads of a tenant by last
/// activity, by creation, and by stage then last activity, each ending in the profile id so a
/// page's keyset reads the index in order and stops after the page.
pub struct LeadBrowseIndexes;

/// (name, columns) of each browse index.
const BROWSE_INDEXES: [(&str, &[Leads]); 3] = [
    (
        "ix_leads_browse_active",
        &[
            Leads::TenantId,
            Leads::Status,
            Leads::LastActivityAt,
            Leads::ProfileId,
        ],
    ),
    (
        "ix_leads_browse_created",
        &[
            Leads::TenantId,
            Leads::Status,
            Leads::CreatedAt,
            Leads::ProfileId,
        ],
    ),
    (
        "ix_leads_browse_stage",
        &[
            Leads::TenantId,
            Leads::Status,
            Leads::Stage,
            Leads::LastActivityAt,
            Leads::ProfileId,
        ],
    ),
];

impl MigrationName for LeadBrowseIndexes {
    fn name(&self) -> &str {
        "m20261207_000001_lead_browse_indexes"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for LeadBrowseIndexes {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, on) in BROWSE_INDEXES {
            index(m, name, Leads::Table, cols(on), false).await?;
        }
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for (name, _) in BROWSE_INDEXES {
            m.drop_index(Index::drop().name(name).table(Leads::Table).to_owned())
                .await?;
        }
        Ok(())
    }
}
