//! Contracts of tagging-svc on the bus: `tag.changed` (a profile gained or lost a tag),
//! `tag.unmerged` (an un-merge applied, with both profiles' tag sets) and the tag commands other
//! services send it (`command.tag.add`, `command.tag.remove`).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::identity::IdentityUnmerged;

/// Routing key of [`TagChanged`].
pub const TAG_CHANGED: &str = TagChanged::TYPE;
/// Routing key of [`TagsUnmerged`].
pub const TAG_UNMERGED: &str = TagsUnmerged::TYPE;
/// Routing key of a [`TagCommand`] that adds a tag.
pub const COMMAND_TAG_ADD: &str = "command.tag.add";
/// Routing key of a [`TagCommand`] that removes a tag.
pub const COMMAND_TAG_REMOVE: &str = "command.tag.remove";

/// Did the profile gain or lose the tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagChange {
    Added,
    Removed,
}

/// Who or what set (or removed) a tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagSource {
    /// An operator or rep, by hand.
    Manual,
    /// A tag rule.
    Rule,
    /// A bulk import.
    Import,
    /// Mirrored from WeCom corp tags on the rep's external contact.
    Wecom,
    /// A scoring trigger (or another service's command).
    Trigger,
}

impl TagSource {
    pub const ALL: [TagSource; 5] = [
        TagSource::Manual,
        TagSource::Rule,
        TagSource::Import,
        TagSource::Wecom,
        TagSource::Trigger,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TagSource::Manual => "manual",
            TagSource::Rule => "rule",
            TagSource::Import => "import",
            TagSource::Wecom => "wecom",
            TagSource::Trigger => "trigger",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// `tag.unmerged`: tagging applied an `identity.unmerged` (events, memberships and profile states
/// moved back, both profiles' rules evaluated again) in one transaction. It carries the
/// separation and the tag set each profile ended with, so a service that reads tags (scoring)
/// applies the separation on the final tags of both sides in one step; the tag-set changes of
/// that transaction are in `changes` and are not announced as `tag.changed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TagsUnmerged {
    pub unmerged: IdentityUnmerged,
    /// Profile id → every tag id it holds now (the survivor and each restored profile).
    pub tags: BTreeMap<String, Vec<String>>,
    /// The tag-set changes the separation made.
    #[serde(default)]
    pub changes: Vec<TagChanged>,
    /// When tagging applied it (the time of the tag sets).
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Event for TagsUnmerged {
    const TYPE: &'static str = "tag.unmerged";
}

/// `tag.changed`: a profile gained or lost a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagChanged {
    pub profile_id: String,
    pub tag_id: String,
    /// The tag's name when the change was made (for readers that keep no catalogue).
    pub tag_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_id: Option<String>,
    pub change: TagChange,
    pub source: TagSource,
    /// The rule that set or removed it (`source = rule`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    /// The operator, rep or service that set or removed it (manual, trigger).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// When the membership changed.
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Event for TagChanged {
    const TYPE: &'static str = "tag.changed";
}

/// `command.tag.add` / `command.tag.remove`: another service asks tagging-svc to tag or untag a
/// profile (e.g. a scoring trigger). Idempotent: adding a tag a profile has, or removing one it
/// lacks, does nothing. Not an [`Event`]: the routing key says which of the two it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagCommand {
    pub profile_id: String,
    pub tag_id: String,
    /// Who asks, e.g. `scoring:trigger:<id>`.
    pub actor: String,
}
