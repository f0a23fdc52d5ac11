//! A WeCom self-built app (agent) as the sales-rep sidebar uses it: the OAuth sign-in (the
//! authorize URL on WeChat's web host, then `auth/getuserinfo` for the code it hands back) and
//! app messages to reps (`message/send`).
//!
//! - The code is single-use and lives 5 minutes; a used, expired or forged one is 40029.
//! - `message/send` needs the token of the app named by `agentid` (its own secret, not the
//!   customer-contact one). Recipients it could not reach come back with errcode 0 in
//!   `invaliduser` & co: [`SendOutcome::PartlyUnreached`], not success. No valid recipient at all
//!   is 81013, a server IP not on the app's list 60020; rate limits (45009, 45033) are worth a
//!   later retry ([`ApiError::is_rate_limited`]).

use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ApiClient, ApiError, AppKind, Auth, Family, Request, Secret};

/// WeChat's web host, which serves the OAuth authorize page.
pub const OPEN_BASE_URL: &str = "https://open.weixin.qq.com";

/// Percent-encodes everything but the unreserved characters (RFC 3986), as WeChat expects of
/// `redirect_uri`.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The WeCom OAuth authorize URL on `open_base` (normally [`OPEN_BASE_URL`]):
/// `{open_base}/connect/oauth2/authorize?appid=CORPID&redirect_uri=…&response_type=code&
/// scope=snsapi_base&state=…&agentid=…#wechat_redirect`, parameters in that order, values
/// percent-encoded. WeCom sends the browser to `redirect_uri?code=CODE&state=STATE`; `state`
/// should be at most 128 letters and digits (it comes back as given).
pub fn wecom_oauth_url(
    open_base: &str,
    corpid: &str,
    agentid: i64,
    redirect_uri: &str,
    state: &str,
) -> String {
    format!(
        "{}/connect/oauth2/authorize?appid={}&redirect_uri={}&response_type=code\
         &scope=snsapi_base&state={}&agentid={agentid}#wechat_redirect",
        open_base.trim_end_matches('/'),
        percent_encode(corpid),
        percent_encode(redirect_uri),
        percent_encode(state),
    )
}

/// Who signed in, from `auth/getuserinfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OAuthUser {
    /// A member of the corp (a rep).
    Member {
        /// The member's userid.
        userid: String,
        /// With `snsapi_privateinfo` only: reads the member's sensitive fields for 1800 s.
        user_ticket: Option<Secret>,
    },
    /// Someone outside the corp.
    NonMember {
        /// Their openid under the corp.
        openid: Option<String>,
        /// Their external_userid, when they are a customer of the corp.
        external_userid: Option<String>,
    },
}

/// The raw answer: `userid` (older servers `UserId`) for members, `openid` / `external_userid`
/// (older `OpenId`) for everyone else.
#[derive(Deserialize)]
struct UserInfoAnswer {
    #[serde(default, alias = "UserId")]
    userid: Option<String>,
    #[serde(default)]
    user_ticket: Option<Secret>,
    #[serde(default, alias = "OpenId")]
    openid: Option<String>,
    #[serde(default)]
    external_userid: Option<String>,
}

/// What an app message says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "msgtype", rename_all = "lowercase")]
pub enum AppMessageBody {
    /// Plain text (at most 2048 bytes).
    Text {
        /// The message.
        text: TextContent,
    },
    /// A card with a title, a description and a link button.
    TextCard {
        /// The card.
        textcard: TextCard,
    },
}

/// The `text` of a text message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextContent {
    /// The message.
    pub content: String,
}

/// The `textcard` of a card message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TextCard {
    /// Title (at most 128 bytes).
    pub title: String,
    /// Description (at most 512 bytes; WeCom renders a few HTML tags such as
    /// `<div class="gray">`).
    pub description: String,
    /// Where the card leads.
    pub url: String,
    /// Button text (at most 4 characters; WeCom shows 详情 without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub btntxt: Option<String>,
}

