//! Callbacks the fake pushes to a gateway, as WeChat would: builders for the XML / JSON messages
//! of Official Accounts, WeCom and mini-programs, and the signed (and, where the mode asks,
//! encrypted) HTTP requests that carry them.
//!
//! - OA / MP: `POST {gateway}/wechat/oa/{appid}` (`/wechat/mp/{appid}`) with `signature`,
//!   `timestamp`, `nonce`, `openid`, and in compatible / safe mode `encrypt_type=aes` and
//!   `msg_signature`. Compatible mode keeps the plain fields and adds `<Encrypt>`; safe mode sends
//!   only `ToUserName` and `Encrypt`.
//! - WeCom: `POST {gateway}/wechat/wecom/{corpid}`, always encrypted, `msg_signature`,
//!   `timestamp`, `nonce`; the envelope carries `ToUserName`, `AgentID`, `Encrypt`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rand::Rng;

use crate::population::{FakeApp, FakeAppKind};
use crate::server::now_unix;
use wechat::crypto::CryptoError;
use wechat::signature;

/// How an OA / MP callback is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallbackMode {
    /// Plain XML / JSON, `signature` only.
    Plaintext,
    /// Plain fields plus `Encrypt`, both signatures.
    Compatible,
    /// Only `ToUserName` and `Encrypt`, both signatures.
    Safe,
}

/// Why a callback could not be built or sent.
#[derive(Debug, thiserror::Error)]
pub enum CallbackError {
    /// Encryption failed.
    #[error("cannot encrypt the callback: {0}")]
    Crypto(#[from] CryptoError),
    /// The message is not what the mode needs (e.g. JSON that is not an object).
    #[error("invalid callback message: {0}")]
    Invalid(String),
    /// The app is of another kind than the channel.
    #[error("{app} is not a {expected} app")]
    WrongApp {
        /// The app name.
        app: String,
        /// The kind the channel needs.
        expected: &'static str,
    },
    /// The HTTP request failed.
    #[error("cannot deliver the callback: {0}")]
    Http(String),
}

/// A callback ready to be posted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedCallback {
    /// Full URL without the query.
    pub url: String,
    /// Query parameters in the order WeChat sends them.
    pub query: Vec<(String, String)>,
    /// Request body.
    pub body: String,
    /// `text/xml` or `application/json`.
    pub content_type: &'static str,
}

impl PreparedCallback {
    /// The value of a query parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What the gateway answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallbackResponse {
    /// HTTP status.
    pub status: u16,
    /// Body as text.
    pub body: String,
}

/// `<![CDATA[…]]>` with `]]>` split so any text survives.
pub(crate) fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// The text of the first `<tag>` element (CDATA unwrapped), for reading back our own XML.
fn xml_field(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = start + xml[start..].find(&close)?;
    let inner = xml[start..end].trim();
    Some(
        inner
            .strip_prefix("<![CDATA[")
            .and_then(|s| s.strip_suffix("]]>"))
            .unwrap_or(inner)
            .replace("]]]]><![CDATA[>", "]]>"),
    )
}

static MSG_BASE: OnceLock<u64> = OnceLock::new();
static MSG_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh message id: 19 digits like WeChat's, unique within the process, starting from a
/// random point so two runs do not collide in a shared store.
fn next_msg_id() -> u64 {
    let base = *MSG_BASE.get_or_init(|| {
        6_000_000_000_000_000_000 + rand::rng().random_range(0..1_000_000_000_000_000u64)
    });
    base + MSG_COUNTER.fetch_add(1, Ordering::Relaxed)
}

fn nonce() -> String {
    rand::rng()
        .random_range(100_000_000u64..10_000_000_000)
        .to_string()
}

/// Builds callback messages for one app. Every message has the current `CreateTime`.
#[derive(Debug, Clone)]
pub struct CallbackBuilder<'a> {
    app: &'a FakeApp,
}

impl<'a> CallbackBuilder<'a> {
    pub(crate) fn new(app: &'a FakeApp) -> Self {
        CallbackBuilder { app }
    }

