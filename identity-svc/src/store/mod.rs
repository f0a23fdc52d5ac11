//! Tables of the identity service, their migrations, the transactional resolution of one event
//! ([`resolve`]) and the reads behind the internal API ([`queries`]).

pub mod directory;
pub mod edits;
pub mod entities;
pub mod migrations;
pub mod queries;
pub mod resolve;
pub mod state;
pub mod unmerge;

use platform::db::migrations::{CreateInbox, CreateOutbox};
use sea_orm::{DbErr, SqlErr};
use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub use resolve::{Outcome, Resolution, ResolveError, Resolver};

/// Every migration of this service, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateInbox),
            Box::new(CreateOutbox),
            Box::new(migrations::CreateIdentityTables),
            Box::new(migrations::ReversibleMerges),
            Box::new(migrations::ProfileStateTables),
        ]
    }
}

/// Profile status of a live profile.
pub const ACTIVE: &str = "active";
/// Profile status of a profile absorbed into another (`merged_into`).
pub const MERGED: &str = "merged";

/// Is `e` a race the whole transaction should simply be run again for: a unique-key violation
/// (another transaction created the same identifier first), a deadlock or lock-wait timeout
/// (MySQL/MariaDB 1213, 1205, 1020), or a busy / locked SQLite database?
pub fn is_contention(e: &DbErr) -> bool {
    if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) {
        return true;
    }
    let s = e.to_string();
    [
        "1213",
        "1205",
        "1020",
        "Deadlock found",
        "Lock wait timeout",
        "Record has changed since last read",
        "database is locked",
        "database table is locked",
        "SQLITE_BUSY",
    ]
    .iter()
    .any(|p| s.contains(p))
}
