//! A fake WeChat / WeCom server: a stand-in for WeChat's and WeCom's APIs and callbacks, for tests
//! and offline development (the `fake-wechat` binary). Never part of the production binary:
//! `scrm` does not depend on it; tests and benches take it as a dev-dependency.
//!
//! Owns: the fake's seeded population, its HTTP server and steering, the callbacks it builds and
//! posts, the sidebar's OAuth and JS-SDK stand-ins. Must not touch: the gateway or the services,
//! storage, the bus; the protocol (signatures, crypto, types) comes from the `wechat` crate and
//! is not re-implemented here.
//!
//! It serves the endpoints the API client uses — `/cgi-bin/token`, `/cgi-bin/gettoken`,
//! `/cgi-bin/user/info`, the OA `tags` APIs, `externalcontact/get`, `mark_tag`,
//! `get_corp_tag_list`, `add_corp_tag`, `/sns/jscode2session`, `/wxa/business/getuserphonenumber`,
//! and for the sales-rep sidebar `auth/getuserinfo`, `get_jsapi_ticket`,
//! `ticket/get?type=agent_config`, `message/send` and a stand-in OAuth authorize page
//! (`/connect/oauth2/authorize`, redirecting back with a code) — with WeChat's JSON shapes and
//! errcodes, from a population generated deterministically from a seed ([`Population`], also at
//! `GET /fake/population`; the developer endpoints are listed by [`help_lines`]). Like WeChat it
//! invalidates an app's previous token (and JS-SDK ticket) whenever a new one is fetched. Tests
//! steer it (token lifetime and latency, revoking / expiring tokens, call caps, injected
//! errcodes, rate limits, the corp tag library) and read its counters (token and ticket fetches
//! per app, calls per endpoint), what `mark_tag` was asked, when, and the app messages sent.
//!
//! It also plays WeChat's side of callbacks: [`FakeHandle::callbacks`] builds messages,
//! [`FakeHandle::send_oa`], [`FakeHandle::send_wecom`] and [`FakeHandle::send_mp`] sign, encrypt
//! and post them to a gateway; scripts outside the process ask for one over HTTP
//! (`/fake/send/wecom-add?gateway=&userid=&external_userid=`). `/fake/sink/…` records whatever is
//! posted to it, so the sending side can be checked without a gateway.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use fake_wechat::FakeWechat;
//! use wechat::api::{ApiBaseUrls, ApiClient};
//!
//! let fake = FakeWechat::start(0, 42)?;
//! let cache = Arc::new(platform::cache::MemoryCache::new("test:", 1000));
//! let client = ApiClient::new(cache, ApiBaseUrls::single(fake.base_url()), reqwest::Client::new());
//! let user = &fake.population().users[0];
//! let info = client.oa_user_info(&fake.apps().oa.credentials(), &user.oa_openid).await?;
//! assert_eq!(info.openid, user.oa_openid);
//! assert_eq!(fake.token_fetches(&fake.apps().oa), 1);
//! # Ok(()) }
//! ```

mod callbacks;
pub mod endpoints;
mod population;
mod server;
mod sidebar;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};

pub use self::callbacks::{
    prepare_mp, prepare_oa, prepare_wecom, CallbackBuilder, CallbackError, CallbackMode,
    CallbackResponse, PreparedCallback,
};
pub use self::endpoints::help_lines;
pub use self::population::{
    FakeApp, FakeAppKind, FakeApps, FakeCorpTag, FakeCorpTagGroup, FakeFollow, FakeOaFollow,
    FakeOaTag, FakeRep, FakeUser, Population, EPOCH, OA_SYSTEM_TAG_IDS,
};
use self::server::{errmsg_of, Shared};
pub use self::server::{
    FakeContactWay, FakeMassSend, FakeMessage, FakeQrCode, MarkTagCall, SinkRequest,
};

/// How to start the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeOptions {
    /// Address to listen on; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Seed of the apps and the population.
    pub seed: u64,
    /// Number of people.
    pub users: usize,
    /// Number of reps.
    pub reps: usize,
    /// The mini-program's appid instead of the seed's (to replay vectors encrypted for a
    /// published appid).
    pub mp_appid: Option<String>,
}

