//! Semantic checks of typed nodes (limits, formats, types of values, operator/type pairs). The
//! JSON walker runs them on every leaf it reads; rule expansion runs them on referenced rules.
//!
//! Formats:
//! - a property key / event kind is one or more segments of `[a-z0-9_]` joined by single dots,
//!   at most 128 bytes (`contact.city`, `track.page_view`, `source.first.level2`);
//! - an id (tag, content tag, rule, app, corp, rep, chat) is 1..=64 characters (rep and chat ids
//!   1..=128) without control characters and without leading or trailing whitespace.

use proto::condition::{
    BehaviourLeaf, CountOp, CountValue, DistinctLeaf, DistinctOf, Literal, Operand, PropertyOp,
    PropertyPredicate, SourceField, SourceLeaf, TagLeaf, TagOp, ValueType, WechatLeaf, Window,
};

use crate::error::{index, join, ErrorCode, ValidationError};
use crate::facts::{parse_date, parse_datetime, FactValue, STORED_STRING_CHARS};

/// Size limits of a condition. `Default` gives the documented values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Nodes on the longest root-to-leaf path (root = 1). Default 10.
    pub max_depth: usize,
    /// Nodes in the tree after expanding rule references. Default 200; keep it below 500, SQLite's
    /// limit of terms in one compound SELECT.
    pub max_nodes: usize,
    /// Literal values (list items, tag ids) in the whole tree after expanding rule references:
    /// each is a bound parameter of the compiled SQL, which MySQL caps at 65 535 and SQLite at
    /// 32 766 per statement. Default 10 000.
    pub max_values: usize,
    /// Items of an `in` / `not_in` list. Default 1000.
    pub max_list: usize,
    /// Characters of a string value; never more than [`STORED_STRING_CHARS`]. Default 255.
    pub max_string: usize,
    /// Tags of a tag leaf. Default 100.
    pub max_tags: usize,
    /// Filters of a behaviour leaf. Default 10.
    pub max_filters: usize,
    /// Largest |N| of `{"days_ago": N}`. Default 36 500 (100 years).
    pub max_days_ago: i64,
    /// Largest count in a count predicate. Default 1 000 000 000.
    pub max_count: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 10,
            max_nodes: 200,
            max_values: 10_000,
            max_list: 1000,
            max_string: STORED_STRING_CHARS,
            max_tags: 100,
            max_filters: 10,
            max_days_ago: 36_500,
            max_count: 1_000_000_000,
        }
    }
}

/// Longest key / event kind, in bytes.
pub const MAX_KEY_LEN: usize = 128;
/// Longest tag, content tag, rule, app or corp id, in characters.
pub const MAX_ID_CHARS: usize = 64;
/// Longest rep (user) or chat id, in characters.
pub const MAX_REF_CHARS: usize = 128;
/// Window lengths allowed for `{"type": "last"}`.
pub const LAST_DAYS: std::ops::RangeInclusive<u32> = 1..=365;

