//! Database plumbing on MariaDB and SQLite: the inbox (idempotent consumption), the outbox
//! (transactional publish with confirms) and contention classified by error code.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use platform::bus::{AmqpBus, Bus, GroupSpec, MemoryBus, RetryPolicy};
use platform::config::BusConfig;
use platform::db::inbox::{self, Processed};
use platform::db::outbox::{self, OutboxRelay};
use proto::Envelope;
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use sea_orm_migration::{MigrationTrait, MigratorTrait};
use test_support::db::{Backend, TestDb};
use test_support::proxy::TcpProxy;
use test_support::servers::{amqp_url, unique};

/// The tables platform owns in every service's database, and nothing else.
struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(platform::db::migrations::CreateInbox),
            Box::new(platform::db::migrations::CreateOutbox),
        ]
    }
}

/// A business table for effects.
async fn create_effects(db: &DatabaseConnection) {
    let sql = match db.get_database_backend() {
        sea_orm::DbBackend::MySql => {
            "CREATE TABLE effects (id VARCHAR(64) NOT NULL, n INT NOT NULL)"
        }
        _ => "CREATE TABLE effects (id TEXT NOT NULL, n INTEGER NOT NULL)",
    };
    db.execute_unprepared(sql).await.unwrap();
}

async fn add_effect<C: ConnectionTrait>(c: &C, id: &str) -> Result<(), DbErr> {
    let q = Query::insert()
        .into_table(Alias::new("effects"))
        .columns([Alias::new("id"), Alias::new("n")])
        .values_panic([id.into(), 1.into()])
        .to_owned();
    c.execute(c.get_database_backend().build(&q))
        .await
        .map(drop)
}

