//! The audit log: every write through the admin API recorded with its actor, and read back by
//! page.

use chrono::NaiveDateTime;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

use crate::store::access::audit;

use super::{now, Access, AdminPrincipal};

impl Access {
    /// Records a write through the admin API.
    #[allow(clippy::too_many_arguments)]
    pub async fn record(
        &self,
        p: &AdminPrincipal,
        action: &str,
        target: &str,
        status: u16,
        summary: serde_json::Value,
        request_id: Option<String>,
    ) -> Result<(), DbErr> {
        audit::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(p.tenant_id.clone()),
            actor: Set(p.actor()),
            action: Set(action.chars().take(160).collect()),
            target: Set(target.chars().take(512).collect()),
            status: Set(i32::from(status)),
            summary: Set(summary.to_string()),
            request_id: Set(request_id),
            at: Set(now()),
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    /// A page of the tenant's audit log, newest first, after `cursor` (an entry id).
    pub async fn audit(
        &self,
        tenant_id: &str,
        actor: Option<&str>,
        target: Option<&str>,
        since: Option<NaiveDateTime>,
        cursor: Option<i64>,
        limit: u64,
    ) -> Result<(Vec<audit::Model>, Option<i64>), DbErr> {
        let mut q = audit::Entity::find().filter(audit::Column::TenantId.eq(tenant_id));
        if let Some(a) = actor {
            q = q.filter(audit::Column::Actor.eq(a));
        }
        if let Some(t) = target {
            q = q.filter(audit::Column::Target.starts_with(t));
        }
        if let Some(s) = since {
            q = q.filter(audit::Column::At.gte(s));
        }
        if let Some(c) = cursor {
            q = q.filter(audit::Column::Id.lt(c));
        }
        let rows = q
            .order_by_desc(audit::Column::Id)
            .limit(limit + 1)
            .all(&self.db)
            .await?;
        let more = rows.len() as u64 > limit;
        let items: Vec<_> = rows.into_iter().take(limit as usize).collect();
        let next = if more {
            items.last().map(|r| r.id)
        } else {
            None
        };
        Ok((items, next))
    }
}
