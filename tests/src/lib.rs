//! Test support shared by the end-to-end, conformance and benchmark harnesses: where the real
//! servers are, and per-test isolation (fresh databases, unique bus names, Redis key prefixes).
//!
//! Owns: test fixtures only. Must not touch: production code paths (it only calls public APIs).
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
pub mod scoring;
pub mod servers;
pub mod tagging;
