//! tagging-svc's WeCom corp-tag sync on MariaDB (with Redis) and SQLite (with the in-process
//! cache), against the fake WeChat server, with access tokens from a stand-in for the gateway's
//! token endpoint through `KeeperTokenSource` (the service never sees a secret):
//!
//! - the mirror reads the fake's corp tag library; a linked group gets a local tag per corp
//!   tag; a `change_external_tag` event (consumed once) makes the mirror follow a rename, a
//!   deletion and a new tag — renaming, retiring and creating local tags, failing the queued
//!   write-backs of the deleted tag — while a name changed locally is kept;
//! - write-back: manual and rule tags of a profile in a synced group end up on each rep's view
//!   of the customer in the fake, in one `mark_tag` per rep, with an add then a remove sending
//!   nothing; an injected transient failure is retried, repeated ones are given up after
//!   `max_attempts` with the error recorded, "not this rep's customer" fails at once, a call
//!   failing on one of several tags is split;
//! - the per-corp rate limit spaces calls, two workers on two pools never send one item twice,
//!   and a worker that dies holding a contact is taken over once its lease runs out (its late
//!   result changes nothing).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use chrono::Utc;
use fake_wechat::{endpoints, FakeHandle, FakeOptions, FakeUser, FakeWechat, MarkTagCall};
use platform::bus::MemoryBus;
use platform::cache::{Cache, MemoryCache, RedisCache};
use platform::config::{DbConfig, HttpConfig, Secret};
use platform::db::outbox::OutboxRelay;
use proto::callback::CallbackReceived;
use proto::channel::{Channel, ChannelEvent, EventBody, ExternalTagChange, ExternalTagChangeType};
use proto::identity::{ProfileUpdated, Relations, WecomFollow};
use proto::Envelope;
use sea_orm::DatabaseConnection;
use serde_json::{json, Value};
use tagging_svc::clock::SystemClock;
use tagging_svc::store::catalog::CatalogError;
use tagging_svc::store::catalog::{self, GroupView, TagPatch};
use tagging_svc::store::corp_tags::{self, LinkOptions};
use tagging_svc::store::members;
use tagging_svc::store::rules::{self as tag_rules, RuleInput};
use tagging_svc::store::sync_queue;
use tagging_svc::store::tagger::Tagger;
use tagging_svc::wecom::mirror::{MirrorError, PushError};
use tagging_svc::wecom::{WecomSync, WecomSyncConfig};
use test_support::db::{Backend, TestDb};
use test_support::servers::{redis_url, unique};
use wechat::api::{
    ApiBaseUrls, ApiClient, AppCredentials, ClientOptions, TokenGrant, TokenQuery, WechatAccess,
    WechatAccessConfig, TOKEN_PATH,
};

const T: &str = "t-wecom";
const KEY: &str = "wecom-sync-test-internal-key-0123456789";

// ---------------------------------------------------------------------------------------------
// A stand-in for the gateway's token endpoint: the fake's WeCom contact secret, one tenant.
// ---------------------------------------------------------------------------------------------

struct Keeper {
    client: ApiClient,
    credentials: AppCredentials,
    requests: AtomicU64,
}

async fn serve_token(
    k: web::Data<Keeper>,
    req: HttpRequest,
    q: web::Query<TokenQuery>,
) -> HttpResponse {
    k.requests.fetch_add(1, Ordering::SeqCst);
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(&*format!("Bearer {KEY}"));
    if !authorized {
        return HttpResponse::Unauthorized()
            .json(json!({"code": "invalid_internal_key", "message": "Authorization: wrong key", "details": null}));
    }
    if q.tenant_id != T || q.app() != Ok(k.credentials.app().clone()) {
        return HttpResponse::NotFound()
            .json(json!({"code": "unknown_app", "message": "app_id: unknown", "details": null}));
    }
    if let Some(r) = &q.rejected {
        let _ = k.client.invalidate_token(&k.credentials, r.expose()).await;
    }
    match k.client.kept_token(&k.credentials).await {
        Ok(kept) => HttpResponse::Ok().json(TokenGrant {
            access_token: Secret::new(kept.token.expose()),
            expires_at: kept.expires_at,
        }),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(json!({"code": "token_unavailable", "message": e.to_string(), "details": null})),
    }
}

fn start_keeper(k: Arc<Keeper>) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            let data = web::Data::from(k);
            let server = HttpServer::new(move || {
                App::new()
                    .app_data(data.clone())
                    .route(TOKEN_PATH, web::get().to(serve_token))
            })
            .workers(1)
            .disable_signals()
            .bind("127.0.0.1:0")
            .expect("binds");
            tx.send(server.addrs()[0]).expect("send");
            let _ = server.run().await;
        });
    });
    format!("http://{}", rx.recv().expect("keeper address"))
}

// ---------------------------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------------------------

struct Env {
    conn: DatabaseConnection,
    db_cfg: DbConfig,
    fake: FakeHandle,
    tagger: Tagger,
    relay: OutboxRelay,
    access: WechatAccess,
    cache: Arc<dyn Cache>,
    sync: WecomSync,
    corp: String,
    keeper: Arc<Keeper>,
}

/// Test defaults: quick retries, a generous rate.
fn sync_config() -> WecomSyncConfig {
    WecomSyncConfig {
        rate_per_minute: 60_000,
        rate_burst: 50,
        retry_delays_ms: vec![300],
        rate_limited_delay_ms: 300,
        max_attempts: 3,
        lease_secs: 30,
        ..WecomSyncConfig::default()
    }
}

