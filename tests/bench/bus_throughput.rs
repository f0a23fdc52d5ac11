//! Bus throughput on this machine: confirmed publishes/s and consume+ack/s through RabbitMQ (and
//! the in-process bus for comparison).
//!
//! Run: `cargo bench -p scrm-tests --bench bus_throughput` (RabbitMQ from SCRM_TEST_AMQP_URL or the
//! local default). `BENCH_MESSAGES=N` changes the message count (default 50 000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::bus::{AmqpBus, Bus, GroupSpec, MemoryBus, RetryPolicy};
use platform::config::BusConfig;
use proto::Envelope;
use scrm_tests::servers::{amqp_url, unique};

fn event(n: u64) -> Envelope {
    // A payload about the size of a parsed WeChat callback event.
    Envelope::builder(
        "channel.oa.subscribe",
        "tenant-bench",
        serde_json::json!({
            "appid": "wx2c2769f8efd9abc2",
            "openid": format!("oOPENID{n:024}"),
            "event": "subscribe",
            "event_key": "qrscene_campaign_2026_11",
            "create_time": 1_714_550_400 + n,
        }),
    )
    .dedupe_key(format!("oOPENID{n:024}|subscribe"))
    .build()
}

fn spec(prefetch: u16) -> GroupSpec {
    GroupSpec {
        group: "bench".into(),
        bindings: vec!["channel.#".into()],
        prefetch,
        retry: RetryPolicy {
            max_attempts: 3,
            delays: vec![Duration::from_secs(1)],
        },
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn publish_sequential(bus: &dyn Bus, n: u64) -> (f64, Duration, Duration) {
    let mut lat = Vec::with_capacity(n as usize);
    let start = Instant::now();
    for i in 0..n {
        let e = event(i);
        let t = Instant::now();
        bus.publish(&e).await.expect("publish");
        lat.push(t.elapsed());
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    lat.sort();
    (rate, percentile(&lat, 0.5), percentile(&lat, 0.99))
}

async fn publish_concurrent(
    bus: Arc<dyn Bus>,
    n: u64,
    concurrency: u64,
) -> (f64, Duration, Duration) {
    let start = Instant::now();
    let per = n / concurrency;
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per as usize);
            for i in 0..per {
                let e = event(c * per + i);
                let t = Instant::now();
                bus.publish(&e).await.expect("publish");
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let rate = (per * concurrency) as f64 / start.elapsed().as_secs_f64();
    lat.sort();
    (rate, percentile(&lat, 0.5), percentile(&lat, 0.99))
}

async fn publish_batches(bus: &dyn Bus, n: u64, batch: u64) -> f64 {
    let start = Instant::now();
    let mut i = 0;
    while i < n {
        let chunk: Vec<Envelope> = (i..(i + batch).min(n)).map(event).collect();
        bus.publish_batch(&chunk).await.expect("publish batch");
        i += batch;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn consume_all(bus: &dyn Bus, n: u64, prefetch: u16) -> f64 {
    let mut sub = bus.subscribe(&spec(prefetch)).await.expect("subscribe");
    let start = Instant::now();
    for _ in 0..n {
        let d = tokio::time::timeout(Duration::from_secs(30), sub.recv())
            .await
            .expect("message within 30 s")
            .expect("subscription open");
        d.ack().await.expect("ack");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

async fn run(name: &str, bus: Arc<dyn Bus>, n: u64) {
    bus.declare(&spec(256)).await.expect("declare");
    let seq_n = (n / 10).max(1_000);
    let (seq_rate, seq_p50, seq_p99) = publish_sequential(bus.as_ref(), seq_n).await;
    let (conc_rate, conc_p50, conc_p99) = publish_concurrent(bus.clone(), n, 64).await;
    let batch_rate = publish_batches(bus.as_ref(), n, 200).await;
    let total = seq_n + (n / 64) * 64 + n;
    let consume_rate = consume_all(bus.as_ref(), total, 256).await;
    println!(
        "{name}: {total} messages of ~{} bytes",
        event(0).to_bytes().len()
    );
    println!("  confirmed publish, 1 at a time:        {seq_rate:>9.0} msg/s  p50 {seq_p50:?}  p99 {seq_p99:?}");
    println!("  confirmed publish, 64 concurrent:      {conc_rate:>9.0} msg/s  p50 {conc_p50:?}  p99 {conc_p99:?}");
    println!("  confirmed publish_batch of 200:        {batch_rate:>9.0} msg/s");
    println!("  consume + ack (prefetch 256, 1 sub):   {consume_rate:>9.0} msg/s");
}

fn main() {
    let n: u64 = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut cfg = BusConfig::amqp(amqp_url());
        cfg.exchange = unique("bench");
        cfg.publish_timeout_ms = 30_000;
        let amqp = AmqpBus::connect(&cfg).await.expect("RabbitMQ");
        run("RabbitMQ", Arc::new(amqp.clone()), n).await;
        amqp.destroy().await.expect("cleanup");
        run("in-process", Arc::new(MemoryBus::new()), n).await;
    });
}