    fn envelope(&self, from: &str, msg_type: &str, rest: &str) -> String {
        format!(
            "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{}</CreateTime><MsgType>{}</MsgType>{rest}</xml>",
            cdata(&self.app.original_id),
            cdata(from),
            now_unix(),
            cdata(msg_type),
        )
    }

    fn oa_event(&self, openid: &str, event: &str, rest: &str) -> String {
        self.envelope(
            openid,
            "event",
            &format!("<Event>{}</Event>{rest}", cdata(event)),
        )
    }

    // ---- Official Account (and mini-program XML) -------------------------------------------

    /// A plain follow (empty `EventKey`).
    pub fn subscribe(&self, openid: &str) -> String {
        self.oa_event(
            openid,
            "subscribe",
            &format!("<EventKey>{}</EventKey>", cdata("")),
        )
    }

    /// A follow through a parametric QR code: `EventKey` = `qrscene_{scene}`, plus `Ticket`.
    pub fn subscribe_with_scene(&self, openid: &str, scene: &str) -> String {
        self.oa_event(
            openid,
            "subscribe",
            &format!(
                "<EventKey>{}</EventKey><Ticket>{}</Ticket>",
                cdata(&format!("qrscene_{scene}")),
                cdata(&format!("gQH{scene}fakeTicket"))
            ),
        )
    }

    /// An unfollow.
    pub fn unsubscribe(&self, openid: &str) -> String {
        self.oa_event(
            openid,
            "unsubscribe",
            &format!("<EventKey>{}</EventKey>", cdata("")),
        )
    }

    /// A follower scanning a parametric QR code: `EventKey` = scene, plus `Ticket`.
    pub fn scan(&self, openid: &str, scene: &str) -> String {
        self.oa_event(
            openid,
            "SCAN",
            &format!(
                "<EventKey>{}</EventKey><Ticket>{}</Ticket>",
                cdata(scene),
                cdata(&format!("gQH{scene}fakeTicket"))
            ),
        )
    }

    /// A click on a menu button.
    pub fn click(&self, openid: &str, key: &str) -> String {
        self.oa_event(
            openid,
            "CLICK",
            &format!("<EventKey>{}</EventKey>", cdata(key)),
        )
    }

    /// A click on a menu link.
    pub fn view(&self, openid: &str, url: &str) -> String {
        self.oa_event(
            openid,
            "VIEW",
            &format!("<EventKey>{}</EventKey>", cdata(url)),
        )
    }

    /// A location report.
    pub fn location(&self, openid: &str, latitude: f64, longitude: f64, precision: f64) -> String {
        self.oa_event(
            openid,
            "LOCATION",
            &format!(
                "<Latitude>{latitude}</Latitude><Longitude>{longitude}</Longitude><Precision>{precision}</Precision>"
            ),
        )
    }

    /// A text message with a fresh `MsgId`.
    pub fn text(&self, openid: &str, content: &str) -> String {
        self.envelope(
            openid,
            "text",
            &format!(
                "<Content>{}</Content><MsgId>{}</MsgId>",
                cdata(content),
                next_msg_id()
            ),
        )
    }

    // ---- mini-program ------------------------------------------------------------------------

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

    // ---- WeCom -------------------------------------------------------------------------------

    fn wecom_event(&self, event: &str, change_type: &str, rest: &str) -> String {
        self.envelope(
            "sys",
            "event",
            &format!(
                "<Event>{}</Event><ChangeType>{}</ChangeType>{rest}",
                cdata(event),
                cdata(change_type)
            ),
        )
    }

    fn contact_fields(userid: &str, external_userid: &str) -> String {
        format!(
            "<UserID>{}</UserID><ExternalUserID>{}</ExternalUserID>",
            cdata(userid),
            cdata(external_userid)
        )
    }

    fn welcome_code() -> String {
        format!("WELCOMECODE{}", nonce())
    }

