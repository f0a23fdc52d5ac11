//! Fixtures the benchmark harnesses and the end-to-end tests share across services: scoring's
//! (the same file scoring-svc's tests use) and the tag catalogue's. Servers, databases and the
//! rest of the per-test isolation are in `test-support`.
//!
//! Owns: test fixtures only. Must not touch: production code paths (it only calls public APIs).

#[path = "../../scoring-svc/tests/it/fixtures.rs"]
pub mod scoring;
pub mod tagging;
