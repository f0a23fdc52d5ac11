//! The condition language of visual tag rules and lead scoring: AND/OR/NOT trees over profile
//! properties (lead scores and stages among them), behaviour counts and distinct counts in time
//! windows, tags and WeChat state — validation, in-memory evaluation and SQL compilation
//! (through sea-query, never string concatenation).
//!
//! Owns: the semantics of a condition, the column encoding of facts and the schema of the facts
//! tables the compiled SQL reads. Must not touch: I/O, storage, the bus; tagging-svc and
//! scoring-svc call it, it calls nothing.
//!
//! The path of a condition:
//! 1. [`parse`] (or [`parse_rule`]) the editor's JSON into a [`ConditionDoc`], with every error
//!    and the path of the node it is in;
//! 2. [`expand`] rule references into an [`Expanded`] condition (at evaluation time, as referenced
//!    rules may have changed since);
//! 3. [`evaluate`] it against one profile's [`Facts`], or [`sql::compile`] it into a query over the
//!    facts tables of [`schema`] — both give the same profiles;
//! 4. index it by [`Expanded::dependencies`] and re-check it on [`next_expiry`].

mod check;
mod deps;
mod error;
mod eval;
mod expand;
mod expiry;
mod facts;
mod parse;
mod resolve;
pub mod schema;
mod score;
pub mod sql;

pub use proto::condition::*;

pub use check::{
    op_allowed, valid_id, valid_key, Limits, LAST_DAYS, MAX_ID_CHARS, MAX_KEY_LEN, MAX_REF_CHARS,
};
pub use deps::{ConditionExt, Dependencies};
pub use error::{ErrorCode, ValidationError};
pub use eval::{evaluate, EvalCtx};
pub use expand::{expand, Expanded, NoRules, RuleLookup};
pub use expiry::next_expiry;
pub use facts::{
    content_tag_metric, event_metric, parse_date, parse_datetime, Encoded, EventFact, FactValue,
    Facts, ProfileFacts, Relation, RelationKind, RollingCounts, VType, CONTENT_TAGS_KEY,
    STORED_STRING_CHARS,
};
pub use parse::{parse, parse_rule};

/// Prefix of the properties a projection keeps of a profile itself, never taken from identity's
/// fields (`profile.first_seen_at`).
pub const PROFILE_PREFIX: &str = "profile.";

/// Property key of when the profile was first seen (a datetime): its creation, or the first
/// message about it the projection took, the earliest of the profiles merged into it.
pub const FIRST_SEEN_KEY: &str = "profile.first_seen_at";
pub use score::{
    score_model, ScoreFold, LEAD_PREFIX, LEAD_STAGE_ENTERED_KEY, LEAD_STAGE_KEY, SCORE_PREFIX,
};

/// Parses, validates and expands in one step (a preview of a condition not yet saved).
pub fn parse_expanded(
    doc: &serde_json::Value,
    limits: &Limits,
    rules: &dyn RuleLookup,
) -> Result<(ConditionDoc, Expanded), Vec<ValidationError>> {
    let parsed = parse(doc, limits, rules)?;
    let expanded = expand(&parsed.root, limits, rules)?;
    Ok((parsed, expanded))
}

#[cfg(test)]
mod tests;
