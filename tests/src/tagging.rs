//! Tag catalogue fixtures: a tag in a group of its own, as an operator would create them.

use sea_orm::DatabaseConnection;
use tagging_svc::store::catalog::{self, CatalogError, NewGroup, NewTag};

/// Creates a multi-select group `group` holding one tag `tag`; returns the tag's id.
pub async fn group_with_tag(
    db: &DatabaseConnection,
    tenant: &str,
    group: &str,
    tag: &str,
) -> Result<String, CatalogError> {
    let g = catalog::create_group(
        db,
        NewGroup {
            tenant_id: tenant.into(),
            name: group.into(),
            selection: "multi".into(),
            sync_wecom: false,
            corp_id: None,
            created_by: "bench".into(),
        },
    )
    .await?;
    let t = catalog::create_tag(
        db,
        NewTag {
            tenant_id: tenant.into(),
            group_id: g.id,
            name: tag.into(),
            description: String::new(),
            created_by: "bench".into(),
        },
    )
    .await?;
    Ok(t.id)
}
