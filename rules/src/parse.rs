//! Reads a condition document from JSON with errors that point at the node: a walker over the
//! tagged nodes (`type`, `state`, window `type`) and `serde_path_to_error` inside each leaf, then
//! the semantic checks of every leaf and the expansion of rule references. Every error found is
//! reported, not only the first.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use proto::condition::{
    BehaviourLeaf, Condition, ConditionDoc, DistinctLeaf, PropertyPredicate, SourceLeaf, TagLeaf,
    WechatLeaf, Window, CONDITION_VERSION,
};

use crate::check::{Checker, Limits};
use crate::error::{dedup, index, join, ErrorCode, ValidationError};
use crate::expand::{expand_refs, RuleLookup};
use crate::facts::parse_date;

/// Parses and validates a condition document: its JSON shape, every leaf, the limits, and rule
/// references (unknown ids and cycles) through `rules`. Returns the document as written (rule
/// references kept); [`crate::expand`] turns it into what is evaluated and compiled.
pub fn parse(
    doc: &Value,
    limits: &Limits,
    rules: &dyn RuleLookup,
) -> Result<ConditionDoc, Vec<ValidationError>> {
    parse_doc(doc, limits, rules, None)
}

/// [`parse`] for the condition of rule `rule_id` (being created or edited): a reference that
/// leads back to `rule_id` is a cycle even when `rules` still serves its previous condition.
pub fn parse_rule(
    doc: &Value,
    rule_id: &str,
    limits: &Limits,
    rules: &dyn RuleLookup,
) -> Result<ConditionDoc, Vec<ValidationError>> {
    parse_doc(doc, limits, rules, Some(rule_id))
}

fn parse_doc(
    doc: &Value,
    limits: &Limits,
    rules: &dyn RuleLookup,
    self_id: Option<&str>,
) -> Result<ConditionDoc, Vec<ValidationError>> {
    let mut w = Walker {
        check: Checker::new(limits),
        nodes: 0,
        refs: Vec::new(),
    };
    let Some(obj) = doc.as_object() else {
        return Err(vec![ValidationError::new(
            "",
            ErrorCode::Syntax,
            "must be an object {\"version\": 1, \"root\": {...}}",
        )]);
    };
    w.unknown_fields("", obj, &["version", "root"]);
    match obj.get("version") {
        None => w
            .check
            .err("version", ErrorCode::Syntax, "missing field `version`"),
        Some(v) if v.as_u64() == Some(u64::from(CONDITION_VERSION)) => {}
        Some(_) => w.check.err(
            "version",
            ErrorCode::UnsupportedVersion,
            format!("must be {CONDITION_VERSION}"),
        ),
    }
    let root = match obj.get("root") {
        None => {
            w.check
                .err("root", ErrorCode::Syntax, "missing field `root`");
            None
        }
        Some(v) => w.node(v, "root", 1),
    };
    let mut errors = w.check.errors;
    match &root {
        Some(root) => {
            if let Err(more) = expand_refs(root, "root", limits, rules, self_id) {
                errors.extend(more);
            }
        }
        // Part of the tree did not parse: still check the references that did.
        None => {
            for (path, rule_id) in w.refs {
                let r = Condition::Rule { rule_id };
                if let Err(more) = expand_refs(&r, &path, limits, rules, self_id) {
                    errors.extend(more);
                }
            }
        }
    }
    match root {
        Some(root) if errors.is_empty() => Ok(ConditionDoc {
            version: CONDITION_VERSION,
            root,
        }),
        _ => Err(dedup(errors)),
    }
}

struct Walker<'a> {
    check: Checker<'a>,
    nodes: usize,
    /// Rule references read: (path, rule id).
    refs: Vec<(String, String)>,
}

const NODE_TYPES: &str = "and, or, not, property, behaviour, distinct, tag, wechat, source, rule";

