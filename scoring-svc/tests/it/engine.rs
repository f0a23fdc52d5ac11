//! scoring-svc on MariaDB and SQLite: a redelivered event scores once; a merge sums two ledgers
//! without counting an event both saw twice, and an un-merge gives each profile its score back;
//! state rules hold points while they match; the stage machine moves leads on entry conditions,
//! triggers notify and tag once per crossing, SLAs breach once, decay crosses thresholds and
//! inactivity recycles leads as the clock moves; recomputes and dry runs replay the events.

use crate::fixtures::{
    merged, resolved, start, tag_changed, tracked, unmerged, updated, ScoringDb,
};
use chrono::Duration;
use platform::bus::HandlerError;
use proto::scoring::{LEAD_NOTIFY, LEAD_SCORE_CHANGED, LEAD_SLA_BREACHED, LEAD_STAGE_CHANGED};
use proto::sdk::TrackKind;
use proto::tagging::COMMAND_TAG_ADD;
use scoring_svc::store::leads::MERGED;
use scoring_svc::store::schedule::Scheduler;
use scoring_svc::store::{Outcome, ScoreError};
use serde_json::json;
use test_support::db::Backend;

const T: &str = "t-score";

fn scheduler(s: &ScoringDb) -> Scheduler {
    Scheduler::new(s.scorer.clone(), 100, 50, None)
}

/// An engagement model: page views 10 points (per-day cap 30), form submits 25.
async fn engagement(s: &ScoringDb, decay: serde_json::Value) -> String {
    let m = s
        .model(
            T,
            json!({"key": "engagement", "name": "Engagement", "decay": decay}),
        )
        .await;
    s.rule(T, &m, json!({"kind": "event", "name": "Page view", "event": "track.page_view", "points": 10, "caps": {"per_day": 30}}))
        .await;
    s.rule(
        T,
        &m,
        json!({"kind": "event", "name": "Form", "event": "track.form_submit", "points": 25}),
    )
    .await;
    m
}

fn view(id: &str, hours_ago: i64) -> proto::Envelope {
    tracked(
        T,
        TrackKind::PageView,
        start() - Duration::hours(hours_ago),
        id,
        &["article"],
        json!({}),
    )
}

async fn redelivery_scores_once(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    // Scoring's facts tables keep the indexes it reads by profile, not the value indexes.
    let index = |name: &'static str| {
        let sql = match backend {
            Backend::MariaDb => "SELECT COUNT(*) FROM information_schema.statistics WHERE table_schema = DATABASE() AND index_name = ?",
            Backend::Sqlite => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?",
        };
        s.count(sql, vec![name.into()])
    };
    assert_eq!(index("ix_facts_rolling_7").await, 0);
    assert_eq!(index("ix_facts_event_prop_s").await, 0);
    assert!(index("ix_facts_event_profile").await > 0);
    engagement(&s, json!({"kind": "none"})).await;
    let ev = view("ev-1", 1);
    let msg = resolved("p1", &ev);
    assert_eq!(s.handle(&msg).await, Outcome::Applied);
    assert_eq!(s.handle(&msg).await, Outcome::Duplicate);
    assert_eq!(s.handle(&msg).await, Outcome::Duplicate);
    // The same event again under another message id (identity resolved it twice): one entry.
    assert_eq!(s.handle(&resolved("p1", &ev)).await, Outcome::Applied);
    assert_eq!(s.score(T, "p1", "engagement").await, 10.0);
    let entries = s
        .count(
            "SELECT COUNT(*) FROM score_ledger WHERE profile_id = ?",
            vec!["p1".into()],
        )
        .await;
    assert_eq!(entries, 1);
    let changed = s.outbox(LEAD_SCORE_CHANGED).await;
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert_eq!(
        (changed[0]["old"].as_f64(), changed[0]["new"].as_f64()),
        (Some(0.0), Some(10.0))
    );
    assert_eq!(changed[0]["reason"]["event_id"], json!(ev.id.to_string()));
    // Caps: four more views the same day; only two fit under 30.
    for i in 2..6 {
        s.handle(&resolved("p1", &view(&format!("ev-{i}"), 1)))
            .await;
    }
    assert_eq!(s.score(T, "p1", "engagement").await, 30.0);
    let page = scoring_svc::store::queries::ledger(
        &s.scorer,
        T,
        "p1",
        &scoring_svc::store::queries::LedgerQuery {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let capped: Vec<Option<&str>> = page.items.iter().map(|e| e.capped.as_deref()).collect();
    assert_eq!(
        capped,
        vec![Some("per_day"), Some("per_day"), None, None, None]
    );
    assert_eq!(page.items[4].rule.as_deref(), Some("Page view"));
    s.cleanup().await;
}

async fn merge_counts_a_shared_event_once_and_unmerge_restores(backend: Backend) {
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
    s.rule(
        T,
        &m,
        json!({"kind": "event", "name": "Form", "event": "track.form_submit", "points": 25}),
    )
    .await;
    let (a1, a2) = (view("a1", 5), view("a2", 4));
    let b1 = tracked(
        T,
        TrackKind::FormSubmit,
        start() - Duration::hours(3),
        "b1",
        &[],
        json!({}),
    );
    let shared = view("shared", 2);
    for e in [&a1, &a2, &shared] {
        s.handle(&resolved("pA", e)).await;
    }
    for e in [&b1, &shared] {
        s.handle(&resolved("pB", e)).await;
    }
    assert_eq!(s.score(T, "pA", "engagement").await, 30.0);
    assert_eq!(s.score(T, "pB", "engagement").await, 35.0);
    let merge = merged(T, "pA", &["pB"]);
    s.handle(&merge).await;
    assert_eq!(s.handle(&merge).await, Outcome::Duplicate);
    assert_eq!(
        s.score(T, "pA", "engagement").await,
        55.0,
        "a1 + a2 + b1 + the shared view once"
    );
    let lead_b = scoring_svc::store::queries::lead(s.db(), T, "pB")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (lead_b.status.as_str(), lead_b.merged_into.as_deref()),
        ("merged", Some("pA"))
    );
    // A late event of the absorbed profile scores for the survivor.
    s.handle(&resolved("pB", &view("late", 1))).await;
    assert_eq!(s.score(T, "pA", "engagement").await, 65.0);
    let last = s.outbox(LEAD_SCORE_CHANGED).await;
    assert!(last
        .iter()
        .any(|e| e["reason"]["cause"] == "merge" && e["new"] == json!(55.0)));
    // Un-merge: B's events go back (the shared one too: each keeps its own entry).
    s.handle(&unmerged(T, "pA", "pB", &[&b1, &shared])).await;
    assert_eq!(
        s.score(T, "pA", "engagement").await,
        40.0,
        "a1 + a2 + shared + late"
    );
    assert_eq!(s.score(T, "pB", "engagement").await, 35.0, "b1 + shared");
    let lead_b = scoring_svc::store::queries::lead(s.db(), T, "pB")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead_b.status, "active");
    s.cleanup().await;
}

