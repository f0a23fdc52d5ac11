//! A projection made before the analytics tables existed gets them, and `facts_event.hour`, from
//! `CreateAnalyticsFacts`; running it where they exist already changes nothing.

use facts::CreateAnalyticsFacts;
use rules::schema::{FactsCol as C, FactsTable as T};
use rules::EventFact;
use sea_orm::sea_query::{Iden, Table};
use sea_orm::{ConnectionTrait, TransactionTrait};
use sea_orm_migration::{MigrationTrait, MigratorTrait, SchemaManager};
use test_support::db::{Backend, TestDb};

struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(facts::CreateFactsTables)]
    }
}

async fn older_projections_get_the_analytics_facts(backend: Backend) {
    let t = TestDb::migrated::<Migrator>(backend).await;
    let db = &t.conn;
    let m = SchemaManager::new(db);
    // As it was before: no analytics tables, raw events without their hour.
    for table in [T::FactsFirstSeen, T::FactsActivity, T::FactsActivityTenant] {
        m.drop_table(Table::drop().table(table).to_owned())
            .await
            .unwrap();
    }
    m.alter_table(
        Table::alter()
            .table(T::FactsEvent)
            .drop_column(C::Hour)
            .to_owned(),
    )
    .await
    .unwrap();
    assert!(!m.has_table(T::FactsActivity.to_string()).await.unwrap());
    for _ in 0..2 {
        CreateAnalyticsFacts.up(&m).await.unwrap();
    }
    assert!(m
        .has_column(T::FactsEvent.to_string(), C::Hour.to_string())
        .await
        .unwrap());
    assert!(m
        .has_index(T::FactsFirstSeen.to_string(), "ix_facts_first_seen_day")
        .await
        .unwrap());
    let day = "2026-11-03".parse().unwrap();
    let ev = EventFact::new("e-1", "track.page_view", day).at_hour(1);
    let txn = db.begin().await.unwrap();
    assert!(facts::record_event(&txn, "t", "p", &ev, day).await.unwrap());
    txn.commit().await.unwrap();
    let n = db
        .query_one(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) FROM facts_activity WHERE hour = 1",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<i64>(0)
        .unwrap();
    assert_eq!(n, 2, "the event under its kind and under every event");
    t.cleanup().await;
}

test_support::on_both_backends!(older_projections_get_the_analytics_facts);
