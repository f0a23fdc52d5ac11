//! The fake's mini-program endpoints: `jscode2session` (with its per-user rate limit) and the
//! phone number of a `getPhoneNumber` code, and the single-use codes both accept.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use rand::Rng;
use serde_json::{json, Value};

use super::super::population::{random_string, FakeAppKind, FakeUser};
use super::{now_unix, Answer, PhoneCode, Shared, State, TOKEN_CHARS};

impl Shared {
    pub(crate) fn issue_login_code(&self, user: &FakeUser) -> String {
        let mut st = self.lock();
        let code = format!("0{}", random_string(&mut st.rng, TOKEN_CHARS, 31));
        st.login_codes.insert(code.clone(), (user.index, false));
        code
    }

    pub(crate) fn issue_phone_code(&self, user: &FakeUser) -> String {
        let mut st = self.lock();
        let code = random_string(&mut st.rng, TOKEN_CHARS, 64);
        st.phone_codes.insert(
            code.clone(),
            PhoneCode {
                user: user.index,
                issued: Instant::now(),
                used: false,
            },
        );
        code
    }

    pub(super) fn code2session(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
        let app = &self.apps.mp;
        if q.get("appid") != Some(&app.appid) {
            return Err(st.error(40013));
        }
        if q.get("secret") != Some(&app.secret) {
            return Err(st.error(40125));
        }
        let code = match q.get("js_code").filter(|c| !c.is_empty()) {
            Some(c) => c.clone(),
            None => return Err(st.error(41008)),
        };
        let user_index = match st.login_codes.get(&code) {
            Some(&(user, false)) => user,
            _ => return Err(st.error(40029)),
        };
        let now = Instant::now();
        let limit = st.code2session_limit;
        let window = st.code2session_window.entry(user_index).or_insert((now, 0));
        if now.duration_since(window.0) >= Duration::from_secs(60) {
            *window = (now, 0);
        }
        if window.1 >= limit {
            return Err(st.error(45011));
        }
        window.1 += 1;
        if let Some(entry) = st.login_codes.get_mut(&code) {
            entry.1 = true;
        }
        let user = self
            .population
            .users
            .get(user_index)
            .ok_or_else(|| st.error(40029))?;
        let key: [u8; 16] = st.rng.random();
        let mut v = json!({
            "openid": user.mp_openid,
            "session_key": base64::engine::general_purpose::STANDARD.encode(key),
        });
        if let (Some(unionid), Some(obj)) = (&user.unionid, v.as_object_mut()) {
            obj.insert("unionid".to_owned(), json!(unionid));
        }
        Ok(v)
    }

    pub(super) fn phone_number(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
    ) -> Answer {
        self.check_token(st, q, FakeAppKind::MiniProgram)?;
        let code = body["code"].as_str().ok_or_else(|| st.error(47001))?;
        let ttl = st.phone_code_ttl;
        let user_index = match st.phone_codes.get_mut(code) {
            Some(c) if !c.used && c.issued.elapsed() < ttl => {
                c.used = true;
                c.user
            }
            _ => return Err(st.error(40029)),
        };
        let user = self
            .population
            .users
            .get(user_index)
            .ok_or_else(|| st.error(40029))?;
        Ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": user.phone,
                "purePhoneNumber": user.phone,
                "countryCode": "86",
                "watermark": { "timestamp": now_unix(), "appid": self.apps.mp.appid },
            },
        }))
    }
}
