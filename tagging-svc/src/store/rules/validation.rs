//! Validation of a rule document on write: the condition language's errors with the node at
//! fault, the tags it names looked up in the tenant's catalogue (`unknown_tag`), and the rule's
//! own fields.

use std::collections::BTreeSet;

use rules::{Expanded, Limits, ValidationError};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::Serialize;
use serde_json::Value;

use crate::store::entities::tag;

use super::set::{docs, parse_stored, Docs};
use super::stored::RuleInput;
use super::Mode;

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

pub(super) fn check_input(i: &RuleInput) -> Result<Mode, RuleError> {
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
