//! Tag rules: stored documents, validated on write (errors point at the node), and the tenant's
//! rule set in memory — each rule expanded (references inlined) with what it depends on, so an
//! event only evaluates the rules it can change (the reverse index).
//!
//! The in-memory set is reloaded when this process changes a rule and at most `ttl` after
//! another process did.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::Utc;
use proto::condition::Condition;
use rules::{Dependencies, Expanded, Limits, RuleLookup, ValidationError};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    IntoActiveModel, QueryFilter, QueryOrder, Set,
};
use serde::Serialize;
use serde_json::Value;

use super::catalog::ACTIVE;
use super::entities::{rule, tag};

/// How a rule sets its tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Adds the tag when the condition holds; never removes it.
    AddOnly,
    /// Keeps the tag equal to the condition: adds and removes.
    AddRemove,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::AddOnly => "add_only",
            Mode::AddRemove => "add_remove",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Mode::AddOnly, Mode::AddRemove]
            .into_iter()
            .find(|m| m.as_str() == s)
    }
}

/// One rule as evaluation needs it.
#[derive(Debug, Clone)]
pub struct RuleEntry {
    pub id: String,
    pub tag_id: String,
    pub mode: Mode,
    /// Enabled, its tag active and its condition valid (a referenced rule may have gone).
    pub live: bool,
    pub expanded: Option<Expanded>,
    pub deps: Dependencies,
    pub version: i64,
}

/// What may have changed for a profile.
#[derive(Debug, Clone)]
pub enum Trigger {
    /// A behaviour event of this kind, on content with these tags.
    Event {
        kind: String,
        content_tags: Vec<String>,
    },
    /// Properties and / or relationship state.
    State { keys: Vec<String>, relations: bool },
    /// These tags were added or removed.
    Tags(BTreeSet<String>),
    /// These rules only (window exits, a rule's own backfill).
    Rules(BTreeSet<String>),
    /// Anything (a new or merged profile).
    All,
}

/// A tenant's rules.
#[derive(Debug, Clone, Default)]
pub struct TenantRules {
    pub entries: Vec<Arc<RuleEntry>>,
}

impl TenantRules {
    /// The live rules `trigger` can change the result of.
    pub fn candidates(&self, trigger: &Trigger) -> Vec<Arc<RuleEntry>> {
        self.entries
            .iter()
            .filter(|e| e.live)
            .filter(|e| match trigger {
                Trigger::Event { kind, content_tags } => {
                    let tags: Vec<&str> = content_tags.iter().map(String::as_str).collect();
                    e.deps.event_may_affect(kind, &tags)
                }
                Trigger::State { keys, relations } => {
                    (*relations && e.deps.relations)
                        || e.deps
                            .properties_may_affect(keys.iter().map(String::as_str))
                }
                Trigger::Tags(t) => e.deps.tags.iter().any(|x| t.contains(x)),
                Trigger::Rules(ids) => ids.contains(&e.id),
                Trigger::All => true,
            })
            .cloned()
            .collect()
    }

    /// Live rules reading any of `tags` (chained rules).
    pub fn reading_tags(&self, tags: &BTreeSet<String>) -> Vec<Arc<RuleEntry>> {
        self.candidates(&Trigger::Tags(tags.clone()))
    }
}

/// Conditions of stored rules by id, for reference expansion.
struct Docs(BTreeMap<String, Condition>);

impl RuleLookup for Docs {
    fn condition(&self, rule_id: &str) -> Option<Condition> {
        self.0.get(rule_id).cloned()
    }
}

fn parse_stored(s: &str) -> Option<Condition> {
    serde_json::from_str::<proto::condition::ConditionDoc>(s)
        .ok()
        .map(|d| d.root)
}

