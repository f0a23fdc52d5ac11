//! A projection made before the analytics tables existed gets them, and `facts_event.hour`, from
//! `CreateAnalyticsFacts`; one made before `facts_profile` summarised tags and content days
//! gets the columns, filled from the rows, from `ProfileSummaryFacts`. Running either where
//! they exist already changes nothing.

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

async fn older_projections_get_the_profile_summary(backend: Backend) {
    let t = TestDb::migrated::<Migrator>(backend).await;
    let db = &t.conn;
    let m = SchemaManager::new(db);
    let day: chrono::NaiveDate = "2026-11-03".parse().unwrap();
    let mut a = rules::ProfileFacts::new("pA");
    a.add_tag("t1")
        .add_tag("t2")
        .add_count("c:case_study", day, 2)
        .add_count("c:pricing", day - chrono::Duration::days(3), 1)
        .add_count("e:track.page_view", day + chrono::Duration::days(1), 1);
    let mut b = rules::ProfileFacts::new("pB");
    b.add_count("e:track.page_view", day, 1);
    let at: chrono::DateTime<chrono::Utc> = "2026-11-04T00:00:00Z".parse().unwrap();
    for ins in rules::schema::insert_statements("t", &[a, b], 1, at, None) {
        db.execute(db.get_database_backend().build(&ins))
            .await
            .unwrap();
    }
    // As it was before: a value stored twice under one key, no summary columns.
    for ord in [0, 1, 2] {
        let city = if ord == 1 { "Shanghai" } else { "Hangzhou" };
        db.execute(sea_orm::Statement::from_string(
            db.get_database_backend(),
            format!(
                "INSERT INTO facts_property (tenant_id, profile_id, pkey, ord, vtype, s, s_fold, n) \
                 VALUES ('t', 'pA', 'contact.city', {ord}, 's', '{city}', '{}', NULL)",
                city.to_lowercase()
            ),
        ))
        .await
        .unwrap();
    }
    for col in [C::TagCount, C::ContentDay] {
        m.alter_table(
            Table::alter()
                .table(T::FactsProfile)
                .drop_column(col)
                .to_owned(),
        )
        .await
        .unwrap();
    }
    for _ in 0..2 {
        facts::ProfileSummaryFacts.up(&m).await.unwrap();
    }
    let rows = db
        .query_all(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT profile_id, tag_count, content_day FROM facts_profile ORDER BY profile_id",
        ))
        .await
        .unwrap();
    let got: Vec<(i64, Option<chrono::NaiveDate>)> = rows
        .iter()
        .map(|r| {
            (
                r.try_get_by_index(1).unwrap(),
                r.try_get_by_index(2).unwrap(),
            )
        })
        .collect();
    assert_eq!(got, vec![(2, Some(day)), (0, None)]);
    let cities = db
        .query_all(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT ord, s FROM facts_property WHERE pkey = 'contact.city' ORDER BY ord",
        ))
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let ord: i32 = r.try_get_by_index(0).unwrap();
            let s: Vec<u8> = r.try_get_by_index(1).unwrap();
            (ord, String::from_utf8(s).unwrap())
        })
        .collect::<Vec<_>>();
    assert_eq!(
        cities,
        vec![(0, "Hangzhou".to_string()), (1, "Shanghai".to_string())],
        "the repeated value goes, the first of it stays"
    );
    t.cleanup().await;
}

test_support::on_both_backends!(
    older_projections_get_the_analytics_facts,
    older_projections_get_the_profile_summary
);
