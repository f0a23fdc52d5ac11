//! Idempotent consumption: a message's id is recorded in the same transaction as its effect, so a
//! redelivered message is recognised and its effect is never applied twice.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::Utc;
use sea_orm::sea_query::{Expr, Query};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, SqlErr, TransactionTrait,
};
use uuid::Uuid;

use super::migrations::BusInbox;

/// A future borrowing the transaction the effect runs in.
pub type TxFuture<'c, T, E> = Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>;

/// Outcome of [`process_once`].
#[derive(Debug, PartialEq, Eq)]
pub enum Processed<T> {
    /// The effect ran and was committed together with the inbox record.
    Done(T),
    /// This consumer had already processed the message; nothing ran.
    Duplicate,
}

/// Runs `effect` in a transaction that also records (`consumer`, `message_id`); commits both or
/// neither. Concurrent deliveries of one message serialise on the inbox row: the second waits for
/// the first and then sees a duplicate.
pub async fn process_once<T, E, F>(
    db: &DatabaseConnection,
    consumer: &str,
    message_id: Uuid,
    effect: F,
) -> Result<Processed<T>, E>
where
    E: From<DbErr>,
    F: for<'c> FnOnce(&'c DatabaseTransaction) -> TxFuture<'c, T, E>,
{
    let txn = db.begin().await?;
    if record_fresh(&txn, consumer, &[message_id.to_string()], Utc::now()).await? == [false] {
        txn.rollback().await?;
        metrics::counter!(crate::metrics::INBOX_DUPLICATES).increment(1);
        return Ok(Processed::Duplicate);
    }
    let value = effect(&txn).await?;
    txn.commit().await?;
    Ok(Processed::Done(value))
}

/// [`process_once`], run again after a short random pause while the database reports a race
/// ([`super::is_contention`]: a unique-key race, a deadlock, a busy SQLite), up to `attempts`
/// runs. Returns the outcome and the number of runs; the last race's error when all failed.
pub async fn process_retrying<T, F>(
    db: &DatabaseConnection,
    consumer: &str,
    message_id: Uuid,
    attempts: u32,
    effect: F,
) -> Result<(Processed<T>, u32), DbErr>
where
    F: for<'c> Fn(&'c DatabaseTransaction) -> TxFuture<'c, T, DbErr>,
{
    let (r, runs) = super::retry_on_contention(consumer, attempts, || {
        process_once::<T, DbErr, _>(db, consumer, message_id, &effect)
    })
    .await;
    r.map(|p| (p, runs))
}

/// [`process_retrying`] for a batch of messages in one transaction (READ COMMITTED on
/// MySQL/MariaDB: see [`super::begin_locking`]): one inbox statement and one commit for all of
/// them. `effect` gets the positions (in `message_ids`) of the messages not
/// processed before, in order, and returns one value per position; the outcome has one entry
/// per message. The batch commits whole or not at all; a race reruns all of it.
pub async fn process_batch_retrying<T, F>(
    db: &DatabaseConnection,
    consumer: &str,
    message_ids: &[Uuid],
    attempts: u32,
    effect: F,
) -> Result<(Vec<Processed<T>>, u32), DbErr>
where
    F: for<'c> Fn(&'c DatabaseTransaction, Vec<usize>) -> TxFuture<'c, Vec<T>, DbErr>,
{
    let (r, runs) = super::retry_on_contention(consumer, attempts, || {
        process_batch_once(db, consumer, message_ids, &effect)
    })
    .await;
    r.map(|p| (p, runs))
}

async fn process_batch_once<T, F>(
    db: &DatabaseConnection,
    consumer: &str,
    message_ids: &[Uuid],
    effect: &F,
) -> Result<Vec<Processed<T>>, DbErr>
where
    F: for<'c> Fn(&'c DatabaseTransaction, Vec<usize>) -> TxFuture<'c, Vec<T>, DbErr>,
{
    // Under READ COMMITTED: the effect reads what it locked as last committed, not a snapshot
    // from this first read, however long the batch has run.
    let txn = super::begin_locking(db).await?;
    let ids: Vec<String> = message_ids.iter().map(Uuid::to_string).collect();
    let recorded = record_fresh(&txn, consumer, &ids, Utc::now()).await?;
    if recorded == [false] {
        // One message seen before: nothing to run.
        txn.rollback().await?;
        metrics::counter!(crate::metrics::INBOX_DUPLICATES).increment(1);
        return Ok(vec![Processed::Duplicate]);
    }
    let fresh: Vec<usize> = recorded
        .into_iter()
        .enumerate()
        .filter_map(|(i, fresh)| fresh.then_some(i))
        .collect();
    let mut values = effect(&txn, fresh.clone()).await?;
    if values.len() != fresh.len() {
        // Dropping the transaction rolls it back.
        return Err(DbErr::Custom(format!(
            "batch effect returned {} values for {} messages",
            values.len(),
            fresh.len()
        )));
    }
    txn.commit().await?;
    let mut out: Vec<Processed<T>> = (0..ids.len()).map(|_| Processed::Duplicate).collect();
    for (&i, v) in fresh.iter().zip(values.drain(..)) {
        out[i] = Processed::Done(v);
    }
    let dups = ids.len() - fresh.len();
    if dups > 0 {
        metrics::counter!(crate::metrics::INBOX_DUPLICATES).increment(dups as u64);
    }
    Ok(out)
}

