//! scoring-svc under load, against RabbitMQ and MariaDB: the latency from publishing a
//! `profile.resolved` to receiving the `lead.score_changed` it causes, at a steady offered rate,
//! through the real role (`scoring_svc::run`: consumer, one transaction per event with inbox,
//! facts projection, ledger, fold, stage machine and triggers, outbox relay with confirms);
//! then reads of a profile whose ledger holds 10 000 entries.
//!
//! Run: `cargo bench -p scrm-tests --bench scoring_load`. Knobs:
//! - `BENCH_RATE` events per second offered (default 1000), `BENCH_SECONDS` (default 30);
//! - `BENCH_PROFILES` distinct profiles the events fall on (default 10 000);
//! - `BENCH_CONCURRENCY` transactions at once in the scoring consumer (default 8, the service
//!   default), `BENCH_BATCH` deliveries one transaction takes (default 32, the service default),
//!   `BENCH_LINGER_MS` how long it waits for them (default 0, the service default);
//! - `BENCH_ENTRIES` ledger entries of the heavy profile (default 10 000);
//! - `BENCH_DIRECT` events first run through `Scorer::handle` without the bus (default 3000; 0 skips);
//! - `BENCH_KEEP_DB=1` keeps the database (its name is printed).
//!
//! The tenant's definitions are what a real one would run: an engagement model with a 30-day
//! half-life (page views 5 points capped at 100 a day, forms 20, OA follows 10 once), the
//! default stage machine with MQL at 60 points and a trigger notifying the rep on MQL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use platform::bus::{AmqpBus, Bus, GroupSpec};
use platform::config::{BusConfig, CacheConfig, DbConfig, HttpConfig};
use platform::Deps;
use proto::sdk::TrackKind;
use rand::Rng;
use scoring_svc::domain::defs::{MachineSpec, ModelSpec, RuleSpec, TriggerSpec};
use scoring_svc::store::migrations::ScoreLedger as L;
use scrm_tests::scoring::{resolved, tracked};
use sea_orm::sea_query::Query;
use sea_orm::{ConnectionTrait, DatabaseConnection};
use serde_json::json;
use test_support::servers::{amqp_url, mysql_url, unique};
use tokio_util::sync::CancellationToken;

const TENANT: &str = "t-bench";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(default)
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

async fn define(db: &DatabaseConnection) -> String {
    let now = Utc::now();
    let spec: ModelSpec = serde_json::from_value(json!({"key": "engagement", "name": "Engagement",
        "decay": {"kind": "half_life", "days": 30}}))
    .unwrap();
    let m = scoring_svc::store::defs::create_model(db, TENANT, spec, "bench", now)
        .await
        .expect("model");
    let mut view = String::new();
    for r in [
        json!({"kind": "event", "name": "Page view", "event": "track.page_view", "points": 5, "caps": {"per_day": 100}}),
        json!({"kind": "event", "name": "Form", "event": "track.form_submit", "points": 20}),
        json!({"kind": "event", "name": "Follow", "event": "oa.subscribe", "points": 10, "caps": {"once": true}}),
    ] {
        let spec: RuleSpec = serde_json::from_value(r).unwrap();
        let rule = scoring_svc::store::defs::create_rule_in(db, TENANT, &m.id, spec, "bench", now)
            .await
            .expect("rule");
        if view.is_empty() {
            view = rule.id;
        }
    }
    let mut machine = serde_json::to_value(MachineSpec::default_machine()).unwrap();
    machine["stages"][1]["entry"] = json!({"version": 1, "root": {"type": "property", "key": "score.engagement",
        "value_type": "number", "op": "gte", "value": 60}});
    let machine: MachineSpec = serde_json::from_value(machine).unwrap();
    scoring_svc::store::defs::put_machine(db, TENANT, machine, "bench", now)
        .await
        .expect("machine");
    let t: TriggerSpec = serde_json::from_value(
        json!({"name": "MQL", "on": {"type": "stage_entered", "stage": "mql"},
        "actions": [{"type": "notify"}]}),
    )
    .unwrap();
    scoring_svc::store::defs::create_trigger(db, TENANT, t, "bench", now)
        .await
        .expect("trigger");
    view
}

