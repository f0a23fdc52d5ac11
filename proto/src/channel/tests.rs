use super::*;

fn oa(from: &str, t: i64, body: EventBody) -> ChannelEvent {
    ChannelEvent {
        channel: Channel::Oa,
        to_user_name: "gh_0a1b2c3d4e5f".into(),
        from_user_name: from.into(),
        create_time: t,
        body,
    }
}

fn wecom(t: i64, body: EventBody) -> ChannelEvent {
    ChannelEvent {
        channel: Channel::WeCom,
        to_user_name: "ww9f8e7d6c5b4a3f2e".into(),
        from_user_name: "sys".into(),
        create_time: t,
        body,
    }
}

fn msg(id: u64, content: MessageContent) -> EventBody {
    EventBody::Message(Message {
        msg_id: id,
        msg_data_id: None,
        idx: None,
        agent_id: None,
        content,
    })
}

fn contact(ct: ExternalContactChangeType, user: &str, ext: &str) -> ExternalContactChange {
    ExternalContactChange {
        change_type: ct,
        user_id: user.into(),
        external_user_id: ext.into(),
        state: None,
        welcome_code: None,
        source: None,
        fail_reason: None,
    }
}

fn chat(ct: ExternalChatChangeType) -> ExternalChatChange {
    ExternalChatChange {
        change_type: ct,
        chat_id: "wrChat".into(),
        update_detail: None,
        join_scene: None,
        quit_scene: None,
        mem_change_cnt: None,
        mem_change_list: vec![],
        last_mem_ver: None,
        cur_mem_ver: None,
    }
}

