//! Bus conformance: one suite, run against the in-process bus and against RabbitMQ.
//!
//! Each test gets its own exchange (and so its own queues) and deletes them at the end.

use std::collections::HashSet;
use std::net::ToSocketAddrs;
use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::bus::{AmqpBus, Bus, GroupSpec, MemoryBus, RetryOutcome, RetryPolicy, Subscription};
use platform::config::BusConfig;
use proto::Envelope;
use test_support::proxy::TcpProxy;
use test_support::servers::{amqp_url, unique};

/// A bus under test and how to clean it up.
struct TestBus {
    bus: Arc<dyn Bus>,
    amqp: Option<AmqpBus>,
}

impl TestBus {
    async fn memory() -> Self {
        TestBus {
            bus: Arc::new(MemoryBus::new()),
            amqp: None,
        }
    }

    async fn amqp_at(url: String) -> Self {
        Self::amqp_with(url, false).await
    }

    async fn amqp_with(url: String, quorum_queues: bool) -> Self {
        let mut cfg = BusConfig::amqp(url);
        cfg.exchange = unique("bustest");
        cfg.quorum_queues = quorum_queues;
        cfg.publish_timeout_ms = 10_000;
        let bus = AmqpBus::connect(&cfg).await.expect("connect to RabbitMQ");
        TestBus {
            bus: Arc::new(bus.clone()),
            amqp: Some(bus),
        }
    }

    async fn amqp() -> Self {
        Self::amqp_at(amqp_url()).await
    }

    /// RabbitMQ with every queue a quorum queue (`bus.quorum_queues`).
    async fn amqp_quorum() -> Self {
        Self::amqp_with(amqp_url(), true).await
    }

    async fn cleanup(self) {
        if let Some(a) = self.amqp {
            a.destroy().await.expect("delete test exchange and queues");
        }
    }
}

fn spec(group: &str, bindings: &[&str], delays_ms: &[u64], max_attempts: u32) -> GroupSpec {
    GroupSpec {
        group: group.to_string(),
        bindings: bindings.iter().map(|s| s.to_string()).collect(),
        prefetch: 16,
        retry: RetryPolicy {
            max_attempts,
            delays: delays_ms
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
        },
    }
}

fn event(kind: &str, n: u64) -> Envelope {
    Envelope::builder(kind, "tenant-1", serde_json::json!({ "n": n })).build()
}

async fn recv(sub: &mut Subscription, within: Duration) -> Option<platform::bus::Delivery> {
    tokio::time::timeout(within, sub.recv())
        .await
        .ok()
        .flatten()
}

/// Receives and acks until `n` messages arrived or `within` passed; returns their ids.
async fn drain(sub: &mut Subscription, n: usize, within: Duration) -> Vec<uuid::Uuid> {
    let deadline = Instant::now() + within;
    let mut ids = Vec::new();
    while ids.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(d) = recv(sub, left).await else {
            break;
        };
        ids.push(d.envelope.id);
        d.ack().await.expect("ack");
    }
    ids
}

async fn routes_by_pattern_after_confirm(t: &TestBus) {
    let mut oa = t
        .bus
        .subscribe(&spec("oa", &["channel.oa.*"], &[50], 3))
        .await
        .unwrap();
    let mut all = t
        .bus
        .subscribe(&spec("all", &["channel.#"], &[50], 3))
        .await
        .unwrap();
    let mut prof = t
        .bus
        .subscribe(&spec("prof", &["profile.*"], &[50], 3))
        .await
        .unwrap();
    let a = event("channel.oa.subscribe", 1);
    let b = event("channel.wecom.add_external_contact", 2);
    let c = event("profile.resolved", 3);
    for e in [&a, &b, &c] {
        t.bus.publish(e).await.expect("confirmed publish");
    }
    let got_oa = drain(&mut oa, 1, Duration::from_secs(5)).await;
    let got_all = drain(&mut all, 2, Duration::from_secs(5)).await;
    let got_prof = drain(&mut prof, 1, Duration::from_secs(5)).await;
    assert_eq!(got_oa, vec![a.id]);
    assert_eq!(
        got_all.iter().copied().collect::<HashSet<_>>(),
        HashSet::from([a.id, b.id])
    );
    assert_eq!(got_prof, vec![c.id]);
    // Nothing else arrives.
    assert!(recv(&mut oa, Duration::from_millis(300)).await.is_none());
    assert!(recv(&mut prof, Duration::from_millis(100)).await.is_none());
}