/// Offers `rate` events/s for `seconds` and measures publish → `lead.score_changed`.
async fn load(
    bus: Arc<dyn Bus>,
    mut sub: platform::bus::Subscription,
    rate: u64,
    seconds: u64,
    profiles: u64,
) {
    let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::new(Mutex::new(HashMap::new()));
    let got: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::new(Mutex::new(Vec::new()));
    let last: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let total = rate * seconds;
    let recv = {
        let (sent, got, last) = (sent.clone(), got.clone(), last.clone());
        tokio::spawn(async move {
            let mut n = 0u64;
            while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(30), sub.recv()).await
            {
                let at = Instant::now();
                let cause = d.envelope.payload["reason"]["cause_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if let Some(t0) = sent.lock().unwrap().get(&cause) {
                    got.lock().unwrap().push((*t0, at - *t0));
                }
                *last.lock().unwrap() = Some(at);
                let _ = d.ack().await;
                n += 1;
                if n >= total {
                    break;
                }
            }
        })
    };
    let started = Instant::now();
    let tick = Duration::from_millis(10);
    let per_tick = (rate / 100).max(1);
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut i = 0u64;
    let mut publishers = Vec::new();
    while i < total {
        ticker.tick().await;
        let mut batch = Vec::with_capacity(per_tick as usize);
        {
            let mut rng = rand::rng();
            for _ in 0..per_tick.min(total - i) {
                let p = format!("p{:06}", rng.random_range(0..profiles));
                let roll = rng.random_range(0..100);
                let kind = if roll < 80 {
                    TrackKind::PageView
                } else if roll < 95 {
                    TrackKind::FormSubmit
                } else {
                    TrackKind::Download
                };
                let ev = tracked(
                    TENANT,
                    kind,
                    Utc::now(),
                    &format!("b{i}"),
                    &["article"],
                    json!({}),
                );
                batch.push(resolved(&p, &ev));
                i += 1;
            }
        }
        let t0 = Instant::now();
        {
            let mut s = sent.lock().unwrap();
            for e in &batch {
                s.insert(e.id.to_string(), t0);
            }
        }
        let bus = bus.clone();
        publishers.push(tokio::spawn(async move {
            bus.publish_batch(&batch).await.expect("publish")
        }));
    }
    for p in publishers {
        p.await.unwrap();
    }
    let offered = total as f64 / started.elapsed().as_secs_f64();
    // Downloads score nothing (no rule): they never cause a score change.
    let _ = tokio::time::timeout(Duration::from_secs(60), recv).await;
    let elapsed = last.lock().unwrap().map_or(Duration::ZERO, |l| l - started);
    let got = got.lock().unwrap();
    let warm = started + Duration::from_secs(3);
    let mut lat: Vec<Duration> = got
        .iter()
        .filter(|(t0, _)| *t0 >= warm)
        .map(|(_, l)| *l)
        .collect();
    lat.sort();
    println!(
        "load: {total} events offered at {offered:.0}/s over {seconds} s onto {profiles} profiles; {} score changes received, the last {:.1} s after the first publish",
        got.len(),
        elapsed.as_secs_f64()
    );
    println!(
        "  event → lead.score_changed (after 3 s warm-up, {} samples): p50 {}  p90 {}  p99 {}  max {}",
        lat.len(),
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.9)),
        ms(pct(&lat, 0.99)),
        ms(lat.last().copied().unwrap_or_default())
    );
}