/// Is `s` a valid property key / event kind?
pub fn valid_key(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_KEY_LEN
        && s.split('.').all(|seg| {
            !seg.is_empty()
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
}

/// Is `s` a valid id of at most `max` characters?
pub fn valid_id(s: &str, max: usize) -> bool {
    !s.is_empty() && s.chars().count() <= max && !s.chars().any(char::is_control) && s.trim() == s
}

/// Operators defined for a value type.
pub fn op_allowed(value_type: ValueType, op: PropertyOp) -> bool {
    use PropertyOp::*;
    match value_type {
        ValueType::String => true,
        ValueType::Number => !matches!(op, Contains | StartsWith | EndsWith),
        ValueType::Bool => matches!(op, Eq | Ne | Exists | Missing),
        ValueType::Date | ValueType::Datetime => {
            matches!(
                op,
                Eq | Ne | Lt | Lte | Gt | Gte | Between | Exists | Missing
            )
        }
    }
}

/// Collects the errors of the nodes it is shown.
pub(crate) struct Checker<'a> {
    pub limits: &'a Limits,
    pub errors: Vec<ValidationError>,
}

impl<'a> Checker<'a> {
    pub fn new(limits: &'a Limits) -> Self {
        Checker {
            limits,
            errors: Vec::new(),
        }
    }

    pub fn err(&mut self, path: impl Into<String>, code: ErrorCode, message: impl Into<String>) {
        self.errors.push(ValidationError::new(path, code, message));
    }

    fn id(&mut self, path: String, id: &str, max: usize) {
        if !valid_id(id, max) {
            self.err(
                path,
                ErrorCode::InvalidId,
                format!(
                    "must be 1..={max} characters without control characters or surrounding spaces"
                ),
            );
        }
    }

    /// A rule reference's id.
    pub fn rule_id(&mut self, path: &str, rule_id: &str) {
        self.id(join(path, "rule_id"), rule_id, MAX_ID_CHARS);
    }

    /// A property leaf or an event filter.
    pub fn property(&mut self, path: &str, p: &PropertyPredicate) {
        if !valid_key(&p.key) {
            self.err(
                join(path, "key"),
                ErrorCode::InvalidKey,
                "must be [a-z0-9_] segments joined by dots, at most 128 bytes",
            );
        }
        self.predicate(path, p.value_type, p.op, p.value.as_ref());
    }

    /// Operator, value presence, shape and types (shared by property and source leaves).
    fn predicate(&mut self, path: &str, ty: ValueType, op: PropertyOp, value: Option<&Operand>) {
        if !op_allowed(ty, op) {
            self.err(
                join(path, "op"),
                ErrorCode::OpNotAllowed,
                format!(
                    "`{}` is not defined for value_type {}",
                    op.as_str(),
                    ty.as_str()
                ),
            );
            return;
        }
        let vpath = join(path, "value");
        let value = match (op, value) {
            (PropertyOp::Exists | PropertyOp::Missing, None) => return,
            (PropertyOp::Exists | PropertyOp::Missing, Some(_)) => {
                return self.err(
                    vpath,
                    ErrorCode::UnexpectedValue,
                    format!("`{}` takes no value", op.as_str()),
                )
            }
            (_, None) => {
                return self.err(
                    vpath,
                    ErrorCode::MissingValue,
                    format!("`{}` needs a value", op.as_str()),
                )
            }
            (_, Some(v)) => v,
        };
        match (op, value) {
            (PropertyOp::Between, Operand::List(items)) if items.len() == 2 => {
                let ok_lo = self.literal(&index(&vpath, 0), ty, op, &items[0]);
                let ok_hi = self.literal(&index(&vpath, 1), ty, op, &items[1]);
                if ok_lo && ok_hi && !between_ordered(ty, &items[0], &items[1]) {
                    self.err(
                        vpath,
                        ErrorCode::BetweenOrder,
                        "lo must not be greater than hi",
                    );
                }
            }
            (PropertyOp::Between, _) => {
                self.err(vpath, ErrorCode::BetweenShape, "must be a list [lo, hi]")
            }
            (PropertyOp::In | PropertyOp::NotIn, Operand::List(items)) => {
                if items.is_empty() {
                    self.err(vpath.clone(), ErrorCode::EmptyList, "must not be empty");
                }
                if items.len() > self.limits.max_list {
                    self.err(
                        vpath.clone(),
                        ErrorCode::ListTooLong,
                        format!("must have at most {} items", self.limits.max_list),
                    );
                }
                for (i, item) in items.iter().enumerate().take(self.limits.max_list) {
                    self.literal(&index(&vpath, i), ty, op, item);
                }
            }
            (PropertyOp::In | PropertyOp::NotIn, Operand::One(_)) => {
                self.err(vpath, ErrorCode::ValueShape, "must be a list")
            }
            (_, Operand::List(_)) => self.err(
                vpath,
                ErrorCode::ValueShape,
                format!("`{}` takes one value, not a list", op.as_str()),
            ),
            (_, Operand::One(lit)) => {
                self.literal(&vpath, ty, op, lit);
            }
        }
    }

    /// One literal against the declared type; true when it is usable.
    fn literal(&mut self, path: &str, ty: ValueType, op: PropertyOp, lit: &Literal) -> bool {
        let before = self.errors.len();
        match (ty, lit) {
            (ValueType::Date | ValueType::Datetime, Literal::Relative(r)) => {
                if r.days_ago.unsigned_abs() > self.limits.max_days_ago.unsigned_abs() {
                    self.err(
                        join(path, "days_ago"),
                        ErrorCode::OutOfRange,
                        format!(
                            "must be -{m}..={m}",
                            m = self.limits.max_days_ago.unsigned_abs()
                        ),
                    );
                }
            }
            (_, Literal::Relative(_)) => self.err(
                path,
                ErrorCode::RelativeNotAllowed,
                format!(
                    "days_ago is only for date and datetime, not {}",
                    ty.as_str()
                ),
            ),
            (ValueType::String, Literal::String(s)) => {
                let max = self.limits.max_string.min(STORED_STRING_CHARS);
                if s.chars().count() > max {
                    self.err(
                        path,
                        ErrorCode::StringTooLong,
                        format!("must be at most {max} characters"),
                    );
                } else if matches!(
                    op,
                    PropertyOp::Eq | PropertyOp::Ne | PropertyOp::In | PropertyOp::NotIn
                ) && !matches!(FactValue::from_text(s), FactValue::Str(_))
                {
                    self.err(
                        path,
                        ErrorCode::TypeMismatch,
                        "is a date or datetime, stored as such and never equal to a string; \
                         use value_type date or datetime",
                    );
                }
            }
            (ValueType::Number, Literal::Number(_)) | (ValueType::Bool, Literal::Bool(_)) => {}
            (ValueType::Date, Literal::String(s)) => {
                if parse_date(s).is_none() {
                    self.err(path, ErrorCode::InvalidDate, "must be a date YYYY-MM-DD");
                }
            }
            (ValueType::Datetime, Literal::String(s)) => {
                if parse_datetime(s).is_none() {
                    self.err(
                        path,
                        ErrorCode::InvalidDatetime,
                        "must be an RFC 3339 datetime (UTC years 0000-9999)",
                    );
                }
            }
            (_, _) => self.err(
                path,
                ErrorCode::TypeMismatch,
                format!("must be a {} value", ty.as_str()),
            ),
        }
        self.errors.len() == before
    }

    /// A behaviour leaf.
    pub fn behaviour(&mut self, path: &str, b: &BehaviourLeaf) {
        if b.event.is_none() && b.content_tag.is_none() {
            self.err(
                path,
                ErrorCode::MissingEventOrTag,
                "needs an event, a content_tag or both",
            );
        }
        if let Some(kind) = &b.event {
            if !valid_key(kind) {
                self.err(
                    join(path, "event"),
                    ErrorCode::InvalidKey,
                    "must be an event kind like track.page_view",
                );
            }
        }
        if let Some(tag) = &b.content_tag {
            self.id(join(path, "content_tag"), tag, MAX_ID_CHARS);
        }
        let fpath = join(path, "filters");
        if b.filters.len() > self.limits.max_filters {
            self.err(
                fpath.clone(),
                ErrorCode::TooManyFilters,
                format!("must have at most {} filters", self.limits.max_filters),
            );
        }
        for (i, f) in b.filters.iter().enumerate().take(self.limits.max_filters) {
            self.property(&index(&fpath, i), f);
        }
        self.count(&join(path, "count"), b.count.op, b.count.value);
        self.window(&join(path, "window"), &b.window);
    }

    pub fn distinct(&mut self, path: &str, d: &DistinctLeaf) {
        let key = |c: &mut Self, field: &str, v: &str, what: &str| {
            if !valid_key(v) {
                c.err(
                    join(path, field),
                    ErrorCode::InvalidKey,
                    format!("must be {what}"),
                );
            }
        };
        match d.of {
            DistinctOf::PropertyValues => match &d.property {
                Some(p) => key(self, "property", p, "an event property key like utm_source"),
                None => self.err(
                    join(path, "property"),
                    ErrorCode::MissingValue,
                    "`property_values` needs the event property to count",
                ),
            },
            DistinctOf::ContentTags | DistinctOf::EventKinds => {
                for (field, set) in [("property", &d.property), ("event", &d.event)] {
                    if set.is_some() {
                        self.err(
                            join(path, field),
                            ErrorCode::UnexpectedValue,
                            "only with `of: property_values`",
                        );
                    }
                }
            }
        }
        if let (DistinctOf::PropertyValues, Some(kind)) = (d.of, &d.event) {
            key(self, "event", kind, "an event kind like track.page_view");
        }
        self.count(&join(path, "count"), d.count.op, d.count.value);
        self.window(&join(path, "window"), &d.window);
    }

    fn count(&mut self, path: &str, op: CountOp, value: CountValue) {
        let vpath = join(path, "value");
        let max = self.limits.max_count;
        let values = match (op, value) {
            (CountOp::Between, CountValue::Range([lo, hi])) => {
                if lo > hi {
                    self.err(
                        vpath.clone(),
                        ErrorCode::BetweenOrder,
                        "lo must not be greater than hi",
                    );
                }
                vec![lo, hi]
            }
            (CountOp::Between, CountValue::One(_)) => {
                return self.err(vpath, ErrorCode::BetweenShape, "must be a list [lo, hi]")
            }
            (_, CountValue::Range(_)) => {
                return self.err(
                    vpath,
                    ErrorCode::ValueShape,
                    "must be one count, not a list",
                )
            }
            (_, CountValue::One(v)) => vec![v],
        };
        if values.iter().any(|v| *v > max) {
            self.err(vpath, ErrorCode::OutOfRange, format!("must be 0..={max}"));
        }
    }

    fn window(&mut self, path: &str, w: &Window) {
        match *w {
            Window::Last { days } => {
                if !LAST_DAYS.contains(&days) {
                    self.err(
                        join(path, "days"),
                        ErrorCode::OutOfRange,
                        format!("must be {}..={}", LAST_DAYS.start(), LAST_DAYS.end()),
                    );
                }
            }
            Window::Range { from, to } => {
                use chrono::Datelike;
                for (field, d) in [("from", from), ("to", to)] {
                    if !(1000..=9999).contains(&d.year()) {
                        self.err(
                            join(path, field),
                            ErrorCode::OutOfRange,
                            "must be in the years 1000-9999",
                        );
                    }
                }
                if to < from {
                    self.err(
                        join(path, "to"),
                        ErrorCode::InvalidWindow,
                        "must not be before from",
                    );
                }
            }
            Window::AllTime => {}
        }
    }

    /// A tag leaf.
    pub fn tag(&mut self, path: &str, t: &TagLeaf) {
        let tpath = join(path, "tags");
        match t.op {
            TagOp::Has if t.tags.len() != 1 => self.err(
                tpath.clone(),
                ErrorCode::TagCount,
                "`has` needs exactly one tag; use has_any or has_all for several",
            ),
            _ if t.tags.is_empty() || t.tags.len() > self.limits.max_tags => self.err(
                tpath.clone(),
                ErrorCode::TagCount,
                format!("must have 1..={} tags", self.limits.max_tags),
            ),
            _ => {}
        }
        for (i, tag) in t.tags.iter().enumerate().take(self.limits.max_tags) {
            self.id(index(&tpath, i), tag, MAX_ID_CHARS);
        }
    }

    /// A WeChat leaf.
    pub fn wechat(&mut self, path: &str, w: &WechatLeaf) {
        let fields: [(&str, Option<&String>, usize); 2] = match w {
            WechatLeaf::OaSubscribed { app_id } => {
                [("app_id", app_id.as_ref(), MAX_ID_CHARS), ("", None, 0)]
            }
            WechatLeaf::WecomFollowed { corp_id, user_id } => [
                ("corp_id", corp_id.as_ref(), MAX_ID_CHARS),
                ("user_id", user_id.as_ref(), MAX_REF_CHARS),
            ],
            WechatLeaf::InGroupChat { corp_id, chat_id } => [
                ("corp_id", corp_id.as_ref(), MAX_ID_CHARS),
                ("chat_id", chat_id.as_ref(), MAX_REF_CHARS),
            ],
        };
        for (field, value, max) in fields {
            if let Some(v) = value {
                self.id(join(path, field), v, max);
            }
        }
    }

    /// A source leaf.
    pub fn source(&mut self, path: &str, s: &SourceLeaf) {
        let lpath = join(path, "level");
        match (s.field, s.level) {
            (SourceField::Level, Some(1..=10)) => {}
            (SourceField::Level, Some(_)) => {
                self.err(lpath, ErrorCode::InvalidLevel, "must be 1..=10")
            }
            (SourceField::Level, None) => self.err(
                lpath,
                ErrorCode::InvalidLevel,
                "field level needs a level 1..=10",
            ),
            (_, Some(_)) => self.err(
                lpath,
                ErrorCode::InvalidLevel,
                "only field level takes a level",
            ),
            (_, None) => {}
        }
        self.predicate(path, ValueType::String, s.op, s.value.as_ref());
    }
}

/// lo ≤ hi for two literals already checked against `ty`; relative pairs compare by days_ago,
/// a relative and an absolute bound cannot be ordered before evaluation and pass.
fn between_ordered(ty: ValueType, lo: &Literal, hi: &Literal) -> bool {
    match (ty, lo, hi) {
        (_, Literal::Relative(a), Literal::Relative(b)) => a.days_ago >= b.days_ago,
        (ValueType::Number, Literal::Number(a), Literal::Number(b)) => a <= b,
        (ValueType::String, Literal::String(a), Literal::String(b)) => a <= b,
        (ValueType::Date, Literal::String(a), Literal::String(b)) => parse_date(a) <= parse_date(b),
        (ValueType::Datetime, Literal::String(a), Literal::String(b)) => {
            parse_datetime(a) <= parse_datetime(b)
        }
        _ => true,
    }
}
