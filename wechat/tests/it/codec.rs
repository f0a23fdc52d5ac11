//! The callback codecs: one realistic sample per event type (protocol §A, §C, §D), the recorded
//! fixture corpus end to end (outer body → verify and decrypt → typed event), hostile and
//! malformed inputs, and property tests that no input makes a parser panic.

use std::collections::{BTreeMap, HashMap};

use proptest::prelude::*;
use proto::channel::{
    Channel, ChannelEvent, EventBody, ExternalChatChangeType, ExternalContactChangeType,
    ExternalTagChangeType, MessageContent,
};
use serde::Deserialize;
use wechat::codec::{
    parse_inner, parse_mp_json, parse_mp_xml, parse_oa, parse_outer_json, parse_outer_xml,
    parse_wecom, parse_xml_with, CallbackMode, CodecError, Limits,
};
use wechat::crypto::MsgCrypto;

const GH: &str = "gh_0a1b2c3d4e5f";
const OPENID: &str = "oUserFixtureOpenid0123456789";
const CORP: &str = "ww9f8e7d6c5b4a3f2e";

/// An OA event body with the usual header.
fn oa_event(time: i64, event: &str, rest: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{GH}]]></ToUserName>\n<FromUserName><![CDATA[{OPENID}]]></FromUserName>\n\
         <CreateTime>{time}</CreateTime>\n<MsgType><![CDATA[event]]></MsgType>\n\
         <Event><![CDATA[{event}]]></Event>\n{rest}</xml>"
    )
}

/// An OA message body with the usual header.
fn oa_msg(msg_type: &str, rest: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{GH}]]></ToUserName><FromUserName><![CDATA[{OPENID}]]></FromUserName>\
         <CreateTime>1714000120</CreateTime><MsgType><![CDATA[{msg_type}]]></MsgType>{rest}</xml>"
    )
}

/// A WeCom change event body.
fn wecom_event(event: &str, change: &str, rest: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[{CORP}]]></ToUserName><FromUserName><![CDATA[sys]]></FromUserName>\
         <CreateTime>1714000140</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[{event}]]></Event><ChangeType><![CDATA[{change}]]></ChangeType>{rest}</xml>"
    )
}

fn oa(xml: &str) -> ChannelEvent {
    parse_oa(xml).unwrap_or_else(|e| panic!("{e}: {xml}"))
}

fn wecom(xml: &str) -> ChannelEvent {
    parse_wecom(xml).unwrap_or_else(|e| panic!("{e}: {xml}"))
}

