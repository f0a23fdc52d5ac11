//! The fake's token endpoints (`/cgi-bin/token` for OA and mini-program, `/cgi-bin/gettoken`
//! for WeCom) and the access-token check every other endpoint starts with. Like WeChat, a new
//! token supersedes the app's previous one.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::{json, Value};

use super::{Answer, IssuedToken, Shared, State, TOKEN_CHARS, TOKEN_LEN};
use crate::population::{random_string, FakeApp, FakeAppKind};

impl Shared {
    pub(super) fn token(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
        let appid = q.get("appid").map(String::as_str).unwrap_or("");
        *st.token_fetches.entry(appid.to_owned()).or_default() += 1;
        if q.get("grant_type").map(String::as_str) != Some("client_credential") {
            return Err(st.error(40002));
        }
        let app = [&self.apps.oa, &self.apps.mp]
            .into_iter()
            .find(|a| a.appid == appid)
            .ok_or_else(|| st.error(40013))?;
        if q.get("secret") != Some(&app.secret) {
            return Err(st.error(40125));
        }
        Ok(st.issue_token(&app.key(), false))
    }

    pub(super) fn gettoken(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
        let corpid = q.get("corpid").map(String::as_str).unwrap_or("");
        let secret = q.get("corpsecret");
        let app = [&self.apps.wecom, &self.apps.wecom_agent]
            .into_iter()
            .find(|a| a.appid == corpid && Some(&a.secret) == secret);
        let key = app.map_or_else(|| corpid.to_owned(), |a| a.key());
        *st.token_fetches.entry(key.clone()).or_default() += 1;
        if corpid != self.apps.wecom.appid {
            return Err(st.error(40013));
        }
        if app.is_none() {
            return Err(st.error(40001));
        }
        Ok(st.issue_token(&key, true))
    }

    /// Checks the access token for an endpoint of `kind`; answers the app it belongs to.
    pub(super) fn check_token(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        kind: FakeAppKind,
    ) -> Result<FakeApp, Value> {
        let token = match q.get("access_token").filter(|t| !t.is_empty()) {
            Some(t) => t,
            None => return Err(st.error(41001)),
        };
        if token.len() != TOKEN_LEN || !token.bytes().all(|b| TOKEN_CHARS.contains(&b)) {
            return Err(st.error(40014));
        }
        let (app_key, revoked, expired) = match st.tokens.get(token) {
            Some(t) => (t.app_key.clone(), t.revoked, Instant::now() >= t.expires_at),
            None => return Err(st.error(40001)),
        };
        if revoked {
            return Err(st.error(40001));
        }
        if expired {
            return Err(st.error(42001));
        }
        match self.apps.by_key(&app_key) {
            Some(app) if app.kind == kind => Ok(app.clone()),
            _ => Err(st.error(40014)),
        }
    }

    pub(super) fn check_contact_token(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
    ) -> Result<(), Value> {
        let app = self.check_token(st, q, FakeAppKind::WeCom)?;
        if app.key() != self.apps.wecom.key() {
            return Err(st.error(48001));
        }
        Ok(())
    }
}

impl State {
    pub(super) fn issue_token(&mut self, app_key: &str, wecom: bool) -> Value {
        let token = random_string(&mut self.rng, TOKEN_CHARS, TOKEN_LEN);
        let lifetime = self.token_lifetime;
        if let Some(previous) = self.current.insert(app_key.to_owned(), token.clone()) {
            // WeChat invalidates the previous token when a new one is fetched.
            if let Some(t) = self.tokens.get_mut(&previous) {
                t.revoked = true;
            }
        }
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                app_key: app_key.to_owned(),
                expires_at: Instant::now() + lifetime,
                revoked: false,
            },
        );
        let expires_in = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
        if wecom {
            json!({ "errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": expires_in })
        } else {
            json!({ "access_token": token, "expires_in": expires_in })
        }
    }
}
