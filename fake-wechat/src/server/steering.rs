//! What tests and developers do to the fake besides calling WeChat's APIs: the `/fake/…`
//! endpoints (population, apps, counters, the callback sink, app messages sent; the codes are
//! issued by their areas' modules) and the direct changes behind
//! [`crate::FakeHandle`]'s steering methods (revoking and expiring tokens, a rep
//! changing tags by hand).

use std::time::Instant;

use actix_web::{HttpRequest, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};

use super::{parse_query, Shared, State};
use crate::population::{FakeApp, FakeUser};

/// A request received on `/fake/sink/…` (a stand-in gateway for callback tests).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkRequest {
    /// HTTP method.
    pub method: String,
    /// Path after `/fake/sink`, e.g. `/wechat/oa/wx…`.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Content-Type header.
    pub content_type: String,
    /// Body as text.
    pub body: String,
}

impl Shared {
    /// Makes every token of `app` answer 40001 (superseded).
    pub(crate) fn revoke_tokens(&self, app: &FakeApp) {
        let key = app.key();
        let mut st = self.lock();
        for t in st.tokens.values_mut().filter(|t| t.app_key == key) {
            t.revoked = true;
        }
    }

    /// Makes every token of `app` answer 42001 (expired).
    pub(crate) fn expire_tokens(&self, app: &FakeApp) {
        let key = app.key();
        let now = Instant::now();
        let mut st = self.lock();
        for t in st.tokens.values_mut().filter(|t| t.app_key == key) {
            t.expires_at = now;
        }
    }

    pub(crate) fn current_token(&self, app: &FakeApp) -> Option<String> {
        self.lock().current.get(&app.key()).cloned()
    }

    /// The live OA tag ids of a user.
    pub(crate) fn oa_user_tags(&self, user: &FakeUser) -> Vec<i64> {
        self.lock().user_tag_ids(user.index)
    }

    /// The live corp tag ids a rep put on a customer.
    pub(crate) fn follow_tag_ids(&self, user: &FakeUser, userid: &str) -> Vec<String> {
        self.lock()
            .follow_tags
            .get(&(user.index, userid.to_owned()))
            .cloned()
            .unwrap_or_default()
    }

    /// Rep `userid` changing `user`'s corp tags in the WeCom app.
    pub(crate) fn rep_tags(&self, user: &FakeUser, userid: &str, add: &[&str], remove: &[&str]) {
        let mut st = self.lock();
        let tags = st
            .follow_tags
            .entry((user.index, userid.to_owned()))
            .or_default();
        tags.retain(|t| !remove.contains(&t.as_str()));
        for id in add {
            if !tags.iter().any(|t| t == id) {
                tags.push((*id).to_owned());
            }
        }
    }
}

impl State {
    pub(crate) fn reset_counters(&mut self) {
        self.token_fetches.clear();
        self.calls.clear();
        self.sidebar.ticket_fetches.clear();
    }
}

pub(super) fn fake_endpoint(
    shared: &Shared,
    rest: &str,
    req: &HttpRequest,
    body: &[u8],
) -> HttpResponse {
    let json_response = |v: Value| {
        HttpResponse::Ok()
            .content_type("application/json; charset=utf-8")
            .body(v.to_string())
    };
    if let Some(tail) = rest.strip_prefix("sink") {
        let content_type = req
            .headers()
            .get(actix_web::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        shared.lock().sink.push(SinkRequest {
            method: req.method().to_string(),
            path: tail.to_owned(),
            query: req.query_string().to_owned(),
            content_type,
            body: String::from_utf8_lossy(body).into_owned(),
        });
        return HttpResponse::Ok()
            .content_type("text/plain")
            .body("success");
    }
    let query = || parse_query(req.query_string());
    match rest {
        "population" => json_response(json!(shared.population)),
        "apps" => json_response(json!(shared.apps.all())),
        "counters" => {
            let st = shared.lock();
            json_response(
                json!({ "token_fetches": st.token_fetches, "calls": st.calls,
                                   "ticket_fetches": st.sidebar.ticket_fetches }),
            )
        }
        "messages" => json_response(json!(shared.lock().sidebar.messages)),
        "mass-sends" => json_response(json!(shared.lock().mass_sends)),
        "oauth-code" => shared.fake_oauth_code(&query()),
        "jssdk/verify" => shared.fake_jssdk_verify(&query()),
        "mp/login-code" => shared.fake_login_code(&query()),
        "mp/phone-code" => shared.fake_phone_code(&query()),
        _ => HttpResponse::NotFound()
            .content_type("application/json; charset=utf-8")
            .body(json!({ "errcode": 404, "errmsg": "not found" }).to_string()),
    }
}
