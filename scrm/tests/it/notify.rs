//! Lead notifications end to end, in `scrm up` with the fake WeChat server: a rep adds a
//! customer on WeCom (10 points), edits them (60 more), the lead crosses its trigger's 50 and
//! scoring-svc publishes `lead.notify`; the gateway sends the rep one `textcard` from the corp's
//! agent app leading to the customer in the sidebar. The same message published again sends
//! nothing more; a WeCom failure (-1) is retried and still gives one delivered message, every
//! try recorded where a rep's inbox reads it; the cards went out on one token of the agent app,
//! the one the internal token endpoint serves for the corp's AgentID. A corp without an agent
//! app gets its notification recorded as skipped, and nothing is sent.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant};

use fake_wechat::{endpoints, FakeApp, FakeHandle, FakeWechat};
use gateway::notify::store::{self, Notification, Status, INBOX_LIST};
use platform::bus::{GroupSpec, Subscription};
use platform::http::page::PageReq;
use scrm::up::Running;
use serde_json::{json, Value};

use crate::common::leads::{eventually, messages_about, two_of_one_rep, Lead};
use crate::common::{INTERNAL_KEY, TENANT};

/// Where the reps' links start.
const PUBLIC: &str = "https://crm.example.test";

fn url(running: &Running, role: &str) -> String {
    format!("http://{}", running.addrs[role])
}

/// The fake's apps for [`TENANT`], with its agent app when `agent`.
fn apps(fake: &FakeHandle, agent: bool) -> Value {
    let a = fake.apps();
    let mut apps = vec![
        common::app_seed(&a.oa, "oa"),
        common::app_seed(&a.mp, "mp"),
        common::app_seed(&a.wecom, "wecom"),
    ];
    if agent {
        apps.push(agent_seed(&a.wecom_agent));
    }
    json!(apps)
}

/// The `gateway.apps` entry of the corp's agent app.
pub fn agent_seed(app: &FakeApp) -> Value {
    json!({"tenant_id": TENANT, "kind": "wecom_agent", "app_id": app.appid,
           "agent_id": app.agent_id, "secret": app.secret, "name": "Sales assistant"})
}

/// `scrm up` with quick notification retries and a public address.
async fn start(fake: &FakeHandle, agent: bool) -> (Running, std::path::PathBuf) {
    common::start_up(
        fake,
        Some(json!({"gateway": {
            "apps": apps(fake, agent),
            "public_base_url": PUBLIC,
            "notify": {"retry_delays_ms": [300], "max_attempts": 4},
        }})),
    )
    .await
}

/// The notification helpers for `running`.
fn lead(running: &Running) -> Lead<'static> {
    Lead {
        http: reqwest::Client::new(),
        gateway: url(running, "gateway"),
        identity: url(running, "identity"),
        scoring: url(running, "scoring"),
        internal_key: INTERNAL_KEY,
        tenant: TENANT,
    }
}

/// The gateway's database of `scrm up` in `dir`.
async fn gateway_db(dir: &Path) -> sea_orm::DatabaseConnection {
    let cfg =
        platform::config::DbConfig::new(format!("sqlite://{}", dir.join("gateway.db").display()));
    platform::db::connect(&cfg, false).await.unwrap()
}

/// The rep's whole inbox, newest first, a page of `limit` at a time.
async fn inbox(db: &sea_orm::DatabaseConnection, corp: &str, rep: &str) -> Vec<Notification> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let req: PageReq<i64> = PageReq::parse(INBOX_LIST, cursor.as_deref(), Some(1)).unwrap();
        let page = store::inbox(db, TENANT, corp, rep, &req).await.unwrap();
        all.extend(page.items);
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => return all,
        }
    }
}

