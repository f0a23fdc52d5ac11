//! Two replicas of each service on one load, in production mode (the roles as processes on
//! MariaDB, RabbitMQ and Redis; the replicas competing consumers of their service's queue): 300
//! people each follow the Official Account, click the menu three times and send a message, one
//! after the other, while other people do the same at once. Every event is resolved once, every
//! follower tagged once, every event scored once, and each person's lead ends where their events
//! put it (10 for the follow, once, 2 per click, 1 for the message: 17) although two replicas
//! may take one person's events in either order.

use crate::common::deployment;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::deployment::{count, Deployment};
use fake_wechat::{prepare_oa, CallbackMode, FakeWechat};

const TENANT: &str = "t-replicas";
const PEOPLE: usize = 300;
const EVENTS_EACH: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_of_each_service_apply_every_event_once() {
    let fake = FakeWechat::start(0, 11).unwrap();
    let oa = fake.apps().oa.clone();
    let mut d = Deployment::start(TENANT, &[(&oa, "oa")], false)
        .await
        .expect("the deployment");
    let bus = d.bus().await.expect("RabbitMQ");
    d.define_engagement(TENANT).await.expect("definitions");
    d.run_roles().await.expect("the roles start");
    for role in deployment::SERVICES {
        d.add_replica(role).await.expect("a second replica");
    }
    let (identity, tagging, scoring) = (
        d.db("identity").await.unwrap(),
        d.db("tagging").await.unwrap(),
        d.db("scoring").await.unwrap(),
    );

    // Each person's events in order, sixteen people at a time.
    let gateway = d.urls["gateway"].clone();
    let people: Vec<Vec<_>> = (0..PEOPLE)
        .map(|i| {
            let openid = format!("oREP{i:05}");
            let b = fake.callbacks(&oa);
            let xmls = [
                b.subscribe(&openid),
                b.click(&openid, &format!("menu-{i}-1")),
                b.click(&openid, &format!("menu-{i}-2")),
                b.click(&openid, &format!("menu-{i}-3")),
                b.text(&openid, &format!("hello {i}")),
            ];
            xmls.iter()
                .map(|x| prepare_oa(&gateway, &oa, x, CallbackMode::Safe).unwrap())
                .collect()
        })
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(people));
    let http = reqwest::Client::new();
    let mut senders = Vec::new();
    for _ in 0..16 {
        let (queue, http) = (queue.clone(), http.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Some(person) = queue.lock().unwrap().pop() else {
                    return;
                };
                for cb in person {
                    let r = deployment::post_callback(&http, &cb).await.unwrap();
                    assert!(r.status().is_success(), "{}", r.status());
                }
            }
        }));
    }
    for s in senders {
        s.await.unwrap();
    }

    let events = (PEOPLE * EVENTS_EACH) as i64;
    let deadline = Instant::now() + Duration::from_secs(240);
    let scored = "SELECT COUNT(*) FROM score_ledger WHERE voided_at IS NULL";
    let tagged = "SELECT COUNT(*) FROM tag_memberships";
    // Each service works through its own queue at its own pace: wait for both to be done.
    for (db, sql, want, what) in [
        (&scoring, scored, events, "scored"),
        (&tagging, tagged, PEOPLE as i64, "tagged"),
    ] {
        while count(db, sql).await < want {
            assert!(
                Instant::now() < deadline,
                "not everything was {what}: {} of {want}",
                count(db, sql).await
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // Redeliveries and late duplicates have nothing left to do.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count(&identity, "SELECT COUNT(*) FROM timeline").await,
        events
    );
    assert_eq!(
        count(&identity, "SELECT COUNT(DISTINCT event_id) FROM timeline").await,
        events
    );
    assert_eq!(
        count(&identity, "SELECT COUNT(*) FROM profiles").await,
        PEOPLE as i64
    );
    assert_eq!(
        count(&tagging, tagged).await,
        PEOPLE as i64,
        "every follower tagged once"
    );
    assert_eq!(
        count(&scoring, scored).await,
        events,
        "every event scored once"
    );
    assert_eq!(
        count(
            &scoring,
            "SELECT COUNT(*) FROM (SELECT profile_id FROM score_ledger WHERE voided_at IS NULL \
             GROUP BY profile_id HAVING SUM(points) = 17) t"
        )
        .await,
        PEOPLE as i64,
        "each lead at 10 + 3 x 2 + 1"
    );

    d.stop(&bus).await;
    fake.stop().await;
}
