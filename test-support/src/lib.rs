//! Test support shared by every crate's integration tests and by the benchmark harnesses: where
//! the real servers are, and per-test isolation (fresh databases, unique bus names, Redis key
//! prefixes), a proxy that cuts connections, service credentials, channel events as the gateway
//! publishes them, and the list contract every service API keeps.
//!
//! Owns: test fixtures only. Must not touch: production code paths (it only calls public APIs),
//! and it depends on no service crate — testing one crate builds no other service.
//!
//! Servers come from `SCRM_TEST_MYSQL_URL`, `SCRM_TEST_REDIS_URL`, `SCRM_TEST_AMQP_URL`, defaulting to
//! the local servers. When one is unreachable a test fails with a message naming the server — it
//! never skips (CI runs with `CI=true`; locally the message says how to start the servers).

pub mod auth;
pub mod bus_load;
pub mod db;
pub mod events;
pub mod pages;
pub mod proxy;
pub mod servers;
