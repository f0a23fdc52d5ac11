//! Two scoring-svc instances (two scorers, each on its own connection pool) consume 40 events
//! of one profile at once: every event scores once, the scores they announce are the 40
//! successive sums (the profile's changes were serialised), and the trigger watching the
//! threshold of 50 fires exactly once — one firing, one `lead.notify`, one tag command.

use std::sync::Arc;

use crate::fixtures::{resolved, start, tracked, ScoringDb};
use proto::scoring::{LEAD_NOTIFY, LEAD_SCORE_CHANGED};
use proto::sdk::TrackKind;
use proto::tagging::COMMAND_TAG_ADD;
use serde_json::json;
use test_support::db::Backend;

const T: &str = "t-race";

async fn a_crossing_fires_once_across_two_instances(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let m = s
        .model(T, json!({"key": "engagement", "name": "Engagement"}))
        .await;
    s.rule(
        T,
        &m,
        json!({"kind": "event", "name": "View", "event": "track.page_view", "points": 10}),
    )
    .await;
    let trigger = s
        .trigger(T, json!({"name": "Hot lead", "on": {"type": "score", "model": "engagement", "threshold": 50, "direction": "up"},
            "actions": [{"type": "notify", "message": "call now"}, {"type": "add_tag", "tag_id": "hot"}]}))
        .await;
    let instances = [
        Arc::new(s.scorer.clone()),
        Arc::new(s.another_scorer().await),
    ];
    let mut tasks = Vec::new();
    for i in 0..40 {
        let ev = tracked(
            T,
            TrackKind::PageView,
            start(),
            &format!("race-{i}"),
            &[],
            json!({}),
        );
        let scorer = instances[i % 2].clone();
        tasks.push(tokio::spawn(async move {
            scorer
                .handle(&resolved("p-race", &ev))
                .await
                .expect("scored")
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(s.score(T, "p-race", "engagement").await, 400.0);
    let firings = s
        .count(
            "SELECT COUNT(*) FROM trigger_firings WHERE trigger_id = ? AND profile_id = ?",
            vec![trigger.clone().into(), "p-race".into()],
        )
        .await;
    assert_eq!(firings, 1, "one crossing, one firing");
    let notes = s.outbox(LEAD_NOTIFY).await;
    assert_eq!(notes.len(), 1);
    assert_eq!(
        notes[0]["reason"]["score"],
        json!(50.0),
        "fired by the event that crossed"
    );
    assert_eq!(s.outbox(COMMAND_TAG_ADD).await.len(), 1);
    let mut news: Vec<f64> = s
        .outbox(LEAD_SCORE_CHANGED)
        .await
        .iter()
        .map(|e| e["new"].as_f64().unwrap())
        .collect();
    news.sort_by(f64::total_cmp);
    let expected: Vec<f64> = (1..=40).map(|i| f64::from(i) * 10.0).collect();
    assert_eq!(news, expected, "each change saw the one before it");
    s.cleanup().await;
}

test_support::on_both_backends!(a_crossing_fires_once_across_two_instances);
