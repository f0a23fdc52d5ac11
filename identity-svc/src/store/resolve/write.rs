//! Writes one event's resolution as [`crate::domain::resolution::decide`] decided it: the
//! profile (created or touched), the attached identifiers with their ledger edges, the merges
//! (identifiers moved, the absorbed profile marked, the merge record with its snapshots, the
//! proving edge, `identity.merged` in the outbox), the refusals and the timeline entry. Nothing
//! here decides.

use chrono::{DateTime, Utc};
use platform::db::outbox;
use proto::identity::LinkRule;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, DatabaseTransaction, DbErr, EntityTrait, IntoActiveModel, QueryFilter,
    Set,
};
use serde_json::json;

use super::{Job, SYSTEM};
use crate::domain::resolution::{Effects, Ref};
use crate::store::entities::{edge, identifier, merge, profile, refusal, timeline};
use crate::store::{ACTIVE, MERGED};

/// Identifier rows of the event's identifiers, as they stand while the effects are written.
pub(crate) struct Rows {
    ids: Vec<Option<i64>>,
    /// A profile the effects created, as written, with its identifiers: what its state is
    /// derived from, known without reading it back.
    pub created: Option<(profile::Model, Vec<identifier::Model>)>,
}

impl Rows {
    /// The row `r` names (an attached one once written).
    pub(crate) fn get(&self, r: Ref) -> Option<i64> {
        match r {
            Ref::Row(id) => Some(id),
            Ref::New(i) => self.ids.get(i).copied().flatten(),
        }
    }
}

