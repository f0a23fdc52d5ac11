//! The fake's sends to many customers at once, answered like WeChat and recorded with what each
//! reached, for [`crate::FakeHandle::mass_sends`] and `/fake/mass-sends`:
//!
//! - Official Account `message/mass/send` (群发 by openid list) with the OA's token: `touser` of
//!   2 to 10 000 openids (40130 under two, 40032 over the most), a `text` with `content` (44004
//!   when empty; other `msgtype`s need media the fake does not keep: 40008); an openid that is not
//!   the account's is 40003; a user who no longer follows is accepted and not reached. A
//!   `clientmsgid` sent before is 45065 (WeChat's duplicate-send guard). Answers `msg_id`,
//!   `msg_data_id`.
//! - WeCom `externalcontact/add_msg_template` (a group-send task for reps) with the
//!   customer-contact secret: `chat_type` `single` (default) with `external_userid` of at most
//!   10 000 customers and a `sender` rep (60111 when not a rep); a `text` with `content` (44004);
//!   customers the sender does not follow (or unknown ones) come back in `fail_list` with errcode
//!   0; none at all is 40058. Answers `msgid` and `fail_list`.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::{json, Value};

use super::{now_unix, strings, Answer, Shared, State, TOKEN_CHARS};
use crate::population::{random_string, FakeAppKind};

/// Most openids per OA mass send.
const OA_MAX_TOUSER: usize = 10_000;
/// Most customers per WeCom group-send task.
const WECOM_MAX_CUSTOMERS: usize = 10_000;

/// One send to many as the fake answered it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FakeMassSend {
    /// Unix seconds it arrived.
    pub time: i64,
    /// `oa` (message/mass/send) or `wecom` (add_msg_template).
    pub channel: String,
    /// The WeCom rep who sends (none for an OA send).
    pub sender: Option<String>,
    /// The recipients as sent (openids or external_userids).
    pub recipients: Vec<String>,
    /// The text sent.
    pub content: String,
    /// The errcode answered (0 = accepted).
    pub errcode: i64,
    /// The recipients it reaches (followers / the sender's customers).
    pub delivered_to: Vec<String>,
}

/// The `text.content` of a send, 44004 when empty, 40008 for another `msgtype`.
fn text_content(st: &mut State, body: &Value) -> Result<String, Value> {
    match body["msgtype"].as_str() {
        None | Some("text") => {}
        Some(_) => return Err(st.error(40008)),
    }
    let content = body["text"]["content"].as_str().unwrap_or("").trim();
    if content.is_empty() {
        return Err(st.error(44004));
    }
    Ok(content.to_owned())
}

impl Shared {
    /// `message/mass/send`: an OA send to a list of openids.
    pub(super) fn mass_send(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let touser = strings(body, "touser");
        if touser.len() < 2 {
            return Err(st.error(40130));
        }
        if touser.len() > OA_MAX_TOUSER {
            return Err(st.error(40032));
        }
        let content = text_content(st, body)?;
        let mut delivered = Vec::new();
        for openid in &touser {
            match self.population.by_oa_openid(openid) {
                None => return Err(st.error(40003)),
                Some(u) if u.oa.subscribed => delivered.push(openid.clone()),
                Some(_) => {}
            }
        }
        if let Some(id) = body["clientmsgid"].as_str().filter(|c| !c.is_empty()) {
            if !st.client_msg_ids.insert(id.to_owned()) {
                return Err(st.error(45065));
            }
        }
        st.mass_sends.push(FakeMassSend {
            time: now_unix(),
            channel: "oa".into(),
            sender: None,
            recipients: touser,
            content,
            errcode: 0,
            delivered_to: delivered,
        });
        let msg_id: u64 = 1_000_000_000 + st.mass_sends.len() as u64;
        Ok(json!({
            "errcode": 0,
            "errmsg": "send job submission success",
            "msg_id": msg_id,
            "msg_data_id": msg_id * 10,
        }))
    }

    /// `externalcontact/add_msg_template`: a rep's group-send task to their customers.
    pub(super) fn add_msg_template(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_contact_token(st, q)?;
        match body["chat_type"].as_str() {
            None | Some("single") => {}
            Some(_) => return Err(st.error(40058)),
        }
        let sender = body["sender"].as_str().unwrap_or("").trim().to_owned();
        if !self.population.reps.iter().any(|r| r.userid == sender) {
            return Err(st.error(60111));
        }
        let customers = strings(body, "external_userid");
        if customers.is_empty() || customers.len() > WECOM_MAX_CUSTOMERS {
            return Err(st.error(40058));
        }
        let content = text_content(st, body)?;
        let mut delivered = Vec::new();
        let mut failed = BTreeSet::new();
        for id in &customers {
            let follows = self
                .population
                .by_external_userid(id)
                .is_some_and(|u| u.follows.iter().any(|f| f.userid == sender));
            if follows {
                delivered.push(id.clone());
            } else {
                failed.insert(id.clone());
            }
        }
        st.mass_sends.push(FakeMassSend {
            time: now_unix(),
            channel: "wecom".into(),
            sender: Some(sender),
            recipients: customers,
            content,
            errcode: 0,
            delivered_to: delivered,
        });
        let msgid = format!("msg{}", random_string(&mut st.rng, TOKEN_CHARS, 24));
        Ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "fail_list": failed.into_iter().collect::<Vec<_>>(),
            "msgid": msgid,
        }))
    }
}
