//! The profile's field catalogue (the persona families of a B2B/B2C SCRM), each field's type and
//! conflict strategy, and the cleaning of incoming values: a value that cannot be right is
//! refused with a reason (kept in the data-quality log), never stored.
//!
//! | family | fields |
//! |---|---|
//! | contact | `name`, `nickname`, `avatar`, `gender` (male/female/unknown), `birthday`, `age`, `country`, `province`, `city`, `language`, `phone`, `email` (the last two derived from identifiers, masked) |
//! | company | `name`, `industry`, `size`, `revenue`, `role` |
//! | needs | `product`, `budget`, `timeline`, `description` |
//! | preferences | `content`, `channel`, `time_slot` |
//! | source | `first`, `latest`: a touch `{channel, media, campaign, content, keyword, levels[≤10]}` |
//! | custom | `custom.<name>`, typed by the tenant's declaration |

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Longest string a field keeps.
pub const MAX_STRING: usize = 512;
/// Source levels a touch keeps.
pub const MAX_LEVELS: usize = 10;

/// The type of a field's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    String,
    Number,
    Bool,
    /// `YYYY-MM-DD`.
    Date,
    /// RFC 3339, stored in UTC.
    Datetime,
}

impl FieldType {
    pub const ALL: [FieldType; 5] = [
        FieldType::String,
        FieldType::Number,
        FieldType::Bool,
        FieldType::Date,
        FieldType::Datetime,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            FieldType::String => "string",
            FieldType::Number => "number",
            FieldType::Bool => "bool",
            FieldType::Date => "date",
            FieldType::Datetime => "datetime",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// How the profile's value is chosen among what its sources said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The most trusted source wins (operator > WeChat-verified > imported > typed > observed);
    /// among equals the newest statement.
    Trusted,
    /// The earliest statement, never overwritten by later ones (first touch).
    Earliest,
    /// The newest statement (latest touch).
    Latest,
}

/// A field of the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A plain typed value.
    Plain(FieldType),
    /// Gender, normalised to `male` / `female` / `unknown`.
    Gender,
    /// A source touch object.
    Touch,
}

/// The built-in fields (custom ones are declared per tenant).
pub const CATALOGUE: &[(&str, Kind)] = &[
    ("contact.name", Kind::Plain(FieldType::String)),
    ("contact.nickname", Kind::Plain(FieldType::String)),
    ("contact.avatar", Kind::Plain(FieldType::String)),
    ("contact.gender", Kind::Gender),
    ("contact.birthday", Kind::Plain(FieldType::Date)),
    ("contact.age", Kind::Plain(FieldType::Number)),
    ("contact.country", Kind::Plain(FieldType::String)),
    ("contact.province", Kind::Plain(FieldType::String)),
    ("contact.city", Kind::Plain(FieldType::String)),
    ("contact.language", Kind::Plain(FieldType::String)),
    ("company.name", Kind::Plain(FieldType::String)),
    ("company.industry", Kind::Plain(FieldType::String)),
    ("company.size", Kind::Plain(FieldType::String)),
    ("company.revenue", Kind::Plain(FieldType::String)),
    ("company.role", Kind::Plain(FieldType::String)),
    ("needs.product", Kind::Plain(FieldType::String)),
    ("needs.budget", Kind::Plain(FieldType::Number)),
    ("needs.timeline", Kind::Plain(FieldType::String)),
    ("needs.description", Kind::Plain(FieldType::String)),
    ("preferences.content", Kind::Plain(FieldType::String)),
    ("preferences.channel", Kind::Plain(FieldType::String)),
    ("preferences.time_slot", Kind::Plain(FieldType::String)),
    ("source.first", Kind::Touch),
    ("source.latest", Kind::Touch),
];

/// Short names forms commonly use for catalogue fields.
const ALIASES: &[(&str, &str)] = &[
    ("name", "contact.name"),
    ("real_name", "contact.name"),
    ("nickname", "contact.nickname"),
    ("gender", "contact.gender"),
    ("sex", "contact.gender"),
    ("birthday", "contact.birthday"),
    ("age", "contact.age"),
    ("city", "contact.city"),
    ("province", "contact.province"),
    ("country", "contact.country"),
    ("company", "company.name"),
    ("company_name", "company.name"),
    ("industry", "company.industry"),
    ("company_size", "company.size"),
    ("revenue", "company.revenue"),
    ("title", "company.role"),
    ("job_title", "company.role"),
    ("role", "company.role"),
    ("position", "company.role"),
    ("product", "needs.product"),
    ("budget", "needs.budget"),
    ("timeline", "needs.timeline"),
];

