//! Load harness for the gateway's WeChat callback path: safe-mode Official Account callbacks
//! (verify the signatures, decrypt, parse, publish) replayed by wrk against the gateway.
//!
//! Run: `cargo bench -p scrm --bench gateway_load` (needs `wrk` on PATH: `apt-get install wrk`,
//! and RabbitMQ + Redis for the second scenario). Two scenarios, each with the load generator on
//! this machine:
//! - `noop`: the gateway with a publisher that confirms and discards (and the in-process cache):
//!   what the verify + decrypt + parse + HTTP path can do;
//! - `node`: the comparison handler, Node's http server with `@wecom/crypto` in two processes
//!   (`tests/bench/node-baseline`, needs `node` and `npm`; `npm ci` runs there once), doing the
//!   same verify + decrypt + read with no I/O; when `noop` ran too, the ratio of the two is printed;
//! - `rabbitmq`: the gateway with confirmed publishes to RabbitMQ and the dedupe hint in Redis, at
//!   full load and at half of it (paced) for the latency;
//! - `broker`: RabbitMQ's own confirmed-publish rate as the foundation benchmark measures it (64
//!   publishers in one process, callback-sized events, one bound queue), for about
//!   `BENCH_SECONDS`; when `rabbitmq` ran too, the ratio of the two is printed.
//!
//! The gateway runs inside this process, so the reported RSS is the gateway's (wrk is another
//! process). Env: `BENCH_SECONDS` (default 10), `BENCH_CONNECTIONS` (64), `BENCH_BROKER_PUBLISHERS`
//! (64, the foundation benchmark's), `BENCH_SCENARIOS`
//! (`noop,node,broker,rabbitmq`; a scenario may repeat, e.g. `broker,rabbitmq,broker,rabbitmq`,
//! to alternate them on a noisy machine), `BENCH_GATEWAY_WORKERS` (the gateway's HTTP workers, 2).

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use platform::bus::{Bus, BusError, GroupSpec, Subscription};
use platform::config::BusConfig;
use platform::Deps;
use proto::Envelope;
use serde_json::json;
use wechat::fake::{prepare_oa, CallbackMode, FakeOptions, FakeWechat};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Confirms every publish and keeps nothing: isolates the ingestion path.
struct DiscardBus;

#[async_trait]
impl Bus for DiscardBus {
    async fn publish(&self, _e: &Envelope) -> Result<(), BusError> {
        Ok(())
    }
    async fn declare(&self, _s: &GroupSpec) -> Result<(), BusError> {
        Ok(())
    }
    async fn subscribe(&self, _s: &GroupSpec) -> Result<Subscription, BusError> {
        Err(BusError::Protocol(
            "the discard bus has no subscribers".into(),
        ))
    }
    async fn parked_count(&self, _g: &str) -> Result<u64, BusError> {
        Ok(0)
    }
    async fn replay_parked(&self, _g: &str) -> Result<u64, BusError> {
        Ok(0)
    }
    async fn ping(&self) -> Result<(), BusError> {
        Ok(())
    }
    fn kind(&self) -> &'static str {
        "discard"
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct WrkResult {
    rps: f64,
    /// Mean latency as wrk reports it (e.g. `6.70ms`).
    mean: String,
    p50: String,
    p99: String,
    errors: u64,
}

fn run_wrk(
    url: &str,
    corpus: &str,
    script: &str,
    connections: u32,
    seconds: u32,
    delay_ms: u32,
) -> WrkResult {
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
            script,
            url,
            "--",
        ])
        .args([corpus, "2", &delay_ms.to_string()])
        .output()
        .expect("wrk on PATH (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let find = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .unwrap_or_default()
    };
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    WrkResult {
        rps: find("Requests/sec:").parse().unwrap_or(0.0),
        mean: find("Latency"),
        p50: find("50%"),
        p99: find("99%"),
        errors,
    }
}

