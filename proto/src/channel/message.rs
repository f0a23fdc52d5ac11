//! User messages (`MsgType` other than `event`): the message header WeChat sends with each and its
//! content by type.

use serde::{Deserialize, Serialize};

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