/// Names under which a form carries a phone number or an e-mail address (identifiers, not fields).
pub const PHONE_KEYS: &[&str] = &["phone", "mobile", "contact.phone"];
pub const EMAIL_KEYS: &[&str] = &["email", "contact.email"];

/// The catalogue entry of `field`, resolving aliases; custom fields need their declaration.
pub fn lookup(field: &str, custom: &[CustomField]) -> Option<(String, Kind)> {
    let canonical = ALIASES
        .iter()
        .find(|(a, _)| *a == field)
        .map(|(_, f)| *f)
        .unwrap_or(field);
    if let Some((name, kind)) = CATALOGUE.iter().find(|(f, _)| *f == canonical) {
        return Some((name.to_string(), *kind));
    }
    let name = canonical.strip_prefix("custom.")?;
    custom
        .iter()
        .find(|c| c.name == name)
        .map(|c| (canonical.to_string(), Kind::Plain(c.value_type)))
}

/// The conflict strategy of a (valid) field.
pub fn strategy(field: &str) -> Strategy {
    match field {
        "source.first" => Strategy::Earliest,
        "source.latest" => Strategy::Latest,
        _ => Strategy::Trusted,
    }
}

/// A tenant-declared custom field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomField {
    /// `[a-z][a-z0-9_]{0,63}`; the field is `custom.<name>`.
    pub name: String,
    pub value_type: FieldType,
    #[serde(default)]
    pub label: String,
}

/// Is `name` usable as a custom field name.
pub fn valid_custom_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 64
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// Why a value was refused (stable codes of the data-quality log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    UnknownField,
    WrongType,
    TooLong,
    InvalidDate,
    FutureDate,
    ImpossibleAge,
    InvalidGender,
    InvalidPhone,
    InvalidEmail,
}

impl Rejection {
    pub fn as_str(self) -> &'static str {
        match self {
            Rejection::UnknownField => "unknown_field",
            Rejection::WrongType => "wrong_type",
            Rejection::TooLong => "too_long",
            Rejection::InvalidDate => "invalid_date",
            Rejection::FutureDate => "future_date",
            Rejection::ImpossibleAge => "impossible_age",
            Rejection::InvalidGender => "invalid_gender",
            Rejection::InvalidPhone => "invalid_phone",
            Rejection::InvalidEmail => "invalid_email",
        }
    }
}

/// The stored form of `raw` for a field of `kind`, or why it is refused. `Ok(None)`: an empty
/// value, which says nothing (an empty form field never erases a known value).
pub fn clean(kind: Kind, raw: &Value, now: DateTime<Utc>) -> Result<Option<Value>, Rejection> {
    if is_empty(raw) {
        return Ok(None);
    }
    match kind {
        Kind::Gender => gender(raw).map(|g| Some(json!(g))),
        Kind::Touch => Ok(touch(raw)),
        Kind::Plain(t) => plain(t, raw, now).map(Some),
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.trim().is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        _ => false,
    }
}

