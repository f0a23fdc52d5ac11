//! The scheduled refresh: only active scheduled segments whose interval has passed are counted
//! (of every tenant), each once per interval, and two processes claiming at the same moment
//! count each due segment once; history past its retention is pruned.

use super::*;

/// A saved segment of `tenant` with `extra` fields through the API: its id.
macro_rules! saved {
    ($app:expr, $tenant:expr, $name:expr, $extra:expr $(,)?) => {{
        let mut body = json!({"name": $name, "condition": in_hangzhou()});
        for (k, v) in $extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let s = ok!($app, Method::POST, "/v1/saved-segments", $tenant, Some(body), 201);
        id_of(&s)
    }};
}

/// The counts in the size history of segment `id` of `tenant`, oldest first, each with its cause.
async fn history(tagger: &Tagger, tenant: &str, id: &str) -> Vec<(i64, String)> {
    let mut rows = saved::sizes(&tagger.db, tenant, id, None, 500)
        .await
        .unwrap();
    rows.reverse();
    rows.into_iter().map(|z| (z.count, z.cause)).collect()
}

fn scheduled(n: i64) -> Vec<(i64, String)> {
    vec![(5, "scheduled".to_string()); n as usize]
}

pub(super) async fn only_due_segments_are_refreshed(backend: Backend) {
    let (db, tagger, clock) = setup(backend).await;
    population(&tagger, T, 10).await;
    let app = api!(tagger);
    let every5 = saved!(&app, T, "every 5", json!({"interval_minutes": 5}));
    let hourly = saved!(&app, T, "hourly", json!({}));
    let manual = saved!(&app, T, "manual", json!({"refresh_mode": "manual"}));
    let archived = saved!(&app, T, "archived", json!({"interval_minutes": 5}));
    ok!(
        &app,
        Method::DELETE,
        format!("/v1/saved-segments/{archived}"),
        T,
        None,
        200
    );
    let other = saved!(&app, OTHER, "theirs", json!({}));

    // New segments are due at once; manual and archived ones never.
    assert_eq!(saved::refresh_due(&tagger, 100).await.unwrap(), 3);
    assert_eq!(history(&tagger, T, &every5).await, scheduled(1));
    assert_eq!(history(&tagger, T, &hourly).await, scheduled(1));
    assert_eq!(
        history(&tagger, OTHER, &other).await,
        [(0, "scheduled".to_string())]
    );
    assert!(history(&tagger, T, &manual).await.is_empty());
    assert!(history(&tagger, T, &archived).await.is_empty());
    let s = stored(&tagger, T, &every5).await;
    assert_eq!(
        (s.size, s.refreshed_at, s.due_at, s.claimed_until),
        (
            Some(5),
            Some(now()),
            Some(now() + chrono::Duration::minutes(5)),
            None
        )
    );
    let sizes = ok!(
        &app,
        Method::GET,
        format!("/v1/saved-segments/{every5}/sizes"),
        T,
        None,
        200
    );
    assert_eq!(sizes["items"][0]["actor"], Value::Null, "{sizes}");
    assert_eq!(
        saved::refresh_due(&tagger, 100).await.unwrap(),
        0,
        "nothing due"
    );

    // Four minutes on: nothing; six: the five-minute one; an hour and one: both.
    clock.advance(chrono::Duration::minutes(4));
    assert_eq!(saved::refresh_due(&tagger, 100).await.unwrap(), 0);
    clock.advance(chrono::Duration::minutes(2));
    assert_eq!(saved::refresh_due(&tagger, 100).await.unwrap(), 1);
    assert_eq!(history(&tagger, T, &every5).await, scheduled(2));
    assert_eq!(history(&tagger, T, &hourly).await, scheduled(1));
    clock.advance(chrono::Duration::minutes(55));
    assert_eq!(saved::refresh_due(&tagger, 100).await.unwrap(), 3);
    assert_eq!(history(&tagger, T, &every5).await, scheduled(3));
    assert_eq!(history(&tagger, T, &hourly).await, scheduled(2));
    assert_eq!(history(&tagger, OTHER, &other).await.len(), 2);
    assert!(history(&tagger, T, &manual).await.is_empty());
    // A manual refresh of a scheduled segment starts its interval again.
    clock.advance(chrono::Duration::minutes(1));
    let r = ok!(
        &app,
        Method::POST,
        format!("/v1/saved-segments/{hourly}/refresh"),
        T,
        None,
        200
    );
    assert_eq!(
        r["segment"]["next_refresh_at"],
        json!(now() + chrono::Duration::minutes(122))
    );
    // Switched to manual, it is no longer due; back to scheduled, it is due an interval after
    // its last count.
    let uri = format!("/v1/saved-segments/{every5}");
    ok!(
        &app,
        Method::PATCH,
        uri,
        T,
        Some(json!({"refresh_mode": "manual"})),
        200
    );
    clock.advance(chrono::Duration::minutes(10));
    assert_eq!(saved::refresh_due(&tagger, 100).await.unwrap(), 0);
    let back = ok!(
        &app,
        Method::PATCH,
        uri,
        T,
        Some(json!({"refresh_mode": "scheduled"})),
        200
    );
    assert_eq!(
        back["next_refresh_at"],
        json!(now() + chrono::Duration::minutes(66))
    );
    assert_eq!(saved::refresh_due(&tagger, 100).await.unwrap(), 1);

    // History past its retention goes, oldest first and in bounded batches: here the three
    // counts of the first pass.
    let first_pass = now() + chrono::Duration::minutes(1);
    assert_eq!(
        saved::prune_sizes(&tagger.db, first_pass, 2).await.unwrap(),
        2
    );
    assert_eq!(
        saved::prune_sizes(&tagger.db, first_pass, 100)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        saved::prune_sizes(&tagger.db, first_pass, 100)
            .await
            .unwrap(),
        0
    );
    assert_eq!(history(&tagger, T, &every5).await, scheduled(3));
    assert_eq!(history(&tagger, T, &hourly).await.len(), 2);
    assert_eq!(history(&tagger, OTHER, &other).await.len(), 1);
    db.cleanup().await;
}

