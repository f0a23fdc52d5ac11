//! The fake's channel-code endpoints: WeCom contact-me codes (`add_contact_way`,
//! `get_contact_way`, `update_contact_way`, `del_contact_way`) and Official Account parametric
//! QR codes (`qrcode/create`), with WeChat's limits (a `state` of at most 30 characters, one rep
//! for a single code, reps of the corp; scene ids and strings, 30 days for a temporary QR code,
//! 100 000 permanent ones). Tests read the codes back and send the callbacks of a customer
//! arriving through one (see the handle's `add_through_contact_way` and `scan_qrcode`).

use std::collections::HashMap;

use serde::Serialize;
use serde_json::{json, Value};

use super::{ok, Answer, Shared, State, TOKEN_CHARS};
use crate::population::{random_string, FakeAppKind};

/// Longest `state` of a contact-me code, in characters.
const MAX_STATE: usize = 30;
/// Longest temporary QR code life, in seconds.
const MAX_QR_EXPIRE: i64 = 2_592_000;
/// Permanent QR codes per account.
const MAX_PERMANENT_QR: usize = 100_000;

/// A contact-me code as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeContactWay {
    pub config_id: String,
    /// 1 single, 2 multi.
    pub kind: i64,
    /// 1 mini-program, 2 QR code.
    pub scene: i64,
    pub remark: String,
    pub skip_verify: bool,
    pub state: String,
    pub users: Vec<String>,
    pub is_temp: bool,
    pub qr_code: String,
    /// Deleted through `del_contact_way`.
    pub deleted: bool,
}

/// An OA parametric QR code as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FakeQrCode {
    pub ticket: String,
    /// `scene_str`, or `scene_id` as text.
    pub scene: String,
    /// `None` for a permanent code.
    pub expire_seconds: Option<i64>,
    pub url: String,
}

impl Shared {
    fn contact_way_fields(
        &self,
        st: &mut State,
        body: &Value,
        single: bool,
    ) -> Result<(String, Vec<String>, bool, String), Value> {
        let state = body["state"].as_str().unwrap_or("").to_string();
        if state.chars().count() > MAX_STATE {
            return Err(st.error_with(40058, "state exceeds 30 characters"));
        }
        let users: Vec<String> = body["user"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|u| u.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default();
        if users.is_empty() || (single && users.len() != 1) {
            return Err(st.error_with(40058, "user: one rep for a single code, 1–100 for multi"));
        }
        if let Some(u) = users
            .iter()
            .find(|u| !self.population.reps.iter().any(|r| &r.userid == *u))
        {
            return Err(st.error_with(60111, &format!("invalid userid {u}")));
        }
        let skip_verify = body["skip_verify"].as_bool().unwrap_or(true);
        let remark = body["remark"].as_str().unwrap_or("").to_string();
        Ok((state, users, skip_verify, remark))
    }

    /// `add_contact_way`.
    pub(super) fn add_contact_way(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_contact_token(st, q)?;
        let kind = body["type"].as_i64().unwrap_or(0);
        let scene = body["scene"].as_i64().unwrap_or(0);
        if !(1..=2).contains(&kind) || !(1..=2).contains(&scene) {
            return Err(st.error_with(40058, "type and scene are 1 or 2"));
        }
        let (state, users, skip_verify, remark) = self.contact_way_fields(st, body, kind == 1)?;
        let config_id = random_string(&mut st.rng, b"0123456789abcdef", 32);
        let qr_code = if scene == 2 {
            format!("https://wework.qpic.cn/wwpic/{config_id}/0")
        } else {
            String::new()
        };
        st.contact_ways.push(FakeContactWay {
            config_id: config_id.clone(),
            kind,
            scene,
            remark,
            skip_verify,
            state,
            users,
            is_temp: body["is_temp"].as_bool().unwrap_or(false),
            qr_code: qr_code.clone(),
            deleted: false,
        });
        Ok(json!({"errcode": 0, "errmsg": "ok", "config_id": config_id, "qr_code": qr_code}))
    }

    fn contact_way_index(&self, st: &mut State, body: &Value) -> Result<usize, Value> {
        let id = body["config_id"].as_str().unwrap_or("");
        st.contact_ways
            .iter()
            .position(|w| w.config_id == id && !w.deleted)
            .ok_or_else(|| st.error_with(41044, "invalid config_id"))
    }

    /// `get_contact_way`.
    pub(super) fn get_contact_way(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_contact_token(st, q)?;
        let i = self.contact_way_index(st, body)?;
        let w = &st.contact_ways[i];
        Ok(json!({"errcode": 0, "errmsg": "ok", "contact_way": {
            "config_id": w.config_id, "type": w.kind, "scene": w.scene, "remark": w.remark,
            "skip_verify": w.skip_verify, "state": w.state, "user": w.users,
            "is_temp": w.is_temp, "qr_code": w.qr_code,
        }}))
    }

    /// `update_contact_way`: remark, verification, state and reps replaced.
    pub(super) fn update_contact_way(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_contact_token(st, q)?;
        let i = self.contact_way_index(st, body)?;
        let single = st.contact_ways[i].kind == 1;
        let (state, users, skip_verify, remark) = self.contact_way_fields(st, body, single)?;
        let w = &mut st.contact_ways[i];
        (w.state, w.users, w.skip_verify, w.remark) = (state, users, skip_verify, remark);
        Ok(ok())
    }

    /// `del_contact_way`.
    pub(super) fn del_contact_way(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_contact_token(st, q)?;
        let i = self.contact_way_index(st, body)?;
        st.contact_ways[i].deleted = true;
        Ok(ok())
    }

    /// `qrcode/create`.
    pub(super) fn qrcode_create(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let action = body["action_name"].as_str().unwrap_or("");
        let scene = &body["action_info"]["scene"];
        let permanent = action.starts_with("QR_LIMIT");
        let scene = match action {
            "QR_SCENE" | "QR_LIMIT_SCENE" => match scene["scene_id"].as_i64() {
                Some(id) if id > 0 && (!permanent || id <= 100_000) => id.to_string(),
                _ => return Err(st.error_with(40097, "invalid scene_id")),
            },
            "QR_STR_SCENE" | "QR_LIMIT_STR_SCENE" => match scene["scene_str"].as_str() {
                Some(s) if (1..=64).contains(&s.chars().count()) => s.to_string(),
                _ => return Err(st.error_with(40097, "invalid scene_str")),
            },
            _ => return Err(st.error_with(40097, "invalid action_name")),
        };
        let expire_seconds = if permanent {
            if st
                .qrcodes
                .iter()
                .filter(|c| c.expire_seconds.is_none())
                .count()
                >= MAX_PERMANENT_QR
            {
                return Err(st.error_with(45005, "permanent qrcode limit"));
            }
            None
        } else {
            Some(
                body["expire_seconds"]
                    .as_i64()
                    .unwrap_or(60)
                    .clamp(60, MAX_QR_EXPIRE),
            )
        };
        let ticket = format!("gQ{}==", random_string(&mut st.rng, TOKEN_CHARS, 62));
        let url = format!(
            "http://weixin.qq.com/q/{}",
            random_string(&mut st.rng, TOKEN_CHARS, 22)
        );
        st.qrcodes.push(FakeQrCode {
            ticket: ticket.clone(),
            scene,
            expire_seconds,
            url: url.clone(),
        });
        let mut v = json!({"ticket": ticket, "url": url});
        if let Some(e) = expire_seconds {
            v["expire_seconds"] = json!(e);
        }
        Ok(v)
    }
}