fn plain(t: FieldType, raw: &Value, now: DateTime<Utc>) -> Result<Value, Rejection> {
    match t {
        FieldType::String => {
            let s = match raw {
                Value::String(s) => s.trim().to_string(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                _ => return Err(Rejection::WrongType),
            };
            if s.chars().count() > MAX_STRING {
                return Err(Rejection::TooLong);
            }
            Ok(json!(s))
        }
        FieldType::Number => {
            let n = match raw {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse::<f64>().ok(),
                _ => None,
            }
            .filter(|n| n.is_finite())
            .ok_or(Rejection::WrongType)?;
            Ok(json!(n))
        }
        FieldType::Bool => match raw {
            Value::Bool(b) => Ok(json!(b)),
            Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
                "true" | "yes" | "1" => Ok(json!(true)),
                "false" | "no" | "0" => Ok(json!(false)),
                _ => Err(Rejection::WrongType),
            },
            Value::Number(n) if n.as_i64() == Some(1) => Ok(json!(true)),
            Value::Number(n) if n.as_i64() == Some(0) => Ok(json!(false)),
            _ => Err(Rejection::WrongType),
        },
        FieldType::Date => {
            let s = raw.as_str().ok_or(Rejection::WrongType)?.trim();
            let d = NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .or_else(|_| NaiveDate::parse_from_str(s, "%Y/%m/%d"))
                .map_err(|_| Rejection::InvalidDate)?;
            Ok(json!(d.format("%Y-%m-%d").to_string()))
        }
        FieldType::Datetime => {
            let s = raw.as_str().ok_or(Rejection::WrongType)?.trim();
            let t = DateTime::parse_from_rfc3339(s).map_err(|_| Rejection::InvalidDate)?;
            let _ = now;
            Ok(json!(t
                .with_timezone(&Utc)
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)))
        }
    }
}

/// Field-specific plausibility, after the type is right.
pub fn plausible(field: &str, v: &Value, now: DateTime<Utc>) -> Result<(), Rejection> {
    match field {
        "contact.age" => {
            let n = v.as_f64().unwrap_or(-1.0);
            if !(0.0..=150.0).contains(&n) {
                return Err(Rejection::ImpossibleAge);
            }
        }
        "contact.birthday" => {
            let d = v
                .as_str()
                .and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok())
                .ok_or(Rejection::InvalidDate)?;
            if d > now.date_naive() {
                return Err(Rejection::FutureDate);
            }
            if d.year() < 1900 {
                return Err(Rejection::InvalidDate);
            }
        }
        "needs.budget" if v.as_f64().is_some_and(|n| n < 0.0) => {
            return Err(Rejection::WrongType);
        }
        _ => {}
    }
    Ok(())
}

/// WeChat's sex codes (1 male, 2 female, 0 unknown) and the usual words.
fn gender(raw: &Value) -> Result<&'static str, Rejection> {
    let s = match raw {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.trim().to_lowercase(),
        _ => return Err(Rejection::InvalidGender),
    };
    match s.as_str() {
        "1" | "m" | "male" | "man" | "男" => Ok("male"),
        "2" | "f" | "female" | "woman" | "女" => Ok("female"),
        "0" | "unknown" | "未知" => Ok("unknown"),
        _ => Err(Rejection::InvalidGender),
    }
}

/// A source touch: the attribution of one entry (first or latest).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Touch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campaign: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyword: Option<String>,
    /// The channel hierarchy, coarse to fine (e.g. `online / wechat / oa / article`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
    /// The source registry's node the touch was attributed to (its levels are the node's path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

impl Touch {
    pub fn is_empty(&self) -> bool {
        *self == Touch::default()
    }

    /// The touch's fields by dotted key under `prefix` (`source.first`).
    pub fn flatten(&self, prefix: &str, out: &mut std::collections::BTreeMap<String, Value>) {
        for (k, v) in [
            ("channel", &self.channel),
            ("media", &self.media),
            ("campaign", &self.campaign),
            ("content", &self.content),
            ("keyword", &self.keyword),
            ("node", &self.node),
        ] {
            if let Some(v) = v {
                out.insert(format!("{prefix}.{k}"), json!(v));
            }
        }
        for (i, l) in self.levels.iter().enumerate() {
            out.insert(format!("{prefix}.level{}", i + 1), json!(l));
        }
    }
}

/// A touch from a JSON object; keys beyond the touch's are ignored, strings trimmed and cut.
fn touch(raw: &Value) -> Option<Value> {
    let o = raw.as_object()?;
    let text = |k: &str| {
        o.get(k)
            .and_then(scalar_text)
            .map(|s| s.chars().take(128).collect::<String>())
    };
    let levels = match o.get("levels") {
        Some(Value::Array(a)) => a.iter().filter_map(scalar_text).collect(),
        Some(Value::String(s)) => split_levels(s),
        _ => Vec::new(),
    };
    let t = Touch {
        channel: text("channel"),
        media: text("media"),
        campaign: text("campaign"),
        content: text("content"),
        keyword: text("keyword"),
        levels: levels
            .into_iter()
            .map(|l| l.chars().take(128).collect())
            .take(MAX_LEVELS)
            .collect(),
        node: text("node"),
    };
    (!t.is_empty()).then(|| json!(t))
}

