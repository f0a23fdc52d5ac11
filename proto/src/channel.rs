//! Typed WeChat channel events: what an Official Account (OA), WeCom or mini-program (MP) server
//! callback said, after the gateway verified, decrypted and parsed it (`wechat::codec`).
//!
//! Shape: a [`ChannelEvent`] is a common header (channel, `ToUserName`, `FromUserName`,
//! `CreateTime`) plus an [`EventBody`]. The body is a closed set of known events; anything else is
//! kept whole as [`EventBody::Unknown`] with every field the callback carried, never dropped.
//!
//! Serialised form (the bus payload, JSON):
//!
//! ```json
//! {"channel":"oa","to_user_name":"gh_…","from_user_name":"o…","create_time":1714000101,
//!  "body":{"kind":"subscribe","scene":"campaign_2024","ticket":"gQH…"}}
//! ```
//!
//! Routing keys ([`ChannelEvent::event_type`]) are `channel.<channel>.<suffix>` where channel is
//! `oa`, `wecom` or `mp` and every word is `[a-z0-9_]`:
//!
//! | body | suffix |
//! |---|---|
//! | `Subscribe`, `Unsubscribe`, `Scan`, `Click`, `View`, `Location` | `subscribe`, `unsubscribe`, `scan`, `click`, `view`, `location` |
//! | `TemplateSendJobFinish`, `MassSendJobFinish` | `template_send_job_finish`, `mass_send_job_finish` |
//! | `SubscribeMsgPopup`, `SubscribeMsgChange`, `SubscribeMsgSent` | `subscribe_msg.popup`, `subscribe_msg.change`, `subscribe_msg.sent` |
//! | `UserEnterTempsession` | `user_enter_tempsession` |
//! | `Message` | `message.<type>`: `text`, `image`, `voice`, `video`, `shortvideo`, `location`, `link`, `miniprogrampage` |
//! | `ExternalContact` | `external_contact.<ChangeType>`, e.g. `external_contact.add_external_contact` |
//! | `ExternalChat` | `external_chat.create` / `.update` / `.dismiss` |
//! | `ExternalTag` | `external_tag.create` / `.update` / `.delete` / `.shuffle` |
//! | `Unknown` | `unknown` (the raw type names are in the payload, never in the key) |
//!
//! Dedupe keys ([`ChannelEvent::dedupe_key`]) are WeChat's natural key, complete: the routing key
//! followed by every field that distinguishes one fact from another (`MsgId` for messages; sender,
//! `CreateTime` and the event's own fields for events; a digest of all fields for unknown ones).
//! A re-sent callback always yields the same key; two different events never do.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::envelope::{Envelope, EnvelopeBuilder};

/// Namespace of the digest over an unknown event's fields; fixed forever so keys stay stable.
const UNKNOWN_DIGEST_NAMESPACE: Uuid = Uuid::from_bytes([
    0x2c, 0x8a, 0x51, 0xe4, 0x07, 0x6b, 0x4f, 0x3d, 0x9e, 0x12, 0xb7, 0x40, 0x5a, 0xc3, 0x68, 0x1f,
]);

/// Which WeChat surface a callback came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Channel {
    /// Official Account (公众号).
    #[serde(rename = "oa")]
    Oa,
    /// WeCom / Work WeChat (企业微信).
    #[serde(rename = "wecom")]
    WeCom,
    /// Mini-program (小程序).
    #[serde(rename = "mp")]
    Mp,
}