async fn envelope_arrives_intact(t: &TestBus) {
    let mut sub = t.bus.subscribe(&spec("g", &["#"], &[50], 3)).await.unwrap();
    let e = Envelope::builder(
        "channel.oa.text",
        "t9",
        serde_json::json!({"content": "你好", "n": 1}),
    )
    .trace_id("trace-abc")
    .dedupe_key("oOPENID|1714550400|text")
    .build();
    t.bus.publish(&e).await.unwrap();
    let d = recv(&mut sub, Duration::from_secs(5))
        .await
        .expect("delivered");
    assert_eq!(d.envelope, e);
    assert_eq!(d.attempt, 1);
    assert!(!d.redelivered);
    d.ack().await.unwrap();
}

async fn acked_is_gone(t: &TestBus) {
    let s = spec("acked", &["x.*"], &[50], 3);
    let mut sub = t.bus.subscribe(&s).await.unwrap();
    t.bus.publish(&event("x.y", 1)).await.unwrap();
    assert_eq!(drain(&mut sub, 1, Duration::from_secs(5)).await.len(), 1);
    drop(sub);
    let mut again = t.bus.subscribe(&s).await.unwrap();
    assert!(recv(&mut again, Duration::from_millis(500)).await.is_none());
}

async fn retry_with_growing_delay_then_park_then_replay(t: &TestBus) {
    let s = spec("retry", &["r.#"], &[150, 400], 3);
    let mut sub = t.bus.subscribe(&s).await.unwrap();
    let e = event("r.x", 7);
    t.bus.publish(&e).await.unwrap();

    let d1 = recv(&mut sub, Duration::from_secs(5))
        .await
        .expect("first delivery");
    assert_eq!(d1.attempt, 1);
    let t1 = Instant::now();
    assert_eq!(
        d1.retry("db busy").await.unwrap(),
        RetryOutcome::Scheduled(Duration::from_millis(150))
    );

    let d2 = recv(&mut sub, Duration::from_secs(5))
        .await
        .expect("second delivery");
    let gap1 = t1.elapsed();
    assert_eq!(d2.attempt, 2);
    assert_eq!(d2.envelope.id, e.id);
    assert!(
        gap1 >= Duration::from_millis(140),
        "first retry came after {gap1:?}"
    );
    let t2 = Instant::now();
    assert_eq!(
        d2.retry("db busy").await.unwrap(),
        RetryOutcome::Scheduled(Duration::from_millis(400))
    );

    let d3 = recv(&mut sub, Duration::from_secs(5))
        .await
        .expect("third delivery");
    let gap2 = t2.elapsed();
    assert_eq!(d3.attempt, 3);
    assert!(
        gap2 >= Duration::from_millis(390),
        "second retry came after {gap2:?}"
    );
    assert!(gap2 > gap1, "delays grow: {gap1:?} then {gap2:?}");
    assert_eq!(d3.retry("db busy").await.unwrap(), RetryOutcome::Parked);

    // Parked: not delivered again, counted, replayable.
    assert!(recv(&mut sub, Duration::from_millis(700)).await.is_none());
    assert_eq!(t.bus.parked_count("retry").await.unwrap(), 1);
    assert_eq!(t.bus.replay_parked("retry").await.unwrap(), 1);
    let d4 = recv(&mut sub, Duration::from_secs(5))
        .await
        .expect("replayed");
    assert_eq!(d4.envelope.id, e.id);
    assert_eq!(d4.attempt, 1);
    d4.ack().await.unwrap();
    assert_eq!(t.bus.parked_count("retry").await.unwrap(), 0);
}

