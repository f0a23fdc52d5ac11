//! What a condition depends on, for tagging-svc's reverse index: an event of kind K can only change
//! rules that depend on K or on a content tag it carries; a property change only rules that read
//! that key; and so on.

use std::collections::BTreeSet;

use proto::condition::{Condition, DistinctOf, Literal, Operand, PropertyPredicate, Window};

use crate::expand::Expanded;
use crate::score::score_model;

/// The facts a condition reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dependencies {
    /// Event kinds counted by behaviour leaves.
    pub event_kinds: BTreeSet<String>,
    /// Counts distinct event kinds, or property values of events of any kind: every event may
    /// change the result, and every metric / kind must be read.
    pub any_event: bool,
    /// Counts distinct content tags: every event on tagged content may change the result.
    pub any_content_tag: bool,
    /// Content tags counted by behaviour leaves.
    pub content_tags: BTreeSet<String>,
    /// Profile property keys (source leaves included, as `source.<touch>.<field>`).
    pub property_keys: BTreeSet<String>,
    /// Event property keys read by behaviour filters.
    pub event_property_keys: BTreeSet<String>,
    /// Tag ids.
    pub tags: BTreeSet<String>,
    /// Reads WeChat relationship state.
    pub relations: bool,
    /// Has a `last N days` window: its result can change as days pass (see
    /// [`crate::next_expiry`]).
    pub windowed: bool,
    /// Compares with `{"days_ago": N}`: its result can change as time passes.
    pub time_relative: bool,
    /// Reads a lead score (`score.<model>`), which decay may carry across a bound.
    pub reads_scores: bool,
    /// Rules referenced (for an [`Expanded`] condition: every rule its expansion went through).
    pub rule_refs: BTreeSet<String>,
}

impl Dependencies {
    /// Adds everything `other` depends on.
    pub fn merge(&mut self, other: Dependencies) {
        self.event_kinds.extend(other.event_kinds);
        self.any_event |= other.any_event;
        self.any_content_tag |= other.any_content_tag;
        self.content_tags.extend(other.content_tags);
        self.property_keys.extend(other.property_keys);
        self.event_property_keys.extend(other.event_property_keys);
        self.tags.extend(other.tags);
        self.relations |= other.relations;
        self.windowed |= other.windowed;
        self.time_relative |= other.time_relative;
        self.reads_scores |= other.reads_scores;
        self.rule_refs.extend(other.rule_refs);
    }

    /// Can an event of `kind` on content with `content_tags` change the result?
    pub fn event_may_affect(&self, kind: &str, content_tags: &[&str]) -> bool {
        self.any_event
            || self.event_kinds.contains(kind)
            || (self.any_content_tag && !content_tags.is_empty())
            || content_tags.iter().any(|t| self.content_tags.contains(*t))
    }

    /// Can a change of these property keys change the result?
    pub fn properties_may_affect<'a>(&self, keys: impl IntoIterator<Item = &'a str>) -> bool {
        keys.into_iter().any(|k| self.property_keys.contains(k))
    }

    /// Does the result depend on the passing of time (needs [`crate::next_expiry`])?
    pub fn time_driven(&self) -> bool {
        self.windowed || self.time_relative || self.reads_scores
    }
}

/// Dependency analysis on condition trees.
pub trait ConditionExt {
    /// What the condition reads (rule references listed, not followed).
    fn dependencies(&self) -> Dependencies;
}

impl ConditionExt for Condition {
    fn dependencies(&self) -> Dependencies {
        let mut d = Dependencies::default();
        collect(self, &mut d);
        d
    }
}

impl Expanded {
    /// What the expanded condition reads, with every rule its expansion went through.
    pub fn dependencies(&self) -> Dependencies {
        let mut d = self.root().dependencies();
        d.rule_refs.extend(self.rule_refs().iter().cloned());
        d
    }
}

fn relative(p: &PropertyPredicate) -> bool {
    let lits: Vec<&Literal> = match &p.value {
        Some(Operand::One(l)) => vec![l],
        Some(Operand::List(ls)) => ls.iter().collect(),
        None => Vec::new(),
    };
    lits.iter().any(|l| matches!(l, Literal::Relative(_)))
}

fn collect(c: &Condition, d: &mut Dependencies) {
    match c {
        Condition::And { children } | Condition::Or { children } => {
            children.iter().for_each(|c| collect(c, d))
        }
        Condition::Not { child } => collect(child, d),
        Condition::Property(p) => {
            d.property_keys.insert(p.key.clone());
            d.time_relative |= relative(p);
            d.reads_scores |= score_model(&p.key).is_some();
        }
        Condition::Source(s) => {
            d.property_keys.insert(s.key());
        }
        Condition::Behaviour(b) => {
            d.event_kinds.extend(b.event.iter().cloned());
            d.content_tags.extend(b.content_tag.iter().cloned());
            for f in &b.filters {
                d.event_property_keys.insert(f.key.clone());
                d.time_relative |= relative(f);
            }
            d.windowed |= matches!(b.window, Window::Last { .. });
        }
        Condition::Distinct(x) => {
            match x.of {
                DistinctOf::ContentTags => d.any_content_tag = true,
                DistinctOf::EventKinds => d.any_event = true,
                DistinctOf::PropertyValues => {
                    match &x.event {
                        Some(kind) => {
                            d.event_kinds.insert(kind.clone());
                        }
                        None => d.any_event = true,
                    }
                    d.event_property_keys.extend(x.property.iter().cloned());
                }
            }
            d.windowed |= matches!(x.window, Window::Last { .. });
        }
        Condition::Tag(t) => d.tags.extend(t.tags.iter().cloned()),
        Condition::Wechat(_) => d.relations = true,
        Condition::Rule { rule_id } => {
            d.rule_refs.insert(rule_id.clone());
        }
    }
}
