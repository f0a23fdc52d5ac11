//! Tag rules: stored documents, validated on write (errors point at the node; a tag the tenant's
//! catalogue does not hold is `unknown_tag` at its node, see [`check`]), and the tenant's rule
//! set in memory — each rule expanded (references inlined) with what it depends on, so an
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
    IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::Serialize;
use serde_json::Value;

use super::catalog::ACTIVE;
use super::entities::{rule, tag, tag_group};
use super::members::TagInfo;

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

/// A tenant's rules, with the tags they set (and their groups) as of the load.
#[derive(Debug, Clone, Default)]
pub struct TenantRules {
    pub entries: Vec<Arc<RuleEntry>>,
    pub tags: HashMap<String, TagInfo>,
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
    Ok(TenantRules { entries, tags })
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

/// The `code` of a condition naming a tag the tenant does not have.
pub const UNKNOWN_TAG: &str = "unknown_tag";

/// One problem in a condition: the language's ([`ValidationError`]) or the catalogue's (a tag
/// that does not exist in the tenant, [`UNKNOWN_TAG`]). Serialised as `{path, code, message}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{path}: {message} ({code})")]
pub struct ConditionError {
    /// The node, e.g. `root.children[1].tags[0]`.
    pub path: String,
    /// A stable code: the language's ([`rules::ErrorCode`]) or `unknown_tag`.
    pub code: &'static str,
    pub message: String,
}

impl From<ValidationError> for ConditionError {
    fn from(e: ValidationError) -> Self {
        ConditionError {
            path: e.path,
            code: e.code.as_str(),
            message: e.message,
        }
    }
}

fn language_errors(errors: Vec<ValidationError>) -> RuleError {
    RuleError::Invalid(errors.into_iter().map(ConditionError::from).collect())
}

/// Why a rule write was refused.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error("the condition is invalid")]
    Invalid(Vec<ConditionError>),
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

/// Validates a condition document of `tenant` in the condition language (as rule `rule_id` when
/// given: references back to it are cycles; references to rules the tenant does not have are
/// `unknown_rule`). Tags are not looked up: [`check`] does that as well.
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
    .map_err(language_errors)?;
    let expanded = rules::expand(&doc.root, limits, &lookup).map_err(language_errors)?;
    Ok((doc, expanded))
}

/// [`validate`], and every tag the document names must be a tag of `tenant` (active or
/// retired): one `unknown_tag` error per tag that is not, at its node
/// (`root.children[1].tags[0]`), reported with the language's errors. (A referenced rule's tags
/// were checked when it was saved; tags are never deleted.)
pub async fn check<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    rule_id: Option<&str>,
    condition: &Value,
    limits: &Limits,
) -> Result<(proto::condition::ConditionDoc, Expanded), RuleError> {
    let validated = validate(conn, tenant, rule_id, condition, limits).await;
    let unknown = unknown_tags(conn, tenant, condition, limits).await?;
    match validated {
        Ok(v) if unknown.is_empty() => Ok(v),
        Ok(_) => Err(RuleError::Invalid(unknown)),
        Err(RuleError::Invalid(mut errors)) => {
            errors.extend(unknown);
            Err(RuleError::Invalid(errors))
        }
        Err(e) => Err(e),
    }
}