impl Default for FakeOptions {
    fn default() -> Self {
        FakeOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            seed: 1,
            users: 24,
            reps: 4,
            mp_appid: None,
        }
    }
}

/// Starts fake servers.
#[derive(Debug)]
pub struct FakeWechat;

impl FakeWechat {
    /// Starts a fake on `127.0.0.1:port` (0 = a free port) with the population of `seed`.
    /// It runs on its own threads, so it works from any test, async or not; it stops when the
    /// handle is dropped.
    pub fn start(port: u16, seed: u64) -> std::io::Result<FakeHandle> {
        Self::start_with(FakeOptions {
            bind: SocketAddr::from(([127, 0, 0, 1], port)),
            seed,
            ..FakeOptions::default()
        })
    }

    /// Starts a fake with explicit options.
    pub fn start_with(options: FakeOptions) -> std::io::Result<FakeHandle> {
        let mut apps = population::generate_apps(options.seed);
        if let Some(appid) = &options.mp_appid {
            apps.mp.appid.clone_from(appid);
        }
        let population = population::generate_population(options.seed, options.users, options.reps);
        let shared = Arc::new(Shared::new(options.seed, apps, population));
        let data = web::Data::from(Arc::clone(&shared));
        let bind = options.bind;
        let open = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&open);
        let (tx, rx) = std::sync::mpsc::channel::<std::io::Result<(SocketAddr, ServerHandle)>>();
        let thread = std::thread::Builder::new()
            .name("fake-wechat".to_owned())
            .spawn(move || {
                let system = actix_web::rt::System::new();
                system.block_on(async move {
                    let server = HttpServer::new(move || {
                        App::new()
                            .app_data(data.clone())
                            .app_data(web::PayloadConfig::new(4 * 1024 * 1024))
                            .default_service(web::to(server::dispatch))
                    })
                    .on_connect(move |_, ext| {
                        ext.insert(OpenConnection::new(&counted));
                    })
                    .workers(2)
                    .disable_signals()
                    .shutdown_timeout(1)
                    .bind(bind);
                    let server = match server {
                        Ok(s) => s,
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    };
                    let addr = server.addrs().first().copied().unwrap_or(bind);
                    let running = server.run();
                    let _ = tx.send(Ok((addr, running.handle())));
                    if let Err(e) = running.await {
                        tracing::warn!(error = %e, "fake WeChat server stopped with an error");
                    }
                });
            })?;
        let (addr, server) = match rx.recv() {
            Ok(result) => result?,
            Err(_) => {
                let _ = thread.join();
                return Err(std::io::Error::other("the fake WeChat server thread died"));
            }
        };
        Ok(FakeHandle {
            base_url: format!("http://{addr}"),
            addr,
            shared,
            server,
            open,
            http: reqwest::Client::new(),
        })
    }
}

/// A running fake. Dropping it stops the server.
pub struct FakeHandle {
    /// `http://127.0.0.1:PORT`: the API base of both the OA/MP and the WeCom APIs.
    pub base_url: String,
    /// The bound address.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    server: ServerHandle,
    /// Connections not yet closed (kept-alive ones included).
    open: Arc<AtomicUsize>,
    http: reqwest::Client,
}

/// Counts a connection while it lives; the server drops it with the connection.
struct OpenConnection(Arc<AtomicUsize>);

impl OpenConnection {
    fn new(count: &Arc<AtomicUsize>) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        OpenConnection(Arc::clone(count))
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl std::fmt::Debug for FakeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeHandle")
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

impl Drop for FakeHandle {
    fn drop(&mut self) {
        // The stop command is sent at once; the returned future only waits for completion.
        drop(self.server.stop(false));
    }
}

impl FakeHandle {
    /// The API base URL (for [`wechat::api::ApiBaseUrls::single`]).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The apps with their credentials, callback tokens and keys.
    pub fn apps(&self) -> &FakeApps {
        &self.shared.apps
    }

