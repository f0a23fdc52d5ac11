//! The condition tree of visual tag rules and lead scoring, as the visual editor sends it and as it
//! is stored: `{"version": 1, "root": <node>}`.
//!
//! Owns: the shape and serde form of a condition. The meaning (validation, evaluation, SQL) lives
//! in the `rules` crate, which re-exports these types. Every node is an object tagged by `type`;
//! unknown fields are rejected so a typo in the editor is an error, not a silently ignored field.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// The only document version this build understands.
pub const CONDITION_VERSION: u32 = 1;

/// A stored condition: the version of the language and the root node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionDoc {
    /// Must be [`CONDITION_VERSION`].
    pub version: u32,
    /// The tree.
    pub root: Condition,
}

impl ConditionDoc {
    /// A document of the current version.
    pub fn new(root: Condition) -> Self {
        ConditionDoc {
            version: CONDITION_VERSION,
            root,
        }
    }
}

/// One node of a condition tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Condition {
    /// Every child matches (non-empty).
    And { children: Vec<Condition> },
    /// At least one child matches (non-empty).
    Or { children: Vec<Condition> },
    /// The child does not match.
    Not { child: Box<Condition> },
    /// A predicate over a profile property.
    Property(PropertyPredicate),
    /// How often the profile did something in a time window.
    Behaviour(BehaviourLeaf),
    /// How many different things the profile did in a time window.
    Distinct(DistinctLeaf),
    /// The profile's tags.
    Tag(TagLeaf),
    /// WeChat relationship state (subscribed, followed by a rep, in a group chat).
    Wechat(WechatLeaf),
    /// Sugar for a string property on the profile's first or latest source touch.
    Source(SourceLeaf),
    /// Matches when another rule's condition matches.
    Rule { rule_id: String },
}

/// The declared type of a property predicate; values of other types never match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueType {
    String,
    Number,
    Bool,
    /// A calendar day, `YYYY-MM-DD`.
    Date,
    /// An instant, RFC 3339.
    Datetime,
}

impl ValueType {
    /// The wire name, e.g. `datetime`.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueType::String => "string",
            ValueType::Number => "number",
            ValueType::Bool => "bool",
            ValueType::Date => "date",
            ValueType::Datetime => "datetime",
        }
    }
}

/// Operator of a property predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PropertyOp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    /// Inclusive, value `[lo, hi]`.
    Between,
    In,
    NotIn,
    /// Case-insensitive substring (strings only).
    Contains,
    /// Case-insensitive prefix (strings only).
    StartsWith,
    /// Case-insensitive suffix (strings only).
    EndsWith,
    /// The profile has any value for the key (of any type); no value.
    Exists,
    /// The profile has no value for the key; no value.
    Missing,
}

impl PropertyOp {
    /// Every operator, in declaration order.
    pub const ALL: [PropertyOp; 14] = [
        PropertyOp::Eq,
        PropertyOp::Ne,
        PropertyOp::Lt,
        PropertyOp::Lte,
        PropertyOp::Gt,
        PropertyOp::Gte,
        PropertyOp::Between,
        PropertyOp::In,
        PropertyOp::NotIn,
        PropertyOp::Contains,
        PropertyOp::StartsWith,
        PropertyOp::EndsWith,
        PropertyOp::Exists,
        PropertyOp::Missing,
    ];

    /// The wire name, e.g. `not_in`.
    pub fn as_str(self) -> &'static str {
        match self {
            PropertyOp::Eq => "eq",
            PropertyOp::Ne => "ne",
            PropertyOp::Lt => "lt",
            PropertyOp::Lte => "lte",
            PropertyOp::Gt => "gt",
            PropertyOp::Gte => "gte",
            PropertyOp::Between => "between",
            PropertyOp::In => "in",
            PropertyOp::NotIn => "not_in",
            PropertyOp::Contains => "contains",
            PropertyOp::StartsWith => "starts_with",
            PropertyOp::EndsWith => "ends_with",
            PropertyOp::Exists => "exists",
            PropertyOp::Missing => "missing",
        }
    }
}

