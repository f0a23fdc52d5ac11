//! The fake's HTTP side: WeChat's endpoints with their real JSON shapes and errcodes, answered
//! from the seeded population and a little mutable state (tokens, codes, tags, counters).
//!
//! Every request is counted per path before anything else; then, in order: the HTTP method
//! (43001 / 43002), a per-endpoint call cap (45009), injected failures, the access token
//! (41001 missing, 40014 malformed or of another product, 40001 unknown or superseded, 42001
//! expired, 48001 an app without customer-contact access), and the endpoint's own checks.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use serde_json::{json, Value};

use super::population::{
    random_string, FakeApp, FakeAppKind, FakeApps, FakeCorpTag, FakeCorpTagGroup, FakeUser,
    Population, ID_CHARS, OA_SYSTEM_TAG_IDS,
};

/// Characters of access tokens and codes.
const TOKEN_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/// Length of an access token the fake issues; any other length is "malformed" (40014).
pub(crate) const TOKEN_LEN: usize = 136;
/// At most this many OA tags per account.
const OA_MAX_TAGS: usize = 100;
/// At most this many tags per OA user.
const OA_MAX_TAGS_PER_USER: usize = 20;
/// At most this many bytes in an OA tag name.
const OA_MAX_TAG_NAME: usize = 30;
/// At most this many openids per batch (un)tagging call.
const OA_MAX_BATCH: usize = 50;

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
    ("/sns/jscode2session", false),
    ("/wxa/business/getuserphonenumber", true),
];

/// WeChat's usual `errmsg` for an errcode (without the `rid` suffix).
pub(crate) fn errmsg_of(errcode: i64) -> &'static str {
    match errcode {
        -1 => "system error",
        40001 => "invalid credential, access_token is invalid or not latest",
        40002 => "invalid grant_type",
        40003 => "invalid openid",
        40013 => "invalid appid",
        40014 => "invalid access_token",
        40029 => "invalid code",
        40032 => "invalid openid list size",
        40058 => "invalid parameter",
        40068 => "invalid tagid",
        40071 => "tag name already exists",
        40096 => "invalid external userid",
        40125 => "invalid appsecret",
        40163 => "code been used",
        41001 => "access_token missing",
        41008 => "missing code",
        42001 => "access_token expired",
        43001 => "require GET method",
        43002 => "require POST method",
        44002 => "empty post data",
        45009 => "reach max api daily quota limit",
        45011 => "api minute-quota reach limit mustslower retry next minute",
        45033 => "api concurrent out of limit",
        45056 => "too many tag now, no need to add new",
        45058 => "can't modify sys tag",
        45059 => "has too many tags",
        45157 => "invalid tag name, tag name already exists",
        45158 => "tag name too long",
        45159 => "invalid tag id",
        47001 => "data format error",
        48001 => "api unauthorized",
        60111 => "userid not found",
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

/// One `mark_tag` request as the fake answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MarkTagCall {
    /// When it arrived.
    pub at: Instant,
    /// The rep (`userid`).
    pub userid: String,
    /// The customer (`external_userid`).
    pub external_userid: String,
    /// `add_tag`.
    pub add: Vec<String>,
    /// `remove_tag`.
    pub remove: Vec<String>,
    /// The errcode answered (0 = applied).
    pub errcode: i64,
}

impl MarkTagCall {
    fn of(body: &Value, errcode: i64) -> Self {
        let ids = |field: &str| strings(body, field);
        MarkTagCall {
            at: Instant::now(),
            userid: body["userid"].as_str().unwrap_or("").to_owned(),
            external_userid: body["external_userid"].as_str().unwrap_or("").to_owned(),
            add: ids("add_tag"),
            remove: ids("remove_tag"),
            errcode,
        }
    }
}

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

#[derive(Debug)]
struct IssuedToken {
    app_key: String,
    expires_at: Instant,
    revoked: bool,
}

#[derive(Debug)]
struct PhoneCode {
    user: usize,
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
    oa_tags: BTreeMap<i64, String>,
    oa_members: BTreeMap<i64, BTreeSet<usize>>,
    follow_tags: HashMap<(usize, String), Vec<String>>,
    /// The corp tag library now (starts as the population's; tests rename, delete, add).
    pub corp_tag_groups: Vec<FakeCorpTagGroup>,
    /// Every `mark_tag` request, in arrival order.
    pub mark_tag_calls: Vec<MarkTagCall>,
    pub sink: Vec<SinkRequest>,
}