async fn state_rules_hold_points_while_matching(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let m = s.model(T, json!({"key": "fit", "name": "Fit"})).await;
    s.rule(T, &m, json!({"kind": "state", "name": "Retail", "points": 20, "condition": {"version": 1, "root":
        {"type": "property", "key": "company.industry", "value_type": "string", "op": "eq", "value": "retail"}}}))
        .await;
    s.rule(
        T,
        &m,
        json!({"kind": "state", "name": "VIP", "points": 15, "condition": {"version": 1, "root":
        {"type": "tag", "op": "has", "tags": ["vip"]}}}),
    )
    .await;
    s.handle(&updated(
        T,
        "p1",
        1,
        json!({"company.industry": "retail"}),
        Some("rep-1"),
    ))
    .await;
    assert_eq!(s.score(T, "p1", "fit").await, 20.0);
    s.handle(&tag_changed(T, "p1", "vip", true, start())).await;
    assert_eq!(s.score(T, "p1", "fit").await, 35.0);
    // An older removal arriving late is ignored; a newer one counts.
    s.handle(&tag_changed(
        T,
        "p1",
        "vip",
        false,
        start() - Duration::hours(1),
    ))
    .await;
    assert_eq!(s.score(T, "p1", "fit").await, 35.0);
    s.handle(&updated(
        T,
        "p1",
        2,
        json!({"company.industry": "finance"}),
        Some("rep-1"),
    ))
    .await;
    assert_eq!(s.score(T, "p1", "fit").await, 15.0);
    // An older profile version changes nothing.
    s.handle(&updated(
        T,
        "p1",
        1,
        json!({"company.industry": "retail"}),
        Some("rep-1"),
    ))
    .await;
    assert_eq!(s.score(T, "p1", "fit").await, 15.0);
    s.handle(&tag_changed(
        T,
        "p1",
        "vip",
        false,
        start() + Duration::hours(1),
    ))
    .await;
    assert_eq!(s.score(T, "p1", "fit").await, 0.0);
    let held = s
        .count(
            "SELECT COUNT(*) FROM score_ledger WHERE profile_id = ? AND kind = 'state'",
            vec!["p1".into()],
        )
        .await;
    assert_eq!(held, 4, "held, held, released, released");
    let lead = scoring_svc::store::queries::lead(s.db(), T, "p1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lead.owner.unwrap().user_id, "rep-1");
    s.cleanup().await;
}

async fn stages_triggers_slas_decay_and_inactivity(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    engagement(&s, json!({"kind": "half_life", "days": 10})).await;
    let mut machine =
        serde_json::to_value(scoring_svc::domain::defs::MachineSpec::default_machine()).unwrap();
    machine["stages"][1]["entry"] = json!({"version": 1, "root":
        {"type": "property", "key": "score.engagement", "value_type": "number", "op": "gte", "value": 50}});
    machine["stages"][1]["sla"] = json!({"hours": 24, "met_by": ["wecom.message.text"]});
    s.machine(T, machine).await;
    s.trigger(T, json!({"name": "MQL → rep", "on": {"type": "stage_entered", "stage": "mql"},
        "actions": [{"type": "notify", "message": "New MQL"}, {"type": "add_tag", "tag_id": "mql"}]}))
        .await;
    let cooled = s
        .trigger(T, json!({"name": "Cooled", "on": {"type": "score", "model": "engagement", "threshold": 40, "direction": "down"},
            "actions": [{"type": "notify"}]}))
        .await;
    s.handle(&updated(T, "p1", 1, json!({}), Some("rep-7")))
        .await;
    assert_eq!(s.stage(T, "p1").await, "new");
    // 30 from views (capped) + 25 from a form: 55 → MQL.
    for i in 0..3 {
        s.handle(&resolved("p1", &view(&format!("v{i}"), 0))).await;
    }
    assert_eq!(s.stage(T, "p1").await, "new");
    let form = tracked(T, TrackKind::FormSubmit, start(), "f1", &[], json!({}));
    s.handle(&resolved("p1", &form)).await;
    assert_eq!(s.stage(T, "p1").await, "mql");
    let moves = s.outbox(LEAD_STAGE_CHANGED).await;
    let tos: Vec<&str> = moves.iter().map(|m| m["to"].as_str().unwrap()).collect();
    assert_eq!(tos, vec!["new", "mql"]);
    assert_eq!(moves[1]["actor_kind"], "rule");
    let notes = s.outbox(LEAD_NOTIFY).await;
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0]["owner"]["user_id"], "rep-7");
    assert_eq!(notes[0]["reason"]["kind"], "stage_entered");
    assert_eq!(s.outbox(COMMAND_TAG_ADD).await[0]["tag_id"], "mql");
    // Nobody contacts the lead: the SLA breaches once.
    let sched = scheduler(&s);
    s.clock.advance(Duration::hours(23));
    sched.tick().await.unwrap();
    assert!(s.outbox(LEAD_SLA_BREACHED).await.is_empty());
    s.clock.advance(Duration::hours(2));
    sched.tick().await.unwrap();
    sched.tick().await.unwrap();
    let breaches = s.outbox(LEAD_SLA_BREACHED).await;
    assert_eq!(breaches.len(), 1);
    assert_eq!(breaches[0]["stage"], "mql");
    assert_eq!(breaches[0]["owner"]["user_id"], "rep-7");
    // Decay: 55 halves every 10 days; below 40 after ~4.6 days — the scheduler finds it then.
    s.clock.advance(Duration::days(3));
    sched.tick().await.unwrap();
    assert!(s.outbox(LEAD_NOTIFY).await.len() == 1, "not yet");
    s.clock.advance(Duration::days(1));
    sched.tick().await.unwrap();
    let notes = s.outbox(LEAD_NOTIFY).await;
    assert_eq!(notes.len(), 2, "{notes:?}");
    assert_eq!(notes[1]["trigger_id"], json!(cooled));
    assert_eq!(notes[1]["reason"]["direction"], "down");
    let score = s.score(T, "p1", "engagement").await;
    let exact = 55.0
        * 0.5f64.powf(
            (Duration::days(4) + Duration::hours(25)).num_seconds() as f64 / (10.0 * 86_400.0),
        );
    assert!((score - exact).abs() < 1e-9, "{score} vs {exact}");
    let decayed = s.outbox(LEAD_SCORE_CHANGED).await;
    assert_eq!(decayed.last().unwrap()["reason"]["cause"], "decay");
    // 60 days without activity in mql: recycled, by the scheduler, exactly at the deadline.
    s.clock
        .set(start() + Duration::days(60) - Duration::minutes(1));
    sched.tick().await.unwrap();
    assert_eq!(s.stage(T, "p1").await, "mql");
    s.clock.set(start() + Duration::days(60));
    sched.tick().await.unwrap();
    assert_eq!(s.stage(T, "p1").await, "recycled");
    let history = scoring_svc::store::queries::history(
        s.db(),
        T,
        "p1",
        start() + Duration::days(60),
        None,
        100,
    )
    .await
    .unwrap();
    let last = history.last().unwrap();
    assert_eq!(
        (last.actor_kind.as_str(), last.actor.as_str()),
        ("rule", "transition:mql->recycled")
    );
    assert_eq!(
        history[1].time_in_stage_secs,
        Duration::days(60).num_seconds()
    );
    // Active again: one view is not enough, the lead must meet mql's entry condition again.
    let day60 = start() + Duration::days(60);
    s.handle(&resolved(
        "p1",
        &tracked(T, TrackKind::PageView, day60, "again", &[], json!({})),
    ))
    .await;
    assert_eq!(s.stage(T, "p1").await, "recycled");
    for (i, kind) in [
        TrackKind::PageView,
        TrackKind::PageView,
        TrackKind::FormSubmit,
    ]
    .into_iter()
    .enumerate()
    {
        s.handle(&resolved(
            "p1",
            &tracked(T, kind, day60, &format!("again{i}"), &[], json!({})),
        ))
        .await;
    }
    assert_eq!(s.stage(T, "p1").await, "mql");
    let history = scoring_svc::store::queries::history(s.db(), T, "p1", day60, None, 100)
        .await
        .unwrap();
    assert_eq!(history.last().unwrap().actor, "transition:recycled->mql");
    s.cleanup().await;
}