/// Writes `fx`, decided for `job` on the identifier rows `rows` found; returns the rows of the
/// event's identifiers after it.
pub(crate) async fn write(
    txn: &DatabaseTransaction,
    job: &Job,
    rows: Vec<Option<i64>>,
    fx: &Effects,
    now: DateTime<Utc>,
) -> Result<Rows, DbErr> {
    let env = &job.env;
    let tenant = env.tenant_id.as_str();
    let event_id = env.id.to_string();
    let survivor = fx.profile_id.as_str();
    let mut rows = Rows {
        ids: rows,
        created: None,
    };
    if fx.created {
        let p = profile::Model {
            id: survivor.to_string(),
            tenant_id: tenant.to_string(),
            status: ACTIVE.to_string(),
            merged_into: None,
            created_at: now,
            updated_at: now,
            fields: None,
            relations: None,
            version: 0,
            display_name: None,
        };
        profile::Entity::insert(p.clone().into_active_model())
            .exec_without_returning(txn)
            .await?;
        rows.created = Some((p, Vec::with_capacity(fx.attach.len())));
    } else {
        profile::Entity::update_many()
            .col_expr(profile::Column::UpdatedAt, Expr::value(now))
            .filter(profile::Column::Id.eq(survivor))
            .exec(txn)
            .await?;
    }

    for a in &fx.attach {
        let p = &job.prepared[a.idx];
        let mut m = identifier::Model {
            id: 0,
            tenant_id: tenant.to_string(),
            kind: p.key.kind.as_str().to_string(),
            namespace: p.key.namespace.clone(),
            value_hash: p.key.hash.clone(),
            value: p.value.clone(),
            value_sealed: p.sealed.clone(),
            value_masked: p.masked.clone(),
            profile_id: survivor.to_string(),
            provenance: p.found.provenance.as_str().to_string(),
            first_seen_event: event_id.clone(),
            created_at: now,
            updated_at: now,
        };
        let mut am = m.clone().into_active_model();
        am.id = sea_orm::NotSet;
        let new_id = identifier::Entity::insert(am)
            .exec(txn)
            .await?
            .last_insert_id;
        m.id = new_id;
        rows.ids[a.idx] = Some(new_id);
        if let Some((_, idents)) = rows.created.as_mut() {
            idents.push(m);
        }
        let (from, to) = match a.from.and_then(|f| rows.get(f)) {
            Some(from) => (from, Some(new_id)),
            None => (new_id, None),
        };
        let e = NewEdge {
            tenant,
            from,
            to,
            profile_id: survivor,
            rule: if to.is_some() {
                a.rule
            } else {
                LinkRule::NewProfile
            },
            event_id: Some(&event_id),
            created_by: SYSTEM,
            merge_id: None,
        };
        e.insert(txn, now).await?;
    }

    for m in &fx.merges {
        identifier::Entity::update_many()
            .col_expr(identifier::Column::ProfileId, Expr::value(survivor))
            .col_expr(identifier::Column::UpdatedAt, Expr::value(now))
            .filter(identifier::Column::ProfileId.eq(m.absorbed.clone()))
            .exec(txn)
            .await?;
        profile::Entity::update_many()
            .col_expr(profile::Column::Status, Expr::value(MERGED))
            .col_expr(profile::Column::MergedInto, Expr::value(survivor))
            .col_expr(profile::Column::UpdatedAt, Expr::value(now))
            .filter(
                Condition::any()
                    .add(profile::Column::Id.eq(m.absorbed.clone()))
                    .add(profile::Column::MergedInto.eq(m.absorbed.clone())),
            )
            .exec(txn)
            .await?;
        let merge_id = merge::Entity::insert(merge::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(tenant.to_string()),
            survivor_id: Set(survivor.to_string()),
            absorbed_id: Set(m.absorbed.clone()),
            rule: Set(m.rule.as_str().to_string()),
            evidence_event_id: Set(Some(event_id.clone())),
            before_snapshot: Set(m.before.to_string()),
            after_snapshot: Set(m.after.to_string()),
            operator: Set(None),
            created_at: Set(now),
            reason: Set(None),
            unmerged_at: Set(None),
            unmerge_id: Set(None),
        })
        .exec(txn)
        .await?
        .last_insert_id;
        if let Some((from, to)) = m.proof {
            if let (Some(from), Some(to)) = (rows.get(from), rows.get(to)) {
                let e = NewEdge {
                    tenant,
                    from,
                    to: Some(to),
                    profile_id: survivor,
                    rule: m.rule,
                    event_id: Some(&event_id),
                    created_by: SYSTEM,
                    merge_id: Some(merge_id),
                };
                e.insert(txn, now).await?;
            }
        }
        outbox::enqueue(txn, &m.announce).await?;
    }

    for r in &fx.refusals {
        refusal::Entity::insert(refusal::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(tenant.to_string()),
            candidate_ids: Set(json!(r.candidates).to_string()),
            rule: Set(r.rule.as_str().to_string()),
            reason: Set(r.detail.clone()),
            evidence_event_id: Set(Some(event_id.clone())),
            created_at: Set(now),
        })
        .exec_without_returning(txn)
        .await?;
        metrics::counter!(crate::metrics::MERGE_REFUSALS, "reason" => r.reason.as_str())
            .increment(1);
    }

    if let Some(named) = &fx.timeline {
        let ids: Vec<i64> = named.iter().filter_map(|r| rows.get(*r)).collect();
        timeline::Entity::insert(timeline::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(tenant.to_string()),
            profile_id: Set(survivor.to_string()),
            event_id: Set(event_id.clone()),
            event_type: Set(env.kind.clone()),
            occurred_at: Set(env.occurred_at),
            summary: Set(job.summary.to_string()),
            identifier_ids: Set(Some(json!(ids).to_string())),
        })
        .exec_without_returning(txn)
        .await?;
    }
    Ok(rows)
}

/// One edge of the ledger about to be written.
pub(crate) struct NewEdge<'a> {
    pub tenant: &'a str,
    pub from: i64,
    /// `None`: `from` is linked to the profile itself (its first identifier, or a split).
    pub to: Option<i64>,
    pub profile_id: &'a str,
    pub rule: LinkRule,
    pub event_id: Option<&'a str>,
    pub created_by: &'a str,
    pub merge_id: Option<i64>,
}

impl NewEdge<'_> {
    pub(crate) async fn insert(
        &self,
        txn: &DatabaseTransaction,
        now: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        edge::Entity::insert(edge::ActiveModel {
            id: sea_orm::NotSet,
            tenant_id: Set(self.tenant.to_string()),
            from_identifier_id: Set(self.from),
            to_identifier_id: Set(self.to),
            profile_id: Set(self.profile_id.to_string()),
            rule: Set(self.rule.as_str().to_string()),
            evidence_event_id: Set(self.event_id.map(str::to_string)),
            created_at: Set(now),
            created_by: Set(self.created_by.to_string()),
            retracted_at: Set(None),
            merge_id: Set(self.merge_id),
        })
        .exec_without_returning(txn)
        .await?;
        Ok(())
    }
}