fn unknown(fields: &[(&str, &str)]) -> EventBody {
    EventBody::Unknown {
        msg_type: "event".into(),
        event: Some("kf_close_session".into()),
        change_type: None,
        fields: fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// A sample of every body kind, all distinct facts.
fn samples() -> Vec<ChannelEvent> {
    use ExternalContactChangeType as C;
    let mut v = vec![
        oa(
            "o1",
            100,
            EventBody::Subscribe {
                scene: None,
                ticket: None,
            },
        ),
        oa(
            "o1",
            100,
            EventBody::Subscribe {
                scene: Some("a".into()),
                ticket: Some("t".into()),
            },
        ),
        oa(
            "o1",
            100,
            EventBody::Subscribe {
                scene: Some("a".into()),
                ticket: None,
            },
        ),
        oa(
            "o2",
            100,
            EventBody::Subscribe {
                scene: None,
                ticket: None,
            },
        ),
        oa(
            "o1",
            101,
            EventBody::Subscribe {
                scene: None,
                ticket: None,
            },
        ),
        oa("o1", 100, EventBody::Unsubscribe),
        oa(
            "o1",
            100,
            EventBody::Scan {
                scene: "a".into(),
                ticket: Some("t".into()),
            },
        ),
        oa("o1", 100, EventBody::Click { key: "K1".into() }),
        oa("o1", 100, EventBody::Click { key: "K2".into() }),
        oa("o1", 100, EventBody::Click { key: "K|1".into() }),
        oa("o1", 100, EventBody::Click { key: "~".into() }),
        oa(
            "o1",
            100,
            EventBody::View {
                url: "https://x/".into(),
                menu_id: None,
            },
        ),
        oa(
            "o1",
            100,
            EventBody::Location {
                latitude: 23.1,
                longitude: 113.3,
                precision: 119.0,
            },
        ),
        oa(
            "o1",
            100,
            EventBody::Location {
                latitude: 23.1,
                longitude: 113.31,
                precision: 119.0,
            },
        ),
        oa(
            "o1",
            100,
            EventBody::TemplateSendJobFinish {
                msg_id: 1,
                status: "success".into(),
            },
        ),
        oa(
            "o1",
            100,
            EventBody::TemplateSendJobFinish {
                msg_id: 2,
                status: "success".into(),
            },
        ),
        oa(
            "o1",
            100,
            EventBody::MassSendJobFinish {
                msg_id: 1,
                status: "send success".into(),
                total_count: Some(3),
                filter_count: None,
                sent_count: None,
                error_count: None,
            },
        ),
        oa(
            "o1",
            100,
            EventBody::SubscribeMsgPopup {
                items: vec![SubscribeMsgPopupItem {
                    template_id: "T1".into(),
                    status: "accept".into(),
                    popup_scene: Some("2".into()),
                }],
            },
        ),
        oa(
            "o1",
            100,
            EventBody::SubscribeMsgPopup {
                items: vec![
                    SubscribeMsgPopupItem {
                        template_id: "T1".into(),
                        status: "accept".into(),
                        popup_scene: Some("2".into()),
                    },
                    SubscribeMsgPopupItem {
                        template_id: "T2".into(),
                        status: "reject".into(),
                        popup_scene: Some("2".into()),
                    },
                ],
            },
        ),
        oa(
            "o1",
            100,
            EventBody::SubscribeMsgChange {
                items: vec![SubscribeMsgChangeItem {
                    template_id: "T1".into(),
                    status: "reject".into(),
                }],
            },
        ),
        oa(
            "o1",
            100,
            EventBody::SubscribeMsgSent {
                items: vec![SubscribeMsgSentItem {
                    template_id: "T1".into(),
                    msg_id: Some(9),
                    error_code: Some(0),
                    error_status: Some("success".into()),
                }],
            },
        ),
        oa(
            "o1",
            100,
            msg(
                1,
                MessageContent::Text {
                    content: "hi".into(),
                },
            ),
        ),
        oa(
            "o1",
            100,
            msg(
                2,
                MessageContent::Text {
                    content: "hi".into(),
                },
            ),
        ),
        oa(
            "o1",
            100,
            msg(
                3,
                MessageContent::Image {
                    pic_url: None,
                    media_id: "m".into(),
                },
            ),
        ),
        oa("o1", 100, unknown(&[("A", "1")])),
        oa("o1", 100, unknown(&[("A", "2")])),
        oa("o1", 100, unknown(&[("A", "1"), ("B", "")])),
        oa("o1", 100, unknown(&[("A|B", "1")])),
        oa("o1", 100, unknown(&[("A", "|B|1")])),
    ];
    for ct in C::ALL {
        v.push(wecom(
            200,
            EventBody::ExternalContact(contact(ct, "u1", "wm1")),
        ));
    }
    v.push(wecom(
        200,
        EventBody::ExternalContact(contact(C::AddExternalContact, "u2", "wm1")),
    ));
    v.push(wecom(
        200,
        EventBody::ExternalContact(contact(C::AddExternalContact, "u1", "wm2")),
    ));
    v.push(wecom(
        201,
        EventBody::ExternalContact(contact(C::AddExternalContact, "u1", "wm1")),
    ));
    let mut with_state = contact(C::AddExternalContact, "u1", "wm1");
    with_state.state = Some("expo".into());
    v.push(wecom(200, EventBody::ExternalContact(with_state)));
    for ct in ExternalChatChangeType::ALL {
        v.push(wecom(200, EventBody::ExternalChat(chat(ct))));
    }
    let mut add = chat(ExternalChatChangeType::Update);
    add.update_detail = Some("add_member".into());
    add.mem_change_list = vec!["wm1".into()];
    v.push(wecom(200, EventBody::ExternalChat(add.clone())));
    add.mem_change_list = vec!["wm1".into(), "wm2".into()];
    v.push(wecom(200, EventBody::ExternalChat(add)));
    for ct in ExternalTagChangeType::ALL {
        v.push(wecom(
            200,
            EventBody::ExternalTag(ExternalTagChange {
                change_type: ct,
                id: "et1".into(),
                tag_type: Some("tag".into()),
                strategy_id: None,
            }),
        ));
    }
    let mut mp = oa(
        "o1",
        100,
        msg(
            1,
            MessageContent::Text {
                content: "hi".into(),
            },
        ),
    );
    mp.channel = Channel::Mp;
    v.push(mp);
    let mut enter = oa(
        "o1",
        100,
        EventBody::UserEnterTempsession {
            session_from: Some("p".into()),
        },
    );
    enter.channel = Channel::Mp;
    v.push(enter);
    v
}

fn is_routing_key(key: &str) -> bool {
    key.split('.').all(|w| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    })
}

#[test]
fn routing_keys() {
    let cases = [
        (
            oa(
                "o",
                1,
                EventBody::Subscribe {
                    scene: None,
                    ticket: None,
                },
            ),
            "channel.oa.subscribe",
        ),
        (oa("o", 1, EventBody::Unsubscribe), "channel.oa.unsubscribe"),
        (
            oa(
                "o",
                1,
                EventBody::Scan {
                    scene: "1".into(),
                    ticket: None,
                },
            ),
            "channel.oa.scan",
        ),
        (
            oa(
                "o",
                1,
                msg(
                    1,
                    MessageContent::Text {
                        content: "x".into(),
                    },
                ),
            ),
            "channel.oa.message.text",
        ),
        (
            wecom(
                1,
                EventBody::ExternalContact(contact(
                    ExternalContactChangeType::AddExternalContact,
                    "u",
                    "w",
                )),
            ),
            "channel.wecom.external_contact.add_external_contact",
        ),
        (
            wecom(
                1,
                EventBody::ExternalChat(chat(ExternalChatChangeType::Update)),
            ),
            "channel.wecom.external_chat.update",
        ),
        (oa("o", 1, unknown(&[])), "channel.oa.unknown"),
    ];
    for (event, key) in cases {
        assert_eq!(event.event_type(), key);
    }
    for e in samples() {
        let key = e.event_type();
        assert!(is_routing_key(&key), "{key}");
        assert!(
            key.starts_with(&format!("channel.{}.", e.channel())),
            "{key}"
        );
    }
    let mut mp = oa(
        "o",
        1,
        msg(
            1,
            MessageContent::MiniProgramPage {
                title: None,
                app_id: None,
                page_path: None,
                thumb_url: None,
                thumb_media_id: None,
            },
        ),
    );
    mp.channel = Channel::Mp;
    assert_eq!(mp.event_type(), "channel.mp.message.miniprogrampage");
    let tag = wecom(
        1,
        EventBody::ExternalTag(ExternalTagChange {
            change_type: ExternalTagChangeType::Create,
            id: "x".into(),
            tag_type: None,
            strategy_id: None,
        }),
    );
    assert_eq!(tag.event_type(), "channel.wecom.external_tag.create");
}

#[test]
fn dedupe_keys_are_distinct_for_distinct_events() {
    let all = samples();
    let mut seen = std::collections::HashMap::new();
    for e in &all {
        if let Some(prev) = seen.insert(e.dedupe_key(), e) {
            panic!("{prev:?} and {e:?} share {}", e.dedupe_key());
        }
    }
    assert_eq!(seen.len(), all.len());
}

#[test]
fn dedupe_key_is_stable_for_a_resend() {
    for e in samples() {
        let resent = e.clone();
        assert_eq!(e.dedupe_key(), resent.dedupe_key());
        // A round trip through the bus payload keeps the key.
        let back: ChannelEvent = serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.dedupe_key(), e.dedupe_key());
    }
}

