//! The source registry's rows: nodes created, renamed and archived, entry keys bound and
//! unbound — each checked by [`crate::domain::sources`] over the tenant's registry as loaded —
//! and every tenant's registry kept in memory for resolution ([`SourceCache`]), so an event
//! never reads it from the database; a write here reloads its tenant at once on this replica,
//! other replicas pick it up within [`CACHE_TTL`].

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    QueryFilter, QueryOrder, Set, SqlErr,
};
use serde::Serialize;

use crate::domain::sources::{self, BindingKind, Node, Registry, SourceInputError};

/// How often every registry is loaded again.
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

/// Every tenant's registry in memory, for resolution: an event reads it without a database
/// round trip (a read on the event path would delay that event behind its neighbours). Loaded
/// whole at start and every [`CACHE_TTL`] ([`Self::refresh_all`]); a write here reloads its
/// tenant at once on this replica ([`Self::reload`]). A tenant without a registry reads as empty.
#[derive(Debug, Clone, Default)]
pub struct SourceCache {
    loaded: Arc<RwLock<HashMap<String, Arc<Registry>>>>,
}

impl SourceCache {
    /// The tenant's registry as last loaded.
    pub fn get(&self, tenant: &str) -> Arc<Registry> {
        self.read().get(tenant).cloned().unwrap_or_default()
    }

    /// Loads every tenant's registry again (two reads of the two tables).
    pub async fn refresh_all<C: ConnectionTrait>(&self, db: &C) -> Result<(), DbErr> {
        let nodes = node::Entity::find().all(db).await?;
        let bindings = binding::Entity::find().all(db).await?;
        let mut by_tenant: HashMap<String, (Vec<node::Model>, Vec<binding::Model>)> =
            HashMap::new();
        for n in nodes {
            by_tenant.entry(n.tenant_id.clone()).or_default().0.push(n);
        }
        for b in bindings {
            by_tenant.entry(b.tenant_id.clone()).or_default().1.push(b);
        }
        let all = by_tenant
            .into_iter()
            .map(|(t, (n, b))| (t, Arc::new(registry(&n, &b))))
            .collect();
        *self.write() = all;
        Ok(())
    }

    /// Loads the tenant's registry again (after a write to it).
    pub async fn reload<C: ConnectionTrait>(&self, db: &C, tenant: &str) -> Result<(), DbErr> {
        let r = Arc::new(load(db, tenant).await?);
        self.write().insert(tenant.to_string(), r);
        Ok(())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Registry>>> {
        self.loaded.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Registry>>> {
        self.loaded.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// Refreshes `cache` from `db` every [`CACHE_TTL`] until `shutdown` (a failed pass is logged
/// and the last registries kept).
pub async fn keep_fresh(
    cache: SourceCache,
    db: DatabaseConnection,
    shutdown: tokio_util::sync::CancellationToken,
    beat: platform::tasks::Beat,
) {
    loop {
        beat.beat();
        if let Err(e) = cache.refresh_all(&db).await {
            tracing::warn!(error = %e, "Source registries not reloaded; the last ones stay");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(CACHE_TTL) => {}
        }
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
    cache.reload(db, tenant).await?;
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
    cache.reload(db, tenant).await?;
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
    cache.reload(db, tenant).await?;
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
    cache.reload(db, tenant).await?;
    get(db, tenant, id).await
}
