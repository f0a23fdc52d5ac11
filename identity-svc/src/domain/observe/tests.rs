//! Tests of what events observe.

use super::*;
use proto::channel::{Channel, ChannelEvent, ExternalChatChange, ExternalContactChange};

static NO_SOURCES: std::sync::LazyLock<Registry> = std::sync::LazyLock::new(Registry::default);

fn ctx() -> ObserveCtx<'static> {
    ObserveCtx {
        default_region: "CN",
        custom: &[],
        sources: &NO_SOURCES,
        now: "2026-06-01T00:00:00Z".parse().unwrap(),
    }
}

fn cb(channel: Channel, app: &str, body: EventBody) -> Envelope {
    let ev = ChannelEvent {
        channel,
        to_user_name: "gh".into(),
        from_user_name: "o1".into(),
        create_time: 1_714_000_000,
        body,
    };
    let payload = serde_json::to_value(CallbackReceived {
        app_id: app.into(),
        event: ev.clone(),
    })
    .unwrap();
    Envelope::builder(ev.event_type(), "t1", payload).build()
}

#[test]
fn a_fresh_identifier_keeps_the_first_touch_and_the_newest_of_the_rest() {
    let claim = |field: &str, v: &str, at: &str| Claim {
        field: field.into(),
        value: serde_json::json!(v),
        trust: Trust::Wechat,
        source: "oa.subscribe".into(),
        at: at.parse().unwrap(),
    };
    let claims = [
        claim("source.first", "a", "2026-06-01T00:00:02Z"),
        claim("contact.city", "x", "2026-06-01T00:00:01Z"),
        claim("source.first", "b", "2026-06-01T00:00:01Z"),
        claim("contact.city", "y", "2026-06-01T00:00:01Z"),
        claim("source.first", "c", "2026-06-01T00:00:01Z"),
    ];
    let kept: Vec<(&str, &serde_json::Value)> = kept_claims(&claims)
        .into_iter()
        .map(|c| (c.field.as_str(), &c.value))
        .collect();
    assert_eq!(
        kept,
        [
            ("source.first", &serde_json::json!("b")),
            ("contact.city", &serde_json::json!("y"))
        ]
    );
}

#[test]
fn touches_through_a_bound_key_are_attributed_to_its_node() {
    use crate::domain::sources::Node;
    let node = |id: &str, parent: Option<&str>, name: &str| Node {
        id: id.into(),
        parent_id: parent.map(Into::into),
        name: name.into(),
        archived: false,
    };
    let sources = Registry::new(
        [
            node("n1", None, "offline"),
            node("n2", Some("n1"), "expo"),
            node("n3", Some("n2"), "booth 7"),
        ],
        [
            (BindingKind::OaScene, "booth_7".into(), "n3".into()),
            (BindingKind::WecomState, "booth_7".into(), "n3".into()),
            (BindingKind::UtmCampaign, "expo26".into(), "n2".into()),
        ],
    );
    let c = ObserveCtx {
        sources: &sources,
        ..ctx()
    };
    let env = cb(
        Channel::Oa,
        "wxA",
        EventBody::Subscribe {
            scene: Some("booth_7".into()),
            ticket: None,
        },
    );
    let o = observe(&env, None, &c);
    assert_eq!(
        o.claims[0].value,
        json!({"channel": "oa", "campaign": "booth_7", "levels": ["offline", "expo", "booth 7"], "node": "n3"})
    );
    // Unbound scene: the raw key only.
    let env = cb(
        Channel::Oa,
        "wxA",
        EventBody::Subscribe {
            scene: Some("spring".into()),
            ticket: None,
        },
    );
    assert_eq!(
        observe(&env, None, &c).claims[0].value,
        json!({"channel": "oa", "campaign": "spring"})
    );
    let t = Tracked {
        subject: proto::sdk::Subject::default(),
        kind: TrackKind::PageView,
        name: None,
        page: None,
        content: None,
        properties: [("utm_campaign".to_string(), json!("expo26"))]
            .into_iter()
            .collect(),
        event_id: None,
    };
    let env = Envelope::builder(TrackKind::PageView.routing_key(), "t1", json!(t)).build();
    let o = observe(&env, None, &c);
    assert_eq!(
        o.claims[0].value,
        json!({"campaign": "expo26", "levels": ["offline", "expo"], "node": "n2"})
    );
}

#[test]
fn subscribe_gives_subscription_and_touch() {
    let env = cb(
        Channel::Oa,
        "wxA",
        EventBody::Subscribe {
            scene: Some("spring".into()),
            ticket: None,
        },
    );
    let o = observe(&env, None, &ctx());
    assert!(
        matches!(&o.relations[0], RelationChange::Oa { subscribed: true, scene: Some(s), .. } if s == "spring")
    );
    assert_eq!(o.claims.len(), 2);
    assert_eq!(o.claims[0].field, "source.first");
    assert_eq!(
        o.claims[0].value,
        json!({"channel": "oa", "campaign": "spring"})
    );
}