impl Channel {
    /// The routing-key word: `oa`, `wecom` or `mp`.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Oa => "oa",
            Channel::WeCom => "wecom",
            Channel::Mp => "mp",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One callback from WeChat: the header every callback carries plus the typed body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelEvent {
    /// The surface the callback came from (decided by the gateway route, not by the body).
    pub channel: Channel,
    /// `ToUserName`: the OA/MP original id (`gh_…`) or the WeCom corpid.
    pub to_user_name: String,
    /// `FromUserName`: the user's openid (OA/MP), a member userid (WeCom messages) or `sys`
    /// (WeCom change events).
    pub from_user_name: String,
    /// `CreateTime`: Unix seconds at WeChat.
    pub create_time: i64,
    /// What happened.
    pub body: EventBody,
}

/// The typed part of a callback. Field comments name the WeChat element each field comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum EventBody {
    /// OA `subscribe`: a follow. Via a parametric QR code `EventKey` is `qrscene_<scene>`; the
    /// prefix is stripped into `scene` (a non-prefixed, non-empty `EventKey` is kept as is).
    Subscribe {
        /// Scene of the parametric QR code, without `qrscene_`; `None` for a plain follow.
        scene: Option<String>,
        /// `Ticket` of the QR code.
        ticket: Option<String>,
    },
    /// OA `unsubscribe`.
    Unsubscribe,
    /// OA `SCAN`: a follower scanned a parametric QR code.
    Scan {
        /// `EventKey`: the scene (no prefix for SCAN).
        scene: String,
        /// `Ticket` of the QR code.
        ticket: Option<String>,
    },
    /// OA `CLICK` on a menu item.
    Click {
        /// `EventKey`: the menu key.
        key: String,
    },
    /// OA `VIEW`: a menu link was opened.
    View {
        /// `EventKey`: the URL.
        url: String,
        /// `MenuId` when present.
        menu_id: Option<String>,
    },
    /// OA `LOCATION` report.
    Location {
        /// `Latitude`.
        latitude: f64,
        /// `Longitude`.
        longitude: f64,
        /// `Precision`.
        precision: f64,
    },
    /// OA `TEMPLATESENDJOBFINISH`: delivery result of a template message.
    TemplateSendJobFinish {
        /// `MsgID` (capital D).
        msg_id: u64,
        /// `Status`: `success`, `failed:user block`, `failed: system failed`.
        status: String,
    },
    /// OA `MASSSENDJOBFINISH`: result of a mass send.
    MassSendJobFinish {
        /// `MsgID` (capital D).
        msg_id: u64,
        /// `Status`, e.g. `send success`.
        status: String,
        /// `TotalCount`.
        total_count: Option<u64>,
        /// `FilterCount`.
        filter_count: Option<u64>,
        /// `SentCount`.
        sent_count: Option<u64>,
        /// `ErrorCount`.
        error_count: Option<u64>,
    },
    /// OA/MP `subscribe_msg_popup_event`: the user answered the subscribe-message popup.
    SubscribeMsgPopup {
        /// One entry per template (`List`, one or repeated).
        items: Vec<SubscribeMsgPopupItem>,
    },
    /// OA/MP `subscribe_msg_change_event`: the user changed a subscription in settings.
    SubscribeMsgChange {
        /// One entry per template.
        items: Vec<SubscribeMsgChangeItem>,
    },
    /// OA/MP `subscribe_msg_sent_event`: delivery result of a subscribe message.
    SubscribeMsgSent {
        /// One entry per message.
        items: Vec<SubscribeMsgSentItem>,
    },
    /// MP `user_enter_tempsession`: the user opened the customer-service session.
    UserEnterTempsession {
        /// `SessionFrom`: the `session-from` set on the button.
        session_from: Option<String>,
    },
    /// A message the user sent (any channel).
    Message(Message),
    /// WeCom `change_external_contact`.
    ExternalContact(ExternalContactChange),
    /// WeCom `change_external_chat`.
    ExternalChat(ExternalChatChange),
    /// WeCom `change_external_tag`.
    ExternalTag(ExternalTagChange),
    /// A callback of a type this crate does not model, kept whole.
    Unknown {
        /// `MsgType` as sent.
        msg_type: String,
        /// `Event` as sent, if any.
        event: Option<String>,
        /// `ChangeType` as sent, if any.
        change_type: Option<String>,
        /// Every field of the callback, header included. Nested elements are flattened to
        /// `Parent/Child` paths; a name repeated among siblings gets an index, `List[0]`, `List[1]`.
        fields: BTreeMap<String, String>,
    },
}

/// One template in a `subscribe_msg_popup_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeMsgPopupItem {
    /// `TemplateId`.
    pub template_id: String,
    /// `SubscribeStatusString`: `accept` or `reject`.
    pub status: String,
    /// `PopupScene` (0 mini-program page, 1 after payment, 2 OA article, … as sent).
    pub popup_scene: Option<String>,
}

/// One template in a `subscribe_msg_change_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeMsgChangeItem {
    /// `TemplateId`.
    pub template_id: String,
    /// `SubscribeStatusString`: `accept` or `reject`.
    pub status: String,
}

/// One message in a `subscribe_msg_sent_event`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeMsgSentItem {
    /// `TemplateId`.
    pub template_id: String,
    /// `MsgID`.
    pub msg_id: Option<u64>,
    /// `ErrorCode` (0 = delivered).
    pub error_code: Option<i64>,
    /// `ErrorStatus`, e.g. `success`.
    pub error_status: Option<String>,
}