fn message(e: &ChannelEvent) -> &proto::channel::Message {
    match &e.body {
        EventBody::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

// ---------------------------------------------------------------- OA events

#[test]
fn oa_subscribe_plain() {
    let e = oa(&oa_event(
        1714000101,
        "subscribe",
        "<EventKey><![CDATA[]]></EventKey>",
    ));
    assert_eq!(e.channel(), Channel::Oa);
    assert_eq!(e.to_user_name, GH);
    assert_eq!(e.from_user_name, OPENID);
    assert_eq!(e.create_time, 1714000101);
    assert_eq!(e.occurred_at().timestamp(), 1714000101);
    assert_eq!(
        e.body,
        EventBody::Subscribe {
            scene: None,
            ticket: None
        }
    );
    assert_eq!(e.event_type(), "channel.oa.subscribe");
    // Without any EventKey element at all.
    let bare = oa(&oa_event(1714000101, "subscribe", ""));
    assert_eq!(bare.body, e.body);
    assert_eq!(bare.dedupe_key(), e.dedupe_key());
}

#[test]
fn oa_subscribe_via_parametric_qr() {
    let e = oa(&oa_event(
        1714000102,
        "subscribe",
        "<EventKey><![CDATA[qrscene_campaign_2024_spring]]></EventKey><Ticket><![CDATA[gQH47joAAA==]]></Ticket>",
    ));
    assert_eq!(
        e.body,
        EventBody::Subscribe {
            scene: Some("campaign_2024_spring".into()),
            ticket: Some("gQH47joAAA==".into())
        }
    );
    assert_eq!(e.event_type(), "channel.oa.subscribe");
    let plain = oa(&oa_event(1714000102, "subscribe", ""));
    assert_ne!(e.dedupe_key(), plain.dedupe_key());
}

#[test]
fn oa_unsubscribe_scan_click_view_location() {
    let e = oa(&oa_event(
        1714000103,
        "unsubscribe",
        "<EventKey><![CDATA[]]></EventKey>",
    ));
    assert_eq!(e.body, EventBody::Unsubscribe);
    assert_eq!(e.event_type(), "channel.oa.unsubscribe");

    let e = oa(&oa_event(
        1714000104,
        "SCAN",
        "<EventKey><![CDATA[123456]]></EventKey><Ticket><![CDATA[gQFE8DoAAA==]]></Ticket>",
    ));
    assert_eq!(
        e.body,
        EventBody::Scan {
            scene: "123456".into(),
            ticket: Some("gQFE8DoAAA==".into())
        }
    );
    assert_eq!(e.event_type(), "channel.oa.scan");

    let e = oa(&oa_event(
        1714000105,
        "CLICK",
        "<EventKey><![CDATA[MENU_CONTACT_SALES]]></EventKey>",
    ));
    assert_eq!(
        e.body,
        EventBody::Click {
            key: "MENU_CONTACT_SALES".into()
        }
    );
    assert_eq!(e.event_type(), "channel.oa.click");

    let e = oa(&oa_event(
        1714000106,
        "VIEW",
        "<EventKey><![CDATA[https://example.com/a?b=1&c=2]]></EventKey><MenuId>412345</MenuId>",
    ));
    assert_eq!(
        e.body,
        EventBody::View {
            url: "https://example.com/a?b=1&c=2".into(),
            menu_id: Some("412345".into())
        }
    );
    assert_eq!(e.event_type(), "channel.oa.view");

    let e = oa(&oa_event(
        1714000107,
        "LOCATION",
        "<Latitude>23.137466</Latitude><Longitude>113.352425</Longitude><Precision>119.385040</Precision>",
    ));
    assert_eq!(
        e.body,
        EventBody::Location {
            latitude: 23.137466,
            longitude: 113.352425,
            precision: 119.38504
        }
    );
    assert_eq!(e.event_type(), "channel.oa.location");
}

#[test]
fn oa_job_results_use_msg_id_with_capital_d() {
    let e = oa(&oa_event(
        1714000108,
        "TEMPLATESENDJOBFINISH",
        "<MsgID>200163836</MsgID><Status><![CDATA[failed:user block]]></Status>",
    ));
    assert_eq!(
        e.body,
        EventBody::TemplateSendJobFinish {
            msg_id: 200163836,
            status: "failed:user block".into()
        }
    );
    assert_eq!(e.event_type(), "channel.oa.template_send_job_finish");

    let e = oa(&oa_event(
        1714000109,
        "MASSSENDJOBFINISH",
        "<MsgID>1988</MsgID><Status><![CDATA[send success]]></Status><TotalCount>100</TotalCount>\
         <FilterCount>80</FilterCount><SentCount>75</SentCount><ErrorCount>5</ErrorCount>\
         <CopyrightCheckResult><Count>0</Count><CheckState>1</CheckState></CopyrightCheckResult>",
    ));
    assert_eq!(
        e.body,
        EventBody::MassSendJobFinish {
            msg_id: 1988,
            status: "send success".into(),
            total_count: Some(100),
            filter_count: Some(80),
            sent_count: Some(75),
            error_count: Some(5)
        }
    );
    assert_eq!(e.event_type(), "channel.oa.mass_send_job_finish");

    // `MsgId` is not `MsgID`.
    let err = parse_oa(&oa_event(
        1714000108,
        "TEMPLATESENDJOBFINISH",
        "<MsgId>200163836</MsgId><Status>success</Status>",
    ))
    .unwrap_err();
    assert_eq!(err, CodecError::MissingField("MsgID".into()));
}

#[test]
fn subscribe_msg_popup_with_one_and_several_items() {
    let one = oa(&oa_event(
        1714000110,
        "subscribe_msg_popup_event",
        "<SubscribeMsgPopupEvent><List><TemplateId><![CDATA[VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId>\
         <SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene></List>\
         </SubscribeMsgPopupEvent>",
    ));
    let EventBody::SubscribeMsgPopup { items } = &one.body else {
        panic!("{:?}", one.body)
    };
    assert_eq!(items.len(), 1);
    assert_eq!(
        items[0].template_id,
        "VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc"
    );
    assert_eq!(items[0].status, "accept");
    assert_eq!(items[0].popup_scene.as_deref(), Some("2"));
    assert_eq!(one.event_type(), "channel.oa.subscribe_msg.popup");

    let several = oa(&oa_event(
        1714000110,
        "subscribe_msg_popup_event",
        "<SubscribeMsgPopupEvent>\
         <List><TemplateId><![CDATA[VRR0UEO9VJOLs0MHlU0OilqX6MVFDwH3_3gz3Oc0NIc]]></TemplateId>\
         <SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene></List>\
         <List><TemplateId><![CDATA[9nLIlbOQZC5Y89AZteFEux3WCXRRRG5Wfzkpssu4bLI]]></TemplateId>\
         <SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString><PopupScene>2</PopupScene></List>\
         <List><TemplateId><![CDATA[third]]></TemplateId>\
         <SubscribeStatusString><![CDATA[accept]]></SubscribeStatusString><PopupScene>2</PopupScene></List>\
         </SubscribeMsgPopupEvent>",
    ));
    let EventBody::SubscribeMsgPopup { items } = &several.body else {
        panic!("{:?}", several.body)
    };
    let statuses: Vec<&str> = items.iter().map(|i| i.status.as_str()).collect();
    assert_eq!(statuses, ["accept", "reject", "accept"]);
    assert_eq!(items[2].template_id, "third");
    // Same user, same second: the extra answers make it a different fact.
    assert_ne!(one.dedupe_key(), several.dedupe_key());

    // An item without its template id names the item.
    let err = parse_oa(&oa_event(
        1714000110,
        "subscribe_msg_popup_event",
        "<SubscribeMsgPopupEvent><List><TemplateId>a</TemplateId><SubscribeStatusString>accept</SubscribeStatusString></List>\
         <List><SubscribeStatusString>accept</SubscribeStatusString></List></SubscribeMsgPopupEvent>",
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "missing field SubscribeMsgPopupEvent/List[1]/TemplateId"
    );
    let err = parse_oa(&oa_event(
        1714000110,
        "subscribe_msg_popup_event",
        "<SubscribeMsgPopupEvent></SubscribeMsgPopupEvent>",
    ))
    .unwrap_err();
    assert_eq!(
        err,
        CodecError::MissingField("SubscribeMsgPopupEvent/List".into())
    );
}

#[test]
fn subscribe_msg_change_and_sent() {
    let e = oa(&oa_event(
        1714000111,
        "subscribe_msg_change_event",
        "<SubscribeMsgChangeEvent><List><TemplateId><![CDATA[T1]]></TemplateId>\
         <SubscribeStatusString><![CDATA[reject]]></SubscribeStatusString></List></SubscribeMsgChangeEvent>",
    ));
    let EventBody::SubscribeMsgChange { items } = &e.body else {
        panic!("{:?}", e.body)
    };
    assert_eq!(
        (items[0].template_id.as_str(), items[0].status.as_str()),
        ("T1", "reject")
    );
    assert_eq!(e.event_type(), "channel.oa.subscribe_msg.change");

    let e = oa(&oa_event(
        1714000112,
        "subscribe_msg_sent_event",
        "<SubscribeMsgSentEvent>\
         <List><TemplateId><![CDATA[T1]]></TemplateId><MsgID>1700827132819554304</MsgID><ErrorCode>0</ErrorCode>\
         <ErrorStatus><![CDATA[success]]></ErrorStatus></List>\
         <List><TemplateId><![CDATA[T2]]></TemplateId><MsgID>1700827132819554305</MsgID><ErrorCode>20001</ErrorCode>\
         <ErrorStatus><![CDATA[failed]]></ErrorStatus></List></SubscribeMsgSentEvent>",
    ));
    let EventBody::SubscribeMsgSent { items } = &e.body else {
        panic!("{:?}", e.body)
    };
    assert_eq!(items.len(), 2);
    assert_eq!(items[0].msg_id, Some(1700827132819554304));
    assert_eq!(items[1].error_code, Some(20001));
    assert_eq!(items[1].error_status.as_deref(), Some("failed"));
    assert_eq!(e.event_type(), "channel.oa.subscribe_msg.sent");

    let err = parse_oa(&oa_event(
        1714000112,
        "subscribe_msg_sent_event",
        "<SubscribeMsgSentEvent><List><TemplateId>T</TemplateId><MsgID>x1</MsgID></List></SubscribeMsgSentEvent>",
    ))
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid integer in SubscribeMsgSentEvent/List/MsgID"
    );
}

// ---------------------------------------------------------------- OA messages

#[test]
fn oa_messages_of_every_type() {
    let e = oa(&oa_msg(
        "text",
        "<Content><![CDATA[你好 & <b>]]></Content><MsgId>6054768590064713728</MsgId>",
    ));
    let m = message(&e);
    assert_eq!(m.msg_id, 6054768590064713728);
    assert_eq!(m.msg_data_id, None);
    assert_eq!(
        m.content,
        MessageContent::Text {
            content: "你好 & <b>".into()
        }
    );
    assert_eq!(e.event_type(), "channel.oa.message.text");

    // An article-originated message carries MsgDataId and Idx; plain text with entities works.
    let e = oa(&oa_msg(
        "text",
        "<Content>a &lt;b&gt; &amp; &#20320;</Content><MsgId>1</MsgId><MsgDataId>2247483647</MsgDataId><Idx>1</Idx>",
    ));
    let m = message(&e);
    assert_eq!(m.msg_data_id, Some(2247483647));
    assert_eq!(m.idx, Some(1));
    assert_eq!(
        m.content,
        MessageContent::Text {
            content: "a <b> & 你".into()
        }
    );

    let e = oa(&oa_msg(
        "image",
        "<PicUrl><![CDATA[http://mmbiz.qpic.cn/x/0]]></PicUrl><MediaId><![CDATA[m1]]></MediaId><MsgId>2</MsgId>",
    ));
    assert_eq!(
        message(&e).content,
        MessageContent::Image {
            pic_url: Some("http://mmbiz.qpic.cn/x/0".into()),
            media_id: "m1".into()
        }
    );
    assert_eq!(e.event_type(), "channel.oa.message.image");

    let e = oa(&oa_msg(
        "voice",
        "<MediaId><![CDATA[v1]]></MediaId><Format><![CDATA[amr]]></Format>\
         <Recognition><![CDATA[查订单]]></Recognition><MsgId>3</MsgId>",
    ));
    assert_eq!(
        message(&e).content,
        MessageContent::Voice {
            media_id: "v1".into(),
            format: Some("amr".into()),
            recognition: Some("查订单".into())
        }
    );
    assert_eq!(e.event_type(), "channel.oa.message.voice");

    let e = oa(&oa_msg(
        "video",
        "<MediaId><![CDATA[vid]]></MediaId><ThumbMediaId><![CDATA[th]]></ThumbMediaId><MsgId>4</MsgId>",
    ));
    assert_eq!(
        message(&e).content,
        MessageContent::Video {
            media_id: "vid".into(),
            thumb_media_id: Some("th".into())
        }
    );
    assert_eq!(e.event_type(), "channel.oa.message.video");

    let e = oa(&oa_msg(
        "shortvideo",
        "<MediaId><![CDATA[sv]]></MediaId><ThumbMediaId><![CDATA[th]]></ThumbMediaId><MsgId>5</MsgId>",
    ));
    assert!(matches!(
        message(&e).content,
        MessageContent::ShortVideo { .. }
    ));
    assert_eq!(e.event_type(), "channel.oa.message.shortvideo");

    let e = oa(&oa_msg(
        "location",
        "<Location_X>23.134521</Location_X><Location_Y>113.358803</Location_Y><Scale>20</Scale>\
         <Label><![CDATA[广州市天河区]]></Label><MsgId>6</MsgId>",
    ));
    assert_eq!(
        message(&e).content,
        MessageContent::Location {
            location_x: 23.134521,
            location_y: 113.358803,
            scale: Some(20.0),
            label: Some("广州市天河区".into())
        }
    );
    assert_eq!(e.event_type(), "channel.oa.message.location");

    let e = oa(&oa_msg(
        "link",
        "<Title><![CDATA[白皮书]]></Title><Description><![CDATA[2024]]></Description>\
         <Url><![CDATA[https://example.com/w?id=1&u=2]]></Url><MsgId>7</MsgId>",
    ));
    assert_eq!(
        message(&e).content,
        MessageContent::Link {
            title: "白皮书".into(),
            description: Some("2024".into()),
            url: "https://example.com/w?id=1&u=2".into()
        }
    );
    assert_eq!(e.event_type(), "channel.oa.message.link");
}

#[test]
fn message_id_field_is_case_sensitive() {
    let err = parse_oa(&oa_msg("text", "<Content>x</Content><MsgID>1</MsgID>")).unwrap_err();
    assert_eq!(err.to_string(), "missing field MsgId");
}

#[test]
fn cdata_and_plain_text_give_the_same_event_and_key() {
    let cdata = oa(&oa_event(
        1714000105,
        "CLICK",
        "<EventKey><![CDATA[K1]]></EventKey>",
    ));
    let plain = oa(&format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\r\n<xml>\r\n  <ToUserName>{GH}</ToUserName>\r\n  \
         <FromUserName>{OPENID}</FromUserName>\r\n  <CreateTime> 1714000105 </CreateTime>\r\n  \
         <MsgType>event</MsgType>\r\n  <Event>CLICK</Event>\r\n  <EventKey>K1</EventKey>\r\n  \
         <Unrelated attr=\"1\"><Deep>ignored</Deep></Unrelated>\r\n</xml>\r\n"
    ));
    assert_eq!(cdata, plain);
    assert_eq!(cdata.dedupe_key(), plain.dedupe_key());
}

// ---------------------------------------------------------------- WeCom

#[test]
fn wecom_external_contact_changes() {
    let e = wecom(&wecom_event(
        "change_external_contact",
        "add_external_contact",
        "<UserID><![CDATA[zhangsan]]></UserID><ExternalUserID><![CDATA[wmA]]></ExternalUserID>\
         <State><![CDATA[channel_qr_expo]]></State><WelcomeCode><![CDATA[WELCOME]]></WelcomeCode>",
    ));
    assert_eq!(e.channel(), Channel::WeCom);
    assert_eq!(e.from_user_name, "sys");
    let EventBody::ExternalContact(c) = &e.body else {
        panic!("{:?}", e.body)
    };
    assert_eq!(c.change_type, ExternalContactChangeType::AddExternalContact);
    assert_eq!(c.user_id, "zhangsan");
    assert_eq!(c.external_user_id, "wmA");
    assert_eq!(c.state.as_deref(), Some("channel_qr_expo"));
    assert_eq!(c.welcome_code.as_deref(), Some("WELCOME"));
    assert_eq!(
        e.event_type(),
        "channel.wecom.external_contact.add_external_contact"
    );

    let extra = [
        ("edit_external_contact", ""),
        (
            "add_half_external_contact",
            "<State><![CDATA[]]></State><WelcomeCode><![CDATA[W2]]></WelcomeCode>",
        ),
        (
            "del_external_contact",
            "<Source><![CDATA[DELETE_BY_TRANSFER]]></Source>",
        ),
        ("del_follow_user", ""),
        (
            "transfer_fail",
            "<FailReason><![CDATA[customer_refused]]></FailReason>",
        ),
    ];
    let mut keys = Vec::new();
    for (change, rest) in extra {
        let e = wecom(&wecom_event(
            "change_external_contact",
            change,
            &format!(
                "<UserID><![CDATA[lisi]]></UserID><ExternalUserID><![CDATA[wmB]]></ExternalUserID>{rest}"
            ),
        ));
        assert_eq!(
            e.event_type(),
            format!("channel.wecom.external_contact.{change}")
        );
        let EventBody::ExternalContact(c) = &e.body else {
            panic!("{:?}", e.body)
        };
        assert_eq!(c.change_type.as_str(), change);
        match c.change_type {
            ExternalContactChangeType::AddHalfExternalContact => {
                assert_eq!(c.state, None);
                assert_eq!(c.welcome_code.as_deref(), Some("W2"));
            }
            ExternalContactChangeType::DelExternalContact => {
                assert_eq!(c.source.as_deref(), Some("DELETE_BY_TRANSFER"))
            }
            ExternalContactChangeType::TransferFail => {
                assert_eq!(c.fail_reason.as_deref(), Some("customer_refused"))
            }
            _ => {}
        }
        keys.push(e.dedupe_key());
    }
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), 5);

    let err = parse_wecom(&wecom_event(
        "change_external_contact",
        "add_external_contact",
        "<UserID>u</UserID>",
    ))
    .unwrap_err();
    assert_eq!(err.to_string(), "missing field ExternalUserID");
}