async fn invalid_is_parked_at_once(t: &TestBus) {
    let mut sub = t
        .bus
        .subscribe(&spec("inv", &["i.*"], &[50], 5))
        .await
        .unwrap();
    t.bus.publish(&event("i.x", 1)).await.unwrap();
    let d = recv(&mut sub, Duration::from_secs(5)).await.unwrap();
    d.park("payload is not a subscribe event").await.unwrap();
    assert!(recv(&mut sub, Duration::from_millis(300)).await.is_none());
    // RabbitMQ reports queue depth asynchronously; allow a moment.
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let n = t.bus.parked_count("inv").await.unwrap();
        if n == 1 || Instant::now() > deadline {
            assert_eq!(n, 1);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn dropped_delivery_is_redelivered(t: &TestBus) {
    let s = spec("drop", &["d.*"], &[50], 3);
    let mut sub = t.bus.subscribe(&s).await.unwrap();
    let e = event("d.x", 1);
    t.bus.publish(&e).await.unwrap();
    let d = recv(&mut sub, Duration::from_secs(5)).await.unwrap();
    assert!(!d.redelivered);
    drop(d); // handler died mid-message
    let again = recv(&mut sub, Duration::from_secs(5))
        .await
        .expect("redelivered");
    assert_eq!(again.envelope.id, e.id);
    assert!(again.redelivered);
    assert_eq!(again.attempt, 1, "a crash is not a failed attempt");
    again.ack().await.unwrap();
}

async fn dropped_subscriber_is_redelivered_to_another(t: &TestBus) {
    let s = spec("crash", &["c.*"], &[50], 3);
    let first = t.bus.subscribe(&s).await.unwrap();
    let e = event("c.x", 1);
    t.bus.publish(&e).await.unwrap();
    // A consumer task takes the message and dies mid-handling (its task is aborted).
    let (got, got_rx) = tokio::sync::oneshot::channel();
    let worker = tokio::spawn(async move {
        let mut first = first;
        let d = first.recv().await.expect("delivered");
        let _ = got.send(d.envelope.id);
        std::future::pending::<()>().await;
        drop((d, first));
    });
    assert_eq!(got_rx.await.unwrap(), e.id);
    worker.abort();
    let _ = worker.await;
    let mut second = t.bus.subscribe(&s).await.unwrap();
    let again = recv(&mut second, Duration::from_secs(10))
        .await
        .expect("redelivered to the other consumer");
    assert_eq!(again.envelope.id, e.id);
    assert!(again.redelivered);
    again.ack().await.unwrap();
}

async fn competing_consumers_share_work(t: &TestBus) {
    let s = spec("compete", &["w.*"], &[50], 3);
    let mut a = t.bus.subscribe(&s).await.unwrap();
    let mut b = t.bus.subscribe(&s).await.unwrap();
    let events: Vec<Envelope> = (0..100).map(|n| event("w.job", n)).collect();
    t.bus.publish_batch(&events).await.unwrap();
    let (ra, rb) = tokio::join!(
        drain(&mut a, 100, Duration::from_secs(3)),
        drain(&mut b, 100, Duration::from_secs(3))
    );
    let mut all: Vec<uuid::Uuid> = ra.iter().chain(rb.iter()).copied().collect();
    assert_eq!(
        all.len(),
        100,
        "each message delivered once: {} + {}",
        ra.len(),
        rb.len()
    );
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 100);
    assert!(
        !ra.is_empty() && !rb.is_empty(),
        "both consumers got work: {} / {}",
        ra.len(),
        rb.len()
    );
}

async fn declared_group_keeps_messages_without_subscriber(t: &TestBus) {
    let s = spec("later", &["l.*"], &[50], 3);
    t.bus.declare(&s).await.unwrap();
    let e = event("l.x", 1);
    t.bus.publish(&e).await.unwrap();
    let mut sub = t.bus.subscribe(&s).await.unwrap();
    assert_eq!(drain(&mut sub, 1, Duration::from_secs(5)).await, vec![e.id]);
}

async fn consumer_loop_settles_by_handler_result(t: &TestBus) {
    use platform::bus::{run_consumer, HandlerError};
    use std::sync::atomic::{AtomicU32, Ordering};
    let s = spec("loop", &["k.*"], &[50], 2);
    let sub = t.bus.subscribe(&s).await.unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    let c = calls.clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(run_consumer(
        "test",
        sub,
        4,
        shutdown.clone(),
        move |e: Envelope, _attempt| {
            let c = c.clone();
            async move {
                c.fetch_add(1, Ordering::SeqCst);
                match e.kind.as_str() {
                    "k.ok" => Ok(()),
                    "k.bad" => Err(HandlerError::Invalid("bad".into())),
                    _ => Err(HandlerError::Transient("later".into())),
                }
            }
        },
    ));
    for kind in ["k.ok", "k.bad", "k.flaky"] {
        t.bus.publish(&event(kind, 0)).await.unwrap();
    }
    // ok: 1 call; bad: 1 call then parked; flaky: 2 attempts then parked.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if calls.load(Ordering::SeqCst) >= 4 && t.bus.parked_count("loop").await.unwrap() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(t.bus.parked_count("loop").await.unwrap(), 2);
    shutdown.cancel();
    task.await.unwrap();
}

async fn batch_consumer_settles_each_delivery_by_its_outcome(t: &TestBus) {
    use platform::bus::{run_batch_consumer, Attempt, Batching, HandlerError};
    let s = spec("batch", &["b.*"], &[50], 2);
    t.bus.declare(&s).await.unwrap();
    let mut ok_ids = Vec::new();
    for i in 0..40u64 {
        let kind = match i {
            7 => "b.bad",
            13 => "b.flaky",
            _ => "b.ok",
        };
        let e = event(kind, i);
        if kind == "b.ok" {
            ok_ids.push(e.id);
        }
        t.bus.publish(&e).await.unwrap();
    }
    let sub = t.bus.subscribe(&s).await.unwrap();
    let seen: Arc<std::sync::Mutex<Vec<(uuid::Uuid, u32)>>> = Arc::default();
    let sizes: Arc<std::sync::Mutex<Vec<usize>>> = Arc::default();
    let (seen2, sizes2) = (seen.clone(), sizes.clone());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(run_batch_consumer(
        "test",
        sub,
        Batching {
            concurrency: 2,
            batch: 16,
            linger: Duration::ZERO,
        },
        shutdown.clone(),
        move |batch: Vec<(Envelope, Attempt)>| {
            let (seen, sizes) = (seen2.clone(), sizes2.clone());
            async move {
                sizes.lock().unwrap().push(batch.len());
                // A slow handler: deliveries gather meanwhile and make the next batches.
                tokio::time::sleep(Duration::from_millis(100)).await;
                batch
                    .into_iter()
                    .map(|(e, a)| {
                        seen.lock().unwrap().push((e.id, a.number));
                        match e.kind.as_str() {
                            "b.ok" => Ok(()),
                            "b.bad" => Err(HandlerError::Invalid("bad".into())),
                            _ => Err(HandlerError::Transient("later".into())),
                        }
                    })
                    .collect()
            }
        },
    ));
    // 38 ok once, bad once then parked, flaky twice then parked: 41 handled, 2 parked.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if seen.lock().unwrap().len() >= 41 && t.bus.parked_count("batch").await.unwrap() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 41, "{seen:?}");
    assert_eq!(t.bus.parked_count("batch").await.unwrap(), 2);
    let mut handled_ok: Vec<_> = seen
        .iter()
        .filter(|(id, _)| ok_ids.contains(id))
        .map(|(id, _)| *id)
        .collect();
    handled_ok.sort();
    handled_ok.dedup();
    assert_eq!(
        handled_ok.len(),
        38,
        "every ok message handled exactly once"
    );
    let sizes = sizes.lock().unwrap().clone();
    assert!(sizes.iter().all(|&n| (1..=16).contains(&n)), "{sizes:?}");
    assert!(
        sizes.iter().any(|&n| n > 1),
        "messages waiting together are handled together: {sizes:?}"
    );
}

/// With a linger a batch waits for deliveries arriving shortly after its first; without one it
/// takes only what is waiting. Batches never exceed `batch`.
async fn batch_consumer_lingers_for_more(t: &TestBus) {
    use platform::bus::{run_batch_consumer, Attempt, Batching};
    for (linger, want_first) in [(Duration::from_millis(400), 4), (Duration::ZERO, 1)] {
        let group = format!("linger{}", linger.as_millis());
        let s = spec(&group, &[&format!("{group}.*")], &[50], 2);
        t.bus.declare(&s).await.unwrap();
        let sub = t.bus.subscribe(&s).await.unwrap();
        let sizes: Arc<std::sync::Mutex<Vec<usize>>> = Arc::default();
        let sizes2 = sizes.clone();
        let shutdown = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(run_batch_consumer(
            "test",
            sub,
            Batching {
                concurrency: 1,
                batch: 4,
                linger,
            },
            shutdown.clone(),
            move |batch: Vec<(Envelope, Attempt)>| {
                let sizes = sizes2.clone();
                async move {
                    sizes.lock().unwrap().push(batch.len());
                    batch.into_iter().map(|_| Ok(())).collect()
                }
            },
        ));
        let kind = format!("{group}.e");
        // One event, then five more a little later, one at a time.
        t.bus.publish(&event(&kind, 0)).await.unwrap();
        for i in 1..6 {
            tokio::time::sleep(Duration::from_millis(30)).await;
            t.bus.publish(&event(&kind, i)).await.unwrap();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while sizes.lock().unwrap().iter().sum::<usize>() < 6 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 6, "{sizes:?}");
        assert_eq!(sizes[0], want_first, "linger {linger:?}: {sizes:?}");
        assert!(sizes.iter().all(|&n| n <= 4), "{sizes:?}");
    }
}

async fn parked_messages_are_listed_and_replayed_one_by_one(t: &TestBus) {
    let mut sub = t
        .bus
        .subscribe(&spec("park", &["p.*"], &[50], 2))
        .await
        .unwrap();
    let sent: Vec<Envelope> = (0..3).map(|n| event("p.x", n)).collect();
    for e in &sent {
        t.bus.publish(e).await.unwrap();
    }
    for _ in 0..3 {
        let d = recv(&mut sub, Duration::from_secs(5))
            .await
            .expect("delivery");
        d.park("payload has no tenant").await.unwrap();
    }
    let listed = t.bus.parked("park", 10).await.unwrap();
    let mut ids: Vec<_> = listed.iter().filter_map(|p| p.id).collect();
    ids.sort();
    let mut want: Vec<_> = sent.iter().map(|e| e.id).collect();
    want.sort();
    assert_eq!(ids, want, "every parked message listed: {listed:?}");
    assert!(listed.iter().all(|p| p.kind == "p.x"
        && p.attempts == 1
        && p.tenant_id.as_deref() == Some("tenant-1")
        && p.last_error.as_deref() == Some("payload has no tenant")));
    assert_eq!(t.bus.parked("park", 2).await.unwrap().len(), 2, "limit");
    // Listing reads and returns the messages; a quorum queue counts a returned message again a
    // moment later.
    assert_eq!(
        parked_count_settled(t, "park", 3).await,
        3,
        "listing takes none out"
    );
    assert_eq!(t.bus.queue_depth("park").await.unwrap(), 0);

    let chosen = sent[1].id;
    assert!(t.bus.replay_parked_one("park", chosen).await.unwrap());
    assert!(!t
        .bus
        .replay_parked_one("park", uuid::Uuid::now_v7())
        .await
        .unwrap());
    let back = recv(&mut sub, Duration::from_secs(5))
        .await
        .expect("replayed");
    assert_eq!((back.envelope.id, back.attempt), (chosen, 1));
    back.ack().await.unwrap();
    assert_eq!(parked_count_settled(t, "park", 2).await, 2);
    let left: HashSet<_> = t
        .bus
        .parked("park", 10)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|p| p.id)
        .collect();
    assert_eq!(left, HashSet::from([sent[0].id, sent[2].id]));
}

