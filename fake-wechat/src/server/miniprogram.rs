//! The fake's mini-program endpoints: `jscode2session` (with its per-user rate limit) and the
//! phone number of a `getPhoneNumber` code, and the single-use codes both accept — issued in
//! Rust or over HTTP (`/fake/mp/login-code`, `/fake/mp/phone-code`) for a browser or a script.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use base64::Engine as _;
use rand::Rng;
use serde_json::{json, Value};

use super::{json_response, now_unix, Answer, PhoneCode, Shared, State, TOKEN_CHARS};
use crate::population::{random_string, FakeAppKind, FakeUser};

impl Shared {
    pub(crate) fn issue_login_code(&self, user: &FakeUser) -> String {
        let mut st = self.lock();
        let code = format!("0{}", random_string(&mut st.rng, TOKEN_CHARS, 31));
        st.login_codes.insert(code.clone(), (user.index, false));
        code
    }

    /// The legacy `getPhoneNumber` answer a client of `appid` gets: the user's phone JSON
    /// (watermarked `appid` at `timestamp`) encrypted under the key of the user's latest login
    /// and a random IV, both base64; `None` before any login.
    pub(crate) fn encrypted_phone(
        &self,
        user: &FakeUser,
        appid: &str,
        timestamp: i64,
    ) -> Option<(String, String)> {
        let mut st = self.lock();
        let key = *st.session_keys.get(&user.index)?;
        let iv: [u8; 16] = st.rng.random();
        let plain = json!({
            "phoneNumber": user.phone,
            "purePhoneNumber": user.phone,
            "countryCode": "86",
            "watermark": {"appid": appid, "timestamp": timestamp},
        });
        Some((
            wechat::mp::encrypt_open_data(key, iv, &plain.to_string()),
            base64::engine::general_purpose::STANDARD.encode(iv),
        ))
    }

    /// A phone code for `user`, answering `number` (country code, national number) instead of
    /// the user's own when given.
    pub(crate) fn issue_phone_code(
        &self,
        user: &FakeUser,
        number: Option<(String, String)>,
    ) -> String {
        let mut st = self.lock();
        let code = random_string(&mut st.rng, TOKEN_CHARS, 64);
        st.phone_codes.insert(
            code.clone(),
            PhoneCode {
                user: user.index,
                number,
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
        let key: [u8; 16] = match st.fixed_session_keys.get(&user_index) {
            Some(k) => *k,
            None => st.rng.random(),
        };
        st.session_keys.insert(user_index, key);
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
        let (user_index, number) = match st.phone_codes.get_mut(code) {
            Some(c) if !c.used && c.issued.elapsed() < ttl => {
                c.used = true;
                (c.user, c.number.clone())
            }
            _ => return Err(st.error(40029)),
        };
        let user = self
            .population
            .users
            .get(user_index)
            .ok_or_else(|| st.error(40029))?;
        let (country_code, pure) = number.unwrap_or_else(|| ("86".to_owned(), user.phone.clone()));
        let full = if country_code == "86" {
            pure.clone()
        } else {
            format!("+{country_code}{pure}")
        };
        Ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "phone_info": {
                "phoneNumber": full,
                "purePhoneNumber": pure,
                "countryCode": country_code,
                "watermark": { "timestamp": now_unix(), "appid": self.apps.mp.appid },
            },
        }))
    }
}

impl Shared {
    /// The user a `/fake/mp/…` query names: `openid` (mini-program openid) or `user` (index).
    fn queried_user(&self, q: &HashMap<String, String>) -> Option<&FakeUser> {
        if let Some(openid) = q.get("openid") {
            return self.population.by_mp_openid(openid);
        }
        let index: usize = q.get("user")?.parse().ok()?;
        self.population.users.get(index)
    }

    /// `GET /fake/mp/login-code?openid=` (or `user=`): `{js_code, openid, unionid}`.
    pub(super) fn fake_login_code(&self, q: &HashMap<String, String>) -> HttpResponse {
        let Some(user) = self.queried_user(q) else {
            return unknown_user();
        };
        let code = self.issue_login_code(user);
        json_response(
            StatusCode::OK,
            &json!({ "js_code": code, "openid": user.mp_openid, "unionid": user.unionid }),
        )
    }

    /// `GET /fake/mp/phone-code?openid=&phone=[&country_code=]` (or `user=`): `{code, phone}`;
    /// without `phone` the user's own number.
    pub(super) fn fake_phone_code(&self, q: &HashMap<String, String>) -> HttpResponse {
        let Some(user) = self.queried_user(q) else {
            return unknown_user();
        };
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let phone = q.get("phone").map(|p| p.trim()).filter(|p| !p.is_empty());
        let country_code = q
            .get("country_code")
            .map(|c| c.trim().trim_start_matches('+'))
            .unwrap_or("86");
        let number = match phone {
            Some(p) if digits(p) && digits(country_code) => {
                Some((country_code.to_owned(), p.to_owned()))
            }
            Some(_) => {
                return json_response(
                    StatusCode::BAD_REQUEST,
                    &json!({ "errcode": 400, "errmsg": "phone and country_code must be digits" }),
                )
            }
            None => None,
        };
        let phone = number
            .as_ref()
            .map_or(user.phone.as_str(), |(_, p)| p)
            .to_owned();
        let code = self.issue_phone_code(user, number);
        json_response(StatusCode::OK, &json!({ "code": code, "phone": phone }))
    }
}

fn unknown_user() -> HttpResponse {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "errcode": 400, "errmsg": "no such user: pass openid (mini-program) or user (index)" }),
    )
}