#[test]
fn wecom_dedupe_distinguishes_what_sys_cannot() {
    // FromUserName is always `sys`: the key must use the ids and State.
    let a = wecom(&wecom_event(
        "change_external_contact",
        "add_external_contact",
        "<UserID>u1</UserID><ExternalUserID>wm1</ExternalUserID><State>s1</State>",
    ));
    let b = wecom(&wecom_event(
        "change_external_contact",
        "add_external_contact",
        "<UserID>u1</UserID><ExternalUserID>wm2</ExternalUserID><State>s1</State>",
    ));
    let c = wecom(&wecom_event(
        "change_external_contact",
        "add_external_contact",
        "<UserID>u2</UserID><ExternalUserID>wm1</ExternalUserID><State>s1</State>",
    ));
    let d = wecom(&wecom_event(
        "change_external_contact",
        "add_external_contact",
        "<UserID>u1</UserID><ExternalUserID>wm1</ExternalUserID><State>s2</State>",
    ));
    let keys: std::collections::BTreeSet<String> =
        [&a, &b, &c, &d].iter().map(|e| e.dedupe_key()).collect();
    assert_eq!(keys.len(), 4);
    let again = wecom(&wecom_event(
        "change_external_contact",
        "add_external_contact",
        "<UserID><![CDATA[u1]]></UserID><ExternalUserID><![CDATA[wm1]]></ExternalUserID><State><![CDATA[s1]]></State>",
    ));
    assert_eq!(a.dedupe_key(), again.dedupe_key());
}

