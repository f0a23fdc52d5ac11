//! identity-svc's integration tests, one binary: resolution (and its races), the 360° profile,
//! notes, reversible merges, and the internal HTTP API, on MariaDB and SQLite.

mod api;
mod notes;
mod profile;
mod resolution;
mod unmerge;