#[test]
fn wecom_add_and_delete() {
    let mk = |t| {
        cb(
            Channel::WeCom,
            "wwC",
            EventBody::ExternalContact(ExternalContactChange {
                change_type: t,
                user_id: "rep1".into(),
                external_user_id: "wmX".into(),
                state: Some("expo".into()),
                welcome_code: None,
                source: None,
                fail_reason: None,
            }),
        )
    };
    let o = observe(
        &mk(ExternalContactChangeType::AddExternalContact),
        None,
        &ctx(),
    );
    assert!(
        matches!(&o.relations[0], RelationChange::Follow { user_id, change: FollowChange::Added { state: Some(s) }, .. } if user_id == "rep1" && s == "expo")
    );
    let o = observe(&mk(ExternalContactChangeType::DelFollowUser), None, &ctx());
    assert!(matches!(
        &o.relations[0],
        RelationChange::Follow {
            change: FollowChange::Deleted,
            ..
        }
    ));
    let e = Enriched {
        unionid: Some("u".into()),
        fields: wecom_contact_fields("张三", None, 1, Some("Acme"), None),
        follow: Some(FollowChange::Details {
            remark: Some("VIP".into()),
            add_way: Some(1),
            state: None,
            since: None,
            corp_tags: None,
        }),
        source: "wecom.external_contact".into(),
    };
    let o = observe(
        &mk(ExternalContactChangeType::EditExternalContact),
        Some(&e),
        &ctx(),
    );
    assert_eq!(o.relations.len(), 2);
    let fields: Vec<_> = o
        .claims
        .iter()
        .map(|c| (c.field.as_str(), c.trust))
        .collect();
    assert!(fields.contains(&("contact.gender", Trust::Wechat)));
    assert!(fields.contains(&("company.name", Trust::Wechat)));
}

#[test]
fn form_submit_types_fields_identifiers_and_issues() {
    let t = json!({"subject": {"anonymous_id": "dev"}, "kind": "form_submit",
        "properties": {"name": "Li Lei", "company": "Acme", "phone": "138 0013 8001",
            "email": "LI@Example.com", "contact.age": -4, "birthday": "2099-01-01",
            "custom.vip": 1, "utm_source": "baidu", "utm_term": "crm", "button": "ok"}});
    let env = Envelope::builder("channel.track.form_submit", "t1", t).build();
    let custom = [CustomField {
        name: "vip".into(),
        value_type: fields::FieldType::Bool,
        label: String::new(),
    }];
    let c = ObserveCtx {
        custom: &custom,
        ..ctx()
    };
    let o = observe(&env, None, &c);
    let ids: Vec<_> = o
        .identifiers
        .iter()
        .map(|f| f.identifier.value.as_str())
        .collect();
    assert_eq!(ids, vec!["li@example.com", "+8613800138001"]);
    let claims: BTreeMap<_, _> = o
        .claims
        .iter()
        .map(|c| (c.field.as_str(), c.value.clone()))
        .collect();
    assert_eq!(claims["contact.name"], json!("Li Lei"));
    assert_eq!(claims["company.name"], json!("Acme"));
    assert_eq!(claims["custom.vip"], json!(true));
    assert_eq!(
        claims["source.first"],
        json!({"channel": "baidu", "keyword": "crm"})
    );
    let issues: Vec<_> = o
        .issues
        .iter()
        .map(|i| (i.field.as_str(), i.reason))
        .collect();
    assert_eq!(
        issues,
        vec![
            ("contact.birthday", Rejection::FutureDate),
            ("contact.age", Rejection::ImpossibleAge),
        ]
    );
}

#[test]
fn group_member_changes() {
    let mk = |t, detail: Option<&str>| {
        cb(
            Channel::WeCom,
            "wwC",
            EventBody::ExternalChat(ExternalChatChange {
                change_type: t,
                chat_id: "chat1".into(),
                update_detail: detail.map(str::to_string),
                join_scene: None,
                quit_scene: None,
                mem_change_cnt: Some(2),
                mem_change_list: vec!["wmA".into(), "rep9".into()],
                last_mem_ver: None,
                cur_mem_ver: None,
            }),
        )
    };
    let g = group_change(&mk(ExternalChatChangeType::Update, Some("add_member"))).unwrap();
    assert_eq!(g.joined, vec!["wmA"]);
    let g = group_change(&mk(ExternalChatChangeType::Update, Some("del_member"))).unwrap();
    assert_eq!(g.left, vec!["wmA"]);
    assert!(
        group_change(&mk(ExternalChatChangeType::Dismiss, None))
            .unwrap()
            .dismissed
    );
    assert!(group_change(&mk(ExternalChatChangeType::Update, Some("change_name"))).is_none());
}
