//! A profile's state derived from what its identifiers' sources said: the field values (conflict
//! strategy per field) and the relationship state. Pure: the same records always give the same
//! state, so a merge is "derive over both sides' records" and an un-merge "derive each side again".

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use proto::identity::{GroupChatMembership, OaSubscription, Reachability, Relations, WecomFollow};
use serde_json::{json, Value};

use super::fields::{self, Strategy, Touch};
use super::observe::Trust;

/// One stored statement about a field (a row of `property_records`).
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub id: i64,
    pub field: String,
    pub value: Value,
    pub trust: Trust,
    pub at: DateTime<Utc>,
}

/// A contact identifier shown as a field (masked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactValue {
    pub masked: String,
    /// Verified by WeChat (a mini-program phone).
    pub verified: bool,
    /// Identifier row id: newer rows win among equals.
    pub id: i64,
}

/// The derived fields by dotted key: catalogue fields, touches flattened (`source.first.channel`,
/// `source.first.level2`), `contact.phone` / `contact.email` from identifiers (masked).
pub fn fields(
    records: &[Record],
    phones: &[ContactValue],
    emails: &[ContactValue],
) -> BTreeMap<String, Value> {
    let mut best: BTreeMap<&str, &Record> = BTreeMap::new();
    for r in records {
        let wins = match best.get(r.field.as_str()) {
            None => true,
            Some(cur) => match fields::strategy(&r.field) {
                Strategy::Trusted => (r.trust, r.at, r.id) > (cur.trust, cur.at, cur.id),
                Strategy::Earliest => (r.at, r.id) < (cur.at, cur.id),
                Strategy::Latest => (r.at, r.id) > (cur.at, cur.id),
            },
        };
        if wins {
            best.insert(&r.field, r);
        }
    }
    let mut out = BTreeMap::new();
    for (field, r) in best {
        if r.value.is_null() {
            // An operator cleared the field.
            continue;
        }
        if matches!(field, "source.first" | "source.latest") {
            if let Ok(t) = serde_json::from_value::<Touch>(r.value.clone()) {
                t.flatten(field, &mut out);
            }
        } else {
            out.insert(field.to_string(), r.value.clone());
        }
    }
    for (field, values) in [("contact.phone", phones), ("contact.email", emails)] {
        if let Some(v) = values.iter().max_by_key(|v| (v.verified, v.id)) {
            out.insert(field.to_string(), json!(v.masked));
        }
    }
    out
}

/// The name shown in lists and searched by prefix: the name, else the nickname.
pub fn display_name(fields: &BTreeMap<String, Value>) -> Option<String> {
    ["contact.name", "contact.nickname"]
        .iter()
        .find_map(|k| fields.get(*k).and_then(Value::as_str))
        .map(|s| s.chars().take(128).collect())
}

/// Relationship state from the profile's subscription, follow and membership rows. Rows of one
/// app / rep / group held through several identifiers fold into one (active wins, then newest).
pub fn relations(
    oa: Vec<OaSubscription>,
    follows: Vec<WecomFollow>,
    groups: Vec<GroupChatMembership>,
) -> Relations {
    let mut by_app: BTreeMap<String, OaSubscription> = BTreeMap::new();
    for s in oa {
        let keep = match by_app.get(&s.app_id) {
            None => true,
            Some(cur) => (s.subscribed, s.changed_at) > (cur.subscribed, cur.changed_at),
        };
        if keep {
            by_app.insert(s.app_id.clone(), s);
        }
    }
    let mut by_rep: BTreeMap<(String, String), WecomFollow> = BTreeMap::new();
    for f in follows {
        let key = (f.corp_id.clone(), f.user_id.clone());
        let keep = match by_rep.get(&key) {
            None => true,
            Some(cur) => (f.is_active(), f.added_at) > (cur.is_active(), cur.added_at),
        };
        if keep {
            by_rep.insert(key, f);
        }
    }
    let mut by_chat: BTreeMap<(String, String), GroupChatMembership> = BTreeMap::new();
    for g in groups {
        let key = (g.corp_id.clone(), g.chat_id.clone());
        let keep = by_chat
            .get(&key)
            .is_none_or(|cur| g.joined_at < cur.joined_at);
        if keep {
            by_chat.insert(key, g);
        }
    }
    let oa_subscriptions: Vec<OaSubscription> = by_app.into_values().collect();
    let wecom_follows: Vec<WecomFollow> = by_rep.into_values().collect();
    let reachable = Reachability {
        oa: oa_subscriptions.iter().any(|s| s.subscribed),
        wecom: wecom_follows.iter().any(WecomFollow::is_active),
    };
    Relations {
        oa_subscriptions,
        wecom_follows,
        group_chats: by_chat.into_values().collect(),
        reachable,
    }
}

