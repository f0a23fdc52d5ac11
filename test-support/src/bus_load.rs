//! The broker's own confirmed-publish load, shared by the bus benchmark and the gateway's load
//! harness (which compares the gateway with it in the same run).

use std::sync::Arc;
use std::time::{Duration, Instant};

use platform::bus::{Bus, GroupSpec, RetryPolicy};
use proto::Envelope;

/// An event about the size of a parsed WeChat callback.
pub fn callback_sized(n: u64) -> Envelope {
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

/// One queue bound to every channel event, so each publish is routed and stored once.
pub fn channel_group(prefetch: u16) -> GroupSpec {
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

/// The `p` quantile of sorted latencies.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// What a confirmed-publish run measured.
#[derive(Debug, Clone, Copy)]
pub struct PublishRate {
    pub per_sec: f64,
    pub mean: Duration,
    pub p50: Duration,
    pub p99: Duration,
}

/// `concurrency` publishers, `per_task` confirmed publishes each (callback-sized events numbered
/// from `first`). With a non-zero `gap` each publisher pauses that long after a confirm before its
/// next publish, as a front end that spends that long of its own per message would; the pause is a
/// thread sleep on the blocking pool, so publishers wake independently (not on a shared timer tick).
pub async fn publish_concurrent(
    bus: Arc<dyn Bus>,
    concurrency: u64,
    per_task: u64,
    first: u64,
    gap: Duration,
) -> PublishRate {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..concurrency {
        let bus = bus.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_task as usize);
            for i in 0..per_task {
                let e = callback_sized(first + c * per_task + i);
                let t = Instant::now();
                bus.publish(&e).await.expect("publish");
                lat.push(t.elapsed());
                if !gap.is_zero() {
                    tokio::task::spawn_blocking(move || std::thread::sleep(gap))
                        .await
                        .expect("pause");
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let per_sec = (per_task * concurrency) as f64 / start.elapsed().as_secs_f64();
    lat.sort();
    PublishRate {
        per_sec,
        mean: lat.iter().sum::<Duration>() / lat.len().max(1) as u32,
        p50: percentile(&lat, 0.5),
        p99: percentile(&lat, 0.99),
    }
}
