//! Sends to many customers at once: an Official Account mass send to a list of openids
//! (`/cgi-bin/message/mass/send`, 2 to 10 000 openids of followers, `clientmsgid` guarding
//! against sending twice) and a WeCom group-send task for one rep
//! (`/cgi-bin/externalcontact/add_msg_template`, at most 10 000 of the rep's customers; those the
//! rep does not follow come back in `fail_list`). Text messages; WeChat's errors come back typed.

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiClient, ApiError, AppKind, Auth, Family, Request};

/// Most recipients of either send.
pub const MAX_RECIPIENTS: usize = 10_000;

/// Answer of an OA mass send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MassSent {
    pub msg_id: i64,
    #[serde(default)]
    pub msg_data_id: Option<i64>,
}

/// Answer of a WeCom group-send task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsgTemplateAdded {
    pub msgid: String,
    /// Customers the task cannot reach (not the sender's, or unknown).
    #[serde(default)]
    pub fail_list: Vec<String>,
}

impl ApiClient {
    /// `POST /cgi-bin/message/mass/send`: `content` as text to `openids` (2 to
    /// [`MAX_RECIPIENTS`] of the account's followers). A `client_msg_id` sent before makes WeChat
    /// refuse the send (45065), so a retried send is never delivered twice.
    pub async fn oa_mass_send_text<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        openids: &[&str],
        content: &str,
        client_msg_id: Option<&str>,
    ) -> Result<MassSent, ApiError> {
        let app = app.into();
        app.require(AppKind::OfficialAccount)?;
        let mut body = json!({
            "touser": openids,
            "msgtype": "text",
            "text": {"content": content},
        });
        if let Some(id) = client_msg_id {
            body["clientmsgid"] = json!(id);
        }
        let req = Request::post(Family::Weixin, "/cgi-bin/message/mass/send", body);
        self.call(app, req).await
    }

    /// `POST /cgi-bin/externalcontact/add_msg_template`: a group-send task for the rep
    /// `sender` to send `content` to `external_userids` (at most [`MAX_RECIPIENTS`]); the rep
    /// confirms it in WeCom.
    pub async fn wecom_add_msg_template_text<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        sender: &str,
        external_userids: &[&str],
        content: &str,
    ) -> Result<MsgTemplateAdded, ApiError> {
        let app = app.into();
        app.require(AppKind::WeCom)?;
        let body = json!({
            "chat_type": "single",
            "sender": sender,
            "external_userid": external_userids,
            "text": {"content": content},
        });
        let req = Request::post(
            Family::WeCom,
            "/cgi-bin/externalcontact/add_msg_template",
            body,
        );
        self.call(app, req).await
    }
}