/// Everything the handlers share.
pub(crate) struct Shared {
    pub apps: FakeApps,
    pub population: Population,
    state: Mutex<State>,
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
            oa_tags,
            oa_members,
            follow_tags,
            corp_tag_groups: population.corp_tag_groups.clone(),
            mark_tag_calls: Vec::new(),
            sink: Vec::new(),
        };
        Shared {
            apps,
            population,
            state: Mutex::new(state),
        }
    }

    /// The state, even after a panic in another handler (the data stays usable).
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

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

    fn user_by_oa_openid(&self, openid: &str) -> Option<&FakeUser> {
        self.population.by_oa_openid(openid)
    }

    /// Answers one WeChat API request; `None` for a path the fake does not serve. Every
    /// `mark_tag` request is logged with its answer.
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
            "/sns/jscode2session" => self.code2session(&mut st, query),
            "/wxa/business/getuserphonenumber" => self.phone_number(&mut st, query, &body),
            _ => Err(st.error(48001)),
        };
        Some(answer.unwrap_or_else(|e| e))
    }

    // ---- tokens ------------------------------------------------------------------------------

    fn token(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
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

    fn gettoken(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
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
    fn check_token(
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

    // ---- Official Account ----------------------------------------------------------------------

    fn user_info(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let openid = q.get("openid").map(String::as_str).unwrap_or("");
        let user = self
            .user_by_oa_openid(openid)
            .ok_or_else(|| st.error(40003))?;
        if !user.oa.subscribed {
            return Ok(json!({ "subscribe": 0, "openid": user.oa_openid }));
        }
        let mut v = json!({
            "subscribe": 1,
            "openid": user.oa_openid,
            "language": "zh_CN",
            "subscribe_time": user.oa.subscribe_time,
            "remark": user.oa.remark,
            "groupid": 0,
            "tagid_list": st.user_tag_ids(user.index),
            "subscribe_scene": user.oa.subscribe_scene,
            "qr_scene": user.oa.qr_scene,
            "qr_scene_str": user.oa.qr_scene_str,
        });
        if let (Some(unionid), Some(obj)) = (&user.unionid, v.as_object_mut()) {
            obj.insert("unionid".to_owned(), json!(unionid));
        }
        Ok(v)
    }

    fn tag_name_check(st: &mut State, name: &str, except: Option<i64>) -> Result<(), Value> {
        if name.is_empty() || name.len() > OA_MAX_TAG_NAME {
            return Err(st.error(45158));
        }
        if st
            .oa_tags
            .iter()
            .any(|(id, n)| n == name && Some(*id) != except)
        {
            return Err(st.error(45157));
        }
        Ok(())
    }

    fn tags_create(&self, st: &mut State, q: &HashMap<String, String>, body: &Value) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let name = body["tag"]["name"]
            .as_str()
            .ok_or_else(|| st.error(47001))?
            .to_owned();
        Self::tag_name_check(st, &name, None)?;
        if st.oa_tags.len() >= OA_MAX_TAGS {
            return Err(st.error(45056));
        }
        let id = st.oa_tags.keys().next_back().copied().unwrap_or(99).max(99) + 1;
        st.oa_tags.insert(id, name.clone());
        st.oa_members.insert(id, BTreeSet::new());
        Ok(json!({ "tag": { "id": id, "name": name } }))
    }

    fn tags_get(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let tags: Vec<Value> = st
            .oa_tags
            .iter()
            .map(|(id, name)| {
                let count = st.oa_members.get(id).map_or(0, BTreeSet::len);
                json!({ "id": id, "name": name, "count": count })
            })
            .collect();
        Ok(json!({ "tags": tags }))
    }

    fn existing_tag(st: &mut State, body: &Value, system_ok: bool) -> Result<i64, Value> {
        let id = body["tag"]["id"]
            .as_i64()
            .or_else(|| body["tagid"].as_i64())
            .ok_or_else(|| st.error(47001))?;
        if !system_ok && OA_SYSTEM_TAG_IDS.contains(&id) {
            return Err(st.error(45058));
        }
        if !st.oa_tags.contains_key(&id) {
            return Err(st.error(45159));
        }
        Ok(id)
    }

    fn tags_update(&self, st: &mut State, q: &HashMap<String, String>, body: &Value) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let id = Self::existing_tag(st, body, false)?;
        let name = body["tag"]["name"]
            .as_str()
            .ok_or_else(|| st.error(47001))?
            .to_owned();
        Self::tag_name_check(st, &name, Some(id))?;
        st.oa_tags.insert(id, name);
        Ok(ok())
    }

    fn tags_delete(&self, st: &mut State, q: &HashMap<String, String>, body: &Value) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let id = Self::existing_tag(st, body, false)?;
        st.oa_tags.remove(&id);
        st.oa_members.remove(&id);
        Ok(ok())
    }

    fn batch(
        &self,
        st: &mut State,
        q: &HashMap<String, String>,
        body: &Value,
        tagging: bool,
    ) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let list = body["openid_list"].as_array().cloned().unwrap_or_default();
        if list.is_empty() || list.len() > OA_MAX_BATCH {
            return Err(st.error(40032));
        }
        let id = Self::existing_tag(st, body, true)?;
        let mut users = Vec::with_capacity(list.len());
        for openid in &list {
            let user = openid
                .as_str()
                .and_then(|o| self.user_by_oa_openid(o))
                .ok_or_else(|| st.error(40003))?;
            users.push(user.index);
        }
        if tagging {
            for &u in &users {
                let member = st.oa_members.get(&id).is_some_and(|m| m.contains(&u));
                if !member && st.user_tag_ids(u).len() >= OA_MAX_TAGS_PER_USER {
                    return Err(st.error(45059));
                }
            }
        }
        let members = st.oa_members.entry(id).or_default();
        for u in users {
            if tagging {
                members.insert(u);
            } else {
                members.remove(&u);
            }
        }
        Ok(ok())
    }

    fn tags_getidlist(&self, st: &mut State, q: &HashMap<String, String>, body: &Value) -> Answer {
        self.check_token(st, q, FakeAppKind::OfficialAccount)?;
        let user = body["openid"]
            .as_str()
            .and_then(|o| self.user_by_oa_openid(o))
            .ok_or_else(|| st.error(40003))?;
        Ok(json!({ "tagid_list": st.user_tag_ids(user.index) }))
    }

    // ---- WeCom -------------------------------------------------------------------------------

    fn check_contact_token(
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

    /// The customer an external_userid names: 40096 when malformed, 84061 when unknown or
    /// nobody's contact.
    fn customer(&self, st: &mut State, external_userid: &str) -> Result<&FakeUser, Value> {
        let well_formed = external_userid.len() == 32
            && (external_userid.starts_with("wm") || external_userid.starts_with("wo"))
            && external_userid.bytes().all(|b| TOKEN_CHARS.contains(&b));
        if !well_formed {
            return Err(st.error(40096));
        }
        match self.population.by_external_userid(external_userid) {
            Some(u) if !u.follows.is_empty() => Ok(u),
            _ => Err(st.error(84061)),
        }
    }

    fn external_contact(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
        self.check_contact_token(st, q)?;
        let id = q.get("external_userid").map(String::as_str).unwrap_or("");
        let user = self.customer(st, id)?;
        let mut contact = json!({
            "external_userid": user.external_userid,
            "name": user.name,
            "type": 1,
            "gender": user.gender,
            "avatar": format!("http://wx.qlogo.cn/mmhead/fake{:04}/0", user.index),
        });
        if let (Some(unionid), Some(obj)) = (&user.unionid, contact.as_object_mut()) {
            obj.insert("unionid".to_owned(), json!(unionid));
        }
        let follow_user: Vec<Value> = user
            .follows
            .iter()
            .map(|f| {
                let live = st
                    .follow_tags
                    .get(&(user.index, f.userid.clone()))
                    .cloned()
                    .unwrap_or_default();
                let mut tags: Vec<Value> = live
                    .iter()
                    .filter_map(|id| st.corp_tag(id))
                    .map(|(g, t)| {
                        json!({ "group_name": g.group_name, "tag_name": t.name, "tag_id": t.id, "type": 1 })
                    })
                    .collect();
                tags.extend(
                    f.personal_tags
                        .iter()
                        .map(|name| json!({ "group_name": "", "tag_name": name, "type": 2 })),
                );
                let mut v = json!({
                    "userid": f.userid,
                    "remark": f.remark,
                    "description": f.description,
                    "createtime": f.createtime,
                    "tags": tags,
                    "remark_corp_name": "",
                    "remark_mobiles": f.remark_mobiles,
                    "oper_userid": if f.add_way == 1 { user.external_userid.clone() } else { f.userid.clone() },
                    "add_way": f.add_way,
                });
                if let (Some(state), Some(obj)) = (&f.state, v.as_object_mut()) {
                    obj.insert("state".to_owned(), json!(state));
                }
                v
            })
            .collect();
        Ok(json!({
            "errcode": 0,
            "errmsg": "ok",
            "external_contact": contact,
            "follow_user": follow_user,
            "next_cursor": "",
        }))
    }

    fn mark_tag(&self, st: &mut State, q: &HashMap<String, String>, body: &Value) -> Answer {
        let call = MarkTagCall::of(body, 0);
        self.check_contact_token(st, q)?;
        let userid = call.userid.as_str();
        if !self.population.reps.iter().any(|r| r.userid == userid) {
            return Err(st.error(60111));
        }
        let user = self.customer(st, &call.external_userid)?;
        if !user.follows.iter().any(|f| f.userid == userid) {
            return Err(st.error(84061));
        }
        let (add, remove) = (&call.add, &call.remove);
        if add.is_empty() && remove.is_empty() {
            return Err(st.error(40058));
        }
        if add.iter().chain(remove).any(|id| st.corp_tag(id).is_none()) {
            return Err(st.error(40068));
        }
        let tags = st
            .follow_tags
            .entry((user.index, userid.to_owned()))
            .or_default();
        tags.retain(|t| !remove.contains(t));
        for id in add {
            if !tags.contains(id) {
                tags.push(id.clone());
            }
        }
        Ok(ok())
    }

    /// `add_corp_tag`: tags into the group `group_id`, or into the group named `group_name`
    /// (created when there is none); names of at most 30 characters, new within their group.
    fn add_corp_tags(&self, st: &mut State, q: &HashMap<String, String>, body: &Value) -> Answer {
        self.check_contact_token(st, q)?;
        let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or("").trim();
        let (group_id, group_name) = (text("group_id"), text("group_name"));
        let names: Vec<(String, i64)> = body
            .get("tag")
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .map(|t| {
                        let name = t.get("name").and_then(Value::as_str).unwrap_or("");
                        let order = t.get("order").and_then(Value::as_i64).unwrap_or(0);
                        (name.trim().to_owned(), order)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let too_long = |n: &str| n.is_empty() || n.chars().count() > 30;
        if names.is_empty() || names.iter().any(|(n, _)| too_long(n)) {
            return Err(st.error(40058));
        }
        let index = if group_id.is_empty() {
            if too_long(group_name) {
                return Err(st.error(40058));
            }
            match st
                .corp_tag_groups
                .iter()
                .position(|g| g.group_name == group_name)
            {
                Some(i) => i,
                None => {
                    let id = format!("et{}", random_string(&mut st.rng, ID_CHARS, 30));
                    let order = body.get("order").and_then(Value::as_i64).unwrap_or(0);
                    st.corp_tag_groups.push(FakeCorpTagGroup {
                        group_id: id,
                        group_name: group_name.to_owned(),
                        create_time: now_unix(),
                        order,
                        tags: Vec::new(),
                    });
                    st.corp_tag_groups.len() - 1
                }
            }
        } else {
            match st
                .corp_tag_groups
                .iter()
                .position(|g| g.group_id == group_id)
            {
                Some(i) => i,
                None => return Err(st.error(40068)),
            }
        };
        let existing = &st.corp_tag_groups[index].tags;
        let mut seen: BTreeSet<&str> = existing.iter().map(|t| t.name.as_str()).collect();
        if !names.iter().all(|(n, _)| seen.insert(n.as_str())) {
            return Err(st.error(40071));
        }
        let mut added = Vec::new();
        for (name, order) in names {
            let id = format!("et{}", random_string(&mut st.rng, ID_CHARS, 30));
            let tag = FakeCorpTag {
                id,
                name,
                create_time: now_unix(),
                order,
            };
            added.push(json!({ "id": tag.id, "name": tag.name,
                               "create_time": tag.create_time, "order": tag.order }));
            st.corp_tag_groups[index].tags.push(tag);
        }
        let g = &st.corp_tag_groups[index];
        Ok(json!({ "errcode": 0, "errmsg": "ok", "tag_group": {
            "group_id": g.group_id, "group_name": g.group_name,
            "create_time": g.create_time, "order": g.order, "tag": added } }))
    }

    fn corp_tag_list(&self, st: &mut State, q: &HashMap<String, String>, body: &Value) -> Answer {
        self.check_contact_token(st, q)?;
        let (tag_ids, group_ids) = (strings(body, "tag_id"), strings(body, "group_id"));
        let groups: Vec<Value> = st
            .corp_tag_groups
            .iter()
            .filter(|g| group_ids.is_empty() || group_ids.contains(&g.group_id))
            .filter_map(|g| {
                let tags: Vec<Value> = g
                    .tags
                    .iter()
                    .filter(|t| {
                        !group_ids.is_empty() || tag_ids.is_empty() || tag_ids.contains(&t.id)
                    })
                    .map(|t| {
                        json!({ "id": t.id, "name": t.name, "create_time": t.create_time,
                                "order": t.order, "deleted": false })
                    })
                    .collect();
                (!tags.is_empty()).then(|| {
                    json!({ "group_id": g.group_id, "group_name": g.group_name,
                            "create_time": g.create_time, "order": g.order, "deleted": false,
                            "tag": tags })
                })
            })
            .collect();
        Ok(json!({ "errcode": 0, "errmsg": "ok", "tag_group": groups }))
    }

    // ---- mini-program ------------------------------------------------------------------------

    fn code2session(&self, st: &mut State, q: &HashMap<String, String>) -> Answer {
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

    fn phone_number(&self, st: &mut State, q: &HashMap<String, String>, body: &Value) -> Answer {
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

    fn issue_token(&mut self, app_key: &str, wecom: bool) -> Value {
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

    /// A live corp tag and its group.
    fn corp_tag(&self, id: &str) -> Option<(&FakeCorpTagGroup, &FakeCorpTag)> {
        self.corp_tag_groups
            .iter()
            .find_map(|g| g.tags.iter().find(|t| t.id == id).map(|t| (g, t)))
    }

    /// Renames the corp tag or group `id`; `false` when there is none.
    pub(crate) fn rename_corp_tag(&mut self, id: &str, name: &str) -> bool {
        for g in &mut self.corp_tag_groups {
            if g.group_id == id {
                g.group_name = name.to_owned();
                return true;
            }
            if let Some(t) = g.tags.iter_mut().find(|t| t.id == id) {
                t.name = name.to_owned();
                return true;
            }
        }
        false
    }

    /// Deletes the corp tag or group `id` (a group with its tags) and takes the tags off every
    /// customer, as WeCom does; `false` when there is none.
    pub(crate) fn delete_corp_tag(&mut self, id: &str) -> bool {
        let gone: Vec<String> = match self.corp_tag_groups.iter().position(|g| g.group_id == id) {
            Some(i) => self
                .corp_tag_groups
                .remove(i)
                .tags
                .into_iter()
                .map(|t| t.id)
                .collect(),
            None => {
                let Some(g) = self
                    .corp_tag_groups
                    .iter_mut()
                    .find(|g| g.tags.iter().any(|t| t.id == id))
                else {
                    return false;
                };
                g.tags.retain(|t| t.id != id);
                if g.tags.is_empty() {
                    // WeCom keeps no empty groups.
                    let gid = g.group_id.clone();
                    self.corp_tag_groups.retain(|g| g.group_id != gid);
                }
                vec![id.to_owned()]
            }
        };
        for tags in self.follow_tags.values_mut() {
            tags.retain(|t| !gone.contains(t));
        }
        true
    }

    /// Adds a tag named `name` to the group `group_id`; its id, or `None` without that group.
    pub(crate) fn add_corp_tag(&mut self, group_id: &str, name: &str) -> Option<String> {
        let id = format!("et{}", random_string(&mut self.rng, ID_CHARS, 30));
        let g = self
            .corp_tag_groups
            .iter_mut()
            .find(|g| g.group_id == group_id)?;
        g.tags.push(FakeCorpTag {
            id: id.clone(),
            name: name.to_owned(),
            create_time: now_unix(),
            order: 0,
        });
        Some(id)
    }

    fn user_tag_ids(&self, user: usize) -> Vec<i64> {
        self.oa_members
            .iter()
            .filter(|(_, m)| m.contains(&user))
            .map(|(id, _)| *id)
            .collect()
    }

    pub(crate) fn reset_counters(&mut self) {
        self.token_fetches.clear();
        self.calls.clear();
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
    if let Some(rest) = path.strip_prefix("/fake/") {
        return fake_endpoint(&shared, rest, &req, &body);
    }
    let query = parse_query(req.query_string());
    let latency = {
        let mut st = shared.lock();
        *st.calls.entry(path.clone()).or_default() += 1;
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

fn fake_endpoint(shared: &Shared, rest: &str, req: &HttpRequest, body: &[u8]) -> HttpResponse {
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
    match rest {
        "population" => json_response(json!(shared.population)),
        "apps" => json_response(json!(shared.apps.all())),
        "counters" => {
            let st = shared.lock();
            json_response(json!({ "token_fetches": st.token_fetches, "calls": st.calls }))
        }
        _ => HttpResponse::NotFound()
            .content_type("application/json; charset=utf-8")
            .body(json!({ "errcode": 404, "errmsg": "not found" }).to_string()),
    }
}