/// Keys that differ between two field maps, plus `relations.*` parts that changed.
pub fn changed_keys(
    old_fields: &BTreeMap<String, Value>,
    new_fields: &BTreeMap<String, Value>,
    old_rel: &Relations,
    new_rel: &Relations,
) -> Vec<String> {
    let mut out: Vec<String> = old_fields
        .keys()
        .chain(new_fields.keys())
        .filter(|k| old_fields.get(*k) != new_fields.get(*k))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    if old_rel.oa_subscriptions != new_rel.oa_subscriptions {
        out.push("relations.oa".into());
    }
    if old_rel.wecom_follows != new_rel.wecom_follows {
        out.push("relations.wecom".into());
    }
    if old_rel.group_chats != new_rel.group_chats {
        out.push("relations.groups".into());
    }
    if old_rel.reachable != new_rel.reachable {
        out.push("relations.reachable".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        format!("2026-01-{s}T00:00:00Z").parse().unwrap()
    }

    fn rec(id: i64, field: &str, v: Value, trust: Trust, day: &str) -> Record {
        Record {
            id,
            field: field.into(),
            value: v,
            trust,
            at: t(day),
        }
    }

    #[test]
    fn verified_beats_typed_newest_among_equals_first_touch_kept() {
        let f = fields(
            &[
                rec(1, "contact.name", json!("typed new"), Trust::Typed, "20"),
                rec(2, "contact.name", json!("wechat old"), Trust::Wechat, "01"),
                rec(3, "contact.city", json!("Beijing"), Trust::Typed, "01"),
                rec(4, "contact.city", json!("Shanghai"), Trust::Typed, "05"),
                rec(
                    5,
                    "source.first",
                    json!({"channel": "b"}),
                    Trust::Observed,
                    "09",
                ),
                rec(
                    6,
                    "source.first",
                    json!({"channel": "a", "levels": ["x", "y"]}),
                    Trust::Observed,
                    "02",
                ),
                rec(
                    7,
                    "source.latest",
                    json!({"channel": "b"}),
                    Trust::Observed,
                    "09",
                ),
                rec(
                    8,
                    "source.latest",
                    json!({"channel": "a"}),
                    Trust::Observed,
                    "02",
                ),
            ],
            &[
                ContactValue {
                    masked: "+86138****0001".into(),
                    verified: false,
                    id: 9,
                },
                ContactValue {
                    masked: "+86139****0002".into(),
                    verified: true,
                    id: 3,
                },
            ],
            &[],
        );
        assert_eq!(f["contact.name"], json!("wechat old"));
        assert_eq!(f["contact.city"], json!("Shanghai"));
        assert_eq!(f["source.first.channel"], json!("a"));
        assert_eq!(f["source.first.level2"], json!("y"));
        assert_eq!(f["source.latest.channel"], json!("b"));
        assert!(!f.contains_key("source.latest.level1"));
        assert_eq!(f["contact.phone"], json!("+86139****0002"));
        assert_eq!(display_name(&f).as_deref(), Some("wechat old"));
    }

    #[test]
    fn relations_fold_and_reachability() {
        let follow = |user: &str, added: &str, deleted: Option<&str>| WecomFollow {
            corp_id: "c".into(),
            user_id: user.into(),
            external_userid: None,
            remark: None,
            add_way: None,
            state: None,
            added_at: t(added),
            deleted_at: deleted.map(t),
            corp_tags: None,
        };
        let r = relations(
            vec![
                OaSubscription {
                    app_id: "a".into(),
                    subscribed: false,
                    scene: None,
                    changed_at: t("09"),
                },
                OaSubscription {
                    app_id: "a".into(),
                    subscribed: true,
                    scene: None,
                    changed_at: t("01"),
                },
            ],
            vec![
                follow("r1", "01", Some("03")),
                follow("r1", "02", None),
                follow("r2", "01", Some("02")),
            ],
            vec![],
        );
        assert_eq!(r.oa_subscriptions.len(), 1);
        assert!(r.reachable.oa && r.reachable.wecom);
        assert_eq!(r.wecom_follows.len(), 2);
        assert!(r.wecom_follows[0].is_active());
        let none = relations(vec![], vec![follow("r2", "01", Some("02"))], vec![]);
        assert!(!none.reachable.oa && !none.reachable.wecom);
        let keys = changed_keys(
            &BTreeMap::new(),
            &BTreeMap::from([("x".to_string(), json!(1))]),
            &none,
            &r,
        );
        assert_eq!(
            keys,
            vec![
                "x",
                "relations.oa",
                "relations.wecom",
                "relations.reachable"
            ]
        );
    }
}