    /// The seeded population as it was at start (tags may since have changed through the API).
    pub fn population(&self) -> &Population {
        &self.shared.population
    }

    /// Stops the server and waits until it has stopped: no longer accepting, and every
    /// connection closed — a client holding a kept-alive connection gets no more answers (a
    /// forced stop closes the workers' connections only after the stop itself completes).
    pub async fn stop(self) {
        self.server.stop(false).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while self.open.load(Ordering::SeqCst) > 0 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    // ---- codes -------------------------------------------------------------------------------

    /// A `wx.login` code for `user`, accepted once by `jscode2session`.
    pub fn issue_login_code(&self, user: &FakeUser) -> String {
        self.shared.issue_login_code(user)
    }

    /// A `getPhoneNumber` code for `user`, accepted once within the phone code lifetime (5 min).
    pub fn issue_phone_code(&self, user: &FakeUser) -> String {
        self.shared.issue_phone_code(user, None)
    }

    /// Like [`issue_phone_code`](Self::issue_phone_code), answering another number
    /// (`country_code` without `+`, the national number) instead of the user's own.
    pub fn issue_phone_code_with_number(
        &self,
        user: &FakeUser,
        country_code: &str,
        number: &str,
    ) -> String {
        self.shared
            .issue_phone_code(user, Some((country_code.to_owned(), number.to_owned())))
    }

    /// The legacy phone button's `(encryptedData, iv)` for `user` in the mini-program `appid`,
    /// watermarked now, under the session key of the user's latest login (`None` before one).
    pub fn encrypted_phone(&self, user: &FakeUser, appid: &str) -> Option<(String, String)> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        self.shared.encrypted_phone(user, appid, now)
    }

    /// Like [`encrypted_phone`](Self::encrypted_phone), watermarked at `timestamp` (unix
    /// seconds).
    pub fn encrypted_phone_at(
        &self,
        user: &FakeUser,
        appid: &str,
        timestamp: i64,
    ) -> Option<(String, String)> {
        self.shared.encrypted_phone(user, appid, timestamp)
    }

    // ---- steering ----------------------------------------------------------------------------

    /// The session key (base64 of 16 bytes) `user`'s logins get from now on instead of a random
    /// one (to replay published `encryptedData` vectors).
    pub fn set_session_key(&self, user: &FakeUser, key_b64: &str) {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD
            .decode(key_b64)
            .ok()
            .and_then(|k| <[u8; 16]>::try_from(k).ok())
            .expect("a session key is base64 of 16 bytes");
        self.shared
            .lock()
            .fixed_session_keys
            .insert(user.index, key);
    }

    /// Lifetime (and `expires_in`, rounded up to whole seconds) of tokens issued from now on.
    pub fn set_token_lifetime(&self, lifetime: Duration) {
        self.shared.lock().token_lifetime = lifetime;
    }

    /// Delay before every token answer (widens races in concurrency tests).
    pub fn set_token_latency(&self, latency: Duration) {
        self.shared.lock().token_latency = latency;
    }

    /// Lifetime of phone codes (default 5 min).
    pub fn set_phone_code_ttl(&self, ttl: Duration) {
        self.shared.lock().phone_code_ttl = ttl;
    }

    /// `jscode2session` calls allowed per user per minute before 45011 (default 100).
    pub fn set_code2session_limit(&self, per_user_per_minute: u32) {
        self.shared.lock().code2session_limit = per_user_per_minute;
    }

    /// Answers 45009 once an endpoint has been called more than `cap` times (counting since the
    /// last [`reset_counters`](Self::reset_counters)); `None` lifts the cap.
    pub fn set_call_limit(&self, endpoint: &str, cap: Option<u64>) {
        let mut st = self.shared.lock();
        match cap {
            Some(c) => st.call_limits.insert(endpoint.to_owned(), c),
            None => st.call_limits.remove(endpoint),
        };
    }

    /// The next `times` calls of `endpoint` answer `errcode` with WeChat's usual message.
    pub fn fail_next(&self, endpoint: &str, errcode: i64, times: usize) {
        self.fail_next_with(endpoint, errcode, errmsg_of(errcode), times);
    }

