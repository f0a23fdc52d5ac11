//! The fake's side of the sales-rep sidebar's sign-in and JS-SDK: single-use OAuth codes
//! (`/fake/oauth-code`, and the stand-in authorize page `/connect/oauth2/authorize` that
//! redirects a browser back with one), `auth/getuserinfo`, the two JS-SDK tickets
//! (`get_jsapi_ticket`, `ticket/get?type=agent_config`; a new fetch supersedes the app's previous
//! ticket of that kind, like tokens) and `/fake/jssdk/verify`, which checks a page signature
//! against the live tickets as the JS-SDK would.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::{json, Value};

use super::messages::FakeMessage;
use super::{json_response, Answer, Shared, State, TOKEN_CHARS};
use crate::population::{random_string, FakeApp, FakeAppKind};
use wechat::api::TicketKind;
use wechat::signature;

/// Who an OAuth code signs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum OAuthSubject {
    /// A member (rep) by userid.
    Member(String),
    /// A customer outside the corp, by population index.
    Customer(usize),
}

#[derive(Debug)]
struct OAuthCode {
    subject: OAuthSubject,
    issued: Instant,
    used: bool,
}

#[derive(Debug)]
struct IssuedTicket {
    app_key: String,
    kind: TicketKind,
    expires_at: Instant,
    revoked: bool,
}

/// The sidebar's part of the fake's state.
pub(crate) struct SidebarState {
    oauth_codes: HashMap<String, OAuthCode>,
    /// Lifetime of OAuth codes (5 min).
    pub(crate) oauth_code_ttl: Duration,
    /// Who the authorize page signs in when the query names nobody (else the first rep).
    pub(crate) default_userid: Option<String>,
    tickets: HashMap<String, IssuedTicket>,
    current_tickets: HashMap<(String, TicketKind), String>,
    /// Tickets issued per `{app key}:{kind}`.
    pub(crate) ticket_fetches: HashMap<String, u64>,
    /// Lifetime (and `expires_in`) of tickets issued from now on.
    pub(crate) ticket_lifetime: Duration,
    /// Every `message/send` request, in arrival order.
    pub(crate) messages: Vec<FakeMessage>,
}

impl Default for SidebarState {
    fn default() -> Self {
        SidebarState {
            oauth_codes: HashMap::new(),
            oauth_code_ttl: Duration::from_secs(300),
            default_userid: None,
            tickets: HashMap::new(),
            current_tickets: HashMap::new(),
            ticket_fetches: HashMap::new(),
            ticket_lifetime: Duration::from_secs(7200),
            messages: Vec::new(),
        }
    }
}

/// The counters key of an app's ticket kind.
pub(crate) fn ticket_key(app: &FakeApp, kind: TicketKind) -> String {
    format!("{}:{}", app.key(), kind.as_str())
}

fn bad_request(message: &str) -> HttpResponse {
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({ "errcode": 400, "errmsg": message }),
    )
}

impl State {
    fn issue_oauth_code(&mut self, subject: OAuthSubject) -> String {
        let code = random_string(&mut self.rng, TOKEN_CHARS, 43);
        self.sidebar.oauth_codes.insert(
            code.clone(),
            OAuthCode {
                subject,
                issued: Instant::now(),
                used: false,
            },
        );
        code
    }
}

impl Shared {
    /// A single-use OAuth code for `subject`.
    pub(crate) fn issue_oauth_code(&self, subject: OAuthSubject) -> String {
        self.lock().issue_oauth_code(subject)
    }

    /// Makes every ticket issued so far to `app` invalid.
    pub(crate) fn revoke_tickets(&self, app: &FakeApp) {
        let key = app.key();
        let mut st = self.lock();
        for t in st.sidebar.tickets.values_mut().filter(|t| t.app_key == key) {
            t.revoked = true;
        }
    }

    /// The ticket of `kind` most recently issued to `app`.
    pub(crate) fn current_ticket(&self, app: &FakeApp, kind: TicketKind) -> Option<String> {
        self.lock()
            .sidebar
            .current_tickets
            .get(&(app.key(), kind))
            .cloned()
    }

    /// The kind of the live ticket (issued, not superseded, not expired) that signed `url` with
    /// `noncestr` and `timestamp` into `signature`.
    pub(crate) fn verify_jssdk(
        &self,
        url: &str,
        noncestr: &str,
        timestamp: &str,
        signature_hex: &str,
    ) -> Option<TicketKind> {
        let st = self.lock();
        let now = Instant::now();
        st.sidebar
            .tickets
            .iter()
            .filter(|(_, t)| !t.revoked && now < t.expires_at)
            .find(|(ticket, _)| {
                signature::verify_jsapi_signature(ticket, noncestr, timestamp, url, signature_hex)
            })
            .map(|(_, t)| t.kind)
    }

    /// The token of the corp's self-built app: 48001 for another WeCom secret.
    pub(super) fn check_agent_token(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
    ) -> Result<FakeApp, Value> {
        let app = self.check_token(st, q, FakeAppKind::WeCom)?;
        if app.agent_id.is_none() {
            return Err(st.error(48001));
        }
        Ok(app)
    }

