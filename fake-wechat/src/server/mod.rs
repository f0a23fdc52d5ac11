//! The fake's HTTP side: WeChat's endpoints with their real JSON shapes and errcodes, answered
//! from the seeded population and a little mutable state (tokens, codes, tags, counters).
//!
//! Every request is counted per path before anything else; then, in order: the HTTP method
//! (43001 / 43002), a per-endpoint call cap (45009), injected failures, the access token
//! (41001 missing, 40014 malformed or of another product, 40001 unknown or superseded, 42001
//! expired, 48001 an app without customer-contact access), and the endpoint's own checks.
//!
//! This module owns the shared state, the routing and the HTTP handler; the endpoints live by
//! area: [`tokens`] (token endpoints and token checks), [`oa`], [`wecom`], [`miniprogram`], the
//! sales-rep sidebar's [`agent`] (OAuth sign-in, JS-SDK tickets) and [`messages`] (app messages),
//! [`mass`] (OA mass sends and WeCom group-send tasks),
//! [`steering`] (the `/fake/…` developer endpoints and what tests change or read directly) and
//! [`send`] (`/fake/send/…`: callbacks posted to a gateway on request); [`codes`] (contact-me
//! codes and OA parametric QR codes).

mod agent;
mod codes;
mod mass;
mod messages;
mod miniprogram;
mod oa;
mod send;
mod steering;
mod tokens;
mod wecom;

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use wechat::api::TicketKind;

use crate::population::{FakeApps, FakeCorpTagGroup, Population};

pub(crate) use self::agent::{ticket_key, OAuthSubject};
pub use self::codes::{FakeContactWay, FakeQrCode};
pub use self::mass::FakeMassSend;
pub use self::messages::FakeMessage;
pub use self::steering::SinkRequest;
pub use self::wecom::MarkTagCall;

/// Characters of access tokens and codes.
const TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Length of an access token the fake issues; any other length is "malformed" (40014).
pub(crate) const TOKEN_LEN: usize = 136;

/// The endpoints the fake serves: path and whether it is POST.
pub(crate) const ENDPOINTS: &[(&str, bool)] = &[
    ("/cgi-bin/token", false),
    ("/cgi-bin/gettoken", false),
    ("/cgi-bin/user/info", false),
    ("/cgi-bin/tags/create", true),
    ("/cgi-bin/tags/get", false),
    ("/cgi-bin/tags/update", true),
    ("/cgi-bin/tags/delete", true),
    ("/cgi-bin/tags/members/batchtagging", true),
    ("/cgi-bin/tags/members/batchuntagging", true),
    ("/cgi-bin/tags/getidlist", true),
    ("/cgi-bin/externalcontact/get", false),
    ("/cgi-bin/externalcontact/mark_tag", true),
    ("/cgi-bin/externalcontact/get_corp_tag_list", true),
    ("/cgi-bin/externalcontact/add_corp_tag", true),
    ("/cgi-bin/externalcontact/add_contact_way", true),
    ("/cgi-bin/externalcontact/get_contact_way", true),
    ("/cgi-bin/externalcontact/update_contact_way", true),
    ("/cgi-bin/externalcontact/del_contact_way", true),
    ("/cgi-bin/qrcode/create", true),
    ("/sns/jscode2session", false),
    ("/wxa/business/getuserphonenumber", true),
    ("/cgi-bin/auth/getuserinfo", false),
    ("/cgi-bin/get_jsapi_ticket", false),
    ("/cgi-bin/ticket/get", false),
    ("/cgi-bin/message/send", true),
    ("/cgi-bin/message/mass/send", true),
    ("/cgi-bin/externalcontact/add_msg_template", true),
];

/// The stand-in for WeChat's OAuth authorize page (not a JSON API: it redirects).
const AUTHORIZE_PAGE: &str = "/connect/oauth2/authorize";