    /// The next `times` calls of `endpoint` answer `errcode` with `errmsg`.
    pub fn fail_next_with(&self, endpoint: &str, errcode: i64, errmsg: &str, times: usize) {
        let mut st = self.shared.lock();
        let queue = st.injected.entry(endpoint.to_owned()).or_default();
        queue.extend(std::iter::repeat_n((errcode, errmsg.to_owned()), times));
    }

    /// Renames the corp tag or tag group `id` in the library, as an admin would in WeCom
    /// (WeCom then sends `change_external_tag` / `update`); `false` when there is none.
    pub fn rename_corp_tag(&self, id: &str, name: &str) -> bool {
        self.shared.lock().rename_corp_tag(id, name)
    }

    /// Deletes the corp tag or tag group `id` (a group with its tags) and takes the tags off
    /// every customer; later `mark_tag` calls naming them answer 40068. `false` when there is
    /// none.
    pub fn delete_corp_tag(&self, id: &str) -> bool {
        self.shared.lock().delete_corp_tag(id)
    }

    /// Adds a corp tag named `name` to the group `group_id`; the new tag's id.
    pub fn add_corp_tag(&self, group_id: &str, name: &str) -> Option<String> {
        self.shared.lock().add_corp_tag(group_id, name)
    }

    /// Rep `userid` adds and removes corp tags on `user` in the WeCom app, as a rep would by
    /// hand (WeCom then sends `edit_external_contact`; nothing is logged as a `mark_tag` call).
    pub fn rep_tags(&self, user: &FakeUser, userid: &str, add: &[&str], remove: &[&str]) {
        self.shared.rep_tags(user, userid, add, remove);
    }

    /// Makes every token issued so far to `app` answer 40001, as after a fetch elsewhere.
    pub fn invalidate_tokens(&self, app: &FakeApp) {
        self.shared.revoke_tokens(app);
    }

    /// Makes every token issued so far to `app` answer 42001.
    pub fn expire_tokens(&self, app: &FakeApp) {
        self.shared.expire_tokens(app);
    }

    // ---- observing ---------------------------------------------------------------------------

    /// The token most recently issued to `app`.
    pub fn current_token(&self, app: &FakeApp) -> Option<String> {
        self.shared.current_token(app)
    }

    /// Token requests received for `app` (successful or not).
    pub fn token_fetches(&self, app: &FakeApp) -> u64 {
        let st = self.shared.lock();
        st.token_fetches.get(&app.key()).copied().unwrap_or(0)
    }

    /// Token requests received for every app.
    pub fn total_token_fetches(&self) -> u64 {
        self.shared.lock().token_fetches.values().sum()
    }

    /// Requests received on `endpoint` (a path such as [`endpoints::USER_INFO`]).
    pub fn calls(&self, endpoint: &str) -> u64 {
        self.shared.lock().calls.get(endpoint).copied().unwrap_or(0)
    }

    /// Zeroes the token and call counters.
    pub fn reset_counters(&self) {
        self.shared.lock().reset_counters();
    }

    /// The OA tag ids `user` carries now.
    pub fn oa_user_tags(&self, user: &FakeUser) -> Vec<i64> {
        self.shared.oa_user_tags(user)
    }

    /// The corp tag ids rep `userid` put on `user` now.
    pub fn corp_tags_of(&self, user: &FakeUser, userid: &str) -> Vec<String> {
        self.shared.follow_tag_ids(user, userid)
    }

    /// The corp tag library now (the population's, as renamed, deleted and added to since).
    pub fn corp_tag_groups(&self) -> Vec<FakeCorpTagGroup> {
        self.shared.lock().corp_tag_groups.clone()
    }

    /// Every `mark_tag` request so far, in arrival order, with its answer's errcode (injected
    /// failures included; not cleared by [`reset_counters`](Self::reset_counters)).
    pub fn mark_tag_calls(&self) -> Vec<MarkTagCall> {
        self.shared.lock().mark_tag_calls.clone()
    }