/// A user message. `msg_id` is WeChat's unique message id and the dedupe key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `MsgId` (note the case: `MsgId`, not `MsgID`).
    pub msg_id: u64,
    /// `MsgDataId`: set when the message came from an article.
    pub msg_data_id: Option<u64>,
    /// `Idx`: the article's position, with `msg_data_id`.
    pub idx: Option<u32>,
    /// `AgentID`: the WeCom application that received it.
    pub agent_id: Option<String>,
    /// The content by type.
    pub content: MessageContent,
}

/// Message content by `MsgType`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "msg_type", rename_all = "snake_case")]
pub enum MessageContent {
    /// `text`: `Content`.
    Text { content: String },
    /// `image`: `PicUrl`, `MediaId`.
    Image {
        pic_url: Option<String>,
        media_id: String,
    },
    /// `voice`: `MediaId`, `Format`, `Recognition` (speech-to-text, when enabled).
    Voice {
        media_id: String,
        format: Option<String>,
        recognition: Option<String>,
    },
    /// `video`: `MediaId`, `ThumbMediaId`.
    Video {
        media_id: String,
        thumb_media_id: Option<String>,
    },
    /// `shortvideo`: `MediaId`, `ThumbMediaId`.
    #[serde(rename = "shortvideo")]
    ShortVideo {
        media_id: String,
        thumb_media_id: Option<String>,
    },
    /// `location`: `Location_X` (latitude), `Location_Y` (longitude), `Scale`, `Label`.
    Location {
        location_x: f64,
        location_y: f64,
        scale: Option<f64>,
        label: Option<String>,
    },
    /// `link`: `Title`, `Description`, `Url`.
    Link {
        title: String,
        description: Option<String>,
        url: String,
    },
    /// MP `miniprogrampage` (a mini-program card sent into customer service): `Title`, `AppId`,
    /// `PagePath`, `ThumbUrl`, `ThumbMediaId`.
    #[serde(rename = "miniprogrampage")]
    MiniProgramPage {
        title: Option<String>,
        app_id: Option<String>,
        page_path: Option<String>,
        thumb_url: Option<String>,
        thumb_media_id: Option<String>,
    },
}

impl MessageContent {
    /// The WeChat `MsgType`, also the last word of the routing key.
    pub fn msg_type(&self) -> &'static str {
        match self {
            MessageContent::Text { .. } => "text",
            MessageContent::Image { .. } => "image",
            MessageContent::Voice { .. } => "voice",
            MessageContent::Video { .. } => "video",
            MessageContent::ShortVideo { .. } => "shortvideo",
            MessageContent::Location { .. } => "location",
            MessageContent::Link { .. } => "link",
            MessageContent::MiniProgramPage { .. } => "miniprogrampage",
        }
    }
}

/// `ChangeType` of WeCom `change_external_contact`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalContactChangeType {
    /// A rep added a customer (or the customer added the rep with verification).
    AddExternalContact,
    /// A rep edited the customer's remark etc.
    EditExternalContact,
    /// The customer added a rep who has not accepted yet (no verification).
    AddHalfExternalContact,
    /// The rep deleted the customer (`Source` = `DELETE_BY_TRANSFER` when by transfer).
    DelExternalContact,
    /// The customer deleted the rep.
    DelFollowUser,
    /// An inheritance transfer failed (`FailReason`).
    TransferFail,
}

impl ExternalContactChangeType {
    /// All values, in declaration order.
    pub const ALL: [Self; 6] = [
        Self::AddExternalContact,
        Self::EditExternalContact,
        Self::AddHalfExternalContact,
        Self::DelExternalContact,
        Self::DelFollowUser,
        Self::TransferFail,
    ];