async fn recompute_replays_events_under_changed_rules(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let m = engagement(&s, json!({"kind": "none"})).await;
    for i in 0..4 {
        s.handle(&resolved("p1", &view(&format!("r{i}"), 30 - i)))
            .await;
    }
    s.handle(&resolved("p2", &view("r9", 3))).await;
    assert_eq!(s.score(T, "p1", "engagement").await, 30.0, "per-day cap");
    // Views are worth 5 now, capped at 100 a day.
    let rule = scoring_svc::store::defs::model(s.db(), T, &m)
        .await
        .unwrap()
        .rules
        .unwrap()[0]
        .id
        .clone();
    let spec = serde_json::from_value(json!({"kind": "event", "name": "Page view", "event": "track.page_view", "points": 5, "caps": {"per_day": 100}})).unwrap();
    scoring_svc::store::defs::replace_rule(s.db(), T, &rule, spec, "test", start())
        .await
        .unwrap();
    s.scorer.defs().invalidate(T);
    // Dry run first: nothing written.
    let run = scoring_svc::store::jobs::DryRun {
        tenant: T.into(),
        model: serde_json::from_value(json!({"key": "engagement", "name": "E"})).unwrap(),
        rules: vec![serde_json::from_value(
            json!({"kind": "event", "name": "V", "event": "track.page_view", "points": 7}),
        )
        .unwrap()],
    };
    let c = run.compile(start()).unwrap();
    let dry = run.profile(&s.scorer, &c, "p1", true).await.unwrap();
    assert_eq!((dry.score, dry.current, dry.entries), (28.0, Some(30.0), 4));
    let job = scoring_svc::store::jobs::create_recompute(&s.scorer, T, &m, "ops", false)
        .await
        .unwrap();
    assert_eq!((job.total, job.status.as_str()), (2, "queued"));
    scheduler(&s).tick().await.unwrap();
    let job = scoring_svc::store::jobs::job(s.db(), T, &job.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.done, job.status.as_str(), job.progress),
        (2, "done", 1.0)
    );
    assert_eq!(s.score(T, "p1", "engagement").await, 20.0);
    assert_eq!(s.score(T, "p2", "engagement").await, 5.0);
    let voided = s
        .count(
            "SELECT COUNT(*) FROM score_ledger WHERE profile_id = ? AND void_key <> 0",
            vec!["p1".into()],
        )
        .await;
    assert_eq!(voided, 4, "the old entries stay, voided");
    s.cleanup().await;
}