/// Tag ids of the tag leaves of `doc` (read as JSON, so that a document with other errors is
/// looked at too), with the path of each: `root.children[1].tags[0]`. At most `max_nodes` nodes
/// and `max_tags` tags per leaf are read (the language refuses more anyway); ids that are not
/// ids at all are the language's `invalid_id`.
fn tag_refs(doc: &Value, limits: &Limits) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut todo: Vec<(String, &Value)> = doc
        .get("root")
        .map(|r| vec![("root".to_string(), r)])
        .unwrap_or_default();
    let mut seen = 0;
    while let Some((path, node)) = todo.pop() {
        seen += 1;
        if seen > limits.max_nodes {
            break;
        }
        match node.get("type").and_then(Value::as_str) {
            Some("and" | "or") => {
                if let Some(children) = node.get("children").and_then(Value::as_array) {
                    // Reversed onto the stack: errors come out in document order.
                    for (i, c) in children.iter().enumerate().rev() {
                        todo.push((format!("{path}.children[{i}]"), c));
                    }
                }
            }
            Some("not") => {
                if let Some(c) = node.get("child") {
                    todo.push((format!("{path}.child"), c));
                }
            }
            Some("tag") => {
                let tags = node.get("tags").and_then(Value::as_array);
                for (i, t) in tags.into_iter().flatten().enumerate().take(limits.max_tags) {
                    if let Some(id) = t
                        .as_str()
                        .filter(|id| rules::valid_id(id, rules::MAX_ID_CHARS))
                    {
                        out.push((format!("{path}.tags[{i}]"), id.to_string()));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The tags `doc` names that `tenant` does not have, as `unknown_tag` errors at their nodes.
pub async fn unknown_tags<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    doc: &Value,
    limits: &Limits,
) -> Result<Vec<ConditionError>, DbErr> {
    let refs = tag_refs(doc, limits);
    let wanted: BTreeSet<&str> = refs.iter().map(|(_, id)| id.as_str()).collect();
    let mut known = BTreeSet::new();
    let wanted: Vec<&str> = wanted.into_iter().collect();
    for chunk in wanted.chunks(500) {
        known.extend(
            tag::Entity::find()
                .filter(tag::Column::TenantId.eq(tenant))
                .filter(tag::Column::Id.is_in(chunk.iter().map(|t| t.to_string())))
                .all(conn)
                .await?
                .into_iter()
                .map(|t| t.id),
        );
    }
    Ok(refs
        .into_iter()
        .filter(|(_, id)| !known.contains(id))
        .map(|(path, id)| ConditionError {
            path,
            code: UNKNOWN_TAG,
            message: format!("no tag `{id}` in this tenant"),
        })
        .collect())
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

/// Creates a rule (validated, see [`check`]) for an existing tag of the tenant.
pub async fn create(
    db: &DatabaseConnection,
    i: RuleInput,
    limits: &Limits,
) -> Result<rule::Model, RuleError> {
    let mode = check_input(&i)?;
    let t = tag::Entity::find_by_id(i.tag_id.clone())
        .filter(tag::Column::TenantId.eq(i.tenant_id.as_str()))
        .one(db)
        .await?;
    if t.is_none() {
        return Err(RuleError::Field {
            field: "tag_id",
            message: format!("no tag `{}` in this tenant", i.tag_id),
        });
    }
    let id = uuid::Uuid::now_v7().to_string();
    let (doc, _) = check(db, &i.tenant_id, Some(&id), &i.condition, limits).await?;
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

/// The live rule `id` of `tenant` (a rule of another tenant is not found, like an unknown id).
pub async fn get<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    id: &str,
) -> Result<rule::Model, RuleError> {
    rule::Entity::find_by_id(id.to_string())
        .filter(rule::Column::TenantId.eq(tenant))
        .one(conn)
        .await?
        .filter(|r| r.deleted_at.is_none())
        .ok_or_else(|| RuleError::NotFound(format!("no tag rule with id `{id}`")))
}

/// Replaces the name, condition, mode and enabled flag of the rule `id` of `i.tenant_id` (the
/// tag stays: `i.tag_id` is not read); a new version.
pub async fn update(
    db: &DatabaseConnection,
    id: &str,
    i: RuleInput,
    limits: &Limits,
) -> Result<rule::Model, RuleError> {
    let mode = check_input(&i)?;
    let row = get(db, &i.tenant_id, id).await?;
    let (doc, _) = check(db, &row.tenant_id, Some(id), &i.condition, limits).await?;
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

/// Marks the rule `id` of `tenant` deleted (kept for the history of the tags it set).
pub async fn delete(
    db: &DatabaseConnection,
    tenant: &str,
    id: &str,
    operator: &str,
) -> Result<rule::Model, RuleError> {
    let row = get(db, tenant, id).await?;
    let mut m = row.into_active_model();
    m.enabled = Set(false);
    m.deleted_at = Set(Some(Utc::now()));
    m.updated_by = Set(operator.to_string());
    Ok(m.update(db).await?)
}

/// The tenant's live rules by id (the order they were created in): at most `limit` after
/// `after`.
pub async fn list<C: ConnectionTrait>(
    conn: &C,
    tenant: &str,
    after: Option<&str>,
    limit: u64,
) -> Result<Vec<RuleView>, DbErr> {
    let mut q = rule::Entity::find()
        .filter(rule::Column::TenantId.eq(tenant))
        .filter(rule::Column::DeletedAt.is_null());
    if let Some(a) = after {
        q = q.filter(rule::Column::Id.gt(a));
    }
    Ok(q.order_by_asc(rule::Column::Id)
        .limit(limit)
        .all(conn)
        .await?
        .into_iter()
        .map(RuleView::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tag_references_are_found_with_the_paths_the_language_uses() {
        let doc = json!({"version": 1, "root": {"type": "and", "children": [
            {"type": "property", "key": "contact.city", "value_type": "string", "op": "eq", "value": "x"},
            {"type": "tag", "op": "has_any", "tags": ["a", "b"]},
            {"type": "not", "child": {"type": "or", "children": [
                {"type": "tag", "op": "has", "tags": ["c"]}]}},
            {"type": "tag", "op": "has", "tags": [" bad "]},
            {"type": "tag", "op": "has", "tags": [7]}]}});
        let refs = tag_refs(&doc, &Limits::default());
        assert_eq!(
            refs,
            [
                ("root.children[1].tags[0]", "a"),
                ("root.children[1].tags[1]", "b"),
                ("root.children[2].child.children[0].tags[0]", "c"),
            ]
            .map(|(p, t)| (p.to_string(), t.to_string()))
        );
        // The language reports its own errors at the same paths (here: a malformed id, and a
        // value that is no id at all), and those are not looked up.
        let errors = rules::parse(&doc, &Limits::default(), &rules::NoRules).unwrap_err();
        for path in ["root.children[3].tags[0]", "root.children[4].tags[0]"] {
            assert!(errors.iter().any(|e| e.path == path), "{path}: {errors:?}");
        }
        // A leaf at the root, and a document that is not one.
        let root = json!({"version": 1, "root": {"type": "tag", "op": "has", "tags": ["z"]}});
        assert_eq!(
            tag_refs(&root, &Limits::default()),
            vec![("root.tags[0]".to_string(), "z".to_string())]
        );
        assert!(tag_refs(&json!([1, 2]), &Limits::default()).is_empty());
    }

    #[test]
    fn the_walk_stops_at_the_node_limit() {
        let leaf = json!({"type": "tag", "op": "has", "tags": ["t"]});
        let doc = json!({"version": 1, "root": {"type": "or", "children": vec![leaf; 500]}});
        let limits = Limits::default();
        // The root and max_nodes - 1 leaves.
        assert_eq!(tag_refs(&doc, &limits).len(), limits.max_nodes - 1);
    }
}
