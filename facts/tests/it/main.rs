//! facts' integration tests, one binary: recording profile state and behaviour on MariaDB and
//! SQLite, and migrating a projection made before the analytics tables.

mod migrate;
mod record;