async fn leaderboard_orders_by_exact_scores(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    let m = s
        .model(
            T,
            json!({"key": "engagement", "name": "E", "decay": {"kind": "half_life", "days": 7}}),
        )
        .await;
    s.rule(
        T,
        &m,
        json!({"kind": "event", "name": "V", "event": "track.page_view", "points": 10}),
    )
    .await;
    // p1: 3 views 20 days ago (30 → 4.4 now); p2: 1 view now (10); p3: 2 views 7 days ago (20 → 10).
    for (p, n, days) in [("p1", 3, 20), ("p2", 1, 0), ("p3", 2, 7)] {
        s.clock.set(start() + Duration::days(20 - days));
        for i in 0..n {
            s.handle(&resolved(
                p,
                &tracked(
                    T,
                    TrackKind::PageView,
                    start() + Duration::days(20 - days),
                    &format!("{p}-{i}"),
                    &[],
                    json!({}),
                ),
            ))
            .await;
        }
    }
    s.clock.set(start() + Duration::days(20));
    s.handle(&tag_changed(T, "p3", "hot", true, start())).await;
    let defs = s.scorer.compiled(T).await.unwrap();
    let board = |tag: Option<&str>| scoring_svc::store::queries::Board {
        filter: scoring_svc::store::browse::Filter {
            tags: tag.map(str::to_string).into_iter().collect(),
            ..Default::default()
        },
        limit: 10,
        ..Default::default()
    };
    let rows = scoring_svc::store::queries::leaderboard(&s.scorer, T, &defs, 0, &board(None))
        .await
        .unwrap();
    let order: Vec<&str> = rows.iter().map(|r| r.profile_id.as_str()).collect();
    assert_eq!(order[0], "p2");
    assert!((rows[0].score - 10.0).abs() < 1e-9 && (rows[1].score - 10.0).abs() < 1e-9);
    assert_eq!(order[2], "p1");
    assert!((rows[2].score - 30.0 * 0.5f64.powf(20.0 / 7.0)).abs() < 1e-9);
    let rows =
        scoring_svc::store::queries::leaderboard(&s.scorer, T, &defs, 0, &board(Some("hot")))
            .await
            .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].profile_id, "p3");
    s.cleanup().await;
}