    /// A rep added a customer (`State` when through a contact-me QR code).
    pub fn add_external_contact(
        &self,
        userid: &str,
        external_userid: &str,
        state: Option<&str>,
    ) -> String {
        let state = state
            .map(|s| format!("<State>{}</State>", cdata(s)))
            .unwrap_or_default();
        self.wecom_event(
            "change_external_contact",
            "add_external_contact",
            &format!(
                "{}{state}<WelcomeCode>{}</WelcomeCode>",
                Self::contact_fields(userid, external_userid),
                cdata(&Self::welcome_code())
            ),
        )
    }

    /// A customer added a rep without verification.
    pub fn add_half_external_contact(
        &self,
        userid: &str,
        external_userid: &str,
        state: Option<&str>,
    ) -> String {
        let state = state
            .map(|s| format!("<State>{}</State>", cdata(s)))
            .unwrap_or_default();
        self.wecom_event(
            "change_external_contact",
            "add_half_external_contact",
            &format!(
                "{}{state}<WelcomeCode>{}</WelcomeCode>",
                Self::contact_fields(userid, external_userid),
                cdata(&Self::welcome_code())
            ),
        )
    }

    /// A rep edited a customer.
    pub fn edit_external_contact(&self, userid: &str, external_userid: &str) -> String {
        self.wecom_event(
            "change_external_contact",
            "edit_external_contact",
            &Self::contact_fields(userid, external_userid),
        )
    }

    /// A rep deleted a customer (`Source` = `DELETE_BY_TRANSFER` after a transfer).
    pub fn del_external_contact(
        &self,
        userid: &str,
        external_userid: &str,
        source: Option<&str>,
    ) -> String {
        let source = source
            .map(|s| format!("<Source>{}</Source>", cdata(s)))
            .unwrap_or_default();
        self.wecom_event(
            "change_external_contact",
            "del_external_contact",
            &format!("{}{source}", Self::contact_fields(userid, external_userid)),
        )
    }

    /// A customer deleted a rep.
    pub fn del_follow_user(&self, userid: &str, external_userid: &str) -> String {
        self.wecom_event(
            "change_external_contact",
            "del_follow_user",
            &Self::contact_fields(userid, external_userid),
        )
    }

    /// A transfer of a customer failed (`customer_refused` / `customer_limit_exceed`).
    pub fn transfer_fail(&self, userid: &str, external_userid: &str, reason: &str) -> String {
        self.wecom_event(
            "change_external_contact",
            "transfer_fail",
            &format!(
                "{}<FailReason>{}</FailReason>",
                Self::contact_fields(userid, external_userid),
                cdata(reason)
            ),
        )
    }

    /// A customer group chat was created.
    pub fn external_chat_create(&self, chat_id: &str) -> String {
        self.wecom_event(
            "change_external_chat",
            "create",
            &format!("<ChatId>{}</ChatId>", cdata(chat_id)),
        )
    }

    /// A customer group chat was dismissed.
    pub fn external_chat_dismiss(&self, chat_id: &str) -> String {
        self.wecom_event(
            "change_external_chat",
            "dismiss",
            &format!("<ChatId>{}</ChatId>", cdata(chat_id)),
        )
    }

    /// Members joined a customer group chat (`join_scene` 0 invited, 3 scanned the group QR).
    pub fn external_chat_add_member(
        &self,
        chat_id: &str,
        join_scene: u32,
        members: &[&str],
    ) -> String {
        self.external_chat_members(chat_id, "add_member", "JoinScene", join_scene, members)
    }

    /// Members left a customer group chat (`quit_scene` 0 left, 1 removed).
    pub fn external_chat_del_member(
        &self,
        chat_id: &str,
        quit_scene: u32,
        members: &[&str],
    ) -> String {
        self.external_chat_members(chat_id, "del_member", "QuitScene", quit_scene, members)
    }

