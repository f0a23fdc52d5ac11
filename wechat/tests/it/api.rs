//! The API client against the fake WeChat server, with the in-process cache and with real Redis:
//! token caching and single-flight refresh (also across two client instances sharing Redis),
//! expiry and invalidation with one retry, every endpoint's seeded answers, typed errors, secret
//! redaction, the fake's signed / encrypted callbacks round-tripping through `MsgCrypto`, and the
//! sales-rep sidebar's calls: single-use OAuth codes (also through the fake's authorize page),
//! JS-SDK tickets kept like tokens, app messages with unreached recipients and injected failures.

use std::sync::Arc;
use std::time::Duration;

use fake_wechat::{endpoints, CallbackMode, FakeHandle, FakeWechat};
use platform::cache::{Cache, MemoryCache, RedisCache};
use test_support::servers;
use wechat::api::{
    ApiBaseUrls, ApiClient, ApiError, AppCredentials, AppMessage, AppMessageBody, ClientOptions,
    CorpTagGroupRef, KeptTicket, MarkTagRequest, NewCorpTag, OAuthUser, Secret, SendOutcome,
    TicketKind,
};
use wechat::signature;

// ---------------------------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Redis,
}

/// A cache for one test: in-process, or Redis under a unique prefix deleted at the end.
struct TestCache {
    cache: Arc<dyn Cache>,
    redis: Option<RedisCache>,
    prefix: String,
}

impl TestCache {
    async fn new(backend: Backend) -> Self {
        let prefix = format!("{}:", servers::unique("wechat_api"));
        match backend {
            Backend::Memory => TestCache {
                cache: Arc::new(MemoryCache::new(&prefix, 10_000)),
                redis: None,
                prefix,
            },
            Backend::Redis => {
                let redis = RedisCache::connect(&servers::redis_url(), &prefix)
                    .await
                    .expect("redis connects");
                TestCache {
                    cache: Arc::new(redis.clone()),
                    redis: Some(redis),
                    prefix,
                }
            }
        }
    }

    /// A second, independent connection to the same store (another "process"). For the
    /// in-process cache it is the same instance.
    async fn another(&self) -> Arc<dyn Cache> {
        match &self.redis {
            Some(_) => Arc::new(
                RedisCache::connect(&servers::redis_url(), &self.prefix)
                    .await
                    .expect("redis connects"),
            ),
            None => Arc::clone(&self.cache),
        }
    }

    async fn cleanup(self) {
        if let Some(redis) = self.redis {
            redis.delete_prefix().await.expect("redis cleanup");
        }
    }
}

fn options(fake: &FakeHandle) -> ClientOptions {
    ClientOptions {
        base_urls: ApiBaseUrls::single(fake.base_url()),
        poll_interval: Duration::from_millis(10),
        request_timeout: Duration::from_secs(5),
        ..ClientOptions::default()
    }
}

fn client(fake: &FakeHandle, cache: Arc<dyn Cache>) -> ApiClient {
    ApiClient::with_options(cache, reqwest::Client::new(), options(fake))
}

fn start_fake(seed: u64) -> FakeHandle {
    FakeWechat::start(0, seed).expect("fake starts")
}

/// Runs a scenario once per cache backend.
macro_rules! both_backends {
    ($scenario:ident: $memory:ident, $redis:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $memory() {
            $scenario(Backend::Memory).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $redis() {
            $scenario(Backend::Redis).await;
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------------------------

async fn token_is_cached_and_reused(backend: Backend) {
    let fake = start_fake(11);
    let tc = TestCache::new(backend).await;
    let api = client(&fake, Arc::clone(&tc.cache));
    let oa = fake.apps().oa.credentials();
    let user = fake
        .population()
        .typical_user()
        .expect("a typical user")
        .clone();

    for _ in 0..3 {
        let info = api
            .oa_user_info(&oa, &user.oa_openid)
            .await
            .expect("user info");
        assert_eq!(info.openid, user.oa_openid);
    }
    assert_eq!(fake.token_fetches(&fake.apps().oa), 1);
    assert_eq!(fake.calls(endpoints::USER_INFO), 3);

    // The token sits in the cache under the documented key, and it is the current one.
    let cached = tc
        .cache
        .get(&api.token_cache_key(&oa))
        .await
        .expect("cache get")
        .expect("token cached");
    assert_eq!(
        String::from_utf8(cached).expect("utf-8"),
        fake.current_token(&fake.apps().oa).expect("issued")
    );
    assert_eq!(
        api.token_cache_key(&oa),
        format!("wechat:token:oa:{}", oa.id())
    );
    // A second client on the same cache needs no fetch either.
    let other = client(&fake, tc.another().await);
    other
        .oa_user_info(&oa, &user.oa_openid)
        .await
        .expect("user info");
    assert_eq!(fake.token_fetches(&fake.apps().oa), 1);
    tc.cleanup().await;
}
both_backends!(token_is_cached_and_reused: token_cached_memory, token_cached_redis);

async fn concurrent_callers_fetch_once(backend: Backend) {
    let fake = start_fake(12);
    // A slow token endpoint makes every caller arrive while the refresh is in flight.
    fake.set_token_latency(Duration::from_millis(300));
    let tc = TestCache::new(backend).await;
    let api = client(&fake, Arc::clone(&tc.cache));
    let oa = fake.apps().oa.credentials();
    let openid = fake.population().users[0].oa_openid.clone();

    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (api, oa, openid) = (api.clone(), oa.clone(), openid.clone());
            tokio::spawn(async move { api.oa_user_info(&oa, &openid).await })
        })
        .collect();
    for t in tasks {
        let info = t.await.expect("task").expect("user info");
        assert_eq!(info.openid, openid);
    }
    assert_eq!(
        fake.token_fetches(&fake.apps().oa),
        1,
        "exactly one token fetch"
    );
    assert_eq!(fake.calls(endpoints::USER_INFO), 20, "no call was retried");
    tc.cleanup().await;
}
both_backends!(concurrent_callers_fetch_once: single_flight_memory, single_flight_redis);

/// Two client instances with their own Redis connections ("two processes") and 20 concurrent
/// callers between them: one token fetch per app, for OA and for WeCom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_redis_fetch_once() {
    let fake = start_fake(13);
    fake.set_token_latency(Duration::from_millis(300));
    let tc = TestCache::new(Backend::Redis).await;
    let first = client(&fake, Arc::clone(&tc.cache));
    let second = client(&fake, tc.another().await);
    let oa = fake.apps().oa.credentials();
    let wecom = fake.apps().wecom.credentials();
    let user = fake
        .population()
        .typical_user()
        .expect("a typical user")
        .clone();

    let mut tasks = Vec::new();
    for i in 0..20 {
        let api = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        let (oa, wecom, user) = (oa.clone(), wecom.clone(), user.clone());
        tasks.push(tokio::spawn(async move {
            let info = api.oa_user_info(&oa, &user.oa_openid).await?;
            let contact = api
                .wecom_external_contact(&wecom, &user.external_userid, None)
                .await?;
            Ok::<_, ApiError>((info.openid, contact.external_contact.external_userid))
        }));
    }
    for t in tasks {
        let (openid, external) = t.await.expect("task").expect("calls succeed");
        assert_eq!(openid, user.oa_openid);
        assert_eq!(external, user.external_userid);
    }
    assert_eq!(fake.token_fetches(&fake.apps().oa), 1);
    assert_eq!(fake.token_fetches(&fake.apps().wecom), 1);
    assert_eq!(fake.calls(endpoints::TOKEN), 1);
    assert_eq!(fake.calls(endpoints::GETTOKEN), 1);
    tc.cleanup().await;
}

async fn expiry_and_invalidation_refresh_once(backend: Backend) {
    let fake = start_fake(14);
    let tc = TestCache::new(backend).await;
    let api = client(&fake, Arc::clone(&tc.cache));
    let app = &fake.apps().oa;
    let oa = app.credentials();
    let openid = fake.population().users[1].oa_openid.clone();

    // A short lifetime: the cached copy lapses before WeChat's, so the next call fetches anew
    // without ever meeting an error.
    fake.set_token_lifetime(Duration::from_secs(1));
    api.oa_user_info(&oa, &openid).await.expect("first call");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    api.oa_user_info(&oa, &openid).await.expect("after expiry");
    assert_eq!(fake.token_fetches(app), 2);
    assert_eq!(fake.calls(endpoints::USER_INFO), 2);
    fake.set_token_lifetime(Duration::from_secs(7200));

    // 42001: WeChat expired the token early.
    api.oa_user_info(&oa, &openid).await.expect("fresh token");
    fake.reset_counters();
    fake.expire_tokens(app);
    api.oa_user_info(&oa, &openid)
        .await
        .expect("42001 is retried");
    assert_eq!(fake.token_fetches(app), 1);
    assert_eq!(
        fake.calls(endpoints::USER_INFO),
        2,
        "one failure, one retry"
    );

    // 40001: another party fetched a token, ours was superseded.
    fake.reset_counters();
    fake.invalidate_tokens(app);
    api.oa_user_info(&oa, &openid)
        .await
        .expect("40001 is retried");
    assert_eq!(fake.token_fetches(app), 1);
    assert_eq!(fake.calls(endpoints::USER_INFO), 2);

    // 40014: a malformed token in the cache.
    fake.reset_counters();
    tc.cache
        .set(&api.token_cache_key(&oa), b"not-a-token", None)
        .await
        .expect("cache set");
    api.oa_user_info(&oa, &openid)
        .await
        .expect("40014 is retried");
    assert_eq!(fake.token_fetches(app), 1);
    assert_eq!(fake.calls(endpoints::USER_INFO), 2);

    // A token rejected twice in a row: one retry only, then the typed error.
    fake.reset_counters();
    fake.fail_next(endpoints::USER_INFO, 40001, 2);
    let err = api
        .oa_user_info(&oa, &openid)
        .await
        .expect_err("fails twice");
    assert!(matches!(err, ApiError::InvalidCredential { .. }), "{err:?}");
    assert!(err.is_token_error());
    assert_eq!(fake.calls(endpoints::USER_INFO), 2);
    assert_eq!(fake.token_fetches(app), 1);
    tc.cleanup().await;
}
both_backends!(expiry_and_invalidation_refresh_once: expiry_memory, expiry_redis);

async fn concurrent_rejections_refresh_once(backend: Backend) {
    let fake = start_fake(15);
    let tc = TestCache::new(backend).await;
    let api = client(&fake, Arc::clone(&tc.cache));
    let app = &fake.apps().mp;
    let mp = app.credentials();
    api.access_token(&mp).await.expect("token");
    fake.set_token_latency(Duration::from_millis(200));
    fake.invalidate_tokens(app);
    fake.reset_counters();

    let users: Vec<_> = fake.population().users.iter().take(20).cloned().collect();
    let tasks: Vec<_> = users
        .iter()
        .map(|u| {
            let code = fake.issue_phone_code(u);
            let (api, mp) = (api.clone(), mp.clone());
            tokio::spawn(async move { api.mp_phone_number(&mp, &code).await })
        })
        .collect();
    for (t, u) in tasks.into_iter().zip(&users) {
        let phone = t.await.expect("task").expect("phone number");
        assert_eq!(phone.pure_phone_number, u.phone);
    }
    assert_eq!(
        fake.token_fetches(app),
        1,
        "one refresh for 20 rejected callers"
    );
    // Each caller used the rejected token at most once; those that started after the first
    // rejection found the cache empty and waited for the new token.
    let calls = fake.calls(endpoints::PHONE_NUMBER);
    assert!((21..=40).contains(&calls), "{calls} calls");
    tc.cleanup().await;
}
both_backends!(concurrent_rejections_refresh_once: rejections_memory, rejections_redis);

async fn failed_refresh_is_shared(backend: Backend) {
    let fake = start_fake(16);
    fake.set_token_latency(Duration::from_millis(200));
    let tc = TestCache::new(backend).await;
    let api = client(&fake, Arc::clone(&tc.cache));
    let wrong = AppCredentials::official_account(
        fake.apps().oa.appid.clone(),
        Secret::new("wrong-secret-value-0123456789abcd"),
    );
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (api, wrong) = (api.clone(), wrong.clone());
            tokio::spawn(async move { api.oa_tags(&wrong).await })
        })
        .collect();
    for t in tasks {
        let err = t.await.expect("task").expect_err("wrong secret");
        assert!(matches!(err, ApiError::InvalidSecret { .. }), "{err:?}");
        assert!(!err.is_transient());
    }
    assert_eq!(
        fake.token_fetches(&fake.apps().oa),
        1,
        "the failure was shared"
    );
    tc.cleanup().await;
}
both_backends!(failed_refresh_is_shared: failed_refresh_memory, failed_refresh_redis);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidation_removes_only_the_rejected_token() {
    let fake = start_fake(17);
    let tc = TestCache::new(Backend::Memory).await;
    let api = client(&fake, Arc::clone(&tc.cache));
    let oa = fake.apps().oa.credentials();
    let first = api.access_token(&oa).await.expect("token");
    let key = api.token_cache_key(&oa);
    tc.cache
        .set(&key, b"a-newer-token", None)
        .await
        .expect("cache set");
    assert!(!api
        .invalidate_token(&oa, first.expose())
        .await
        .expect("invalidate"));
    assert_eq!(
        api.access_token(&oa).await.expect("token").expose(),
        "a-newer-token"
    );
    assert!(api
        .invalidate_token(&oa, "a-newer-token")
        .await
        .expect("invalidate"));
    assert_eq!(tc.cache.get(&key).await.expect("get"), None);
    tc.cleanup().await;
}