/// The board's SQL ordering (which picks the top N before their exact scores are read) stays
/// exact across an era of the sort key and 10 years into a 1-day half-life model, where one key
/// relative to the model's start would have overflowed long before.
async fn leaderboard_keys_hold_across_eras(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    s.clock.set(start());
    let m = s
        .model(
            T,
            json!({"key": "engagement", "name": "E", "decay": {"kind": "half_life", "days": 1}}),
        )
        .await;
    s.rule(
        T,
        &m,
        json!({"kind": "event", "name": "V", "event": "track.page_view", "points": 10}),
    )
    .await;
    let view = |p: &str, at: chrono::DateTime<chrono::Utc>, i: usize| {
        resolved(
            p,
            &tracked(
                T,
                TrackKind::PageView,
                at,
                &format!("{p}-{i}"),
                &[],
                json!({}),
            ),
        )
    };
    let top = |limit: u64| {
        let s = &s;
        async move {
            let defs = s.scorer.compiled(T).await.unwrap();
            let board = scoring_svc::store::queries::Board {
                limit,
                ..Default::default()
            };
            scoring_svc::store::queries::leaderboard(&s.scorer, T, &defs, 0, &board)
                .await
                .unwrap()
                .into_iter()
                .map(|r| (r.profile_id, r.score))
                .collect::<Vec<_>>()
        }
    };
    let hours = |h: i64| start() + Duration::hours(h);
    // pa earned 10 points in era 0 (127.5 days in), pb 10 in era 1 (128.5 days in).
    for (p, at) in [("pa", hours(127 * 24 + 12)), ("pb", hours(128 * 24 + 12))] {
        s.clock.set(at);
        s.handle(&view(p, at, 0)).await;
    }
    s.clock.set(hours(129 * 24));
    let rows = top(1).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "pb");
    assert!(
        (rows[0].1 - 10.0 * 0.5f64.powf(0.5)).abs() < 1e-9,
        "{rows:?}"
    );
    let rows = top(2).await;
    assert_eq!(rows[1].0, "pa");
    assert!(
        (rows[1].1 - 10.0 * 0.5f64.powf(1.5)).abs() < 1e-9,
        "{rows:?}"
    );

    // 10 years (3 650 half-lives) on: pe's 30 points a day old outrank pd's 10 of half a day.
    let later = hours(10 * 365 * 24);
    s.clock.set(later - Duration::days(1));
    for i in 0..3 {
        s.handle(&view("pe", later - Duration::days(1), i)).await;
    }
    s.clock.set(later - Duration::hours(12));
    s.handle(&view("pd", later - Duration::hours(12), 0)).await;
    s.clock.set(later);
    let rows = top(1).await;
    assert_eq!(rows[0].0, "pe", "{rows:?}");
    assert!((rows[0].1 - 15.0).abs() < 1e-9, "{rows:?}");
    let rows = top(4).await;
    let order: Vec<&str> = rows.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(&order[..2], ["pe", "pd"]);
    s.cleanup().await;
}

/// Payloads of `routing_key` in the outbox without the ids each database generates, sorted.
async fn outbox_shapes(s: &ScoringDb, routing_key: &str) -> Vec<String> {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for k in [
                    "model_id",
                    "rule_id",
                    "rule_ids",
                    "trigger_id",
                    "history_id",
                ] {
                    m.remove(k);
                }
                m.values_mut().for_each(strip);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(strip),
            _ => {}
        }
    }
    let mut out: Vec<String> = s
        .outbox(routing_key)
        .await
        .into_iter()
        .map(|mut v| {
            strip(&mut v);
            v.to_string()
        })
        .collect();
    out.sort();
    out
}

