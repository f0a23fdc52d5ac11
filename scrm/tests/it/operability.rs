//! Operability of the running system: a background task that dies is restarted and readiness
//! says so meanwhile (nothing it was to relay is lost); parked messages are listed and sent back
//! from the command line; and no queue holds messages nobody reads — every group has a consumer
//! and the queues drain, on the in-process bus and on RabbitMQ (with MariaDB and Redis).

use crate::common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use fake_wechat::{CallbackMode, FakeHandle, FakeWechat};
use platform::bus::{Bus, GroupSpec};
use platform::config::BusConfig;
use scrm::roles::Role;
use serde_json::{json, Value};
use test_support::servers::{amqp_url, mysql_url, redis_url, unique};

/// `/readyz` of `url`: (status, body).
async fn readyz(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = http.get(format!("{url}/readyz")).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or_default())
}

/// Polls `/readyz` until it answers `want` (at most `within`); the body then.
async fn readyz_becomes(http: &reqwest::Client, url: &str, want: u16, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, body) = readyz(http, url).await;
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "{url}/readyz stayed {status}, not {want}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Sends an OA follow of `openid` through the gateway; asserts WeChat got its `success`.
async fn follow(fake: &FakeHandle, gw: &str, openid: &str) {
    let apps = fake.apps();
    let xml = fake.callbacks(&apps.oa).subscribe(openid);
    let r = fake
        .send_oa(gw, &apps.oa, &xml, CallbackMode::Safe)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
}

