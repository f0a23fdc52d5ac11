//! The `scrm` binary as a user runs it: `scrm up` with zero set-up, clear failures for a bad data
//! dir or config key, and production roles against the real MariaDB, RabbitMQ and Redis.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_scrm");

fn scrm() -> Command {
    let mut c = Command::new(BIN);
    // The parent's SCRM_* settings must not leak into the child.
    for (k, _) in std::env::vars() {
        if k.starts_with("SCRM_") && !k.starts_with("SCRM_TEST_") {
            c.env_remove(k);
        }
    }
    c.env("SCRM_LOG", "warn");
    c
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("scrm-cli-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `GET path` over plain HTTP/1.1; (status, body).
fn get(addr: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}

fn wait_ready(addr: &str, within: Duration) -> (u16, String) {
    let deadline = Instant::now() + within;
    loop {
        match get(addr, "/readyz") {
            Ok((200, body)) => return (200, body),
            other if Instant::now() > deadline => panic!("{addr}/readyz not ready: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn up_serves_every_role_and_answers_ready() {
    let data = temp_dir("up");
    let started = Instant::now();
    let mut child = scrm()
        .args(["up", "--data-dir"])
        .arg(&data)
        .args(["--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut guard = Killed(child);
    let mut urls = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        if line.starts_with("Press Ctrl-C") {
            break;
        }
        if let Some(url) = line
            .split_whitespace()
            .nth(1)
            .filter(|u| u.starts_with("http://"))
        {
            urls.push(url.trim_start_matches("http://").to_string());
        }
    }
    assert_eq!(
        urls.len(),
        4,
        "gateway, identity, tagging, scoring URLs printed"
    );
    for addr in &urls {
        let (status, body) = wait_ready(addr, Duration::from_secs(60));
        assert_eq!(status, 200);
        assert!(body.contains("\"database\":\"ok\""), "{body}");
        let (status, body) = get(addr, "/healthz").unwrap();
        assert_eq!(status, 200, "{body}");
        let (status, metrics) = get(addr, "/metrics").unwrap();
        assert_eq!(status, 200);
        assert!(metrics.contains("scrm_http_requests_total"), "{metrics}");
    }
    let (status, body) = get(&urls[0], "/no/such/route").unwrap();
    assert_eq!(status, 404);
    assert!(body.contains("\"code\":\"not_found\""), "{body}");
    assert!(started.elapsed() < Duration::from_secs(60));
    for db in ["gateway", "identity", "tagging", "scoring"] {
        assert!(
            data.join(format!("{db}.db")).is_file(),
            "{db}.db created in the data dir"
        );
    }
    // SIGTERM stops it cleanly.
    let pid = guard.0.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            assert!(status.success(), "clean exit on SIGTERM: {status}");
            break;
        }
        assert!(Instant::now() < deadline, "scrm up did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::remove_dir_all(data).unwrap();
}

fn fails_with(cmd: &mut Command, expected: &[&str]) {
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    for e in expected {
        assert!(stderr.contains(e), "expected `{e}` in: {stderr}");
    }
    assert!(!stderr.contains("panicked"), "no panic: {stderr}");
}

#[test]
fn up_with_unusable_data_dir_fails_clearly() {
    let dir = temp_dir("file");
    let file = dir.join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    fails_with(
        scrm()
            .args(["up", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&file),
        &["data dir", "not a directory"],
    );
    fails_with(
        scrm()
            .args(["up", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(file.join("sub")),
        &["data dir"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn up_with_bad_config_key_names_it() {
    let dir = temp_dir("cfg");
    let cfg = dir.join("scrm.toml");
    std::fs::write(&cfg, "[bus]\nkind = \"memory\"\nretry_delay_ms = [5]\n").unwrap();
    fails_with(
        scrm()
            .args(["up", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("d"))
            .arg("--config")
            .arg(&cfg),
        &["retry_delay_ms", "bus"],
    );
    std::fs::write(&cfg, "[bus]\nkind = \"carrier-pigeon\"\n").unwrap();
    fails_with(
        scrm()
            .args(["up", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("d"))
            .arg("--config")
            .arg(&cfg),
        &["carrier-pigeon", "bus.kind"],
    );
    fails_with(
        scrm()
            .args(["up", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("d"))
            .env("SCRM_IDENTITY__DATABASE__URL", "postgres://nope"),
        &["identity.database.url"],
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn production_role_without_urls_names_the_missing_key() {
    fails_with(scrm().arg("identity"), &["bus.url"]);
}

/// `scrm migrate` then `scrm identity` against the real servers (production mode).
#[test]
fn production_role_runs_against_mariadb_rabbitmq_redis() {
    let mysql = test_support::servers::mysql_url();
    let amqp = test_support::servers::amqp_url();
    let redis = test_support::servers::redis_url();
    let db = test_support::servers::unique("scrm_cli");
    let exchange = test_support::servers::unique("clitest");
    let port = test_support::servers::free_port();
    let env = |c: &mut Command| {
        c.env("SCRM_BUS__URL", &amqp)
            .env("SCRM_BUS__EXCHANGE", &exchange)
            .env("SCRM_CACHE__URL", &redis)
            .env("SCRM_CACHE__KEY_PREFIX", format!("{exchange}:"))
            .env("SCRM_IDENTITY__DATABASE__URL", format!("{mysql}/{db}"))
            .env(
                "SCRM_IDENTITY__PII_KEY",
                "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
            )
            .env("SCRM_IDENTITY__HTTP__BIND", format!("127.0.0.1:{port}"))
            // WeChat enrichment is on in production: it needs the gateway's URL and key (it
            // asks the gateway for tokens only when an event needs a lookup).
            .env("SCRM_IDENTITY__WECHAT__GATEWAY_URL", "http://127.0.0.1:9")
            .env(
                "SCRM_IDENTITY__WECHAT__INTERNAL_KEY",
                "cli-internal-key-0123456789abcdef0123",
            )
            .env(
                "SCRM_IDENTITY__INTERNAL_KEY",
                "cli-internal-key-0123456789abcdef0123",
            );
    };

    // Before migrating, the role refuses to start and says what to do.
    let mut cmd = scrm();
    env(&mut cmd);
    cmd.env(
        "SCRM_IDENTITY__DATABASE__URL",
        format!("{mysql}/{db}_missing"),
    );
    let out = cmd.arg("identity").output().unwrap();
    assert!(!out.status.success());

    let mut cmd = scrm();
    env(&mut cmd);
    let out = cmd
        .args(["migrate", "--role", "identity"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("identity: migrations applied"));

    let mut cmd = scrm();
    env(&mut cmd);
    let child = cmd
        .arg("identity")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let guard = Killed(child);
    let (_, body) = wait_ready(&format!("127.0.0.1:{port}"), Duration::from_secs(30));
    for check in ["database", "bus", "cache"] {
        assert!(body.contains(&format!("\"{check}\":\"ok\"")), "{body}");
    }
    drop(guard);

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        platform::db::drop_mysql_database(&format!("{mysql}/{db}"))
            .await
            .unwrap();
        platform::db::drop_mysql_database(&format!("{mysql}/{db}_missing"))
            .await
            .ok();
        let mut cfg = platform::config::BusConfig::amqp(amqp.clone());
        cfg.exchange = exchange.clone();
        // The role declared the system's consumer groups on this exchange: delete them too.
        let bus = platform::bus::AmqpBus::connect(&cfg).await.unwrap();
        for g in proto::routing::GROUPS {
            platform::bus::Bus::declare(
                &bus,
                &platform::bus::GroupSpec::new(g.name, g.bindings, &cfg),
            )
            .await
            .unwrap();
        }
        bus.destroy().await.unwrap();
    });
}
