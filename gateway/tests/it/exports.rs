//! Export jobs on MariaDB and SQLite, with a source of known pages: a job writes every page once,
//! in order, with its progress; a job whose process died mid-way is taken over after its lease
//! where it was (no page missing, none twice) and not before; a source that is down for a
//! while is waited for, one that refuses fails the job and drops what it wrote; files past
//! their retention are dropped; another tenant's job is not found.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use gateway::exports::store::{self, job, NewJob, DONE, EXPIRED, FAILED};
use gateway::exports::{Exports, Page, Ran, Settings, Source, SourceError};
use test_support::db::{Backend, TestDb};
use tokio_util::sync::CancellationToken;

/// Pages `p0..p(n-1)`, each `members` members; `hang_after`: pages after that many never come
/// (the process is stuck, then killed); `down_for`: the first calls find the services down;
/// `refuse`: every page is refused.
#[derive(Default)]
struct Pages {
    n: u32,
    hang_after: Option<u32>,
    down_for: u32,
    refuse: bool,
    calls: AtomicU32,
}

fn body(i: u32) -> Vec<u8> {
    format!("{{\"page\":{i}}}\n").into_bytes()
}

#[async_trait::async_trait]
impl Source for Pages {
    async fn header(&self, _: &job::Model) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(Some(b"header\n".to_vec()))
    }

    async fn page(&self, _: &job::Model, after: Option<&str>) -> Result<Page, SourceError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if self.refuse {
            return Err(SourceError::Refused("segment archived".into()));
        }
        if call < self.down_for {
            return Err(SourceError::Unavailable("tagging is down".into()));
        }
        let i: u32 = after.map_or(0, |a| a.trim_start_matches('p').parse::<u32>().unwrap() + 1);
        if self.hang_after.is_some_and(|h| i >= h) {
            std::future::pending::<()>().await;
        }
        Ok(Page {
            body: body(i),
            members: 10,
            rows: 9,
            next: (i + 1 < self.n).then(|| format!("p{i}")),
        })
    }
}

fn settings() -> Settings {
    Settings {
        lease: Duration::seconds(1),
        retention: Duration::hours(1),
        attempts: 3,
        backoff: StdDuration::from_millis(10),
    }
}

fn runner(db: &TestDb, pages: Pages) -> Exports {
    Exports::new(
        db.conn.clone(),
        Arc::new(pages),
        settings(),
        platform::tasks::Tasks::default(),
        CancellationToken::new(),
    )
}

async fn new_job(db: &TestDb, tenant: &str) -> job::Model {
    store::create(
        &db.conn,
        NewJob {
            tenant_id: tenant.into(),
            kind: "audience".into(),
            segment_id: "s1".into(),
            format: "jsonl".into(),
            spec: "{}".into(),
            principal: "{}".into(),
            total: Some(50),
            created_by: "user:u1".into(),
        },
        Utc::now(),
    )
    .await
    .unwrap()
}

/// The job's file, all parts in order.
async fn file(db: &TestDb, id: &str) -> Vec<u8> {
    store::parts(&db.conn, id, 0, 1_000).await.unwrap().concat()
}

fn whole(n: u32) -> Vec<u8> {
    let mut out = b"header\n".to_vec();
    for i in 0..n {
        out.extend(body(i));
    }
    out
}

async fn every_page_is_written_once_in_order(backend: Backend) {
    let db = TestDb::migrated::<gateway::store::Migrator>(backend).await;
    let j = new_job(&db, "t1").await;
    let r = runner(
        &db,
        Pages {
            n: 5,
            ..Pages::default()
        },
    );
    assert_eq!(r.run(&j.id).await.unwrap(), Ran::Done);
    assert_eq!(file(&db, &j.id).await, whole(5));
    let done = store::get_in(&db.conn, "t1", &j.id).await.unwrap().unwrap();
    assert_eq!(
        (done.status.as_str(), done.parts, done.members, done.rows),
        (DONE, 6, 50, 45)
    );
    assert_eq!(done.bytes as usize, whole(5).len());
    assert!(done.expires_at.is_some() && done.claimed_until.is_none());
    let view = store::JobView::from(done);
    assert_eq!(view.progress, Some(1.0));
    // Done is done: running it again changes nothing.
    assert_eq!(r.run(&j.id).await.unwrap(), Ran::NotMine);
    assert_eq!(file(&db, &j.id).await, whole(5));
    // Another tenant does not see it.
    assert!(store::get_in(&db.conn, "t2", &j.id)
        .await
        .unwrap()
        .is_none());
    db.cleanup().await;
}