/// WeChat's usual `errmsg` for an errcode (without the `rid` suffix).
pub(crate) fn errmsg_of(errcode: i64) -> &'static str {
    match errcode {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40008 => "invalid message type",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40029 => "invalid code",
        40032 => "invalid openid list size",
        40130 => "invalid openid list size, at least two openid",
        40056 => "invalid agentid",
        40058 => "invalid parameter",
        40068 => "invalid tagid",
        40071 => "tag name already exists",
        40096 => "invalid external userid",
        40125 => "invalid appsecret",
        40163 => "code been used",
        41001 => "access_token missing",
        41008 => "missing code",
        41011 => "missing agentid",
        42001 => "access_token expired",
        43001 => "require GET method",
        43002 => "require POST method",
        44002 => "empty post data",
        44004 => "empty content",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit mustslower retry next minute",
        45033 => "api concurrent out of limit",
        45056 => "too many tag now, no need to add new",
        45058 => "can't modify sys tag",
        45059 => "has too many tags",
        45065 => "clientmsgid exist",
        45157 => "invalid tag name, tag name already exists",
        45158 => "tag name too long",
        45159 => "invalid tag id",
        47001 => "data format error",
        48001 => "api unauthorized",
        60020 => "not allow to access from your ip",
        60111 => "userid not found",
        81013 => "user & party & tag all invalid",
        84061 => "not external contact",
        301002 => "no privilege to access/modify the object",
        _ => "error",
    }
}

/// Current Unix time in seconds.
pub(crate) fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Debug)]
struct IssuedToken {
    app_key: String,
    expires_at: Instant,
    revoked: bool,
}

#[derive(Debug)]
struct PhoneCode {
    user: usize,
    /// The number to answer (country code, national number) instead of the user's own.
    number: Option<(String, String)>,
    issued: Instant,
    used: bool,
}

/// Mutable state of the fake.
pub(crate) struct State {
    rng: StdRng,
    rid: u64,
    pub token_lifetime: Duration,
    pub token_latency: Duration,
    pub phone_code_ttl: Duration,
    pub code2session_limit: u32,
    tokens: HashMap<String, IssuedToken>,
    current: HashMap<String, String>,
    pub token_fetches: HashMap<String, u64>,
    pub calls: HashMap<String, u64>,
    pub call_limits: HashMap<String, u64>,
    pub injected: HashMap<String, VecDeque<(i64, String)>>,
    login_codes: HashMap<String, (usize, bool)>,
    phone_codes: HashMap<String, PhoneCode>,
    code2session_window: HashMap<usize, (Instant, u32)>,
    /// Contact-me codes made through `add_contact_way`, in order.
    pub(crate) contact_ways: Vec<FakeContactWay>,
    /// QR codes made through `qrcode/create`, in order.
    pub(crate) qrcodes: Vec<FakeQrCode>,
    /// The session key of each user's latest login.
    pub(crate) session_keys: HashMap<usize, [u8; 16]>,
    /// The session key the next logins of a user get instead of a random one.
    pub(crate) fixed_session_keys: HashMap<usize, [u8; 16]>,
    oa_tags: BTreeMap<i64, String>,
    oa_members: BTreeMap<i64, BTreeSet<usize>>,
    follow_tags: HashMap<(usize, String), Vec<String>>,
    /// The corp tag library now (starts as the population's; tests rename, delete, add).
    pub corp_tag_groups: Vec<FakeCorpTagGroup>,
    /// Every `mark_tag` request, in arrival order.
    pub mark_tag_calls: Vec<MarkTagCall>,
    pub sink: Vec<SinkRequest>,
    /// OA mass sends and WeCom group-send tasks, in arrival order.
    pub mass_sends: Vec<FakeMassSend>,
    /// `clientmsgid`s of OA mass sends accepted.
    client_msg_ids: BTreeSet<String>,
    /// OAuth codes, JS-SDK tickets and app messages.
    pub sidebar: agent::SidebarState,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub apps: FakeApps,
    pub population: Population,
    state: Mutex<State>,
    /// Posts the callbacks `/fake/send/…` is asked for.
    http: reqwest::Client,
}

type Answer = Result<Value, Value>;

