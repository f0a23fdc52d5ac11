//! Validation of tracking batches: each event is checked on its own and refused with the field at
//! fault, so one bad event never costs the rest of the batch.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use proto::sdk::{Content, Subject, TrackKind, Tracked};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Limits on what one batch may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrackLimits {
    /// Events per request.
    #[serde(default = "default_max_events")]
    pub max_events: usize,
    /// Properties per event.
    #[serde(default = "default_max_properties")]
    pub max_properties: usize,
    /// Serialised size of one event's properties, in bytes.
    #[serde(default = "default_max_properties_bytes")]
    pub max_properties_bytes: usize,
    /// How far in the past an event's `ts` may lie, in seconds (offline queues flush late).
    #[serde(default = "default_max_age_secs")]
    pub max_age_secs: i64,
    /// Requests per minute per session token or write key.
    #[serde(default = "default_rate_per_minute")]
    pub rate_per_minute: u32,
}

fn default_max_events() -> usize {
    100
}
fn default_max_properties() -> usize {
    50
}
fn default_max_properties_bytes() -> usize {
    8 * 1024
}
fn default_max_age_secs() -> i64 {
    7 * 24 * 3600
}
fn default_rate_per_minute() -> u32 {
    600
}

impl Default for TrackLimits {
    fn default() -> Self {
        TrackLimits {
            max_events: default_max_events(),
            max_properties: default_max_properties(),
            max_properties_bytes: default_max_properties_bytes(),
            max_age_secs: default_max_age_secs(),
            rate_per_minute: default_rate_per_minute(),
        }
    }
}

/// Why one event was refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventError {
    /// Position in the batch.
    pub index: usize,
    /// Stable code.
    pub code: &'static str,
    /// Names the field at fault.
    pub message: String,
}

/// An accepted event with its time.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub event: Tracked,
    pub occurred_at: DateTime<Utc>,
}

/// One event as sent by the SDK.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    event_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    #[serde(default)]
    ts: Option<i64>,
    #[serde(default)]
    page: Option<String>,
    #[serde(default)]
    anonymous_id: Option<String>,
    #[serde(default)]
    content: Option<WireContent>,
    #[serde(default)]
    properties: Option<BTreeMap<String, Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireContent {
    id: String,
    #[serde(default)]
    tags: Vec<String>,
}

fn token_ok(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.' || b == b':')
}

