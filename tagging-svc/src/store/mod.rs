//! Tables of the tagging service and their migrations, and what works on them: the bus events it
//! acts on ([`tagger`], decoded in `work`), rules and their real-time evaluation ([`rules`],
//! [`engine`]: it loads, lets `crate::domain` decide, then writes), memberships ([`members`]),
//! the catalogue, backfills, segments, saved segments ([`saved`]), personas ([`personas`]) and
//! the WeCom corp-tag mirror
//! and write-back.

pub mod analytics;
pub mod backfill;
pub mod catalog;
pub mod corp_tags;
pub mod engine;
pub mod entities;
pub mod members;
pub mod migrations;
pub mod personas;
pub mod rep_tags;
pub mod rules;
pub mod saved;
pub mod segments;
pub mod sync_queue;
pub mod tagger;
pub mod wecom_migrations;
mod work;
pub mod writeback;

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
            Box::new(wecom_migrations::CreateWecomSyncTables),
            Box::new(wecom_migrations::CreateWecomMarks),
            Box::new(facts::CreateTenantZones),
            Box::new(facts::CreateScoreFacts),
            Box::new(saved::migration::CreateSavedSegments),
            Box::new(personas::migration::CreatePersonas),
            Box::new(facts::CreateAnalyticsFacts),
            Box::new(facts::ProfileSummaryFacts),
            Box::new(saved::migration::CreateSegmentBreakdowns),
            Box::new(saved::migration::CreateSegmentMembers),
            Box::new(facts::CreateStageFacts),
            Box::new(facts::KindCountFacts),
            Box::new(facts::TagHolderFacts),
        ]
    }
}