async fn a_dead_holders_job_is_taken_over_where_it_was(backend: Backend) {
    let db = TestDb::migrated::<gateway::store::Migrator>(backend).await;
    let j = new_job(&db, "t1").await;
    // The first process writes the header and three pages, then hangs; it is killed.
    let first = runner(
        &db,
        Pages {
            n: 6,
            hang_after: Some(3),
            ..Pages::default()
        },
    );
    let id = j.id.clone();
    let stuck = tokio::spawn(async move { first.run(&id).await });
    for _ in 0..200 {
        let now = store::get_in(&db.conn, "t1", &j.id).await.unwrap().unwrap();
        if now.parts == 4 {
            break;
        }
        tokio::time::sleep(StdDuration::from_millis(10)).await;
    }
    stuck.abort();
    let mid = store::get_in(&db.conn, "t1", &j.id).await.unwrap().unwrap();
    assert_eq!(
        (mid.parts, mid.members, mid.status.as_str()),
        (4, 30, "running")
    );
    assert!(store::JobView::from(mid.clone()).progress.unwrap() > 0.5);
    // While its lease runs, nobody else takes it.
    let second = runner(
        &db,
        Pages {
            n: 6,
            ..Pages::default()
        },
    );
    assert_eq!(second.run(&j.id).await.unwrap(), Ran::NotMine);
    assert!(store::claimable(&db.conn, Utc::now(), 10)
        .await
        .unwrap()
        .is_empty());
    // After it, the next pass takes it over at the fourth page.
    tokio::time::sleep(StdDuration::from_millis(1_100)).await;
    assert_eq!(
        store::claimable(&db.conn, Utc::now(), 10).await.unwrap(),
        vec![j.id.clone()]
    );
    assert_eq!(second.run(&j.id).await.unwrap(), Ran::Done);
    assert_eq!(
        file(&db, &j.id).await,
        whole(6),
        "no page missing, none twice"
    );
    let done = store::get_in(&db.conn, "t1", &j.id).await.unwrap().unwrap();
    assert_eq!((done.parts, done.members), (7, 60));
    db.cleanup().await;
}

async fn unavailable_sources_are_waited_for_and_refusals_fail_the_job(backend: Backend) {
    let db = TestDb::migrated::<gateway::store::Migrator>(backend).await;
    let j = new_job(&db, "t1").await;
    let r = runner(
        &db,
        Pages {
            n: 2,
            down_for: 2,
            ..Pages::default()
        },
    );
    assert_eq!(r.run(&j.id).await.unwrap(), Ran::Done);
    assert_eq!(file(&db, &j.id).await, whole(2));

    let j = new_job(&db, "t1").await;
    let r = runner(
        &db,
        Pages {
            n: 2,
            down_for: 10,
            ..Pages::default()
        },
    );
    assert_eq!(r.run(&j.id).await.unwrap(), Ran::Failed);
    let failed = store::get_in(&db.conn, "t1", &j.id).await.unwrap().unwrap();
    assert_eq!(failed.status, FAILED);
    assert_eq!(failed.error.as_deref(), Some("tagging is down"));
    assert!(
        file(&db, &j.id).await.is_empty(),
        "a failed job's partial file is dropped"
    );

    let j = new_job(&db, "t1").await;
    let r = runner(
        &db,
        Pages {
            n: 2,
            refuse: true,
            ..Pages::default()
        },
    );
    assert_eq!(r.run(&j.id).await.unwrap(), Ran::Failed);
    let failed = store::get_in(&db.conn, "t1", &j.id).await.unwrap().unwrap();
    assert_eq!(failed.error.as_deref(), Some("segment archived"));
    db.cleanup().await;
}

async fn files_past_their_retention_are_dropped(backend: Backend) {
    let db = TestDb::migrated::<gateway::store::Migrator>(backend).await;
    let j = new_job(&db, "t1").await;
    let r = runner(
        &db,
        Pages {
            n: 3,
            ..Pages::default()
        },
    );
    assert_eq!(r.run(&j.id).await.unwrap(), Ran::Done);
    assert_eq!(store::prune(&db.conn, Utc::now()).await.unwrap(), 0);
    let later = Utc::now() + Duration::hours(2);
    assert_eq!(store::prune(&db.conn, later).await.unwrap(), 1);
    let gone = store::get_in(&db.conn, "t1", &j.id).await.unwrap().unwrap();
    assert_eq!(gone.status, EXPIRED);
    assert!(file(&db, &j.id).await.is_empty());
    db.cleanup().await;
}

test_support::on_both_backends!(
    every_page_is_written_once_in_order,
    a_dead_holders_job_is_taken_over_where_it_was,
    unavailable_sources_are_waited_for_and_refusals_fail_the_job,
    files_past_their_retention_are_dropped,
);
