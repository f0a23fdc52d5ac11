//! The source registry's rows: nodes created, renamed and archived, entry keys bound and
//! unbound — each checked by [`crate::domain::sources`] over the tenant's registry as loaded —
//! and the registry loaded for resolution through a short-lived cache ([`SourceCache`]), so an
//! event does not read it from the database each time; a write here forgets the tenant's entry
//! in this process at once, other replicas within [`CACHE_TTL`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, SqlErr,
};
use serde::Serialize;

use crate::domain::sources::{self, BindingKind, Node, Registry, SourceInputError};

/// How long a loaded registry is used before it is read again.
pub const CACHE_TTL: Duration = Duration::from_secs(10);

pub mod node {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "source_nodes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub tenant_id: String,
        pub parent_id: Option<String>,
        pub name: String,
        pub depth: i16,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub archived_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod binding {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "source_bindings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub tenant_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kind: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub value: String,
        pub node_id: String,
        pub created_by: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

/// Why a registry write was refused.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(transparent)]
    Input(#[from] SourceInputError),
    /// No such node in the tenant.
    #[error("no source with id `{0}`")]
    NoNode(String),
    /// A sibling already has the name.
    #[error("`name`: a source named `{0}` is already there")]
    NameTaken(String),
    /// The key is bound to another node.
    #[error("`value`: {kind} `{value}` is bound to source `{node}` already")]
    KeyTaken {
        kind: &'static str,
        value: String,
        node: String,
    },
    /// The key is not bound to this node.
    #[error("{kind} `{value}` is not bound to source `{node}`")]
    NotBound {
        kind: &'static str,
        value: String,
        node: String,
    },
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A bound key as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct BindingView {
    pub kind: BindingKind,
    pub value: String,
}

/// A node as the API shows it: its path of names from the root, its depth and bound keys.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NodeView {
    pub id: String,
    pub parent_id: Option<String>,
    pub name: String,
    pub path: Vec<String>,
    pub depth: i16,
    pub bindings: Vec<BindingView>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub archived_at: Option<DateTime<Utc>>,
}

/// The tenants' registries, loaded for resolution; shared by the resolver's clones.
#[derive(Debug, Clone)]
pub struct SourceCache {
    loaded: moka::future::Cache<String, Arc<Registry>>,
}

impl Default for SourceCache {
    fn default() -> Self {
        SourceCache {
            loaded: moka::future::Cache::builder()
                .max_capacity(10_000)
                .time_to_live(CACHE_TTL)
                .build(),
        }
    }
}

impl SourceCache {
    /// The tenant's registry, from the cache while it is younger than [`CACHE_TTL`].
    pub async fn get(&self, db: &DatabaseConnection, tenant: &str) -> Result<Arc<Registry>, DbErr> {
        if let Some(r) = self.loaded.get(tenant).await {
            return Ok(r);
        }
        let r = Arc::new(load(db, tenant).await?);
        self.loaded.insert(tenant.to_string(), Arc::clone(&r)).await;
        Ok(r)
    }

    /// Reads the tenant's registry again at its next use.
    pub async fn forget(&self, tenant: &str) {
        self.loaded.invalidate(tenant).await;
    }
}

async fn rows<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
) -> Result<(Vec<node::Model>, Vec<binding::Model>), DbErr> {
    let nodes = node::Entity::find()
        .filter(node::Column::TenantId.eq(tenant))
        .order_by_asc(node::Column::Depth)
        .order_by_asc(node::Column::Name)
        .all(db)
        .await?;
    let bindings = binding::Entity::find()
        .filter(binding::Column::TenantId.eq(tenant))
        .order_by_asc(binding::Column::Kind)
        .order_by_asc(binding::Column::Value)
        .all(db)
        .await?;
    Ok((nodes, bindings))
}

fn registry(nodes: &[node::Model], bindings: &[binding::Model]) -> Registry {
    Registry::new(
        nodes.iter().map(|n| Node {
            id: n.id.clone(),
            parent_id: n.parent_id.clone(),
            name: n.name.clone(),
            archived: n.archived_at.is_some(),
        }),
        bindings.iter().filter_map(|b| {
            Some((
                BindingKind::parse(&b.kind)?,
                b.value.clone(),
                b.node_id.clone(),
            ))
        }),
    )
}

/// The tenant's registry.
pub async fn load<C: ConnectionTrait>(db: &C, tenant: &str) -> Result<Registry, DbErr> {
    let (nodes, bindings) = rows(db, tenant).await?;
    Ok(registry(&nodes, &bindings))
}

/// Every node of the tenant, roots first, with its path and bound keys.
pub async fn list<C: ConnectionTrait>(db: &C, tenant: &str) -> Result<Vec<NodeView>, DbErr> {
    let (nodes, bindings) = rows(db, tenant).await?;
    let reg = registry(&nodes, &bindings);
    let mut bound: BTreeMap<&str, Vec<BindingView>> = BTreeMap::new();
    for b in &bindings {
        if let Some(kind) = BindingKind::parse(&b.kind) {
            bound
                .entry(b.node_id.as_str())
                .or_default()
                .push(BindingView {
                    kind,
                    value: b.value.clone(),
                });
        }
    }
    Ok(nodes
        .iter()
        .map(|n| view(n, &reg, bound.remove(n.id.as_str()).unwrap_or_default()))
        .collect())
}

fn view(n: &node::Model, reg: &Registry, bindings: Vec<BindingView>) -> NodeView {
    NodeView {
        id: n.id.clone(),
        parent_id: n.parent_id.clone(),
        name: n.name.clone(),
        path: reg.path(&n.id).unwrap_or_else(|| vec![n.name.clone()]),
        depth: n.depth,
        bindings,
        created_by: n.created_by.clone(),
        created_at: n.created_at,
        archived_at: n.archived_at,
    }
}

/// One node of the tenant, as the API shows it.
pub async fn get<C: ConnectionTrait>(
    db: &C,
    tenant: &str,
    id: &str,
) -> Result<NodeView, SourceError> {
    list(db, tenant)
        .await?
        .into_iter()
        .find(|n| n.id == id)
        .ok_or_else(|| SourceError::NoNode(id.to_string()))
}

fn sibling_named<'a>(
    nodes: &'a [node::Model],
    parent: Option<&str>,
    name: &str,
    except: Option<&str>,
) -> Option<&'a node::Model> {
    nodes.iter().find(|n| {
        n.parent_id.as_deref() == parent
            && n.archived_at.is_none()
            && n.name == name
            && Some(n.id.as_str()) != except
    })
}

