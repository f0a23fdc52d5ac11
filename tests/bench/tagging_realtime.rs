//! Real-time tagging latency: behaviour events published on RabbitMQ at a fixed rate, consumed by
//! tagging-svc (its real `run`: consumer, inbox, facts projection, rule evaluation, outbox relay)
//! on MariaDB, each event tagging a new profile; the latency of an event is the time from its
//! publish until its `tag.changed` arrives at an observer on the bus.
//!
//! Run: `cargo bench -p scrm-tests --bench tagging_realtime` (servers from SCRM_TEST_MYSQL_URL and
//! SCRM_TEST_AMQP_URL or the local defaults). Knobs: `BENCH_RATE` events/s (default 1 000),
//! `BENCH_SECONDS` (default 30), `BENCH_CONCURRENCY` consumer transactions at once, `BENCH_BATCH`
//! deliveries one transaction takes, `BENCH_LINGER_MS` how long it waits for them (each by
//! default the service's: 4, 32, 5 ms); `BENCH_KEEP_DB` set keeps the database for a look
//! afterwards.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use platform::bus::{AmqpBus, Bus, GroupSpec};
use platform::cache::MemoryCache;
use platform::config::{BusConfig, DbConfig, HttpConfig};
use platform::Deps;
use proto::identity::ProfileResolved;
use proto::tagging::TagChanged;
use proto::Envelope;
use serde_json::json;
use tagging_svc::store::rules::{self as tag_rules, RuleInput};
use test_support::servers::{amqp_url, mysql_url, unique};
use tokio_util::sync::CancellationToken;

