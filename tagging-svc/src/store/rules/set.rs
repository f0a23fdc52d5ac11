//! A tenant's rule set in memory: every active rule expanded (references inlined) with what it
//! depends on, loaded from the stored documents and cached for at most `ttl`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use proto::condition::Condition;
use rules::{Expanded, Limits, RuleLookup};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
};

use crate::store::catalog::ACTIVE;
use crate::store::entities::{rule, tag, tag_group};
use crate::store::members::TagInfo;

use super::{Mode, RuleEntry, TenantRules};

/// Conditions of stored rules by id, for reference expansion.
pub(super) struct Docs(pub(super) BTreeMap<String, Condition>);

impl RuleLookup for Docs {
    fn condition(&self, rule_id: &str) -> Option<Condition> {
        self.0.get(rule_id).cloned()
    }
}

pub(super) fn parse_stored(s: &str) -> Option<Condition> {
    serde_json::from_str::<proto::condition::ConditionDoc>(s)
        .ok()
        .map(|d| d.root)
}

pub(super) async fn docs<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
) -> Result<Vec<rule::Model>, DbErr> {
    rule::Entity::find()
        .filter(rule::Column::TenantId.eq(tenant))
        .filter(rule::Column::DeletedAt.is_null())
        .order_by_asc(rule::Column::Id)
        .all(conn)
        .await
}

/// Loads and expands a tenant's rules.
pub async fn load<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    limits: &Limits,
) -> Result<TenantRules, DbErr> {
    let rows = docs(conn, tenant).await?;
    let lookup = Docs(
        rows.iter()
            .filter_map(|r| Some((r.id.clone(), parse_stored(&r.condition)?)))
            .collect(),
    );
    let groups: HashMap<String, tag_group::Model> = tag_group::Entity::find()
        .filter(tag_group::Column::TenantId.eq(tenant))
        .all(conn)
        .await?
        .into_iter()
        .map(|g| (g.id.clone(), g))
        .collect();
    let mut tags = HashMap::new();
    let mut active = BTreeSet::new();
    for t in tag::Entity::find()
        .filter(tag::Column::TenantId.eq(tenant))
        .all(conn)
        .await?
    {
        if t.status == ACTIVE {
            active.insert(t.id.clone());
        }
        if let Some(g) = groups.get(&t.group_id) {
            tags.insert(
                t.id.clone(),
                TagInfo {
                    tag: t,
                    group: g.clone(),
                },
            );
        }
    }
    let mut entries = Vec::new();
    for r in rows {
        let expanded = lookup
            .0
            .get(&r.id)
            .and_then(|c| rules::expand(c, limits, &lookup).ok());
        if expanded.is_none() {
            metrics::counter!(crate::metrics::RULES_INVALID).increment(1);
            tracing::warn!(rule_id = %r.id, "Rule condition no longer expands (a referenced rule changed); skipped");
        }
        let deps = expanded
            .as_ref()
            .map(Expanded::dependencies)
            .unwrap_or_default();
        entries.push(Arc::new(RuleEntry {
            live: r.enabled && active.contains(&r.tag_id) && expanded.is_some(),
            mode: Mode::parse(&r.mode).unwrap_or(Mode::AddOnly),
            id: r.id,
            tag_id: r.tag_id,
            expanded,
            deps,
            version: r.version,
        }));
    }
    let segments = realtime_segments(conn, tenant, limits, &lookup).await?;
    Ok(TenantRules {
        entries,
        tags,
        segments,
    })
}

/// The tenant's active real-time saved segments as entries settling evaluates (a segment whose
/// condition no longer expands is kept, not live, as an invalid rule is).
async fn realtime_segments<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    limits: &Limits,
    lookup: &Docs,
) -> Result<Vec<Arc<RuleEntry>>, DbErr> {
    use crate::store::saved::{entities::segment, ACTIVE as LIVE, REALTIME};
    let rows = segment::Entity::find()
        .filter(segment::Column::TenantId.eq(tenant))
        .filter(segment::Column::Status.eq(LIVE))
        .filter(segment::Column::RefreshMode.eq(REALTIME))
        .order_by_asc(segment::Column::Id)
        .all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|s| {
            let expanded =
                parse_stored(&s.condition).and_then(|c| rules::expand(&c, limits, lookup).ok());
            if expanded.is_none() {
                tracing::warn!(segment_id = %s.id, "Real-time segment condition no longer expands; not kept");
            }
            Arc::new(RuleEntry {
                live: expanded.is_some(),
                mode: Mode::AddRemove,
                deps: expanded
                    .as_ref()
                    .map(Expanded::dependencies)
                    .unwrap_or_default(),
                id: s.id,
                tag_id: String::new(),
                expanded,
                version: s.version,
            })
        })
        .collect())
}

/// Each tenant's rule set and when it was loaded.
type Loaded = HashMap<String, (Instant, Arc<TenantRules>)>;

/// Tenants' rule sets, reloaded on local change and after `ttl`.
#[derive(Clone)]
pub struct RuleCache {
    db: DatabaseConnection,
    limits: Arc<Limits>,
    ttl: Duration,
    map: Arc<RwLock<Loaded>>,
}

impl RuleCache {
    pub fn new(db: DatabaseConnection, limits: Limits, ttl: Duration) -> Self {
        RuleCache {
            db,
            limits: Arc::new(limits),
            ttl,
            map: Arc::default(),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The tenant's rules.
    pub async fn get(&self, tenant: &str) -> Result<Arc<TenantRules>, DbErr> {
        {
            let map = self.map.read().unwrap_or_else(|p| p.into_inner());
            if let Some((at, rules)) = map.get(tenant) {
                if at.elapsed() < self.ttl {
                    return Ok(rules.clone());
                }
            }
        }
        let rules = Arc::new(load(&self.db, tenant, &self.limits).await?);
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string(), (Instant::now(), rules.clone()));
        Ok(rules)
    }

    /// Forgets the tenant's set (after a change made here).
    pub fn invalidate(&self, tenant: &str) {
        self.map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(tenant);
    }
}