fn main() {
    let seconds: u32 = env_or("BENCH_SECONDS", 10);
    let connections: u32 = env_or("BENCH_CONNECTIONS", 64);
    let publishers: u64 = env_or("BENCH_BROKER_PUBLISHERS", 64);
    let scenarios: String = env_or("BENCH_SCENARIOS", "noop,node,broker,rabbitmq".to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let fake = FakeWechat::start_with(FakeOptions {
        users: 2_000,
        ..FakeOptions::default()
    })
    .expect("fake");
    let app = fake.apps().oa.clone();
    let users = fake.population().users.clone();

    // A corpus of distinct callbacks, larger than any run sends, so the dedupe hint never hits.
    let dir = std::env::temp_dir().join(format!("gw-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let corpus = dir.join("corpus.tsv");
    let n = 300_000usize;
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&corpus).unwrap());
        let cb = fake.callbacks(&app);
        for i in 0..n {
            let u = &users[i % users.len()];
            let xml = cb.text(&u.oa_openid, &format!("咨询一下产品价格和案例 #{i}"));
            let p = prepare_oa("http://gw", &app, &xml, CallbackMode::Safe).unwrap();
            let query: Vec<String> = p.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            writeln!(
                f,
                "/wechat/oa/{}?{}\t{}",
                app.appid,
                query.join("&"),
                p.body.replace(['\n', '\t'], "")
            )
            .unwrap();
        }
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/bench/gateway_load.lua"
    );
    println!("corpus: {n} safe-mode OA text callbacks; wrk -t2 -c{connections} -d{seconds}s on this machine");

    let (mut gateway_rps, mut node_rps) = (Vec::new(), Vec::new());
    let (mut durable_rps, mut broker_rps) = (Vec::new(), Vec::new());
    for scenario in scenarios.split(',') {
        match scenario {
            "noop" => gateway_rps.push(noop(
                &rt,
                &dir,
                &app,
                corpus.to_str().unwrap(),
                script,
                connections,
                seconds,
            )),
            "node" => node_rps.push(node(
                &app,
                corpus.to_str().unwrap(),
                script,
                connections,
                seconds,
            )),
            "rabbitmq" => durable_rps.push(rabbitmq(
                &rt,
                &dir,
                &app,
                corpus.to_str().unwrap(),
                script,
                connections,
                seconds,
            )),
            "broker" => broker_rps.push(broker(&rt, seconds, publishers)),
            other => panic!("unknown scenario {other}"),
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    if !gateway_rps.is_empty() && !node_rps.is_empty() {
        println!(
            "    ratio: the gateway's verify + decrypt + parse path at {:.2}x Node + @wecom/crypto (means of this run's {} and {} runs)",
            mean(&gateway_rps) / mean(&node_rps),
            gateway_rps.len(),
            node_rps.len()
        );
    }
    if !durable_rps.is_empty() && !broker_rps.is_empty() {
        println!(
            "    ratio: the gateway with confirmed publishes at {:.0} % of the broker's own {publishers}-publisher rate (means of this run's {} and {} runs)",
            100.0 * mean(&durable_rps) / mean(&broker_rps),
            durable_rps.len(),
            broker_rps.len()
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fn gateway_config(
    dir: &std::path::Path,
    app: &wechat::fake::FakeApp,
    name: &str,
) -> serde_json::Value {
    json!({
        "http": {"bind": "127.0.0.1:0", "workers": env_or("BENCH_GATEWAY_WORKERS", 2u32)},
        "database": {"url": format!("sqlite://{}", dir.join(format!("{name}.db")).display())},
        "secret_key": gateway::domain::keys::Keys::generate_base64(),
        "internal_key": gateway::domain::keys::Keys::generate_base64(),
        "callback": {"timestamp_window_secs": 0},
        "apps": [{"tenant_id": "bench", "kind": "oa", "app_id": app.appid, "token": app.token,
                  "encoding_aes_key": app.encoding_aes_key}],
    })
}

/// The gateway in this process with a discarding publisher and the in-process cache.
fn noop(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    app: &wechat::fake::FakeApp,
    corpus: &str,
    script: &str,
    connections: u32,
    seconds: u32,
) -> f64 {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let deps = Deps {
        bus: Arc::new(DiscardBus),
        cache: Arc::new(platform::cache::MemoryCache::new("bench:", 1_000_000)),
        shutdown: tokio_util::sync::CancellationToken::new(),
        migrate_on_start: true,
        listening: Some(tx),
    };
    let cfg: gateway::Config = serde_json::from_value(gateway_config(dir, app, "noop")).unwrap();
    let task = rt.spawn(gateway::run(cfg, deps.clone()));
    let addr = rt.block_on(async { rx.recv().await.expect("gateway listening").1 });
    let r = run_wrk(
        &format!("http://{addr}"),
        corpus,
        script,
        connections,
        seconds,
        0,
    );
    println!(
        "     noop: {:>8.0} callbacks/s  p50 {:>8}  p99 {:>8}  non-2xx {}  (in-process, dedupe hints in process memory)",
        r.rps, r.p50, r.p99, r.errors
    );
    deps.shutdown.cancel();
    let _ = rt.block_on(task);
    r.rps
}

/// Waits until something listens on `port` (10 s at most).
fn wait_listening(port: u16) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on 127.0.0.1:{port} after 10 s");
}

/// Node's http server with `@wecom/crypto`, one process per core, on the same corpus.
fn node(
    app: &wechat::fake::FakeApp,
    corpus: &str,
    script: &str,
    connections: u32,
    seconds: u32,
) -> f64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/bench/node-baseline");
    if !std::path::Path::new(dir).join("node_modules").exists() {
        let ok = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--silent"])
            .current_dir(dir)
            .status()
            .expect("npm on PATH (the `node` scenario needs Node.js and npm)");
        assert!(ok.success(), "npm ci in {dir} failed");
    }
    let port = scrm_tests::servers::free_port();
    let mut child = Command::new("node")
        .arg("server.js")
        .arg(port.to_string())
        .arg(&app.token)
        .arg(&app.encoding_aes_key)
        .arg(&app.appid)
        .arg(
            std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .to_string(),
        )
        .current_dir(dir)
        .spawn()
        .expect("node on PATH (the `node` scenario needs Node.js)");
    wait_listening(port);
    // The cluster's workers start one after the other: give the second one a moment.
    std::thread::sleep(Duration::from_millis(500));
    let r = run_wrk(
        &format!("http://127.0.0.1:{port}"),
        corpus,
        script,
        connections,
        seconds,
        0,
    );
    println!(
        "     node: {:>8.0} callbacks/s  p50 {:>8}  p99 {:>8}  non-2xx {}  (Node http + @wecom/crypto, {} processes)",
        r.rps,
        r.p50,
        r.p99,
        r.errors,
        std::thread::available_parallelism().map_or(2, |n| n.get())
    );
    // SIGTERM to the cluster's primary takes its workers down with it.
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    r.rps
}

fn child_rss_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with(field)).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

/// `scrm gateway` as its own process (production mode) with RabbitMQ and Redis.
fn rabbitmq(
    rt: &tokio::runtime::Runtime,
    dir: &std::path::Path,
    app: &wechat::fake::FakeApp,
    corpus: &str,
    script: &str,
    connections: u32,
    seconds: u32,
) -> f64 {
    let exchange = scrm_tests::servers::unique("gwbench");
    let mut cfg = BusConfig::amqp(scrm_tests::servers::amqp_url());
    cfg.exchange = exchange.clone();
    let port = scrm_tests::servers::free_port();
    let mut gw = gateway_config(dir, app, "rabbitmq");
    gw["http"]["bind"] = json!(format!("127.0.0.1:{port}"));
    let config = json!({
        "bus": {"kind": "amqp", "url": scrm_tests::servers::amqp_url(), "exchange": exchange},
        "cache": {"kind": "redis", "url": scrm_tests::servers::redis_url(), "key_prefix": format!("{exchange}:")},
        "telemetry": {"log_level": "warn"},
        "gateway": gw,
    });
    let file = dir.join("gateway.toml");
    std::fs::write(&file, toml_of(&config)).unwrap();
    let bin = env!("CARGO_BIN_EXE_scrm");
    let status = Command::new(bin)
        .args(["migrate", "--role", "gateway", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let mut child = Command::new(bin)
        .args(["gateway", "--config"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    wait_listening(port);
    let idle = child_rss_mb(child.id(), "VmRSS:");
    let full = run_wrk(&url, corpus, script, connections, seconds, 0);
    let rss_full = child_rss_mb(child.id(), "VmRSS:");
    println!(
        " rabbitmq: {:>8.0} callbacks/s  p50 {:>8}  p99 {:>8}  non-2xx {}  gateway RSS {:.0} MB (idle {:.0} MB)",
        full.rps, full.p50, full.p99, full.errors, rss_full, idle
    );
    if let Some(confirm) = rt.block_on(mean_publish_wait(&url)) {
        println!(
            "           of a request's mean {} (as wrk sees it), {confirm:.2?} on average waiting for the broker's confirm",
            full.mean
        );
    }
    let target = full.rps / 2.0;
    let conns = 32u32;
    let delay = ((conns as f64 * 1000.0 / target) as u32).max(1);
    let half = run_wrk(&url, corpus, script, conns, seconds, delay);
    println!(
        " rabbitmq: {:>8.0} callbacks/s at about half load  p50 {:>8}  p99 {:>8}  non-2xx {}  gateway RSS {:.0} MB, peak {:.0} MB",
        half.rps,
        half.p50,
        half.p99,
        half.errors,
        child_rss_mb(child.id(), "VmRSS:"),
        child_rss_mb(child.id(), "VmHWM:")
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    rt.block_on(async {
        let amqp = platform::bus::AmqpBus::connect(&cfg)
            .await
            .expect("RabbitMQ");
        // The gateway declared every consumer group's queues: remove them all.
        for g in proto::routing::GROUPS {
            amqp.declare(&GroupSpec::new(g.name, g.bindings, &cfg))
                .await
                .ok();
        }
        amqp.destroy().await.ok();
        if let Ok(r) = platform::cache::RedisCache::connect(
            &scrm_tests::servers::redis_url(),
            &format!("{exchange}:"),
        )
        .await
        {
            r.delete_prefix().await.ok();
        }
    });
    full.rps
}

/// The gateway's mean time from publish to confirm so far, from its `/metrics`.
async fn mean_publish_wait(url: &str) -> Option<Duration> {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    let value = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l.contains("channel=\"oa\""))
            .and_then(|l| l.split_whitespace().last())
            .and_then(|v| v.parse().ok())
    };
    let (sum, count) = (
        value("scrm_gateway_publish_seconds_sum")?,
        value("scrm_gateway_publish_seconds_count")?,
    );
    (count > 0.0).then(|| Duration::from_secs_f64(sum / count))
}

/// RabbitMQ's own confirmed-publish rate: `publishers` (64 as the foundation benchmark,
/// `bus_throughput`, measures it) in this process, for about `seconds` at this machine's usual rate.
fn broker(rt: &tokio::runtime::Runtime, seconds: u32, publishers: u64) -> f64 {
    use scrm_tests::bus_load::{channel_group, publish_concurrent};
    rt.block_on(async {
        let mut cfg = BusConfig::amqp(scrm_tests::servers::amqp_url());
        cfg.exchange = scrm_tests::servers::unique("gwbroker");
        cfg.publish_timeout_ms = 30_000;
        let amqp = platform::bus::AmqpBus::connect(&cfg)
            .await
            .expect("RabbitMQ");
        amqp.declare(&channel_group(256)).await.expect("declare");
        let per_publisher = 6_400 * seconds as u64 / publishers.max(1);
        let r = publish_concurrent(Arc::new(amqp.clone()), publishers, per_publisher, 0).await;
        amqp.destroy().await.ok();
        println!(
            "   broker: {:>8.0} confirmed publishes/s  p50 {:>8.2?}  p99 {:>8.2?}  ({publishers} publishers, one queue)",
            r.per_sec, r.p50, r.p99
        );
        r.per_sec
    })
}

/// Minimal TOML writer for the nested JSON config above (tables of scalars, arrays of tables).
fn toml_of(v: &serde_json::Value) -> String {
    fn scalar(v: &serde_json::Value) -> String {
        match v {
            serde_json::Value::String(s) => format!("{s:?}"),
            other => other.to_string(),
        }
    }
    fn table(out: &mut String, path: &str, v: &serde_json::Value) {
        let obj = v.as_object().unwrap();
        for (k, val) in obj {
            if !val.is_object() && !val.is_array() {
                out.push_str(&format!("{k} = {}\n", scalar(val)));
            }
        }
        for (k, val) in obj {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            if val.is_object() {
                out.push_str(&format!("\n[{p}]\n"));
                table(out, &p, val);
            } else if let Some(items) = val.as_array() {
                for item in items {
                    out.push_str(&format!("\n[[{p}]]\n"));
                    table(out, &p, item);
                }
            }
        }
    }
    let mut out = String::new();
    table(&mut out, "", v);
    out
}