async fn effect_count(db: &DatabaseConnection) -> i64 {
    let q = Query::select()
        .expr(Expr::col(Alias::new("id")).count())
        .from(Alias::new("effects"))
        .to_owned();
    let row = db
        .query_one(db.get_database_backend().build(&q))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn migrated(backend: Backend) -> TestDb {
    let t = TestDb::migrated::<Migrator>(backend).await;
    create_effects(&t.conn).await;
    t
}

async fn inbox_applies_effect_once(backend: Backend) {
    let t = migrated(backend).await;
    let id = uuid::Uuid::now_v7();
    for _ in 0..3 {
        let _ = inbox::process_once::<_, DbErr, _>(&t.conn, "identity", id, |txn| {
            Box::pin(async move { add_effect(txn, "a").await })
        })
        .await
        .unwrap();
    }
    assert_eq!(effect_count(&t.conn).await, 1);
    assert!(inbox::seen(&t.conn, "identity", id).await.unwrap());
    // Another consumer of the same message is independent.
    let r = inbox::process_once::<_, DbErr, _>(&t.conn, "tagging", id, |txn| {
        Box::pin(async move { add_effect(txn, "b").await })
    })
    .await
    .unwrap();
    assert_eq!(r, Processed::Done(()));
    assert_eq!(effect_count(&t.conn).await, 2);
    t.cleanup().await;
}

async fn inbox_failed_effect_leaves_no_record(backend: Backend) {
    let t = migrated(backend).await;
    let id = uuid::Uuid::now_v7();
    let r = inbox::process_once::<(), DbErr, _>(&t.conn, "identity", id, |txn| {
        Box::pin(async move {
            add_effect(txn, "x").await?;
            Err(DbErr::Custom("downstream failed".into()))
        })
    })
    .await;
    assert!(r.is_err());
    assert_eq!(effect_count(&t.conn).await, 0, "effect rolled back");
    assert!(
        !inbox::seen(&t.conn, "identity", id).await.unwrap(),
        "so the retry will run"
    );
    let r = inbox::process_once::<_, DbErr, _>(&t.conn, "identity", id, |txn| {
        Box::pin(async move { add_effect(txn, "x").await })
    })
    .await
    .unwrap();
    assert_eq!(r, Processed::Done(()));
    assert_eq!(effect_count(&t.conn).await, 1);
    t.cleanup().await;
}

async fn inbox_concurrent_redeliveries_apply_once(backend: Backend) {
    let t = migrated(backend).await;
    let other = t.another_connection().await;
    let id = uuid::Uuid::now_v7();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let db = if i % 2 == 0 {
            t.conn.clone()
        } else {
            other.clone()
        };
        tasks.push(tokio::spawn(async move {
            loop {
                let r = inbox::process_once::<_, DbErr, _>(&db, "identity", id, |txn| {
                    Box::pin(async move { add_effect(txn, "c").await })
                })
                .await;
                match r {
                    Ok(p) => return p,
                    // SQLite reports a busy writer; MySQL may report a deadlock: both are retried
                    // by the consumer loop in production.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    let mut done = 0;
    for task in tasks {
        if task.await.unwrap() == Processed::Done(()) {
            done += 1;
        }
    }
    assert_eq!(done, 1);
    assert_eq!(effect_count(&t.conn).await, 1);
    other.close().await.unwrap();
    t.cleanup().await;
}

/// Applies the effect of every id in `ids` not processed before, in one transaction (retrying
/// races the way the consumers do).
async fn batch(
    db: &DatabaseConnection,
    ids: &[uuid::Uuid],
) -> Result<Vec<Processed<String>>, DbErr> {
    let ids_owned: Arc<Vec<uuid::Uuid>> = Arc::new(ids.to_vec());
    inbox::process_batch_retrying(db, "identity", ids, 50, |txn, fresh| {
        let ids = ids_owned.clone();
        Box::pin(async move {
            let mut out = Vec::new();
            for i in fresh {
                let name = ids[i].to_string();
                add_effect(txn, &name).await?;
                out.push(name);
            }
            Ok(out)
        })
    })
    .await
    .map(|(p, _)| p)
}

async fn inbox_batch_applies_each_message_once(backend: Backend) {
    let t = migrated(backend).await;
    let ids: Vec<uuid::Uuid> = (0..6).map(|_| uuid::Uuid::now_v7()).collect();
    // One processed on its own before; one twice in the batch.
    inbox::process_once::<_, DbErr, _>(&t.conn, "identity", ids[0], |txn| {
        Box::pin(async move { add_effect(txn, "single").await })
    })
    .await
    .unwrap();
    let input = [ids[0], ids[1], ids[2], ids[1], ids[3]];
    let out = batch(&t.conn, &input).await.unwrap();
    assert_eq!(
        out,
        vec![
            Processed::Duplicate,
            Processed::Done(ids[1].to_string()),
            Processed::Done(ids[2].to_string()),
            Processed::Duplicate,
            Processed::Done(ids[3].to_string()),
        ]
    );
    assert_eq!(effect_count(&t.conn).await, 4);
    // A failing effect leaves no inbox record: the whole batch runs again.
    let r = inbox::process_batch_retrying::<(), _>(&t.conn, "identity", &ids[4..], 3, |txn, _| {
        Box::pin(async move {
            add_effect(txn, "doomed").await?;
            Err(DbErr::Custom("downstream failed".into()))
        })
    })
    .await;
    assert!(r.is_err());
    assert_eq!(effect_count(&t.conn).await, 4);
    assert!(!inbox::seen(&t.conn, "identity", ids[4]).await.unwrap());
    let out = batch(&t.conn, &ids).await.unwrap();
    let done = out
        .iter()
        .filter(|p| matches!(p, Processed::Done(_)))
        .count();
    assert_eq!(done, 2, "only the two never processed");
    assert_eq!(effect_count(&t.conn).await, 6);
    t.cleanup().await;
}

async fn inbox_overlapping_batches_on_two_connections_apply_once(backend: Backend) {
    let t = migrated(backend).await;
    let other = t.another_connection().await;
    let ids: Vec<uuid::Uuid> = (0..40).map(|_| uuid::Uuid::now_v7()).collect();
    let mut tasks = Vec::new();
    for k in 0..8usize {
        let db = if k % 2 == 0 {
            t.conn.clone()
        } else {
            other.clone()
        };
        // Overlapping windows of the ids, in different orders.
        let mut mine: Vec<uuid::Uuid> = ids.iter().copied().skip(k * 4).take(16).collect();
        if k % 3 == 0 {
            mine.reverse();
        }
        tasks.push(tokio::spawn(async move {
            loop {
                match batch(&db, &mine).await {
                    Ok(p) => return p,
                    // A busy SQLite writer outlasting the retries: the bus would redeliver.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task
            .await
            .unwrap()
            .iter()
            .filter(|p| matches!(p, Processed::Done(_)))
            .count();
    }
    assert_eq!(done, 40, "every id applied by exactly one batch");
    assert_eq!(effect_count(&t.conn).await, 40);
    other.close().await.unwrap();
    t.cleanup().await;
}

fn group(name: &str) -> GroupSpec {
    GroupSpec {
        group: name.into(),
        bindings: vec!["#".into()],
        prefetch: 100,
        retry: RetryPolicy {
            max_attempts: 3,
            delays: vec![Duration::from_millis(50)],
        },
    }
}

fn event(n: u64) -> Envelope {
    Envelope::builder("profile.updated", "t1", serde_json::json!({"n": n})).build()
}

async fn outbox_publishes_only_committed(backend: Backend) {
    let t = migrated(backend).await;
    let bus = Arc::new(MemoryBus::new());
    let mut sub = bus.subscribe(&group("out")).await.unwrap();
    let kept = event(1);
    let dropped = event(2);

    let txn = t.conn.begin().await.unwrap();
    add_effect(&txn, "kept").await.unwrap();
    outbox::enqueue(&txn, &kept).await.unwrap();
    outbox::enqueue(&txn, &kept).await.unwrap(); // same id twice: one row
    txn.commit().await.unwrap();

    let txn = t.conn.begin().await.unwrap();
    add_effect(&txn, "dropped").await.unwrap();
    outbox::enqueue(&txn, &dropped).await.unwrap();
    txn.rollback().await.unwrap();

    assert_eq!(outbox::pending_count(&t.conn).await.unwrap(), 1);
    let relay = OutboxRelay::new(t.conn.clone(), bus.clone());
    assert_eq!(relay.relay_once().await.unwrap(), 1);
    assert_eq!(outbox::pending_count(&t.conn).await.unwrap(), 0);
    let d = tokio::time::timeout(Duration::from_secs(2), sub.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(d.envelope, kept);
    d.ack().await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(200), sub.recv())
        .await
        .is_err());
    t.cleanup().await;
}

/// The broker is down: rows stay (with the error recorded) and go out once it is back.
async fn outbox_keeps_rows_while_broker_down(backend: Backend) {
    let t = migrated(backend).await;
    let url = amqp_url();
    let target = "127.0.0.1:5672".parse().unwrap();
    let proxy = TcpProxy::start(target).await.unwrap();
    let mut cfg = BusConfig::amqp(proxy.rewrite_url(&url));
    cfg.exchange = unique("outboxtest");
    cfg.publish_timeout_ms = 600;
    let amqp = AmqpBus::connect(&cfg).await.unwrap();
    let bus: Arc<dyn Bus> = Arc::new(amqp.clone());
    let mut sub = bus.subscribe(&group("relay")).await.unwrap();

    let events: Vec<Envelope> = (0..20).map(event).collect();
    let txn = t.conn.begin().await.unwrap();
    for e in &events {
        outbox::enqueue(&txn, e).await.unwrap();
    }
    txn.commit().await.unwrap();

    proxy.set_accepting(false);
    proxy.kill_all();
    let relay = OutboxRelay::new(t.conn.clone(), bus.clone());
    assert!(relay.relay_once().await.is_err());
    assert_eq!(
        outbox::pending_count(&t.conn).await.unwrap(),
        20,
        "nothing lost while down"
    );

    proxy.set_accepting(true);
    let mut relayed = 0;
    for _ in 0..50 {
        match relay.relay_once().await {
            Ok(n) => relayed += n,
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
        if relayed == 20 {
            break;
        }
    }
    assert_eq!(relayed, 20);
    let mut got = HashSet::new();
    while got.len() < 20 {
        let d = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("relayed events arrive")
            .unwrap();
        got.insert(d.envelope.id);
        d.ack().await.unwrap();
    }
    assert_eq!(got, events.iter().map(|e| e.id).collect());
    drop(sub);
    amqp.destroy().await.unwrap();
    t.cleanup().await;
}

/// Two relays (two replicas) drain one outbox without publishing anything twice.
async fn two_relays_publish_each_row_once(backend: Backend) {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let t = migrated(backend).await;
    let other = t.another_connection().await;
    let bus = Arc::new(MemoryBus::new());
    let mut sub = bus.subscribe(&group("two")).await.unwrap();
    let events: Vec<Envelope> = (0..400).map(event).collect();
    for chunk in events.chunks(100) {
        let txn = t.conn.begin().await.unwrap();
        for e in chunk {
            outbox::enqueue(&txn, e).await.unwrap();
        }
        txn.commit().await.unwrap();
    }
    let shutdown = tokio_util::sync::CancellationToken::new();
    let a = OutboxRelay::new(t.conn.clone(), bus.clone()).with_batch(25, Duration::from_millis(20));
    let b = OutboxRelay::new(other.clone(), bus.clone()).with_batch(25, Duration::from_millis(20));
    let ta = tokio::spawn(a.run(shutdown.clone(), platform::tasks::Beat::detached()));
    let tb = tokio::spawn(b.run(shutdown.clone(), platform::tasks::Beat::detached()));
    let mut ids = Vec::new();
    while ids.len() < 400 {
        let d = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("all relayed")
            .unwrap();
        ids.push(d.envelope.id);
        d.ack().await.unwrap();
    }
    assert!(
        tokio::time::timeout(Duration::from_millis(300), sub.recv())
            .await
            .is_err(),
        "no duplicates"
    );
    let unique: HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 400);
    shutdown.cancel();
    ta.await.unwrap();
    tb.await.unwrap();
    assert_eq!(outbox::pending_count(&t.conn).await.unwrap(), 0);
    other.close().await.unwrap();
    t.cleanup().await;
}

/// Races are told apart from other failures by the database's error code: a unique-key
/// violation and a lock that cannot be had (MariaDB's lock-wait timeout, SQLite's busy database)
/// are contention; a bad statement is not.
async fn contention_is_classified_by_error_code(backend: Backend) {
    let t = TestDb::new(backend).await;
    let db = &t.conn;
    let ddl = match backend {
        Backend::MariaDb => "CREATE TABLE rows_u (id INT NOT NULL PRIMARY KEY, n INT NOT NULL)",
        Backend::Sqlite => {
            "CREATE TABLE rows_u (id INTEGER NOT NULL PRIMARY KEY, n INTEGER NOT NULL)"
        }
    };
    db.execute_unprepared(ddl).await.unwrap();
    db.execute_unprepared("INSERT INTO rows_u (id, n) VALUES (1, 0)")
        .await
        .unwrap();
    let dup = db
        .execute_unprepared("INSERT INTO rows_u (id, n) VALUES (1, 0)")
        .await
        .unwrap_err();
    assert!(platform::db::is_contention(&dup), "{dup}");
    let bad = db
        .execute_unprepared("INSERT INTO no_such_table VALUES (1)")
        .await
        .unwrap_err();
    assert!(!platform::db::is_contention(&bad), "{bad}");

    // One transaction holds the row; another cannot wait for it.
    let holder = db.begin().await.unwrap();
    holder
        .execute_unprepared("UPDATE rows_u SET n = 1 WHERE id = 1")
        .await
        .unwrap();
    let locked = match backend {
        Backend::MariaDb => {
            let other = t.another_connection().await;
            let txn = other.begin().await.unwrap();
            txn.execute_unprepared("SET SESSION innodb_lock_wait_timeout = 1")
                .await
                .unwrap();
            let e = txn
                .execute_unprepared("UPDATE rows_u SET n = 2 WHERE id = 1")
                .await
                .unwrap_err();
            let _ = txn.rollback().await;
            other.close().await.unwrap();
            e
        }
        Backend::Sqlite => {
            use sea_orm::sqlx::sqlite::SqliteConnectOptions;
            use std::str::FromStr;
            let url = t.cfg.url.expose().to_string();
            let opts = SqliteConnectOptions::from_str(&url)
                .unwrap()
                .busy_timeout(Duration::ZERO);
            let pool = sea_orm::sqlx::SqlitePool::connect_with(opts).await.unwrap();
            let other = sea_orm::SqlxSqliteConnector::from_sqlx_sqlite_pool(pool);
            let e = other
                .execute_unprepared("UPDATE rows_u SET n = 2 WHERE id = 1")
                .await
                .unwrap_err();
            other.close().await.unwrap();
            e
        }
    };
    assert!(platform::db::is_contention(&locked), "{locked}");
    holder.rollback().await.unwrap();
    t.cleanup().await;
}

/// `record_fresh` tells messages seen before, one message (an insert refused by its key) and
/// several (a read, then an insert of the others) alike, in a transaction that still writes.
async fn inbox_record_fresh_tells_duplicates(backend: Backend) {
    let t = migrated(backend).await;
    let ids: Vec<String> = (0..3).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    let now = chrono::Utc::now();
    let txn = platform::db::begin_locking_write(&t.conn).await.unwrap();
    assert_eq!(
        inbox::record_fresh(&txn, "scoring", &ids[..1], now)
            .await
            .unwrap(),
        vec![true]
    );
    assert_eq!(
        inbox::record_fresh(&txn, "scoring", &ids[..1], now)
            .await
            .unwrap(),
        vec![false],
        "the refused insert leaves the transaction usable"
    );
    let batch = [
        ids[0].clone(),
        ids[1].clone(),
        ids[2].clone(),
        ids[1].clone(),
    ];
    assert_eq!(
        inbox::record_fresh(&txn, "scoring", &batch, now)
            .await
            .unwrap(),
        vec![false, true, true, false]
    );
    add_effect(&txn, "after").await.unwrap();
    txn.commit().await.unwrap();
    for id in &ids {
        let id = uuid::Uuid::parse_str(id).unwrap();
        assert!(inbox::seen(&t.conn, "scoring", id).await.unwrap());
        assert!(!inbox::seen(&t.conn, "tagging", id).await.unwrap());
    }
    assert_eq!(effect_count(&t.conn).await, 1);
    t.cleanup().await;
}

test_support::on_both_backends!(
    inbox_applies_effect_once,
    inbox_failed_effect_leaves_no_record,
    inbox_concurrent_redeliveries_apply_once,
    inbox_batch_applies_each_message_once,
    inbox_record_fresh_tells_duplicates,
    inbox_overlapping_batches_on_two_connections_apply_once,
    outbox_publishes_only_committed,
    outbox_keeps_rows_while_broker_down,
    two_relays_publish_each_row_once,
    contention_is_classified_by_error_code,
);
