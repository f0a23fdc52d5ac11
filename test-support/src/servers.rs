//! Locating and isolating the real MariaDB, Redis and RabbitMQ servers for a test.

use std::net::ToSocketAddrs;
use std::time::Duration;

/// Default URLs of the local servers (the README's test command exports the same).
pub const DEFAULT_MYSQL_URL: &str = "mysql://root@127.0.0.1:3306";
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

fn url(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| default.to_string())
}

/// Panics (failing the test) with a message naming the server when its TCP port does not answer.
fn require(server: &str, var: &str, url: &str, default_port: u16) {
    let rest = url.split("://").nth(1).unwrap_or(url);
    let hostport = rest.rsplit('@').next().unwrap_or(rest);
    let hostport = hostport.split(['/', '?']).next().unwrap_or(hostport);
    let target = if hostport.contains(':') {
        hostport.to_string()
    } else {
        format!("{hostport}:{default_port}")
    };
    let reachable = target
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .map(|addr| std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).is_ok())
        .unwrap_or(false);
    if !reachable {
        let ci = std::env::var("CI").map(|v| v == "true").unwrap_or(false);
        panic!(
            "{server} is unreachable at {target} ({var}){}; start it with deploy/ensure-services.sh",
            if ci { " under CI=true — this test needs the real server" } else { "" }
        );
    }
}

/// MySQL/MariaDB server URL (no database part), checked reachable.
pub fn mysql_url() -> String {
    let u = url("SCRM_TEST_MYSQL_URL", DEFAULT_MYSQL_URL);
    require("MariaDB/MySQL", "SCRM_TEST_MYSQL_URL", &u, 3306);
    u.trim_end_matches('/').to_string()
}

/// Redis URL, checked reachable.
pub fn redis_url() -> String {
    let u = url("SCRM_TEST_REDIS_URL", DEFAULT_REDIS_URL);
    require("Redis", "SCRM_TEST_REDIS_URL", &u, 6379);
    u
}

/// RabbitMQ URL, checked reachable.
pub fn amqp_url() -> String {
    let u = url("SCRM_TEST_AMQP_URL", DEFAULT_AMQP_URL);
    require("RabbitMQ", "SCRM_TEST_AMQP_URL", &u, 5672);
    u
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a process the test starts).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind 127.0.0.1:0")
        .local_addr()
        .expect("local address")
        .port()
}

/// A short unique suffix for database, exchange, queue and key names.
pub fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

#[cfg(test)]
mod tests {
    use super::require;

    #[test]
    #[should_panic(expected = "RabbitMQ is unreachable at 127.0.0.1:1 (SCRM_TEST_AMQP_URL)")]
    fn unreachable_broker_fails_naming_it() {
        require(
            "RabbitMQ",
            "SCRM_TEST_AMQP_URL",
            "amqp://guest:guest@127.0.0.1:1/%2f",
            5672,
        );
    }

    #[test]
    #[should_panic(expected = "MariaDB/MySQL is unreachable at 127.0.0.1:1")]
    fn unreachable_database_fails_naming_it() {
        require(
            "MariaDB/MySQL",
            "SCRM_TEST_MYSQL_URL",
            "mysql://root@127.0.0.1:1",
            3306,
        );
    }

    #[test]
    #[should_panic(expected = "Redis is unreachable at 127.0.0.1:1")]
    fn unreachable_cache_fails_naming_it() {
        require("Redis", "SCRM_TEST_REDIS_URL", "redis://127.0.0.1:1", 6379);
    }
}
