//! Tables of the gateway and their migrations.

use platform::db::migrations::CreateOutbox;
use sea_orm_migration::{MigrationTrait, MigratorTrait};

/// Every migration of the gateway, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        // The gateway publishes callbacks directly with confirms; the outbox carries events of its
        // admin API (app registry changes).
        vec![Box::new(CreateOutbox)]
    }
}
