//! Database plumbing: sea-orm connections to MySQL/MariaDB or SQLite, the migrations every service
//! includes (inbox and outbox tables), and the inbox/outbox helpers.
//!
//! Each service owns its own database (its own SQLite file in embedded mode, its own schema on the
//! MySQL server in production) and its own migrator; no service reads another's tables.

pub mod inbox;
pub mod migrations;
pub mod outbox;
pub mod schema;

use std::path::Path;
use std::time::Duration;

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, Statement, TransactionTrait,
};

use crate::config::DbConfig;

/// Why a database could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("cannot connect to the database: {0}")]
    Connect(String),
    #[error("database migration failed: {0}")]
    Migrate(String),
    #[error(transparent)]
    Query(#[from] DbErr),
}

/// Connects (creating the SQLite file, or the MySQL database when `create_database` is set).
pub async fn connect(cfg: &DbConfig, create_database: bool) -> Result<DatabaseConnection, DbError> {
    let url = cfg.url.expose();
    if let Some(path) = sqlite_path(url) {
        if let Some(dir) = Path::new(&path).parent() {
            if !dir.as_os_str().is_empty() {
                std::fs::create_dir_all(dir).map_err(|e| {
                    DbError::Connect(format!("cannot create directory {}: {e}", dir.display()))
                })?;
            }
        }
    } else if create_database {
        create_mysql_database(cfg).await?;
    }
    let mut opts = ConnectOptions::new(sqlite_create_url(url));
    opts.max_connections(cfg.max_connections)
        .min_connections(0)
        .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        .acquire_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
        });
    let db = Database::connect(opts)
        .await
        .map_err(|e| DbError::Connect(redact(&e.to_string(), url)))?;
    db.ping()
        .await
        .map_err(|e| DbError::Connect(redact(&e.to_string(), url)))?;
    Ok(db)
}

/// `sqlite:///abs/path.db`, `sqlite://rel.db` or `sqlite:rel.db` → the file path.
pub fn sqlite_path(url: &str) -> Option<String> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        None
    } else {
        Some(path.to_string())
    }
}

fn sqlite_create_url(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_string()
    }
}

/// Splits `mysql://…/dbname?x` into (server URL, dbname).
pub fn split_mysql_url(url: &str) -> Option<(String, String)> {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://")? + 3;
    let slash = base[scheme_end..].find('/')? + scheme_end;
    let name = &base[slash + 1..];
    if name.is_empty() {
        return None;
    }
    let mut server = base[..slash].to_string();
    if let Some(q) = query {
        server.push('?');
        server.push_str(q);
    }
    Some((server, name.to_string()))
}

/// Creates the database a MySQL URL names, if it does not exist.
pub async fn create_mysql_database(cfg: &DbConfig) -> Result<(), DbError> {
    let url = cfg.url.expose();
    let Some((server, name)) = split_mysql_url(url) else {
        return Err(DbError::Connect("the MySQL URL names no database".into()));
    };
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(DbError::Connect(format!(
            "database name `{name}` may only hold letters, digits and `_`"
        )));
    }
    let mut opts = ConnectOptions::new(server.clone());
    opts.max_connections(1)
        .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
        .sqlx_logging(false);
    let admin = Database::connect(opts)
        .await
        .map_err(|e| DbError::Connect(redact(&e.to_string(), url)))?;
    admin
        .execute(Statement::from_string(
            DbBackend::MySql,
            format!("CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"),
        ))
        .await?;
    admin.close().await?;
    Ok(())
}

/// Drops the database a MySQL URL names (tests clean up with it).
pub async fn drop_mysql_database(url: &str) -> Result<(), DbError> {
    let Some((server, name)) = split_mysql_url(url) else {
        return Err(DbError::Connect("the MySQL URL names no database".into()));
    };
    let admin = Database::connect(server)
        .await
        .map_err(|e| DbError::Connect(redact(&e.to_string(), url)))?;
    admin
        .execute(Statement::from_string(
            DbBackend::MySql,
            format!("DROP DATABASE IF EXISTS `{name}`"),
        ))
        .await?;
    admin.close().await?;
    Ok(())
}