#[test]
fn wecom_external_chat_changes() {
    let create = wecom(&wecom_event(
        "change_external_chat",
        "create",
        "<ChatId><![CDATA[wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA]]></ChatId>",
    ));
    assert_eq!(create.event_type(), "channel.wecom.external_chat.create");

    let update = wecom(&wecom_event(
        "change_external_chat",
        "update",
        "<ChatId><![CDATA[wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA]]></ChatId><UpdateDetail><![CDATA[add_member]]></UpdateDetail>\
         <JoinScene>3</JoinScene><MemChangeCnt>2</MemChangeCnt>\
         <MemChangeList><Item><![CDATA[wmA]]></Item><Item><![CDATA[wmB]]></Item></MemChangeList>\
         <LastMemVer><![CDATA[9c3f97c2ada667dfb5f6d03308d963e1]]></LastMemVer>\
         <CurMemVer><![CDATA[71217227bbd112ecfe3a49c482195cb4]]></CurMemVer>",
    ));
    let EventBody::ExternalChat(c) = &update.body else {
        panic!("{:?}", update.body)
    };
    assert_eq!(c.change_type, ExternalChatChangeType::Update);
    assert_eq!(c.update_detail.as_deref(), Some("add_member"));
    assert_eq!(c.join_scene, Some(3));
    assert_eq!(c.quit_scene, None);
    assert_eq!(c.mem_change_cnt, Some(2));
    assert_eq!(c.mem_change_list, ["wmA", "wmB"]);
    assert_eq!(
        c.last_mem_ver.as_deref(),
        Some("9c3f97c2ada667dfb5f6d03308d963e1")
    );
    assert_eq!(
        c.cur_mem_ver.as_deref(),
        Some("71217227bbd112ecfe3a49c482195cb4")
    );
    assert_eq!(update.event_type(), "channel.wecom.external_chat.update");

    let one_member = wecom(&wecom_event(
        "change_external_chat",
        "update",
        "<ChatId>wrX</ChatId><UpdateDetail>del_member</UpdateDetail><QuitScene>1</QuitScene>\
         <MemChangeCnt>1</MemChangeCnt><MemChangeList><Item>wmA</Item></MemChangeList>",
    ));
    let EventBody::ExternalChat(c) = &one_member.body else {
        panic!("{:?}", one_member.body)
    };
    assert_eq!(c.quit_scene, Some(1));
    assert_eq!(c.mem_change_list, ["wmA"]);

    let dismiss = wecom(&wecom_event(
        "change_external_chat",
        "dismiss",
        "<ChatId>wrX</ChatId>",
    ));
    assert_eq!(dismiss.event_type(), "channel.wecom.external_chat.dismiss");

    let err = parse_wecom(&wecom_event(
        "change_external_chat",
        "update",
        "<ChatId>wrX</ChatId><JoinScene>three</JoinScene>",
    ))
    .unwrap_err();
    assert_eq!(err.to_string(), "invalid integer in JoinScene");
}

#[test]
fn wecom_external_tag_changes() {
    for change in ["create", "update", "delete"] {
        let e = wecom(&wecom_event(
            "change_external_tag",
            change,
            "<Id><![CDATA[etJ2GCCQAAoZ7W2q1-p7l9Pn1i6vJ3OA]]></Id><TagType><![CDATA[tag_group]]></TagType><StrategyId>1</StrategyId>",
        ));
        let EventBody::ExternalTag(t) = &e.body else {
            panic!("{:?}", e.body)
        };
        assert_eq!(t.change_type.as_str(), change);
        assert_eq!(t.id, "etJ2GCCQAAoZ7W2q1-p7l9Pn1i6vJ3OA");
        assert_eq!(t.tag_type.as_deref(), Some("tag_group"));
        assert_eq!(t.strategy_id, Some(1));
        assert_eq!(
            e.event_type(),
            format!("channel.wecom.external_tag.{change}")
        );
    }
    let shuffle = wecom(&wecom_event(
        "change_external_tag",
        "shuffle",
        "<Id><![CDATA[etJ2GCCQAAKzbyTgoqkxQiQQnFQQAAAA]]></Id><StrategyId>1</StrategyId>",
    ));
    let EventBody::ExternalTag(t) = &shuffle.body else {
        panic!("{:?}", shuffle.body)
    };
    assert_eq!(t.change_type, ExternalTagChangeType::Shuffle);
    assert_eq!(t.tag_type, None);
    assert_eq!(shuffle.event_type(), "channel.wecom.external_tag.shuffle");
    // A shuffle of all groups may come without an id.
    let all = wecom(&wecom_event("change_external_tag", "shuffle", ""));
    assert!(matches!(all.body, EventBody::ExternalTag(ref t) if t.id.is_empty()));
}

#[test]
fn wecom_official_text_message() {
    // Protocol §F1 plaintext.
    let xml = "<xml><ToUserName><![CDATA[wx5823bf96d3bd56c7]]></ToUserName>\n\
        <FromUserName><![CDATA[mycreate]]></FromUserName>\n<CreateTime>1409659813</CreateTime>\n\
        <MsgType><![CDATA[text]]></MsgType>\n<Content><![CDATA[hello]]></Content>\n\
        <MsgId>4561255354251345929</MsgId>\n<AgentID>218</AgentID>\n</xml>";
    let e = wecom(xml);
    let m = message(&e);
    assert_eq!(m.msg_id, 4561255354251345929);
    assert_eq!(m.agent_id.as_deref(), Some("218"));
    assert_eq!(e.event_type(), "channel.wecom.message.text");
}

#[test]
fn wecom_unknown_change_type_and_event_are_kept() {
    let e = wecom(&wecom_event(
        "change_external_contact",
        "msg_audit_approved",
        "<UserID>u</UserID><ExternalUserID>wm</ExternalUserID>",
    ));
    assert_eq!(e.event_type(), "channel.wecom.unknown");
    let EventBody::Unknown {
        msg_type,
        event,
        change_type,
        fields,
    } = &e.body
    else {
        panic!("{:?}", e.body)
    };
    assert_eq!(msg_type, "event");
    assert_eq!(event.as_deref(), Some("change_external_contact"));
    assert_eq!(change_type.as_deref(), Some("msg_audit_approved"));
    assert_eq!(fields["UserID"], "u");
    assert_eq!(fields["ExternalUserID"], "wm");

    let e = wecom(&wecom_event(
        "change_contact",
        "update_user",
        "<UserID>zhangsan</UserID><Department><![CDATA[1,2,3]]></Department>",
    ));
    assert!(e.is_unknown());
    // OA events are not WeCom events.
    let e = wecom(&wecom_event("subscribe", "x", ""));
    assert!(e.is_unknown());
}

