//! gateway's integration tests against real databases, one binary: reps signing in to the
//! sidebar and the lead-notification records, on MariaDB and SQLite.

mod notify;
mod reps;
