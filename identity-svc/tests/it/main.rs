//! identity-svc's integration tests, one binary: resolution (and its races), the 360° profile,
//! notes, reversible merges, the source registry, and the internal HTTP API, on MariaDB and
//! SQLite.

mod api;
#[macro_use]
mod notes;
mod profile;
mod resolution;
mod sources;
mod unmerge;
