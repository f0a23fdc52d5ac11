//! Rule references: `{"type": "rule", "rule_id": "…"}` is replaced by the referenced rule's
//! condition (recursively) before anything is evaluated or compiled. The result, [`Expanded`], is
//! the only thing the evaluator and the SQL compiler accept: validated against the limits, free of
//! rule references and of source sugar (rewritten to property predicates).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use proto::condition::{Condition, Operand};

use crate::check::{Checker, Limits};
use crate::error::{dedup, index, join, ErrorCode, ValidationError};

/// Where rule references are resolved: the current condition of a rule, `None` when there is no
/// such rule.
pub trait RuleLookup {
    /// The condition of rule `rule_id`.
    fn condition(&self, rule_id: &str) -> Option<Condition>;
}

/// No rules at all: every reference is unknown.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoRules;

impl RuleLookup for NoRules {
    fn condition(&self, _rule_id: &str) -> Option<Condition> {
        None
    }
}

impl RuleLookup for HashMap<String, Condition> {
    fn condition(&self, rule_id: &str) -> Option<Condition> {
        self.get(rule_id).cloned()
    }
}

impl RuleLookup for BTreeMap<String, Condition> {
    fn condition(&self, rule_id: &str) -> Option<Condition> {
        self.get(rule_id).cloned()
    }
}

impl<T: RuleLookup + ?Sized> RuleLookup for &T {
    fn condition(&self, rule_id: &str) -> Option<Condition> {
        (**self).condition(rule_id)
    }
}

/// A validated condition with rule references expanded: what [`crate::evaluate`],
/// [`crate::sql::compile`] and [`crate::next_expiry`] take.
#[derive(Debug, Clone, PartialEq)]
pub struct Expanded {
    root: Condition,
    rule_refs: BTreeSet<String>,
}

impl Expanded {
    /// The expanded tree: only `and`, `or`, `not`, property, behaviour, tag and wechat nodes.
    pub fn root(&self) -> &Condition {
        &self.root
    }

    /// Every rule referenced, directly or through other rules.
    pub fn rule_refs(&self) -> &BTreeSet<String> {
        &self.rule_refs
    }

    /// The expanded tree, owned.
    pub fn into_condition(self) -> Condition {
        self.root
    }
}

/// Validates `condition` and expands its rule references through `rules`.
pub fn expand(
    condition: &Condition,
    limits: &Limits,
    rules: &dyn RuleLookup,
) -> Result<Expanded, Vec<ValidationError>> {
    expand_refs(condition, "root", limits, rules, None)
}

/// [`expand`] with errors under `path`; `self_id` is the rule the condition belongs to (a
/// reference back to it is a cycle).
pub(crate) fn expand_refs(
    condition: &Condition,
    path: &str,
    limits: &Limits,
    rules: &dyn RuleLookup,
    self_id: Option<&str>,
) -> Result<Expanded, Vec<ValidationError>> {
    let mut x = Expander {
        check: Checker::new(limits),
        rules,
        root_path: path.to_string(),
        nodes: 0,
        values: 0,
        refs: BTreeSet::new(),
        stack: self_id.map(str::to_string).into_iter().collect(),
    };
    let root = x.node(condition, path, 1);
    match root {
        Some(root) if x.check.errors.is_empty() => Ok(Expanded {
            root,
            rule_refs: x.refs,
        }),
        _ => Err(dedup(x.check.errors)),
    }
}

struct Expander<'a> {
    check: Checker<'a>,
    rules: &'a dyn RuleLookup,
    root_path: String,
    nodes: usize,
    values: usize,
    refs: BTreeSet<String>,
    stack: Vec<String>,
}