/// Runs `body` on a fresh database of `backend` with a fake of `seed` (more users than usual);
/// the database is dropped and the cache keys removed even when `body` fails.
async fn with_env<F, Fut>(backend: Backend, seed: u64, cfg: WecomSyncConfig, body: F)
where
    F: FnOnce(Arc<Env>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let db = TestDb::migrated::<tagging_svc::store::Migrator>(backend).await;
    let fake = FakeWechat::start_with(FakeOptions {
        seed,
        users: 40,
        reps: 4,
        ..FakeOptions::default()
    })
    .expect("fake starts");
    let keeper = Arc::new(Keeper {
        client: ApiClient::with_options(
            Arc::new(MemoryCache::new("keeper:", 100)),
            reqwest::Client::new(),
            ClientOptions {
                base_urls: ApiBaseUrls::single(fake.base_url()),
                ..ClientOptions::default()
            },
        ),
        credentials: fake.apps().wecom.credentials(),
        requests: AtomicU64::new(0),
    });
    let gateway = start_keeper(Arc::clone(&keeper));
    let access = WechatAccess::from_config(&WechatAccessConfig {
        enabled: true,
        gateway_url: gateway,
        internal_key: Secret::new(KEY),
        oa_base_url: fake.base_url().to_owned(),
        wecom_base_url: fake.base_url().to_owned(),
        timeout_ms: 3_000,
    })
    .expect("builds")
    .expect("enabled");
    let redis = match backend {
        Backend::MariaDb => Some(
            RedisCache::connect(&redis_url(), &format!("{}:", unique("wecom")))
                .await
                .expect("redis"),
        ),
        Backend::Sqlite => None,
    };
    let cache: Arc<dyn Cache> = match &redis {
        Some(r) => Arc::new(r.clone()),
        None => Arc::new(MemoryCache::new("wecom:", 10_000)),
    };
    let tagger = tagging_svc::tagger(
        db.conn.clone(),
        tagging_svc::Config::new(
            HttpConfig {
                bind: "127.0.0.1:0".parse().expect("address"),
                workers: 1,
            },
            db.cfg.clone(),
        ),
        Arc::new(SystemClock),
    );
    let env = Arc::new(Env {
        conn: db.conn.clone(),
        db_cfg: db.cfg.clone(),
        corp: fake.apps().wecom.appid.clone(),
        relay: OutboxRelay::new(db.conn.clone(), Arc::new(MemoryBus::new())),
        sync: WecomSync::new(db.conn.clone(), access.clone(), cache.clone(), cfg),
        fake,
        tagger,
        access,
        cache,
        keeper,
    });
    let outcome = tokio::spawn(body(Arc::clone(&env))).await;
    drop(env);
    if let Some(r) = redis {
        let _ = r.delete_prefix().await;
    }
    db.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

impl Env {
    /// Another process's sync on `conn`.
    fn another_sync(&self, conn: DatabaseConnection, cfg: WecomSyncConfig) -> WecomSync {
        WecomSync::new(conn, self.access.clone(), self.cache.clone(), cfg)
    }

    /// `profile.updated` for `profile`: `user` followed by `reps` (their external_userid), and
    /// `fields`.
    async fn profile(
        &self,
        profile: &str,
        version: i64,
        user: &FakeUser,
        reps: &[&str],
        fields: Value,
    ) {
        let follows = reps.iter().map(|r| self.follow(user, r, None)).collect();
        self.updated(profile, version, follows, fields).await;
    }

    /// `profile.updated` for `profile` as identity-svc sends it after reading WeCom: `user`
    /// followed by `reps` with the corp tags the fake shows in each one's view, and no longer by
    /// `ended`.
    async fn seen(
        &self,
        profile: &str,
        version: i64,
        user: &FakeUser,
        reps: &[&str],
        ended: &[&str],
    ) {
        let follows = reps
            .iter()
            .map(|r| self.follow(user, r, Some(sorted(self.fake.corp_tags_of(user, r)))))
            .chain(ended.iter().map(|r| WecomFollow {
                deleted_at: Some(Utc::now()),
                ..self.follow(user, r, None)
            }))
            .collect();
        self.updated(profile, version, follows, json!({})).await;
    }

    fn follow(&self, user: &FakeUser, rep: &str, corp_tags: Option<Vec<String>>) -> WecomFollow {
        WecomFollow {
            corp_id: self.corp.clone(),
            user_id: rep.to_string(),
            external_userid: Some(user.external_userid.clone()),
            remark: None,
            add_way: Some(1),
            state: None,
            added_at: Utc::now(),
            deleted_at: None,
            corp_tags,
        }
    }

    async fn updated(&self, profile: &str, version: i64, follows: Vec<WecomFollow>, fields: Value) {
        let fields: BTreeMap<String, Value> = serde_json::from_value(fields).expect("fields");
        let u = ProfileUpdated {
            profile_id: profile.into(),
            version,
            changed: fields
                .keys()
                .cloned()
                .chain(["relations.wecom".into()])
                .collect(),
            fields,
            relations: Relations {
                wecom_follows: follows,
                ..Relations::default()
            },
            cause_event: None,
        };
        let env = Envelope::of(T, &u).build();
        self.tagger.handle(&env).await.expect("profile.updated");
    }

    /// Mirrors the corp and links its corp group number `i`.
    async fn link(&self, i: usize) -> GroupView {
        self.sync.mirror.sync(T, &self.corp).await.expect("mirror");
        let g = &self.fake.corp_tag_groups()[i];
        corp_tags::link(
            &self.conn,
            T,
            &self.corp,
            &g.group_id,
            LinkOptions {
                name: None,
                selection: None,
                operator: "ops".into(),
            },
        )
        .await
        .expect("link")
    }

    async fn tag(&self, profile: &str, tag_id: &str, add: bool) {
        self.tagger
            .manual(T, profile, tag_id, add, "ops")
            .await
            .expect("manual tag");
    }

    async fn counts(&self) -> BTreeMap<String, i64> {
        sync_queue::status(&self.conn, T, None, 10)
            .await
            .expect("status")
            .counts
    }

    /// Worker passes of `sync` until nothing is open (pending or sending), at most `within`.
    async fn drain(&self, sync: &WecomSync, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            sync.worker.pass().await.expect("pass");
            let c = self.counts().await;
            if c["pending"] == 0 && c["sending"] == 0 {
                return;
            }
            assert!(Instant::now() < deadline, "queue not drained: {c:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// `mark_tag` calls the fake answered for `user`.
    fn calls_for(&self, user: &FakeUser) -> Vec<MarkTagCall> {
        self.fake
            .mark_tag_calls()
            .into_iter()
            .filter(|c| c.external_userid == user.external_userid)
            .collect()
    }

    /// A `change_external_tag` callback as the gateway publishes it, through the consumer.
    async fn tag_event(&self, change: ExternalTagChangeType, id: &str, tag_type: &str) -> Envelope {
        let event = ChannelEvent {
            channel: Channel::WeCom,
            to_user_name: self.corp.clone(),
            from_user_name: "sys".into(),
            create_time: Utc::now().timestamp(),
            body: EventBody::ExternalTag(ExternalTagChange {
                change_type: change,
                id: id.into(),
                tag_type: Some(tag_type.into()),
                strategy_id: None,
            }),
        };
        Envelope::builder(
            event.event_type(),
            T,
            json!(CallbackReceived {
                app_id: self.corp.clone(),
                event: event.clone(),
            }),
        )
        .dedupe_key(event.dedupe_key())
        .build()
    }

    async fn consume(&self, env: Envelope) {
        tagging_svc::consume::handle(&self.tagger, &self.relay, env)
            .await
            .expect("handled");
    }
}

/// Users the fake has as contacts of at least `reps` reps.
fn contacts(fake: &FakeHandle, reps: usize) -> Vec<FakeUser> {
    fake.population()
        .users
        .iter()
        .filter(|u| u.follows.len() >= reps)
        .cloned()
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// Mirror
// ---------------------------------------------------------------------------------------------

async fn mirror_follows_renames_deletions_and_new_tags(backend: Backend) {
    // A failed sync pauses the loop for the first retry delay.
    let cfg = WecomSyncConfig {
        retry_delays_ms: vec![5_000],
        ..sync_config()
    };
    with_env(backend, 51, cfg, |e| async move {
        let lib = e.fake.corp_tag_groups();
        // WeChat busy: the sync fails and says so; the loop pauses, an operator need not.
        e.fake.fail_next(endpoints::CORP_TAG_LIST, -1, 1);
        let err = e.sync.mirror.sync(T, &e.corp).await.unwrap_err();
        assert!(matches!(err, MirrorError::Wechat(_)), "{err}");
        let state = corp_tags::sync_state(&e.conn, T, &e.corp)
            .await
            .unwrap()
            .expect("state");
        assert!(
            state.pending
                && state
                    .last_error
                    .as_deref()
                    .is_some_and(|m| m.contains("-1")),
            "{state:?}"
        );
        assert_eq!(
            e.sync.mirror.pass().await.unwrap(),
            0,
            "the loop waits after a failure"
        );
        let report = e.sync.mirror.sync(T, &e.corp).await.expect("mirror");
        let total_tags: usize = lib.iter().map(|g| g.tags.len()).sum();
        assert_eq!(
            (report.groups, report.tags),
            (lib.len() as u64, total_tags as u64)
        );
        let groups = &corp_tags::mirror(&e.conn, T, &e.corp, None, 500)
            .await
            .unwrap();
        assert_eq!(groups.len(), lib.len());
        for g in &lib {
            let m = groups
                .iter()
                .find(|m| m.wecom_id == g.group_id)
                .expect("mirrored");
            assert_eq!(
                (m.name.as_str(), m.order, m.deleted),
                (g.group_name.as_str(), g.order, false)
            );
            let ids: BTreeSet<&str> = m.tags.iter().map(|t| t.wecom_id.as_str()).collect();
            assert_eq!(ids, g.tags.iter().map(|t| t.id.as_str()).collect());
        }

        // Linking group 0: a local group written back to WeCom, a tag per corp tag.
        let view = e.link(0).await;
        let g0 = &lib[0];
        assert!(view.group.sync_wecom);
        assert_eq!(view.group.corp_id.as_deref(), Some(e.corp.as_str()));
        assert_eq!(view.group.name, g0.group_name);
        let local: BTreeMap<String, String> = view
            .tags
            .iter()
            .map(|t| (t.wecom_tag_id.clone().expect("linked"), t.id.clone()))
            .collect();
        assert_eq!(local.len(), g0.tags.len());
        let err = corp_tags::link(
            &e.conn,
            T,
            &e.corp,
            &g0.group_id,
            LinkOptions {
                name: Some("again".into()),
                selection: None,
                operator: "ops".into(),
            },
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("linked"), "{err}");

        let (renamed, deleted, kept) = (&g0.tags[0], &g0.tags[1], &g0.tags[2]);
        // A queued write-back of the tag about to be deleted (no worker runs yet).
        let user = contacts(&e.fake, 1).remove(0);
        e.profile("p-1", 1, &user, &[&user.follows[0].userid], json!({}))
            .await;
        e.tag("p-1", &local[&deleted.id], true).await;
        assert_eq!(e.counts().await["pending"], 1);
        // An operator renamed one local tag: a later rename in WeCom does not overwrite it.
        catalog::update_tag_in(
            &e.conn,
            T,
            &local[&kept.id],
            TagPatch {
                name: Some("重点客户".into()),
                ..TagPatch::default()
            },
        )
        .await
        .unwrap();

        assert!(e.fake.rename_corp_tag(&renamed.id, "A+级"));
        assert!(e.fake.rename_corp_tag(&kept.id, "C+级"));
        assert!(e.fake.delete_corp_tag(&deleted.id));
        let added = e.fake.add_corp_tag(&g0.group_id, "D级").expect("added");

        // WeCom's callbacks: consumed once each (a redelivery asks for nothing more).
        let ev = e
            .tag_event(ExternalTagChangeType::Update, &renamed.id, "tag")
            .await;
        e.consume(ev.clone()).await;
        e.consume(
            e.tag_event(ExternalTagChangeType::Delete, &deleted.id, "tag")
                .await,
        )
        .await;
        assert_eq!(
            e.sync.mirror.pass().await.unwrap(),
            1,
            "one sync for both events"
        );
        e.consume(ev).await;
        assert_eq!(
            e.sync.mirror.pass().await.unwrap(),
            0,
            "the redelivery was a duplicate"
        );

        let mirror = corp_tags::mirror(&e.conn, T, &e.corp, None, 500)
            .await
            .unwrap();
        let m0 = mirror.iter().find(|m| m.wecom_id == g0.group_id).unwrap();
        let mt = |id: &str| {
            m0.tags
                .iter()
                .find(|t| t.wecom_id == id)
                .cloned()
                .expect("mirrored")
        };
        assert_eq!(mt(&renamed.id).name, "A+级");
        assert!(mt(&deleted.id).deleted && !mt(&renamed.id).deleted);
        assert_eq!(mt(&added).name, "D级");

        let groups = catalog::groups(&e.conn, T, None, 500).await.unwrap();
        let g = groups.iter().find(|g| g.group.id == view.group.id).unwrap();
        let lt = |wecom: &str| {
            g.tags
                .iter()
                .find(|t| t.wecom_tag_id.as_deref() == Some(wecom))
                .cloned()
                .expect("local")
        };
        assert_eq!(
            (
                lt(&renamed.id).name.as_str(),
                lt(&renamed.id).status.as_str()
            ),
            ("A+级", "active")
        );
        assert_eq!(lt(&deleted.id).status, "retired");
        assert_eq!(lt(&kept.id).name, "重点客户", "the local rename stays");
        assert_eq!(
            (lt(&added).name.as_str(), lt(&added).status.as_str()),
            ("D级", "active")
        );
        assert_eq!(mt(&added).tag_id.as_deref(), Some(lt(&added).id.as_str()));
        // The queued add of the deleted tag will never work.
        let status = sync_queue::status(&e.conn, T, None, 10).await.unwrap();
        assert_eq!((status.counts["pending"], status.counts["failed"]), (0, 1));
        assert!(status.recent_failures[0]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("deleted in WeCom"));
        // A retired tag is no longer set.
        let err = e
            .tagger
            .manual(T, "p-2", &lt(&deleted.id).id, true, "ops")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("retired"), "{err}");

        // The whole group deleted in WeCom: the local group and its tags retire.
        assert!(e.fake.delete_corp_tag(&g0.group_id));
        e.consume(
            e.tag_event(ExternalTagChangeType::Delete, &g0.group_id, "tag_group")
                .await,
        )
        .await;
        assert_eq!(e.sync.mirror.pass().await.unwrap(), 1);
        let groups = catalog::groups(&e.conn, T, None, 500).await.unwrap();
        let g = groups.iter().find(|g| g.group.id == view.group.id).unwrap();
        assert_eq!(g.group.status, "retired");
        assert!(g.tags.iter().all(|t| t.status == "retired"), "{:?}", g.tags);
        let state = corp_tags::sync_state(&e.conn, T, &e.corp)
            .await
            .unwrap()
            .expect("state");
        assert!(!state.pending && state.last_error.is_none() && state.last_synced_at.is_some());
        assert!(
            e.keeper.requests.load(Ordering::SeqCst) >= 1,
            "tokens came from the keeper"
        );
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Write-back
// ---------------------------------------------------------------------------------------------

async fn manual_and_rule_tags_reach_each_reps_view_net_of_reversals(backend: Backend) {
    with_env(backend, 52, sync_config(), |e| async move {
        let view = e.link(0).await;
        let g0 = e.fake.corp_tag_groups()[0].clone();
        let local = |i: usize| {
            view.tags
                .iter()
                .find(|t| t.wecom_tag_id.as_deref() == Some(g0.tags[i].id.as_str()))
                .expect("linked")
                .id
                .clone()
        };
        let user = contacts(&e.fake, 2).remove(0);
        let reps: Vec<&str> = user
            .follows
            .iter()
            .take(2)
            .map(|f| f.userid.as_str())
            .collect();
        let before: Vec<Vec<String>> = reps.iter().map(|r| e.fake.corp_tags_of(&user, r)).collect();
        e.profile("p-1", 1, &user, &reps, json!({})).await;

        // Add A, add B, take B back: only A goes out, once per rep.
        e.tag("p-1", &local(0), true).await;
        e.tag("p-1", &local(1), true).await;
        e.tag("p-1", &local(1), false).await;
        assert_eq!(e.counts().await["pending"], 6);
        let pass = e.sync.worker.pass().await.unwrap();
        assert_eq!((pass.contacts, pass.calls, pass.superseded), (2, 2, 4));
        let calls = e.calls_for(&user);
        assert_eq!(calls.len(), 2, "{calls:?}");
        for (rep, before) in reps.iter().zip(&before) {
            let call = calls
                .iter()
                .find(|c| c.userid == *rep)
                .expect("a call per rep");
            assert_eq!(
                (call.add.clone(), call.remove.clone(), call.errcode),
                (vec![g0.tags[0].id.clone()], vec![], 0)
            );
            let mut want: BTreeSet<String> = before.iter().cloned().collect();
            want.insert(g0.tags[0].id.clone());
            let now: BTreeSet<String> = e.fake.corp_tags_of(&user, rep).into_iter().collect();
            assert_eq!(
                now, want,
                "B was never sent, so the rep's own B (if any) stays"
            );
        }
        let c = e.counts().await;
        assert_eq!((c["done"], c["superseded"], c["pending"]), (2, 4, 0));
        assert_eq!(
            e.sync.worker.pass().await.unwrap().calls,
            0,
            "nothing left to send"
        );

        // A rule tag (C while the city is Shanghai) and a manual removal in one go: one call per
        // rep adds C and removes A.
        tag_rules::create(
            &e.conn,
            RuleInput {
                tenant_id: T.into(),
                tag_id: local(2),
                name: "shanghai".into(),
                condition: json!({"version": 1, "root": {"type": "property", "key": "contact.city",
                "value_type": "string", "op": "eq", "value": "上海"}}),
                mode: "add_remove".into(),
                enabled: true,
                operator: "ops".into(),
            },
            &rules::Limits::default(),
        )
        .await
        .unwrap();
        e.tagger.engine.rules.invalidate(T);
        e.profile("p-1", 2, &user, &reps, json!({"contact.city": "上海"}))
            .await;
        e.tag("p-1", &local(0), false).await;
        e.drain(&e.sync, Duration::from_secs(10)).await;
        let calls = e.calls_for(&user);
        assert_eq!(calls.len(), 4, "{calls:?}");
        for rep in &reps {
            let last = calls.iter().rev().find(|c| c.userid == *rep).unwrap();
            assert_eq!(
                (last.add.clone(), last.remove.clone()),
                (vec![g0.tags[2].id.clone()], vec![g0.tags[0].id.clone()])
            );
            let now = e.fake.corp_tags_of(&user, rep);
            assert!(
                now.contains(&g0.tags[2].id) && !now.contains(&g0.tags[0].id),
                "{now:?}"
            );
        }
        // The rule lets go when the city changes: C comes off again.
        e.profile("p-1", 3, &user, &reps, json!({"contact.city": "北京"}))
            .await;
        e.drain(&e.sync, Duration::from_secs(10)).await;
        for rep in &reps {
            assert!(!e.fake.corp_tags_of(&user, rep).contains(&g0.tags[2].id));
        }
        assert_eq!(e.calls_for(&user).len(), 6);

        // Write-back off for the group: its new changes are not queued, pending ones dropped.
        e.tag("p-1", &local(1), true).await;
        corp_tags::set_group_sync_in(&e.conn, T, &view.group.id, Some(false), None)
            .await
            .unwrap();
        e.tag("p-1", &local(0), true).await;
        assert_eq!(e.counts().await["pending"], 0);
        assert_eq!(e.sync.worker.pass().await.unwrap().calls, 0);
        assert_eq!(e.calls_for(&user).len(), 6);
        let err = corp_tags::set_group_sync_in(
            &e.conn,
            T,
            &view.group.id,
            Some(true),
            Some("wwOther".into()),
        )
        .await
        .unwrap_err();
        assert!(err.to_string().contains("corp_id"), "{err}");
    })
    .await;
}

async fn failures_are_retried_given_up_or_failed_at_once(backend: Backend) {
    with_env(backend, 53, sync_config(), |e| async move {
        let view = e.link(1).await;
        let g1 = e.fake.corp_tag_groups()[1].clone();
        let local = |i: usize| {
            view.tags
                .iter()
                .find(|t| t.wecom_tag_id.as_deref() == Some(g1.tags[i].id.as_str()))
                .unwrap()
                .id
                .clone()
        };
        let mut users = contacts(&e.fake, 1).into_iter();
        let (u1, u2, u3) = (
            users.next().unwrap(),
            users.next().unwrap(),
            users.next().unwrap(),
        );
        let rep = |u: &FakeUser| u.follows[0].userid.clone();

        // One transient failure (WeChat busy): retried after the delay, then accepted.
        e.profile("p-1", 1, &u1, &[&rep(&u1)], json!({})).await;
        e.fake.fail_next(endpoints::MARK_TAG, -1, 1);
        e.tag("p-1", &local(0), true).await;
        assert_eq!(e.sync.worker.pass().await.unwrap().calls, 1);
        let c = e.counts().await;
        assert_eq!((c["pending"], c["done"]), (1, 0), "back in the queue");
        e.drain(&e.sync, Duration::from_secs(10)).await;
        let codes: Vec<i64> = e.calls_for(&u1).iter().map(|c| c.errcode).collect();
        assert_eq!(codes, vec![-1, 0]);
        assert!(e.fake.corp_tags_of(&u1, &rep(&u1)).contains(&g1.tags[0].id));

        // WeCom's concurrency limit, then busy every time: given up after 3 attempts.
        e.profile("p-2", 1, &u2, &[&rep(&u2)], json!({})).await;
        e.fake.fail_next(endpoints::MARK_TAG, 45033, 1);
        e.fake.fail_next(endpoints::MARK_TAG, -1, 2);
        e.tag("p-2", &local(1), true).await;
        e.drain(&e.sync, Duration::from_secs(15)).await;
        let codes: Vec<i64> = e.calls_for(&u2).iter().map(|c| c.errcode).collect();
        assert_eq!(codes, vec![45033, -1, -1]);
        let status = sync_queue::status(&e.conn, T, None, 10).await.unwrap();
        assert_eq!(status.counts["failed"], 1);
        let f = &status.recent_failures[0];
        assert_eq!(
            (f.user_id.as_str(), f.wecom_tag_id.as_str(), f.attempts),
            (rep(&u2).as_str(), g1.tags[1].id.as_str(), 3)
        );
        let error = f.error.clone().unwrap_or_default();
        assert!(
            error.contains("gave up after 3 attempts") && error.contains("-1"),
            "{error}"
        );

        // A rep who is not the customer's follower: failed after one call (84061). The other
        // rep of the same profile gets the tag.
        let stranger = e
            .fake
            .population()
            .reps
            .iter()
            .find(|r| !u3.follows.iter().any(|f| f.userid == r.userid))
            .expect("a rep not following u3")
            .userid
            .clone();
        e.profile("p-3", 1, &u3, &[&rep(&u3), &stranger], json!({}))
            .await;
        e.tag("p-3", &local(2), true).await;
        e.drain(&e.sync, Duration::from_secs(10)).await;
        let calls = e.calls_for(&u3);
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(
            calls.iter().find(|c| c.userid == stranger).unwrap().errcode,
            84061
        );
        assert!(e.fake.corp_tags_of(&u3, &rep(&u3)).contains(&g1.tags[2].id));
        let status = sync_queue::status(&e.conn, T, None, 10).await.unwrap();
        assert_eq!(status.counts["failed"], 2);
        let f = &status.recent_failures[0];
        assert_eq!((f.user_id.as_str(), f.attempts), (stranger.as_str(), 1));
        assert!(f.error.as_deref().unwrap_or("").contains("84061"));

        // One call with two tags, one of them deleted in WeCom behind the mirror's back: WeCom
        // refuses the whole call (40068), so each tag goes alone — the live one is set.
        e.tag("p-1", &local(2), true).await;
        e.tag("p-1", &local(3), true).await;
        assert!(e.fake.delete_corp_tag(&g1.tags[3].id));
        e.drain(&e.sync, Duration::from_secs(10)).await;
        let calls = e.calls_for(&u1);
        assert_eq!(calls.len(), 5, "{calls:?}");
        assert_eq!((calls[2].add.len(), calls[2].errcode), (2, 40068));
        let split: BTreeSet<(String, i64)> = calls[3..]
            .iter()
            .map(|c| (c.add.concat(), c.errcode))
            .collect();
        let want: BTreeSet<(String, i64)> =
            [(g1.tags[2].id.clone(), 0), (g1.tags[3].id.clone(), 40068)].into();
        assert_eq!(split, want, "{calls:?}");
        assert!(e.fake.corp_tags_of(&u1, &rep(&u1)).contains(&g1.tags[2].id));
        let status = sync_queue::status(&e.conn, T, None, 10).await.unwrap();
        assert_eq!(status.recent_failures[0].wecom_tag_id, g1.tags[3].id);
    })
    .await;
}

// ---------------------------------------------------------------------------------------------
// Rate limit and concurrent workers
// ---------------------------------------------------------------------------------------------

async fn the_rate_limit_spaces_calls(backend: Backend) {
    // 600 a minute, one at a time: a call every 100 ms.
    let cfg = WecomSyncConfig {
        rate_per_minute: 600,
        rate_burst: 1,
        ..sync_config()
    };
    with_env(backend, 54, cfg, |e| async move {
        let view = e.link(2).await;
        let tag = view.tags[0].id.clone();
        let users = contacts(&e.fake, 1);
        for (i, u) in users.iter().take(12).enumerate() {
            let p = format!("p-{i}");
            e.profile(&p, 1, u, &[&u.follows[0].userid], json!({}))
                .await;
            e.tag(&p, &tag, true).await;
        }
        let started = Instant::now();
        e.drain(&e.sync, Duration::from_secs(20)).await;
        let calls = e.fake.mark_tag_calls();
        assert_eq!(calls.len(), 12);
        assert!(calls.iter().all(|c| c.errcode == 0));
        // Call k+n starts at least n slots after call k; each may start a little after its slot
        // (a busy machine wakes a sleeper late), so up to 60 ms of that is forgiven.
        let at: Vec<Instant> = calls.iter().map(|c| c.at).collect();
        for i in 0..at.len() {
            for j in i + 1..at.len() {
                let apart = (at[j] - at[i]).as_millis() as i64;
                let least = (j - i) as i64 * 100 - 60;
                assert!(
                    apart >= least,
                    "calls {i} and {j} {apart} ms apart (< {least})"
                );
            }
        }
        assert!(
            started.elapsed() >= Duration::from_millis(1_050),
            "{:?}",
            started.elapsed()
        );
    })
    .await;
}

async fn two_workers_never_send_an_item_twice(backend: Backend) {
    with_env(backend, 55, sync_config(), |e| async move {
        let view = e.link(0).await;
        let tags: Vec<(String, String)> = view
            .tags
            .iter()
            .map(|t| (t.id.clone(), t.wecom_tag_id.clone().unwrap()))
            .collect();
        let users = contacts(&e.fake, 1);
        let mut expected: BTreeMap<(String, String), BTreeSet<String>> = BTreeMap::new();
        for (i, u) in users.iter().enumerate() {
            let p = format!("p-{i}");
            let reps: Vec<&str> = u.follows.iter().map(|f| f.userid.as_str()).collect();
            e.profile(&p, 1, u, &reps, json!({})).await;
            // Each profile gets two tags; every third loses its first one again.
            let (a, b) = (&tags[i % tags.len()], &tags[(i + 1) % tags.len()]);
            e.tag(&p, &a.0, true).await;
            e.tag(&p, &b.0, true).await;
            if i % 3 == 0 {
                e.tag(&p, &a.0, false).await;
            }
            for r in &reps {
                let set = expected
                    .entry((r.to_string(), u.external_userid.clone()))
                    .or_default();
                if i % 3 != 0 {
                    set.insert(a.1.clone());
                }
                set.insert(b.1.clone());
            }
        }
        // Two processes, each with its own pool, each passing in a loop.
        let small = WecomSyncConfig {
            batch: 3,
            ..sync_config()
        };
        let other_conn = platform::db::connect(&e.db_cfg, false)
            .await
            .expect("second pool");
        let workers = [
            e.another_sync(e.conn.clone(), small.clone()),
            e.another_sync(other_conn, small),
        ];
        let runs = workers.iter().map(|w| {
            let w = w.clone();
            tokio::spawn(async move {
                let mut calls = 0;
                for _ in 0..200 {
                    let r = w.worker.pass().await.expect("pass");
                    calls += r.calls;
                    if r.contacts == 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                calls
            })
        });
        let per_worker: Vec<usize> = futures_util::future::join_all(runs)
            .await
            .into_iter()
            .map(|r| r.expect("worker"))
            .collect();
        assert!(
            per_worker.iter().all(|n| *n > 0),
            "both worked: {per_worker:?}"
        );
        let c = e.counts().await;
        assert_eq!(
            (c["pending"], c["sending"], c["failed"]),
            (0, 0, 0),
            "{c:?}"
        );
        let calls = e.fake.mark_tag_calls();
        assert!(calls.iter().all(|c| c.errcode == 0));
        // One call per contact, and no tag sent twice to a contact.
        let mut seen: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
        for c in &calls {
            assert!(
                c.remove.is_empty(),
                "nothing was ever sent, so nothing needs removing: {c:?}"
            );
            let sent = seen
                .entry((c.userid.clone(), c.external_userid.clone()))
                .or_default();
            sent.extend(c.add.iter().cloned());
        }
        assert_eq!(calls.len(), expected.len(), "one call per contact");
        for (contact, want) in &expected {
            let got = sorted(seen.get(contact).cloned().unwrap_or_default());
            assert_eq!(got, want.iter().cloned().collect::<Vec<_>>(), "{contact:?}");
        }
        assert_eq!(per_worker.iter().sum::<usize>(), calls.len());
    })
    .await;
}

async fn a_lost_lease_is_taken_over_and_its_late_result_changes_nothing(backend: Backend) {
    with_env(backend, 56, sync_config(), |e| async move {
        let view = e.link(0).await;
        let user = contacts(&e.fake, 1).remove(0);
        let rep = user.follows[0].userid.clone();
        e.profile("p-1", 1, &user, &[&rep], json!({})).await;
        e.tag("p-1", &view.tags[0].id, true).await;
        // A worker claims the contact for one second and dies before calling.
        let lost = sync_queue::claim(&e.conn, Utc::now(), 10, chrono::Duration::seconds(1))
            .await
            .unwrap();
        assert_eq!(lost.claimed.len(), 1);
        let lost = lost.claimed[0].clone();
        // While its lease runs, nobody else sends the contact.
        assert_eq!(e.sync.worker.pass().await.unwrap().calls, 0);
        tokio::time::sleep(Duration::from_millis(2_100)).await;
        let pass = e.sync.worker.pass().await.unwrap();
        assert_eq!((pass.contacts, pass.calls), (1, 1));
        assert!(e
            .fake
            .corp_tags_of(&user, &rep)
            .contains(view.tags[0].wecom_tag_id.as_ref().unwrap()));
        // The dead worker's late word is ignored.
        for outcome in [
            sync_queue::Outcome::Failed {
                error: "late".into(),
            },
            sync_queue::Outcome::Done,
        ] {
            let late = sync_queue::finish(
                &e.conn,
                &lost.contact,
                &lost.items,
                lost.lease_until,
                &outcome,
                Utc::now(),
            )
            .await
            .unwrap();
            assert_eq!(late, 0);
        }
        let status = sync_queue::status(&e.conn, T, None, 10).await.unwrap();
        assert_eq!((status.counts["done"], status.counts["failed"]), (1, 0));
        assert_eq!(e.fake.mark_tag_calls().len(), 1);
    })
    .await;
}

/// Why `profile` holds `tag`: (source, origin) pairs.
async fn reasons(e: &Env, profile: &str, tag: &str) -> Vec<(String, String)> {
    members::of_profile(&e.conn, T, profile, None, 500)
        .await
        .expect("memberships")
        .into_iter()
        .filter(|m| m.tag_id == tag)
        .map(|m| (m.source, m.origin))
        .collect()
}

/// A rep's own tagging in WeCom (read back by identity-svc and announced in `profile.updated`)
/// gives the profile the linked tag for that rep, is written back to the other reps only, and
/// goes when the rep takes the tag off or stops following the customer; what this service
/// wrote itself and reads back — after the write, or while it is still queued — is never
/// taken for a rep's, so a manual or rule tag still comes off when its reason goes.
async fn reps_own_wecom_tags_are_held_for_them_and_write_backs_are_not(backend: Backend) {
    with_env(backend, 57, sync_config(), |e| async move {
        let view = e.link(0).await;
        let user = contacts(&e.fake, 2).remove(0);
        let (r1, r2) = (
            user.follows[0].userid.clone(),
            user.follows[1].userid.clone(),
        );
        let reps = [r1.as_str(), r2.as_str()];
        let wecom = |i: usize| view.tags[i].wecom_tag_id.clone().expect("linked");
        let (a, b) = (wecom(0), wecom(1));
        let (la, lb) = (view.tags[0].id.clone(), view.tags[1].id.clone());
        // A clean slate: neither rep has a tag of the group on the customer.
        let all: Vec<String> = (0..view.tags.len()).map(wecom).collect();
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        for r in reps {
            e.fake.rep_tags(&user, r, &[], &all);
        }
        e.seen("p-1", 1, &user, &reps, &[]).await;
        assert!(members::of_profile(&e.conn, T, "p-1", None, 500)
            .await
            .unwrap()
            .is_empty());

        // Rep 1 tags A by hand: held for rep 1, written back to rep 2 alone.
        e.fake.rep_tags(&user, &r1, &[&a], &[]);
        e.seen("p-1", 2, &user, &reps, &[]).await;
        assert_eq!(
            reasons(&e, "p-1", &la).await,
            vec![("wecom".into(), r1.clone())]
        );
        e.drain(&e.sync, Duration::from_secs(10)).await;
        let calls = e.calls_for(&user);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(
            (calls[0].userid.as_str(), calls[0].add.clone()),
            (r2.as_str(), vec![a.clone()])
        );
        // Read back, rep 2's A is this service's own write, not rep 2's tagging.
        e.seen("p-1", 3, &user, &reps, &[]).await;
        assert_eq!(
            reasons(&e, "p-1", &la).await,
            vec![("wecom".into(), r1.clone())]
        );

        // Rep 1 takes A off: the profile loses it, and so does rep 2's view.
        e.fake.rep_tags(&user, &r1, &[], &[&a]);
        e.seen("p-1", 4, &user, &reps, &[]).await;
        assert!(reasons(&e, "p-1", &la).await.is_empty());
        e.drain(&e.sync, Duration::from_secs(10)).await;
        let calls = e.calls_for(&user);
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(
            (calls[1].userid.as_str(), calls[1].remove.clone()),
            (r2.as_str(), vec![a.clone()])
        );
        e.seen("p-1", 5, &user, &reps, &[]).await;
        assert!(reasons(&e, "p-1", &la).await.is_empty());

        // An operator's B goes to both views. Read back while queued and after: still only the
        // operator's; taken back (read back again while the removal is queued), it goes.
        e.tag("p-1", &lb, true).await;
        // As if a call had landed in WeCom and its outcome were not recorded yet.
        e.fake.rep_tags(&user, &r1, &[&b], &[]);
        e.seen("p-1", 6, &user, &reps, &[]).await;
        assert_eq!(
            reasons(&e, "p-1", &lb).await,
            vec![("manual".into(), String::new())]
        );
        e.drain(&e.sync, Duration::from_secs(10)).await;
        for r in reps {
            assert!(e.fake.corp_tags_of(&user, r).contains(&b));
        }
        e.seen("p-1", 7, &user, &reps, &[]).await;
        assert_eq!(
            reasons(&e, "p-1", &lb).await,
            vec![("manual".into(), String::new())]
        );
        e.tag("p-1", &lb, false).await;
        e.seen("p-1", 8, &user, &reps, &[]).await;
        assert!(reasons(&e, "p-1", &lb).await.is_empty());
        e.drain(&e.sync, Duration::from_secs(10)).await;
        for r in reps {
            assert!(!e.fake.corp_tags_of(&user, r).contains(&b));
        }
        e.seen("p-1", 9, &user, &reps, &[]).await;
        assert!(reasons(&e, "p-1", &lb).await.is_empty());

        // Rep 2 tags B by hand, then deletes the customer: the tag goes with the follow.
        e.fake.rep_tags(&user, &r2, &[&b], &[]);
        e.seen("p-1", 10, &user, &reps, &[]).await;
        assert_eq!(
            reasons(&e, "p-1", &lb).await,
            vec![("wecom".into(), r2.clone())]
        );
        e.seen("p-1", 11, &user, &[&r1], &[&r2]).await;
        assert!(reasons(&e, "p-1", &lb).await.is_empty());
        // Every change went out as `tag.changed`, the rep's as theirs.
        let changes = tag_changes(&e).await;
        assert_eq!(changes.len(), 6, "{changes:?}");
        assert!(changes.iter().any(|c| c["tag_id"] == json!(la)
            && c["source"] == "wecom"
            && c["actor"] == json!(r1)));
    })
    .await;
}

/// Every `tag.changed` in the outbox, oldest first.
async fn tag_changes(e: &Env) -> Vec<Value> {
    use sea_orm::{ConnectionTrait, Statement};
    e.conn
        .query_all(Statement::from_string(
            e.conn.get_database_backend(),
            "SELECT body FROM bus_outbox WHERE routing_key = 'tag.changed' ORDER BY id",
        ))
        .await
        .expect("outbox")
        .into_iter()
        .map(|r| {
            let p: String = r.try_get_by_index(0).expect("payload");
            let env: Envelope = serde_json::from_str(&p).expect("envelope");
            env.payload
        })
        .collect()
}

/// A group made in the console is pushed to WeCom: its tags are created (the group too), linked
/// and mirrored, so its tags are written back; a tag WeCom has already is linked, not created
/// again; a name WeCom would refuse is refused first, naming the tag.
async fn a_local_group_is_pushed_to_wecom_and_written_back(backend: Backend) {
    with_env(backend, 53, sync_config(), |e| async move {
        let group = catalog::create_group(
            &e.conn,
            catalog::NewGroup {
                tenant_id: T.into(),
                name: "Buying stage".into(),
                selection: "multi".into(),
                sync_wecom: true,
                corp_id: Some(e.corp.clone()),
                created_by: "ops".into(),
            },
        )
        .await
        .expect("group");
        let new_tag = |name: &str| {
            let (conn, group_id, name) = (e.conn.clone(), group.id.clone(), name.to_string());
            async move {
                catalog::create_tag(
                    &conn,
                    catalog::NewTag {
                        tenant_id: T.into(),
                        group_id,
                        name,
                        description: String::new(),
                        created_by: "ops".into(),
                    },
                )
                .await
                .expect("tag")
            }
        };
        let hot = new_tag("hot").await;
        let warm = new_tag("warm").await;
        let groups_before = e.fake.corp_tag_groups().len();
        // Tagged before the tag is in WeCom: nothing to write back yet.
        let user = contacts(&e.fake, 1).remove(0);
        let rep = user.follows[0].userid.clone();
        e.profile("p-push", 1, &user, &[rep.as_str()], json!({}))
            .await;
        e.tag("p-push", &warm.id, true).await;
        assert_eq!(e.counts().await.get("pending").copied().unwrap_or(0), 0);

        let r = e.sync.mirror.push(T, &group.id).await.expect("push");
        assert_eq!((r.created, r.linked), (2, 0));
        let corp_groups = e.fake.corp_tag_groups();
        assert_eq!(corp_groups.len(), groups_before + 1);
        let made = corp_groups
            .iter()
            .find(|g| g.group_name == "Buying stage")
            .expect("the group is in WeCom");
        assert_eq!(r.wecom_group_id.as_deref(), Some(made.group_id.as_str()));
        let wecom_id = |name: &str| {
            made.tags
                .iter()
                .find(|t| t.name == name)
                .map(|t| t.id.clone())
        };
        for t in [&hot, &warm] {
            let local = catalog::tag_in(&e.conn, T, &t.id).await.expect("tag");
            assert_eq!(local.wecom_tag_id, wecom_id(&t.name), "{} linked", t.name);
        }
        let mirror = corp_tags::mirror(&e.conn, T, &e.corp, None, 500)
            .await
            .expect("mirror");
        let m = mirror
            .iter()
            .find(|g| g.wecom_id == made.group_id)
            .expect("mirrored");
        assert_eq!(m.group_id.as_deref(), Some(group.id.as_str()));
        assert!(m.tags.iter().all(|t| t.tag_id.is_some()), "{m:?}");
        // The mirror did not make local copies of what was pushed.
        let local_tags = catalog::groups(&e.conn, T, None, 500)
            .await
            .expect("groups");
        let mine = local_tags
            .iter()
            .find(|g| g.group.id == group.id)
            .expect("group");
        assert_eq!(mine.tags.len(), 2);

        // Nothing left to push.
        let again = e.sync.mirror.push(T, &group.id).await.expect("push");
        assert_eq!((again.created, again.linked, again.mirror), (0, 0, None));

        // A tag WeCom already has (added there meanwhile) is linked, not created twice.
        let there = e.fake.add_corp_tag(&made.group_id, "cold").expect("added");
        let cold = new_tag("cold").await;
        let r = e.sync.mirror.push(T, &group.id).await.expect("push");
        assert_eq!((r.created, r.linked), (0, 1));
        let cold = catalog::tag_in(&e.conn, T, &cold.id).await.expect("tag");
        assert_eq!(cold.wecom_tag_id.as_deref(), Some(there.as_str()));

        // A name longer than WeCom takes is refused before any call, naming the tag.
        let long = new_tag(&"x".repeat(31)).await;
        let calls = e.fake.calls(endpoints::ADD_CORP_TAG);
        match e.sync.mirror.push(T, &group.id).await {
            Err(PushError::Refused(CatalogError::Invalid { field, message })) => {
                assert_eq!(field, "tags");
                assert!(message.contains(&long.id), "{message}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(e.fake.calls(endpoints::ADD_CORP_TAG), calls);

        // The tag held before the push went out with it; later changes go out like any.
        e.drain(&e.sync, Duration::from_secs(10)).await;
        let calls = e.calls_for(&user);
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].add, vec![wecom_id("warm").expect("warm")]);
        e.tag("p-push", &hot.id, true).await;
        e.drain(&e.sync, Duration::from_secs(10)).await;
        let calls = e.calls_for(&user);
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert_eq!(calls[1].add, vec![wecom_id("hot").expect("hot")]);
        assert!(e
            .fake
            .corp_tags_of(&user, &rep)
            .contains(&wecom_id("hot").expect("hot")));

        // Write-back off, a tag given meanwhile stays local; switched on again, WeCom gets what
        // the profile holds now.
        corp_tags::set_group_sync_in(&e.conn, T, &group.id, Some(false), None)
            .await
            .expect("off");
        e.tag("p-push", &cold.id, true).await;
        e.drain(&e.sync, Duration::from_secs(10)).await;
        assert_eq!(e.calls_for(&user).len(), 2);
        corp_tags::set_group_sync_in(&e.conn, T, &group.id, Some(true), None)
            .await
            .expect("on");
        e.drain(&e.sync, Duration::from_secs(10)).await;
        let now: BTreeSet<String> = e.fake.corp_tags_of(&user, &rep).into_iter().collect();
        for name in ["hot", "warm"] {
            assert!(now.contains(&wecom_id(name).expect("pushed")), "{name}");
        }
        assert!(now.contains(&there), "cold");
    })
    .await;
}

test_support::on_both_backends!(
    mirror_follows_renames_deletions_and_new_tags,
    manual_and_rule_tags_reach_each_reps_view_net_of_reversals,
    failures_are_retried_given_up_or_failed_at_once,
    the_rate_limit_spaces_calls,
    two_workers_never_send_an_item_twice,
    a_lost_lease_is_taken_over_and_its_late_result_changes_nothing,
    a_local_group_is_pushed_to_wecom_and_written_back,
    reps_own_wecom_tags_are_held_for_them_and_write_backs_are_not,
);
