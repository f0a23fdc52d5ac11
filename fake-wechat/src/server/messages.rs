//! The fake's `message/send`: app messages from the corp's self-built app to reps, answered like
//! WeCom — recipients who are not among the population's reps come back in `invaliduser` with
//! errcode 0, no valid recipient at all is 81013 — and recorded with the answer given (injected
//! failures included), for `/fake/messages` and [`crate::FakeHandle::messages`].

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::{now_unix, Answer, Shared, State, TOKEN_CHARS};
use crate::population::{random_string, FakeRep};

/// One `message/send` request as the fake answered it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FakeMessage {
    /// Unix seconds it arrived.
    pub time: i64,
    /// `agentid` of the request.
    pub agentid: Option<i64>,
    /// `touser` as sent (`rep01|rep02`, `@all`).
    pub touser: String,
    /// `msgtype` (`text`, `textcard`, …).
    pub msgtype: String,
    /// The object named by `msgtype` (`{content}`, `{title, description, url, btntxt}`).
    pub content: Value,
    /// The errcode answered (0 = sent).
    pub errcode: i64,
    /// The reps it reached (none unless sent).
    pub delivered_to: Vec<String>,
    /// The whole answer.
    pub answer: Value,
}

/// The userids `touser` names; `@all` is every rep.
fn named(touser: &str, reps: &[FakeRep]) -> Vec<String> {
    if touser.trim() == "@all" {
        return reps.iter().map(|r| r.userid.clone()).collect();
    }
    touser
        .split('|')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect()
}

impl FakeMessage {
    pub(super) fn of(body: &Value, answer: &Value, reps: &[FakeRep]) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        let msgtype = text(&body["msgtype"]);
        let errcode = answer["errcode"].as_i64().unwrap_or(0);
        let touser = text(&body["touser"]);
        let delivered_to = if errcode == 0 {
            let invalid = text(&answer["invaliduser"]);
            let invalid: Vec<&str> = invalid.split('|').collect();
            named(&touser, reps)
                .into_iter()
                .filter(|u| !invalid.contains(&u.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        FakeMessage {
            time: now_unix(),
            agentid: agentid(body),
            content: body.get(msgtype.as_str()).cloned().unwrap_or(Value::Null),
            touser,
            msgtype,
            errcode,
            delivered_to,
            answer: answer.clone(),
        }
    }
}

/// `agentid` as a number or a numeric string (WeCom takes both).
fn agentid(body: &Value) -> Option<i64> {
    let v = body.get("agentid")?;
    v.as_i64().or_else(|| v.as_str()?.trim().parse().ok())
}

impl Shared {
    /// `message/send` from the self-built app to members.
    pub(super) fn message_send(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        let app = self.check_agent_token(st, q)?;
        let Some(id) = agentid(body) else {
            return Err(st.error(41011));
        };
        if Some(id) != app.agent_id {
            return Err(st.error(40056));
        }
        let msgtype = body["msgtype"].as_str().unwrap_or("");
        let field = |k: &str| body[msgtype][k].as_str().unwrap_or("").trim().to_owned();
        match msgtype {
            "text" if field("content").is_empty() => return Err(st.error(44004)),
            "textcard" if field("title").is_empty() || field("description").is_empty() => {
                return Err(st.error(44004))
            }
            "textcard" if field("url").is_empty() => return Err(st.error(40058)),
            "text" | "textcard" => {}
            _ => return Err(st.error(40008)),
        }
        let reps = &self.population.reps;
        let (valid, invalid): (Vec<String>, Vec<String>) =
            named(body["touser"].as_str().unwrap_or(""), reps)
                .into_iter()
                .partition(|u| reps.iter().any(|r| r.userid == *u));
        if valid.is_empty() {
            return Err(st.error(81013));
        }
        let msgid = random_string(&mut st.rng, TOKEN_CHARS, 40);
        Ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "invaliduser": invalid.join("|"),
            "invalidparty": "",
            "invalidtag": "",
            "unlicenseduser": "",
            "msgid": msgid,
            "response_code": "",
        }))
    }
}