/// The parked count of `group` once it reads `want` (or after 5 s): a quorum queue counts
/// messages that were read and returned, or taken out, a moment after it happened.
async fn parked_count_settled(t: &TestBus, group: &str, want: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let count = t.bus.parked_count(group).await.unwrap();
        if count == want || Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn queue_depth_counts_what_waits(t: &TestBus) {
    t.bus
        .declare(&spec("depth", &["d.*"], &[50], 2))
        .await
        .unwrap();
    for n in 0..4 {
        t.bus.publish(&event("d.x", n)).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while t.bus.queue_depth("depth").await.unwrap() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(t.bus.queue_depth("depth").await.unwrap(), 4);
    let mut sub = t
        .bus
        .subscribe(&spec("depth", &["d.*"], &[50], 2))
        .await
        .unwrap();
    assert_eq!(drain(&mut sub, 4, Duration::from_secs(5)).await.len(), 4);
    assert_eq!(t.bus.queue_depth("depth").await.unwrap(), 0);
}

/// In-process bus only: a group's queue holds at most `bus.memory_capacity` messages; a publish
/// to a full one waits for room, and fails after the publish timeout when none comes.
#[tokio::test]
async fn memory_queues_are_bounded() {
    let mut cfg = BusConfig::memory();
    cfg.memory_capacity = 10;
    cfg.publish_timeout_ms = 200;
    let bus = MemoryBus::with_config(&cfg);
    let s = spec("full", &["f.*"], &[50], 2);
    bus.declare(&s).await.unwrap();
    for n in 0..10 {
        bus.publish(&event("f.x", n)).await.unwrap();
    }
    let started = Instant::now();
    let refused = bus.publish(&event("f.x", 10)).await;
    assert!(
        matches!(refused, Err(platform::bus::BusError::Timeout(_))),
        "{refused:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(190));
    assert_eq!(bus.queue_depth("full").await.unwrap(), 10);
    // A consumer taking one makes room for a waiting publish.
    let waiting = {
        let bus = bus.clone();
        tokio::spawn(async move { bus.publish(&event("f.x", 11)).await })
    };
    let mut sub = bus.subscribe(&s).await.unwrap();
    recv(&mut sub, Duration::from_secs(1))
        .await
        .expect("delivery")
        .ack()
        .await
        .unwrap();
    waiting.await.unwrap().expect("room came");
    // Events of no group's bindings go nowhere and never wait.
    bus.publish(&event("lead.score_changed", 0)).await.unwrap();
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        conformance!(@on memory, memory; $($name),*);
        conformance!(@on rabbitmq, amqp; $($name),*);
        conformance!(@on rabbitmq_quorum, amqp_quorum; $($name),*);
    };
    // Every test of the suite, in module `$module`, on the bus `TestBus::$make` gives.
    (@on $module:ident, $make:ident; $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $name() {
                    let t = super::TestBus::$make().await;
                    super::$name(&t).await;
                    t.cleanup().await;
                }
            )*
        }
    };
}

