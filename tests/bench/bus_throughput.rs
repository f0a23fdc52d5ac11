//! Bus throughput on this machine: confirmed publishes/s and consume+ack/s through RabbitMQ (and
//! the in-process bus for comparison).
//!
//! Run: `cargo bench -p scrm-tests --bench bus_throughput` (RabbitMQ from SCRM_TEST_AMQP_URL or the
//! local default). `BENCH_MESSAGES=N` changes the message count (default 50 000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::bus::{AmqpBus, Bus, GroupSpec, MemoryBus};
use platform::config::BusConfig;
use proto::Envelope;
use test_support::bus_load::{callback_sized, channel_group, percentile, publish_concurrent};
use test_support::servers::{amqp_url, unique};

fn event(n: u64) -> Envelope {
    callback_sized(n)
}

fn spec(prefetch: u16) -> GroupSpec {
    channel_group(prefetch)
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
    let conc = publish_concurrent(bus.clone(), 64, n / 64, 0, Duration::ZERO).await;
    let (conc_rate, conc_p50, conc_p99) = (conc.per_sec, conc.p50, conc.p99);
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