/// The consumer's batches (one transaction; leads locked and events recorded for the whole
/// batch at once) leave exactly what the same messages applied one by one leave: scores,
/// stages, ledgers and every outbox event — with new and known leads, a profile twice in a
/// batch, a tag change and a profile update beside events, redeliveries inside and across
/// batches, an event resolved again, a merge, and a profile merged away.
async fn batches_apply_as_messages_one_by_one(backend: Backend) {
    let (a, b) = (ScoringDb::new(backend).await, ScoringDb::new(backend).await);
    for s in [&a, &b] {
        let m = engagement(s, json!({"kind": "none"})).await;
        s.rule(
            T,
            &m,
            json!({"kind": "state", "name": "VIP", "points": 15, "condition": {"version": 1,
            "root": {"type": "tag", "op": "has", "tags": ["vip"]}}}),
        )
        .await;
        // Reads the projection: the batch must have recorded each event before it is scored.
        s.rule(
            T,
            &m,
            json!({"kind": "event", "name": "Engaged download", "event": "track.download",
            "points": 7, "condition": {"version": 1, "root": {"type": "behaviour",
            "event": "track.page_view", "count": {"op": "gte", "value": 2},
            "window": {"type": "last", "days": 7}}}}),
        )
        .await;
        let mut machine =
            serde_json::to_value(scoring_svc::domain::defs::MachineSpec::default_machine())
                .unwrap();
        machine["stages"][1]["entry"] = json!({"version": 1, "root": {"type": "property",
            "key": "score.engagement", "value_type": "number", "op": "gte", "value": 50}});
        s.machine(T, machine).await;
        s.trigger(
            T,
            json!({"name": "MQL", "on": {"type": "stage_entered", "stage": "mql"},
            "actions": [{"type": "notify", "message": "New MQL"}]}),
        )
        .await;
    }
    let now = start();
    let ev = |id: &str, kind: TrackKind| tracked(T, kind, now, id, &["article"], json!({}));
    let view = |p: &str, id: &str| resolved(p, &ev(id, TrackKind::PageView));
    let again = ev("again", TrackKind::FormSubmit);
    let first = [
        view("p0", "v0"),
        updated(T, "p1", 1, json!({}), Some("rep-7")),
        view("p1", "v1"),
        view("p1", "v2"),
        view("p2", "v3"),
        tag_changed(T, "p2", "vip", true, now),
        resolved("p3", &ev("f1", TrackKind::FormSubmit)),
        resolved("p3", &ev("f2", TrackKind::FormSubmit)),
        view("p4", "v4"),
    ];
    let batches: Vec<Vec<proto::Envelope>> = vec![
        first.to_vec(),
        vec![
            first[0].clone(),
            resolved("p1", &ev("f3", TrackKind::FormSubmit)),
            view("p2", "v5"),
            view("p2", "v5"),
            resolved("p3", &again),
            view("p4", "v6"),
            first[8].clone(),
        ],
        vec![merged(T, "p0", &["p5"]), view("p2", "v7"), view("p5", "v8")],
        vec![view("p5", "v9"), view("p6", "v10"), resolved("p6", &again)],
        vec![view("p4", "v11"), view("p6", "v12"), resolved("p6", &again)],
        vec![
            resolved("p2", &ev("d1", TrackKind::Download)),
            resolved("p4", &ev("d2", TrackKind::Download)),
            resolved("p6", &ev("d3", TrackKind::Download)),
            resolved("p7", &ev("d4", TrackKind::Download)),
        ],
    ];
    for batch in &batches {
        let mut one_by_one = Vec::new();
        for env in batch {
            one_by_one.push(a.handle(env).await);
        }
        let together: Vec<Outcome> = b
            .scorer
            .handle_batch(batch)
            .await
            .into_iter()
            .map(|o| o.expect("message applied"))
            .collect();
        assert_eq!(together, one_by_one);
    }
    for p in ["p0", "p1", "p2", "p3", "p4", "p5", "p6", "p7"] {
        let ledger = "SELECT COUNT(*) FROM score_ledger WHERE profile_id = ?";
        let lead = |s: &ScoringDb| {
            let db = s.db().clone();
            async move {
                scoring_svc::store::queries::lead(&db, T, p)
                    .await
                    .unwrap()
                    .map(|l| (l.stage, l.status, l.merged_into))
            }
        };
        assert_eq!(lead(&a).await, lead(&b).await, "{p}");
        if lead(&a).await.is_some_and(|l| l.1 == "active") {
            assert_eq!(
                a.score(T, p, "engagement").await,
                b.score(T, p, "engagement").await,
                "{p}"
            );
        }
        assert_eq!(
            a.count(ledger, vec![p.into()]).await,
            b.count(ledger, vec![p.into()]).await,
            "{p}"
        );
    }
    assert_eq!(a.stage(T, "p3").await, "mql", "the two forms: 50 points");
    let downloads = "SELECT COUNT(*) FROM score_ledger WHERE event_kind = 'track.download'";
    assert_eq!(b.count(downloads, vec![]).await, 3, "p7 has viewed nothing");
    for key in [LEAD_SCORE_CHANGED, LEAD_STAGE_CHANGED, LEAD_NOTIFY] {
        let (x, y) = (outbox_shapes(&a, key).await, outbox_shapes(&b, key).await);
        assert!(!x.is_empty(), "{key}");
        assert_eq!(x, y, "{key}");
    }
    a.cleanup().await;
    b.cleanup().await;
}