impl Shared {
    pub(crate) fn new(seed: u64, apps: FakeApps, population: Population) -> Self {
        let mut oa_tags = BTreeMap::new();
        let mut oa_members: BTreeMap<i64, BTreeSet<usize>> = BTreeMap::new();
        for tag in &population.oa_tags {
            oa_tags.insert(tag.id, tag.name.clone());
            oa_members.insert(tag.id, BTreeSet::new());
        }
        let mut follow_tags = HashMap::new();
        for user in &population.users {
            for id in &user.oa.tag_ids {
                oa_members.entry(*id).or_default().insert(user.index);
            }
            for f in &user.follows {
                follow_tags.insert((user.index, f.userid.clone()), f.tag_ids.clone());
            }
        }
        let state = State {
            rng: StdRng::seed_from_u64(seed.rotate_left(17) ^ 0x70ce_4e55),
            rid: 0,
            token_lifetime: Duration::from_secs(7200),
            token_latency: Duration::ZERO,
            phone_code_ttl: Duration::from_secs(300),
            code2session_limit: 100,
            tokens: HashMap::new(),
            current: HashMap::new(),
            token_fetches: HashMap::new(),
            calls: HashMap::new(),
            call_limits: HashMap::new(),
            injected: HashMap::new(),
            login_codes: HashMap::new(),
            phone_codes: HashMap::new(),
            code2session_window: HashMap::new(),
            session_keys: HashMap::new(),
            contact_ways: Vec::new(),
            qrcodes: Vec::new(),
            fixed_session_keys: HashMap::new(),
            oa_tags,
            oa_members,
            follow_tags,
            corp_tag_groups: population.corp_tag_groups.clone(),
            mark_tag_calls: Vec::new(),
            sink: Vec::new(),
            mass_sends: Vec::new(),
            client_msg_ids: BTreeSet::new(),
            sidebar: agent::SidebarState::default(),
        };
        Shared {
            apps,
            population,
            state: Mutex::new(state),
            http: reqwest::Client::new(),
        }
    }

    /// The state, even after a panic in another handler (the data stays usable).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Answers one WeChat API request; `None` for a path the fake does not serve. Every
    /// `mark_tag` and `message/send` request is logged with its answer.
    fn answer(
        &self,
        path: &str,
        is_post: bool,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Option<Value> {
        let answer = self.answer_unlogged(path, is_post, query, body)?;
        if path == "/cgi-bin/externalcontact/mark_tag" {
            let body = serde_json::from_slice(body).unwrap_or(Value::Null);
            let errcode = answer["errcode"].as_i64().unwrap_or(0);
            self.lock()
                .mark_tag_calls
                .push(MarkTagCall::of(&body, errcode));
        }
        if path == "/cgi-bin/message/send" {
            let body = serde_json::from_slice(body).unwrap_or(Value::Null);
            let message = FakeMessage::of(&body, &answer, &self.population.reps);
            self.lock().sidebar.messages.push(message);
        }
        Some(answer)
    }

    fn answer_unlogged(
        &self,
        path: &str,
        is_post: bool,
        query: &HashMap<String, String>,
        body: &[u8],
    ) -> Option<Value> {
        let &(_, post) = ENDPOINTS.iter().find(|(p, _)| *p == path)?;
        let mut st = self.lock();
        if post != is_post {
            return Some(st.error(if post { 43002 } else { 43001 }));
        }
        let calls = st.calls.get(path).copied().unwrap_or(0);
        if st.call_limits.get(path).is_some_and(|limit| calls > *limit) {
            return Some(st.error(45009));
        }
        if let Some((code, msg)) = st.injected.get_mut(path).and_then(VecDeque::pop_front) {
            return Some(st.error_with(code, &msg));
        }
        let body: Value = if body.iter().all(u8::is_ascii_whitespace) {
            if post {
                return Some(st.error(44002));
            }
            Value::Null
        } else {
            match serde_json::from_slice(body) {
                Ok(v) => v,
                Err(_) => return Some(st.error(47001)),
            }
        };
        let answer = match path {
            "/cgi-bin/token" => self.token(&mut st, query),
            "/cgi-bin/gettoken" => self.gettoken(&mut st, query),
            "/cgi-bin/user/info" => self.user_info(&mut st, query),
            "/cgi-bin/tags/create" => self.tags_create(&mut st, query, &body),
            "/cgi-bin/tags/get" => self.tags_get(&mut st, query),
            "/cgi-bin/tags/update" => self.tags_update(&mut st, query, &body),
            "/cgi-bin/tags/delete" => self.tags_delete(&mut st, query, &body),
            "/cgi-bin/tags/members/batchtagging" => self.batch(&mut st, query, &body, true),
            "/cgi-bin/tags/members/batchuntagging" => self.batch(&mut st, query, &body, false),
            "/cgi-bin/tags/getidlist" => self.tags_getidlist(&mut st, query, &body),
            "/cgi-bin/externalcontact/get" => self.external_contact(&mut st, query),
            "/cgi-bin/externalcontact/mark_tag" => self.mark_tag(&mut st, query, &body),
            "/cgi-bin/externalcontact/get_corp_tag_list" => {
                self.corp_tag_list(&mut st, query, &body)
            }
            "/cgi-bin/externalcontact/add_corp_tag" => self.add_corp_tags(&mut st, query, &body),
            "/cgi-bin/externalcontact/add_contact_way" => {
                self.add_contact_way(&mut st, query, &body)
            }
            "/cgi-bin/externalcontact/get_contact_way" => {
                self.get_contact_way(&mut st, query, &body)
            }
            "/cgi-bin/externalcontact/update_contact_way" => {
                self.update_contact_way(&mut st, query, &body)
            }
            "/cgi-bin/externalcontact/del_contact_way" => {
                self.del_contact_way(&mut st, query, &body)
            }
            "/cgi-bin/qrcode/create" => self.qrcode_create(&mut st, query, &body),
            "/sns/jscode2session" => self.code2session(&mut st, query),
            "/wxa/business/getuserphonenumber" => self.phone_number(&mut st, query, &body),
            "/cgi-bin/auth/getuserinfo" => self.oauth_user_info(&mut st, query),
            "/cgi-bin/get_jsapi_ticket" => self.ticket(&mut st, query, TicketKind::Corp),
            "/cgi-bin/ticket/get" => self.ticket(&mut st, query, TicketKind::Agent),
            "/cgi-bin/message/send" => self.message_send(&mut st, query, &body),
            "/cgi-bin/message/mass/send" => self.mass_send(&mut st, query, &body),
            "/cgi-bin/externalcontact/add_msg_template" => {
                self.add_msg_template(&mut st, query, &body)
            }
            _ => Err(st.error(48001)),
        };
        Some(answer.unwrap_or_else(|e| e))
    }
}

fn ok() -> Value {
    json!({ "errcode": 0, "errmsg": "ok" })
}

impl State {
    fn error(&mut self, errcode: i64) -> Value {
        self.error_with(errcode, errmsg_of(errcode))
    }

