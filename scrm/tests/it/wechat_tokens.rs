//! WeChat access tokens without secrets, end to end with the fake WeChat server: the gateway's
//! internal token endpoint (internal key, unknown app, another tenant's app, refresh on a
//! rejected token, one WeChat fetch for many concurrent callers in two processes sharing Redis),
//! and the identity service's `WechatLookup` answering OA user info and WeCom external contacts
//! through it (an expired or invalidated token costs one refresh through the gateway and a
//! retry; unknown users are `None`; WeChat or the gateway down is transient, a refused app is
//! permanent).

use std::time::Duration;

use crate::common::{start_up, INTERNAL_KEY, TENANT};
use fake_wechat::{endpoints, FakeApp, FakeHandle, FakeWechat};
use identity_svc::config::WechatConfig;
use identity_svc::enrich::{LookupError, WechatLookup};
use platform::cache::RedisCache;
use platform::config::Secret;
use scrm::roles::Role;
use scrm::up::Running;
use serde_json::{json, Value};
use test_support::servers::{redis_url, unique};
use wechat::api::WechatAccessConfig;

/// `GET /internal/v1/wechat/token` with `key` (none: no Authorization header); status and body.
async fn ask(running: &Running, key: Option<&str>, query: &[(&str, &str)]) -> (u16, Value) {
    let url = format!("{}{}", running.url(Role::Gateway), wechat::api::TOKEN_PATH);
    let mut req = reqwest::Client::new().get(url).query(query);
    if let Some(k) = key {
        req = req.bearer_auth(k);
    }
    let r = req.send().await.expect("gateway answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

fn oa_query(app: &FakeApp) -> Vec<(&'static str, &str)> {
    vec![
        ("tenant_id", TENANT),
        ("kind", "oa"),
        ("app_id", &app.appid),
    ]
}

/// A refused token request: key, query, status, code, what the message starts with.
type Refusal<'a> = (
    Option<&'a str>,
    Vec<(&'a str, &'a str)>,
    u16,
    &'a str,
    &'a str,
);

async fn stop(running: Running, dir: std::path::PathBuf) {
    running.stop().await.expect("stops cleanly");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_refuses_strangers_unknown_apps_and_other_tenants() {
    let fake = FakeWechat::start(0, 31).expect("fake starts");
    let (running, dir) = start_up(&fake, None).await;
    let apps = fake.apps();
    let (oa, wecom) = (apps.oa.appid.as_str(), apps.wecom.appid.as_str());

    // (key, query, status, code, what the message starts with)
    let wrong_key = "not-the-internal-key-0123456789abcdef";
    let refusals: Vec<Refusal> = vec![
        (
            None,
            oa_query(&apps.oa),
            401,
            "unauthenticated",
            "Authorization:",
        ),
        (
            Some(wrong_key),
            oa_query(&apps.oa),
            401,
            "invalid_internal_key",
            "Authorization:",
        ),
        // Strangers learn nothing, not even that the query is malformed.
        (
            None,
            vec![("kind", "qq")],
            401,
            "unauthenticated",
            "Authorization:",
        ),
        (
            Some(INTERNAL_KEY),
            vec![
                ("tenant_id", TENANT),
                ("kind", "oa"),
                ("app_id", "wx_nobody"),
            ],
            404,
            "unknown_app",
            "app_id:",
        ),
        // The OA's appid asked for as a mini-program is another app.
        (
            Some(INTERNAL_KEY),
            vec![("tenant_id", TENANT), ("kind", "mp"), ("app_id", oa)],
            404,
            "unknown_app",
            "app_id:",
        ),
        (
            Some(INTERNAL_KEY),
            vec![
                ("tenant_id", "someone-else"),
                ("kind", "oa"),
                ("app_id", oa),
            ],
            403,
            "tenant_mismatch",
            "tenant_id:",
        ),
        (
            Some(INTERNAL_KEY),
            vec![("tenant_id", TENANT), ("kind", "qq"), ("app_id", "x")],
            400,
            "invalid_query",
            "kind:",
        ),
        (
            Some(INTERNAL_KEY),
            vec![
                ("tenant_id", TENANT),
                ("kind", "wecom"),
                ("app_id", wecom),
                ("agent", "1000002"),
            ],
            404,
            "unknown_app",
            "agent:",
        ),
        (
            Some(INTERNAL_KEY),
            vec![("tenant_id", TENANT), ("kind", "oa")],
            400,
            "invalid_query",
            "query string:",
        ),
    ];
    for (key, query, status, code, field) in refusals {
        let (s, b) = ask(&running, key, &query).await;
        assert_eq!(
            (s, b["code"].as_str()),
            (status, Some(code)),
            "{query:?}: {b}"
        );
        assert!(
            b["message"].as_str().unwrap_or("").starts_with(field),
            "{b}"
        );
        assert!(b.get("details").is_some(), "the common error body: {b}");
    }
    assert_eq!(
        fake.total_token_fetches(),
        0,
        "nothing refused ever reached WeChat"
    );

    // The registered tenant gets the WeCom contact secret's token.
    let q = [("tenant_id", TENANT), ("kind", "wecom"), ("app_id", wecom)];
    let (s, b) = ask(&running, Some(INTERNAL_KEY), &q).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["access_token"].as_str(),
        fake.current_token(&apps.wecom).as_deref()
    );
    stop(running, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_is_kept_and_refreshed_only_when_the_rejected_one_is_current() {
    let fake = FakeWechat::start(0, 32).expect("fake starts");
    let (running, dir) = start_up(&fake, None).await;
    let oa = &fake.apps().oa;
    let key = Some(INTERNAL_KEY);
    let q = oa_query(oa);

    let (s, first) = ask(&running, key, &q).await;
    assert_eq!(s, 200, "{first}");
    let token = first["access_token"].as_str().expect("a token").to_owned();
    assert_eq!(Some(&token), fake.current_token(oa).as_ref());
    let now = chrono::Utc::now().timestamp();
    let expires_at = first["expires_at"].as_i64().expect("expires_at");
    // WeChat's 7200 s minus the keeper's 300 s margin.
    assert!(
        (now + 6800..=now + 6901).contains(&expires_at),
        "{expires_at} vs {now}"
    );
    let (_, again) = ask(&running, key, &q).await;
    assert_eq!(again, first, "the kept token, with the same expiry");
    assert_eq!(fake.token_fetches(oa), 1);

    // A stale rejection (not the cached token) changes nothing.
    let mut stale = q.clone();
    stale.push(("rejected", "an-older-token"));
    let (s, b) = ask(&running, key, &stale).await;
    assert_eq!(
        (s, b["access_token"].as_str()),
        (200, Some(token.as_str())),
        "{b}"
    );
    assert_eq!(fake.token_fetches(oa), 1);

    // Rejecting the current token refreshes it once.
    fake.invalidate_tokens(oa);
    let mut rejected = q.clone();
    rejected.push(("rejected", &token));
    let (s, b) = ask(&running, key, &rejected).await;
    assert_eq!(s, 200, "{b}");
    let fresh = b["access_token"].as_str().expect("a token").to_owned();
    assert_ne!(fresh, token);
    assert_eq!(Some(&fresh), fake.current_token(oa).as_ref());
    assert_eq!(fake.token_fetches(oa), 2);
    // A late second report of the same rejection gets the fresh token without a fetch.
    let (_, b) = ask(&running, key, &rejected).await;
    assert_eq!(b["access_token"].as_str(), Some(fresh.as_str()));
    assert_eq!(fake.token_fetches(oa), 2);

    // WeChat refusing the refresh is reported with its errcode.
    fake.fail_next(endpoints::TOKEN, 40125, 1);
    let mut rejected = q.clone();
    rejected.push(("rejected", &fresh));
    let (s, b) = ask(&running, key, &rejected).await;
    assert_eq!(
        (s, b["code"].as_str()),
        (502, Some("wechat_refused")),
        "{b}"
    );
    assert_eq!(b["details"]["errcode"].as_i64(), Some(40125), "{b}");
    assert!(
        !b.to_string().contains(&oa.secret),
        "the secret never leaves: {b}"
    );
    stop(running, dir).await;
}

/// The one token every answer carries (each a 200).
fn one_token(answers: &[(u16, Value)]) -> String {
    let token = answers[0].1["access_token"].as_str().unwrap_or_default();
    for (status, body) in answers {
        assert_eq!(
            (*status, body["access_token"].as_str()),
            (200, Some(token)),
            "{body}"
        );
    }
    token.to_owned()
}

/// Two gateways (two `scrm up` processes as far as tokens go) sharing Redis, 24 callers at once
/// and then 12 reporting the same rejected token: WeChat sees one fetch each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_callers_in_two_processes_cause_one_fetch() {
    let fake = FakeWechat::start(0, 33).expect("fake starts");
    fake.set_token_latency(Duration::from_millis(300));
    let prefix = format!("{}:", unique("tokens"));
    let cache = json!({"cache": {"kind": "redis", "url": redis_url(), "key_prefix": prefix}});
    let (first, dir1) = start_up(&fake, Some(cache.clone())).await;
    let (second, dir2) = start_up(&fake, Some(cache)).await;
    let oa = &fake.apps().oa;

    let burst = |rejected: Option<String>, n: usize| {
        let (a, b) = (&first, &second);
        let calls = (0..n).map(move |i| {
            let rejected = rejected.clone();
            async move {
                let mut q = oa_query(oa);
                if let Some(r) = &rejected {
                    q.push(("rejected", r));
                }
                let running = if i % 2 == 0 { a } else { b };
                ask(running, Some(INTERNAL_KEY), &q).await
            }
        });
        futures_util::future::join_all(calls)
    };
    let token = one_token(&burst(None, 24).await);
    assert_eq!(
        fake.token_fetches(oa),
        1,
        "one fetch for 24 callers in two processes"
    );

    fake.expire_tokens(oa);
    let fresh = one_token(&burst(Some(token.clone()), 12).await);
    assert_ne!(fresh, token);
    assert_eq!(
        fake.token_fetches(oa),
        2,
        "one refresh for 12 reports of one rejection"
    );

    stop(first, dir1).await;
    stop(second, dir2).await;
    RedisCache::connect(&redis_url(), &prefix)
        .await
        .expect("redis")
        .delete_prefix()
        .await
        .expect("cleanup");
}

// ---------------------------------------------------------------------------------------------
// identity-svc's WechatLookup through the gateway
// ---------------------------------------------------------------------------------------------

fn lookup_config(gateway_url: &str, wechat_base: &str) -> WechatConfig {
    WechatConfig {
        access: WechatAccessConfig {
            enabled: true,
            gateway_url: gateway_url.to_owned(),
            internal_key: Secret::new(INTERNAL_KEY),
            oa_base_url: wechat_base.to_owned(),
            wecom_base_url: wechat_base.to_owned(),
            timeout_ms: 2_000,
        },
        cache_ttl_secs: 600,
        cache_max_entries: 1_000,
        ..WechatConfig::default()
    }
}

fn lookup(cfg: &WechatConfig) -> WechatLookup {
    WechatLookup::from_config(cfg)
        .expect("builds")
        .expect("enabled")
}

fn lookup_for(fake: &FakeHandle, running: &Running) -> WechatLookup {
    lookup(&lookup_config(&running.url(Role::Gateway), fake.base_url()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_answers_from_the_fake_population_through_the_gateway() {
    let fake = FakeWechat::start(0, 34).expect("fake starts");
    let (running, dir) = start_up(&fake, None).await;
    let apps = fake.apps();
    let wx = lookup_for(&fake, &running);
    let user = fake
        .population()
        .typical_user()
        .expect("a typical user")
        .clone();

    let info = wx
        .oa_user(TENANT, &apps.oa.appid, &user.oa_openid)
        .await
        .expect("looked up")
        .expect("a user of the account");
    assert_eq!(info.openid, user.oa_openid);
    assert_eq!(info.unionid, user.unionid);
    assert!(info.is_subscribed());
    assert_eq!(
        info.subscribe_scene.as_deref(),
        Some(user.oa.subscribe_scene.as_str())
    );
    assert_eq!(
        info.qr_scene_str.as_deref(),
        Some(user.oa.qr_scene_str.as_str())
    );
    assert_eq!(info.remark.as_deref(), Some(user.oa.remark.as_str()));
    assert_eq!(info.language.as_deref(), Some("zh_CN"));

    let contact = wx
        .external_contact(TENANT, &apps.wecom.appid, &user.external_userid)
        .await
        .expect("looked up")
        .expect("a contact of the corp");
    assert_eq!(
        contact.external_contact.external_userid,
        user.external_userid
    );
    assert_eq!(contact.external_contact.name, user.name);
    assert_eq!(contact.external_contact.gender, user.gender);
    assert_eq!(contact.external_contact.unionid, user.unionid);
    assert!(contact.external_contact.avatar.is_some());
    assert_eq!(contact.follow_user.len(), user.follows.len());
    for (got, want) in contact.follow_user.iter().zip(&user.follows) {
        assert_eq!(
            (
                &got.userid,
                &got.remark,
                got.add_way,
                &got.state,
                got.createtime
            ),
            (
                &want.userid,
                &want.remark,
                want.add_way,
                &want.state,
                want.createtime
            )
        );
        assert_eq!(
            got.tags.iter().filter(|t| t.tag_type == 1).count(),
            want.tag_ids.len()
        );
    }
    // One token per app, fetched by the gateway; this process never saw a secret.
    assert_eq!(fake.token_fetches(&apps.oa), 1);
    assert_eq!(fake.token_fetches(&apps.wecom), 1);

    // A burst for the same people is answered from the cache.
    for _ in 0..5 {
        wx.oa_user(TENANT, &apps.oa.appid, &user.oa_openid)
            .await
            .expect("cached");
        wx.external_contact(TENANT, &apps.wecom.appid, &user.external_userid)
            .await
            .expect("cached");
    }
    assert_eq!(fake.calls(endpoints::USER_INFO), 1);
    assert_eq!(fake.calls(endpoints::EXTERNAL_CONTACT), 1);

    // Unknown users are no error.
    let nobody = wx
        .oa_user(TENANT, &apps.oa.appid, "oNOBODYxxxxxxxxxxxxxxxxxxxxx")
        .await
        .expect("no error");
    assert_eq!(nobody, None);
    let stranger = fake
        .population()
        .users
        .iter()
        .find(|u| u.follows.is_empty())
        .expect("someone no rep has as a contact");
    let none = wx
        .external_contact(TENANT, &apps.wecom.appid, &stranger.external_userid)
        .await
        .expect("no error");
    assert_eq!(none, None);
    stop(running, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejected_tokens_cost_one_refresh_through_the_gateway_and_a_retry() {
    let fake = FakeWechat::start(0, 35).expect("fake starts");
    let (running, dir) = start_up(&fake, None).await;
    let apps = fake.apps();
    let wx = lookup_for(&fake, &running);
    let users = fake.population().users.clone();
    let subscribed: Vec<_> = fake.population().oa_followers().collect();
    let contacts: Vec<_> = users.iter().filter(|u| !u.follows.is_empty()).collect();
    assert!(
        subscribed.len() >= 4 && contacts.len() >= 2,
        "population too small"
    );

    wx.oa_user(TENANT, &apps.oa.appid, &subscribed[0].oa_openid)
        .await
        .expect("looked up");
    assert_eq!(fake.token_fetches(&apps.oa), 1);

    // WeChat expires the token the lookup holds (42001): one refresh, one retry.
    fake.expire_tokens(&apps.oa);
    fake.reset_counters();
    let info = wx
        .oa_user(TENANT, &apps.oa.appid, &subscribed[1].oa_openid)
        .await
        .expect("retried")
        .expect("a user");
    assert_eq!(info.openid, subscribed[1].oa_openid);
    assert_eq!(fake.token_fetches(&apps.oa), 1, "exactly one refresh");
    assert_eq!(
        fake.calls(endpoints::USER_INFO),
        2,
        "the call and its retry"
    );

    // Superseded (40001), several lookups at once: still one refresh.
    fake.invalidate_tokens(&apps.oa);
    fake.reset_counters();
    let many = subscribed[2..]
        .iter()
        .map(|u| wx.oa_user(TENANT, &apps.oa.appid, &u.oa_openid));
    for r in futures_util::future::join_all(many).await {
        assert!(r.expect("retried").is_some());
    }
    assert_eq!(
        fake.token_fetches(&apps.oa),
        1,
        "one refresh for every rejected call"
    );

    // The same for WeCom.
    wx.external_contact(TENANT, &apps.wecom.appid, &contacts[0].external_userid)
        .await
        .expect("looked up");
    fake.invalidate_tokens(&apps.wecom);
    fake.reset_counters();
    let detail = wx
        .external_contact(TENANT, &apps.wecom.appid, &contacts[1].external_userid)
        .await
        .expect("retried")
        .expect("a contact");
    assert_eq!(
        detail.external_contact.external_userid,
        contacts[1].external_userid
    );
    assert_eq!(fake.token_fetches(&apps.wecom), 1);
    assert_eq!(fake.calls(endpoints::EXTERNAL_CONTACT), 2);
    stop(running, dir).await;
}

fn transient<T: std::fmt::Debug>(r: Result<T, LookupError>) -> LookupError {
    match r {
        Err(e @ LookupError::Transient { .. }) => e,
        other => panic!("expected a transient failure, got {other:?}"),
    }
}

fn permanent<T: std::fmt::Debug>(r: Result<T, LookupError>) -> LookupError {
    match r {
        Err(e @ LookupError::Permanent { .. }) => e,
        other => panic!("expected a permanent failure, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_failures_are_classified() {
    let fake = FakeWechat::start(0, 36).expect("fake starts");
    let (running, dir) = start_up(&fake, None).await;
    let apps = fake.apps();
    let gateway = running.url(Role::Gateway);
    let wx = lookup_for(&fake, &running);
    let users: Vec<_> = fake.population().oa_followers().cloned().collect();

    // WeChat busy, then rate-limited: transient, and not cached.
    fake.fail_next(endpoints::USER_INFO, -1, 1);
    transient(
        wx.oa_user(TENANT, &apps.oa.appid, &users[0].oa_openid)
            .await,
    );
    fake.fail_next(endpoints::USER_INFO, 45011, 1);
    transient(
        wx.oa_user(TENANT, &apps.oa.appid, &users[0].oa_openid)
            .await,
    );
    assert!(wx
        .oa_user(TENANT, &apps.oa.appid, &users[0].oa_openid)
        .await
        .is_ok());

    // An app the gateway does not know, another tenant, a wrong key: permanent.
    let e = permanent(
        wx.oa_user(TENANT, "wx_not_registered", &users[1].oa_openid)
            .await,
    );
    assert!(e.to_string().contains("unknown_app"), "{e}");
    permanent(
        wx.oa_user("another-tenant", &apps.oa.appid, &users[1].oa_openid)
            .await,
    );
    let mut cfg = lookup_config(&gateway, fake.base_url());
    cfg.access.internal_key = Secret::new("wrong-key-0123456789abcdef0123456789");
    let e = permanent(
        lookup(&cfg)
            .oa_user(TENANT, &apps.oa.appid, &users[1].oa_openid)
            .await,
    );
    assert!(
        !e.to_string().contains("wrong-key-0123"),
        "keys never print: {e}"
    );
    // An app not allowed to call the API (48001).
    fake.fail_next(endpoints::EXTERNAL_CONTACT, 48001, 1);
    let contact = fake.population().typical_user().expect("typical").clone();
    permanent(
        wx.external_contact(TENANT, &apps.wecom.appid, &contact.external_userid)
            .await,
    );

    // The gateway down: transient.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", l.local_addr().expect("addr"))
    };
    transient(
        lookup(&lookup_config(&closed, fake.base_url()))
            .oa_user(TENANT, &apps.oa.appid, &users[1].oa_openid)
            .await,
    );

    // WeChat down (the lookup holds a token already): transient, and the token never shows.
    let held_token = fake.current_token(&apps.oa).expect("issued");
    let oa_appid = apps.oa.appid.clone();
    fake.stop().await;
    let e = transient(wx.oa_user(TENANT, &oa_appid, &users[2].oa_openid).await);
    assert!(!e.to_string().contains(&held_token), "{e}");
    stop(running, dir).await;
}