impl Expander<'_> {
    fn node(&mut self, c: &Condition, path: &str, depth: usize) -> Option<Condition> {
        if let Condition::Rule { rule_id } = c {
            return self.rule(rule_id, path, depth);
        }
        let limits = self.check.limits;
        self.nodes += 1;
        if self.nodes > limits.max_nodes {
            if self.nodes == limits.max_nodes + 1 {
                let root = self.root_path.clone();
                self.check.err(
                    root,
                    ErrorCode::TooManyNodes,
                    format!(
                        "must have at most {} nodes after expanding rule references",
                        limits.max_nodes
                    ),
                );
            }
            return None;
        }
        if depth > limits.max_depth {
            self.check.err(
                path,
                ErrorCode::TooDeep,
                format!("must be at most {} levels deep", limits.max_depth),
            );
            return None;
        }
        match c {
            Condition::And { children } | Condition::Or { children } => {
                let cpath = join(path, "children");
                if children.is_empty() {
                    self.check
                        .err(cpath.clone(), ErrorCode::EmptyChildren, "must not be empty");
                }
                let out: Vec<Option<Condition>> = children
                    .iter()
                    .enumerate()
                    .map(|(i, child)| self.node(child, &index(&cpath, i), depth + 1))
                    .collect();
                let children = out.into_iter().collect::<Option<Vec<_>>>()?;
                Some(match c {
                    Condition::And { .. } => Condition::And { children },
                    _ => Condition::Or { children },
                })
            }
            Condition::Not { child } => {
                let child = self.node(child, &join(path, "child"), depth + 1)?;
                Some(Condition::Not {
                    child: Box::new(child),
                })
            }
            Condition::Property(p) => {
                self.values(operand_len(p.value.as_ref()));
                self.check.property(path, p);
                Some(c.clone())
            }
            Condition::Behaviour(b) => {
                let n = b
                    .filters
                    .iter()
                    .map(|f| operand_len(f.value.as_ref()))
                    .sum();
                self.values(n);
                self.check.behaviour(path, b);
                Some(c.clone())
            }
            Condition::Distinct(d) => {
                self.check.distinct(path, d);
                Some(c.clone())
            }
            Condition::Tag(t) => {
                self.values(t.tags.len());
                self.check.tag(path, t);
                Some(c.clone())
            }
            Condition::Wechat(w) => {
                self.check.wechat(path, w);
                Some(c.clone())
            }
            Condition::Source(s) => {
                self.values(operand_len(s.value.as_ref()));
                self.check.source(path, s);
                Some(Condition::Property(s.to_property()))
            }
            Condition::Rule { .. } => None,
        }
    }

    /// Counts literal values (each one a bound parameter of the compiled SQL).
    fn values(&mut self, n: usize) {
        let max = self.check.limits.max_values;
        let before = self.values;
        self.values = self.values.saturating_add(n);
        if before <= max && self.values > max {
            let root = self.root_path.clone();
            self.check.err(
                root,
                ErrorCode::TooManyValues,
                format!("must have at most {max} values in all, after expanding rule references"),
            );
        }
    }

    fn rule(&mut self, rule_id: &str, path: &str, depth: usize) -> Option<Condition> {
        let before = self.check.errors.len();
        self.check.rule_id(path, rule_id);
        if self.check.errors.len() > before {
            return None;
        }
        if let Some(pos) = self.stack.iter().position(|s| s == rule_id) {
            let cycle = self.stack[pos..].join(" -> ");
            self.check.err(
                path,
                ErrorCode::RuleCycle,
                format!("rule cycle: {cycle} -> {rule_id}"),
            );
            return None;
        }
        let Some(condition) = self.rules.condition(rule_id) else {
            self.check.err(
                path,
                ErrorCode::UnknownRule,
                format!("rule `{rule_id}` does not exist"),
            );
            return None;
        };
        self.refs.insert(rule_id.to_string());
        self.stack.push(rule_id.to_string());
        let out = self.node(&condition, &format!("{path}@{rule_id}"), depth);
        self.stack.pop();
        out
    }
}

/// Literal values of an operand.
fn operand_len(o: Option<&Operand>) -> usize {
    match o {
        None => 0,
        Some(Operand::One(_)) => 1,
        Some(Operand::List(items)) => items.len(),
    }
}