    fn external_chat_members(
        &self,
        chat_id: &str,
        detail: &str,
        scene_tag: &str,
        scene: u32,
        members: &[&str],
    ) -> String {
        let items: String = members
            .iter()
            .map(|m| format!("<Item>{}</Item>", cdata(m)))
            .collect();
        self.wecom_event(
            "change_external_chat",
            "update",
            &format!(
                "<ChatId>{}</ChatId><UpdateDetail>{}</UpdateDetail><{scene_tag}>{scene}</{scene_tag}><MemChangeCnt>{}</MemChangeCnt><MemChangeList>{items}</MemChangeList><LastMemVer>{}</LastMemVer><CurMemVer>{}</CurMemVer>",
                cdata(chat_id),
                cdata(detail),
                members.len(),
                cdata("9c3f97c2ada667dfb5f6d03308d963e1"),
                cdata("71217227bbd112ecfe3a49c482195cb4"),
            ),
        )
    }

    /// A corp tag or tag group changed (`change_type` create / update / delete; `tag_type`
    /// `tag` or `tag_group`).
    pub fn external_tag(&self, id: &str, tag_type: &str, change_type: &str) -> String {
        self.wecom_event(
            "change_external_tag",
            change_type,
            &format!(
                "<Id>{}</Id><TagType>{}</TagType>",
                cdata(id),
                cdata(tag_type)
            ),
        )
    }
}

fn require_kind(
    app: &FakeApp,
    kinds: &[FakeAppKind],
    expected: &'static str,
) -> Result<(), CallbackError> {
    if kinds.contains(&app.kind) {
        Ok(())
    } else {
        Err(CallbackError::WrongApp {
            app: app.name.clone(),
            expected,
        })
    }
}

/// Builds an OA or MP push (XML, or JSON for MP when the body starts with `{`).
fn prepare_oa_like(
    gateway_base_url: &str,
    segment: &str,
    app: &FakeApp,
    body: &str,
    mode: CallbackMode,
) -> Result<PreparedCallback, CallbackError> {
    let is_json = body.trim_start().starts_with('{');
    let crypto = app.crypto();
    let timestamp = now_unix().to_string();
    let nonce = nonce();
    let (openid, to_user) = if is_json {
        let v: serde_json::Value = serde_json::from_str(body)
            .map_err(|e| CallbackError::Invalid(format!("not JSON: {e}")))?;
        (
            v["FromUserName"].as_str().unwrap_or_default().to_owned(),
            v["ToUserName"]
                .as_str()
                .unwrap_or(&app.original_id)
                .to_owned(),
        )
    } else {
        (
            xml_field(body, "FromUserName").unwrap_or_default(),
            xml_field(body, "ToUserName").unwrap_or_else(|| app.original_id.clone()),
        )
    };
    let mut query = vec![
        (
            "signature".to_owned(),
            signature::signature(crypto.token(), &timestamp, &nonce),
        ),
        ("timestamp".to_owned(), timestamp.clone()),
        ("nonce".to_owned(), nonce.clone()),
        ("openid".to_owned(), openid),
    ];
    let body = match mode {
        CallbackMode::Plaintext => body.to_owned(),
        CallbackMode::Compatible | CallbackMode::Safe => {
            let encrypt = crypto.encrypt(body, None)?;
            query.push(("encrypt_type".to_owned(), "aes".to_owned()));
            query.push((
                "msg_signature".to_owned(),
                crypto.msg_signature(&timestamp, &nonce, &encrypt),
            ));
            match (mode, is_json) {
                (CallbackMode::Safe, false) => format!(
                    "<xml><ToUserName>{}</ToUserName><Encrypt>{}</Encrypt></xml>",
                    cdata(&to_user),
                    cdata(&encrypt)
                ),
                (CallbackMode::Safe, true) => {
                    serde_json::json!({ "ToUserName": to_user, "Encrypt": encrypt }).to_string()
                }
                (_, false) => {
                    let at = body.rfind("</xml>").ok_or_else(|| {
                        CallbackError::Invalid("XML without a closing </xml>".to_owned())
                    })?;
                    format!(
                        "{}<Encrypt>{}</Encrypt>{}",
                        &body[..at],
                        cdata(&encrypt),
                        &body[at..]
                    )
                }
                (_, true) => {
                    let mut v: serde_json::Value = serde_json::from_str(body)
                        .map_err(|e| CallbackError::Invalid(format!("not JSON: {e}")))?;
                    let obj = v.as_object_mut().ok_or_else(|| {
                        CallbackError::Invalid("JSON callback is not an object".to_owned())
                    })?;
                    obj.insert("Encrypt".to_owned(), encrypt.into());
                    v.to_string()
                }
            }
        }
    };
    Ok(PreparedCallback {
        url: format!(
            "{}/wechat/{segment}/{}",
            gateway_base_url.trim_end_matches('/'),
            app.appid
        ),
        query,
        body,
        content_type: if is_json {
            "application/json"
        } else {
            "text/xml"
        },
    })
}