/// A counter's value on the gateway's `/metrics` (0 when absent).
async fn counter(http: &reqwest::Client, gateway: &str, name: &str) -> f64 {
    let text = http
        .get(format!("{gateway}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The next `lead.notify` about `pid` on `sub`.
async fn notify_of(sub: &mut Subscription, pid: &str) -> proto::Envelope {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let d = tokio::time::timeout(left, sub.recv())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("no lead.notify about {pid}"));
        let env = d.envelope.clone();
        d.ack().await.unwrap();
        if env.payload["profile_id"] == json!(pid) {
            return env;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lead_crossing_its_threshold_messages_its_rep_once() {
    let fake = FakeWechat::start(0, 51).unwrap();
    let (running, dir) = start(&fake, true).await;
    let spec = GroupSpec::new(
        "e2e-notify",
        &["lead.notify"],
        &platform::config::BusConfig::memory(),
    );
    let mut sub = running.deps.bus.subscribe(&spec).await.unwrap();
    let u = lead(&running);
    let http = u.http.clone();
    u.define_scoring().await;

    // Two customers of one rep.
    let (a, b) = two_of_one_rep(&fake.population().users);
    let rep = a.follows[0].userid.clone();
    let agent = &fake.apps().wecom_agent;
    let corp = agent.appid.clone();

    // The first lead: one card to the rep, from the agent app, to the customer's sidebar card.
    let pid_a = u.cross_threshold(&fake, &a).await;
    let env_a = notify_of(&mut sub, &pid_a).await;
    assert_eq!(env_a.payload["owner"]["user_id"], json!(rep));
    let sent = eventually("the first card", 20, || async {
        let m = messages_about(&fake, PUBLIC, &a);
        (!m.is_empty()).then_some(m)
    })
    .await;
    assert_eq!(sent.len(), 1, "{sent:#?}");
    let m = &sent[0];
    assert_eq!(
        (
            m.errcode,
            m.touser.as_str(),
            m.agentid,
            m.msgtype.as_str(),
            m.delivered_to.clone()
        ),
        (
            0,
            rep.as_str(),
            agent.agent_id,
            "textcard",
            vec![rep.clone()]
        ),
        "{m:#?}"
    );
    let title = m.content["title"].as_str().unwrap();
    assert!(
        title.ends_with("：engagement 得分升至 70（阈值 50）"),
        "{title}"
    );
    assert_eq!(m.content["btntxt"], "详情");
    assert!(
        m.content["description"]
            .as_str()
            .unwrap()
            .contains("Passed 50: call today"),
        "{m:#?}"
    );

    // The same message again (a redelivery, a second scoring instance's copy): nothing more.
    let dups_before = counter(&http, &u.gateway, "scrm_gateway_notify_duplicates_total").await;
    for _ in 0..2 {
        running.deps.bus.publish(&env_a).await.unwrap();
    }
    eventually("both copies seen as duplicates", 20, || async {
        let n = counter(&http, &u.gateway, "scrm_gateway_notify_duplicates_total").await;
        (n >= dups_before + 2.0).then_some(())
    })
    .await;
    assert_eq!(messages_about(&fake, PUBLIC, &a).len(), 1);

    // The second lead, with WeCom busy once: tried again, delivered once.
    fake.fail_next(endpoints::MESSAGE_SEND, -1, 1);
    let pid_b = u.cross_threshold(&fake, &b).await;
    let sent = eventually("the second card after a retry", 20, || async {
        let m = messages_about(&fake, PUBLIC, &b);
        m.iter().any(|m| m.errcode == 0).then_some(m)
    })
    .await;
    // Settled by now: nothing else follows.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let sent_again = messages_about(&fake, PUBLIC, &b);
    assert_eq!(sent.len(), sent_again.len());
    let codes: Vec<i64> = sent_again.iter().map(|m| m.errcode).collect();
    assert_eq!(codes, vec![-1, 0], "{sent_again:#?}");

    // Every try is recorded; the rep's inbox pages newest first.
    let db = gateway_db(&dir).await;
    let inbox = eventually("both notifications settled", 10, || {
        let db = db.clone();
        let (corp, rep) = (corp.clone(), rep.clone());
        async move {
            let items = inbox(&db, &corp, &rep).await;
            (items.len() == 2 && items.iter().all(|n| n.status == Status::Sent)).then_some(items)
        }
    })
    .await;
    assert_eq!(
        (inbox[0].profile_id.as_str(), inbox[1].profile_id.as_str()),
        (pid_b.as_str(), pid_a.as_str())
    );
    assert_eq!(inbox[1].id, env_a.id.to_string(), "the notification id");
    let tries: Vec<Option<i64>> = inbox[0].attempts.iter().map(|t| t.errcode).collect();
    assert_eq!(tries, vec![Some(-1), Some(0)]);
    assert_eq!(inbox[0].msgid, inbox[0].attempts[1].msgid);
    assert!(inbox[0].msgid.is_some());
    assert_eq!(inbox[1].attempts.len(), 1);
    assert_eq!(
        inbox[0].url,
        format!("{PUBLIC}/sidebar/?external_userid={}", b.external_userid)
    );
    assert_eq!(inbox[0].title, sent_again[1].content["title"]);

    // One keeper: every card went out on one token of the agent's own secret, the one the
    // internal endpoint hands out for the corp's AgentID (and nothing for an AgentID not
    // registered).
    let token = |agent_label: String| {
        let (http, gateway, corp) = (http.clone(), u.gateway.clone(), corp.clone());
        async move {
            let r = http
                .get(format!("{gateway}{}", wechat::api::TOKEN_PATH))
                .bearer_auth(INTERNAL_KEY)
                .query(&[
                    ("tenant_id", TENANT),
                    ("kind", "wecom"),
                    ("app_id", corp.as_str()),
                    ("agent", agent_label.as_str()),
                ])
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    };
    let (s, t) = token(agent.agent_id.unwrap().to_string()).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(
        t["access_token"].as_str(),
        fake.current_token(agent).as_deref()
    );
    assert_eq!(fake.token_fetches(agent), 1);
    let (s, t) = token("1000009".into()).await;
    assert_eq!((s, t["code"].as_str()), (404, Some("unknown_app")), "{t}");

    // The counters are described.
    let metrics = http
        .get(format!("{}/metrics", u.gateway))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for name in [
        "scrm_gateway_notify_sent_total",
        "scrm_gateway_notify_retries_total",
    ] {
        assert!(
            metrics.contains(&format!("# HELP {name} ")),
            "{name} has HELP"
        );
    }

    running.stop().await.unwrap();
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corp_without_an_agent_app_gets_its_notification_recorded_not_sent() {
    let fake = FakeWechat::start(0, 52).unwrap();
    let (running, dir) = start(&fake, false).await;
    let u = lead(&running);
    let http = u.http.clone();
    u.define_scoring().await;
    let user = fake
        .population()
        .users
        .iter()
        .find(|u| !u.follows.is_empty())
        .unwrap()
        .clone();
    let rep = user.follows[0].userid.clone();
    let corp = fake.apps().wecom.appid.clone();
    let pid = u.cross_threshold(&fake, &user).await;

    let db = gateway_db(&dir).await;
    let recorded = eventually("the notification recorded", 20, || {
        let db = db.clone();
        let (corp, rep) = (corp.clone(), rep.clone());
        async move { inbox(&db, &corp, &rep).await.into_iter().next() }
    })
    .await;
    assert_eq!(
        (
            recorded.status,
            recorded.reason.as_deref(),
            recorded.profile_id.as_str()
        ),
        (Status::Skipped, Some("no_agent_app"), pid.as_str()),
        "{recorded:#?}"
    );
    assert!(recorded.attempts.is_empty());
    assert_eq!(
        recorded.url,
        format!("{PUBLIC}/sidebar/?external_userid={}", user.external_userid)
    );
    // Not retried, never sent.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(fake.calls(endpoints::MESSAGE_SEND), 0);
    assert!(fake.messages().is_empty());
    assert_eq!(inbox(&db, &corp, &rep).await.len(), 1);
    assert!(
        counter(&http, &u.gateway, "scrm_gateway_notify_skipped_total").await >= 1.0,
        "counted"
    );

    running.stop().await.unwrap();
    fake.stop().await;
    let _ = std::fs::remove_dir_all(dir);
}