/// Removes the password of `url` from a message.
fn redact(message: &str, url: &str) -> String {
    match url.split_once("://").and_then(|(_, r)| r.split_once('@')) {
        Some((userinfo, _)) => match userinfo.split_once(':') {
            Some((_, pass)) if !pass.is_empty() => message.replace(pass, "***"),
            _ => message.to_string(),
        },
        None => message.to_string(),
    }
}

/// Runs a service's migrator.
pub async fn migrate<M: sea_orm_migration::MigratorTrait>(
    db: &DatabaseConnection,
) -> Result<(), DbError> {
    M::up(db, None)
        .await
        .map_err(|e| DbError::Migrate(e.to_string()))
}

/// Names of migrations a database has not applied yet.
pub async fn pending<M: sea_orm_migration::MigratorTrait>(
    db: &DatabaseConnection,
) -> Result<Vec<String>, DbError> {
    let pending = M::get_pending_migrations(db)
        .await
        .map_err(|e| DbError::Migrate(e.to_string()))?;
    Ok(pending.iter().map(|m| m.name().to_string()).collect())
}

/// Begins a transaction that works under row locks: READ COMMITTED on MySQL/MariaDB, so a read
/// after taking a row's lock sees what the previous holder committed (not a snapshot from the
/// transaction's first read), and inserts next to each other in an index take no gap locks that
/// deadlock concurrent writers; SQLite's default elsewhere.
pub async fn begin_locking(
    db: &sea_orm::DatabaseConnection,
) -> Result<sea_orm::DatabaseTransaction, sea_orm::DbErr> {
    use sea_orm::TransactionTrait;
    let isolation = (db.get_database_backend() == sea_orm::DbBackend::MySql)
        .then_some(sea_orm::IsolationLevel::ReadCommitted);
    db.begin_with_config(isolation, None).await
}

/// Begins a transaction that reads and then writes. On SQLite it takes the database's write
/// lock first ([`take_write_lock`]); on MySQL/MariaDB row locks do the work and it is a plain
/// `BEGIN`.
pub async fn begin_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = db.begin().await?;
    take_write_lock(&txn).await?;
    Ok(txn)
}

/// Both of the above: [`begin_locking`]'s READ COMMITTED on MySQL/MariaDB, so a read after
/// taking a row's lock sees what its previous holder committed, and [`begin_write`]'s write lock
/// taken first on SQLite, so the transaction never reads a snapshot another writer changes
/// before it writes.
pub async fn begin_locking_write(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
    let txn = begin_locking(db).await?;
    take_write_lock(&txn).await?;
    Ok(txn)
}

/// On SQLite, takes the database's write lock with a no-op write to `bus_outbox` (which every
/// service's database has): a deferred transaction that read first cannot upgrade while another
/// connection writes and fails at once with "database is locked" instead of waiting out the
/// busy timeout. Nothing on MySQL/MariaDB.
async fn take_write_lock(txn: &DatabaseTransaction) -> Result<(), DbErr> {
    use migrations::BusOutbox;
    use sea_orm::sea_query::{Expr, Query};
    let backend = txn.get_database_backend();
    if backend == DbBackend::Sqlite {
        let lock = Query::update()
            .table(BusOutbox::Table)
            .value(BusOutbox::Attempts, Expr::col(BusOutbox::Attempts))
            .and_where(Expr::col(BusOutbox::Id).lt(0))
            .to_owned();
        txn.execute(backend.build(&lock)).await?;
    }
    Ok(())
}

/// A failure that may be a race ([`is_contention`]), for [`retry_on_contention`].
pub trait Contention {
    fn is_contention(&self) -> bool;
}

impl Contention for DbErr {
    fn is_contention(&self) -> bool {
        is_contention(self)
    }
}