    /// The WeChat `ChangeType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AddExternalContact => "add_external_contact",
            Self::EditExternalContact => "edit_external_contact",
            Self::AddHalfExternalContact => "add_half_external_contact",
            Self::DelExternalContact => "del_external_contact",
            Self::DelFollowUser => "del_follow_user",
            Self::TransferFail => "transfer_fail",
        }
    }

    /// Parses a `ChangeType` (ASCII case-insensitive); `None` for one not modelled.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// WeCom `change_external_contact`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalContactChange {
    /// `ChangeType`.
    pub change_type: ExternalContactChangeType,
    /// `UserID`: the rep (corp member).
    pub user_id: String,
    /// `ExternalUserID`: the customer.
    pub external_user_id: String,
    /// `State`: the `state` of the contact-me QR code (add / add_half only).
    pub state: Option<String>,
    /// `WelcomeCode`: usable once within 20 s for `send_welcome_msg` (add / add_half only).
    pub welcome_code: Option<String>,
    /// `Source` (del_external_contact), e.g. `DELETE_BY_TRANSFER`.
    pub source: Option<String>,
    /// `FailReason` (transfer_fail): `customer_refused`, `customer_limit_exceed`.
    pub fail_reason: Option<String>,
}

/// `ChangeType` of WeCom `change_external_chat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalChatChangeType {
    Create,
    Update,
    Dismiss,
}

impl ExternalChatChangeType {
    /// All values, in declaration order.
    pub const ALL: [Self; 3] = [Self::Create, Self::Update, Self::Dismiss];

    /// The WeChat `ChangeType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Dismiss => "dismiss",
        }
    }

    /// Parses a `ChangeType` (ASCII case-insensitive); `None` for one not modelled.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// WeCom `change_external_chat` (a customer group chat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalChatChange {
    /// `ChangeType`.
    pub change_type: ExternalChatChangeType,
    /// `ChatId`.
    pub chat_id: String,
    /// `UpdateDetail` (update only): `add_member`, `del_member`, `change_owner`, `change_name`,
    /// `change_notice`.
    pub update_detail: Option<String>,
    /// `JoinScene` (add_member): 0 invited, 3 scanned the group QR code.
    pub join_scene: Option<u32>,
    /// `QuitScene` (del_member): 0 left, 1 removed.
    pub quit_scene: Option<u32>,
    /// `MemChangeCnt`.
    pub mem_change_cnt: Option<u32>,
    /// `MemChangeList/Item`: the userids / external_userids that joined or left.
    #[serde(default)]
    pub mem_change_list: Vec<String>,
    /// `LastMemVer`: member-list version before the change.
    pub last_mem_ver: Option<String>,
    /// `CurMemVer`: member-list version after the change.
    pub cur_mem_ver: Option<String>,
}

/// `ChangeType` of WeCom `change_external_tag`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExternalTagChangeType {
    Create,
    Update,
    Delete,
    Shuffle,
}

impl ExternalTagChangeType {
    /// All values, in declaration order.
    pub const ALL: [Self; 4] = [Self::Create, Self::Update, Self::Delete, Self::Shuffle];

    /// The WeChat `ChangeType` string.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
            Self::Shuffle => "shuffle",
        }
    }

    /// Parses a `ChangeType` (ASCII case-insensitive); `None` for one not modelled.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s))
    }
}

/// WeCom `change_external_tag` (corp customer tags).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExternalTagChange {
    /// `ChangeType`.
    pub change_type: ExternalTagChangeType,
    /// `Id`: the tag or tag-group id (for shuffle: the group id, or empty for all groups).
    pub id: String,
    /// `TagType`: `tag` or `tag_group` (absent for shuffle).
    pub tag_type: Option<String>,
    /// `StrategyId`: the rule-group id for rule-group tags.
    pub strategy_id: Option<u64>,
}

impl EventBody {
    /// The routing-key suffix after `channel.<channel>.` (see the module table).
    pub fn route_suffix(&self) -> String {
        let fixed = match self {
            EventBody::Subscribe { .. } => "subscribe",
            EventBody::Unsubscribe => "unsubscribe",
            EventBody::Scan { .. } => "scan",
            EventBody::Click { .. } => "click",
            EventBody::View { .. } => "view",
            EventBody::Location { .. } => "location",
            EventBody::TemplateSendJobFinish { .. } => "template_send_job_finish",
            EventBody::MassSendJobFinish { .. } => "mass_send_job_finish",
            EventBody::SubscribeMsgPopup { .. } => "subscribe_msg.popup",
            EventBody::SubscribeMsgChange { .. } => "subscribe_msg.change",
            EventBody::SubscribeMsgSent { .. } => "subscribe_msg.sent",
            EventBody::UserEnterTempsession { .. } => "user_enter_tempsession",
            EventBody::Unknown { .. } => "unknown",
            EventBody::Message(m) => return format!("message.{}", m.content.msg_type()),
            EventBody::ExternalContact(c) => {
                return format!("external_contact.{}", c.change_type.as_str())
            }
            EventBody::ExternalChat(c) => {
                return format!("external_chat.{}", c.change_type.as_str())
            }
            EventBody::ExternalTag(c) => return format!("external_tag.{}", c.change_type.as_str()),
        };
        fixed.to_owned()
    }
}