    fn error_with(&mut self, errcode: i64, errmsg: &str) -> Value {
        self.rid += 1;
        let rid = format!(
            "{:08x}-{:08x}-{:08x}",
            now_unix(),
            self.rid,
            self.rng.random::<u32>()
        );
        json!({ "errcode": errcode, "errmsg": format!("{errmsg} rid: {rid}") })
    }
}

/// The strings of the JSON array `body[field]` (none when absent).
fn strings(body: &Value, field: &str) -> Vec<String> {
    body[field]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// A JSON answer with `status`.
fn json_response(status: StatusCode, v: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/json; charset=utf-8")
        .body(v.to_string())
}

fn parse_query(query: &str) -> HashMap<String, String> {
    web::Query::<HashMap<String, String>>::from_query(query)
        .map(web::Query::into_inner)
        .unwrap_or_default()
}

/// The one handler: the `/fake/…` developer endpoints, or a WeChat API.
pub(crate) async fn dispatch(
    shared: web::Data<Shared>,
    req: HttpRequest,
    body: web::Bytes,
) -> HttpResponse {
    let path = req.path().to_owned();
    if let Some(what) = path.strip_prefix("/fake/send/") {
        let query = parse_query(req.query_string());
        return shared.fake_send(what, &query).await;
    }
    if let Some(rest) = path.strip_prefix("/fake/") {
        return steering::fake_endpoint(&shared, rest, &req, &body);
    }
    let query = parse_query(req.query_string());
    let latency = {
        let mut st = shared.lock();
        *st.calls.entry(path.clone()).or_default() += 1;
        if path == AUTHORIZE_PAGE {
            drop(st);
            return shared.authorize_page(&query);
        }
        if path == "/cgi-bin/token" || path == "/cgi-bin/gettoken" {
            st.token_latency
        } else {
            Duration::ZERO
        }
    };
    if !latency.is_zero() {
        actix_web::rt::time::sleep(latency).await;
    }
    let is_post = req.method() == actix_web::http::Method::POST;
    match shared.answer(&path, is_post, &query, &body) {
        Some(v) => HttpResponse::Ok()
            .content_type("application/json; charset=utf-8")
            .body(v.to_string()),
        None => HttpResponse::NotFound()
            .content_type("application/json; charset=utf-8")
            .body(json!({ "errcode": 404, "errmsg": "not found" }).to_string()),
    }
}
