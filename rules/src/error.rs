//! Validation errors: where in the document (a path like `root.children[2].window.days`), a stable
//! machine code, and a message for the operator.

use serde::Serialize;

/// What is wrong, as a stable code the editor can map to its own wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not the JSON shape of the language: wrong JSON type, unknown or missing field, unknown
    /// node type or operator.
    Syntax,
    /// `version` is not one this build understands.
    UnsupportedVersion,
    /// The tree nests deeper than the limit.
    TooDeep,
    /// The tree (after expanding rule references) has more nodes than the limit.
    TooManyNodes,
    /// The tree (after expanding rule references) has more literal values than the limit.
    TooManyValues,
    /// `and` / `or` without children.
    EmptyChildren,
    /// A property key or event kind that is not `[a-z0-9_]` segments joined by dots.
    InvalidKey,
    /// A tag, content tag, rule, app, corp, rep or chat id that is empty, too long or has
    /// control characters or surrounding whitespace.
    InvalidId,
    /// The operator is not defined for the value type.
    OpNotAllowed,
    /// The value is not of the declared value type.
    TypeMismatch,
    /// The operator needs a value and there is none.
    MissingValue,
    /// `exists` / `missing` with a value.
    UnexpectedValue,
    /// A list where one value is expected, or one value where a list is expected.
    ValueShape,
    /// `between` whose value is not a `[lo, hi]` pair.
    BetweenShape,
    /// `between` with lo greater than hi.
    BetweenOrder,
    /// `in` / `not_in` with an empty list.
    EmptyList,
    /// `in` / `not_in` with more items than the limit.
    ListTooLong,
    /// A string value longer than the limit.
    StringTooLong,
    /// `{"days_ago": N}` on a type that is not date or datetime.
    RelativeNotAllowed,
    /// A number outside its allowed range (window days, counts, days_ago, years).
    OutOfRange,
    /// Not a `YYYY-MM-DD` calendar day.
    InvalidDate,
    /// Not an RFC 3339 instant (years 0000–9999 in UTC).
    InvalidDatetime,
    /// A behaviour leaf with neither `event` nor `content_tag`.
    MissingEventOrTag,
    /// A tag leaf with the wrong number of tags for its operator.
    TagCount,
    /// More event filters than the limit.
    TooManyFilters,
    /// A source leaf whose `level` does not fit its `field`.
    InvalidLevel,
    /// A range window whose `to` is before its `from`.
    InvalidWindow,
    /// A rule reference to a rule that does not exist.
    UnknownRule,
    /// Rule references that lead back to a rule already being expanded.
    RuleCycle,
}

impl ErrorCode {
    /// The stable wire name, e.g. `between_order`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Syntax => "syntax",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::TooDeep => "too_deep",
            ErrorCode::TooManyNodes => "too_many_nodes",
            ErrorCode::TooManyValues => "too_many_values",
            ErrorCode::EmptyChildren => "empty_children",
            ErrorCode::InvalidKey => "invalid_key",
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::OpNotAllowed => "op_not_allowed",
            ErrorCode::TypeMismatch => "type_mismatch",
            ErrorCode::MissingValue => "missing_value",
            ErrorCode::UnexpectedValue => "unexpected_value",
            ErrorCode::ValueShape => "value_shape",
            ErrorCode::BetweenShape => "between_shape",
            ErrorCode::BetweenOrder => "between_order",
            ErrorCode::EmptyList => "empty_list",
            ErrorCode::ListTooLong => "list_too_long",
            ErrorCode::StringTooLong => "string_too_long",
            ErrorCode::RelativeNotAllowed => "relative_not_allowed",
            ErrorCode::OutOfRange => "out_of_range",
            ErrorCode::InvalidDate => "invalid_date",
            ErrorCode::InvalidDatetime => "invalid_datetime",
            ErrorCode::MissingEventOrTag => "missing_event_or_tag",
            ErrorCode::TagCount => "tag_count",
            ErrorCode::TooManyFilters => "too_many_filters",
            ErrorCode::InvalidLevel => "invalid_level",
            ErrorCode::InvalidWindow => "invalid_window",
            ErrorCode::UnknownRule => "unknown_rule",
            ErrorCode::RuleCycle => "rule_cycle",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem in a condition document.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, thiserror::Error)]
#[error("{path}: {message} ({code})")]
pub struct ValidationError {
    /// Where: `root`, `root.children[2].window.days`, `root.children[0]@r2.child.value` (inside
    /// the expansion of rule `r2` referenced at `root.children[0]`). Empty for the document itself.
    pub path: String,
    /// What, as a stable code.
    pub code: ErrorCode,
    /// What, for a person, e.g. `must be 1..=365`.
    pub message: String,
}

impl ValidationError {
    /// An error at `path`.
    pub fn new(path: impl Into<String>, code: ErrorCode, message: impl Into<String>) -> Self {
        ValidationError {
            path: path.into(),
            code,
            message: message.into(),
        }
    }
}

/// `base.field`, or `field` when `base` is empty.
pub(crate) fn join(base: &str, field: &str) -> String {
    if base.is_empty() {
        field.to_string()
    } else {
        format!("{base}.{field}")
    }
}

/// `base[i]`.
pub(crate) fn index(base: &str, i: usize) -> String {
    format!("{base}[{i}]")
}

/// Removes repeated errors, keeping the first occurrence of each.
pub(crate) fn dedup(errors: Vec<ValidationError>) -> Vec<ValidationError> {
    let mut seen = std::collections::HashSet::new();
    errors
        .into_iter()
        .filter(|e| seen.insert(e.clone()))
        .collect()
}
