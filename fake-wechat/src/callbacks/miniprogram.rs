//! Mini-program messages: customer-service text (JSON) and entering the customer-service session
//! (XML or JSON).

use super::{cdata, next_msg_id, CallbackBuilder};
use crate::server::now_unix;

impl CallbackBuilder<'_> {
    /// A mini-program customer-service text message as JSON.
    pub fn text_json(&self, openid: &str, content: &str) -> String {
        serde_json::json!({
            "ToUserName": self.app.original_id,
            "FromUserName": openid,
            "CreateTime": now_unix(),
            "MsgType": "text",
            "Content": content,
            "MsgId": next_msg_id(),
        })
        .to_string()
    }

    /// A user entering the mini-program's customer-service session (XML).
    pub fn user_enter_tempsession(&self, openid: &str, session_from: &str) -> String {
        self.oa_event(
            openid,
            "user_enter_tempsession",
            &format!("<SessionFrom>{}</SessionFrom>", cdata(session_from)),
        )
    }

    /// A user entering the mini-program's customer-service session (JSON).
    pub fn user_enter_tempsession_json(&self, openid: &str, session_from: &str) -> String {
        serde_json::json!({
            "ToUserName": self.app.original_id,
            "FromUserName": openid,
            "CreateTime": now_unix(),
            "MsgType": "event",
            "Event": "user_enter_tempsession",
            "SessionFrom": session_from,
        })
        .to_string()
    }
}
