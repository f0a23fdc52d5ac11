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
            Box::new(migrations::FollowCorpTags),
        ]
    }
}

/// Profile status of a live profile.
pub const ACTIVE: &str = "active";
/// Profile status of a profile absorbed into another (`merged_into`).
pub const MERGED: &str = "merged";

pub use platform::db::is_contention;
