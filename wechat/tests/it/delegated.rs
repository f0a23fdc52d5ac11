//! Calls without the secret, against the fake WeChat server: a client built without a token
//! cache calls the same endpoint methods with an `AppRef` and a `TokenSource`, refreshes through
//! the source once on a rejected token and retries; `KeeperTokenSource` holds tokens from a token
//! endpoint (a stand-in for the gateway's, backed by a credential-holding client on the shared
//! cache), asks once for many concurrent callers, passes the rejected token on, maps the
//! endpoint's refusals to typed errors and never shows a token or key.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use async_trait::async_trait;
use fake_wechat::{endpoints, FakeHandle, FakeWechat};
use platform::cache::MemoryCache;
use wechat::api::{
    AccessToken, ApiBaseUrls, ApiClient, ApiError, AppCredentials, AppRef, Auth, ClientOptions,
    KeeperOptions, KeeperTokenSource, Secret, TokenGrant, TokenQuery, TokenSource, TOKEN_PATH,
};

const KEY: &str = "delegated-test-internal-key-0123456789";

fn options(fake: &FakeHandle) -> ClientOptions {
    ClientOptions {
        base_urls: ApiBaseUrls::single(fake.base_url()),
        request_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

/// The token keeper: a client holding the fake's credentials on an in-process cache.
fn keeper(fake: &FakeHandle) -> ApiClient {
    ApiClient::with_options(
        Arc::new(MemoryCache::new("delegated:", 1_000)),
        reqwest::Client::new(),
        options(fake),
    )
}

/// The client of a process without secrets.
fn delegated_client(fake: &FakeHandle) -> ApiClient {
    ApiClient::without_keeper(reqwest::Client::new(), options(fake))
}

/// A source over the keeper in this process that records what it was asked.
struct Recording {
    keeper: ApiClient,
    credentials: Vec<AppCredentials>,
    refreshed: Mutex<Vec<String>>,
}

impl Recording {
    fn credentials(&self, app: &AppRef) -> Result<&AppCredentials, ApiError> {
        self.credentials
            .iter()
            .find(|c| c.app() == app)
            .ok_or_else(|| ApiError::Cache(format!("no credentials for {}", app.label())))
    }
}

#[async_trait]
impl TokenSource for Recording {
    async fn token(&self, app: &AppRef) -> Result<AccessToken, ApiError> {
        self.keeper.access_token(self.credentials(app)?).await
    }

    async fn refresh(&self, app: &AppRef, rejected: &AccessToken) -> Result<AccessToken, ApiError> {
        self.refreshed
            .lock()
            .expect("lock")
            .push(rejected.expose().to_owned());
        let creds = self.credentials(app)?;
        self.keeper
            .invalidate_token(creds, rejected.expose())
            .await?;
        self.keeper.access_token(creds).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delegated_calls_refresh_through_the_source_once() {
    let fake = FakeWechat::start(0, 21).expect("fake starts");
    let apps = fake.apps();
    let source = Recording {
        keeper: keeper(&fake),
        credentials: vec![apps.oa.credentials(), apps.wecom.credentials()],
        refreshed: Mutex::new(Vec::new()),
    };
    let client = delegated_client(&fake);
    let user = fake.population().typical_user().expect("typical").clone();
    let oa = AppRef::official_account(&apps.oa.appid);
    let wecom = AppRef::wecom_contact(&apps.wecom.appid);

    let info = client
        .oa_user_info(Auth::delegated(&oa, &source), &user.oa_openid)
        .await
        .expect("user info");
    assert_eq!(info.unionid, user.unionid);
    let contact = client
        .wecom_external_contact(
            Auth::delegated(&wecom, &source),
            &user.external_userid,
            None,
        )
        .await
        .expect("contact");
    assert_eq!(contact.follow_user.len(), user.follows.len());

    let old = fake.current_token(&apps.oa).expect("issued");
    fake.invalidate_tokens(&apps.oa);
    fake.reset_counters();
    client
        .oa_user_info(Auth::delegated(&oa, &source), &user.oa_openid)
        .await
        .expect("retried");
    assert_eq!(*source.refreshed.lock().expect("lock"), vec![old]);
    assert_eq!(fake.token_fetches(&apps.oa), 1);
    assert_eq!(fake.calls(endpoints::USER_INFO), 2);

    // A wrong kind is refused before anything is sent; credentials need a keeper.
    let e = client
        .oa_user_info(Auth::delegated(&wecom, &source), &user.oa_openid)
        .await
        .unwrap_err();
    assert!(matches!(e, ApiError::WrongAppKind { .. }), "{e}");
    let e = client
        .oa_user_info(&apps.oa.credentials(), &user.oa_openid)
        .await
        .unwrap_err();
    assert!(matches!(e, ApiError::Cache(_)), "{e}");
    assert!(!e.to_string().contains(&apps.oa.secret));
}

/// A stand-in for the gateway's token endpoint. `mode`: 0 serve, 1 refuse the key (401), 2
/// WeChat refused the refresh (502 with errcode 40125 in details).
struct Endpoint {
    keeper: ApiClient,
    credentials: AppCredentials,
    requests: AtomicU64,
    rejections: AtomicU64,
    mode: AtomicU8,
}

async fn serve_token(
    ep: web::Data<Endpoint>,
    req: HttpRequest,
    q: web::Query<TokenQuery>,
) -> HttpResponse {
    ep.requests.fetch_add(1, Ordering::SeqCst);
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&*format!("Bearer {KEY}"));
    if !authorized || ep.mode.load(Ordering::SeqCst) == 1 {
        return HttpResponse::Unauthorized().json(serde_json::json!({
            "code": "invalid_internal_key", "message": "Authorization: wrong key", "details": null}));
    }
    if ep.mode.load(Ordering::SeqCst) == 2 {
        return HttpResponse::BadGateway().json(serde_json::json!({
            "code": "wechat_refused", "message": "refused",
            "details": {"errcode": 40125, "errmsg": "invalid appsecret"}}));
    }
    if let Some(r) = &q.rejected {
        ep.rejections.fetch_add(1, Ordering::SeqCst);
        let _ = ep
            .keeper
            .invalidate_token(&ep.credentials, r.expose())
            .await;
    }
    match ep.keeper.kept_token(&ep.credentials).await {
        Ok(kept) => HttpResponse::Ok().json(TokenGrant {
            access_token: Secret::new(kept.token.expose()),
            expires_at: kept.expires_at,
        }),
        Err(e) => HttpResponse::ServiceUnavailable().json(serde_json::json!({
            "code": "token_unavailable", "message": e.to_string(), "details": null})),
    }
}

/// Starts the endpoint on its own thread; its base URL.
fn start_endpoint(ep: Arc<Endpoint>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let data = web::Data::from(ep);
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route(TOKEN_PATH, web::get().to(serve_token))
            })
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .expect("binds");
            let addr = server.addrs()[0];
            let running = server.run();
            tx.send(addr).expect("send");
            let _ = running.await;
        });
    });
    format!("http://{}", rx.recv().expect("endpoint address"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keeper_source_holds_asks_once_and_maps_refusals() {
    let fake = FakeWechat::start(0, 22).expect("fake starts");
    fake.set_token_latency(Duration::from_millis(200));
    let apps = fake.apps();
    let ep = Arc::new(Endpoint {
        keeper: keeper(&fake),
        credentials: apps.oa.credentials(),
        requests: AtomicU64::new(0),
        rejections: AtomicU64::new(0),
        mode: AtomicU8::new(0),
    });
    let base = start_endpoint(Arc::clone(&ep));
    let source = KeeperTokenSource::new(
        reqwest::Client::new(),
        &base,
        Secret::new(KEY),
        KeeperOptions::default(),
    );
    let client = delegated_client(&fake);
    let oa = AppRef::official_account(&apps.oa.appid);
    let users: Vec<_> = fake.population().oa_followers().cloned().collect();

    // Ten concurrent calls: one request to the endpoint, one token fetch.
    let tokens = source.tenant("t1");
    let concurrent_calls = |n: usize| {
        let calls = users
            .iter()
            .take(n)
            .map(|u| client.oa_user_info(Auth::delegated(&oa, &tokens), &u.oa_openid));
        futures_util::future::join_all(calls)
    };
    for r in concurrent_calls(10).await {
        r.expect("user info");
    }
    assert_eq!(ep.requests.load(Ordering::SeqCst), 1);
    assert_eq!(fake.token_fetches(&apps.oa), 1);

    // Rejected by WeChat: the rejected token goes to the endpoint once, then it is held again.
    fake.expire_tokens(&apps.oa);
    for r in concurrent_calls(5).await {
        r.expect("retried");
    }
    assert_eq!(ep.rejections.load(Ordering::SeqCst), 1);
    assert_eq!(ep.requests.load(Ordering::SeqCst), 2);
    assert_eq!(fake.token_fetches(&apps.oa), 2);

    // Another tenant's view holds its own token (the gateway decides per tenant).
    let other = source.tenant("t2");
    other.token(&oa).await.expect("token");
    assert_eq!(ep.requests.load(Ordering::SeqCst), 3);

    // Refusals become typed errors; neither the key nor a token shows.
    let held = fake.current_token(&apps.oa).expect("issued");
    ep.mode.store(2, Ordering::SeqCst);
    let e = tokens
        .refresh(&oa, &AccessToken::new(held.clone()))
        .await
        .unwrap_err();
    assert!(matches!(e, ApiError::InvalidSecret { .. }), "{e}");
    assert!(!e.is_transient());
    ep.mode.store(1, Ordering::SeqCst);
    let e = source.tenant("t3").token(&oa).await.unwrap_err();
    match &e {
        ApiError::TokenKeeper { status, code, .. } => {
            assert_eq!((*status, code.as_str()), (401, "invalid_internal_key"))
        }
        other => panic!("expected a keeper refusal, got {other:?}"),
    }
    assert!(!e.is_transient());
    for shown in [e.to_string(), format!("{e:?}"), format!("{source:?}")] {
        assert!(!shown.contains(KEY) && !shown.contains(&held), "{shown}");
    }
}