/// `text` cut at a character boundary to at most `max` bytes.
fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl AppMessageBody {
    /// A text message, cut to 2048 bytes.
    pub fn text(content: &str) -> Self {
        AppMessageBody::Text {
            text: TextContent {
                content: cut(content, 2048),
            },
        }
    }

    /// A card; title and description are cut to 128 and 512 bytes.
    pub fn textcard(title: &str, description: &str, url: &str, btntxt: Option<&str>) -> Self {
        AppMessageBody::TextCard {
            textcard: TextCard {
                title: cut(title, 128),
                description: cut(description, 512),
                url: url.to_owned(),
                btntxt: btntxt.map(str::to_owned),
            },
        }
    }

    /// `text` or `textcard`.
    pub fn msgtype(&self) -> &'static str {
        match self {
            AppMessageBody::Text { .. } => "text",
            AppMessageBody::TextCard { .. } => "textcard",
        }
    }
}

/// An app message to members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppMessage {
    /// Recipients' userids joined with `|` (at most 1000), or `@all`.
    pub touser: String,
    /// The app sending it; must be the app whose token the call uses (else 40056).
    pub agentid: i64,
    /// What it says.
    #[serde(flatten)]
    pub body: AppMessageBody,
}

impl AppMessage {
    /// A message from app `agentid` to `userids`.
    pub fn new(agentid: i64, userids: &[&str], body: AppMessageBody) -> Self {
        AppMessage {
            touser: userids.join("|"),
            agentid,
            body,
        }
    }
}

/// Recipients WeCom did not reach although it answered errcode 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unreached {
    /// `invaliduser`: userids that are not members (or not visible to the app).
    pub users: Vec<String>,
    /// `invalidparty`: department ids.
    pub parties: Vec<String>,
    /// `invalidtag`: tag ids.
    pub tags: Vec<String>,
    /// `unlicenseduser`: members without a licence for the app.
    pub unlicensed_users: Vec<String>,
}

impl Unreached {
    /// `true` when every recipient was reached.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
            && self.parties.is_empty()
            && self.tags.is_empty()
            && self.unlicensed_users.is_empty()
    }
}

/// What `message/send` did, when it answered errcode 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Every recipient was reached.
    Delivered {
        /// The message id (to recall it).
        msgid: String,
    },
    /// Sent, but some recipients were not reached.
    PartlyUnreached {
        /// The message id.
        msgid: String,
        /// Who was not reached.
        unreached: Unreached,
    },
}

impl SendOutcome {
    /// The message id.
    pub fn msgid(&self) -> &str {
        match self {
            SendOutcome::Delivered { msgid } | SendOutcome::PartlyUnreached { msgid, .. } => msgid,
        }
    }
}

#[derive(Deserialize)]
struct SendAnswer {
    #[serde(default)]
    msgid: String,
    #[serde(default)]
    invaliduser: String,
    #[serde(default)]
    invalidparty: String,
    #[serde(default)]
    invalidtag: String,
    #[serde(default)]
    unlicenseduser: String,
}