/// Validates event `index` of a batch for `subject` at time `now`.
pub fn validate(
    index: usize,
    raw: &Value,
    subject: &Subject,
    limits: &TrackLimits,
    now: DateTime<Utc>,
) -> Result<Accepted, EventError> {
    let err = |code: &'static str, message: String| EventError {
        index,
        code,
        message,
    };
    let wire: Wire = Wire::deserialize(raw)
        .map_err(|e| err("invalid_event", format!("events[{index}]: {e}")))?;
    let kind = TrackKind::parse(&wire.kind).ok_or_else(|| {
        err(
            "invalid_type",
            format!(
                "events[{index}].type: `{}` is not one of page_view, click, share, download, form_submit, custom",
                wire.kind
            ),
        )
    })?;
    if let Some(name) = &wire.name {
        if !token_ok(name, 64) {
            return Err(err(
                "invalid_name",
                format!("events[{index}].name: 1–64 characters of letters, digits, _ - . :"),
            ));
        }
    } else if kind == TrackKind::Custom {
        return Err(err(
            "missing_name",
            format!("events[{index}].name: required for custom events"),
        ));
    }
    if let Some(id) = &wire.event_id {
        if !token_ok(id, 64) {
            return Err(err(
                "invalid_event_id",
                format!("events[{index}].event_id: 1–64 characters of letters, digits, _ - . :"),
            ));
        }
    }
    if wire.event_id.is_some() && wire.ts.is_none() {
        return Err(err(
            "missing_ts",
            format!(
                "events[{index}].ts: required with event_id, so a resent event keeps its identity"
            ),
        ));
    }
    let occurred_at = match wire.ts {
        None => now,
        Some(ms) => {
            let at = Utc
                .timestamp_millis_opt(ms)
                .single()
                .ok_or_else(|| err("invalid_ts", format!("events[{index}].ts: not a time")))?;
            if at > now + chrono::Duration::minutes(5) {
                return Err(err(
                    "invalid_ts",
                    format!("events[{index}].ts: in the future"),
                ));
            }
            if at < now - chrono::Duration::seconds(limits.max_age_secs) {
                return Err(err(
                    "invalid_ts",
                    format!("events[{index}].ts: older than {} s", limits.max_age_secs),
                ));
            }
            at
        }
    };
    if let Some(page) = &wire.page {
        if page.is_empty() || page.len() > 2048 {
            return Err(err(
                "invalid_page",
                format!("events[{index}].page: 1–2048 bytes"),
            ));
        }
    }
    let mut subject = subject.clone();
    if let Some(anon) = wire.anonymous_id {
        if !token_ok(&anon, 128) {
            return Err(err(
                "invalid_anonymous_id",
                format!(
                    "events[{index}].anonymous_id: 1–128 characters of letters, digits, _ - . :"
                ),
            ));
        }
        subject.anonymous_id = Some(anon);
    }
    if subject.openid.is_none() && subject.unionid.is_none() && subject.anonymous_id.is_none() {
        return Err(err(
            "missing_subject",
            format!("events[{index}].anonymous_id: required when the request has no session token"),
        ));
    }
    let content = match wire.content {
        None => None,
        Some(c) => {
            if !token_ok(&c.id, 128) {
                return Err(err(
                    "invalid_content",
                    format!("events[{index}].content.id: 1–128 characters"),
                ));
            }
            if c.tags.len() > 20
                || c.tags
                    .iter()
                    .any(|t| t.is_empty() || t.chars().count() > 32)
            {
                return Err(err(
                    "invalid_content",
                    format!("events[{index}].content.tags: at most 20 tags of 1–32 characters"),
                ));
            }
            Some(Content {
                id: c.id,
                tags: c.tags,
            })
        }
    };
    let properties = wire.properties.unwrap_or_default();
    if properties.len() > limits.max_properties {
        return Err(err(
            "too_many_properties",
            format!(
                "events[{index}].properties: at most {} keys",
                limits.max_properties
            ),
        ));
    }
    for (key, value) in &properties {
        if key.is_empty() || key.len() > 64 {
            return Err(err(
                "invalid_property",
                format!("events[{index}].properties: key `{key}` must be 1–64 bytes"),
            ));
        }
        if proto::sdk::is_unread_source_key(key) {
            return Err(err(
                "unread_source_key",
                format!(
                    "events[{index}].properties.{key}: not a source property; the source is read \
                     from {}",
                    proto::sdk::SOURCE_KEYS.join(", ")
                ),
            ));
        }
        let scalar = |v: &Value| !v.is_object() && !v.is_array();
        let ok = match value {
            Value::Array(items) => items.len() <= 50 && items.iter().all(scalar),
            v => scalar(v),
        };
        if !ok {
            return Err(err(
                "invalid_property",
                format!(
                    "events[{index}].properties.{key}: scalars or a list of at most 50 scalars"
                ),
            ));
        }
    }
    let size = serde_json::to_vec(&properties)
        .map(|v| v.len())
        .unwrap_or(usize::MAX);
    if size > limits.max_properties_bytes {
        return Err(err(
            "properties_too_large",
            format!(
                "events[{index}].properties: {size} bytes, at most {}",
                limits.max_properties_bytes
            ),
        ));
    }
    Ok(Accepted {
        event: Tracked {
            subject,
            kind,
            name: wire.name,
            page: wire.page,
            content,
            properties,
            event_id: wire.event_id,
        },
        occurred_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn subject() -> Subject {
        Subject {
            mp_app_id: Some("wxmp".into()),
            openid: Some("o1".into()),
            ..Default::default()
        }
    }

    fn check(raw: Value) -> Result<Accepted, EventError> {
        validate(3, &raw, &subject(), &TrackLimits::default(), Utc::now())
    }

    #[test]
    fn accepts_a_page_view_with_content_tags() {
        let e = check(json!({"type": "page_view", "event_id": "e-1"})).unwrap_err();
        assert_eq!(e.code, "missing_ts");
        let a = check(json!({"type": "page_view", "page": "/cases/retail", "event_id": "e-1", "ts": Utc::now().timestamp_millis(),
            "content": {"id": "case-42", "tags": ["零售", "案例"]}, "properties": {"duration_ms": 5400}}))
        .unwrap();
        assert_eq!(a.event.kind, TrackKind::PageView);
        assert_eq!(a.event.content.unwrap().tags.len(), 2);
    }

    #[test]
    fn refusals_name_the_field() {
        let e = check(json!({"type": "teleport"})).unwrap_err();
        assert_eq!((e.index, e.code), (3, "invalid_type"));
        assert!(e.message.starts_with("events[3].type"), "{}", e.message);
        assert_eq!(
            check(json!({"type": "custom"})).unwrap_err().code,
            "missing_name"
        );
        let e = check(json!({"type": "click", "properties": {"a": {"nested": 1}}})).unwrap_err();
        assert!(e.message.contains("properties.a"), "{}", e.message);
        let e = check(json!({"type": "click", "ts": Utc::now().timestamp_millis() + 3_600_000}))
            .unwrap_err();
        assert_eq!(e.code, "invalid_ts");
        let e = check(json!({"type": "click", "colour": "red"})).unwrap_err();
        assert!(e.message.contains("colour"), "{}", e.message);
        let big: BTreeMap<String, Value> = (0..60).map(|i| (format!("k{i}"), json!(i))).collect();
        assert_eq!(
            check(json!({"type": "click", "properties": big}))
                .unwrap_err()
                .code,
            "too_many_properties"
        );
        let e = check(json!({"type": "page_view", "properties": {"source.level1": "expo"}}))
            .unwrap_err();
        assert_eq!(e.code, "unread_source_key");
        assert!(
            e.message.contains("properties.source.level1"),
            "{}",
            e.message
        );
        assert!(e.message.contains("source_levels"), "{}", e.message);
        for read in proto::sdk::SOURCE_KEYS {
            assert!(
                check(json!({"type": "page_view", "properties": {read: "x"}})).is_ok(),
                "{read} is read"
            );
        }
        let long = "x".repeat(9000);
        assert_eq!(
            check(json!({"type": "click", "properties": {"p": long}}))
                .unwrap_err()
                .code,
            "properties_too_large"
        );
    }

    #[test]
    fn anonymous_visitors_need_an_id() {
        let none = Subject::default();
        let e = validate(
            0,
            &json!({"type": "click"}),
            &none,
            &TrackLimits::default(),
            Utc::now(),
        )
        .unwrap_err();
        assert_eq!(e.code, "missing_subject");
        let ok = validate(
            0,
            &json!({"type": "click", "anonymous_id": "dev-123"}),
            &none,
            &TrackLimits::default(),
            Utc::now(),
        );
        assert_eq!(
            ok.unwrap().event.subject.anonymous_id.as_deref(),
            Some("dev-123")
        );
    }
}