/// A predicate over one property key: a property leaf, and a behaviour leaf's event filter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PropertyPredicate {
    /// Dotted key, e.g. `contact.city`.
    pub key: String,
    pub value_type: ValueType,
    pub op: PropertyOp,
    /// Absent for `exists` / `missing`; a list for `in`, `not_in`, `between`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Operand>,
}

/// The value side of a predicate: one literal or a list of literals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Operand {
    List(Vec<Literal>),
    One(Literal),
}

/// A JSON literal, or a day count relative to the evaluation time (date and datetime only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Literal {
    Bool(bool),
    Number(f64),
    String(String),
    Relative(DaysAgo),
}

/// `{"days_ago": N}`: for a date, today − N days; for a datetime, now − N × 86 400 s. Negative
/// N is in the future.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaysAgo {
    pub days_ago: i64,
}

/// How often a profile did something in a window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BehaviourLeaf {
    /// An event kind: a routing key without `channel.`, e.g. `track.page_view`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Count only events on content carrying this tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_tag: Option<String>,
    /// Predicates over the event's properties; all must hold for an event to count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<PropertyPredicate>,
    /// Default: at least once.
    #[serde(default)]
    pub count: CountPredicate,
    /// Default: the last 30 days.
    #[serde(default)]
    pub window: Window,
}

/// What a distinct leaf counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DistinctOf {
    /// Content tags of the events (e.g. "interested in 3 topics").
    ContentTags,
    /// Event kinds (e.g. "used 4 kinds of touch point").
    EventKinds,
    /// String values of one event property, of events of one kind or of any (e.g. distinct
    /// `utm_source` of page views, `scene` of Official Account follows: the channels that brought
    /// the customer).
    PropertyValues,
}

/// How many different content tags, event kinds or event property values a profile had in a
/// window, e.g. "came through more than 3 channels in 90 days".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DistinctLeaf {
    pub of: DistinctOf,
    /// `property_values` only: the event property whose values are counted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub property: Option<String>,
    /// `property_values` only: count only events of this kind (any kind when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// Default: at least one.
    #[serde(default)]
    pub count: CountPredicate,
    /// Default: the last 30 days.
    #[serde(default)]
    pub window: Window,
}

/// A predicate over an event count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CountPredicate {
    pub op: CountOp,
    /// A count, or `[lo, hi]` (inclusive) for `between`.
    pub value: CountValue,
}

impl Default for CountPredicate {
    /// `{"op": "gte", "value": 1}`: did it at least once.
    fn default() -> Self {
        CountPredicate {
            op: CountOp::Gte,
            value: CountValue::One(1),
        }
    }
}

/// Operator of a count predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CountOp {
    Eq,
    Ne,
    Gt,
    Gte,
    Lt,
    Lte,
    Between,
}

/// The value of a count predicate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CountValue {
    One(u64),
    Range([u64; 2]),
}

/// The days a behaviour leaf counts, in the tenant's time zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Window {
    /// Today and the `days − 1` days before it (1..=365).
    Last { days: u32 },
    /// `from ..= to`.
    Range { from: NaiveDate, to: NaiveDate },
    /// Every day.
    AllTime,
}

impl Default for Window {
    /// The last 30 days.
    fn default() -> Self {
        Window::Last { days: 30 }
    }
}

/// Operator of a tag leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagOp {
    /// Has the one tag listed.
    Has,
    HasAny,
    HasAll,
    HasNone,
}

/// A predicate over the profile's tags.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagLeaf {
    pub op: TagOp,
    /// Tag ids.
    pub tags: Vec<String>,
}

/// WeChat relationship state, as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case", deny_unknown_fields)]
pub enum WechatLeaf {
    /// Subscribed to the Official Account `app_id`, or to any when absent.
    OaSubscribed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        app_id: Option<String>,
    },
    /// Followed as an external contact by any rep / a rep of `corp_id` / the rep `user_id`.
    WecomFollowed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        corp_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user_id: Option<String>,
    },
    /// A member of any customer group chat / one of `corp_id` / the chat `chat_id`.
    InGroupChat {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        corp_id: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        chat_id: Option<String>,
    },
}

/// Which source touch of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Touch {
    First,
    Latest,
}

