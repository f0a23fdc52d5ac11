//! Every service's migrations on MariaDB and SQLite, each on a database of its own as in
//! production: up twice changes nothing the second time, everything is applied, and identity's go
//! down as far as they came up.

use sea_orm_migration::MigratorTrait;
use test_support::db::{Backend, TestDb};

async fn every_service_migrates_up_and_is_idempotent(backend: Backend) {
    // Each service on a database of its own, as in production: up twice, all applied, down.
    let t = TestDb::new(backend).await;
    gateway::store::Migrator::up(&t.conn, None).await.unwrap();
    gateway::store::Migrator::up(&t.conn, None).await.unwrap();
    assert!(gateway::store::Migrator::get_pending_migrations(&t.conn)
        .await
        .unwrap()
        .is_empty());
    t.cleanup().await;

    let t = TestDb::new(backend).await;
    for _ in 0..2 {
        identity_svc::store::Migrator::up(&t.conn, None)
            .await
            .unwrap();
    }
    assert!(
        identity_svc::store::Migrator::get_pending_migrations(&t.conn)
            .await
            .unwrap()
            .is_empty()
    );
    identity_svc::store::Migrator::down(&t.conn, None)
        .await
        .unwrap();
    assert_eq!(
        platform::db::pending::<identity_svc::store::Migrator>(&t.conn)
            .await
            .unwrap()
            .len(),
        identity_svc::store::Migrator::migrations().len()
    );
    t.cleanup().await;

    let t = TestDb::new(backend).await;
    tagging_svc::store::Migrator::up(&t.conn, None)
        .await
        .unwrap();
    assert!(
        platform::db::pending::<tagging_svc::store::Migrator>(&t.conn)
            .await
            .unwrap()
            .is_empty()
    );
    t.cleanup().await;

    let t = TestDb::new(backend).await;
    scoring_svc::store::Migrator::up(&t.conn, None)
        .await
        .unwrap();
    assert!(
        platform::db::pending::<scoring_svc::store::Migrator>(&t.conn)
            .await
            .unwrap()
            .is_empty()
    );
    t.cleanup().await;
}

test_support::on_both_backends!(every_service_migrates_up_and_is_idempotent);