// ---------------------------------------------------------------- Mini-program

#[test]
fn mp_xml_and_json_messages() {
    let head = |t: &str| {
        format!(
            "<xml><ToUserName><![CDATA[gh_9a8b7c6d5e4f]]></ToUserName><FromUserName><![CDATA[oMp]]></FromUserName>\
             <CreateTime>1714000160</CreateTime><MsgType><![CDATA[{t}]]></MsgType>"
        )
    };
    let text = parse_mp_xml(&format!(
        "{}<Content><![CDATA[你好]]></Content><MsgId>23830582713409567</MsgId></xml>",
        head("text")
    ))
    .unwrap();
    assert_eq!(text.channel(), Channel::Mp);
    assert_eq!(text.event_type(), "channel.mp.message.text");

    let image = parse_mp_xml(&format!(
        "{}<PicUrl><![CDATA[https://mmbiz.qpic.cn/x]]></PicUrl><MediaId><![CDATA[m]]></MediaId><MsgId>2</MsgId></xml>",
        head("image")
    ))
    .unwrap();
    assert_eq!(image.event_type(), "channel.mp.message.image");

    let page = parse_mp_xml(&format!(
        "{}<Title><![CDATA[商品]]></Title><AppId><![CDATA[wx0f1e2d3c4b5a6978]]></AppId>\
         <PagePath><![CDATA[pages/item?id=1]]></PagePath><ThumbUrl><![CDATA[https://x/t.jpg]]></ThumbUrl>\
         <ThumbMediaId><![CDATA[tm]]></ThumbMediaId><MsgId>3</MsgId></xml>",
        head("miniprogrampage")
    ))
    .unwrap();
    assert_eq!(
        message(&page).content,
        MessageContent::MiniProgramPage {
            title: Some("商品".into()),
            app_id: Some("wx0f1e2d3c4b5a6978".into()),
            page_path: Some("pages/item?id=1".into()),
            thumb_url: Some("https://x/t.jpg".into()),
            thumb_media_id: Some("tm".into())
        }
    );
    assert_eq!(page.event_type(), "channel.mp.message.miniprogrampage");

    let enter = parse_mp_xml(&format!(
        "{}<Event><![CDATA[user_enter_tempsession]]></Event><SessionFrom><![CDATA[product_page]]></SessionFrom></xml>",
        head("event")
    ))
    .unwrap();
    assert_eq!(
        enter.body,
        EventBody::UserEnterTempsession {
            session_from: Some("product_page".into())
        }
    );
    assert_eq!(enter.event_type(), "channel.mp.user_enter_tempsession");

    // The same facts in JSON give the same events.
    let json_text = parse_mp_json(
        r#"{"ToUserName":"gh_9a8b7c6d5e4f","FromUserName":"oMp","CreateTime":1714000160,"MsgType":"text","Content":"你好","MsgId":23830582713409567}"#,
    )
    .unwrap();
    assert_eq!(json_text, text);
    let json_page = parse_mp_json(
        r#"{"ToUserName":"gh_9a8b7c6d5e4f","FromUserName":"oMp","CreateTime":"1714000160","MsgType":"miniprogrampage",
            "Title":"商品","AppId":"wx0f1e2d3c4b5a6978","PagePath":"pages/item?id=1","ThumbUrl":"https://x/t.jpg",
            "ThumbMediaId":"tm","MsgId":3}"#,
    )
    .unwrap();
    assert_eq!(json_page, page);
}

#[test]
fn mp_json_subscribe_msg_list_as_array_or_object() {
    let head = r#""ToUserName":"gh_9a8b7c6d5e4f","FromUserName":"oMp","CreateTime":1714000162,"MsgType":"event","Event":"subscribe_msg_popup_event""#;
    let array = parse_mp_json(&format!(
        r#"{{{head},"List":[{{"TemplateId":"T1","SubscribeStatusString":"accept","PopupScene":"0"}},{{"TemplateId":"T2","SubscribeStatusString":"reject","PopupScene":"0"}}]}}"#
    ))
    .unwrap();
    let EventBody::SubscribeMsgPopup { items } = &array.body else {
        panic!("{:?}", array.body)
    };
    assert_eq!(items.len(), 2);
    assert_eq!(array.event_type(), "channel.mp.subscribe_msg.popup");
    let object = parse_mp_json(&format!(
        r#"{{{head},"List":{{"TemplateId":"T1","SubscribeStatusString":"accept","PopupScene":0}}}}"#
    ))
    .unwrap();
    let EventBody::SubscribeMsgPopup { items } = &object.body else {
        panic!("{:?}", object.body)
    };
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].popup_scene.as_deref(), Some("0"));
    // Nested like the XML form.
    let nested = parse_mp_json(&format!(
        r#"{{{head},"SubscribeMsgPopupEvent":{{"List":[{{"TemplateId":"T1","SubscribeStatusString":"accept","PopupScene":"0"}}]}}}}"#
    ))
    .unwrap();
    assert_eq!(nested.body, object.body);
}

#[test]
fn mp_unknown_kept_and_oa_only_types_not_typed() {
    let e = parse_mp_json(
        r#"{"ToUserName":"gh_9a8b7c6d5e4f","FromUserName":"oMp","CreateTime":1714000163,"MsgType":"event",
            "Event":"wxa_media_check","isrisky":0,"extra_info_json":"","appid":"wx0f","trace_id":"abc","status_code":0,
            "result":{"suggest":"pass","label":100}}"#,
    )
    .unwrap();
    assert_eq!(e.event_type(), "channel.mp.unknown");
    let EventBody::Unknown { event, fields, .. } = &e.body else {
        panic!("{:?}", e.body)
    };
    assert_eq!(event.as_deref(), Some("wxa_media_check"));
    assert_eq!(fields["result/suggest"], "pass");
    assert_eq!(fields["result/label"], "100");
    assert_eq!(fields["trace_id"], "abc");
    assert_eq!(fields["CreateTime"], "1714000163");
    // `subscribe` is an OA event; in a mini-program push it is kept as unknown.
    let e = parse_mp_json(
        r#"{"ToUserName":"g","FromUserName":"o","CreateTime":1,"MsgType":"event","Event":"subscribe"}"#,
    )
    .unwrap();
    assert!(e.is_unknown());
}

// ---------------------------------------------------------------- Unknown

