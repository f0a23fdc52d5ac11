//! Real-time saved segments: the rule engine keeps a segment's members as profiles change, in the
//! transaction of the change (an event, a tag a rule set in the same settling, a merge), window
//! exits on time (the engine's schedule for profiles it saw, the scheduled reconcile for the
//! members the build added); the build job fills the members of an existing population and
//! builds them again when the condition changes; a segment that stops being real-time is
//! emptied. At every step the kept members equal the condition evaluated by SQL.

use chrono::Duration;
use serde_json::{json, Value};
use tagging_svc::store::saved::{self, kept, Cause, NewSegment, SegmentPatch, Shown};
use tagging_svc::store::segments;
use test_support::db::Backend;

use crate::tagger::{handle, rule, setup, start, tag, visit, Setup, T};

/// A saved segment of `T` with `root`, refreshed as `mode`.
async fn segment(s: &Setup, root: Value, mode: &str) -> saved::entities::segment::Model {
    saved::create(
        &s.tagger,
        T,
        "ops",
        NewSegment {
            name: Some(format!("segment {mode}")),
            condition: Some(json!({"version": 1, "root": root})),
            refresh_mode: Some(mode.into()),
            ..NewSegment::default()
        },
    )
    .await
    .unwrap()
}

/// Waits until the segment's kept members are whole for its version.
async fn ready(s: &Setup, id: &str) -> saved::entities::segment::Model {
    for _ in 0..400 {
        let seg = saved::get(&s.db.conn, T, id).await.unwrap();
        if saved::kept_members(&seg) {
            return seg;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("segment {id} was not built");
}

/// The kept members of segment `id`, in id order.
async fn kept_ids(s: &Setup, id: &str) -> Vec<String> {
    kept::page(&s.db.conn, T, id, None, 1_000).await.unwrap()
}

/// The profiles its condition matches now, by SQL.
async fn sql_ids(s: &Setup, seg: &saved::entities::segment::Model) -> Vec<String> {
    let doc: Value = serde_json::from_str(&seg.condition).unwrap();
    let (_, cond) =
        tagging_svc::store::rules::check(&s.db.conn, T, None, &doc, s.tagger.engine.rules.limits())
            .await
            .unwrap();
    let at = s.tagger.at(T);
    let r = segments::reader(&s.db.conn).await.unwrap();
    let page = saved::members(&r, T, &cond, &at, None, 1_000, &Shown::default())
        .await
        .unwrap();
    r.commit().await.unwrap();
    page.items.into_iter().map(|m| m.profile_id).collect()
}

/// The kept members, which must equal what SQL finds.
async fn members(s: &Setup, seg: &saved::entities::segment::Model) -> Vec<String> {
    let kept = kept_ids(s, &seg.id).await;
    assert_eq!(
        kept,
        sql_ids(s, seg).await,
        "kept members equal the condition"
    );
    kept
}

fn ids(xs: &[&str]) -> Vec<String> {
    xs.iter().map(|x| x.to_string()).collect()
}

fn three_in_7() -> Value {
    json!({"type": "behaviour", "event": "track.page_view", "count": {"op": "gte", "value": 3},
           "window": {"type": "last", "days": 7}})
}

async fn members_follow_profiles_as_they_change(backend: Backend) {
    let s = setup(backend).await;
    let hot = tag(&s, "intent", "multi", "hot").await;
    rule(&s, &hot, three_in_7(), "add_remove").await;
    let now = start();
    // Before the segment exists: p1 is hot (three visits), p2 read one pricing page, p3 visited
    // once.
    for _ in 0..3 {
        handle(&s, &visit("p1", now - Duration::days(2), &[])).await;
    }
    handle(&s, &visit("p2", now, &["pricing"])).await;
    handle(&s, &visit("p3", now, &[])).await;
    // Hot leads, or anyone who read about pricing in the last 7 days.
    let root = json!({"type": "or", "children": [
        {"type": "tag", "op": "has", "tags": [hot]},
        {"type": "behaviour", "content_tag": "pricing", "count": {"op": "gte", "value": 1},
         "window": {"type": "last", "days": 7}}]});
    let seg = segment(&s, root, "realtime").await;
    assert_eq!(
        saved::SegmentView::from(seg.clone()).members,
        Some("building")
    );
    // The build job fills the members of the existing population.
    let seg = ready(&s, &seg.id).await;
    assert_eq!(saved::SegmentView::from(seg.clone()).members, Some("ready"));
    assert_eq!(members(&s, &seg).await, ids(&["p1", "p2"]));

    // p3's third visit makes it hot; the segment reads that tag: it enters in the same settling.
    handle(&s, &visit("p3", now, &[])).await;
    assert_eq!(members(&s, &seg).await, ids(&["p1", "p2"]));
    handle(&s, &visit("p3", now, &[])).await;
    assert_eq!(members(&s, &seg).await, ids(&["p1", "p2", "p3"]));
    // A new profile's pricing read: it enters at once.
    handle(&s, &visit("p4", now, &["pricing"])).await;
    assert_eq!(members(&s, &seg).await, ids(&["p1", "p2", "p3", "p4"]));

    // Merged into p3, p4 leaves every segment; p3 stays (it is hot and now read pricing too).
    let m = proto::identity::IdentityMerged {
        survivor: "p3".into(),
        absorbed: vec!["p4".into()],
        rule: proto::identity::LinkRule::Unionid,
        evidence_event: None,
        operator: None,
    };
    handle(&s, &proto::Envelope::of(T, &m).build()).await;
    assert_eq!(members(&s, &seg).await, ids(&["p1", "p2", "p3"]));

    // Six days on, p1's visits have left the window: the engine's schedule takes its tag away,
    // and with it the segment (p1 entered by the build: the tag's exit reaches the segment
    // through settling). p2's read is still in the window; p3's too.
    s.clock
        .set(now + Duration::days(5) + Duration::hours(14) + Duration::seconds(2));
    s.tagger.tick().await.unwrap();
    assert_eq!(members(&s, &seg).await, ids(&["p2", "p3"]));

    // Nine days on, the reads have left the window too. p3 entered through the engine (its
    // exits are scheduled); p2 was added by the build, so its exit is the scheduled reconcile's.
    let later = now + Duration::days(8) + Duration::hours(14) + Duration::seconds(2);
    s.clock.set(later);
    s.tagger.tick().await.unwrap();
    assert_eq!(kept_ids(&s, &seg.id).await, ids(&["p2"]));
    assert!(saved::refresh_due(&s.tagger, 10).await.unwrap() >= 1);
    assert!(members(&s, &seg).await.is_empty());
    let seg = saved::get(&s.db.conn, T, &seg.id).await.unwrap();
    assert_eq!(
        seg.size,
        Some(0),
        "a real-time segment's size is its kept members"
    );

    // A manual refresh counts the kept members too.
    handle(&s, &visit("p5", later, &["pricing"])).await;
    // (Recorded against a rolled day read a moment before the jump of the test's clock: the
    // scheduler's next pass brings its counters up to date.)
    s.tagger.tick().await.unwrap();
    assert_eq!(members(&s, &seg).await, ids(&["p5"]));
    let r = saved::refresh(&s.tagger, &seg, Cause::Manual, Some("ops"))
        .await
        .unwrap();
    assert_eq!(r.count, 1);
    s.db.cleanup().await;
}

async fn a_changed_condition_is_built_again_and_another_mode_empties_it(backend: Backend) {
    let s = setup(backend).await;
    let now = start();
    handle(&s, &visit("p1", now, &["pricing"])).await;
    handle(&s, &visit("p2", now, &["cases"])).await;
    let read = |t: &str| {
        json!({"type": "behaviour", "content_tag": t, "count": {"op": "gte", "value": 1},
               "window": {"type": "last", "days": 30}})
    };
    let seg = segment(&s, read("pricing"), "realtime").await;
    let seg = ready(&s, &seg.id).await;
    assert_eq!(members(&s, &seg).await, ids(&["p1"]));

    // A rename keeps the members whole.
    let renamed = saved::update(
        &s.tagger,
        T,
        "ops",
        &seg.id,
        SegmentPatch {
            name: Some("pricing readers".into()),
            ..SegmentPatch::default()
        },
    )
    .await
    .unwrap();
    assert!(saved::kept_members(&renamed));

    // A new condition: building again, then the new members (p1 left, p2 entered).
    let changed = saved::update(
        &s.tagger,
        T,
        "ops",
        &seg.id,
        SegmentPatch {
            condition: Some(json!({"version": 1, "root": read("cases")})),
            ..SegmentPatch::default()
        },
    )
    .await
    .unwrap();
    assert!(!saved::kept_members(&changed));
    let seg = ready(&s, &seg.id).await;
    assert_eq!(members(&s, &seg).await, ids(&["p2"]));

    // Scheduled from now on: the kept members are emptied and the engine keeps none.
    let scheduled = saved::update(
        &s.tagger,
        T,
        "ops",
        &seg.id,
        SegmentPatch {
            refresh_mode: Some("scheduled".into()),
            ..SegmentPatch::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(saved::SegmentView::from(scheduled).members, None);
    for _ in 0..400 {
        if kept_ids(&s, &seg.id).await.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert!(kept_ids(&s, &seg.id).await.is_empty());
    handle(&s, &visit("p3", now, &["cases"])).await;
    assert!(kept_ids(&s, &seg.id).await.is_empty());
    s.db.cleanup().await;
}

test_support::on_both_backends!(
    members_follow_profiles_as_they_change,
    a_changed_condition_is_built_again_and_another_mode_empties_it,
);
