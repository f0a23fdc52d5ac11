//! Tables of the gateway and their migrations: the app registry (WeChat apps with sealed secrets),
//! tenant write keys for server-side tracking, the front door's tenants, users, roles,
//! credentials and audit log, the WeCom members reps sign in to the sidebar as, and (from
//! `notify::store`) the reps' lead notifications with the inbox of the messages that made them,
//! and the channel codes operators made.

pub mod access;
pub mod apps;
pub mod channel_codes;
pub mod migrations;
pub mod reps;
pub mod write_keys;

use platform::db::migrations::{CreateInbox, CreateOutbox};
use sea_orm_migration::{MigrationTrait, MigratorTrait};

/// Every migration of the gateway, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            // Callbacks are published directly with confirms; the outbox carries events of the
            // admin API (app registry changes).
            Box::new(CreateOutbox),
            Box::new(migrations::CreateAppRegistry),
            Box::new(access::CreateAccess),
            Box::new(access::AddMemberStatus),
            Box::new(migrations::AddAgentApps),
            // The lead-notification consumer records settled messages (inbox) beside its table.
            Box::new(CreateInbox),
            Box::new(crate::notify::store::CreateLeadNotifications),
            Box::new(reps::AddRepIdentities),
            Box::new(crate::exports::store::CreateExportJobs),
            Box::new(channel_codes::CreateChannelCodes),
        ]
    }
}