#[test]
fn unknown_oa_event_is_kept_whole() {
    let xml = oa_event(
        1714000190,
        "kf_create_session",
        "<KfAccount><![CDATA[test1@test]]></KfAccount>\
         <Nested><List><A>1</A></List><List><A>2</A></List></Nested>",
    );
    let e = oa(&xml);
    assert_eq!(e.event_type(), "channel.oa.unknown");
    let EventBody::Unknown {
        msg_type,
        event,
        change_type,
        fields,
    } = &e.body
    else {
        panic!("{:?}", e.body)
    };
    assert_eq!(msg_type, "event");
    assert_eq!(event.as_deref(), Some("kf_create_session"));
    assert_eq!(change_type, &None);
    let expected: BTreeMap<String, String> = [
        ("ToUserName", GH),
        ("FromUserName", OPENID),
        ("CreateTime", "1714000190"),
        ("MsgType", "event"),
        ("Event", "kf_create_session"),
        ("KfAccount", "test1@test"),
        ("Nested/List[0]/A", "1"),
        ("Nested/List[1]/A", "2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    assert_eq!(fields, &expected);

    // A different field value is a different fact; the same body is the same fact.
    let other = oa(&xml.replace("test1@test", "test2@test"));
    assert_ne!(other.dedupe_key(), e.dedupe_key());
    assert_eq!(oa(&xml).dedupe_key(), e.dedupe_key());

    // An unknown message type (with MsgId) too.
    let file = oa(&oa_msg(
        "file",
        "<Title>a.pdf</Title><FileKey>k</FileKey><MsgId>99</MsgId>",
    ));
    assert_eq!(file.event_type(), "channel.oa.unknown");
    assert!(
        matches!(&file.body, EventBody::Unknown { msg_type, fields, .. }
        if msg_type == "file" && fields["MsgId"] == "99")
    );
}

// ---------------------------------------------------------------- Outer bodies

#[test]
fn outer_xml_modes() {
    let safe = parse_outer_xml(
        b"<xml>\n<ToUserName><![CDATA[gh_0a1b2c3d4e5f]]></ToUserName>\n<Encrypt><![CDATA[abc+/=]]></Encrypt>\n</xml>",
    )
    .unwrap();
    assert_eq!(safe.to_user_name, "gh_0a1b2c3d4e5f");
    assert_eq!(safe.encrypt.as_deref(), Some("abc+/="));
    assert_eq!(safe.agent_id, None);
    assert!(!safe.has_plain_fields);
    assert_eq!(safe.mode(), CallbackMode::Safe);

    let wecom = parse_outer_xml(
        b"<xml><ToUserName><![CDATA[ww9f8e7d6c5b4a3f2e]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID><Encrypt><![CDATA[x]]></Encrypt></xml>",
    )
    .unwrap();
    assert_eq!(wecom.agent_id.as_deref(), Some("1000002"));
    assert_eq!(wecom.mode(), CallbackMode::Safe);

    let compatible = parse_outer_xml(
        format!(
            "<xml><ToUserName>{GH}</ToUserName><FromUserName>{OPENID}</FromUserName><CreateTime>1</CreateTime>\
             <MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId><Encrypt><![CDATA[x]]></Encrypt></xml>"
        )
        .as_bytes(),
    )
    .unwrap();
    assert!(compatible.has_plain_fields);
    assert_eq!(compatible.mode(), CallbackMode::Compatible);

    let plain = parse_outer_xml(oa_msg("text", "<Content>hi</Content><MsgId>1</MsgId>").as_bytes())
        .unwrap();
    assert_eq!(plain.encrypt, None);
    assert_eq!(plain.mode(), CallbackMode::Plain);

    assert_eq!(
        parse_outer_xml(b"<xml><Encrypt>x</Encrypt></xml>").unwrap_err(),
        CodecError::MissingField("ToUserName".into())
    );
    assert_eq!(
        parse_outer_xml(
            b"<xml><ToUserName>a</ToUserName><Encrypt>x</Encrypt><Encrypt>y</Encrypt></xml>"
        )
        .unwrap_err(),
        CodecError::DuplicateField("Encrypt".into())
    );
    assert_eq!(
        parse_outer_xml(b"<xml><ToUserName>\xff</ToUserName></xml>").unwrap_err(),
        CodecError::NotUtf8
    );
}

#[test]
fn outer_json() {
    let o = parse_outer_json(br#"{"ToUserName":"gh_9a8b7c6d5e4f","Encrypt":"abc=="}"#).unwrap();
    assert_eq!(o.to_user_name, "gh_9a8b7c6d5e4f");
    assert_eq!(o.encrypt.as_deref(), Some("abc=="));
    assert_eq!(o.mode(), CallbackMode::Safe);
    let plain = parse_outer_json(
        br#"{"ToUserName":"g","FromUserName":"o","CreateTime":1,"MsgType":"text","Content":"x","MsgId":1}"#,
    )
    .unwrap();
    assert_eq!(plain.mode(), CallbackMode::Plain);
    assert!(matches!(
        parse_outer_json(br#"{"ToUserName":"g","#).unwrap_err(),
        CodecError::Json(_)
    ));
    assert_eq!(
        parse_outer_json(br#"{"ToUserName":"g","Encrypt":"a","Encrypt":"b"}"#).unwrap_err(),
        CodecError::DuplicateField("Encrypt".into())
    );
    assert!(matches!(
        parse_outer_json(b"[]").unwrap_err(),
        CodecError::Json(_)
    ));
}

// ---------------------------------------------------------------- Hostile and malformed input

#[test]
fn malformed_inputs_are_errors_with_reasons() {
    let good = oa_msg("text", "<Content>hi</Content><MsgId>1</MsgId>");
    // Truncated at every byte: always an error, never a panic.
    for cut in 0..good.len() {
        if good.is_char_boundary(cut) {
            assert!(parse_oa(&good[..cut]).is_err(), "prefix {cut} parsed");
        }
    }
    assert!(matches!(
        parse_oa(&good[..good.len() - 3]).unwrap_err(),
        CodecError::Truncated(_) | CodecError::Xml(_)
    ));

    // XXE: a DOCTYPE with an external entity.
    let xxe = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM \"file:///etc/passwd\">]>{}",
        oa_msg("text", "<Content>&xxe;</Content><MsgId>1</MsgId>")
    );
    let err = parse_oa(&xxe).unwrap_err();
    assert_eq!(err, CodecError::DoctypeNotAllowed);
    assert_eq!(err.to_string(), "doctype not allowed");
    // Billion laughs without the DOCTYPE cannot define anything either.
    assert_eq!(
        parse_oa(&oa_msg("text", "<Content>&lol9;</Content><MsgId>1</MsgId>")).unwrap_err(),
        CodecError::EntityNotAllowed("lol9".into())
    );
    assert!(parse_outer_xml(xxe.as_bytes()).is_err());

    let no_time = format!(
        "<xml><ToUserName>{GH}</ToUserName><FromUserName>{OPENID}</FromUserName>\
         <MsgType>text</MsgType><Content>x</Content><MsgId>1</MsgId></xml>"
    );
    assert_eq!(
        parse_oa(&no_time).unwrap_err().to_string(),
        "missing field CreateTime"
    );
    assert_eq!(
        parse_oa(&oa_msg("text", "<Content>x</Content><MsgId>12ab</MsgId>"))
            .unwrap_err()
            .to_string(),
        "invalid integer in MsgId"
    );
    assert_eq!(
        parse_oa(&oa_msg("text", "<Content>x</Content><MsgId>-1</MsgId>")).unwrap_err(),
        CodecError::InvalidInteger("MsgId".into())
    );
    assert_eq!(
        parse_oa(&oa_msg(
            "text",
            "<Content>x</Content><MsgId>99999999999999999999</MsgId>"
        ))
        .unwrap_err(),
        CodecError::InvalidInteger("MsgId".into())
    );
    assert_eq!(
        parse_oa(&oa_event(-5, "unsubscribe", "")).unwrap_err(),
        CodecError::InvalidTimestamp("CreateTime".into())
    );
    assert_eq!(
        parse_oa(&oa_event(
            1,
            "LOCATION",
            "<Latitude>NaN</Latitude><Longitude>1</Longitude><Precision>1</Precision>"
        ))
        .unwrap_err()
        .to_string(),
        "invalid number in Latitude"
    );
    assert_eq!(
        parse_oa(&oa_msg(
            "text",
            "<Content>x</Content><Content>y</Content><MsgId>1</MsgId>"
        ))
        .unwrap_err()
        .to_string(),
        "duplicate field Content"
    );
    assert_eq!(
        parse_oa(&oa_msg(
            "text",
            "<Content><b>x</b></Content><MsgId>1</MsgId>"
        ))
        .unwrap_err()
        .to_string(),
        "field Content must be text, found child elements"
    );
    assert_eq!(
        parse_oa("<root><ToUserName>x</ToUserName></root>").unwrap_err(),
        CodecError::UnexpectedRoot("root".into())
    );
    assert!(matches!(
        parse_oa("<xml><A></B></xml>").unwrap_err(),
        CodecError::Xml(_)
    ));
    assert!(parse_oa("").is_err());
    assert!(parse_oa("not xml at all").is_err());
    assert!(parse_mp_json("").is_err());
    assert!(parse_mp_json("{\"ToUserName\":").is_err());
    assert_eq!(
        parse_mp_json(r#"{"ToUserName":"g","FromUserName":"o","CreateTime":1}"#).unwrap_err(),
        CodecError::MissingField("MsgType".into())
    );

    // Huge nesting, in both formats, well past any recursion limit.
    let deep_xml = format!(
        "<xml>{}{}</xml>",
        "<a>".repeat(100_000),
        "</a>".repeat(100_000)
    );
    assert_eq!(
        parse_oa(&deep_xml).unwrap_err(),
        CodecError::TooDeep(Limits::DEFAULT.max_depth)
    );
    let deep_json = format!("{}{}", "{\"a\":".repeat(50_000), "}".repeat(50_000));
    assert!(parse_mp_json(&deep_json).is_err());
    let unclosed = format!("<xml>{}", "<a>".repeat(100_000));
    assert!(parse_oa(&unclosed).is_err());

    // Too large, too many elements.
    let big = oa_msg(
        "text",
        &format!("<Content>{}</Content><MsgId>1</MsgId>", "x".repeat(1 << 20)),
    );
    assert!(matches!(
        parse_oa(&big).unwrap_err(),
        CodecError::TooLarge { .. }
    ));
    assert!(matches!(
        parse_outer_xml(big.as_bytes()).unwrap_err(),
        CodecError::TooLarge { .. }
    ));
    let many = oa_msg("text", &"<X/>".repeat(20_000));
    assert_eq!(
        parse_oa(&many).unwrap_err(),
        CodecError::TooManyElements(Limits::DEFAULT.max_elements)
    );
    let tight = Limits {
        max_body_bytes: 64,
        ..Limits::DEFAULT
    };
    assert!(matches!(
        parse_xml_with(Channel::Oa, &good, &tight).unwrap_err(),
        CodecError::TooLarge { size, limit: 64 } if size == good.len()
    ));
}

// ---------------------------------------------------------------- The recorded corpus

#[derive(Deserialize)]
struct Corpus {
    apps: BTreeMap<String, App>,
    callbacks: Vec<Callback>,
}

#[derive(Deserialize)]
struct App {
    kind: String,
    token: String,
    encoding_aes_key: String,
    receive_id: String,
    original_id: Option<String>,
}

#[derive(Deserialize)]
struct Callback {
    name: String,
    app: String,
    method: String,
    query: BTreeMap<String, String>,
    body: Option<String>,
    encrypt: String,
    plaintext: String,
}

fn corpus() -> Corpus {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/callbacks.json");
    let text = std::fs::read_to_string(path).expect("callbacks.json is readable");
    serde_json::from_str(&text).expect("callbacks.json parses")
}

fn channel_of(kind: &str) -> Channel {
    match kind {
        "oa" => Channel::Oa,
        "wecom" => Channel::WeCom,
        "mp" => Channel::Mp,
        other => panic!("unknown app kind {other}"),
    }
}

/// Callbacks in the corpus whose type is deliberately not modelled (none today).
const EXPECTED_UNKNOWN: &[&str] = &[];

#[test]
fn every_fixture_plaintext_yields_a_typed_event() {
    let c = corpus();
    let mut keys: HashMap<String, String> = HashMap::new();
    let mut parsed = 0;
    for cb in c.callbacks.iter().filter(|cb| cb.method == "POST") {
        let app = &c.apps[&cb.app];
        let channel = channel_of(&app.kind);
        let event =
            parse_inner(channel, &cb.plaintext).unwrap_or_else(|e| panic!("{}: {e}", cb.name));
        parsed += 1;
        assert_eq!(event.channel(), channel);
        assert_eq!(
            event.is_unknown(),
            EXPECTED_UNKNOWN.contains(&cb.name.as_str()),
            "{}: {:?}",
            cb.name,
            event.body
        );
        let expected_to = app.original_id.as_deref().unwrap_or(&app.receive_id);
        assert_eq!(event.to_user_name, expected_to, "{}", cb.name);
        let key = event.event_type();
        assert!(key.starts_with(&format!("channel.{}.", channel)), "{key}");
        assert!(
            key.split('.').all(|w| !w.is_empty()
                && w.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')),
            "{key}"
        );
        // Every fixture is a distinct fact.
        if let Some(other) = keys.insert(event.dedupe_key(), cb.name.clone()) {
            panic!(
                "{} and {} share dedupe key {}",
                cb.name,
                other,
                event.dedupe_key()
            );
        }
        // The bus payload round-trips.
        let json = serde_json::to_value(&event).expect("serialises");
        let back: ChannelEvent = serde_json::from_value(json).expect("deserialises");
        assert_eq!(back, event, "{}", cb.name);
    }
    assert_eq!(
        parsed,
        c.callbacks.iter().filter(|cb| cb.method == "POST").count()
    );
    assert!(parsed >= 35, "{parsed} POST callbacks");
}

#[test]
fn fixture_routing_keys() {
    let c = corpus();
    let expected: BTreeMap<&str, &str> = [
        ("oa_subscribe_plain", "channel.oa.subscribe"),
        ("oa_subscribe_qrscene", "channel.oa.subscribe"),
        ("oa_unsubscribe", "channel.oa.unsubscribe"),
        ("oa_scan", "channel.oa.scan"),
        ("oa_click", "channel.oa.click"),
        ("oa_view", "channel.oa.view"),
        ("oa_location", "channel.oa.location"),
        (
            "oa_template_send_job_finish",
            "channel.oa.template_send_job_finish",
        ),
        ("oa_mass_send_job_finish", "channel.oa.mass_send_job_finish"),
        (
            "oa_subscribe_msg_popup_two_items",
            "channel.oa.subscribe_msg.popup",
        ),
        ("oa_subscribe_msg_change", "channel.oa.subscribe_msg.change"),
        ("oa_subscribe_msg_sent", "channel.oa.subscribe_msg.sent"),
        ("oa_text_ascii", "channel.oa.message.text"),
        ("oa_image", "channel.oa.message.image"),
        ("oa_voice", "channel.oa.message.voice"),
        ("oa_video", "channel.oa.message.video"),
        ("oa_location_msg", "channel.oa.message.location"),
        ("oa_link", "channel.oa.message.link"),
        (
            "wecom_add_external_contact",
            "channel.wecom.external_contact.add_external_contact",
        ),
        (
            "wecom_del_follow_user",
            "channel.wecom.external_contact.del_follow_user",
        ),
        (
            "wecom_transfer_fail",
            "channel.wecom.external_contact.transfer_fail",
        ),
        (
            "wecom_external_chat_update_add_member",
            "channel.wecom.external_chat.update",
        ),
        (
            "wecom_external_tag_shuffle",
            "channel.wecom.external_tag.shuffle",
        ),
        ("wecom_text_chinese", "channel.wecom.message.text"),
        ("mp_json_text", "channel.mp.message.text"),
        (
            "mp_json_event_enter_session",
            "channel.mp.user_enter_tempsession",
        ),
    ]
    .into_iter()
    .collect();
    let mut seen = 0;
    for cb in &c.callbacks {
        if let Some(want) = expected.get(cb.name.as_str()) {
            let channel = channel_of(&c.apps[&cb.app].kind);
            let event = parse_inner(channel, &cb.plaintext).expect("parses");
            assert_eq!(event.event_type(), *want, "{}", cb.name);
            seen += 1;
        }
    }
    assert_eq!(seen, expected.len());
}

/// The whole path the gateway takes: outer body → signature and decryption → typed event.
#[test]
fn fixture_bodies_end_to_end() {
    let c = corpus();
    for cb in c.callbacks.iter().filter(|cb| cb.method == "POST") {
        let app = &c.apps[&cb.app];
        let body = cb.body.as_deref().expect("POST has a body");
        let outer = if body.trim_start().starts_with('{') {
            parse_outer_json(body.as_bytes())
        } else {
            parse_outer_xml(body.as_bytes())
        }
        .unwrap_or_else(|e| panic!("{}: {e}", cb.name));
        assert_eq!(outer.mode(), CallbackMode::Safe, "{}", cb.name);
        let encrypt = outer.encrypt.as_deref().expect("safe mode has Encrypt");
        assert_eq!(encrypt, cb.encrypt, "{}", cb.name);
        if app.kind == "wecom" {
            assert_eq!(outer.to_user_name, app.receive_id);
        }
        let crypto = MsgCrypto::new(&app.token, &app.encoding_aes_key, &app.receive_id)
            .expect("fixture key");
        let plain = crypto
            .verify_and_decrypt(
                &cb.query["msg_signature"],
                &cb.query["timestamp"],
                &cb.query["nonce"],
                encrypt,
            )
            .unwrap_or_else(|e| panic!("{}: {e}", cb.name));
        let event = parse_inner(channel_of(&app.kind), &plain)
            .unwrap_or_else(|e| panic!("{}: {e}", cb.name));
        assert!(!event.is_unknown(), "{}", cb.name);
        if app.kind == "oa" {
            // Every OA fixture is from the same follower.
            assert_eq!(event.from_user_name, OPENID);
        }
    }
}

// ---------------------------------------------------------------- Properties

/// XML-ish text built from the pieces callbacks are made of, so mutations reach deep paths.
fn xmlish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("<xml>".to_owned()),
        Just("</xml>".to_owned()),
        Just("<ToUserName>gh</ToUserName>".to_owned()),
        Just("<FromUserName><![CDATA[o]]></FromUserName>".to_owned()),
        Just("<CreateTime>1714000000</CreateTime>".to_owned()),
        Just("<MsgType>event</MsgType>".to_owned()),
        Just("<MsgType>text</MsgType>".to_owned()),
        Just("<Event>subscribe_msg_popup_event</Event>".to_owned()),
        Just("<Event>change_external_chat</Event>".to_owned()),
        Just("<ChangeType>update</ChangeType>".to_owned()),
        Just("<SubscribeMsgPopupEvent>".to_owned()),
        Just("</SubscribeMsgPopupEvent>".to_owned()),
        Just("<List>".to_owned()),
        Just("</List>".to_owned()),
        Just("<MemChangeList><Item>a</Item>".to_owned()),
        Just("</MemChangeList>".to_owned()),
        Just("<MsgId>".to_owned()),
        Just("</MsgId>".to_owned()),
        Just("<![CDATA[".to_owned()),
        Just("]]>".to_owned()),
        Just("&amp;".to_owned()),
        Just("&#x0;".to_owned()),
        Just("&x;".to_owned()),
        Just("<!DOCTYPE".to_owned()),
        Just("<?xml version=\"1.0\"?>".to_owned()),
        Just("<!--".to_owned()),
        Just("-->".to_owned()),
        "[ -~]{0,8}",
        "\\PC{0,4}",
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn jsonish() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("[".to_owned()),
        Just("]".to_owned()),
        Just(",".to_owned()),
        Just(":".to_owned()),
        Just("\"ToUserName\":\"g\"".to_owned()),
        Just("\"FromUserName\":\"o\"".to_owned()),
        Just("\"CreateTime\":1714000000".to_owned()),
        Just("\"MsgType\":\"event\"".to_owned()),
        Just("\"Event\":\"subscribe_msg_popup_event\"".to_owned()),
        Just("\"List\"".to_owned()),
        Just("\"MsgId\":1e400".to_owned()),
        Just("null".to_owned()),
        Just("-0.5".to_owned()),
        "[ -~]{0,8}",
    ];
    proptest::collection::vec(piece, 0..40).prop_map(|v| v.concat())
}

fn parse_everything(s: &str) {
    let _ = parse_oa(s);
    let _ = parse_wecom(s);
    let _ = parse_mp_xml(s);
    let _ = parse_mp_json(s);
    let _ = parse_outer_xml(s.as_bytes());
    let _ = parse_outer_json(s.as_bytes());
    for channel in [Channel::Oa, Channel::WeCom, Channel::Mp] {
        if let Ok(e) = parse_inner(channel, s) {
            // Whatever parses has a well-formed routing key and a stable dedupe key.
            let key = e.event_type();
            assert!(key.starts_with("channel."));
            assert_eq!(e.dedupe_key(), e.clone().dedupe_key());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_strings_never_panic(s in "\\PC*") {
        parse_everything(&s);
    }

    #[test]
    fn arbitrary_bytes_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_outer_xml(&b);
        let _ = parse_outer_json(&b);
        parse_everything(&String::from_utf8_lossy(&b));
    }

    #[test]
    fn xmlish_never_panics(s in xmlish()) {
        parse_everything(&s);
    }

    #[test]
    fn jsonish_never_panics(s in jsonish()) {
        parse_everything(&s);
    }

    /// Re-parsing the same callback always gives the same event and key; a different CreateTime
    /// or sender always gives a different key for events.
    #[test]
    fn dedupe_key_tracks_the_natural_key(
        t1 in 1u32..2_000_000_000, t2 in 1u32..2_000_000_000,
        key in "[A-Za-z0-9_|%~]{1,12}", from in "o[A-Za-z0-9]{4,8}",
    ) {
        let xml = |t: u32, from: &str| format!(
            "<xml><ToUserName>{GH}</ToUserName><FromUserName>{from}</FromUserName><CreateTime>{t}</CreateTime>\
             <MsgType>event</MsgType><Event>CLICK</Event><EventKey><![CDATA[{key}]]></EventKey></xml>");
        let a = parse_oa(&xml(t1, &from)).unwrap();
        let again = parse_oa(&xml(t1, &from)).unwrap();
        prop_assert_eq!(a.dedupe_key(), again.dedupe_key());
        let b = parse_oa(&xml(t2, &from)).unwrap();
        prop_assert_eq!(t1 == t2, a.dedupe_key() == b.dedupe_key());
        let c = parse_oa(&xml(t1, &format!("{from}x"))).unwrap();
        prop_assert_ne!(a.dedupe_key(), c.dedupe_key());
    }
}