/// Creates a node named `name` under `parent` (a root without).
pub async fn create(
    db: &DatabaseConnection,
    cache: &SourceCache,
    tenant: &str,
    actor: &str,
    parent: Option<&str>,
    name: &str,
) -> Result<NodeView, SourceError> {
    let name = sources::name(name)?;
    let (nodes, bindings) = rows(db, tenant).await?;
    let depth = registry(&nodes, &bindings).child_depth(parent)?;
    if sibling_named(&nodes, parent, &name, None).is_some() {
        return Err(SourceError::NameTaken(name));
    }
    let id = uuid::Uuid::now_v7().to_string();
    node::ActiveModel {
        id: Set(id.clone()),
        tenant_id: Set(tenant.to_string()),
        parent_id: Set(parent.map(str::to_string)),
        name: Set(name),
        depth: Set(i16::try_from(depth).unwrap_or(i16::MAX)),
        created_by: Set(actor.to_string()),
        created_at: Set(Utc::now()),
        archived_at: Set(None),
    }
    .insert(db)
    .await?;
    cache.forget(tenant).await;
    get(db, tenant, &id).await
}

/// Renames a node and/or archives it (`archived: true`; a touch through its keys is then no
/// longer attributed to it) or takes it back (`false`).
pub async fn update(
    db: &DatabaseConnection,
    cache: &SourceCache,
    tenant: &str,
    id: &str,
    name: Option<&str>,
    archived: Option<bool>,
) -> Result<NodeView, SourceError> {
    let (nodes, _) = rows(db, tenant).await?;
    let n = nodes
        .iter()
        .find(|n| n.id == id)
        .ok_or_else(|| SourceError::NoNode(id.to_string()))?;
    let mut m: node::ActiveModel = n.clone().into();
    if let Some(raw) = name {
        let name = sources::name(raw)?;
        if sibling_named(&nodes, n.parent_id.as_deref(), &name, Some(id)).is_some() {
            return Err(SourceError::NameTaken(name));
        }
        m.name = Set(name);
    }
    match archived {
        Some(true) if n.archived_at.is_none() => m.archived_at = Set(Some(Utc::now())),
        Some(false) => m.archived_at = Set(None),
        _ => {}
    }
    m.update(db).await?;
    cache.forget(tenant).await;
    get(db, tenant, id).await
}

/// Binds the key `value` of `kind` to the node `id`: the node, and whether the key is new to
/// it (`false`: it was bound to it already).
pub async fn bind(
    db: &DatabaseConnection,
    cache: &SourceCache,
    tenant: &str,
    actor: &str,
    id: &str,
    kind: &str,
    value: &str,
) -> Result<(NodeView, bool), SourceError> {
    let (kind, value) = sources::binding(kind, value)?;
    let node = get(db, tenant, id).await?;
    if node.archived_at.is_some() {
        return Err(SourceInputError {
            field: "id",
            reason: "an archived source takes no new keys".into(),
        }
        .into());
    }
    let held =
        binding::Entity::find_by_id((tenant.to_string(), kind.as_str().to_string(), value.clone()))
            .one(db)
            .await?;
    match held {
        Some(b) if b.node_id == id => return Ok((node, false)),
        Some(b) => {
            return Err(SourceError::KeyTaken {
                kind: kind.as_str(),
                value,
                node: b.node_id,
            })
        }
        None => {}
    }
    let inserted = binding::ActiveModel {
        tenant_id: Set(tenant.to_string()),
        kind: Set(kind.as_str().to_string()),
        value: Set(value.clone()),
        node_id: Set(id.to_string()),
        created_by: Set(actor.to_string()),
        created_at: Set(Utc::now()),
    }
    .insert(db)
    .await;
    match inserted {
        Ok(_) => {}
        // Bound by a concurrent request meanwhile.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            return Err(SourceError::KeyTaken {
                kind: kind.as_str(),
                value,
                node: "another".into(),
            })
        }
        Err(e) => return Err(e.into()),
    }
    cache.forget(tenant).await;
    Ok((get(db, tenant, id).await?, true))
}

/// Unbinds the key `value` of `kind` from the node `id`.
pub async fn unbind(
    db: &DatabaseConnection,
    cache: &SourceCache,
    tenant: &str,
    id: &str,
    kind: &str,
    value: &str,
) -> Result<NodeView, SourceError> {
    let (kind, value) = sources::binding(kind, value)?;
    get(db, tenant, id).await?;
    let gone = binding::Entity::delete_many()
        .filter(binding::Column::TenantId.eq(tenant))
        .filter(binding::Column::Kind.eq(kind.as_str()))
        .filter(binding::Column::Value.eq(value.as_str()))
        .filter(binding::Column::NodeId.eq(id))
        .exec(db)
        .await?
        .rows_affected;
    if gone == 0 {
        return Err(SourceError::NotBound {
            kind: kind.as_str(),
            value,
            node: id.to_string(),
        });
    }
    cache.forget(tenant).await;
    get(db, tenant, id).await
}