/// The store answers by id only within the tenant: another tenant's model, rule, trigger, job
/// and lead are not found (and not changed), and a manual adjustment, move or contact on a
/// profile the tenant has no lead for is refused without creating one; on a merged profile an
/// adjustment still goes to the survivor.
async fn by_id_reads_and_manual_changes_stay_in_the_tenant(backend: Backend) {
    use scoring_svc::store::defs::{self, DefsError};
    use scoring_svc::store::engine::ManualError;
    use scoring_svc::store::jobs;
    const B: &str = "t-score-b";
    let s = ScoringDb::new(backend).await;
    let m = engagement(&s, json!({"kind": "none"})).await;
    let t = s
        .trigger(
            T,
            json!({"name": "Hot", "on": {"type": "score", "model": "engagement", "threshold": 50, "direction": "up"},
                "actions": [{"type": "notify", "message": "hot"}]}),
        )
        .await;
    s.handle(&resolved("p1", &view("iso-1", 0))).await;
    let rule = defs::model(s.db(), T, &m).await.unwrap().rules.unwrap()[0]
        .id
        .clone();
    let job = jobs::create_recompute(&s.scorer, T, &m, "ops", false)
        .await
        .unwrap();

    let not_found = |r: Result<(), DefsError>, what: &str| match r {
        Err(DefsError::NotFound(msg)) => assert!(msg.contains('`'), "{what}: {msg}"),
        other => panic!("{what}: {other:?}"),
    };
    not_found(defs::model(s.db(), B, &m).await.map(drop), "model");
    not_found(
        defs::update_model(s.db(), B, &m, Default::default(), "b", start())
            .await
            .map(drop),
        "update_model",
    );
    let spec = |p: i32| {
        serde_json::from_value(
            json!({"kind": "event", "name": "X", "event": "track.page_view", "points": p}),
        )
        .unwrap()
    };
    not_found(
        defs::create_rule_in(s.db(), B, &m, spec(99), "b", start())
            .await
            .map(drop),
        "create_rule_in",
    );
    not_found(defs::rule(s.db(), B, &rule).await.map(drop), "rule");
    not_found(
        defs::replace_rule(s.db(), B, &rule, spec(99), "b", start())
            .await
            .map(drop),
        "replace_rule",
    );
    not_found(
        defs::delete_rule(s.db(), B, &rule, "b", start()).await,
        "delete_rule",
    );
    not_found(defs::trigger(s.db(), B, &t).await.map(drop), "trigger");
    not_found(
        defs::delete_trigger(s.db(), B, &t, "b", start()).await,
        "delete_trigger",
    );
    not_found(
        jobs::create_recompute(&s.scorer, B, &m, "b", false)
            .await
            .map(drop),
        "create_recompute",
    );
    assert_eq!(jobs::job(s.db(), B, &job.id).await.unwrap(), None);
    assert_eq!(
        jobs::job(s.db(), T, &job.id).await.unwrap().map(|j| j.id),
        Some(job.id.clone())
    );
    assert_eq!(defs::rule(s.db(), T, &rule).await.unwrap().status, "active");
    assert_eq!(defs::trigger(s.db(), T, &t).await.unwrap().status, "active");
    assert!(defs::models(s.db(), B, None, 10).await.unwrap().is_empty());
    assert!(defs::triggers(s.db(), B, None, 10)
        .await
        .unwrap()
        .is_empty());

    // Manual changes: B has no lead for p1, T none for ghost.
    s.model(B, json!({"key": "engagement", "name": "E of B"}))
        .await;
    let b_model = s.scorer.compiled(B).await.unwrap().models[0].id.clone();
    let t_model = s.scorer.compiled(T).await.unwrap().models[0].id.clone();
    for (tenant, profile, model) in [(B, "p1", &b_model), (T, "ghost", &t_model)] {
        let r = s
            .scorer
            .adjust(tenant, profile, model, 50.0, "user:b", "phantom")
            .await;
        assert!(
            matches!(&r, Err(ManualError::NotFound(p)) if p == profile),
            "adjust {tenant}/{profile}: {r:?}"
        );
        let r = s
            .scorer
            .move_stage(tenant, profile, "sql", "user:b", "phantom")
            .await;
        assert!(
            matches!(&r, Err(ManualError::NotFound(p)) if p == profile),
            "move {tenant}/{profile}: {:?}",
            r.map(|m| m.history_id)
        );
        let r = s.scorer.mark_contacted(tenant, profile, "user:b").await;
        assert!(
            matches!(&r, Err(ManualError::NotFound(p)) if p == profile),
            "contacted {tenant}/{profile}: {r:?}"
        );
    }
    for (sql, v) in [
        ("SELECT COUNT(*) FROM leads WHERE tenant_id = ?", B),
        ("SELECT COUNT(*) FROM leads WHERE profile_id = ?", "ghost"),
        ("SELECT COUNT(*) FROM score_ledger WHERE tenant_id = ?", B),
        (
            "SELECT COUNT(*) FROM facts_profile WHERE profile_id = ?",
            "ghost",
        ),
    ] {
        assert_eq!(s.count(sql, vec![v.into()]).await, 0, "{sql} {v}");
    }
    assert_eq!(s.score(T, "p1", "engagement").await, 10.0);

    // An adjustment on a merged profile goes to its survivor, recorded with the actor.
    s.handle(&resolved("p2", &view("iso-2", 0))).await;
    s.handle(&merged(T, "p2", &["p1"])).await;
    let lead = s
        .scorer
        .adjust(T, "p1", &t_model, 5.0, "user:ops", "goodwill")
        .await
        .unwrap();
    assert_eq!(lead.profile, "p2");
    assert_eq!(s.score(T, "p2", "engagement").await, 25.0);
    let page = scoring_svc::store::queries::ledger(
        &s.scorer,
        T,
        "p2",
        &scoring_svc::store::queries::LedgerQuery {
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        (
            page.items[0].kind.as_str(),
            page.items[0].cause_id.as_deref()
        ),
        ("adjust", Some("user:ops"))
    );
    s.cleanup().await;
}

/// Leads that forward to each other in a loop are stored data no retry mends: the consumer
/// parks a message that meets them (`Invalid`) instead of sending it back to the bus.
async fn a_merge_chain_that_does_not_end_is_parked(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    engagement(&s, json!({"kind": "none"})).await;
    s.handle(&resolved("p1", &view("ev-1", 1))).await;
    s.handle(&resolved("p2", &view("ev-2", 1))).await;
    for (p, into) in [("p1", "p2"), ("p2", "p1")] {
        let n = s
            .count_exec(
                "UPDATE leads SET status = ?, merged_into = ? WHERE tenant_id = ? AND profile_id = ?",
                vec![MERGED.into(), into.into(), T.into(), p.into()],
            )
            .await;
        assert_eq!(n, 1);
    }
    match s.scorer.handle(&resolved("p1", &view("ev-3", 1))).await {
        Err(ScoreError::MergeChain { profile }) => assert_eq!(profile, "p1"),
        other => panic!("expected a merge chain that does not end, got {other:?}"),
    }
    let r = scoring_svc::consume::handle(&s.scorer, resolved("p1", &view("ev-4", 1))).await;
    assert!(matches!(r, Err(HandlerError::Invalid(_))), "{r:?}");
    s.cleanup().await;
}

/// A batch with a tenant's settings in it: the zone is taken, the other messages scored, each
/// outcome in its message's place; a zone that is no zone parks only its own message.
async fn tenant_settings_in_a_batch_set_the_zone(backend: Backend) {
    let s = ScoringDb::new(backend).await;
    engagement(&s, json!({"kind": "none"})).await;
    let settings = |zone: &str| {
        proto::Envelope::of(
            T,
            &proto::tenant::TenantSettings {
                time_zone: zone.into(),
                changed_at: "2026-06-01T00:00:00Z".parse().unwrap(),
            },
        )
        .build()
    };
    let out = scoring_svc::consume::handle_batch(
        &s.scorer,
        vec![
            settings("Europe/Berlin"),
            resolved("p1", &view("ev-1", 1)),
            settings("Mars/Olympus_Mons"),
        ],
    )
    .await;
    assert!(out[0].is_ok() && out[1].is_ok(), "{out:?}");
    assert!(matches!(out[2], Err(HandlerError::Invalid(_))), "{out:?}");
    assert_eq!(
        s.scorer.config().zone_of(T),
        chrono_tz::Europe::Berlin,
        "the tenant's days now count in its zone"
    );
    assert_eq!(
        s.scorer.config().zone_of("t-other"),
        chrono_tz::Asia::Shanghai
    );
    s.cleanup().await;
}

test_support::on_both_backends!(
    tenant_settings_in_a_batch_set_the_zone,
    a_merge_chain_that_does_not_end_is_parked,
    by_id_reads_and_manual_changes_stay_in_the_tenant,
    batches_apply_as_messages_one_by_one,
    leaderboard_keys_hold_across_eras,
    redelivery_scores_once,
    merge_counts_a_shared_event_once_and_unmerge_restores,
    state_rules_hold_points_while_matching,
    stages_triggers_slas_decay_and_inactivity,
    recompute_replays_events_under_changed_rules,
    leaderboard_orders_by_exact_scores,
);
