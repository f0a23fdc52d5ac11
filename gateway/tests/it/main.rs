//! gateway's integration tests against real databases, one binary: reps signing in to the
//! sidebar, the lead-notification records and export jobs, on MariaDB and SQLite.

mod exports;
mod notify;
mod reps;