    /// `auth/getuserinfo`: the member or customer an unused, unexpired code was issued for.
    pub(super) fn oauth_user_info(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
        self.check_token(st, q, FakeAppKind::WeCom)?;
        let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
            return Err(st.error(41008));
        };
        let ttl = st.sidebar.oauth_code_ttl;
        let subject = match st.sidebar.oauth_codes.get_mut(code) {
            Some(c) if !c.used && c.issued.elapsed() < ttl => {
                c.used = true;
                c.subject.clone()
            }
            _ => return Err(st.error(40029)),
        };
        Ok(match subject {
            OAuthSubject::Member(userid) => {
                json!({ "errcode": 0, "errmsg": "ok", "userid": userid })
            }
            OAuthSubject::Customer(index) => {
                let user = self
                    .population
                    .users
                    .get(index)
                    .ok_or_else(|| st.error(40029))?;
                json!({ "errcode": 0, "errmsg": "ok",
                        "openid": format!("o{}", user.external_userid.get(2..).unwrap_or("")),
                        "external_userid": user.external_userid })
            }
        })
    }

    /// `get_jsapi_ticket` / `ticket/get?type=agent_config`: a fresh ticket that supersedes the
    /// app's previous one of that kind.
    pub(super) fn ticket(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        kind: TicketKind,
    ) -> Answer {
        let app = self.check_agent_token(st, q)?;
        if kind == TicketKind::Agent && q.get("type").map(String::as_str) != Some("agent_config") {
            return Err(st.error(40058));
        }
        let ticket = random_string(&mut st.rng, TOKEN_CHARS, 86);
        let lifetime = st.sidebar.ticket_lifetime;
        let sidebar = &mut st.sidebar;
        *sidebar
            .ticket_fetches
            .entry(ticket_key(&app, kind))
            .or_default() += 1;
        if let Some(previous) = sidebar
            .current_tickets
            .insert((app.key(), kind), ticket.clone())
        {
            if let Some(t) = sidebar.tickets.get_mut(&previous) {
                t.revoked = true;
            }
        }
        sidebar.tickets.insert(
            ticket.clone(),
            IssuedTicket {
                app_key: app.key(),
                kind,
                expires_at: Instant::now() + lifetime,
                revoked: false,
            },
        );
        let expires_in = lifetime.as_secs() + u64::from(lifetime.subsec_nanos() > 0);
        Ok(json!({ "errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": expires_in }))
    }

    /// Who a sign-in names: `userid` (a rep), `external_userid` (a customer), else the
    /// configured default userid, else the first rep.
    fn oauth_subject(&self, q: &HashMap<String, String>) -> Result<OAuthSubject, &'static str> {
        let param = |k: &str| q.get(k).map(String::as_str).filter(|v| !v.is_empty());
        if let Some(corp) = param("corp_id").or_else(|| param("appid")) {
            if corp != self.apps.wecom.appid {
                return Err("unknown corp id");
            }
        }
        if let Some(external) = param("external_userid") {
            return match self.population.by_external_userid(external) {
                Some(u) => Ok(OAuthSubject::Customer(u.index)),
                None => Err("unknown external_userid"),
            };
        }
        let default = self.lock().sidebar.default_userid.clone();
        let userid = param("userid")
            .map(str::to_owned)
            .or(default)
            .or_else(|| self.population.reps.first().map(|r| r.userid.clone()))
            .unwrap_or_default();
        if self.population.reps.iter().any(|r| r.userid == userid) {
            Ok(OAuthSubject::Member(userid))
        } else {
            Err("userid is not a member of the corp")
        }
    }

    /// `GET /fake/oauth-code?corp_id&userid` (or `external_userid`): `{code}`.
    pub(super) fn fake_oauth_code(&self, q: &HashMap<String, String>) -> HttpResponse {
        match self.oauth_subject(q) {
            Ok(subject) => {
                let code = self.issue_oauth_code(subject);
                json_response(StatusCode::OK, &json!({ "code": code }))
            }
            Err(reason) => bad_request(reason),
        }
    }

    /// `GET /fake/jssdk/verify?url&noncestr&timestamp&signature`: `{valid, kind}`.
    pub(super) fn fake_jssdk_verify(&self, q: &HashMap<String, String>) -> HttpResponse {
        let p = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
        let kind = self.verify_jssdk(p("url"), p("noncestr"), p("timestamp"), p("signature"));
        json_response(
            StatusCode::OK,
            &json!({ "valid": kind.is_some(), "kind": kind.map(TicketKind::as_str) }),
        )
    }

    /// The stand-in for WeChat's authorize page: checks the query like WeChat and redirects
    /// (302) to `redirect_uri` with a fresh `code` and the `state`.
    pub(super) fn authorize_page(&self, q: &HashMap<String, String>) -> HttpResponse {
        let p = |k: &str| q.get(k).map(String::as_str).unwrap_or("");
        if p("appid") != self.apps.wecom.appid {
            return bad_request("appid is not the corp id");
        }
        if p("response_type") != "code" {
            return bad_request("response_type must be code");
        }
        if !matches!(p("scope"), "snsapi_base" | "snsapi_privateinfo") {
            return bad_request("scope must be snsapi_base or snsapi_privateinfo");
        }
        let agent = self.apps.wecom_agent.agent_id.map(|id| id.to_string());
        if !p("agentid").is_empty() && Some(p("agentid")) != agent.as_deref() {
            return bad_request("agentid is not an app of the corp");
        }
        let Ok(mut target) = reqwest::Url::parse(p("redirect_uri")) else {
            return bad_request("redirect_uri must be an absolute URL");
        };
        if !matches!(target.scheme(), "http" | "https") {
            return bad_request("redirect_uri must be http or https");
        }
        let subject = match self.oauth_subject(q) {
            Ok(s) => s,
            Err(reason) => return bad_request(reason),
        };
        let code = self.issue_oauth_code(subject);
        target
            .query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", p("state"));
        HttpResponse::Found()
            .insert_header((actix_web::http::header::LOCATION, target.as_str()))
            .finish()
    }
}
