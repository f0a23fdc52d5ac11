//! Tables of the scoring service and their migrations ([`migrations`]), the definitions
//! ([`defs`], compiled and cached per tenant in [`cache`]), the transactional engine that applies
//! one bus message, scheduler look or manual move to one profile ([`engine`], with the ledger in
//! [`ledger`], folds in [`scores`] and leads, stages and SLAs in [`leads`]), the scheduler's
//! passes ([`schedule`]), recompute jobs and dry runs ([`jobs`]) and the reads behind the API
//! ([`queries`]).

pub mod browse;
pub mod cache;
pub mod defs;
pub mod engine;
pub mod jobs;
pub mod leads;
pub mod ledger;
pub mod migrations;
pub mod queries;
pub mod schedule;
pub mod scores;
pub mod work;

use platform::db::migrations::{CreateInbox, CreateOutbox};
use sea_orm::sea_query::SelectStatement;
use sea_orm::{ConnectionTrait, DbErr, ExecResult, FromQueryResult, SqlErr, StatementBuilder};
use sea_orm_migration::{MigrationTrait, MigratorTrait};

pub use engine::{Outcome, ScoreError, Scorer};

/// Every migration of this service, in order.
pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(CreateInbox),
            Box::new(CreateOutbox),
            Box::new(facts::CreateFactsTables),
            Box::new(migrations::CreateScoringTables),
            Box::new(migrations::DropUnreadFactsIndexes),
            Box::new(migrations::ScoreKeyEras),
            Box::new(migrations::LeadMergeMark),
            Box::new(migrations::LeadBrowseIndexes),
            Box::new(migrations::ScoreBoardIndexes),
            Box::new(facts::CreateTenantZones),
            Box::new(facts::CreateScoreFacts),
            Box::new(facts::CreateAnalyticsFacts),
            Box::new(facts::ProfileSummaryFacts),
            Box::new(facts::KindCountFacts),
            Box::new(facts::TagHolderFacts),
        ]
    }
}

/// Consumer name in the inbox.
pub const CONSUMER: &str = "scoring";

pub use platform::db::is_contention;

/// Is `e` a unique-key violation?
pub fn is_duplicate(e: &DbErr) -> bool {
    matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// Runs one sea-query statement.
pub async fn exec<C, S>(conn: &C, stmt: &S) -> Result<ExecResult, DbErr>
where
    C: ConnectionTrait,
    S: StatementBuilder,
{
    let b = conn.get_database_backend();
    conn.execute(b.build(stmt)).await
}

/// Runs one select and decodes its rows as `T` (a row struct of the select's shape).
pub async fn fetch<T: FromQueryResult, C: ConnectionTrait>(
    conn: &C,
    stmt: &SelectStatement,
) -> Result<Vec<T>, DbErr> {
    let b = conn.get_database_backend();
    T::find_by_statement(b.build(stmt)).all(conn).await
}

/// Runs one select and decodes its first row as `T`.
pub async fn fetch_one<T: FromQueryResult, C: ConnectionTrait>(
    conn: &C,
    stmt: &SelectStatement,
) -> Result<Option<T>, DbErr> {
    let b = conn.get_database_backend();
    T::find_by_statement(b.build(stmt)).one(conn).await
}