/// An Official Account push to `{gateway}/wechat/oa/{appid}`.
pub fn prepare_oa(
    gateway_base_url: &str,
    app: &FakeApp,
    xml: &str,
    mode: CallbackMode,
) -> Result<PreparedCallback, CallbackError> {
    require_kind(app, &[FakeAppKind::OfficialAccount], "Official Account")?;
    prepare_oa_like(gateway_base_url, "oa", app, xml, mode)
}

/// A mini-program push (XML or JSON) to `{gateway}/wechat/mp/{appid}`.
pub fn prepare_mp(
    gateway_base_url: &str,
    app: &FakeApp,
    body: &str,
    mode: CallbackMode,
) -> Result<PreparedCallback, CallbackError> {
    require_kind(app, &[FakeAppKind::MiniProgram], "mini-program")?;
    prepare_oa_like(gateway_base_url, "mp", app, body, mode)
}

/// A WeCom push to `{gateway}/wechat/wecom/{corpid}` (always encrypted).
pub fn prepare_wecom(
    gateway_base_url: &str,
    app: &FakeApp,
    xml: &str,
) -> Result<PreparedCallback, CallbackError> {
    require_kind(app, &[FakeAppKind::WeCom], "WeCom")?;
    let crypto = app.crypto();
    let timestamp = now_unix().to_string();
    let nonce = nonce();
    let encrypt = crypto.encrypt(xml, None)?;
    let agent_id = app.agent_id.map(|id| id.to_string()).unwrap_or_default();
    Ok(PreparedCallback {
        url: format!(
            "{}/wechat/wecom/{}",
            gateway_base_url.trim_end_matches('/'),
            app.appid
        ),
        query: vec![
            (
                "msg_signature".to_owned(),
                crypto.msg_signature(&timestamp, &nonce, &encrypt),
            ),
            ("timestamp".to_owned(), timestamp),
            ("nonce".to_owned(), nonce),
        ],
        body: format!(
            "<xml><ToUserName>{}</ToUserName><AgentID>{}</AgentID><Encrypt>{}</Encrypt></xml>",
            cdata(&app.appid),
            cdata(&agent_id),
            cdata(&encrypt)
        ),
        content_type: "text/xml",
    })
}

/// Posts a prepared callback.
pub(crate) async fn post(
    http: &reqwest::Client,
    cb: &PreparedCallback,
) -> Result<CallbackResponse, CallbackError> {
    let response = http
        .post(&cb.url)
        .query(&cb.query)
        .header(reqwest::header::CONTENT_TYPE, cb.content_type)
        .body(cb.body.clone())
        .send()
        .await
        .map_err(|e| CallbackError::Http(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response
        .text()
        .await
        .map_err(|e| CallbackError::Http(e.to_string()))?;
    Ok(CallbackResponse { status, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdata_survives_terminators() {
        let xml = format!("<xml><A>{}</A></xml>", cdata("x]]>y"));
        assert_eq!(xml_field(&xml, "A").as_deref(), Some("x]]>y"));
    }

    #[test]
    fn msg_ids_are_unique() {
        let a = next_msg_id();
        let b = next_msg_id();
        assert_ne!(a, b);
        assert!(a >= 6_000_000_000_000_000_000);
    }
}