#[test]
fn message_key_is_msg_id_not_time() {
    let a = oa(
        "o1",
        100,
        msg(
            7,
            MessageContent::Text {
                content: "a".into(),
            },
        ),
    );
    let b = oa(
        "o1",
        105,
        msg(
            7,
            MessageContent::Text {
                content: "a".into(),
            },
        ),
    );
    assert_eq!(a.dedupe_key(), b.dedupe_key());
    assert_eq!(
        a.dedupe_key(),
        "channel.oa.message.text|gh_0a1b2c3d4e5f|o1|7"
    );
}

#[test]
fn event_key_reads_naturally() {
    let e = oa(
        "oX",
        1714000102,
        EventBody::Subscribe {
            scene: Some("s|1".into()),
            ticket: None,
        },
    );
    assert_eq!(
        e.dedupe_key(),
        "channel.oa.subscribe|gh_0a1b2c3d4e5f|oX|1714000102|s%7C1|~"
    );
}

#[test]
fn serde_shape_and_time() {
    let e = oa(
        "o1",
        1714000101,
        EventBody::Scan {
            scene: "42".into(),
            ticket: None,
        },
    );
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["channel"], "oa");
    assert_eq!(v["body"]["kind"], "scan");
    assert_eq!(v["body"]["scene"], "42");
    assert_eq!(e.occurred_at().timestamp(), 1714000101);
    let w = wecom(
        1,
        EventBody::ExternalChat(chat(ExternalChatChangeType::Dismiss)),
    );
    let v = serde_json::to_value(&w).unwrap();
    assert_eq!(v["channel"], "wecom");
    assert_eq!(v["body"]["kind"], "external_chat");
    assert_eq!(v["body"]["change_type"], "dismiss");
    let m = oa(
        "o",
        1,
        msg(
            u64::MAX,
            MessageContent::Text {
                content: "x".into(),
            },
        ),
    );
    let v = serde_json::to_value(&m).unwrap();
    assert_eq!(v["body"]["msg_id"], u64::MAX);
    assert_eq!(v["body"]["content"]["msg_type"], "text");
    let back: ChannelEvent = serde_json::from_value(v).unwrap();
    assert_eq!(back, m);
}

#[test]
fn envelope_builder_is_deterministic() {
    let e = oa("o1", 1714000101, EventBody::Unsubscribe);
    let a = e.envelope_builder("t1").build();
    let b = e.clone().envelope_builder("t1").build();
    assert_eq!(a.id, b.id);
    assert_eq!(a.kind, "channel.oa.unsubscribe");
    assert_eq!(a.occurred_at.timestamp(), 1714000101);
    assert_eq!(a.dedupe_key.as_deref(), Some(e.dedupe_key().as_str()));
    let back: ChannelEvent = a.payload_as().unwrap();
    assert_eq!(back, e);
}

#[test]
fn change_type_parse() {
    for c in ExternalContactChangeType::ALL {
        assert_eq!(ExternalContactChangeType::parse(c.as_str()), Some(c));
        let json = serde_json::to_value(c).unwrap();
        assert_eq!(json, c.as_str());
    }
    for c in ExternalChatChangeType::ALL {
        assert_eq!(ExternalChatChangeType::parse(c.as_str()), Some(c));
    }
    for c in ExternalTagChangeType::ALL {
        assert_eq!(ExternalTagChangeType::parse(c.as_str()), Some(c));
    }
    assert_eq!(ExternalTagChangeType::parse("nope"), None);
}

#[test]
fn out_of_range_time_falls_back_to_epoch() {
    let e = oa("o", i64::MAX, EventBody::Unsubscribe);
    assert_eq!(e.occurred_at(), DateTime::UNIX_EPOCH);
}
