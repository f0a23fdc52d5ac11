//! Personas as operators write them: a name (unique per tenant), a description, the saved
//! segment whose members the persona describes, its expected traits
//! ([`crate::domain::persona::Trait`]) and the response rate its members are expected to show
//! to a campaign. Created, read, changed, deleted and listed; reports and validations read them
//! through [`crate::api`] (the analytics store does the counting).

pub mod migration;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, IntoActiveModel,
    QueryFilter, QueryOrder, QuerySelect, Set, SqlErr,
};
use serde::{Deserialize, Serialize};

use crate::domain::persona::{check_traits, Trait};
use crate::store::saved;

/// Longest name and description, in characters.
pub const MAX_NAME: usize = 128;
pub const MAX_DESCRIPTION: usize = 1_000;

/// The `personas` table.
pub mod persona {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "personas")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub name: String,
        pub description: String,
        pub segment_id: String,
        /// The expected traits (JSON array).
        pub traits: String,
        /// The expected response rate to a campaign, in parts per million (exact on every
        /// backend).
        pub expected_response_ppm: Option<i64>,
        pub created_by: String,
        pub updated_by: String,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Why a persona request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PersonaError {
    #[error("`{0}` is required")]
    Missing(&'static str),
    #[error("`{field}`: {message}")]
    Field { field: String, message: String },
    #[error("{0}")]
    NotFound(String),
    #[error("a persona with this name exists already")]
    Duplicate,
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A new persona.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewPersona {
    pub name: Option<String>,
    pub description: Option<String>,
    pub segment_id: Option<String>,
    #[serde(default)]
    pub traits: Vec<Trait>,
    /// 0..=1.
    pub expected_response_rate: Option<f64>,
}

/// A change: the fields given are replaced (`expected_response_rate: null` clears it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PersonaPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    pub segment_id: Option<String>,
    pub traits: Option<Vec<Trait>>,
    #[serde(default, deserialize_with = "present")]
    pub expected_response_rate: Option<Option<f64>>,
}

/// A field that is present (`null` included) as `Some`; an absent one stays `None` (`default`).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<f64>>, D::Error> {
    Option::<f64>::deserialize(d).map(Some)
}

