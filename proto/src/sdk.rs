//! Events the gateway publishes from its own endpoints (not WeChat callbacks): mini-program login,
//! verified phone, and behaviour tracking from mini-program / H5 pages.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::event::Event;

/// Routing key of [`MpSessionStarted`].
pub const MP_SESSION: &str = MpSessionStarted::TYPE;
/// Routing key of [`MpPhoneVerified`].
pub const MP_PHONE: &str = MpPhoneVerified::TYPE;
/// Routing-key prefix of [`Tracked`] events: `channel.track.<kind>`.
pub const TRACK_PREFIX: &str = "channel.track";

/// The tracking properties a profile's source touch is read from (first and latest touch):
/// `utm_source` → channel, `utm_medium` → media, `utm_campaign`, `utm_content`, `utm_term` →
/// keyword, `source_levels` (a list, or `a > b > c`), and the same under `source.`. Another
/// property named `source.*` or `source_*` is refused (it would be silently unread).
pub const SOURCE_KEYS: [&str; 12] = [
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "source_levels",
    "source.channel",
    "source.media",
    "source.campaign",
    "source.content",
    "source.keyword",
    "source.levels",
];

/// Whether a tracking property looks like a source but is none of [`SOURCE_KEYS`].
pub fn is_unread_source_key(key: &str) -> bool {
    (key.starts_with("source.") || key.starts_with("source_")) && !SOURCE_KEYS.contains(&key)
}

/// A mini-program user logged in (`wx.login` code exchanged through `code2session`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpSessionStarted {
    /// Mini-program appid (the namespace of the openid).
    pub app_id: String,
    pub openid: String,
    /// Present when the mini-program is bound to an Open Platform account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
}

impl Event for MpSessionStarted {
    const TYPE: &'static str = "channel.mp.session";
}

/// A phone number verified by WeChat through the mini-program phone button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MpPhoneVerified {
    pub app_id: String,
    pub openid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// E.164, e.g. `+8613800138000`.
    pub phone_e164: String,
    /// Country calling code without `+`, e.g. `86`.
    pub country_code: String,
}

impl Event for MpPhoneVerified {
    const TYPE: &'static str = "channel.mp.phone";
}

/// Who a tracked event is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Mini-program appid, when the SDK session token identified the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mp_app_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub openid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unionid: Option<String>,
    /// Device/cookie id from the page, for visitors not yet identified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anonymous_id: Option<String>,
}

/// Kinds of behaviour events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    PageView,
    Click,
    Share,
    Download,
    FormSubmit,
    Custom,
}

impl TrackKind {
    pub const ALL: [TrackKind; 6] = [
        TrackKind::PageView,
        TrackKind::Click,
        TrackKind::Share,
        TrackKind::Download,
        TrackKind::FormSubmit,
        TrackKind::Custom,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TrackKind::PageView => "page_view",
            TrackKind::Click => "click",
            TrackKind::Share => "share",
            TrackKind::Download => "download",
            TrackKind::FormSubmit => "form_submit",
            TrackKind::Custom => "custom",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// The routing key events of this kind are published under.
    pub fn routing_key(self) -> String {
        format!("{TRACK_PREFIX}.{}", self.as_str())
    }
}

/// A behaviour event from a mini-program or H5 page. Not an [`Event`]: it travels under the
/// routing key of its kind ([`TrackKind::routing_key`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tracked {
    pub subject: Subject,
    pub kind: TrackKind,
    /// Event name (required for `custom`; e.g. the button id for `click`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Page path or URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page: Option<String>,
    /// Content the event is about, with the operator's content tags (what the customer prefers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Free-form scalar properties.
    #[serde(default)]
    pub properties: BTreeMap<String, serde_json::Value>,
    /// Client-side id, so a retried batch is recognised.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
}

/// Content (article, case study, product page) an event refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Content {
    pub id: String,
    #[serde(default)]
    pub tags: Vec<String>,
}
