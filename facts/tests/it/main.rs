//! facts' integration tests, one binary: recording profile state and behaviour on MariaDB and
//! SQLite.

mod record;