async fn docs<C: ConnectionTrait>(conn: &C, tenant: &str) -> Result<Vec<rule::Model>, DbErr> {
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
    let active: BTreeSet<String> = tag::Entity::find()
        .filter(tag::Column::TenantId.eq(tenant))
        .filter(tag::Column::Status.eq(ACTIVE))
        .all(conn)
        .await?
        .into_iter()
        .map(|t| t.id)
        .collect();
    let mut entries = Vec::new();
    for r in rows {
        let expanded = lookup
            .0
            .get(&r.id)
            .and_then(|c| rules::expand(c, limits, &lookup).ok());
        if expanded.is_none() {
            metrics::counter!("scrm_tagging_rules_invalid_total").increment(1);
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
    Ok(TenantRules { entries })
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

/// Why a rule write was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("the condition is invalid")]
    Invalid(Vec<ValidationError>),
    #[error("`{field}`: {message}")]
    Field {
        field: &'static str,
        message: String,
    },
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// A rule as written by an operator.
#[derive(Debug, Clone)]
pub struct RuleInput {
    pub tenant_id: String,
    pub tag_id: String,
    pub name: String,
    pub condition: Value,
    pub mode: String,
    pub enabled: bool,
    pub operator: String,
}

/// A rule as the API shows it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleView {
    pub id: String,
    pub tenant_id: String,
    pub tag_id: String,
    pub name: String,
    pub condition: Value,
    pub mode: String,
    pub enabled: bool,
    pub version: i64,
    pub updated_by: String,
    pub updated_at: chrono::DateTime<Utc>,
}

impl From<rule::Model> for RuleView {
    fn from(r: rule::Model) -> Self {
        RuleView {
            condition: serde_json::from_str(&r.condition).unwrap_or(Value::Null),
            id: r.id,
            tenant_id: r.tenant_id,
            tag_id: r.tag_id,
            name: r.name,
            mode: r.mode,
            enabled: r.enabled,
            version: r.version,
            updated_by: r.updated_by,
            updated_at: r.updated_at,
        }
    }
}

/// Validates a condition document of `tenant` (as rule `rule_id` when given: references back
/// to it are cycles).
pub async fn validate<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    rule_id: Option<&str>,
    condition: &Value,
    limits: &Limits,
) -> Result<(proto::condition::ConditionDoc, Expanded), RuleError> {
    let rows = docs(conn, tenant).await?;
    let lookup = Docs(
        rows.iter()
            .filter_map(|r| Some((r.id.clone(), parse_stored(&r.condition)?)))
            .collect(),
    );
    let doc = match rule_id {
        Some(id) => rules::parse_rule(condition, id, limits, &lookup),
        None => rules::parse(condition, limits, &lookup),
    }
    .map_err(RuleError::Invalid)?;
    let expanded = rules::expand(&doc.root, limits, &lookup).map_err(RuleError::Invalid)?;
    Ok((doc, expanded))
}

fn check_input(i: &RuleInput) -> Result<Mode, RuleError> {
    if i.name.trim().is_empty() || i.name.chars().count() > 128 {
        return Err(RuleError::Field {
            field: "name",
            message: "must be 1..=128 characters".into(),
        });
    }
    Mode::parse(&i.mode).ok_or(RuleError::Field {
        field: "mode",
        message: "must be `add_only` or `add_remove`".into(),
    })
}

/// Creates a rule (validated) for an existing tag of the tenant.
pub async fn create(
    db: &DatabaseConnection,
    i: RuleInput,
    limits: &Limits,
) -> Result<rule::Model, RuleError> {
    let mode = check_input(&i)?;
    let t = tag::Entity::find_by_id(i.tag_id.clone()).one(db).await?;
    if t.is_none_or(|t| t.tenant_id != i.tenant_id) {
        return Err(RuleError::Field {
            field: "tag_id",
            message: format!("no tag `{}` in this tenant", i.tag_id),
        });
    }
    let id = uuid::Uuid::now_v7().to_string();
    let (doc, _) = validate(db, &i.tenant_id, Some(&id), &i.condition, limits).await?;
    let now = Utc::now();
    let m = rule::ActiveModel {
        id: Set(id),
        tenant_id: Set(i.tenant_id),
        tag_id: Set(i.tag_id),
        name: Set(i.name.trim().to_string()),
        condition: Set(serde_json::to_string(&doc).unwrap_or_default()),
        mode: Set(mode.as_str().to_string()),
        enabled: Set(i.enabled),
        version: Set(1),
        created_by: Set(i.operator.clone()),
        updated_by: Set(i.operator),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    };
    Ok(m.insert(db).await?)
}

/// A live rule of any tenant.
pub async fn get<C: ConnectionTrait>(conn: &C, id: &str) -> Result<rule::Model, RuleError> {
    rule::Entity::find_by_id(id.to_string())
        .one(conn)
        .await?
        .filter(|r| r.deleted_at.is_none())
        .ok_or_else(|| RuleError::NotFound(format!("no tag rule with id `{id}`")))
}

/// Replaces a rule's name, condition, mode and enabled flag (the tag stays); a new version.
pub async fn update(
    db: &DatabaseConnection,
    id: &str,
    i: RuleInput,
    limits: &Limits,
) -> Result<rule::Model, RuleError> {
    let mode = check_input(&i)?;
    let row = get(db, id).await?;
    let (doc, _) = validate(db, &row.tenant_id, Some(id), &i.condition, limits).await?;
    let version = row.version + 1;
    let mut m = row.into_active_model();
    m.name = Set(i.name.trim().to_string());
    m.condition = Set(serde_json::to_string(&doc).unwrap_or_default());
    m.mode = Set(mode.as_str().to_string());
    m.enabled = Set(i.enabled);
    m.version = Set(version);
    m.updated_by = Set(i.operator);
    m.updated_at = Set(Utc::now());
    Ok(m.update(db).await?)
}

/// Marks a rule deleted (kept for the history of the tags it set).
pub async fn delete(
    db: &DatabaseConnection,
    id: &str,
    operator: &str,
) -> Result<rule::Model, RuleError> {
    let row = get(db, id).await?;
    let mut m = row.into_active_model();
    m.enabled = Set(false);
    m.deleted_at = Set(Some(Utc::now()));
    m.updated_by = Set(operator.to_string());
    Ok(m.update(db).await?)
}

/// The tenant's live rules.
pub async fn list<C: ConnectionTrait>(conn: &C, tenant: &str) -> Result<Vec<RuleView>, DbErr> {
    Ok(docs(conn, tenant)
        .await?
        .into_iter()
        .map(RuleView::from)
        .collect())
}