/// Waits until every system group's queue is empty and stays so for a moment (its consumer
/// has taken everything).
async fn drained(bus: &dyn Bus, within: Duration) {
    let deadline = Instant::now() + within;
    let mut quiet_since: Option<Instant> = None;
    loop {
        let mut waiting = 0;
        for g in proto::routing::GROUPS {
            waiting += bus.queue_depth(g.name).await.unwrap();
        }
        if waiting == 0 {
            let since = *quiet_since.get_or_insert_with(Instant::now);
            if since.elapsed() > Duration::from_millis(500) {
                return;
            }
        } else {
            quiet_since = None;
        }
        assert!(
            Instant::now() < deadline,
            "{waiting} messages still queued after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_relay_turns_readyz_red_then_green_and_loses_nothing() {
    let fake = FakeWechat::start(0, 31).unwrap();
    let (running, dir) = common::start_up(
        &fake,
        Some(json!({"identity": {"wechat": {"enabled": false}}})),
    )
    .await;
    let observer = GroupSpec::new("ops-observer", &["profile.resolved"], &BusConfig::memory());
    let mut resolved = running.deps.bus.subscribe(&observer).await.unwrap();
    let (gw, identity) = (running.url(Role::Gateway), running.url(Role::Identity));
    let http = reqwest::Client::new();
    readyz_becomes(&http, &identity, 200, Duration::from_secs(5)).await;
    let tasks = running.deps.tasks.names();
    for t in [
        "identity.outbox",
        "identity.consumer",
        "tagging.outbox",
        "tagging.scheduler",
        "scoring.scheduler",
        "gateway.outbox",
    ] {
        assert!(tasks.iter().any(|n| n == t), "{t} is supervised: {tasks:?}");
    }

    follow(&fake, &gw, "oOPS-before").await;
    assert!(
        running.deps.tasks.abort("identity.outbox"),
        "the relay runs"
    );
    let body = readyz_becomes(&http, &identity, 503, Duration::from_secs(2)).await;
    let tasks_check = body["checks"]["tasks"].as_str().unwrap_or_default();
    assert!(
        tasks_check.contains("identity.outbox is down"),
        "readiness names the task: {body}"
    );
    // Accepted while the relay is down: resolved, its announcement waits in the outbox.
    follow(&fake, &gw, "oOPS-during").await;
    readyz_becomes(&http, &identity, 200, Duration::from_secs(5)).await;
    follow(&fake, &gw, "oOPS-after").await;

    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 3 && Instant::now() < deadline {
        let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(1), resolved.recv()).await
        else {
            continue;
        };
        let r: proto::identity::ProfileResolved = d.envelope.decode().unwrap();
        let cb: proto::callback::CallbackReceived = r.event.payload_as().unwrap();
        seen.insert(cb.event.from_user_name);
        d.ack().await.unwrap();
    }
    assert_eq!(
        seen,
        HashSet::from(["oOPS-before", "oOPS-during", "oOPS-after"].map(String::from)),
        "every accepted callback was resolved and announced"
    );
    let metrics = http
        .get(format!("{identity}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("scrm_task_restarts_total{task=\"identity.outbox\"} 1"),
        "the restart is counted"
    );
    // The in-process queues are empty once the consumers caught up: nothing waits for a reader
    // that does not exist (`lead.*` has no queue at all).
    drained(&*running.deps.bus, Duration::from_secs(20)).await;
    assert!(running.deps.bus.queue_depth("leads").await.is_err());
    drop(resolved);
    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// Runs the `scrm` binary with `args`; (success, stdout + stderr).
fn scrm(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_scrm"));
    cmd.args(args)
        .env_remove("SCRM_CONFIG")
        .env_remove("SCRM_BUS__URL")
        .env_remove("SCRM_DATA_DIR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// A message identity-svc can never handle (its payload is not a callback).
fn poison(tenant: &str) -> proto::Envelope {
    proto::Envelope::builder("channel.oa.subscribe", tenant, json!({"not": "a callback"})).build()
}

async fn parked_count(bus: &dyn Bus, group: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while bus.parked_count(group).await.unwrap() != n {
        assert!(Instant::now() < deadline, "{group} never had {n} parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_messages_are_listed_and_replayed_from_the_command_line() {
    // Embedded: the tool asks the running `scrm up` through its gateway.
    let fake = FakeWechat::start(0, 32).unwrap();
    let (running, dir) = common::start_up(&fake, None).await;
    let bus = running.deps.bus.clone();
    let bad = poison(common::TENANT);
    bus.publish(&bad).await.unwrap();
    parked_count(&*bus, "identity", 1).await;
    let target = [
        "--url".to_string(),
        running.url(Role::Gateway),
        "--internal-key".to_string(),
        common::INTERNAL_KEY.to_string(),
    ];
    let with = |args: &[&str]| -> Vec<String> {
        args.iter()
            .map(|s| s.to_string())
            .chain(target.iter().cloned())
            .collect()
    };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ok, out) = scrm(&args, &[]);
        assert!(ok, "scrm {args:?}: {out}");
        out
    };
    let listed = tokio::task::spawn_blocking({
        let a = with(&["bus", "parked"]);
        move || run(a)
    })
    .await
    .unwrap();
    assert!(listed.contains("identity: 0 queued, 1 parked"), "{listed}");
    assert!(listed.contains("tagging: 0 queued, 0 parked"), "{listed}");
    assert!(listed.contains(&bad.id.to_string()), "{listed}");
    assert!(listed.contains("channel.oa.subscribe"), "{listed}");
    let replayed = tokio::task::spawn_blocking({
        let a = with(&[
            "bus",
            "replay",
            "--group",
            "identity",
            "--id",
            &bad.id.to_string(),
        ]);
        move || run(a)
    })
    .await
    .unwrap();
    assert!(
        replayed.contains("identity: 1 parked message(s) sent back"),
        "{replayed}"
    );
    // Still not a callback: handled again, parked again, with a fresh attempt count.
    parked_count(&*bus, "identity", 1).await;
    let (ok, out) = tokio::task::spawn_blocking({
        let mut a = with(&["bus", "replay", "--group", "identity", "--id"]);
        a.insert(5, uuid::Uuid::now_v7().to_string());
        // Without the key given, the data dir's is used: the test's `scrm up` has another.
        a.truncate(a.len() - 2);
        a.extend(["--data-dir".to_string(), dir.display().to_string()]);
        move || {
            let args: Vec<&str> = a.iter().map(String::as_str).collect();
            scrm(&args, &[])
        }
    })
    .await
    .unwrap();
    assert!(!ok && out.contains("401"), "{out}");
    let (ok, out) = tokio::task::spawn_blocking({
        let mut a = with(&["bus", "replay", "--group", "identity", "--id"]);
        a.insert(5, uuid::Uuid::now_v7().to_string());
        move || {
            let args: Vec<&str> = a.iter().map(String::as_str).collect();
            scrm(&args, &[])
        }
    })
    .await
    .unwrap();
    assert!(!ok && out.contains("no parked message"), "{out}");
    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(&dir);

    // Production: the tool talks to RabbitMQ itself.
    let mut cfg = BusConfig::amqp(amqp_url());
    cfg.exchange = unique("opstest");
    let amqp = platform::bus::AmqpBus::connect(&cfg).await.unwrap();
    platform::bus::declare_groups(&amqp, proto::routing::GROUPS)
        .await
        .unwrap();
    let mut sub = amqp
        .subscribe(&platform::bus::group_spec(
            &amqp,
            proto::routing::IDENTITY,
            1,
        ))
        .await
        .unwrap();
    let bad = poison("t-ops");
    amqp.publish(&bad).await.unwrap();
    let d = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap()
        .unwrap();
    d.park("not a callback").await.unwrap();
    let env = [
        ("SCRM_BUS__URL", amqp_url()),
        ("SCRM_BUS__EXCHANGE", cfg.exchange.clone()),
        ("SCRM_CACHE__URL", redis_url()),
    ];
    let (ok, out) = tokio::task::spawn_blocking({
        let env = env.clone();
        move || scrm(&["bus", "parked", "--group", "identity", "--json"], &env)
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    let json_start = out.find('[').expect("JSON");
    let reports: Value = serde_json::from_str(&out[json_start..]).unwrap();
    assert_eq!(reports[0]["parked_count"], 1, "{out}");
    assert_eq!(reports[0]["parked"][0]["id"], json!(bad.id), "{out}");
    assert_eq!(
        reports[0]["parked"][0]["last_error"], "not a callback",
        "{out}"
    );
    let (ok, out) = tokio::task::spawn_blocking({
        let env = env.clone();
        move || scrm(&["bus", "replay", "--group", "identity", "--all"], &env)
    })
    .await
    .unwrap();
    assert!(
        ok && out.contains("identity: 1 parked message(s) sent back"),
        "{out}"
    );
    let back = tokio::time::timeout(Duration::from_secs(5), sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((back.envelope.id, back.attempt), (bad.id, 1));
    back.ack().await.unwrap();
    drop(sub);
    amqp.destroy().await.unwrap();
}

/// `rabbitmqctl list_queues` of the queues of `exchange`: (name, messages, consumers).
fn list_queues(exchange: &str) -> Vec<(String, u64, u64)> {
    let out = std::process::Command::new("rabbitmqctl")
        .args([
            "list_queues",
            "--quiet",
            "--no-table-headers",
            "name",
            "messages",
            "consumers",
        ])
        .output()
        .expect("rabbitmqctl (the RabbitMQ server's own tool) runs on this machine");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            match f.as_slice() {
                [name, messages, consumers] if name.starts_with(&format!("{exchange}.")) => Some((
                    name.to_string(),
                    messages.parse().ok()?,
                    consumers.parse().ok()?,
                )),
                _ => None,
            }
        })
        .collect()
}

/// A fresh MariaDB database URL for a role of this test.
fn database(role: &str) -> String {
    format!("{}/{}", mysql_url(), unique(&format!("ops_{role}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_queue_holds_messages_nobody_reads_on_rabbitmq() {
    let fake = FakeWechat::start(0, 33).unwrap();
    let exchange = unique("opsq");
    let dbs: Vec<(&str, String)> = ["gateway", "identity", "tagging", "scoring"]
        .into_iter()
        .map(|r| (r, database(r)))
        .collect();
    let mut extra = json!({
        "bus": {"kind": "amqp", "url": amqp_url(), "exchange": exchange},
        "cache": {"kind": "redis", "url": redis_url(), "key_prefix": format!("{exchange}:")},
        "identity": {"wechat": {"enabled": false},
                     "pii_key": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="},
    });
    for (role, url) in &dbs {
        extra[role]["database"] = json!({ "url": url });
    }
    let (running, dir) = common::start_up(&fake, Some(extra)).await;
    let gw = running.url(Role::Gateway);
    // 300 by default; `OPS_CALLBACKS=10000` for the long run the README reports.
    let callbacks: usize = std::env::var("OPS_CALLBACKS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let started = Instant::now();
    for i in 0..callbacks {
        follow(&fake, &gw, &format!("oQUEUE{i:05}")).await;
    }
    println!("{callbacks} callbacks accepted in {:?}", started.elapsed());
    // Everything queued (ready or delivered and not yet acknowledged, retries included) is
    // read within the deadline.
    let deadline = Instant::now() + Duration::from_secs(120 + callbacks as u64 / 20);
    let queues = loop {
        let queues = tokio::task::spawn_blocking({
            let x = exchange.clone();
            move || list_queues(&x)
        })
        .await
        .unwrap();
        if queues.iter().all(|(_, messages, _)| *messages == 0) || Instant::now() > deadline {
            break queues;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    println!(
        "queues empty {:?} after the first callback",
        started.elapsed()
    );
    let groups: Vec<String> = proto::routing::GROUPS
        .iter()
        .map(|g| format!("{exchange}.{}", g.name))
        .collect();
    for g in &groups {
        let q = queues.iter().find(|(n, _, _)| n == g);
        assert!(
            q.is_some_and(|(_, _, consumers)| *consumers >= 1),
            "{g} has a consumer: {queues:?}"
        );
    }
    for (name, messages, consumers) in &queues {
        assert_eq!(
            *messages, 0,
            "{name} holds messages ({consumers} consumers): {queues:?}"
        );
    }
    assert!(
        !queues.iter().any(|(n, _, _)| n.ends_with(".leads")),
        "no queue for lead events nobody reads: {queues:?}"
    );
    running.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
    let mut cfg = BusConfig::amqp(amqp_url());
    cfg.exchange = exchange;
    let bus = platform::bus::AmqpBus::connect(&cfg).await.unwrap();
    platform::bus::declare_groups(&bus, proto::routing::GROUPS)
        .await
        .unwrap();
    bus.destroy().await.unwrap();
    for (_, url) in dbs {
        platform::db::drop_mysql_database(&url).await.unwrap();
    }
}
