//! Tag rules: stored documents, validated on write (errors point at the node; a tag the tenant's
//! catalogue does not hold is `unknown_tag` at its node, see [`check`]), and the tenant's rule
//! set in memory — each rule expanded (references inlined) with what it depends on, so an
//! event only evaluates the rules it can change (the reverse index).
//!
//! The in-memory set is reloaded when this process changes a rule and at most `ttl` after
//! another process did.
//!
//! Here: what a rule set holds (each rule a [`RuleEntry`] of the domain, which settling reads
//! through [`RuleSet`]). `set` loads and caches a tenant's rule set, `validation` checks
//! documents and the tags they name, `stored` creates, reads, changes and lists rules.

mod set;
mod stored;
mod validation;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use super::catalog::{ACTIVE, SINGLE};
use super::members::TagInfo;
use crate::domain::{RuleSet, Tag};

pub use set::{load, RuleCache};
pub use stored::{create, delete, get, list, update, RuleInput, RuleView};
pub use validation::{check, unknown_tags, validate, ConditionError, RuleError, UNKNOWN_TAG};

pub use crate::domain::{Mode, RuleEntry};

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

/// A tenant's rules, with the tags they set (and their groups) as of the load, and its active
/// real-time saved segments: each evaluated as an `add_remove` rule whose membership is the
/// segment's own (`saved_segment_members`), not a tag (its `tag_id` is empty).
#[derive(Debug, Clone, Default)]
pub struct TenantRules {
    pub entries: Vec<Arc<RuleEntry>>,
    pub tags: HashMap<String, TagInfo>,
    pub segments: Vec<Arc<RuleEntry>>,
}

/// The live entries `trigger` can change the result of.
fn affected(entries: &[Arc<RuleEntry>], trigger: &Trigger) -> Vec<Arc<RuleEntry>> {
    entries
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

impl TenantRules {
    /// The live rules `trigger` can change the result of.
    pub fn candidates(&self, trigger: &Trigger) -> Vec<Arc<RuleEntry>> {
        affected(&self.entries, trigger)
    }

    /// Live rules reading any of `tags` (chained rules).
    pub fn reading_tags(&self, tags: &BTreeSet<String>) -> Vec<Arc<RuleEntry>> {
        self.candidates(&Trigger::Tags(tags.clone()))
    }

    /// The real-time segments `trigger`, or settling's changes of `tags`, can change the
    /// membership of (each once, in load order).
    pub fn segment_candidates(
        &self,
        trigger: &Trigger,
        tags: &BTreeSet<String>,
    ) -> Vec<Arc<RuleEntry>> {
        let mut out = affected(&self.segments, trigger);
        if !tags.is_empty() {
            for e in affected(&self.segments, &Trigger::Tags(tags.clone())) {
                if !out.iter().any(|o| o.id == e.id) {
                    out.push(e);
                }
            }
        }
        out
    }
}

impl RuleSet for TenantRules {
    fn tag(&self, id: &str) -> Option<Tag> {
        self.tags.get(id).map(|i| Tag {
            id: i.tag.id.clone(),
            group: i.group.id.clone(),
            single: i.group.selection == SINGLE,
            active: i.tag.status == ACTIVE,
        })
    }

    fn reading_tags(&self, tags: &BTreeSet<String>) -> Vec<Arc<RuleEntry>> {
        TenantRules::reading_tags(self, tags)
    }
}