pub(super) async fn two_processes_count_each_due_segment_once(backend: Backend) {
    let (db, tagger, clock) = setup(backend).await;
    population(&tagger, T, 10).await;
    let app = api!(tagger);
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(saved!(
            &app,
            T,
            format!("s{i}"),
            json!({"interval_minutes": 5})
        ));
    }
    // A second process: its own pool on the same database, the same moment.
    let pool = platform::db::connect(&db.cfg, false).await.unwrap();
    let second = tagger_on(pool, &db, &clock);
    let (a, b) = tokio::join!(
        saved::refresh_due(&tagger, 100),
        saved::refresh_due(&second, 100)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a + b, 8, "{a} + {b}");
    for id in &ids {
        assert_eq!(history(&tagger, T, id).await, scheduled(1), "{id}");
    }
    // A claim holds the segment for its lease: a process seeing it due meanwhile leaves it.
    clock.advance(chrono::Duration::minutes(5));
    let held = saved::claim_due(&tagger, clock_now(&clock), 100)
        .await
        .unwrap();
    assert_eq!(held.len(), 8);
    assert!(saved::claim_due(&second, clock_now(&clock), 100)
        .await
        .unwrap()
        .is_empty());
    // A process that died holding it: after the lease, another takes it and counts it.
    clock.advance(saved::LEASE + chrono::Duration::seconds(1));
    assert_eq!(saved::refresh_due(&second, 100).await.unwrap(), 8);
    for id in &ids {
        assert_eq!(history(&tagger, T, id).await, scheduled(2), "{id}");
        assert_eq!(stored(&tagger, T, id).await.claimed_until, None);
    }
    db.cleanup().await;
}

fn clock_now(clock: &ManualClock) -> DateTime<Utc> {
    use tagging_svc::clock::Clock;
    clock.now()
}