impl ChannelEvent {
    /// The bus routing key, `channel.<oa|wecom|mp>.<suffix>`, e.g. `channel.oa.subscribe`,
    /// `channel.wecom.external_contact.add_external_contact`, `channel.mp.message.text`.
    pub fn event_type(&self) -> String {
        format!(
            "channel.{}.{}",
            self.channel.as_str(),
            self.body.route_suffix()
        )
    }

    /// The surface the event came from.
    pub fn channel(&self) -> Channel {
        self.channel
    }

    /// `CreateTime` as a UTC instant (the Unix epoch if it is out of chrono's range, which the
    /// codec never produces).
    pub fn occurred_at(&self) -> DateTime<Utc> {
        DateTime::from_timestamp(self.create_time, 0).unwrap_or(DateTime::UNIX_EPOCH)
    }

    /// Is this an event of a type not modelled here?
    pub fn is_unknown(&self) -> bool {
        matches!(self.body, EventBody::Unknown { .. })
    }

    /// WeChat's natural key for this fact: the routing key, then `|`-separated components in
    /// which `%`, `|` and `~` are percent-escaped and an absent value is `~`, so distinct
    /// component lists never produce the same string.
    ///
    /// - messages: `ToUserName`, `FromUserName`, `MsgId`;
    /// - OA/MP events: `ToUserName`, `FromUserName`, `CreateTime`, then the event's own fields
    ///   (scene and ticket, menu key, URL, coordinates, `MsgID` and status, every list item…);
    /// - WeCom change events (`FromUserName` is `sys`): `ToUserName`, `FromUserName`,
    ///   `CreateTime`, then `UserID`, `ExternalUserID`, `State`, `WelcomeCode`, `Source`,
    ///   `FailReason` / `ChatId`, `UpdateDetail`, scenes, member changes and versions / `Id`,
    ///   `TagType`, `StrategyId`;
    /// - unknown events: `ToUserName`, `FromUserName`, `CreateTime`, `MsgType`, `Event`,
    ///   `ChangeType` and a SHA-1-based digest of all sorted fields.
    pub fn dedupe_key(&self) -> String {
        let mut k = KeyBuilder::new(self.event_type());
        k.put(&self.to_user_name).put(&self.from_user_name);
        if let EventBody::Message(m) = &self.body {
            k.put(&m.msg_id.to_string());
            return k.finish();
        }
        k.put(&self.create_time.to_string());
        match &self.body {
            EventBody::Subscribe { scene, ticket } => {
                k.opt(scene.as_deref()).opt(ticket.as_deref());
            }
            EventBody::Unsubscribe => {}
            EventBody::Scan { scene, ticket } => {
                k.put(scene).opt(ticket.as_deref());
            }
            EventBody::Click { key } => {
                k.put(key);
            }
            EventBody::View { url, menu_id } => {
                k.put(url).opt(menu_id.as_deref());
            }
            EventBody::Location {
                latitude,
                longitude,
                precision,
            } => {
                k.num(latitude).num(longitude).num(precision);
            }
            EventBody::TemplateSendJobFinish { msg_id, status } => {
                k.num(msg_id).put(status);
            }
            EventBody::MassSendJobFinish {
                msg_id,
                status,
                total_count,
                filter_count,
                sent_count,
                error_count,
            } => {
                k.num(msg_id)
                    .put(status)
                    .opt_num(total_count)
                    .opt_num(filter_count)
                    .opt_num(sent_count)
                    .opt_num(error_count);
            }
            EventBody::SubscribeMsgPopup { items } => {
                k.num(&items.len());
                for i in items {
                    k.put(&i.template_id)
                        .put(&i.status)
                        .opt(i.popup_scene.as_deref());
                }
            }
            EventBody::SubscribeMsgChange { items } => {
                k.num(&items.len());
                for i in items {
                    k.put(&i.template_id).put(&i.status);
                }
            }
            EventBody::SubscribeMsgSent { items } => {
                k.num(&items.len());
                for i in items {
                    k.put(&i.template_id)
                        .opt_num(&i.msg_id)
                        .opt_num(&i.error_code)
                        .opt(i.error_status.as_deref());
                }
            }
            EventBody::UserEnterTempsession { session_from } => {
                k.opt(session_from.as_deref());
            }
            EventBody::ExternalContact(c) => {
                k.put(&c.user_id)
                    .put(&c.external_user_id)
                    .opt(c.state.as_deref())
                    .opt(c.welcome_code.as_deref())
                    .opt(c.source.as_deref())
                    .opt(c.fail_reason.as_deref());
            }
            EventBody::ExternalChat(c) => {
                k.put(&c.chat_id)
                    .opt(c.update_detail.as_deref())
                    .opt_num(&c.join_scene)
                    .opt_num(&c.quit_scene)
                    .opt_num(&c.mem_change_cnt)
                    .num(&c.mem_change_list.len());
                for m in &c.mem_change_list {
                    k.put(m);
                }
                k.opt(c.last_mem_ver.as_deref())
                    .opt(c.cur_mem_ver.as_deref());
            }
            EventBody::ExternalTag(c) => {
                k.put(&c.id)
                    .opt(c.tag_type.as_deref())
                    .opt_num(&c.strategy_id);
            }
            EventBody::Unknown {
                msg_type,
                event,
                change_type,
                fields,
            } => {
                let mut all = KeyBuilder::empty();
                all.num(&fields.len());
                for (name, value) in fields {
                    all.put(name).put(value);
                }
                let digest = Uuid::new_v5(&UNKNOWN_DIGEST_NAMESPACE, all.finish().as_bytes());
                k.put(msg_type)
                    .opt(event.as_deref())
                    .opt(change_type.as_deref())
                    .put(&digest.simple().to_string());
            }
            // Handled above.
            EventBody::Message(_) => {}
        }
        k.finish()
    }