/// The scoring transaction alone: `n` events through `Scorer::handle`, `concurrency` at once,
/// no bus. Returns events/s.
async fn direct(
    scorer: &scoring_svc::store::Scorer,
    n: u64,
    concurrency: usize,
    profiles: u64,
) -> f64 {
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (scorer, next) = (scorer.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= n {
                    break lat;
                }
                let p = format!("d{:06}", i.wrapping_mul(7919) % profiles);
                let ev = tracked(
                    TENANT,
                    TrackKind::PageView,
                    Utc::now(),
                    &format!("d{i}"),
                    &["article"],
                    json!({}),
                );
                let t = Instant::now();
                scorer.handle(&resolved(&p, &ev)).await.expect("scored");
                lat.push(t.elapsed());
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    lat.sort();
    println!(
        "direct: {n} page views through Scorer::handle, {concurrency} at once: {rate:.0} events/s  p50 {}  p99 {}",
        ms(pct(&lat, 0.5)),
        ms(pct(&lat, 0.99))
    );
    rate
}

/// A profile with `n` ledger entries, then timed reads of it.
async fn heavy(
    db: &DatabaseConnection,
    scoring: &str,
    scorer: &scoring_svc::store::Scorer,
    rule: &str,
    n: u64,
) {
    let profile = "p-heavy";
    scorer
        .handle(&resolved(
            profile,
            &tracked(
                TENANT,
                TrackKind::FormSubmit,
                Utc::now(),
                "heavy-0",
                &[],
                json!({}),
            ),
        ))
        .await
        .expect("first event");
    let defs = scorer.compiled(TENANT).await.unwrap();
    let model = defs.models[0].clone();
    let now = Utc::now();
    let mut i = 0;
    while i < n {
        let mut q = Query::insert();
        q.into_table(L::Table).columns([
            L::TenantId,
            L::ProfileId,
            L::ModelId,
            L::RuleId,
            L::Kind,
            L::SourceKey,
            L::VoidKey,
            L::EventKind,
            L::Points,
            L::Delta,
            L::EarnedAt,
            L::CauseId,
            L::CreatedAt,
        ]);
        for j in i..(i + 1000).min(n) {
            let earned = now - chrono::Duration::seconds((j as i64) * 500);
            q.values_panic([
                TENANT.into(),
                profile.into(),
                model.id.clone().into(),
                rule.into(),
                "event".into(),
                format!("heavy-ev-{j}").into(),
                0i64.into(),
                Some("track.page_view".to_string()).into(),
                5.0.into(),
                5.0.into(),
                earned.into(),
                Some(format!("heavy-msg-{j}")).into(),
                now.into(),
            ]);
        }
        db.execute(db.get_database_backend().build(&q))
            .await
            .expect("ledger rows");
        i += 1000;
    }
    let fold = scoring_svc::store::scores::rebuild(db, TENANT, profile, &model, now)
        .await
        .unwrap();
    scoring_svc::store::scores::save(db, TENANT, profile, &model, &fold, now)
        .await
        .unwrap();
    let http = reqwest::Client::new();
    let (auth_name, auth) = test_support::auth::header(TENANT);
    let mut first = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let r = http
            .get(format!("{scoring}/v1/profiles/{profile}/ledger?limit=100"))
            .header(auth_name, &auth)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
        let _ = r.bytes().await.unwrap();
        first.push(t.elapsed());
    }
    first.sort();
    let mut walks = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let mut cursor: Option<String> = None;
        let mut seen = 0;
        loop {
            let mut u = format!("{scoring}/v1/profiles/{profile}/ledger?limit=500");
            if let Some(c) = &cursor {
                u.push_str(&format!("&cursor={c}"));
            }
            let page: serde_json::Value = http
                .get(u)
                .header(auth_name, &auth)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            seen += page["items"].as_array().map_or(0, |a| a.len());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert!(seen as u64 > n);
        walks.push(t.elapsed());
    }
    walks.sort();
    let mut reads = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let r = http
            .get(format!("{scoring}/v1/profiles/{profile}/scores"))
            .header(auth_name, &auth)
            .send()
            .await
            .unwrap();
        let _ = r.bytes().await.unwrap();
        reads.push(t.elapsed());
    }
    reads.sort();
    let mut rebuilds = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        scoring_svc::store::scores::rebuild(db, TENANT, profile, &model, Utc::now())
            .await
            .unwrap();
        rebuilds.push(t.elapsed());
    }
    rebuilds.sort();
    println!("heavy profile: {n} ledger entries");
    println!(
        "  GET ledger, first page of 100:           p50 {}  p99 {}",
        ms(pct(&first, 0.5)),
        ms(pct(&first, 0.99))
    );
    println!(
        "  GET ledger, all {n} in pages of 1000:   p50 {}  p99 {}",
        ms(pct(&walks, 0.5)),
        ms(pct(&walks, 0.99))
    );
    println!(
        "  GET scores (exact, from the fold):       p50 {}  p99 {}",
        ms(pct(&reads, 0.5)),
        ms(pct(&reads, 0.99))
    );
    println!(
        "  score rebuilt from all entries (stale):  p50 {}  p99 {}",
        ms(pct(&rebuilds, 0.5)),
        ms(pct(&rebuilds, 0.99))
    );
}

