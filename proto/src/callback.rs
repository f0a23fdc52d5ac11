//! The payload of every WeChat callback event on the bus: which app received it and the typed
//! event. The routing key is the event's own type (`ChannelEvent::event_type`).

use serde::{Deserialize, Serialize};

use crate::channel::ChannelEvent;

/// A verified, decrypted WeChat callback.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallbackReceived {
    /// The OA / mini-program appid or WeCom corpid the callback URL names (and the decrypted
    /// receive-id matched): the namespace of the openids / external_userids in the event.
    pub app_id: String,
    pub event: ChannelEvent,
}
