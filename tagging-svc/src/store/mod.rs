//! Tables of the tagging service and their migrations.

pub mod catalog;
pub mod entities;
pub mod migrations;

use platform::db::migrations::{CreateInbox, CreateOutbox};
use sea_orm_migration::{MigrationTrait, MigratorTrait};

/// Every migration of this service, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateInbox),
            Box::new(CreateOutbox),
            Box::new(facts::CreateFactsTables),
            Box::new(migrations::CreateTaggingTables),
        ]
    }
}