/// `a > b > c` or `a/b/c` into levels.
pub fn split_levels(s: &str) -> Vec<String> {
    s.split(['>', '/'])
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

fn scalar_text(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// A touch from tracking properties ([`proto::sdk::SOURCE_KEYS`]): `utm_source` → channel,
/// `utm_medium` → media, `utm_campaign`, `utm_content`, `utm_term` → keyword, `source_levels`
/// (list or `a > b`); `source.channel` etc. are accepted too. `None` when none is present.
pub fn touch_from_properties(p: &std::collections::BTreeMap<String, Value>) -> Option<Value> {
    let mut o = Map::new();
    for (field, keys) in [
        ("channel", ["utm_source", "source.channel"]),
        ("media", ["utm_medium", "source.media"]),
        ("campaign", ["utm_campaign", "source.campaign"]),
        ("content", ["utm_content", "source.content"]),
        ("keyword", ["utm_term", "source.keyword"]),
        ("levels", ["source_levels", "source.levels"]),
    ] {
        if let Some(v) = keys.iter().find_map(|k| p.get(*k)) {
            o.insert(field.to_string(), v.clone());
        }
    }
    touch(&Value::Object(o))
}

/// A typed phone number in E.164 with its country calling code (the namespace of phone
/// identifiers), validated against the numbering plans (libphonenumber's metadata); numbers
/// without a `+`/`00` prefix are read in `default_region` (ISO 3166 code, e.g. `CN`). `None` when it
/// is not a valid phone number.
pub fn normalise_phone(raw: &str, default_region: &str) -> Option<(String, String)> {
    use phonenumber::Mode;
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 32 {
        return None;
    }
    let raw = match raw.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => raw.to_string(),
    };
    let n = parse_phone(&raw, default_region)?;
    if !phonenumber::is_valid(&n) {
        return None;
    }
    Some((
        n.format().mode(Mode::E164).to_string(),
        n.code().value().to_string(),
    ))
}

/// Parses a number (`00` already turned into `+`): one with a `+` as the international number it
/// is — the default region's national prefix must not be taken off it (`+86 138…` read with
/// region `US` would lose its `1`) — one without in `default_region`.
fn parse_phone(raw: &str, default_region: &str) -> Option<phonenumber::PhoneNumber> {
    let region = if raw.starts_with('+') {
        None
    } else {
        default_region.parse::<phonenumber::country::Id>().ok()
    };
    phonenumber::parse(region, raw).ok()
}

/// A phone number given to look an identifier up, in E.164 with its country calling code (the
/// namespace of phone identifiers): any format [`normalise_phone`] reads — `+86 138…`,
/// `0086…`, or the national number WeChat itself returns (`13800138000`), read in
/// `region` — but, unlike a typed number, not required to be in the numbering plans: a number
/// WeChat verified is found even when libphonenumber's metadata lags behind. Only E.164's shape
/// (6–15 digits) is required. `None` when it is not a phone number at all.
pub fn lookup_phone(raw: &str, region: &str) -> Option<(String, String)> {
    use phonenumber::Mode;
    if let Some(found) = normalise_phone(raw, region) {
        return Some(found);
    }
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > 32 {
        return None;
    }
    let raw = match raw.strip_prefix("00") {
        Some(rest) => format!("+{rest}"),
        None => raw.to_string(),
    };
    let n = parse_phone(&raw, region)?;
    let e164 = n.format().mode(Mode::E164).to_string();
    let digits = e164.strip_prefix('+')?;
    let ok = (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| (e164.clone(), n.code().value().to_string()))
}

/// The main region (ISO 3166 code) of a country calling code (`86` → `CN`, `1` → `US`), the
/// region a national number given with that namespace is read in. `None` for an unknown code.
pub fn region_of_calling_code(code: &str) -> Option<String> {
    let code: u16 = code.trim().parse().ok()?;
    phonenumber::metadata::DATABASE
        .region(&code)?
        .first()
        .map(|r| r.to_string())
}

#[cfg(test)]
mod tests;
