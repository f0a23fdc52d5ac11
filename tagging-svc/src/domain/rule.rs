//! A rule as evaluation needs it ([`RuleEntry`], with how it sets its tag: [`Mode`]), the tag it
//! sets as settling needs it ([`Tag`]), and what settling asks of the tenant's rule set
//! ([`RuleSet`]: the tags, the rules reading a tag).

use std::collections::BTreeSet;
use std::sync::Arc;

use rules::{Dependencies, Expanded};
use serde::Serialize;

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

impl RuleEntry {
    /// Its result may change with time alone (a window, a date relative to today, a decaying
    /// score): it is looked at again when it may.
    pub fn timed(&self) -> bool {
        self.deps.time_driven()
    }
}

/// A tag as membership changes need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tag {
    pub id: String,
    pub group: String,
    /// Its group is single-select: gaining it drops the group's other tags.
    pub single: bool,
    /// Not retired: it can be given.
    pub active: bool,
}

/// The tenant's rule set as settling reads it.
pub trait RuleSet {
    /// The tag `id`, as loaded with the rules.
    fn tag(&self, id: &str) -> Option<Tag>;
    /// Live rules reading any of `tags` (chained rules).
    fn reading_tags(&self, tags: &BTreeSet<String>) -> Vec<Arc<RuleEntry>>;
}