/// The ids of a `|`-joined list.
fn split_ids(joined: &str) -> Vec<String> {
    joined
        .split('|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

impl From<SendAnswer> for SendOutcome {
    fn from(a: SendAnswer) -> Self {
        let unreached = Unreached {
            users: split_ids(&a.invaliduser),
            parties: split_ids(&a.invalidparty),
            tags: split_ids(&a.invalidtag),
            unlicensed_users: split_ids(&a.unlicenseduser),
        };
        if unreached.is_empty() {
            SendOutcome::Delivered { msgid: a.msgid }
        } else {
            SendOutcome::PartlyUnreached {
                msgid: a.msgid,
                unreached,
            }
        }
    }
}

impl ApiClient {
    /// [`wecom_oauth_url`] on this client's `open_base_url`.
    pub fn wecom_oauth_url(
        &self,
        corpid: &str,
        agentid: i64,
        redirect_uri: &str,
        state: &str,
    ) -> String {
        wecom_oauth_url(
            &self.options.open_base_url,
            corpid,
            agentid,
            redirect_uri,
            state,
        )
    }

    /// `GET /cgi-bin/auth/getuserinfo`: who the OAuth `code` signed in. Codes are single-use
    /// and live 5 minutes (40029 otherwise).
    pub async fn wecom_oauth_user<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        code: &str,
    ) -> Result<OAuthUser, ApiError> {
        let app = app.into();
        app.require(AppKind::WeCom)?;
        let req = Request::get(Family::WeCom, "/cgi-bin/auth/getuserinfo").query("code", code);
        let answer: UserInfoAnswer = self.call(app, req).await?;
        let present = |v: Option<String>| v.filter(|s| !s.is_empty());
        if let Some(userid) = present(answer.userid) {
            return Ok(OAuthUser::Member {
                userid,
                user_ticket: answer.user_ticket.filter(|t| !t.expose().is_empty()),
            });
        }
        let (openid, external_userid) = (present(answer.openid), present(answer.external_userid));
        if openid.is_none() && external_userid.is_none() {
            return Err(ApiError::InvalidResponse {
                endpoint: "/cgi-bin/auth/getuserinfo".to_owned(),
                status: None,
                message: "neither userid nor openid nor external_userid".to_owned(),
            });
        }
        Ok(OAuthUser::NonMember {
            openid,
            external_userid,
        })
    }

    /// `POST /cgi-bin/message/send`: an app message, with the token of the app `agentid` names.
    pub async fn wecom_send_message<'a>(
        &self,
        app: impl Into<Auth<'a>>,
        message: &AppMessage,
    ) -> Result<SendOutcome, ApiError> {
        let app = app.into();
        app.require(AppKind::WeCom)?;
        let body = serde_json::to_value(message).unwrap_or_else(|_| json!({}));
        let req = Request::post(Family::WeCom, "/cgi-bin/message/send", body);
        let answer: SendAnswer = self.call(app, req).await?;
        Ok(answer.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorize_url_keeps_the_order_and_encodes() {
        let url = wecom_oauth_url(
            "https://open.weixin.qq.com/",
            "ww1",
            1_000_002,
            "https://crm.example.com/sidebar/cb?x=1&y=a b",
            "s1",
        );
        assert_eq!(
            url,
            "https://open.weixin.qq.com/connect/oauth2/authorize?appid=ww1\
             &redirect_uri=https%3A%2F%2Fcrm.example.com%2Fsidebar%2Fcb%3Fx%3D1%26y%3Da%20b\
             &response_type=code&scope=snsapi_base&state=s1&agentid=1000002#wechat_redirect"
        );
    }

    #[test]
    fn messages_encode_as_wecom_documents() {
        let m = AppMessage::new(
            1_000_002,
            &["rep01", "rep02"],
            AppMessageBody::textcard("标题", "描述", "https://x/y", Some("详情")),
        );
        assert_eq!(
            serde_json::to_value(&m).expect("encodes"),
            json!({ "touser": "rep01|rep02", "agentid": 1_000_002, "msgtype": "textcard",
                    "textcard": { "title": "标题", "description": "描述", "url": "https://x/y",
                                  "btntxt": "详情" } })
        );
        let t = AppMessage::new(7, &["a"], AppMessageBody::text("hi"));
        assert_eq!(
            serde_json::to_value(&t).expect("encodes"),
            json!({ "touser": "a", "agentid": 7, "msgtype": "text", "text": { "content": "hi" } })
        );
        // Cut at a character boundary within the byte limit.
        let AppMessageBody::TextCard { textcard } =
            AppMessageBody::textcard(&"标".repeat(50), "", "u", None)
        else {
            unreachable!("a card")
        };
        assert_eq!(textcard.title.len(), 126);
    }

    #[test]
    fn unreached_recipients_are_not_delivery() {
        let a: SendAnswer = serde_json::from_str(
            r#"{"errcode":0,"errmsg":"ok","invaliduser":"rep09|x","invalidparty":"",
                "invalidtag":"","unlicenseduser":"","msgid":"m1","response_code":"r"}"#,
        )
        .expect("decodes");
        let outcome = SendOutcome::from(a);
        assert_eq!(outcome.msgid(), "m1");
        match outcome {
            SendOutcome::PartlyUnreached { unreached, .. } => {
                assert_eq!(unreached.users, vec!["rep09", "x"]);
            }
            other => panic!("{other:?}"),
        }
        let ok: SendAnswer =
            serde_json::from_str(r#"{"errcode":0,"errmsg":"ok","msgid":"m2"}"#).expect("decodes");
        assert_eq!(
            SendOutcome::from(ok),
            SendOutcome::Delivered { msgid: "m2".into() }
        );
    }

    #[test]
    fn older_member_answer_decodes() {
        let a: UserInfoAnswer =
            serde_json::from_str(r#"{"errcode":0,"errmsg":"ok","UserId":"rep01","DeviceId":""}"#)
                .expect("decodes");
        assert_eq!(a.userid.as_deref(), Some("rep01"));
    }
}