    /// An envelope builder for this event: type = [`event_type`](Self::event_type), payload = this
    /// event as JSON, `occurred_at` = `CreateTime`, dedupe key = [`dedupe_key`](Self::dedupe_key)
    /// (so the message id is deterministic).
    pub fn envelope_builder(&self, tenant_id: impl Into<String>) -> EnvelopeBuilder {
        // Plain structs, strings, integers, finite floats and string-keyed maps always serialise.
        let payload = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        Envelope::builder(self.event_type(), tenant_id, payload)
            .occurred_at(self.occurred_at())
            .dedupe_key(self.dedupe_key())
    }
}

/// Builds an injective `|`-separated key.
struct KeyBuilder {
    out: String,
    /// Whether a component has been written (the next one needs a separator).
    started: bool,
}

impl KeyBuilder {
    /// Starts with `first` as the first component, written verbatim.
    fn new(first: String) -> Self {
        KeyBuilder {
            out: first,
            started: true,
        }
    }

    /// Starts with no component.
    fn empty() -> Self {
        KeyBuilder {
            out: String::new(),
            started: false,
        }
    }

    fn sep(&mut self) {
        if self.started {
            self.out.push('|');
        }
        self.started = true;
    }

    /// A present value, escaped.
    fn put(&mut self, value: &str) -> &mut Self {
        self.sep();
        for ch in value.chars() {
            match ch {
                '%' => self.out.push_str("%25"),
                '|' => self.out.push_str("%7C"),
                '~' => self.out.push_str("%7E"),
                c => self.out.push(c),
            }
        }
        self
    }

    /// An optional value: `~` when absent.
    fn opt(&mut self, value: Option<&str>) -> &mut Self {
        match value {
            Some(v) => self.put(v),
            None => {
                self.sep();
                self.out.push('~');
                self
            }
        }
    }

    /// A number (its `Display` form never contains a reserved character).
    fn num<T: std::fmt::Display>(&mut self, value: &T) -> &mut Self {
        self.sep();
        // Writing into a String cannot fail.
        let _ = write!(self.out, "{value}");
        self
    }

    fn opt_num<T: std::fmt::Display>(&mut self, value: &Option<T>) -> &mut Self {
        match value {
            Some(v) => self.num(v),
            None => self.opt(None),
        }
    }

    fn finish(&mut self) -> String {
        std::mem::take(&mut self.out)
    }
}

#[cfg(test)]
mod tests {
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
            let back: ChannelEvent =
                serde_json::from_value(serde_json::to_value(&e).unwrap()).unwrap();
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
}
