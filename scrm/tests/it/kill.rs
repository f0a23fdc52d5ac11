//! identity-svc killed (SIGKILL) in the middle of its batches, in production mode (the four roles
//! as processes on MariaDB, RabbitMQ and Redis): every follow posted to the gateway is resolved
//! exactly once — one timeline entry, one identifier, one profile, one inbox entry each — after
//! the process comes back, whatever batch was in flight when it died.

use crate::common::deployment;

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::deployment::{count, Deployment};
use fake_wechat::{prepare_oa, CallbackMode, FakeWechat};

const TENANT: &str = "t-kill";
const FOLLOWS: usize = 600;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn identity_killed_mid_batch_resolves_every_event_exactly_once() {
    let fake = FakeWechat::start(0, 9).unwrap();
    let oa = fake.apps().oa.clone();
    let mut d = Deployment::start(TENANT, &[(&oa, "oa")], false)
        .await
        .expect("the deployment");
    let bus = d.bus().await.expect("RabbitMQ");
    d.run_roles().await.expect("the roles start");
    let identity = d.db("identity").await.unwrap();

    // The follows go in while identity-svc is killed twice and started again.
    let gateway = d.urls["gateway"].clone();
    let callbacks: Vec<_> = (0..FOLLOWS)
        .map(|i| {
            let xml = fake.callbacks(&oa).subscribe(&format!("oKILL{i:05}"));
            prepare_oa(&gateway, &oa, &xml, CallbackMode::Safe).unwrap()
        })
        .collect();
    let queue = Arc::new(std::sync::Mutex::new(callbacks));
    let http = reqwest::Client::new();
    let mut senders = Vec::new();
    for _ in 0..16 {
        let (queue, http) = (queue.clone(), http.clone());
        senders.push(tokio::spawn(async move {
            loop {
                let Some(cb) = queue.lock().unwrap().pop() else {
                    return;
                };
                let r = deployment::post_callback(&http, &cb).await.unwrap();
                assert!(r.status().is_success(), "{}", r.status());
            }
        }));
    }
    for kill_at in [FOLLOWS as i64 / 5, FOLLOWS as i64 / 2] {
        let deadline = Instant::now() + Duration::from_secs(120);
        while count(&identity, "SELECT COUNT(*) FROM timeline").await < kill_at {
            assert!(Instant::now() < deadline, "identity-svc never got going");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        d.kill("identity");
        tokio::time::sleep(Duration::from_millis(300)).await;
        d.restart("identity")
            .await
            .expect("identity-svc starts again");
    }
    for s in senders {
        s.await.unwrap();
    }

    let deadline = Instant::now() + Duration::from_secs(180);
    while count(&identity, "SELECT COUNT(*) FROM timeline").await < FOLLOWS as i64 {
        assert!(Instant::now() < deadline, "not every follow was resolved");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Redeliveries of what was in flight have nothing left to do.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let n = FOLLOWS as i64;
    assert_eq!(count(&identity, "SELECT COUNT(*) FROM timeline").await, n);
    assert_eq!(
        count(&identity, "SELECT COUNT(DISTINCT event_id) FROM timeline").await,
        n
    );
    assert_eq!(
        count(&identity, "SELECT COUNT(*) FROM identifiers").await,
        n
    );
    assert_eq!(count(&identity, "SELECT COUNT(*) FROM profiles").await, n);
    assert_eq!(
        count(
            &identity,
            "SELECT COUNT(*) FROM bus_inbox WHERE consumer = 'identity'"
        )
        .await,
        n
    );

    d.stop(&bus).await;
    fake.stop().await;
}
