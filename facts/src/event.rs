//! A resolved channel event as a behaviour fact: its kind (the routing key without `channel.`),
//! its tenant-local day and hour and the properties behaviour filters can read.
//!
//! | event | properties |
//! |---|---|
//! | `track.*` | `name`, `page`, `content.id`, `content.tags` (list), and every property the page sent whose key is a valid fact key |
//! | `oa.subscribe`, `oa.scan` | `app_id`, `scene` |
//! | `oa.click` | `app_id`, `key`; `oa.view`: `app_id`, `url` |
//! | `*.message.*` | `app_id`, `msg_type`, `content` (text messages) |
//! | `wecom.external_contact.*` | `app_id`, `user_id` (the rep), `state` |
//! | others | `app_id` |

pub use platform::clock::local_day;
use platform::clock::Tz;
use proto::callback::CallbackReceived;
use proto::channel::{EventBody, MessageContent};
use proto::sdk::{Tracked, TRACK_PREFIX};
use proto::Envelope;
use rules::{EventFact, FactValue, CONTENT_TAGS_KEY};
use serde_json::Value;

/// The behaviour kind of an event type: `channel.track.page_view` → `track.page_view`.
pub fn event_kind(event_type: &str) -> &str {
    event_type.strip_prefix("channel.").unwrap_or(event_type)
}

fn put(e: &mut EventFact, key: &str, v: &Value) {
    if !rules::valid_key(key) || e.props.contains_key(key) {
        return;
    }
    let values = FactValue::from_json_multi(v);
    if !values.is_empty() {
        e.props.insert(key.to_string(), values);
    }
}

fn put_str(e: &mut EventFact, key: &str, v: Option<&str>) {
    if let Some(v) = v.filter(|v| !v.is_empty()) {
        e.props
            .insert(key.to_string(), vec![FactValue::Str(v.to_string())]);
    }
}

/// The tenant-local hour (0–23) of `at` in `zone`.
pub fn local_hour(at: chrono::DateTime<chrono::Utc>, zone: Tz) -> u8 {
    use chrono::Timelike;
    u8::try_from(at.with_timezone(&zone).hour()).unwrap_or(0)
}

/// The behaviour fact of `env` (the original channel event of a `profile.resolved`), its day
/// and hour counted in `zone`.
pub fn event_fact(env: &Envelope, zone: Tz) -> EventFact {
    let mut e = EventFact::new(
        env.id.to_string(),
        event_kind(&env.kind),
        local_day(env.occurred_at, zone),
    )
    .at_hour(local_hour(env.occurred_at, zone));
    if env
        .kind
        .strip_prefix(TRACK_PREFIX)
        .is_some_and(|r| r.starts_with('.'))
    {
        if let Ok(t) = env.payload_as::<Tracked>() {
            put_str(&mut e, "name", t.name.as_deref());
            put_str(&mut e, "page", t.page.as_deref());
            if let Some(c) = &t.content {
                put_str(&mut e, "content.id", Some(&c.id));
                let mut tags: Vec<&String> = c.tags.iter().filter(|t| !t.is_empty()).collect();
                tags.sort();
                tags.dedup();
                if !tags.is_empty() {
                    e.props.insert(
                        CONTENT_TAGS_KEY.to_string(),
                        tags.into_iter()
                            .map(|t| FactValue::Str(t.clone()))
                            .collect(),
                    );
                }
            }
            for (k, v) in &t.properties {
                put(&mut e, k, v);
            }
        }
        return e;
    }
    let Ok(cb) = env.payload_as::<CallbackReceived>() else {
        return e;
    };
    put_str(&mut e, "app_id", Some(&cb.app_id));
    match &cb.event.body {
        EventBody::Subscribe { scene, .. } => put_str(&mut e, "scene", scene.as_deref()),
        EventBody::Scan { scene, .. } => put_str(&mut e, "scene", Some(scene)),
        EventBody::Click { key } => put_str(&mut e, "key", Some(key)),
        EventBody::View { url, .. } => put_str(&mut e, "url", Some(url)),
        EventBody::Message(m) => {
            put_str(&mut e, "msg_type", Some(m.content.msg_type()));
            if let MessageContent::Text { content } = &m.content {
                put_str(&mut e, "content", Some(content));
            }
        }
        EventBody::ExternalContact(c) => {
            put_str(&mut e, "user_id", Some(&c.user_id));
            put_str(&mut e, "state", c.state.as_deref());
        }
        _ => {}
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tracked_events_keep_their_properties_and_content_tags() {
        let env = Envelope::builder(
            "channel.track.page_view",
            "t",
            json!({"subject": {"anonymous_id": "a"}, "kind": "page_view", "page": "/cases/1",
                   "content": {"id": "case-1", "tags": ["case_study", "retail", "case_study"]},
                   "properties": {"duration": 42, "Bad Key": 1, "page": "ignored"}}),
        )
        .occurred_at("2026-01-01T17:00:00Z".parse().unwrap())
        .build();
        let e = event_fact(&env, chrono_tz::Asia::Shanghai);
        assert_eq!(e.kind, "track.page_view");
        assert_eq!(
            e.day.to_string(),
            "2026-01-02",
            "17:00 UTC is the next day in Beijing"
        );
        assert_eq!(e.hour, Some(1), "at 01:00 in Beijing");
        assert_eq!(e.props["page"], vec![FactValue::Str("/cases/1".into())]);
        assert_eq!(e.props["duration"], vec![FactValue::Num(42.0)]);
        assert!(!e.props.contains_key("Bad Key"));
        assert_eq!(
            e.metrics(),
            vec!["e:track.page_view", "c:case_study", "c:retail"]
        );
    }

    #[test]
    fn days_follow_the_zone() {
        let at: chrono::DateTime<chrono::Utc> = "2026-01-01T23:30:00Z".parse().unwrap();
        assert_eq!(local_day(at, chrono_tz::UTC).to_string(), "2026-01-01");
        assert_eq!(
            local_day(at, chrono_tz::Europe::Berlin).to_string(),
            "2026-01-02"
        );
        assert_eq!(
            local_day(at, chrono_tz::Atlantic::Azores).to_string(),
            "2026-01-01"
        );
    }
}