    /// Every OA mass send and WeCom group-send task accepted so far, in arrival order, with whom
    /// each reached.
    pub fn mass_sends(&self) -> Vec<FakeMassSend> {
        self.shared.lock().mass_sends.clone()
    }

    /// The developer endpoints of this fake, one line each ([`help_lines`]).
    pub fn help_lines(&self) -> Vec<String> {
        help_lines(&self.base_url)
    }

    /// Requests posted to `{base_url}/fake/sink/…` so far.
    pub fn sink_requests(&self) -> Vec<SinkRequest> {
        self.shared.lock().sink.clone()
    }

    /// `{base_url}/fake/sink`: a stand-in gateway base URL that records and answers `success`.
    pub fn sink_url(&self) -> String {
        format!("{}/fake/sink", self.base_url)
    }

    // ---- channel codes -----------------------------------------------------------------------

    /// The contact-me codes made through `add_contact_way` (deleted ones flagged), in order.
    pub fn contact_ways(&self) -> Vec<FakeContactWay> {
        self.shared.lock().contact_ways.clone()
    }

    /// The QR codes made through `qrcode/create`, in order.
    pub fn qrcodes(&self) -> Vec<FakeQrCode> {
        self.shared.lock().qrcodes.clone()
    }

    /// The callback of `user` added through the live contact-me code `config_id`: its first
    /// rep and `add_external_contact` XML with the code's `state`; `None` for no such code.
    pub fn add_through_contact_way(
        &self,
        config_id: &str,
        user: &FakeUser,
    ) -> Option<(String, String)> {
        let way = self
            .contact_ways()
            .into_iter()
            .find(|w| w.config_id == config_id && !w.deleted)?;
        let rep = way.users.first()?.clone();
        let xml = self.callbacks(&self.apps().wecom).add_external_contact(
            &rep,
            &user.external_userid,
            Some(&way.state),
        );
        Some((rep, xml))
    }

    /// The callback of `user` scanning the QR code `ticket`: `subscribe` with `qrscene_<scene>`
    /// for a new follower, `SCAN` with the scene for one already following; `None` for no
    /// such code.
    pub fn scan_qrcode(&self, ticket: &str, user: &FakeUser, new_follower: bool) -> Option<String> {
        let code = self.qrcodes().into_iter().find(|c| c.ticket == ticket)?;
        let b = self.callbacks(&self.apps().oa);
        Some(if new_follower {
            b.subscribe_with_scene(&user.oa_openid, &code.scene)
        } else {
            b.scan(&user.oa_openid, &code.scene)
        })
    }

    // ---- callbacks ---------------------------------------------------------------------------

    /// Message builders for `app`.
    pub fn callbacks<'a>(&self, app: &'a FakeApp) -> CallbackBuilder<'a> {
        CallbackBuilder::new(app)
    }

    /// Posts an Official Account push to `{gateway}/wechat/oa/{appid}` in `mode`.
    pub async fn send_oa(
        &self,
        gateway_base_url: &str,
        app: &FakeApp,
        xml: &str,
        mode: CallbackMode,
    ) -> Result<CallbackResponse, CallbackError> {
        let cb = prepare_oa(gateway_base_url, app, xml, mode)?;
        callbacks::post(&self.http, &cb).await
    }

    /// Posts a WeCom push (encrypted) to `{gateway}/wechat/wecom/{corpid}`.
    pub async fn send_wecom(
        &self,
        gateway_base_url: &str,
        app: &FakeApp,
        xml: &str,
    ) -> Result<CallbackResponse, CallbackError> {
        let cb = prepare_wecom(gateway_base_url, app, xml)?;
        callbacks::post(&self.http, &cb).await
    }

    /// Posts a mini-program push (XML, or JSON when `body` starts with `{`) to
    /// `{gateway}/wechat/mp/{appid}` in `mode`.
    pub async fn send_mp(
        &self,
        gateway_base_url: &str,
        app: &FakeApp,
        body: &str,
        mode: CallbackMode,
    ) -> Result<CallbackResponse, CallbackError> {
        let cb = prepare_mp(gateway_base_url, app, body, mode)?;
        callbacks::post(&self.http, &cb).await
    }
}