/// Runs `tx` — one whole transaction, begun and ended inside it — again after a short random
/// pause ([`contention_pause`]) while it fails by contention, `attempts` runs at most, counting
/// each rerun in `scrm_tx_retries_total{consumer = op}`. Returns the last outcome and the number
/// of runs it took (so a caller can say how long it raced).
pub async fn retry_on_contention<T, E, F, Fut>(
    op: &str,
    attempts: u32,
    mut tx: F,
) -> (Result<T, E>, u32)
where
    E: Contention,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut run = 0;
    loop {
        run += 1;
        match tx().await {
            Err(e) if e.is_contention() && run < attempts.max(1) => {
                metrics::counter!(crate::metrics::TX_RETRIES, "consumer" => op.to_string())
                    .increment(1);
                contention_pause(run).await;
            }
            other => return (other, run),
        }
    }
}

/// Waits before running a transaction again after its `attempt`-th run met contention: 5 ms per
/// attempt so far (at most 50), plus up to twice that at random, so racing transactions do not
/// meet again in step.
pub async fn contention_pause(attempt: u32) {
    let base = 5 * u64::from(attempt.min(10));
    let pause = base + rand::random_range(0..=base * 2);
    tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
}

/// Is `e` a race the whole transaction should simply be run again for: a unique-key violation
/// (another transaction created the same row first), a deadlock, lock-wait timeout or changed
/// record (MySQL / MariaDB error numbers 1213, 1205, 1020), or a busy or locked SQLite database
/// (primary result codes 5 and 6)? Classified by the database's error code, never by its text.
pub fn is_contention(e: &sea_orm::DbErr) -> bool {
    use sea_orm::sqlx::{mysql::MySqlDatabaseError, sqlite::SqliteError, Error};
    use sea_orm::{DbErr, RuntimeErr};
    if matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    ) {
        return true;
    }
    let (DbErr::Conn(RuntimeErr::SqlxError(Error::Database(d)))
    | DbErr::Exec(RuntimeErr::SqlxError(Error::Database(d)))
    | DbErr::Query(RuntimeErr::SqlxError(Error::Database(d)))) = e
    else {
        return false;
    };
    if let Some(m) = d.try_downcast_ref::<MySqlDatabaseError>() {
        return matches!(
            m.number(),
            MYSQL_DEADLOCK | MYSQL_LOCK_WAIT_TIMEOUT | MYSQL_RECORD_CHANGED
        );
    }
    if d.try_downcast_ref::<SqliteError>().is_some() {
        // Extended result codes keep the primary code in their low byte.
        let primary = d
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .map(|c| c & 0xff);
        return matches!(primary, Some(SQLITE_BUSY | SQLITE_LOCKED));
    }
    false
}

/// MySQL / MariaDB: deadlock found when trying to get lock.
const MYSQL_DEADLOCK: u16 = 1213;
/// MySQL / MariaDB: lock wait timeout exceeded.
const MYSQL_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// MariaDB: record has changed since last read (optimistic snapshot check).
const MYSQL_RECORD_CHANGED: u16 = 1020;
/// SQLite: the database file is locked by another connection.
const SQLITE_BUSY: i32 = 5;
/// SQLite: a table is locked within the same connection.
const SQLITE_LOCKED: i32 = 6;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_helpers() {
        assert_eq!(
            sqlite_path("sqlite:///tmp/a/b.db").as_deref(),
            Some("/tmp/a/b.db")
        );
        assert_eq!(
            sqlite_path("sqlite://data/x.db?mode=rwc").as_deref(),
            Some("data/x.db")
        );
        assert_eq!(sqlite_path("sqlite::memory:"), None);
        assert_eq!(
            split_mysql_url("mysql://root:pw@127.0.0.1:3306/scrm_identity?ssl-mode=disabled"),
            Some((
                "mysql://root:pw@127.0.0.1:3306?ssl-mode=disabled".to_string(),
                "scrm_identity".to_string()
            ))
        );
        assert_eq!(split_mysql_url("mysql://root@127.0.0.1:3306"), None);
        assert_eq!(
            redact(
                "access denied for mysql://u:s3cret@h",
                "mysql://u:s3cret@h/db"
            ),
            "access denied for mysql://u:***@h"
        );
    }
}
