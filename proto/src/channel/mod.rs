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
//!
//! Parts: user messages (`message`), WeCom change events (`wecom`) and the natural key
//! (`dedupe`); the header, the body and the routing key are here.

mod dedupe;
mod message;
mod wecom;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{Envelope, EnvelopeBuilder};

pub use message::{Message, MessageContent};
pub use wecom::{
    ExternalChatChange, ExternalChatChangeType, ExternalContactChange, ExternalContactChangeType,
    ExternalTagChange, ExternalTagChangeType,
};

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
}

impl ChannelEvent {
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

#[cfg(test)]
mod tests;
