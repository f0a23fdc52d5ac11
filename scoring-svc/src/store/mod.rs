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

use platform::db::migrations::{BusInbox, CreateInbox, CreateOutbox};
use sea_orm::sea_query::{Query, SelectStatement};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult,
    IsolationLevel, QueryResult, SqlErr, StatementBuilder, TransactionTrait,
};
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

/// Runs one select and returns its rows.
pub async fn rows<C: ConnectionTrait>(
    conn: &C,
    stmt: &SelectStatement,
) -> Result<Vec<QueryResult>, DbErr> {
    let b = conn.get_database_backend();
    conn.query_all(b.build(stmt)).await
}

/// Runs one select and returns its first row.
pub async fn one<C: ConnectionTrait>(
    conn: &C,
    stmt: &SelectStatement,
) -> Result<Option<QueryResult>, DbErr> {
    let b = conn.get_database_backend();
    conn.query_one(b.build(stmt)).await
}

/// Begins a transaction: READ COMMITTED on MySQL/MariaDB, so reads after taking a profile's lock
/// see what the transaction that held it committed, and inserts take no gap locks; SQLite
/// serialises writers anyway.
pub async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let backend = db.get_database_backend();
    let isolation = (backend == DbBackend::MySql).then_some(IsolationLevel::ReadCommitted);
    let txn = db.begin_with_config(isolation, None).await?;
    if backend == DbBackend::Sqlite {
        // Take the write lock before the first read, so this transaction never reads a snapshot
        // another writer changes before it writes (SQLite would refuse the write then).
        let q = sea_orm::sea_query::Query::update()
            .table(migrations::ScoringTenants::Table)
            .value(
                migrations::ScoringTenants::Version,
                sea_orm::sea_query::Expr::col(migrations::ScoringTenants::Version),
            )
            .and_where(sea_orm::sea_query::Expr::col(migrations::ScoringTenants::Version).lt(0))
            .to_owned();
        exec(&txn, &q).await?;
    }
    Ok(txn)
}

/// Records that `consumer` processed `message_id` in `txn`; `false` when it had already (the
/// transaction should then be rolled back without effect). Concurrent deliveries of one message
/// serialise on the row.
pub async fn inbox_record(
    txn: &DatabaseTransaction,
    consumer: &str,
    message_id: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<bool, DbErr> {
    let q = Query::insert()
        .into_table(BusInbox::Table)
        .columns([
            BusInbox::Consumer,
            BusInbox::MessageId,
            BusInbox::ProcessedAt,
        ])
        .values_panic([consumer.into(), message_id.into(), now.into()])
        .to_owned();
    match exec(txn, &q).await {
        Ok(_) => Ok(true),
        Err(e) if is_duplicate(&e) => Ok(false),
        Err(e) => Err(e),
    }
}

/// [`inbox_record`] for several messages (one statement for one, two for more:
/// [`platform::db::inbox::record_many`]); `false` for a message processed before or earlier in
/// `message_ids`. Another delivery recording one of them meanwhile is a duplicate key: a race
/// the caller runs again.
pub async fn inbox_record_many(
    txn: &DatabaseTransaction,
    consumer: &str,
    message_ids: &[String],
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<bool>, DbErr> {
    if let [one] = message_ids {
        return Ok(vec![inbox_record(txn, consumer, one, now).await?]);
    }
    platform::db::inbox::record_many(txn, consumer, message_ids, now).await
}