/// Records `message_ids` as processed by `consumer` at `now` in `txn`; `false` for a message
/// processed before or earlier in `message_ids` (a transaction recording only such messages
/// should be rolled back without effect). One message (a quiet queue) is one insert, which tells
/// a duplicate by its unique key: a concurrent delivery of it waits on the row and then sees a
/// duplicate. More take [`record_many`]'s two statements, where another delivery recording one
/// of them meanwhile is a unique-key race the caller runs again ([`super::is_contention`]).
pub async fn record_fresh(
    txn: &DatabaseTransaction,
    consumer: &str,
    message_ids: &[String],
    now: chrono::DateTime<Utc>,
) -> Result<Vec<bool>, DbErr> {
    if message_ids.len() != 1 {
        return record_many(txn, consumer, message_ids, now).await;
    }
    let backend = txn.get_database_backend();
    match txn
        .execute(backend.build(&record_at(consumer, message_ids, now)))
        .await
    {
        Ok(_) => Ok(vec![true]),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            Ok(vec![false])
        }
        Err(e) => Err(e),
    }
}

/// Records several messages as processed by `consumer` at `now` in two statements (a read of
/// the ids seen before, one insert of the others); `false` for a message processed before or
/// earlier in `message_ids`. Another consumer recording one of them since the read is a
/// unique-key race: the caller runs again and sees it as a duplicate.
pub async fn record_many<C: ConnectionTrait>(
    conn: &C,
    consumer: &str,
    message_ids: &[String],
    now: chrono::DateTime<Utc>,
) -> Result<Vec<bool>, DbErr> {
    let backend = conn.get_database_backend();
    let seen_q = Query::select()
        .column(BusInbox::MessageId)
        .from(BusInbox::Table)
        .and_where(Expr::col(BusInbox::Consumer).eq(consumer))
        .and_where(Expr::col(BusInbox::MessageId).is_in(message_ids.to_vec()))
        .to_owned();
    let mut seen: std::collections::HashSet<String> = conn
        .query_all(backend.build(&seen_q))
        .await?
        .into_iter()
        .map(|r| r.try_get_by_index::<String>(0))
        .collect::<Result<_, _>>()?;
    // A message twice in one batch is a duplicate the second time.
    let fresh: Vec<bool> = message_ids
        .iter()
        .map(|id| seen.insert(id.clone()))
        .collect();
    let new: Vec<String> = message_ids
        .iter()
        .zip(&fresh)
        .filter(|(_, f)| **f)
        .map(|(id, _)| id.clone())
        .collect();
    if !new.is_empty() {
        conn.execute(backend.build(&record_at(consumer, &new, now)))
            .await?;
    }
    Ok(fresh)
}

/// The inbox rows recording `message_ids` as processed by `consumer` at `now`.
fn record_at(
    consumer: &str,
    message_ids: &[String],
    now: chrono::DateTime<Utc>,
) -> sea_orm::sea_query::InsertStatement {
    let mut insert = Query::insert()
        .into_table(BusInbox::Table)
        .columns([
            BusInbox::Consumer,
            BusInbox::MessageId,
            BusInbox::ProcessedAt,
        ])
        .to_owned();
    for id in message_ids {
        insert.values_panic([consumer.into(), id.clone().into(), now.into()]);
    }
    insert
}

/// Has `consumer` processed `message_id`?
pub async fn seen<C: ConnectionTrait>(
    db: &C,
    consumer: &str,
    message_id: Uuid,
) -> Result<bool, DbErr> {
    let q = Query::select()
        .expr(Expr::val(1))
        .from(BusInbox::Table)
        .and_where(Expr::col(BusInbox::Consumer).eq(consumer))
        .and_where(Expr::col(BusInbox::MessageId).eq(message_id.to_string()))
        .to_owned();
    let backend = db.get_database_backend();
    Ok(db.query_one(backend.build(&q)).await?.is_some())
}

/// Forgets inbox records older than `age` (keep it longer than the longest redelivery horizon).
pub async fn prune(db: &DatabaseConnection, age: Duration) -> Result<u64, DbErr> {
    let cutoff = Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::days(30));
    let q = Query::delete()
        .from_table(BusInbox::Table)
        .and_where(Expr::col(BusInbox::ProcessedAt).lt(cutoff))
        .to_owned();
    let backend = db.get_database_backend();
    Ok(db.execute(backend.build(&q)).await?.rows_affected())
}