/// A persona as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PersonaView {
    pub id: String,
    pub name: String,
    pub description: String,
    pub segment_id: String,
    pub traits: Vec<Trait>,
    pub expected_response_rate: Option<f64>,
    pub created_by: String,
    pub updated_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<persona::Model> for PersonaView {
    fn from(m: persona::Model) -> Self {
        PersonaView {
            traits: serde_json::from_str(&m.traits).unwrap_or_default(),
            expected_response_rate: m.expected_response_ppm.map(|p| p as f64 / 1e6),
            id: m.id,
            name: m.name,
            description: m.description,
            segment_id: m.segment_id,
            created_by: m.created_by,
            updated_by: m.updated_by,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

fn field(field: &str, message: impl Into<String>) -> PersonaError {
    PersonaError::Field {
        field: field.into(),
        message: message.into(),
    }
}

fn name_of(name: &str) -> Result<String, PersonaError> {
    let n = name.trim();
    if n.is_empty() {
        return Err(PersonaError::Missing("name"));
    }
    if n.chars().count() > MAX_NAME {
        return Err(field("name", format!("at most {MAX_NAME} characters")));
    }
    Ok(n.to_string())
}

fn description_of(d: &str) -> Result<String, PersonaError> {
    if d.chars().count() > MAX_DESCRIPTION {
        return Err(field(
            "description",
            format!("at most {MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(d.to_string())
}

fn traits_of(traits: &[Trait]) -> Result<String, PersonaError> {
    check_traits(traits).map_err(|e| field(&e.field, e.message))?;
    serde_json::to_string(traits).map_err(|e| PersonaError::Db(DbErr::Custom(e.to_string())))
}

fn rate_of(r: f64) -> Result<i64, PersonaError> {
    if !(0.0..=1.0).contains(&r) {
        return Err(field("expected_response_rate", "must be 0..=1"));
    }
    Ok((r * 1e6).round() as i64)
}

/// 404 unless `segment_id` is a saved segment of `tenant`.
async fn segment_of<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    segment_id: &str,
) -> Result<String, PersonaError> {
    match saved::get(conn, tenant, segment_id).await {
        Ok(s) => Ok(s.id),
        Err(saved::SavedError::NotFound(_)) => Err(field(
            "segment_id",
            format!("no saved segment with id `{segment_id}`"),
        )),
        Err(saved::SavedError::Db(e)) => Err(e.into()),
        Err(e) => Err(PersonaError::Db(DbErr::Custom(e.to_string()))),
    }
}

fn duplicate(e: DbErr) -> PersonaError {
    if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        PersonaError::Duplicate
    } else {
        PersonaError::Db(e)
    }
}

/// Creates a persona of `tenant` by `actor` at `now`.
pub async fn create<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    actor: &str,
    n: NewPersona,
    now: DateTime<Utc>,
) -> Result<persona::Model, PersonaError> {
    let name = name_of(n.name.as_deref().unwrap_or_default())?;
    let description = description_of(n.description.as_deref().unwrap_or_default())?;
    let segment = n.segment_id.ok_or(PersonaError::Missing("segment_id"))?;
    let segment_id = segment_of(conn, tenant, &segment).await?;
    let traits = traits_of(&n.traits)?;
    let ppm = n.expected_response_rate.map(rate_of).transpose()?;
    let now = now.trunc_subsecs(0);
    let actor: String = actor.chars().take(64).collect();
    persona::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        tenant_id: Set(tenant.to_string()),
        name: Set(name),
        description: Set(description),
        segment_id: Set(segment_id),
        traits: Set(traits),
        expected_response_ppm: Set(ppm),
        created_by: Set(actor.clone()),
        updated_by: Set(actor),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(conn)
    .await
    .map_err(duplicate)
}

/// The persona `id` of `tenant` (another tenant's is not found, like an unknown id).
pub async fn get<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    id: &str,
) -> Result<persona::Model, PersonaError> {
    persona::Entity::find_by_id(id.to_string())
        .filter(persona::Column::TenantId.eq(tenant))
        .one(conn)
        .await?
        .ok_or_else(|| PersonaError::NotFound(format!("no persona with id `{id}`")))
}

/// Changes the persona `id` of `tenant` as `actor`.
pub async fn update<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    actor: &str,
    id: &str,
    p: PersonaPatch,
    now: DateTime<Utc>,
) -> Result<persona::Model, PersonaError> {
    let current = get(conn, tenant, id).await?;
    let mut m = current.into_active_model();
    if let Some(n) = &p.name {
        m.name = Set(name_of(n)?);
    }
    if let Some(d) = &p.description {
        m.description = Set(description_of(d)?);
    }
    if let Some(s) = &p.segment_id {
        m.segment_id = Set(segment_of(conn, tenant, s).await?);
    }
    if let Some(t) = &p.traits {
        m.traits = Set(traits_of(t)?);
    }
    if let Some(r) = p.expected_response_rate {
        m.expected_response_ppm = Set(r.map(rate_of).transpose()?);
    }
    m.updated_by = Set(actor.chars().take(64).collect());
    m.updated_at = Set(now.trunc_subsecs(0));
    m.update(conn).await.map_err(duplicate)
}

/// Deletes the persona `id` of `tenant`.
pub async fn delete<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    id: &str,
) -> Result<(), PersonaError> {
    let p = get(conn, tenant, id).await?;
    persona::Entity::delete_by_id(p.id).exec(conn).await?;
    Ok(())
}

/// The tenant's personas in the order they were created: at most `limit` after `after`.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<PersonaView>, DbErr> {
    let mut q = persona::Entity::find().filter(persona::Column::TenantId.eq(tenant));
    if let Some(a) = after {
        q = q.filter(persona::Column::Id.gt(a));
    }
    Ok(q.order_by_asc(persona::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(PersonaView::from)
        .collect())
}
