//! scoring-svc's integration tests, one binary: the engine (redelivery, merges, un-merges,
//! batches), the property test against a brute-force recomputation, two instances racing, and
//! the internal API, on MariaDB and SQLite. `fixtures` is shared with the benchmarks.

mod api;
mod engine;
mod fixtures;
mod prop;
mod race;