const TENANT: &str = "t-rt";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn event(profile: &str) -> Envelope {
    let event = Envelope::builder(
        "channel.track.page_view",
        TENANT,
        json!({"subject": {"anonymous_id": profile}, "kind": "page_view", "page": "/pricing",
               "content": {"id": "pricing", "tags": ["pricing"]}}),
    )
    .build();
    let p = ProfileResolved {
        profile_id: profile.into(),
        created: true,
        event,
        identifiers: vec![],
    };
    Envelope::of(TENANT, &p).build()
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

// As the `scrm` binary runs: mimalloc, one runtime worker per core (the publishers and the
// observer share them; more workers than cores only add context switches).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let rate = env_u64("BENCH_RATE", 1_000);
    let secs = env_u64("BENCH_SECONDS", 30);
    let db_url = format!("{}/{}", mysql_url(), unique("bench_rt"));
    let mut dbc = DbConfig::new(db_url.clone());
    // The service's settings, each knob overriding its own.
    let mut cfg = tagging_svc::Config::new(
        HttpConfig {
            bind: "127.0.0.1:0".parse()?,
            workers: 1,
        },
        dbc.clone(),
    );
    let concurrency = env_u64("BENCH_CONCURRENCY", cfg.consumer_concurrency as u64) as usize;
    let batch = env_u64("BENCH_BATCH", cfg.consumer_batch as u64) as usize;
    dbc.max_connections = (concurrency as u32 + 8).min(64);
    cfg.database = dbc.clone();
    let mut bus_cfg = BusConfig::amqp(amqp_url());
    bus_cfg.exchange = unique("bench-rt");
    bus_cfg.prefetch = 256;
    let amqp = AmqpBus::connect(&bus_cfg).await?;
    let bus: Arc<dyn Bus> = Arc::new(amqp.clone());
    let shutdown = CancellationToken::new();
    let deps = Deps {
        bus: bus.clone(),
        cache: Arc::new(MemoryCache::new("bench:", 10_000)),
        shutdown: shutdown.clone(),
        migrate_on_start: true,
        listening: None,
        tasks: Default::default(),
        peers: Default::default(),
    };
    cfg.consumer_concurrency = concurrency;
    cfg.consumer_batch = batch;
    cfg.consumer_linger_ms = env_u64("BENCH_LINGER_MS", cfg.consumer_linger_ms);
    // The rule exists before the service starts, so its first rule-set load sees it.
    let db = platform::db::connect(&dbc, true).await?;
    {
        use sea_orm_migration::MigratorTrait;
        tagging_svc::store::Migrator::up(&db, None).await?;
    }
    let tag_id = scrm_tests::tagging::group_with_tag(&db, TENANT, "intent", "pricing visitor")
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tag_rules::create(
        &db,
        RuleInput {
            tenant_id: TENANT.into(),
            tag_id: tag_id.clone(),
            name: "viewed pricing this week".into(),
            condition: json!({"version": 1, "root": {"type": "behaviour", "content_tag": "pricing",
                               "count": {"op": "gte", "value": 1}, "window": {"type": "last", "days": 7}}}),
            mode: "add_remove".into(),
            enabled: true,
            operator: "bench".into(),
        },
        &rules::Limits::default(),
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    // A tenant in service has had today's counters rolled (a new tenant's first scheduler pass
    // does it); events then add to the rolling counters directly.
    let now = chrono::Utc::now();
    facts::roll(
        &db,
        TENANT,
        facts::local_day(now, chrono_tz::Asia::Shanghai),
        20_000,
        now,
    )
    .await?;
    let service = tokio::spawn(tagging_svc::run(cfg, deps));
    let mut observer = bus
        .subscribe(&GroupSpec::new(
            "bench-observer",
            &["tag.changed"],
            &bus_cfg,
        ))
        .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let total = rate * secs;
    let watch = {
        let sent = sent.clone();
        tokio::spawn(async move {
            let mut lat = Vec::with_capacity(total as usize);
            while (lat.len() as u64) < total {
                let Ok(Some(d)) =
                    tokio::time::timeout(Duration::from_secs(20), observer.recv()).await
                else {
                    break;
                };
                let arrived = Instant::now();
                if let Ok(c) = d.envelope.decode::<TagChanged>() {
                    if let Some(t0) = sent.lock().unwrap().remove(&c.profile_id) {
                        lat.push((t0, arrived - t0, c.profile_id));
                    }
                }
                let _ = d.ack().await;
            }
            lat
        })
    };
    println!("publishing {total} events at {rate}/s to tagging-svc ({concurrency} handlers) ...");
    let start = Instant::now();
    let publishers = 32u64;
    let mut tasks = Vec::new();
    for w in 0..publishers {
        let (bus, sent) = (bus.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = w;
            while i < total {
                let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
                tokio::time::sleep_until(due.into()).await;
                let p = format!("p{i:08}");
                sent.lock().unwrap().insert(p.clone(), Instant::now());
                bus.publish(&event(&p)).await.expect("publish");
                i += publishers;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let published = start.elapsed();
    let timed = watch.await?;
    // The worst latency of the events published in each second shows when a backlog built up.
    let mut worst = vec![Duration::ZERO; secs as usize + 1];
    let mut slowest: Vec<&(Instant, Duration, String)> = timed.iter().collect();
    slowest.sort_by_key(|(_, l, _)| std::cmp::Reverse(*l));
    let slowest: Vec<String> = slowest
        .iter()
        .take(5)
        .map(|(_, l, p)| format!("{p} {} ms", l.as_millis()))
        .collect();
    println!("slowest: {}", slowest.join(", "));
    for (t0, l, _) in &timed {
        let s = (t0.saturating_duration_since(start).as_secs() as usize).min(secs as usize);
        worst[s] = worst[s].max(*l);
    }
    let mut lat: Vec<Duration> = timed.into_iter().map(|(_, l, _)| l).collect();
    lat.sort();
    println!(
        "published {total} in {:.1} s ({:.0}/s); tag.changed received for {} events",
        published.as_secs_f64(),
        total as f64 / published.as_secs_f64(),
        lat.len()
    );
    println!(
        "publish → tag.changed: p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        pct(&lat, 0.50),
        pct(&lat, 0.90),
        pct(&lat, 0.99),
        pct(&lat, 1.0)
    );
    let worst: Vec<String> = worst.iter().map(|d| format!("{}", d.as_millis())).collect();
    println!(
        "worst latency (ms) by second of publish: {}",
        worst.join(" ")
    );
    shutdown.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(10), service).await;
    amqp.destroy().await?;
    if std::env::var_os("BENCH_KEEP_DB").is_some() {
        println!("database kept: {db_url}");
    } else {
        platform::db::drop_mysql_database(&db_url).await?;
    }
    Ok(())
}