/// A field of a source touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceField {
    Channel,
    Media,
    Campaign,
    Content,
    Keyword,
    /// One level of the multi-level source tree; needs `level`.
    Level,
}

/// A string predicate on `source.<touch>.<field>` (or `source.<touch>.level<N>`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceLeaf {
    pub touch: Touch,
    pub field: SourceField,
    /// 1..=10, only with `field: level`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<u8>,
    pub op: PropertyOp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Operand>,
}

impl SourceLeaf {
    /// The property key this leaf reads, e.g. `source.first.channel`, `source.latest.level2`.
    pub fn key(&self) -> String {
        let touch = match self.touch {
            Touch::First => "first",
            Touch::Latest => "latest",
        };
        let field = match self.field {
            SourceField::Channel => "channel".to_string(),
            SourceField::Media => "media".to_string(),
            SourceField::Campaign => "campaign".to_string(),
            SourceField::Content => "content".to_string(),
            SourceField::Keyword => "keyword".to_string(),
            SourceField::Level => format!("level{}", self.level.unwrap_or(0)),
        };
        format!("source.{touch}.{field}")
    }

    /// The equivalent property predicate (value type string).
    pub fn to_property(&self) -> PropertyPredicate {
        PropertyPredicate {
            key: self.key(),
            value_type: ValueType::String,
            op: self.op,
            value: self.value.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_node_kind_round_trips() {
        let doc = json!({"version": 1, "root": {"type": "and", "children": [
            {"type": "property", "key": "contact.city", "value_type": "string", "op": "in",
             "value": ["上海", "Beijing"]},
            {"type": "not", "child": {"type": "tag", "op": "has", "tags": ["vip"]}},
            {"type": "or", "children": [
                {"type": "behaviour", "event": "track.page_view", "content_tag": "case_study",
                 "filters": [{"key": "page", "value_type": "string", "op": "starts_with",
                              "value": "/cases"}],
                 "count": {"op": "between", "value": [2, 5]},
                 "window": {"type": "range", "from": "2024-01-01", "to": "2024-01-31"}},
                {"type": "wechat", "state": "wecom_followed", "corp_id": "wwcorp"},
                {"type": "source", "touch": "first", "field": "level", "level": 2,
                 "op": "eq", "value": "wechat"},
                {"type": "property", "key": "contact.birthday", "value_type": "date",
                 "op": "gte", "value": {"days_ago": 30}},
                {"type": "rule", "rule_id": "r1"},
                {"type": "distinct", "of": "property_values", "property": "utm_source",
                 "event": "track.page_view", "count": {"op": "gt", "value": 3},
                 "window": {"type": "last", "days": 90}}
            ]}
        ]}});
        let parsed: ConditionDoc = serde_json::from_value(doc.clone()).unwrap();
        let back = serde_json::to_value(&parsed).unwrap();
        let again: ConditionDoc = serde_json::from_value(back).unwrap();
        assert_eq!(parsed, again);
        let Condition::And { children } = &parsed.root else {
            panic!("and expected")
        };
        assert_eq!(children.len(), 3);
        let Condition::Or { children } = &children[2] else {
            panic!("or expected")
        };
        let Condition::Behaviour(b) = &children[0] else {
            panic!("behaviour expected")
        };
        assert_eq!(b.count.value, CountValue::Range([2, 5]));
        let Condition::Source(s) = &children[2] else {
            panic!("source expected")
        };
        assert_eq!(s.key(), "source.first.level2");
    }

    #[test]
    fn defaults_and_unknown_fields() {
        let b: Condition =
            serde_json::from_value(json!({"type": "behaviour", "event": "oa.subscribe"})).unwrap();
        let Condition::Behaviour(b) = b else {
            panic!("behaviour expected")
        };
        assert_eq!(b.count, CountPredicate::default());
        assert_eq!(b.window, Window::Last { days: 30 });
        let typo = serde_json::from_value::<Condition>(
            json!({"type": "tag", "op": "has", "tags": ["a"], "tag": "b"}),
        );
        assert!(typo.is_err());
        let typo =
            serde_json::from_value::<Condition>(json!({"type": "and", "children": [], "x": 1}));
        assert!(typo.is_err());
    }
}