// As the `scrm` binary runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let rate = env_u64("BENCH_RATE", 1000);
    let seconds = env_u64("BENCH_SECONDS", 30);
    let profiles = env_u64("BENCH_PROFILES", 10_000);
    let concurrency = env_u64("BENCH_CONCURRENCY", 8) as usize;
    let batch = env_u64("BENCH_BATCH", 32) as usize;
    let entries = env_u64("BENCH_ENTRIES", 10_000);
    let keep = std::env::var("BENCH_KEEP_DB").is_ok_and(|v| v == "1");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let name = unique("scrm_bench_scoring");
        let mut dbcfg = DbConfig::new(format!("{}/{name}", mysql_url()));
        dbcfg.max_connections = (concurrency + 8) as u32;
        let mut bcfg = BusConfig::amqp(amqp_url());
        bcfg.exchange = unique("bench-scoring");
        bcfg.publish_timeout_ms = 30_000;
        let amqp = AmqpBus::connect(&bcfg).await.expect("RabbitMQ");
        let bus: Arc<dyn Bus> = Arc::new(amqp.clone());
        bus.declare(&scoring_svc::consume::group_spec(&*bus, concurrency, batch))
            .await
            .expect("declare scoring");
        let mut cfg = scoring_svc::Config::new(
            HttpConfig {
                bind: "127.0.0.1:0".parse().unwrap(),
                workers: 2,
            },
            dbcfg.clone(),
        );
        cfg.internal_key = platform::config::Secret::new(test_support::auth::TEST_INTERNAL_KEY);
        cfg.consumer_concurrency = concurrency;
        cfg.consumer_batch = batch;
        cfg.consumer_linger_ms = env_u64("BENCH_LINGER_MS", cfg.consumer_linger_ms);
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let deps = Deps {
            bus: bus.clone(),
            cache: platform::cache::connect(&CacheConfig::memory())
                .await
                .unwrap(),
            shutdown: shutdown.clone(),
            migrate_on_start: true,
            listening: Some(tx),
            tasks: Default::default(),
            peers: Default::default(),
        };
        let role = tokio::spawn(scoring_svc::run(cfg, deps));
        let (_, addr) = rx.recv().await.expect("scoring listens");
        let db = platform::db::connect(&dbcfg, false)
            .await
            .expect("database");
        println!(
            "database {name} on MariaDB; RabbitMQ exchange {}",
            bcfg.exchange
        );
        let view_rule = define(&db).await;
        let scorer = scoring_svc::store::Scorer::new(
            db.clone(),
            Arc::new(scoring_svc::clock::SystemClock),
            scoring_svc::store::cache::DefsCache::new(),
            Default::default(),
        );
        let direct_n = env_u64("BENCH_DIRECT", 3000);
        if direct_n > 0 {
            direct(&scorer, direct_n, concurrency, profiles).await;
        }
        // Observe only the load phase: the direct phase's events must be relayed first.
        while platform::db::outbox::pending_count(&db).await.unwrap_or(0) > 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let observer = GroupSpec::new("bench-observer", &["lead.score_changed"], &bcfg);
        let sub = bus.subscribe(&observer).await.expect("observe");
        load(bus.clone(), sub, rate, seconds, profiles).await;
        heavy(&db, &format!("http://{addr}"), &scorer, &view_rule, entries).await;
        shutdown.cancel();
        let _ = role.await;
        amqp.destroy().await.expect("cleanup");
        db.close().await.ok();
        if keep {
            println!("kept database {name}");
        } else {
            platform::db::drop_mysql_database(dbcfg.url.expose())
                .await
                .expect("drop");
        }
    });
}