impl Walker<'_> {
    fn node(&mut self, v: &Value, path: &str, depth: usize) -> Option<Condition> {
        self.nodes += 1;
        let max_nodes = self.check.limits.max_nodes;
        if self.nodes > max_nodes {
            // Stop reading: the document is too big whatever else is wrong with it.
            if self.nodes == max_nodes + 1 {
                self.check.err(
                    "root",
                    ErrorCode::TooManyNodes,
                    format!("must have at most {max_nodes} nodes"),
                );
            }
            return None;
        }
        if depth > self.check.limits.max_depth {
            self.check.err(
                path,
                ErrorCode::TooDeep,
                format!(
                    "must be at most {} levels deep",
                    self.check.limits.max_depth
                ),
            );
            return None;
        }
        let (kind, obj) = self.tagged(v, path, "type")?;
        match kind {
            "and" | "or" => {
                self.unknown_fields(path, obj, &["type", "children"]);
                let cpath = join(path, "children");
                let Some(items) = obj.get("children").and_then(Value::as_array) else {
                    self.check
                        .err(cpath, ErrorCode::Syntax, "must be a list of nodes");
                    return None;
                };
                if items.is_empty() {
                    self.check
                        .err(cpath.clone(), ErrorCode::EmptyChildren, "must not be empty");
                }
                let children: Vec<Option<Condition>> = items
                    .iter()
                    .enumerate()
                    .map(|(i, c)| self.node(c, &index(&cpath, i), depth + 1))
                    .collect();
                let children: Option<Vec<Condition>> = children.into_iter().collect();
                let children = children?;
                Some(if kind == "and" {
                    Condition::And { children }
                } else {
                    Condition::Or { children }
                })
            }
            "not" => {
                self.unknown_fields(path, obj, &["type", "child"]);
                let Some(child) = obj.get("child") else {
                    self.check
                        .err(path, ErrorCode::Syntax, "missing field `child`");
                    return None;
                };
                let child = self.node(child, &join(path, "child"), depth + 1)?;
                Some(Condition::Not {
                    child: Box::new(child),
                })
            }
            "property" => {
                let p: PropertyPredicate = self.leaf(path, without(obj, &["type"]))?;
                self.check.property(path, &p);
                Some(Condition::Property(p))
            }
            "behaviour" => {
                let window = obj
                    .get("window")
                    .map(|w| self.window(w, &join(path, "window")));
                let mut b: BehaviourLeaf = self.leaf(path, without(obj, &["type", "window"]))?;
                if let Some(w) = window {
                    b.window = w?;
                }
                self.check.behaviour(path, &b);
                Some(Condition::Behaviour(b))
            }
            "distinct" => {
                let window = obj
                    .get("window")
                    .map(|w| self.window(w, &join(path, "window")));
                let mut d: DistinctLeaf = self.leaf(path, without(obj, &["type", "window"]))?;
                if let Some(w) = window {
                    d.window = w?;
                }
                self.check.distinct(path, &d);
                Some(Condition::Distinct(d))
            }
            "tag" => {
                let t: TagLeaf = self.leaf(path, without(obj, &["type"]))?;
                self.check.tag(path, &t);
                Some(Condition::Tag(t))
            }
            "wechat" => {
                let w = self.wechat(path, obj)?;
                self.check.wechat(path, &w);
                Some(Condition::Wechat(w))
            }
            "source" => {
                let s: SourceLeaf = self.leaf(path, without(obj, &["type"]))?;
                self.check.source(path, &s);
                Some(Condition::Source(s))
            }
            "rule" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct RuleRef {
                    rule_id: String,
                }
                let r: RuleRef = self.leaf(path, without(obj, &["type"]))?;
                self.check.rule_id(path, &r.rule_id);
                self.refs.push((path.to_string(), r.rule_id.clone()));
                Some(Condition::Rule { rule_id: r.rule_id })
            }
            other => {
                self.check.err(
                    join(path, "type"),
                    ErrorCode::Syntax,
                    format!("unknown node type `{other}`, expected one of {NODE_TYPES}"),
                );
                None
            }
        }
    }

    /// The object at `path` and its string field `tag`.
    fn tagged<'v>(
        &mut self,
        v: &'v Value,
        path: &str,
        tag: &str,
    ) -> Option<(&'v str, &'v Map<String, Value>)> {
        let Some(obj) = v.as_object() else {
            self.check.err(
                path,
                ErrorCode::Syntax,
                format!("must be an object with a \"{tag}\""),
            );
            return None;
        };
        match obj.get(tag).and_then(Value::as_str) {
            Some(kind) => Some((kind, obj)),
            None => {
                self.check.err(
                    join(path, tag),
                    ErrorCode::Syntax,
                    format!("missing or not a string: `{tag}`"),
                );
                None
            }
        }
    }

    fn unknown_fields(&mut self, path: &str, obj: &Map<String, Value>, known: &[&str]) {
        for key in obj.keys().filter(|k| !known.contains(&k.as_str())) {
            self.check.err(
                join(path, key),
                ErrorCode::Syntax,
                format!(
                    "unknown field `{key}`, expected one of {}",
                    known.join(", ")
                ),
            );
        }
    }

    /// Deserializes a leaf body, reporting a serde error at its exact path.
    fn leaf<T: DeserializeOwned>(&mut self, path: &str, body: Value) -> Option<T> {
        match serde_path_to_error::deserialize::<_, T>(body) {
            Ok(t) => Some(t),
            Err(e) => {
                let inner = e.path().to_string();
                let at = if inner.is_empty() || inner == "." {
                    path.to_string()
                } else {
                    join(path, &inner)
                };
                let message = friendly(&e.inner().to_string(), &inner);
                self.check.err(at, ErrorCode::Syntax, message);
                None
            }
        }
    }

    fn window(&mut self, v: &Value, path: &str) -> Option<Window> {
        let (kind, obj) = self.tagged(v, path, "type")?;
        match kind {
            "last" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Last {
                    days: u32,
                }
                let l: Last = self.leaf(path, without(obj, &["type"]))?;
                Some(Window::Last { days: l.days })
            }
            "range" => {
                self.unknown_fields(path, obj, &["type", "from", "to"]);
                let mut day = |field: &str| {
                    let p = join(path, field);
                    match obj.get(field) {
                        None => {
                            self.check.err(
                                path,
                                ErrorCode::Syntax,
                                format!("missing field `{field}`"),
                            );
                            None
                        }
                        Some(v) => {
                            let d = v.as_str().and_then(parse_date);
                            if d.is_none() {
                                self.check.err(
                                    p,
                                    ErrorCode::InvalidDate,
                                    "must be a date YYYY-MM-DD",
                                );
                            }
                            d
                        }
                    }
                };
                let (from, to) = (day("from"), day("to"));
                Some(Window::Range {
                    from: from?,
                    to: to?,
                })
            }
            "all_time" => {
                self.unknown_fields(path, obj, &["type"]);
                Some(Window::AllTime)
            }
            other => {
                self.check.err(
                    join(path, "type"),
                    ErrorCode::Syntax,
                    format!("unknown window type `{other}`, expected one of last, range, all_time"),
                );
                None
            }
        }
    }

    fn wechat(&mut self, path: &str, obj: &Map<String, Value>) -> Option<WechatLeaf> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Oa {
            app_id: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Follow {
            corp_id: Option<String>,
            user_id: Option<String>,
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Group {
            corp_id: Option<String>,
            chat_id: Option<String>,
        }
        let Some(state) = obj.get("state").and_then(Value::as_str) else {
            self.check.err(
                join(path, "state"),
                ErrorCode::Syntax,
                "missing or not a string: `state`",
            );
            return None;
        };
        let body = without(obj, &["type", "state"]);
        match state {
            "oa_subscribed" => {
                let o: Oa = self.leaf(path, body)?;
                Some(WechatLeaf::OaSubscribed { app_id: o.app_id })
            }
            "wecom_followed" => {
                let f: Follow = self.leaf(path, body)?;
                Some(WechatLeaf::WecomFollowed {
                    corp_id: f.corp_id,
                    user_id: f.user_id,
                })
            }
            "in_group_chat" => {
                let g: Group = self.leaf(path, body)?;
                Some(WechatLeaf::InGroupChat {
                    corp_id: g.corp_id,
                    chat_id: g.chat_id,
                })
            }
            other => {
                self.check.err(
                    join(path, "state"),
                    ErrorCode::Syntax,
                    format!(
                        "unknown state `{other}`, expected one of oa_subscribed, \
                         wecom_followed, in_group_chat"
                    ),
                );
                None
            }
        }
    }
}

/// A copy of `obj` without `fields`.
fn without(obj: &Map<String, Value>, fields: &[&str]) -> Value {
    Value::Object(
        obj.iter()
            .filter(|(k, _)| !fields.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    )
}

/// Serde's message, with the untagged-enum ones said in the language's terms.
fn friendly(message: &str, path: &str) -> String {
    if !message.starts_with("data did not match any variant") {
        return message.to_string();
    }
    if path.ends_with("count.value") {
        "must be a count (a non-negative integer) or [lo, hi]".to_string()
    } else {
        "must be a string, number, bool, {\"days_ago\": N} or a list of them".to_string()
    }
}