conformance!(
    routes_by_pattern_after_confirm,
    envelope_arrives_intact,
    acked_is_gone,
    retry_with_growing_delay_then_park_then_replay,
    invalid_is_parked_at_once,
    dropped_delivery_is_redelivered,
    dropped_subscriber_is_redelivered_to_another,
    competing_consumers_share_work,
    declared_group_keeps_messages_without_subscriber,
    consumer_loop_settles_by_handler_result,
    batch_consumer_settles_each_delivery_by_its_outcome,
    batch_consumer_lingers_for_more,
    parked_messages_are_listed_and_replayed_one_by_one,
    queue_depth_counts_what_waits,
);

/// RabbitMQ only: the broker connection is cut (twice, once with the broker "down" for a second)
/// while a publisher and a consumer run. Both recover without a restart, and every message whose
/// publish was confirmed reaches the consumer.
#[tokio::test]
async fn rabbitmq_connection_loss_loses_nothing_confirmed() {
    let url = amqp_url();
    let target = url
        .split("://")
        .nth(1)
        .and_then(|r| r.rsplit('@').next())
        .and_then(|h| h.split(['/', '?']).next())
        .and_then(|h| h.to_socket_addrs().ok())
        .and_then(|mut a| a.next())
        .expect("broker address");
    let proxy = TcpProxy::start(target).await.unwrap();
    let t = TestBus::amqp_at(proxy.rewrite_url(&url)).await;
    let s = spec("chaos", &["chaos.*"], &[100], 5);
    let mut sub = t.bus.subscribe(&s).await.unwrap();

    let received = Arc::new(std::sync::Mutex::new(HashSet::new()));
    let rx_set = received.clone();
    let consumer = tokio::spawn(async move {
        while let Some(d) = sub.recv().await {
            let id = d.envelope.id;
            if d.ack().await.is_ok() {
                rx_set.lock().unwrap().insert(id);
            }
        }
    });

    let bus = t.bus.clone();
    let publisher = tokio::spawn(async move {
        let mut confirmed = HashSet::new();
        let mut failed = 0;
        for n in 0..300u64 {
            let e = event("chaos.msg", n);
            match bus.publish(&e).await {
                Ok(()) => {
                    confirmed.insert(e.id);
                }
                Err(_) => failed += 1,
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        (confirmed, failed)
    });

    tokio::time::sleep(Duration::from_millis(400)).await;
    proxy.kill_all();
    tokio::time::sleep(Duration::from_millis(400)).await;
    proxy.set_accepting(false);
    proxy.kill_all();
    tokio::time::sleep(Duration::from_secs(1)).await;
    proxy.set_accepting(true);

    let (confirmed, failed) = publisher.await.unwrap();
    assert!(
        confirmed.len() >= 250,
        "publisher recovered: {} confirmed, {failed} failed",
        confirmed.len()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let missing = confirmed.difference(&received.lock().unwrap()).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} confirmed messages never reached the consumer"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    consumer.abort();
    t.cleanup().await;
    drop(proxy);
}

/// RabbitMQ only: a consumer that vanishes without settling (its connection's channel closes) gets
/// its unacked message redelivered by the broker to another consumer.
#[tokio::test]
async fn rabbitmq_leaked_delivery_is_redelivered_when_consumer_goes() {
    let t = TestBus::amqp().await;
    let s = spec("leak", &["lk.*"], &[50], 3);
    let mut first = t.bus.subscribe(&s).await.unwrap();
    let e = event("lk.x", 1);
    t.bus.publish(&e).await.unwrap();
    let d = recv(&mut first, Duration::from_secs(5)).await.unwrap();
    std::mem::forget(d); // never settled, never released
    drop(first); // its channel closes
    let mut second = t.bus.subscribe(&s).await.unwrap();
    let again = recv(&mut second, Duration::from_secs(10))
        .await
        .expect("redelivered");
    assert_eq!(again.envelope.id, e.id);
    assert!(again.redelivered);
    again.ack().await.unwrap();
    t.cleanup().await;
}

/// RabbitMQ only: a message that is not an envelope is parked, not redelivered forever.
#[tokio::test]
async fn rabbitmq_garbage_message_is_parked() {
    let t = TestBus::amqp().await;
    let amqp = t.amqp.clone().unwrap();
    let s = spec("garbage", &["g.*"], &[50], 3);
    let mut sub = t.bus.subscribe(&s).await.unwrap();
    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    ch.basic_publish(
        "",
        &amqp.queue_name("garbage"),
        Default::default(),
        b"not json",
        Default::default(),
    )
    .await
    .unwrap();
    assert!(recv(&mut sub, Duration::from_millis(800)).await.is_none());
    assert_eq!(t.bus.parked_count("garbage").await.unwrap(), 1);
    conn.close(200, "bye").await.ok();
    t.cleanup().await;
}

/// Does the queue exist on the broker (a passive declare)?
async fn queue_exists(conn: &lapin::Connection, name: &str) -> bool {
    let ch = conn.create_channel().await.expect("channel");
    let opts = lapin::options::QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let found = ch
        .queue_declare(name, opts, lapin::types::FieldTable::default())
        .await
        .is_ok();
    if found {
        let _ = ch.close(200, "ok").await;
    }
    found
}

/// RabbitMQ only: a non-default retry policy (`bus.max_attempts`, `bus.retry_delays_ms`) reaches
/// both what a process declares at start and what a service's consumer subscribes with: each
/// group has exactly the configured retry queues, and a failing handler is retried after the
/// configured delays, then parked after the configured attempts.
#[tokio::test]
async fn rabbitmq_configured_retry_policy_reaches_every_group() {
    use platform::bus::{run_consumer, HandlerError};
    let mut cfg = BusConfig::amqp(amqp_url());
    cfg.exchange = unique("bustest");
    cfg.max_attempts = 3;
    cfg.retry_delays_ms = vec![150, 400];
    let amqp = AmqpBus::connect(&cfg).await.expect("connect to RabbitMQ");
    let bus: Arc<dyn Bus> = Arc::new(amqp.clone());
    // What `scrm` does at start, then what identity-svc's consumer subscribes with
    // (`identity_svc::consume::group_spec` is this call).
    platform::bus::declare_groups(&*bus, proto::routing::GROUPS)
        .await
        .expect("declare");
    let sub = bus
        .subscribe(&platform::bus::group_spec(
            &*bus,
            proto::routing::IDENTITY,
            4,
        ))
        .await
        .unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = seen.clone();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let task = tokio::spawn(run_consumer(
        "test",
        sub,
        4,
        shutdown.clone(),
        move |_e: Envelope, attempt| {
            s.lock()
                .unwrap()
                .push((attempt.number, attempt.last, Instant::now()));
            async { Err(HandlerError::Transient("database busy".into())) }
        },
    ));
    bus.publish(&event("channel.oa.subscribe", 1))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && bus.parked_count("identity").await.unwrap() == 0 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    task.await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert_eq!(
        seen.iter()
            .map(|(n, last, _)| (*n, *last))
            .collect::<Vec<_>>(),
        vec![(1, false), (2, false), (3, true)],
        "three attempts, the third the last"
    );
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].2 - w[0].2).collect();
    assert!(
        gaps[0] >= Duration::from_millis(140) && gaps[0] < Duration::from_millis(1_000),
        "first retry after the configured 150 ms, not the default 1 s: {gaps:?}"
    );
    assert!(
        gaps[1] >= Duration::from_millis(390) && gaps[1] < Duration::from_millis(5_000),
        "second retry after the configured 400 ms: {gaps:?}"
    );
    assert_eq!(bus.parked_count("identity").await.unwrap(), 1);

    let conn = lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default())
        .await
        .expect("connect");
    for g in proto::routing::GROUPS {
        let queue = amqp.queue_name(g.name);
        for ms in [150, 400] {
            let q = format!("{queue}.retry.{ms}");
            assert!(queue_exists(&conn, &q).await, "{q} is declared");
        }
        for ms in [1_000, 5_000, 30_000, 120_000] {
            let q = format!("{queue}.retry.{ms}");
            assert!(!queue_exists(&conn, &q).await, "no default retry queue {q}");
        }
    }
    let _ = conn.close(200, "ok").await;
    amqp.destroy()
        .await
        .expect("delete test exchange and queues");
}
