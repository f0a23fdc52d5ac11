//! The batch read behind `POST /v1/profiles/reach`: a page of the tenant's profiles with the
//! identifiers [`crate::domain::reach`] decides from, in two statements whatever the page size.

use std::collections::HashMap;

use proto::identity::IdentifierKind;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};

use super::entities::{identifier, profile};
use crate::domain::reach::{reach, Held, Reach};

/// Identifier kinds a reach is decided from.
const KINDS: [IdentifierKind; 4] = [
    IdentifierKind::OaOpenid,
    IdentifierKind::MpOpenid,
    IdentifierKind::WecomExternalUserid,
    IdentifierKind::Phone,
];

/// What a reach read found: the reach of each active profile of `ids` (in the order asked), and
/// the ids that are not an active profile of the tenant (unknown, another tenant's, or merged
/// into another since the caller read them: `merged_into` says which).
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Found {
    pub items: Vec<Reach>,
    pub missing: Vec<Missing>,
}

/// An id asked for that is not an active profile.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Missing {
    pub profile_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<String>,
}

/// The reach of `tenant`'s profiles `ids`.
pub async fn reach_of<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    ids: &[String],
) -> Result<Found, DbErr> {
    if ids.is_empty() {
        return Ok(Found::default());
    }
    let profiles: HashMap<String, profile::Model> = profile::Entity::find()
        .filter(profile::Column::TenantId.eq(tenant))
        .filter(profile::Column::Id.is_in(ids.iter().cloned()))
        .all(db)
        .await?
        .into_iter()
        .map(|p| (p.id.clone(), p))
        .collect();
    let active: Vec<&str> = profiles
        .values()
        .filter(|p| p.merged_into.is_none() && p.status == super::ACTIVE)
        .map(|p| p.id.as_str())
        .collect();
    let mut held: HashMap<String, Vec<Held>> = HashMap::new();
    if !active.is_empty() {
        let rows = identifier::Entity::find()
            .filter(identifier::Column::TenantId.eq(tenant))
            .filter(identifier::Column::ProfileId.is_in(active.iter().map(|s| s.to_string())))
            .filter(identifier::Column::Kind.is_in(KINDS.iter().map(|k| k.as_str())))
            .order_by_asc(identifier::Column::Id)
            .all(db)
            .await?;
        for m in rows {
            let Some(kind) = IdentifierKind::parse(&m.kind) else {
                continue;
            };
            let shown = if kind.is_sensitive() {
                m.value_masked
            } else {
                m.value.unwrap_or(m.value_masked)
            };
            held.entry(m.profile_id).or_default().push(Held {
                kind,
                namespace: m.namespace,
                shown,
            });
        }
    }
    let mut found = Found::default();
    for id in ids {
        match profiles.get(id) {
            Some(p) if p.merged_into.is_none() && p.status == super::ACTIVE => {
                let state = super::state::stored(p);
                let h = held.get(id).map(Vec::as_slice).unwrap_or_default();
                found.items.push(reach(id, &state.relations, h));
            }
            p => found.missing.push(Missing {
                profile_id: id.clone(),
                merged_into: p.and_then(|p| p.merged_into.clone()),
            }),
        }
    }
    Ok(found)
}
