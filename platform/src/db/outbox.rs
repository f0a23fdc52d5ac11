//! Transactional outbox: events are written in the business transaction and published afterwards
//! by a relay that waits for the broker's confirm before deleting them. Several relays (replicas)
//! share the table safely: rows are claimed with `FOR UPDATE SKIP LOCKED` on MySQL/MariaDB, and on
//! SQLite by taking the write lock before reading.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use proto::Envelope;
use sea_orm::sea_query::{
    Expr, LockBehavior, LockType, MysqlQueryBuilder, Order, PostgresQueryBuilder, Query,
    SqliteQueryBuilder,
};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, DbErr, SqlErr};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::migrations::BusOutbox;
use crate::bus::{Bus, BusError};

/// Writes `envelope` to the outbox on `conn` (pass the business transaction). Writing the same
/// message id twice keeps one row.
pub async fn enqueue<C: ConnectionTrait>(conn: &C, envelope: &Envelope) -> Result<(), DbErr> {
    let body = String::from_utf8(envelope.to_bytes()).map_err(|e| DbErr::Custom(e.to_string()))?;
    let q = Query::insert()
        .into_table(BusOutbox::Table)
        .columns([
            BusOutbox::MessageId,
            BusOutbox::RoutingKey,
            BusOutbox::Body,
            BusOutbox::CreatedAt,
            BusOutbox::Attempts,
        ])
        .values_panic([
            envelope.id.to_string().into(),
            envelope.kind.clone().into(),
            body.into(),
            Utc::now().into(),
            0.into(),
        ])
        .to_owned();
    let backend = conn.get_database_backend();
    match conn.execute(backend.build(&q)).await {
        Ok(_) => Ok(()),
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Writes many new envelopes (fresh ids) in multi-row inserts: bulk jobs announce thousands of
/// changes per transaction.
pub async fn enqueue_many<C: ConnectionTrait>(
    conn: &C,
    envelopes: &[Envelope],
) -> Result<(), DbErr> {
    let now = Utc::now();
    let backend = conn.get_database_backend();
    for chunk in envelopes.chunks(200) {
        let mut q = Query::insert();
        q.into_table(BusOutbox::Table).columns([
            BusOutbox::MessageId,
            BusOutbox::RoutingKey,
            BusOutbox::Body,
            BusOutbox::CreatedAt,
            BusOutbox::Attempts,
        ]);
        for e in chunk {
            let body = String::from_utf8(e.to_bytes()).map_err(|e| DbErr::Custom(e.to_string()))?;
            q.values_panic([
                e.id.to_string().into(),
                e.kind.clone().into(),
                body.into(),
                now.into(),
                0.into(),
            ]);
        }
        conn.execute(backend.build(&q)).await?;
    }
    Ok(())
}

/// Number of events waiting in the outbox.
pub async fn pending_count<C: ConnectionTrait>(conn: &C) -> Result<u64, DbErr> {
    let q = Query::select()
        .expr(Expr::col(BusOutbox::Id).count())
        .from(BusOutbox::Table)
        .to_owned();
    let backend = conn.get_database_backend();
    let row = conn.query_one(backend.build(&q)).await?;
    Ok(match row {
        Some(r) => r.try_get_by_index::<i64>(0).unwrap_or(0).max(0) as u64,
        None => 0,
    })
}

/// Why a relay pass failed.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Db(#[from] DbErr),
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Publishes outbox rows with confirms and deletes them once confirmed.
#[derive(Clone)]
pub struct OutboxRelay {
    db: DatabaseConnection,
    bus: Arc<dyn Bus>,
    wake: Arc<Notify>,
    batch: u64,
    poll: Duration,
    linger: Duration,
}

/// Deletes relayed rows, one primary-key lookup per row, all in one round trip. One `id IN (…)`
/// statement is planned as a scan of the whole table when its statistics say it is small (an
/// outbox usually is), and a scan waits on every row a running transaction has just inserted:
/// with busy writers the relay then chases the table's tail and stops relaying. A lookup by key
/// locks only its own row; sending each as its own round trip cost the database and the relay
/// a wake-up per event, so the lookups go together as one multi-statement text query (the values
/// are the relay's own integer ids, rendered by sea-query).
async fn delete_rows<C: ConnectionTrait>(conn: &C, ids: &[i64]) -> Result<(), DbErr> {
    let backend = conn.get_database_backend();
    for chunk in ids.chunks(DELETES_PER_ROUND_TRIP) {
        let sql = chunk
            .iter()
            .map(|id| {
                let delete = Query::delete()
                    .from_table(BusOutbox::Table)
                    .and_where(Expr::col(BusOutbox::Id).eq(*id))
                    .to_owned();
                match backend {
                    DbBackend::MySql => delete.to_string(MysqlQueryBuilder),
                    DbBackend::Postgres => delete.to_string(PostgresQueryBuilder),
                    DbBackend::Sqlite => delete.to_string(SqliteQueryBuilder),
                }
            })
            .collect::<Vec<_>>()
            .join(";\n");
        conn.execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// Row deletes sent in one text query (a pass relays at most a batch, 200 by default).
const DELETES_PER_ROUND_TRIP: usize = 200;

impl OutboxRelay {
    pub fn new(db: DatabaseConnection, bus: Arc<dyn Bus>) -> Self {
        OutboxRelay {
            db,
            bus,
            wake: Arc::new(Notify::new()),
            batch: 200,
            poll: Duration::from_millis(500),
            linger: Duration::from_millis(10),
        }
    }

    /// How long a wake-up waits for more committed events before a pass, so a busy service
    /// relays its events in batches (one claim per batch, not per event) at the cost of at most
    /// this much latency. Zero relays at once.
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Rows per pass and how often to look when nobody calls [`OutboxRelay::wake`].
    pub fn with_batch(mut self, batch: u64, poll: Duration) -> Self {
        self.batch = batch.max(1);
        self.poll = poll;
        self
    }

    /// Call after committing a transaction that enqueued events, to publish them at once.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// One pass: claims up to a batch of rows in id order, publishes them, deletes the confirmed.
    /// Returns how many were published.
    pub async fn relay_once(&self) -> Result<usize, RelayError> {
        let backend = self.db.get_database_backend();
        // READ COMMITTED: no gap locks, so two relays claiming neighbouring rows do not deadlock.
        let txn = super::begin_locking(&self.db).await?;
        if backend == sea_orm::DbBackend::Sqlite {
            // SQLite has no row locks: take the database write lock before reading, so a second
            // relay on the same file waits instead of publishing the same rows from a stale read.
            let claim = Query::update()
                .table(BusOutbox::Table)
                .value(BusOutbox::Attempts, Expr::col(BusOutbox::Attempts))
                .and_where(Expr::col(BusOutbox::Id).lt(0))
                .to_owned();
            txn.execute(backend.build(&claim)).await?;
        }
        let select = Query::select()
            .columns([BusOutbox::Id, BusOutbox::Body])
            .from(BusOutbox::Table)
            .order_by(BusOutbox::Id, Order::Asc)
            .limit(self.batch)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        let rows = txn.query_all(backend.build(&select)).await?;
        if rows.is_empty() {
            txn.commit().await?;
            return Ok(0);
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut envelopes = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get_by_index(0)?;
            let body: String = row.try_get_by_index(1)?;
            match Envelope::from_bytes(body.as_bytes()) {
                Ok(e) => {
                    ids.push(id);
                    envelopes.push(e);
                }
                Err(e) => {
                    // Rows are written only by `enqueue`; an unreadable one is recorded, not dropped.
                    tracing::error!(outbox_id = id, error = %e, "Outbox row is not an envelope; left in place");
                    let mark = Query::update()
                        .table(BusOutbox::Table)
                        .value(BusOutbox::LastError, format!("invalid envelope: {e}"))
                        .and_where(Expr::col(BusOutbox::Id).eq(id))
                        .to_owned();
                    txn.execute(backend.build(&mark)).await?;
                }
            }
        }
        match self.bus.publish_batch(&envelopes).await {
            Ok(()) => {
                let deleted = match delete_rows(&txn, &ids).await {
                    Ok(()) => txn.commit().await,
                    Err(e) => Err(e),
                };
                if let Err(e) = deleted {
                    // Published but not yet deleted: delete again outside the claim so the rows
                    // are not published a second time (if this fails too, they are — consumers
                    // are idempotent).
                    tracing::warn!(error = %e, "Deleting relayed outbox rows failed; retrying");
                    delete_rows(&self.db, &ids).await?;
                }
                metrics::counter!(crate::metrics::OUTBOX_RELAYED).increment(ids.len() as u64);
                Ok(ids.len())
            }
            Err(e) => {
                let mark = Query::update()
                    .table(BusOutbox::Table)
                    .value(BusOutbox::Attempts, Expr::col(BusOutbox::Attempts).add(1))
                    .value(BusOutbox::LastError, e.to_string())
                    .and_where(Expr::col(BusOutbox::Id).is_in(ids))
                    .to_owned();
                txn.execute(backend.build(&mark)).await?;
                txn.commit().await?;
                metrics::counter!(crate::metrics::OUTBOX_RELAY_FAILED).increment(1);
                Err(e.into())
            }
        }
    }

    /// Runs the relay under `tasks` as `<role>.outbox` until `shutdown` (restarted if it dies;
    /// stalled when a pass takes longer than a minute).
    pub fn spawn(
        &self,
        tasks: &crate::tasks::Tasks,
        role: &'static str,
        shutdown: &CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let relay = self.clone();
        let stop = shutdown.clone();
        tasks.spawn(
            role,
            format!("{role}.outbox"),
            Some(Duration::from_secs(60)),
            shutdown.clone(),
            move |beat| relay.clone().run(stop.clone(), beat),
        )
    }

    /// Relays until `shutdown`, waking on [`OutboxRelay::wake`] or every poll interval; beats
    /// `beat` on every pass.
    pub async fn run(self, shutdown: CancellationToken, beat: crate::tasks::Beat) {
        let mut backoff = Duration::from_millis(100);
        loop {
            beat.beat();
            let wait = match self.relay_once().await {
                Ok(n) if n as u64 >= self.batch => {
                    backoff = Duration::from_millis(100);
                    continue;
                }
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    self.poll
                }
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "Outbox relay failed");
                    let w = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    w
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {
                    if !self.linger.is_zero() {
                        tokio::select! {
                            _ = shutdown.cancelled() => return,
                            _ = tokio::time::sleep(self.linger) => {}
                        }
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}
