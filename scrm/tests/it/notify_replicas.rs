//! Lead notifications in production mode (the roles as processes on MariaDB, RabbitMQ and
//! Redis) with two scoring instances and two gateways, each pair competing for its queue: a
//! lead crossing its threshold messages its rep exactly once; the same `lead.notify` published
//! twice more at once (as two scoring instances would if both settled it) is taken by both
//! gateways and still sends nothing more; a WeCom rate limit (45009) is retried through the
//! bus's delay queue and delivers once.

use crate::common::deployment;

use std::time::Duration;

use crate::common::deployment::Deployment;
use fake_wechat::{endpoints, FakeWechat};
use gateway::notify::store::{self, Status, INBOX_LIST};
use platform::bus::{Bus, GroupSpec};
use platform::http::page::PageReq;
use serde_json::json;

use crate::common::leads::{eventually, messages_about, two_of_one_rep, Lead};

const TENANT: &str = "t-notify";
const PUBLIC: &str = "https://crm.example.test";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_scoring_instances_and_two_gateways_message_the_rep_once() {
    let fake = FakeWechat::start(0, 61).unwrap();
    let apps = fake.apps().clone();
    let mut d = Deployment::start(TENANT, &[(&apps.wecom, "wecom")], false)
        .await
        .expect("the deployment");
    let agent = &apps.wecom_agent;
    // Notifications retry on the bus's delays (1 s first), as by default.
    d.append_config(&format!(
        "[[gateway.apps]]\ntenant_id = \"{TENANT}\"\nkind = \"wecom_agent\"\napp_id = \"{}\"\n\
         agent_id = {}\nsecret = \"{}\"\n\n\
         [gateway.wechat_api]\noa_base_url = \"{base}\"\nwecom_base_url = \"{base}\"\n\n\
         [gateway]\npublic_base_url = \"{PUBLIC}\"\n",
        agent.appid,
        agent.agent_id.unwrap(),
        agent.secret,
        base = fake.base_url(),
    ))
    .unwrap();
    let bus = d.bus().await.expect("RabbitMQ");
    let observer = GroupSpec::with_policy("e2e-notify", &["lead.notify"], &bus.policy());
    let mut sub = bus.subscribe(&observer).await.unwrap();
    d.run_roles().await.expect("the roles start");
    d.add_replica("scoring").await.expect("a second scoring");
    d.add_replica("gateway").await.expect("a second gateway");

    let u = Lead {
        http: reqwest::Client::new(),
        gateway: d.urls["gateway"].clone(),
        identity: d.urls["identity"].clone(),
        scoring: d.urls["scoring"].clone(),
        internal_key: deployment::INTERNAL_KEY,
        tenant: TENANT,
    };
    u.define_scoring().await;
    let (a, b) = two_of_one_rep(&fake.population().users);
    let rep = a.follows[0].userid.clone();

    // One lead, one message.
    let pid_a = u.cross_threshold(&fake, &a).await;
    let notify = loop {
        let d = tokio::time::timeout(Duration::from_secs(30), sub.recv())
            .await
            .expect("lead.notify published")
            .unwrap();
        let env = d.envelope.clone();
        d.ack().await.unwrap();
        if env.payload["profile_id"] == json!(pid_a) {
            break env;
        }
    };
    eventually("the card", 30, || async {
        (!messages_about(&fake, PUBLIC, &a).is_empty()).then_some(())
    })
    .await;

    // Two more copies at once: the gateways take one each; still one message.
    bus.publish_batch(&[notify.clone(), notify.clone()])
        .await
        .unwrap();
    eventually("the copies consumed", 30, || async {
        let depth = bus.queue_depth("notify").await.unwrap_or(1);
        (depth == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let sent = messages_about(&fake, PUBLIC, &a);
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(
        (sent[0].errcode, sent[0].touser.as_str()),
        (0, rep.as_str())
    );

    // WeCom's quota answer once: retried after the bus's delay, delivered once.
    fake.fail_next(endpoints::MESSAGE_SEND, 45009, 1);
    u.cross_threshold(&fake, &b).await;
    eventually("the second card after a retry", 30, || async {
        let m = messages_about(&fake, PUBLIC, &b);
        m.iter().any(|m| m.errcode == 0).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let codes: Vec<i64> = messages_about(&fake, PUBLIC, &b)
        .iter()
        .map(|m| m.errcode)
        .collect();
    assert_eq!(codes, vec![45009, 0]);

    // Both recorded in the gateways' database as the rep's inbox reads them.
    let db = d.db("gateway").await.unwrap();
    let req: PageReq<i64> = PageReq::parse(INBOX_LIST, None, None).unwrap();
    let page = store::inbox(&db, TENANT, &agent.appid, &rep, &req)
        .await
        .unwrap();
    let got: Vec<(Status, usize)> = page
        .items
        .iter()
        .map(|n| (n.status, n.attempts.len()))
        .collect();
    assert_eq!(got, vec![(Status::Sent, 2), (Status::Sent, 1)], "{page:#?}");
    assert_eq!(page.items[1].id, notify.id.to_string());

    // The observer goes first: a live subscription would declare its queue again once the
    // deployment deletes it.
    drop(sub);
    d.stop(&bus).await;
    fake.stop().await;
}
