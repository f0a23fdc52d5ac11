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
//! to alternate them on a noisy machine), `BENCH_GATEWAY_WORKERS` (the gateway's HTTP workers, 2),
//! `BENCH_BROKER_GAP_US` (a pause per publish in the `broker` scenario, 0), `BENCH_QUORUM_QUEUES`
//! (`true`: quorum queues on both sides of the comparison).

use std::io::Write;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fake_wechat::{prepare_oa, CallbackMode, FakeOptions, FakeWechat};
use platform::bus::{Bus, BusError, GroupSpec, Subscription};
use platform::config::BusConfig;
use platform::Deps;
use proto::Envelope;
use serde_json::json;

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

/// Callbacks in the corpus: more than the fastest scenario (the discarding gateway, ~50 000/s)
/// sends in a default run of 10 s, and than a RabbitMQ scenario's full-load and half-load runs
/// together, so no run replays a callback (which the dedupe hint would answer without a publish).
const CORPUS: u64 = 600_000;

/// Says so when a run went past the end of a wrk thread's share of the corpus (each of the two
/// threads has half): what it sent after that were replays.
fn note_wrap(r: &WrkResult) {
    let past = r.position.saturating_sub(CORPUS / 2);
    if past > 0 {
        println!(
            "           (the corpus ran out: up to {} of these were replays; raise CORPUS for runs this long)",
            2 * past
        );
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
    /// Requests wrk completed in the run.
    requests: u64,
    /// How far into its share of the corpus the furthest wrk thread got (where a next run
    /// against the same gateway starts, so it sends no replays).
    position: u64,
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
    skip: u64,
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
        .args([corpus, "2", &delay_ms.to_string(), &skip.to_string()])
        .output()
        .expect("wrk on PATH (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout);
    let find = |prefix: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.split_whitespace().nth(1).unwrap_or("").to_string())
            .unwrap_or_default()
    };
    // The count on the line that contains `needle`: its first word or its last.
    let count = |needle: &str, last: bool| -> u64 {
        text.lines()
            .find(|l| l.contains(needle))
            .and_then(|l| {
                let mut words = l.split_whitespace();
                if last {
                    words.last()
                } else {
                    words.next()
                }
            })
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let position = text
        .lines()
        .find_map(|l| l.strip_prefix("corpus position: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    WrkResult {
        rps: find("Requests/sec:").parse().unwrap_or(0.0),
        requests: count(" requests in ", false),
        position,
        mean: find("Latency"),
        p50: find("50%"),
        p99: find("99%"),
        errors: count("Non-2xx", true),
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
    let n = CORPUS as usize;
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
    app: &fake_wechat::FakeApp,
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
    app: &fake_wechat::FakeApp,
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
        tasks: Default::default(),
        peers: Default::default(),
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
        0,
    );
    println!(
        "     noop: {:>8.0} callbacks/s  p50 {:>8}  p99 {:>8}  non-2xx {}  (in-process, dedupe hints in process memory)",
        r.rps, r.p50, r.p99, r.errors
    );
    note_wrap(&r);
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
    app: &fake_wechat::FakeApp,
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
    let port = test_support::servers::free_port();
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

/// CPU time (user + system) a process has used so far, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> Option<f64> {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let per_sec = *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name (which may hold spaces) start after its last ')';
    // utime and stime are the 12th and 13th of them.
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / per_sec)
}

/// The local RabbitMQ node's process (`beam.smp`), to account its CPU.
fn broker_pid() -> Option<u32> {
    let out = Command::new("pidof").arg("beam.smp").output().ok()?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU microseconds per item that `pid` spent between two readings.
fn cpu_us_per(before: Option<f64>, after: Option<f64>, items: u64) -> String {
    match (before, after) {
        (Some(b), Some(a)) if items > 0 => format!("{:.0} µs", (a - b) * 1e6 / items as f64),
        _ => "?".into(),
    }
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
    app: &fake_wechat::FakeApp,
    corpus: &str,
    script: &str,
    connections: u32,
    seconds: u32,
) -> f64 {
    let exchange = test_support::servers::unique("gwbench");
    let mut cfg = BusConfig::amqp(test_support::servers::amqp_url());
    cfg.exchange = exchange.clone();
    cfg.quorum_queues = env_or("BENCH_QUORUM_QUEUES", false);
    let port = test_support::servers::free_port();
    let mut gw = gateway_config(dir, app, "rabbitmq");
    gw["http"]["bind"] = json!(format!("127.0.0.1:{port}"));
    let config = json!({
        "bus": {"kind": "amqp", "url": test_support::servers::amqp_url(), "exchange": exchange,
                "quorum_queues": cfg.quorum_queues},
        "cache": {"kind": "redis", "url": test_support::servers::redis_url(), "key_prefix": format!("{exchange}:")},
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
    let (gw_cpu, mq_cpu) = (cpu_seconds(child.id()), broker_pid().and_then(cpu_seconds));
    let full = run_wrk(&url, corpus, script, connections, seconds, 0, 0);
    let (gw_cpu_after, mq_cpu_after) =
        (cpu_seconds(child.id()), broker_pid().and_then(cpu_seconds));
    let rss_full = child_rss_mb(child.id(), "VmRSS:");
    println!(
        " rabbitmq: {:>8.0} callbacks/s  p50 {:>8}  p99 {:>8}  non-2xx {}  gateway RSS {:.0} MB (idle {:.0} MB)",
        full.rps, full.p50, full.p99, full.errors, rss_full, idle
    );
    note_wrap(&full);
    let after_full = rt.block_on(GatewayCounts::read(&url)).unwrap_or_default();
    println!(
        "           wrk's mean {}; {}",
        full.mean,
        after_full.report(&GatewayCounts::default())
    );
    println!(
        "           CPU per callback: the gateway {}, RabbitMQ {}",
        cpu_us_per(gw_cpu, gw_cpu_after, full.requests),
        cpu_us_per(mq_cpu, mq_cpu_after, full.requests)
    );
    // Half load: every connection waits `delay` ms after each answer, so it sends one callback
    // per delay + latency. A short trial at the delay that ignores the latency measures the
    // latency at about this load; the run then takes it off the delay.
    let target = full.rps / 2.0;
    let conns = connections;
    let cycle_ms = conns as f64 * 1000.0 / target;
    let trial_delay = cycle_ms.round().max(1.0) as u32;
    // Each run starts past every callback the runs before it sent: a replay would be answered
    // from the dedupe hint, not published.
    let trial = run_wrk(&url, corpus, script, conns, 3, trial_delay, full.position);
    let latency_ms = (conns as f64 * 1000.0 / trial.rps.max(1.0) - trial_delay as f64).max(0.0);
    let delay = (cycle_ms - latency_ms).round().max(1.0) as u32;
    let before_half = rt.block_on(GatewayCounts::read(&url)).unwrap_or_default();
    let half = run_wrk(&url, corpus, script, conns, seconds, delay, trial.position);
    println!(
        " rabbitmq: {:>8.0} callbacks/s at about half load ({conns} connections, {delay} ms apart)  p50 {:>8}  p99 {:>8}  non-2xx {}  gateway RSS {:.0} MB, peak {:.0} MB",
        half.rps,
        half.p50,
        half.p99,
        half.errors,
        child_rss_mb(child.id(), "VmRSS:"),
        child_rss_mb(child.id(), "VmHWM:")
    );
    note_wrap(&half);
    let after_half = rt.block_on(GatewayCounts::read(&url)).unwrap_or_default();
    println!(
        "           wrk's mean {}; {}",
        half.mean,
        after_half.report(&before_half)
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
            &test_support::servers::redis_url(),
            &format!("{exchange}:"),
        )
        .await
        {
            r.delete_prefix().await.ok();
        }
    });
    full.rps
}

/// One of the gateway's latency histograms for OA callbacks, as read from its `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
struct Timing {
    sum: f64,
    count: f64,
    over_10ms: f64,
    over_100ms: f64,
}

impl Timing {
    /// Mean, share over 10 ms and share over 100 ms (in %) of what was recorded since `earlier`.
    fn since(&self, earlier: &Self) -> (Duration, f64, f64) {
        let count = self.count - earlier.count;
        if count <= 0.0 {
            return (Duration::ZERO, 0.0, 0.0);
        }
        (
            Duration::from_secs_f64((self.sum - earlier.sum) / count),
            100.0 * (self.over_10ms - earlier.over_10ms) / count,
            100.0 * (self.over_100ms - earlier.over_100ms) / count,
        )
    }
}

/// What the gateway counted so far, from its `/metrics`.
#[derive(Debug, Default, Clone, Copy)]
struct GatewayCounts {
    /// Whole callbacks, as the HTTP middleware times them (request read to answer).
    callback: Timing,
    /// The publish-to-confirm waits.
    publish: Timing,
    published: u64,
    duplicates: u64,
}

impl GatewayCounts {
    async fn read(url: &str) -> Option<Self> {
        let text = reqwest::get(format!("{url}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        // Sums every series of `name` whose labels contain all of `labels`.
        let sum = |name: &str, labels: &[&str]| -> f64 {
            text.lines()
                .filter(|l| l.starts_with(name) && labels.iter().all(|x| l.contains(x)))
                .filter_map(|l| l.split_whitespace().last()?.parse::<f64>().ok())
                .sum()
        };
        let timing = |name: &str, label: &str| {
            let count = sum(&format!("{name}_count"), &[label]);
            let under =
                |le: &str| sum(&format!("{name}_bucket"), &[label, &format!("le=\"{le}\"")]);
            Timing {
                sum: sum(&format!("{name}_sum"), &[label]),
                count,
                over_10ms: count - under("0.01"),
                over_100ms: count - under("0.1"),
            }
        };
        Some(Self {
            callback: timing("scrm_http_request_seconds", "route=\"/wechat/oa\""),
            publish: timing("scrm_gateway_publish_seconds", "channel=\"oa\""),
            published: sum("scrm_gateway_callbacks_total", &["outcome=\"published\""]) as u64,
            duplicates: sum("scrm_gateway_callbacks_total", &["outcome=\"duplicate\""]) as u64,
        })
    }

    /// One line on what the gateway saw since `earlier`.
    fn report(&self, earlier: &Self) -> String {
        let (cb, cb10, cb100) = self.callback.since(&earlier.callback);
        let (wait, w10, w100) = self.publish.since(&earlier.publish);
        format!(
            "in the gateway: callbacks {cb:.2?} mean ({cb10:.1} % over 10 ms, {cb100:.2} % over 100 ms), of which waiting for confirms {wait:.2?} ({w10:.1} %, {w100:.2} %); {} published, {} answered as duplicates",
            self.published.saturating_sub(earlier.published),
            self.duplicates.saturating_sub(earlier.duplicates)
        )
    }
}

/// RabbitMQ's own confirmed-publish rate: `publishers` (64 as the foundation benchmark,
/// `bus_throughput`, measures it) in this process, for about `seconds` at this machine's usual
/// rate. `BENCH_BROKER_GAP_US` makes each publisher pause that long between a confirm and its next
/// publish: the rate a front end spending that long of its own per message could reach at most.
fn broker(rt: &tokio::runtime::Runtime, seconds: u32, publishers: u64) -> f64 {
    use test_support::bus_load::{channel_group, publish_concurrent};
    rt.block_on(async {
        let mut cfg = BusConfig::amqp(test_support::servers::amqp_url());
        cfg.exchange = test_support::servers::unique("gwbroker");
        cfg.quorum_queues = env_or("BENCH_QUORUM_QUEUES", false);
        cfg.publish_timeout_ms = 30_000;
        let amqp = platform::bus::AmqpBus::connect(&cfg)
            .await
            .expect("RabbitMQ");
        amqp.declare(&channel_group(256)).await.expect("declare");
        let per_publisher = 15_000 * seconds as u64 / publishers.max(1);
        let gap = Duration::from_micros(env_or("BENCH_BROKER_GAP_US", 0));
        let cpu = broker_pid().and_then(cpu_seconds);
        let r = publish_concurrent(Arc::new(amqp.clone()), publishers, per_publisher, 0, gap).await;
        let cpu = cpu_us_per(
            cpu,
            broker_pid().and_then(cpu_seconds),
            publishers * per_publisher,
        );
        amqp.destroy().await.ok();
        let paused = if gap.is_zero() {
            String::new()
        } else {
            format!(", each pausing {gap:?} after a confirm")
        };
        println!(
            "   broker: {:>8.0} confirmed publishes/s  mean {:>8.2?}  p50 {:>8.2?}  p99 {:>8.2?}  ({publishers} publishers, one queue{paused}; RabbitMQ CPU {cpu} per publish)",
            r.per_sec, r.mean, r.p50, r.p99
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