// ---------------------------------------------------------------------------------------------
// Endpoints return the seeded data
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oa_user_info_matches_population() {
    let fake = start_fake(21);
    let api = client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let oa = fake.apps().oa.credentials();
    for user in &fake.population().users {
        let info = api
            .oa_user_info(&oa, &user.oa_openid)
            .await
            .expect("user info");
        assert_eq!(info.openid, user.oa_openid);
        assert_eq!(info.is_subscribed(), user.oa.subscribed);
        if user.oa.subscribed {
            assert_eq!(info.unionid, user.unionid);
            assert_eq!(info.subscribe_time, Some(user.oa.subscribe_time));
            assert_eq!(
                info.subscribe_scene.as_deref(),
                Some(user.oa.subscribe_scene.as_str())
            );
            assert_eq!(info.qr_scene, Some(user.oa.qr_scene));
            assert_eq!(info.remark.as_deref(), Some(user.oa.remark.as_str()));
            assert_eq!(info.tagid_list, user.oa.tag_ids);
            assert_eq!(info.language.as_deref(), Some("zh_CN"));
        } else {
            assert_eq!(info.unionid, None);
            assert_eq!(info.subscribe_time, None);
        }
    }
    let err = api
        .oa_user_info(&oa, "oUnknownOpenid0000000000000")
        .await
        .expect_err("unknown openid");
    assert!(matches!(err, ApiError::InvalidOpenid { .. }), "{err:?}");
    assert_eq!(err.errcode(), Some(40003));
    assert!(!err.is_transient());
    // OA endpoints refuse other kinds of credentials before any request.
    let err = api
        .oa_user_info(&fake.apps().mp.credentials(), "o")
        .await
        .expect_err("wrong kind");
    assert!(matches!(err, ApiError::WrongAppKind { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oa_tags_lifecycle_and_errors() {
    let fake = start_fake(22);
    let api = client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let oa = fake.apps().oa.credentials();
    let pop = fake.population();

    let tags = api.oa_tags(&oa).await.expect("tags");
    let names: Vec<_> = tags.iter().map(|t| t.name.as_str()).collect();
    let seeded: Vec<_> = pop.oa_tags.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, seeded);
    for tag in &tags {
        let members = pop
            .users
            .iter()
            .filter(|u| u.oa.tag_ids.contains(&tag.id))
            .count() as u64;
        assert_eq!(tag.count, members, "count of {}", tag.name);
    }

    let created = api.oa_create_tag(&oa, "广东").await.expect("create");
    assert_eq!(created.name, "广东");
    assert!(created.id > 102);
    let dup = api.oa_create_tag(&oa, "广东").await.expect_err("duplicate");
    assert!(matches!(dup, ApiError::TagNameDuplicate { .. }), "{dup:?}");
    let long = api
        .oa_create_tag(&oa, &"长".repeat(11))
        .await
        .expect_err("33 bytes");
    assert!(matches!(long, ApiError::TagNameTooLong { .. }), "{long:?}");

    api.oa_update_tag(&oa, created.id, "广东人")
        .await
        .expect("rename");
    let sys = api
        .oa_update_tag(&oa, 2, "x")
        .await
        .expect_err("system tag");
    assert!(matches!(sys, ApiError::SystemTag { .. }), "{sys:?}");
    let missing = api.oa_delete_tag(&oa, 9999).await.expect_err("unknown tag");
    assert!(
        matches!(missing, ApiError::InvalidTagId { .. }),
        "{missing:?}"
    );

    let users: Vec<&str> = pop
        .users
        .iter()
        .take(3)
        .map(|u| u.oa_openid.as_str())
        .collect();
    api.oa_batch_tag(&oa, created.id, &users)
        .await
        .expect("tagging");
    for (u, openid) in pop.users.iter().zip(&users) {
        let ids = api.oa_user_tag_ids(&oa, openid).await.expect("getidlist");
        assert!(ids.contains(&created.id));
        assert_eq!(fake.oa_user_tags(u), ids);
    }
    api.oa_batch_untag(&oa, created.id, &users[..1])
        .await
        .expect("untagging");
    let ids = api.oa_user_tag_ids(&oa, users[0]).await.expect("getidlist");
    assert!(!ids.contains(&created.id));

    let empty = api
        .oa_batch_tag(&oa, created.id, &[])
        .await
        .expect_err("empty list");
    assert!(
        matches!(empty, ApiError::InvalidOpenidList { .. }),
        "{empty:?}"
    );
    let too_many: Vec<&str> = std::iter::repeat_n(users[0], 51).collect();
    let err = api
        .oa_batch_tag(&oa, created.id, &too_many)
        .await
        .expect_err("51");
    assert!(matches!(err, ApiError::InvalidOpenidList { .. }), "{err:?}");
    let err = api
        .oa_batch_tag(&oa, created.id, &["oNobody"])
        .await
        .expect_err("unknown openid");
    assert!(matches!(err, ApiError::InvalidOpenid { .. }), "{err:?}");

    api.oa_delete_tag(&oa, created.id).await.expect("delete");
    let after = api.oa_tags(&oa).await.expect("tags");
    assert!(after.iter().all(|t| t.id != created.id));

    // The 100-tag cap.
    let mut created_count = after.len();
    let mut last = None;
    while created_count < 101 {
        match api.oa_create_tag(&oa, &format!("tag{created_count}")).await {
            Ok(_) => created_count += 1,
            Err(e) => {
                last = Some(e);
                break;
            }
        }
    }
    assert!(
        matches!(last, Some(ApiError::TooManyTags { .. })),
        "{last:?}"
    );
    assert_eq!(created_count, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_contacts_and_tags() {
    let fake = start_fake(23);
    let api = client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let wecom = fake.apps().wecom.credentials();
    let pop = fake.population();

    for user in pop.users.iter().filter(|u| !u.follows.is_empty()) {
        let detail = api
            .wecom_external_contact(&wecom, &user.external_userid, None)
            .await
            .expect("external contact");
        let c = &detail.external_contact;
        assert_eq!(c.external_userid, user.external_userid);
        assert_eq!(c.name, user.name);
        assert_eq!(c.contact_type, 1);
        assert_eq!(c.unionid, user.unionid);
        assert_eq!(detail.follow_user.len(), user.follows.len());
        for (got, want) in detail.follow_user.iter().zip(&user.follows) {
            assert_eq!(got.userid, want.userid);
            assert_eq!(got.remark, want.remark);
            assert_eq!(got.description, want.description);
            assert_eq!(got.createtime, want.createtime);
            assert_eq!(got.add_way, want.add_way);
            assert_eq!(got.state, want.state);
            assert_eq!(got.remark_mobiles, want.remark_mobiles);
            let corp: Vec<_> = got
                .tags
                .iter()
                .filter(|t| t.tag_type == 1)
                .filter_map(|t| t.tag_id.clone())
                .collect();
            assert_eq!(corp, want.tag_ids);
            let personal: Vec<_> = got
                .tags
                .iter()
                .filter(|t| t.tag_type == 2)
                .map(|t| t.tag_name.clone())
                .collect();
            assert_eq!(personal, want.personal_tags);
            for t in got.tags.iter().filter(|t| t.tag_type == 1) {
                let (group, tag) = pop
                    .corp_tag(t.tag_id.as_deref().unwrap_or_default())
                    .expect("seeded tag");
                assert_eq!(t.group_name, group.group_name);
                assert_eq!(t.tag_name, tag.name);
            }
        }
    }

    // Corp tag library: all, by group, by tag.
    let all = api
        .wecom_corp_tag_list(&wecom, &[], &[])
        .await
        .expect("all");
    assert_eq!(all.len(), pop.corp_tag_groups.len());
    for (got, want) in all.iter().zip(&pop.corp_tag_groups) {
        assert_eq!(got.group_id, want.group_id);
        assert_eq!(got.group_name, want.group_name);
        let ids: Vec<_> = got.tag.iter().map(|t| t.id.as_str()).collect();
        let want_ids: Vec<_> = want.tags.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(ids, want_ids);
    }
    let group = &pop.corp_tag_groups[1];
    let by_group = api
        .wecom_corp_tag_list(&wecom, &[], &[&group.group_id])
        .await
        .expect("by group");
    assert_eq!(by_group.len(), 1);
    assert_eq!(by_group[0].tag.len(), group.tags.len());
    let one = &pop.corp_tag_groups[2].tags[0];
    let by_tag = api
        .wecom_corp_tag_list(&wecom, &[&one.id], &[])
        .await
        .expect("by tag");
    assert_eq!(by_tag.len(), 1);
    assert_eq!(by_tag[0].tag.len(), 1);
    assert_eq!(by_tag[0].tag[0].name, one.name);

    // add_corp_tag: a new group by name, more tags into it by id; a name the group has, or one
    // longer than 30 characters, refused.
    let tag = |name: &str| NewCorpTag {
        name: name.to_owned(),
        order: 0,
    };
    let made = api
        .wecom_add_corp_tag(
            &wecom,
            CorpTagGroupRef::Name {
                name: "渠道",
                order: 3,
            },
            &[tag("直播"), tag("展会")],
        )
        .await
        .expect("add by name");
    assert_eq!((made.group_name.as_str(), made.tag.len()), ("渠道", 2));
    let more = api
        .wecom_add_corp_tag(&wecom, CorpTagGroupRef::Id(&made.group_id), &[tag("线上")])
        .await
        .expect("add by id");
    assert_eq!(
        (more.group_id.as_str(), more.tag[0].name.as_str()),
        (made.group_id.as_str(), "线上")
    );
    let listed = api
        .wecom_corp_tag_list(&wecom, &[], &[&made.group_id])
        .await
        .expect("listed");
    assert_eq!(listed[0].tag.len(), 3);
    let err = api
        .wecom_add_corp_tag(&wecom, CorpTagGroupRef::Id(&made.group_id), &[tag("直播")])
        .await
        .expect_err("taken");
    assert!(
        matches!(err, ApiError::DuplicateCorpTagName { .. }),
        "{err:?}"
    );
    let err = api
        .wecom_add_corp_tag(
            &wecom,
            CorpTagGroupRef::Id(&made.group_id),
            &[tag(&"x".repeat(31))],
        )
        .await
        .expect_err("too long");
    assert_eq!(err.errcode(), Some(40058));

    // mark_tag changes what externalcontact/get reports.
    let user = pop
        .users
        .iter()
        .find(|u| !u.follows.is_empty())
        .expect("a contact");
    let rep = &user.follows[0].userid;
    let add = pop
        .corp_tag_groups
        .iter()
        .flat_map(|g| &g.tags)
        .find(|t| !user.follows[0].tag_ids.contains(&t.id))
        .expect("a tag the customer lacks");
    api.wecom_mark_tag(
        &wecom,
        &MarkTagRequest {
            userid: rep.clone(),
            external_userid: user.external_userid.clone(),
            add_tag: vec![add.id.clone()],
            remove_tag: user.follows[0].tag_ids.clone(),
        },
    )
    .await
    .expect("mark tag");
    assert_eq!(fake.corp_tags_of(user, rep), vec![add.id.clone()]);
    let detail = api
        .wecom_external_contact(&wecom, &user.external_userid, None)
        .await
        .expect("external contact");
    let tags: Vec<_> = detail.follow_user[0]
        .tags
        .iter()
        .filter_map(|t| t.tag_id.clone())
        .collect();
    assert_eq!(tags, vec![add.id.clone()]);

    // Typed errors.
    let nobody = pop
        .users
        .iter()
        .find(|u| u.follows.is_empty())
        .expect("someone without reps");
    let err = api
        .wecom_external_contact(&wecom, &nobody.external_userid, None)
        .await
        .expect_err("not a contact");
    assert!(matches!(err, ApiError::NoExternalContact { .. }), "{err:?}");
    let err = api
        .wecom_external_contact(&wecom, "not-an-external-userid", None)
        .await
        .expect_err("malformed");
    assert!(
        matches!(err, ApiError::InvalidExternalUserId { .. }),
        "{err:?}"
    );
    let mark = |userid: &str, tag: &str| MarkTagRequest {
        userid: userid.to_owned(),
        external_userid: user.external_userid.clone(),
        add_tag: vec![tag.to_owned()],
        remove_tag: Vec::new(),
    };
    let err = api
        .wecom_mark_tag(&wecom, &mark("no_such_rep", &add.id))
        .await
        .expect_err("unknown rep");
    assert!(matches!(err, ApiError::UserNotFound { .. }), "{err:?}");
    let err = api
        .wecom_mark_tag(&wecom, &mark(rep, "etNoSuchTag"))
        .await
        .expect_err("unknown tag");
    assert!(matches!(err, ApiError::InvalidCorpTagId { .. }), "{err:?}");
    let stranger = pop
        .reps
        .iter()
        .find(|r| !user.follows.iter().any(|f| f.userid == r.userid))
        .expect("a rep who does not follow the customer");
    let err = api
        .wecom_mark_tag(&wecom, &mark(&stranger.userid, &add.id))
        .await
        .expect_err("not this rep's customer");
    assert!(matches!(err, ApiError::NoExternalContact { .. }), "{err:?}");
    // A self-built app without customer-contact access.
    let err = api
        .wecom_external_contact(
            &fake.apps().wecom_agent.credentials(),
            &user.external_userid,
            None,
        )
        .await
        .expect_err("no access");
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_codes_are_made_changed_and_retired() {
    use wechat::api::{ContactWay, QrScene};
    let fake = start_fake(29);
    let api = client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let wecom = fake.apps().wecom.credentials();
    let oa = fake.apps().oa.credentials();
    let reps: Vec<String> = fake
        .population()
        .reps
        .iter()
        .map(|r| r.userid.clone())
        .collect();
    let way = |state: &str, users: &[String]| ContactWay {
        kind: if users.len() == 1 { 1 } else { 2 },
        scene: 2,
        remark: Some("expo".into()),
        skip_verify: true,
        state: state.into(),
        user: users.to_vec(),
        is_temp: false,
        expires_in: None,
    };
    let added = api
        .wecom_add_contact_way(&wecom, &way("booth_7", &reps[..1]))
        .await
        .expect("contact way");
    assert!(added.qr_code.contains(&added.config_id), "{added:?}");
    let kept = fake.contact_ways();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].state.as_str(), &kept[0].users),
        ("booth_7", &reps[..1].to_vec())
    );
    // WeChat's limits: a 31-character state, an unknown rep.
    let long = api
        .wecom_add_contact_way(&wecom, &way(&"s".repeat(31), &reps[..1]))
        .await
        .expect_err("state too long");
    assert_eq!(long.errcode(), Some(40058), "{long:?}");
    let stranger = api
        .wecom_add_contact_way(&wecom, &way("x", &["nobody".to_string()]))
        .await
        .expect_err("unknown rep");
    assert_eq!(stranger.errcode(), Some(60111), "{stranger:?}");
    api.wecom_update_contact_way(&wecom, &added.config_id, &way("booth_8", &reps[1..2]))
        .await
        .expect("update");
    assert_eq!(fake.contact_ways()[0].state, "booth_8");
    let user = fake.population().users[0].clone();
    let (rep, xml) = fake
        .add_through_contact_way(&added.config_id, &user)
        .expect("live code");
    assert_eq!(rep, reps[1]);
    assert!(
        xml.contains("booth_8") && xml.contains(&user.external_userid),
        "{xml}"
    );
    api.wecom_del_contact_way(&wecom, &added.config_id)
        .await
        .expect("delete");
    assert!(fake.contact_ways()[0].deleted);
    assert!(fake
        .add_through_contact_way(&added.config_id, &user)
        .is_none());
    let gone = api
        .wecom_del_contact_way(&wecom, &added.config_id)
        .await
        .expect_err("deleted");
    assert_eq!(gone.errcode(), Some(41044), "{gone:?}");

    // OA QR codes: temporary with a scene string, permanent with an id.
    let temp = api
        .oa_create_qrcode(&oa, &QrScene::Str("booth_7".into()), Some(86_400))
        .await
        .expect("temporary code");
    assert_eq!(temp.expire_seconds, Some(86_400));
    assert!(temp
        .image_url()
        .starts_with("https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=gQ"));
    let perm = api
        .oa_create_qrcode(&oa, &QrScene::Id(42), None)
        .await
        .expect("permanent code");
    assert_eq!(perm.expire_seconds, None);
    let codes = fake.qrcodes();
    assert_eq!(
        (codes[0].scene.as_str(), codes[1].scene.as_str()),
        ("booth_7", "42")
    );
    let xml = fake.scan_qrcode(&temp.ticket, &user, true).unwrap();
    assert!(xml.contains("qrscene_booth_7"), "{xml}");
    let xml = fake.scan_qrcode(&perm.ticket, &user, false).unwrap();
    assert!(xml.contains("SCAN") && xml.contains("42"), "{xml}");
    let bad = api
        .oa_create_qrcode(&oa, &QrScene::Str("s".repeat(65)), None)
        .await
        .expect_err("scene too long");
    assert_eq!(bad.errcode(), Some(40097), "{bad:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corp_tag_library_changes_like_an_admin_would_make_them() {
    let fake = start_fake(24);
    let api = client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let wecom = fake.apps().wecom.credentials();
    let pop = fake.population();
    let user = pop
        .users
        .iter()
        .find(|u| !u.follows.is_empty())
        .expect("a contact");
    let rep = user.follows[0].userid.clone();
    let (g0, g1) = (&pop.corp_tag_groups[0], &pop.corp_tag_groups[1]);
    let (kept, gone) = (&g0.tags[0], &g0.tags[1]);
    let mark = |add: &[&str], remove: &[&str]| MarkTagRequest {
        userid: rep.clone(),
        external_userid: user.external_userid.clone(),
        add_tag: add.iter().map(|s| s.to_string()).collect(),
        remove_tag: remove.iter().map(|s| s.to_string()).collect(),
    };
    api.wecom_mark_tag(&wecom, &mark(&[&kept.id, &gone.id], &[]))
        .await
        .expect("mark");

    assert!(fake.rename_corp_tag(&kept.id, "A+级"));
    assert!(fake.rename_corp_tag(&g1.group_id, "来源渠道"));
    assert!(fake.delete_corp_tag(&gone.id));
    assert!(!fake.delete_corp_tag("etNoSuchTag"));
    let added = fake
        .add_corp_tag(&g1.group_id, "直播")
        .expect("group exists");
    fake.fail_next(endpoints::MARK_TAG, 45033, 1);

    let all = api
        .wecom_corp_tag_list(&wecom, &[], &[])
        .await
        .expect("all");
    let tag = |id: &str| all.iter().flat_map(|g| &g.tag).find(|t| t.id == id);
    assert_eq!(tag(&kept.id).map(|t| t.name.as_str()), Some("A+级"));
    assert!(tag(&gone.id).is_none(), "a deleted tag is not listed");
    assert_eq!(tag(&added).map(|t| t.name.as_str()), Some("直播"));
    assert!(all.iter().any(|g| g.group_name == "来源渠道"));
    assert_eq!(fake.corp_tag_groups().len(), pop.corp_tag_groups.len());
    assert!(
        !fake.corp_tags_of(user, &rep).contains(&gone.id),
        "deleting a tag takes it off customers"
    );

    // The injected concurrency limit, then a deleted tag: both logged with their errcodes.
    let err = api
        .wecom_mark_tag(&wecom, &mark(&[&added], &[]))
        .await
        .expect_err("injected");
    assert_eq!(err.errcode(), Some(45033));
    let err = api
        .wecom_mark_tag(&wecom, &mark(&[&gone.id], &[]))
        .await
        .expect_err("deleted tag");
    assert!(matches!(err, ApiError::InvalidCorpTagId { .. }), "{err:?}");
    api.wecom_mark_tag(&wecom, &mark(&[&added], &[&kept.id]))
        .await
        .expect("mark");
    let calls = fake.mark_tag_calls();
    let codes: Vec<i64> = calls.iter().map(|c| c.errcode).collect();
    assert_eq!(codes, vec![0, 45033, 40068, 0]);
    assert_eq!(calls[3].add, vec![added.clone()]);
    assert_eq!(calls[3].remove, vec![kept.id.clone()]);
    assert_eq!(calls[3].userid, rep);
    assert!(calls.windows(2).all(|w| w[0].at <= w[1].at));

    // Deleting a whole group deletes its tags.
    assert!(fake.delete_corp_tag(&g1.group_id));
    let all = api
        .wecom_corp_tag_list(&wecom, &[], &[])
        .await
        .expect("all");
    assert!(all.iter().all(|g| g.group_id != g1.group_id));
    assert!(!fake.corp_tags_of(user, &rep).contains(&added));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mini_program_login_and_phone() {
    let fake = start_fake(24);
    let api = client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let mp = fake.apps().mp.credentials();
    let pop = fake.population();

    for user in pop.users.iter().take(8) {
        let code = fake.issue_login_code(user);
        let session = api.mp_code_to_session(&mp, &code).await.expect("session");
        assert_eq!(session.openid, user.mp_openid);
        assert_eq!(session.unionid, user.unionid);
        assert_eq!(session.session_key.expose().len(), 24);
        // Single use.
        let again = api
            .mp_code_to_session(&mp, &code)
            .await
            .expect_err("reused");
        assert!(matches!(again, ApiError::InvalidCode { .. }), "{again:?}");
    }
    let err = api
        .mp_code_to_session(&mp, "081never-issued")
        .await
        .expect_err("unknown code");
    assert!(matches!(err, ApiError::InvalidCode { .. }), "{err:?}");
    assert_eq!(
        fake.token_fetches(&fake.apps().mp),
        0,
        "login needs no token"
    );

    let user = &pop.users[3];
    let code = fake.issue_phone_code(user);
    let phone = api.mp_phone_number(&mp, &code).await.expect("phone");
    assert_eq!(phone.phone_number, user.phone);
    assert_eq!(phone.pure_phone_number, user.phone);
    assert_eq!(phone.country_code, "86");
    assert_eq!(phone.watermark.appid, fake.apps().mp.appid);
    let again = api.mp_phone_number(&mp, &code).await.expect_err("reused");
    assert!(matches!(again, ApiError::InvalidCode { .. }), "{again:?}");
    fake.set_phone_code_ttl(Duration::from_millis(50));
    let code = fake.issue_phone_code(user);
    tokio::time::sleep(Duration::from_millis(80)).await;
    let expired = api.mp_phone_number(&mp, &code).await.expect_err("expired");
    assert!(
        matches!(expired, ApiError::InvalidCode { .. }),
        "{expired:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Limits and transient errors
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_typed_errors() {
    let fake = start_fake(31);
    let api = client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let mp = fake.apps().mp.credentials();
    let oa = fake.apps().oa.credentials();
    let user = &fake.population().users[0];

    fake.set_code2session_limit(3);
    for _ in 0..3 {
        let code = fake.issue_login_code(user);
        api.mp_code_to_session(&mp, &code)
            .await
            .expect("within the limit");
    }
    let code = fake.issue_login_code(user);
    let err = api.mp_code_to_session(&mp, &code).await.expect_err("4th");
    assert!(matches!(err, ApiError::RateLimited { .. }), "{err:?}");
    assert!(err.is_transient());
    // Another user is not affected.
    let other = &fake.population().users[1];
    let code = fake.issue_login_code(other);
    api.mp_code_to_session(&mp, &code)
        .await
        .expect("other user");

    fake.set_call_limit(endpoints::USER_INFO, Some(2));
    api.oa_user_info(&oa, &user.oa_openid).await.expect("1");
    api.oa_user_info(&oa, &user.oa_openid).await.expect("2");
    let err = api
        .oa_user_info(&oa, &user.oa_openid)
        .await
        .expect_err("3rd");
    assert!(matches!(err, ApiError::ApiLimit { .. }), "{err:?}");
    assert!(!err.is_transient());
    fake.set_call_limit(endpoints::USER_INFO, None);

    fake.fail_next(endpoints::USER_INFO, -1, 1);
    let err = api
        .oa_user_info(&oa, &user.oa_openid)
        .await
        .expect_err("busy");
    assert!(matches!(err, ApiError::Busy { .. }), "{err:?}");
    assert!(err.is_transient());
    api.oa_user_info(&oa, &user.oa_openid)
        .await
        .expect("recovers");

    fake.fail_next(endpoints::USER_INFO, 99999, 1);
    let err = api
        .oa_user_info(&oa, &user.oa_openid)
        .await
        .expect_err("other");
    assert_eq!(err.errcode(), Some(99999));
    assert!(
        matches!(err, ApiError::Other { errcode: 99999, .. }),
        "{err:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Secrets never show
// ---------------------------------------------------------------------------------------------

fn assert_hidden(err: &ApiError, secrets: &[&str]) {
    let shown = format!("{err} / {err:?}");
    for s in secrets {
        assert!(!shown.contains(s), "secret leaked in: {shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_appear_in_errors() {
    let fake = start_fake(41);
    let api = client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let apps = fake.apps();

    // Wrong secrets, through the token endpoints and jscode2session.
    let bad_oa = AppCredentials::official_account(
        apps.oa.appid.clone(),
        Secret::new("BadOaSecret0123456789abcdefABCDE"),
    );
    let err = api.oa_tags(&bad_oa).await.expect_err("wrong secret");
    assert!(matches!(err, ApiError::InvalidSecret { .. }), "{err:?}");
    assert_hidden(&err, &["BadOaSecret0123456789abcdefABCDE"]);
    let bad_mp = AppCredentials::mini_program(
        apps.mp.appid.clone(),
        Secret::new("BadMpSecret0123456789abcdefABCDE"),
    );
    let err = api
        .mp_code_to_session(&bad_mp, "code")
        .await
        .expect_err("wrong secret");
    assert!(matches!(err, ApiError::InvalidSecret { .. }), "{err:?}");
    assert_hidden(&err, &["BadMpSecret0123456789abcdefABCDE"]);
    let bad_wecom = AppCredentials::wecom(
        apps.wecom.appid.clone(),
        "contact",
        Secret::new("BadWeComSecret0123456789abcdefABCDEFGHIJKLM"),
    );
    let err = api
        .wecom_corp_tag_list(&bad_wecom, &[], &[])
        .await
        .expect_err("wrong secret");
    assert_eq!(err.errcode(), Some(40001));
    assert_hidden(&err, &["BadWeComSecret0123456789abcdefABCDEFGHIJKLM"]);

    // A server that echoes the secret or the token in errmsg is redacted.
    let oa = apps.oa.credentials();
    let token = api.access_token(&oa).await.expect("token");
    fake.fail_next_with(
        endpoints::TAGS_GET,
        45009,
        &format!(
            "quota for token {} secret {}",
            token.expose(),
            apps.oa.secret
        ),
        1,
    );
    let err = api.oa_tags(&oa).await.expect_err("injected");
    assert!(matches!(err, ApiError::ApiLimit { .. }), "{err:?}");
    assert_hidden(&err, &[token.expose(), &apps.oa.secret]);
    assert!(err.to_string().contains("***"));

    // Transport failures: the URL (which carries the secret or token) is never quoted.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_base = format!("http://{}", closed.local_addr().expect("addr"));
    drop(closed);
    let dead = ApiClient::with_options(
        Arc::new(MemoryCache::new("t:", 100)),
        reqwest::Client::new(),
        ClientOptions {
            base_urls: ApiBaseUrls::single(&dead_base),
            request_timeout: Duration::from_secs(2),
            ..ClientOptions::default()
        },
    );
    let err = dead
        .mp_code_to_session(&apps.mp.credentials(), "code")
        .await
        .expect_err("unreachable");
    assert!(matches!(err, ApiError::Transport { .. }), "{err:?}");
    assert!(err.is_transient());
    assert_hidden(&err, &[&apps.mp.secret]);
    let err = dead.oa_tags(&oa).await.expect_err("unreachable");
    assert!(matches!(err, ApiError::Transport { .. }), "{err:?}");
    assert_hidden(&err, &[&apps.oa.secret]);

    // Debug of credentials, tokens and sessions.
    assert_hidden(
        &ApiError::Cache(format!("{oa:?} {token:?}")),
        &[&apps.oa.secret, token.expose()],
    );
    let user = &fake.population().users[0];
    let session = api
        .mp_code_to_session(&apps.mp.credentials(), &fake.issue_login_code(user))
        .await
        .expect("session");
    assert!(!format!("{session:?}").contains(session.session_key.expose()));
}

// ---------------------------------------------------------------------------------------------
// Callbacks
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oa_callbacks_round_trip_through_msg_crypto() {
    let fake = start_fake(51);
    let app = &fake.apps().oa;
    let crypto = app.crypto();
    let user = &fake.population().users[0];
    let cb = fake.callbacks(app);
    let messages = [
        cb.subscribe(&user.oa_openid),
        cb.subscribe_with_scene(&user.oa_openid, "campaign_7"),
        cb.unsubscribe(&user.oa_openid),
        cb.scan(&user.oa_openid, "campaign_7"),
        cb.click(&user.oa_openid, "MENU_PRICE"),
        cb.view(&user.oa_openid, "https://example.com/a?b=c"),
        cb.text(&user.oa_openid, "你好 ]]> <b>"),
    ];
    assert!(messages[1].contains("<EventKey><![CDATA[qrscene_campaign_7]]></EventKey>"));
    assert!(messages[1].contains("<Ticket>"));
    assert!(messages[3].contains("<Event><![CDATA[SCAN]]></Event>"));
    assert!(messages[6].contains("<MsgId>"));

    for xml in &messages {
        // Safe mode: the body holds only ToUserName and Encrypt.
        let safe =
            fake_wechat::prepare_oa("http://gw", app, xml, CallbackMode::Safe).expect("prepare");
        assert_eq!(safe.url, format!("http://gw/wechat/oa/{}", app.appid));
        assert_eq!(safe.param("encrypt_type"), Some("aes"));
        assert_eq!(safe.param("openid"), Some(user.oa_openid.as_str()));
        let (ts, nonce) = (
            safe.param("timestamp").expect("timestamp"),
            safe.param("nonce").expect("nonce"),
        );
        assert!(crypto.verify_signature(safe.param("signature").expect("signature"), ts, nonce));
        assert!(!safe.body.contains("FromUserName"));
        let encrypt = between(&safe.body, "<Encrypt><![CDATA[", "]]></Encrypt>");
        let plain = crypto
            .verify_and_decrypt(
                safe.param("msg_signature").expect("msg_signature"),
                ts,
                nonce,
                encrypt,
            )
            .expect("verifies and decrypts");
        assert_eq!(&plain, xml);
        assert!(safe
            .body
            .contains(&format!("<ToUserName><![CDATA[{}]]>", app.original_id)));

        // Compatible mode: the plain fields and Encrypt.
        let compat = fake_wechat::prepare_oa("http://gw", app, xml, CallbackMode::Compatible)
            .expect("prepare");
        assert!(compat.body.contains("<FromUserName>"));
        let encrypt = between(&compat.body, "<Encrypt><![CDATA[", "]]></Encrypt>");
        assert_eq!(
            &crypto
                .verify_and_decrypt(
                    compat.param("msg_signature").expect("msg_signature"),
                    compat.param("timestamp").expect("timestamp"),
                    compat.param("nonce").expect("nonce"),
                    encrypt,
                )
                .expect("decrypts"),
            xml
        );

        // Plaintext: the message as is, plain signature only.
        let plain = fake_wechat::prepare_oa("http://gw", app, xml, CallbackMode::Plaintext)
            .expect("prepare");
        assert_eq!(&plain.body, xml);
        assert_eq!(plain.param("msg_signature"), None);
        assert!(signature::verify_signature(
            &app.token,
            plain.param("timestamp").expect("timestamp"),
            plain.param("nonce").expect("nonce"),
            plain.param("signature").expect("signature"),
        ));
    }

    // Over HTTP, into the fake's sink.
    let resp = fake
        .send_oa(&fake.sink_url(), app, &messages[0], CallbackMode::Safe)
        .await
        .expect("sent");
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, "success");
    let got = fake.sink_requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].path, format!("/wechat/oa/{}", app.appid));
    assert_eq!(got[0].content_type, "text/xml");
    let query: std::collections::HashMap<String, String> =
        url_pairs(&got[0].query).into_iter().collect();
    let encrypt = between(&got[0].body, "<Encrypt><![CDATA[", "]]></Encrypt>");
    let plain = crypto
        .verify_and_decrypt(
            &query["msg_signature"],
            &query["timestamp"],
            &query["nonce"],
            encrypt,
        )
        .expect("the posted callback verifies");
    assert_eq!(plain, messages[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_and_mp_callbacks_round_trip() {
    let fake = start_fake(52);
    let wecom = &fake.apps().wecom;
    let user = fake
        .population()
        .typical_user()
        .expect("a typical user")
        .clone();
    let rep = user.follows[0].userid.clone();
    let cb = fake.callbacks(wecom);
    for xml in [
        cb.add_external_contact(&rep, &user.external_userid, Some("qr_1")),
        cb.del_follow_user(&rep, &user.external_userid),
        cb.external_chat_create("wrChat0001"),
        cb.external_chat_add_member("wrChat0001", 3, &[&user.external_userid]),
        cb.external_tag("etTag", "tag", "create"),
    ] {
        assert!(xml.contains("<FromUserName><![CDATA[sys]]></FromUserName>"));
        let prepared = fake_wechat::prepare_wecom("http://gw/", wecom, &xml).expect("prepare");
        assert_eq!(
            prepared.url,
            format!("http://gw/wechat/wecom/{}", wecom.appid)
        );
        assert!(prepared
            .body
            .contains(&format!("<ToUserName><![CDATA[{}]]>", wecom.appid)));
        let encrypt = between(&prepared.body, "<Encrypt><![CDATA[", "]]></Encrypt>");
        let plain = wecom
            .crypto()
            .verify_and_decrypt(
                prepared.param("msg_signature").expect("msg_signature"),
                prepared.param("timestamp").expect("timestamp"),
                prepared.param("nonce").expect("nonce"),
                encrypt,
            )
            .expect("verifies");
        assert_eq!(plain, xml);
    }
    let resp = fake
        .send_wecom(
            &fake.sink_url(),
            wecom,
            &cb.add_external_contact(&rep, &user.external_userid, None),
        )
        .await
        .expect("sent");
    assert_eq!(resp.status, 200);

    // Mini-program JSON in safe mode: {"ToUserName","Encrypt"}.
    let mp = &fake.apps().mp;
    let json = fake.callbacks(mp).text_json(&user.mp_openid, "hi");
    let prepared =
        fake_wechat::prepare_mp("http://gw", mp, &json, CallbackMode::Safe).expect("prepare");
    assert_eq!(prepared.content_type, "application/json");
    let body: serde_json::Value = serde_json::from_str(&prepared.body).expect("JSON");
    assert_eq!(body["ToUserName"], mp.original_id.as_str());
    let plain = mp
        .crypto()
        .verify_and_decrypt(
            prepared.param("msg_signature").expect("msg_signature"),
            prepared.param("timestamp").expect("timestamp"),
            prepared.param("nonce").expect("nonce"),
            body["Encrypt"].as_str().expect("Encrypt"),
        )
        .expect("verifies");
    assert_eq!(plain, json);
    let xml = fake
        .callbacks(mp)
        .user_enter_tempsession(&user.mp_openid, "from_card");
    let resp = fake
        .send_mp(&fake.sink_url(), mp, &xml, CallbackMode::Compatible)
        .await
        .expect("sent");
    assert_eq!(resp.status, 200);
    let sink = fake.sink_requests();
    assert_eq!(sink.len(), 2);
    assert_eq!(sink[1].path, format!("/wechat/mp/{}", mp.appid));

    // The wrong kind of app is refused.
    assert!(fake_wechat::prepare_wecom("http://gw", mp, "<xml/>").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn developer_endpoints_and_determinism() {
    let a = start_fake(61);
    let b = start_fake(61);
    assert_eq!(a.apps(), b.apps());
    assert_eq!(a.population(), b.population());
    assert_ne!(a.base_url(), b.base_url());
    let http = reqwest::Client::new();
    let pop: serde_json::Value = http
        .get(format!("{}/fake/population", a.base_url()))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        pop["users"][0]["oa_openid"],
        a.population().users[0].oa_openid.as_str()
    );
    let apps: serde_json::Value = http
        .get(format!("{}/fake/apps", a.base_url()))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(apps.as_array().map(Vec::len), Some(4));
    assert_eq!(apps[0]["appid"], a.apps().oa.appid.as_str());
    a.stop().await;
}

// ---------------------------------------------------------------------------------------------
// Sidebar: OAuth sign-in, JS-SDK tickets, app messages
// ---------------------------------------------------------------------------------------------

/// A client whose OAuth authorize URLs point at the fake too.
fn sidebar_client(fake: &FakeHandle, cache: Arc<dyn Cache>) -> ApiClient {
    ApiClient::with_options(
        cache,
        reqwest::Client::new(),
        ClientOptions {
            open_base_url: fake.base_url().to_owned(),
            ..options(fake)
        },
    )
}

async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

fn member(userid: &str) -> OAuthUser {
    OAuthUser::Member {
        userid: userid.to_owned(),
        user_ticket: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidebar_sign_in_with_single_use_codes() {
    let fake = start_fake(71);
    let api = sidebar_client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let agent_app = &fake.apps().wecom_agent;
    let agent = agent_app.credentials();
    let corpid = agent_app.appid.as_str();

    // A code signs in once.
    let code = fake.issue_oauth_code("rep01");
    let who = api
        .wecom_oauth_user(&agent, &code)
        .await
        .expect("signed in");
    assert_eq!(who, member("rep01"));
    let again = api.wecom_oauth_user(&agent, &code).await.expect_err("used");
    assert!(matches!(again, ApiError::InvalidCode { .. }), "{again:?}");
    let forged = api
        .wecom_oauth_user(&agent, "never-issued")
        .await
        .expect_err("unknown");
    assert_eq!(forged.errcode(), Some(40029));

    // Over HTTP, for a browser or a script; a customer signs in as a non-member.
    let base = fake.base_url();
    let (status, body) = get_json(&format!(
        "{base}/fake/oauth-code?corp_id={corpid}&userid=rep02"
    ))
    .await;
    assert_eq!(status, 200, "{body}");
    let code = body["code"].as_str().expect("code");
    assert_eq!(
        api.wecom_oauth_user(&agent, code).await.expect("rep02"),
        member("rep02")
    );
    let (status, _) = get_json(&format!(
        "{base}/fake/oauth-code?corp_id={corpid}&userid=nobody"
    ))
    .await;
    assert_eq!(status, 400, "only the corp's members");
    let customer = fake.population().typical_user().expect("a customer");
    let code = fake.issue_customer_oauth_code(customer);
    match api.wecom_oauth_user(&agent, &code).await.expect("customer") {
        OAuthUser::NonMember {
            openid,
            external_userid,
        } => {
            assert!(openid.is_some());
            assert_eq!(
                external_userid.as_deref(),
                Some(customer.external_userid.as_str())
            );
        }
        other => panic!("{other:?}"),
    }

    // A code past its 5 minutes is refused.
    fake.set_oauth_code_ttl(Duration::ZERO);
    let stale = fake.issue_oauth_code("rep01");
    let err = api
        .wecom_oauth_user(&agent, &stale)
        .await
        .expect_err("expired");
    assert!(matches!(err, ApiError::InvalidCode { .. }), "{err:?}");
    fake.set_oauth_code_ttl(Duration::from_secs(300));

    // A superseded token is refreshed once and the call retried.
    fake.reset_counters();
    fake.invalidate_tokens(agent_app);
    let code = fake.issue_oauth_code("rep03");
    assert_eq!(
        api.wecom_oauth_user(&agent, &code).await.expect("retried"),
        member("rep03")
    );
    assert_eq!(fake.token_fetches(agent_app), 1);
    assert_eq!(fake.calls(endpoints::OAUTH_USER_INFO), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidebar_authorize_page_redirects_with_a_code() {
    let fake = start_fake(72);
    let api = sidebar_client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let agent_app = &fake.apps().wecom_agent;
    let agent = agent_app.credentials();
    let agentid = agent_app.agent_id.expect("self-built app");
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let callback = "https://crm.example.com/sidebar/callback?tenant=t1";
    let url = api.wecom_oauth_url(&agent_app.appid, agentid, callback, "s7");
    assert!(url.starts_with(&format!(
        "{}/connect/oauth2/authorize?appid=",
        fake.base_url()
    )));
    assert!(url.ends_with("#wechat_redirect"), "{url}");

    // The browser follows the authorize URL (the fragment stays in the browser).
    let sign_in = |extra: &str| {
        let target = format!("{}{extra}", url.trim_end_matches("#wechat_redirect"));
        let browser = browser.clone();
        async move {
            let response = browser.get(target).send().await.expect("GET");
            let status = response.status().as_u16();
            let location = response
                .headers()
                .get("location")
                .map(|l| l.to_str().expect("ASCII").to_owned());
            (status, location)
        }
    };
    let signed_in_as = |location: String| {
        let api = api.clone();
        let agent = agent.clone();
        async move {
            assert!(location.starts_with(callback), "{location}");
            let query = location.split_once('?').expect("query").1;
            let pairs = url_pairs(query);
            let value = |k: &str| {
                pairs
                    .iter()
                    .find(|(name, _)| name == k)
                    .map(|(_, v)| v.clone())
                    .expect("parameter")
            };
            assert_eq!(value("tenant"), "t1", "the callback's own query is kept");
            assert_eq!(value("state"), "s7");
            api.wecom_oauth_user(&agent, &value("code"))
                .await
                .expect("code works")
        }
    };
    let (status, location) = sign_in("&userid=rep02").await;
    assert_eq!(status, 302);
    assert_eq!(
        signed_in_as(location.expect("redirect")).await,
        member("rep02")
    );
    // Nobody named: the configured default, else the first rep.
    let (_, location) = sign_in("").await;
    assert_eq!(
        signed_in_as(location.expect("redirect")).await,
        member("rep01")
    );
    fake.set_oauth_default_userid(Some("rep04"));
    let (_, location) = sign_in("").await;
    assert_eq!(
        signed_in_as(location.expect("redirect")).await,
        member("rep04")
    );
    // A URL WeChat would refuse is refused.
    let wrong = api.wecom_oauth_url("ww-other-corp", agentid, callback, "s");
    let response = browser.get(wrong).send().await.expect("GET");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(fake.calls(endpoints::OAUTH_AUTHORIZE), 4);
}

async fn jssdk_tickets_are_kept_and_refetched(backend: Backend) {
    let fake = start_fake(73);
    let tc = TestCache::new(backend).await;
    let api = sidebar_client(&fake, Arc::clone(&tc.cache));
    let agent_app = &fake.apps().wecom_agent;
    let agent = agent_app.credentials();

    // Many callers, one fetch per kind; the kinds are distinct tickets.
    let corp: Vec<KeptTicket> =
        futures_util::future::join_all((0..8).map(|_| api.kept_ticket(&agent, TicketKind::Corp)))
            .await
            .into_iter()
            .map(|t| t.expect("ticket"))
            .collect();
    assert!(corp.windows(2).all(|w| w[0] == w[1]));
    let corp = corp[0].clone();
    assert_eq!(fake.ticket_fetches(agent_app, TicketKind::Corp), 1);
    assert_eq!(
        Some(corp.ticket.expose()),
        fake.current_ticket(agent_app, TicketKind::Corp).as_deref()
    );
    // WeCom's 7200 s minus the keeper's 300 s margin.
    assert!((now() + 6890..=now() + 6900).contains(&corp.expires_at));
    let app_ticket = api
        .kept_ticket(&agent, TicketKind::Agent)
        .await
        .expect("agent ticket");
    assert_ne!(app_ticket.ticket, corp.ticket);
    assert_eq!(fake.ticket_fetches(agent_app, TicketKind::Agent), 1);
    assert!(
        !format!("{corp:?}").contains(corp.ticket.expose()),
        "Debug hides it"
    );

    // A page signed with the kept ticket verifies (fragment ignored), in Rust and over HTTP.
    let url = "https://crm.example.com/sidebar?tenant=t1#/customer";
    let sig = signature::jsapi_signature(corp.ticket.expose(), "n0nce", "1714000000", url);
    assert_eq!(
        fake.verify_jssdk_signature(url, "n0nce", "1714000000", &sig),
        Some(TicketKind::Corp)
    );
    let (_, verdict) = get_json(&format!(
        "{}/fake/jssdk/verify?url={}&noncestr=n0nce&timestamp=1714000000&signature={sig}",
        fake.base_url(),
        "https%3A%2F%2Fcrm.example.com%2Fsidebar%3Ftenant%3Dt1"
    ))
    .await;
    assert_eq!(
        verdict,
        serde_json::json!({ "valid": true, "kind": "jsapi" })
    );

    // A fetch elsewhere supersedes it; the rejected ticket is dropped once and refetched.
    let fresh = api
        .wecom_jsapi_ticket(&agent, TicketKind::Corp)
        .await
        .expect("fetch");
    assert_eq!(
        fake.verify_jssdk_signature(url, "n0nce", "1714000000", &sig),
        None
    );
    assert!(api
        .invalidate_ticket(&agent, TicketKind::Corp, corp.ticket.expose())
        .await
        .expect("dropped"));
    assert!(!api
        .invalidate_ticket(&agent, TicketKind::Corp, corp.ticket.expose())
        .await
        .expect("already gone"));
    let refetched = api
        .kept_ticket(&agent, TicketKind::Corp)
        .await
        .expect("refetched");
    assert_ne!(refetched.ticket, corp.ticket);
    assert_ne!(refetched.ticket, fresh.ticket);
    assert_eq!(fake.ticket_fetches(agent_app, TicketKind::Corp), 3);

    // The token used for a fetch was superseded: dropped, refreshed once, the fetch retried.
    fake.reset_counters();
    fake.invalidate_tokens(agent_app);
    api.invalidate_ticket(&agent, TicketKind::Agent, app_ticket.ticket.expose())
        .await
        .expect("dropped");
    api.kept_ticket(&agent, TicketKind::Agent)
        .await
        .expect("after retry");
    assert_eq!(fake.token_fetches(agent_app), 1);
    assert_eq!(fake.calls(endpoints::AGENT_TICKET), 2);
    assert_eq!(fake.ticket_fetches(agent_app, TicketKind::Agent), 1);

    // Expiry: a short-lived ticket leaves the cache before WeCom's expiry.
    fake.set_ticket_lifetime(Duration::from_millis(400));
    api.invalidate_ticket(
        &agent,
        TicketKind::Agent,
        fake.current_ticket(agent_app, TicketKind::Agent)
            .as_deref()
            .unwrap_or(""),
    )
    .await
    .expect("dropped");
    let short = api
        .kept_ticket(&agent, TicketKind::Agent)
        .await
        .expect("short");
    tokio::time::sleep(Duration::from_millis(600)).await;
    let next = api
        .kept_ticket(&agent, TicketKind::Agent)
        .await
        .expect("next");
    assert_ne!(short.ticket, next.ticket);
    tc.cleanup().await;
}

both_backends!(jssdk_tickets_are_kept_and_refetched: tickets_kept_memory, tickets_kept_redis);

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ticket_errors_are_typed() {
    let fake = start_fake(74);
    let api = sidebar_client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let agent = fake.apps().wecom_agent.credentials();
    fake.fail_next(endpoints::AGENT_TICKET, 45009, 1);
    let limited = api
        .wecom_jsapi_ticket(&agent, TicketKind::Agent)
        .await
        .expect_err("injected");
    assert!(limited.is_rate_limited(), "{limited:?}");
    fake.fail_next(endpoints::JSAPI_TICKET, -1, 1);
    let busy = api
        .wecom_jsapi_ticket(&agent, TicketKind::Corp)
        .await
        .expect_err("injected");
    assert!(busy.is_transient(), "{busy:?}");
    api.wecom_jsapi_ticket(&agent, TicketKind::Corp)
        .await
        .expect("then fine");
    // The customer-contact secret is no app: no tickets.
    let contact = fake.apps().wecom.credentials();
    let err = api
        .kept_ticket(&contact, TicketKind::Agent)
        .await
        .expect_err("not an app");
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");
    let oa = fake.apps().oa.credentials();
    let err = api
        .kept_ticket(&oa, TicketKind::Corp)
        .await
        .expect_err("OA");
    assert!(matches!(err, ApiError::WrongAppKind { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_messages_are_recorded_with_their_answers() {
    let fake = start_fake(75);
    let api = sidebar_client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let agent_app = &fake.apps().wecom_agent;
    let agent = agent_app.credentials();
    let agentid = agent_app.agent_id.expect("self-built app");
    let card = AppMessageBody::textcard(
        "新客户",
        "<div class=\"gray\">王伟</div>",
        "https://crm.example.com/sidebar/c/1",
        Some("查看"),
    );

    // A card to a rep and to someone who is not a member: sent, but not to everyone.
    let outcome = api
        .wecom_send_message(
            &agent,
            &AppMessage::new(agentid, &["rep01", "nobody"], card.clone()),
        )
        .await
        .expect("sent");
    match &outcome {
        SendOutcome::PartlyUnreached { unreached, .. } => {
            assert_eq!(unreached.users, vec!["nobody".to_owned()]);
        }
        other => panic!("{other:?}"),
    }
    let delivered = api
        .wecom_send_message(
            &agent,
            &AppMessage::new(agentid, &["rep02"], AppMessageBody::text("hi")),
        )
        .await
        .expect("sent");
    assert!(
        matches!(delivered, SendOutcome::Delivered { .. }),
        "{delivered:?}"
    );
    assert_ne!(delivered.msgid(), outcome.msgid());

    let messages = fake.messages();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0].msgtype, "textcard");
    assert_eq!(messages[0].agentid, Some(agentid));
    assert_eq!(messages[0].touser, "rep01|nobody");
    assert_eq!(messages[0].content["title"], "新客户");
    assert_eq!(messages[0].content["btntxt"], "查看");
    assert_eq!(messages[0].delivered_to, vec!["rep01".to_owned()]);
    assert_eq!(messages[0].answer["invaliduser"], "nobody");
    assert_eq!(messages[1].content["content"], "hi");

    // Refusals are typed errors.
    let err = api
        .wecom_send_message(&agent, &AppMessage::new(agentid, &["nobody"], card.clone()))
        .await
        .expect_err("no valid recipient");
    assert!(matches!(err, ApiError::NoValidRecipient { .. }), "{err:?}");
    let err = api
        .wecom_send_message(
            &agent,
            &AppMessage::new(agentid + 1, &["rep01"], card.clone()),
        )
        .await
        .expect_err("another app's id");
    assert!(matches!(err, ApiError::InvalidAgentId { .. }), "{err:?}");
    let contact = fake.apps().wecom.credentials();
    let err = api
        .wecom_send_message(
            &contact,
            &AppMessage::new(agentid, &["rep01"], card.clone()),
        )
        .await
        .expect_err("contact secret");
    assert!(matches!(err, ApiError::Unauthorized { .. }), "{err:?}");

    // Injected failures, then success; a superseded token is refreshed once.
    fake.fail_next(endpoints::MESSAGE_SEND, -1, 2);
    fake.fail_next(endpoints::MESSAGE_SEND, 45009, 1);
    let message = AppMessage::new(agentid, &["rep03"], card);
    for expected in [-1, -1, 45009] {
        let err = api
            .wecom_send_message(&agent, &message)
            .await
            .expect_err("injected");
        assert_eq!(err.errcode(), Some(expected));
        assert!(err.is_transient() || err.is_rate_limited(), "{err:?}");
    }
    fake.invalidate_tokens(agent_app);
    api.wecom_send_message(&agent, &message)
        .await
        .expect("then sent");
    let tail: Vec<i64> = fake
        .messages()
        .iter()
        .rev()
        .take(5)
        .map(|m| m.errcode)
        .collect();
    assert_eq!(tail, vec![0, 40001, 45009, -1, -1]);
    assert_eq!(
        fake.messages().last().map(|m| m.delivered_to.clone()),
        Some(vec!["rep03".to_owned()])
    );

    let (status, listed) = get_json(&format!("{}/fake/messages", fake.base_url())).await;
    assert_eq!(status, 200);
    assert_eq!(listed.as_array().map(Vec::len), Some(fake.messages().len()));
    assert_eq!(listed[0]["delivered_to"], serde_json::json!(["rep01"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mini_program_codes_over_http_and_the_help() {
    let fake = start_fake(76);
    let api = client(&fake, Arc::new(MemoryCache::new("t:", 1000)));
    let mp = fake.apps().mp.credentials();
    let base = fake.base_url();
    let user = &fake.population().users[2];

    let (status, login) = get_json(&format!(
        "{base}/fake/mp/login-code?openid={}",
        user.mp_openid
    ))
    .await;
    assert_eq!(status, 200, "{login}");
    let session = api
        .mp_code_to_session(&mp, login["js_code"].as_str().expect("js_code"))
        .await
        .expect("session");
    assert_eq!(session.openid, user.mp_openid);
    assert_eq!(session.unionid, user.unionid);
    let (_, by_index) = get_json(&format!("{base}/fake/mp/login-code?user=2")).await;
    assert_eq!(by_index["openid"], user.mp_openid.as_str());

    let (_, phone) = get_json(&format!(
        "{base}/fake/mp/phone-code?openid={}",
        user.mp_openid
    ))
    .await;
    let info = api
        .mp_phone_number(&mp, phone["code"].as_str().expect("code"))
        .await
        .expect("own number");
    assert_eq!(info.pure_phone_number, user.phone);
    let (_, phone) = get_json(&format!(
        "{base}/fake/mp/phone-code?user=2&phone=4155550100&country_code=1"
    ))
    .await;
    let info = api
        .mp_phone_number(&mp, phone["code"].as_str().expect("code"))
        .await
        .expect("given number");
    assert_eq!(
        (
            info.phone_number.as_str(),
            info.pure_phone_number.as_str(),
            info.country_code.as_str()
        ),
        ("+14155550100", "4155550100", "1")
    );
    let (status, _) = get_json(&format!("{base}/fake/mp/phone-code?openid=o-unknown")).await;
    assert_eq!(status, 400);

    let help = fake.help_lines().join("\n");
    for path in [
        "/fake/population",
        "/fake/apps",
        "/fake/counters",
        "/fake/messages",
        "/fake/oauth-code",
        "/connect/oauth2/authorize",
        "/fake/jssdk/verify",
        "/fake/mp/login-code",
        "/fake/mp/phone-code",
        "/fake/sink",
    ] {
        assert!(help.contains(&format!("{base}{path}")), "{path} in\n{help}");
    }
    let (_, counters) = get_json(&format!("{base}/fake/counters")).await;
    assert!(counters["ticket_fetches"].is_object(), "{counters}");
}

// ---------------------------------------------------------------------------------------------
// Text utilities
// ---------------------------------------------------------------------------------------------

fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text.find(start).expect("start marker") + start.len();
    let to = from + text[from..].find(end).expect("end marker");
    &text[from..to]
}

/// Decodes an `application/x-www-form-urlencoded` query string.
fn url_pairs(query: &str) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{query}")).expect("query parses");
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}
